#include "serve/sim.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <queue>

namespace xpu {

namespace {

// SplitMix64: a small, portable, seeded generator (the same stream on every platform).
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double exponential(double rate) { return -std::log1p(-uniform()) / rate; }
  double normal() {  // Box-Muller, one draw per call
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// A request length around `mean` (LengthSpread in workload.hpp), clamped to [1, 2 mean - 1].
int draw_length(int mean, const LengthSpread& sp, Rng& rng) {
  if (!sp.set()) return mean;
  double x = 0;
  if (sp.kind == SpreadKind::uniform) {
    const long w = std::lround(sp.width);
    x = static_cast<double>(static_cast<long>(rng.next() % static_cast<std::uint64_t>(2 * w + 1)) - w);
  } else {
    x = std::round(sp.width * rng.normal());
  }
  const double lo = 1, hi = 2.0 * mean - 1;
  return static_cast<int>(std::clamp(mean + x, lo, std::max(lo, hi)));
}

// The stream request lengths are drawn from: apart from the arrivals' (same arrivals with or
// without a spread); `lane` separates the streams of closed-loop lanes.
Rng length_rng(std::uint64_t seed, std::uint64_t lane) { return Rng{(seed ^ 0x6C656E67746873ull) + 0x9E3779B97F4A7C15ull * (lane + 1)}; }

enum class State { waiting, prefill, decode, finished };

struct Seq {
  double arrival = 0;       // when this replica may start it
  double orig_arrival = 0;  // when the user sent it (disaggregated decode: before prefill)
  double first = -1, kv_transfer = 0;
  int input = 0, output = 0, cached = 0;  // cached: context already in the KV cache (not prefilled)
  int task = -1, call = 0;
  int target = 0, done = 0, generated = 0;  // prefill tokens to compute, computed; tokens sampled
  long it0 = 0, finish_it = 0;
  int ctx0 = 0, phase = 0, version = 0, preempt = 0;
  long blocks = 0;      // cache units (StepModel::kv_units) taken at admission
  long cost = 0;        // units its next block crossing takes (StepModel::units_at)
  long admitted = -1;   // admission stamp (order of admission; a re-admission takes a new one)
  long reserved = 0;    // guaranteed admission: units held back for this sequence's growth
  bool remote = false;  // prefilled elsewhere: joins decode on admission
  State state = State::waiting;
};

inline long ceil_div(long a, long b) { return (a + b - 1) / b; }

// Sequences per iteration of lane `lane` of a replica's `lanes` micro-batch lanes: its share of the
// cap, the remainder going to the first lanes (simulate refuses a cap below the lane count).
int lane_batch(const SimOptions& o, int lanes, int lane = 0) {
  const int n = std::max(1, lanes);
  return std::max(1, o.max_batch / n + (lane % n < o.max_batch % n ? 1 : 0));
}

class Replica {
 public:
  // lanes > 1: one of a pipelined replica's `lanes` micro-batch lanes (pp stages keep pp batches
  // in flight, as vLLM's batch queue and TensorRT-LLM's micro-batches do): each lane runs its own
  // batch through every stage and holds its share of the replica's KV cache and batch cap.
  Replica(const StepModel& sm, const SimOptions& o, bool prefill_only, const ServeWorkload& w, int lanes = 1, int lane = 0)
      : sm_(sm), o_(o), prefill_only_(prefill_only), w_(w), B_(sm.block_tokens()), W_(std::max(1, w.samples)),
        slot_w_(w.beam ? 1 : W_), out_w_(w.beam ? 1 : W_), phase_cost_(B_, 0),
        max_batch_(lane_batch(o, lanes, lane)),
        lw_(sm.model().window_layer_count() > 0 ? sm.model().sliding_window : 0), chunked_(sm.model().chunked_local),
        spec_k_(o.spec.on() ? o.spec.draft_tokens : 0) {
    for (int k = 0; k <= spec_k_; ++k) spec_e_.push_back(o.spec.tokens_per_step(k));
    total_blocks_ = sm.kv_units() / std::max(1, lanes);
    free_ = total_blocks_;
  }

  int add(const Seq& s) {
    seqs_.push_back(s);
    return static_cast<int>(seqs_.size()) - 1;
  }
  void arrive_sorted(int id) { sorted_.push_back(id); }
  void set_quota(int q) { quota_ = q; }
  int issued() const { return issued_; }
  void seed_lengths(std::uint64_t lane) { lens_ = length_rng(w_.seed, lane); }
  void issue_closed(double t) {  // concurrency workload: one new request at t
    Seq s;
    s.arrival = s.orig_arrival = t;
    s.input = draw_length(w_.input_len, w_.input_spread, lens_);
    s.output = draw_length(w_.output_len, w_.output_spread, lens_);
    s.target = s.input;
    dynamic_.push({t, add(s)});
    ++issued_;
  }

  void run(SimResult& r);
  const std::vector<Seq>& seqs() const { return seqs_; }

 private:
  bool has_arrival() const { return next_sorted_ < sorted_.size() || !dynamic_.empty(); }
  double next_arrival() const {
    double t = 1e300;
    if (next_sorted_ < sorted_.size()) t = seqs_[sorted_[next_sorted_]].arrival;
    if (!dynamic_.empty()) t = std::min(t, dynamic_.top().first);
    return t;
  }
  void pull_arrivals(double t) {
    for (;;) {
      const bool a = next_sorted_ < sorted_.size() && seqs_[sorted_[next_sorted_]].arrival <= t;
      const bool b = !dynamic_.empty() && dynamic_.top().first <= t;
      if (!a && !b) return;
      // Earlier arrival first; ties by creation order (deterministic).
      bool take_sorted = a;
      if (a && b) {
        const auto& sa = seqs_[sorted_[next_sorted_]];
        const auto& db = dynamic_.top();
        take_sorted = sa.arrival < db.first || (sa.arrival == db.first && sorted_[next_sorted_] < db.second);
      }
      if (take_sorted) waiting_.push_back(sorted_[next_sorted_++]);
      else {
        waiting_.push_back(dynamic_.top().second);
        dynamic_.pop();
      }
    }
  }
  void enter_decode(int id, long it) {
    Seq& s = seqs_[id];
    s.state = State::decode;
    s.it0 = it;
    s.ctx0 = s.cached + s.target;
    s.phase = static_cast<int>(((it - s.ctx0) % B_ + B_) % B_);
    s.finish_it = it + (s.output - s.generated) - 1;
    // A context crossing into block n + 1 (at n x B tokens) takes what units_at(P, n + 1) adds to
    // units_at(P, n): constant but for local layers, whose cost drops at n = cap (the window
    // full) and again at P + cap (the prompt's shared blocks passed).
    const long P = ceil_div(s.ctx0, B_);
    s.cost = sm_.units_at(P, P + 1, W_) - sm_.units_at(P, P, W_);
    phase_cost_[s.phase] += s.cost;
    schedule_cost_change(id, P);
    ++nd_;
    ctx_sum_ += s.ctx0;
    heap_.push({s.finish_it, id, s.version});
    if (lw_ > 0) {  // its local layers' keys: grow, then stop at the window or restart with each chunk
      const long q = s.ctx0 + 1, k = sm_.model().local_row_keys(q);
      local_sum_ += static_cast<double>(k);
      if (chunked_) local_ev_.push({it + (lw_ - k + 1), id, s.version});
      else if (q < lw_) ++growing_, local_ev_.push({it + (lw_ - q), id, s.version});
    }
  }
  // The next block count n > crossed at which the sequence's crossing cost changes (local layers
  // only: at the window's cap, then once the prompt's shared blocks have left it), as an event
  // at the iteration of that crossing.
  void schedule_cost_change(int id, long crossed) {
    const long cap = sm_.local_cap_blocks();
    if (cap <= 0) return;
    const Seq& s = seqs_[id];
    const long P = ceil_div(s.ctx0, B_);
    for (long n : {cap, P + cap})
      if (n > crossed) {
        costs_.push({s.it0 + n * B_ - s.ctx0, id, s.version});
        return;
      }
  }
  // After a decode iteration, at the start of iteration `it`: every growing row read one key more;
  // rows that reached the window stop growing, rows past a chunk's end restart at 1.
  void advance_local(long it) {
    if (lw_ <= 0) return;
    local_sum_ += chunked_ ? nd_ : growing_;
    while (!local_ev_.empty() && local_ev_.top().it <= it) {
      const Fin e = local_ev_.top();
      local_ev_.pop();
      const Seq& s = seqs_[e.id];
      if (s.state != State::decode || s.version != e.version) continue;
      if (chunked_) {
        local_sum_ -= lw_;
        local_ev_.push({e.it + lw_, e.id, e.version});
      } else {
        --growing_;
      }
    }
  }
  // Removes a decode sequence at the start of iteration `it`; returns its context.
  long leave_decode(int id, long it) {
    Seq& s = seqs_[id];
    const long ctx = s.ctx0 + (it - s.it0);
    // The prompt's blocks are shared by the request's W_ samples; each took its own blocks as it grew.
    const long at_entry = sm_.seq_units(s.ctx0, s.ctx0, W_);
    const long took = sm_.seq_units(s.ctx0, ctx, W_) - at_entry;
    free_ += at_entry + took;
    // Growth units it took came out of its reservation (iteration by iteration, by phase);
    // what it did not take goes back.
    reserved_ -= std::max(0L, s.reserved - took);
    s.reserved = 0;
    phase_cost_[s.phase] -= s.cost;
    s.cost = 0;
    --nd_;
    ctx_sum_ -= static_cast<double>(ctx);
    if (lw_ > 0) {
      local_sum_ -= static_cast<double>(sm_.model().local_row_keys(ctx + 1));
      if (!chunked_ && ctx + 1 < lw_) --growing_;
    }
    s.generated += static_cast<int>(it - s.it0);
    ++s.version;
    return ctx;
  }
  // Batch slots (sequences) not taken by the running and prefilling requests.
  int free_slots() const { return max_batch_ - (nd_ + static_cast<int>(prefilling_.size())) * slot_w_; }
  void complete(int id, double t, SimResult& r);
  // Frees the blocks of the most recently admitted running sequence (decoding or prefilling),
  // vLLM's victim: it goes back to the front of the queue to recompute its prompt and the tokens
  // it generated. A sequence that runs alone and still cannot grow can never fit the cache: it is
  // dropped instead. Returns false when nothing runs.
  bool preempt_one(long it, SimResult& r);
  // Blocks taken at admission: the running sequences, in order of admission.
  void note_admitted(int id) {
    seqs_[id].admitted = ++admissions_;
    running_.push_back({id, seqs_[id].admitted});
  }
  bool live(const std::pair<int, long>& e) const {
    const Seq& s = seqs_[e.first];
    return (s.state == State::decode || s.state == State::prefill) && s.admitted == e.second;
  }

  const StepModel& sm_;
  const SimOptions& o_;
  bool prefill_only_;
  const ServeWorkload& w_;
  const int B_;
  const int W_;       // sequences per request (ServeWorkload::samples): each decodes, all share the prompt's blocks
  const int slot_w_;  // batch slots a request takes: its samples, or 1 for beam search (the engine's batch counts requests)
  const int out_w_;   // output tokens a request's decode step returns: its samples, or 1 for beam search
  std::vector<long> phase_cost_;  // units the decode requests of each block phase take at their next crossing
  int max_batch_ = 1;  // sequences per iteration of this lane
  long total_blocks_ = 0, free_ = 0;  // cache units: a block of one layer (StepModel::kv_units)
  long reserved_ = 0;  // guaranteed admission: units promised to running sequences' growth
  std::vector<Seq> seqs_;
  std::vector<int> sorted_;
  std::size_t next_sorted_ = 0;
  std::priority_queue<std::pair<double, int>, std::vector<std::pair<double, int>>, std::greater<>> dynamic_;
  std::deque<int> waiting_;
  std::vector<int> prefilling_;
  std::vector<std::pair<int, long>> running_;  // (id, admission stamp) in order of admission; stale entries skipped
  long admissions_ = 0;
  struct Fin {
    long it;
    int id, version;
    bool operator>(const Fin& o) const { return it != o.it ? it > o.it : id > o.id; }
  };
  std::priority_queue<Fin, std::vector<Fin>, std::greater<>> heap_;
  std::priority_queue<Fin, std::vector<Fin>, std::greater<>> costs_;  // when a decode's crossing cost changes (local layers)
  // Local attention (sliding window or chunks of lw_ tokens; 0: none): the keys the decode rows'
  // local layers read, summed (Model::local_row_keys), the rows still growing toward the window, and when
  // each stops (sliding) or restarts (chunked).
  const long lw_;
  const bool chunked_;
  double local_sum_ = 0;
  int growing_ = 0;
  std::priority_queue<Fin, std::vector<Fin>, std::greater<>> local_ev_;
  int nd_ = 0;
  double ctx_sum_ = 0;
  int quota_ = 0, issued_ = 0;
  Rng lens_{0};  // closed loop: request lengths (seed_lengths)
  const int spec_k_;     // speculative decoding (SimOptions::spec): drafted tokens per step, 0 when off
  std::vector<double> spec_e_;  // its mean tokens per step when k tokens are drafted, k = 0 .. spec_k_
};

void Replica::complete(int id, double t, SimResult& r) {
  Seq& s = seqs_[id];
  s.state = State::finished;
  RequestRecord rec;
  rec.arrival = s.orig_arrival;
  rec.first_token = s.first;
  rec.finish = t;
  rec.input = s.input;
  rec.output = s.output;
  rec.task = s.task;
  rec.preemptions = s.preempt;
  rec.kv_transfer = s.kv_transfer;
  r.requests.push_back(rec);
  if (prefill_only_) return;
  if (w_.kind == WorkloadKind::concurrency && issued_ < quota_) issue_closed(t);
  if (w_.kind == WorkloadKind::agent && s.task >= 0) {
    const AgentTask& task = w_.tasks[s.task];
    if (s.call + 1 < static_cast<int>(task.calls.size())) {
      const AgentCall& prev = task.calls[s.call];
      const AgentCall& next = task.calls[s.call + 1];
      Seq n;
      n.task = s.task;
      n.call = s.call + 1;
      n.arrival = n.orig_arrival = t + prev.tool_s;
      n.input = s.input + s.output + next.new_input;
      n.output = next.output;
      n.cached = w_.prefix_cache ? s.input + s.output - 1 : 0;
      n.target = n.input - n.cached;
      dynamic_.push({n.arrival, add(n)});
    }
  }
}

bool Replica::preempt_one(long it, SimResult& r) {
  while (!running_.empty()) {
    const auto e = running_.back();
    running_.pop_back();
    if (!live(e)) continue;
    const int id = e.first;
    Seq& s = seqs_[id];
    const bool alone = nd_ + static_cast<int>(prefilling_.size()) == 1;
    // Its whole context: the prompt and every token it sampled (the last one not yet in the cache).
    long ctx = 0;
    if (s.state == State::decode) {
      ctx = leave_decode(id, it) + 1;
    } else {
      free_ += s.blocks;
      reserved_ -= s.reserved;
      s.reserved = 0;
      prefilling_.erase(std::find(prefilling_.begin(), prefilling_.end(), id));
      ctx = s.cached + s.target;
    }
    s.blocks = 0;
    if (alone) {  // nothing else holds blocks: this context never fits the cache
      s.state = State::finished;
      r.output_tokens -= static_cast<long>(s.generated) * out_w_;  // tokens never delivered
      ++r.dropped;
      return true;
    }
    // Recomputed as one sequence of the whole context (with several samples, their generated
    // tokens are not recomputed one by one: a lower bound on the recompute); the next token is
    // sampled when that prefill ends.
    s.state = State::waiting;
    s.cached = 0;
    s.target = static_cast<int>(ctx);
    s.done = 0;
    s.remote = false;
    ++s.preempt;
    ++r.preemptions;
    waiting_.push_front(id);
    return true;
  }
  return false;
}

void Replica::run(SimResult& r) {
  double t = 0, kv_integral = 0, busy = 0, prefill_time = 0;
  double accepted = 0;  // speculative decoding: tokens per step summed (each step gains its whole part's increase)
  long it = 0;
  struct Chunk {
    int id, tokens;
  };
  std::vector<Chunk> chunks;
  // Admits the front waiting sequence with blocks for its whole context (cached + target): a
  // sequence larger than the whole cache is dropped; one that does not fit now stays queued.
  enum class Admit { dropped, blocked, admitted };
  auto admit_front = [&]() {
    const int id = waiting_.front();
    Seq& s = seqs_[id];
    const long ctx = s.cached + s.target;
    const long final_ctx = ctx + (s.output - s.generated);  // the context it reaches
    const long need = sm_.seq_units(ctx, ctx, W_);
    const long final_units = sm_.seq_units(ctx, final_ctx, W_);
    // Guaranteed admission also holds back the units the sequence's remaining output will fill.
    const long grow = o_.reserve_output && !prefill_only_ ? final_units - need : 0;
    // Several samples or beams each write their own blocks from the prompt's last, partly filled
    // one on (copy on write): a request whose sequences cannot all fit the cache alone never
    // completes, whatever the admission (100,000 beams of 10 tokens had run in no blocks at all).
    const long own = W_ > 1 ? final_units - need + (ctx % B_ != 0 ? W_ * (sm_.global_layers() + sm_.local_layers()) : 0) : 0;
    if (need + std::max(grow, own) > total_blocks_) {
      waiting_.pop_front();
      s.state = State::finished;
      r.output_tokens -= static_cast<long>(s.generated) * out_w_;  // tokens sampled before a preemption, never delivered
      ++r.dropped;
      if (s.generated == 0 && need > total_blocks_) ++r.dropped_prompt;
      return Admit::dropped;
    }
    if (need + grow > free_ - reserved_) return Admit::blocked;
    waiting_.pop_front();
    free_ -= need;
    reserved_ += grow;
    s.blocks = need;
    s.reserved = grow;
    note_admitted(id);
    return Admit::admitted;
  };
  for (;;) {
    pull_arrivals(t);
    if (nd_ == 0 && prefilling_.empty() && waiting_.empty()) {
      if (!has_arrival()) break;
      t = std::max(t, next_arrival());
      continue;
    }
    int slots = free_slots();
    // Sequences prefilled on another replica join decode directly. The decode replica allocates a
    // request's blocks before its prompt is prefilled (Dynamo and vLLM's P/D connectors write the
    // prompt's KV into blocks the decode worker holds) and streams every token, the first
    // included, once the KV is there: the first token reaches the user at admission, after the
    // prefill, the transfer and any wait for room, all in TTFT, not TPOT (the prefill pool is not
    // simulated again: its queue is as if prompts arrived when the user sent them).
    while (!waiting_.empty() && seqs_[waiting_.front()].remote && slots >= slot_w_) {
      const int id = waiting_.front();
      const Admit a = admit_front();
      if (a == Admit::dropped) continue;
      if (a == Admit::blocked) break;
      seqs_[id].first = std::max(seqs_[id].first + seqs_[id].kv_transfer, t);
      enter_decode(id, it);
      slots -= slot_w_;
    }
    // Decode sequences whose context crosses a block boundary need a block now; while too few
    // are free, the most recently admitted running sequence is preempted (or dropped, alone).
    bool preempted = false;
    auto refresh_costs = [&]() {
      while (!costs_.empty() && costs_.top().it <= it) {  // local layers: a crossing now takes fewer units
        const Fin e = costs_.top();
        costs_.pop();
        Seq& c = seqs_[e.id];
        if (c.state != State::decode || c.version != e.version) continue;
        const long P = ceil_div(c.ctx0, B_), n = ceil_div(c.ctx0 + (it - c.it0), B_);
        const long cost = sm_.units_at(P, n + 1, W_) - sm_.units_at(P, n, W_);
        phase_cost_[c.phase] += cost - c.cost;
        c.cost = cost;
        schedule_cost_change(e.id, n);
      }
    };
    // Speculative decoding: the step's drafted tokens per sequence (fewer when the token budget
    // cannot hold K + 1 rows for every decode sequence, as engines shrink or switch off
    // speculation for large batches) and the tokens each decode sequence will gain, `ahead`
    // positions whose KV blocks the step reserves before it runs (vLLM's lookahead slots).
    int k_step = 0, ahead = 1;
    long held = 0, held_reserved = 0;  // blocks kept for the step's later positions (of them, reserved ones)
    auto plan_step = [&]() {
      k_step = 0, ahead = 1;
      if (spec_k_ <= 0 || nd_ <= 0) return;
      k_step = o_.spec.draft_tokens_within(o_.token_budget, static_cast<long>(nd_) * W_);
      ahead = std::max(1, static_cast<int>(std::floor(accepted + spec_e_[k_step]) - std::floor(accepted)));
    };
    auto grow_decodes = [&]() {
      refresh_costs();
      // Room for every position the step may fill (an upper bound: a local layer's crossing only
      // gets cheaper), freed by preemption before anything of the step is taken.
      auto need_ahead = [&]() {
        long sum = 0;
        for (int p = 0; p < ahead; ++p) sum += phase_cost_[(it + p) % B_];
        return sum;
      };
      while (need_ahead() > free_ && nd_ > 0) {
        if (!preempt_one(it, r)) break;
        preempted = true;
        slots = free_slots();
      }
      const long need = phase_cost_[it % B_];
      // The later positions' blocks are held out of what this iteration's prompts may take, and
      // handed back just before the step's decode takes them position by position.
      held = ahead > 1 ? std::max(0L, std::min(need_ahead(), free_) - need) : 0;
      free_ -= need + held;
      // (Guaranteed admission: those blocks were reserved; the reservation shrinks as they are taken.)
      if (o_.reserve_output) {
        reserved_ = std::max(0L, reserved_ - need);
        held_reserved = std::min(reserved_, held);
        reserved_ -= held_reserved;
      }
    };
    // Prefill-first scheduling (SimOptions::prefill_first) grows the decodes only in an
    // iteration that runs them, decided once the prompts are scheduled.
    const bool pf = o_.prefill_first;
    if (!pf) {
      plan_step();
      grow_decodes();
    }
    // Speculative decoding: a decode sequence verifies k drafted tokens beside its next one, k + 1
    // tokens of the budget.
    int budget = o_.token_budget - (pf ? 0 : nd_ * W_ * (1 + k_step));
    chunks.clear();
    double pairs = 0, wpairs = 0;  // query-key pairs of the prompt chunks: full, and cut to the sliding window
    const double window = sm_.model().sliding_window;
    int finishing = 0;
    long prefill_tokens = 0;
    long pad_tokens = 0;  // padding rows a fixed-shape prefill graph computes (o_.prefill_pad)
    auto take = [&](int id) {
      Seq& s = seqs_[id];
      const int c = std::min(s.target - s.done, budget);
      if (c <= 0) return;
      const double d = s.cached + s.done;
      pairs += c * d + 0.5 * c * (c + 1.0);
      if (window > 0) wpairs += sm_.model().local_pairs(d, c);
      budget -= c;
      prefill_tokens += c;
      chunks.push_back({id, c});
      if (s.done + c == s.target) {
        ++finishing;
        if (o_.prefill_pad > 0) {  // the prompt's last chunk fills the graph's fixed shape
          const long padded = ceil_div(s.target, o_.prefill_pad) * o_.prefill_pad;
          const long extra = padded - s.target;
          pad_tokens += extra;
          pairs += extra * (s.cached + static_cast<double>(s.target));
          if (window > 0) wpairs += extra * std::min(window, s.cached + static_cast<double>(s.target));
        }
      }
    };
    for (int id : prefilling_) {
      if (budget <= 0) break;
      take(id);
    }
    // An admission gate (SimOptions::prefill_kv_free) looks at the free share once, before the
    // iteration admits anything, as the fork's scheduler does.
    const bool gate_open = o_.prefill_kv_free <= 0 ||
                           static_cast<double>(free_) > o_.prefill_kv_free * static_cast<double>(total_blocks_);
    // As vLLM's scheduler, an iteration that preempted admits no waiting prompt: the blocks a
    // preemption freed go to the running sequences that needed them.
    while (gate_open && !preempted && !waiting_.empty() && budget > 0 && slots >= slot_w_ && !seqs_[waiting_.front()].remote) {
      const int id = waiting_.front();
      // Prefill-first engines do not chunk: a prompt joins only whole (one larger than the whole
      // budget goes alone, in chunks, so it cannot wait forever).
      if (pf && prefill_tokens > 0 && seqs_[id].target - seqs_[id].done > budget) break;
      const Admit a = admit_front();
      if (a == Admit::dropped) continue;
      if (a == Admit::blocked) break;
      seqs_[id].state = State::prefill;
      prefilling_.push_back(id);
      slots -= slot_w_;
      take(id);
    }
    // Prefill-first: an iteration with prompts runs no decode; one without runs the decodes.
    const bool decode_pass = !pf || prefill_tokens == 0;
    if (pf && decode_pass) {
      plan_step();
      grow_decodes();
    }
    const int nd_pass = decode_pass ? nd_ : 0;
    const int rows = nd_pass * W_;  // decode rows: every sample of every running request
    const int tokens = rows + static_cast<int>(prefill_tokens);
    if (tokens == 0) {  // everything waiting is blocked: only possible with nothing running
      if (preempted && !waiting_.empty()) continue;  // the last running sequence was dropped: admit next iteration
      if (!has_arrival()) break;
      t = std::max(t, next_arrival());
      continue;
    }
    // An engine that cannot mix prefill into a decode pass (data/serving engine.mixed_batches =
    // false) runs the two graphs one after the other within the iteration.
    // A static-shape decode graph (o_.compiled_batch) computes all its slots: idle ones are
    // padded rows that stream their (mean-context) KV and go through the GEMMs and LM head.
    const int pad = rows > 0 ? std::max(0, o_.compiled_batch - rows) : 0;
    const int nd_eff = rows + pad;
    // Each row attends to its whole context (a sample reads the shared prompt blocks too).
    const double ctx_eff = rows > 0 ? (ctx_sum_ + nd_) * static_cast<double>(nd_eff) / nd_ : 0.0;
    const double local_eff = rows > 0 && lw_ > 0 ? local_sum_ * static_cast<double>(nd_eff) / nd_ : -1.0;
    const bool split = !sm_.system().serving.mixed_batches && rows > 0 && prefill_tokens > 0;
    const long fill = prefill_tokens + pad_tokens;  // prefill rows computed (long: padded graphs can pass 2^31)
    // (With speculative decoding the step model times each decode row's k + 1 verified tokens and
    // the draft's passes.)
    const double dt = split ? sm_.step_time(nd_eff, nd_eff, ctx_eff, 0, nd_eff, -1, local_eff, k_step) +
                                  sm_.step_time(fill, 0, 0, pairs, finishing, wpairs)
                            : sm_.step_time(nd_eff + fill, nd_eff, ctx_eff, pairs, nd_eff + finishing, wpairs, local_eff, k_step);
    const double used = static_cast<double>(total_blocks_ - free_) / static_cast<double>(total_blocks_);
    kv_integral += used * dt;
    r.kv_util_peak = std::max(r.kv_util_peak, used);
    busy += dt;
    // The prompt share of the iteration's time by its tokens (a verification step computes k + 1
    // per decode row).
    prefill_time += dt * static_cast<double>(prefill_tokens) / (static_cast<double>(rows) * (1 + k_step) + static_cast<double>(prefill_tokens));
    t += dt;
    ++r.iterations;
    if (prefill_tokens > 0) ++r.prompt_iterations;
    r.prefill_tokens += prefill_tokens;

    // Decode: every running sequence gained one token. (`it` counts decode iterations: a
    // prefill-only iteration leaves the running sequences where they were.)
    if (decode_pass) {
      // Speculative decoding: the step returns `gain` tokens to every decode sequence, the whole
      // part's increase of the running sum of tokens_per_step (so the steps average it), each
      // position's KV blocks taken in turn from those held for it (grow_decodes).
      free_ += held;
      reserved_ += held_reserved;
      held = held_reserved = 0;
      const int gain = nd_ > 0 ? ahead : 1;
      if (k_step > 0 && nd_ > 0) accepted += spec_e_[k_step];  // (`ahead` is its whole part's increase)
      if (nd_ > 0) r.decode_rows += nd_;
      for (int g = 0; g < gain; ++g) {
        if (g > 0) {  // the next position's blocks, reserved before the step (need_ahead)
          if (nd_ == 0) break;
          refresh_costs();
          const long need = phase_cost_[it % B_];
          if (need > free_) break;  // (not reached: the reservation covers it)
          free_ -= need;
          if (o_.reserve_output) reserved_ = std::max(0L, reserved_ - need);
        }
        const long done_it = it++;
        r.output_tokens += static_cast<long>(nd_) * out_w_;
        ctx_sum_ += nd_;
        advance_local(it);
        while (!heap_.empty() && heap_.top().it <= done_it) {
          const Fin f = heap_.top();
          heap_.pop();
          Seq& s = seqs_[f.id];
          if (s.state != State::decode || s.version != f.version) continue;
          leave_decode(f.id, it);
          complete(f.id, t, r);
        }
      }
    }
    // Prefill chunks: a finished prompt samples its first (or next, after recompute) token.
    bool any_finished = false;
    for (const Chunk& c : chunks) {
      Seq& s = seqs_[c.id];
      s.done += c.tokens;
      if (s.done < s.target) continue;
      any_finished = true;
      if (s.first < 0) s.first = t;
      ++s.generated;
      r.output_tokens += out_w_;  // every sample (or the beams' one) takes its first token from the prompt
      if (prefill_only_ || s.generated >= s.output) {
        free_ += s.blocks;
        reserved_ -= s.reserved;
        s.reserved = 0;
        s.state = State::finished;  // marked before complete() so prefilling_ drops it
        complete(c.id, t, r);
      } else {
        enter_decode(c.id, it);
      }
    }
    if (any_finished)
      prefilling_.erase(std::remove_if(prefilling_.begin(), prefilling_.end(),
                                       [&](int id) { return seqs_[id].state != State::prefill; }),
                        prefilling_.end());
    const std::size_t running = static_cast<std::size_t>(nd_) + prefilling_.size();
    if (running_.size() > 64 && running_.size() > 4u * running) {  // drop stale entries
      std::vector<std::pair<int, long>> kept;
      for (auto e : running_)
        if (live(e)) kept.push_back(e);
      running_.swap(kept);
    }
  }
  // Every decode row left: its local-layer keys went with it (a leak would misprice later runs' steps).
  if (lw_ > 0 && (local_sum_ != 0 || growing_ != 0))
    throw std::logic_error("serving simulation: local-attention keys left after the last request");
  r.busy_s += busy;
  r.prefill_share += prefill_time;  // summed here, normalised by the caller
  r.kv_util_mean += kv_integral;    // likewise
}

// kv_integral and prefill_time were summed into kv_util_mean and prefill_share by the replicas;
// normalise them by the busy time they accumulated over.
void finish_result(SimResult& r, double kv_busy, double prefill_busy) {
  double first = 1e300, last = 0;
  for (const auto& q : r.requests) {
    first = std::min(first, q.arrival);
    last = std::max(last, q.finish);
    r.input_tokens += q.input;
  }
  r.makespan_s = r.requests.empty() ? 0 : last - first;
  r.kv_util_mean = kv_busy > 0 ? r.kv_util_mean / kv_busy : 0;
  // A share: summed step times can pass the busy time by a rounding when every step is prefill.
  r.prefill_share = r.busy_s > 0 ? std::clamp(prefill_busy / r.busy_s, 0.0, 1.0) : 0;
}

// Open-loop requests of the workload (offline, poisson, trace), in arrival order.
// A fresh sequence for one open-loop request.
Seq seq_of(const TraceRequest& q) {
  Seq s;
  s.arrival = s.orig_arrival = q.arrival_s;
  s.input = s.target = q.input;
  s.output = q.output;
  return s;
}

std::vector<TraceRequest> open_loop(const ServeWorkload& w) {
  std::vector<TraceRequest> out;
  if (w.kind == WorkloadKind::trace) {
    out = w.trace;
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.arrival_s < b.arrival_s; });
    return out;
  }
  Rng rng{w.seed};
  Rng lens = length_rng(w.seed, 0);
  double t = 0;
  out.reserve(w.requests);
  for (int i = 0; i < w.requests; ++i) {
    if (w.kind == WorkloadKind::poisson) t += rng.exponential(w.rate);
    const int in = draw_length(w.input_len, w.input_spread, lens);
    out.push_back({t, in, draw_length(w.output_len, w.output_spread, lens)});
  }
  return out;
}

// Where and when each open-loop request reaches the engine: the replica it goes to and the time
// it is released to it. Without a front-end batcher, requests go round robin as they arrive;
// with one (FrontBatcher), pending arrivals are released together once the window has passed since
// the previous release (or when the cap is reached), each batch whole to the next replica. `reqs`
// is in arrival order; the result is in the same order.
struct Dispatch {
  double release;
  int replica;
};
std::vector<Dispatch> dispatch(const std::vector<TraceRequest>& reqs, const FrontBatcher& b, int replicas) {
  std::vector<Dispatch> out;
  out.reserve(reqs.size());
  if (!b.set()) {
    for (std::size_t i = 0; i < reqs.size(); ++i) out.push_back({reqs[i].arrival_s, static_cast<int>(i % replicas)});
    return out;
  }
  std::size_t pending = 0;  // first request not yet released
  int batch = 0;
  auto release = [&](std::size_t end, double t) {
    for (std::size_t i = pending; i < end; ++i) out.push_back({t, batch % replicas});
    pending = end;
    ++batch;
  };
  double stamp = reqs.empty() ? 0 : reqs[0].arrival_s;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    const double a = reqs[i].arrival_s;
    if (pending < i && stamp + b.window_s <= a) {  // the window closed before this arrival
      stamp += b.window_s;
      release(i, stamp);
    }
    if ((b.max > 0 && static_cast<int>(i + 1 - pending) >= b.max) || a >= stamp + b.window_s) {
      stamp = a;
      release(i + 1, a);
    }
  }
  if (pending < reqs.size()) release(reqs.size(), stamp + b.window_s);
  return out;
}

