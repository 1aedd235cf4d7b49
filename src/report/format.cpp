#include "report/format.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "spec/error.hpp"
#include "train/evaluate.hpp"

namespace xpu {

using nlohmann::ordered_json;

namespace {

constexpr auto& fmt = format_number;

// A cell that is one number with at most one unit word ("4.23 s", "38.1%", "1.98 PFLOP/s",
// "62.5 GiB of 74.5 GiB" is not): right-aligned in tables.
bool numeric(const std::string& s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  const std::size_t digits_from = i;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == ',')) ++i;
  if (i == digits_from) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  }
  if (i < s.size() && s[i] == ' ') ++i;
  for (; i < s.size(); ++i)
    if (s[i] == ' ') return false;
  return true;
}

constexpr auto& r6 = round6;

}  // namespace

std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                         bool right_align_numbers) {
  std::vector<std::size_t> w(header.size(), 0);
  for (std::size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  std::string out;
  auto line = [&](const std::vector<std::string>& r, bool head) {
    for (std::size_t i = 0; i < w.size(); ++i) {
      std::string cell = i < r.size() ? r[i] : "";
      // A cell is one line: a control character from a user's file (a name with "\n" in it)
      // would break the table's rows, so it shows as a space (same width).
      for (char& ch : cell)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = ' ';
      const std::string pad(w[i] - std::min(w[i], cell.size()), ' ');
      const bool right = !head && right_align_numbers && numeric(cell);
      out += (i ? "  " : "") + (right ? pad + cell : cell + (i + 1 < w.size() ? pad : ""));
    }
    out += '\n';
  };
  line(header, true);
  std::vector<std::string> rule;
  for (auto x : w) rule.push_back(std::string(x, '-'));
  line(rule, true);
  for (const auto& r : rows) line(r, false);
  return out;
}

std::string zero_copies(const Layout& l) {
  if (l.zero_group < 1 || (l.dp * l.cp) % l.zero_group != 0) return "";
  return ", " + std::to_string(l.zero_replicas()) + (l.zero_replicas() == 1 ? " copy" : " copies");
}

namespace {

// " fsdp <rate>/<overlap>" when the plan names its ZeRO-3 implementation's rate or overlap.
std::string fsdp_summary(const Layout& l) {
  if (l.zero != 3 || !l.fsdp.set()) return "";
  std::string s = " fsdp";
  if (l.fsdp.rate > 0) s += " " + format_number("%.3g", l.fsdp.rate / 1e9) + "GB/s";
  if (l.fsdp.overlap >= 0) s += " overlap " + format_number("%.2g", l.fsdp.overlap);
  return s;
}
// Selective recompute's modules where they are not the default (core_attn alone), between
// `before` and `after`.
std::string selective_modules_suffix(const Layout& l, const char* before, const char* after = "") {
  if (l.recompute != Recompute::selective || l.recompute_modules == kRecomputeModulesDefault) return "";
  return before + recompute_modules_name(l.recompute_modules) + after;
}

ordered_json recompute_modules_json(const Layout& l) {
  ordered_json a = ordered_json::array();
  if (l.recompute == Recompute::selective)
    for (const std::string& name : recompute_module_names(l.recompute_modules)) a.push_back(name);
  return a;
}
}  // namespace

std::string layout_summary(const Layout& l) {
  return "tp" + std::to_string(l.tp) + " pp" + std::to_string(l.pp) + " vp" + std::to_string(l.vp) + " dp" +
         std::to_string(l.dp) + " cp" + std::to_string(l.cp) + (l.ep > 1 ? " ep" + std::to_string(l.ep) : "") +
         (l.expert_tp() != l.tp ? " etp" + std::to_string(l.expert_tp()) : "") + " mb" +
         std::to_string(l.micro_batch) + " z" + std::to_string(l.zero) + (l.zero_group > 0 ? "/" + std::to_string(l.zero_group) : "") +
         " " + recompute_name(l.recompute) +
         (l.recompute_layers > 0 ? ":" + std::to_string(l.recompute_layers) : "") + selective_modules_suffix(l, ":") + " " +
         precision_name(l.precision) + (l.grad_fp32 ? std::string() : std::string(" g-") + grad_name(l)) + (l.lowp_params ? " lowp-w" : "") +
         (l.schedule != PipeSchedule::one_f_one_b ? std::string(" ") + schedule_name(l.schedule) : std::string()) + (l.cp > 1 && l.cp_mode == CpMode::all_gather ? " cp-ag" : "") +
         (l.attention == AttentionKernel::unfused ? " attn-unfused" : "") +
         (l.rank_order == RankOrder::pp_then_dp ? " dp-outer" : "") +
         (l.moe_dispatcher == MoeDispatcher::alltoall ? " a2a-dispatch" : "") + (l.moe_a2a_overlap ? " a2a-overlap" : "") +
         (l.offload_activations ? " offload" : "") + (l.mtp_layers > 0 ? " mtp" + std::to_string(l.mtp_layers) : "") +
         (l.stage_layout ? " layout " + l.stage_layout->text : "") + fsdp_summary(l);
}

ordered_json layout_json(const Model& m, const Layout& l) {
  ordered_json j = {{"tp", l.tp}, {"pp", l.pp}, {"vp", l.vp}, {"dp", l.dp}, {"cp", l.cp}, {"ep", l.ep}, {"etp", l.expert_tp()},
                    {"micro_batch", l.micro_batch}, {"zero", l.zero},
                    {"zero_group", l.zero_group > 0 ? ordered_json(l.zero_group) : ordered_json(nullptr)},
                    {"recompute", recompute_name(l.recompute)},
                    {"recompute_layers", l.recompute_layers}, {"recompute_modules", recompute_modules_json(l)},
                    {"precision", precision_name(l.precision)}, {"sequence_parallel", l.sequence_parallel && l.tp > 1},
                    {"grad_precision", grad_name(l)}, {"lowp_params", l.lowp_params},
                    {"schedule", schedule_name(l.schedule)}, {"cp_mode", cp_mode_name(l.cp_mode)},
                    {"attention", attention_kernel_name(l.attention)}, {"rank_order", rank_order_name(l.rank_order)}};
  if (m.is_moe()) {
    j["moe_dispatcher"] = moe_dispatcher_name(l.moe_dispatcher);
    j["moe_a2a_overlap"] = l.moe_a2a_overlap;
  }
  j["offload_activations"] = l.offload_activations;
  j["mtp_layers"] = l.mtp_layers;
  j["pipeline_layout"] = l.stage_layout ? ordered_json(l.stage_layout->text) : ordered_json(nullptr);
  if (l.zero == 3 && l.fsdp.rate > 0) j["fsdp_rate_bytes_per_s"] = l.fsdp.rate;
  if (l.zero == 3 && l.fsdp.overlap >= 0) j["fsdp_overlap"] = l.fsdp.overlap;
  return j;
}

ordered_json train_json(const Model& m, const System& s, const TrainReport& r, bool with_explain) {
  const Layout& l = r.layout;
  ordered_json j;
  j["model"] = m.id;
  j["system"] = s.id;
  j["devices"] = r.devices;
  j["seq_len"] = r.work.seq_len;
  j["global_batch"] = r.work.global_batch;
  if (m.is_moe()) {
    j["moe_routing"] = r.work.moe_capacity_factor > 0 ? "capacity" : "dropless";
    j["moe_load"] = r.work.moe_load(m.moe.routing_imbalance);
  }
  j["layout"] = layout_json(m, l);
  j["microbatches"] = r.microbatches;
  j["feasible"] = r.feasible();
  if (!r.warning.empty()) j["warning"] = r.warning;
  if (!r.feasible()) {
    j["infeasible"] = infeasible_name(r.why);
    j["reason"] = r.reason;
  } else {
    j["step_time_s"] = r6(r.step_time);
    j["tokens_per_s"] = r6(r.tokens_per_s);
    j["tokens_per_s_per_device"] = r6(r.tokens_per_s_per_device);
    j["mfu_pct"] = r6(100 * r.mfu);
    j["hfu_pct"] = r6(100 * r.hfu);
    j["mfu_formula"] = kMfuFormula;
    j["model_flops_per_step"] = r6(r.model_flops_per_step);
    j["peak_flops_per_device"] = r6(r.peak_flops_per_device);
    const TimeBreakdown& t = r.time;
    j["time_s"] = {{"gemm", r6(t.gemm)}, {"attention", r6(t.attention)}, {"elementwise", r6(t.elementwise)},
                   {"recompute", r6(t.recompute)}, {"tp_comm", r6(t.tp_comm)}, {"cp_comm", r6(t.cp_comm)},
                   {"ep_comm", r6(t.ep_comm)}, {"pp_comm", r6(t.pp_comm)}, {"bubble", r6(t.bubble)},
                   {"dp_comm", r6(t.dp_comm)}, {"fsdp_comm", r6(t.fsdp_comm)}, {"optimizer", r6(t.optimizer)},
                   {"overhead", r6(t.overhead)}, {"offload", r6(t.offload)}};
  }
  const MemoryBreakdown& mm = r.mem;
  j["memory_bytes"] = {{"weights", r6(mm.weights)}, {"gradients", r6(mm.gradients)}, {"optimizer", r6(mm.optimizer)},
                       {"activations", r6(mm.activations)}, {"transient", r6(mm.transient)}, {"reserve", r6(mm.reserve)},
                       {"total", r6(mm.total())}, {"capacity", r6(mm.capacity)}, {"stage", mm.stage},
                       {"host", r6(mm.host)}, {"host_stage", mm.host_stage}};
  if (with_explain) {
    ordered_json e = ordered_json::array();
    for (const auto& x : explain(m, s, r)) e.push_back({{"term", x.term}, {"value", x.value}, {"origin", x.origin}});
    j["explain"] = e;
  }
  return j;
}

std::string train_text(const Model& m, const System& s, const TrainReport& r, bool with_explain) {
  const Layout& l = r.layout;
  std::string out;
  out += "xpuplan train: " + m.name + " on " + std::to_string(r.devices) + " x " + s.device_unit + " of " + s.name + "\n";
  out += "  seq " + std::to_string(r.work.seq_len) + ", global batch " + std::to_string(r.work.global_batch) +
         " sequences, " + std::to_string(r.microbatches) + (r.microbatches == 1 ? " microbatch" : " microbatches") + " per replica\n";
  out += "  layout: tp " + std::to_string(l.tp) + "  pp " + std::to_string(l.pp) + "  vp " + std::to_string(l.vp) + "  dp " +
         std::to_string(l.dp) + "  cp " + std::to_string(l.cp) + "  ep " + std::to_string(l.ep) +
         (l.expert_tp() != l.tp ? "  etp " + std::to_string(l.expert_tp()) : "") + "  micro-batch " +
         std::to_string(l.micro_batch) + "  ZeRO-" + std::to_string(l.zero) +
         (l.zero_group > 0 ? " (groups of " + std::to_string(l.zero_group) + zero_copies(l) + ")" : std::string()) +
         "  recompute " + recompute_name(l.recompute) +
         (l.recompute_layers > 0 ? " (" + std::to_string(l.recompute_layers) + (l.recompute_layers == 1 ? " layer per stage)" : " layers per stage)") : "") +
         selective_modules_suffix(l, " (", ")") + "  " + precision_name(l.precision) + (l.tp > 1 && l.sequence_parallel ? "  (sequence parallel)" : "") +
         (l.schedule != PipeSchedule::one_f_one_b ? std::string("  schedule ") + schedule_name(l.schedule) : std::string()) +
         (l.cp > 1 ? std::string("  cp ") + cp_mode_name(l.cp_mode) : std::string()) +
         (l.attention == AttentionKernel::unfused ? "  attention unfused" : "") +
         (l.rank_order == RankOrder::pp_then_dp ? std::string("  ranks ") + rank_order_name(l.rank_order) : std::string()) +
         (l.moe_dispatcher == MoeDispatcher::alltoall ? "  dispatcher alltoall" : "") +
         (l.moe_a2a_overlap ? "  all-to-all overlapped" : "") +
         (l.offload_activations ? "  activations offloaded to host" : "") +
         (l.mtp_layers > 0 ? "  MTP " + std::to_string(l.mtp_layers) + (l.mtp_layers == 1 ? " module" : " modules") : std::string()) +
         (l.stage_layout ? "  pipeline layout " + l.stage_layout->text : std::string()) +
         (fsdp_summary(l).empty() ? "" : " " + fsdp_summary(l)) + "\n" +
         "  gradients " + std::string(grad_name(l)) + (l.lowp_params ? ", primary weights in " + std::string(precision_name(l.precision)) : "") +
         "\n";
  // A chip family no measured run has fitted: its efficiencies are assumed, and the figures say so.
  if (s.calib.status != "fitted")
    out += "  calibration " + s.calib.status + ": " + (s.calib.file.empty() ? std::string("built-in defaults") : s.calib.file) +
           " was fitted on no measured run of this chip family; its efficiencies are estimates\n";
  out += "\n";
  if (!r.feasible()) {
    out += "  DOES NOT FIT (" + std::string(infeasible_name(r.why)) + "): " + r.reason + "\n";
  } else {
    std::vector<std::vector<std::string>> rows = {
        {"step time", format_seconds(Seconds{r.step_time})},
        {"tokens/s", fmt("%.4g", r.tokens_per_s)},
        {"tokens/s per device", fmt("%.1f", r.tokens_per_s_per_device)},
        {"MFU", fmt("%.1f %%", 100 * r.mfu) + " of " + format_flop_rate(FlopRate{r.peak_flops_per_device}) + " " +
                    precision_name(l.precision) + " peak"},
        {"HFU", fmt("%.1f %%", 100 * r.hfu)},
    };
    out += render_table({"metric", "value"}, rows) + "\n";
    const TimeBreakdown& t = r.time;
    std::vector<std::pair<const char*, double>> terms = {
        {"GEMM", t.gemm}, {"attention", t.attention}, {"elementwise", t.elementwise}, {"recompute", t.recompute},
        {"TP comm (exposed)", t.tp_comm}, {"CP comm (exposed)", t.cp_comm}, {"EP all-to-all (exposed)", t.ep_comm},
        {"PP send/recv", t.pp_comm}, {"pipeline bubble", t.bubble}, {"DP comm (exposed)", t.dp_comm},
        {"ZeRO-3 comm (exposed)", t.fsdp_comm}, {"optimizer step", t.optimizer}, {"fixed overhead", t.overhead}};
    if (l.offload_activations) terms.push_back({"host offload (exposed)", t.offload});
    std::vector<std::vector<std::string>> trows;
    for (auto& [name, v] : terms) trows.push_back({name, format_seconds(Seconds{v}), fmt("%.1f %%", 100 * v / r.step_time)});
    out += render_table({"time per step", "seconds", "share"}, trows) + "\n";
  }
  const MemoryBreakdown& mm = r.mem;
  std::vector<std::vector<std::string>> mrows = {
      {"weights", format_bytes(Bytes{mm.weights})},         {"gradients", format_bytes(Bytes{mm.gradients})},
      {"optimizer state", format_bytes(Bytes{mm.optimizer})}, {"activations", format_bytes(Bytes{mm.activations})},
      {"transient", format_bytes(Bytes{mm.transient})},     {"reserve", format_bytes(Bytes{mm.reserve})},
      {"total", format_bytes(Bytes{mm.total()}) + " of " + format_bytes(Bytes{mm.capacity})}};
  if (l.offload_activations)
    mrows.push_back({"host (offloaded)", format_bytes(Bytes{mm.host}) +
                                             (s.host_memory ? " of " + format_bytes(Bytes{*s.host_memory}) : std::string(" (host memory not in the catalog)")) +
                                             (l.pp > 1 ? " (stage " + std::to_string(mm.host_stage + 1) + ")" : std::string())});
  if (mm.capacity > 0) {
    const std::string head = r.layout.pp > 1 ? "memory per device (stage " + std::to_string(mm.stage + 1) + " of " + std::to_string(r.layout.pp) + ")"
                                             : std::string("memory per device");
    out += render_table({head, "bytes"}, mrows);
  }
  if (with_explain) {
    std::vector<std::vector<std::string>> erows;
    for (const auto& x : explain(m, s, r)) erows.push_back({x.term, x.value, x.origin});
    out += "\n" + render_table({"term", "value", "from"}, erows, false);
  }
  return out;
}

namespace {
ordered_json stats_json(const ErrorStats& s) {
  // A subset without rows has no error: null, not 0 (which would read as a perfect fit).
  if (s.count == 0) return {{"mape_pct", nullptr}, {"max_abs_error_pct", nullptr}, {"count", 0}};
  return {{"mape_pct", r6(s.mape_pct)}, {"max_abs_error_pct", r6(s.max_abs_pct)}, {"count", s.count}};
}
ordered_json stats_json(const std::map<std::string, ErrorStats>& by) {
  ordered_json j = ordered_json::object();
  for (const auto& [k, s] : by) j[k] = stats_json(s);
  return j;
}
}  // namespace

void SubsetTable::add(const std::string& name, const ErrorStats& s) {
  if (s.count == 0) {
    rows_.push_back({name, "0", "-", "-"});  // no rows: no error to show
    return;
  }
  rows_.push_back({name, std::to_string(s.count), fmt("%.1f%%", s.mape_pct), fmt("%.1f%%", s.max_abs_pct)});
}

void SubsetTable::add_each(const std::map<std::string, ErrorStats>& by, const std::string& prefix,
                           const std::string& suffix) {
  for (const auto& [k, s] : by) add(prefix + k + suffix, s);
}

std::string SubsetTable::render() const { return render_table({"subset", "rows", "MAPE", "max |error|"}, rows_); }

ordered_json validation_json(const ValidationResult& v) {
  ordered_json rows = ordered_json::array();
  for (const auto& r : v.rows) {
    ordered_json j = {{"id", r.id}, {"grade", r.grade}, {"system", r.system}, {"metric", r.metric},
                      {"predicted", r.evaluated ? ordered_json(r6(r.predicted)) : ordered_json(nullptr)},
                      {"measured", r6(r.measured)}, {"error_pct", r6(r.error_pct)}, {"evaluated", r.evaluated}};
    if (!r.evaluated) {
      j["reason"] = r.reason;
    } else {
      if (!r.plan.warning.empty()) j["warning"] = r.plan.warning;
      if (!r.facts.empty()) {
        ordered_json fs = ordered_json::array();
        for (const auto& f : r.facts)
          fs.push_back({{"field", f.field}, {"value", f.text.empty() ? ordered_json(f.value) : ordered_json(f.text)},
                        {"source", f.source}, {"file", f.file}, {"line", f.line}});
        j["run_facts"] = fs;
      }
      const Layout& l = r.plan.layout;
      j["plan"] = {{"tp", l.tp}, {"pp", l.pp}, {"vp", l.vp}, {"dp", l.dp}, {"cp", l.cp}, {"ep", l.ep},
                   {"micro_batch", l.micro_batch}, {"zero", l.zero},
                   {"zero_group", l.zero_group > 0 ? ordered_json(l.zero_group) : ordered_json(nullptr)},
                   {"recompute", recompute_name(l.recompute)},
                   {"recompute_layers", l.recompute_layers}, {"recompute_modules", recompute_modules_json(l)},
                   {"precision", precision_name(l.precision)}, {"schedule", schedule_name(l.schedule)},
                   {"offload_activations", l.offload_activations}, {"mtp_layers", l.mtp_layers},
                   {"pipeline_layout", l.stage_layout ? ordered_json(l.stage_layout->text) : ordered_json(nullptr)}};
    }
    rows.push_back(j);
  }
  ordered_json summary = stats_json(v.headline);
  summary["grades"] = "A+B";
  summary["dense"] = stats_json(v.dense);
  summary["per_family"] = stats_json(v.per_family);
  summary["per_system"] = stats_json(v.per_system);
  summary["per_grade"] = stats_json(v.per_grade);
  return {{"truth", v.path}, {"run_facts", v.facts_path.empty() ? ordered_json(nullptr) : ordered_json(v.facts_path)},
          {"rows", rows}, {"summary", summary}};
}

std::string validation_text(const ValidationResult& v) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : v.rows) {
    std::string plan;
    if (r.evaluated) {
      const Layout& l = r.plan.layout;
      plan = layout_summary(l);
      plan += facts_suffix(r.facts);
      if (!r.plan.warning.empty()) plan += " [memory model over capacity]";
    } else {
      plan = "NOT EVALUATED: " + r.reason;
    }
    rows.push_back({r.id, r.grade, r.system, r.metric == "step_time_s" ? "step s" : "tok/s/dev",
                    r.evaluated ? fmt("%.4g", r.predicted) : "-", fmt("%.4g", r.measured), fmt("%+.1f%%", r.error_pct), plan});
  }
  std::string out = validation_head("", v) +
                    render_table({"id", "grade", "system", "metric", "predicted", "measured", "error", "plan"}, rows);
  SubsetTable subsets;
  subsets.add("headline: grades A+B", v.headline);
  subsets.add("dense models, grades A+B", v.dense);
  subsets.add_each(v.per_family, "family ", " (A+B)");
  subsets.add_each(v.per_system, "system ", " (A+B)");
  subsets.add_each(v.per_grade, "grade ", "");
  out += "\n" + subsets.render();
  return out;
}

