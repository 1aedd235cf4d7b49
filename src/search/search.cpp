#include "search/search.hpp"

#include <algorithm>
#include <limits>
#include <chrono>
#include <cmath>
#include <tuple>

#include "spec/error.hpp"
#include "train/choose.hpp"
#include "train/evaluate.hpp"
#include "util/parallel.hpp"

namespace xpu {

const char* objective_name(Objective o) {
  switch (o) {
    case Objective::time: return "time";
    case Objective::cost: return "cost";
    case Objective::tokens_per_dollar: return "tokens-per-dollar";
    case Objective::memory_headroom: return "memory-headroom";
  }
  return "?";
}

std::optional<Objective> parse_objective(std::string_view s) {
  for (Objective o : {Objective::time, Objective::cost, Objective::tokens_per_dollar, Objective::memory_headroom})
    if (s == objective_name(o)) return o;
  return std::nullopt;
}

namespace {

// Total order: objective, then step time, then the layout itself (so ties are broken explicitly).
auto key(const RankedPlan& p) {
  return std::tuple_cat(std::make_tuple(p.objective, p.step_time, p.devices), layout_order_key(p.layout));
}
bool better(const RankedPlan& a, const RankedPlan& b) { return key(a) < key(b); }

// a dominates b: no worse in step time, memory headroom and cost, better in one.
bool dominates(const RankedPlan& a, const RankedPlan& b) {
  const double ha = a.capacity - a.memory, hb = b.capacity - b.memory;
  const bool no_worse = a.step_time <= b.step_time && ha >= hb && a.cost_per_step <= b.cost_per_step;
  const bool better_one = a.step_time < b.step_time || ha > hb || a.cost_per_step < b.cost_per_step;
  return no_worse && better_one;
}

void add_to_front(std::vector<RankedPlan>& front, const RankedPlan& p) {
  for (const auto& q : front)
    if (dominates(q, p) || (q.step_time == p.step_time && q.memory == p.memory && q.cost_per_step == p.cost_per_step))
      return;
  front.erase(std::remove_if(front.begin(), front.end(), [&](const RankedPlan& q) { return dominates(p, q); }), front.end());
  front.push_back(p);
}

struct Lists {
  std::vector<int> tp, pp, cp, mb, ep, etp, zero;
  std::vector<RecomputeChoice> rc;
  std::vector<Precision> prec;
};

template <class T>
std::vector<T> given_or(const std::optional<T>& g, std::vector<T> all) {
  return g ? std::vector<T>{*g} : all;
}

// The raw space: train's candidate space (tp_range and the rest, train/choose.hpp), before the
// divisibility pass prunes it, so that search and train find the same plans.
Lists raw_lists(const Model& m, const System& s, const PlanRequest& q) {
  Lists L;
  L.tp = given_or(q.tp, tp_range(m, s));
  L.pp = given_or(q.pp, pp_range(m, q.schedule));
  L.cp = given_or(q.cp, cp_range(q));
  L.mb = given_or(q.micro_batch, micro_batch_range());
  L.ep = given_or(q.ep, ep_range(m));
  L.etp = given_or(q.etp, etp_range(m, s, q));
  L.zero = given_or(q.zero, zero_range(q));
  L.rc = recompute_range(m, q);
  L.prec = given_or(q.precision, precision_range(s, q.every_precision));
  return L;
}

struct Task {
  int devices, tp, pp;
  std::vector<int> vps;  // the interleaving depths of this pp: given, or those of even chunks
};

struct TaskResult {
  std::vector<RankedPlan> top, front;
  SearchStats st;
};

class Searcher {
 public:
  Searcher(const Model& m, const System& s, const PlanRequest& q, const SearchOptions& o, const Lists& L)
      : m_(m), s_(s), q_(q), o_(o), L_(L) {}

  void run(const Task& t, TaskResult& out) const;

