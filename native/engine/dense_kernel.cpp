#include "engine/dense_kernel.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include "engine/errors.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace adserve {
namespace {

constexpr size_t kPanel = DenseKernel::kPanel;
// The AMX variant's rows per block and input pairs per step (blockAmxBf16).
constexpr size_t kAmxRows = 32;
#if defined(__x86_64__)
constexpr size_t kAmxPairs = 16;
#endif

// A tile: up to `rows` rows by the outputs of `panels` consecutive panels, every output column
// valid (the caller routes a partial last panel through a padded buffer). Element is a float, or
// for bf16 a pair of inputs (2m in the low half, 2m+1 in the high), `inputs` then counting pairs.
template <typename Element>
struct TileOf {
  const Element* x;
  size_t xStride;
  size_t inputs;
  const Element* panel;  // the tile's first panel
  const float* bias;     // the tile's first output
  float* y;
  size_t yStride;
  bool accumulate;
  bool relu;
  const float* rowScale = nullptr;     // int16: each row's input scale
  const float* outputScale = nullptr;  // int16: the tile's first output's weight scale
};
using Tile = TileOf<float>;
using Bf16Tile = TileOf<uint32_t>;
using Int16Tile = TileOf<uint32_t>;

float bits(uint32_t value) {
  float out;
  std::memcpy(&out, &value, sizeof out);
  return out;
}

// vcvtneps2bf16's rounding: zero and denormals to signed zero, NaN kept quiet, the rest to nearest even.
uint16_t toBf16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  if ((u & 0x7F800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// The two inputs of a pair as floats: exact, a bf16 being the top half of an fp32.
float evenOf(uint32_t pair) { return bits(pair << 16); }
float oddOf(uint32_t pair) { return bits(pair & 0xFFFF0000u); }

#if defined(__x86_64__)
// Rows x panels accumulators in registers (12 x 2 of the 32 zmm); per input, one load per panel
// and one broadcast per row feed rows x panels FMAs.
template <int kRows, int kPanels>
__attribute__((target("avx512f"))) void tileAvx512(const Tile& t) {
  __m512 acc[kRows][kPanels];
  for (int p = 0; p < kPanels; ++p) {
    const __m512 bias = _mm512_loadu_ps(t.bias + p * kPanel);
    for (int r = 0; r < kRows; ++r)
      acc[r][p] = t.accumulate ? _mm512_add_ps(_mm512_loadu_ps(t.y + r * t.yStride + p * kPanel), bias) : bias;
  }
  const size_t panelStride = t.inputs * kPanel;
  for (size_t k = 0; k < t.inputs; ++k) {
    __m512 w[kPanels];
    for (int p = 0; p < kPanels; ++p) w[p] = _mm512_loadu_ps(t.panel + p * panelStride + k * kPanel);
    for (int r = 0; r < kRows; ++r) {
      const __m512 x = _mm512_set1_ps(t.x[r * t.xStride + k]);
      for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_fmadd_ps(x, w[p], acc[r][p]);
    }
  }
  // The all-lanes masked form: GCC 12 flags the unmasked max's undefined start value.
  constexpr __mmask16 all = 0xFFFF;
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < kRows; ++r) {
    for (int p = 0; p < kPanels; ++p)
      _mm512_storeu_ps(t.y + r * t.yStride + p * kPanel, t.relu ? _mm512_maskz_max_ps(all, acc[r][p], zero) : acc[r][p]);
  }
}

// One panel is two ymm; 6 rows x 2 use 12 of the 16 registers. The input is broadcast from a value,
// not with _mm256_broadcast_ss(pointer): GCC 12 took that load as possibly aliasing the
// accumulators and stored all twelve to the stack on every input, at under half the speed.
template <int kRows>
__attribute__((target("avx2,fma"))) void tileAvx2(const Tile& t) {
  constexpr size_t kHalf = kPanel / 2;
  __m256 acc[kRows][2];
  for (int h = 0; h < 2; ++h) {
    const __m256 bias = _mm256_loadu_ps(t.bias + h * kHalf);
    for (int r = 0; r < kRows; ++r) acc[r][h] = t.accumulate ? _mm256_add_ps(_mm256_loadu_ps(t.y + r * t.yStride + h * kHalf), bias) : bias;
  }
  for (size_t k = 0; k < t.inputs; ++k) {
    __m256 w[2];
    for (int h = 0; h < 2; ++h) w[h] = _mm256_loadu_ps(t.panel + k * kPanel + h * kHalf);
    for (int r = 0; r < kRows; ++r) {
      const __m256 x = _mm256_set1_ps(t.x[r * t.xStride + k]);
      for (int h = 0; h < 2; ++h) acc[r][h] = _mm256_fmadd_ps(x, w[h], acc[r][h]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  for (int r = 0; r < kRows; ++r) {
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(t.y + r * t.yStride + h * kHalf, t.relu ? _mm256_max_ps(acc[r][h], zero) : acc[r][h]);
  }
}

// vdpbf16ps on a pair panel: lane j holds output j's weights for inputs 2m and 2m+1, the broadcast
// holds the row's two inputs.
template <int kRows, int kPanels>
__attribute__((target("avx512f,avx512bf16"))) void tileAvx512Bf16(const Bf16Tile& t) {
  __m512 acc[kRows][kPanels];
  for (int p = 0; p < kPanels; ++p) {
    const __m512 bias = _mm512_loadu_ps(t.bias + p * kPanel);
    for (int r = 0; r < kRows; ++r)
      acc[r][p] = t.accumulate ? _mm512_add_ps(_mm512_loadu_ps(t.y + r * t.yStride + p * kPanel), bias) : bias;
  }
  const size_t panelStride = t.inputs * kPanel;
  for (size_t k = 0; k < t.inputs; ++k) {
    __m512bh w[kPanels];
    for (int p = 0; p < kPanels; ++p) w[p] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(t.panel + p * panelStride + k * kPanel));
    for (int r = 0; r < kRows; ++r) {
      const __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(t.x[r * t.xStride + k])));
      for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], w[p], x);
    }
  }
  constexpr __mmask16 all = 0xFFFF;
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < kRows; ++r) {
    for (int p = 0; p < kPanels; ++p)
      _mm512_storeu_ps(t.y + r * t.yStride + p * kPanel, t.relu ? _mm512_maskz_max_ps(all, acc[r][p], zero) : acc[r][p]);
  }
}

