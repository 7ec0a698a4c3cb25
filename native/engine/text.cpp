#include "engine/text.h"

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

std::string asciiUpper(std::string_view value) {
  std::string out(value);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string asciiLower(std::string_view value) {
  std::string out(value);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::vector<std::string> tokenize(std::string_view text) {
  std::vector<std::string> out;
  std::string token;
  for (char raw : text) {
    const char c = (raw >= 'A' && raw <= 'Z') ? static_cast<char>(raw - 'A' + 'a') : raw;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      token.push_back(c);
    } else if (!token.empty()) {
      out.push_back(std::move(token));
      token.clear();
    }
  }
  if (!token.empty()) out.push_back(std::move(token));
  return out;
}

void tokenBuckets(std::string_view text, int64_t buckets, size_t maxTokens, int64_t* out) {
  const std::vector<std::string> words = tokenize(text);
  size_t count = 0;
  for (; count < words.size() && count < maxTokens; ++count) out[count] = hashBucket(words[count], buckets);
  if (count == 0 && maxTokens > 0) out[count++] = kEmptyBucket;
  for (; count < maxTokens; ++count) out[count] = kPadBucket;
}

}  // namespace adserve