 private:
  RankedPlan ranked(const Layout& l, int devices, const TrainReport& r) const;  // objective unset
  // Ranks a layout; returns its step time when it fits, else a negative number. group_best: the
  // fastest step time of the layout's (devices, tp, pp, cp) group so far (negative: none yet), which
  // the group's balanced layouts start from. A plan that provably ends up in no result (slower than
  // the K best, than a plan of the front with as much headroom, and than group_best) skips its
  // pipeline simulation (evaluate's cutoff) and counts as pruned by dominance; the returned time is
  // then a lower bound, above group_best. bound: a lower bound of its step time known already
  // (order_by_bound's; 0: none), which bounds it without evaluating it where the bar does not
  // depend on its memory (no front).
  double consider(const Layout& l, int devices, TaskResult& out, double group_best, double bound = 0) const;
  // A recompute variant the dominance pass keeps out of the ranking (its layout fits without
  // recompute, which is never slower) may still buy memory headroom: it joins the Pareto front
  // unless a plan there is no slower than the variant without recompute (fit_time) and leaves at
  // least its headroom.
  void consider_for_front(const Layout& l, int devices, double fit_time, TaskResult& out) const;
  // The memory options (spec/plan.hpp) this request allows at a precision.
  long count_mem_options(Precision p) const {
    long n = 0;
    for (int mo = 0; mo < kMemoryOptions; ++mo) n += memory_option_allowed(q_, p, mo);
    return n;
  }
  long inner_count(std::size_t vps) const;

