#include "engine/text.h"

#include <string>

namespace adserve {

uint32_t fnv1a32(std::string_view bytes) noexcept {
  uint32_t value = 0x811C9DC5u;
  for (unsigned char byte : bytes) {
    value ^= byte;
    value *= 0x01000193u;
  }
  return value;
}

int64_t hashBucket(std::string_view value, int64_t buckets) noexcept {
  return static_cast<int64_t>(fnv1a32(value) % static_cast<uint32_t>(buckets - 2)) + 2;
}

void tokenBuckets(std::string_view text, int64_t buckets, size_t maxTokens, int64_t* out) {
  size_t count = 0;
  std::string token;
  auto flush = [&] {
    if (!token.empty() && count < maxTokens) out[count++] = hashBucket(token, buckets);
    token.clear();
  };
  for (char raw : text) {
    const char c = (raw >= 'A' && raw <= 'Z') ? static_cast<char>(raw - 'A' + 'a') : raw;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      token.push_back(c);
    } else {
      flush();
    }
  }
  flush();
  if (count == 0 && maxTokens > 0) out[count++] = kEmptyBucket;
  for (; count < maxTokens; ++count) out[count] = kPadBucket;
}

}  // namespace adserve
