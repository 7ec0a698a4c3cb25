#include "engine/exclusions.h"

#include <algorithm>

#include "ad_request_generated.h"
#include "engine/errors.h"

namespace adserve {

namespace {

template <typename T>
void sortUnique(std::vector<T>& values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
}

std::vector<uint64_t> hashedIds(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* ids) {
  std::vector<uint64_t> out;
  if (ids == nullptr) return out;
  out.reserve(ids->size());
  for (const auto* id : *ids) {
    if (id != nullptr) out.push_back(idHash(id->string_view()));
  }
  sortUnique(out);
  return out;
}

template <typename T>
bool contains(const std::vector<T>& sorted, T value) {
  return !sorted.empty() && std::binary_search(sorted.begin(), sorted.end(), value);
}

}  // namespace

// FNV-1a, 64 bits, over the id's UTF-8 bytes.
uint64_t idHash(std::string_view id) noexcept {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : id) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

void AdKeyTable::append(const AdKeys& keys) {
  const size_t n = keys.size();
  if (keys.advertiser.size() != n || keys.category.size() != n || keys.product.size() != n) {
    throw EngineError(ErrorCode::InvalidArgument, "ad keys need a campaign, advertiser, category and product for every ad");
  }
  campaign_.insert(campaign_.end(), keys.campaign.begin(), keys.campaign.end());
  for (const auto& [from, to] :
       {std::pair{&keys.advertiser, &advertiser_}, std::pair{&keys.category, &category_}, std::pair{&keys.product, &product_}}) {
    to->reserve(to->size() + n);
    for (const std::string& id : *from) to->push_back(idHash(id));
  }
}

Exclusions::Exclusions(const fb::AdRequest& request, std::vector<uint32_t> excludedCampaigns)
    : campaigns_(std::move(excludedCampaigns)),
      advertisers_(hashedIds(request.blocked_advertisers())),
      categories_(hashedIds(request.blocked_categories())),
      products_(hashedIds(request.blocked_products())) {
  sortUnique(campaigns_);
}

bool Exclusions::excludes(const AdKeyTable& keys, size_t row) const {
  return contains(campaigns_, keys.campaign_[row]) || contains(advertisers_, keys.advertiser_[row]) ||
         contains(categories_, keys.category_[row]) || contains(products_, keys.product_[row]);
}

}  // namespace adserve