// vdpbf16ps's arithmetic with FMA: the bf16 halves widen exactly to fp32, and a product of two is
// exact in fp32, so one FMA per input rounds as vdpbf16ps does. 4 rows x 2 halves of accumulators
// and 4 weight registers (odd and even inputs of both halves) fit the 16 ymm.
template <int kRows>
__attribute__((target("avx2,fma"))) void tileAvx2Bf16(const Bf16Tile& t) {
  constexpr size_t kHalf = kPanel / 2;
  __m256 acc[kRows][2];
  for (int h = 0; h < 2; ++h) {
    const __m256 bias = _mm256_loadu_ps(t.bias + h * kHalf);
    for (int r = 0; r < kRows; ++r) acc[r][h] = t.accumulate ? _mm256_add_ps(_mm256_loadu_ps(t.y + r * t.yStride + h * kHalf), bias) : bias;
  }
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  for (size_t k = 0; k < t.inputs; ++k) {
    __m256 odd[2];
    __m256 even[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i pairs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.panel + k * kPanel + h * kHalf));
      odd[h] = _mm256_castsi256_ps(_mm256_and_si256(pairs, high));
      even[h] = _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16));
    }
    for (int r = 0; r < kRows; ++r) {
      const uint32_t pair = t.x[r * t.xStride + k];
      const __m256 xOdd = _mm256_set1_ps(oddOf(pair));
      const __m256 xEven = _mm256_set1_ps(evenOf(pair));
      for (int h = 0; h < 2; ++h) acc[r][h] = _mm256_fmadd_ps(xEven, even[h], _mm256_fmadd_ps(xOdd, odd[h], acc[r][h]));
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  for (int r = 0; r < kRows; ++r) {
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(t.y + r * t.yStride + h * kHalf, t.relu ? _mm256_max_ps(acc[r][h], zero) : acc[r][h]);
  }
}

// vpdpwssd on a pair panel: x(2m) w(2m, j) + x(2m+1) w(2m+1, j) added into lane j of the
// accumulator in one instruction, exact as vpmaddwd's (q bounds every partial sum). Rows x panels
// accumulators as in tileAvx512, typed as int32 vectors (__v16si) and fed to the builtin
// directly: through _mm512_dpwssd_epi32's __m512i casts GCC 12 copied each accumulator to another
// register and to the stack on every input, at 0.6 of this speed. The epilogue's multiply and add
// carry an explicit rounding mode: GCC fuses plain ones into an FMA under avx512f, which would
// round once where the other variants round twice (and the all-lanes masked forms, as in
// tileAvx512, for GCC 12's warning).
template <int kRows, int kPanels>
__attribute__((target("avx512f,avx512vnni"))) void tileAvx512VnniInt16(const Int16Tile& t) {
  __v16si acc[kRows][kPanels];
  for (int r = 0; r < kRows; ++r) {
    for (int p = 0; p < kPanels; ++p) acc[r][p] = __v16si{};
  }
  const size_t panelStride = t.inputs * kPanel;
  for (size_t k = 0; k < t.inputs; ++k) {
    __v16si w[kPanels];
    for (int p = 0; p < kPanels; ++p) w[p] = (__v16si)_mm512_loadu_si512(t.panel + p * panelStride + k * kPanel);
    for (int r = 0; r < kRows; ++r) {
      const __v16si x = (__v16si)_mm512_set1_epi32(static_cast<int>(t.x[r * t.xStride + k]));
      for (int p = 0; p < kPanels; ++p) acc[r][p] = __builtin_ia32_vpdpwssd_v16si(acc[r][p], x, w[p]);
    }
  }
  constexpr int nearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  constexpr __mmask16 all = 0xFFFF;
  const __m512 zero = _mm512_setzero_ps();
  for (int p = 0; p < kPanels; ++p) {
    const __m512 bias = _mm512_loadu_ps(t.bias + p * kPanel);
    const __m512 outputScale = _mm512_loadu_ps(t.outputScale + p * kPanel);
    for (int r = 0; r < kRows; ++r) {
      float* y = t.y + r * t.yStride + p * kPanel;
      const __m512 start = t.accumulate ? _mm512_maskz_add_round_ps(all, _mm512_loadu_ps(y), bias, nearest) : bias;
      const __m512 scale = _mm512_maskz_mul_round_ps(all, _mm512_set1_ps(t.rowScale[r]), outputScale, nearest);
      const __m512 sum = _mm512_maskz_cvtepi32_ps(all, (__m512i)acc[r][p]);
      const __m512 out = _mm512_maskz_add_round_ps(all, start, _mm512_maskz_mul_round_ps(all, sum, scale, nearest), nearest);
      _mm512_storeu_ps(y, t.relu ? _mm512_maskz_max_ps(all, out, zero) : out);
    }
  }
}

