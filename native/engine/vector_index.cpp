#include "engine/vector_index.h"

#include <faiss/IndexFlat.h>

#include <cmath>
#include <limits>
#include <string>

#include "engine/errors.h"

namespace adserve {
namespace {

void requireFinite(const float* values, size_t count, const char* what) {
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) {
      throw EngineError(ErrorCode::InvalidArgument, std::string(what) + " contain a non-finite value at " + std::to_string(i));
    }
  }
}

}  // namespace

VectorIndex::VectorIndex(size_t dim, const float* rows, size_t count) : dim_(dim) {
  if (dim == 0 || dim > 4096) throw EngineError(ErrorCode::InvalidArgument, "dimension must be in 1..4096");
  if (count > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw EngineError(ErrorCode::InvalidArgument, "too many vectors for 32-bit labels");
  }
  requireFinite(rows, dim * count, "vectors");
  index_ = std::make_unique<faiss::IndexFlatIP>(static_cast<int>(dim));
  index_->add(static_cast<faiss::Index::idx_t>(count), rows);
}

VectorIndex::~VectorIndex() = default;

size_t VectorIndex::size() const { return static_cast<size_t>(index_->ntotal); }

SearchHits VectorIndex::search(const float* queries, size_t count, size_t k) const {
  if (k == 0 || k > kMaxK) throw EngineError(ErrorCode::InvalidArgument, "k must be in 1.." + std::to_string(kMaxK));
  if (count == 0) throw EngineError(ErrorCode::InvalidArgument, "at least one query is required");
  requireFinite(queries, count * dim_, "queries");

  SearchHits hits;
  hits.queries = count;
  hits.k = k;
  hits.scores.resize(count * k);
  std::vector<faiss::Index::idx_t> ids(count * k);
  index_->search(static_cast<faiss::Index::idx_t>(count), queries, static_cast<faiss::Index::idx_t>(k), hits.scores.data(), ids.data());
  hits.labels.resize(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) hits.labels[i] = static_cast<int32_t>(ids[i]);
  return hits;
}

}  // namespace adserve
