#pragma once

#include <napi.h>

#include <functional>
#include <memory>

#include "engine/worker_pool.h"

namespace adserve::binding {

// Per-environment bridge between engine threads and the JS thread. Work runs on the engine's pool;
// completions come back through one thread-safe function, which keeps the event loop alive only
// while promises are pending (hold/release). Owned by the environment's instance data; everything
// except post() runs on the JS thread.
class AsyncRunner {
 public:
  // Produces the promise's value on the JS thread; may throw to reject it.
  using Resolver = std::function<Napi::Value(Napi::Env)>;
  // Runs on a pool thread; returns the resolver. Exceptions reject the promise via toJsError.
  using Work = std::function<Resolver()>;
  using OnJsThread = std::function<void(Napi::Env)>;

  AsyncRunner(Napi::Env env, const WorkerPool::Options& options);
  ~AsyncRunner();

  // Returns a promise settled with the work's result; rejects at once with E_QUEUE_FULL when the
  // pool is at capacity.
  Napi::Promise run(Napi::Env env, Work work);

  // From any thread: runs `callback` on the JS thread (dropped if the environment is going away).
  void post(OnJsThread callback);
  // Count pending promises that something other than run() will settle through post().
  void hold(Napi::Env env, size_t count = 1);
  void release(Napi::Env env, size_t count = 1);

  size_t threadCount() const { return threads_; }

  // Stops the pool (queued work still completes) and releases the TSFN. Idempotent; nothing may
  // post() afterwards.
  void shutdown();

 private:
  struct Completion {
    OnJsThread callback;
  };
  static void onJsThread(Napi::Env env, Napi::Function, AsyncRunner* runner, Completion* completion);
  using Tsfn = Napi::TypedThreadSafeFunction<AsyncRunner, Completion, &AsyncRunner::onJsThread>;

  std::unique_ptr<WorkerPool> pool_;
  size_t threads_;
  Tsfn tsfn_;
  size_t pending_ = 0;
  bool released_ = false;
};

}  // namespace adserve::binding
