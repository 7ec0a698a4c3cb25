#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace adserve {

struct BatcherOptions {
  size_t maxBatch = 32;                      // requests per batched pass
  std::chrono::microseconds maxDelay{1000};  // longest wait after the first request of a batch
  size_t queueCapacity = 1024;               // waiting requests before submit() sheds load
  size_t threads = 1;                        // batches scored at once, each on a thread of its own
};

// The cross-request micro-batcher. submitGroup() may be called from any thread; a batcher thread
// collects up to maxBatch requests, scores them with one Engine::scoreBatch call and hands every
// outcome of the batch to `onBatch` at once (from that thread).
//
// With several threads, one collects the next batch while the others score theirs: a batch is
// still formed by one thread alone (it waits for company on its own, and the idle ones wait for
// their turn to collect), and batches are scored side by side, each with its own scratch.
//
// Waiting for company: with fewer than maxBatch queued, the thread waits up to maxDelay after the
// first request only while groups arrive more often than that (a moving average of the gaps
// between groups, kArrivalSmoothing), since only then is another one likely inside the window.
// In sparse traffic a request goes at once instead of sitting out maxDelay alone, which cost a
// millisecond of latency and a timed wake-up per request at 100 requests/s.
class Batcher {
 public:
  using Ticket = uint64_t;
  struct Outcome {
    Ticket ticket = 0;
    ScoreResult result;
    std::exception_ptr error;  // set when the whole batch failed
  };
  using BatchDone = std::function<void(std::vector<Outcome>&&)>;

  struct Stats {
    uint64_t batches = 0;
    uint64_t requests = 0;
    uint64_t rejected = 0;
    size_t queued = 0;
  };

  Batcher(std::shared_ptr<const Engine> engine, const BatcherOptions& options, BatchDone onBatch);
  ~Batcher();

  using Refusal = std::pair<Ticket, std::exception_ptr>;
  // Queues the requests of one group (those that came in one turn of the caller's event loop) with
  // one lock and one wake-up. Returns those refused, each with its EngineError: QueueFull at
  // capacity, ShuttingDown after stop().
  std::vector<Refusal> submitGroup(std::vector<std::pair<Ticket, ScoreRequest>>&& group);
  // Scores everything already queued, then joins the thread. Idempotent.
  void stop();
  Stats stats() const;

 private:
  void run();

  const std::shared_ptr<const Engine> engine_;
  const BatcherOptions options_;
  const BatchDone onBatch_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable turn_;  // idle threads waiting to become the collector
  std::deque<std::pair<Ticket, ScoreRequest>> queue_;
  bool stopping_ = false;
  bool collecting_ = false;  // a thread is forming the next batch (only it waits on wake_)
  size_t idle_ = 0;          // threads waiting for their turn to collect, and the collector until it takes its batch
  // Mean gap between groups (guarded by mutex_); starts, and after a pause returns to, "sparse".
  Clock::duration arrivalGap_;
  Clock::time_point lastArrival_{};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> rejected_{0};
  std::vector<std::thread> threads_;
};

}  // namespace adserve
