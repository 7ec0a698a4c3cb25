#include "engine/scalar_quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <limits>

#include "engine/errors.h"

namespace adserve {
namespace {

constexpr size_t kLanes = ScalarQuantizer::kBlock;
// Bytes of one group of four dimensions in a block.
constexpr size_t kGroupBytes = ScalarQuantizer::kGroupDims * kLanes;

// A kernel: `blocks` blocks of codes against one query's weights, packed four to a 32-bit word
// (a dimension group's), into 16 scores a block.
struct Folded {
  const int32_t* weights;  // one word per dimension group
  float scale;
  float bias;
};

#if defined(__x86_64__)
// VNNI multiplies a lane's four unsigned codes by the group's four signed weights and adds them to
// the lane in one instruction: a block's 64 multiply-adds of a group per instruction, against 16
// per fused multiply-add on widened floats. A query keeps four accumulators (groups taken in turn)
// so that consecutive instructions do not wait on each other; integer sums come out the same in any
// order.
template <size_t N>
__attribute__((target("avx512f,avx512vnni"))) void scoreGroupVnni(const Folded* queries, const uint8_t* codes, size_t blocks, size_t groups,
                                                                  float* const* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* block = codes + b * groups * kGroupBytes;
    __m512i sums[N][4];
    for (size_t j = 0; j < N; ++j) {
      for (size_t part = 0; part < 4; ++part) sums[j][part] = _mm512_setzero_si512();
    }
    size_t g = 0;
    for (; g + 4 <= groups; g += 4) {
      for (size_t part = 0; part < 4; ++part) {
        const __m512i group = _mm512_loadu_si512(block + (g + part) * kGroupBytes);
        for (size_t j = 0; j < N; ++j) {
          sums[j][part] = _mm512_dpbusd_epi32(sums[j][part], group, _mm512_set1_epi32(queries[j].weights[g + part]));
        }
      }
    }
    for (; g < groups; ++g) {
      const __m512i group = _mm512_loadu_si512(block + g * kGroupBytes);
      for (size_t j = 0; j < N; ++j) sums[j][0] = _mm512_dpbusd_epi32(sums[j][0], group, _mm512_set1_epi32(queries[j].weights[g]));
    }
    for (size_t j = 0; j < N; ++j) {
      const __m512i total = _mm512_add_epi32(_mm512_add_epi32(sums[j][0], sums[j][1]), _mm512_add_epi32(sums[j][2], sums[j][3]));
      constexpr __mmask16 all = 0xFFFF;
      const __m512 score =
          _mm512_fmadd_ps(_mm512_set1_ps(queries[j].scale), _mm512_maskz_cvtepi32_ps(all, total), _mm512_set1_ps(queries[j].bias));
      _mm512_storeu_ps(out[j] + b * kLanes, score);
    }
  }
}

// hadd leaves each 128-bit half's vectors in the order 0, 1, 4, 5 | 2, 3, 6, 7; the permute restores it.
__attribute__((target("avx2"))) inline __m256i pairUp(__m256i front, __m256i back) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(front, back), 0xD8);
}

// AVX2 has no unsigned-by-signed byte product that cannot saturate, so codes are widened to 16 bits
// and multiplied by 16-bit weights in pairs: each 16 bytes of a group (four vectors) give one
// partial sum per pair of dimensions, and the pairs are added at the end of the block.
__attribute__((target("avx2,fma"))) void scoreBlocksAvx2(const Folded& query, const uint8_t* codes, size_t blocks, size_t groups,
                                                         float* out) {
  // Each group's four weights widened to 16 bits, the 64 bits repeated across the register.
  thread_local std::vector<int64_t> weights;
  weights.resize(groups);
  for (size_t g = 0; g < groups; ++g) weights[g] = _mm_cvtsi128_si64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(query.weights[g])));
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* block = codes + b * groups * kGroupBytes;
    __m256i sums[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    for (size_t g = 0; g < groups; ++g) {
      for (size_t quarter = 0; quarter < 4; ++quarter) {
        const __m256i wide =
            _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + g * kGroupBytes + quarter * 16)));
        sums[quarter] = _mm256_add_epi32(sums[quarter], _mm256_madd_epi16(wide, _mm256_set1_epi64x(weights[g])));
      }
    }
    const __m256 scale = _mm256_set1_ps(query.scale);
    const __m256 bias = _mm256_set1_ps(query.bias);
    _mm256_storeu_ps(out + b * kLanes, _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(pairUp(sums[0], sums[1])), bias));
    _mm256_storeu_ps(out + b * kLanes + 8, _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(pairUp(sums[2], sums[3])), bias));
  }
}
#endif

void scoreBlocksPortable(const Folded& query, const uint8_t* codes, size_t blocks, size_t groups, float* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* block = codes + b * groups * kGroupBytes;
    for (size_t lane = 0; lane < kLanes; ++lane) {
      int32_t sum = 0;
      for (size_t g = 0; g < groups; ++g) {
        int8_t weights[4];
        std::memcpy(weights, &query.weights[g], sizeof weights);  // little-endian: dimension 4g first
        const uint8_t* at = block + g * kGroupBytes + lane * 4;
        for (size_t i = 0; i < 4; ++i) sum += static_cast<int32_t>(at[i]) * weights[i];
      }
      out[b * kLanes + lane] = std::fma(query.scale, static_cast<float>(sum), query.bias);
    }
  }
}

