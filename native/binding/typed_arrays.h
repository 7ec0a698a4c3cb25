#pragma once

#include <napi.h>

#include <memory>
#include <vector>

namespace adserve::binding {

// Hands `values` to JS without copying: the typed array views the vector's own storage, and the
// vector is freed when the garbage collector finalizes the ArrayBuffer.
template <typename T>
Napi::TypedArrayOf<T> adoptVector(Napi::Env env, std::vector<T>&& values) {
  const size_t length = values.size();
  if (length == 0) return Napi::TypedArrayOf<T>::New(env, 0);
  auto owned = std::make_unique<std::vector<T>>(std::move(values));
  auto buffer = Napi::ArrayBuffer::New(
      env, owned->data(), length * sizeof(T),
      [](Napi::Env, void*, std::vector<T>* vector) { std::unique_ptr<std::vector<T>> freed(vector); }, owned.get());
  owned.release();  // the finalizer owns it now
  return Napi::TypedArrayOf<T>::New(env, length, buffer, 0);
}

}  // namespace adserve::binding
