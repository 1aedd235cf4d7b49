#include "sweep/driver.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace xpu::sweep {

void run_pool(const std::vector<Scenario>& todo, int threads, const Work& work, const Done& done, const Poll& poll) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<ScenarioRecord> ready;
  std::exception_ptr error;
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};

  const int n = static_cast<int>(std::clamp<size_t>(static_cast<size_t>(std::max(threads, 1)), 1, std::max<size_t>(todo.size(), 1)));
  std::vector<std::thread> pool;
  if (!todo.empty()) {
    pool.reserve(n);
    for (int t = 0; t < n; ++t)
      pool.emplace_back([&] {
        for (;;) {
          if (stop) return;
          const size_t i = next++;
          if (i >= todo.size()) return;
          try {
            ScenarioRecord r = work(todo[i]);
            std::lock_guard<std::mutex> lk(mu);
            ready.push_back(std::move(r));
          } catch (...) {
            std::lock_guard<std::mutex> lk(mu);
            if (!error) error = std::current_exception();
            stop = true;
          }
          cv.notify_one();
        }
      });
  }

  std::exception_ptr failure;
  try {
    size_t handled = 0;
    bool remote = static_cast<bool>(poll);
    for (;;) {
      std::deque<ScenarioRecord> batch;
      {
        std::unique_lock<std::mutex> lk(mu);
        if (remote) cv.wait_for(lk, std::chrono::milliseconds(2), [&] { return !ready.empty() || error; });
        else cv.wait(lk, [&] { return !ready.empty() || error || handled + ready.size() == todo.size(); });
        if (error) std::rethrow_exception(error);
        batch.swap(ready);
      }
      for (auto& r : batch) {
        done(std::move(r));
        ++handled;
      }
      if (remote) remote = poll();
      if (!remote && handled == todo.size()) break;
    }
  } catch (...) {
    failure = std::current_exception();
    stop = true;
  }
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace xpu::sweep