// vpmaddwd on a pair panel: lane j gets x(2m) w(2m, j) + x(2m+1) w(2m+1, j), exact in int32, and
// the sums stay exact (q bounds them). With no multiply-add into an accumulator, each product
// needs a register of its own beside 4 rows x 2 halves of accumulators, 2 weights and the
// broadcast. The accumulators are int32 vectors (__v8si), not __m256i: across __m256i's casts
// GCC 12 copied every accumulator on each input, as it did for vpdpwssd.
template <int kRows>
__attribute__((target("avx2"))) void tileAvx2Int16(const Int16Tile& t) {
  constexpr size_t kHalf = kPanel / 2;
  __v8si acc[kRows][2];
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = __v8si{};
  for (size_t k = 0; k < t.inputs; ++k) {
    __v16hi w[2];
    for (int h = 0; h < 2; ++h) w[h] = (__v16hi)_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.panel + k * kPanel + h * kHalf));
    for (int r = 0; r < kRows; ++r) {
      const __v16hi x = (__v16hi)_mm256_set1_epi32(static_cast<int>(t.x[r * t.xStride + k]));
      for (int h = 0; h < 2; ++h) acc[r][h] += __builtin_ia32_pmaddwd256(x, w[h]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  for (int r = 0; r < kRows; ++r) {
    const __m256 rowScale = _mm256_set1_ps(t.rowScale[r]);
    for (int h = 0; h < 2; ++h) {
      const __m256 bias = _mm256_loadu_ps(t.bias + h * kHalf);
      const __m256 start = t.accumulate ? _mm256_add_ps(_mm256_loadu_ps(t.y + r * t.yStride + h * kHalf), bias) : bias;
      const __m256 scale = _mm256_mul_ps(rowScale, _mm256_loadu_ps(t.outputScale + h * kHalf));
      const __m256 out = _mm256_add_ps(start, _mm256_mul_ps(_mm256_cvtepi32_ps((__m256i)acc[r][h]), scale));
      _mm256_storeu_ps(t.y + r * t.yStride + h * kHalf, t.relu ? _mm256_max_ps(out, zero) : out);
    }
  }
}
#endif

// Product and sum round separately here (std::fma is a library call without hardware FMA, a
// hundred times slower), so these bits may differ from the vector variants'; the order is the same.
// A tile's rows share each weight load, and the compiler keeps the accumulators in vector registers
// (about 6 GFLOP/s with SSE2 alone; one row at a time ran at 0.8).
template <int kRows>
void tilePortable(const Tile& t) {
  float acc[kRows][kPanel];
  for (int r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kPanel; ++j) acc[r][j] = t.accumulate ? t.y[r * t.yStride + j] + t.bias[j] : t.bias[j];
  }
  for (size_t k = 0; k < t.inputs; ++k) {
    const float* w = t.panel + k * kPanel;
    for (int r = 0; r < kRows; ++r) {
      const float x = t.x[r * t.xStride + k];
      for (size_t j = 0; j < kPanel; ++j) acc[r][j] += x * w[j];
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kPanel; ++j) t.y[r * t.yStride + j] = t.relu ? (acc[r][j] > 0.0f ? acc[r][j] : 0.0f) : acc[r][j];
  }
}

// vdpbf16ps's order without it; the products are exact, so whether the compiler fuses them into
// the sums changes no bit.
template <int kRows>
void tilePortableBf16(const Bf16Tile& t) {
  float acc[kRows][kPanel];
  for (int r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kPanel; ++j) acc[r][j] = t.accumulate ? t.y[r * t.yStride + j] + t.bias[j] : t.bias[j];
  }
  for (size_t k = 0; k < t.inputs; ++k) {
    const uint32_t* w = t.panel + k * kPanel;
    for (int r = 0; r < kRows; ++r) {
      const float xOdd = oddOf(t.x[r * t.xStride + k]);
      const float xEven = evenOf(t.x[r * t.xStride + k]);
      for (size_t j = 0; j < kPanel; ++j) {
        acc[r][j] += xOdd * oddOf(w[j]);
        acc[r][j] += xEven * evenOf(w[j]);
      }
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kPanel; ++j) t.y[r * t.yStride + j] = t.relu ? (acc[r][j] > 0.0f ? acc[r][j] : 0.0f) : acc[r][j];
  }
}

// The int16 sums as plain integers, and the same float operations as the vector variant after
// them (with no FMA to fuse them: this is compiled for baseline x86-64).
template <int kRows>
void tilePortableInt16(const Int16Tile& t) {
  int32_t acc[kRows][kPanel] = {};
  for (size_t k = 0; k < t.inputs; ++k) {
    const uint32_t* w = t.panel + k * kPanel;
    for (int r = 0; r < kRows; ++r) {
      const uint32_t pair = t.x[r * t.xStride + k];
      const int32_t xEven = static_cast<int16_t>(pair & 0xFFFFu);
      const int32_t xOdd = static_cast<int16_t>(pair >> 16);
      for (size_t j = 0; j < kPanel; ++j)
        acc[r][j] += xEven * static_cast<int16_t>(w[j] & 0xFFFFu) + xOdd * static_cast<int16_t>(w[j] >> 16);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kPanel; ++j) {
      const float start = t.accumulate ? t.y[r * t.yStride + j] + t.bias[j] : t.bias[j];
      const float out = start + static_cast<float>(acc[r][j]) * (t.rowScale[r] * t.outputScale[j]);
      t.y[r * t.yStride + j] = t.relu ? (out > 0.0f ? out : 0.0f) : out;
    }
  }
}

