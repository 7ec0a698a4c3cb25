#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/prefetch.h"

namespace adserve {

namespace fb {
struct AdRequest;
}

// What a request's exclusions name each ad by, one entry per ad: its campaign's code (the caller's
// dense numbering, the one engine.score's excluded campaigns use) and its advertiser, category and
// product ids (the strings a request's block lists hold).
struct AdKeys {
  std::vector<uint32_t> campaign;
  std::vector<std::string> advertiser;
  std::vector<std::string> category;
  std::vector<std::string> product;

  size_t size() const { return campaign.size(); }
};

// AdKeys as the per-candidate test reads them: ids by 64-bit hash, so the engine keeps no strings.
// A hash collision can only exclude an ad whose id no block list named, never admit a blocked one.
// Rows follow the ad indices of whoever owns the table (the catalog's ads, or the added ones).
class AdKeyTable {
 public:
  // Throws EngineError(InvalidArgument) unless every column holds keys.size() entries.
  void append(const AdKeys& keys);
  size_t size() const { return campaign_.size(); }
  uint32_t campaign(size_t row) const { return campaign_[row]; }

 private:
  friend class Exclusions;
  std::vector<uint32_t> campaign_;
  std::vector<uint64_t> advertiser_, category_, product_;
};

// One request's exclusions: its block lists (blocked_advertisers, blocked_categories,
// blocked_products) and the campaigns the control plane keeps out of it (frequency caps, pacing).
// Built once per request; excludes() runs per candidate inside retrieval's filter.
class Exclusions {
 public:
  Exclusions() = default;
  Exclusions(const fb::AdRequest& request, std::vector<uint32_t> excludedCampaigns);

  bool empty() const { return campaigns_.empty() && advertisers_.empty() && categories_.empty() && products_.empty(); }
  bool excludes(const AdKeyTable& keys, size_t row) const;
  // Starts fetching the keys of `row` that excludes() compares: the columns some list here names.
  void prefetch(const AdKeyTable& keys, size_t row) const {
    if (!campaigns_.empty()) prefetchLine(keys.campaign_.data() + row);
    if (!advertisers_.empty()) prefetchLine(keys.advertiser_.data() + row);
    if (!categories_.empty()) prefetchLine(keys.category_.data() + row);
    if (!products_.empty()) prefetchLine(keys.product_.data() + row);
  }

 private:
  // Sorted: a request names few ids, so a binary search beats a hash set here.
  std::vector<uint32_t> campaigns_;
  std::vector<uint64_t> advertisers_, categories_, products_;
};

uint64_t idHash(std::string_view id) noexcept;

}  // namespace adserve
