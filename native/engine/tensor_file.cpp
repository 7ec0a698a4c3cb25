#include "engine/tensor_file.h"

#include <cmath>
#include <fstream>

#include "engine/errors.h"
#include "engine/huge_pages.h"

namespace adserve {

torch::Tensor loadTensor(const TensorFile& file) {
  torch::Tensor tensor = emptyTable(file.shape, file.dtype);
  const auto expected = static_cast<std::streamsize>(tensor.numel() * tensor.element_size());
  std::ifstream in(file.path, std::ios::binary | std::ios::ate);
  if (!in) throw EngineError(ErrorCode::InvalidArgument, "cannot open " + file.path);
  const std::streamsize actual = in.tellg();
  if (actual != expected) {
    throw EngineError(ErrorCode::InvalidArgument,
                      file.path + " holds " + std::to_string(actual) + " bytes, its manifest shape needs " + std::to_string(expected));
  }
  in.seekg(0);
  if (!in.read(static_cast<char*>(tensor.data_ptr()), expected)) throw EngineError(ErrorCode::InvalidArgument, "cannot read " + file.path);
  if (file.dtype == torch::kFloat32) {
    // One NaN embedding poisons every inner product it takes part in, and FAISS ranks NaN
    // arbitrarily: such a file would load and then never fill.
    const float* values = tensor.data_ptr<float>();
    const int64_t count = tensor.numel();
    for (int64_t i = 0; i < count; ++i) {
      if (!std::isfinite(values[i])) {
        throw EngineError(ErrorCode::InvalidArgument,
                          file.path + " holds a non-finite value (" + std::to_string(values[i]) + ") at element " + std::to_string(i));
      }
    }
  }
  return tensor;
}

}  // namespace adserve