// The largest q for which inputs x q^2 (a full sum at its extreme) still fits int32.
int32_t quantumFor(size_t inputs) {
  const size_t even = inputs + inputs % 2;
  return static_cast<int32_t>(std::min<double>(32767, std::floor(std::sqrt(2147483647.0 / static_cast<double>(even)))));
}

// One input as an integer in [-q, q]: scaled, rounded half away from zero, clamped (a NaN lands
// on -q, as cvttps2dq's integer indefinite does).
uint32_t quantized(float x, float toInteger, int32_t q) {
  const float scaled = x * toInteger;
  const auto rounded = static_cast<int32_t>(scaled + (scaled < 0.0f ? -0.5f : 0.5f));
  return static_cast<uint16_t>(static_cast<int16_t>(std::clamp(rounded, -q, q)));
}

// The pairs of inputs [from, inputs) of a row, the last one's high half zero when `inputs` is odd.
void quantizedPairs(const float* x, size_t from, size_t inputs, float toInteger, int32_t q, uint32_t* pairs) {
  for (size_t i = from; i < inputs; i += 2)
    pairs[i / 2] = quantized(x[i], toInteger, q) | (i + 1 < inputs ? quantized(x[i + 1], toInteger, q) << 16 : 0u);
}

float integerScale(float largest, int32_t q) { return largest > 0.0f ? static_cast<float>(q) / largest : 0.0f; }

// The largest |x| of a row: the maxima a vector variant kept per lane, and the inputs [from, inputs)
// it left (all of them for the portable one).
float largestMagnitude(const float* laneMaxima, size_t lanes, const float* x, size_t from, size_t inputs) {
  float largest = 0.0f;
  for (size_t l = 0; l < lanes; ++l) largest = std::max(largest, laneMaxima[l]);
  for (size_t i = from; i < inputs; ++i) largest = std::max(largest, std::fabs(x[i]));
  return largest;
}

// A row as integers in [-q, q] (x ~ integer x scale), in pairs as the weights are; returns the
// scale, 0 for a row of zeros. Every variant's quantizer gives these bits, so a row is quantized
// alike everywhere.
float quantizeRow(const float* x, size_t inputs, int32_t q, uint32_t* pairs) {
  const float largest = largestMagnitude(nullptr, 0, x, 0, inputs);
  quantizedPairs(x, 0, inputs, integerScale(largest, q), q, pairs);
  return largest / static_cast<float>(q);
}

#if defined(__x86_64__)
// quantized() on 8 lanes.
__attribute__((target("avx2"))) inline __m256i quantizedAvx2(const float* x, __m256 toInteger, __m256i q) {
  const __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(x), toInteger);
  const __m256 half = _mm256_blendv_ps(_mm256_set1_ps(0.5f), _mm256_set1_ps(-0.5f), _mm256_cmp_ps(scaled, _mm256_setzero_ps(), _CMP_LT_OQ));
  const __m256i rounded = _mm256_cvttps_epi32(_mm256_add_ps(scaled, half));
  return _mm256_min_epi32(_mm256_max_epi32(rounded, _mm256_sub_epi32(_mm256_setzero_si256(), q)), q);
}

// quantizeRow's arithmetic 16 inputs at a time. The largest |x| is the same value whatever the
// order (max is exact, and vmaxps keeps the running value over a NaN, as std::max does); the
// rounding and clamping are quantized()'s, lane by lane.
__attribute__((target("avx2"))) float quantizeRowAvx2(const float* x, size_t inputs, int32_t q, uint32_t* pairs) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 largest8 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= inputs; i += 8) largest8 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), magnitude), largest8);
  float lanes[8];
  _mm256_storeu_ps(lanes, largest8);
  const float largest = largestMagnitude(lanes, 8, x, i, inputs);
  const float toInteger = integerScale(largest, q);
  const __m256 scale = _mm256_set1_ps(toInteger);
  const __m256i limit = _mm256_set1_epi32(q);
  size_t j = 0;
  for (; j + 16 <= inputs; j += 16) {
    // packs interleaves the two halves' 128-bit lanes; the permute puts the 16 back in order.
    const __m256i packed =
        _mm256_permute4x64_epi64(_mm256_packs_epi32(quantizedAvx2(x + j, scale, limit), quantizedAvx2(x + j + 8, scale, limit)), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pairs + j / 2), packed);
  }
  quantizedPairs(x, j, inputs, toInteger, q, pairs);
  return largest / static_cast<float>(q);
}

