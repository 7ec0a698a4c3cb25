#include "binding/engine_js.h"

#include <cstring>

#include "ad_request_generated.h"
#include "binding/addon_state.h"
#include "binding/arguments.h"
#include "binding/js_errors.h"
#include "binding/targeting_js.h"
#include "binding/typed_arrays.h"
#include "engine/request_verifier.h"

namespace adserve::binding {
namespace {

// Runs from setImmediate, so nothing may escape it: a refused request, or a group that could not
// be handed over at all, settles as a rejected promise.
void submitHeld(Napi::Env env, Batcher& batcher, PendingScores& pending) {
  std::vector<Batcher::Refusal> refused;
  std::vector<std::pair<Batcher::Ticket, ScoreRequest>> group;
  group.swap(pending.held);
  try {
    refused = batcher.submitGroup(std::move(group));
  } catch (...) {
    const std::exception_ptr error = std::current_exception();
    for (const auto& entry : group) refused.emplace_back(entry.first, error);
  }
  for (const auto& [ticket, error] : refused) {
    const auto found = pending.deferred.find(ticket);
    if (found == pending.deferred.end()) continue;
    Napi::Promise::Deferred deferred = found->second;
    pending.deferred.erase(found);
    deferred.Reject(toJsError(env, error).Value());
    addonState(env).runnerFor(env).release(env);
  }
}

struct EngineHandle {
  std::shared_ptr<Engine> engine;
  std::shared_ptr<Batcher> batcher;
  std::shared_ptr<PendingScores> pending;
};

TensorFile tensorField(Napi::Object options, const char* key) {
  Napi::Object spec = objectField(options, key);
  TensorFile file;
  file.path = stringField(spec, "path");
  const std::string dtype = stringField(spec, "dtype");
  if (dtype == "float32") {
    file.dtype = torch::kFloat32;
  } else if (dtype == "int64") {
    file.dtype = torch::kInt64;
  } else if (dtype == "int32") {
    file.dtype = torch::kInt32;
  } else {
    throwInvalidArgument(options.Env(), std::string(key) + ".dtype must be float32, int64 or int32");
  }
  file.shape = integersField(spec, "shape");
  return file;
}

std::unordered_map<std::string, int64_t> vocabulary(Napi::Object options, const char* key) {
  std::unordered_map<std::string, int64_t> out;
  const auto values = stringsField(options, key);
  for (size_t i = 0; i < values.size(); ++i) out.emplace(values[i], static_cast<int64_t>(i) + 1);
  return out;
}

AdKeys adKeysField(Napi::Object options, const char* key) {
  Napi::Object keys = objectField(options, key);
  Napi::Value campaign = keys.Get("campaign");
  if (!campaign.IsTypedArray() || campaign.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throwInvalidArgument(options.Env(), std::string(key) + ".campaign must be a Uint32Array");
  }
  Napi::Uint32Array codes = campaign.As<Napi::Uint32Array>();
  AdKeys out;
  out.campaign.assign(codes.Data(), codes.Data() + codes.ElementLength());
  out.advertiser = stringsField(keys, "advertiser");
  out.category = stringsField(keys, "category");
  out.product = stringsField(keys, "product");
  return out;
}

}  // namespace

FeatureSpec featureSpec(Napi::Object features) {
  FeatureSpec spec;
  spec.referenceYear = static_cast<int>(countField(features, "referenceYear", 10'000));
  const auto ages = integersField(features, "ageBuckets");
  if (ages.size() % 2 != 0) throwInvalidArgument(features.Env(), "features.ageBuckets must hold [low, high] pairs");
  for (size_t i = 0; i + 1 < ages.size(); i += 2) spec.ageBuckets.emplace_back(static_cast<int>(ages[i]), static_cast<int>(ages[i + 1]));
  spec.countries = vocabulary(features, "countries");
  spec.languages = vocabulary(features, "languages");
  spec.categories = vocabulary(features, "categories");
  spec.queryBuckets = static_cast<int64_t>(countField(features, "queryBuckets", 1u << 30));
  spec.maxQueryTokens = countField(features, "maxQueryTokens", 256);
  spec.productBuckets = static_cast<int64_t>(countField(features, "productBuckets", 1u << 30));
  spec.userNumeric = countField(features, "userNumeric", 4096);
  return spec;
}

namespace {

EngineOptions engineOptions(Napi::Object options) {
  EngineOptions out;
  out.modelPath = stringField(options, "modelPath");
  out.adEmbeddings = tensorField(options, "adEmbeddings");
  out.adCategorical = tensorField(options, "adCategorical");
  out.users.embeddings = tensorField(options, "userEmbeddings");
  out.users.category = tensorField(options, "userCategory");
  out.users.advertiserIndptr = tensorField(options, "userAdvertiserIndptr");
  out.users.advertiserIndex = tensorField(options, "userAdvertiserIndex");
  out.users.advertiserValues = tensorField(options, "userAdvertiserValues");
  out.users.ids = stringsField(options, "userIds");
  out.users.pairUnknown = floatsField(options, "pairUnknown");
  out.adPrior = floatsField(options, "adPrior");
  if (!options.Get("targeting").IsUndefined()) out.targeting = targetingList(options.Env(), options.Get("targeting"));
  out.adKeys = adKeysField(options, "adKeys");
  if (!options.Get("fusion").IsUndefined()) out.fusion = stringField(options, "fusion");
  if (!options.Get("fusionPrecision").IsUndefined()) out.fusionPrecision = stringField(options, "fusionPrecision");
  if (!options.Get("fusionKernel").IsUndefined()) out.fusionKernel = stringField(options, "fusionKernel");
  if (auto weight = optionalNumber(options, "similarityWeight")) out.retrieval.similarityWeight = static_cast<float>(*weight);
  if (auto k = optionalCount(options, "annCandidates", 100'000)) out.retrieval.annCandidates = *k;
  if (auto size = optionalCount(options, "contextCacheSize", 1u << 24)) out.contextCacheSize = *size;
  if (auto n = optionalCount(options, "scoreCandidates", 100'000)) out.retrieval.scoreCandidates = *n;
  if (auto n = optionalCount(options, "keywordCandidates", 100'000, 0)) out.retrieval.keywordCandidates = *n;

  out.features = featureSpec(objectField(options, "features"));

  Napi::Object index = objectField(options, "index");
  out.retrieval.ann.kind = stringField(index, "kind");
  if (auto v = optionalCount(index, "nlist", 1u << 24)) out.retrieval.ann.nlist = *v;
  if (auto v = optionalCount(index, "nprobe", 1u << 24)) out.retrieval.ann.nprobe = *v;
  if (auto v = optionalCount(index, "hnswM", 256)) out.retrieval.ann.hnswM = *v;
  if (auto v = optionalCount(index, "efSearch", 1u << 20)) out.retrieval.ann.efSearch = *v;
  if (auto v = optionalCount(index, "pqM", 1024)) out.retrieval.ann.pqM = *v;
  if (!index.Get("ivfScan").IsUndefined()) out.retrieval.ann.ivfScan = stringField(index, "ivfScan");
  if (!index.Get("scanKernel").IsUndefined()) out.retrieval.ann.scanKernel = stringField(index, "scanKernel");
  if (!index.Get("cacheFile").IsUndefined()) out.retrieval.ann.cacheFile = stringField(index, "cacheFile");
  return out;
}

BatcherOptions batcherOptions(Napi::Object options) {
  BatcherOptions out;
  Napi::Object batching = objectField(options, "batching");
  if (auto v = optionalCount(batching, "maxBatch", 4096)) out.maxBatch = *v;
  if (auto v = optionalNumber(batching, "maxDelayUs")) {
    if (*v < 0 || *v > 1e6) throwInvalidArgument(options.Env(), "batching.maxDelayUs must be in 0..1000000");
    out.maxDelay = std::chrono::microseconds(static_cast<int64_t>(*v));
  }
  if (auto v = optionalCount(batching, "queueCapacity", 1u << 20)) out.queueCapacity = *v;
  if (auto v = optionalCount(batching, "threads", 64)) out.threads = *v;
  return out;
}

// Copies `values` into `buffer` at `offset` (advanced past them) and returns their view.
template <typename T>
Napi::TypedArrayOf<T> viewOf(Napi::Env env, Napi::ArrayBuffer buffer, size_t& offset, const std::vector<T>& values) {
  std::memcpy(static_cast<uint8_t*>(buffer.Data()) + offset, values.data(), values.size() * sizeof(T));
  Napi::TypedArrayOf<T> view = Napi::TypedArrayOf<T>::New(env, values.size(), buffer, offset);
  offset += values.size() * sizeof(T);
  return view;
}

// A request's columns share one ArrayBuffer that V8 allocates, copied in (about 5 KB for 300
// candidates): adopting each vector as an external buffer cost five finalizers per request, which
// the garbage collector tracks and runs on the JS thread.
Napi::Object resultObject(Napi::Env env, const ScoreResult& result) {
  // A degraded request has no logits: each column is sized on its own.
  const size_t fourByteValues = result.adIndex.size() + result.light.size() + result.ctrLogit.size() + result.cvrLogit.size();
  // stageNs first: the doubles need 8-byte alignment, the 4-byte columns after them keep theirs.
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, result.stageNs.size() * sizeof(double) + fourByteValues * sizeof(float));
  size_t offset = 0;
  Napi::Object out = Napi::Object::New(env);
  out.Set("stageNs", viewOf(env, buffer, offset, result.stageNs));
  out.Set("adIndex", viewOf(env, buffer, offset, result.adIndex));
  out.Set("light", viewOf(env, buffer, offset, result.light));
  out.Set("ctrLogit", viewOf(env, buffer, offset, result.ctrLogit));
  out.Set("cvrLogit", viewOf(env, buffer, offset, result.cvrLogit));
  out.Set("batchSize", static_cast<double>(result.batchSize));
  out.Set("queueWaitNs", result.queueWaitNs);
  out.Set("degraded", result.degraded);
  return out;
}

}  // namespace

Napi::Function EngineJs::Define(Napi::Env env) {
  return DefineClass(env, "Engine",
                     {InstanceMethod<&EngineJs::Score>("score"), InstanceMethod<&EngineJs::SetEligibility>("setEligibility"),
                      InstanceMethod<&EngineJs::SetPriors>("setPriors"), InstanceMethod<&EngineJs::AddAds>("addAds"),
                      InstanceMethod<&EngineJs::Stats>("stats"), InstanceMethod<&EngineJs::Close>("close")});
}

EngineJs::EngineJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineJs>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) throwInvalidArgument(info.Env(), "use openEngine() to create an Engine");
  const EngineHandle* handle = info[0].As<Napi::External<EngineHandle>>().Data();
  engine_ = handle->engine;
  batcher_ = handle->batcher;
  pending_ = handle->pending;
  Napi::Env env = info.Env();
  setImmediate_ = Napi::Persistent(env.Global().Get("setImmediate").As<Napi::Function>());
  flush_ = Napi::Persistent(Napi::Function::New(
      env, [batcher = batcher_, pending = pending_](const Napi::CallbackInfo& call) { submitHeld(call.Env(), *batcher, *pending); },
      "flushScores"));
}

EngineJs::~EngineJs() {
  if (batcher_) batcher_->stop();
}

Napi::Value EngineJs::Score(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Uint8Array bytes = typedArrayArgument<uint8_t>(info, 0, "bytes");
    const double budgetMs = numberArgument(info, 1, "budgetMs");
    if (!(budgetMs >= 0 && budgetMs <= 600'000)) throwInvalidArgument(env, "budgetMs must be in 0..600000");
    verifyAdRequest(bytes.Data(), bytes.ByteLength());
    ScoreRequest request;
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      Napi::Uint32Array campaigns = typedArrayArgument<uint32_t>(info, 2, "excludedCampaigns");
      request.excludedCampaigns.assign(campaigns.Data(), campaigns.Data() + campaigns.ElementLength());
    }
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      if (!info[3].IsBoolean()) throwInvalidArgument(env, "personalised must be a boolean");
      request.personalised = info[3].As<Napi::Boolean>().Value();
    }
    // Copied: the caller's buffer may be reused or detached while the request waits.
    request.bytes.assign(bytes.Data(), bytes.Data() + bytes.ByteLength());
    request.enqueued = Clock::now();
    request.deadline = request.enqueued + std::chrono::microseconds(static_cast<int64_t>(budgetMs * 1000));
    auto deferred = Napi::Promise::Deferred::New(env);
    const Batcher::Ticket ticket = pending_->next++;
    pending_->deferred.emplace(ticket, deferred);
    addonState(env).runnerFor(env).hold(env);
    pending_->held.emplace_back(ticket, std::move(request));
    if (pending_->held.size() == 1) setImmediate_.Call({flush_.Value()});
    return deferred.Promise();
  });
}

Napi::Value EngineJs::SetEligibility(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Uint32Array ads = typedArrayArgument<uint32_t>(info, 0, "adIndex");
    Napi::Uint8Array eligible = typedArrayArgument<uint8_t>(info, 1, "eligible");
    engine_->setEligibility(std::vector<uint32_t>(ads.Data(), ads.Data() + ads.ElementLength()),
                            std::vector<uint8_t>(eligible.Data(), eligible.Data() + eligible.ElementLength()));
    return env.Undefined();
  });
}

Napi::Value EngineJs::SetPriors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Uint32Array ads = typedArrayArgument<uint32_t>(info, 0, "adIndex");
    Napi::Float32Array prior = typedArrayArgument<float>(info, 1, "prior");
    engine_->setPriors(std::vector<uint32_t>(ads.Data(), ads.Data() + ads.ElementLength()),
                       std::vector<float>(prior.Data(), prior.Data() + prior.ElementLength()));
    return env.Undefined();
  });
}

