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
#include <limits>
#include <vector>

#include <cblas.h>

#include "engine/build_info.h"
#include "engine/errors.h"
#include "engine/prefetch.h"
#include "engine/sort_best.h"

namespace adserve {
namespace {

const AdFilter* filterOf(const std::vector<const AdFilter*>& filters, size_t query) { return filters.empty() ? nullptr : filters[query]; }

bool admitted(const AdFilter* filter, int64_t ad) { return filter == nullptr || filter->admits(ad); }

// FAISS's own searches (flat, IVF-PQ) consult an AdFilter through its IDSelector hook.
struct FilterSelector final : faiss::IDSelector {
  explicit FilterSelector(const AdFilter& filter) : filter(filter) {}
  bool is_member(faiss::Index::idx_t id) const override { return filter.admits(id); }
  const AdFilter& filter;
};

// Keeps the best k of `entries`, in no particular order: the shortlist ranks them again by its own
// score, and sorting a thousand candidates cost about 35 µs a query.
void keepBest(std::vector<RankedAd>& entries, size_t k) {
  if (entries.size() <= k) return;
  std::nth_element(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(k - 1), entries.end(), RankedAd::ranksAbove);
  entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(k), entries.end());
}

// `entries` (at most k) into k scores and labels; -1 labels after the last ad found.
void writeBest(const std::vector<RankedAd>& entries, size_t k, float* scores, int64_t* labels) {
  for (size_t i = 0; i < k; ++i) {
    scores[i] = i < entries.size() ? entries[i].score() : 0.0f;
    labels[i] = i < entries.size() ? entries[i].ad() : -1;
  }
}

// One probed list's part of a query's scanned candidates: a score per ad.
struct Run {
  const float* scores;
  const int64_t* ids;
  size_t count;
};

// The best k admitted candidates among `candidates` (all of them, when there is no filter), in no
// particular order; `candidates` is reordered. The filter runs best first, in rounds: each round
// asks about as many of the best unasked candidates as the admitted share seen so far needs to fill
// the result (1/16 at least, so that a filter refusing nearly everything takes few rounds), so
// every candidate left unasked ranks below every admitted one. Where most candidates pass, it asks
// about little more than k.
std::vector<RankedAd> bestAdmitted(std::vector<RankedAd>& candidates, size_t k, const AdFilter* filter) {
  if (filter == nullptr) {
    keepBest(candidates, k);
    return candidates;
  }
  std::vector<RankedAd> best;
  best.reserve(k);
  thread_local std::vector<int64_t> asked;
  thread_local std::vector<uint8_t> admitted;
  size_t next = 0;
  while (best.size() < k && next < candidates.size()) {
    const double share = next == 0 ? 1.0 : std::max(1.0 / 16, static_cast<double>(best.size()) / static_cast<double>(next));
    const auto wanted = static_cast<size_t>(std::ceil(static_cast<double>(k - best.size()) / share));
    const size_t round = std::min(candidates.size() - next, wanted);
    const auto from = candidates.begin() + static_cast<std::ptrdiff_t>(next);
    const auto to = from + static_cast<std::ptrdiff_t>(round);
    if (to != candidates.end()) std::nth_element(from, to - 1, candidates.end(), RankedAd::ranksAbove);
    asked.resize(round);
    admitted.resize(round);
    for (size_t i = 0; i < round; ++i) asked[i] = from[static_cast<std::ptrdiff_t>(i)].ad();
    filter->admitEach(asked.data(), round, admitted.data());
    for (size_t i = 0; i < round; ++i) {
      if (admitted[i] != 0) best.push_back(from[static_cast<std::ptrdiff_t>(i)]);
    }
    next += round;
  }
  keepBest(best, k);
  return best;
}

// The best k admitted ads of one query's scanned candidates, in no particular order. Only
// candidates at or above a floor are ranked, the floor set from a sample of the scores at about the
// 2k-th best; should fewer than k of those pass the filter, every candidate is ranked, so the result
// is exactly the best k admitted.
std::vector<RankedAd> filteredTop(const std::vector<Run>& runs, size_t k, const AdFilter* filter) {
  constexpr size_t kSampleStride = 8;
  size_t total = 0;
  for (const Run& run : runs) total += run.count;
  float floor = -std::numeric_limits<float>::infinity();
  if (total >= 4 * k) {
    thread_local std::vector<float> sample;
    sample.clear();
    for (const Run& run : runs) {
      for (size_t i = 0; i < run.count; i += kSampleStride) sample.push_back(run.scores[i]);
    }
    const size_t rank = std::min(sample.size() - 1, 2 * k / kSampleStride);
    std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(rank), sample.end(), std::greater<float>());
    floor = sample[rank];
  }
  thread_local std::vector<RankedAd> candidatesOfThread;
  thread_local std::vector<uint32_t> passingOfThread;
  // Bound once: a thread_local named inside the loop is looked up again after every call.
  std::vector<RankedAd>& candidates = candidatesOfThread;
  std::vector<uint32_t>& passing = passingOfThread;
  constexpr size_t kIdsAhead = 16;
  for (;;) {
    candidates.clear();
    for (const Run& run : runs) {
      // Which scores pass, without a branch: few do, and a branch per score mispredicted on each
      // one that did, which then waited alone for its id's cache miss. Collected first, the ids'
      // loads overlap.
      passing.resize(run.count);
      size_t count = 0;
      for (size_t i = 0; i < run.count; ++i) {
        passing[count] = static_cast<uint32_t>(i);
        count += run.scores[i] >= floor ? 1 : 0;
      }
      for (size_t j = 0; j < count; ++j) {
        if (j + kIdsAhead < count) prefetchLine(run.ids + passing[j + kIdsAhead]);
        candidates.emplace_back(run.scores[passing[j]], run.ids[passing[j]]);
      }
    }
    std::vector<RankedAd> best = bestAdmitted(candidates, k, filter);
    if (best.size() == k || floor == -std::numeric_limits<float>::infinity()) return best;
    floor = -std::numeric_limits<float>::infinity();
  }
}

}  // namespace

