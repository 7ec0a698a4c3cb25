#include "engine/context_embedder.h"

#include <string>

#include "engine/tensors.h"

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
  std::vector<int64_t> searchRows, browseRows, tokens, searchCategorical, browseCategorical, category, product;
  std::vector<float> searchNumeric, browseNumeric;
  std::vector<std::string> keys(features.size());
  for (int64_t i = 0; i < batch; ++i) {
    const RequestFeatures& f = features[i];
    keys[i] = contextKey(f);
    if (auto cached = cache_.get(keys[i])) {
      out[i].copy_(*cached);
      continue;
    }
    if (f.search) {
      searchRows.push_back(i);
      tokens.insert(tokens.end(), f.queryTokens.begin(), f.queryTokens.end());
      searchCategorical.insert(searchCategorical.end(), f.contextCategorical.begin(), f.contextCategorical.end());
      searchNumeric.push_back(f.logPage);
    } else {
      browseRows.push_back(i);
      category.push_back(f.pageCategory);
      product.push_back(f.pageProduct);
      browseCategorical.insert(browseCategorical.end(), f.contextCategorical.begin(), f.contextCategorical.end());
      browseNumeric.push_back(f.logPage);
    }
  }
  auto store = [&](const std::vector<int64_t>& rows, const torch::Tensor& embedded) {
    out.index_copy_(0, longs(rows, {static_cast<int64_t>(rows.size())}), embedded);
    for (size_t r = 0; r < rows.size(); ++r) cache_.put(keys[rows[r]], embedded[static_cast<int64_t>(r)].clone());
  };
  if (!searchRows.empty()) {
    const auto n = static_cast<int64_t>(searchRows.size());
    const auto width = static_cast<int64_t>(maxQueryTokens_);
    store(searchRows,
          model_.contextEmbedSearch(longs(tokens, {n, width}), longs(searchCategorical, {n, 4}), floats(searchNumeric, {n, 1})));
  }
  if (!browseRows.empty()) {
    const auto n = static_cast<int64_t>(browseRows.size());
    store(browseRows, model_.contextEmbedBrowse(longs(category, {n}), longs(product, {n}), longs(browseCategorical, {n, 4}),
                                                floats(browseNumeric, {n, 1})));
  }
  return out;
}

}  // namespace adserve