Napi::Value EngineJs::AddAds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsObject())
      throwInvalidArgument(env, "ads must be an object { categorical, title, numeric, prior, keys, targeting? }");
    Napi::Object fields = info[0].As<Napi::Object>();
    const auto ints = [&](const char* key) {
      Napi::Value value = fields.Get(key);
      if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
        throwInvalidArgument(env, std::string(key) + " must be an Int32Array");
      Napi::Int32Array array = value.As<Napi::Int32Array>();
      return std::vector<int64_t>(array.Data(), array.Data() + array.ElementLength());
    };
    const auto reals = [&](const char* key) {
      Napi::Value value = fields.Get(key);
      if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throwInvalidArgument(env, std::string(key) + " must be a Float32Array");
      Napi::Float32Array array = value.As<Napi::Float32Array>();
      return std::vector<float>(array.Data(), array.Data() + array.ElementLength());
    };
    auto ads = std::make_shared<NewAds>();
    ads->categorical = ints("categorical");
    ads->title = ints("title");
    ads->numeric = reals("numeric");
    ads->prior = reals("prior");
    ads->keys = adKeysField(fields, "keys");
    if (!fields.Get("targeting").IsUndefined()) ads->targeting = targetingList(env, fields.Get("targeting"));
    // The ad tower runs on an engine thread; the promise settles with the first new ad index.
    return addonState(env).runnerFor(env).run(env, [engine = engine_, ads]() -> AsyncRunner::Resolver {
      const uint32_t first = engine->addAds(*ads);
      return [first](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, first); };
    });
  });
}