ordered_json kernel_validation_json(const ValidationResult& v) {
  ordered_json rows = ordered_json::array();
  for (const auto& r : v.rows) {
    ordered_json j = {{"id", r.id},         {"line", r.line},         {"grade", r.grade},
                      {"chip", r.system},   {"kernel", r.model},      {"precision", r.stat},
                      {"metric", r.metric}, {"measured", r6(r.measured)}, {"evaluated", r.evaluated}};
    if (r.evaluated) {
      j["predicted"] = r6(r.predicted);
      j["shape"] = r.layout;
    } else {
      j["reason"] = r.reason;
    }
    j["error_pct"] = r6(r.error_pct);
    rows.push_back(j);
  }
  ordered_json summary = stats_json(v.headline);
  summary["grades"] = "A+B";
  summary["per_kernel"] = stats_json(v.per_metric);
  summary["per_chip"] = stats_json(v.per_system);
  summary["per_grade"] = stats_json(v.per_grade);
  return {{"truth", v.path}, {"table", "kernels"}, {"rows", rows}, {"summary", summary}};
}

std::string facts_suffix(const std::vector<RunFact>& facts) {
  std::string out;
  for (const auto& f : facts) out += " " + f.field + "=" + (f.text.empty() ? fmt("%g", f.value) : f.text);
  return out;
}

