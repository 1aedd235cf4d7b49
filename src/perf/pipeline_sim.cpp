#include "perf/pipeline_sim.hpp"

#include <algorithm>
#include <cmath>
#include <queue>
#include <stdexcept>
#include <string>

namespace xpu {

namespace {

struct Op {
  int chunk;
  long mb;
  bool backward;
};

// The schedule: which operation stage `stage` runs k-th (k in [0, 2 x m x vp)).
class Schedule {
 public:
  Schedule(int pp, int vp, long m) : pp_(pp), vp_(vp), m_(m), n_(m * vp), group_(group_size(pp, m)), full_groups_(m / group_) {}

  // Microbatches per group (Megatron's microbatch_group_size_per_vp_stage): pp when it divides m;
  // else the smallest size in [pp, m] whose last group is 0 or at least pp microbatches (what
  // Megatron accepts); m when m < pp (one group; Megatron refuses this case).
  static long group_size(int pp, long m) {
    if (m <= pp) return m;
    for (long g = pp; g < m; ++g)
      if (m % g == 0 || m % g >= pp) return g;
    return m;
  }

  long ops_per_direction() const { return n_; }

  long warmup(int stage) const {
    const long w = vp_ == 1 ? static_cast<long>(pp_ - stage - 1)
                            : static_cast<long>(pp_ - stage - 1) * 2 + (vp_ - 1) * std::max<long>(group_, pp_);
    return std::min(w, n_);
  }

  Op at(long k, long warm) const {
    if (k < warm) return entry(k, false);
    if (k < 2 * n_ - warm) {
      const long t = k - warm;
      return (t % 2 == 0) ? entry(warm + t / 2, false) : entry(t / 2, true);
    }
    return entry(k - n_, true);
  }

 private:
  // The j-th forward (or backward) of a stage: Megatron's schedule table (get_schedule_table),
  // microbatches in groups, each group through chunk 0, 1, ... (backwards: the chunks reversed).
  // The last group holds the remainder when the group size does not divide m.
  Op entry(long j, bool backward) const {
    if (vp_ == 1) return {0, j, backward};
    const long g = group_, per_group = g * vp_;
    long grp = j / per_group, chunk, mb;
    if (grp < full_groups_) {
      const long within = j - grp * per_group;
      chunk = within / g;
      mb = grp * g + within % g;
    } else {
      const long start = full_groups_ * g, r = m_ - start;
      const long within = j - full_groups_ * per_group;
      chunk = within / r;
      mb = start + within % r;
    }
    if (backward) chunk = vp_ - 1 - chunk;
    return {static_cast<int>(chunk), mb, backward};
  }

  int pp_, vp_;
  long m_, n_, group_, full_groups_;
};

void check_input(const PipelineInput& in) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("simulate_pipeline: " + what); };
  if (in.pp < 1) bad("pp must be at least 1");
  if (in.vp < 1) bad("vp must be at least 1");
  if (in.microbatches < 1) bad("microbatches must be at least 1");
  if (in.fwd.size() != static_cast<size_t>(in.pp) || in.bwd.size() != static_cast<size_t>(in.pp))
    bad("fwd and bwd need one time per stage (" + std::to_string(in.pp) + ")");
  auto ok = [](double t) { return std::isfinite(t) && t >= 0; };
  for (int i = 0; i < in.pp; ++i)
    if (!ok(in.fwd[i]) || !ok(in.bwd[i])) bad("stage " + std::to_string(i) + " has a negative or non-finite time");
  if (!ok(in.p2p)) bad("p2p must be a finite time >= 0");
  if (in.schedule == PipeSchedule::zero_bubble) {
    if (in.vp != 1) bad("the zero-bubble schedule (ZB-H1) needs vp = 1");
    if (in.wgrad.size() != static_cast<size_t>(in.pp)) bad("zero-bubble needs one weight-gradient time per stage");
    for (int i = 0; i < in.pp; ++i)
      if (!ok(in.wgrad[i]) || in.wgrad[i] > in.bwd[i]) bad("stage " + std::to_string(i) + ": wgrad must be in [0, bwd]");
  }
}

