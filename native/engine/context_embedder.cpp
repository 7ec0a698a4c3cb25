#include "engine/context_embedder.h"

#include <string>

#include "engine/tensors.h"
#include "engine/tower_misses.h"

namespace adserve {

namespace {

// Everything the context towers read, as bytes: equal keys mean equal embeddings.
std::string contextKey(const RequestFeatures& f) {
  std::string key(1, f.search ? 's' : 'b');
  for (int64_t v : f.contextCategorical) appendKeyBytes(key, v);
  appendKeyBytes(key, f.logPage);
  if (f.search) {
    for (int64_t token : f.queryTokens) appendKeyBytes(key, token);
  } else {
    appendKeyBytes(key, f.pageCategory);
    appendKeyBytes(key, f.pageProduct);
  }
  return key;
}

}  // namespace

ContextEmbedder::ContextEmbedder(const Model& model, size_t dim, size_t maxQueryTokens, size_t cacheSize, std::chrono::seconds ttl)
    : model_(model), dim_(dim), maxQueryTokens_(maxQueryTokens), cache_(cacheSize, ttl) {}

torch::Tensor ContextEmbedder::embeddings(const std::vector<RequestFeatures>& features) const {
  const auto batch = static_cast<int64_t>(features.size());
  torch::Tensor out = torch::empty({batch, static_cast<int64_t>(dim_)});
  TowerMisses search, browse;
  std::vector<int64_t> tokens, searchCategorical, browseCategorical, category, product;
  std::vector<float> searchNumeric, browseNumeric;
  for (int64_t i = 0; i < batch; ++i) {
    const RequestFeatures& f = features[i];
    std::string key = contextKey(f);
    if (auto cached = cache_.get(key)) {
      out[i].copy_(*cached);
      continue;
    }
    if (!(f.search ? search : browse).add(i, std::move(key))) continue;
    if (f.search) {
      tokens.insert(tokens.end(), f.queryTokens.begin(), f.queryTokens.end());
      searchCategorical.insert(searchCategorical.end(), f.contextCategorical.begin(), f.contextCategorical.end());
      searchNumeric.push_back(f.logPage);
    } else {
      category.push_back(f.pageCategory);
      product.push_back(f.pageProduct);
      browseCategorical.insert(browseCategorical.end(), f.contextCategorical.begin(), f.contextCategorical.end());
      browseNumeric.push_back(f.logPage);
    }
  }
  auto store = [&](const TowerMisses& misses, const torch::Tensor& embedded) {
    misses.scatter(out, embedded);
    for (int64_t r = 0; r < misses.distinct(); ++r) cache_.put(misses.keys()[r], embedded[r].clone());
  };
  if (!search.empty()) {
    const int64_t n = search.distinct();
    const auto width = static_cast<int64_t>(maxQueryTokens_);
    store(search, model_.contextEmbedSearch(longs(tokens, {n, width}), longs(searchCategorical, {n, 4}), floats(searchNumeric, {n, 1})));
  }
  if (!browse.empty()) {
    const int64_t n = browse.distinct();
    store(browse, model_.contextEmbedBrowse(longs(category, {n}), longs(product, {n}), longs(browseCategorical, {n, 4}),
                                            floats(browseNumeric, {n, 1})));
  }
  return out;
}

}  // namespace adserve
