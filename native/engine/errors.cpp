#include "engine/errors.h"

namespace adserve {

const char* errorCodeName(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::BadRequest:
      return "E_BAD_REQUEST";
    case ErrorCode::InvalidArgument:
      return "E_INVALID_ARG";
    case ErrorCode::QueueFull:
      return "E_QUEUE_FULL";
    case ErrorCode::ShuttingDown:
      return "E_SHUTTING_DOWN";
    case ErrorCode::Model:
      return "E_MODEL";
    case ErrorCode::Index:
      return "E_INDEX";
    case ErrorCode::NoMemory:
      return "E_NOMEM";
    case ErrorCode::Native:
      return "E_NATIVE";
  }
  return "E_NATIVE";
}

}  // namespace adserve