  const Model& m_;
  const System& s_;
  const PlanRequest& q_;
  const SearchOptions& o_;
  const Lists& L_;
};

// Candidates below one (devices, tp, pp) node of the enumeration tree (with vps interleaving
// depths), for counting pruned subtrees.
long Searcher::inner_count(std::size_t vps) const {
  long per_prec = 0;
  for (Precision p : L_.prec) per_prec += count_mem_options(p);
  return static_cast<long>(L_.cp.size() * L_.mb.size() * vps * L_.ep.size() * L_.etp.size() * L_.zero.size() *
                           L_.rc.size()) *
         per_prec;
}

RankedPlan Searcher::ranked(const Layout& l, int devices, const TrainReport& r) const {
  RankedPlan p;
  p.layout = l;
  p.devices = devices;
  p.step_time = tie_grid(r.step_time);  // rounding noise ties; the layout order decides (key)
  p.memory = r.mem.total();
  p.capacity = r.mem.capacity;
  p.cost_per_step = devices * p.step_time / 3600.0 * o_.usd_per_device_hour;
  return p;
}

void Searcher::consider_for_front(const Layout& l, int devices, double fit_time, TaskResult& out) const {
  if (!o_.pareto) return;
  const MemoryBreakdown mem = estimate_memory(m_, s_, l, q_.work);
  if (mem.total() > mem.capacity) return;
  const double headroom = mem.capacity - mem.total();
  // Its step time is at least fit_time, and its cost (same devices) at least the fitting one's.
  const double fit_cost = devices * fit_time / 3600.0 * o_.usd_per_device_hour;
  for (const auto& p : out.front)
    if (p.step_time <= fit_time && p.cost_per_step <= fit_cost && p.capacity - p.memory >= headroom) return;
  // Counted once, as pruned by dominance (not evaluated: the counts add up to the layouts considered).
  TrainReport r = evaluate(m_, s_, l, q_.work, devices, true, /*detail=*/false);
  if (!r.feasible() || r.mem.total() > r.mem.capacity) return;
  add_to_front(out.front, ranked(l, devices, r));
}

double Searcher::consider(const Layout& l, int devices, TaskResult& out, double group_best, double bound) const {
  Workload w = q_.work;
  // Every objective but memory headroom grows with the step time at a fixed device count (this
  // task's), so a plan slower than each of the task's K best cannot rank, and one slower than a
  // front plan with at least its headroom (so also dearer) is dominated there. Strictly slower:
  // ties are broken by layout and might go either way.
  const bool can_bound = o_.prune_dominance && o_.prune_bound && o_.objective != Objective::memory_headroom && group_best >= 0 &&
                         static_cast<int>(out.top.size()) >= o_.top_k;
  // The bar's state behind one pointer: a closure that small lives inside the std::function (no
  // allocation for each plan considered).
  struct Ctx {
    const TaskResult& out;
    bool pareto;
    int devices;
    double group_best;
  } ctx{out, o_.pareto, devices, group_best};
  const StepCutoff bar = [c = &ctx](const MemoryBreakdown& mem) {
    double slowest_top = 0, front = std::numeric_limits<double>::infinity();
    for (const auto& p : c->out.top) slowest_top = std::max(slowest_top, p.step_time);
    if (!c->pareto) return std::max(c->group_best, slowest_top);
    const double headroom = mem.capacity - mem.total();
    for (const auto& p : c->out.front)
      if (p.devices == c->devices && p.capacity - p.memory >= headroom) front = std::min(front, p.step_time);
    return std::max({c->group_best, slowest_top, front});
  };
  // Without a front the bar does not depend on the plan: a known lower bound above it bounds the
  // plan as evaluate's cutoff would, without timing it again.
  if (can_bound && !o_.pareto && bound > bar(MemoryBreakdown{}) * (1 + 1e-10)) {
    ++out.st.pruned_dominance;
    return bound;
  }
  TrainReport r = evaluate(m_, s_, l, w, devices, o_.prune_memory, /*detail=*/false, can_bound ? &bar : nullptr);
  if (r.bounded) {
    ++out.st.pruned_dominance;
    return r.step_time;
  }
  ++out.st.evaluated;
  if (r.why == Infeasible::out_of_memory && o_.prune_memory) {
    --out.st.evaluated;
    ++out.st.pruned_memory;
    return -1;
  }
  if (!r.feasible() || r.mem.total() > r.mem.capacity) return -1;
  ++out.st.feasible;
  RankedPlan p = ranked(l, devices, r);
  switch (o_.objective) {
    case Objective::time: p.objective = p.step_time; break;
    case Objective::cost: p.objective = p.cost_per_step; break;
    case Objective::tokens_per_dollar:
      p.objective = -static_cast<double>(w.global_batch) * w.seq_len / p.cost_per_step;
      break;
    case Objective::memory_headroom: p.objective = p.memory / p.capacity; break;
  }
  // Keep the K best (sorted insert; K is small).
  auto& top = out.top;
  if (static_cast<int>(top.size()) < o_.top_k || better(p, top.back())) {
    top.insert(std::upper_bound(top.begin(), top.end(), p, better), p);
    if (static_cast<int>(top.size()) > o_.top_k) top.pop_back();
  }
  if (o_.pareto) add_to_front(out.front, p);
  return p.step_time;
}

void Searcher::run(const Task& t, TaskResult& out) const {
  const long subtree = inner_count(t.vps.size());
  const int n = t.devices;
  auto prune_div = [&](long count) { out.st.considered += count; out.st.pruned_divisibility += count; };
  // Structural checks at the (tp, pp) level prune whole subtrees.
  if (o_.prune_divisibility) {
    const bool tp_bad = n % t.tp != 0 || m_.heads % t.tp != 0 ||
                        (!m_.is_mla() && m_.kv_heads % t.tp != 0 && t.tp % m_.kv_heads != 0);
    const bool pp_bad = (n / std::max(1, t.tp)) % t.pp != 0 || t.pp > m_.layers;
    if (tp_bad || pp_bad) return prune_div(subtree);
  }
  for (int cp : L_.cp) {
    const long per_cp = subtree / static_cast<long>(L_.cp.size());
    const long tpc = static_cast<long>(t.tp) * t.pp * cp;
    const bool cp_bad = n % tpc != 0 || (cp > 1 && q_.work.seq_len % (2L * cp) != 0);
    const int dp = n % tpc == 0 ? static_cast<int>(n / tpc) : 1;
    // A given --dp is a constraint, not a pruning rule: it holds with --no-prune divisibility too;
    // so does a given ZeRO group, which must divide dp x cp.
    if ((q_.dp && (n % tpc != 0 || *q_.dp != dp)) || (q_.zero_group > 0 && (static_cast<long>(dp) * cp) % q_.zero_group != 0) ||
        (o_.prune_divisibility && (cp_bad || q_.work.global_batch % dp != 0))) {
      prune_div(per_cp);
      continue;
    }
    // The group's plans come in recompute ladders: a layout (micro-batch, vp, ep, etp, ZeRO,
    // precision, memory option) tried with each recompute choice in turn, in train's chooser's
    // order (order_by_bound: long simulations last, cheapest bound first). The answer does not
    // depend on the order (the K best, the front and the group's fastest are each a minimum, ties
    // broken by layout).
    std::vector<Ladder> ladders;
    for (int mb : L_.mb) {
      const long per_mb = per_cp / static_cast<long>(L_.mb.size());
      if (o_.prune_divisibility && q_.work.global_batch % (static_cast<long>(dp) * mb) != 0) {
        prune_div(per_mb);
        continue;
      }
      for (int vp : t.vps) {
        const long per_vp = per_mb / static_cast<long>(t.vps.size());
        // Interleaving needs a pipeline and at least pp microbatches, DualPipeV 2 pp (check_layout's rules).
        if (o_.prune_divisibility && ((vp > 1 && t.pp == 1) || static_cast<long>(t.pp) * vp > max_pipeline_chunks(m_.layers) ||
                                      too_few_for_schedule(t.pp, vp, q_.work.global_batch / (static_cast<long>(dp) * mb), q_.schedule))) {
          prune_div(per_vp);
          continue;
        }
        for (int ep : L_.ep) {
          const long per_ep = per_vp / static_cast<long>(L_.ep.size());
          if (o_.prune_divisibility && m_.is_moe() &&
              (m_.moe.experts % ep != 0 || (static_cast<long>(dp) * cp * t.tp) % ep != 0)) {
            prune_div(per_ep);
            continue;
          }
          for (int etp : L_.etp) {
            const long per_etp = per_ep / static_cast<long>(L_.etp.size());
            Layout probe;
            probe.tp = t.tp; probe.dp = dp; probe.cp = cp; probe.ep = ep;
            if (o_.prune_divisibility && !etp_candidate(probe, etp)) {
              prune_div(per_etp);
              continue;
            }
            for (int z : L_.zero) {
              const long per_z = per_etp / static_cast<long>(L_.zero.size());
              if (o_.prune_divisibility && z == 3 && t.pp > 1) {
                prune_div(per_z);
                continue;
              }
              for (Precision pr : L_.prec) {
                for (int mo = 0; mo < kMemoryOptions; ++mo) {
                  if (!memory_option_allowed(q_, pr, mo)) continue;  // not counted as considered
                  Layout l;
                  l.tp = t.tp; l.pp = t.pp; l.vp = vp; l.dp = dp; l.cp = cp; l.ep = ep; l.etp = etp;
                  l.micro_batch = mb; l.zero = z; l.precision = pr;
                  apply_given_knobs(l, q_, m_, s_);
                  apply_memory_option(l, mo);
                  ladders.push_back({l, 0.0, ladders.size()});
                }
              }
            }
          }
        }
      }
    }
    if (o_.prune_bound && o_.prune_dominance) order_by_bound(m_, s_, q_.work, n, ladders);
    // The group's fastest plan (train's chooser's rule: step time, then layout_order_key), whose
    // balanced pipeline layouts are weighed after the group's other plans.
    Layout fastest;
    double fastest_time = -1;
    for (const Ladder& ld : ladders) {
      // Once the layout fits without recompute, recompute can only add time (unless activations
      // are offloaded: recompute then shrinks what is copied to the host); selective
      // fitting does not end it (full recompute of the fewest layers that fit can be
      // faster than selective's rerun of every layer's attention).
      bool fitted = false;  // the layout fit without recompute
      bool bare_out = false;  // it was tried without recompute and did not fit
      double fit_time = 0;  // its step time without recompute
      for (const RecomputeChoice& choice : L_.rc) {
        const Recompute rc = choice.recompute;
        ++out.st.considered;
        const bool dominated = fitted && o_.prune_dominance && o_.objective != Objective::memory_headroom;
        if (dominated) ++out.st.pruned_dominance;
        Layout l = ld.base;
        l.recompute = rc;
        l.recompute_modules = choice.modules;
        // Tried without recompute and out of memory: fewest_recompute_layers skips that
        // check. The recompute is sized for the layout as it will run (given knobs and
        // memory option applied), as train's chooser sizes it.
        if (rc == Recompute::full)
          l.recompute_layers = q_.recompute_layers ? *q_.recompute_layers
                               : q_.recompute     ? 0
                                                  : fewest_recompute_layers(m_, s_, l, q_.work, bare_out);
        if (dominated) {
          consider_for_front(l, n, fit_time, out);
          continue;
        }
        const double t = consider(l, n, out, fastest_time, ld.bound);
        if (t >= 0 && (fastest_time < 0 || std::make_pair(t, layout_order_key(l)) <
                                               std::make_pair(fastest_time, layout_order_key(fastest)))) {
          fastest = l;
          fastest_time = t;
        }
        if (rc == Recompute::none) {
          fitted = t >= 0 && !l.offload_activations;  // (offloaded: recompute shrinks the copies)
          bare_out = t < 0;
          fit_time = t;
        }
      }
    }
    if (fastest_time < 0) continue;
    // Its balanced pipeline layouts (balanced_variants), each a recompute ladder as above.
    for (const std::vector<Layout>& ladder : balanced_variants(m_, s_, q_, fastest)) {
      bool fitted = false;
      double fit_time = 0;
      for (const Layout& l : ladder) {
        ++out.st.considered;
        if (fitted && o_.prune_dominance && o_.objective != Objective::memory_headroom) {
          ++out.st.pruned_dominance;
          consider_for_front(l, n, fit_time, out);
          continue;
        }
        const double t = consider(l, n, out, /*group_best=*/0);  // the group's fastest is already chosen
        if (l.recompute == Recompute::none) {
          fitted = t >= 0 && !l.offload_activations;  // (offloaded: recompute shrinks the copies)
          fit_time = t;
        }
      }
    }
  }
}

}  // namespace

std::vector<long> device_ladder(const System& s, long hi) {
  std::vector<long> out;
  for (long d = s.devices_per_node; d <= hi; d *= 2) out.push_back(d);
  // A scale-up domain of several nodes (an NVL72 rack of 18 trays) is bought and filled whole: its
  // size x powers of two too (72, 144, 288, ... GPUs), which node-size doublings never reach.
  if (s.scale_up.size > s.devices_per_node)
    for (long d = s.scale_up.size; d <= hi; d *= 2) out.push_back(d);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<int> device_counts(const System& s, const PlanRequest& q, const SearchOptions& o) {
  if (!o.min_devices && !o.max_devices) return {q.devices};
  const int lo = o.min_devices.value_or(1), hi = o.max_devices.value_or(q.devices);
  if (lo < 1) throw InputError("--min-devices", "must be at least 1");
  if (hi < lo)
    throw InputError(o.max_devices ? "--min-devices/--max-devices" : "--min-devices",
                     std::to_string(lo) + " is above the largest count, " + std::to_string(hi) +
                         (o.max_devices ? " (--max-devices)" : " (--max-devices defaults to --devices)"));
  std::vector<int> out;
  for (long d : device_ladder(s, hi))
    if (d >= lo) out.push_back(static_cast<int>(d));
  out.push_back(q.devices);  // --devices is searched too, inside the range or not ("also")
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.empty()) throw InputError("--min-devices/--max-devices", "no device count in range");
  return out;
}

SearchResult search(const Model& m, const System& s, const PlanRequest& q, const SearchOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.top_k < 1) throw InputError("--top", "must be at least 1");
  if ((o.objective == Objective::cost || o.objective == Objective::tokens_per_dollar) && o.usd_per_device_hour <= 0)
    throw InputError("--objective", std::string(objective_name(o.objective)) + " needs a price: system '" + s.id +
                                        "' has no on-demand price in data/prices/ (give --usd-per-device-hour)");
  // Explicit knobs are validated as in `train` (device count from the request when it is fixed).
  const std::vector<int> counts = device_counts(s, q, o);
  for (int d : counts) {
    PlanRequest probe = q;
    probe.devices = d;
    check_request(m, s, probe);
  }
  const Lists L = raw_lists(m, s, q);
  std::vector<Task> tasks;
  for (int d : counts)
    for (int tp : L.tp)
      for (int pp : L.pp) {
        // Interleaving into uneven chunks is not a candidate (vp_range: even chunks only): the
        // space itself leaves it out, pruned or not; a given vp is taken as asked.
        tasks.push_back({d, tp, pp, given_or(q.vp, vp_range(m, pp, q.schedule))});
      }

