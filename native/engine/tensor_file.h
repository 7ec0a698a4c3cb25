#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace adserve {

// A raw little-endian array file from a model directory, with the dtype and shape its manifest
// promises. Loading checks the file size against them, and that float32 files hold only finite values.
struct TensorFile {
  std::string path;
  torch::Dtype dtype = torch::kFloat32;
  std::vector<int64_t> shape;
};

torch::Tensor loadTensor(const TensorFile& file);

}  // namespace adserve
