#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

#include "engine/tensors.h"

namespace adserve {

// The rows of a batch a tower must embed because the cache missed them, each distinct key once:
// requests of one batch that share a key (the same context, an unknown user's same four fields)
// share one tower call and get the embedding the cache then keeps. (When the towers still ran a
// whole batch in one call, a key embedded twice could come out with two values, and the cache
// kept the later: the next request with that key saw other bits than this batch did.)
class TowerMisses {
 public:
  // Row `row` needs `key`; true when the key is new to this batch, whose tower inputs the caller
  // then appends.
  bool add(int64_t row, std::string key) {
    const auto [found, inserted] = index_.emplace(key, static_cast<int64_t>(keys_.size()));
    if (inserted) keys_.push_back(std::move(key));
    rows_.push_back(row);
    of_.push_back(found->second);
    return inserted;
  }
  bool empty() const { return keys_.empty(); }
  int64_t distinct() const { return static_cast<int64_t>(keys_.size()); }
  // The distinct keys in the order their inputs were appended (row r of the tower's output).
  const std::vector<std::string>& keys() const { return keys_; }
  // out[row] = embedded[its key's row] for every row added.
  void scatter(torch::Tensor& out, const torch::Tensor& embedded) const {
    const auto count = static_cast<int64_t>(rows_.size());
    out.index_copy_(0, longs(rows_, {count}), embedded.index_select(0, longs(of_, {count})));
  }

 private:
  std::unordered_map<std::string, int64_t> index_;
  std::vector<std::string> keys_;
  std::vector<int64_t> rows_;
  std::vector<int64_t> of_;
};

}  // namespace adserve
