#include "report/money_format.hpp"

#include <cmath>
#include <cstdio>

#include "report/format.hpp"

namespace xpu {

using nlohmann::ordered_json;

namespace {

constexpr auto& fmt = format_number;

constexpr auto& r6 = round6;

ordered_json opt(const std::optional<double>& v) { return v ? ordered_json(r6(*v)) : ordered_json(nullptr); }

std::string cell(const std::optional<double>& v, const char* f = nullptr) {
  if (!v) return "-";
  return f ? fmt(f, *v) : short_number(*v);
}

// Whole units from 100 up, three significant digits below (1.35 MWh was printed as 1).
std::string amount_cell(const std::optional<double>& v) {
  if (!v) return "-";
  return fmt(std::abs(*v) >= 100 ? "%.0f" : "%.3g", *v);
}

ordered_json rate_json(const Rate& r) {
  ordered_json j;
  j["pricing"] = pricing_name(r.pricing);
  j["usd_per_device_hour"] = r.known ? ordered_json(r6(r.usd_per_device_hour)) : ordered_json(nullptr);
  if (r.offer) {
    j["file"] = r.offer->file;
    j["provider"] = r.offer->provider;
    j["instance"] = r.offer->instance;
    j["kind"] = r.offer->kind;
    j["region"] = r.offer->region;
    j["as_of"] = r.offer->as_of;
    j["offer_usd_per_hour"] = r6(r.offer->usd_per_hour);
    j["offer_devices"] = r.offer->devices;
  }
  if (r.tco) {
    j["purchase_usd"] = r6(r.tco->purchase_usd);
    j["overhead_usd"] = r6(r.tco->overhead_usd);
    j["amortisation_years"] = r6(r.tco->years);
    j["capex_usd_per_hour"] = r6(r.tco->capex_usd_per_hour);
    j["rated_w"] = r6(r.tco->rated_w);  // the node's share where published, else the accelerator's TDP
    j["utilisation"] = r6(r.tco->utilisation);
    j["pue"] = r6(r.tco->pue);
    j["usd_per_kwh"] = r6(r.tco->usd_per_kwh);
    j["energy_usd_per_hour"] = r6(r.tco->energy_usd_per_hour);
  }
  j["origin"] = r.origin();
  j["warning"] = r.warning.empty() ? ordered_json(nullptr) : ordered_json(r.warning);
  return j;
}

std::string tokens_text(double t) { return fmt("%.3g", t); }

}  // namespace

std::string short_number(double v) {
  static const char* kP[] = {"", " k", " M", " B", " T"};
  if (std::fabs(v) < 0.005) v = 0;  // rounding residue of shares (1/3 + 1/3 + 1/3) is not a flow
  double a = std::fabs(v);
  int k = 0;
  while (a >= 1000 && k < 4) {
    a /= 1000;
    v /= 1000;
    ++k;
  }
  return fmt(a >= 100 ? "%.0f" : (a >= 10 ? "%.1f" : "%.2f"), v) + kP[k];
}

// ---------------------------------------------------------------------------------------------- compare

ordered_json compare_json(const Model& m, const CompareRequest& q, const std::vector<CompareRow>& rows,
                          bool with_explain) {
  ordered_json j;
  j["model"] = m.id;
  j["tokens"] = q.tokens;
  j["seq_len"] = q.seq_len;
  j["global_batch"] = q.global_batch;
  j["mode"] = q.devices ? "devices" : "deadline";
  j["devices"] = q.devices ? ordered_json(*q.devices) : ordered_json(nullptr);
  j["deadline_days"] = q.deadline_days ? ordered_json(*q.deadline_days) : ordered_json(nullptr);
  j["precision"] = q.precision ? ordered_json(precision_name(*q.precision)) : ordered_json(nullptr);
  j["pricing"] = pricing_name(q.pricing);
  j["provider"] = q.provider.empty() ? ordered_json(nullptr) : ordered_json(q.provider);
  j["rank_by"] = q.rank == CompareRank::cost ? "cost" : "time";
  j["as_of"] = date_text(q.today);
  ordered_json arr = ordered_json::array();
  ordered_json warnings = ordered_json::array();
  for (const CompareRow& r : rows) {
    ordered_json x;
    x["rank"] = r.rank > 0 ? ordered_json(r.rank) : ordered_json(nullptr);
    x["system"] = r.system_id;
    x["planned"] = r.planned;
    x["devices"] = r.planned ? ordered_json(r.devices) : ordered_json(nullptr);
    x["meets_deadline"] = r.planned ? ordered_json(r.meets_deadline) : ordered_json(nullptr);
    // Keys are stable: a row with no plan has them null.
    auto planned = [&](auto v) { return r.planned ? ordered_json(v) : ordered_json(nullptr); };
    x["layout"] = r.planned ? ordered_json(layout_summary(r.plan.layout)) : ordered_json(nullptr);
    x["plan"] = r.planned ? layout_json(m, r.plan.layout) : ordered_json(nullptr);
    x["step_time_s"] = planned(r6(r.plan.step_time));
    x["mfu"] = planned(r6(r.plan.mfu));
    x["mfu_peak"] = r.planned ? ordered_json(precision_name(r.plan.layout.precision)) : ordered_json(nullptr);
    x["calibration"] = {{"file", r.calibration_file}, {"status", r.calibration_status}};
    x["steps"] = planned(static_cast<long long>(r.steps));  // a whole number of optimizer steps
    x["days"] = planned(r6(r.days));
    x["device_hours"] = planned(r6(r.device_hours));
    x["effective_pflops_days"] = planned(r6(r.effective_pflops_days));
    x["usd"] = opt(r.usd);
    x["usd_per_effective_pflops_day"] = opt(r.usd_per_pflops_day);
    x["energy_mwh"] = opt(r.energy_mwh);
    x["co2_t"] = opt(r.co2_t);
    x["price"] = r.planned ? rate_json(r.rate) : ordered_json(nullptr);
    if (r.power) {
      x["power"] = {{"wall_w_per_device", r6(r.power->wall_w)},
                    {"tdp_w", r.power->tdp_w > 0 ? ordered_json(r6(r.power->tdp_w)) : ordered_json(nullptr)},
                    {"node_w", r.power->node_w > 0 ? ordered_json(r6(r.power->node_w)) : ordered_json(nullptr)},
                    {"rated_w", r6(r.power->rated_w())},
                    {"utilisation", r6(r.power->utilisation)}, {"pue", r6(r.power->pue)},
                    {"kg_co2_per_kwh", r6(r.power->kg_co2_per_kwh)}};
      if (with_explain) x["power"]["origin"] = r.power->origin;
    } else {
      x["power"] = nullptr;
    }
    x["note"] = r.note.empty() ? ordered_json(nullptr) : ordered_json(r.note);
    if (!r.tried.empty()) {
      ordered_json t = ordered_json::array();
      for (const auto& [d, days] : r.tried)
        t.push_back({{"devices", d}, {"days", days < 0 ? ordered_json(nullptr) : ordered_json(r6(days))},
                     {"skipped", days == kSkipped}});
      x["tried"] = t;
    }
    if (r.planned && !r.rate.warning.empty()) warnings.push_back(r.rate.warning);
    arr.push_back(x);
  }
  j["rows"] = arr;
  j["warnings"] = warnings;
  return j;
}

std::string compare_text(const Model& m, const CompareRequest& q, const std::vector<CompareRow>& rows,
                         bool with_explain) {
  std::string t = "xpuplan compare: " + m.name + ", " + tokens_text(q.tokens) + " tokens, seq " +
                  std::to_string(q.seq_len) + " x global batch " + std::to_string(q.global_batch) + " (" +
                  short_number(static_cast<double>(q.seq_len) * q.global_batch) + " tokens/step)";
  t += q.devices ? ", " + count_text(*q.devices, "device", "devices") + " each"
                 : ", fewest devices (node or multi-node domain x 2^k) to finish within " + fmt("%g", *q.deadline_days) + " days";
  t += "\n  precision " + std::string(q.precision ? precision_name(*q.precision) : "searched") + ", pricing " +
       std::string(pricing_name(q.pricing)) + (q.provider.empty() ? "" : " from " + q.provider) + ", prices as of " + date_text(q.today) + ", ranked by " +
       (q.rank == CompareRank::cost ? "USD" : "days") + "\n\n";
  std::vector<std::vector<std::string>> tab;
  auto place = [](int rank) { return rank > 0 ? std::to_string(rank) : std::string("-"); };
  for (const CompareRow& r : rows) {
    if (!r.planned) {
      tab.push_back({place(r.rank), r.system_id, "-", "no plan", "-", "-", "-", "-", "-", "-", "-", "-"});
      continue;
    }
    tab.push_back({place(r.rank), r.system_id, std::to_string(r.devices), layout_summary(r.plan.layout),
                   fmt("%.1f", r.days), fmt("%.1f%%", 100 * r.plan.mfu),
                   r.rate.offer ? r.rate.offer->provider : (r.rate.tco ? "TCO" : "-"),
                   r.rate.known ? fmt("%.3f", r.rate.usd_per_device_hour) : "-", cell(r.usd),
                   cell(r.usd_per_pflops_day, "%.0f"), amount_cell(r.energy_mwh), amount_cell(r.co2_t)});
  }
  t += render_table({"#", "system", "devices", "best plan", "days", "MFU", "price", "USD/dev-h", "USD", "USD/PFLOP/s-day",
                     "MWh", "t CO2"},
                    tab);
  bool any_note = false;
  for (const CompareRow& r : rows)
    if (!r.note.empty()) {
      if (!any_note) t += "\n";
      any_note = true;
      t += "  " + r.system_id + ": " + r.note + "\n";
    }
  // Efficiencies no measured run has fitted make a row's days and MFU estimates: say so.
  std::string assumed;
  for (const CompareRow& r : rows)
    if (r.planned && r.calibration_status != "fitted")
      assumed += (assumed.empty() ? "" : ", ") + r.system_id + " (" + r.calibration_file + ")";
  if (!assumed.empty())
    t += "\n  calibration " + std::string("assumed, not fitted to a measured run (days and MFU are estimates): ") + assumed + "\n";
  for (const CompareRow& r : rows)
    if (r.planned && !r.rate.warning.empty()) t += "warning: " + r.rate.warning + "\n";
  if (q.deadline_days) {
    t += "\ndevice counts tried (days; skipped: too few devices even at 100% of peak):\n";
    for (const CompareRow& r : rows) {
      t += "  " + r.system_id + ":";
      for (const auto& [d, days] : r.tried)
        t += " " + std::to_string(d) +
             (days == kSkipped ? " (skipped)" : days < 0 ? " (no fit)" : " (" + fmt("%.1f", days) + ")");
      t += "\n";
    }
  }
  t += "\nUSD = devices x days x 24 h x USD per device-hour; USD/PFLOP/s-day = USD / (model FLOPs of the run / 1e15 / "
       "86400 s); MWh = device-hours x W per device (the node's rated power / its devices where the system file gives it, else the accelerator's TDP) x utilisation x PUE; MFU = model FLOPs / (device-seconds x the dense peak "
       "at the plan's precision: an fp8 plan's peak is twice bf16's, so compare MFU between rows of one precision)\n";
  if (with_explain) {
    t += "\nwhere each figure comes from:\n";
    for (const CompareRow& r : rows) {
      if (!r.planned) continue;
      t += "  " + r.system_id + "\n";
      t += "    plan: " + layout_summary(r.plan.layout) + ", step " + fmt("%.4f", r.plan.step_time) + " s (predicted, " +
           "train/evaluate.cpp), " + fmt("%.0f", r.steps) + " steps = " + tokens_text(q.tokens) + " tokens / " +
           std::to_string(q.seq_len * q.global_batch) + " tokens per step\n";
      t += "    time: " + fmt("%.0f", r.steps) + " steps x " + fmt("%.4f", r.plan.step_time) + " s = " +
           fmt("%.2f", r.days) + " days; device-hours " + std::to_string(r.devices) + " x " + fmt("%.1f", r.days * 24) +
           " h = " + short_number(r.device_hours) + "\n";
      t += "    price: " + r.rate.origin() + "\n";
      if (r.usd)
        t += "    USD: " + short_number(r.device_hours) + " device-hours x " + fmt("%.4f", r.rate.usd_per_device_hour) +
             " USD = " + short_number(*r.usd) + " USD\n";
      if (r.power)
        t += "    power: " + fmt("%.0f", r.power->wall_w) + " W per device at the wall = " + fmt("%.0f", r.power->rated_w()) +
             " W x " + fmt("%g", r.power->utilisation) + " x PUE " + fmt("%g", r.power->pue) + " (" + r.power->origin +
             "); CO2 at " + fmt("%.3g", r.power->kg_co2_per_kwh) + " kg/kWh\n";
    }
  }
  return t;
}

std::vector<PlotPanel> compare_plot(const Model& m, const std::vector<CompareRow>& rows) {
  PlotPanel usd, days;
  usd.title = "Training " + m.name + ": cost per system (devices)";
  usd.ylabel = "million USD";
  days.title = "days to train";
  days.ylabel = "days";
  PlotSeries su{"USD (M)", {}}, sd{"days", {}};
  for (const CompareRow& r : rows) {
    const std::string label = r.planned ? r.system_id + " (" + std::to_string(r.devices) + ")" : r.system_id;
    usd.x.push_back(label);
    days.x.push_back(label);
    su.y.push_back(r.usd ? std::optional<double>(*r.usd / 1e6) : std::nullopt);
    sd.y.push_back(r.planned ? std::optional<double>(r.days) : std::nullopt);
  }
  usd.series = {su};
  days.series = {sd};
  return {usd, days};
}

// ---------------------------------------------------------------------------------------------- compare --serve

namespace {
// The serving report's own on-demand price term: the money commands price with --pricing instead.
constexpr const char* kServePriceTerm = "price per device-hour";

std::string slo_text(const ServeCompareRequest& q) {
  if (q.slo_ttft_s <= 0 && q.slo_tpot_s <= 0) return "no latency SLO (offline peak throughput)";
  std::string t = "SLOs p99";
  if (q.slo_ttft_s > 0) t += " TTFT <= " + fmt("%g", q.slo_ttft_s * 1e3) + " ms";
  if (q.slo_tpot_s > 0) t += std::string(q.slo_ttft_s > 0 ? "," : "") + " TPOT <= " + fmt("%g", q.slo_tpot_s * 1e3) + " ms";
  return t;
}

// A served row's layout as deployed: the searched replica's tp/pp/ep with the replica count the
// traffic needs (the search ran on search_devices; --explain shows that layout).
std::string deployed_layout(const ServeCompareRow& r) { return serve_layout_summary(r.pick.report, r.replicas); }
}  // namespace

ordered_json serve_compare_json(const Model& m, const ServeCompareRequest& q, const std::vector<ServeCompareRow>& rows,
                                bool with_explain) {
  ordered_json j;
  j["model"] = m.id;
  j["mode"] = "serve";
  j["tokens_per_day"] = q.tokens_per_day;
  j["input_len"] = q.input_len;
  j["output_len"] = q.output_len;
  if (q.input_spread.set()) j["input_spread"] = spread_name(q.input_spread);
  if (q.output_spread.set()) j["output_spread"] = spread_name(q.output_spread);
  const double out_share = static_cast<double>(q.output_len) / (q.input_len + q.output_len);
  j["output_tokens_per_day"] = r6(q.tokens_per_day * out_share);
  j["input_tokens_per_day"] = r6(q.tokens_per_day * (1 - out_share));
  j["slo_ttft_ms"] = q.slo_ttft_s > 0 ? ordered_json(q.slo_ttft_s * 1e3) : ordered_json(nullptr);
  j["slo_tpot_ms"] = q.slo_tpot_s > 0 ? ordered_json(q.slo_tpot_s * 1e3) : ordered_json(nullptr);
  j["weight_precision"] = q.weights ? ordered_json(quant_name(*q.weights)) : ordered_json(nullptr);
  j["speculative"] = q.spec.on() ? ordered_json{{"method", draft_method_name(q.spec.method)}, {"draft_tokens", q.spec.draft_tokens},
                                                {"acceptance", q.spec.acceptance}, {"tokens_per_step", round6(q.spec.tokens_per_step())}}
                                 : ordered_json(nullptr);
  j["pricing"] = pricing_name(q.pricing);
  j["provider"] = q.provider.empty() ? ordered_json(nullptr) : ordered_json(q.provider);
  j["hours_per_month"] = kHoursPerMonth;
  j["as_of"] = date_text(q.today);
  ordered_json arr = ordered_json::array();
  ordered_json warnings = ordered_json::array();
  for (const ServeCompareRow& r : rows) {
    ordered_json x;
    x["rank"] = r.rank > 0 ? ordered_json(r.rank) : ordered_json(nullptr);
    x["system"] = r.system_id;
    x["served"] = r.served;
    x["devices"] = r.served ? ordered_json(r.devices) : ordered_json(nullptr);
    // Keys are stable: a row not served has its deployment's figures null.
    const ServeReport& s = r.pick.report;
    auto served = [&](auto v) { return r.served ? ordered_json(v) : ordered_json(nullptr); };
    x["layout"] = r.served ? ordered_json(deployed_layout(r)) : ordered_json(nullptr);
    x["replica_devices"] = served(r.replica_devices);
    x["replicas"] = served(r.replicas);
    x["search_devices"] = served(r.pick.search_devices);
    x["workload"] = served(r.pick.workload);
    x["output_tps_per_device"] = served(r6(s.output_tps_per_device));
    x["required_output_tps"] = r6(r.required_output_tps);
    x["utilisation"] = served(r6(r.utilisation));
    x["ttft_p99_ms"] = served(r6(s.ttft.p99 * 1e3));
    x["tpot_p99_ms"] = r.served && s.tpot.count > 0 ? ordered_json(r6(s.tpot.p99 * 1e3)) : ordered_json(nullptr);  // null: no 2-token output
    x["prefill_share"] = served(r6(s.prefill_share));
    x["usd_per_month"] = opt(r.usd_per_month);
    x["usd_per_m_input_tokens"] = opt(r.usd_per_m_input);
    x["usd_per_m_output_tokens"] = opt(r.usd_per_m_output);
    x["usd_per_m_tokens"] = opt(r.usd_per_m_tokens);
    x["price"] = r.rate.known || r.served ? rate_json(r.rate) : ordered_json(nullptr);
    x["note"] = r.note.empty() ? ordered_json(nullptr) : ordered_json(r.note);
    if (with_explain && r.served) {
      ordered_json e = ordered_json::array();
      for (const ServeTerm& t : r.pick.report.explain)
        if (t.name != kServePriceTerm) e.push_back({{"term", t.name}, {"value", t.value}, {"origin", t.source}});
      x["explain"] = e;
    }
    if (r.served && !r.rate.warning.empty()) warnings.push_back(r.rate.warning);
    arr.push_back(x);
  }
  j["rows"] = arr;
  j["warnings"] = warnings;
  return j;
}

std::string serve_compare_text(const Model& m, const ServeCompareRequest& q, const std::vector<ServeCompareRow>& rows,
                               bool with_explain) {
  const double out_share = static_cast<double>(q.output_len) / (q.input_len + q.output_len);
  std::string t = "xpuplan compare --serve: " + m.name + ", " + tokens_text(q.tokens_per_day) + " tokens/day (" +
                  tokens_text(q.tokens_per_day * (1 - out_share)) + " in, " + tokens_text(q.tokens_per_day * out_share) +
                  " out), requests of " + std::to_string(q.input_len) + " in / " + std::to_string(q.output_len) +
                  " out tokens" + (q.input_spread.set() ? ", prompt lengths " + spread_name(q.input_spread) : "") +
                  (q.output_spread.set() ? ", output lengths " + spread_name(q.output_spread) : "") + "\n  " + slo_text(q) + ", weights " +
                  (q.weights ? quant_name(*q.weights) : "16-bit") +
                  (q.spec.on() ? ", speculative " + speculation_summary(q.spec) : std::string()) + ", pricing " + pricing_name(q.pricing) +
                  (q.provider.empty() ? "" : " from " + q.provider) + ", prices as of " + date_text(q.today) +
                  ", ranked by USD per month\n\n";
  std::vector<std::vector<std::string>> tab;
  auto place = [](int rank) { return rank > 0 ? std::to_string(rank) : std::string("-"); };
  for (const ServeCompareRow& r : rows) {
    if (!r.served) {
      tab.push_back({place(r.rank), r.system_id, "-", "not served", "-", "-", "-", "-", "-", "-", "-"});
      continue;
    }
    const ServeReport& s = r.pick.report;
    tab.push_back({place(r.rank), r.system_id, std::to_string(r.devices), deployed_layout(r),
                   fmt("%.0f", s.output_tps_per_device), fmt("%.0f%%", 100 * r.utilisation),
                   r.rate.offer ? r.rate.offer->provider : (r.rate.tco ? "TCO" : "-"),
                   r.rate.known ? fmt("%.3f", r.rate.usd_per_device_hour) : "-", cell(r.usd_per_month),
                   cell(r.usd_per_m_input, "%.3f"), cell(r.usd_per_m_output, "%.3f")});
  }
  t += render_table({"#", "system", "devices", "layout", "out tok/s/dev", "busy", "price", "USD/dev-h", "USD/month",
                     "USD/M in", "USD/M out"},
                    tab);
  bool any_note = false;
  for (const ServeCompareRow& r : rows)
    if (!r.note.empty()) {
      if (!any_note) t += "\n";
      any_note = true;
      t += "  " + r.system_id + ": " + r.note + "\n";
    }
  for (const ServeCompareRow& r : rows)
    if (r.served && !r.rate.warning.empty()) t += "warning: " + r.rate.warning + "\n";
  t += "\ndevices = replicas x (tp x pp), replicas = ceil(output tokens/s needed / output tokens/s of one replica); "
       "USD/month = devices x USD per device-hour x " + fmt("%g", kHoursPerMonth) +
       " h; USD/M in and out split the month by the prefill share of busy time; busy = traffic / capacity\n";
  if (with_explain) {
    t += "\nwhere each figure comes from:\n";
    for (const ServeCompareRow& r : rows) {
      if (!r.served) continue;
      const ServeReport& s = r.pick.report;
      t += "  " + r.system_id + "\n";
      t += "    layout: " + serve_layout_summary(s) + ", searched on " + std::to_string(r.pick.search_devices) +
           " devices (serve/search.cpp), workload " + r.pick.workload + ": " + fmt("%.1f", s.output_tps_per_device) +
           " output tokens/s per device, p99 TTFT " + fmt("%.1f", s.ttft.p99 * 1e3) + " ms, p99 TPOT " +
           (s.tpot.count > 0 ? fmt("%.2f", s.tpot.p99 * 1e3) + " ms" : std::string("- (no output past its first token)")) +
           ", prefill share " + fmt("%.3f", s.prefill_share) + "\n";
      t += "    devices: " + fmt("%.1f", r.required_output_tps) + " output tokens/s needed / (" +
           fmt("%.1f", s.output_tps_per_device) + " x " + std::to_string(r.replica_devices) +
           " per replica) -> " + std::to_string(r.replicas) + " replicas x " + std::to_string(r.replica_devices) +
           " = " + count_text(r.devices, "device", "devices") + "\n";
      t += "    price: " + r.rate.origin() + "\n";
      if (r.usd_per_month)
        t += "    USD/month: " + count_text(r.devices, "device", "devices") + " x " + fmt("%.4f", r.rate.usd_per_device_hour) +
             " USD x " + fmt("%g", kHoursPerMonth) + " h = " + short_number(*r.usd_per_month) + " USD\n";
      for (const ServeTerm& e : s.explain)
        if (e.name != kServePriceTerm) t += "    " + e.name + ": " + e.value + (e.source.empty() ? "" : "  [" + e.source + "]") + "\n";
    }
  }
  return t;
}

std::vector<PlotPanel> serve_compare_plot(const Model& m, const std::vector<ServeCompareRow>& rows) {
  PlotPanel usd, dev;
  usd.title = "Serving " + m.name + ": USD per month per system (devices)";
  usd.ylabel = "thousand USD per month";
  dev.title = "USD per million tokens";
  dev.ylabel = "USD";
  PlotSeries su{"USD/month (k)", {}}, si{"USD/M input", {}}, so{"USD/M output", {}};
  for (const ServeCompareRow& r : rows) {
    const std::string label = r.served ? r.system_id + " (" + std::to_string(r.devices) + ")" : r.system_id;
    usd.x.push_back(label);
    dev.x.push_back(label);
    su.y.push_back(r.usd_per_month ? std::optional<double>(*r.usd_per_month / 1e3) : std::nullopt);
    si.y.push_back(r.usd_per_m_input);
    so.y.push_back(r.usd_per_m_output);
  }
  usd.series = {su};
  dev.series = {si, so};
  return {usd, dev};
}

// ---------------------------------------------------------------------------------------------- budget

ordered_json budget_json(const BudgetFile& f, const BudgetResult& r, long today, bool with_explain) {
  ordered_json j;
  j["name"] = f.name;
  j["file"] = f.file.empty() ? ordered_json(nullptr) : ordered_json(f.file);  // null: no fleet file (--usd alone)
  j["usd"] = r6(r.usd);
  j["as_of"] = date_text(today);
  ordered_json lines = ordered_json::array();
  for (const BudgetLine& l : r.lines) {
    ordered_json x;
    x["kind"] = l.kind;
    x["name"] = l.name;
    x["system"] = l.system;
    x["devices"] = l.devices;
    x["price"] = rate_json(l.rate);
    x["usd_per_month"] = opt(l.usd_per_month);
    if (l.kind == "training") {
      x["layout"] = l.plan ? ordered_json(layout_summary(l.plan->layout)) : ordered_json(nullptr);
      x["step_time_s"] = l.plan ? ordered_json(r6(l.plan->step_time)) : ordered_json(nullptr);
      x["days_per_run"] = l.plan ? ordered_json(r6(l.days_per_run)) : ordered_json(nullptr);
      x["runs_per_year"] = l.runs_per_year > 0 ? ordered_json(r6(l.runs_per_year)) : ordered_json(nullptr);  // null: priced once
      x["usd_per_run"] = opt(l.usd_per_run);
      x["runs_affordable"] = opt(l.runs_affordable);
    }
    x["note"] = l.note.empty() ? ordered_json(nullptr) : ordered_json(l.note);
    lines.push_back(x);
  }
  j["lines"] = lines;
  ordered_json buys = ordered_json::array();
  for (const auto& b : r.buys) {
    ordered_json x = {{"system", b.system}, {"pricing", pricing_name(b.rate.pricing)},
                      {"offer", b.rate.offer ? ordered_json(offer_label(b.rate.offer->provider, b.rate.offer->instance))
                                             : ordered_json("TCO")},
                      {"usd_per_device_hour", r6(b.rate.usd_per_device_hour)}, {"device_hours", r6(b.device_hours)},
                      {"device_years", r6(b.device_years)}};
    if (with_explain) x["origin"] = b.rate.origin();
    buys.push_back(x);
  }
  j["buys"] = buys;
  j["fleet_usd_per_month"] = opt(r.fleet_usd_per_month);
  j["fleet_months"] = opt(r.fleet_months);
  j["usd_per_month"] = opt(r.usd_per_month);
  j["runway_months"] = opt(r.runway_months);
  ordered_json bal = ordered_json::array();
  for (double b : r.balance) bal.push_back(r6(b));
  j["balance_usd_by_month"] = bal;
  j["warnings"] = r.warnings;
  return j;
}

std::string budget_text(const BudgetFile& f, const BudgetResult& r, long today, bool with_explain) {
  std::string t = "xpuplan budget: " + short_number(r.usd) + " USD, " + f.name + (f.file.empty() ? "" : " (" + f.file + ")") +
                  ", prices as of " + date_text(today) + "\n\n";
  std::vector<std::vector<std::string>> tab;
  for (const BudgetLine& l : r.lines) {
    tab.push_back({l.kind, l.name, l.system, std::to_string(l.devices), pricing_name(l.rate.pricing),
                   l.rate.known ? fmt("%.3f", l.rate.usd_per_device_hour) : "-",
                   l.kind == "training" && l.plan ? fmt("%.1f", l.days_per_run) : "-",
                   // A run priced once (budget --model) is on no yearly schedule: "-", not 0 runs and 0.00 a month.
                   l.kind == "training" && l.runs_per_year > 0 ? fmt("%g", l.runs_per_year) : "-", cell(l.usd_per_run),
                   cell(l.runs_affordable, "%.1f"),
                   cell(l.usd_per_month)});
  }
  t += "spending\n" + render_table({"kind", "name", "system", "devices", "pricing", "USD/dev-h", "days/run", "runs/y",
                                    "USD/run", "runs bought", "USD/month"},
                                   tab);
  bool burns = false;  // some line spends every month
  for (const BudgetLine& l : r.lines) burns = burns || l.kind == "fleet" || l.runs_per_year > 0;
  t += "\nrunway\n";
  t += "  fleet alone: " + (r.fleet_usd_per_month ? short_number(*r.fleet_usd_per_month) + " USD/month, lasts " +
                                                       fmt("%.1f", *r.fleet_months) + " months"
                                                 : std::string("-")) + "\n";
  t += "  fleet + training schedule: " +
       (r.usd_per_month ? short_number(*r.usd_per_month) + " USD/month, lasts " + fmt("%.1f", *r.runway_months) + " months"
                        : std::string(burns ? "- (a line has no price or no plan)" : "- (no fleet and no yearly training)")) +
       "\n";
  std::vector<std::vector<std::string>> buys;
  for (const auto& b : r.buys)
    buys.push_back({b.system, pricing_name(b.rate.pricing),
                    b.rate.offer ? offer_label(b.rate.offer->provider, b.rate.offer->instance) : std::string("TCO (data/tco)"),
                    fmt("%.3f", b.rate.usd_per_device_hour), short_number(b.device_hours), short_number(b.device_years)});
  t += "\nwhat " + short_number(r.usd) + " USD buys, all on one system\n" +
       render_table({"system", "pricing", "offer", "USD/dev-h", "device-hours", "device-years"}, buys);
  for (const auto& w : r.warnings) t += "warning: " + w + "\n";
  if (with_explain) {
    t += "\nwhere each figure comes from:\n";
    for (const BudgetLine& l : r.lines) {
      t += "  " + l.kind + " '" + l.name + "': price " + l.rate.origin() + "\n";
      if (l.kind == "fleet" && l.usd_per_month)
        t += "    " + count_text(l.devices, "device", "devices") + " x " + fmt("%.4f", l.rate.usd_per_device_hour) +
             " USD x 730.5 h = " + short_number(*l.usd_per_month) + " USD/month\n";
      if (l.kind == "training" && l.plan)
        t += "    plan " + layout_summary(l.plan->layout) + ", step " + fmt("%.4f", l.plan->step_time) +
             " s (predicted), " + fmt("%.2f", l.days_per_run) + " days per run" +
             (l.usd_per_run ? "; USD/run = " + std::to_string(l.devices) + " x " + fmt("%.1f", l.days_per_run * 24) +
                                  " h x " + fmt("%.4f", l.rate.usd_per_device_hour) + " = " + short_number(*l.usd_per_run)
                            : std::string()) +
             "\n";
    }
    t += "  runway = budget / (fleet USD/month + sum of runs/year x USD/run / 12)\n";
    for (const auto& b : r.buys) t += "  " + b.system + " " + pricing_name(b.rate.pricing) + ": " + b.rate.origin() + "\n";
  }
  return t;
}

std::vector<PlotPanel> budget_plot(const BudgetFile& f, const BudgetResult& r) {
  PlotPanel p;
  p.style = PlotPanel::Style::lines;
  p.title = f.name + ": budget left";
  p.xlabel = "month";
  p.ylabel = "billion USD";
  p.zero_line = true;
  PlotSeries s{"fleet + training", {}};
  for (std::size_t i = 0; i < r.balance.size(); ++i) {
    p.x.push_back(std::to_string(i));
    s.y.push_back(r.balance[i] / 1e9);
  }
  p.series = {s};
  return {p};
}

// ---------------------------------------------------------------------------------------------- contract

ordered_json contract_json(const ContractFile& f, const ContractResult& r, long today, bool with_explain) {
  ordered_json j;
  j["name"] = f.name;
  j["file"] = f.file;
  j["source"] = f.source;
  j["as_of"] = date_text(today);
  j["total_usd"] = r6(f.total_usd);
  j["years"] = r.years;
  ordered_json uy = ordered_json::array();
  for (double v : r.usd_by_year) uy.push_back(r6(v));
  j["usd_by_year"] = uy;
  ordered_json caps = ordered_json::array();
  for (const auto& c : r.capacity) {
    ordered_json x;
    x["system"] = c.item.system;
    x["share"] = r6(c.item.share);
    x["priced"] = c.priced;
    x["usd_per_device_hour"] = c.item.usd_per_device_hour ? ordered_json(r6(*c.item.usd_per_device_hour))
                                                          : (c.rate.known ? ordered_json(r6(c.rate.usd_per_device_hour))
                                                                          : ordered_json(nullptr));
    x["price_origin"] = c.price_origin;
    x["reference_run"] = {{"model", c.item.model}, {"tokens", c.item.tokens}, {"devices", c.item.devices},
                          {"layout", c.plan ? ordered_json(layout_summary(c.plan->layout)) : ordered_json(nullptr)},
                          {"step_time_s", c.plan ? ordered_json(r6(c.plan->step_time)) : ordered_json(nullptr)},
                          {"mfu", c.plan ? ordered_json(r6(c.plan->mfu)) : ordered_json(nullptr)},
                          {"days", c.plan ? ordered_json(r6(c.run_days)) : ordered_json(nullptr)},
                          {"device_hours", c.plan ? ordered_json(r6(c.run_device_hours)) : ordered_json(nullptr)}};
    // Null, never a 0 that reads as a figure: device-hours need a price, FLOPs and runs a plan too.
    auto priced = [&](double v) { return c.priced ? ordered_json(r6(v)) : ordered_json(nullptr); };
    auto planned = [&](double v) { return c.priced && c.plan ? ordered_json(r6(v)) : ordered_json(nullptr); };
    ordered_json ys = ordered_json::array();
    for (std::size_t y = 0; y < c.years.size(); ++y)
      ys.push_back({{"year", r.years[y]}, {"usd", r6(c.years[y].usd)}, {"device_hours", priced(c.years[y].device_hours)},
                    {"average_devices", priced(c.years[y].average_devices)}, {"flops", planned(c.years[y].flops)},
                    {"runs", planned(c.years[y].runs)},
                    {"served_tokens", c.serving && c.serving->ok && c.priced ? ordered_json(r6(c.years[y].served_tokens))
                                                                             : ordered_json(nullptr)}});
    x["by_year"] = ys;
    x["total"] = {{"usd", r6(c.total.usd)}, {"device_hours", priced(c.total.device_hours)},
                  {"average_devices", priced(c.total.average_devices)}, {"flops", planned(c.total.flops)},
                  {"runs", planned(c.total.runs)}};
    const bool served = c.serving && c.serving->ok && c.priced;
    if (c.serving) {
      ordered_json sv;
      sv["model"] = c.item.serve_model;
      sv["input_len"] = c.item.serve_input_len;
      sv["output_len"] = c.item.serve_output_len;
      if (c.item.serve_input_spread.set()) sv["input_spread"] = spread_name(c.item.serve_input_spread);
      if (c.item.serve_output_spread.set()) sv["output_spread"] = spread_name(c.item.serve_output_spread);
      sv["slo_ttft_ms"] = c.item.serve_slo_ttft_ms > 0 ? ordered_json(c.item.serve_slo_ttft_ms) : ordered_json(nullptr);
      sv["slo_tpot_ms"] = c.item.serve_slo_tpot_ms > 0 ? ordered_json(c.item.serve_slo_tpot_ms) : ordered_json(nullptr);
      sv["layout"] = c.serving->ok ? ordered_json(serve_layout_summary(c.serving->report)) : ordered_json(nullptr);
      sv["workload"] = c.serving->ok ? ordered_json(c.serving->workload) : ordered_json(nullptr);
      sv["output_tps_per_device"] = c.serving->ok ? ordered_json(r6(c.serving->report.output_tps_per_device)) : ordered_json(nullptr);
      if (with_explain && c.serving->ok) {
        ordered_json e = ordered_json::array();
        for (const ServeTerm& t : c.serving->report.explain)
          if (t.name != kServePriceTerm) e.push_back({{"term", t.name}, {"value", t.value}, {"origin", t.source}});
        sv["explain"] = e;
      }
      x["serving"] = sv;
    } else {
      x["serving"] = nullptr;
    }
    x["served_tokens"] = served ? ordered_json(r6(c.total.served_tokens)) : ordered_json(nullptr);
    x["served_output_tokens"] = served ? ordered_json(r6(c.total.served_output_tokens)) : ordered_json(nullptr);
    x["note"] = c.note.empty() ? ordered_json(nullptr) : ordered_json(c.note);
    caps.push_back(x);
  }
  j["capacity"] = caps;
  ordered_json flows = ordered_json::array();
  for (const auto& fl : r.all_flows) {
    ordered_json x = {{"year", fl.year}, {"from", fl.from}, {"to", fl.to}, {"kind", fl.kind}, {"usd", r6(fl.usd)}};
    if (with_explain) x["source"] = fl.note;
    flows.push_back(x);
  }
  j["flows"] = flows;
  j["parties"] = r.parties;
  j["flow_years"] = r.flow_years;
  ordered_json net = ordered_json::object();
  for (const auto& p : r.parties) {
    ordered_json v = ordered_json::array();
    for (double x : r.net.at(p)) v.push_back(r6(x));
    net[p] = v;
  }
  j["net_usd_by_party"] = net;
  ordered_json ns = ordered_json::array();
  for (double x : r.net_sum) ns.push_back(r6(x));
  j["net_usd_sum"] = ns;
  ordered_json rets = ordered_json::array();
  for (const auto& x : r.returns)
    rets.push_back({{"investor", x.investor}, {"investee", x.investee}, {"invested_usd", r6(x.invested)},
                    {"returned_usd", r6(x.returned)}, {"returned_share", r6(x.share())}});
  j["returns"] = rets;
  j["warnings"] = r.warnings;
  return j;
}

std::string contract_text(const ContractFile& f, const ContractResult& r, long today, bool with_explain) {
  std::string t = "xpuplan contract: " + f.name + " (" + f.file + "), prices as of " + date_text(today) + "\n  " +
                  short_number(f.total_usd) + " USD over " + std::to_string(f.years) + " years from " +
                  std::to_string(f.start_year) + "\n  source: " + f.source + "\n";
  for (const auto& c : r.capacity) {
    t += "\n" + c.item.system + " (" + fmt("%.0f%%", 100 * c.item.share) + " of the dollars) at " +
         (c.priced ? fmt("%.3f", c.item.usd_per_device_hour ? *c.item.usd_per_device_hour : c.rate.usd_per_device_hour) +
                         " USD/device-h"
                   : std::string("no price")) + "\n";
    if (c.plan)
      t += "  reference run: " + c.item.model + ", " + tokens_text(c.item.tokens) + " tokens on " +
           count_text(c.item.devices, "device", "devices") + ": " + layout_summary(c.plan->layout) + ", MFU " +
           fmt("%.1f%%", 100 * c.plan->mfu) + ", " + fmt("%.1f", c.run_days) + " days, " +
           short_number(c.run_device_hours) + " device-hours\n";
    if (!c.note.empty()) t += "  note: " + c.note + "\n";
    std::vector<std::vector<std::string>> tab;
    for (std::size_t y = 0; y < c.years.size(); ++y) {
      const auto& cy = c.years[y];
      tab.push_back({std::to_string(r.years[y]), short_number(cy.usd), c.priced ? short_number(cy.device_hours) : "-",
                     c.priced ? short_number(cy.average_devices) : "-", c.priced && c.plan ? fmt("%.3g", cy.flops) : "-",
                     c.priced && c.plan ? fmt("%.1f", cy.runs) : "-"});
    }
    tab.push_back({"total", short_number(c.total.usd), c.priced ? short_number(c.total.device_hours) : "-",
                   c.priced ? short_number(c.total.average_devices) : "-",
                   c.priced && c.plan ? fmt("%.3g", c.total.flops) : "-", c.priced && c.plan ? fmt("%.1f", c.total.runs) : "-"});
    t += render_table({"year", "USD", "device-hours", "avg devices", "FLOPs at MFU", "runs"}, tab);
    if (!c.serving) {
      t += "  served tokens: no serving profile (add serve_model, serve_input_len, serve_output_len to [[capacity]])\n";
    } else if (c.serving->ok && c.priced) {
      const ServeReport& sr = c.serving->report;
      t += "  served tokens: " + fmt("%.3g", c.total.served_tokens) + " (" + fmt("%.3g", c.total.served_output_tokens) +
           " output) over the contract, " + c.item.serve_model + " at " + fmt("%.0f", sr.output_tps_per_device) +
           " output tokens/s per device (" + serve_layout_summary(sr) + ", " + c.serving->workload + "), requests of " +
           std::to_string(c.item.serve_input_len) + " in / " + std::to_string(c.item.serve_output_len) +
           " out tokens, every device-hour busy\n";
      std::string per_year;
      for (std::size_t y = 0; y < c.years.size(); ++y)
        per_year += (y ? ", " : "") + std::to_string(r.years[y]) + " " + fmt("%.3g", c.years[y].served_tokens);
      t += "    per year: " + per_year + "\n";
      if (with_explain) {
        t += "    = device-hours x 3600 s x output tokens/s per device x (input + output) / output tokens\n";
        for (const ServeTerm& e : sr.explain)
          if (e.name != kServePriceTerm) t += "    " + e.name + ": " + e.value + (e.source.empty() ? "" : "  [" + e.source + "]") + "\n";
      }
    } else {
      t += "  served tokens: not computed (" + (c.serving->ok ? std::string("no price") : c.serving->note) + ")\n";
    }
  }
  if (!r.all_flows.empty()) {
    t += "\ncash flows: net USD per party per year (in - out)\n";
    std::vector<std::string> head = {"party"};
    for (int y : r.flow_years) head.push_back(std::to_string(y));
    head.push_back("total");
    std::vector<std::vector<std::string>> tab;
    for (const auto& p : r.parties) {
      std::vector<std::string> row = {p};
      double tot = 0;
      for (double v : r.net.at(p)) {
        row.push_back(short_number(v));
        tot += v;
      }
      row.push_back(short_number(tot));
      tab.push_back(row);
    }
    std::vector<std::string> sum = {"sum"};
    double tot = 0;
    for (double v : r.net_sum) {
      sum.push_back(short_number(v));
      tot += v;
    }
    sum.push_back(short_number(tot));
    tab.push_back(sum);
    t += render_table(head, tab);
    for (const auto& x : r.returns)
      t += "  " + x.investor + " invested " + short_number(x.invested) + " USD in " + x.investee + "; " +
           short_number(x.returned) + " USD (" + fmt("%.0f%%", 100 * x.share()) + ") returns to " + x.investor +
           " as cloud or chip revenue\n";
  }
  for (const auto& w : r.warnings) t += "warning: " + w + "\n";
  if (with_explain) {
    t += "\nwhere each figure comes from:\n";
    t += "  USD per year = total x ramp share x capacity share; device-hours = USD / USD per device-hour;\n"
         "  FLOPs = device-hours x 3600 s x dense peak at the plan's precision x predicted MFU; runs = device-hours / "
         "device-hours of one reference run\n";
    for (const auto& c : r.capacity) {
      t += "  " + c.item.system + ": price " + c.price_origin + "\n";
      if (c.plan)
        t += "    reference plan " + layout_summary(c.plan->layout) + ", step " + fmt("%.4f", c.plan->step_time) +
             " s, MFU " + fmt("%.4f", c.plan->mfu) + " of " + fmt("%.4g", c.peak_flops_per_device) +
             " FLOP/s per device (predicted, train/evaluate.cpp)\n";
    }
    for (const auto& fl : r.all_flows)
      t += "  flow " + std::to_string(fl.year) + " " + fl.from + " -> " + fl.to + " " + fl.kind + " " +
           short_number(fl.usd) + ": " + fl.note + "\n";
  }
  return t;
}

std::vector<PlotPanel> contract_plot(const ContractFile& f, const ContractResult& r) {
  std::vector<PlotPanel> out;
  PlotPanel spend;
  spend.title = f.name + ": commitment by year";
  spend.ylabel = "billion USD";
  PlotSeries s{"USD", {}};
  for (std::size_t y = 0; y < r.years.size(); ++y) {
    spend.x.push_back(std::to_string(r.years[y]));
    s.y.push_back(r.usd_by_year[y] / 1e9);
  }
  spend.series = {s};
  out.push_back(spend);
  if (!r.parties.empty()) {
    PlotPanel flows;
    flows.title = "net cash flow per party (in - out)";
    flows.ylabel = "billion USD";
    for (int y : r.flow_years) flows.x.push_back(std::to_string(y));
    for (const auto& p : r.parties) {
      PlotSeries ps{p, {}};
      for (double v : r.net.at(p)) ps.y.push_back(v / 1e9);
      flows.series.push_back(ps);
    }
    // Bars cannot go below zero with yrange [0:*]: draw flows as lines.
    flows.style = PlotPanel::Style::lines;
    flows.zero_line = true;
    flows.xlabel = "year";
    out.push_back(flows);
  }
  return out;
}

}  // namespace xpu
