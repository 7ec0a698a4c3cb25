#include "engine/engine.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

#include <omp.h>

#include "ad_request_generated.h"
#include "engine/build_info.h"
#include "engine/errors.h"
#include "engine/tensors.h"

namespace adserve {

const char* const kStageNames[kStageCount] = {"parse", "user", "context", "retrieve", "light_score", "score"};

namespace {

double nanosBetween(Clock::time_point from, Clock::time_point to) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
}

// (score, ad) pairs, best first; ties go to the lower ad index, so results do not depend on the
// order a search found them in.
constexpr auto bestFirst = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };

// Eight running sums in a fixed pattern, added in a fixed tree: the compiler can keep them in
// vector registers, and the result depends only on the two vectors, not on what else is scored.
float dot(const float* a, const float* b, size_t n) {
  float partial[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) partial[j] += a[i + j] * b[i + j];
  }
  for (; i < n; ++i) partial[i % 8] += a[i] * b[i];
  return ((partial[0] + partial[1]) + (partial[2] + partial[3])) + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
}

// Rows of one fusion block: a multiple of every kernel variant's row tile.
constexpr size_t kFusionBlockRows = 96;

}  // namespace

Engine::Engine(const EngineOptions& options)
    : options_(options),
      model_(std::make_unique<Model>(options.modelPath)),
      catalog_(options.adEmbeddings, options.adCategorical, options.adPrior, options.adKeys, options.targeting),
      dim_(static_cast<size_t>(catalog_.snapshot()->catalog().embeddings.size(1))),
      adCount_(catalog_.snapshot()->catalogAds()),
      users_(*model_, options.users, options.features.userNumeric),
      contexts_(*model_, dim_, options.features.maxQueryTokens, options.contextCacheSize, options.contextTtl) {
  const torch::Tensor& adEmbeddings = catalog_.snapshot()->catalog().embeddings;
  options_.adKeys = AdKeys{};  // hashed into the catalog; the strings are not needed again
  if (options.fusion == "precomputed") {
    c10::InferenceMode inference;
    const torch::Tensor w0 = model_->parameter("fusion.0.weight");
    const auto d = static_cast<int64_t>(dim_);
    if (w0.size(1) != 3 * d + 3 + static_cast<int64_t>(users_.pairWidth())) throw EngineError(ErrorCode::Model, "fusion.0.weight does not match [E_user, E_ctx, E_ad, dots, pair]");
    using Activation = DenseKernel::Activation;
    // Linear layers in torch's [outputs x inputs] layout; the kernels copy what they keep.
    const auto dense = [](const torch::Tensor& weight, const torch::Tensor& bias, Activation activation) {
      const torch::Tensor w = weight.to(torch::kFloat32).contiguous();
      const torch::Tensor b = bias.defined() ? bias.to(torch::kFloat32).contiguous() : torch::Tensor();
      return DenseKernel(w.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr, static_cast<size_t>(w.size(1)), static_cast<size_t>(w.size(0)), activation);
    };
    const auto layer = [&](const std::string& name, Activation activation) {
      return dense(model_->parameter(name + ".weight"), model_->parameter(name + ".bias"), activation);
    };
    torch::Tensor wAd = w0.slice(1, 2 * d, 3 * d).t().contiguous();
    torch::Tensor adProjection = adEmbeddings.matmul(wAd).contiguous();
    std::vector<DenseKernel> layers;
    layers.push_back(layer("fusion.2", Activation::kRelu));
    layers.push_back(layer("fusion.4", Activation::kRelu));
    layers.push_back(dense(torch::cat({model_->parameter("ctr_head.weight"), model_->parameter("cvr_head.weight")}, 0),
                           torch::cat({model_->parameter("ctr_head.bias"), model_->parameter("cvr_head.bias")}, 0), Activation::kNone));
    fusion_ = std::make_unique<PrecomputedFusion>(PrecomputedFusion{std::move(wAd), std::move(adProjection),
                                                                    dense(w0.slice(1, 0, 2 * d), model_->parameter("fusion.0.bias"), Activation::kNone),
                                                                    dense(w0.slice(1, 3 * d), torch::Tensor(), Activation::kRelu), std::move(layers)});
  } else if (options.fusion != "model") {
    throw EngineError(ErrorCode::InvalidArgument, "fusion must be 'precomputed' or 'model'");
  }
  ann_ = std::make_unique<AnnIndex>(adEmbeddings.data_ptr<float>(), adCount_, dim_, options.ann);
}

