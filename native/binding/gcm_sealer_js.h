#pragma once

#include <napi.h>

#include <openssl/evp.h>

namespace adserve::binding {

// JS class GcmSealer(key): AES-256-GCM sealing under one 32-byte key, through the OpenSSL that Node
// itself carries (the addon links no libcrypto; its EVP calls resolve to the node binary's own).
// node:crypto builds and keys a new cipher object for every message, about 6 µs per event token on
// our machines; this context keeps the key schedule and takes only a new nonce per message.
//
//   seal(nonce: 12 bytes, aad, plaintext, out) -> bytes written at the start of out: the
//     ciphertext (as long as the plaintext), then the 16-byte tag
//
// The caller owns nonce uniqueness (event_token.ts: a counter under a per-process key).
class GcmSealerJs : public Napi::ObjectWrap<GcmSealerJs> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit GcmSealerJs(const Napi::CallbackInfo& info);
  ~GcmSealerJs() override;

 private:
  Napi::Value Seal(const Napi::CallbackInfo& info);
  EVP_CIPHER_CTX* context_ = nullptr;
};

}  // namespace adserve::binding
