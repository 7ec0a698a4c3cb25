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

// Up to kGroup queries over the same blocks: each dimension's codes are widened once for all of them.
// Each query has its own two accumulators (even and odd dimensions) and order of additions, so its
// scores do not depend on the queries grouped with it.
template <size_t N>
__attribute__((target("avx512f"))) void scoreGroupAvx512(const float* const* weights, const float* bias, const uint8_t* codes,
                                                         size_t blocks, size_t dim, float* const* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* block = codes + b * dim * kLanes;
    __m512 even[N];
    __m512 odd[N];
    for (size_t j = 0; j < N; ++j) {
      even[j] = _mm512_set1_ps(bias[j]);
      odd[j] = _mm512_setzero_ps();
    }
    size_t i = 0;
    for (; i + 1 < dim; i += 2) {
      const __m512 first = load16(block + i * kLanes);
      const __m512 second = load16(block + (i + 1) * kLanes);
      for (size_t j = 0; j < N; ++j) {
        even[j] = _mm512_fmadd_ps(_mm512_set1_ps(weights[j][i]), first, even[j]);
        odd[j] = _mm512_fmadd_ps(_mm512_set1_ps(weights[j][i + 1]), second, odd[j]);
      }
    }
    if (i < dim) {
      const __m512 last = load16(block + i * kLanes);
      for (size_t j = 0; j < N; ++j) even[j] = _mm512_fmadd_ps(_mm512_set1_ps(weights[j][i]), last, even[j]);
    }
    for (size_t j = 0; j < N; ++j) _mm512_storeu_ps(out[j] + b * kLanes, _mm512_add_ps(even[j], odd[j]));
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
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return scoreBlocksAvx2;
#endif
  return scoreBlocksPortable;
}

const ScoreBlocks scoreBlocks = bestScoreBlocks();

#if defined(__x86_64__)
const bool groupedAvx512 = __builtin_cpu_supports("avx512f");
#endif

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

void ScalarQuantizer::score(const Query* const* queries, size_t nq, const uint8_t* codes, size_t count, float* const* out) const {
  const size_t blocks = (count + kBlock - 1) / kBlock;
#if defined(__x86_64__)
  if (groupedAvx512) {
    for (size_t first = 0; first < nq; first += kGroup) {
      const size_t n = std::min(kGroup, nq - first);
      const float* weights[kGroup];
      float bias[kGroup];
      for (size_t j = 0; j < n; ++j) {
        weights[j] = queries[first + j]->weights.data();
        bias[j] = queries[first + j]->bias;
      }
      float* const* into = out + first;
      switch (n) {
        case 1:
          scoreGroupAvx512<1>(weights, bias, codes, blocks, dim_, into);
          break;
        case 2:
          scoreGroupAvx512<2>(weights, bias, codes, blocks, dim_, into);
          break;
        case 3:
          scoreGroupAvx512<3>(weights, bias, codes, blocks, dim_, into);
          break;
        default:
          scoreGroupAvx512<4>(weights, bias, codes, blocks, dim_, into);
          break;
      }
    }
    return;
  }
#endif
  for (size_t j = 0; j < nq; ++j) scoreBlocks(queries[j]->weights.data(), queries[j]->bias, codes, blocks, dim_, out[j]);
}

}  // namespace adserve
