#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "engine/featurizer.h"
#include "engine/lru_cache.h"
#include "engine/model.h"

namespace adserve {

// The context side of a batch: one context-tower call per placement family (search, browse) for the
// requests whose exact feature tuple is not cached. Immutable after open except the cache, which
// locks itself; the batcher thread is its reader.
class ContextEmbedder {
 public:
  // `model` must outlive the embedder. Embeddings are cached per feature tuple for `ttl`
  // (pagination, repeated queries).
  ContextEmbedder(const Model& model, size_t dim, size_t maxQueryTokens, size_t cacheSize, std::chrono::seconds ttl);

  // [batch, D], row i for request i.
  torch::Tensor embeddings(const std::vector<RequestFeatures>& features) const;
  std::pair<uint64_t, uint64_t> cacheHitsAndMisses() const { return cache_.hitsAndMisses(); }

 private:
  const Model& model_;
  size_t dim_;
  size_t maxQueryTokens_;
  mutable LruCache<torch::Tensor> cache_;  // filled from const lookups; locks itself
};

}  // namespace adserve