// quantizeRowAvx2's arithmetic on 16 lanes. The multiply and add carry an explicit rounding mode,
// so that GCC does not fuse them into one FMA (which would round once where quantized() rounds
// twice); vpmovdw's truncation keeps every clamped value. The all-lanes masked forms are for GCC
// 12's warning, as in tileAvx512.
__attribute__((target("avx512f"))) float quantizeRowAvx512(const float* x, size_t inputs, int32_t q, uint32_t* pairs) {
  constexpr int nearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  constexpr __mmask16 all = 0xFFFF;
  __m512 largest16 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= inputs; i += 16) largest16 = _mm512_maskz_max_ps(all, _mm512_abs_ps(_mm512_loadu_ps(x + i)), largest16);
  float lanes[16];
  _mm512_storeu_ps(lanes, largest16);
  const float largest = largestMagnitude(lanes, 16, x, i, inputs);
  const float toInteger = integerScale(largest, q);
  const __m512 scale = _mm512_set1_ps(toInteger);
  const __m512i limit = _mm512_set1_epi32(q);
  const __m512i negativeLimit = _mm512_set1_epi32(-q);
  size_t j = 0;
  for (; j + 16 <= inputs; j += 16) {
    const __m512 scaled = _mm512_maskz_mul_round_ps(all, _mm512_loadu_ps(x + j), scale, nearest);
    const __mmask16 negative = _mm512_cmp_ps_mask(scaled, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 half = _mm512_mask_blend_ps(negative, _mm512_set1_ps(0.5f), _mm512_set1_ps(-0.5f));
    const __m512i rounded = _mm512_maskz_cvttps_epi32(all, _mm512_maskz_add_round_ps(all, scaled, half, nearest));
    const __m512i clamped = _mm512_maskz_min_epi32(all, _mm512_maskz_max_epi32(all, rounded, negativeLimit), limit);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pairs + j / 2), _mm512_maskz_cvtepi32_epi16(all, clamped));
  }
  quantizedPairs(x, j, inputs, toInteger, q, pairs);
  return largest / static_cast<float>(q);
}
#endif

// Rounds a row's inputs into pairs, the last one's high half zero when `inputs` is odd.
void pairsPortable(const float* x, size_t inputs, uint32_t* pairs) {
  for (size_t m = 0; m < inputs / 2; ++m) pairs[m] = toBf16(x[2 * m]) | static_cast<uint32_t>(toBf16(x[2 * m + 1])) << 16;
  if (inputs % 2 != 0) pairs[inputs / 2] = toBf16(x[inputs - 1]);
}

#if defined(__x86_64__)
// Little-endian, 16 consecutive bf16 are 8 pairs in order; vcvtneps2bf16 rounds as toBf16 does.
__attribute__((target("avx512f,avx512bf16,avx512vl"))) void pairsAvx512Bf16(const float* x, size_t inputs, uint32_t* pairs) {
  size_t i = 0;
  for (; i + 16 <= inputs; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pairs + i / 2), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i))));
  pairsPortable(x + i, inputs - i, pairs + i / 2);
}

// AMX: eight tile registers of up to 16 rows x 64 bytes. A block of kAmxRows rows and two panels
// is four 16 x 16 fp32 output tiles (0-3), fed per step of kAmxPairs input pairs by two tiles of
// the rows' pairs (4, 5) and two of the panels' (6, 7). A panel's pairs are already tdpbf16ps's
// B layout (a tile row is one input pair of 16 outputs), so the weights need no other packing.
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1;
  uint8_t startRow = 0;
  uint8_t reserved[14] = {};
  uint16_t bytesPerRow[16] = {};
  uint8_t rows[16] = {};
};

// Linux hands a process the AMX tile state only on request (arch_prctl, once for all its threads);
// a kernel or hypervisor that refuses leaves the AVX-512 variants.
bool amxPermitted() {
  if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16") || !__builtin_cpu_supports("avx512bf16") ||
      !__builtin_cpu_supports("avx512vl"))
    return false;
  constexpr long kRequestPermission = 0x1023;  // ARCH_REQ_XCOMP_PERM
  constexpr long kTileData = 18;               // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
}

// `t`: inputs is the pair stride (whole steps, padding zero in both operands), panel the first of
// every panel, bias and y at the rows' first output; `rows` up to kAmxRows, the rest of t.x's
// kAmxRows rows zero. Each output tile starts from its initial values (stored to `start`, loaded
// as the accumulator) and takes the steps in input order.
__attribute__((target("amx-tile,amx-bf16,avx512f"))) void blockAmxBf16(const Bf16Tile& t, size_t rows, size_t outputs) {
  static const AmxTileConfig config = [] {
    AmxTileConfig c;
    for (int tile = 0; tile < 8; ++tile) {
      c.rows[tile] = 16;
      c.bytesPerRow[tile] = 64;
    }
    return c;
  }();
  _tile_loadconfig(&config);
  alignas(64) float start[kAmxRows][2 * kPanel];
  const size_t panels = (outputs + kPanel - 1) / kPanel;
  const size_t steps = t.inputs / kAmxPairs;
  const size_t xBytes = t.xStride * sizeof(uint32_t);
  const bool lowerHalf = rows > 16;
  const size_t tileRows = lowerHalf ? kAmxRows : 16;
  constexpr __mmask16 all = 0xFFFF;
  const __m512 zero = _mm512_setzero_ps();
  for (size_t p = 0; p < panels; p += 2) {
    const bool twoPanels = p + 1 < panels;
    const size_t columns = std::min(outputs - p * kPanel, 2 * kPanel);
    for (size_t r = 0; r < tileRows; ++r) {
      for (size_t h = 0; h < 2; ++h) {
        // The second half of the last pair of panels may be past the bias (an odd panel count).
        const __m512 bias = h == 0 || twoPanels ? _mm512_loadu_ps(t.bias + p * kPanel + h * kPanel) : zero;
        const size_t valid = r < rows ? std::min(columns - std::min(columns, h * kPanel), kPanel) : 0;
        const __m512 own = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << valid) - 1u), t.y + r * t.yStride + p * kPanel + h * kPanel);
        _mm512_store_ps(start[r] + h * kPanel, t.accumulate ? _mm512_add_ps(own, bias) : bias);
      }
    }
    constexpr size_t startBytes = 2 * kPanel * sizeof(float);
    _tile_loadd(0, start[0], startBytes);
    _tile_loadd(1, start[0] + kPanel, startBytes);
    if (lowerHalf) {
      _tile_loadd(2, start[16], startBytes);
      _tile_loadd(3, start[16] + kPanel, startBytes);
    }
    const uint32_t* firstPanel = t.panel + p * t.inputs * kPanel;
    const uint32_t* secondPanel = firstPanel + t.inputs * kPanel;
    for (size_t step = 0; step < steps; ++step) {
      _tile_loadd(4, t.x + step * kAmxPairs, xBytes);
      _tile_loadd(6, firstPanel + step * kAmxPairs * kPanel, kPanel * sizeof(uint32_t));
      _tile_dpbf16ps(0, 4, 6);
      if (twoPanels) {
        _tile_loadd(7, secondPanel + step * kAmxPairs * kPanel, kPanel * sizeof(uint32_t));
        _tile_dpbf16ps(1, 4, 7);
      }
      if (lowerHalf) {
        _tile_loadd(5, t.x + 16 * t.xStride + step * kAmxPairs, xBytes);
        _tile_dpbf16ps(2, 5, 6);
        if (twoPanels) _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, start[0], startBytes);
    _tile_stored(1, start[0] + kPanel, startBytes);
    if (lowerHalf) {
      _tile_stored(2, start[16], startBytes);
      _tile_stored(3, start[16] + kPanel, startBytes);
    }
    for (size_t r = 0; r < rows; ++r) {
      for (size_t h = 0; h * kPanel < columns; ++h) {
        const size_t valid = std::min(columns - h * kPanel, kPanel);
        const __m512 out = _mm512_load_ps(start[r] + h * kPanel);
        _mm512_mask_storeu_ps(t.y + r * t.yStride + p * kPanel + h * kPanel, static_cast<__mmask16>((1u << valid) - 1u),
                              t.relu ? _mm512_maskz_max_ps(all, out, zero) : out);
      }
    }
  }
  // Back to the init state, so that a context switch saves no tile data.
  _tile_release();
}
#endif

}  // namespace