void Engine::setEligibility(const std::vector<uint32_t>& adIndex, const std::vector<uint8_t>& eligible) { catalog_.setEligibility(adIndex, eligible); }

void Engine::setPriors(const std::vector<uint32_t>& adIndex, const std::vector<float>& prior) { catalog_.setPriors(adIndex, prior); }

size_t Engine::totalAds() const { return catalog_.snapshot()->totalAds(); }

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
      embeddings = model_->adEmbed(longs(ads.categorical, {rows, 4}), longs(ads.title, {rows, static_cast<int64_t>(ads.title.size() / n)}),
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
    if (fusion_) projection = embeddings.matmul(fusion_->wAd).contiguous();
  }
  return catalog_.add(ads, embeddings, projection);
}

void Engine::searchAdded(const AddedAds& added, const float* queries, size_t nq, size_t k, const std::vector<const AdFilter*>& filters,
                         float* scores, int64_t* labels) const {
  const torch::Tensor query = torch::from_blob(const_cast<float*>(queries), {static_cast<int64_t>(nq), static_cast<int64_t>(dim_)});
  const torch::Tensor addedScores = query.matmul(added.embeddings.t()).contiguous();  // [nq, added]
  std::vector<std::pair<float, int64_t>> merged;
  for (size_t q = 0; q < nq; ++q) {
    merged.clear();
    for (size_t j = 0; j < k && labels[q * k + j] >= 0; ++j) merged.emplace_back(scores[q * k + j], labels[q * k + j]);
    const float* row = addedScores.data_ptr<float>() + q * added.count;
    const AdFilter* filter = filters.empty() ? nullptr : filters[q];
    for (size_t j = 0; j < added.count; ++j) {
      const auto ad = static_cast<int64_t>(adCount_ + j);
      if (filter == nullptr || filter->admits(ad)) merged.emplace_back(row[j], ad);
    }
    const size_t found = std::min(k, merged.size());
    std::partial_sort(merged.begin(), merged.begin() + static_cast<std::ptrdiff_t>(found), merged.end(), bestFirst);
    for (size_t j = 0; j < k; ++j) {
      scores[q * k + j] = j < found ? merged[j].first : 0.0f;
      labels[q * k + j] = j < found ? merged[j].second : -1;
    }
  }
}

Engine::CacheStats Engine::cacheStats() const {
  const auto [userHits, userMisses] = users_.cacheHitsAndMisses();
  const auto [contextHits, contextMisses] = contexts_.cacheHitsAndMisses();
  return {userHits, userMisses, contextHits, contextMisses};
}

void Engine::scoreWithModel(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live, const std::vector<int64_t>& userRows,
                            const CatalogSnapshot& catalog, std::vector<ScoreResult>& results) const {
  const auto d = static_cast<int64_t>(dim_);
  std::vector<float> pair;
  for (const size_t i : live) {
    ScoreResult& result = results[i];
    const auto width = static_cast<int64_t>(result.adIndex.size());
    const size_t pairWidth = users_.pairWidth();
    pair.resize(result.adIndex.size() * pairWidth);
    for (size_t j = 0; j < result.adIndex.size(); ++j) {
      const auto ad = static_cast<size_t>(result.adIndex[j]);
      users_.pairFeatures(userRows[i], catalog.category(ad), catalog.advertiser(ad), pair.data() + j * pairWidth);
    }
    const torch::Tensor ads = torch::empty({1, width, d});
    for (int64_t j = 0; j < width; ++j) std::copy_n(catalog.embedding(static_cast<size_t>(result.adIndex[j])), dim_, ads.data_ptr<float>() + j * d);
    const auto row = static_cast<int64_t>(i);
    auto [ctr, cvr] = model_->score(user.slice(0, row, row + 1), context.slice(0, row, row + 1), ads, floats(pair, {1, width, static_cast<int64_t>(pairWidth)}));
    ctr = ctr.contiguous();
    cvr = cvr.contiguous();
    result.ctrLogit.assign(ctr.data_ptr<float>(), ctr.data_ptr<float>() + width);
    result.cvrLogit.assign(cvr.data_ptr<float>(), cvr.data_ptr<float>() + width);
  }
}

