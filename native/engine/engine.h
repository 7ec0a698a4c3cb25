#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/catalog.h"
#include "engine/context_embedder.h"
#include "engine/featurizer.h"
#include "engine/fusion.h"
#include "engine/model.h"
#include "engine/retriever.h"
#include "engine/scoring.h"
#include "engine/targeting.h"
#include "engine/tensor_file.h"
#include "engine/user_store.h"

namespace adserve {

// Everything Engine needs from a model directory and from configuration. The TypeScript side reads
// manifest.json and fills this in; the engine only loads the binary files it names.
struct EngineOptions {
  std::string modelPath;
  FeatureSpec features;
  TensorFile adEmbeddings;   // float32 [ads, D]
  TensorFile adCategorical;  // int64 [ads, 4]: advertiser, category, ... (index + 1)
  UserStoreOptions users;
  // Static part of each ad's lightweight score (bid, historical CTR, quality), from the control plane.
  std::vector<float> adPrior;
  // Boolean targeting per ad (DNF); ads not listed are untargeted.
  std::vector<AdTargeting> targeting;
  // Every ad's campaign code and ids, for the requests' exclusions; hashed at open, not kept.
  AdKeys adKeys;
  RetrieverOptions retrieval;
  // "precomputed" or "model": how the fusion stage runs (see Fusion).
  std::string fusion = "precomputed";
  // "fp32", "bf16" or "auto": the precision of the precomputed fusion's hidden layers (see Fusion); and
  // their DenseKernel variant, empty for the machine's best.
  std::string fusionPrecision = "fp32";
  std::string fusionKernel;
  // Context embeddings are cached per feature tuple for contextTtl (pagination, repeats).
  size_t contextCacheSize = 65536;
  std::chrono::seconds contextTtl{60};
};

// Retrieval and scoring over one loaded model directory, as a chain of stages: the catalog's
// snapshot, the user store, the context embedder, the retriever and the fusion stage. Threads:
// scoreBatch runs on the batcher thread, one batch at a time; setEligibility and setPriors come from
// the JS thread and addAds from a worker thread, and only publish a new catalog snapshot (the
// catalog serialises them). Everything else is immutable after open, apart from the two embedding
// caches, which lock themselves.
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
  // indices totalAds() onwards (returns the first). The IVF-Flat index takes them into the lists of
  // their nearest centroids; the other kinds search them exactly beside the index. Removing an ad
  // is setEligibility(ad, 0).
  uint32_t addAds(const NewAds& ads);
  // The catalog's ads plus those added since.
  size_t totalAds() const;
  // Added ads that sit in the ANN index's lists (all of them for IVF-Flat, none for the other kinds).
  size_t addedInIndex() const;

  struct CacheStats {
    uint64_t userHits, userMisses, contextHits, contextMisses;
  };
  CacheStats cacheStats() const;

  size_t dim() const { return dim_; }
  const std::string& indexDescription() const { return retriever_.indexDescription(); }
  // The fusion's hidden-layer DenseKernel variant ("avx512bf16", "avx2", ...), empty for "model".
  std::string fusionKernel() const { return fusion_.kernel(); }
  const std::string& fusionPrecision() const { return fusion_.precision(); }

 private:
  FeatureSpec features_;
  std::unique_ptr<Model> model_;  // the stages below keep references to it
  Catalog catalog_;
  size_t dim_;
  UserStore users_;
  ContextEmbedder contexts_;
  Fusion fusion_;
  Retriever retriever_;
};

}  // namespace adserve
