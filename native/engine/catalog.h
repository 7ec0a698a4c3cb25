#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <torch/torch.h>

#include "engine/ann_index.h"
#include "engine/exclusions.h"
#include "engine/prefetch.h"
#include "engine/targeting.h"
#include "engine/tensor_file.h"

namespace adserve {

namespace fb {
struct AdRequest;
}

// Ads to add while serving, in the ad tower's input form (the rows of ad_categorical.i64,
// ad_title.i64 and ad_numeric.f32 that train/ writes for the catalog's ads).
struct NewAds {
  std::vector<int64_t> categorical;    // [n x 4]: advertiser, category, format, bid type (index + 1)
  std::vector<int64_t> title;          // [n x title tokens]
  std::vector<float> numeric;          // [n x numeric features], standardised
  std::vector<float> prior;            // [n]: static part of the lightweight score
  std::vector<AdTargeting> targeting;  // `ad` counts from 0 within this call; ads not listed are untargeted
  AdKeys keys;                         // [n]
};

// The ads of the model directory, indices 0 .. size() - 1. Immutable after open; every snapshot
// shares the one copy.
struct CatalogAds {
  torch::Tensor embeddings;                   // float32 [ads, D], contiguous
  std::vector<int32_t> category;              // 0-based
  std::vector<int32_t> advertiser;            // 0-based
  std::unique_ptr<TargetingIndex> targeting;  // null when no ad is targeted
  AdKeyTable keys;

  size_t size() const { return category.size(); }
};

// Ads added by addAds, indices CatalogAds::size() onwards. Immutable once published; each addition
// publishes a grown copy.
struct AddedAds {
  size_t count = 0;
  torch::Tensor embeddings;  // [count, D]
  // [count, H]: the fusion stage's per-ad rows (Fusion::projectAds), published with the ads so that
  // a batch that sees an ad sees its projection; undefined when the fusion keeps none.
  torch::Tensor projection;
  std::vector<int32_t> category, advertiser;       // 0-based
  std::vector<AdTargeting> targeting;              // local indices
  AdKeyTable keys;                                 // local indices
  std::unique_ptr<TargetingIndex> targetingIndex;  // null when none is targeted
  // Every added ad in the ANN index's lists, rows pointing into `embeddings`; null when the index
  // kind takes no additions and the retriever scans them exactly instead.
  std::shared_ptr<const IndexAdditions> indexed;
};

class CatalogFilter;

// The catalog as one batch sees it: the ads (loaded and added), their eligibility and the static
// part of their lightweight score, all as of one moment. Immutable, so any thread may read it; a
// batch (on the batcher thread) loads one snapshot and reads only it from start to end. Parts a
// writer did not change are shared with the snapshot before.
class CatalogSnapshot {
 public:
  size_t catalogAds() const { return ads_->size(); }
  size_t totalAds() const { return ads_->size() + (added_ ? added_->count : 0); }
  const CatalogAds& catalog() const { return *ads_; }
  const AddedAds* added() const { return added_.get(); }  // null before the first addAds
  // Any ad index of this snapshot, loaded or added.
  const float* embedding(size_t ad) const;
  int32_t category(size_t ad) const { return ad < ads_->size() ? ads_->category[ad] : added_->category[ad - ads_->size()]; }
  int32_t advertiser(size_t ad) const { return ad < ads_->size() ? ads_->advertiser[ad] : added_->advertiser[ad - ads_->size()]; }
  // Starts the reads of category(ad) and advertiser(ad): in a large catalog each is a cache miss.
  void prefetchAttributes(size_t ad) const {
    const bool loaded = ad < ads_->size();
    prefetchLine(loaded ? &ads_->category[ad] : &added_->category[ad - ads_->size()]);
    prefetchLine(loaded ? &ads_->advertiser[ad] : &added_->advertiser[ad - ads_->size()]);
  }
  uint32_t campaign(size_t ad) const { return ad < ads_->size() ? ads_->keys.campaign(ad) : added_->keys.campaign(ad - ads_->size()); }
  float prior(size_t ad) const { return (*prior_)[ad]; }