// tiles[rows - 1][panels - 1] covers a tile of that shape; the full shape is the last entry.
template <typename Element>
struct DenseKernel::Variant {
  const char* name;
  size_t rows;
  size_t panels;
  void (*tiles[12][2])(const TileOf<Element>&);
  void (*pairs)(const float* x, size_t inputs, uint32_t* pairs);                 // bf16 only
  float (*quantize)(const float* x, size_t inputs, int32_t q, uint32_t* pairs);  // int16 only
  // bf16 on AMX: `rows` (up to this variant's `rows`) through every panel at once, in place of tiles.
  void (*block)(const TileOf<Element>& t, size_t rows, size_t outputs) = nullptr;
};

namespace {

template <typename Element>
using Variant = DenseKernel::Variant<Element>;

template <typename Element, template <int, int> class Table, int... R>
Variant<Element> variantOf(const char* name, size_t panels, std::integer_sequence<int, R...>,
                           void (*pairs)(const float*, size_t, uint32_t*) = nullptr,
                           float (*quantize)(const float*, size_t, int32_t, uint32_t*) = nullptr) {
  return Variant<Element>{name, sizeof...(R), panels, {{Table<R + 1, 1>::function, Table<R + 1, 2>::function}...}, pairs, quantize};
}

#if defined(__x86_64__)
template <int kRows, int kPanels>
struct Avx512Tiles {
  static constexpr void (*function)(const Tile&) = tileAvx512<kRows, kPanels>;
};
template <int kRows, int kPanels>
struct Avx2Tiles {
  static constexpr void (*function)(const Tile&) = kPanels == 1 ? tileAvx2<kRows> : nullptr;
};
template <int kRows, int kPanels>
struct Avx512Bf16Tiles {
  static constexpr void (*function)(const Bf16Tile&) = tileAvx512Bf16<kRows, kPanels>;
};
template <int kRows, int kPanels>
struct Avx2Bf16Tiles {
  static constexpr void (*function)(const Bf16Tile&) = kPanels == 1 ? tileAvx2Bf16<kRows> : nullptr;
};
template <int kRows, int kPanels>
struct Avx512VnniInt16Tiles {
  static constexpr void (*function)(const Int16Tile&) = tileAvx512VnniInt16<kRows, kPanels>;
};
template <int kRows, int kPanels>
struct Avx2Int16Tiles {
  static constexpr void (*function)(const Int16Tile&) = kPanels == 1 ? tileAvx2Int16<kRows> : nullptr;
};
#endif
template <int kRows, int kPanels>
struct PortableInt16Tiles {
  static constexpr void (*function)(const Int16Tile&) = kPanels == 1 ? tilePortableInt16<kRows> : nullptr;
};
template <int kRows, int kPanels>
struct PortableTiles {
  static constexpr void (*function)(const Tile&) = kPanels == 1 ? tilePortable<kRows> : nullptr;
};
template <int kRows, int kPanels>
struct PortableBf16Tiles {
  static constexpr void (*function)(const Bf16Tile&) = kPanels == 1 ? tilePortableBf16<kRows> : nullptr;
};

// Best first; the portable one is always there.
std::vector<Variant<float>> fp32Variants() {
  std::vector<Variant<float>> out;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) out.push_back(variantOf<float, Avx512Tiles>("avx512", 2, std::make_integer_sequence<int, 12>()));
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    out.push_back(variantOf<float, Avx2Tiles>("avx2", 1, std::make_integer_sequence<int, 6>()));
#endif
  out.push_back(variantOf<float, PortableTiles>("portable", 1, std::make_integer_sequence<int, 4>()));
  return out;
}

