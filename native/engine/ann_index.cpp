#include "engine/ann_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/IDSelector.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/errors.h"

namespace adserve {
namespace {

bool isEligible(const uint8_t* bitmap, int64_t id) { return bitmap == nullptr || ((bitmap[id >> 3] >> (id & 7)) & 1) != 0; }

}  // namespace

AnnIndex::AnnIndex(const float* vectors, size_t count, size_t dim, const AnnOptions& options)
    : dim_(dim), count_(count), options_(options) {
  if (count == 0) throw EngineError(ErrorCode::InvalidArgument, "cannot index an empty catalog");
  const auto n = static_cast<faiss::Index::idx_t>(count);
  const int d = static_cast<int>(dim);
  if (options.kind == "flat") {
    index_ = std::make_unique<faiss::IndexFlatIP>(d);
    description_ = "Flat";
  } else if (options.kind == "hnsw") {
    auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(d, static_cast<int>(options.hnswM), faiss::METRIC_INNER_PRODUCT);
    hnsw->hnsw.efSearch = static_cast<int>(options.efSearch);
    description_ = "HNSW" + std::to_string(options.hnswM) + ",efSearch=max(" + std::to_string(options.efSearch) + ",k)";
    index_ = std::move(hnsw);
  } else if (options.kind == "ivf" || options.kind == "ivfpq") {
    const size_t nlist = std::max<size_t>(1, std::min(count, options.nlist != 0 ? options.nlist : static_cast<size_t>(std::lround(std::sqrt(double(count))))));
    auto quantizer = std::make_unique<faiss::IndexFlatIP>(d);
    std::unique_ptr<faiss::IndexIVF> ivf;
    if (options.kind == "ivf") {
      ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), d, nlist, faiss::METRIC_INNER_PRODUCT);
      description_ = "IVF" + std::to_string(nlist) + ",Flat";
    } else {
      if (options.pqM == 0 || dim % options.pqM != 0) throw EngineError(ErrorCode::InvalidArgument, "pqM must divide the embedding dimension");
      ivf = std::make_unique<faiss::IndexIVFPQ>(quantizer.get(), d, nlist, options.pqM, 8, faiss::METRIC_INNER_PRODUCT);
      description_ = "IVF" + std::to_string(nlist) + ",PQ" + std::to_string(options.pqM);
    }
    ivf->own_fields = true;
    quantizer.release();  // owned by the IVF index now
    ivf->nprobe = options.nprobe == 0 ? 0 : std::min(options.nprobe, nlist);  // 0: chosen per search from k
    ivf->cp.max_points_per_centroid = 64;  // k-means on a sample: build time stays bounded for 1M+ ads
    ivf->cp.min_points_per_centroid = 5;   // small catalogs train fewer points per list without complaint
    description_ += options.nprobe == 0 ? ",nprobe=auto" : ",nprobe=" + std::to_string(ivf->nprobe);
    ivf->train(n, vectors);
    index_ = std::move(ivf);
  } else {
    throw EngineError(ErrorCode::InvalidArgument, "unknown index kind '" + options.kind + "' (flat, ivf, hnsw, ivfpq)");
  }
  index_->add(n, vectors);
}

AnnIndex::~AnnIndex() = default;

void AnnIndex::search(const float* queries, size_t nq, size_t k, const uint8_t* eligible, float* scores, int64_t* labels) const {
  const auto queryCount = static_cast<faiss::Index::idx_t>(nq);
  if (options_.kind == "hnsw") {
    // Over-fetch, then drop ineligible ads; fewer than k may remain when most ads are ineligible.
    const size_t fetch = eligible == nullptr ? k : std::min(count_, k * options_.hnswOverfetch);
    std::vector<float> fetchedScores(nq * fetch);
    std::vector<faiss::Index::idx_t> fetchedLabels(nq * fetch);
    faiss::SearchParametersHNSW hnswParams;
    hnswParams.efSearch = static_cast<int>(std::max(options_.efSearch, fetch));
    index_->search(queryCount, queries, static_cast<faiss::Index::idx_t>(fetch), fetchedScores.data(), fetchedLabels.data(), &hnswParams);
    for (size_t q = 0; q < nq; ++q) {
      size_t kept = 0;
      for (size_t i = 0; i < fetch && kept < k; ++i) {
        const int64_t id = fetchedLabels[q * fetch + i];
        if (id < 0 || !isEligible(eligible, id)) continue;
        scores[q * k + kept] = fetchedScores[q * fetch + i];
        labels[q * k + kept] = id;
        ++kept;
      }
      for (; kept < k; ++kept) labels[q * k + kept] = -1;
    }
    return;
  }
  std::unique_ptr<faiss::IDSelectorBitmap> selector;
  faiss::SearchParametersIVF ivfParams;
  faiss::SearchParameters flatParams;
  faiss::SearchParameters* params = nullptr;
  if (eligible != nullptr) selector = std::make_unique<faiss::IDSelectorBitmap>(count_, eligible);
  if (options_.kind == "flat") {
    flatParams.sel = selector.get();
    params = &flatParams;
  } else {
    ivfParams.sel = selector.get();
    const auto* ivf = static_cast<const faiss::IndexIVF*>(index_.get());
    ivfParams.nprobe = ivf->nprobe != 0 ? ivf->nprobe : std::min(ivf->nlist, (8 * k * ivf->nlist + count_ - 1) / count_);
    params = &ivfParams;
  }
  static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "FAISS ids are 64-bit");
  index_->search(queryCount, queries, static_cast<faiss::Index::idx_t>(k), scores, reinterpret_cast<faiss::Index::idx_t*>(labels), params);
}

}  // namespace adserve
