#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>

#include "serve/search.hpp"
#include "serve/serve.hpp"
#include "spec/error.hpp"
#include "validate/rows.hpp"
#include "validate/validate.hpp"
#include "util/parallel.hpp"

namespace xpu {

namespace {

// A row's mean prompt or output length in tokens: beyond any model's context window.
constexpr double kMaxRowTokens = 1e7;
// Requests a fixed_batch row keeps in flight: beyond any measured benchmark (10 per client are simulated).
constexpr long kMaxRowConcurrency = 1000000;

const char* kInferenceColumns[] = {
    "id", "source", "grade", "system", "devices", "model", "layers", "hidden", "heads", "kv_heads", "head_dim",
    "ffn_hidden", "vocab", "gated_mlp", "moe_experts", "moe_topk", "moe_ffn_hidden", "moe_shared_experts",
    "moe_dense_layers", "weight_precision", "kv_precision", "tp", "pp", "ep", "replicas", "scenario", "input_len",
    "output_len", "concurrency", "request_rate", "ttft_slo_ms", "tpot_slo_ms", "metric", "stat", "value", "notes"};

std::optional<double> opt_positive(const RowReader& r, const std::string& col) {
  if (r.str(col).empty()) return std::nullopt;
  return r.req_positive(col);
}

std::optional<Quant> opt_quant(const RowReader& r, const std::string& col) {
  const std::string v = r.str(col);
  if (v.empty()) return std::nullopt;
  auto q = parse_quant(v);
  if (!q) r.fail(col, "'" + v + "' is not bf16, fp16, fp8, int8, int4 or fp4");
  return q;
}

double pick(const LatencyStats& s, const std::string& stat) {
  if (stat == "p50") return s.p50;
  if (stat == "p90") return s.p90;
  if (stat == "p99") return s.p99;
  return s.mean;
}

// Requests simulated per scenario: enough for steady state, few enough for a fast validate.
int requests_for(const std::string& scenario, double rate, int concurrency, int replicas, int max_batch) {
  if (scenario == "single") return 4;
  if (scenario == "fixed_batch") return std::max(10 * concurrency, 64);
  if (scenario == "server") return static_cast<int>(std::clamp(rate * 200.0, 1000.0, 20000.0));
  return std::clamp(3 * max_batch * replicas, 1000, 30000);  // offline
}

// The simulation a row asks for is fixed by its cells other than id, source, grade, metric, stat,
// value and notes, and by its run facts: rows of one run (TTFT, TPOT and throughput at several
// statistics) share one simulation.
std::string simulation_key(const CsvTable& t, std::size_t i, const std::vector<RunFact>& facts) {
  static const std::set<std::string> kNotInputs = {"id", "source", "grade", "metric", "stat", "value", "notes"};
  std::string key;
  for (std::size_t c = 0; c < t.header.size(); ++c) {
    if (kNotInputs.count(t.header[c])) continue;
    key += t.header[c] + "=" + (c < t.rows[i].size() ? t.rows[i][c] : std::string()) + "\x1f";
  }
  char b[64];
  for (const RunFact& f : facts) {
    std::snprintf(b, sizeof b, "%.17g", f.value);
    key += "fact:" + f.field + "=" + b + "/" + f.text + "\x1f";
  }
  return key;
}

// One distinct simulation of a validate call, run on a worker thread.
struct SimJob {
  Model model;
  const System* system = nullptr;
  ServeRequest request;
  ServeReport report;
  std::string error, error_where;  // choose_serve rejected the layout (InputError: what, where)
  std::exception_ptr failure;    // anything else, rethrown on the calling thread
};

void run_jobs(std::vector<SimJob>& jobs) {
  auto run = [](SimJob& j) {
    try {
      j.report = choose_serve(j.model, *j.system, j.request);
    } catch (const InputError& e) {
      j.error = e.what();
      j.error_where = e.where();
    } catch (...) {
      j.failure = std::current_exception();
    }
  };
  // Results land in each job's own slot, so the outcome does not depend on scheduling.
  parallel_for(jobs.size(), all_cores(), [&](std::size_t k) { run(jobs[k]); });
  for (const auto& j : jobs)
    if (j.failure) std::rethrow_exception(j.failure);
}

}  // namespace

bool is_inference_table(const CsvTable& t) {
  return t.column("scenario") >= 0 && t.column("output_len") >= 0 && t.column("metric") >= 0 && t.column("stat") >= 0;
}

ValidationResult validate_inference(const CsvTable& t, const Catalog& c, const std::set<std::string>* only,
                                    const RunFacts* facts) {
  check_header(t, kInferenceColumns, "inference");
  check_unique_ids(t);
  if (facts) check_fact_ids(t, *facts);
  ValidationResult out;
  out.path = t.path;
  // Rows are read in order (the first bad cell stops the run); the distinct simulations they ask
  // for run afterwards, in parallel, and each row takes its figure from its run's report.
  std::vector<SimJob> jobs;
  std::map<std::string, std::size_t> job_of;
  std::vector<std::pair<std::size_t, std::size_t>> pending;  // (row, job)
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    RowReader r(t, i);
    ValidationRow row;
    if (!read_row_head(r, t.row_lines[i], only, row)) continue;
    if (row.metric != "output_tokens_per_s" && row.metric != "ttft_ms" && row.metric != "tpot_ms")
      r.fail("metric", "'" + row.metric + "' is not output_tokens_per_s, ttft_ms or tpot_ms");
    row.stat = r.str("stat");
    if (row.stat != "mean" && row.stat != "p50" && row.stat != "p90" && row.stat != "p99")
      r.fail("stat", "'" + row.stat + "' is not mean, p50, p90 or p99");
    row.measured = r.req_positive("value");
    const std::string scenario = r.str("scenario");
    if (scenario != "offline" && scenario != "server" && scenario != "fixed_batch" && scenario != "single")
      r.fail("scenario", "'" + scenario + "' is not offline, server, fixed_batch or single");

    ServeRequest q;
    q.devices = static_cast<int>(r.req_int("devices"));
    auto narrow = [](std::optional<long> v) { return v ? std::optional<int>(static_cast<int>(*v)) : std::nullopt; };
    q.tp = narrow(r.opt_int("tp"));
    q.pp = narrow(r.opt_int("pp"));
    q.ep = narrow(r.opt_int("ep"));
    q.replicas = narrow(r.opt_int("replicas"));
    q.weights = opt_quant(r, "weight_precision");
    q.kv = opt_quant(r, "kv_precision");
    auto in = opt_positive(r, "input_len"), outl = opt_positive(r, "output_len");
    std::optional<int> requests;
    LengthSpread in_spread, out_spread;
    FrontBatcher batcher;
    std::optional<int> samples;
    bool beam = false;
    if (facts) {
      auto it = facts->find(row.id);
      if (it != facts->end()) {
        for (const RunFact& f : it->second) {
          const std::string where = f.file + ":" + std::to_string(f.line) + ": field";
          if (f.field == "max_batch") q.max_batch = static_cast<int>(f.value);
          else if (f.field == "token_budget") q.token_budget = static_cast<int>(f.value);
          else if (f.field == "compiled_batch") q.compiled_batch = static_cast<int>(f.value);
          else if (f.field == "prefill_pad") q.prefill_pad = static_cast<int>(f.value);
          else if (f.field == "requests") {
            if (scenario != "offline" && scenario != "fixed_batch" && scenario != "server")
              throw InputError(where, "requests: applies to offline, fixed_batch and server rows only (a benchmark's prompt count), and row " +
                                          row.id + " is " + scenario);
            if (f.value > kMaxServeRequests)
              throw InputError(where, "requests: " + format_number("%g", f.value) + " is beyond the " +
                                          std::to_string(kMaxServeRequests) + " requests one simulation holds");
            requests = static_cast<int>(f.value);
          }
          else if (f.field == "input_spread") in_spread = *parse_spread(f.text);
          else if (f.field == "output_spread") out_spread = *parse_spread(f.text);
          else if (f.field == "scheduler") q.prefill_first = parse_scheduler(f.text);
          else if (f.field == "kv_admission") q.reserve_output = parse_kv_admission(f.text);
          else if (f.field == "prefill_kv_free") q.prefill_kv_free = f.value;
          else if (f.field == "attention_window") q.full_attention = f.text == "full";
          else if (f.field == "samples" || f.field == "beam_width") {
            if (samples)
              throw InputError(where, "row " + row.id + " gives both samples and beam_width (parallel samples or beams, not both)");
            samples = static_cast<int>(f.value);
            beam = f.field == "beam_width";
          }
          else if (f.field == "batcher") {
            if (scenario != "server" && scenario != "offline")
              throw InputError(where, "batcher: applies to server and offline rows only (open-loop arrivals), and row " + row.id +
                                          " is " + scenario);
            batcher = *parse_batcher(f.text);
          }
          else if (f.field == "input_len" || f.field == "output_len") {
            auto& cell = f.field == "input_len" ? in : outl;
            if (cell)
              throw InputError(where, "row " + row.id + " states " + f.field + " already (a fact never overrides a measured row's cell)");
            cell = f.value;
          }
          row.facts.push_back(f);
        }
      }
    }
    const auto rate = opt_positive(r, "request_rate");
    const auto conc = r.opt_int("concurrency");
    // A cell the scenario does not read is a mistake, not a detail: it was ignored.
    if (rate && scenario != "server") r.fail("request_rate", "scenario " + scenario + " has no arrival rate (only server rows have one)");
    if (conc && (scenario == "offline" || scenario == "server"))
      r.fail("concurrency", "scenario " + scenario + " keeps no fixed number of requests in flight (fixed_batch rows do)");
    if (conc && *conc > kMaxRowConcurrency)
      r.fail("concurrency", std::to_string(*conc) + " requests in flight: at most " + std::to_string(kMaxRowConcurrency));
    if (auto v = opt_positive(r, "ttft_slo_ms")) q.slo_ttft_s = *v / 1e3;
    if (auto v = opt_positive(r, "tpot_slo_ms")) q.slo_tpot_s = *v / 1e3;

    std::string reason;
    Model m = model_from_row(r, c);
    for (const RunFact& f : row.facts)
      if (f.field == "fp4_scope") {
        if (f.text == "experts" && !m.is_moe())
          throw InputError(f.file + ":" + std::to_string(f.line) + ": value",
                           "fp4_scope = experts: row " + row.id + "'s model has no routed experts");
        m.fp4_experts_only = f.text == "experts";
        m.fp4_scope_source = f.file + ":" + std::to_string(f.line) + " (run fact fp4_scope " + f.text + ")";
      }
    if (q.full_attention && m.window_layer_count() == 0)
      for (const RunFact& f : row.facts)
        if (f.field == "attention_window")
          throw InputError(f.file + ":" + std::to_string(f.line) + ": value",
                           "attention_window = full: row " + row.id + "'s model has no sliding-window or chunked layers");
    m = serving_model(m, q);
    row.moe = m.is_moe();
    auto sys = c.systems.find(row.system);
    if (sys == c.systems.end()) r.fail("system", "'" + row.system + "' is not a catalog system id (xpuplan catalog list)");
    if (!in) reason = "input_len not stated (the benchmark dataset's token statistics are not in data/)";
    if (reason.empty() && !outl) reason = "output_len not stated";
    if (reason.empty() && scenario == "server" && !rate) r.fail("request_rate", "empty (required for scenario server)");
    if (reason.empty() && scenario == "fixed_batch" && !conc) r.fail("concurrency", "empty (required for scenario fixed_batch)");
    if (reason.empty()) {
      // Mean lengths in tokens: at least one, and within what a simulated request can hold
      // (a fact supplies the length where the row leaves it empty; the row's cell is named).
      for (const auto& [col, v] : {std::pair<const char*, double>{"input_len", *in}, {"output_len", *outl}})
        if (v < 1 || v > kMaxRowTokens)
          r.fail(col, format_number("%g", v) + " tokens: a mean length must be between 1 and " + format_number("%g", kMaxRowTokens));
      ServeWorkload& w = q.work;
      w.input_len = static_cast<int>(std::lround(*in));
      w.output_len = static_cast<int>(std::lround(*outl));
      w.input_spread = in_spread;
      w.output_spread = out_spread;
      w.batcher = batcher;
      w.samples = samples.value_or(1);
      w.beam = beam;
      w.seed = 1;
      const int replicas = q.replicas.value_or(1);
      if (scenario == "offline") w.kind = WorkloadKind::offline;
      else if (scenario == "server") {
        w.kind = WorkloadKind::poisson;
        w.rate = *rate;
      } else {
        w.kind = WorkloadKind::concurrency;
        w.concurrency = scenario == "single" ? 1 : static_cast<int>(*conc);
      }
      w.requests = requests ? *requests
                            : requests_for(scenario, rate.value_or(0), w.concurrency, replicas,
                                           q.max_batch.value_or(sys->second.serving.max_batch));
      // As serve --rate: arrivals past 1e10 s would swallow the step times in the clock's precision.
      if (scenario == "server" && w.requests / *rate > 1e10)
        r.fail("request_rate", format_number("%g", *rate) + " is too low: " + std::to_string(w.requests) +
                                   " requests at this rate arrive over more than 1e10 s");
      const std::string key = simulation_key(t, i, row.facts);
      auto [it, fresh] = job_of.emplace(key, jobs.size());
      row.arch = m;
      if (fresh) {
        SimJob j;
        j.model = std::move(m);
        j.system = &sys->second;
        j.request = std::move(q);
        jobs.push_back(std::move(j));
      }
      pending.push_back({out.rows.size(), it->second});
      out.rows.push_back(std::move(row));
      continue;
    }
    settle_row(row, reason);
    out.rows.push_back(std::move(row));
  }
  run_jobs(jobs);
  std::vector<std::shared_ptr<const ServeReport>> reports(jobs.size());
  for (std::size_t k = 0; k < jobs.size(); ++k) reports[k] = std::make_shared<const ServeReport>(std::move(jobs[k].report));
  for (const auto& [ri, ji] : pending) {
    ValidationRow& row = out.rows[ri];
    const SimJob& j = jobs[ji];
    row.serve = reports[ji];
    std::string reason;
    if (!j.error.empty()) blame_fact(row.facts, row.id, j.error_where, j.error);
    if (!j.error.empty()) reason = "layout cannot work: " + j.error;
    else if (!row.serve->feasible) reason = "does not fit: " + row.serve->reason;
    else {
      const ServeReport& rep = *row.serve;
      row.layout = serve_layout_summary(rep);
      if (row.metric == "output_tokens_per_s") row.predicted = rep.output_tps;
      else if (row.metric == "ttft_ms") row.predicted = pick(rep.ttft, row.stat) * 1e3;
      else row.predicted = pick(rep.tpot, row.stat) * 1e3;
      row.evaluated = true;
    }
    settle_row(row, reason);
  }
  summarise(out, out.per_metric, [](const ValidationRow& row) { return row.metric; });
  return out;
}

}  // namespace xpu
