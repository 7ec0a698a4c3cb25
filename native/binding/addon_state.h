#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "binding/async_runner.h"
#include "engine/batcher.h"

namespace adserve::binding {

// Per-environment state, so the addon also loads in worker threads. JS thread only.
struct AddonState {
  WorkerPool::Options poolOptions;
  std::unique_ptr<AsyncRunner> runner;
  Napi::FunctionReference engineConstructor;
  // Batchers post to the runner's TSFN, so they are stopped before it is released.
  std::vector<std::weak_ptr<Batcher>> batchers;

  AsyncRunner& runnerFor(Napi::Env env);
};

AddonState& addonState(Napi::Env env);

}  // namespace adserve::binding