AnnIndex::AnnIndex(const float* vectors, size_t count, size_t dim, const AnnOptions& options)
    : dim_(dim), count_(count), options_(options), vectors_(vectors) {
  if (count == 0) throw EngineError(ErrorCode::InvalidArgument, "cannot index an empty catalog");
  if (options.kind != "flat" && options.kind != "hnsw" && options.kind != "ivf" && options.kind != "ivfpq") {
    throw EngineError(ErrorCode::InvalidArgument, "unknown index kind '" + options.kind + "' (flat, ivf, hnsw, ivfpq)");
  }
  if (options.ivfScan != "sq8" && options.ivfScan != "float")
    throw EngineError(ErrorCode::InvalidArgument, "ivfScan must be 'sq8' or 'float'");
  if (!options.scanKernel.empty()) ScalarQuantizer::kernelIndex(options.scanKernel);  // fails the open on a kernel this CPU lacks
  if (options.kind == "ivfpq" && (options.pqM == 0 || dim % options.pqM != 0))
    throw EngineError(ErrorCode::InvalidArgument, "pqM must divide the embedding dimension");
  if (!options.cacheFile.empty()) index_ = readCache();
  loadedFromCache_ = index_ != nullptr;
  if (!index_) {
    index_ = build(vectors);
    if (!options.cacheFile.empty()) writeCache();
  }
  if (options.kind == "ivf" && options.ivfScan == "sq8") quantizeLists();
  applySearchOptions();
}

