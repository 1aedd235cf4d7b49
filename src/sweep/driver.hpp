// Running many scenarios: a pool of worker threads that search, and the calling thread that
// receives each finished scenario (to write it, or to send it to MPI rank 0).
#pragma once

#include <functional>
#include <vector>

#include "sweep/sweep.hpp"

namespace xpu::sweep {

using Work = std::function<ScenarioRecord(const Scenario&)>;  // runs on a worker thread
using Done = std::function<void(ScenarioRecord&&)>;           // runs on the calling thread
// Called on the calling thread while it waits; may deliver records from elsewhere through
// Done. Returns true while it still expects records.
using Poll = std::function<bool()>;

// Runs work() for every scenario on `threads` threads (at least 1, at most one per scenario)
// and hands each result to done() on the calling thread, in completion order. With poll, also
// keeps calling poll() (every few milliseconds while idle) until it returns false.
// The first exception from work, done or poll stops the pool (scenarios already started finish,
// their results are dropped) and is rethrown here.
void run_pool(const std::vector<Scenario>& todo, int threads, const Work& work, const Done& done,
              const Poll& poll = {});

}  // namespace xpu::sweep
