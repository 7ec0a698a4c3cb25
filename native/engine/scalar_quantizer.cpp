#include "engine/scalar_quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <limits>

namespace adserve {
namespace {

constexpr size_t kLanes = ScalarQuantizer::kBlock;

// A block's 16 vectors sit in SIMD lanes, so one dimension of all of them costs a widening load, a
// convert and a fused multiply-add, with no horizontal sums; two accumulators hide the FMA latency.
// Compiler vector extensions turned the byte-to-float widening into scalar code, hence intrinsics.
#if defined(__x86_64__)
__attribute__((target("avx512f"))) inline __m512 load16(const uint8_t* bytes) {
  // The all-lanes masked forms: GCC 12 flags the unmasked ones' undefined start value.
  constexpr __mmask16 all = 0xFFFF;
  return _mm512_maskz_cvtepi32_ps(all, _mm512_maskz_cvtepu8_epi32(all, _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes))));
}

__attribute__((target("avx2,fma"))) inline __m256 load8(const uint8_t* bytes) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes))));
}

__attribute__((target("avx512f"))) void scoreBlocksAvx512(const float* weights, float bias, const uint8_t* codes, size_t blocks, size_t dim,
                                                          float* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* block = codes + b * dim * kLanes;
    __m512 even = _mm512_set1_ps(bias);
    __m512 odd = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 1 < dim; i += 2) {
      even = _mm512_fmadd_ps(_mm512_set1_ps(weights[i]), load16(block + i * kLanes), even);
      odd = _mm512_fmadd_ps(_mm512_set1_ps(weights[i + 1]), load16(block + (i + 1) * kLanes), odd);
    }
    if (i < dim) even = _mm512_fmadd_ps(_mm512_set1_ps(weights[i]), load16(block + i * kLanes), even);
    _mm512_storeu_ps(out + b * kLanes, _mm512_add_ps(even, odd));
  }
}

__attribute__((target("avx2,fma"))) void scoreBlocksAvx2(const float* weights, float bias, const uint8_t* codes, size_t blocks, size_t dim,
                                                         float* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* block = codes + b * dim * kLanes;
    __m256 low = _mm256_set1_ps(bias);
    __m256 high = _mm256_set1_ps(bias);
    for (size_t i = 0; i < dim; ++i) {
      const __m256 weight = _mm256_set1_ps(weights[i]);
      low = _mm256_fmadd_ps(weight, load8(block + i * kLanes), low);
      high = _mm256_fmadd_ps(weight, load8(block + i * kLanes + 8), high);
    }
    _mm256_storeu_ps(out + b * kLanes, low);
    _mm256_storeu_ps(out + b * kLanes + 8, high);
  }
}
#endif

void scoreBlocksPortable(const float* weights, float bias, const uint8_t* codes, size_t blocks, size_t dim, float* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* block = codes + b * dim * kLanes;
    float sums[kLanes];
    std::fill_n(sums, kLanes, bias);
    for (size_t i = 0; i < dim; ++i) {
      for (size_t l = 0; l < kLanes; ++l) sums[l] += weights[i] * static_cast<float>(block[i * kLanes + l]);
    }
    std::copy_n(sums, kLanes, out + b * kLanes);
  }
}

using ScoreBlocks = void (*)(const float*, float, const uint8_t*, size_t, size_t, float*);

ScoreBlocks bestScoreBlocks() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return scoreBlocksAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return scoreBlocksAvx2;
#endif
  return scoreBlocksPortable;
}

const ScoreBlocks scoreBlocks = bestScoreBlocks();

}  // namespace

ScalarQuantizer::ScalarQuantizer(const float* vectors, size_t count, size_t dim)
    : dim_(dim), low_(dim, std::numeric_limits<float>::max()), step_(dim, 0.0f) {
  std::vector<float> high(dim, std::numeric_limits<float>::lowest());
  for (size_t r = 0; r < count; ++r) {
    for (size_t i = 0; i < dim; ++i) {
      low_[i] = std::min(low_[i], vectors[r * dim + i]);
      high[i] = std::max(high[i], vectors[r * dim + i]);
    }
  }
  for (size_t i = 0; i < dim; ++i) {
    if (count == 0) low_[i] = 0.0f;
    // A constant dimension keeps a non-zero step so encoding never divides by zero.
    step_[i] = count == 0 || high[i] <= low_[i] ? 1.0f : (high[i] - low_[i]) / 255.0f;
  }
}

size_t ScalarQuantizer::codeBytes(size_t count) const { return (count + kBlock - 1) / kBlock * kBlock * dim_; }

void ScalarQuantizer::encode(const float* rows, size_t count, uint8_t* codes) const {
  std::fill_n(codes, codeBytes(count), uint8_t{0});
  for (size_t r = 0; r < count; ++r) {
    uint8_t* block = codes + r / kBlock * kBlock * dim_;
    for (size_t i = 0; i < dim_; ++i) {
      const float level = std::nearbyint((rows[r * dim_ + i] - low_[i]) / step_[i]);
      block[i * kBlock + r % kBlock] = static_cast<uint8_t>(std::clamp(level, 0.0f, 255.0f));
    }
  }
}

ScalarQuantizer::Query ScalarQuantizer::fold(const float* query) const {
  Query folded;
  folded.weights.resize(dim_);
  for (size_t i = 0; i < dim_; ++i) {
    folded.weights[i] = query[i] * step_[i];
    folded.bias += query[i] * low_[i];
  }
  return folded;
}

void ScalarQuantizer::score(const Query& query, const uint8_t* codes, size_t count, float* out) const {
  scoreBlocks(query.weights.data(), query.bias, codes, (count + kBlock - 1) / kBlock, dim_, out);
}

}  // namespace adserve