void AnnIndex::quantizeLists() {
  const auto* ivf = static_cast<const faiss::IndexIVFFlat*>(index_.get());
  quantizer_ = std::make_unique<ScalarQuantizer>(vectors_, count_, dim_, options_.scanKernel);
  listCodes_.resize(ivf->nlist);
  for (size_t list = 0; list < ivf->nlist; ++list) {
    const size_t length = ivf->invlists->list_size(list);
    faiss::InvertedLists::ScopedCodes codes(ivf->invlists, list);
    listCodes_[list].resize(quantizer_->codeBytes(length));
    quantizer_->encode(reinterpret_cast<const float*>(codes.get()), length, listCodes_[list].data());
  }
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
    const size_t nlist = std::max<size_t>(
        1, std::min(count_, options_.nlist != 0 ? options_.nlist : static_cast<size_t>(std::lround(std::sqrt(double(count_))))));
    auto quantizer = std::make_unique<faiss::IndexFlatIP>(d);
    std::unique_ptr<faiss::IndexIVF> ivf;
    if (options_.kind == "ivf") {
      ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), d, nlist, faiss::METRIC_INNER_PRODUCT);
    } else {
      ivf = std::make_unique<faiss::IndexIVFPQ>(quantizer.get(), d, nlist, options_.pqM, 8, faiss::METRIC_INNER_PRODUCT);
    }
    ivf->own_fields = true;
    quantizer.release();                   // owned by the IVF index now
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
  const bool kindFits = options_.kind == "flat"   ? dynamic_cast<faiss::IndexFlatIP*>(index.get()) != nullptr
                        : options_.kind == "hnsw" ? dynamic_cast<faiss::IndexHNSWFlat*>(index.get()) != nullptr
                        : options_.kind == "ivf"  ? dynamic_cast<faiss::IndexIVFFlat*>(index.get()) != nullptr
                                                  : dynamic_cast<faiss::IndexIVFPQ*>(index.get()) != nullptr;
  // The IVF-Flat scan reads the coarse centroids straight from a flat quantizer (probedLists).
  const auto* ivf = dynamic_cast<faiss::IndexIVFFlat*>(index.get());
  const bool quantizerFits = ivf == nullptr || dynamic_cast<const faiss::IndexFlat*>(ivf->quantizer) != nullptr;
  const bool fits = kindFits && quantizerFits && index->d == static_cast<int>(dim_) &&
                    index->ntotal == static_cast<faiss::Index::idx_t>(count_) && index->metric_type == faiss::METRIC_INNER_PRODUCT;
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
    if (quantizer_) description_ += std::string(",scan=sq8(") + quantizer_->kernel() + ")+rerank";
  } else {
    description_ = "Flat";
  }
  if (loadedFromCache_) description_ += " (from cache)";
}

AnnIndex::~AnnIndex() = default;

std::shared_ptr<const IndexAdditions> AnnIndex::withAdded(const IndexAdditions* before, const float* rows, size_t total) const {
  if (!takesAdditions()) throw EngineError(ErrorCode::Index, "this index kind takes no added ads");
  const auto* ivf = static_cast<const faiss::IndexIVFFlat*>(index_.get());
  auto next = std::make_shared<IndexAdditions>();
  next->rows = rows;
  next->count = total;
  next->lists = before != nullptr ? before->lists : std::vector<std::shared_ptr<const IndexAdditions::List>>(ivf->nlist);
  const size_t first = before != nullptr ? before->count : 0;
  if (total <= first) return next;
  // The list a loaded ad would have gone to: the coarse quantizer's best inner product.
  std::vector<faiss::Index::idx_t> assigned(total - first);
  ivf->quantizer->assign(static_cast<faiss::Index::idx_t>(total - first), rows + first * dim_, assigned.data());
  std::vector<std::shared_ptr<IndexAdditions::List>> touched(ivf->nlist);
  for (size_t j = first; j < total; ++j) {
    const auto list = static_cast<size_t>(assigned[j - first]);
    if (!touched[list]) {
      touched[list] =
          next->lists[list] ? std::make_shared<IndexAdditions::List>(*next->lists[list]) : std::make_shared<IndexAdditions::List>();
    }
    touched[list]->ids.push_back(static_cast<int64_t>(count_ + j));
  }
  std::vector<float> listRows;
  for (size_t list = 0; list < ivf->nlist; ++list) {
    if (!touched[list]) continue;
    IndexAdditions::List& grown = *touched[list];
    if (quantizer_) {
      // Re-encoded whole: the codes' blocks interleave 16 ads, so an appended ad shares a block with
      // earlier ones. The learned range stays the loaded ads'; values outside it are clamped.
      listRows.resize(grown.ids.size() * dim_);
      for (size_t i = 0; i < grown.ids.size(); ++i) {
        std::copy_n(rows + (static_cast<size_t>(grown.ids[i]) - count_) * dim_, dim_,
                    listRows.begin() + static_cast<std::ptrdiff_t>(i * dim_));
      }
      grown.codes.resize(quantizer_->codeBytes(grown.ids.size()));
      quantizer_->encode(listRows.data(), grown.ids.size(), grown.codes.data());
    }
    next->lists[list] = std::move(touched[list]);
  }
  return next;
}

