#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "engine/ann_index.h"
#include "engine/catalog.h"
#include "engine/featurizer.h"
#include "engine/scoring.h"

namespace adserve {

struct RetrieverOptions {
  AnnOptions ann;
  size_t annCandidates = 1000;   // k of the ANN search per request
  size_t scoreCandidates = 300;  // candidates the light score keeps per request
  // Search placements: up to this many ads whose keywords the query matches (exact, then phrase,
  // then broad) join the ANN candidates when they pass eligibility and targeting (docs/targeting.md, "Keyword candidates").
  size_t keywordCandidates = 100;
  float similarityWeight = 0.3f;  // weight of (dot + 1) / 2 in the lightweight score
};

// A batch's candidates from every source, before the light-score cut.
struct Retrieval {
  size_t k = 0;                 // ANN slots per request
  std::vector<float> scores;    // [requests x k]: Q·E_ad, best first
  std::vector<int64_t> labels;  // [requests x k]: ad indices, -1 where fewer ads qualify
  // Per request: (Q·E_ad, ad) of keyword-matched ads the ANN search did not return.
  std::vector<std::vector<std::pair<float, int64_t>>> keywordMatched;
};

// Candidate generation and the light-score cut. Every source (the ANN index over the loaded ads
// and, for IVF-Flat, the added ones; an exact scan of the added ads for the other index kinds; the
// keyword matches) admits only what the request's filter admits, so exclusions never use up
// candidate slots. Immutable after open; the batcher thread
// calls it, and its searches spread over the compute threads.
class Retriever {
 public:
  // Builds (or loads) the index over the catalog's loaded ads.
  Retriever(const CatalogAds& ads, const RetrieverOptions& options);

  // Queries are E_user + E_ctx (user, context: [requests x D]); filters holds one per request,
  // built from `catalog`.
  Retrieval retrieve(const CatalogSnapshot& catalog, const torch::Tensor& user, const torch::Tensor& context,
                     const std::vector<RequestFeatures>& features, const std::vector<CatalogFilter>& filters) const;
  // Each request's best scoreCandidates by lightweight score (similarity and the catalog's prior),
  // best first, into results[i].adIndex and .light.
  void shortlist(const CatalogSnapshot& catalog, const Retrieval& retrieval, std::vector<ScoreResult>& results) const;

  const std::string& indexDescription() const { return index_->description(); }
  // Where Catalog::add places added ads.
  const AnnIndex& index() const { return *index_; }

 private:
  // Merges each query's best added ads into its ANN results (scores/labels [queries x k]), for index
  // kinds whose lists take no additions.
  void searchAdded(const CatalogSnapshot& catalog, const float* queries, size_t nq, size_t k, const std::vector<const AdFilter*>& filters,
                   float* scores, int64_t* labels) const;

  RetrieverOptions options_;
  size_t dim_;
  size_t catalogAds_;
  torch::Tensor vectors_;  // the index's vectors: the 8-bit scan re-ranks with them, so they live as long as it
  std::unique_ptr<AnnIndex> index_;
};

}  // namespace adserve