std::string validation_head(const std::string& kind, const ValidationResult& v) {
  std::string out = "xpuplan validate" + (kind.empty() ? std::string() : " (" + kind + ")") + ": " + v.path + "\n";
  if (!v.facts_path.empty()) out += "  run facts (what the sources state beyond FORMAT.md's columns): " + v.facts_path + "\n";
  return out + "\n";
}

std::string kernel_validation_text(const ValidationResult& v) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : v.rows)
    rows.push_back({r.id, r.grade, r.system, r.model, r.evaluated ? r.layout : "NOT EVALUATED: " + r.reason,
                    r.evaluated ? fmt("%.4g", r.predicted) : "-", fmt("%.4g", r.measured), fmt("%+.1f%%", r.error_pct)});
  std::string out = validation_head("kernels", v) +
                    render_table({"id", "grade", "chip", "kernel", "shape", "predicted us", "measured us", "error"}, rows);
  SubsetTable subsets;
  subsets.add("headline: grades A+B", v.headline);
  subsets.add_each(v.per_metric, "kernel ", " (A+B)");
  subsets.add_each(v.per_system, "chip ", " (A+B)");
  subsets.add_each(v.per_grade, "grade ", "");
  out += "\n" + subsets.render();
  return out;
}

ordered_json catalog_json(const Catalog& c) {
  ordered_json j;
  ordered_json systems = ordered_json::array(), models = ordered_json::array(), chips = ordered_json::array();
  for (const auto& [id, s] : c.systems)
    systems.push_back({{"id", id}, {"name", s.name}, {"chip", s.chip_id}, {"device_unit", s.device_unit},
                       {"scale_up_size", s.scale_up.size}, {"calibration", s.calib.status}});
  for (const auto& [id, m] : c.models) {
    const ParamCounts pc = count_params(m);
    models.push_back({{"id", id}, {"name", m.name}, {"params", r6(pc.total())}, {"active_params", r6(pc.active(m))},
                      {"layers", m.layers}, {"moe", m.is_moe()}});
  }
  for (const auto& [id, ch] : c.chips) chips.push_back({{"id", id}, {"name", ch.name}, {"vendor", ch.vendor}});
  j["systems"] = systems;
  j["models"] = models;
  j["chips"] = chips;
  return j;
}

