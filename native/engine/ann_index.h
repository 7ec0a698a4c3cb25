#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace faiss {
struct Index;
}

namespace adserve {

// Which FAISS index holds the ad embeddings (inner-product metric) and how it searches.
struct AnnOptions {
  std::string kind = "ivf";   // flat | ivf | hnsw | ivfpq
  size_t nlist = 0;           // IVF lists; 0 picks about sqrt(ads)
  size_t nprobe = 0;          // IVF lists scanned per query; 0 scans enough lists to see about 8 * k ads
  size_t hnswM = 16;
  size_t efSearch = 256;      // raised to k at search time when smaller (HNSW cannot return more)
  size_t pqM = 16;            // IVF-PQ sub-quantizers (must divide the dimension)
  size_t hnswOverfetch = 4;   // HNSW cannot filter inside the search here: fetch k * this, then filter
  // Where the built index is kept between starts (empty: always build). The caller names it after
  // everything that shapes the index (the embeddings' hash and the build options); a file that does
  // not fit the catalog is rebuilt and replaced.
  std::string cacheFile;
};

// Approximate maximum-inner-product search over ad embeddings whose labels are dense ad indices.
// Immutable after construction: any number of threads may search at once.
class AnnIndex {
 public:
  AnnIndex(const float* vectors, size_t count, size_t dim, const AnnOptions& options);
  ~AnnIndex();

  // queries [nq x dim] -> scores/labels [nq x k], best first, -1 labels where fewer ads qualify.
  // `eligible` is a bitmap over ad indices (bit i of byte i / 8), or null for every ad; ineligible ads
  // are excluded inside the search (IVF, flat), so they never take an eligible ad's place.
  void search(const float* queries, size_t nq, size_t k, const uint8_t* eligible, float* scores, int64_t* labels) const;

  size_t size() const { return count_; }
  const std::string& description() const { return description_; }
  bool loadedFromCache() const { return loadedFromCache_; }

 private:
  std::unique_ptr<faiss::Index> build(const float* vectors) const;
  size_t autoNprobe(size_t nlist, size_t k) const;
  // IVF-Flat search of one query with our own list scan (BLAS; eligibility checked per vector).
  void scanIvfFlat(const float* query, size_t k, size_t nprobe, const uint8_t* eligible, float* scores, int64_t* labels) const;
  std::unique_ptr<faiss::Index> readCache() const;
  void writeCache() const;
  void applySearchOptions();

  bool loadedFromCache_ = false;
  size_t dim_;
  size_t count_;
  AnnOptions options_;
  std::string description_;
  std::unique_ptr<faiss::Index> index_;
};

}  // namespace adserve
