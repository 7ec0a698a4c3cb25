#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace adserve {

// One fully connected layer applied to many rows at once: y = act(init + x · Wᵀ + b), with W packed
// at construction into panels of kPanel outputs (each panel input-major, so a row tile reads one
// panel once per input). Immutable after construction; apply may run on any number of threads.
//
// Every output element is one fused multiply-add chain over the inputs in index order, started
// from its initial value; tiling only decides which elements run side by side, never how one is
// summed. So a row's outputs do not depend on the other rows of the call or on the row's position
// in them. The variant is the machine's best unless the constructor names one (the machine's list is
// read once at load): AVX-512 and AVX2 give the same bits (one rounding per multiply-add), the
// portable one may differ from them in the last bits.
// BLAS gives no such promise: its blocking, and so its rounding, follows the matrix shape.
//
// kBf16 rounds the weights (at construction) and each row's inputs (per call) to bfloat16, nearest
// even, values below fp32's smallest normal to zero, and accumulates in fp32 as AVX512_BF16's
// vdpbf16ps does: per pair of inputs (2m, 2m+1), input 2m+1 is added first, then 2m, each product
// exact and each sum rounded once. Every bf16 variant follows that order, so they give the same
// bits, unless a product or partial sum falls below 2^-126, which vdpbf16ps flushes to zero.
// The AMX variant ("amx", tdpbf16ps on 16 x 16 output tiles) is the exception: it sums sixteen
// pairs per instruction with an internal rounding Intel does not document (none of the plain
// orders reproduces it), so its bits are its own. Each output is still one chain over the inputs
// in index order, sixteen pairs a step, started from its initial value, so a row's outputs do not
// depend on the other rows there either.
//
// kInt16 quantizes each output's weights (at construction) and each row's inputs (per call) to
// integers in [-q, q], symmetric, one scale per output and per row (q = the largest for which a
// full sum cannot overflow int32: 2896 for 256 inputs, 4095 for 128). The products are summed
// exactly in int32 (AVX-512 VNNI's vpdpwssd or AVX2's vpmaddwd, two inputs a lane), so every variant gives the same sums;
// the output is then y = init + sum x (rowScale x outputScale), the same float operations in
// every variant, so they give the same bits too, and a row's quantization depends on the row alone.
class DenseKernel {
 public:
  static constexpr size_t kPanel = 16;
  // The widest input a kBf16 or kInt16 kernel takes: a row tile's packed inputs live on the stack.
  static constexpr size_t kMaxBf16Inputs = 1024;
  enum class Activation { kNone, kRelu };
  enum class Precision { kFp32, kBf16, kInt16 };

  // weight: [outputs x inputs] row-major (torch's Linear layout); bias: [outputs], or null for none.
  // `variant` names one of variants(precision), or is empty for the best one (variants' first).
  DenseKernel(const float* weight, const float* bias, size_t inputs, size_t outputs, Activation activation,
              Precision precision = Precision::kFp32, const std::string& variant = "");

  // x: [rows x inputs] with row stride xStride; y: [rows x outputs] with row stride yStride. Each
  // element starts from y's own value plus the bias when `accumulate`, from the bias otherwise.
  void apply(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const;

  size_t inputs() const { return inputs_; }
  size_t outputs() const { return outputs_; }
  // The instruction set this kernel's apply uses ("amx", "avx512bf16", "avx512vnni", "avx512", "avx2" or "portable").
  const char* variant() const;
  // The variants this machine can run for `precision`, best first.
  static std::vector<std::string> variants(Precision precision);

  template <typename Element>
  struct Variant;

 private:
  void applyBf16(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const;
  void applyInt16(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const;
  void applyAmx(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const;

  size_t inputs_;
  size_t outputs_;
  Activation activation_;
  const Variant<float>* fp32_ = nullptr;  // exactly one of the three is set, by the precision
  const Variant<uint32_t>* bf16_ = nullptr;
  const Variant<uint32_t>* int16_ = nullptr;
  std::vector<float> panels_;         // fp32: [panels][inputs][kPanel], outputs past `outputs` zero
  std::vector<uint32_t> pairPanels_;  // bf16, int16: [panels][pairStride_][kPanel] pairs (2m low, 2m+1 high)
  size_t pairStride_ = 0;             // inputs / 2 rounded up; for AMX, further to whole tiles, the padding zero
  std::vector<float> outputScale_;    // int16: [panels * kPanel], zero past `outputs`
  int32_t quantum_ = 0;               // int16: q
  std::vector<float> bias_;           // [panels * kPanel], zero past `outputs`
};

}  // namespace adserve