void Engine::scorePrecomputed(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live, const std::vector<int64_t>& userRows,
                              const CatalogSnapshot& catalog, std::vector<ScoreResult>& results) const {
  if (live.empty()) return;
  const PrecomputedFusion& f = *fusion_;
  const size_t requests = live.size();
  const size_t hidden = f.perRequest.outputs();
  const size_t extraWidth = f.perCandidate.inputs();  // the three dots, then the pair features
  const float* users = user.data_ptr<float>();
  const float* contexts = context.data_ptr<float>();
  std::vector<float> requestInputs(requests * 2 * dim_);
  std::vector<float> userContext(requests);
  for (size_t r = 0; r < requests; ++r) {
    const float* u = users + live[r] * dim_;
    const float* c = contexts + live[r] * dim_;
    std::copy_n(u, dim_, requestInputs.data() + r * 2 * dim_);
    std::copy_n(c, dim_, requestInputs.data() + r * 2 * dim_ + dim_);
    userContext[r] = dot(u, c, dim_);
  }
  std::vector<float> perRequest(requests * hidden);
  f.perRequest.apply(requestInputs.data(), 2 * dim_, requests, perRequest.data(), hidden, false);

  // Row n of the pass is candidate n - firstRow[r] of live request r.
  std::vector<size_t> firstRow(requests + 1, 0);
  for (size_t r = 0; r < requests; ++r) {
    ScoreResult& result = results[live[r]];
    firstRow[r + 1] = firstRow[r] + result.adIndex.size();
    result.ctrLogit.resize(result.adIndex.size());
    result.cvrLogit.resize(result.adIndex.size());
  }
  const size_t rows = firstRow[requests];
  const AddedAds* added = catalog.added();
  const float* catalogEmbeddings = catalog.catalog().embeddings.data_ptr<float>();
  const float* catalogProjection = f.adProjection.data_ptr<float>();
  const float* addedEmbeddings = added ? added->embeddings.data_ptr<float>() : nullptr;
  const float* addedProjection = added ? added->projection.data_ptr<float>() : nullptr;
  const size_t blocks = (rows + kFusionBlockRows - 1) / kFusionBlockRows;
  const int threads = static_cast<int>(std::min<size_t>(blocks, static_cast<size_t>(computeThreads())));
  // A block's activations and the layers' weights stay in the core's cache; a whole batch's first
  // hidden layer (32 x 300 rows x 256 floats) would not. Each thread's block scratch is sized here,
  // on the calling thread, because nothing inside the parallel region may throw.
  size_t widest = hidden;
  for (const DenseKernel& layer : f.layers) widest = std::max(widest, layer.outputs());
  const size_t blockFloats = kFusionBlockRows * (hidden + extraWidth + 2 * widest);
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(threads) * blockFloats);
  float* const scratchOfThreads = scratch.data();  // `scratch` names another (empty) vector on the workers
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (size_t block = 0; block < blocks; ++block) {
    const size_t begin = block * kFusionBlockRows;
    const size_t count = std::min(kFusionBlockRows, rows - begin);
    float* const first = scratchOfThreads + static_cast<size_t>(omp_get_thread_num()) * blockFloats;
    float* const extra = first + kFusionBlockRows * hidden;
    float* const activations[2] = {extra + kFusionBlockRows * extraWidth, extra + kFusionBlockRows * (extraWidth + widest)};
    // Each candidate's rows are resolved first, so that the rows a few candidates ahead (their
    // projection is 1 KB at a random place in an ads x 256 table) are fetched during this one.
    size_t slot[kFusionBlockRows];
    const float* embedding[kFusionBlockRows];
    const float* projection[kFusionBlockRows];
    size_t r = static_cast<size_t>(std::upper_bound(firstRow.begin(), firstRow.end(), begin) - firstRow.begin()) - 1;
    for (size_t n = 0; n < count; ++n) {
      while (begin + n >= firstRow[r + 1]) ++r;
      const auto ad = static_cast<size_t>(results[live[r]].adIndex[begin + n - firstRow[r]]);
      const bool isAdded = ad >= adCount_;
      slot[n] = r;
      embedding[n] = isAdded ? addedEmbeddings + (ad - adCount_) * dim_ : catalogEmbeddings + ad * dim_;
      projection[n] = isAdded ? addedProjection + (ad - adCount_) * hidden : catalogProjection + ad * hidden;
    }
    // Without it the gather took about as long as the layers (20K ads, 300 candidates: 240 vs 135 us).
    constexpr size_t kAhead = 4;
    const auto prefetch = [&](size_t n) {
      constexpr size_t kLineFloats = 16;
      for (size_t h = 0; h < hidden; h += kLineFloats) __builtin_prefetch(projection[n] + h);
      for (size_t i = 0; i < dim_; i += kLineFloats) __builtin_prefetch(embedding[n] + i);
    };
    for (size_t n = 0; n < std::min(kAhead, count); ++n) prefetch(n);
    for (size_t n = 0; n < count; ++n) {
      if (n + kAhead < count) prefetch(n + kAhead);
      const size_t request = live[slot[n]];
      const float* requestTerm = perRequest.data() + slot[n] * hidden;
      float* firstRowOut = first + n * hidden;
      for (size_t h = 0; h < hidden; ++h) firstRowOut[h] = projection[n][h] + requestTerm[h];
      float* extraRow = extra + n * extraWidth;
      extraRow[0] = dot(users + request * dim_, embedding[n], dim_);
      extraRow[1] = userContext[slot[n]];
      extraRow[2] = dot(contexts + request * dim_, embedding[n], dim_);
      const auto ad = static_cast<size_t>(results[request].adIndex[begin + n - firstRow[slot[n]]]);
      users_.pairFeatures(userRows[request], catalog.category(ad), catalog.advertiser(ad), extraRow + 3);
    }
    f.perCandidate.apply(extra, extraWidth, count, first, hidden, true);
    const float* in = first;
    size_t inWidth = hidden;
    for (size_t l = 0; l < f.layers.size(); ++l) {
      float* const out = activations[l % 2];
      f.layers[l].apply(in, inWidth, count, out, f.layers[l].outputs(), false);
      in = out;
      inWidth = f.layers[l].outputs();
    }
    for (size_t n = 0; n < count; ++n) {
      ScoreResult& result = results[live[slot[n]]];
      result.ctrLogit[begin + n - firstRow[slot[n]]] = in[n * 2];
      result.cvrLogit[begin + n - firstRow[slot[n]]] = in[n * 2 + 1];
    }
  }
}

