#pragma once

#include <napi.h>

#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/batcher.h"

namespace adserve::binding {

// Promises waiting for the batcher, by ticket, and the requests of this turn of the event loop not
// yet handed to it. Shared by the JS object, its flush and the batch callback; touched on the JS
// thread only.
struct PendingScores {
  std::unordered_map<Batcher::Ticket, Napi::Promise::Deferred> deferred;
  std::vector<std::pair<Batcher::Ticket, ScoreRequest>> held;
  Batcher::Ticket next = 1;
};

// JS class Engine, made by openEngine(): score() returns a promise and holds its request until the
// event loop's check phase (one setImmediate per turn), which hands every request that came in
// that turn to the batcher as one group: requests that arrived together are batched together
// without a timer, and the batcher learns from the groups how dense traffic is. A whole batch
// settles through one thread-safe-function call.
class EngineJs : public Napi::ObjectWrap<EngineJs> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit EngineJs(const Napi::CallbackInfo& info);
  ~EngineJs() override;

 private:
  Napi::Value Score(const Napi::CallbackInfo& info);
  Napi::Value SetEligibility(const Napi::CallbackInfo& info);
  Napi::Value SetPriors(const Napi::CallbackInfo& info);
  Napi::Value AddAds(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // The batcher scores through a const view of the engine; the writers (eligibility, priors, added
  // ads) go to the engine itself, which publishes them as a new catalog snapshot.
  std::shared_ptr<Engine> engine_;
  std::shared_ptr<Batcher> batcher_;
  std::shared_ptr<PendingScores> pending_;
  Napi::FunctionReference setImmediate_;
  Napi::FunctionReference flush_;
};

// The `features` part of openEngine's options (also used by featurize()).
FeatureSpec featureSpec(Napi::Object features);

// openEngine(options) -> Promise<Engine>: loads the model directory and builds the ANN index on an
// engine thread.
Napi::Value OpenEngineJs(const Napi::CallbackInfo& info);

}  // namespace adserve::binding
