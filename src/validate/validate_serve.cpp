#include <algorithm>
#include <cmath>

#include "serve/serve.hpp"
#include "spec/error.hpp"
#include "validate/rows.hpp"
#include "validate/validate.hpp"

namespace xpu {

namespace {

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

}  // namespace

bool is_inference_table(const CsvTable& t) {
  return t.column("scenario") >= 0 && t.column("output_len") >= 0 && t.column("metric") >= 0 && t.column("stat") >= 0;
}

ValidationResult validate_inference(const CsvTable& t, const Catalog& c, const std::set<std::string>* only,
                                    const RunFacts* facts) {
  for (const char* col : kInferenceColumns)
    if (t.column(col) < 0) throw InputError(t.path + ":1", std::string("header lacks column '") + col + "'");
  if (facts) check_fact_ids(t, *facts);
  ValidationResult out;
  out.path = t.path;
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
            if (scenario != "offline" && scenario != "fixed_batch")
              throw InputError(where, "requests: applies to offline and fixed_batch rows only (a benchmark's prompt count), and row " +
                                          row.id + " is " + scenario);
            requests = static_cast<int>(f.value);
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
    if (auto v = opt_positive(r, "ttft_slo_ms")) q.slo_ttft_s = *v / 1e3;
    if (auto v = opt_positive(r, "tpot_slo_ms")) q.slo_tpot_s = *v / 1e3;

    std::string reason;
    Model m = model_from_row(r, c, &reason);
    row.moe = m.is_moe();
    auto sys = c.systems.find(row.system);
    if (reason.empty() && sys == c.systems.end()) reason = "system '" + row.system + "' is not in the catalog";
    if (reason.empty() && !in) reason = "input_len not stated (the benchmark dataset's token statistics are not in data/)";
    if (reason.empty() && !outl) reason = "output_len not stated";
    if (reason.empty() && scenario == "server" && !rate) r.fail("request_rate", "empty (required for scenario server)");
    if (reason.empty() && scenario == "fixed_batch" && !conc) r.fail("concurrency", "empty (required for scenario fixed_batch)");
    if (reason.empty()) {
      ServeWorkload& w = q.work;
      w.input_len = std::max(1, static_cast<int>(std::lround(*in)));
      w.output_len = std::max(1, static_cast<int>(std::lround(*outl)));
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
      try {
        ServeReport rep = choose_serve(m, sys->second, q);
        if (!rep.feasible) reason = "does not fit: " + rep.reason;
        else {
          row.layout = serve_layout_summary(rep);
          if (row.metric == "output_tokens_per_s") row.predicted = rep.output_tps;
          else if (row.metric == "ttft_ms") row.predicted = pick(rep.ttft, row.stat) * 1e3;
          else row.predicted = pick(rep.tpot, row.stat) * 1e3;
          row.evaluated = true;
        }
      } catch (const InputError& e) {
        reason = std::string("layout cannot work: ") + e.what();
      }
    }
    settle_row(row, reason);
    out.rows.push_back(std::move(row));
  }
  summarise(out, out.per_metric, [](const ValidationRow& row) { return row.metric; });
  return out;
}

}  // namespace xpu
