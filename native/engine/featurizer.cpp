#include "engine/featurizer.h"

#include <cmath>

#include "ad_request_generated.h"
#include "engine/text.h"

namespace adserve {
namespace {

std::string_view view(const flatbuffers::String* value) {
  return value == nullptr ? std::string_view() : std::string_view(value->c_str(), value->size());
}

int64_t lookup(const std::unordered_map<std::string, int64_t>& vocabulary, std::string key) {
  const auto found = vocabulary.find(key);
  return found == vocabulary.end() ? 0 : found->second;
}

int64_t ageBucket(int yob, const FeatureSpec& spec) {
  if (yob <= 0) return 0;
  const int age = spec.referenceYear - yob;
  for (size_t i = 0; i < spec.ageBuckets.size(); ++i) {
    if (age >= spec.ageBuckets[i].first && age <= spec.ageBuckets[i].second) return static_cast<int64_t>(i) + 1;
  }
  return 0;
}

// Floor division, so local times before 1970 still land on the right hour and weekday.
int64_t floorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

RequestFeatures featurize(const fb::AdRequest& request, const FeatureSpec& spec, int64_t nowMs) {
  RequestFeatures out;
  if (const auto* user = request.user()) {
    out.userId = std::string(view(user->id()));
    const auto gender = static_cast<int64_t>(user->gender());
    out.userCategorical[0] = ageBucket(user->yob(), spec);
    out.userCategorical[1] = gender <= 3 ? gender : 0;
  }
  if (const auto* geo = request.geo()) out.userCategorical[2] = lookup(spec.countries, asciiUpper(view(geo->country())));
  int64_t device = 0;
  if (const auto* dev = request.device()) {
    const std::string_view tag = view(dev->language());
    out.userCategorical[3] = lookup(spec.languages, asciiLower(tag.substr(0, tag.find_first_of("-_"))));
    device = static_cast<int64_t>(dev->type());
    if (device > 4) device = 0;
  }

  const int64_t timestampMs = request.timestamp_ms() != 0 ? static_cast<int64_t>(request.timestamp_ms()) : nowMs;
  const int64_t localMinutes = floorDiv(timestampMs, 60'000) + request.utc_offset_minutes();
  const int64_t hour = floorDiv(localMinutes, 60) - floorDiv(localMinutes, 24 * 60) * 24;
  const int64_t days = floorDiv(localMinutes, 24 * 60);
  const int64_t weekday = ((days + 3) % 7 + 7) % 7;  // 1970-01-01 was a Thursday; Monday = 0
  out.contextCategorical = {static_cast<int64_t>(request.placement()), hour + 1, weekday + 1, device};
  out.logPage = std::log1p(static_cast<float>(request.page()));

  out.search = request.placement() == fb::Placement::Search;
  if (out.search) {
    out.queryTokens.resize(spec.maxQueryTokens);
    tokenBuckets(view(request.query()), spec.queryBuckets, spec.maxQueryTokens, out.queryTokens.data());
  } else {
    out.pageCategory = lookup(spec.categories, std::string(view(request.category_id())));
    const std::string_view product = view(request.product_id());
    out.pageProduct = product.empty() ? 0 : hashBucket(product, spec.productBuckets);
  }
  return out;
}

void forgetUser(RequestFeatures& features) {
  features.userId.clear();
  features.userCategorical[0] = 0;
  features.userCategorical[1] = 0;
}

}  // namespace adserve
