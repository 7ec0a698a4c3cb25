#pragma once

#include <cstddef>
#include <vector>

namespace adserve {

// One fully connected layer applied to many rows at once: y = act(init + x · Wᵀ + b), with W packed
// at construction into panels of kPanel outputs (each panel input-major, so a row tile reads one
// panel once per input). Immutable after construction; apply may run on any number of threads.
//
// Every output element is one fused multiply-add chain over the inputs in index order, started
// from its initial value; tiling only decides which elements run side by side, never how one is
// summed. So a row's outputs do not depend on the other rows of the call or on the row's position
// in them. The variant is picked once at load: AVX-512 and AVX2 give the same bits (one rounding
// per multiply-add), the portable one may differ from them in the last bits.
// BLAS gives no such promise: its blocking, and so its rounding, follows the matrix shape.
class DenseKernel {
 public:
  static constexpr size_t kPanel = 16;
  enum class Activation { kNone, kRelu };

  // weight: [outputs x inputs] row-major (torch's Linear layout); bias: [outputs], or null for none.
  DenseKernel(const float* weight, const float* bias, size_t inputs, size_t outputs, Activation activation);

  // x: [rows x inputs] with row stride xStride; y: [rows x outputs] with row stride yStride. Each
  // element starts from y's own value plus the bias when `accumulate`, from the bias otherwise.
  void apply(const float* x, size_t xStride, size_t rows, float* y, size_t yStride, bool accumulate) const;

  size_t inputs() const { return inputs_; }
  size_t outputs() const { return outputs_; }
  // The instruction set apply uses on this machine ("avx512", "avx2" or "portable").
  static const char* variant();

 private:
  size_t inputs_;
  size_t outputs_;
  Activation activation_;
  std::vector<float> panels_;  // [panels][inputs][kPanel], outputs past `outputs` zero
  std::vector<float> bias_;    // [panels * kPanel], zero past `outputs`
};

}  // namespace adserve
