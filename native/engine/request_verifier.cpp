#include "engine/request_verifier.h"

#include <string>

#include "ad_request_generated.h"
#include "engine/errors.h"
#include "event_generated.h"

namespace adserve {
namespace {

template <typename Root>
void verifyRoot(const char* typeName, const char* identifier, const uint8_t* bytes, size_t size, const VerifyLimits& limits) {
  if (bytes == nullptr || size == 0) throw EngineError(ErrorCode::BadRequest, std::string("empty ") + typeName);
  if (size > limits.maxBytes) {
    throw EngineError(ErrorCode::BadRequest, std::string(typeName) + " is larger than " + std::to_string(limits.maxBytes) + " bytes");
  }
  // Root offset plus identifier; shorter buffers cannot even be inspected safely.
  if (size < 8) throw EngineError(ErrorCode::BadRequest, std::string(typeName) + " is truncated (" + std::to_string(size) + " bytes)");
  if (!flatbuffers::BufferHasIdentifier(bytes, identifier)) {
    throw EngineError(ErrorCode::BadRequest, std::string("not an ") + typeName + ": file identifier is not \"" + identifier + "\"");
  }
  flatbuffers::Verifier verifier(bytes, size, static_cast<flatbuffers::uoffset_t>(limits.maxDepth),
                                 static_cast<flatbuffers::uoffset_t>(limits.maxTables));
  if (!verifier.VerifyBuffer<Root>(identifier)) {
    throw EngineError(ErrorCode::BadRequest,
                      std::string(typeName) + " failed FlatBuffers verification (truncated, corrupt or missing a required field)");
  }
}

}  // namespace

void verifyAdRequest(const uint8_t* bytes, size_t size, const VerifyLimits& limits) {
  verifyRoot<fb::AdRequest>("AdRequest", fb::AdRequestIdentifier(), bytes, size, limits);
}

void verifyEvent(const uint8_t* bytes, size_t size, const VerifyLimits& limits) {
  verifyRoot<fb::Event>("Event", fb::EventIdentifier(), bytes, size, limits);
}

}  // namespace adserve