void AnnIndex::search(const float* queries, size_t nq, size_t k, const std::vector<const AdFilter*>& filters,
                      const IndexAdditions* additions, float* scores, int64_t* labels) const {
  if (!filters.empty() && filters.size() != nq) throw EngineError(ErrorCode::InvalidArgument, "one filter per query is needed");
  if (additions != nullptr && !takesAdditions()) throw EngineError(ErrorCode::Index, "this index kind takes no added ads");
  if (options_.kind == "ivf") {
    const auto* ivf = static_cast<const faiss::IndexIVFFlat*>(index_.get());
    scanIvfFlat(queries, nq, k, ivf->nprobe != 0 ? ivf->nprobe : autoNprobe(ivf->nlist, k), filters, additions, scores, labels);
    return;
  }
  const bool filtered = std::any_of(filters.begin(), filters.end(), [](const AdFilter* filter) { return filter != nullptr; });
  if (options_.kind == "hnsw") {
    // Over-fetch, then filter; fewer than k may remain when most ads are filtered out.
    const size_t fetch = filtered ? std::min(count_, k * options_.hnswOverfetch) : k;
    std::vector<float> fetchedScores(nq * fetch);
    std::vector<faiss::Index::idx_t> fetchedLabels(nq * fetch);
    faiss::SearchParametersHNSW hnswParams;
    hnswParams.efSearch = static_cast<int>(std::max(options_.efSearch, fetch));
    index_->search(static_cast<faiss::Index::idx_t>(nq), queries, static_cast<faiss::Index::idx_t>(fetch), fetchedScores.data(),
                   fetchedLabels.data(), &hnswParams);
    for (size_t q = 0; q < nq; ++q) {
      size_t kept = 0;
      for (size_t i = 0; i < fetch && kept < k; ++i) {
        const int64_t id = fetchedLabels[q * fetch + i];
        if (id < 0 || !admitted(filterOf(filters, q), id)) continue;
        scores[q * k + kept] = fetchedScores[q * fetch + i];
        labels[q * k + kept] = id;
        ++kept;
      }
      for (; kept < k; ++kept) labels[q * k + kept] = -1;
    }
    return;
  }
  static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "FAISS ids are 64-bit");
  // Flat and IVF-PQ: FAISS's search, one query at a time when each has its own filter.
  const auto searchOne = [&](size_t first, size_t count, const AdFilter* filter) {
    std::unique_ptr<FilterSelector> selector = filter ? std::make_unique<FilterSelector>(*filter) : nullptr;
    faiss::SearchParametersIVF ivfParams;
    faiss::SearchParameters flatParams;
    faiss::SearchParameters* params = &flatParams;
    if (options_.kind == "ivfpq") {
      const auto* ivf = static_cast<const faiss::IndexIVF*>(index_.get());
      ivfParams.nprobe = ivf->nprobe != 0 ? ivf->nprobe : autoNprobe(ivf->nlist, k);
      params = &ivfParams;
    }
    params->sel = selector.get();
    index_->search(static_cast<faiss::Index::idx_t>(count), queries + first * dim_, static_cast<faiss::Index::idx_t>(k), scores + first * k,
                   reinterpret_cast<faiss::Index::idx_t*>(labels + first * k), params);
  };
  if (!filtered) {
    searchOne(0, nq, nullptr);
  } else {
    for (size_t q = 0; q < nq; ++q) searchOne(q, 1, filters[q]);
  }
}

size_t AnnIndex::autoNprobe(size_t nlist, size_t k) const {
  // Enough lists to see about 8 x k ads, and at least 1/24 of the lists. The floor matters for large
  // catalogs: with 1.05M demo ads (1025 lists) and k = 500, 8 lists recalled 0.65 of the exact top
  // 500, 32 lists 0.94 and 48 lists 0.98 (2026-11-24).
  return std::min(nlist, std::max((8 * k * nlist + count_ - 1) / count_, (nlist + 23) / 24));
}

