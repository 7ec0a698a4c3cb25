#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace adserve {

// 8-bit scalar quantization with a range per dimension. Scanning a million ads is bound by memory
// bandwidth, and codes are a quarter of the float vectors' bytes; the approximate scores only
// choose candidates, which are then re-ranked with the float vectors.
class ScalarQuantizer {
 public:
  // Learns each dimension's range from `count` rows of `dim` floats. `kernel` names one of
  // kernels() (empty: the first); the kernels give the same bits, so only tests pick one.
  ScalarQuantizer(const float* vectors, size_t count, size_t dim, const std::string& kernel = "");

  // The scan kernels this CPU runs, best first.
  static std::vector<std::string> kernels();
  // Where `name` is in kernels(); an EngineError where this CPU does not run it.
  static size_t kernelIndex(const std::string& name);
  const char* kernel() const;

  // Codes are laid out in blocks of kBlock vectors. Inside a block the dimensions come in groups of
  // four, and a group holds each vector's four codes side by side (vector l at bytes 4l to 4l + 3
  // of the group's 64): the 32-bit lanes of an integer dot-product instruction, one vector a lane.
  // The dimension is padded to a multiple of four with zero codes.
  static constexpr size_t kBlock = 16;
  static constexpr size_t kGroupDims = 4;
  // Bytes that `count` vectors' codes take, the last block padded.
  size_t codeBytes(size_t count) const;
  // Where vector `first` (a multiple of kBlock) starts in the codes.
  size_t codeOffset(size_t first) const { return first * paddedDim_; }
  // rows [count x dim] -> codeBytes(count) bytes of codes; values outside the learned range are clamped.
  void encode(const float* rows, size_t count, uint8_t* codes) const;

  // A query folded into code space with 8-bit weights: its approximate inner product with the
  // vector behind `code` is bias + scale * sum(weight[i] * code[i]). The sum is exact in 32-bit
  // integers, so every kernel gives the same bits. Rounding the weights moves every score of a query
  // by nearly the same amount (the codes' mean times the rounding), which does not change how the
  // query ranks its candidates, the only use of these scores.
  struct Query {
    // One word per group of four dimensions: their weights in [-127, 127] as bytes, the group's first
    // dimension in the lowest byte (the lanes' order of the codes).
    std::vector<int32_t> weights;
    float scale = 0.0f;
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
  size_t kernel_;  // index into kernels()
  size_t dim_;
  size_t paddedDim_;
  std::vector<float> low_;
  std::vector<float> step_;
};

}  // namespace adserve
