#pragma once

#include <stdexcept>
#include <string>

namespace adserve {

// Stable codes the binding hands to JS as `error.code`; the server maps them to HTTP statuses.
enum class ErrorCode {
  BadRequest,       // untrusted bytes failed verification
  InvalidArgument,  // a caller passed a malformed argument
  QueueFull,        // load shed: the engine's queue is at capacity
  ShuttingDown,     // the engine was closed while the job waited
  Model,            // libtorch failed
  Index,            // FAISS failed
  NoMemory,
  Native,  // anything else
};

const char* errorCodeName(ErrorCode code) noexcept;

// The one exception type engine code throws; everything else is mapped at the boundary.
class EngineError : public std::runtime_error {
 public:
  EngineError(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace adserve
