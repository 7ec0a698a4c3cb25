#pragma once

#include <napi.h>

#include <exception>

namespace adserve::binding {

// The choke point every entry point goes through: turns whatever C++ threw into a JS Error with a
// stable `code` (c10::Error -> E_MODEL, faiss::FaissException -> E_INDEX, std::bad_alloc ->
// E_NOMEM, EngineError keeps its code, anything else -> E_NATIVE).
Napi::Error toJsError(Napi::Env env, std::exception_ptr error);

// Throws a JS Error with `code` E_INVALID_ARG.
[[noreturn]] void throwInvalidArgument(Napi::Env env, const std::string& message);

// Runs `body` and rethrows any C++ exception as a JS Error from toJsError.
template <typename Body>
Napi::Value guarded(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw toJsError(env, std::current_exception());
  }
}

}  // namespace adserve::binding