Napi::Value EngineJs::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const Batcher::Stats stats = batcher_->stats();
    const Engine& engine = *engine_;
    Napi::Object out = Napi::Object::New(env);
    out.Set("batches", static_cast<double>(stats.batches));
    out.Set("requests", static_cast<double>(stats.requests));
    out.Set("rejected", static_cast<double>(stats.rejected));
    out.Set("queued", static_cast<double>(stats.queued));
    out.Set("ads", static_cast<double>(engine.totalAds()));
    out.Set("addedInIndex", static_cast<double>(engine.addedInIndex()));
    out.Set("dim", static_cast<double>(engine.dim()));
    out.Set("index", engine.indexDescription());
    out.Set("fusionKernel", engine.fusionKernel());
    out.Set("fusionPrecision", engine.fusionPrecision());
    const Engine::CacheStats caches = engine.cacheStats();
    out.Set("userCacheHits", static_cast<double>(caches.userHits));
    out.Set("userCacheMisses", static_cast<double>(caches.userMisses));
    out.Set("contextCacheHits", static_cast<double>(caches.contextHits));
    out.Set("contextCacheMisses", static_cast<double>(caches.contextMisses));
    return out;
  });
}

Napi::Value EngineJs::Close(const Napi::CallbackInfo& info) {
  batcher_->stop();
  return info.Env().Undefined();
}

