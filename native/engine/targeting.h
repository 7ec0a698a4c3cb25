#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/prefetch.h"

namespace adserve {

// Boolean targeting (docs/targeting.md): each ad's targeting is in disjunctive normal
// form, an OR of rules, each rule an AND of criteria, some of them negated. An ad with no rules is
// untargeted and matches every request.
enum class CriterionType : uint8_t {
  ExactKeyword,     // the normalised query equals the value
  PhraseKeyword,    // the value's tokens appear contiguously, in order, in the query
  BroadKeyword,     // any token of the value appears in the query
  NegativeKeyword,  // matches like a phrase (a single token: membership); used negated
  Geo,
  Device,
  Audience,  // any of the user's segments
  Category,
  Product,
  Placement,
};

struct Criterion {
  CriterionType type = CriterionType::ExactKeyword;
  std::string value;
  bool negated = false;
};

struct TargetingRule {
  std::vector<Criterion> criteria;
};

struct AdTargeting {
  uint32_t ad = 0;
  std::vector<TargetingRule> rules;
};

// The one spelling of each placement and device type a criterion may name, indexed by the FlatBuffers
// enum value (0, Unknown, matches no criterion). Placement names are the configuration's placement keys.
inline constexpr const char* kPlacementNames[] = {"", "search", "product_page", "category", "homepage", "cart"};
inline constexpr const char* kDeviceNames[] = {"", "desktop", "mobile", "tablet", "app"};

// The request side: raw values; the index normalises them the way it normalised the criteria.
struct TargetingRequest {
  std::string query;
  std::string geo;
  std::string device;
  std::vector<std::string> audiences;
  std::string category;
  std::string product;
  std::string placement;
};

// The criteria one request matches, found once per request; TargetingIndex::admits reads it.
struct MatchedCriteria {
  std::vector<uint32_t> ids;  // ascending, distinct
};

// Each unique criterion is stored once (one dictionary per criterion type) and each ad's rules refer
// to criterion ids. Serving resolves a request to the ids it matches once, then tests only the ads
// the ANN search is about to admit, so the cost follows the candidates seen rather than the catalog
// size. Immutable after construction; every method is thread-safe.
class TargetingIndex {
 public:
  static constexpr size_t kMaxRulesPerAd = 20;

  // Throws EngineError(InvalidArgument) for an ad over kMaxRulesPerAd rules, an ad index outside
  // adCount, or a placement or device criterion naming none of kPlacementNames / kDeviceNames.
  TargetingIndex(const std::vector<AdTargeting>& ads, size_t adCount);

  MatchedCriteria matchedCriteria(const TargetingRequest& request) const;
  // Whether the ad's rules let the request through: untargeted, or a rule whose positive criteria
  // all matched and whose negated criteria all did not.
  bool admits(uint32_t ad, const MatchedCriteria& matched) const;
  // admits() reads two places at random in large tables, the second found through the first: a
  // caller testing many ads fetches where each ad's rules start well ahead of the test, and the
  // rules themselves (which needs the start in cache) closer to it.
  void prefetchRuleStart(uint32_t ad) const {
    if (isTargeted(ad)) prefetchLine(programStart_.data() + ad);
  }
  void prefetchRules(uint32_t ad) const {
    if (isTargeted(ad)) prefetchLine(programs_.data() + programStart_[ad]);
  }
  // Ads with a rule that uses one of the matched exact, phrase or broad keywords (not negated): exact
  // matches first, then phrase, then broad; at most `limit`, each once. Whether they pass their
  // whole rules is admits()'s question.
  std::vector<uint32_t> keywordAds(const MatchedCriteria& matched, size_t limit) const;
  // The same for one kind of keyword (exact, phrase or broad), appended to `ads` until it holds `limit`.
  void keywordAds(const MatchedCriteria& matched, CriterionType type, size_t limit, std::vector<uint32_t>& ads) const;
  // Ads (targeted or not) that the request satisfies, ascending.
  std::vector<uint32_t> match(const TargetingRequest& request) const;

  bool empty() const { return programs_.empty(); }

 private:
  static constexpr uint32_t kNegated = 1u << 31;

  bool isTargeted(uint32_t ad) const { return ((targeted_[ad / 64] >> (ad % 64)) & 1) != 0; }

  size_t adCount_;
  // Each targeted ad's rules as one run of programs_: per rule its criterion count, then its criterion
  // ids (kNegated set for negated ones); the ad's run ends where the next ad's starts. One array, so
  // a check costs two cache misses (start, run) where rule and criterion tables would cost three.
  std::vector<uint64_t> targeted_;      // bit per ad: has rules; small enough to stay in cache
  std::vector<uint32_t> programStart_;  // ad -> start of its run; one extra at the end
  std::vector<uint32_t> programs_;
  std::vector<std::vector<std::string>> phraseTokens_;                                // by criterion id, for phrase and negative criteria
  std::vector<CriterionType> criterionType_;                                          // by criterion id
  std::vector<std::vector<uint32_t>> keywordAds_;                                     // by criterion id: ads using the keyword positively
  std::vector<std::unordered_map<std::string, std::vector<uint32_t>>> dictionaries_;  // per type: key -> criterion ids
};

}  // namespace adserve
