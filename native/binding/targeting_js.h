#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "engine/targeting.h"

namespace adserve::binding {

// [{ ad, rules: [[{ type, value, not? }]] }] -> the engine's DNF targeting. Types: exact, phrase,
// broad, negative, geo, device, audience, category, product, placement.
std::vector<AdTargeting> targetingList(Napi::Env env, Napi::Value value);

// JS class TargetingIndex(adCount, targeting): match(request fields) -> Uint32Array of ad indices.
class TargetingIndexJs : public Napi::ObjectWrap<TargetingIndexJs> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TargetingIndexJs(const Napi::CallbackInfo& info);

 private:
  Napi::Value Match(const Napi::CallbackInfo& info);
  std::unique_ptr<TargetingIndex> index_;
};

}  // namespace adserve::binding
