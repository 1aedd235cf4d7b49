#include <charconv>
#include <memory>

#include "cli/commands.hpp"
#include "load/csv.hpp"
#include "report/serve_format.hpp"
#include "serve/search.hpp"
#include "serve/serve.hpp"
#include "spec/error.hpp"

namespace xpu::cli {

namespace {
struct ServeOpts {
  std::string model, system, weights, kv, trace, agent, out, objective = "throughput";
  std::string input_spread, output_spread, batcher;
  int devices = 0, input_len = 0, output_len = 0, requests = 1000, top = 5;
  std::optional<int> tp, pp, ep, replicas, concurrency, max_batch, token_budget, prefill_replicas, compiled_batch, prefill_pad;
  bool requests_given = false, lengths_given = false, seed_given = false;
  std::optional<int> samples, beam_width;
  std::string kv_admission, scheduler, speculative;
  std::optional<double> rate, prefill_kv_free, acceptance;
  double slo_ttft_ms = 0, slo_tpot_ms = 0;
  long long seed = 1;
  bool offline = false, json = false, explain = false, search = false, no_prefix_cache = false, full_attention = false;
};

std::optional<Quant> quant_flag(const std::string& v, const char* flag) {
  if (v.empty()) return std::nullopt;
  auto q = parse_quant(v);
  if (!q) throw InputError(flag, "'" + v + "' is not bf16, fp16, fp8, int8, int4 or fp4");
  return q;
}

LengthSpread spread_flag(const std::string& v, const char* flag) {
  if (v.empty()) return {};
  auto sp = parse_spread(v);
  if (!sp) throw InputError(flag, "'" + v + "' is not " + kSpreadSyntax);
  return *sp;
}

ServeRequest build(const ServeOpts& o) {
  ServeRequest q;
  if (o.devices < 1) throw InputError("--devices", "must be at least 1, got " + std::to_string(o.devices));
  // One deployment is simulated replica by replica; a fleet beyond this is sized by compare --serve.
  if (o.devices > kMaxServeDevices)
    throw InputError("--devices", std::to_string(o.devices) + " is beyond the " + std::to_string(kMaxServeDevices) +
                                      " devices one simulated deployment may hold (compare --serve sizes a fleet)");
  q.devices = o.devices;
  require_at_least(o.tp, "--tp");
  require_at_least(o.pp, "--pp");
  require_at_least(o.ep, "--ep");
  require_at_least(o.replicas, "--replicas");
  require_at_least(o.max_batch, "--max-batch");
  require_at_least(o.token_budget, "--token-budget");
  require_at_least(o.prefill_replicas, "--prefill-replicas", 0);  // 0: not disaggregated (as --json reports a layout)
  require_at_least(o.compiled_batch, "--compiled-batch");
  require_at_least(o.prefill_pad, "--prefill-pad");
  q.compiled_batch = o.compiled_batch;
  q.full_attention = o.full_attention;
  q.prefill_pad = o.prefill_pad;
  q.tp = o.tp; q.pp = o.pp; q.ep = o.ep; q.replicas = o.replicas;
  q.max_batch = o.max_batch; q.token_budget = o.token_budget; q.prefill_replicas = o.prefill_replicas;
  if (!o.kv_admission.empty()) {
    q.reserve_output = parse_kv_admission(o.kv_admission);
    if (!q.reserve_output) throw InputError("--kv-admission", "'" + o.kv_admission + "' is not optimistic or guaranteed");
  }
  if (!o.scheduler.empty()) {
    q.prefill_first = parse_scheduler(o.scheduler);
    if (!q.prefill_first) throw InputError("--scheduler", "'" + o.scheduler + "' is not chunked or prefill-first");
  }
  if (o.prefill_kv_free) {
    if (!(*o.prefill_kv_free >= 0 && *o.prefill_kv_free < 1))
      throw InputError("--prefill-kv-free", "must be a share of the KV cache, at least 0 and below 1");
    q.prefill_kv_free = *o.prefill_kv_free;
  }
  // The draft itself is parsed against the model (parse_speculation, in the callback); here only
  // what needs no model.
  if (!o.speculative.empty() && (o.samples.value_or(1) > 1 || o.beam_width.value_or(1) > 1))
    throw InputError("--speculative", "applies to one sequence per request (not with --samples or --beam-width)");
  q.weights = quant_flag(o.weights, "--weight-precision");
  q.kv = quant_flag(o.kv, "--kv-precision");
  if (o.slo_ttft_ms < 0) throw InputError("--slo-ttft-ms", "must not be negative");
  if (o.slo_tpot_ms < 0) throw InputError("--slo-tpot-ms", "must not be negative");
  q.slo_ttft_s = o.slo_ttft_ms / 1e3;
  q.slo_tpot_s = o.slo_tpot_ms / 1e3;
  const int modes = (o.offline ? 1 : 0) + (o.rate ? 1 : 0) + (o.concurrency ? 1 : 0) + (!o.trace.empty() ? 1 : 0) +
                    (!o.agent.empty() ? 1 : 0);
  if (modes != 1) throw InputError("--offline/--rate/--concurrency/--trace/--agent", "give exactly one workload");
  ServeWorkload& w = q.work;
  if (o.seed < 0) throw InputError("--seed", "must be at least 0, got " + std::to_string(o.seed));
  w.seed = static_cast<std::uint64_t>(o.seed);
  w.prefix_cache = !o.no_prefix_cache;
  if (o.requests < 1) throw InputError("--requests", "must be at least 1, got " + std::to_string(o.requests));
  if (o.requests > kMaxServeRequests)
    throw InputError("--requests", std::to_string(o.requests) + " is beyond the " + std::to_string(kMaxServeRequests) +
                                       " requests one simulation runs");
  w.requests = o.requests;
  if (!o.trace.empty() || !o.agent.empty()) {
    // A trace or agent file gives every request and its lengths: these flags would go unused.
    const char* file_flag = !o.trace.empty() ? "--trace" : "--agent";
    if (o.seed_given) throw InputError("--seed", std::string("applies to --offline, --rate and --concurrency (") + file_flag + " gives the arrivals)");
    if (o.requests_given) throw InputError("--requests", std::string("applies to --offline, --rate and --concurrency (") + file_flag + " gives the requests)");
    if (o.lengths_given)
      throw InputError("--input-len/--output-len", std::string("apply to --offline, --rate and --concurrency (") + file_flag + " gives each request's lengths)");
  }
  if (o.offline || o.rate || o.concurrency) {
    if (o.input_len < 1) throw InputError("--input-len", "required (at least 1) with --offline, --rate or --concurrency");
    if (o.output_len < 1) throw InputError("--output-len", "required (at least 1) with --offline, --rate or --concurrency");
    w.input_len = o.input_len;
    w.output_len = o.output_len;
    w.input_spread = spread_flag(o.input_spread, "--input-spread");
    w.output_spread = spread_flag(o.output_spread, "--output-spread");
  } else if (!o.input_spread.empty() || !o.output_spread.empty()) {
    throw InputError(!o.input_spread.empty() ? "--input-spread" : "--output-spread",
                     "applies to --offline, --rate and --concurrency (a trace or agent file gives each request's lengths)");
  }
  if (!o.batcher.empty()) {
    if (o.concurrency || !o.agent.empty())
      throw InputError("--batcher", "applies to --offline, --rate and --trace (closed-loop and agent calls reach the engine one by one)");
    auto b = parse_batcher(o.batcher);
    if (!b) throw InputError("--batcher", "'" + o.batcher + "' is not SECONDS or SECONDS:MAX (e.g. 0.3:96)");
    w.batcher = *b;
  }
  if (o.samples.value_or(1) > 1 && o.beam_width.value_or(1) > 1)
    throw InputError("--samples/--beam-width", "give one: parallel samples are all returned, beams return one sequence");
  require_at_least(o.samples, "--samples");
  require_at_least(o.beam_width, "--beam-width");
  if (o.samples) w.samples = *o.samples;
  if (o.beam_width && (*o.beam_width > 1 || !o.samples)) {
    w.samples = *o.beam_width;
    w.beam = true;
  }
  if (o.offline) w.kind = WorkloadKind::offline;
  if (o.rate) {
    if (!(*o.rate > 0)) throw InputError("--rate", "must be positive (requests per second)");
    // Arrivals past 1e10 s swallow the step times in the clock's precision (as a trace's are refused).
    if (o.requests / *o.rate > 1e10)
      throw InputError("--rate", "too low: " + std::to_string(o.requests) + " requests at this rate arrive over more than 1e10 s");
    w.kind = WorkloadKind::poisson;
    w.rate = *o.rate;
  }
  if (o.concurrency) {
    require_at_least(o.concurrency, "--concurrency");
    w.kind = WorkloadKind::concurrency;
    w.concurrency = *o.concurrency;
  }
  if (!o.trace.empty()) {
    w.kind = WorkloadKind::trace;
    w.trace = parse_trace(parse_csv(read_file(o.trace)));
    w.source = o.trace;
  }
  if (!o.agent.empty()) {
    w.kind = WorkloadKind::agent;
    w.tasks = parse_agent(parse_csv(read_file(o.agent)));
    w.source = o.agent;
  }
  return q;
}
}  // namespace

void add_serve(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<ServeOpts>();
  CLI::App* c = app.add_subcommand(
      "serve", "Simulate inference serving: TTFT, TPOT, throughput, goodput, KV use, cost per million tokens");
  c->add_option("--model", o->model, "Catalog model id, or a path to a Hugging Face config.json or model TOML")->required();
  c->add_option("--system", o->system, "Catalog system id, or a path to a system TOML")->required();
  c->add_option("--devices", o->devices, "Devices of the deployment (tp x pp x replicas)")->required();
  c->add_option("--tp", o->tp, "Tensor-parallel degree per replica (chosen if omitted)");
  c->add_option("--pp", o->pp, "Pipeline stages per replica (default 1; --search tries 2, 4, ... when no layout with fewer fits)");
  c->add_option("--ep", o->ep, "Expert-parallel degree inside the tensor-parallel group, MoE only (default 1; --search tries each divisor of tp that divides the experts)");
  c->add_option("--replicas", o->replicas, "Model replicas (devices / (tp x pp) if omitted)");
  c->add_option("--input-len", o->input_len, "Prompt tokens per request (--offline, --rate, --concurrency)")
      ->each([o](const std::string&) { o->lengths_given = true; });
  c->add_option("--output-len", o->output_len, "Generated tokens per request (--offline, --rate, --concurrency)")
      ->each([o](const std::string&) { o->lengths_given = true; });
  c->add_option("--input-spread", o->input_spread,
                "Prompt lengths around --input-len: uniform:W (uniform in +-W tokens, as guidellm's prompt_tokens_variance or "
                "vLLM's --random-range-ratio), normal:SD (standard deviation, as aiperf's --synthetic-input-tokens-stddev); "
                "clamped to [1, 2 x mean - 1] (default: every prompt --input-len)");
  c->add_option("--output-spread", o->output_spread,
                "Output lengths around --output-len, as --input-spread (default: every output --output-len)");
  c->add_option("--samples", o->samples,
                "Sequences decoded per request from one prompt, all returned (parallel sampling: vLLM's n, RL rollouts' completions "
                "per prompt): the prompt is prefilled once and its KV blocks shared, each sample decodes with blocks of its own "
                "(default 1)");
  c->add_option("--beam-width", o->beam_width,
                "Beam search: beams decoded per request, one returned (TensorRT-LLM's beam width; MLPerf GPT-J runs 4); costs as "
                "--samples, counts one output sequence, and the engine's batch cap counts requests (default 1: no beam search)");
  c->add_option("--batcher", o->batcher,
                "Front-end batcher, SECONDS[:MAX]: arrivals are held and released together once SECONDS have passed since the "
                "previous release (or when MAX are pending), each batch to one replica in turn, as a benchmark harness's "
                "batcher does; TTFT counts the wait (--offline, --rate, --trace) (default: none)");
  c->add_flag("--offline", o->offline, "Workload: all requests queued at time 0");
  c->add_option("--rate", o->rate, "Workload: Poisson arrivals at this many requests per second");
  c->add_option("--concurrency", o->concurrency, "Workload: this many requests in flight at all times");
  c->add_option("--trace", o->trace, "Workload: CSV of requests (arrival_s,input_tokens,output_tokens)");
  CLI::Option* agent_opt = c->add_option("--agent", o->agent,
                "Workload: CSV of agent tasks (task,arrival_s,new_input_tokens,output_tokens,tool_s); each call's "
                "prompt is the task's context so far");
  c->add_option("--requests", o->requests, "Requests to simulate for --offline, --rate, --concurrency (default 1000); with --search --offline, at least "
                "this many: each layout simulates at least 2 x the requests its replicas run at once (largest batch cap tried, or "
                "the prompts the KV cache holds; the same count for every cap and split of it), so the peak is not start-up and drain")
      ->each([o](const std::string&) { o->requests_given = true; });
  c->add_option("--seed", o->seed, "Seed of the Poisson arrivals and length spreads, 0 to 2^63-1 (default 1)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            unsigned long long x = 0;
            const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
            if (ec == std::errc::result_out_of_range || (ec == std::errc() && x > 9223372036854775807ULL))
              return "must be at most 2^63-1, got " + v;  // CLI11 would clamp it silently
            return {};
          },
          ""))
      ->each([o](const std::string&) { o->seed_given = true; });
  c->add_flag("--no-prefix-cache", o->no_prefix_cache, "Agent workloads: prefill every call's whole context (needs --agent)")
      ->needs(agent_opt);
  c->add_option("--weight-precision", o->weights, "Weights: bf16 fp16 fp8 int8 int4 fp4 (default bf16)");
  c->add_option("--kv-precision", o->kv, "KV cache: bf16 fp16 fp8 int8 int4 fp4 (default fp8 with fp8/fp4 weights, else bf16)");
  c->add_option("--max-batch", o->max_batch, "Sequences per iteration (default: data/serving engine.max_batch)");
  c->add_option("--compiled-batch", o->compiled_batch,
                "Static-shape engines (Neuron): the decode graph's compiled batch; every decode pass computes this many slots, idle "
                "ones padded, and the batch cap is at most this (--max-batch may not exceed it) (default: the running sequences)");
  c->add_option("--prefill-pad", o->prefill_pad,
                "Static-shape prefill: each prompt computed padded up to a multiple of this many tokens (Neuron's context-encoding "
                "graph or prefill chunk) (default: no padding)");
  c->add_option("--kv-admission", o->kv_admission,
                "KV-cache admission: guaranteed (a request waits until blocks for its whole output are free: no preemption; "
                "TensorRT-LLM's default) or optimistic (admitted on its prompt, preempted and recomputed when the cache runs "
                "out; vLLM) (default: data/serving engine.kv_admission)");
  c->add_option("--scheduler", o->scheduler,
                "Iteration scheduler: chunked (decode every running sequence, chunk prompts into the rest of the token budget: "
                "vLLM V1, TensorRT-LLM, SGLang) or prefill-first (waiting prompts run whole, decodes paused: vLLM V0 without "
                "chunked prefill; a prompt longer than the token budget still runs in budget-sized pieces, an iteration each) "
                "(default: data/serving engine.scheduler)");
  c->add_option("--prefill-kv-free", o->prefill_kv_free,
                "Prompt admission gate, a share 0-1: waiting prompts are admitted only in an iteration that starts with more than "
                "this share of the KV blocks free (AMD's MLPerf vLLM fork, VLLM_SCHED_PREFILL_KVC_FREEPCT / 100) (default 0: "
                "admitted whenever their blocks fit)");
  c->add_option("--speculative", o->speculative,
                "Speculative decoding, METHOD:K: K drafted tokens per step verified by the model in one pass; METHOD ngram "
                "(prompt lookup on the host), mtp (the model's multi-token-prediction modules, e.g. DeepSeek-V3) or eagle "
                "(an EAGLE-3 draft layer); needs --acceptance (default: off)");
  c->add_option("--acceptance", o->acceptance,
                "With --speculative: probability that a drafted token is accepted given the ones before it were (a step "
                "returns (1 - A^(K+1)) / (1 - A) tokens; DeepSeek-V3 reports 0.85-0.9 for its MTP token)");
  c->add_flag("--full-attention", o->full_attention,
              "Serve every layer with full attention: an engine that does not apply the model's sliding window or chunked local attention (TensorRT-LLM unless max_attention_window is set)");
  c->add_option("--token-budget", o->token_budget, "Tokens per iteration, chunked prefill (default: data/serving engine.token_budget)");
  c->add_option("--prefill-replicas", o->prefill_replicas,
                "Disaggregated serving: replicas that only prefill; the rest decode, KV moved over the network (0: every replica does both, as a --json layout reports it; --search then tries no split)");
  c->add_option("--slo-ttft-ms", o->slo_ttft_ms, "Time-to-first-token SLO (p99 for --search, per request for goodput)")->check(kPositiveSlo);
  c->add_option("--slo-tpot-ms", o->slo_tpot_ms, "Time-per-output-token SLO (p99 for --search, per request for goodput)")->check(kPositiveSlo);
  CLI::Option* search_opt = c->add_flag("--search", o->search,
              "Search tp/replicas, batch cap, prefill/decode split, expert parallelism (MoE) and, when needed, pipeline stages for the best layout within the SLOs");
  c->add_option("--objective", o->objective, "With --search: throughput (output tokens/s per device) or cost (USD per M output tokens)")
      ->needs(search_opt);
  c->add_option("--top", o->top, "With --search: how many layouts to list (default 5)")->needs(search_opt);
  c->add_flag("--json", o->json, "Machine-readable report (docs/OUTPUT.md)");
  c->add_flag("--explain", o->explain, "Show every term with the data file and field it came from (not with --search)")
      ->excludes(search_opt);
  c->add_option("--out", o->out, "Write the report to this file (atomically) instead of stdout");
  c->callback([o, &g] {
    const Catalog cat = load_catalog(g);
    const Model model = resolve_model(cat, o->model);
    const System s = resolve_system(cat, o->system);
    ServeRequest q = build(*o);
    q.spec = parse_speculation(o->speculative, o->acceptance, model);
    if (q.full_attention && model.window_layer_count() == 0)
      throw InputError("--full-attention", model.id + " has no sliding-window or chunked layers: every layer attends to the whole context already");
    const Model m = serving_model(model, q);
    check_context_window(m, q.work);
    // A padded prefill graph is a compiled sequence length: it cannot pass the model's context.
    if (q.prefill_pad && m.max_seq_len > 0 && *q.prefill_pad > m.max_seq_len)
      throw InputError("--prefill-pad", std::to_string(*q.prefill_pad) + " tokens exceeds " + context_window_text(m));
    if (o->search) {
      ServeSearchOptions so;
      if (o->objective == "throughput") so.objective = ServeObjective::throughput;
      else if (o->objective == "cost") so.objective = ServeObjective::cost;
      else throw InputError("--objective", "'" + o->objective + "' is not throughput or cost");
      if (o->top < 1) throw InputError("--top", "must be at least 1, got " + std::to_string(o->top));
      so.top = o->top;
      if (q.work.kind == WorkloadKind::offline) so.peak_waves = kPeakWaves;
      const ServeSearchResult r = serve_search(m, s, q, so);
      write_output(o->out, o->json ? serve_search_json(m, s, r, so.objective).dump(2) + "\n"
                                   : serve_search_text(m, s, r, so.objective));
      return;
    }
    const ServeReport r = choose_serve(m, s, q);
    write_output(o->out, o->json ? serve_json(m, s, r, o->explain).dump(2) + "\n" : serve_text(m, s, r, o->explain));
  });
}

}  // namespace xpu::cli
