#include "engine/batcher.h"

#include <algorithm>
#include <string>

#include "engine/errors.h"

namespace adserve {

namespace {

// Each gap moves the average a quarter of the way, and a gap counts at most kSparseGap windows:
// after a pause the fourth to sixth group of a burst starts waiting again.
constexpr int kArrivalSmoothing = 4;
constexpr int kSparseGap = 4;

}  // namespace

Batcher::Batcher(std::shared_ptr<const Engine> engine, const BatcherOptions& options, BatchDone onBatch)
    : engine_(std::move(engine)), options_(options), onBatch_(std::move(onBatch)), arrivalGap_(kSparseGap * options.maxDelay) {
  if (options.maxBatch == 0) throw EngineError(ErrorCode::InvalidArgument, "maxBatch must be at least 1");
  if (options.threads == 0) throw EngineError(ErrorCode::InvalidArgument, "threads must be at least 1");
  threads_.reserve(options.threads);
  for (size_t i = 0; i < options.threads; ++i) threads_.emplace_back([this] { run(); });
}

Batcher::~Batcher() { stop(); }

std::vector<Batcher::Refusal> Batcher::submitGroup(std::vector<std::pair<Ticket, ScoreRequest>>&& group) {
  std::vector<Refusal> refused;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const Clock::time_point now = Clock::now();
    const Clock::duration gap = std::min<Clock::duration>(now - lastArrival_, kSparseGap * options_.maxDelay);
    arrivalGap_ += (gap - arrivalGap_) / kArrivalSmoothing;
    lastArrival_ = now;
    for (auto& entry : group) {
      if (stopping_) {
        refused.emplace_back(entry.first, std::make_exception_ptr(EngineError(ErrorCode::ShuttingDown, "engine is closed")));
      } else if (queue_.size() >= options_.queueCapacity) {
        rejected_.fetch_add(1, std::memory_order_relaxed);
        refused.emplace_back(entry.first, std::make_exception_ptr(EngineError(
                                              ErrorCode::QueueFull,
                                              "engine queue is full (" + std::to_string(options_.queueCapacity) + " requests waiting)")));
      } else {
        queue_.push_back(std::move(entry));
      }
    }
  }
  wake_.notify_one();
  return refused;
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  turn_.notify_all();
  for (std::thread& thread : threads_) {
    if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) thread.join();
  }
}

Batcher::Stats Batcher::stats() const {
  Stats stats;
  stats.batches = batches_.load(std::memory_order_relaxed);
  stats.requests = requests_.load(std::memory_order_relaxed);
  stats.rejected = rejected_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mutex_);
  stats.queued = queue_.size();
  return stats;
}

void Batcher::run() {
  std::vector<std::pair<Ticket, ScoreRequest>> batch;
  for (;;) {
    batch.clear();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ++idle_;
      turn_.wait(lock, [this] { return !collecting_; });
      collecting_ = true;
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (arrivalGap_ < options_.maxDelay && !queue_.empty()) {
        const Clock::time_point closes = queue_.front().second.enqueued + options_.maxDelay;
        wake_.wait_until(lock, closes, [this] { return stopping_ || queue_.size() >= options_.maxBatch; });
      }
      --idle_;
      // What is queued is shared with the threads idle behind this one, so that no core waits
      // while one thread scores a batch the two could have split.
      const size_t share = std::min(options_.maxBatch, (queue_.size() + idle_) / (idle_ + 1));
      while (!queue_.empty() && batch.size() < share) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      collecting_ = false;
    }
    turn_.notify_one();
    if (batch.empty()) return;  // stopping and drained
    std::vector<const ScoreRequest*> requests;
    requests.reserve(batch.size());
    for (const auto& entry : batch) requests.push_back(&entry.second);
    std::vector<Outcome> outcomes(batch.size());
    try {
      std::vector<ScoreResult> results = engine_->scoreBatch(requests);
      for (size_t i = 0; i < batch.size(); ++i) outcomes[i].result = std::move(results[i]);
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      for (auto& outcome : outcomes) outcome.error = error;
    }
    for (size_t i = 0; i < batch.size(); ++i) outcomes[i].ticket = batch[i].first;
    batches_.fetch_add(1, std::memory_order_relaxed);
    requests_.fetch_add(batch.size(), std::memory_order_relaxed);
    onBatch_(std::move(outcomes));
  }
}

}  // namespace adserve
