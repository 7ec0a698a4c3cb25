#include "binding/gcm_sealer_js.h"

#include <cstdint>
#include <string>

#include "binding/arguments.h"
#include "binding/js_errors.h"

namespace adserve::binding {

namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

void check(Napi::Env env, int ok, const char* step) {
  if (ok != 1) throw Napi::Error::New(env, std::string("AES-256-GCM ") + step + " failed in OpenSSL");
}

}  // namespace

Napi::Function GcmSealerJs::Define(Napi::Env env) { return DefineClass(env, "GcmSealer", {InstanceMethod<&GcmSealerJs::Seal>("seal")}); }

GcmSealerJs::GcmSealerJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GcmSealerJs>(info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array key = typedArrayArgument<uint8_t>(info, 0, "key");
  if (key.ByteLength() != kKeyBytes) throwInvalidArgument(env, "key must be 32 bytes");
  context_ = EVP_CIPHER_CTX_new();
  if (context_ == nullptr) throw Napi::Error::New(env, "AES-256-GCM: OpenSSL could not allocate a cipher context");
  check(env, EVP_EncryptInit_ex(context_, EVP_aes_256_gcm(), nullptr, nullptr, nullptr), "setup");
  check(env, EVP_CIPHER_CTX_ctrl(context_, EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr), "nonce length");
  check(env, EVP_EncryptInit_ex(context_, nullptr, nullptr, key.Data(), nullptr), "key setup");
}

GcmSealerJs::~GcmSealerJs() { EVP_CIPHER_CTX_free(context_); }

Napi::Value GcmSealerJs::Seal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array nonce = typedArrayArgument<uint8_t>(info, 0, "nonce");
  Napi::Uint8Array aad = typedArrayArgument<uint8_t>(info, 1, "aad");
  Napi::Uint8Array plaintext = typedArrayArgument<uint8_t>(info, 2, "plaintext");
  Napi::Uint8Array out = typedArrayArgument<uint8_t>(info, 3, "out");
  if (nonce.ByteLength() != kNonceBytes) throwInvalidArgument(env, "nonce must be 12 bytes");
  if (plaintext.ByteLength() > static_cast<size_t>(INT32_MAX) - kTagBytes || aad.ByteLength() > static_cast<size_t>(INT32_MAX)) {
    throwInvalidArgument(env, "message too long");
  }
  if (out.ByteLength() < plaintext.ByteLength() + kTagBytes) throwInvalidArgument(env, "out has no room for the ciphertext and tag");
  uint8_t* written = out.Data();
  int length = 0;
  int finalLength = 0;
  // A null cipher and key keep the context's; only the nonce is new, so GCM starts a fresh message.
  check(env, EVP_EncryptInit_ex(context_, nullptr, nullptr, nullptr, nonce.Data()), "nonce");
  check(env, EVP_EncryptUpdate(context_, nullptr, &length, aad.Data(), static_cast<int>(aad.ByteLength())), "additional data");
  check(env, EVP_EncryptUpdate(context_, written, &length, plaintext.Data(), static_cast<int>(plaintext.ByteLength())), "encryption");
  check(env, EVP_EncryptFinal_ex(context_, written + length, &finalLength), "finish");
  length += finalLength;
  check(env, EVP_CIPHER_CTX_ctrl(context_, EVP_CTRL_GCM_GET_TAG, kTagBytes, written + length), "tag");
  return Napi::Number::New(env, static_cast<double>(length + kTagBytes));
}

}  // namespace adserve::binding
