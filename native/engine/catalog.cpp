#include "engine/catalog.h"

#include <cmath>
#include <iterator>
#include <limits>
#include <string>

#include "ad_request_generated.h"
#include "engine/errors.h"
#include "engine/tensors.h"

namespace adserve {

namespace {

// A non-personalised request matches no audience criterion: its segments are data about the user.
TargetingRequest targetingRequest(const fb::AdRequest& request, bool personalised) {
  auto text = [](const flatbuffers::String* value) { return value == nullptr ? std::string() : value->str(); };
  TargetingRequest out;
  out.query = text(request.query());
  if (const auto* geo = request.geo()) out.geo = text(geo->country());
  if (const auto* device = request.device()) {
    const auto type = static_cast<size_t>(device->type());
    out.device = type < std::size(kDeviceNames) ? kDeviceNames[type] : "";
  }
  if (const auto* user = request.user(); personalised && user != nullptr && user->segments() != nullptr) {
    for (const auto* segment : *user->segments()) out.audiences.push_back(text(segment));
  }
  out.category = text(request.category_id());
  out.product = text(request.product_id());
  const auto placement = static_cast<size_t>(request.placement());
  out.placement = placement < std::size(kPlacementNames) ? kPlacementNames[placement] : "";
  return out;
}

}  // namespace

const float* CatalogSnapshot::embedding(size_t ad) const {
  const size_t loaded = ads_->size();
  const torch::Tensor& rows = ad < loaded ? ads_->embeddings : added_->embeddings;
  return rows.data_ptr<float>() + (ad < loaded ? ad : ad - loaded) * static_cast<size_t>(rows.size(1));
}

CatalogFilter CatalogSnapshot::filter(const fb::AdRequest& request, const std::vector<uint32_t>& excludedCampaigns,
                                      bool personalised) const {
  const bool targeted = ads_->targeting || (added_ && added_->targetingIndex);
  return CatalogFilter(*this, targeted ? targetingRequest(request, personalised) : TargetingRequest{},
                       Exclusions(request, excludedCampaigns));
}

CatalogFilter::CatalogFilter(const CatalogSnapshot& snapshot, const TargetingRequest& request, Exclusions exclusions)
    : eligible_(snapshot.eligible_ ? snapshot.eligible_->data() : nullptr),
      targeting_(snapshot.ads_->targeting.get()),
      keys_(&snapshot.ads_->keys),
      catalogAds_(static_cast<uint32_t>(snapshot.ads_->size())),
      addedTargeting_(snapshot.added_ ? snapshot.added_->targetingIndex.get() : nullptr),
      addedKeys_(snapshot.added_ ? &snapshot.added_->keys : nullptr),
      exclusions_(std::move(exclusions)) {
  if (targeting_ != nullptr) matched_ = targeting_->matchedCriteria(request);
  if (addedTargeting_ != nullptr) addedMatched_ = addedTargeting_->matchedCriteria(request);
}

void CatalogFilter::admitEach(const int64_t* ads, size_t n, uint8_t* admitted) const {
  // Each ad's targeting is two dependent random reads (where its rules start, then the rules) and its
  // exclusions one per key column named: the first reads are started twice as far ahead of the test
  // as the second, which need the first in cache, so the misses of many ads overlap.
  constexpr size_t kAhead = 8;
  // Which targeting index and key table hold the ad (the catalog's or the added ads'), and its row in them.
  struct Located {
    const TargetingIndex* targeting;
    const AdKeyTable* keys;
    uint32_t row;
  };
  const auto locate = [&](int64_t ad) {
    const auto index = static_cast<uint32_t>(ad);
    return index < catalogAds_ ? Located{targeting_, keys_, index} : Located{addedTargeting_, addedKeys_, index - catalogAds_};
  };
  const auto fetchFirst = [&](int64_t ad) {
    const Located at = locate(ad);
    if (at.targeting != nullptr) at.targeting->prefetchRuleStart(at.row);
    if (!exclusions_.empty()) exclusions_.prefetch(*at.keys, at.row);
  };
  const auto fetchSecond = [&](int64_t ad) {
    const Located at = locate(ad);
    if (at.targeting != nullptr) at.targeting->prefetchRules(at.row);
  };
  for (size_t i = 0; i < std::min(2 * kAhead, n); ++i) fetchFirst(ads[i]);
  for (size_t i = 0; i < std::min(kAhead, n); ++i) fetchSecond(ads[i]);
  for (size_t i = 0; i < n; ++i) {
    if (i + 2 * kAhead < n) fetchFirst(ads[i + 2 * kAhead]);
    if (i + kAhead < n) fetchSecond(ads[i + kAhead]);
    admitted[i] = admits(ads[i]) ? 1 : 0;
  }
}

std::vector<uint32_t> CatalogFilter::keywordAds(size_t limit) const {
  std::vector<uint32_t> ads;
  std::vector<uint32_t> added;  // local indices of the added ads, each once across the kinds
  for (const CriterionType type : {CriterionType::ExactKeyword, CriterionType::PhraseKeyword, CriterionType::BroadKeyword}) {
    if (targeting_ != nullptr) targeting_->keywordAds(matched_, type, limit, ads);
    if (addedTargeting_ == nullptr || ads.size() >= limit) continue;
    const size_t before = added.size();
    addedTargeting_->keywordAds(addedMatched_, type, before + limit - ads.size(), added);
    // Added ads count from 0 in their own index: shift them to catalog indices.
    for (size_t i = before; i < added.size(); ++i) ads.push_back(catalogAds_ + added[i]);
  }
  return ads;
}

Catalog::Catalog(const TensorFile& embeddings, const TensorFile& categorical, const std::vector<float>& prior, const AdKeys& keys,
                 const std::vector<AdTargeting>& targeting) {
  auto ads = std::make_shared<CatalogAds>();
  ads->embeddings = loadTensor(embeddings).contiguous();
  const auto count = static_cast<size_t>(ads->embeddings.size(0));
  const torch::Tensor columns = loadTensor(categorical);
  requireRows(columns, static_cast<int64_t>(count), "ad categorical features");
  ads->advertiser.resize(count);
  ads->category.resize(count);
  const auto column = columns.accessor<int64_t, 2>();
  for (size_t i = 0; i < count; ++i) {
    ads->advertiser[i] = static_cast<int32_t>(column[i][0] - 1);
    ads->category[i] = static_cast<int32_t>(column[i][1] - 1);
  }
  if (prior.size() != count) throw EngineError(ErrorCode::InvalidArgument, "adPrior needs one value per ad");
  if (keys.size() != count) throw EngineError(ErrorCode::InvalidArgument, "adKeys needs one entry per ad");
  ads->keys.append(keys);
  if (!targeting.empty()) {
    ads->targeting = std::make_unique<TargetingIndex>(targeting, count);
    if (ads->targeting->empty()) ads->targeting.reset();
  }
  auto first = std::make_shared<CatalogSnapshot>();
  first->ads_ = std::move(ads);
  first->prior_ = std::make_shared<const std::vector<float>>(prior);
  current_ = std::move(first);
}

void Catalog::setEligibility(const std::vector<uint32_t>& adIndex, const std::vector<uint8_t>& eligible) {
  if (adIndex.size() != eligible.size()) throw EngineError(ErrorCode::InvalidArgument, "adIndex and eligible differ in length");
  std::lock_guard<std::mutex> lock(writeMutex_);
  auto next = std::make_shared<CatalogSnapshot>(*std::atomic_load(&current_));
  const size_t total = next->totalAds();
  auto bits = next->eligible_ ? std::make_shared<std::vector<uint8_t>>(*next->eligible_)
                              : std::make_shared<std::vector<uint8_t>>((total + 7) / 8, 0xFF);
  for (size_t i = 0; i < adIndex.size(); ++i) {
    const uint32_t ad = adIndex[i];
    if (ad >= total) throw EngineError(ErrorCode::InvalidArgument, "ad index " + std::to_string(ad) + " is out of range");
    const auto bit = static_cast<uint8_t>(1u << (ad & 7));
    (*bits)[ad >> 3] = eligible[i] ? ((*bits)[ad >> 3] | bit) : ((*bits)[ad >> 3] & ~bit);
  }
  next->eligible_ = std::move(bits);
  std::atomic_store(&current_, std::shared_ptr<const CatalogSnapshot>(std::move(next)));
}

void Catalog::setPriors(const std::vector<uint32_t>& adIndex, const std::vector<float>& prior) {
  if (adIndex.size() != prior.size()) throw EngineError(ErrorCode::InvalidArgument, "adIndex and prior differ in length");
  std::lock_guard<std::mutex> lock(writeMutex_);
  auto next = std::make_shared<CatalogSnapshot>(*std::atomic_load(&current_));
  auto priors = std::make_shared<std::vector<float>>(*next->prior_);
  for (size_t i = 0; i < adIndex.size(); ++i) {
    if (adIndex[i] >= priors->size())
      throw EngineError(ErrorCode::InvalidArgument, "ad index " + std::to_string(adIndex[i]) + " is out of range");
    if (!std::isfinite(prior[i])) throw EngineError(ErrorCode::InvalidArgument, "priors must be finite");
    (*priors)[adIndex[i]] = prior[i];
  }
  next->prior_ = std::move(priors);
  std::atomic_store(&current_, std::shared_ptr<const CatalogSnapshot>(std::move(next)));
}

uint32_t Catalog::add(const NewAds& ads, const torch::Tensor& embeddings, const torch::Tensor& projection, const AnnIndex& index) {
  const size_t n = ads.prior.size();
  std::lock_guard<std::mutex> lock(writeMutex_);
  auto next = std::make_shared<CatalogSnapshot>(*std::atomic_load(&current_));
  const AddedAds* current = next->added_.get();
  const size_t loaded = next->catalogAds();
  const size_t before = current ? current->count : 0;
  if (loaded + before + n > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    throw EngineError(ErrorCode::InvalidArgument, "too many ads");
  auto added = std::make_shared<AddedAds>();
  added->count = before + n;
  added->embeddings = (current ? torch::cat({current->embeddings, embeddings}) : embeddings).contiguous();
  if (index.takesAdditions())
    added->indexed = index.withAdded(current ? current->indexed.get() : nullptr, added->embeddings.data_ptr<float>(), added->count);
  if (projection.defined()) added->projection = current ? torch::cat({current->projection, projection}) : projection;
  if (current) {
    added->category = current->category;
    added->advertiser = current->advertiser;
    added->targeting = current->targeting;
    added->keys = current->keys;
  }
  added->keys.append(ads.keys);
  for (size_t i = 0; i < n; ++i) {
    added->advertiser.push_back(static_cast<int32_t>(ads.categorical[i * 4] - 1));
    added->category.push_back(static_cast<int32_t>(ads.categorical[i * 4 + 1] - 1));
  }
  for (AdTargeting target : ads.targeting) {
    if (target.ad >= n) throw EngineError(ErrorCode::InvalidArgument, "targeting names an ad outside this call");
    target.ad += static_cast<uint32_t>(before);
    added->targeting.push_back(std::move(target));
  }
  if (!added->targeting.empty()) {
    added->targetingIndex = std::make_unique<TargetingIndex>(added->targeting, added->count);
    if (added->targetingIndex->empty()) added->targetingIndex.reset();
  }
  auto priors = std::make_shared<std::vector<float>>(*next->prior_);
  priors->insert(priors->end(), ads.prior.begin(), ads.prior.end());
  next->prior_ = std::move(priors);
  if (next->eligible_) {
    auto grown = std::make_shared<std::vector<uint8_t>>(*next->eligible_);
    grown->resize((loaded + added->count + 7) / 8, 0xFF);
    for (size_t ad = loaded + before; ad < loaded + added->count; ++ad) (*grown)[ad >> 3] |= static_cast<uint8_t>(1u << (ad & 7));
    next->eligible_ = std::move(grown);
  }
  next->added_ = std::move(added);
  // One store: a batch sees the new ads together with the priors and eligibility that cover them.
  std::atomic_store(&current_, std::shared_ptr<const CatalogSnapshot>(std::move(next)));
  return static_cast<uint32_t>(loaded + before);
}

}  // namespace adserve