std::vector<int64_t> AnnIndex::probedLists(const float* queries, size_t nq, size_t nprobe) const {
  // One matrix-vector product per query, not FAISS's search: that switches to one matrix product for
  // the whole batch at 20 queries, whose rounding follows the batch's size, so a list at the edge
  // of a query's probe could change with its neighbours (and below 20 it runs an unvectorised loop
  // in this FAISS build, 2-4% of the engine's CPU at 1.05M ads).
  const auto* ivf = static_cast<const faiss::IndexIVFFlat*>(index_.get());
  const auto* centroids = static_cast<const faiss::IndexFlat*>(ivf->quantizer);
  const size_t nlist = ivf->nlist;
  std::vector<float> similarity(nlist);
  std::vector<RankedAd> ranked;
  ranked.reserve(nlist);
  std::vector<int64_t> lists(nq * nprobe);
  for (size_t q = 0; q < nq; ++q) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(nlist), static_cast<int>(dim_), 1.0f, centroids->get_xb(),
                static_cast<int>(dim_), queries + q * dim_, 1, 0.0f, similarity.data(), 1);
    ranked.clear();
    for (size_t list = 0; list < nlist; ++list) ranked.emplace_back(similarity[list], static_cast<int64_t>(list));
    sortBest(ranked.begin(), ranked.end(), nprobe, RankedAd::ranksAbove);
    for (size_t probe = 0; probe < nprobe; ++probe) lists[q * nprobe + probe] = ranked[probe].ad();
  }
  return lists;
}

void AnnIndex::scanIvfFlat(const float* queries, size_t nq, size_t k, size_t nprobe, const std::vector<const AdFilter*>& filters,
                           const IndexAdditions* additions, float* scores, int64_t* labels) const {
  const auto* ivf = static_cast<const faiss::IndexIVFFlat*>(index_.get());
  const std::vector<int64_t> lists = probedLists(queries, nq, nprobe);
  const auto addedTo = [&](size_t list) { return additions != nullptr ? additions->lists[list].get() : nullptr; };
  const auto listLength = [&](size_t list) {
    const IndexAdditions::List* added = addedTo(list);
    return ivf->invlists->list_size(list) + (added != nullptr ? added->ids.size() : 0);
  };

  // List-major: each probed list is read once for every query of the batch that probes it, its
  // scores landing in that query's own run of the batch's scores (the query's lists in probe order, as
  // if it searched alone), so a request's candidates never depend on its batch neighbours.
  struct Probe {
    size_t query;
    size_t at;  // where its scores start in the batch's scores
  };
  std::vector<std::vector<Probe>> probesOf(ivf->nlist);
  std::vector<size_t> queryStart(nq + 1, 0);
  for (size_t q = 0; q < nq; ++q) {
    size_t at = queryStart[q];
    for (size_t probe = 0; probe < nprobe; ++probe) {
      const faiss::Index::idx_t list = lists[q * nprobe + probe];
      if (list < 0) continue;
      probesOf[static_cast<size_t>(list)].push_back({q, at});
      at += listLength(static_cast<size_t>(list));
    }
    queryStart[q + 1] = at;
  }
  std::vector<size_t> probed;
  for (size_t list = 0; list < ivf->nlist; ++list) {
    if (!probesOf[list].empty() && listLength(list) != 0) probed.push_back(list);
  }
  std::vector<ScalarQuantizer::Query> folded(quantizer_ ? nq : 0);
  for (size_t q = 0; q < folded.size(); ++q) folded[q] = quantizer_->fold(queries + q * dim_);
  // Kept on the calling (batcher) thread: about 0.5 MB per query at 1M ads, which malloc would
  // otherwise map afresh for every batch.
  thread_local std::vector<float> batchScores;
  batchScores.resize(queryStart[nq]);
  float* const probedScores = batchScores.data();  // the compute threads share the batcher thread's buffer

  const int d = static_cast<int>(dim_);
  const int threads = static_cast<int>(std::min<size_t>(std::max(probed.size(), nq), static_cast<size_t>(computeThreads())));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
#pragma omp for schedule(dynamic, 1)
    for (size_t i = 0; i < probed.size(); ++i) {
      const size_t list = probed[i];
      const std::vector<Probe>& probes = probesOf[list];
      const size_t length = ivf->invlists->list_size(list);
      const IndexAdditions::List* added = addedTo(list);
      if (quantizer_) {
        // A chunk of blocks stays in L1 while every probing query scores it, kGroup queries per read.
        constexpr size_t kChunk = 8 * ScalarQuantizer::kBlock;
        constexpr size_t kGroup = ScalarQuantizer::kGroup;
        static_assert(kGroup == 4, "one score buffer per query of a group");
        float chunkScores[kGroup][kChunk];
        float* const into[kGroup] = {chunkScores[0], chunkScores[1], chunkScores[2], chunkScores[3]};
        const ScalarQuantizer::Query* group[kGroup];
        const auto scanCodes = [&](const uint8_t* codes, size_t count, size_t offset) {
          for (size_t first = 0; first < count; first += kChunk) {
            const size_t rows = std::min(kChunk, count - first);
            for (size_t from = 0; from < probes.size(); from += kGroup) {
              const size_t n = std::min(kGroup, probes.size() - from);
              for (size_t j = 0; j < n; ++j) group[j] = &folded[probes[from + j].query];
              quantizer_->score(group, n, codes + quantizer_->codeOffset(first), rows, into);
              for (size_t j = 0; j < n; ++j) std::copy_n(chunkScores[j], rows, probedScores + probes[from + j].at + offset + first);
            }
          }
        };
        scanCodes(listCodes_[list].data(), length, 0);
        if (added != nullptr) scanCodes(added->codes.data(), added->ids.size(), length);
      } else {
        // IVF-Flat keeps each list's vectors contiguous, so scoring them is one matrix-vector
        // product, which BLAS runs with the CPU's widest vector unit; one per query (not one matrix
        // product for all) keeps each query's scores bit-identical whatever its batch.
        faiss::InvertedLists::ScopedCodes codes(ivf->invlists, list);
        for (const Probe& probe : probes) {
          const float* query = queries + probe.query * dim_;
          float* out = probedScores + probe.at;
          if (length != 0) {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(length), d, 1.0f, reinterpret_cast<const float*>(codes.get()), d,
                        query, 1, 0.0f, out, 1);
          }
          if (added != nullptr) {
            for (size_t j = 0; j < added->ids.size(); ++j) out[length + j] = cblas_sdot(d, query, 1, rowOf(added->ids[j], additions), 1);
          }
        }
      }
    }
    // The 8-bit scan keeps a margin of candidates for the exact re-rank, so its rounding seldom
    // pushes an ad out of the top k.
    const size_t fetch = quantizer_ ? k + k / 4 : k;
    thread_local std::vector<Run> runs;
