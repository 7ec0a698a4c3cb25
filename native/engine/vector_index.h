#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace faiss {
struct Index;
}

namespace adserve {

// k best matches per query, row-major [queries x k]; missing matches have label -1.
struct SearchHits {
  size_t queries = 0;
  size_t k = 0;
  std::vector<float> scores;
  std::vector<int32_t> labels;
};

// Exact maximum-inner-product search over a fixed set of vectors whose labels are their row
// numbers. Immutable after construction, so any number of threads may search it at once.
class VectorIndex {
 public:
  // Copies `count` rows of `dim` floats from `rows`.
  VectorIndex(size_t dim, const float* rows, size_t count);
  ~VectorIndex();

  // `queries` holds `count` rows of dim() floats. Throws EngineError(InvalidArgument) on bad shapes.
  SearchHits search(const float* queries, size_t count, size_t k) const;

  size_t dim() const { return dim_; }
  size_t size() const;

  static constexpr size_t kMaxK = 4096;

 private:
  size_t dim_;
  std::unique_ptr<faiss::Index> index_;
};

}  // namespace adserve
