// The Node-API surface of adserve: converts JS values to engine calls and back, decides nothing.
#include <napi.h>

#include <time.h>

#include <memory>

#include "ad_request_generated.h"
#include "binding/addon_state.h"
#include "binding/arguments.h"
#include "binding/engine_js.h"
#include "binding/gcm_sealer_js.h"
#include "binding/js_errors.h"
#include "binding/targeting_js.h"
#include "binding/typed_arrays.h"
#include "engine/build_info.h"
#include "engine/dense_kernel.h"
#include "engine/featurizer.h"
#include "engine/huge_pages.h"
#include "engine/request_verifier.h"
#include "engine/scalar_quantizer.h"
#include "engine/vector_index.h"

namespace adserve::binding {

AsyncRunner& AddonState::runnerFor(Napi::Env env) {
  if (!runner) {
    runner = std::make_unique<AsyncRunner>(env, poolOptions);
    // Registered after the runner's TSFN registered its own hook, so it runs first (hooks run in
    // reverse order): batchers and workers are stopped before Node closes the TSFN they post to.
    env.AddCleanupHook([this]() {
      for (auto& weak : batchers) {
        if (auto batcher = weak.lock()) batcher->stop();
      }
      runner->shutdown();
    });
  }
  return *runner;
}

AddonState& addonState(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

namespace {

Napi::Value BuildInfoJs(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const BuildInfo built = buildInfo();
    Napi::Object result = Napi::Object::New(info.Env());
    result.Set("torch", built.torchVersion);
    result.Set("faiss", built.faissVersion);
    result.Set("flatbuffers", built.flatbuffersVersion);
    result.Set("compiler", built.compiler);
    result.Set("cuda", built.cudaAvailable);
    result.Set("computeThreads", built.torchThreads);
    result.Set("ompMaxThreads", built.ompMaxThreads);
    AddonState& addon = addonState(info.Env());
    result.Set("workerThreads", static_cast<double>(addon.runner ? addon.runner->threadCount() : addon.poolOptions.threads));
    const auto arrayOf = [&](const std::vector<std::string>& names) {
      Napi::Array array = Napi::Array::New(info.Env(), names.size());
      for (uint32_t i = 0; i < names.size(); ++i) array.Set(i, names[i]);
      return array;
    };
    Napi::Object kernels = Napi::Object::New(info.Env());
    using Precision = DenseKernel::Precision;
    for (const auto& [name, precision] : {std::pair{"fp32", Precision::kFp32}, {"bf16", Precision::kBf16}, {"int16", Precision::kInt16}}) {
      kernels.Set(name, arrayOf(DenseKernel::variants(precision)));
    }
    result.Set("fusionKernels", kernels);
    result.Set("scanKernels", arrayOf(ScalarQuantizer::kernels()));
    return result;
  });
}

// threadCpuNanos(): CPU time of the calling thread. Node reports CPU time only per process, which
// here includes the engine's threads; the ledger needs the JS thread's own, to tell the work of
// a turn of the event loop from the time the scheduler gave other threads during it.
Napi::Value ThreadCpuNanosJs(const Napi::CallbackInfo& info) {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return Napi::Number::New(info.Env(), static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec));
}

// configure({ workerThreads, computeThreads, queueCapacity }): the thread budget, set once before
// the first asynchronous call.
Napi::Value ConfigureJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsObject()) throwInvalidArgument(env, "options must be an object");
    AddonState& addon = addonState(env);
    if (addon.runner) throwInvalidArgument(env, "configure() must be called before the first asynchronous call");
    Napi::Object options = info[0].As<Napi::Object>();
    if (auto workers = optionalCount(options, "workerThreads", 64)) addon.poolOptions.threads = *workers;
    if (auto capacity = optionalCount(options, "queueCapacity", 1u << 20)) addon.poolOptions.queueCapacity = *capacity;
    if (auto compute = optionalCount(options, "computeThreads", 256)) setComputeThreads(static_cast<int>(*compute));
    const Napi::Value hugePages = options.Get("hugePages");
    if (!hugePages.IsUndefined()) {
      if (!hugePages.IsBoolean()) throwInvalidArgument(env, "hugePages must be a boolean");
      setHugePageTables(hugePages.As<Napi::Boolean>().Value());
    }
    return env.Undefined();
  });
}

template <void (*Verify)(const uint8_t*, size_t, const VerifyLimits&)>
Napi::Value VerifyJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Uint8Array bytes = typedArrayArgument<uint8_t>(info, 0, "bytes");
    Verify(bytes.Data(), bytes.ByteLength(), VerifyLimits{});
    return env.Undefined();
  });
}