// ZB-H1 as a greedy list schedule, simulated in time order. Every decision is taken at a time t
// when the stage is free; all operations that end by t have been placed by then (they started
// earlier), so "ready by t" is known exactly. Ties: earlier time, then lower stage.
PipelineResult simulate_zero_bubble(const PipelineInput& in, bool record_events) {
  const int P = in.pp;
  const long M = in.microbatches;
  const double link = P > 1 ? in.p2p : 0.0;
  std::vector<double> fend(static_cast<size_t>(P * M), -1.0), bend(static_cast<size_t>(P * M), -1.0);
  std::vector<long> nf(P, 0), nb(P, 0), nw(P, 0);  // next forward / input-grad / weight-grad microbatch
  std::vector<double> free_at(P, 0.0);
  PipelineResult res;
  std::vector<std::vector<PipelineEvent>> per_stage(record_events ? P : 0);
  // Min-heap of decision points (time, stage).
  using Point = std::pair<double, int>;
  std::priority_queue<Point, std::vector<Point>, std::greater<Point>> q;
  for (int i = 0; i < P; ++i) q.push({0.0, i});
  long done = 0;
  const long total = 3L * P * M;
  double makespan = 0;
  while (!q.empty()) {
    const auto [t, i] = q.top();
    q.pop();
    if (free_at[i] > t) continue;  // stale: the stage is busy until later
    // Readiness of the next input-gradient backward and forward (time they may start, or < 0).
    double b_ready = -1, f_ready = -1;
    if (nb[i] < nf[i]) {
      const long mb = nb[i];
      const double d = i + 1 < P ? bend[(i + 1) * M + mb] : fend[i * M + mb];
      if (d >= 0) b_ready = d + (i + 1 < P ? link : 0.0);
    }
    if (nf[i] < M && nf[i] - nb[i] < P - i) {
      const long mb = nf[i];
      const double d = i > 0 ? fend[(i - 1) * M + mb] : 0.0;
      if (d >= 0) f_ready = d + (i > 0 ? link : 0.0);
    }
    int kind = -1;  // 0 forward, 1 input gradient, 2 weight gradient
    if (b_ready >= 0 && b_ready <= t) kind = 1;
    else if (f_ready >= 0 && f_ready <= t) kind = 0;
    else if (nw[i] < nb[i]) kind = 2;
    if (kind < 0) {
      // Nothing to run now: wake when a known dependency becomes ready; an unknown one wakes the
      // stage when the stage that produces it places it.
      double wake = -1;
      for (double r : {b_ready, f_ready})
        if (r > t && (wake < 0 || r < wake)) wake = r;
      if (wake > 0) q.push({wake, i});
      continue;
    }
    long mb = 0;
    double dur = 0;
    if (kind == 0) { mb = nf[i]++; dur = in.fwd[i]; }
    else if (kind == 1) { mb = nb[i]++; dur = in.bwd[i] - in.wgrad[i]; }
    else { mb = nw[i]++; dur = in.wgrad[i]; }
    const double end = t + dur;
    free_at[i] = end;
    makespan = std::max(makespan, end);
    ++done;
    if (record_events) per_stage[i].push_back({i, 0, mb, kind != 0, t, end, kind == 2});
    q.push({end, i});
    if (kind == 0) {
      fend[i * M + mb] = end;
      if (i + 1 < P) q.push({end + link, i + 1});
      else q.push({end, i});  // the last stage's own backward
    } else if (kind == 1) {
      bend[i * M + mb] = end;
      if (i > 0) q.push({end + link, i - 1});
    }
  }
  if (done != total)
    throw std::logic_error("simulate_pipeline: zero-bubble schedule deadlocked (pp " + std::to_string(P) + ", " +
                           std::to_string(M) + " microbatches)");
  res.makespan = makespan;
  if (record_events) {
    res.events.reserve(static_cast<size_t>(total));
    for (auto& v : per_stage) res.events.insert(res.events.end(), v.begin(), v.end());
  }
  if (makespan > 0) {
    double busy = 0;
    for (int i = 0; i < P; ++i) busy += static_cast<double>(M) * (in.fwd[i] + in.bwd[i]);
    res.bubble_fraction = std::max(0.0, 1.0 - busy / (static_cast<double>(P) * makespan));
  }
  return res;
}

}  // namespace

