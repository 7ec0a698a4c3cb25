#include "binding/async_runner.h"

#include "binding/js_errors.h"
#include "engine/errors.h"

namespace adserve::binding {

AsyncRunner::AsyncRunner(Napi::Env env, const WorkerPool::Options& options)
    : pool_(std::make_unique<WorkerPool>(options)), threads_(options.threads), tsfn_(Tsfn::New(env, "adserve-engine", 0, 1, this)) {
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

void AsyncRunner::hold(Napi::Env env, size_t count) {
  if (pending_ == 0 && count > 0) tsfn_.Ref(env);
  pending_ += count;
}

void AsyncRunner::release(Napi::Env env, size_t count) {
  pending_ -= count;
  if (pending_ == 0 && count > 0) tsfn_.Unref(env);
}

void AsyncRunner::post(OnJsThread callback) {
  auto completion = std::make_unique<Completion>(Completion{std::move(callback)});
  // On success the TSFN owns the completion; napi_closing means the environment is going away and
  // nobody is left to run it.
  if (tsfn_.BlockingCall(completion.get()) == napi_ok) completion.release();
}

Napi::Promise AsyncRunner::run(Napi::Env env, Work work) {
  auto deferred = Napi::Promise::Deferred::New(env);
  try {
    if (!pool_) throw EngineError(ErrorCode::ShuttingDown, "engine is shut down");
    pool_->submit([this, deferred, work = std::move(work)]() {
      Resolver resolver;
      std::exception_ptr error;
      try {
        resolver = work();
      } catch (...) {
        error = std::current_exception();
      }
      post([this, deferred, resolver = std::move(resolver), error](Napi::Env env) {
        release(env);
        if (error) {
          deferred.Reject(toJsError(env, error).Value());
          return;
        }
        try {
          deferred.Resolve(resolver(env));
        } catch (const Napi::Error& e) {
          deferred.Reject(e.Value());
        } catch (...) {
          deferred.Reject(toJsError(env, std::current_exception()).Value());
        }
      });
    });
  } catch (...) {
    deferred.Reject(toJsError(env, std::current_exception()).Value());
    return deferred.Promise();
  }
  hold(env);
  return deferred.Promise();
}

void AsyncRunner::onJsThread(Napi::Env env, Napi::Function, AsyncRunner*, Completion* raw) {
  std::unique_ptr<Completion> completion(raw);
  if (env == nullptr) return;  // the TSFN is being torn down
  Napi::HandleScope scope(env);
  completion->callback(env);
}

}  // namespace adserve::binding