// featurize(bytes, features): the engine's model inputs for one AdRequest, as plain numbers, so
// tests can compare them with train/'s reference featurisation.
Napi::Value FeaturizeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Uint8Array bytes = typedArrayArgument<uint8_t>(info, 0, "bytes");
    if (info.Length() < 2 || !info[1].IsObject()) throwInvalidArgument(env, "features must be an object");
    const FeatureSpec spec = featureSpec(info[1].As<Napi::Object>());
    verifyAdRequest(bytes.Data(), bytes.ByteLength());
    const RequestFeatures f = featurize(*flatbuffers::GetRoot<fb::AdRequest>(bytes.Data()), spec, 0);
    auto numbers = [&](auto begin, auto end) {
      Napi::Array array = Napi::Array::New(env);
      uint32_t i = 0;
      for (auto it = begin; it != end; ++it) array.Set(i++, Napi::Number::New(env, static_cast<double>(*it)));
      return array;
    };
    Napi::Object out = Napi::Object::New(env);
    out.Set("userId", f.userId);
    out.Set("userCategorical", numbers(f.userCategorical.begin(), f.userCategorical.end()));
    out.Set("contextCategorical", numbers(f.contextCategorical.begin(), f.contextCategorical.end()));
    out.Set("logPage", f.logPage);
    out.Set("search", f.search);
    if (f.search) {
      out.Set("queryTokens", numbers(f.queryTokens.begin(), f.queryTokens.end()));
    } else {
      out.Set("pageCategory", static_cast<double>(f.pageCategory));
      out.Set("pageProduct", static_cast<double>(f.pageProduct));
    }
    return out;
  });
}

// JS class VectorIndex(dim, vectors): exact inner-product search; search() runs on engine threads.
class VectorIndexJs : public Napi::ObjectWrap<VectorIndexJs> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VectorIndex",
                       {InstanceMethod<&VectorIndexJs::Search>("search"), InstanceAccessor<&VectorIndexJs::Dim>("dim"),
                        InstanceAccessor<&VectorIndexJs::Size>("size")});
  }

  explicit VectorIndexJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VectorIndexJs>(info) {
    Napi::Env env = info.Env();
    guarded(env, [&]() -> Napi::Value {
      const size_t dim = countArgument(info, 0, "dim", 4096);
      Napi::Float32Array vectors = typedArrayArgument<float>(info, 1, "vectors");
      if (vectors.ElementLength() % dim != 0) {
        throwInvalidArgument(
            env, "vectors length " + std::to_string(vectors.ElementLength()) + " is not a multiple of dim " + std::to_string(dim));
      }
      index_ = std::make_shared<const VectorIndex>(dim, vectors.Data(), vectors.ElementLength() / dim);
      return env.Undefined();
    });
  }

 private:
  Napi::Value Search(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      Napi::Float32Array queries = typedArrayArgument<float>(info, 0, "queries");
      const size_t k = countArgument(info, 1, "k", VectorIndex::kMaxK);
      if (queries.ElementLength() == 0 || queries.ElementLength() % index_->dim() != 0) {
        throwInvalidArgument(env, "queries length must be a positive multiple of dim " + std::to_string(index_->dim()));
      }
      // Copied because the caller may reuse or detach its buffer while the search runs.
      std::vector<float> queryCopy(queries.Data(), queries.Data() + queries.ElementLength());
      std::shared_ptr<const VectorIndex> index = index_;
      return addonState(env).runnerFor(env).run(env, [index, k, queryCopy = std::move(queryCopy)]() -> AsyncRunner::Resolver {
        auto hits = std::make_shared<SearchHits>(index->search(queryCopy.data(), queryCopy.size() / index->dim(), k));
        return [hits](Napi::Env env) -> Napi::Value {
          Napi::Object result = Napi::Object::New(env);
          result.Set("scores", adoptVector(env, std::move(hits->scores)));
          result.Set("labels", adoptVector(env, std::move(hits->labels)));
          return result;
        };
      });
    });
  }

  Napi::Value Dim(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(index_->dim())); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(index_->size())); }

  std::shared_ptr<const VectorIndex> index_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonState>(std::make_unique<AddonState>().release());  // the env deletes it
  exports.Set("buildInfo", Napi::Function::New<BuildInfoJs>(env, "buildInfo"));
  exports.Set("configure", Napi::Function::New<ConfigureJs>(env, "configure"));
  exports.Set("threadCpuNanos", Napi::Function::New<ThreadCpuNanosJs>(env, "threadCpuNanos"));
  exports.Set("verifyAdRequest", Napi::Function::New<VerifyJs<verifyAdRequest>>(env, "verifyAdRequest"));
  exports.Set("verifyEvent", Napi::Function::New<VerifyJs<verifyEvent>>(env, "verifyEvent"));
  exports.Set("VectorIndex", VectorIndexJs::Define(env));
  exports.Set("TargetingIndex", TargetingIndexJs::Define(env));
  exports.Set("GcmSealer", GcmSealerJs::Define(env));
  exports.Set("featurize", Napi::Function::New<FeaturizeJs>(env, "featurize"));
  exports.Set("openEngine", Napi::Function::New<OpenEngineJs>(env, "openEngine"));
  addonState(env).engineConstructor = Napi::Persistent(EngineJs::Define(env));
  return exports;
}

}  // namespace
}  // namespace adserve::binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return adserve::binding::Init(env, exports); }

NODE_API_MODULE(adserve, InitAddon)