std::string catalog_text(const Catalog& c) {
  std::vector<std::vector<std::string>> srows, mrows;
  for (const auto& [id, s] : c.systems) {
    // A chip without bf16 (V100) shows its fp16 rate, marked so.
    const auto bf = s.peak(Precision::bf16);
    const auto fp = s.peak(Precision::fp16);
    const std::string rate = bf ? format_flop_rate(*bf) : fp ? format_flop_rate(*fp) + " (fp16)" : "-";
    srows.push_back({id, s.name, s.device_unit, rate, format_bytes(s.hbm_capacity()),
                     std::to_string(s.scale_up.size) + " " + topology_name(s.scale_up.topology), s.calib.status});
  }
  for (const auto& [id, m] : c.models) {
    const ParamCounts pc = count_params(m);
    mrows.push_back({id, m.name, fmt("%.1fB", pc.total() / 1e9), m.is_moe() ? fmt("%.1fB", pc.active(m) / 1e9) : "",
                     std::to_string(m.layers), std::to_string(m.hidden)});
  }
  return "systems\n" + render_table({"id", "name", "device", "bf16/dev", "HBM/dev", "scale-up", "efficiency"}, srows) +
         "\nmodels\n" + render_table({"id", "name", "params", "active", "layers", "hidden"}, mrows);
}

