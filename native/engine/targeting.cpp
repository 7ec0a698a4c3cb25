#include "engine/targeting.h"

#include <algorithm>
#include <iterator>
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
    case CriterionType::Geo:
      return asciiUpper(value);
    case CriterionType::Device:
    case CriterionType::Category:
    case CriterionType::Placement:
      return asciiLower(value);
    default:
      return std::string(value);
  }
}

// A placement or device criterion that names no placement or device would silently never match.
void checkEnumValue(CriterionType type, const std::string& canonical) {
  if (type != CriterionType::Placement && type != CriterionType::Device) return;
  const bool placement = type == CriterionType::Placement;
  const char* const* name = placement ? std::begin(kPlacementNames) + 1 : std::begin(kDeviceNames) + 1;
  const char* const* end = placement ? std::end(kPlacementNames) : std::end(kDeviceNames);
  std::string allowed;
  for (; name != end; ++name) {
    if (canonical == *name) return;
    allowed += (allowed.empty() ? "" : ", ") + std::string(*name);
  }
  throw EngineError(ErrorCode::InvalidArgument,
                    std::string(placement ? "placement" : "device") + " criterion '" + canonical + "' is not one of " + allowed);
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
  std::vector<uint32_t> rulesPerAd(adCount, 0);
  for (const AdTargeting& target : ads) {
    if (target.ad >= adCount)
      throw EngineError(ErrorCode::InvalidArgument, "targeting names ad index " + std::to_string(target.ad) + " outside the catalog");
    rulesPerAd[target.ad] += static_cast<uint32_t>(std::min(target.rules.size(), kMaxRulesPerAd + 1));
    if (rulesPerAd[target.ad] > kMaxRulesPerAd) {
      throw EngineError(ErrorCode::InvalidArgument,
                        "ad " + std::to_string(target.ad) + " has more than " + std::to_string(kMaxRulesPerAd) + " targeting rules");
    }
  }
  // Each ad's rules in its own run, whatever order (and however many entries) the list names them in.
  std::vector<std::vector<uint32_t>> programOf(adCount);
  std::unordered_map<std::string, uint32_t> criterionIds;  // "<type>\x1f<key>" -> id
  for (const AdTargeting& target : ads) {
    for (const TargetingRule& rule : target.rules) {
      std::vector<uint32_t>& program = programOf[target.ad];
      program.push_back(static_cast<uint32_t>(rule.criteria.size()));
      for (const Criterion& criterion : rule.criteria) {
        const bool keyword = criterion.type <= CriterionType::NegativeKeyword;
        const std::vector<std::string> tokens = keyword ? tokenize(criterion.value) : std::vector<std::string>{};
        if (keyword && tokens.empty())
          throw EngineError(ErrorCode::InvalidArgument, "keyword criterion '" + criterion.value + "' has no tokens");
        const std::string canonical = keyword ? join(tokens) : normaliseValue(criterion.type, criterion.value);
        checkEnumValue(criterion.type, canonical);
        const std::string key = std::to_string(static_cast<int>(criterion.type)) + '\x1f' + canonical;
        auto [found, inserted] = criterionIds.emplace(key, static_cast<uint32_t>(phraseTokens_.size()));
        const uint32_t id = found->second;
        if (inserted) {
          criterionType_.push_back(criterion.type);
          keywordAds_.emplace_back();
          phraseTokens_.push_back(criterion.type == CriterionType::PhraseKeyword || criterion.type == CriterionType::NegativeKeyword
                                      ? tokens
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
        program.push_back(criterion.negated ? id | kNegated : id);
        const bool positiveKeyword = !criterion.negated && criterion.type <= CriterionType::BroadKeyword;
        if (positiveKeyword && (keywordAds_[id].empty() || keywordAds_[id].back() != target.ad)) keywordAds_[id].push_back(target.ad);
      }
    }
  }
  if (phraseTokens_.size() >= kNegated) throw EngineError(ErrorCode::InvalidArgument, "too many distinct targeting criteria");
  programStart_.reserve(adCount + 1);
  targeted_.assign((adCount + 63) / 64, 0);
  for (size_t ad = 0; ad < adCount; ++ad) {
    programStart_.push_back(static_cast<uint32_t>(programs_.size()));
    if (rulesPerAd[ad] != 0) targeted_[ad / 64] |= uint64_t{1} << (ad % 64);
    programs_.insert(programs_.end(), programOf[ad].begin(), programOf[ad].end());
  }
  programStart_.push_back(static_cast<uint32_t>(programs_.size()));
}

MatchedCriteria TargetingIndex::matchedCriteria(const TargetingRequest& request) const {
  const std::vector<std::string> queryTokens = tokenize(request.query);
  const std::unordered_set<std::string> distinctTokens(queryTokens.begin(), queryTokens.end());
  MatchedCriteria out;
  std::vector<uint32_t>& matched = out.ids;
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
  return out;
}

bool TargetingIndex::admits(uint32_t ad, const MatchedCriteria& matched) const {
  if (!isTargeted(ad)) return true;
  const uint32_t* rule = programs_.data() + programStart_[ad];
  const uint32_t* const end = programs_.data() + programStart_[ad + 1];
  while (rule < end) {
    const uint32_t* const criteria = rule + 1;
    const uint32_t* const next = criteria + *rule;
    const bool passes = std::all_of(criteria, next, [&](uint32_t entry) {
      const bool negated = (entry & kNegated) != 0;
      return std::binary_search(matched.ids.begin(), matched.ids.end(), entry & ~kNegated) != negated;
    });
    if (passes) return true;
    rule = next;
  }
  return false;
}

std::vector<uint32_t> TargetingIndex::keywordAds(const MatchedCriteria& matched, size_t limit) const {
  std::vector<uint32_t> ads;
  for (const CriterionType type : {CriterionType::ExactKeyword, CriterionType::PhraseKeyword, CriterionType::BroadKeyword}) {
    keywordAds(matched, type, limit, ads);
  }
  return ads;
}

void TargetingIndex::keywordAds(const MatchedCriteria& matched, CriterionType type, size_t limit, std::vector<uint32_t>& ads) const {
  std::unordered_set<uint32_t> seen(ads.begin(), ads.end());
  for (const uint32_t id : matched.ids) {
    if (criterionType_[id] != type) continue;
    for (const uint32_t ad : keywordAds_[id]) {
      if (ads.size() >= limit) return;
      if (seen.insert(ad).second) ads.push_back(ad);
    }
  }
}

std::vector<uint32_t> TargetingIndex::match(const TargetingRequest& request) const {
  const MatchedCriteria matched = matchedCriteria(request);
  std::vector<uint32_t> ads;
  for (uint32_t ad = 0; ad < adCount_; ++ad) {
    if (admits(ad, matched)) ads.push_back(ad);
  }
  return ads;
}

}  // namespace adserve
