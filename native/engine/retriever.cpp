#include "engine/retriever.h"

#include <algorithm>
#include <numeric>
#include <unordered_set>

#include "engine/sort_best.h"

namespace adserve {

Retriever::Retriever(const CatalogAds& ads, const RetrieverOptions& options)
    : options_(options),
      dim_(static_cast<size_t>(ads.embeddings.size(1))),
      catalogAds_(ads.size()),
      vectors_(ads.embeddings),
      index_(std::make_unique<AnnIndex>(vectors_.data_ptr<float>(), catalogAds_, dim_, options.ann)) {}

Retrieval Retriever::retrieve(const CatalogSnapshot& catalog, const torch::Tensor& user, const torch::Tensor& context,
                              const std::vector<RequestFeatures>& features, const std::vector<CatalogFilter>& requestFilters) const {
  const size_t b = features.size();
  const torch::Tensor query = (user + context).contiguous();
  Retrieval out;
  const size_t k = out.k = std::min(options_.annCandidates, catalogAds_);
  out.scores.resize(b * k);
  out.labels.resize(b * k);
  std::vector<const AdFilter*> filters;
  if (std::any_of(requestFilters.begin(), requestFilters.end(), [](const CatalogFilter& f) { return !f.admitsEverything(); })) {
    for (const CatalogFilter& filter : requestFilters) filters.push_back(&filter);
  }
  const IndexAdditions* indexed = catalog.added() != nullptr ? catalog.added()->indexed.get() : nullptr;
  index_->search(query.data_ptr<float>(), b, k, filters, indexed, out.scores.data(), out.labels.data());
  if (catalog.added() != nullptr && indexed == nullptr)
    searchAdded(catalog, query.data_ptr<float>(), b, k, filters, out.scores.data(), out.labels.data());
  // Ads whose keywords a search query matches join the candidates even where the ANN search did not
  // reach them (synonyms help the embedding; advertisers' exact keywords must not be missed). They
  // pass the same eligibility and targeting test, and get their exact Q·E_ad.
  out.keywordMatched.resize(b);
  if (options_.keywordCandidates > 0) {
    for (size_t i = 0; i < b; ++i) {
      if (!features[i].search) continue;
      const std::vector<uint32_t> keywordAds = requestFilters[i].keywordAds(options_.keywordCandidates);
      if (keywordAds.empty()) continue;
      const int64_t* row = out.labels.data() + i * k;
      const std::unordered_set<int64_t> retrieved(row, row + k);
      const float* q = query.data_ptr<float>() + i * dim_;
      for (const uint32_t ad : keywordAds) {
        if (retrieved.count(ad) != 0 || !requestFilters[i].admits(ad)) continue;
        const float* embedding = catalog.embedding(ad);
        out.keywordMatched[i].emplace_back(std::inner_product(q, q + dim_, embedding, 0.0f), ad);
      }
    }
  }
  return out;
}

void Retriever::searchAdded(const CatalogSnapshot& catalog, const float* queries, size_t nq, size_t k,
                            const std::vector<const AdFilter*>& filters, float* scores, int64_t* labels) const {
  const AddedAds& added = *catalog.added();
  const torch::Tensor query = torch::from_blob(const_cast<float*>(queries), {static_cast<int64_t>(nq), static_cast<int64_t>(dim_)});
  const torch::Tensor addedScores = query.matmul(added.embeddings.t()).contiguous();  // [nq, added]
  std::vector<RankedAd> merged;
  for (size_t q = 0; q < nq; ++q) {
    merged.clear();
    for (size_t j = 0; j < k && labels[q * k + j] >= 0; ++j) merged.emplace_back(scores[q * k + j], labels[q * k + j]);
    const float* row = addedScores.data_ptr<float>() + q * added.count;
    const AdFilter* filter = filters.empty() ? nullptr : filters[q];
    for (size_t j = 0; j < added.count; ++j) {
      const auto ad = static_cast<int64_t>(catalogAds_ + j);
      if (filter == nullptr || filter->admits(ad)) merged.emplace_back(row[j], ad);
    }
    const size_t found = std::min(k, merged.size());
    sortBest(merged.begin(), merged.end(), found, RankedAd::ranksAbove);
    for (size_t j = 0; j < k; ++j) {
      scores[q * k + j] = j < found ? merged[j].score() : 0.0f;
      labels[q * k + j] = j < found ? merged[j].ad() : -1;
    }
  }
}

void Retriever::shortlist(const CatalogSnapshot& catalog, const Retrieval& retrieval, std::vector<ScoreResult>& results) const {
  const size_t k = retrieval.k;
  const size_t keep = std::min(options_.scoreCandidates, k);
  std::vector<RankedAd> scored;
  scored.reserve(k);
  for (size_t i = 0; i < results.size(); ++i) {
    scored.clear();
    const auto light = [&](float dot, int64_t ad) {
      scored.emplace_back(options_.similarityWeight * (dot + 1.0f) / 2.0f + catalog.prior(static_cast<size_t>(ad)), ad);
    };
    for (size_t j = 0; j < k; ++j) {
      if (retrieval.labels[i * k + j] >= 0) light(retrieval.scores[i * k + j], retrieval.labels[i * k + j]);
    }
    for (const auto& [dot, ad] : retrieval.keywordMatched[i]) light(dot, ad);
    const size_t n = std::min(keep, scored.size());
    sortBest(scored.begin(), scored.end(), n, RankedAd::ranksAbove);
    results[i].adIndex.resize(n);
    results[i].light.resize(n);
    for (size_t j = 0; j < n; ++j) {
      results[i].light[j] = scored[j].score();
      results[i].adIndex[j] = static_cast<int32_t>(scored[j].ad());
    }
  }
}

}  // namespace adserve
