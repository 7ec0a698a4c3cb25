// libFuzzer target over everything that reads untrusted request bytes before the model runs: the
// FlatBuffers verification, the featuriser and the Boolean targeting matcher. Any crash, sanitizer
// report or exception other than EngineError is a bug.
#include <cstddef>
#include <cstdint>

#include "ad_request_generated.h"
#include "engine/errors.h"
#include "engine/featurizer.h"
#include "engine/request_verifier.h"
#include "engine/targeting.h"

namespace {

adserve::FeatureSpec makeSpec() {
  adserve::FeatureSpec spec;
  spec.ageBuckets = {{18, 24}, {25, 34}, {35, 44}, {45, 54}, {55, 64}, {65, 120}};
  spec.countries = {{"US", 1}, {"GB", 2}, {"DE", 3}};
  spec.languages = {{"en", 1}, {"de", 2}};
  spec.categories = {{"shoes", 1}, {"pets", 2}};
  spec.userNumeric = 25;
  return spec;
}

adserve::TargetingIndex makeTargeting() {
  using adserve::CriterionType;
  std::vector<adserve::AdTargeting> ads(3);
  ads[0] = {0,
            {{{{CriterionType::ExactKeyword, "nike shoes"}, {CriterionType::Geo, "US"}, {CriterionType::NegativeKeyword, "used", true}}},
             {{{CriterionType::PhraseKeyword, "running shoes"}, {CriterionType::Device, "mobile"}}}}};
  ads[1] = {1, {{{{CriterionType::BroadKeyword, "athletic footwear"}, {CriterionType::Audience, "fitness"}}}}};
  ads[2] = {2, {{{{CriterionType::Category, "shoes"}, {CriterionType::Placement, "category"}}}, {{{CriterionType::Product, "p1"}}}}};
  return adserve::TargetingIndex(ads, 4);
}

const adserve::FeatureSpec spec = makeSpec();
const adserve::TargetingIndex targeting = makeTargeting();

std::string text(const flatbuffers::String* value) { return value == nullptr ? std::string() : value->str(); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    adserve::verifyAdRequest(data, size);
  } catch (const adserve::EngineError&) {
    return 0;  // refused: the expected outcome for nearly every input
  }
  const auto& request = *flatbuffers::GetRoot<adserve::fb::AdRequest>(data);
  const adserve::RequestFeatures features = adserve::featurize(request, spec, 1'700'000'000'000);
  if (features.search && features.queryTokens.size() != spec.maxQueryTokens) __builtin_trap();
  adserve::TargetingRequest query;
  query.query = text(request.query());
  query.category = text(request.category_id());
  query.product = text(request.product_id());
  if (const auto* geo = request.geo()) query.geo = text(geo->country());
  if (const auto* user = request.user(); user != nullptr && user->segments() != nullptr) {
    for (const auto* segment : *user->segments()) query.audiences.push_back(text(segment));
  }
  for (uint32_t ad : targeting.match(query)) {
    if (ad >= 4) __builtin_trap();
  }
  return 0;
}
