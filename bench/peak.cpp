// This machine's roofs for the HTTP benchmark's roofline line, measured in the same run: fp32 FMA
// throughput and streaming read bandwidth, on one thread and on `threads` threads at once.
// Built by bench/peak.ts with g++ -O3 -march=native, so the loops use the widest vector unit the
// CPU has (AVX-512, AVX2 + FMA, or whatever -march=native finds).
//
//   peak <threads> <working-set bytes>   prints one JSON object on stdout
//   peak idle <bytes> <sleep µs>         the same memory-bound task back to back and after each
//                                        sleep: how much a pause costs the next task on this box
//
// Each figure is the best of a few repetitions: the box may be shared, and the best run is the one
// least disturbed by others. One-thread figures are per second of that thread's own CPU time, so
// they stay the core's roof when other processes take turns on it; figures for several threads are
// per second of wall time.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
constexpr const char* kIsa = "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kVectorBytes = 32;
constexpr const char* kIsa = "avx2+fma";
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
constexpr const char* kIsa = "avx";
#else
constexpr int kVectorBytes = 16;
constexpr const char* kIsa = "sse";
#endif

typedef float Vector __attribute__((vector_size(kVectorBytes)));
constexpr int kLanes = kVectorBytes / 4;
// Independent accumulators: enough to cover FMA latency x FMA units on current x86 cores (4-5 cycles
// x 2 units), few enough to stay in registers with 16 vector registers.
constexpr int kChains = 12;

using Clock = std::chrono::steady_clock;

double threadCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// Runs body(t) on `threads` threads; one thread runs on the caller and is timed by its CPU time.
template <typename Body>
double timedSeconds(int threads, Body body) {
  if (threads == 1) {
    const double start = threadCpuSeconds();
    body(0);
    return threadCpuSeconds() - start;
  }
  std::vector<std::thread> pool;
  const Clock::time_point start = Clock::now();
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  for (auto& thread : pool) thread.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Multiply-adds that depend only on their own chain: the loop is bound by FMA issue rate. The
// caller's `seed` keeps the compiler from folding the loop.
float fmaLoop(std::int64_t iterations, float seed) {
  Vector acc[kChains];
  Vector mul;
  Vector add;
  for (int l = 0; l < kLanes; ++l) {
    mul[l] = 0.999999f;
    add[l] = seed * 1e-7f;
  }
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l) acc[c][l] = seed + static_cast<float>(c * kLanes + l);
  for (std::int64_t i = 0; i < iterations; ++i) {
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * mul + add;
    __asm__ volatile("" : "+x"(mul));  // keeps mul opaque, so the chains cannot be simplified
  }
  float sum = 0;
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l) sum += acc[c][l];
  return sum;
}

// Sums `bytes` of floats with independent accumulators: bound by how fast the data arrives.
float readLoop(const float* data, std::size_t floats) {
  constexpr int kReadChains = 8;
  Vector acc[kReadChains] = {};
  const std::size_t step = kLanes * kReadChains;
  std::size_t i = 0;
  for (; i + step <= floats; i += step) {
    for (int c = 0; c < kReadChains; ++c) {
      Vector v;
      std::memcpy(&v, data + i + c * kLanes, sizeof v);
      acc[c] += v;
    }
  }
  float sum = 0;
  for (; i < floats; ++i) sum += data[i];
  for (int c = 0; c < kReadChains; ++c)
    for (int l = 0; l < kLanes; ++l) sum += acc[c][l];
  return sum;
}

volatile float sink;  // results land here so that no loop is dead code

// GFLOP/s of `threads` threads each running the FMA loop: 2 FLOPs per lane per multiply-add.
double fmaGflops(int threads) {
  const std::int64_t iterations = 20'000'000;
  double best = 0;
  for (int repeat = 0; repeat < 3; ++repeat) {
    std::vector<float> results(threads);
    const double seconds = timedSeconds(threads, [&](int t) { results[t] = fmaLoop(iterations, static_cast<float>(t + repeat)); });
    for (float r : results) sink = sink + r;
    best = std::max(best, 2.0 * kChains * kLanes * static_cast<double>(iterations) * threads / seconds / 1e9);
  }
  return best;
}