// The sequence of open-loop request `q` as dispatched: sent at its arrival, startable at `release`.
Seq seq_at(const TraceRequest& q, double release) {
  Seq s = seq_of(q);
  s.arrival = release;
  return s;
}

}  // namespace

SimResult simulate(const StepModel& decode, const ServeWorkload& w, const SimOptions& o, const StepModel* prefill) {
  SimResult r;
  if (!decode.fits()) {
    r.ok = false;
    r.reason = decode.reason();
    return r;
  }
  const int R = decode.layout().replicas;
  const bool disagg = o.prefill_replicas > 0;
  // A request's parallel samples all need batch slots at once (beams count once).
  for (const StepModel* sm : {&decode, prefill && disagg ? prefill : &decode}) {
    const int cap = lane_batch(o, sm->layout().pp, sm->layout().pp - 1);  // the smallest lane's
    if (o.max_batch < sm->layout().pp) {
      r.ok = false;
      r.reason = "a batch cap of " + std::to_string(o.max_batch) + (o.max_batch == 1 ? " sequence" : " sequences") + " is below the " + std::to_string(sm->layout().pp) +
                 " micro-batch lanes of a pp " + std::to_string(sm->layout().pp) + " replica (each lane runs a batch of its own)";
      return r;
    }
    if (!w.beam && w.samples > cap) {
      r.ok = false;
      r.reason = "a request's " + std::to_string(w.samples) + " samples exceed the batch cap of " + std::to_string(cap) +
                 " sequences" + (sm->layout().pp > 1 ? " per pipeline lane" : "");
      return r;
    }
  }
  if (disagg) {
    const StepModel& pm = prefill ? *prefill : decode;
    if (!pm.fits()) {
      r.ok = false;
      r.reason = pm.reason();
      return r;
    }
    const int P = o.prefill_replicas, D = R - P;
    if (D < 1) {
      r.ok = false;
      r.reason = "disaggregation needs at least one decode replica";
      return r;
    }
    const auto reqs = open_loop(w);
    // Prefill pool: each request ends at its first token. (Each pipelined replica is pp lanes.)
    const int pl = pm.layout().pp, PL = P * pl;
    std::vector<Replica> pre;
    pre.reserve(PL);
    for (int p = 0; p < PL; ++p) pre.emplace_back(pm, o, true, w, pl, p % pl);
    std::vector<std::pair<int, int>> where(reqs.size());
    const auto sent = dispatch(reqs, w.batcher, PL);
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      Replica& rep = pre[sent[i].replica];
      const int id = rep.add(seq_at(reqs[i], sent[i].release));
      rep.arrive_sorted(id);
      where[i] = {sent[i].replica, id};
    }
    SimResult pr;
    for (auto& rep : pre) rep.run(pr);
    // Each request's decode lane is chosen when it arrives (the decode worker holds its blocks
    // before the prefill), round-robin. KV transfer: every device of the prefill replica sends its
    // share to its decode peer, over the scale-up domain when both replicas sit in one (replicas
    // are laid out in order, prefill first: replica r on devices r x size .. (r + 1) x size - 1),
    // else over the scale-out network.
    const System& sys = decode.system();
    const int dl = decode.layout().pp, DL = D * dl;
    const long per_prefill = pm.devices(), per_decode = decode.devices(), domain = sys.scale_up.size;
    auto transfer_inside = [&](int prefill_replica, int decode_replica) {
      const long p0 = prefill_replica * per_prefill, d0 = P * per_prefill + decode_replica * per_decode;
      return per_prefill <= domain && per_decode <= domain && p0 / domain == (p0 + per_prefill - 1) / domain &&
             d0 / domain == (d0 + per_decode - 1) / domain && p0 / domain == d0 / domain;
    };
    struct Ready {
      double t;
      std::size_t i;
    };
    std::vector<Ready> ready;
    std::vector<double> first(reqs.size(), 0), xfer(reqs.size(), 0);
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      const Seq& s = pre[where[i].first].seqs()[where[i].second];
      if (s.state != State::finished || s.first < 0) {
        ++r.dropped;
        continue;
      }
      first[i] = s.first;
      const bool inside = transfer_inside(where[i].first / pl, static_cast<int>(i % DL) / dl);
      const double bw = inside ? sys.scale_up.bandwidth.v * sys.calib.scale_up_bus : sys.scale_out.bandwidth.v * sys.calib.scale_out_bus;
      xfer[i] = (inside ? sys.scale_up.latency.v : sys.scale_out.latency.v) + pm.prompt_kv_bytes(reqs[i].input) / bw;
      if (reqs[i].output <= 1) {
        RequestRecord rec{reqs[i].arrival_s, s.first, s.first, reqs[i].input, 1, -1, s.preempt, 0};
        r.requests.push_back(rec);
        continue;
      }
      ready.push_back({s.first + xfer[i], i});
    }
    std::stable_sort(ready.begin(), ready.end(), [](const Ready& a, const Ready& b) { return a.t < b.t; });
    std::vector<Replica> dec;
    dec.reserve(DL);
    for (int d = 0; d < DL; ++d) dec.emplace_back(decode, o, false, w, dl, d % dl);
    for (std::size_t k = 0; k < ready.size(); ++k) {
      const std::size_t i = ready[k].i;
      Seq s;
      s.arrival = ready[k].t;
      s.orig_arrival = reqs[i].arrival_s;
      s.first = first[i];
      s.kv_transfer = xfer[i];
      s.input = s.target = reqs[i].input;
      s.output = reqs[i].output;
      s.generated = 1;
      s.remote = true;
      Replica& rep = dec[i % DL];  // the lane chosen at arrival; ready times are sorted, so each lane's are
      rep.arrive_sorted(rep.add(s));
    }
    for (auto& rep : dec) rep.run(r);
    const double kv_busy = r.busy_s;  // KV utilisation: decode pool only (the prefill pool's cache is transient)
    const double prefill_busy = pr.busy_s + r.prefill_share;  // the prefill pool, plus recompute after preemption
    r.prefill_pool = {pr.iterations, pr.prompt_iterations, pr.prefill_tokens, pr.output_tokens, pr.decode_rows, pr.busy_s};
    r.busy_s += pr.busy_s;
    r.iterations += pr.iterations;
    r.prompt_iterations += pr.prompt_iterations;
    r.decode_rows += pr.decode_rows;
    r.preemptions += pr.preemptions;
    r.prefill_tokens += pr.prefill_tokens;
    r.output_tokens += pr.output_tokens;
    r.dropped += pr.dropped;
    r.dropped_prompt += pr.dropped_prompt;
    finish_result(r, kv_busy, prefill_busy);
    return r;
  }

  // A replica of pp > 1 stages runs pp micro-batch lanes (Replica): requests, concurrency and agent
  // tasks are spread over the lanes as over replicas.
  const int lanes = decode.layout().pp, RL = R * lanes;
  std::vector<Replica> reps;
  reps.reserve(RL);
  for (int p = 0; p < RL; ++p) reps.emplace_back(decode, o, false, w, lanes, p % lanes);
  switch (w.kind) {
    case WorkloadKind::offline:
    case WorkloadKind::poisson:
    case WorkloadKind::trace: {
      const auto reqs = open_loop(w);
      const auto sent = dispatch(reqs, w.batcher, RL);
      for (std::size_t i = 0; i < reqs.size(); ++i) {
        Replica& rep = reps[sent[i].replica];
        rep.arrive_sorted(rep.add(seq_at(reqs[i], sent[i].release)));
      }
      break;
    }
    case WorkloadKind::concurrency: {
      // Client k sends its requests to lane k mod RL; the requests are shared among the clients,
      // so a lane's quota follows its clients (a lane without any sends none, and the whole
      // requested count is simulated even with fewer clients than lanes).
      const int C = std::max(1, w.concurrency);
      for (int p = 0; p < RL; ++p) {
        const int c = w.concurrency / RL + (p < w.concurrency % RL ? 1 : 0);
        int n = 0;
        for (int k = p; k < C; k += RL) n += w.requests / C + (k < w.requests % C ? 1 : 0);
        reps[p].set_quota(n);
        reps[p].seed_lengths(static_cast<std::uint64_t>(p));
        for (int k = 0; k < std::min(c, n); ++k) reps[p].issue_closed(0);
      }
      break;
    }
    case WorkloadKind::agent: {
      std::vector<std::size_t> order(w.tasks.size());
      for (std::size_t j = 0; j < order.size(); ++j) order[j] = j;
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return w.tasks[a].start_s < w.tasks[b].start_s; });
      for (std::size_t k = 0; k < order.size(); ++k) {
        const std::size_t j = order[k];
        const AgentTask& task = w.tasks[j];
        if (task.calls.empty()) continue;
        Seq s;
        s.task = static_cast<int>(j);
        s.arrival = s.orig_arrival = task.start_s;
        s.input = s.target = task.calls[0].new_input;
        s.output = task.calls[0].output;
        Replica& rep = reps[k % RL];
        rep.arrive_sorted(rep.add(s));
      }
      r.tasks = static_cast<int>(w.tasks.size());
      break;
    }
  }
  for (auto& rep : reps) rep.run(r);
  finish_result(r, r.busy_s, r.prefill_share);
  if (w.kind == WorkloadKind::agent) {
    // A task is complete when all its calls are: a dropped call never spawns the next one.
    std::vector<int> done(w.tasks.size(), 0);
    for (const auto& q : r.requests)
      if (q.task >= 0 && q.task < static_cast<int>(done.size())) ++done[q.task];
    for (std::size_t i = 0; i < done.size(); ++i) r.tasks_completed += done[i] == static_cast<int>(w.tasks[i].calls.size());
  }
  return r;
}

}  // namespace xpu