double pipeline_fill(int pp, int vp, long microbatches, PipeSchedule schedule, double mean_T, double mean_W) {
  const double gaps = pp - 1.0;
  if (schedule == PipeSchedule::zero_bubble) {
    const double moved = std::min(2.0 * gaps, static_cast<double>(microbatches) + gaps - 1.0);
    return std::max(0.0, gaps * mean_T - moved * mean_W);
  }
  return gaps * mean_T / std::max(1, vp);
}

PipelineResult simulate_pipeline(const PipelineInput& in, bool record_events) {
  check_input(in);
  if (in.schedule == PipeSchedule::zero_bubble) return simulate_zero_bubble(in, record_events);
  const int P = in.pp, VP = in.vp;
  const long M = in.microbatches;
  const long V = static_cast<long>(P) * VP;  // chunk positions, first to last
  const Schedule sched(P, VP, M);
  const long n = sched.ops_per_direction();
  const long per_stage = 2 * n;
  const double link = P > 1 ? in.p2p : 0.0;  // chunk positions on one stage only when pp = 1

  // End time of each (position, microbatch) forward and backward; < 0 while not yet run.
  std::vector<double> fend(static_cast<size_t>(V * M), -1.0), bend(static_cast<size_t>(V * M), -1.0);
  std::vector<long> cursor(P, 0), warm(P);
  std::vector<double> free_at(P, 0.0);
  std::vector<char> queued(P, 1);
  std::vector<int> work(P);
  for (int i = 0; i < P; ++i) {
    warm[i] = sched.warmup(i);
    work[i] = P - 1 - i;  // any order gives the same times; stage 0 first
  }

  PipelineResult res;
  if (record_events) res.events.resize(static_cast<size_t>(per_stage * P));
  long done = 0;
  double makespan = 0;

  // Each stage runs its operations in order until one waits on another stage; finishing an
  // operation wakes the one stage that may wait on it. Every operation is run once and wakes at
  // most one stage, so the loop is O(total operations).
  while (!work.empty()) {
    const int i = work.back();
    work.pop_back();
    queued[i] = 0;
    while (cursor[i] < per_stage) {
      const Op op = sched.at(cursor[i], warm[i]);
      const long pos = static_cast<long>(op.chunk) * P + i;
      double ready = 0;
      long next = -1;  // the position whose operation may wait on this one
      if (!op.backward) {
        if (pos > 0) {
          const double d = fend[(pos - 1) * M + op.mb];
          if (d < 0) break;
          ready = d + link;
        }
        if (pos + 1 < V) next = pos + 1;
      } else {
        if (pos + 1 < V) {
          const double d = bend[(pos + 1) * M + op.mb];
          if (d < 0) break;
          ready = d + link;
        } else {
          const double d = fend[pos * M + op.mb];
          if (d < 0) break;
          ready = d;
        }
        if (pos > 0) next = pos - 1;
      }
      const double start = std::max(free_at[i], ready);
      const double end = start + (op.backward ? in.bwd[i] : in.fwd[i]);
      (op.backward ? bend : fend)[pos * M + op.mb] = end;
      free_at[i] = end;
      makespan = std::max(makespan, end);
      if (record_events) res.events[static_cast<size_t>(i * per_stage + cursor[i])] = {i, op.chunk, op.mb, op.backward, start, end};
      ++cursor[i];
      ++done;
      if (next >= 0) {
        const int j = static_cast<int>(next % P);
        if (j != i && !queued[j]) {
          queued[j] = 1;
          work.push_back(j);
        }
      }
    }
  }
  if (done != per_stage * P)
    throw std::logic_error("simulate_pipeline: schedule deadlocked (pp " + std::to_string(P) + ", vp " + std::to_string(VP) +
                           ", " + std::to_string(M) + " microbatches)");

  res.makespan = makespan;
  if (makespan > 0) {
    double busy = 0;
    for (int i = 0; i < P; ++i) busy += static_cast<double>(n) * (in.fwd[i] + in.bwd[i]);
    res.bubble_fraction = std::max(0.0, 1.0 - busy / (static_cast<double>(P) * makespan));
  }
  return res;
}

}  // namespace xpu
