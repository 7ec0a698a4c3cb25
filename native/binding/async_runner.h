#pragma once

#include <napi.h>

#include <functional>
#include <memory>

#include "engine/worker_pool.h"

namespace adserve::binding {

// Per-environment bridge between the engine's worker threads and the JS thread: work runs on the
// pool, and its completion comes back through one thread-safe function. The TSFN keeps the event
// loop alive only while promises are pending. Owned by the environment's instance data; every
// method except the internals of post() runs on the JS thread.
class AsyncRunner {
 public:
  // Produces the promise's value on the JS thread; may throw to reject it.
  using Resolver = std::function<Napi::Value(Napi::Env)>;
  // Runs on a pool thread; returns the resolver. Exceptions reject the promise via toJsError.
  using Work = std::function<Resolver()>;

  AsyncRunner(Napi::Env env, const WorkerPool::Options& options);
  ~AsyncRunner();

  // Returns a promise settled with the work's result; rejects at once with E_QUEUE_FULL when the
  // pool is at capacity.
  Napi::Promise run(Napi::Env env, Work work);

  size_t threadCount() const { return pool_->threadCount(); }
  size_t queued() const { return pool_->queued(); }

  // Stops the pool (queued work still completes) and releases the TSFN. Idempotent.
  void shutdown();

 private:
  struct Completion;
  static void settleOnJsThread(Napi::Env env, Napi::Function, AsyncRunner* runner, Completion* completion);
  using Tsfn = Napi::TypedThreadSafeFunction<AsyncRunner, Completion, &AsyncRunner::settleOnJsThread>;

  void hold(Napi::Env env);
  void release(Napi::Env env);

  std::unique_ptr<WorkerPool> pool_;
  Tsfn tsfn_;
  size_t pending_ = 0;
  bool released_ = false;
};

}  // namespace adserve::binding
