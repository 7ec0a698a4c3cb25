#include "engine/build_info.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include <ATen/Parallel.h>
#include <faiss/Index.h>
#include <flatbuffers/base.h>
#include <omp.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "engine/errors.h"

extern "C" void openblas_set_num_threads(int threads) __attribute__((weak));

namespace adserve {

BuildInfo buildInfo() {
  BuildInfo info;
  info.torchVersion = TORCH_VERSION;
  info.faissVersion =
      std::to_string(FAISS_VERSION_MAJOR) + "." + std::to_string(FAISS_VERSION_MINOR) + "." + std::to_string(FAISS_VERSION_PATCH);
  info.flatbuffersVersion = std::to_string(FLATBUFFERS_VERSION_MAJOR) + "." + std::to_string(FLATBUFFERS_VERSION_MINOR) + "." +
                            std::to_string(FLATBUFFERS_VERSION_REVISION);
#if defined(__clang__)
  info.compiler = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info.compiler = std::string("gcc ") + __VERSION__;
#else
  info.compiler = "unknown";
#endif
  info.cudaAvailable = torch::cuda::is_available();
  info.torchThreads = at::get_num_threads();
  info.ompMaxThreads = omp_get_max_threads();
  return info;
}

namespace {
std::atomic<int> configuredComputeThreads{0};
}  // namespace

int computeThreads() {
  const int configured = configuredComputeThreads.load();
  return configured > 0 ? configured : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

void setComputeThreads(int threads) {
  if (threads < 1) throw EngineError(ErrorCode::InvalidArgument, "compute threads must be at least 1");
  configuredComputeThreads = threads;
  at::set_num_threads(threads);
  omp_set_num_threads(threads);
  // OpenBLAS keeps a thread pool of its own, whose workers wait for the next call spinning on
  // sched_yield: 13% of the engine's CPU at saturation (perf, demo model). Its calls here are small
  // (towers over a batch's users and contexts, the coarse quantizer, the float list scan); the
  // stages that are worth splitting do so on the compute threads themselves. Absent when BLAS is
  // not OpenBLAS.
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
}

}  // namespace adserve
