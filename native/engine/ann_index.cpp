#include "engine/ann_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include <cblas.h>

#include "engine/errors.h"

namespace adserve {
namespace {

bool isEligible(const uint8_t* bitmap, int64_t id) { return bitmap == nullptr || ((bitmap[id >> 3] >> (id & 7)) & 1) != 0; }

}  // namespace

AnnIndex::AnnIndex(const float* vectors, size_t count, size_t dim, const AnnOptions& options)
    : dim_(dim), count_(count), options_(options) {
  if (count == 0) throw EngineError(ErrorCode::InvalidArgument, "cannot index an empty catalog");
  if (options.kind != "flat" && options.kind != "hnsw" && options.kind != "ivf" && options.kind != "ivfpq") {
    throw EngineError(ErrorCode::InvalidArgument, "unknown index kind '" + options.kind + "' (flat, ivf, hnsw, ivfpq)");
  }
  if (options.kind == "ivfpq" && (options.pqM == 0 || dim % options.pqM != 0)) throw EngineError(ErrorCode::InvalidArgument, "pqM must divide the embedding dimension");
  if (!options.cacheFile.empty()) index_ = readCache();
  loadedFromCache_ = index_ != nullptr;
  if (!index_) {
    index_ = build(vectors);
    if (!options.cacheFile.empty()) writeCache();
  }
  applySearchOptions();
}

std::unique_ptr<faiss::Index> AnnIndex::build(const float* vectors) const {
  const auto n = static_cast<faiss::Index::idx_t>(count_);
  const int d = static_cast<int>(dim_);
  std::unique_ptr<faiss::Index> index;
  if (options_.kind == "flat") {
    index = std::make_unique<faiss::IndexFlatIP>(d);
  } else if (options_.kind == "hnsw") {
    index = std::make_unique<faiss::IndexHNSWFlat>(d, static_cast<int>(options_.hnswM), faiss::METRIC_INNER_PRODUCT);
  } else {
    const size_t nlist = std::max<size_t>(1, std::min(count_, options_.nlist != 0 ? options_.nlist : static_cast<size_t>(std::lround(std::sqrt(double(count_))))));
    auto quantizer = std::make_unique<faiss::IndexFlatIP>(d);
    std::unique_ptr<faiss::IndexIVF> ivf;
    if (options_.kind == "ivf") {
      ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), d, nlist, faiss::METRIC_INNER_PRODUCT);
    } else {
      ivf = std::make_unique<faiss::IndexIVFPQ>(quantizer.get(), d, nlist, options_.pqM, 8, faiss::METRIC_INNER_PRODUCT);
    }
    ivf->own_fields = true;
    quantizer.release();  // owned by the IVF index now
    ivf->cp.max_points_per_centroid = 64;  // k-means on a sample: build time stays bounded for 1M+ ads
    ivf->cp.min_points_per_centroid = 5;   // small catalogs train fewer points per list without complaint
    ivf->train(n, vectors);
    index = std::move(ivf);
  }
  index->add(n, vectors);
  return index;
}

std::unique_ptr<faiss::Index> AnnIndex::readCache() const {
  if (!std::filesystem::exists(options_.cacheFile)) return nullptr;
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::read_index(options_.cacheFile.c_str()));
  } catch (const std::exception&) {
    return nullptr;  // unreadable (torn, other FAISS version): rebuilt and replaced
  }
  const bool kindFits = options_.kind == "flat"    ? dynamic_cast<faiss::IndexFlatIP*>(index.get()) != nullptr
                        : options_.kind == "hnsw"  ? dynamic_cast<faiss::IndexHNSWFlat*>(index.get()) != nullptr
                        : options_.kind == "ivf"   ? dynamic_cast<faiss::IndexIVFFlat*>(index.get()) != nullptr
                                                   : dynamic_cast<faiss::IndexIVFPQ*>(index.get()) != nullptr;
  const bool fits = kindFits && index->d == static_cast<int>(dim_) && index->ntotal == static_cast<faiss::Index::idx_t>(count_) &&
                    index->metric_type == faiss::METRIC_INNER_PRODUCT;
  return fits ? std::move(index) : nullptr;
}

void AnnIndex::writeCache() const {
  // Written aside and renamed, so a crash or a concurrent start never leaves a torn file in place.
  // A cache that cannot be written only costs the next start a rebuild.
  try {
    const std::filesystem::path target(options_.cacheFile);
    if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
    const std::string temporary = options_.cacheFile + ".tmp" + std::to_string(reinterpret_cast<uintptr_t>(this));
    faiss::write_index(index_.get(), temporary.c_str());
    std::filesystem::rename(temporary, target);
  } catch (const std::exception&) {
  }
}

