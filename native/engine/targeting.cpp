#include "engine/targeting.h"

#include <algorithm>
#include <unordered_set>

#include "engine/errors.h"
#include "engine/text.h"

namespace adserve {
namespace {

constexpr size_t kTypes = static_cast<size_t>(CriterionType::Placement) + 1;

std::string join(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& token : tokens) {
    if (!out.empty()) out.push_back(' ');
    out += token;
  }
  return out;
}

// Exact-valued criteria compare case-insensitively except audiences and products, which are ids.
std::string normaliseValue(CriterionType type, std::string_view value) {
  switch (type) {
    case CriterionType::Geo: return asciiUpper(value);
    case CriterionType::Device:
    case CriterionType::Category:
    case CriterionType::Placement: return asciiLower(value);
    default: return std::string(value);
  }
}

bool containsPhrase(const std::vector<std::string>& query, const std::vector<std::string>& phrase) {
  if (phrase.empty() || phrase.size() > query.size()) return false;
  for (size_t start = 0; start + phrase.size() <= query.size(); ++start) {
    if (std::equal(phrase.begin(), phrase.end(), query.begin() + static_cast<std::ptrdiff_t>(start))) return true;
  }
  return false;
}

}  // namespace

TargetingIndex::TargetingIndex(const std::vector<AdTargeting>& ads, size_t adCount) : adCount_(adCount), dictionaries_(kTypes) {
  std::unordered_map<std::string, uint32_t> criterionIds;  // "<type>\x1f<key>" -> id
  std::unordered_set<uint32_t> vetoableAds;                // ads with a negated criterion
  for (const AdTargeting& target : ads) {
    if (target.ad >= adCount) throw EngineError(ErrorCode::InvalidArgument, "targeting names ad index " + std::to_string(target.ad) + " outside the catalog");
    if (target.rules.size() > kMaxRulesPerAd) {
      throw EngineError(ErrorCode::InvalidArgument, "ad " + std::to_string(target.ad) + " has " + std::to_string(target.rules.size()) +
                                                        " targeting rules; at most " + std::to_string(kMaxRulesPerAd) + " are allowed");
    }
    if (target.rules.empty()) continue;
    targetedAds_.push_back(target.ad);
    for (const TargetingRule& rule : target.rules) {
      const auto ruleId = static_cast<uint32_t>(rules_.size());
      std::unordered_set<uint32_t> seen;
      uint16_t positives = 0;
      for (const Criterion& criterion : rule.criteria) {
        const bool keyword = criterion.type <= CriterionType::NegativeKeyword;
        const std::vector<std::string> tokens = keyword ? tokenize(criterion.value) : std::vector<std::string>{};
        if (keyword && tokens.empty()) throw EngineError(ErrorCode::InvalidArgument, "keyword criterion '" + criterion.value + "' has no tokens");
        const std::string canonical = keyword ? join(tokens) : normaliseValue(criterion.type, criterion.value);
        const std::string key = std::to_string(static_cast<int>(criterion.type)) + '\x1f' + canonical;
        auto [found, inserted] = criterionIds.emplace(key, static_cast<uint32_t>(postings_.size()));
        const uint32_t id = found->second;
        if (inserted) {
          postings_.emplace_back();
          phraseTokens_.push_back(criterion.type == CriterionType::PhraseKeyword || criterion.type == CriterionType::NegativeKeyword ? tokens
                                                                                                                                   : std::vector<std::string>{});
          auto& dictionary = dictionaries_[static_cast<size_t>(criterion.type)];
          if (criterion.type == CriterionType::BroadKeyword) {
            for (const auto& token : std::unordered_set<std::string>(tokens.begin(), tokens.end())) dictionary[token].push_back(id);
          } else if (criterion.type == CriterionType::PhraseKeyword || criterion.type == CriterionType::NegativeKeyword) {
            dictionary[tokens.front()].push_back(id);
          } else {
            dictionary[canonical].push_back(id);
          }
        }
        if (!seen.insert(id).second) continue;  // the same criterion twice in one rule counts once
        postings_[id].push_back({ruleId, criterion.negated});
        if (criterion.negated) vetoableAds.insert(target.ad);
        else ++positives;
      }
      rules_.push_back({target.ad, positives});
    }
  }
  std::sort(targetedAds_.begin(), targetedAds_.end());
  targetedAds_.erase(std::unique(targetedAds_.begin(), targetedAds_.end()), targetedAds_.end());
  for (uint32_t rule = 0; rule < rules_.size(); ++rule) {
    if (vetoableAds.count(rules_[rule].ad)) rulesOfVetoableAd_[rules_[rule].ad].push_back(rule);
  }
  openBits_.assign((adCount_ + 7) / 8, 0xFF);
  for (uint32_t ad : targetedAds_) openBits_[ad >> 3] &= static_cast<uint8_t>(~(1u << (ad & 7)));
  for (const RuleInfo& rule : rules_) {
    if (rule.positives == 0) openBits_[rule.ad >> 3] |= static_cast<uint8_t>(1u << (rule.ad & 7));
  }
}

