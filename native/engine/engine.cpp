#include "engine/engine.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "ad_request_generated.h"
#include "engine/errors.h"
#include "engine/tensors.h"

namespace adserve {

namespace {

double nanosBetween(Clock::time_point from, Clock::time_point to) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
}

const fb::AdRequest& adRequest(const ScoreRequest& request) { return *flatbuffers::GetRoot<fb::AdRequest>(request.bytes.data()); }

// Writes each stage's wall time into every result of the batch, and each request's queue wait.
class StageTimer {
 public:
  StageTimer(const std::vector<const ScoreRequest*>& batch, std::vector<ScoreResult>& results) : results_(results), mark_(Clock::now()) {
    for (size_t i = 0; i < batch.size(); ++i) {
      results[i].batchSize = static_cast<uint32_t>(batch.size());
      results[i].queueWaitNs = nanosBetween(batch[i]->enqueued, mark_);
    }
  }
  void lap(Stage stage) {
    const Clock::time_point now = Clock::now();
    for (ScoreResult& result : results_) result.stageNs[stage] = nanosBetween(mark_, now);
    mark_ = now;
  }

 private:
  std::vector<ScoreResult>& results_;
  Clock::time_point mark_;
};

std::vector<RequestFeatures> featurizeBatch(const std::vector<const ScoreRequest*>& batch, const FeatureSpec& spec) {
  const int64_t nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<RequestFeatures> features;
  features.reserve(batch.size());
  for (const ScoreRequest* request : batch) {
    features.push_back(featurize(adRequest(*request), spec, nowMs));
    if (!request->personalised) forgetUser(features.back());
  }
  return features;
}

std::vector<CatalogFilter> requestFilters(const CatalogSnapshot& catalog, const std::vector<const ScoreRequest*>& batch) {
  std::vector<CatalogFilter> filters;
  filters.reserve(batch.size());
  for (const ScoreRequest* request : batch)
    filters.push_back(catalog.filter(adRequest(*request), request->excludedCampaigns, request->personalised));
  return filters;
}

// Requests whose deadline has passed keep their lightweight ranking with NaN logits (degraded);
// returns the others that have candidates, the ones fusion scores.
std::vector<size_t> degradeLate(const std::vector<const ScoreRequest*>& batch, std::vector<ScoreResult>& results) {
  std::vector<size_t> live;
  const Clock::time_point now = Clock::now();
  for (size_t i = 0; i < batch.size(); ++i) {
    if (now >= batch[i]->deadline) {
      results[i].degraded = true;
      results[i].ctrLogit.assign(results[i].adIndex.size(), std::numeric_limits<float>::quiet_NaN());
      results[i].cvrLogit.assign(results[i].adIndex.size(), std::numeric_limits<float>::quiet_NaN());
    } else if (!results[i].adIndex.empty()) {
      live.push_back(i);
    }
  }
  return live;
}

}  // namespace

Engine::Engine(const EngineOptions& options)
    : features_(options.features),
      model_(std::make_unique<Model>(options.modelPath)),
      catalog_(options.adEmbeddings, options.adCategorical, options.adPrior, options.adKeys, options.targeting),
      dim_(static_cast<size_t>(catalog_.snapshot()->catalog().embeddings.size(1))),
      users_(*model_, options.users, options.features.userNumeric),
      contexts_(*model_, dim_, options.features.maxQueryTokens, options.contextCacheSize, options.contextTtl),
      fusion_(*model_, catalog_.snapshot()->catalog().embeddings, users_.pairWidth(), options.fusion, options.fusionPrecision,
              options.fusionKernel),
      retriever_(catalog_.snapshot()->catalog(), options.retrieval) {}

