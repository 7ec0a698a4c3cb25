#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace adserve {

// Boolean targeting as in BOOK_SPEC part 2 (2.3-2.6): each ad's targeting is in disjunctive normal
// form, an OR of rules, each rule an AND of criteria, some of them negated. An ad with no rules is
// untargeted and matches every request.
enum class CriterionType : uint8_t {
  ExactKeyword,     // the normalised query equals the value
  PhraseKeyword,    // the value's tokens appear contiguously, in order, in the query
  BroadKeyword,     // any token of the value appears in the query
  NegativeKeyword,  // matches like a phrase (a single token: membership); used negated
  Geo,
  Device,
  Audience,         // any of the user's segments
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

// Criterion-level inverted index (one dictionary per criterion type, each unique criterion stored
// once with the rules that use it). Immutable after construction; match() and restrict() are
// thread-safe. A request costs one pass over a bitmap plus the postings of the criteria it matches:
// ads pass by default when untargeted or when a rule of theirs has only negated criteria, so only
// matched rules and vetoed ads are evaluated.
class TargetingIndex {
 public:
  static constexpr size_t kMaxRulesPerAd = 20;

  // Throws EngineError(InvalidArgument) for an ad over kMaxRulesPerAd rules or an ad index
  // outside adCount.
  TargetingIndex(const std::vector<AdTargeting>& ads, size_t adCount);

  // Ads (targeted or not) that the request satisfies, ascending.
  std::vector<uint32_t> match(const TargetingRequest& request) const;
  // Fills `bitmap` (adCount bits) with the ads that are set in `eligible` (every ad when null) and
  // that the request satisfies.
  void restrict(const TargetingRequest& request, const uint8_t* eligible, std::vector<uint8_t>& bitmap) const;

  bool empty() const { return targetedAds_.empty(); }

 private:
  struct RuleInfo {
    uint32_t ad;
    uint16_t positives;
  };
  struct Posting {
    uint32_t rule;
    bool negated;
  };
  // Criterion ids the request matches, ascending and distinct.
  std::vector<uint32_t> matchedCriteria(const TargetingRequest& request) const;

  size_t adCount_;
  std::vector<RuleInfo> rules_;
  std::vector<std::vector<Posting>> postings_;      // by criterion id
  std::vector<std::vector<std::string>> phraseTokens_;  // by criterion id, for phrase and negative criteria
  std::vector<std::unordered_map<std::string, std::vector<uint32_t>>> dictionaries_;  // per type: key -> criterion ids
  std::vector<uint32_t> targetedAds_;               // ascending
  std::vector<uint8_t> openBits_;                   // ads that pass when the request matches no criterion
  std::unordered_map<uint32_t, std::vector<uint32_t>> rulesOfVetoableAd_;  // every rule of each ad with a negated criterion
};

}  // namespace adserve
