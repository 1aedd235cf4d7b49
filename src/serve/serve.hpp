// `serve`: one serving deployment (model, system, devices, layout, workload) simulated and
// summarised: latency percentiles, throughput, goodput within SLOs, KV use and cost per token.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "serve/sim.hpp"
#include "serve/step.hpp"
#include "serve/workload.hpp"

namespace xpu {

// What the user asked for. Knobs left empty are chosen (see choose_serve).
struct ServeRequest {
  int devices = 1;
  std::optional<int> tp, pp, ep, replicas, max_batch, token_budget, prefill_replicas;
  // Static-shape engines (Neuron) compile the decode graph for a fixed batch: every decode pass
  // computes this many slots, idle ones padded. Empty: the pass computes the running sequences.
  std::optional<int> compiled_batch;
  // Static-shape prefill: each prompt is computed padded up to a multiple of this many tokens
  // (Neuron's context-encoding graph length, or its prefill chunk size). Empty: no padding.
  std::optional<int> prefill_pad;
  // KV admission: true reserves each request's whole output at admission (no preemption), false
  // admits on the prompt and preempts when the cache runs out. Empty: the engine's own
  // (data/serving engine.kv_admission).
  std::optional<bool> reserve_output;
  // Scheduler: true runs waiting prompts whole before any decode (prefill-first), false decodes
  // first and chunks prompts into the rest of the budget. Empty: data/serving engine.scheduler.
  std::optional<bool> prefill_first;
  // Admission gate: waiting prompts are admitted only in an iteration that starts with more than
  // this share of the KV blocks free (SimOptions::prefill_kv_free). Empty: no gate.
  std::optional<double> prefill_kv_free;
  std::optional<Quant> weights, kv;
  // Speculative decoding (step.hpp Speculation): off unless asked (--speculative, --acceptance).
  Speculation spec;
  // The engine attends over the whole context on every layer, whatever the model's sliding window
  // or chunked local attention: the caller serves Model::with_full_attention() (serving_model)
  // and the flag is reported. False: the model's local layers as it defines them.
  bool full_attention = false;
  ServeWorkload work;
  double slo_ttft_s = 0, slo_tpot_s = 0;  // 0: no SLO
};

struct LatencyStats {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;  // seconds
  long count = 0;                               // values behind them (TPOT: requests of 2+ output tokens)
};

// Mean and nearest-rank percentiles (the smallest value with at least p% of the values at or
// below it) of a sample; all zero when it is empty.
LatencyStats latency_stats(std::vector<double> v);

struct ServeCost {
  bool priced = false;
  std::string file, provider, instance, as_of;  // the price row used (on-demand)
  double usd_per_device_hour = 0;
  double usd_total = 0;                 // devices x makespan x price
  double usd_per_m_output = 0;          // decode share of the cost per million output tokens
  double usd_per_m_input = 0;           // prefill share of the cost per million input tokens
  double usd_per_m_output_all_in = 0;   // whole cost per million output tokens
  double usd_per_task = 0;              // agent workloads: whole cost per task
};

struct ServeReport {
  bool feasible = false;
  std::string reason;  // why not, when !feasible
  ServeLayout layout;
  SimOptions options;  // the engine settings simulated: batch cap, token budget, disaggregation, static
                       // shapes, KV admission (SimOptions; chosen or from ServeRequest)
  bool full_attention = false;  // ServeRequest::full_attention
  WorkloadShape work;           // the workload simulated (its settings)
  std::string workload_detail;  // workload_summary of it: rate or concurrency, requests, lengths, spreads
  long requests = 0, tasks = 0, tasks_completed = 0, input_tokens = 0, output_tokens = 0, prefill_tokens = 0;
  int dropped = 0;
  LatencyStats ttft, tpot, e2e;
  double makespan_s = 0;
  double output_tps = 0, output_tps_per_device = 0, input_tps = 0, requests_per_s = 0;
  double goodput_rps = 0, goodput_fraction = 0;  // requests meeting every SLO given
  bool slo_met = true;                           // p99 TTFT and p99 TPOT within the SLOs given
  double kv_util_mean = 0, kv_util_peak = 0;
  long kv_capacity_tokens = 0, preemptions = 0, iterations = 0;
  long max_concurrency_kv = 0;  // requests of the mean length whose KV fits at once, all decode replicas
  double kv_transfer_mean_s = 0;
  double prefill_share = 0;  // share of busy time spent on prefill tokens (splits cost into input and output)
  double weight_bytes_per_device = 0, kv_bytes_per_token = 0;
  ServeCost cost;
  std::vector<ServeTerm> explain;  // memory terms, then one step at the mean decode batch
  int layouts_considered = 0;      // > 0 when knobs were chosen
};

// Speculative decoding from the command line: `text` METHOD:K (--speculative) and the acceptance
// (--acceptance); empty text gives none. Throws InputError naming the flag for a bad method or K,
// a missing or out-of-range acceptance, an acceptance without a draft, or MTP on a model without
// multi-token-prediction modules.
Speculation parse_speculation(const std::string& text, std::optional<double> acceptance, const Model& m);

// The model a request serves: m, or m with full attention on every layer (ServeRequest::full_attention).
inline Model serving_model(const Model& m, const ServeRequest& q) { return q.full_attention ? m.with_full_attention() : m; }

// "tp4 pp1 ep1 x2 fp8/kv-fp8 batch<=256 budget 8192" (+ " disagg 1P:1D", " full-attention").
// replicas > 0: shown instead of the report's (compare --serve: the replicas the traffic needs).
std::string serve_layout_summary(const ServeReport& r, int replicas = 0);

// Simulates one fully specified deployment (layout and options given).
ServeReport evaluate_serve(const Model& m, const System& s, const ServeRequest& q, const ServeLayout& l,
                           const SimOptions& o);

// Fills the free knobs by trying candidates (tp over divisors of the devices, replicas, batch
// cap; never disaggregation unless asked) and keeps the best within the SLOs: most output
// tokens/s per device. Throws InputError for explicit knobs that cannot work (naming the flag).
ServeReport choose_serve(const Model& m, const System& s, const ServeRequest& q);

// A request longer than the model's context window (Model::max_seq_len, when known) cannot be
// served: an engine refuses a prompt + max_tokens beyond its max_model_len. Throws InputError
// naming the flag (or the trace's request, the agent's task) when one of the workload's requests,
// or an agent task's grown context, exceeds it. `serve` and `compare --serve` check; `validate`
// does not (its rows describe runs that happened).
void check_context_window(const Model& m, const ServeWorkload& w);
// The same check without throwing, for callers that name their own input (a contract file's
// field): where (the flag) and what (the problem), or nothing when every request fits.
struct ContextExcess {
  std::string where, what;
};
std::optional<ContextExcess> context_window_excess(const Model& m, const ServeWorkload& w);
// "NAME's context window of N (KEY, FILE)": the limit the context errors cite.
std::string context_window_text(const Model& m);

}  // namespace xpu
