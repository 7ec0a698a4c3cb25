#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace adserve {

// Text hashing identical to train/text.py: a token is a run of ASCII [a-z0-9] after ASCII
// lower-casing; its bucket is fnv1a32(bytes) % (buckets - 2) + 2. Bucket 0 pads, bucket 1 marks an
// empty text.
constexpr int64_t kPadBucket = 0;
constexpr int64_t kEmptyBucket = 1;

uint32_t fnv1a32(std::string_view bytes) noexcept;

// ASCII-only case mapping: other bytes pass through unchanged.
std::string asciiUpper(std::string_view value);
std::string asciiLower(std::string_view value);

// The tokens of a text: runs of ASCII [a-z0-9] after ASCII lower-casing; every other byte separates.
std::vector<std::string> tokenize(std::string_view text);

// Bucket of a whole string (ids such as product ids), without tokenising.
int64_t hashBucket(std::string_view value, int64_t buckets) noexcept;

// Writes exactly maxTokens buckets into `out`: the first maxTokens tokens, padded with kPadBucket;
// an empty text yields kEmptyBucket first.
void tokenBuckets(std::string_view text, int64_t buckets, size_t maxTokens, int64_t* out);

}  // namespace adserve
