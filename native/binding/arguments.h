#pragma once

#include <napi.h>

#include <optional>
#include <string>
#include <vector>

namespace adserve::binding {

// Conversions from JS arguments and option objects; each throws E_INVALID_ARG naming what was wrong.

template <typename T>
Napi::TypedArrayOf<T> typedArrayArgument(const Napi::CallbackInfo& info, size_t index, const char* name);

size_t countArgument(const Napi::CallbackInfo& info, size_t index, const char* name, size_t max);
double numberArgument(const Napi::CallbackInfo& info, size_t index, const char* name);

Napi::Object objectField(Napi::Object options, const char* key);
std::string stringField(Napi::Object options, const char* key);
size_t countField(Napi::Object options, const char* key, size_t max);
// Like countField, but 0 is allowed (indices).
size_t indexField(Napi::Object options, const char* key, size_t max);
std::optional<size_t> optionalCount(Napi::Object options, const char* key, size_t max, size_t min = 1);
std::optional<double> optionalNumber(Napi::Object options, const char* key);
std::vector<std::string> stringsField(Napi::Object options, const char* key);
std::vector<float> floatsField(Napi::Object options, const char* key);
std::vector<int64_t> integersField(Napi::Object options, const char* key);

}  // namespace adserve::binding
