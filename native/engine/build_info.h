#pragma once

#include <string>

namespace adserve {

// Versions and capabilities of the native stack this addon was built against and runs with.
struct BuildInfo {
  std::string torchVersion;
  std::string faissVersion;
  std::string flatbuffersVersion;
  std::string compiler;
  bool cudaAvailable = false;
  int torchThreads = 0;
  int ompMaxThreads = 0;
};

BuildInfo buildInfo();

// Sets libtorch's intra-op and OpenMP thread counts once for the process (FAISS uses OpenMP).
void setComputeThreads(int threads);
// The last setComputeThreads value (every core until then). Parallel regions on engine threads pass
// it explicitly: OpenMP's thread count set on the configuring thread does not carry to others.
int computeThreads();

}  // namespace adserve