std::vector<ScoreResult> Engine::scoreBatch(const std::vector<const ScoreRequest*>& batch) const {
  std::vector<ScoreResult> results(batch.size());
  if (batch.empty()) return results;
  StageTimer timer(batch, results);
  const std::vector<RequestFeatures> features = featurizeBatch(batch, features_);
  std::vector<int64_t> userRows(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) userRows[i] = users_.row(features[i].userId);
  timer.lap(kParse);

  const torch::Tensor user = users_.embeddings(features, userRows);
  timer.lap(kUser);
  const torch::Tensor context = contexts_.embeddings(features);
  timer.lap(kContext);

  // One snapshot for the whole batch: retrieval, the light score and fusion see the same ads.
  const std::shared_ptr<const CatalogSnapshot> catalog = catalog_.snapshot();
  const std::vector<CatalogFilter> filters = requestFilters(*catalog, batch);
  const Retrieval retrieval = retriever_.retrieve(*catalog, user, context, features, filters);
  timer.lap(kRetrieve);
  retriever_.shortlist(*catalog, retrieval, results);
  timer.lap(kLightScore);

  fusion_.score(user, context, degradeLate(batch, results), userRows, *catalog, users_, results);
  timer.lap(kScore);
  return results;
}

void Engine::setEligibility(const std::vector<uint32_t>& adIndex, const std::vector<uint8_t>& eligible) {
  catalog_.setEligibility(adIndex, eligible);
}

void Engine::setPriors(const std::vector<uint32_t>& adIndex, const std::vector<float>& prior) { catalog_.setPriors(adIndex, prior); }

size_t Engine::totalAds() const { return catalog_.snapshot()->totalAds(); }

size_t Engine::addedInIndex() const {
  const std::shared_ptr<const CatalogSnapshot> catalog = catalog_.snapshot();
  return catalog->added() != nullptr && catalog->added()->indexed ? catalog->added()->indexed->count : 0;
}

uint32_t Engine::addAds(const NewAds& ads) {
  const size_t n = ads.prior.size();
  if (n == 0) throw EngineError(ErrorCode::InvalidArgument, "no ads to add");
  if (ads.categorical.size() != n * 4) throw EngineError(ErrorCode::InvalidArgument, "categorical needs 4 values per ad");
  if (ads.keys.size() != n) throw EngineError(ErrorCode::InvalidArgument, "keys need one entry per ad");
  if (ads.title.empty() || ads.title.size() % n != 0 || ads.numeric.empty() || ads.numeric.size() % n != 0) {
    throw EngineError(ErrorCode::InvalidArgument, "title and numeric need the same number of values for every ad");
  }
  if (!std::all_of(ads.prior.begin(), ads.prior.end(), [](float v) { return std::isfinite(v); }) ||
      !std::all_of(ads.numeric.begin(), ads.numeric.end(), [](float v) { return std::isfinite(v); })) {
    throw EngineError(ErrorCode::InvalidArgument, "priors and numeric features must be finite");
  }
  const auto rows = static_cast<int64_t>(n);
  torch::Tensor embeddings;
  torch::Tensor projection;
  {
    c10::InferenceMode inference;
    try {
      embeddings = model_
                       ->adEmbed(longs(ads.categorical, {rows, 4}), longs(ads.title, {rows, static_cast<int64_t>(ads.title.size() / n)}),
                                 floats(ads.numeric, {rows, static_cast<int64_t>(ads.numeric.size() / n)}))
                       .contiguous();
    } catch (const std::exception& error) {
      // Out-of-vocabulary ids and wrong widths surface from the ad tower, with a TorchScript trace
      // whose last line says what was wrong.
      std::string message = error.what();
      while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back()))) message.pop_back();
      throw EngineError(ErrorCode::InvalidArgument, "the ad tower refused the new ads: " + message.substr(message.find_last_of('\n') + 1));
    }
    if (embeddings.size(1) != static_cast<int64_t>(dim_) || !torch::isfinite(embeddings).all().item<bool>()) {
      throw EngineError(ErrorCode::Model, "the ad tower gave no finite embedding of the catalog's dimension");
    }
    projection = fusion_.projectAds(embeddings);
  }
  return catalog_.add(ads, embeddings, projection, retriever_.index());
}

Engine::CacheStats Engine::cacheStats() const {
  const auto [userHits, userMisses] = users_.cacheHitsAndMisses();
  const auto [contextHits, contextMisses] = contexts_.cacheHitsAndMisses();
  return {userHits, userMisses, contextHits, contextMisses};
}

}  // namespace adserve