namespace {

// "kind:id" names one kind (system, model, chip); a bare id is looked up in that order.
std::pair<std::string, std::string> split_kind(const std::string& arg) {
  for (const char* kind : {"system", "model", "chip"})
    if (arg.starts_with(std::string(kind) + ":")) return {kind, arg.substr(std::string(kind).size() + 1)};
  return {"", arg};
}

}  // namespace

std::vector<std::string> catalog_kinds_of(const Catalog& c, const std::string& id) {
  std::vector<std::string> out;
  if (c.systems.contains(id)) out.push_back("system");
  if (c.models.contains(id)) out.push_back("model");
  if (c.chips.contains(id)) out.push_back("chip");
  return out;
}

ordered_json catalog_item_json(const Catalog& c, const std::string& arg) {
  const auto [kind, id] = split_kind(arg);
  auto wants = [&](const char* k) { return kind.empty() || kind == k; };
  if (auto it = c.systems.find(id); wants("system") && it != c.systems.end()) {
    const System& s = it->second;
    ordered_json peaks = ordered_json::object();
    for (Precision p : kAllPrecisions)
      if (auto r = s.peak(p)) peaks[std::string(precision_name(p)) + "_flops"] = r6(r->v);
    ordered_json prices = ordered_json::array();
    for (const PriceOffer& o : s.prices)
      prices.push_back({{"kind", o.kind}, {"provider", o.provider}, {"instance", o.instance}, {"region", o.region},
                        {"devices", o.devices}, {"usd_per_hour", r6(o.usd_per_hour)},
                        {"usd_per_device_hour", r6(o.usd_per_device_hour())},
                        // A --price quote has no date here (catalog pins no day): the listing does not change daily.
                        {"as_of", o.file == "--price" ? ordered_json() : ordered_json(o.as_of)}, {"source", o.source}});
    return {{"kind", "system"}, {"id", s.id}, {"name", s.name}, {"file", s.file}, {"source", s.source}, {"chip", s.chip_id},
            {"device_unit", s.device_unit}, {"devices_per_chip", s.devices_per_chip}, {"devices_per_node", s.devices_per_node},
            {"per_device", {{"peak", peaks}, {"hbm_capacity_bytes", r6(s.hbm_capacity().v)},
                            {"hbm_bandwidth_bytes_per_s", r6(s.hbm_bandwidth().v)}}},
            {"scale_up", {{"size", s.scale_up.size}, {"topology", topology_name(s.scale_up.topology)},
                          {"torus_dims", s.scale_up.torus_dims}, {"torus_share", s.scale_up.torus_share}, {"bandwidth_bytes_per_s", r6(s.scale_up.bandwidth.v)},
                          {"latency_s", r6(s.scale_up.latency.v)}}},
            {"scale_out", {{"topology", topology_name(s.scale_out.topology)}, {"bandwidth_bytes_per_s", r6(s.scale_out.bandwidth.v)},
                           {"latency_s", r6(s.scale_out.latency.v)}}},
            {"calibration", {{"file", s.calib.file}, {"status", s.calib.status}}},
            {"node_power_w", s.node_power ? ordered_json(r6(s.node_power->v)) : ordered_json(nullptr)},
            {"prices", prices},
            {"ownership", s.ownership ? ordered_json{{"file", s.ownership->file},
                                                     {"purchase_usd", r6(s.ownership->purchase_usd)},
                                                     {"purchase_source", s.ownership->purchase_source},
                                                     {"overhead_usd", r6(s.ownership->overhead_usd)},
                                                     {"overhead_source", s.ownership->overhead_source},
                                                     {"pue", s.ownership->pue ? ordered_json(r6(*s.ownership->pue))
                                                                              : ordered_json(nullptr)}}
                                      : ordered_json(nullptr)}};
  }
  if (auto it = c.models.find(id); wants("model") && it != c.models.end()) {
    const Model& m = it->second;
    const ParamCounts pc = count_params(m);
    ordered_json j = {{"kind", "model"}, {"id", m.id}, {"name", m.name}, {"file", m.file}, {"source", m.source},
                      {"layers", m.layers}, {"hidden", m.hidden}, {"heads", m.heads}, {"kv_heads", m.kv_heads},
                      {"head_dim", m.head_dim}, {"ffn_hidden", m.ffn_hidden}, {"vocab", m.vocab}, {"gated_mlp", m.gated_mlp},
                      {"tied_embeddings", m.tied_embeddings},
                      {"max_seq_len", m.max_seq_len > 0 ? ordered_json(m.max_seq_len) : ordered_json(nullptr)},
                      {"params", r6(pc.total())}, {"active_params", r6(pc.active(m))}};
    if (m.sliding_window > 0)
      j["local_attention"] = {{"kind", m.chunked_local ? "chunked" : "sliding"}, {"tokens", m.sliding_window},
                              {"layers", m.window_layer_count()},
                              {"pattern", m.global_every > 0
                                              ? "every layer but each " + std::to_string(m.global_every) + "-th (layers " +
                                                    std::to_string(m.global_every - 1) + ", " + std::to_string(2 * m.global_every - 1) +
                                                    ", ... global)"
                                          : m.sliding_window_every <= 1
                                              ? std::string("every layer")
                                              : "1 in " + std::to_string(m.sliding_window_every) + " layers (0, " +
                                                    std::to_string(m.sliding_window_every) + ", ...)"}};
    if (m.is_moe())
      j["moe"] = {{"experts", m.moe.experts}, {"top_k", m.moe.top_k}, {"ffn_hidden", m.moe.ffn_hidden},
                  {"shared_experts", m.moe.shared_experts}, {"dense_layers", m.moe.dense_layers},
                  {"layer_step", m.moe.layer_step}, {"moe_layers", m.moe_layer_count()},
                  {"fp4_scope", m.fp4_experts_only ? "experts" : "all"}};
    j["fp4_scale_block"] = m.fp4_scale_block > 0 ? ordered_json(m.fp4_scale_block) : ordered_json(nullptr);
    if (m.is_mla())
      j["mla"] = {{"q_lora_rank", m.mla.q_lora_rank}, {"kv_lora_rank", m.mla.kv_lora_rank},
                  {"qk_nope_head_dim", m.mla.qk_nope_head_dim}, {"qk_rope_head_dim", m.mla.qk_rope_head_dim},
                  {"v_head_dim", m.mla.v_head_dim}};
    return j;
  }
  if (auto it = c.chips.find(id); wants("chip") && it != c.chips.end()) {
    const Chip& ch = it->second;
    ordered_json peaks = ordered_json::object();
    for (Precision p : kAllPrecisions)
      if (auto r = ch.peak_at(p)) peaks[std::string(precision_name(p)) + "_flops"] = r6(r->v);
    // Beside the matrix peaks: the non-matrix FP32 rate, the softmax exponentials the attention
    // model serialises, and the kernels the planners assume ([kernels]).
    if (ch.vector_fp32) peaks["vector_fp32_flops"] = r6(ch.vector_fp32->v);
    if (ch.exp_rate) peaks["exp_per_s"] = r6(*ch.exp_rate);
    return {{"kind", "chip"}, {"id", ch.id}, {"name", ch.name}, {"vendor", ch.vendor}, {"file", ch.file}, {"source", ch.source},
            {"peak", peaks}, {"hbm_capacity_bytes", r6(ch.hbm_capacity.v)}, {"hbm_bandwidth_bytes_per_s", r6(ch.hbm_bandwidth.v)},
            {"tdp_w", ch.tdp ? ordered_json(r6(ch.tdp->v)) : ordered_json(nullptr)},
            {"kernels", {{"flash_attention", ch.flash_attention}, {"hierarchical_ep_dispatch", ch.hierarchical_ep_dispatch}}}};
  }
  if (!kind.empty()) throw InputError("catalog show", "no " + kind + " with id '" + id + "'");
  throw InputError("catalog show", "no system, model or chip with id '" + id + "'");
}

