#include "binding/js_errors.h"

#include <c10/util/Exception.h>
#include <faiss/impl/FaissException.h>

#include <new>

#include "engine/errors.h"

namespace adserve::binding {
namespace {

Napi::Error withCode(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

}  // namespace

Napi::Error toJsError(Napi::Env env, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const EngineError& e) {
    return withCode(env, errorCodeName(e.code()), e.what());
  } catch (const c10::Error& e) {
    return withCode(env, errorCodeName(ErrorCode::Model), e.what_without_backtrace());
  } catch (const faiss::FaissException& e) {
    return withCode(env, errorCodeName(ErrorCode::Index), e.what());
  } catch (const std::bad_alloc&) {
    return withCode(env, errorCodeName(ErrorCode::NoMemory), "out of memory");
  } catch (const std::exception& e) {
    return withCode(env, errorCodeName(ErrorCode::Native), e.what());
  } catch (...) {
    return withCode(env, errorCodeName(ErrorCode::Native), "unknown native exception");
  }
}

void throwInvalidArgument(Napi::Env env, const std::string& message) {
  throw withCode(env, errorCodeName(ErrorCode::InvalidArgument), message);
}

}  // namespace adserve::binding