  // The request's filter over every ad of this snapshot (eligibility, targeting, exclusions); a
  // request that is not `personalised` matches no audience criterion. It points into the snapshot,
  // so it must not outlive it.
  CatalogFilter filter(const fb::AdRequest& request, const std::vector<uint32_t>& excludedCampaigns, bool personalised) const;

 private:
  friend class Catalog;
  friend class CatalogFilter;
  std::shared_ptr<const CatalogAds> ads_;
  std::shared_ptr<const AddedAds> added_;
  std::shared_ptr<const std::vector<uint8_t>> eligible_;  // bit per ad index; null: every ad is eligible
  std::shared_ptr<const std::vector<float>> prior_;       // per ad index
};

// One request's view of a snapshot at retrieval: eligibility, its own targeting and its exclusions,
// for the loaded ads and for the added ones. Built once per request on the batcher thread; admits()
// runs per candidate, on whichever compute thread searches for that request.
class CatalogFilter final : public AdFilter {
 public:
  CatalogFilter(const CatalogSnapshot& snapshot, const TargetingRequest& request, Exclusions exclusions);

  bool admits(int64_t ad) const override {
    if (eligible_ != nullptr && ((eligible_[ad >> 3] >> (ad & 7)) & 1) == 0) return false;
    const auto index = static_cast<uint32_t>(ad);
    if (index < catalogAds_) {
      return (targeting_ == nullptr || targeting_->admits(index, matched_)) &&
             (exclusions_.empty() || !exclusions_.excludes(*keys_, index));
    }
    const uint32_t added = index - catalogAds_;
    return (addedTargeting_ == nullptr || addedTargeting_->admits(added, addedMatched_)) &&
           (exclusions_.empty() || !exclusions_.excludes(*addedKeys_, added));
  }
  void admitEach(const int64_t* ads, size_t n, uint8_t* admitted) const override;
  // True when admits() would say yes to every ad: the search can then run without a filter.
  bool admitsEverything() const {
    return eligible_ == nullptr && targeting_ == nullptr && addedTargeting_ == nullptr && exclusions_.empty();
  }
  // Ads, loaded or added, with a rule using a keyword the request matched (TargetingIndex::keywordAds),
  // exact matches first, then phrase, then broad; whether they pass is still admits()'s question.
  std::vector<uint32_t> keywordAds(size_t limit) const;

 private:
  const uint8_t* eligible_;
  const TargetingIndex* targeting_;
  const AdKeyTable* keys_;
  uint32_t catalogAds_;
  const TargetingIndex* addedTargeting_;
  const AdKeyTable* addedKeys_;  // null when no ads were added
  Exclusions exclusions_;
  MatchedCriteria matched_;
  MatchedCriteria addedMatched_;
};

// Holds the current snapshot. Any thread may read it (an atomic load, no lock); the writers
// (setEligibility and setPriors on the JS thread, add on a worker thread) take turns on a mutex,
// and each publishes a new snapshot with one atomic store.
class Catalog {
 public:
  Catalog(const TensorFile& embeddings, const TensorFile& categorical, const std::vector<float>& prior, const AdKeys& keys,
          const std::vector<AdTargeting>& targeting);

  std::shared_ptr<const CatalogSnapshot> snapshot() const { return std::atomic_load(&current_); }

  // Marks ads eligible (1) or not (0) at retrieval; takes effect for batches that start afterwards.
  void setEligibility(const std::vector<uint32_t>& adIndex, const std::vector<uint8_t>& eligible);
  // Replaces the static part of the listed ads' lightweight score; batches in flight keep theirs.
  void setPriors(const std::vector<uint32_t>& adIndex, const std::vector<float>& prior);
  // Publishes the ads (embedded by the ad tower: embeddings [n, D], projection as AddedAds says)
  // under indices totalAds() onwards, eligible and with their priors, and in `index`'s lists when it
  // takes additions; returns the first index.
  uint32_t add(const NewAds& ads, const torch::Tensor& embeddings, const torch::Tensor& projection, const AnnIndex& index);

 private:
  std::shared_ptr<const CatalogSnapshot> current_;
  std::mutex writeMutex_;
};

}  // namespace adserve
