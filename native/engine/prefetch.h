#pragma once

#include <cstddef>

namespace adserve {

// Starts fetching the cache line that holds `address`. Every prefetch in the engine goes through
// here, not through __builtin_prefetch: GCC 12's mod-ref analysis (-O1 and up) takes a function
// whose only effect is __builtin_prefetch for one with no effect at all and deletes the calls, and
// it did so silently in the targeting and exclusion checks (none of their prefetches was left) and
// in the fusion's gather (all but the first line of each row). An asm statement is always kept;
// other CPUs get the builtin, which the same analysis may drop there.
inline void prefetchLine(const void* address) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(address)));
#else
  __builtin_prefetch(address);
#endif
}

// Starts fetching every cache line of `bytes` bytes at `row`: for rows read at random places of a
// table larger than the cache, issued a few rows ahead of their use.
inline void prefetchRow(const void* row, size_t bytes) {
  constexpr size_t kLineBytes = 64;
  const auto* first = static_cast<const char*>(row);
  for (size_t offset = 0; offset < bytes; offset += kLineBytes) prefetchLine(first + offset);
}

}  // namespace adserve