Napi::Value OpenEngineJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsObject()) throwInvalidArgument(env, "options must be an object");
    Napi::Object options = info[0].As<Napi::Object>();
    EngineOptions engine = engineOptions(options);
    BatcherOptions batching = batcherOptions(options);
    AsyncRunner& runner = addonState(env).runnerFor(env);
    auto pending = std::make_shared<PendingScores>();
    // The batch callback runs on the batcher thread and settles the whole batch in one post.
    Batcher::BatchDone onBatch = [&runner, pending](std::vector<Batcher::Outcome>&& outcomes) {
      runner.post([&runner, pending, outcomes = std::make_shared<std::vector<Batcher::Outcome>>(std::move(outcomes))](Napi::Env env) {
        for (Batcher::Outcome& outcome : *outcomes) {
          const auto found = pending->deferred.find(outcome.ticket);
          if (found == pending->deferred.end()) continue;
          Napi::Promise::Deferred deferred = found->second;
          pending->deferred.erase(found);
          if (outcome.error) {
            deferred.Reject(toJsError(env, outcome.error).Value());
          } else {
            deferred.Resolve(resultObject(env, outcome.result));
          }
        }
        runner.release(env, outcomes->size());
      });
    };
    return runner.run(env, [engine = std::move(engine), batching, onBatch, pending]() -> AsyncRunner::Resolver {
      auto opened = std::make_shared<Engine>(engine);
      auto batcher = std::make_shared<Batcher>(opened, batching, onBatch);
      return [opened, batcher, pending](Napi::Env env) -> Napi::Value {
        AddonState& state = addonState(env);
        state.batchers.push_back(batcher);
        EngineHandle handle{opened, batcher, pending};  // copied by the constructor before this returns
        return state.engineConstructor.New({Napi::External<EngineHandle>::New(env, &handle)});
      };
    });
  });
}

}  // namespace adserve::binding
