#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/scalar_quantizer.h"

namespace faiss {
struct Index;
}

namespace adserve {

// Which FAISS index holds the ad embeddings (inner-product metric) and how it searches.
struct AnnOptions {
  std::string kind = "ivf";  // flat | ivf | hnsw | ivfpq
  size_t nlist = 0;          // IVF lists; 0 picks about sqrt(ads)
  size_t nprobe = 0;         // IVF lists scanned per query; 0 scans enough lists to see about 8 * k ads
  size_t hnswM = 16;
  size_t efSearch = 256;  // raised to k at search time when smaller (HNSW cannot return more)
  size_t pqM = 16;        // IVF-PQ sub-quantizers (must divide the dimension)
  // IVF-Flat list scan: "sq8" reads 8-bit codes of the vectors (a quarter of the memory traffic) and
  // re-ranks the best k + k/4 with the float vectors; "float" reads the float vectors themselves.
  std::string ivfScan = "sq8";
  // The 8-bit scan's kernel, one of ScalarQuantizer::kernels() (empty: the CPU's best). They all give
  // the same bits; naming one is for tests that compare them.
  std::string scanKernel;
  size_t hnswOverfetch = 4;  // HNSW cannot filter inside the search here: fetch k * this, then filter
  // Where the built index is kept between starts (empty: always build). The caller names it after
  // everything that shapes the index (the embeddings' hash and the build options); a file that does
  // not fit the catalog is rebuilt and replaced.
  std::string cacheFile;
};

// Which ads one query may return (eligibility, targeting). The IVF-Flat scan asks only about ads
// that score well enough to enter the result so far, so a costly test runs on few of the ads seen.
class AdFilter {
 public:
  virtual ~AdFilter() = default;
  virtual bool admits(int64_t ad) const = 0;
  // admitted[i] = admits(ads[i]) for each of the n ads. Overridden where the test reads memory at
  // random places, so that the reads of several ads overlap instead of waiting one after another.
  virtual void admitEach(const int64_t* ads, size_t n, uint8_t* admitted) const {
    for (size_t i = 0; i < n; ++i) admitted[i] = admits(ads[i]) ? 1 : 0;
  }
};

// Ads added after the index was built, each in the IVF list of its nearest coarse centroid, where
// the list scan reads them next to the list's own ads (same filter, same re-rank). Immutable once
// published with the catalog snapshot that holds the ads: an addition copies only the lists it
// touches and shares the others with the version before, so a batch in flight keeps its lists.
struct IndexAdditions {
  struct List {
    std::vector<int64_t> ids;    // ad indices, ascending
    std::vector<uint8_t> codes;  // the 8-bit scan's codes of those ads, in ids' order; empty for the float scan
  };
  // Every added ad's embedding, [count x dim], ad index AnnIndex::size() first; owned by the
  // catalog's AddedAds that holds these additions.
  const float* rows = nullptr;
  size_t count = 0;
  std::vector<std::shared_ptr<const List>> lists;  // one per IVF list; null where no ad was added
};

// Approximate maximum-inner-product search over ad embeddings whose labels are dense ad indices.
// Immutable after construction: any number of threads may search at once.
class AnnIndex {
 public:
  // `vectors` must outlive the index: the 8-bit IVF scan re-ranks with them.
  AnnIndex(const float* vectors, size_t count, size_t dim, const AnnOptions& options);
  ~AnnIndex();

  // queries [nq x dim] -> scores/labels [nq x k]: each query's best k, in no particular order (FAISS's
  // own kinds happen to give them best first), then -1 labels where fewer ads qualify.
  // `filters` holds one filter per query (null: every ad) or none at all. Filtered-out ads are
  // excluded inside the search (IVF, flat), so they never take an admitted ad's place. `additions`
  // (null: none) are searched with the lists they sit in; only an index that takesAdditions() has any.
  void search(const float* queries, size_t nq, size_t k, const std::vector<const AdFilter*>& filters, const IndexAdditions* additions,
              float* scores, int64_t* labels) const;

  // IVF-Flat places added ads in its lists. FAISS's own indexes (flat, HNSW, IVF-PQ) are not searched
  // while they grow, so their added ads are scanned exactly beside them (Retriever).
  bool takesAdditions() const { return options_.kind == "ivf"; }
  // `before` (null: none yet) grown by the added ads after its own: `rows` holds all of them,
  // [total x dim], those of `before` first, and must outlive the result. Thread-safe (const).
  std::shared_ptr<const IndexAdditions> withAdded(const IndexAdditions* before, const float* rows, size_t total) const;

  size_t size() const { return count_; }
  const std::string& description() const { return description_; }
  bool loadedFromCache() const { return loadedFromCache_; }

 private:
  std::unique_ptr<faiss::Index> build(const float* vectors) const;
  size_t autoNprobe(size_t nlist, size_t k) const;
  // The `nprobe` IVF lists whose centroids score best for each query, best first: [nq x nprobe].
  std::vector<int64_t> probedLists(const float* queries, size_t nq, size_t nprobe) const;
  // IVF-Flat search with our own list scan (8-bit codes or BLAS over the float vectors).
  void scanIvfFlat(const float* queries, size_t nq, size_t k, size_t nprobe, const std::vector<const AdFilter*>& filters,
                   const IndexAdditions* additions, float* scores, int64_t* labels) const;
  // The float embedding of a loaded or added ad.
  const float* rowOf(int64_t ad, const IndexAdditions* additions) const {
    const auto index = static_cast<size_t>(ad);
    return index < count_ ? vectors_ + index * dim_ : additions->rows + (index - count_) * dim_;
  }
  std::unique_ptr<faiss::Index> readCache() const;
  void writeCache() const;
  void applySearchOptions();
  void quantizeLists();

  bool loadedFromCache_ = false;
  size_t dim_;
  size_t count_;
  AnnOptions options_;
  std::string description_;
  std::unique_ptr<faiss::Index> index_;
  const float* vectors_;
  // The 8-bit scan's copy of each IVF list, in the inverted lists' order; empty for other scans.
  std::unique_ptr<ScalarQuantizer> quantizer_;
  std::vector<std::vector<uint8_t>> listCodes_;
};

}  // namespace adserve