std::vector<Variant<uint32_t>> bf16Variants() {
  std::vector<Variant<uint32_t>> out;
#if defined(__x86_64__)
  if (amxPermitted()) out.push_back(Variant<uint32_t>{"amx", kAmxRows, 2, {}, pairsAvx512Bf16, nullptr, blockAmxBf16});
  if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vl"))
    out.push_back(variantOf<uint32_t, Avx512Bf16Tiles>("avx512bf16", 2, std::make_integer_sequence<int, 12>(), pairsAvx512Bf16));
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    out.push_back(variantOf<uint32_t, Avx2Bf16Tiles>("avx2", 1, std::make_integer_sequence<int, 4>(), pairsPortable));
#endif
  out.push_back(variantOf<uint32_t, PortableBf16Tiles>("portable", 1, std::make_integer_sequence<int, 4>(), pairsPortable));
  return out;
}

std::vector<Variant<uint32_t>> int16Variants() {
  std::vector<Variant<uint32_t>> out;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512vnni"))
    out.push_back(
        variantOf<uint32_t, Avx512VnniInt16Tiles>("avx512vnni", 2, std::make_integer_sequence<int, 12>(), nullptr, quantizeRowAvx512));
  if (__builtin_cpu_supports("avx2"))
    out.push_back(variantOf<uint32_t, Avx2Int16Tiles>("avx2", 1, std::make_integer_sequence<int, 4>(), nullptr, quantizeRowAvx2));
#endif
  out.push_back(variantOf<uint32_t, PortableInt16Tiles>("portable", 1, std::make_integer_sequence<int, 4>(), nullptr, quantizeRow));
  return out;
}

const std::vector<Variant<float>> kFp32Variants = fp32Variants();
const std::vector<Variant<uint32_t>> kBf16Variants = bf16Variants();
const std::vector<Variant<uint32_t>> kInt16Variants = int16Variants();

template <typename Element>
const Variant<Element>& pick(const std::vector<Variant<Element>>& variants, const std::string& name) {
  if (name.empty()) return variants.front();
  for (const Variant<Element>& variant : variants) {
    if (name == variant.name) return variant;
  }
  throw EngineError(ErrorCode::InvalidArgument, "dense kernel variant '" + name + "' is not available on this machine");
}

// One tile row of `tileRows` rows through every panel; `tile` has x, xStride, inputs, yStride,
// accumulate and relu set, y pointing at the rows' first output.
template <typename Element>
void applyRowTile(const Variant<Element>& variant, TileOf<Element> tile, size_t tileRows, const Element* panels, const float* bias,
                  size_t outputs, const float* outputScale = nullptr) {
  const size_t fullPanels = outputs / kPanel;
  const size_t panelElements = tile.inputs * kPanel;
  float* const y = tile.y;
  const size_t yStride = tile.yStride;
  for (size_t p = 0; p < fullPanels; p += variant.panels) {
    const size_t tilePanels = std::min(variant.panels, fullPanels - p);
    tile.panel = panels + p * panelElements;
    tile.bias = bias + p * kPanel;
    if (outputScale != nullptr) tile.outputScale = outputScale + p * kPanel;
    tile.y = y + p * kPanel;
    variant.tiles[tileRows - 1][tilePanels - 1](tile);
  }
  if (fullPanels * kPanel == outputs) return;
  // The last panel is partly padding: it runs into a panel-wide buffer, and only the real
  // outputs are copied in and out.
  const size_t columns = outputs - fullPanels * kPanel;
  float padded[12 * kPanel] = {};
  float* out = y + fullPanels * kPanel;
  for (size_t r = 0; r < tileRows && tile.accumulate; ++r) std::copy_n(out + r * yStride, columns, padded + r * kPanel);
  tile.panel = panels + fullPanels * panelElements;
  tile.bias = bias + fullPanels * kPanel;
  if (outputScale != nullptr) tile.outputScale = outputScale + fullPanels * kPanel;
  tile.y = padded;
  tile.yStride = kPanel;
  variant.tiles[tileRows - 1][0](tile);
  for (size_t r = 0; r < tileRows; ++r) std::copy_n(padded + r * kPanel, columns, out + r * yStride);
}

}  // namespace

DenseKernel::DenseKernel(const float* weight, const float* bias, size_t inputs, size_t outputs, Activation activation, Precision precision,
                         const std::string& variant)
    : inputs_(inputs), outputs_(outputs), activation_(activation) {
  const size_t panels = (outputs + kPanel - 1) / kPanel;
  bias_.assign(panels * kPanel, 0.0f);
  for (size_t n = 0; n < outputs && bias != nullptr; ++n) bias_[n] = bias[n];
  if (precision == Precision::kFp32) {
    fp32_ = &pick(kFp32Variants, variant);
    panels_.assign(panels * inputs * kPanel, 0.0f);
    for (size_t n = 0; n < outputs; ++n) {
      for (size_t k = 0; k < inputs; ++k) panels_[(n / kPanel * inputs + k) * kPanel + n % kPanel] = weight[n * inputs + k];
    }
    return;
  }
  if (inputs > kMaxBf16Inputs) throw EngineError(ErrorCode::InvalidArgument, "a bf16 or int16 dense layer takes at most 1024 inputs");
  const bool int16 = precision == Precision::kInt16;
  if (int16) {
    int16_ = &pick(kInt16Variants, variant);
    quantum_ = quantumFor(inputs);
    outputScale_.assign(panels * kPanel, 0.0f);
  } else {
    bf16_ = &pick(kBf16Variants, variant);
  }
  const size_t pairs = (inputs + 1) / 2;
  pairStride_ = pairs;
#if defined(__x86_64__)
  if (bf16_ != nullptr && bf16_->block != nullptr) pairStride_ = (pairs + kAmxPairs - 1) / kAmxPairs * kAmxPairs;
#endif
  pairPanels_.assign(panels * pairStride_ * kPanel, 0);
  std::vector<uint32_t> row(pairs);
  for (size_t n = 0; n < outputs; ++n) {
    if (int16) {
      outputScale_[n] = quantizeRow(weight + n * inputs, inputs, quantum_, row.data());
    } else {
      pairsPortable(weight + n * inputs, inputs, row.data());
    }
    for (size_t m = 0; m < pairs; ++m) pairPanels_[(n / kPanel * pairStride_ + m) * kPanel + n % kPanel] = row[m];
  }
}