std::vector<uint32_t> TargetingIndex::matchedCriteria(const TargetingRequest& request) const {
  const std::vector<std::string> queryTokens = tokenize(request.query);
  const std::unordered_set<std::string> distinctTokens(queryTokens.begin(), queryTokens.end());
  std::vector<uint32_t> matched;
  auto lookup = [&](CriterionType type, const std::string& key) {
    const auto& dictionary = dictionaries_[static_cast<size_t>(type)];
    const auto found = dictionary.find(key);
    if (found == dictionary.end()) return;
    for (uint32_t id : found->second) {
      const bool phrase = type == CriterionType::PhraseKeyword || type == CriterionType::NegativeKeyword;
      if (!phrase || containsPhrase(queryTokens, phraseTokens_[id])) matched.push_back(id);
    }
  };
  if (!queryTokens.empty()) lookup(CriterionType::ExactKeyword, join(queryTokens));
  for (const auto& token : distinctTokens) {
    lookup(CriterionType::PhraseKeyword, token);
    lookup(CriterionType::BroadKeyword, token);
    lookup(CriterionType::NegativeKeyword, token);
  }
  if (!request.geo.empty()) lookup(CriterionType::Geo, normaliseValue(CriterionType::Geo, request.geo));
  if (!request.device.empty()) lookup(CriterionType::Device, normaliseValue(CriterionType::Device, request.device));
  for (const auto& audience : request.audiences) lookup(CriterionType::Audience, audience);
  if (!request.category.empty()) lookup(CriterionType::Category, normaliseValue(CriterionType::Category, request.category));
  if (!request.product.empty()) lookup(CriterionType::Product, request.product);
  if (!request.placement.empty()) lookup(CriterionType::Placement, normaliseValue(CriterionType::Placement, request.placement));
  // A broad keyword is found once per query token it shares.
  std::sort(matched.begin(), matched.end());
  matched.erase(std::unique(matched.begin(), matched.end()), matched.end());
  return matched;
}

void TargetingIndex::restrict(const TargetingRequest& request, const uint8_t* eligible, std::vector<uint8_t>& bitmap) const {
  const size_t bytes = openBits_.size();
  bitmap.resize(bytes);
  for (size_t i = 0; i < bytes; ++i) bitmap[i] = eligible ? static_cast<uint8_t>(eligible[i] & openBits_[i]) : openBits_[i];
  if (targetedAds_.empty()) return;

  // Per-rule scratch kept per thread and zeroed again after use, so a request touches only the
  // rules its matched criteria reach.
  thread_local std::vector<uint16_t> satisfied;  // positive criteria matched
  thread_local std::vector<uint8_t> vetoed;      // a negated criterion matched
  thread_local std::vector<uint32_t> touched;
  if (satisfied.size() < rules_.size()) {
    satisfied.resize(rules_.size());
    vetoed.resize(rules_.size());
  }
  for (uint32_t id : matchedCriteria(request)) {
    for (const Posting& posting : postings_[id]) {
      if (satisfied[posting.rule] == 0 && !vetoed[posting.rule]) touched.push_back(posting.rule);
      if (posting.negated) vetoed[posting.rule] = 1;
      else ++satisfied[posting.rule];
    }
  }
  const auto rulePasses = [&](uint32_t rule) { return !vetoed[rule] && satisfied[rule] == rules_[rule].positives; };
  for (uint32_t rule : touched) {
    const uint32_t ad = rules_[rule].ad;
    const bool isEligible = !eligible || ((eligible[ad >> 3] >> (ad & 7)) & 1);
    if (rules_[rule].positives > 0 && rulePasses(rule) && isEligible) bitmap[ad >> 3] |= static_cast<uint8_t>(1u << (ad & 7));
  }
  // A vetoed rule may have been the ad's open way in: the ad stays only if another rule passes.
  for (uint32_t rule : touched) {
    if (!vetoed[rule]) continue;
    const uint32_t ad = rules_[rule].ad;
    const auto& rules = rulesOfVetoableAd_.find(ad)->second;
    if (std::none_of(rules.begin(), rules.end(), rulePasses)) bitmap[ad >> 3] &= static_cast<uint8_t>(~(1u << (ad & 7)));
  }
  for (uint32_t rule : touched) {
    satisfied[rule] = 0;
    vetoed[rule] = 0;
  }
  touched.clear();
}

std::vector<uint32_t> TargetingIndex::match(const TargetingRequest& request) const {
  std::vector<uint8_t> bitmap;
  restrict(request, nullptr, bitmap);
  std::vector<uint32_t> ads;
  for (uint32_t ad = 0; ad < adCount_; ++ad) {
    if ((bitmap[ad >> 3] >> (ad & 7)) & 1) ads.push_back(ad);
  }
  return ads;
}

}  // namespace adserve
