#include "binding/targeting_js.h"

#include <unordered_map>

#include "binding/arguments.h"
#include "binding/js_errors.h"
#include "binding/typed_arrays.h"

namespace adserve::binding {
namespace {

CriterionType criterionType(Napi::Env env, const std::string& name) {
  static const std::unordered_map<std::string, CriterionType> types = {{"exact", CriterionType::ExactKeyword},
                                                                       {"phrase", CriterionType::PhraseKeyword},
                                                                       {"broad", CriterionType::BroadKeyword},
                                                                       {"negative", CriterionType::NegativeKeyword},
                                                                       {"geo", CriterionType::Geo},
                                                                       {"device", CriterionType::Device},
                                                                       {"audience", CriterionType::Audience},
                                                                       {"category", CriterionType::Category},
                                                                       {"product", CriterionType::Product},
                                                                       {"placement", CriterionType::Placement}};
  const auto found = types.find(name);
  if (found == types.end()) throwInvalidArgument(env, "unknown criterion type '" + name + "'");
  return found->second;
}

std::string optionalString(Napi::Object object, const char* key) {
  Napi::Value value = object.Get(key);
  return value.IsUndefined() ? std::string() : stringField(object, key);
}

}  // namespace

std::vector<AdTargeting> targetingList(Napi::Env env, Napi::Value value) {
  if (!value.IsArray()) throwInvalidArgument(env, "targeting must be an array");
  Napi::Array ads = value.As<Napi::Array>();
  std::vector<AdTargeting> out;
  out.reserve(ads.Length());
  for (uint32_t i = 0; i < ads.Length(); ++i) {
    if (!ads.Get(i).IsObject()) throwInvalidArgument(env, "targeting[" + std::to_string(i) + "] must be an object");
    Napi::Object entry = ads.Get(i).As<Napi::Object>();
    AdTargeting target;
    target.ad = static_cast<uint32_t>(indexField(entry, "ad", UINT32_MAX - 1));
    Napi::Value rules = entry.Get("rules");
    if (!rules.IsArray()) throwInvalidArgument(env, "targeting[" + std::to_string(i) + "].rules must be an array of rules");
    for (uint32_t r = 0; r < rules.As<Napi::Array>().Length(); ++r) {
      Napi::Value rule = rules.As<Napi::Array>().Get(r);
      if (!rule.IsArray()) throwInvalidArgument(env, "a targeting rule must be an array of criteria");
      TargetingRule parsed;
      for (uint32_t c = 0; c < rule.As<Napi::Array>().Length(); ++c) {
        Napi::Value item = rule.As<Napi::Array>().Get(c);
        if (!item.IsObject()) throwInvalidArgument(env, "a criterion must be an object { type, value, not? }");
        Napi::Object criterion = item.As<Napi::Object>();
        Napi::Value negated = criterion.Get("not");
        parsed.criteria.push_back({criterionType(env, stringField(criterion, "type")), stringField(criterion, "value"),
                                   negated.IsBoolean() && negated.As<Napi::Boolean>().Value()});
      }
      target.rules.push_back(std::move(parsed));
    }
    out.push_back(std::move(target));
  }
  return out;
}

Napi::Function TargetingIndexJs::Define(Napi::Env env) {
  return DefineClass(env, "TargetingIndex", {InstanceMethod<&TargetingIndexJs::Match>("match")});
}

TargetingIndexJs::TargetingIndexJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TargetingIndexJs>(info) {
  Napi::Env env = info.Env();
  guarded(env, [&]() -> Napi::Value {
    // Ad indices start at 0, so the count argument alone may not be 0.
    const size_t adCount = countArgument(info, 0, "adCount", UINT32_MAX);
    index_ = std::make_unique<TargetingIndex>(targetingList(env, info.Length() > 1 ? info[1] : env.Undefined()), adCount);
    return env.Undefined();
  });
}

Napi::Value TargetingIndexJs::Match(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsObject()) throwInvalidArgument(env, "request must be an object");
    Napi::Object fields = info[0].As<Napi::Object>();
    TargetingRequest request;
    request.query = optionalString(fields, "query");
    request.geo = optionalString(fields, "geo");
    request.device = optionalString(fields, "device");
    if (!fields.Get("audiences").IsUndefined()) request.audiences = stringsField(fields, "audiences");
    request.category = optionalString(fields, "category");
    request.product = optionalString(fields, "product");
    request.placement = optionalString(fields, "placement");
    return adoptVector(env, index_->match(request));
  });
}

}  // namespace adserve::binding
