#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace adserve {

// Cache keys are the raw bytes of everything the cached value depends on: equal keys, equal values.
template <typename T>
void appendKeyBytes(std::string& key, const T& value) {
  key.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

// A bounded least-recently-used cache with a time to live. Thread-safe (one mutex, held for a
// lookup or an insert: the engine's batcher threads, its only regular users, seldom meet on it).
template <typename Value>
class LruCache {
 public:
  using Clock = std::chrono::steady_clock;

  LruCache(size_t capacity, std::chrono::milliseconds ttl) : capacity_(capacity), ttl_(ttl) {}

  std::optional<Value> get(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = index_.find(key);
    if (found == index_.end()) {
      ++misses_;
      return std::nullopt;
    }
    if (Clock::now() - found->second->stored > ttl_) {
      entries_.erase(found->second);
      index_.erase(found);
      ++misses_;
      return std::nullopt;
    }
    entries_.splice(entries_.begin(), entries_, found->second);
    ++hits_;
    return found->second->value;
  }

  void put(const std::string& key, Value value) {
    if (capacity_ == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = index_.find(key);
    if (found != index_.end()) {
      entries_.erase(found->second);
      index_.erase(found);
    }
    entries_.push_front({key, std::move(value), Clock::now()});
    index_[key] = entries_.begin();
    if (entries_.size() > capacity_) {
      index_.erase(entries_.back().key);
      entries_.pop_back();
    }
  }

  std::pair<uint64_t, uint64_t> hitsAndMisses() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {hits_, misses_};
  }

 private:
  struct Entry {
    std::string key;
    Value value;
    Clock::time_point stored;
  };
  const size_t capacity_;
  const std::chrono::milliseconds ttl_;
  mutable std::mutex mutex_;
  std::list<Entry> entries_;
  std::unordered_map<std::string, typename std::list<Entry>::iterator> index_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace adserve