// GB/s of `threads` threads each reading its own slice of a `bytes` buffer, several passes.
double readGBps(int threads, std::size_t bytes) {
  const std::size_t floats = bytes / sizeof(float);
  std::vector<float> data(floats);
  for (std::size_t i = 0; i < floats; ++i) data[i] = static_cast<float>(i & 1023);
  // At least about 1 GB read per repetition, so small (cache-sized) buffers are timed long enough.
  const int passes = static_cast<int>(std::max<std::size_t>(1, (std::size_t(1) << 30) / std::max<std::size_t>(bytes, 1)));
  double best = 0;
  for (int repeat = 0; repeat < 4; ++repeat) {
    std::vector<float> results(threads);
    const std::size_t slice = floats / threads;
    const double seconds = timedSeconds(threads, [&](int t) {
      float sum = 0;
      for (int pass = 0; pass < passes; ++pass) {
        sum += readLoop(data.data() + t * slice, slice);
        __asm__ volatile("" ::: "memory");  // each pass must read the buffer again, not reuse the last sum
      }
      results[t] = sum;
    });
    for (float r : results) sink = sink + r;
    if (repeat > 0)
      best =
          std::max(best, static_cast<double>(slice) * sizeof(float) * threads * passes / seconds / 1e9);  // the first pass faults pages in
  }
  return best;
}

// One task: a streaming pass over `data` and 16K dependent-free random reads into it, roughly what
// a request does to the index and the fusion tables.
double touchTask(const std::vector<float>& data, const std::vector<std::uint32_t>& picks) {
  const double start = threadCpuSeconds();
  float sum = readLoop(data.data(), data.size());
  for (std::uint32_t pick : picks) sum += data[pick];
  sink = sink + sum;
  return threadCpuSeconds() - start;
}

// Median CPU µs of the task, run back to back and after sleeping `sleepMicros` before each run.
// Machines that lend an idle core to others (VMs, SMT siblings) or power it down hand the next
// task cold caches and TLBs; the ratio says how much of a low-rate request's extra cost is that.
int idlePenalty(std::size_t bytes, long sleepMicros) {
  std::vector<float> data(bytes / sizeof(float));
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i & 1023);
  std::vector<std::uint32_t> picks(16384);
  std::uint32_t state = 12345;
  for (auto& pick : picks) pick = (state = state * 1103515245u + 12345u) % static_cast<std::uint32_t>(data.size());
  auto median = [&](long pause) {
    std::vector<double> runs;
    for (int run = 0; run < 220; ++run) {
      if (pause > 0) {
        const timespec wait{pause / 1'000'000, (pause % 1'000'000) * 1000};
        nanosleep(&wait, nullptr);
      }
      const double seconds = touchTask(data, picks);
      if (run >= 20) runs.push_back(seconds);  // the first runs fault pages in
    }
    std::nth_element(runs.begin(), runs.begin() + runs.size() / 2, runs.end());
    return runs[runs.size() / 2] * 1e6;
  };
  const double backToBack = median(0);
  const double afterSleep = median(sleepMicros);
  std::printf("{\"bytes\":%zu,\"sleepMicros\":%ld,\"backToBackMicros\":%.1f,\"afterSleepMicros\":%.1f}\n", bytes, sleepMicros, backToBack,
              afterSleep);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "idle") == 0)
    return idlePenalty(std::max<std::size_t>(std::strtoull(argv[2], nullptr, 10), 4096), std::atol(argv[3]));
  if (argc != 3) {
    std::fprintf(stderr, "usage: peak <threads> <working-set bytes> | peak idle <bytes> <sleep µs>\n");
    return 2;
  }
  const int threads = std::max(1, std::atoi(argv[1]));
  const std::size_t workingSet = std::max<std::size_t>(std::strtoull(argv[2], nullptr, 10), 4096);
  const std::size_t dram = std::size_t(256) << 20;  // far beyond any L3 of today's servers
  std::printf(
      "{\"isa\":\"%s\",\"threads\":%d,\"fmaGflopsOneCore\":%.2f,\"fmaGflopsAllThreads\":%.2f,"
      "\"workingSetBytes\":%zu,\"readGBpsWorkingSetOneCore\":%.2f,\"readGBpsDramOneCore\":%.2f,\"readGBpsDramAllThreads\":%.2f}\n",
      kIsa, threads, fmaGflops(1), fmaGflops(threads), workingSet, readGBps(1, workingSet), readGBps(1, dram), readGBps(threads, dram));
  return 0;
}
