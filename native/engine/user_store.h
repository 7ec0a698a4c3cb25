#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

#include "engine/featurizer.h"
#include "engine/lru_cache.h"
#include "engine/model.h"
#include "engine/tensor_file.h"

namespace adserve {

// The model directory's user files and how unknown users are embedded.
struct UserStoreOptions {
  TensorFile embeddings;           // float32 [users, D]
  TensorFile category;             // float32 [users, categories, 3]
  TensorFile advertiserIndptr;     // int32 [users + 1]
  TensorFile advertiserIndex;      // int32 [nnz]: advertiser index
  TensorFile advertiserValues;     // float32 [nnz, 2]
  std::vector<std::string> ids;    // row order of the user files
  std::vector<float> pairUnknown;  // pair features of a (user, ad) with no history
  // Unknown users' embeddings depend only on their four categorical features, so a small cache
  // covers them all.
  size_t cacheSize = 4096;
};

// The users side of a batch: known users' embeddings and (user, ad) pair features from the model
// directory, the user tower for everyone else. Immutable after open except the unknown-user cache,
// which locks itself; the batcher thread is its reader.
class UserStore {
 public:
  // `model` must outlive the store.
  UserStore(const Model& model, const UserStoreOptions& options, size_t userNumeric);

  // The user's row in the known-user tables, -1 for a user without one (or without an id).
  int64_t row(const std::string& userId) const;
  // [batch, D]: the known rows' embeddings, the user tower's (cached) for the rest; rows[i] is
  // request i's row().
  torch::Tensor embeddings(const std::vector<RequestFeatures>& features, const std::vector<int64_t>& rows) const;
  // The pair features of user `row` with an ad of that category and advertiser (0-based), into
  // out[0 .. pairWidth()).
  void pairFeatures(int64_t row, int32_t category, int32_t advertiser, float* out) const;
  size_t pairWidth() const { return pairWidth_; }
  std::pair<uint64_t, uint64_t> cacheHitsAndMisses() const { return cache_.hitsAndMisses(); }

 private:
  const Model& model_;
  size_t userNumeric_;
  torch::Tensor embeddings_;
  torch::Tensor category_;
  torch::Tensor advertiserIndptr_;
  torch::Tensor advertiserIndex_;
  torch::Tensor advertiserValues_;
  std::vector<float> pairUnknown_;
  size_t categoryWidth_ = 0;
  size_t categories_ = 0;
  size_t pairWidth_ = 0;
  std::unordered_map<std::string, int64_t> row_;
  mutable LruCache<torch::Tensor> cache_;  // filled from const lookups; locks itself
};

}  // namespace adserve
