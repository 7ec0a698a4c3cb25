#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace adserve {

// A fixed set of engine threads that run submitted tasks in FIFO order. Inference and search run
// here rather than on libuv's pool, so a long forward pass never starves Node's fs and dns work.
// Owned by whoever constructs it; submit() is safe from any thread. Tasks must not throw: callers
// catch inside the task and carry failures to their own completion path.
class WorkerPool {
 public:
  struct Options {
    size_t threads = 1;
    size_t queueCapacity = 4096;  // submit() refuses beyond this many waiting tasks
  };

  explicit WorkerPool(const Options& options);
  ~WorkerPool();  // runs every task already queued, then joins

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Throws EngineError(QueueFull) at capacity and EngineError(ShuttingDown) after shutdown began.
  void submit(std::function<void()> task);

 private:
  void run();

  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace adserve
