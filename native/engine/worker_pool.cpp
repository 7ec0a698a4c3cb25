#include "engine/worker_pool.h"

#include "engine/errors.h"

namespace adserve {

WorkerPool::WorkerPool(const Options& options) : capacity_(options.queueCapacity) {
  if (options.threads == 0) throw EngineError(ErrorCode::InvalidArgument, "worker pool needs at least one thread");
  threads_.reserve(options.threads);
  for (size_t i = 0; i < options.threads; ++i) threads_.emplace_back([this] { run(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& thread : threads_) thread.join();
}

void WorkerPool::submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw EngineError(ErrorCode::ShuttingDown, "engine is shutting down");
    if (tasks_.size() >= capacity_) throw EngineError(ErrorCode::QueueFull, "engine queue is full");
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void WorkerPool::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping and drained
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace adserve
