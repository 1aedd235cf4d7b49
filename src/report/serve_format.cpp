#include "report/serve_format.hpp"

#include <cmath>
#include <cstdio>

#include "report/format.hpp"

namespace xpu {

using nlohmann::ordered_json;

namespace {

constexpr auto& fmt = format_number;

constexpr auto& r6 = round6;

// null figures when no request gave one (TPOT of one-token outputs), not 0.
ordered_json stats_json(const LatencyStats& s) {
  auto v = [&](double x) { return s.count > 0 ? ordered_json(r6(x * 1e3)) : ordered_json(nullptr); };
  return {{"mean", v(s.mean)}, {"p50", v(s.p50)}, {"p90", v(s.p90)}, {"p99", v(s.p99)}};
}

std::string ms(double s) { return s >= 10 ? fmt("%.4g s", s) : fmt("%.4g ms", s * 1e3); }

}  // namespace

ordered_json serve_json(const Model& m, const System& s, const ServeReport& r, bool with_explain) {
  ordered_json j;
  j["model"] = m.id;
  j["system"] = s.id;
  j["devices"] = r.layout.tp * r.layout.pp * r.layout.replicas;
  j["layout"] = {{"tp", r.layout.tp}, {"pp", r.layout.pp}, {"ep", r.layout.ep}, {"replicas", r.layout.replicas},
                 {"weight_precision", quant_name(r.layout.weights)}, {"kv_precision", quant_name(r.layout.kv)},
                 {"max_batch", r.options.max_batch}, {"token_budget", r.options.token_budget}, {"prefill_replicas", r.options.prefill_replicas},
                 {"kv_admission", kv_admission_name(r.options.reserve_output)},
                 {"scheduler", scheduler_name(r.options.prefill_first)},
                 {"prefill_kv_free", r.options.prefill_kv_free}, {"full_attention", r.full_attention},
                 {"compiled_batch", r.options.compiled_batch > 0 ? ordered_json(r.options.compiled_batch) : ordered_json(nullptr)},
                 {"prefill_pad", r.options.prefill_pad > 0 ? ordered_json(r.options.prefill_pad) : ordered_json(nullptr)}};
  const Speculation& sp = r.options.spec;
  j["layout"]["speculative"] = sp.on() ? ordered_json{{"method", draft_method_name(sp.method)}, {"draft_tokens", sp.draft_tokens},
                                                      {"acceptance", sp.acceptance}, {"tokens_per_step", r6(sp.tokens_per_step())}}
                                       : ordered_json(nullptr);
  const WorkloadShape& w = r.work;
  j["workload"] = workload_name(w.kind);
  if (w.kind == WorkloadKind::poisson) j["rate_per_s"] = w.rate;
  if (w.kind == WorkloadKind::concurrency) j["concurrency"] = w.concurrency;
  if (w.kind != WorkloadKind::trace && w.kind != WorkloadKind::agent) {
    j["input_len"] = w.input_len;
    j["output_len"] = w.output_len;
    if (w.input_spread.set()) j["input_spread"] = spread_name(w.input_spread);
    if (w.output_spread.set()) j["output_spread"] = spread_name(w.output_spread);
  }
  if (w.kind == WorkloadKind::agent) j["prefix_cache"] = w.prefix_cache;
  if (w.batcher.set()) j["batcher"] = batcher_name(w.batcher);
  j["samples"] = w.samples;
  j["beam_search"] = w.beam;
  j["feasible"] = r.feasible;
  if (!r.feasible) {
    j["reason"] = r.reason;
    return j;
  }
  j["requests"] = r.requests;
  j["dropped_requests"] = r.dropped;
  if (r.tasks > 0) {
    j["tasks"] = r.tasks;
    j["tasks_completed"] = r.tasks_completed;
  }
  j["input_tokens"] = r.input_tokens;
  j["output_tokens"] = r.output_tokens;
  j["prefill_tokens_computed"] = r.prefill_tokens;
  j["makespan_s"] = r6(r.makespan_s);
  j["ttft_ms"] = stats_json(r.ttft);
  j["tpot_ms"] = stats_json(r.tpot);
  j["e2e_ms"] = stats_json(r.e2e);
  j["output_tokens_per_s"] = r6(r.output_tps);
  j["output_tokens_per_s_per_device"] = r6(r.output_tps_per_device);
  j["input_tokens_per_s"] = r6(r.input_tps);
  j["requests_per_s"] = r6(r.requests_per_s);
  j["goodput_requests_per_s"] = r6(r.goodput_rps);
  j["goodput_pct"] = r6(100 * r.goodput_fraction);
  j["slo_met"] = r.slo_met;
  j["kv_utilisation_mean_pct"] = r6(100 * r.kv_util_mean);
  j["kv_utilisation_peak_pct"] = r6(100 * r.kv_util_peak);
  j["kv_capacity_tokens_per_replica"] = r.kv_capacity_tokens;
  j["max_concurrency_kv"] = r.max_concurrency_kv;
  j["kv_bytes_per_token"] = r6(r.kv_bytes_per_token);
  j["weight_bytes_per_device"] = r6(r.weight_bytes_per_device);
  j["preemptions"] = r.preemptions;
  j["iterations"] = r.iterations;
  if (r.options.prefill_replicas > 0) j["kv_transfer_mean_ms"] = r6(r.kv_transfer_mean_s * 1e3);
  if (r.cost.priced) {
    const ServeCost& c = r.cost;
    ordered_json cj = {{"price_file", c.file}, {"provider", c.provider}, {"instance", c.instance}, {"as_of", c.as_of.empty() ? ordered_json() : ordered_json(c.as_of)},
                       {"usd_per_device_hour", r6(c.usd_per_device_hour)}, {"usd_total", r6(c.usd_total)},
                       {"usd_per_m_input_tokens", r6(c.usd_per_m_input)}, {"usd_per_m_output_tokens", r6(c.usd_per_m_output)},
                       {"usd_per_m_output_tokens_all_in", r6(c.usd_per_m_output_all_in)}};
    if (r.tasks > 0) cj["usd_per_task"] = r6(c.usd_per_task);
    j["cost"] = cj;
  } else {
    j["cost"] = nullptr;
  }
  if (r.layouts_considered > 0) j["layouts_considered"] = r.layouts_considered;
  if (with_explain) {
    ordered_json e = ordered_json::array();
    for (const auto& t : r.explain) e.push_back({{"term", t.name}, {"value", t.value}, {"origin", t.source}});
    j["explain"] = e;
  }
  return j;
}

std::string serve_text(const Model& m, const System& s, const ServeReport& r, bool with_explain) {
  const int devices = r.layout.tp * r.layout.pp * r.layout.replicas;
  std::string out = "xpuplan serve: " + m.name + " on " + std::to_string(devices) + " x " + s.device_unit + " of " + s.name + "\n";
  out += "  workload: " + (r.workload_detail.empty() ? workload_name(r.work.kind) : r.workload_detail) + "\n";
  out += "  layout: " + serve_layout_summary(r) + "\n\n";
  if (!r.feasible) return out + "DOES NOT FIT: " + r.reason + "\n";
  std::vector<std::vector<std::string>> rows;
  auto lat = [&](const char* name, const LatencyStats& st) {
    if (st.count == 0) rows.push_back({name, "-", "-", "-", "-"});  // no request gave one
    else rows.push_back({name, ms(st.mean), ms(st.p50), ms(st.p90), ms(st.p99)});
  };
  lat("TTFT", r.ttft);
  lat("TPOT", r.tpot);
  lat("end-to-end", r.e2e);
  out += render_table({"latency", "mean", "p50", "p90", "p99"}, rows) + "\n";
  std::vector<std::vector<std::string>> m2 = {
      {"requests", std::to_string(r.requests) + (r.dropped ? " (+" + std::to_string(r.dropped) + " dropped)" : "")},
      {"output tokens/s", fmt("%.5g", r.output_tps)},
      {"output tokens/s per device", fmt("%.5g", r.output_tps_per_device)},
      {"input tokens/s", fmt("%.5g", r.input_tps)},
      {"requests/s", fmt("%.4g", r.requests_per_s)},
      {"goodput (within SLOs)", fmt("%.4g req/s", r.goodput_rps) + fmt(" (%.1f%%)", 100 * r.goodput_fraction)},
      {"SLOs met at p99", r.slo_met ? "yes" : "no"},
      {"KV cache per replica", std::to_string(r.kv_capacity_tokens) + " tokens"},
      {"max concurrent requests (KV fits)", std::to_string(r.max_concurrency_kv)},
      {"KV utilisation mean / peak", fmt("%.1f%%", 100 * r.kv_util_mean) + fmt(" / %.1f%%", 100 * r.kv_util_peak)},
      {"preemptions", std::to_string(r.preemptions)},
      {"makespan", fmt("%.4g s", r.makespan_s)},
  };
  if (r.tasks > 0)
    m2.insert(m2.begin() + 1, {"agent tasks completed", std::to_string(r.tasks_completed) + " of " + std::to_string(r.tasks) +
                                                          (r.tasks_completed < r.tasks ? " (a dropped call ends its task)" : "")});
  if (r.options.prefill_replicas > 0) m2.push_back({"KV transfer (mean)", ms(r.kv_transfer_mean_s)});
  if (r.cost.priced) {
    m2.push_back({"USD per M output tokens (all-in)", fmt("%.4g", r.cost.usd_per_m_output_all_in)});
    m2.push_back({"USD per M output tokens (decode share)", fmt("%.4g", r.cost.usd_per_m_output)});
    m2.push_back({"USD per M input tokens (prefill share)", fmt("%.4g", r.cost.usd_per_m_input)});
    if (r.tasks > 0)
      m2.push_back({"USD per agent task", r.tasks_completed > 0 ? fmt("%.4g", r.cost.usd_per_task) + " (per completed task)"
                                                                 : std::string("- (no task completed)")});
    m2.push_back({"price", fmt("%.4g USD per device-hour", r.cost.usd_per_device_hour) + " (" + offer_label(r.cost.provider, r.cost.instance) + (r.cost.as_of.empty() ? "" : ", " + r.cost.as_of) + ")"});
  } else {
    m2.push_back({"cost", "no on-demand price for " + s.id + (s.standalone ? std::string() : std::string(" in data/prices/")) + " (" +
                              s.no_price_hint("") + ")"});
  }
  out += render_table({"metric", "value"}, m2, false);
  if (r.layouts_considered > 1) out += "\nchosen among " + std::to_string(r.layouts_considered) + " layouts\n";
  if (with_explain) {
    std::vector<std::vector<std::string>> e;
    for (const auto& t : r.explain) e.push_back({t.name, t.value, t.source});
    out += "\n" + render_table({"term", "value", "from"}, e, false);
  }
  return out;
}

ordered_json serve_search_json(const Model& m, const System& s, const ServeSearchResult& r, ServeObjective o) {
  ordered_json j;
  j["objective"] = serve_objective_name(o);
  j["considered"] = r.considered;
  j["feasible"] = r.feasible;
  j["within_slo"] = r.within_slo;
  j["peak_waves"] = r.peak_waves;
  ordered_json top = ordered_json::array();
  for (const auto& x : r.top) top.push_back(serve_json(m, s, x, false));
  j["top"] = top;
  return j;
}

std::string serve_search_text(const Model& m, const System& s, const ServeSearchResult& r, ServeObjective o) {
  std::string out = "xpuplan serve --search: " + m.name + " on " + s.name + ", objective " + serve_objective_name(o) + "\n";
  const bool sized = r.peak_waves > 0;  // the requests differ by layout: a column of its own
  if (!r.top.empty() && !r.top.front().workload_detail.empty()) {
    std::string detail = r.top.front().workload_detail;
    // "offline, 3808 requests of ..." is the first layout's count: say where each count is instead.
    const std::size_t at = detail.find(" requests of ");
    if (sized && detail.rfind("offline, ", 0) == 0 && at != std::string::npos)
      detail = "offline, the requests column's count (each layout's)" + detail.substr(at + std::string(" requests").size());
    out += "  workload: " + detail + "\n";
  }
  if (sized)
    out += "  peak estimate: each layout simulates at least --requests and " + std::to_string(r.peak_waves) +
           " x the requests its replicas run at once (largest batch cap tried, or the prompts the KV cache holds; one count for "
           "all its caps and splits)\n";
  out += "\n";
  std::vector<std::vector<std::string>> rows;
  int rank = 0;
  for (const auto& x : r.top) {
    ++rank;
    std::vector<std::string> row;
    if (!x.feasible) {
      row = {std::to_string(rank), serve_layout_summary(x), "-", "-", "-", "-", "-", "no: " + x.reason};
    } else {
      row = {std::to_string(rank), serve_layout_summary(x), fmt("%.5g", x.output_tps_per_device), ms(x.ttft.p99),
             x.tpot.count > 0 ? ms(x.tpot.p99) : "-", x.cost.priced ? fmt("%.4g", x.cost.usd_per_m_output_all_in) : "-",
             fmt("%.1f%%", 100 * x.goodput_fraction), x.slo_met ? "yes" : "no"};
    }
    if (sized) row.insert(row.begin() + 2, x.feasible ? std::to_string(x.requests) : "-");
    rows.push_back(std::move(row));
  }
  std::vector<std::string> head{"rank", "layout", "out tok/s/dev", "TTFT p99", "TPOT p99", "USD/M out all-in", "goodput", "SLOs"};
  if (sized) head.insert(head.begin() + 2, "requests");
  out += render_table(head, rows);
  out += "\nlayouts considered " + std::to_string(r.considered) + ", feasible " + std::to_string(r.feasible) +
         ", within the SLOs " + std::to_string(r.within_slo) + "\n";
  return out;
}

ordered_json inference_validation_json(const ValidationResult& v) {
  ordered_json j;
  j["truth"] = v.path;
  j["run_facts"] = v.facts_path.empty() ? ordered_json(nullptr) : ordered_json(v.facts_path);
  ordered_json rows = ordered_json::array();
  for (const auto& r : v.rows) {
    ordered_json x = {{"id", r.id}, {"line", r.line}, {"grade", r.grade}, {"system", r.system}, {"model", r.model},
                      {"metric", r.metric}, {"stat", r.stat}, {"measured", r6(r.measured)}, {"evaluated", r.evaluated}};
    if (r.evaluated) {
      x["predicted"] = r6(r.predicted);
      x["layout"] = r.layout;
    } else {
      x["reason"] = r.reason;
    }
    if (!r.facts.empty()) {
      ordered_json fs = ordered_json::array();
      for (const auto& f : r.facts)
        fs.push_back({{"field", f.field}, {"value", f.text.empty() ? ordered_json(f.value) : ordered_json(f.text)},
                      {"source", f.source}, {"file", f.file}, {"line", f.line}});
      x["run_facts"] = fs;
    }
    x["error_pct"] = r6(r.error_pct);
    rows.push_back(x);
  }
  j["rows"] = rows;
  auto st = [](const ErrorStats& s) {
    if (s.count == 0) return ordered_json{{"rows", 0}, {"mape_pct", nullptr}, {"max_abs_pct", nullptr}};
    return ordered_json{{"rows", s.count}, {"mape_pct", r6(s.mape_pct)}, {"max_abs_pct", r6(s.max_abs_pct)}};
  };
  ordered_json sum;
  sum["headline_ab"] = st(v.headline);
  sum["evaluated_ab"] = st(v.evaluated_ab);
  sum["dense_ab"] = st(v.dense);
  auto each = [&](const std::map<std::string, ErrorStats>& by) {
    ordered_json m = ordered_json::object();  // {} when empty, as the training table's (not null)
    for (const auto& [k, s] : by) m[k] = st(s);
    return m;
  };
  sum["per_system_ab"] = each(v.per_system);
  sum["per_metric_ab"] = each(v.per_metric);
  sum["per_grade"] = each(v.per_grade);
  j["summary"] = sum;
  return j;
}

std::string inference_validation_text(const ValidationResult& v) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : v.rows) {
    std::string layout = r.evaluated ? r.layout : "NOT EVALUATED: " + r.reason;
    layout += facts_suffix(r.facts);
    rows.push_back({r.id, r.grade, r.system, r.metric + " " + r.stat, r.evaluated ? fmt("%.4g", r.predicted) : "-",
                    fmt("%.4g", r.measured), fmt("%+.1f%%", r.error_pct), layout});
  }
  std::string out = validation_head("inference", v) +
                    render_table({"id", "grade", "system", "metric", "predicted", "measured", "error", "layout"}, rows);
  SubsetTable subsets;
  subsets.add("headline: grades A+B (not evaluated = 100%)", v.headline);
  subsets.add("evaluated rows, grades A+B", v.evaluated_ab);
  subsets.add("dense models, grades A+B", v.dense);
  subsets.add_each(v.per_metric, "metric ", " (A+B)");
  subsets.add_each(v.per_system, "system ", " (A+B)");
  subsets.add_each(v.per_grade, "grade ", "");
  out += "\n" + subsets.render();
  return out;
}

}  // namespace xpu
