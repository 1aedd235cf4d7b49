#include "perf/pipeline_sim.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

namespace xpu {

namespace {

struct Op {
  int chunk;
  long mb;
  bool backward;
};

// The stages to visit: each runs its own order until an operation waits on another stage's, and
// placing an operation wakes the stage that may wait on it. Times follow from the orders alone,
// whatever the visiting order; every stage starts queued (stage 0 first).
class StageWork {
 public:
  explicit StageWork(int stages) : queued_(static_cast<size_t>(stages), 1), work_(static_cast<size_t>(stages)) {
    for (int i = 0; i < stages; ++i) work_[static_cast<size_t>(i)] = stages - 1 - i;
  }
  // The next stage to run, or -1 when none is left.
  int next() {
    if (work_.empty()) return -1;
    const int i = work_.back();
    work_.pop_back();
    queued_[static_cast<size_t>(i)] = 0;
    return i;
  }
  void wake(int j) {
    if (j >= 0 && j < static_cast<int>(queued_.size()) && !queued_[static_cast<size_t>(j)]) {
      queued_[static_cast<size_t>(j)] = 1;
      work_.push_back(j);
    }
  }

 private:
  std::vector<char> queued_;
  std::vector<int> work_;
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
  long group() const { return group_; }
  long full_groups() const { return full_groups_; }

  long warmup(int stage) const {
    const long w = vp_ == 1 ? static_cast<long>(pp_ - stage - 1)
                            : static_cast<long>(pp_ - stage - 1) * 2 + (vp_ - 1) * std::max<long>(group_, pp_);
    return std::min(w, n_);
  }

  // Forwards and backwards each run in their own order, entry(0), entry(1), ... (at() takes the
  // j-th of one kind as the j-th of that kind a stage runs): an Entries walks one of them without
  // at()'s divisions, for the simulation's inner loop.
  class Entries {
   public:
    Entries(const Schedule& s, bool backward) : s_(&s), backward_(backward) {}
    Op op() const {
      const long chunk = backward_ ? s_->vp_ - 1 - chunk_ : chunk_;
      return {static_cast<int>(chunk), grp_ * s_->group_ + within_, backward_};
    }
    void advance() {
      if (++within_ < (grp_ < s_->full_groups_ ? s_->group_ : s_->m_ - s_->full_groups_ * s_->group_)) return;
      within_ = 0;
      if (++chunk_ < s_->vp_) return;
      chunk_ = 0;
      ++grp_;
    }

