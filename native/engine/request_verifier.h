#pragma once

#include <cstddef>
#include <cstdint>

namespace adserve {

// Bounds for untrusted FlatBuffers, far tighter than the library defaults: an ad request is a few
// hundred bytes, so anything near these limits is hostile or broken.
struct VerifyLimits {
  size_t maxBytes = 64 * 1024;
  size_t maxDepth = 16;
  size_t maxTables = 4096;
};

// Throw EngineError(BadRequest) with a reason unless `bytes` is a complete, well-formed buffer of
// that root type carrying its file identifier. Nothing may read a buffer before it passes.
void verifyAdRequest(const uint8_t* bytes, size_t size, const VerifyLimits& limits = {});
void verifyEvent(const uint8_t* bytes, size_t size, const VerifyLimits& limits = {});

}  // namespace adserve
