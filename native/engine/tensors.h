#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "engine/errors.h"

namespace adserve {

// Tower inputs from host vectors: copies, so the tensor does not borrow the vector's storage.
inline torch::Tensor longs(const std::vector<int64_t>& values, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<int64_t*>(values.data()), shape, torch::kInt64).clone();
}

inline torch::Tensor floats(const std::vector<float>& values, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(values.data()), shape, torch::kFloat32).clone();
}

// Throws EngineError(InvalidArgument) unless `tensor` has `rows` rows; `what` names it in the message.
inline void requireRows(const torch::Tensor& tensor, int64_t rows, const char* what) {
  if (tensor.size(0) != rows) {
    throw EngineError(ErrorCode::InvalidArgument,
                      std::string(what) + " has " + std::to_string(tensor.size(0)) + " rows, expected " + std::to_string(rows));
  }
}

}  // namespace adserve
