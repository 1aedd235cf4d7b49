#include "serve/serve.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "serve/search.hpp"
#include "spec/error.hpp"

namespace xpu {

namespace {

// Nearest-rank percentile index (0-based) of n values.
std::size_t rank_index(std::size_t n, double p) {
  const std::size_t k = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
  return std::min(n, std::max<std::size_t>(k, 1)) - 1;
}

}  // namespace

// Mean and nearest-rank percentiles. The percentiles are order statistics found by selection
// (nth_element on successive upper parts), not a full sort: the serving fit and validate compute
// them for every simulated run, and sorting was a third of their time.
LatencyStats latency_stats(std::vector<double> v) {
  LatencyStats s;
  s.count = static_cast<long>(v.size());
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  const std::size_t n = v.size();
  const std::size_t i50 = rank_index(n, 50), i90 = rank_index(n, 90), i99 = rank_index(n, 99);
  auto select = [&](std::size_t from, std::size_t i) {
    std::nth_element(v.begin() + static_cast<std::ptrdiff_t>(from), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
    return v[i];
  };
  s.p50 = select(0, i50);
  s.p90 = i90 > i50 ? select(i50 + 1, i90) : s.p50;
  s.p99 = i99 > i90 ? select(i90 + 1, i99) : s.p90;
  return s;
}

std::string serve_layout_summary(const ServeReport& r, int replicas) {
  const ServeLayout& l = r.layout;
  std::string s = "tp" + std::to_string(l.tp) + " pp" + std::to_string(l.pp) + " ep" + std::to_string(l.ep) + " x" +
                  std::to_string(replicas > 0 ? replicas : l.replicas) + " " + quant_name(l.weights) + "/kv-" + quant_name(l.kv) + " batch<=" +
                  std::to_string(r.options.max_batch) + " budget " + std::to_string(r.options.token_budget);
  if (r.options.compiled_batch > 0) s += " static " + std::to_string(r.options.compiled_batch);
  if (r.options.prefill_pad > 0) s += " prefill-pad " + std::to_string(r.options.prefill_pad);
  if (r.options.prefill_replicas > 0)
    s += " disagg " + std::to_string(r.options.prefill_replicas) + "P:" + std::to_string(l.replicas - r.options.prefill_replicas) + "D";
  if (r.full_attention) s += " full-attention";
  if (r.options.spec.on())
    s += " spec " + std::string(draft_method_name(r.options.spec.method)) + ":" + std::to_string(r.options.spec.draft_tokens) + "@" +
         format_number("%.2f", r.options.spec.acceptance);
  return s;
}

// Decode sequences of a mean step over `iterations`: output tokens per iteration, times the beams
// when only one is returned; with speculative decoding a step returns several tokens per sequence,
// so its decode sequences are counted as the simulator ran them (decode_rows).
static int mean_decode_rows(const ServeRequest& q, const SimOptions& o, long decode_rows, long output_tokens, double iterations) {
  const int W = std::max(1, q.work.samples);
  const double rows = o.spec.on() ? static_cast<double>(decode_rows) / iterations * W
                                  : static_cast<double>(output_tokens) / iterations * (q.work.beam ? W : 1);
  return std::max(1, static_cast<int>(std::lround(rows)));
}

// The tokens of KV cache one of a pipelined replica's pp micro-batch lanes holds: its whole blocks
// (the simulator gives each lane kv_units / pp).
static long lane_share_tokens(const StepModel& sm) {
  const long units = std::max(1L, sm.kv_units()), lane = units / std::max(1, sm.layout().pp);
  const long b = std::max(1, sm.block_tokens());
  return static_cast<long>(static_cast<double>(sm.kv_capacity_tokens()) * lane / units / b) * b;
}

// Disaggregated serving: each pool's mean iteration (the prefill pool computes prompts only, the
// decode pool decodes, prompts only to recompute after a preemption) and the KV transfer between.
static void explain_pools(ServeReport& r, const StepModel& sm, const System& s, const SimResult& sim, const ServeRequest& q,
                          const SimOptions& o, double mean_in, double ctx) {
  const SimResult::Pool& p = sim.prefill_pool;
  const double itp = std::max<double>(1, static_cast<double>(p.iterations));
  const double itd = std::max<double>(1, static_cast<double>(sim.iterations - p.iterations));
  const int pp_tokens = std::max(1, static_cast<int>(std::lround(static_cast<double>(p.prefill_tokens) / itp)));
  const int firsts = std::max(1, static_cast<int>(std::lround(static_cast<double>(p.output_tokens) / itp)));
  r.explain.push_back({"prefill pool: mean step prompt tokens", std::to_string(pp_tokens),
                       "simulated: the prefill pool's prompt tokens / its iterations"});
  for (auto t : sm.explain_step(pp_tokens, 0, 0, pp_tokens * mean_in / 2, firsts, 1.0)) {
    t.name = "prefill pool: " + t.name;
    r.explain.push_back(t);
  }
  r.explain.push_back({"prefill pool: simulated mean iteration", format_number("%.3f ms", p.busy_s / itp * 1e3),
                       "simulated: the prefill pool's busy time / its iterations"});
  r.explain.push_back({"KV transfer per request (mean)", format_number("%.3f ms", r.kv_transfer_mean_s * 1e3),
                       "prompt KV bytes / (link bandwidth x bus efficiency) + latency, over the scale-up domain when both "
                       "replicas sit in one, else scale-out: " + s.file + ": scale_up, scale_out; data/calibration/" + s.chip_id +
                           ".toml: collectives.scale_up_bus, collectives.scale_out_bus"});
  const int W = std::max(1, q.work.samples);
  const int nb = mean_decode_rows(q, o, sim.decode_rows - p.decode_rows, sim.output_tokens - p.output_tokens, itd);
  const int k_mean = o.spec.on() ? o.spec.draft_tokens_within(o.token_budget, static_cast<long>(nb) * W) : -1;
  const int np = static_cast<int>(std::lround(static_cast<double>(sim.prefill_tokens - p.prefill_tokens) / itd));
  const double share = static_cast<double>(sim.prompt_iterations - p.prompt_iterations) / itd;
  r.explain.push_back({"decode pool: mean step decode sequences", std::to_string(nb),
                       o.spec.on() ? "simulated: the decode pool's decode sequences summed over its iterations / its iterations"
                       : W > 1 && q.work.beam ? "simulated: output tokens after the first / the decode pool's iterations x beams per request"
                                              : "simulated: output tokens after the first / the decode pool's iterations"});
  if (np > 0)
    r.explain.push_back({"decode pool: mean step prompt tokens (recompute after preemption)", std::to_string(np),
                         "simulated: the decode pool's prompt tokens / its iterations"});
  for (auto t : sm.explain_step(nb + np, nb, nb * ctx, np * mean_in / 2, nb, share, -1, k_mean)) {
    t.name = "decode pool: " + t.name;
    r.explain.push_back(t);
  }
  r.explain.push_back({"decode pool: simulated mean iteration", format_number("%.3f ms", (sim.busy_s - p.busy_s) / itd * 1e3),
                       "simulated: the decode pool's busy time / its iterations"});
}

ServeReport evaluate_serve(const Model& m, const System& s, const ServeRequest& q, const ServeLayout& l,
                           const SimOptions& o) {
  ServeReport r;
  r.layout = l;
  r.options = o;
  r.full_attention = q.full_attention;
  r.work = q.work;
  r.workload_detail = workload_summary(q.work);
  StepModel sm(m, s, l, o.token_budget, o.max_batch, o.spec);
  r.weight_bytes_per_device = sm.weight_bytes_per_device();  // also when it does not fit: how far off
  if (!sm.fits()) {
    r.reason = sm.reason();
    return r;
  }
  r.kv_capacity_tokens = sm.kv_capacity_tokens();
  r.kv_bytes_per_token = kv_bytes_per_token(m, l.kv, s.serving.fp4_scale_block);
  SimResult sim = simulate(sm, q.work, o);
  if (!sim.ok) {
    r.reason = sim.reason;
    return r;
  }
  if (sim.requests.empty()) {
    const std::string cache = "the cache of " + std::to_string(sm.kv_capacity_tokens()) + " tokens" +
                              (sm.local_layers() > 0 && sm.global_layers() > 0 ? " in its full-attention layers, beside the local layers' windows" : "") +
                              (sm.layout().pp > 1 ? ", a pipeline lane's share of it: " + std::to_string(lane_share_tokens(sm)) +
                                                        " tokens, as each of the pp micro-batch lanes holds its own" : "");
    r.reason = sim.dropped == 0                       ? std::string("no requests")
               : sim.dropped_prompt == sim.dropped   ? "no request fits the KV cache (prompt longer than " + cache + ")"
               : sim.dropped_prompt == 0             ? "no request fits the KV cache (prompt + output longer than " + cache + ")"
                                                     : "no request fits the KV cache (prompt, or prompt + output, longer than " + cache + ")";
    return r;
  }
  r.feasible = true;
  r.requests = static_cast<long>(sim.requests.size());
  r.dropped = sim.dropped;
  r.tasks = sim.tasks;
  r.tasks_completed = sim.tasks_completed;
  r.input_tokens = sim.input_tokens;
  r.output_tokens = sim.output_tokens;
  r.prefill_tokens = sim.prefill_tokens;
  r.makespan_s = sim.makespan_s;
  r.iterations = sim.iterations;
  r.preemptions = sim.preemptions;
  r.kv_util_mean = sim.kv_util_mean;
  r.kv_util_peak = sim.kv_util_peak;
  std::vector<double> ttft, tpot, e2e;
  ttft.reserve(sim.requests.size());
  e2e.reserve(sim.requests.size());
  long good = 0;
  double xfer = 0, seq_out = 0;  // seq_out: generated tokens of one sequence per request, summed
  for (const auto& q2 : sim.requests) {
    seq_out += q2.output;
    const double a = q2.first_token - q2.arrival;
    const double per = q2.output > 1 ? (q2.finish - q2.first_token) / (q2.output - 1) : 0;
    ttft.push_back(a);
    e2e.push_back(q2.finish - q2.arrival);
    if (q2.output > 1) tpot.push_back(per);
    const bool ok = (q.slo_ttft_s <= 0 || a <= q.slo_ttft_s) && (q.slo_tpot_s <= 0 || per <= q.slo_tpot_s);
    good += ok ? 1 : 0;
    xfer += q2.kv_transfer;
  }
  r.kv_transfer_mean_s = xfer / static_cast<double>(sim.requests.size());
  {
    // A request at the mean lengths, grown to its whole context: the prompt once and each of its
    // samples' generated tokens, local layers at most their window (StepModel::seq_units).
    const double n = static_cast<double>(sim.requests.size());
    const long in = std::lround(static_cast<double>(sim.input_tokens) / n), out = std::lround(seq_out / n);
    const int decode_replicas = l.replicas - o.prefill_replicas;
    const long per_request = std::max(1L, sm.seq_units(in, in + out, std::max(1, q.work.samples)));
    r.max_concurrency_kv = sm.kv_units() / per_request * decode_replicas;
  }
  r.ttft = latency_stats(std::move(ttft));
  r.tpot = latency_stats(std::move(tpot));
  r.e2e = latency_stats(std::move(e2e));
  const double span = std::max(sim.makespan_s, 1e-12);
  const int devices = l.tp * l.pp * l.replicas;
  r.output_tps = static_cast<double>(sim.output_tokens) / span;
  r.output_tps_per_device = r.output_tps / devices;
  r.input_tps = static_cast<double>(sim.input_tokens) / span;
  r.requests_per_s = static_cast<double>(r.requests) / span;
  r.goodput_rps = static_cast<double>(good) / span;
  // A dropped request (its context can never fit the KV cache) was not served within any SLO.
  r.goodput_fraction = r.requests + r.dropped > 0 ? static_cast<double>(good) / static_cast<double>(r.requests + r.dropped) : 0.0;
  r.prefill_share = sim.prefill_share;
  r.slo_met = (q.slo_ttft_s <= 0 || r.ttft.p99 <= q.slo_ttft_s) && (q.slo_tpot_s <= 0 || r.tpot.p99 <= q.slo_tpot_s) &&
              (r.dropped == 0 || (q.slo_ttft_s <= 0 && q.slo_tpot_s <= 0));

  if (const PriceOffer* p = s.price("on-demand")) {
    ServeCost& c = r.cost;
    c.priced = true;
    c.file = p->file;
    c.provider = p->provider;
    c.instance = p->instance;
    // A --price quote is dated only where a command judges staleness (--as-of); here it has no date,
    // so the report does not change from one day to the next.
    c.as_of = p->file == "--price" ? std::string() : p->as_of;
    c.usd_per_device_hour = p->usd_per_device_hour();
    c.usd_total = c.usd_per_device_hour * devices * span / 3600.0;
    if (sim.output_tokens > 0) {
      c.usd_per_m_output = c.usd_total * (1 - sim.prefill_share) / static_cast<double>(sim.output_tokens) * 1e6;
      c.usd_per_m_output_all_in = c.usd_total / static_cast<double>(sim.output_tokens) * 1e6;
    }
    if (sim.input_tokens > 0) c.usd_per_m_input = c.usd_total * sim.prefill_share / static_cast<double>(sim.input_tokens) * 1e6;
    // Per completed task: a task cut short by a dropped call is not a task served.
    if (sim.tasks_completed > 0) c.usd_per_task = c.usd_total / sim.tasks_completed;
  }

  // Explanation: memory, then one representative step (the mean iteration of the run).
  r.explain = sm.explain_memory();
  const double it = std::max<double>(1, static_cast<double>(sim.iterations));
  const int W = std::max(1, q.work.samples);
  const int nb = mean_decode_rows(q, o, sim.decode_rows, sim.output_tokens, it);
  const int np = static_cast<int>(std::lround(static_cast<double>(sim.prefill_tokens) / it));
  const double mean_in = static_cast<double>(sim.input_tokens) / static_cast<double>(r.requests);
  const double mean_out = static_cast<double>(sim.output_tokens) / static_cast<double>(r.requests) / (q.work.beam ? 1 : W);
  const double ctx = mean_in + mean_out / 2;
  const bool disagg = o.prefill_replicas > 0;  // each pool's mean step instead (explain_pools)
  if (!disagg)
    r.explain.push_back({"mean step: decode sequences", std::to_string(nb),
                         W > 1 ? (q.work.beam ? "simulated: output tokens / iterations x beams per request"
                                              : "simulated: output tokens / iterations (every sample decodes)")
                         : o.spec.on() ? "simulated: decode sequences summed over iterations / iterations"
                                       : "simulated: output tokens / iterations"});
  if (o.spec.on()) {
    r.explain.push_back({"speculative decoding", speculation_summary(o.spec),
                         "--speculative METHOD:K, --acceptance A: a step verifies K drafted tokens + 1 per sequence and returns "
                         "(1 - A^(K+1)) / (1 - A) of them on average (Leviathan et al. 2023); in the simulator every "
                         "step gains each sequence floor(E) or floor(E) + 1 tokens, averaging E"});
  }
  if (W > 1)
    r.explain.push_back({q.work.beam ? "beams per request" : "samples per request", std::to_string(W),
                         (q.work.beam ? std::string("--beam-width (or run fact beam_width)") : std::string("--samples (or run fact samples)")) +
                             ": the prompt is prefilled once and its KV blocks shared; each sequence decodes with blocks of its own"});
  if (!disagg) r.explain.push_back({"mean step: prefill tokens", std::to_string(np), "simulated: prefill tokens / iterations"});
  if (o.compiled_batch > 0)
    r.explain.push_back({"compiled decode batch (static shape)", std::to_string(o.compiled_batch),
                         "run fact compiled_batch: every decode pass computes this many slots, idle ones padded"});
  if (o.prefill_pad > 0)
    r.explain.push_back({"prefill graph length (static shape)", std::to_string(o.prefill_pad) + " tokens",
                         "run fact prefill_pad: each prompt's prefill is computed padded up to a multiple of this"});
  {
    r.explain.push_back({"KV admission",
                         o.reserve_output ? "guaranteed (whole output reserved; no preemption)"
                                          : "optimistic (prompt only; preempt and recompute when full)",
                         q.reserve_output ? std::string("--kv-admission (or run fact kv_admission)") : s.serving.where() + ": " + s.serving.cite("engine.kv_admission", s.serving.reserve_output ? "guaranteed" : "optimistic")});
    r.explain.push_back({"scheduler",
                         o.prefill_first ? "prefill-first (waiting prompts run whole, decodes paused meanwhile; a prompt over the token budget in budget-sized pieces)"
                                         : "chunked (decodes first, prompts chunked into the rest of the token budget)",
                         q.prefill_first ? std::string("--scheduler (or run fact scheduler)") : s.serving.where() + ": " + s.serving.cite("engine.scheduler", s.serving.prefill_first ? "prefill-first" : "chunked")});
    if (q.full_attention)
      r.explain.push_back({"attention", "full on every layer (the model's local attention not applied by the engine)",
                           "--full-attention (or run fact attention_window = full)"});
    if (o.prefill_kv_free > 0)
      r.explain.push_back({"prompt admission gate",
                           format_number("%.3g", o.prefill_kv_free * 100) +
                               "% of KV blocks free (prompts admitted only in an iteration that starts with more free)",
                           "--prefill-kv-free (or run fact prefill_kv_free)"});
  }
  const double prompt_share = static_cast<double>(sim.prompt_iterations) / it;
  if (!disagg)
    r.explain.push_back({"mean step: iterations with prompt tokens", format_number("%.3g", prompt_share),
                         "simulated: iterations computing prompt tokens / iterations"});
  // The mean step's prompt tokens at a prompt's mean pairs per token (windowed or chunked layers:
  // their own, as the simulator charges them).
  const double window_pairs = m.sliding_window > 0 && mean_in > 0 ? np * m.local_pairs(0, mean_in) / mean_in : -1;
  // The mean step drafts as the simulator does at that batch (fewer when K + 1 rows a sequence
  // exceed the token budget).
  const int k_mean = o.spec.on() ? o.spec.draft_tokens_within(o.token_budget, static_cast<long>(nb) * W) : -1;
  if (o.spec.on() && k_mean < o.spec.draft_tokens)
    r.explain.push_back({"drafted tokens at the mean step", std::to_string(k_mean) + " of " + std::to_string(o.spec.draft_tokens),
                         "token budget / decode sequences - 1: a step drafts fewer when K + 1 rows a sequence exceed the budget"});
  if (disagg) {
    explain_pools(r, sm, s, sim, q, o, mean_in, ctx);
  } else {
    for (auto& t : sm.explain_step(nb + np, nb, nb * ctx, np * mean_in / 2, nb, prompt_share, window_pairs, k_mean)) r.explain.push_back(t);
    r.explain.push_back({"simulated mean iteration", format_number("%.3f ms", sim.busy_s / it * 1e3),
                         "simulated: busy time / iterations (the step above is the mean step's shape, timed as one)"});
  }
  if (r.cost.priced)
    r.explain.push_back({"price per device-hour", std::to_string(r.cost.usd_per_device_hour).substr(0, 6) + " USD",
                         r.cost.file + ": offer on-demand " + offer_label(r.cost.provider, r.cost.instance) +
                             (r.cost.as_of.empty() ? std::string() : " as_of " + r.cost.as_of)});
  return r;
}

Speculation parse_speculation(const std::string& text, std::optional<double> acceptance, const Model& m) {
  Speculation sp;
  if (text.empty()) {
    if (acceptance) throw InputError("--acceptance", "needs --speculative (the draft it applies to)");
    return sp;
  }
  const auto colon = text.find(':');
  const auto d = parse_draft_method(text.substr(0, colon));
  const std::string ks = colon == std::string::npos ? std::string() : text.substr(colon + 1);
  int k = 0;
  const auto [end, ec] = std::from_chars(ks.data(), ks.data() + ks.size(), k);
  if (!d || ks.empty() || ec != std::errc() || end != ks.data() + ks.size() || k < 1 || k > kMaxDraftTokens)
    throw InputError("--speculative", "'" + text + "' is not METHOD:K with METHOD ngram, mtp or eagle and K drafted tokens from 1 to " +
                                          std::to_string(kMaxDraftTokens));
  if (!acceptance) throw InputError("--acceptance", "required with --speculative: the share of drafted tokens accepted (0 to 1]");
  if (!(*acceptance > 0 && *acceptance <= 1))
    throw InputError("--acceptance", "must be above 0 and at most 1 (the probability that a drafted token is accepted)");
  if (*d == DraftMethod::mtp && m.mtp_layers < 1)
    throw InputError("--speculative", "mtp needs the model's multi-token-prediction modules; " + m.id + " has none (mtp_layers 0 in " + m.file + ")");
  sp.method = *d;
  sp.draft_tokens = k;
  sp.acceptance = *acceptance;
  return sp;
}

std::string context_window_text(const Model& m) {
  return m.name + "'s context window of " + std::to_string(m.max_seq_len) + " (" +
         (m.context_key.empty() ? std::string("max_seq_len") : m.context_key) + ", " + m.file + ")";
}

std::optional<ContextExcess> context_window_excess(const Model& m, const ServeWorkload& w) {
  if (m.max_seq_len <= 0) return std::nullopt;
  const long limit = m.max_seq_len;
  auto tail = [&](long tokens) { return std::to_string(tokens) + " tokens, beyond " + context_window_text(m); };
  switch (w.kind) {
    // A file's request or call is named by its line (path:line: columns), as its parse errors are.
    case WorkloadKind::trace:
      for (std::size_t i = 0; i < w.trace.size(); ++i) {
        const TraceRequest& r = w.trace[i];
        const long tokens = static_cast<long>(r.input) + r.output;
        if (tokens <= limit) continue;
        if (!w.source.empty() && r.line > 0)
          return ContextExcess{w.source + ":" + std::to_string(r.line) + ": input_tokens + output_tokens",
                               "the request needs " + tail(tokens)};
        return ContextExcess{"--trace", "request " + std::to_string(i + 1) + " needs prompt + output = " + tail(tokens)};
      }
      return std::nullopt;
    case WorkloadKind::agent:
      for (std::size_t i = 0; i < w.tasks.size(); ++i) {
        long context = 0;
        for (const auto& c : w.tasks[i].calls) {
          context += static_cast<long>(c.new_input) + c.output;
          if (context <= limit) continue;
          const std::string task = w.tasks[i].id.empty() ? std::to_string(i + 1) : "'" + w.tasks[i].id + "'";
          const std::string what = "the context of task " + task + " grows to " + tail(context);
          if (!w.source.empty() && c.line > 0)
            return ContextExcess{w.source + ":" + std::to_string(c.line) + ": new_input_tokens + output_tokens", what};
          return ContextExcess{"--agent", what};
        }
      }
      return std::nullopt;
    default: {
      // The longest request drawn: a spread reaches mean + width (uniform) or is clamped at
      // 2 mean - 1 (normal; draw_length in sim.cpp).
      auto longest = [](int mean, const LengthSpread& sp) -> long {
        if (!sp.set()) return mean;
        const long top = 2L * mean - 1;
        return sp.kind == SpreadKind::uniform ? std::min(top, mean + std::lround(sp.width)) : std::max<long>(mean, top);
      };
      const long in = longest(w.input_len, w.input_spread), out = longest(w.output_len, w.output_spread);
      if (in + out <= limit) return std::nullopt;
      return ContextExcess{w.input_spread.set() || w.output_spread.set() ? "--input-len/--output-len/--*-spread" : "--input-len/--output-len",
                           (in + out != static_cast<long>(w.input_len) + w.output_len ? "the longest request drawn, prompt + output = "
                                                                                     : "prompt + output = ") +
                               tail(in + out)};
    }
  }
}

void check_context_window(const Model& m, const ServeWorkload& w) {
  if (const auto e = context_window_excess(m, w)) throw InputError(e->where, e->what);
}

ServeReport choose_serve(const Model& m, const System& s, const ServeRequest& q) {
  ServeSearchOptions o;
  o.vary_batch = false;
  o.vary_disagg = false;
  o.vary_ep = false;
  o.vary_pp = false;
  o.top = 1;
  ServeSearchResult res = serve_search(m, s, q, o);
  ServeReport r = res.top.front();
  r.layouts_considered = res.considered;
  return r;
}

}  // namespace xpu
