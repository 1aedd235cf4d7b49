// Strategy search: every layout of a model on a system (and, optionally, every device count in a
// range), through the same evaluator as `train`, ranked by an objective, with a Pareto front of
// step time against memory headroom and cost.
//
// Pruning runs as named passes, each countable and switchable off:
//   divisibility  - degrees that cannot divide the devices, heads, layers, batch or sequence
//   memory        - plans whose exact memory (computed before any timing) exceeds HBM
//   dominance     - for one layout that fits without recompute, its recompute variants (never
//                   faster; kept when the objective is memory headroom)
// divisibility and memory are exact (they drop only plans that cannot run); dominance keeps the
// optimum of every objective except memory-headroom, so search with and without it agree on the
// best plan, and the top K differ only by dominated variants. A dominated variant still joins the
// Pareto front where its memory headroom is not matched by a plan no slower than its fitting
// variant, so the front is the same with and without the pass.
//
// Results are deterministic: the same answer, byte for byte, with 1 or N threads (candidates are
// merged and sorted with an explicit total order).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "spec/hardware.hpp"
#include "spec/model.hpp"
#include "spec/plan.hpp"
#include "train/report.hpp"

namespace xpu {

enum class Objective { time, cost, tokens_per_dollar, memory_headroom };
const char* objective_name(Objective o);
std::optional<Objective> parse_objective(std::string_view s);

struct SearchOptions {
  Objective objective = Objective::time;
  int top_k = 10;
  // Keep the Pareto front (SearchResult::pareto). Without it (a caller that wants the K best alone,
  // as compare's fastest plan) the bound prunes against the K best and the group's fastest alone
  // (not the front), and the front is empty.
  bool pareto = true;
  int threads = 1;
  bool prune_divisibility = true;
  bool prune_memory = true;
  bool prune_dominance = true;
  // Part of the dominance pass (off with it): a plan whose step time is provably above the K best
  // and the front (a lower bound of its pipeline simulation, evaluate's cutoff) is not simulated.
  bool prune_bound = true;
  // When set, the device count is searched too: every count of device_ladder (node x 2^k, NVL72-style domain x 2^k) in [min, max]
  // (and the request's own device count when it lies in the range).
  std::optional<int> min_devices, max_devices;
  // USD per device-hour for cost objectives (0: unknown; cost objectives then refuse to run).
  double usd_per_device_hour = 0;
};

struct SearchStats {
  long considered = 0;           // layouts enumerated
  long pruned_divisibility = 0;
  long pruned_memory = 0;
  long pruned_dominance = 0;
  long evaluated = 0;            // timed by the evaluator
  long feasible = 0;
  double seconds = 0;            // wall time of the search (not part of deterministic output)
};

// One ranked plan (light; full reports are made for the top K and the front only).
struct RankedPlan {
  Layout layout;
  int devices = 0;
  double step_time = 0;
  double memory = 0, capacity = 0;
  double cost_per_step = 0;       // USD, 0 when no price
  double objective = 0;           // lower is better for every objective (negated where needed)
};

struct SearchResult {
  std::vector<TrainReport> top;     // best first
  std::vector<TrainReport> pareto;  // non-dominated in (step time, memory headroom, cost), by step time
  SearchStats stats;
};

// Device counts worth buying up to hi, ascending: node size x powers of two and, where a scale-up
// domain spans several nodes (NVL72), domain size x powers of two.
std::vector<long> device_ladder(const System& s, long hi);

// The device counts a search tries: the request's alone, or with --min-devices/--max-devices the
// request's plus node size x powers of two and, where a scale-up domain spans several nodes (NVL72),
// domain size x powers of two, within the range. Throws InputError for an empty or inverted range.
std::vector<int> device_counts(const System& s, const PlanRequest& q, const SearchOptions& o);

// Throws InputError for bad requests (flags as in train; a cost objective without a price).
SearchResult search(const Model& m, const System& s, const PlanRequest& req, const SearchOptions& o);

}  // namespace xpu
