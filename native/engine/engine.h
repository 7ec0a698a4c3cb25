#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

#include "engine/ann_index.h"
#include "engine/catalog.h"
#include "engine/dense_kernel.h"
#include "engine/exclusions.h"
#include "engine/featurizer.h"
#include "engine/lru_cache.h"
#include "engine/model.h"
#include "engine/targeting.h"
#include "engine/tensor_file.h"
#include "engine/user_store.h"
#include "engine/context_embedder.h"

namespace adserve {

using Clock = std::chrono::steady_clock;

// Everything Engine needs from a model directory and from configuration. The TypeScript side reads
// manifest.json and fills this in; the engine only loads the binary files it names.
struct EngineOptions {
  std::string modelPath;
  FeatureSpec features;
  TensorFile adEmbeddings;           // float32 [ads, D]
  TensorFile adCategorical;          // int64 [ads, 4]: advertiser, category, ... (index + 1)
  UserStoreOptions users;
  // Static part of each ad's lightweight score (bid, historical CTR, quality), from the control plane.
  std::vector<float> adPrior;
  float similarityWeight = 0.3f;     // weight of (dot + 1) / 2 in the lightweight score
  // Boolean targeting per ad (DNF); ads not listed are untargeted.
  std::vector<AdTargeting> targeting;
  // Every ad's campaign code and ids, for the requests' exclusions; hashed at open, not kept.
  AdKeys adKeys;
  AnnOptions ann;
  // "precomputed": the fusion's first layer is linear over [E_user, E_ctx, E_ad, dots, pair], so
  // W_ad · E_ad is computed once per ad at open and W_user · E_user + W_ctx · E_ctx once per request;
  // per candidate only an add, the dots, the pair term and the remaining layers run.
  // "model": the TorchScript score method on every (request, candidate) pair.
  std::string fusion = "precomputed";
  // Context embeddings are cached per feature tuple for contextTtl (pagination, repeats).
  size_t contextCacheSize = 65536;
  std::chrono::seconds contextTtl{60};
  size_t annCandidates = 1000;       // k of the ANN search per request
  size_t scoreCandidates = 300;      // candidates the model scores per request
  // Search placements: up to this many ads whose keywords the query matches (exact, then phrase,
  // then broad) join the ANN candidates when they pass eligibility and targeting (BOOK_SPEC 2.10).
  size_t keywordCandidates = 100;
};

enum Stage : size_t { kParse, kUser, kContext, kRetrieve, kLightScore, kScore, kStageCount };
extern const char* const kStageNames[kStageCount];

// One request's answer: candidates ordered by lightweight score; logits are NaN when degraded.
struct ScoreResult {
  std::vector<int32_t> adIndex;
  std::vector<float> light;
  std::vector<float> ctrLogit;
  std::vector<float> cvrLogit;
  std::vector<double> stageNs = std::vector<double>(kStageCount, 0.0);
  uint32_t batchSize = 0;
  double queueWaitNs = 0;
  bool degraded = false;
};

struct ScoreRequest {
  std::vector<uint8_t> bytes;  // a verified AdRequest
  // Campaign codes (AdKeys::campaign) kept out of this request on top of its own block lists.
  std::vector<uint32_t> excludedCampaigns;
  Clock::time_point deadline;
  Clock::time_point enqueued;
};

// Retrieval and scoring over one loaded model directory. Immutable after open except for the
// eligibility bitmap, which is swapped atomically; scoreBatch may run on any one thread at a time
// per call and reads only immutable state plus that snapshot.
class Engine {
 public:
  explicit Engine(const EngineOptions& options);

  // Scores a batch in one pass per stage. A request whose deadline passed before model scoring is
  // answered from the lightweight score alone (degraded). Every candidate source (the ANN search,
  // the added ads, the keyword matches) admits only ads that are eligible, targeted at the request
  // and not excluded by it (its block lists, its excluded campaigns), so exclusions never use up
  // candidate slots.
  std::vector<ScoreResult> scoreBatch(const std::vector<const ScoreRequest*>& batch) const;

  // Marks ads eligible (1) or not (0) at retrieval; takes effect for batches that start afterwards.
  void setEligibility(const std::vector<uint32_t>& adIndex, const std::vector<uint8_t>& eligible);
  // Replaces the static part of the listed ads' lightweight score (after a bid change, say); a
  // copy-on-write swap like eligibility, so batches in flight keep the values they started with.
  void setPriors(const std::vector<uint32_t>& adIndex, const std::vector<float>& prior);
  // Embeds the ads with the model's ad tower and makes them servable from the next batch on, under
  // indices totalAds() onwards (returns the first). They are searched exactly next to the ANN index:
  // run-time additions are few next to the catalog, and a restart with a retrained model folds
  // them in. Removing an ad is setEligibility(ad, 0).
  uint32_t addAds(const NewAds& ads);
  // The catalog's ads plus those added since.
  size_t totalAds() const;

  struct CacheStats {
    uint64_t userHits, userMisses, contextHits, contextMisses;
  };
  CacheStats cacheStats() const;

  size_t adCount() const { return adCount_; }
  size_t dim() const { return dim_; }
  const std::string& indexDescription() const { return ann_->description(); }

 private:
  // The TorchScript score method, one request per pass: a pass of several requests lets BLAS round
  // a request's scores differently depending on its neighbours (the shape picks its blocking).
  void scoreWithModel(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live, const std::vector<int64_t>& userRows,
                      const CatalogSnapshot& catalog, std::vector<ScoreResult>& results) const;
  // The precomputed fusion over every (request, candidate) row of the live requests in one pass.
  void scorePrecomputed(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live, const std::vector<int64_t>& userRows,
                        const CatalogSnapshot& catalog, std::vector<ScoreResult>& results) const;

  // Merges each query's best added ads into its ANN results (scores/labels [queries x k]).
  void searchAdded(const AddedAds& added, const float* queries, size_t nq, size_t k, const std::vector<const AdFilter*>& filters, float* scores,
                   int64_t* labels) const;

  // The fusion MLP with its first layer split by input: per ad, per request and per candidate.
  // Every layer after the per-ad projection runs on DenseKernel, whose rows do not depend on each
  // other, so a whole batch's rows can share one pass.
  struct PrecomputedFusion {
    torch::Tensor wAd;           // [D, H]
    torch::Tensor adProjection;  // [ads, H]: W_ad · E_ad
    DenseKernel perRequest;      // [E_user, E_ctx] -> W_user · E_user + W_ctx · E_ctx + b0
    DenseKernel perCandidate;    // [dots, pair], added onto the two above, then ReLU
    std::vector<DenseKernel> layers;  // the remaining hidden layers, then both heads (ctr, cvr)
  };

  EngineOptions options_;
  std::unique_ptr<Model> model_;
  Catalog catalog_;
  size_t dim_ = 0;
  size_t adCount_ = 0;
  UserStore users_;
  ContextEmbedder contexts_;
  std::unique_ptr<AnnIndex> ann_;
  std::unique_ptr<PrecomputedFusion> fusion_;  // null when options.fusion == "model"
};

}  // namespace adserve