#pragma omp for schedule(dynamic, 1)
    for (size_t q = 0; q < nq; ++q) {
      // The lists' own id arrays, read in place (the index's lists live in memory, whose get_ids
      // hands out the list's array and whose release is a no-op).
      runs.clear();
      const float* at = probedScores + queryStart[q];
      for (size_t probe = 0; probe < nprobe; ++probe) {
        const faiss::Index::idx_t list = lists[q * nprobe + probe];
        if (list < 0) continue;
        const size_t length = ivf->invlists->list_size(static_cast<size_t>(list));
        runs.push_back({at, ivf->invlists->get_ids(static_cast<size_t>(list)), length});
        at += length;
        if (const IndexAdditions::List* added = addedTo(static_cast<size_t>(list))) {
          runs.push_back({at, added->ids.data(), added->ids.size()});
          at += added->ids.size();
        }
      }
      std::vector<RankedAd> best = filteredTop(runs, fetch, filterOf(filters, q));
      if (quantizer_) {
        // The kept ads' float rows lie at random places in a table that outgrows the cache; each
        // is fetched a few ads ahead of its dot product, which otherwise waits on memory, after one
        // line of every row, so that their page walks overlap (as in the fusion's gather).
        const float* query = queries + q * dim_;
        constexpr size_t kAhead = 6;
        const size_t rowBytes = dim_ * sizeof(float);
        for (const RankedAd& entry : best) prefetchLine(rowOf(entry.ad(), additions));
        for (size_t i = 0; i < std::min(kAhead, best.size()); ++i) prefetchRow(rowOf(best[i].ad(), additions), rowBytes);
        for (size_t i = 0; i < best.size(); ++i) {
          if (i + kAhead < best.size()) prefetchRow(rowOf(best[i + kAhead].ad(), additions), rowBytes);
          const int64_t ad = best[i].ad();
          best[i] = RankedAd(cblas_sdot(d, query, 1, rowOf(ad, additions), 1), ad);
        }
      }
      keepBest(best, k);
      writeBest(best, k, scores + q * k, labels + q * k);
    }
  }
}

}  // namespace adserve
