#include "binding/async_runner.h"

#include "binding/js_errors.h"
#include "engine/errors.h"

namespace adserve::binding {

struct AsyncRunner::Completion {
  Napi::Promise::Deferred deferred;
  Resolver resolver;
  std::exception_ptr error;
};

AsyncRunner::AsyncRunner(Napi::Env env, const WorkerPool::Options& options)
    : pool_(std::make_unique<WorkerPool>(options)),
      tsfn_(Tsfn::New(env, "adserve-engine", 0, 1, this)) {
  tsfn_.Unref(env);
}

AsyncRunner::~AsyncRunner() { shutdown(); }

void AsyncRunner::shutdown() {
  pool_.reset();  // joins after the queued work has posted its completions
  if (!released_) {
    released_ = true;
    tsfn_.Release();
  }
}

void AsyncRunner::hold(Napi::Env env) {
  if (pending_++ == 0) tsfn_.Ref(env);
}

void AsyncRunner::release(Napi::Env env) {
  if (--pending_ == 0) tsfn_.Unref(env);
}

Napi::Promise AsyncRunner::run(Napi::Env env, Work work) {
  auto deferred = Napi::Promise::Deferred::New(env);
  if (!pool_) {
    deferred.Reject(toJsError(env, std::make_exception_ptr(EngineError(ErrorCode::ShuttingDown, "engine is shut down"))).Value());
    return deferred.Promise();
  }
  try {
    pool_->submit([this, deferred, work = std::move(work)]() {
      auto completion = std::make_unique<Completion>(Completion{deferred, nullptr, nullptr});
      try {
        completion->resolver = work();
      } catch (...) {
        completion->error = std::current_exception();
      }
      // On success the TSFN owns the completion; napi_closing means the environment is going away
      // and nobody is left to settle the promise.
      if (tsfn_.BlockingCall(completion.get()) == napi_ok) completion.release();
    });
  } catch (...) {
    deferred.Reject(toJsError(env, std::current_exception()).Value());
    return deferred.Promise();
  }
  hold(env);
  return deferred.Promise();
}

void AsyncRunner::settleOnJsThread(Napi::Env env, Napi::Function, AsyncRunner* runner, Completion* raw) {
  std::unique_ptr<Completion> completion(raw);
  if (env == nullptr) return;  // the TSFN is being torn down
  Napi::HandleScope scope(env);
  runner->release(env);
  if (completion->error) {
    completion->deferred.Reject(toJsError(env, completion->error).Value());
    return;
  }
  try {
    completion->deferred.Resolve(completion->resolver(env));
  } catch (const Napi::Error& e) {
    completion->deferred.Reject(e.Value());
  } catch (...) {
    completion->deferred.Reject(toJsError(env, std::current_exception()).Value());
  }
}

}  // namespace adserve::binding
