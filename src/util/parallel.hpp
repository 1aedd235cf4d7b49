// Runs a loop's iterations on several threads, for work whose result does not depend on which
// thread ran what: each iteration writes its own slot, and the caller merges the slots in order.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace xpu {

// Calls fn(i) for every i in [0, n), handing the indices out in order to `threads` threads (the
// calling thread among them; at most n). The first exception fn throws stops the hand-out and is
// rethrown here once every thread has finished.
template <class Fn>
void parallel_for(std::size_t n, int threads, Fn&& fn) {
  const std::size_t workers = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(threads, 1)));
  if (workers <= 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex mu;
  auto work = [&] {
    for (std::size_t i = next++; i < n && !stop; i = next++) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        stop = true;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (std::size_t t = 1; t < workers; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

// Every core, when a command is not told how many threads to use.
inline int all_cores() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

}  // namespace xpu