   private:
    const Schedule* s_;
    bool backward_;
    long grp_ = 0, chunk_ = 0, within_ = 0;
  };
  // Whether a stage's k-th operation is a backward (at()'s order).
  bool backward_at(long k, long warm) const {
    if (k < warm) return false;
    if (k < 2 * n_ - warm) return (k - warm) % 2 == 1;
    return true;
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
  // DualPipeV and interleaved 1F1B may give each of a stage's chunks its own times: pp x vp
  // entries, chunk-major.
  const size_t chunks = static_cast<size_t>(in.pp) * static_cast<size_t>(in.vp);
  const bool chunked = in.schedule == PipeSchedule::dualpipe_v || (in.schedule == PipeSchedule::one_f_one_b && in.vp > 1);
  const bool per_chunk = chunked && in.fwd.size() == chunks;
  const size_t n = per_chunk ? chunks : static_cast<size_t>(in.pp);
  if (in.fwd.size() != n || in.bwd.size() != n)
    bad("fwd and bwd need one time per stage (" + std::to_string(in.pp) + ")" +
        (chunked ? " or per chunk (" + std::to_string(chunks) + ")" : std::string()));
  auto ok = [](double t) { return std::isfinite(t) && t >= 0; };
  for (size_t i = 0; i < n; ++i)
    if (!ok(in.fwd[i]) || !ok(in.bwd[i])) bad("stage " + std::to_string(i % in.pp) + " has a negative or non-finite time");
  if (!ok(in.p2p)) bad("p2p must be a finite time >= 0");
  if (in.schedule == PipeSchedule::zero_bubble && in.vp != 1) bad("the zero-bubble schedule (ZB-H1) needs vp = 1");
  if (in.schedule == PipeSchedule::dualpipe_v) {
    if (in.vp != 2) bad("DualPipeV needs vp = 2 (its two chunks per stage)");
    if (in.microbatches < 2L * in.pp) bad("DualPipeV needs at least 2 pp = " + std::to_string(2 * in.pp) + " microbatches");
    if (in.pair_saving.size() != n) bad("DualPipeV needs one pair saving per stage (or per chunk, as fwd)");
    for (size_t i = 0; i < n; ++i)
      if (!ok(in.pair_saving[i]) || in.pair_saving[i] > std::min(in.fwd[i], in.bwd[i]))
        bad("stage " + std::to_string(i % in.pp) + ": pair_saving must be in [0, min(fwd, bwd)]");
  }
  if (in.schedule != PipeSchedule::one_f_one_b) {
    if (in.wgrad.size() != n) bad(std::string(schedule_name(in.schedule)) + " needs one weight-gradient time per stage (as fwd)");
    for (size_t i = 0; i < n; ++i)
      if (!ok(in.wgrad[i]) || in.wgrad[i] > in.bwd[i]) bad("stage " + std::to_string(i % in.pp) + ": wgrad must be in [0, bwd]");
  }
}

// ZB-H1 (Qi et al. 2024, section 2.1) as its handcrafted order: stage i runs P - i warm-up
// forwards, then for each microbatch k its input gradient B_k, the weight gradient W_(k-i)
// (delayed by the stage's depth) and the next forward; the delayed W passes fill the drain. Every
// stage so holds at most P microbatches between a forward and its weight gradient: the first
// stage's, 1F1B's peak, which the memory figure counts. (A greedy list schedule that ran a W only
// when idle had let them pile up: 96 pending on the last of 8 stages at 256 microbatches.) On
// uniform stages it takes m (F + B + W) + (p - 1)(F + B - W), the paper's bubble.
PipelineResult simulate_zero_bubble(const PipelineInput& in, bool record_events) {
  const int P = in.pp;
  const long M = in.microbatches;
  const double link = P > 1 ? in.p2p : 0.0;
  struct Op {
    int kind;  // 0 forward, 1 input gradient, 2 weight gradient
    long mb;
  };
  std::vector<std::vector<Op>> order(P);
  for (int i = 0; i < P; ++i) {
    auto& o = order[i];
    o.reserve(static_cast<size_t>(3 * M));
    long nf = 0, nw = 0;
    for (const long warm = std::min<long>(P - i, M); nf < warm;) o.push_back({0, nf++});
    for (long k = 0; k < M; ++k) {
      o.push_back({1, k});
      if (k >= i) o.push_back({2, nw++});
      if (nf < M) o.push_back({0, nf++});
    }
    while (nw < M) o.push_back({2, nw++});
  }
  std::vector<double> fend(static_cast<size_t>(P * M), -1.0), bend(static_cast<size_t>(P * M), -1.0);
  std::vector<size_t> cursor(P, 0);
  std::vector<double> free_at(P, 0.0);
  StageWork work(P);
  PipelineResult res;
  std::vector<std::vector<PipelineEvent>> per_stage(record_events ? P : 0);
  long done = 0;
  const long total = 3L * P * M;
  double makespan = 0;
  for (int i; (i = work.next()) >= 0;) {
    while (cursor[i] < order[i].size()) {
      const Op op = order[i][cursor[i]];
      double ready = 0;
      if (op.kind == 0) {
        if (i > 0) {
          const double d = fend[(i - 1) * M + op.mb];
          if (d < 0) break;
          ready = d + link;
        }
      } else if (op.kind == 1) {
        const double d = i + 1 < P ? bend[(i + 1) * M + op.mb] : fend[i * M + op.mb];
        if (d < 0) break;
        ready = d + (i + 1 < P ? link : 0.0);
      } else {
        ready = bend[i * M + op.mb];  // this stage's own, placed earlier in its order
      }
      const double start = std::max(free_at[i], ready);
      const double dur = op.kind == 0 ? in.fwd[i] : op.kind == 1 ? in.bwd[i] - in.wgrad[i] : in.wgrad[i];
      const double end = start + dur;
      free_at[i] = end;
      makespan = std::max(makespan, end);
      ++done;
      ++cursor[i];
      if (record_events) per_stage[i].push_back({i, 0, op.mb, op.kind != 0, start, end, op.kind == 2});
      if (op.kind == 0) {
        fend[i * M + op.mb] = end;
        work.wake(i + 1);
      } else if (op.kind == 1) {
        bend[i * M + op.mb] = end;
        work.wake(i - 1);
      }
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

// DualPipeV as deepseek-ai/DualPipe's DualPipeV.step orders it (pipeline_sim.hpp). Each stage runs
// its order; an operation waits for its stage and for its inputs (a forward for the previous chunk
// position's forward, a backward for the next position's backward or, at the V's end on stage 0,
// its own forward); a pair waits for both. Sends cost `p2p` only between stages (the V's turn on
// the last stage is local).
PipelineResult simulate_dualpipe_v(const PipelineInput& in, bool record_events) {
  const int P = in.pp;
  const long M = in.microbatches, V = 2L * P;
  enum Kind : char { F, B, Bi, W, FB };  // forward, whole backward, input gradient, weight gradient, pair
  struct Op {
    Kind kind;
    char c0, c1;  // chunk (F, B, Bi), or the pair's forward chunk c0 and backward chunk c1
  };
  auto order_of = [&](int i) {
    std::vector<Op> o;
    o.reserve(static_cast<size_t>(5 * M));
    const int down = P - i - 1;
    for (int k = 0; k < 2 * down; ++k) o.push_back({F, 0, 0});
    for (int k = 0; k <= i; ++k) {
      o.push_back({F, 0, 0});
      o.push_back({F, 1, 0});
    }
    for (int k = 0; k < down; ++k) {
      o.push_back({Bi, 1, 0});
      o.push_back({W, 0, 0});
      o.push_back({F, 1, 0});
    }
    for (long k = 0; k < M - 2L * P + i + 1; ++k) {
      if (k == 0 && i == P - 1) {  // DualPipe runs the last stage's first pair apart (less bubble)
        o.push_back({F, 0, 0});
        o.push_back({B, 1, 0});
      } else {
        o.push_back({FB, 0, 1});
      }
      o.push_back({FB, 1, 0});
    }
    for (int k = 0; k < down; ++k) {
      o.push_back({B, 1, 0});
      o.push_back({FB, 1, 0});
    }
    bool split = false;
    for (int k = 0; k <= i; ++k) {  // the later half with the weight gradient deferred
      if (k == (i + 1) / 2 && i % 2 == 1) split = true;
      o.push_back({split ? Bi : B, 1, 0});
      if (k == (i + 1) / 2 && i % 2 == 0) split = true;
      o.push_back({split ? Bi : B, 0, 0});
    }
    for (int k = 0; k < down; ++k) {
      o.push_back({W, 0, 0});
      o.push_back({Bi, 0, 0});
    }
    for (int k = 0; k <= i; ++k) o.push_back({W, 0, 0});
    return o;
  };
  std::vector<std::vector<Op>> order(P);
  for (int i = 0; i < P; ++i) order[i] = order_of(i);

  const double link = in.p2p;
  // A stage's time for chunk c: its own where the input gives each chunk one (2 pp entries), else
  // the stage's.
  const bool per_chunk = in.fwd.size() == 2 * static_cast<size_t>(P);
  auto at = [&](const std::vector<double>& v, int i, int c) { return per_chunk ? v[static_cast<size_t>(c * P + i)] : v[static_cast<size_t>(i)]; };
  std::vector<double> fend(static_cast<size_t>(V * M), -1.0), bend(static_cast<size_t>(V * M), -1.0);
  std::vector<size_t> cursor(P, 0);
  std::vector<double> free_at(P, 0.0);
  std::vector<std::array<long, 2>> nf(P, {0, 0}), nb(P, {0, 0});
  std::vector<std::vector<std::pair<int, long>>> deferred(P);  // weight gradients waiting: (chunk, microbatch)
  std::vector<size_t> deferred_head(P, 0);
  StageWork work(P);
  PipelineResult res;
  res.stage_busy.assign(P, 0.0);
  std::vector<std::vector<PipelineEvent>> per_stage(record_events ? P : 0);
  double makespan = 0;
  auto wake = [&](long pos) {  // the stage of a chunk position that may wait on an operation
    if (pos >= 0 && pos < V) work.wake(stage_of_position(PipeSchedule::dualpipe_v, P, pos));
  };
  // When the forward of chunk c's next microbatch on stage i may start (< 0: not yet known).
  auto fready = [&](int i, int c, long mb) {
    const long pos = chunk_position(PipeSchedule::dualpipe_v, P, i, c);
    if (pos == 0) return 0.0;
    const double d = fend[(pos - 1) * M + mb];
    if (d < 0) return -1.0;
    return d + (stage_of_position(PipeSchedule::dualpipe_v, P, pos - 1) == i ? 0.0 : link);
  };
  auto bready = [&](int i, int c, long mb) {
    const long pos = chunk_position(PipeSchedule::dualpipe_v, P, i, c);
    if (pos == V - 1) return fend[pos * M + mb];
    const double d = bend[(pos + 1) * M + mb];
    if (d < 0) return -1.0;
    return d + (stage_of_position(PipeSchedule::dualpipe_v, P, pos + 1) == i ? 0.0 : link);
  };
  for (int i; (i = work.next()) >= 0;) {
    while (cursor[i] < order[i].size()) {
      const Op op = order[i][cursor[i]];
      const int c0 = op.c0, c1 = op.c1;
      double ready = 0, dur = 0;
      long mf = -1, mb = -1;
      if (op.kind == F || op.kind == FB) {
        mf = nf[i][c0];
        const double r = fready(i, c0, mf);
        if (r < 0) break;
        ready = r;
      }
      if (op.kind == B || op.kind == Bi || op.kind == FB) {
        const int c = op.kind == FB ? c1 : c0;
        mb = nb[i][c];
        const double r = bready(i, c, mb);
        if (r < 0) break;
        ready = std::max(ready, r);
      }
      const double start = std::max(free_at[i], ready);
      switch (op.kind) {
        case F: dur = at(in.fwd, i, c0); break;
        case B: dur = at(in.bwd, i, c0); break;
        case Bi: dur = at(in.bwd, i, c0) - at(in.wgrad, i, c0); break;
        case W: {  // the oldest deferred weight gradient's chunk
          const int c = deferred_head[i] < deferred[i].size() ? deferred[i][deferred_head[i]].first : 0;
          dur = at(in.wgrad, i, c);
          break;
        }
        case FB: dur = at(in.fwd, i, c0) + at(in.bwd, i, c1) - dualpipe_pair_saving(in, i, c0, c1); break;
      }
      const double end = start + dur;
      free_at[i] = end;
      res.stage_busy[i] += dur;
      makespan = std::max(makespan, end);
      ++cursor[i];
      if (op.kind == F || op.kind == FB) {
        const long pos = chunk_position(PipeSchedule::dualpipe_v, P, i, c0);
        fend[pos * M + mf] = end;
        ++nf[i][c0];
        if (record_events) per_stage[i].push_back({i, c0, mf, false, start, end, false, op.kind == FB ? 1 : 0});
        wake(pos + 1);  // (the V's end: its own backward is this stage's, which runs on)
      }
      if (op.kind == B || op.kind == Bi || op.kind == FB) {
        const int c = op.kind == FB ? c1 : c0;
        const long pos = chunk_position(PipeSchedule::dualpipe_v, P, i, c);
        bend[pos * M + mb] = end;
        ++nb[i][c];
        if (op.kind == Bi) deferred[i].push_back({c, mb});
        if (record_events) per_stage[i].push_back({i, c, mb, true, start, end, false, op.kind == FB ? 2 : 0});
        wake(pos - 1);
      }
      if (op.kind == W) {
        if (deferred_head[i] >= deferred[i].size())
          throw std::logic_error("simulate_pipeline: DualPipeV weight gradient with none deferred (stage " + std::to_string(i) + ")");
        const auto [c, m] = deferred[i][deferred_head[i]++];
        if (record_events) per_stage[i].push_back({i, c, m, true, start, end, true, 0});
      }
    }
  }
  for (int i = 0; i < P; ++i)
    if (cursor[i] != order[i].size() || deferred_head[i] != deferred[i].size())
      throw std::logic_error("simulate_pipeline: DualPipeV schedule deadlocked (pp " + std::to_string(P) + ", " +
                             std::to_string(M) + " microbatches)");
  res.makespan = makespan;
  if (record_events)
    for (auto& v : per_stage) res.events.insert(res.events.end(), v.begin(), v.end());
  if (makespan > 0) {
    double busy = 0;
    for (double b : res.stage_busy) busy += b;
    res.bubble_fraction = std::max(0.0, 1.0 - busy / (static_cast<double>(P) * makespan));
  }
  return res;
}

}  // namespace

long chunk_position(PipeSchedule s, int pp, int stage, int chunk) {
  if (s == PipeSchedule::dualpipe_v) return chunk == 0 ? stage : 2L * pp - 1 - stage;
  return static_cast<long>(chunk) * pp + stage;
}

int stage_of_position(PipeSchedule s, int pp, long pos) {
  if (s == PipeSchedule::dualpipe_v) return static_cast<int>(pos < pp ? pos : 2L * pp - 1 - pos);
  return static_cast<int>(pos % pp);
}

long dualpipe_pairs(int pp, long microbatches, int stage) {
  return std::max(0L, 2 * microbatches - 3L * pp + stage + 1 - (stage == pp - 1 ? 1 : 0));
}

std::pair<long, long> dualpipe_held(int pp, int stage) { return {2L * pp - stage, stage + 1L}; }

double dualpipe_bubble(int pp, double F, double B, double W, double S) { return (pp - 1.0) * ((F + B - S) + B - 3.0 * W); }

double dualpipe_closed_form(int pp, long microbatches, double F, double B, double W, double S) {
  const double m = static_cast<double>(microbatches);
  return 2.0 * m * (F + B) - static_cast<double>(dualpipe_pairs(pp, microbatches, pp - 1)) * S + dualpipe_bubble(pp, F, B, W, S);
}

double dualpipe_pair_saving(const PipelineInput& in, int i, int c_fwd, int c_bwd) {
  const std::size_t P = static_cast<std::size_t>(in.pp);
  if (in.fwd.size() != 2 * P) return in.pair_saving[static_cast<std::size_t>(i)];
  const std::size_t f = static_cast<std::size_t>(c_fwd) * P + i, b = static_cast<std::size_t>(c_bwd) * P + i;
  return std::min({(in.pair_saving[f] + in.pair_saving[b]) / 2, in.fwd[f], in.bwd[b]});
}

void set_dualpipe_chunks(PipelineInput& in, const std::vector<double>& fwd, const std::vector<double>& bwd,
                         const std::vector<double>& wgrad, const std::vector<double>& pair, const std::vector<double>& fwd0,
                         const std::vector<double>& bwd0, const std::vector<double>& wgrad0, const std::vector<double>& pair0) {
  const std::size_t p = fwd.size();
  in.fwd.assign(2 * p, 0.0);
  in.bwd.assign(2 * p, 0.0);
  in.wgrad.assign(2 * p, 0.0);
  in.pair_saving.assign(2 * p, 0.0);
  for (std::size_t i = 0; i < p; ++i) {
    const double f[2] = {fwd0[i], fwd[i] - fwd0[i]}, b[2] = {bwd0[i], bwd[i] - bwd0[i]}, w[2] = {wgrad0[i], wgrad[i] - wgrad0[i]},
                 x[2] = {pair0[i], pair[i] - pair0[i]};
    // A chunk's time: total - part may round to -1e-16, which is taken as 0; a time below that (or
    // NaN) is kept, for check_input to refuse. Its weight gradient and its pairs' saving are at most
    // its backward and either pass (the stage's bounds do not bound each chunk: a stage whose saving
    // its forward capped can leave chunk 0 a saving above its own forward); std::clamp keeps NaN.
    auto time = [](double v) { return v < 0 && v > -1e-12 ? 0.0 : v; };
    for (std::size_t c = 0; c < 2; ++c) {
      const std::size_t j = c * p + i;
      in.fwd[j] = time(f[c]);
      in.bwd[j] = time(b[c]);
      const double fb = std::isfinite(in.fwd[j]) && std::isfinite(in.bwd[j]) ? std::max(0.0, std::min(in.fwd[j], in.bwd[j])) : 0.0;
      in.wgrad[j] = std::clamp(w[c], 0.0, std::max(0.0, std::isfinite(in.bwd[j]) ? in.bwd[j] : 0.0));
      in.pair_saving[j] = std::clamp(x[c], 0.0, fb);
    }
  }
}

double dualpipe_makespan(const PipelineInput& in) {
  PipelineInput head = in;
  head.schedule = PipeSchedule::dualpipe_v;
  head.microbatches = std::min<long>(in.microbatches, 4L * in.pp);
  const double end = simulate_pipeline(head, false).makespan;  // checks the input
  if (head.microbatches == in.microbatches) return end;
  // The steady phase's pace: the busiest stage's work per microbatch, or slower where sends on the
  // chain of pairs hold it back, as the last pp microbatches of the head took.
  double pace = 0;
  const bool per_chunk = in.fwd.size() == 2 * static_cast<size_t>(in.pp);
  for (int i = 0; i < in.pp; ++i) {
    double work = 2.0 * (in.fwd[i] + in.bwd[i] - in.pair_saving[i]);
    if (per_chunk) {  // a microbatch's two pairs: chunk 0's forward beside chunk 1's backward, and back
      const size_t j = static_cast<size_t>(in.pp + i);
      work = in.fwd[i] + in.bwd[i] + in.fwd[j] + in.bwd[j] - dualpipe_pair_saving(in, i, 0, 1) - dualpipe_pair_saving(in, i, 1, 0);
    }
    pace = std::max(pace, work);
  }
  head.microbatches -= in.pp;
  pace = std::max(pace, (end - simulate_pipeline(head, false).makespan) / in.pp);
  return end + static_cast<double>(in.microbatches - 4L * in.pp) * pace;
}

void set_interleaved_chunks(PipelineInput& in, const std::vector<double>& fwd, const std::vector<double>& bwd,
                            const std::vector<double>& share) {
  const std::size_t p = static_cast<std::size_t>(in.pp), n = p * static_cast<std::size_t>(in.vp);
  if (fwd.size() != p || bwd.size() != p || share.size() != n)
    throw std::invalid_argument("set_interleaved_chunks: stage times need pp entries and shares pp x vp");
  in.fwd.assign(n, 0.0);
  in.bwd.assign(n, 0.0);
  for (std::size_t j = 0; j < n; ++j) {
    in.fwd[j] = fwd[j % p] * share[j];
    in.bwd[j] = bwd[j % p] * share[j];
  }
}

double pipeline_fill(int pp, int vp, long microbatches, PipeSchedule schedule, double mean_T, double mean_W) {
  if (schedule == PipeSchedule::dualpipe_v)
    throw std::invalid_argument("pipeline_fill: DualPipeV has its own closed form (dualpipe_closed_form)");
  const double gaps = pp - 1.0;
  if (schedule == PipeSchedule::zero_bubble) {
    const double moved = std::min(2.0 * gaps, static_cast<double>(microbatches) + gaps - 1.0);
    return std::max(0.0, gaps * mean_T - moved * mean_W);
  }
  return gaps * mean_T / std::max(1, vp);
}

namespace {

// 1F1B (interleaved when vp > 1) with `M` microbatches (in.microbatches is ignored): the makespan,
// with every event when `events` is given and each stage's operation end times in its order
// (stage-major, 2 x M x vp per stage) when `ends` is.
double simulate_1f1b(const PipelineInput& in, long M, std::vector<PipelineEvent>* events, std::vector<double>* ends) {
  const int P = in.pp, VP = in.vp;
  const long V = static_cast<long>(P) * VP;  // chunk positions, first to last
  const Schedule sched(P, VP, M);
  const long n = sched.ops_per_direction();
  const long per_stage = 2 * n;
  const double link = P > 1 ? in.p2p : 0.0;  // chunk positions on one stage only when pp = 1
  const bool per_chunk = in.fwd.size() == static_cast<std::size_t>(V) && VP > 1;  // chunk-major times (check_input)

  // End time of each (position, microbatch) forward and backward; < 0 while not yet run.
  std::vector<double> fend(static_cast<size_t>(V * M), -1.0), bend(static_cast<size_t>(V * M), -1.0);
  std::vector<long> cursor(P, 0), warm(P);
  std::vector<double> free_at(P, 0.0);
  for (int i = 0; i < P; ++i) warm[i] = sched.warmup(i);
  std::vector<Schedule::Entries> fwd_next(static_cast<size_t>(P), Schedule::Entries(sched, false)),
      bwd_next(static_cast<size_t>(P), Schedule::Entries(sched, true));
  StageWork work(P);
  if (events) events->assign(static_cast<size_t>(per_stage * P), PipelineEvent{});
  if (ends) ends->assign(static_cast<size_t>(per_stage * P), 0.0);
  long done = 0;
  double makespan = 0;

  // Each stage runs its operations in order until one waits on another stage; finishing an
  // operation wakes the one stage that may wait on it. Every operation is run once and wakes at
  // most one stage, so the loop is O(total operations).
  for (int i; (i = work.next()) >= 0;) {
    while (cursor[i] < per_stage) {
      Schedule::Entries& next_op = sched.backward_at(cursor[i], warm[i]) ? bwd_next[static_cast<size_t>(i)] : fwd_next[static_cast<size_t>(i)];
      const Op op = next_op.op();
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
      const std::size_t at = per_chunk ? static_cast<std::size_t>(pos) : static_cast<std::size_t>(i);
      const double end = start + (op.backward ? in.bwd[at] : in.fwd[at]);
      (op.backward ? bend : fend)[pos * M + op.mb] = end;
      free_at[i] = end;
      makespan = std::max(makespan, end);
      const auto k = static_cast<size_t>(i * per_stage + cursor[i]);
      if (events) (*events)[k] = {i, op.chunk, op.mb, op.backward, start, end};
      if (ends) (*ends)[k] = end;
      next_op.advance();
      ++cursor[i];
      ++done;
      if (next >= 0 && next % P != i) work.wake(static_cast<int>(next % P));
    }
  }
  if (done != per_stage * P)
    throw std::logic_error("simulate_pipeline: schedule deadlocked (pp " + std::to_string(P) + ", vp " + std::to_string(VP) +
                           ", " + std::to_string(M) + " microbatches)");
  return makespan;
}

}  // namespace

std::optional<double> steady_1f1b_makespan(const PipelineInput& in) {
  check_input(in);
  if (in.schedule != PipeSchedule::one_f_one_b) return std::nullopt;
  const int P = in.pp, VP = in.vp;
  const long M = in.microbatches;
  const Schedule sched(P, VP, M);
  const long g = sched.group(), G = sched.full_groups(), rest = M - G * g;
  if (g < P) return std::nullopt;  // one group of fewer than pp microbatches: no steady phase
  const long Q = 2 * g * VP;
  const long warm0 = sched.warmup(0);  // the longest warm-up (stage 0's)
  std::vector<double> ends;
  for (long Gs = 8; 4 * Gs <= G; Gs *= 2) {
    const long m = Gs * g + rest;
    if (Schedule::group_size(P, m) != g) return std::nullopt;
    const double short_makespan = simulate_1f1b(in, m, nullptr, &ends);
    // Steady positions x whose operation and the one a period later hold full groups on every
    // stage, their dependencies steady too: [warm0 + Q, 2 Gs g vp - warm0 - Q).
    const long lo = warm0 + Q, hi = 2 * Gs * g * VP - warm0 - Q, per_stage = 2 * m * VP;
    const double tol = 1e-12 * std::max(1.0, short_makespan);
    long run = 0;
    double lambda = 0;
    for (long x = lo; x < hi; ++x) {
      bool same = true;
      double l = ends[static_cast<size_t>(x + Q)] - ends[static_cast<size_t>(x)];
      if (run > 0 && std::abs(l - lambda) > tol) same = false;
      for (int i = 1; same && i < P; ++i) {
        const auto k = static_cast<size_t>(i * per_stage + x);
        if (std::abs(ends[k + static_cast<size_t>(Q)] - ends[k] - l) > tol) same = false;
      }
      if (!same) {
        run = 0;
        continue;
      }
      if (run == 0) lambda = l;
      if (++run == Q) {
        return short_makespan + static_cast<double>(G - Gs) * lambda;
      }
    }
  }
  return std::nullopt;
}

PipelineResult simulate_pipeline(const PipelineInput& in, bool record_events) {
  check_input(in);
  if (in.schedule == PipeSchedule::zero_bubble) return simulate_zero_bubble(in, record_events);
  if (in.schedule == PipeSchedule::dualpipe_v) return simulate_dualpipe_v(in, record_events);
  const int P = in.pp, VP = in.vp;
  const long V = static_cast<long>(P) * VP;
  const long n = Schedule(P, VP, in.microbatches).ops_per_direction();
  const bool per_chunk = in.fwd.size() == static_cast<std::size_t>(V) && VP > 1;

  PipelineResult res;
  std::optional<double> steady;
  if (!record_events) steady = steady_1f1b_makespan(in);
  const double makespan = steady ? *steady : simulate_1f1b(in, in.microbatches, record_events ? &res.events : nullptr, nullptr);
  res.makespan = makespan;
  if (makespan > 0) {
    double busy = 0;
    if (per_chunk)  // each stage runs every chunk for every microbatch: n / vp of each
      for (std::size_t j = 0; j < static_cast<std::size_t>(V); ++j) busy += static_cast<double>(n / VP) * (in.fwd[j] + in.bwd[j]);
    else
      for (int i = 0; i < P; ++i) busy += static_cast<double>(n) * (in.fwd[i] + in.bwd[i]);
    res.bubble_fraction = std::max(0.0, 1.0 - busy / (static_cast<double>(P) * makespan));
  }
  return res;
}

}  // namespace xpu
