#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace adserve {

// A candidate (score, ad) as one integer, so that ranking compares one word (as a pair compared
// field by field, the IVF selection took about 7% of the engine's CPU): above, the score's bits mapped so
// that integer order is float order (-0 just below +0); below, the ad's complement, so that of two
// equal scores the lower ad ranks higher and a result never depends on the order a scan found its
// ads in. Ad indices fit in 32 bits (the catalog numbers them so).
class RankedAd {
 public:
  RankedAd(float score, int64_t ad) : key_((uint64_t{orderedBits(score)} << 32) | (kAdMask - static_cast<uint32_t>(ad))) {}
  float score() const {
    const auto ordered = static_cast<uint32_t>(key_ >> 32);
    const uint32_t bits = (ordered & kSign) != 0 ? ordered & ~kSign : ~ordered;
    float score;
    std::memcpy(&score, &bits, sizeof score);
    return score;
  }
  int64_t ad() const { return kAdMask - static_cast<uint32_t>(key_); }
  // A function object, not a function: the selections and sorts given a function pointer called it
  // for every comparison instead of inlining one integer compare.
  struct RanksAbove {
    bool operator()(const RankedAd& a, const RankedAd& b) const { return a.key_ > b.key_; }
  };
  static constexpr RanksAbove ranksAbove{};

 private:
  static constexpr uint32_t kSign = 0x80000000u;
  static constexpr uint32_t kAdMask = 0xffffffffu;
  static uint32_t orderedBits(float score) {
    uint32_t bits;
    std::memcpy(&bits, &score, sizeof bits);
    return (bits & kSign) != 0 ? ~bits : bits | kSign;
  }
  uint64_t key_;
};

// Puts the best `n` of [first, last) at the front, best first, by `better`, a strict total order
// (scores with ties broken by ad): the same result as std::partial_sort, which sorts through a heap
// and, with hundreds of the thousand candidates kept, spent about 7% of the engine's CPU there;
// a selection and then an introsort of the n is quicker.
template <typename Iterator, typename Better>
void sortBest(Iterator first, Iterator last, size_t n, Better better) {
  const auto count = static_cast<size_t>(last - first);
  n = std::min(n, count);
  if (n == 0) return;
  if (n < count) std::nth_element(first, first + static_cast<std::ptrdiff_t>(n - 1), last, better);
  std::sort(first, first + static_cast<std::ptrdiff_t>(n), better);
}

}  // namespace adserve
