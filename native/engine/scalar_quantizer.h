#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace adserve {

// 8-bit scalar quantization with a range per dimension. Scanning a million ads is bound by memory
// bandwidth, and codes are a quarter of the float vectors' bytes; the approximate scores only
// choose candidates, which are then re-ranked with the float vectors.
class ScalarQuantizer {
 public:
  // Learns each dimension's range from `count` rows of `dim` floats.
  ScalarQuantizer(const float* vectors, size_t count, size_t dim);

  // Codes are laid out in blocks of kBlock vectors, dimension-major inside a block (dimension i of
  // the block's vectors is kBlock consecutive bytes), so the scan scores a block in SIMD lanes.
  static constexpr size_t kBlock = 16;
  // Bytes that `count` vectors' codes take, the last block padded.
  size_t codeBytes(size_t count) const;
  // rows [count x dim] -> codeBytes(count) bytes of codes; values outside the learned range are clamped.
  void encode(const float* rows, size_t count, uint8_t* codes) const;

  // A query folded into code space: its approximate inner product with the vector behind `code` is
  // bias + sum(weights[i] * code[i]).
  struct Query {
    std::vector<float> weights;
    float bias = 0.0f;
  };
  Query fold(const float* query) const;

  // out[j][r] = approximate inner product of queries[j] with vector r of the codes, for `count`
  // vectors rounded up to a whole block (each out[j] must have room for them). Each block is read
  // once for up to kGroup queries; a query's scores do not depend on the others.
  static constexpr size_t kGroup = 4;
  void score(const Query* const* queries, size_t nq, const uint8_t* codes, size_t count, float* const* out) const;

  size_t dim() const { return dim_; }

 private:
  size_t dim_;
  std::vector<float> low_;
  std::vector<float> step_;
};

}  // namespace adserve
