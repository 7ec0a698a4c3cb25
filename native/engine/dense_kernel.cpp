#include "engine/dense_kernel.h"

#include <algorithm>
#include <array>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace adserve {
namespace {

constexpr size_t kPanel = DenseKernel::kPanel;

// A tile: up to `rows` rows by the outputs of `panels` consecutive panels, every output column
// valid (the caller routes a partial last panel through a padded buffer).
struct Tile {
  const float* x;
  size_t xStride;
  size_t inputs;
  const float* panel;  // the tile's first panel
  const float* bias;   // the tile's first output
  float* y;
  size_t yStride;
  bool accumulate;
  bool relu;
};

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

using TileFunction = void (*)(const Tile&);

// tiles[rows - 1][panels - 1] covers a tile of that shape; the full shape is the last entry.
struct Variant {
  const char* name;
  size_t rows;
  size_t panels;
  TileFunction tiles[12][2];
};

template <template <int, int> class Table, int... R>
Variant variantOf(const char* name, size_t panels, std::integer_sequence<int, R...>) {
  return Variant{name, sizeof...(R), panels, {{Table<R + 1, 1>::function, Table<R + 1, 2>::function}...}};
}

#if defined(__x86_64__)
template <int kRows, int kPanels>
struct Avx512Tiles {
  static constexpr TileFunction function = tileAvx512<kRows, kPanels>;
};
template <int kRows, int kPanels>
struct Avx2Tiles {
  static constexpr TileFunction function = kPanels == 1 ? tileAvx2<kRows> : nullptr;
};
#endif
template <int kRows, int kPanels>
struct PortableTiles {
  static constexpr TileFunction function = kPanels == 1 ? tilePortable<kRows> : nullptr;
};

Variant bestVariant() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return variantOf<Avx512Tiles>("avx512", 2, std::make_integer_sequence<int, 12>());
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return variantOf<Avx2Tiles>("avx2", 1, std::make_integer_sequence<int, 6>());
#endif
  return variantOf<PortableTiles>("portable", 1, std::make_integer_sequence<int, 4>());
}

const Variant kernelVariant = bestVariant();

}  // namespace

DenseKernel::DenseKernel(const float* weight, const float* bias, size_t inputs, size_t outputs, Activation activation)
    : inputs_(inputs), outputs_(outputs), activation_(activation) {
  const size_t panels = (outputs + kPanel - 1) / kPanel;
  panels_.assign(panels * inputs * kPanel, 0.0f);
  bias_.assign(panels * kPanel, 0.0f);
  for (size_t n = 0; n < outputs; ++n) {
    for (size_t k = 0; k < inputs; ++k) panels_[(n / kPanel * inputs + k) * kPanel + n % kPanel] = weight[n * inputs + k];
    if (bias != nullptr) bias_[n] = bias[n];
  }
}

void DenseKernel::apply(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const {
  const size_t panels = bias_.size() / kPanel;
  const size_t fullPanels = outputs_ / kPanel;
  const bool relu = activation_ == Activation::kRelu;
  for (size_t row = 0; row < rows; row += kernelVariant.rows) {
    const size_t tileRows = std::min(kernelVariant.rows, rows - row);
    Tile tile{x + row * xStride, xStride, inputs_, nullptr, nullptr, nullptr, yStride, accumulate, relu};
    for (size_t p = 0; p < fullPanels; p += kernelVariant.panels) {
      const size_t tilePanels = std::min(kernelVariant.panels, fullPanels - p);
      tile.panel = panels_.data() + p * inputs_ * kPanel;
      tile.bias = bias_.data() + p * kPanel;
      tile.y = y + row * yStride + p * kPanel;
      kernelVariant.tiles[tileRows - 1][tilePanels - 1](tile);
    }
    if (fullPanels == panels) continue;
    // The last panel is partly padding: it runs into a panel-wide buffer, and only the real
    // outputs are copied in and out.
    const size_t columns = outputs_ - fullPanels * kPanel;
    float padded[12 * kPanel] = {};
    float* out = y + row * yStride + fullPanels * kPanel;
    for (size_t r = 0; r < tileRows && accumulate; ++r) std::copy_n(out + r * yStride, columns, padded + r * kPanel);
    tile.panel = panels_.data() + fullPanels * inputs_ * kPanel;
    tile.bias = bias_.data() + fullPanels * kPanel;
    tile.y = padded;
    tile.yStride = kPanel;
    kernelVariant.tiles[tileRows - 1][0](tile);
    for (size_t r = 0; r < tileRows; ++r) std::copy_n(padded + r * kPanel, columns, out + r * yStride);
  }
}

const char* DenseKernel::variant() { return kernelVariant.name; }

}  // namespace adserve