std::string catalog_item_text(const Catalog& c, const std::string& id) {
  const ordered_json j = catalog_item_json(c, id);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<std::string>> offers;
  auto walk = [&](auto&& self, const ordered_json& node, const std::string& prefix) -> void {
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
      if (it->is_object()) self(self, *it, key);
      else if (key == "prices" && it->is_array()) {
        for (const auto& o : *it)
          offers.push_back({o.value("kind", ""), offer_label(o.value("provider", ""), o.value("instance", "")), o.value("region", ""),
                            fmt("%.4g", o.value("usd_per_device_hour", 0.0)),
                            o["as_of"].is_string() ? o["as_of"].get<std::string>() : std::string("-")});
      } else rows.push_back({key, it->is_string() ? it->get<std::string>() : it->dump()});
    }
  };
  walk(walk, j, "");
  // Left-aligned: one long text value (a source) would push every number to the far right.
  std::string out = render_table({"field", "value"}, rows, false);
  if (!offers.empty())
    out += "\nprices\n" + render_table({"kind", "offer", "region", "USD/device-h", "as of"}, offers);
  // A bare id that names more than one kind (a TPU pod and its chip): say how to reach the others.
  if (split_kind(id).first.empty())
    for (const std::string& k : catalog_kinds_of(c, id))
      if (k != j.value("kind", "")) out += "\n'" + id + "' is also a " + k + ": xpuplan catalog show " + k + ":" + id + "\n";
  return out;
}

}  // namespace xpu
