#include "binding/arguments.h"

#include <cmath>

#include "binding/js_errors.h"

namespace adserve::binding {
namespace {

template <typename T>
struct TypedArrayTraits;
template <>
struct TypedArrayTraits<uint8_t> {
  static constexpr napi_typedarray_type type = napi_uint8_array;
  static constexpr const char* name = "Uint8Array";
};
template <>
struct TypedArrayTraits<uint32_t> {
  static constexpr napi_typedarray_type type = napi_uint32_array;
  static constexpr const char* name = "Uint32Array";
};
template <>
struct TypedArrayTraits<float> {
  static constexpr napi_typedarray_type type = napi_float32_array;
  static constexpr const char* name = "Float32Array";
};

bool isCount(double value, size_t min, size_t max) {
  return value >= static_cast<double>(min) && value <= static_cast<double>(max) && std::floor(value) == value;
}

}  // namespace

template <typename T>
Napi::TypedArrayOf<T> typedArrayArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != TypedArrayTraits<T>::type) {
    throwInvalidArgument(info.Env(), std::string(name) + " must be a " + TypedArrayTraits<T>::name);
  }
  return info[index].As<Napi::TypedArrayOf<T>>();
}

template Napi::TypedArrayOf<uint8_t> typedArrayArgument<uint8_t>(const Napi::CallbackInfo&, size_t, const char*);
template Napi::TypedArrayOf<uint32_t> typedArrayArgument<uint32_t>(const Napi::CallbackInfo&, size_t, const char*);
template Napi::TypedArrayOf<float> typedArrayArgument<float>(const Napi::CallbackInfo&, size_t, const char*);

double numberArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsNumber()) throwInvalidArgument(info.Env(), std::string(name) + " must be a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

size_t countArgument(const Napi::CallbackInfo& info, size_t index, const char* name, size_t max) {
  const double value = numberArgument(info, index, name);
  if (!isCount(value, 1, max)) throwInvalidArgument(info.Env(), std::string(name) + " must be an integer in 1.." + std::to_string(max));
  return static_cast<size_t>(value);
}

Napi::Object objectField(Napi::Object options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsObject()) throwInvalidArgument(options.Env(), std::string(key) + " must be an object");
  return value.As<Napi::Object>();
}

std::string stringField(Napi::Object options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsString()) throwInvalidArgument(options.Env(), std::string(key) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

size_t countField(Napi::Object options, const char* key, size_t max) {
  const auto value = optionalCount(options, key, max);
  if (!value) throwInvalidArgument(options.Env(), std::string(key) + " is required");
  return *value;
}

size_t indexField(Napi::Object options, const char* key, size_t max) {
  Napi::Value value = options.Get(key);
  if (!value.IsNumber() || !isCount(value.As<Napi::Number>().DoubleValue(), 0, max)) {
    throwInvalidArgument(options.Env(), std::string(key) + " must be an integer in 0.." + std::to_string(max));
  }
  return static_cast<size_t>(value.As<Napi::Number>().DoubleValue());
}

std::optional<size_t> optionalCount(Napi::Object options, const char* key, size_t max, size_t min) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return std::nullopt;
  if (!value.IsNumber() || !isCount(value.As<Napi::Number>().DoubleValue(), min, max)) {
    throwInvalidArgument(options.Env(), std::string(key) + " must be an integer in " + std::to_string(min) + ".." + std::to_string(max));
  }
  return static_cast<size_t>(value.As<Napi::Number>().DoubleValue());
}

std::optional<double> optionalNumber(Napi::Object options, const char* key) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return std::nullopt;
  if (!value.IsNumber() || !std::isfinite(value.As<Napi::Number>().DoubleValue())) {
    throwInvalidArgument(options.Env(), std::string(key) + " must be a finite number");
  }
  return value.As<Napi::Number>().DoubleValue();
}

std::vector<std::string> stringsField(Napi::Object options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsArray()) throwInvalidArgument(options.Env(), std::string(key) + " must be an array of strings");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) throwInvalidArgument(options.Env(), std::string(key) + "[" + std::to_string(i) + "] must be a string");
    out.push_back(item.As<Napi::String>().Utf8Value());
  }
  return out;
}

namespace {

std::vector<double> numbersField(Napi::Object options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsArray()) throwInvalidArgument(options.Env(), std::string(key) + " must be an array of numbers");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<double> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsNumber()) throwInvalidArgument(options.Env(), std::string(key) + "[" + std::to_string(i) + "] must be a number");
    out[i] = item.As<Napi::Number>().DoubleValue();
  }
  return out;
}

}  // namespace

std::vector<float> floatsField(Napi::Object options, const char* key) {
  Napi::Value value = options.Get(key);
  if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    Napi::Float32Array array = value.As<Napi::Float32Array>();
    return std::vector<float>(array.Data(), array.Data() + array.ElementLength());
  }
  const std::vector<double> numbers = numbersField(options, key);
  return std::vector<float>(numbers.begin(), numbers.end());
}

std::vector<int64_t> integersField(Napi::Object options, const char* key) {
  std::vector<int64_t> out;
  for (double value : numbersField(options, key)) {
    if (std::floor(value) != value) throwInvalidArgument(options.Env(), std::string(key) + " must hold integers");
    out.push_back(static_cast<int64_t>(value));
  }
  return out;
}

}  // namespace adserve::binding