std::vector<ScoreResult> Engine::scoreBatch(const std::vector<const ScoreRequest*>& batch) const {
  const size_t b = batch.size();
  std::vector<ScoreResult> results(b);
  if (b == 0) return results;
  Clock::time_point mark = Clock::now();
  auto lap = [&](Stage stage) {
    const Clock::time_point now = Clock::now();
    for (auto& result : results) result.stageNs[stage] = nanosBetween(mark, now);
    mark = now;
  };
  for (size_t i = 0; i < b; ++i) {
    results[i].batchSize = static_cast<uint32_t>(b);
    results[i].queueWaitNs = nanosBetween(batch[i]->enqueued, mark);
  }

  const int64_t nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<RequestFeatures> features;
  features.reserve(b);
  std::vector<int64_t> userRows(b, -1);
  for (size_t i = 0; i < b; ++i) {
    features.push_back(featurize(*flatbuffers::GetRoot<fb::AdRequest>(batch[i]->bytes.data()), options_.features, nowMs));
    userRows[i] = users_.row(features[i].userId);
  }
  lap(kParse);

  const torch::Tensor user = users_.embeddings(features, userRows);
  lap(kUser);
  const torch::Tensor context = contexts_.embeddings(features);
  lap(kContext);

  const torch::Tensor query = (user + context).contiguous();
  const size_t k = std::min(options_.annCandidates, adCount_);
  std::vector<float> annScores(b * k);
  std::vector<int64_t> annLabels(b * k);
  // One snapshot for the whole batch: retrieval, the light score and fusion see the same ads.
  const std::shared_ptr<const CatalogSnapshot> catalog = catalog_.snapshot();
  std::vector<CatalogFilter> requestFilters;
  requestFilters.reserve(b);
  for (size_t i = 0; i < b; ++i) requestFilters.push_back(catalog->filter(*flatbuffers::GetRoot<fb::AdRequest>(batch[i]->bytes.data()), batch[i]->excludedCampaigns));
  std::vector<const AdFilter*> filters;
  if (std::any_of(requestFilters.begin(), requestFilters.end(), [](const CatalogFilter& f) { return !f.admitsEverything(); })) {
    for (const CatalogFilter& filter : requestFilters) filters.push_back(&filter);
  }
  ann_->search(query.data_ptr<float>(), b, k, filters, annScores.data(), annLabels.data());
  if (const AddedAds* added = catalog->added()) searchAdded(*added, query.data_ptr<float>(), b, k, filters, annScores.data(), annLabels.data());
  // Ads whose keywords a search query matches join the candidates even where the ANN search did not
  // reach them (synonyms help the embedding; advertisers' exact keywords must not be missed). They
  // pass the same eligibility and targeting test, and get their exact Q·E_ad.
  std::vector<std::vector<std::pair<float, int64_t>>> keywordMatched(b);
  if (options_.keywordCandidates > 0) {
    for (size_t i = 0; i < b; ++i) {
      if (!features[i].search) continue;
      const std::vector<uint32_t> keywordAds = requestFilters[i].keywordAds(options_.keywordCandidates);
      if (keywordAds.empty()) continue;
      const int64_t* row = annLabels.data() + i * k;
      const std::unordered_set<int64_t> retrieved(row, row + k);
      const float* q = query.data_ptr<float>() + i * dim_;
      for (const uint32_t ad : keywordAds) {
        if (retrieved.count(ad) != 0 || !requestFilters[i].admits(ad)) continue;
        const float* embedding = catalog->embedding(ad);
        keywordMatched[i].emplace_back(std::inner_product(q, q + dim_, embedding, 0.0f), ad);
      }
    }
  }
  lap(kRetrieve);

  const size_t keep = std::min(options_.scoreCandidates, k);
  std::vector<std::pair<float, int32_t>> scored;
  scored.reserve(k);
  for (size_t i = 0; i < b; ++i) {
    scored.clear();
    const auto light = [&](float dot, int64_t ad) {
      scored.emplace_back(options_.similarityWeight * (dot + 1.0f) / 2.0f + catalog->prior(static_cast<size_t>(ad)), static_cast<int32_t>(ad));
    };
    for (size_t j = 0; j < k; ++j) {
      if (annLabels[i * k + j] >= 0) light(annScores[i * k + j], annLabels[i * k + j]);
    }
    for (const auto& [dot, ad] : keywordMatched[i]) light(dot, ad);
    const size_t n = std::min(keep, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + n, scored.end(), bestFirst);
    results[i].adIndex.resize(n);
    results[i].light.resize(n);
    for (size_t j = 0; j < n; ++j) {
      results[i].light[j] = scored[j].first;
      results[i].adIndex[j] = scored[j].second;
    }
  }
  lap(kLightScore);

  std::vector<size_t> live;
  const Clock::time_point now = Clock::now();
  for (size_t i = 0; i < b; ++i) {
    if (now >= batch[i]->deadline) {
      results[i].degraded = true;
      results[i].ctrLogit.assign(results[i].adIndex.size(), std::numeric_limits<float>::quiet_NaN());
      results[i].cvrLogit.assign(results[i].adIndex.size(), std::numeric_limits<float>::quiet_NaN());
    } else if (!results[i].adIndex.empty()) {
      live.push_back(i);
    }
  }
  if (fusion_) {
    scorePrecomputed(user, context, live, userRows, *catalog, results);
  } else {
    c10::InferenceMode inference;
    scoreWithModel(user, context, live, userRows, *catalog, results);
  }
  lap(kScore);
  return results;
}

}  // namespace adserve
