#include "engine/huge_pages.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdint>

#include "engine/errors.h"

namespace adserve {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;
std::atomic<bool> hugePageTables{false};

size_t roundUp(size_t bytes, size_t to) { return (bytes + to - 1) / to * to; }

}  // namespace

void setHugePageTables(bool enabled) { hugePageTables = enabled; }

torch::Tensor emptyTable(at::IntArrayRef shape, torch::ScalarType dtype) {
  const torch::TensorOptions options = torch::TensorOptions().dtype(dtype);
  size_t bytes = c10::elementSize(dtype);
  for (const int64_t extent : shape) bytes *= static_cast<size_t>(extent);
  if (!hugePageTables || bytes < kHugePage) return torch::empty(shape, options);
  const size_t length = roundUp(bytes, kHugePage);
  // Over-map by one huge page, then unmap what lies outside the aligned range.
  void* const mapped = mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw EngineError(ErrorCode::NoMemory, "cannot map " + std::to_string(length) + " bytes for a table");
  const auto start = reinterpret_cast<uintptr_t>(mapped);
  const uintptr_t aligned = roundUp(start, kHugePage);
  if (aligned > start) munmap(mapped, aligned - start);
  const uintptr_t end = start + length + kHugePage;
  if (end > aligned + length) munmap(reinterpret_cast<void*>(aligned + length), end - (aligned + length));
  auto* const table = reinterpret_cast<void*>(aligned);
  madvise(table, length, MADV_HUGEPAGE);  // a refusal leaves normal pages, which work as well, only slower
  return torch::from_blob(
      table, shape, [length](void* data) { munmap(data, length); }, options);
}

}  // namespace adserve