  Searcher searcher(m, s, q, o, L);
  std::vector<TaskResult> results(tasks.size());
  parallel_for(tasks.size(), o.threads, [&](std::size_t i) { searcher.run(tasks[i], results[i]); });

  // Merge in task order: the result does not depend on which thread ran what.
  SearchResult out;
  std::vector<RankedPlan> top, front;
  for (const auto& r : results) {
    out.stats.considered += r.st.considered;
    out.stats.pruned_divisibility += r.st.pruned_divisibility;
    out.stats.pruned_memory += r.st.pruned_memory;
    out.stats.pruned_dominance += r.st.pruned_dominance;
    out.stats.evaluated += r.st.evaluated;
    out.stats.feasible += r.st.feasible;
    top.insert(top.end(), r.top.begin(), r.top.end());
    for (const auto& p : r.front) add_to_front(front, p);
  }
  std::sort(top.begin(), top.end(), better);
  if (static_cast<int>(top.size()) > o.top_k) top.resize(o.top_k);
  std::sort(front.begin(), front.end(), [](const RankedPlan& a, const RankedPlan& b) { return key(a) < key(b); });
  std::sort(front.begin(), front.end(), [](const RankedPlan& a, const RankedPlan& b) {
    return std::make_tuple(a.step_time, a.memory, a.cost_per_step) < std::make_tuple(b.step_time, b.memory, b.cost_per_step);
  });
  for (const auto& p : top) out.top.push_back(evaluate(m, s, p.layout, q.work, p.devices));
  for (const auto& p : front) out.pareto.push_back(evaluate(m, s, p.layout, q.work, p.devices));
  out.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace xpu
