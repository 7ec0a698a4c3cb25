#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace adserve {

namespace fb {
struct AdRequest;
}

// The feature contract of a model directory (manifest.json "features"), reduced to what serving
// needs. Category and vocabulary ids are index + 1; 0 means unknown or absent.
struct FeatureSpec {
  int referenceYear = 2026;
  std::vector<std::pair<int, int>> ageBuckets;  // inclusive [low, high] ages
  std::unordered_map<std::string, int64_t> countries;
  std::unordered_map<std::string, int64_t> languages;
  std::unordered_map<std::string, int64_t> categories;
  int64_t queryBuckets = 4096;
  size_t maxQueryTokens = 8;
  int64_t productBuckets = 8192;
  size_t userNumeric = 0;     // width of the user tower's numeric input
  size_t contextNumeric = 1;  // log1p(page)
};

// Everything the towers and the pair lookups need from one verified request.
struct RequestFeatures {
  std::string userId;
  std::array<int64_t, 4> userCategorical{};     // age bucket, gender, country, language
  std::array<int64_t, 4> contextCategorical{};  // placement, hour, weekday, device
  float logPage = 0;
  bool search = false;
  std::vector<int64_t> queryTokens;  // maxQueryTokens buckets (search only)
  int64_t pageCategory = 0;          // browse only
  int64_t pageProduct = 0;           // browse only
};

// Reads a verified AdRequest into model inputs, exactly as train/features.py does. `nowMs` stands in
// for a missing timestamp_ms.
RequestFeatures featurize(const fb::AdRequest& request, const FeatureSpec& spec, int64_t nowMs);

// Turns one request's features into an anonymous user's: no id (so no known-user row or pair
// features) and no age or gender. Country and language stay: they describe the context (geo,
// device), which a non-personalised decision may use.
void forgetUser(RequestFeatures& features);

}  // namespace adserve
