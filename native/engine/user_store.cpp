#include "engine/user_store.h"

#include <algorithm>

#include "engine/errors.h"
#include "engine/tensors.h"
#include "engine/tower_misses.h"

namespace adserve {

UserStore::UserStore(const Model& model, const UserStoreOptions& options, size_t userNumeric)
    : model_(model), userNumeric_(userNumeric), pairUnknown_(options.pairUnknown), cache_(options.cacheSize, std::chrono::hours(24)) {
  embeddings_ = loadTensor(options.embeddings).contiguous();
  const auto users = static_cast<int64_t>(options.ids.size());
  requireRows(embeddings_, users, "user embeddings");
  category_ = loadTensor(options.category).contiguous();
  requireRows(category_, users, "user x category features");
  advertiserIndptr_ = loadTensor(options.advertiserIndptr);
  requireRows(advertiserIndptr_, users + 1, "user x advertiser index pointer");
  advertiserIndex_ = loadTensor(options.advertiserIndex);
  advertiserValues_ = loadTensor(options.advertiserValues).contiguous();
  requireRows(advertiserValues_, advertiserIndex_.size(0), "user x advertiser values");
  categories_ = static_cast<size_t>(category_.size(1));
  categoryWidth_ = static_cast<size_t>(category_.size(2));
  pairWidth_ = categoryWidth_ + static_cast<size_t>(advertiserValues_.size(1));
  if (pairUnknown_.size() != pairWidth_) throw EngineError(ErrorCode::InvalidArgument, "pairUnknown must have one value per pair feature");
  row_.reserve(options.ids.size());
  for (int64_t row = 0; row < users; ++row) row_.emplace(options.ids[row], row);
}

int64_t UserStore::row(const std::string& userId) const {
  if (userId.empty()) return -1;
  const auto found = row_.find(userId);
  return found == row_.end() ? -1 : found->second;
}

torch::Tensor UserStore::embeddings(const std::vector<RequestFeatures>& features, const std::vector<int64_t>& rows) const {
  const auto batch = static_cast<int64_t>(features.size());
  torch::Tensor out = torch::empty({batch, embeddings_.size(1)});
  TowerMisses misses;
  std::vector<int64_t> missCategorical;
  for (int64_t i = 0; i < batch; ++i) {
    if (rows[i] >= 0) {
      out[i].copy_(embeddings_[rows[i]]);
      continue;
    }
    // A user without a feature-store record: every numeric at its standardised mean (0) and
    // user_known 0, so the embedding depends on the four categorical values only.
    std::string key;
    for (int64_t v : features[i].userCategorical) appendKeyBytes(key, v);
    if (auto cached = cache_.get(key)) {
      out[i].copy_(*cached);
    } else if (misses.add(i, std::move(key))) {
      missCategorical.insert(missCategorical.end(), features[i].userCategorical.begin(), features[i].userCategorical.end());
    }
  }
  if (!misses.empty()) {
    const int64_t count = misses.distinct();
    const torch::Tensor numeric = torch::zeros({count, static_cast<int64_t>(userNumeric_)});
    const torch::Tensor embedded = model_.userEmbed(longs(missCategorical, {count, 4}), numeric);
    misses.scatter(out, embedded);
    for (int64_t r = 0; r < count; ++r) cache_.put(misses.keys()[r], embedded[r].clone());
  }
  return out;
}

void UserStore::pairFeatures(int64_t row, int32_t category, int32_t advertiser, float* out) const {
  const float* unknown = pairUnknown_.data();
  if (row < 0) {
    std::copy(unknown, unknown + pairWidth_, out);
    return;
  }
  const float* userCategory = category_.data_ptr<float>() + static_cast<size_t>(row) * categories_ * categoryWidth_;
  std::copy_n(userCategory + static_cast<size_t>(category) * categoryWidth_, categoryWidth_, out);
  // Advertisers of one user are stored in ascending order.
  const int32_t* indptr = advertiserIndptr_.data_ptr<int32_t>();
  const int32_t* advertisers = advertiserIndex_.data_ptr<int32_t>();
  const int32_t* begin = advertisers + indptr[row];
  const int32_t* end = advertisers + indptr[row + 1];
  const int32_t* found = std::lower_bound(begin, end, advertiser);
  if (found != end && *found == advertiser) {
    std::copy_n(advertiserValues_.data_ptr<float>() + (found - advertisers) * 2, 2, out + categoryWidth_);
  } else {
    std::copy(unknown + categoryWidth_, unknown + pairWidth_, out + categoryWidth_);
  }
}

}  // namespace adserve