using ScoreBlocks = void (*)(const Folded&, const uint8_t*, size_t, size_t, float*);

struct Kernel {
  const char* name;
  bool grouped;          // scores up to kGroup queries per read of a block (scoreGroupVnni)
  ScoreBlocks oneQuery;  // otherwise one query at a time
};

// Best first; each entry is kept only where this CPU runs it.
std::vector<Kernel> availableKernels() {
  std::vector<Kernel> kernels;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni")) kernels.push_back({"avx512vnni", true, nullptr});
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) kernels.push_back({"avx2", false, scoreBlocksAvx2});
#endif
  kernels.push_back({"portable", false, scoreBlocksPortable});
  return kernels;
}

const std::vector<Kernel>& cpuKernels() {
  static const std::vector<Kernel> available = availableKernels();
  return available;
}

}  // namespace

std::vector<std::string> ScalarQuantizer::kernels() {
  std::vector<std::string> names;
  for (const Kernel& kernel : cpuKernels()) names.emplace_back(kernel.name);
  return names;
}

size_t ScalarQuantizer::kernelIndex(const std::string& name) {
  const std::vector<Kernel>& available = cpuKernels();
  const auto found = std::find_if(available.begin(), available.end(), [&](const Kernel& kernel) { return name == kernel.name; });
  if (found == available.end()) throw EngineError(ErrorCode::InvalidArgument, "scanKernel '" + name + "' is not one this CPU runs");
  return static_cast<size_t>(found - available.begin());
}

ScalarQuantizer::ScalarQuantizer(const float* vectors, size_t count, size_t dim, const std::string& kernel)
    : kernel_(kernel.empty() ? 0 : kernelIndex(kernel)),
      dim_(dim),
      paddedDim_((dim + kGroupDims - 1) / kGroupDims * kGroupDims),
      low_(dim, std::numeric_limits<float>::max()),
      step_(dim, 0.0f) {
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

size_t ScalarQuantizer::codeBytes(size_t count) const { return codeOffset((count + kBlock - 1) / kBlock * kBlock); }

void ScalarQuantizer::encode(const float* rows, size_t count, uint8_t* codes) const {
  std::fill_n(codes, codeBytes(count), uint8_t{0});
  for (size_t r = 0; r < count; ++r) {
    uint8_t* block = codes + codeOffset(r / kBlock * kBlock);
    for (size_t i = 0; i < dim_; ++i) {
      const float level = std::nearbyint((rows[r * dim_ + i] - low_[i]) / step_[i]);
      block[i / kGroupDims * kGroupBytes + r % kBlock * kGroupDims + i % kGroupDims] =
          static_cast<uint8_t>(std::clamp(level, 0.0f, 255.0f));
    }
  }
}

ScalarQuantizer::Query ScalarQuantizer::fold(const float* query) const {
  Query folded;
  float largest = 0.0f;
  for (size_t i = 0; i < dim_; ++i) {
    folded.bias += query[i] * low_[i];
    largest = std::max(largest, std::fabs(query[i] * step_[i]));
  }
  folded.scale = largest > 0.0f ? largest / 127.0f : 1.0f;
  std::vector<int8_t> rounded(paddedDim_, 0);
  for (size_t i = 0; i < dim_; ++i)
    rounded[i] = static_cast<int8_t>(std::clamp(std::nearbyint(query[i] * step_[i] / folded.scale), -127.0f, 127.0f));
  folded.weights.resize(paddedDim_ / kGroupDims);
  std::memcpy(folded.weights.data(), rounded.data(), paddedDim_);
  return folded;
}

void ScalarQuantizer::score(const Query* const* queries, size_t nq, const uint8_t* codes, size_t count, float* const* out) const {
  const size_t blocks = (count + kBlock - 1) / kBlock;
  const size_t groups = paddedDim_ / kGroupDims;
  const auto folded = [&](size_t j) { return Folded{queries[j]->weights.data(), queries[j]->scale, queries[j]->bias}; };
  const Kernel& kernel = cpuKernels()[kernel_];
#if defined(__x86_64__)
  if (kernel.grouped) {
    for (size_t first = 0; first < nq; first += kGroup) {
      const size_t n = std::min(kGroup, nq - first);
      Folded group[kGroup];
      for (size_t j = 0; j < n; ++j) group[j] = folded(first + j);
      float* const* into = out + first;
      switch (n) {
        case 1:
          scoreGroupVnni<1>(group, codes, blocks, groups, into);
          break;
        case 2:
          scoreGroupVnni<2>(group, codes, blocks, groups, into);
          break;
        case 3:
          scoreGroupVnni<3>(group, codes, blocks, groups, into);
          break;
        default:
          scoreGroupVnni<4>(group, codes, blocks, groups, into);
          break;
      }
    }
    return;
  }
#endif
  for (size_t j = 0; j < nq; ++j) kernel.oneQuery(folded(j), codes, blocks, groups, out[j]);
}

const char* ScalarQuantizer::kernel() const { return cpuKernels()[kernel_].name; }

}  // namespace adserve