void DenseKernel::apply(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const {
  if (bf16_ != nullptr) {
    applyBf16(x, xStride, rows, y, yStride, accumulate);
    return;
  }
  if (int16_ != nullptr) {
    applyInt16(x, xStride, rows, y, yStride, accumulate);
    return;
  }
  const bool relu = activation_ == Activation::kRelu;
  for (size_t row = 0; row < rows; row += fp32_->rows) {
    const size_t tileRows = std::min(fp32_->rows, rows - row);
    const Tile tile{x + row * xStride, xStride, inputs_, nullptr, nullptr, y + row * yStride, yStride, accumulate, relu};
    applyRowTile(*fp32_, tile, tileRows, panels_.data(), bias_.data(), outputs_);
  }
}

void DenseKernel::applyBf16(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const {
  if (bf16_->block != nullptr) {
    applyAmx(x, xStride, rows, y, yStride, accumulate);
    return;
  }
  const bool relu = activation_ == Activation::kRelu;
  const size_t pairs = (inputs_ + 1) / 2;
  // A row tile's inputs, rounded once and read by every panel.
  uint32_t rowPairs[12 * kMaxBf16Inputs / 2];
  for (size_t row = 0; row < rows; row += bf16_->rows) {
    const size_t tileRows = std::min(bf16_->rows, rows - row);
    for (size_t r = 0; r < tileRows; ++r) bf16_->pairs(x + (row + r) * xStride, inputs_, rowPairs + r * pairs);
    const Bf16Tile tile{rowPairs, pairs, pairs, nullptr, nullptr, y + row * yStride, yStride, accumulate, relu};
    applyRowTile(*bf16_, tile, tileRows, pairPanels_.data(), bias_.data(), outputs_);
  }
}

void DenseKernel::applyAmx(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const {
  const bool relu = activation_ == Activation::kRelu;
  const size_t pairs = (inputs_ + 1) / 2;
  // A block's inputs, rounded once; padding pairs and rows stay zero, so they add nothing (and
  // the padding rows' outputs are never stored). 64 KB on the stack at the widest layer: the
  // engine's and OpenMP's threads have the default 8 MB.
  alignas(64) uint32_t blockPairs[kAmxRows * kMaxBf16Inputs / 2];
  for (size_t row = 0; row < rows; row += kAmxRows) {
    const size_t blockRows = std::min(kAmxRows, rows - row);
    // The kernel reads the second half's rows only when the block has any.
    for (size_t r = 0; r < (blockRows > 16 ? kAmxRows : 16); ++r) {
      uint32_t* own = blockPairs + r * pairStride_;
      if (r < blockRows) bf16_->pairs(x + (row + r) * xStride, inputs_, own);
      std::fill(own + (r < blockRows ? pairs : 0), own + pairStride_, 0u);
    }
    const Bf16Tile tile{blockPairs, pairStride_, pairStride_, pairPanels_.data(), bias_.data(), y + row * yStride,
                        yStride,    accumulate,  relu};
    bf16_->block(tile, blockRows, outputs_);
  }
}

void DenseKernel::applyInt16(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const {
  const bool relu = activation_ == Activation::kRelu;
  const size_t pairs = (inputs_ + 1) / 2;
  uint32_t rowPairs[12 * kMaxBf16Inputs / 2];
  float rowScale[12];
  for (size_t row = 0; row < rows; row += int16_->rows) {
    const size_t tileRows = std::min(int16_->rows, rows - row);
    for (size_t r = 0; r < tileRows; ++r) rowScale[r] = int16_->quantize(x + (row + r) * xStride, inputs_, quantum_, rowPairs + r * pairs);
    Int16Tile tile{rowPairs, pairs, pairs, nullptr, nullptr, y + row * yStride, yStride, accumulate, relu};
    tile.rowScale = rowScale;
    applyRowTile(*int16_, tile, tileRows, pairPanels_.data(), bias_.data(), outputs_, outputScale_.data());
  }
}

const char* DenseKernel::variant() const {
  if (fp32_ != nullptr) return fp32_->name;
  return bf16_ != nullptr ? bf16_->name : int16_->name;
}

std::vector<std::string> DenseKernel::variants(Precision precision) {
  std::vector<std::string> out;
  if (precision == Precision::kFp32) {
    for (const Variant<float>& variant : kFp32Variants) out.emplace_back(variant.name);
  } else {
    for (const Variant<uint32_t>& variant : precision == Precision::kBf16 ? kBf16Variants : kInt16Variants) out.emplace_back(variant.name);
  }
  return out;
}

}  // namespace adserve