void AnnIndex::applySearchOptions() {
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSWFlat*>(index_.get())) {
    hnsw->hnsw.efSearch = static_cast<int>(options_.efSearch);
    description_ = "HNSW" + std::to_string(options_.hnswM) + ",efSearch=max(" + std::to_string(options_.efSearch) + ",k)";
  } else if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_.get())) {
    ivf->nprobe = options_.nprobe == 0 ? 0 : std::min(options_.nprobe, ivf->nlist);  // 0: chosen per search from k
    description_ = "IVF" + std::to_string(ivf->nlist) + (options_.kind == "ivf" ? ",Flat" : ",PQ" + std::to_string(options_.pqM));
    description_ += options_.nprobe == 0 ? ",nprobe=auto" : ",nprobe=" + std::to_string(ivf->nprobe);
  } else {
    description_ = "Flat";
  }
  if (loadedFromCache_) description_ += " (from cache)";
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
  if (options_.kind == "ivf") {
    const auto* ivf = static_cast<const faiss::IndexIVFFlat*>(index_.get());
    const size_t nprobe = ivf->nprobe != 0 ? ivf->nprobe : autoNprobe(ivf->nlist, k);
    for (size_t q = 0; q < nq; ++q) scanIvfFlat(queries + q * dim_, k, nprobe, eligible, scores + q * k, labels + q * k);
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
    ivfParams.nprobe = ivf->nprobe != 0 ? ivf->nprobe : autoNprobe(ivf->nlist, k);
    params = &ivfParams;
  }
  static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "FAISS ids are 64-bit");
  index_->search(queryCount, queries, static_cast<faiss::Index::idx_t>(k), scores, reinterpret_cast<faiss::Index::idx_t*>(labels), params);
}

size_t AnnIndex::autoNprobe(size_t nlist, size_t k) const {
  // Enough lists to see about 8 x k ads, and at least 1/24 of the lists. The floor matters for large
  // catalogs: with 1.05M demo ads (1025 lists) and k = 500, 8 lists recalled 0.65 of the exact top
  // 500, 32 lists 0.94 and 48 lists 0.98 (2026-11-24).
  return std::min(nlist, std::max((8 * k * nlist + count_ - 1) / count_, (nlist + 23) / 24));
}

void AnnIndex::scanIvfFlat(const float* query, size_t k, size_t nprobe, const uint8_t* eligible, float* scores, int64_t* labels) const {
  const auto* ivf = static_cast<const faiss::IndexIVFFlat*>(index_.get());
  std::vector<float> coarseScores(nprobe);
  std::vector<faiss::Index::idx_t> lists(nprobe);
  ivf->quantizer->search(1, query, static_cast<faiss::Index::idx_t>(nprobe), coarseScores.data(), lists.data());
  // Best k so far as a min-heap on (score, -id): the weakest candidate on top, ties to the lower id.
  using Entry = std::pair<float, int64_t>;
  const auto better = [](const Entry& a, const Entry& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  std::vector<Entry> best;
  best.reserve(k);
  std::vector<float> listScores;
  const int d = static_cast<int>(dim_);
  for (const faiss::Index::idx_t list : lists) {
    if (list < 0) continue;
    const size_t length = ivf->invlists->list_size(list);
    if (length == 0) continue;
    faiss::InvertedLists::ScopedCodes codes(ivf->invlists, list);
    faiss::InvertedLists::ScopedIds ids(ivf->invlists, list);
    // IVF-Flat keeps each list's vectors contiguous: their inner products with the query are one
    // matrix-vector product, which BLAS runs with the CPU's widest vector unit.
    listScores.resize(length);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(length), d, 1.0f, reinterpret_cast<const float*>(codes.get()), d, query, 1, 0.0f,
                listScores.data(), 1);
    for (size_t j = 0; j < length; ++j) {
      const int64_t id = ids[j];
      if (!isEligible(eligible, id)) continue;
      const Entry entry{listScores[j], id};
      if (best.size() < k) {
        best.push_back(entry);
        std::push_heap(best.begin(), best.end(), better);
      } else if (better(entry, best.front())) {
        std::pop_heap(best.begin(), best.end(), better);
        best.back() = entry;
        std::push_heap(best.begin(), best.end(), better);
      }
    }
  }
  std::sort_heap(best.begin(), best.end(), better);
  for (size_t i = 0; i < k; ++i) {
    scores[i] = i < best.size() ? best[i].first : 0.0f;
    labels[i] = i < best.size() ? best[i].second : -1;
  }
}

}  // namespace adserve
