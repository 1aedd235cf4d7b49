#include "calibrate/calibrate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "perf/kernels.hpp"
#include "train/evaluate.hpp"
#include "units/units.hpp"
#include "validate/validate.hpp"

namespace xpu {

namespace {

// fp8/fp4 take the low-precision scale lp when the fit's rows ran them (lowp_fp8), else the GEMM
// scale g; int8 takes lp.
void apply(Calibration& c, const Calibration& base, double g, double lp, double at, double tpo, double gs, double mo,
           double ma, bool lowp_fp8) {
  c.tp_overlap = tpo;
  c.moe_layer_overhead = Seconds{mo};
  c.prior_moe_layer_overhead = base.moe_layer_overhead.v;
  c.moe_alltoall_overhead = Seconds{ma};
  c.prior_moe_alltoall_overhead = base.moe_alltoall_overhead.v;
  c.fit_grouped_scale = gs;
  c.gemm_grouped = std::min(1.5, base.gemm_grouped * gs);
  c.fit_gemm_scale = g;
  c.fit_lowp_scale = lp;
  c.fit_fp8_scale = lowp_fp8 ? lp : g;
  c.fit_attention_scale = at;
  c.prior_tp_overlap = base.tp_overlap;
  for (Precision p : kAllPrecisions) {
    const int i = static_cast<int>(p);
    if (base.gemm_max[i] <= 0) continue;
    const bool fp8_class = p == Precision::fp8 || p == Precision::fp4;
    c.gemm_max[i] = std::min(kMaxEfficiency, base.gemm_max[i] * (fp8_class ? c.fit_fp8_scale : is_low_precision(p) ? lp : g));
  }
  c.attention = std::min(kMaxEfficiency, base.attention * at);
}

// One measured row with the layout the planner chose for it (fixed while a fit pass searches).
struct Prepared {
  std::string id, system;
  Model arch;
  Layout layout;
  Workload work;
  int devices = 0;
  bool step_metric = false;
  double measured = 0;
};

struct Objective {
  const std::vector<CsvTable>& truth;
  Catalog cat;  // working copy whose family calibrations are changed
  const std::vector<std::string>& chips;
  std::map<std::string, Calibration> base;
  std::set<std::string> row_ids;
  const CalibrateOptions& o;
  std::vector<Prepared> rows;  // the family's usable rows, layouts chosen at the last prepare()

  double tpo0 = 0;  // the family's current tp_overlap
  double gs = 1;    // grouped-GEMM scale in effect
  double mo = 0;    // MoE layer fixed cost in effect (seconds)
  double mo0 = 0;   // its prior
  double ma = 0;    // the alltoall dispatcher's extra cost per MoE layer and microbatch in effect (seconds)
  double ma0 = 0;   // its prior
  bool moe_phase = false;  // prepare the mixture-of-experts rows (to fit gs) instead of the others
  bool lowp_fp8 = false;   // the rows ran fp8/fp4 plans (set by the first prepare)
  void set(double g, double lp, double at, double tpo) {
    for (auto& [id, s] : cat.systems)
      if (base.count(s.chip_id)) apply(s.calib, base.at(s.chip_id), g, lp, at, tpo, gs, mo, ma, lowp_fp8);
  }
  // Chooses every row's plan under these values (as validate does); returns the rows' MAPE.
  double prepare(double g, double lp, double at, double tpo, std::vector<std::string>* used, bool* saw_lowp, bool* saw_tp,
                 std::vector<std::string>* ambiguous = nullptr) {
    set(g, lp, at, tpo);
    rows.clear();
    double ape = 0;
    for (std::size_t ti = 0; ti < truth.size(); ++ti) {
      const RunFacts* facts = ti < o.facts.size() ? &o.facts[ti] : nullptr;
      ValidationResult v = validate_training(truth[ti], cat, &row_ids, facts);
      for (const auto& r : v.rows) {
        if (!r.evaluated || r.grade == "C" || o.exclude.count(r.id)) continue;
        if (moe_phase ? !r.moe : (o.dense_only && r.moe)) continue;
        if (o.skip_ambiguous_precision && !r.precision_stated) {
          const System& sys = cat.systems.at(r.system);
          int rates = sys.peak(Precision::bf16) || sys.peak(Precision::fp16) ? 1 : 0;
          for (Precision p : {Precision::fp8, Precision::fp4})  // what the planner chooses among (choose.cpp)
            if (sys.peak(p)) ++rates;
          if (rates > 1) {
            if (ambiguous) ambiguous->push_back(r.id);
            continue;
          }
        }
        rows.push_back({r.id, r.system, r.arch, r.plan.layout, r.plan.work, r.plan.devices, r.metric == "step_time_s", r.measured});
        ape += std::fabs(r.error_pct);
        if (used) used->push_back(r.id);
        if (saw_tp && r.plan.layout.tp > 1) *saw_tp = true;
        if (saw_lowp) {
          Precision p = r.plan.layout.precision;
          if (is_low_precision(p)) *saw_lowp = true;
          if (p == Precision::fp8 || p == Precision::fp4) lowp_fp8 = true;
        }
      }
    }
    return rows.empty() ? 0 : ape / static_cast<double>(rows.size());
  }
  // Robust loss over the prepared rows, their layouts fixed (one evaluation each, microseconds).
  double error(double g, double lp, double at, double tpo) {
    set(g, lp, at, tpo);
    double se = 0;
    for (const auto& p : rows) {
      const TrainReport r = evaluate(p.arch, cat.systems.at(p.system), p.layout, p.work, p.devices, false, false);
      const double predicted = p.step_metric ? r.step_time : r.tokens_per_s_per_device;
      if (!(predicted > 0)) continue;
      // Robust (Cauchy) loss on the log error: a row the model cannot explain (a framework
      // inefficiency outside the physics) cannot drag a whole family's calibration.
      const double e = std::log(predicted / p.measured) / o.robust_scale;
      se += std::log1p(e * e);
    }
    if (rows.empty()) return 0;
    // Sum of row losses plus the prior: a family with few rows stays near its prior values.
    return se + o.prior_weight * (std::log(g) * std::log(g) + std::log(lp) * std::log(lp) + std::log(at) * std::log(at) +
                                      (tpo - tpo0) * (tpo - tpo0) + std::log(gs) * std::log(gs) +
                                      mo_prior_term());
  }
  // The MoE fixed costs' prior terms: ln(1 + |mo - mo0| / 1 ms)^2, as a scale's ln^2 near 1 (and
  // the same for the alltoall dispatcher's).
  double mo_prior_term() const {
    const double d = std::log1p(std::fabs(mo - mo0) / 1e-3), e = std::log1p(std::fabs(ma - ma0) / 1e-3);
    return d * d + e * e;
  }
};

std::string family_of(const Calibration& c) { return c.family.empty() ? c.id : c.family; }

}  // namespace

CalibrationResult calibrate(const std::vector<CsvTable>& truth, const Catalog& c, const CalibrateOptions& o) {
  CalibrationResult out;
  std::map<std::string, std::vector<std::string>> families;
  for (const auto& [id, cal] : c.calibrations) families[family_of(cal)].push_back(id);

  for (const auto& [fam, chips] : families) {
    // Rows whose system uses a chip of this family.
    std::set<std::string> ids;
    for (const auto& t : truth) {
      const int sc = t.column("system"), ic = t.column("id");
      if (sc < 0 || ic < 0) continue;
      for (const auto& row : t.rows) {
        auto it = c.systems.find(row[sc]);
        if (it != c.systems.end() && std::find(chips.begin(), chips.end(), it->second.chip_id) != chips.end())
          ids.insert(row[ic]);
      }
    }
    Objective obj{truth, c, chips, {}, ids, o, {}};
    // Start from the prior (assumed) values: a fitted file is divided by the scales it records.
    for (const auto& ch : chips) obj.base[ch] = prior_calibration(c.calibrations.at(ch));
    obj.tpo0 = obj.base.at(chips.front()).tp_overlap;
    obj.mo = obj.mo0 = obj.base.at(chips.front()).moe_layer_overhead.v;
    obj.ma = obj.ma0 = obj.base.at(chips.front()).moe_alltoall_overhead.v;
    FamilyFit fit;
    fit.family = fam;
    fit.chips = chips;
    bool lowp = false, tp = false;
    double g = 1, lp = 1, at = 1, tpo = obj.tpo0;
    fit.mape_before = obj.prepare(g, lp, at, tpo, &fit.rows, &lowp, &tp, &fit.ambiguous);
    if (static_cast<int>(fit.rows.size()) < o.min_rows) continue;
    fit.fit_lowp = lowp;
    fit.lowp_fp8 = obj.lowp_fp8;
    fit.fit_tp_overlap = tp;
    fit.loss_before = obj.error(g, lp, at, tpo);
    auto err = [&](double a, double b, double c2, double d) { return obj.error(a, b, c2, d); };
    // Alternate: choose every row's plan under the current values, then fit the values with those
    // plans fixed; the planner's choice moves with the values, so repeat.
    for (int pass = 0; pass < 3; ++pass) {
      if (pass > 0) obj.prepare(g, lp, at, tpo, nullptr, nullptr, nullptr);
      g = golden([&](double x) { return err(x, lp, at, tpo); }, 0.5, 1.5, 18);
      if (lowp) lp = golden([&](double x) { return err(g, x, at, tpo); }, 0.4, 1.5, 18);
      at = golden([&](double x) { return err(g, lp, x, tpo); }, 0.5, 1.8, 18);
      // tp_overlap lives on [0, 0.9]; search 1 + tpo in log space.
      if (tp) tpo = golden([&](double x) { return err(g, lp, at, x - 1.0); }, 1.0, 1.9, 18) - 1.0;
    }
    fit.mape_after = obj.prepare(g, lp, at, tpo, nullptr, nullptr, nullptr);
    fit.loss_after = obj.error(g, lp, at, tpo);
    // Grouped expert GEMMs: fitted on the family's mixture-of-experts rows, the values above fixed.
    {
      obj.moe_phase = true;
      std::vector<std::string> moe_rows;
      fit.grouped_mape_before = obj.prepare(g, lp, at, tpo, &moe_rows, nullptr, nullptr);
      if (static_cast<int>(moe_rows.size()) >= o.min_rows) {
        // With the expert-GEMM scale, a fixed cost per MoE layer and microbatch (what does not
        // scale with tokens); searched as 0.1 ms x (x - 1) on x in [1, 51], i.e. 0 to 5 ms.
        // Rows run with the host-synchronised alltoall dispatcher add its own fixed cost, searched
        // the same way (0 to 10 ms) when there are enough of them.
        for (const auto& p : obj.rows)
          if (p.layout.moe_dispatcher == MoeDispatcher::alltoall) fit.alltoall_rows.push_back(p.id);
        fit.fit_alltoall = static_cast<int>(fit.alltoall_rows.size()) >= o.min_alltoall_rows;
        for (int pass = 0; pass < 3; ++pass) {
          if (pass > 0) obj.prepare(g, lp, at, tpo, nullptr, nullptr, nullptr);
          obj.gs = golden([&](double x) { obj.gs = x; return obj.error(g, lp, at, tpo); }, 0.4, 1.5, 18);
          obj.mo = 1e-4 * (golden([&](double x) { obj.mo = 1e-4 * (x - 1.0); return obj.error(g, lp, at, tpo); }, 1.0, 51.0, 18) - 1.0);
          if (fit.fit_alltoall)
            obj.ma = 1e-4 * (golden([&](double x) { obj.ma = 1e-4 * (x - 1.0); return obj.error(g, lp, at, tpo); }, 1.0, 101.0, 18) - 1.0);
        }
        if (!fit.fit_alltoall) fit.alltoall_rows.clear();
        fit.fit_grouped = true;
        fit.grouped_rows = moe_rows;
        fit.grouped_scale = obj.gs;
        fit.grouped_mape_after = obj.prepare(g, lp, at, tpo, nullptr, nullptr, nullptr);
      } else {
        obj.gs = 1;
        obj.mo = obj.mo0;
        obj.ma = obj.ma0;
      }
      obj.moe_phase = false;
    }
    fit.gemm_scale = g;
    fit.lowp_scale = lp;
    fit.attention_scale = at;
    fit.tp_overlap = tpo;
    fit.tp_overlap_prior = obj.tpo0;
    fit.moe_layer_overhead = obj.mo;
    fit.moe_layer_overhead_prior = obj.mo0;
    fit.moe_alltoall_overhead = obj.ma;
    fit.moe_alltoall_overhead_prior = obj.ma0;
    for (const auto& ch : chips) {
      Calibration cal = c.calibrations.at(ch);
      apply(cal, obj.base.at(ch), g, lp, at, tpo, obj.gs, obj.mo, obj.ma, obj.lowp_fp8);
      cal.status = "fitted";
      out.fitted[ch] = cal;
    }
    out.families.push_back(fit);
  }
  return out;
}

Calibration prior_calibration(const Calibration& fitted) {
  Calibration b = fitted;
  for (Precision p : kAllPrecisions) {
    const bool fp8_class = p == Precision::fp8 || p == Precision::fp4;
    const double fp8_scale = b.fit_fp8_scale >= 0 ? b.fit_fp8_scale : b.fit_lowp_scale;
    b.gemm_max[static_cast<int>(p)] /= fp8_class ? fp8_scale : is_low_precision(p) ? b.fit_lowp_scale : b.fit_gemm_scale;
  }
  b.attention /= b.fit_attention_scale;
  b.gemm_grouped /= b.fit_grouped_scale;
  if (b.prior_tp_overlap >= 0) b.tp_overlap = b.prior_tp_overlap;
  if (b.prior_moe_layer_overhead >= 0) b.moe_layer_overhead = Seconds{b.prior_moe_layer_overhead};
  if (b.prior_moe_alltoall_overhead >= 0) b.moe_alltoall_overhead = Seconds{b.prior_moe_alltoall_overhead};
  b.fit_gemm_scale = b.fit_lowp_scale = b.fit_attention_scale = b.fit_grouped_scale = 1;
  b.fit_fp8_scale = -1;
  b.prior_tp_overlap = -1;
  b.prior_moe_layer_overhead = -1;
  b.prior_moe_alltoall_overhead = -1;
  return b;
}

Catalog with_calibrations(const Catalog& c, const std::map<std::string, Calibration>& by_chip) {
  Catalog out = c;
  for (const auto& [chip, cal] : by_chip) out.calibrations[chip] = cal;
  for (auto& [id, s] : out.systems)
    if (auto it = by_chip.find(s.chip_id); it != by_chip.end()) s.calib = it->second;
  return out;
}

namespace {
std::string source_group(const std::string& id) { return id.substr(0, id.find('-')); }

// MAPE of the rows in `ids` (A+B, dense unless o says otherwise) under catalog c.
std::pair<double, int> group_mape(const std::vector<CsvTable>& truth, const Catalog& c, const CalibrateOptions& o,
                                  const std::set<std::string>& ids, std::map<std::string, double>* err_by_id) {
  double ape = 0;
  int n = 0;
  for (std::size_t ti = 0; ti < truth.size(); ++ti) {
    const RunFacts* facts = ti < o.facts.size() ? &o.facts[ti] : nullptr;
    const ValidationResult v = validate_training(truth[ti], c, &ids, facts);
    for (const auto& r : v.rows) {
      if (r.grade == "C" || (o.dense_only && r.moe)) continue;
      ape += std::fabs(r.error_pct);
      ++n;
      if (err_by_id) (*err_by_id)[r.id] = r.error_pct;
    }
  }
  return {n ? ape / n : 0.0, n};
}
}  // namespace

CrossValidation cross_validate(const std::vector<CsvTable>& truth, const Catalog& c, const CalibrateOptions& o) {
  // Groups of rows by source, in table order.
  std::map<std::string, std::set<std::string>> groups;
  std::vector<std::string> order;
  for (const auto& t : truth) {
    const int ic = t.column("id");
    if (ic < 0) continue;
    for (const auto& row : t.rows) {
      const std::string g = source_group(row[ic]);
      if (!groups.count(g)) order.push_back(g);
      groups[g].insert(row[ic]);
    }
  }
  // Held out means held out: families a fold cannot refit (too few rows left) fall back to their
  // prior values, not to the shipped fit, which saw every row.
  std::map<std::string, Calibration> priors;
  for (const auto& [chip, cal] : c.calibrations) priors[chip] = prior_calibration(cal);
  const Catalog prior = with_calibrations(c, priors);
  const Catalog all_fit = with_calibrations(prior, calibrate(truth, c, o).fitted);
  CrossValidation cv;
  for (const auto& g : order) {
    const std::set<std::string>& ids = groups.at(g);
    CalibrateOptions held = o;
    held.exclude.insert(ids.begin(), ids.end());
    const Catalog without = with_calibrations(prior, calibrate(truth, c, held).fitted);
    const auto [in, n] = group_mape(truth, all_fit, o, ids, nullptr);
    cv.add(g, n, in, n ? group_mape(truth, without, o, ids, nullptr).first : 0.0);
  }
  return cv;
}

std::string calibration_toml(const Calibration& c, const FamilyFit* fit, const std::string& truth_names,
                             const std::string& version, const std::string& date) {
  std::string s;
  char b[256];
  auto line = [&](const char* fmt, auto... args) {
    std::snprintf(b, sizeof b, fmt, args...);
    s += b;
    s += '\n';
  };
  // Strings at whatever length they run (a source can be long; the line buffer would cut it).
  s += "id = " + double_quoted(c.id) + "\n";
  s += "family = " + double_quoted(c.family.empty() ? c.id : c.family) + "                # chips of one family share fitted scales\n";
  s += "status = " + double_quoted(c.status) + "\n";
  s += "source = " + double_quoted(c.source) + "\n";
  line("date = \"%s\"", date.c_str());
  s += "\n[gemm]                                  # fraction of dense peak a large square GEMM reaches\n";
  for (Precision p : kAllPrecisions)
    if (c.gemm_max[static_cast<int>(p)] > 0) line("%s = %.6f", precision_name(p), c.gemm_max[static_cast<int>(p)]);
  line("half_dim = %g                          # a GEMM dimension this size halves that dimension's efficiency", c.gemm_half_dim);
  if (c.gemm_tile_rows > 0)
    line("tile_rows = %g                          # token rows of the smallest matrix tile decode kernels pad to", c.gemm_tile_rows);
  if (!c.gemm_shape_source.empty()) s += "shape_source = " + double_quoted(c.gemm_shape_source) + "\n";
  line("grouped = %.6f                        # MoE expert (grouped) GEMMs: efficiency relative to a dense GEMM of the per-expert shape", c.gemm_grouped);
  if (!c.gemm_grouped_source.empty()) s += "grouped_source = " + double_quoted(c.gemm_grouped_source) + "\n";
  s += "\n[attention]\n";
  line("efficiency = %.6f                   # flash attention, fraction of the attention peak (bf16 peak, exponentials in series)", c.attention);
  if (c.attention_half_keys > 0)
    line("half_keys = %g                        # keys per query at which flash attention reaches half its efficiency", c.attention_half_keys);
  if (c.attention_backward != 1.0)
    line("backward = %.2f                        # backward's efficiency relative to the forward's", c.attention_backward);
  if (!c.attention_source.empty()) s += "source = " + double_quoted(c.attention_source) + "\n";
  s += "\n[memory]\n";
  line("bandwidth_fraction = %.2f", c.memory_bw);
  if (c.memory_stream > 0)
    line("stream_fraction = %.2f                  # measured: a weight-streaming GEMV's share of HBM bandwidth", c.memory_stream);
  if (!c.memory_stream_source.empty()) s += "stream_source = " + double_quoted(c.memory_stream_source) + "\n";
  line("reserve = \"%.3g GiB\"                     # runtime context, communicator buffers", c.memory_reserve.v / 1073741824.0);
  line("fragmentation = %.2f                    # allocator loss, fraction of activations and transients", c.memory_frag);
  s += "\n[kernel]\n";
  line("overhead = \"%g us\"                       # launch and tail per kernel", c.kernel_overhead.v * 1e6);
  line("step_overhead = \"%g ms\"                 # per-step fixed cost", c.step_overhead.v * 1e3);
  line("lowp_overhead = %.2f                     # fp8/fp4: quantization traffic per GEMM input", c.lowp_overhead);
  if (c.moe_layer_overhead.v > 0 || (fit && fit->fit_grouped))
    line("moe_layer_overhead = \"%.4g us\"          # per MoE layer forward per microbatch (backward 2x): what does not scale with tokens",
         c.moe_layer_overhead.v * 1e6);
  if (c.moe_alltoall_overhead.v > 0 || (fit && fit->fit_alltoall))
    line("moe_alltoall_overhead = \"%.4g us\"       # with the alltoall token dispatcher (host-synchronised), per MoE layer forward per microbatch (backward 2x), beyond moe_layer_overhead",
         c.moe_alltoall_overhead.v * 1e6);
  if (!c.moe_alltoall_source.empty()) s += "moe_alltoall_source = " + double_quoted(c.moe_alltoall_source) + "\n";
  s += "\n[collectives]\n";
  line("scale_up_bus = %.2f                     # achieved bus bandwidth / link bandwidth", c.scale_up_bus);
  line("scale_out_bus = %.2f", c.scale_out_bus);
  line("tp_overlap = %.2f                        # share of tensor-parallel traffic hidden under GEMMs", c.tp_overlap);
  line("fsdp_overlap = %.2f                     # share of compute that can hide ZeRO-3 gathers", c.fsdp_overlap);
  line("ep_overlap = %.2f                       # share of expert all-to-all hidden under other work", c.ep_overlap);
  line("overlap_slowdown = %.2f                 # compute lost while a collective runs beside it (%s)", c.overlap_slowdown,
       c.overlap_slowdown > 0 ? "SMs held by collective kernels" : "DMA engines move the data");
  if (fit) {
    s += "\n[fit]                                   # provenance of the fitted values\n";
    s += "truth = " + double_quoted(truth_names) + "\n";
    s += "xpuplan = " + double_quoted(version) + "\n";
    line("date = \"%s\"", date.c_str());
    std::string rows;
    for (const auto& r : fit->rows) rows += (rows.empty() ? "" : ", ") + double_quoted(r);
    s += "rows = [" + rows + "]\n";
    line("gemm_scale = %.6f", fit->gemm_scale);
    line("lowp_scale = %.6f", fit->lowp_scale);
    line(fit->lowp_fp8 ? "fp8_scale = %.6f                    # fp8/fp4: the low-precision scale (the rows ran them)"
                       : "fp8_scale = %.6f                    # fp8/fp4: the GEMM scale (no row ran them; lowp_scale covers int8)",
         fit->lowp_fp8 ? fit->lowp_scale : fit->gemm_scale);
    line("attention_scale = %.6f", fit->attention_scale);
    if (fit->fit_grouped) {
      line("grouped_scale = %.6f", fit->grouped_scale);
      std::string g;
      for (const auto& r : fit->grouped_rows) g += (g.empty() ? "" : ", ") + double_quoted(r);
      s += "grouped_rows = [" + g + "]\n";
      line("moe_layer_overhead_prior = \"%.4g us\"", fit->moe_layer_overhead_prior * 1e6);
      if (fit->fit_alltoall) {
        std::string a;
        for (const auto& r : fit->alltoall_rows) a += (a.empty() ? "" : ", ") + double_quoted(r);
        s += "alltoall_rows = [" + a + "]\n";
        line("moe_alltoall_overhead_prior = \"%.4g us\"", fit->moe_alltoall_overhead_prior * 1e6);
      }
    }
    line("tp_overlap = %.4f", fit->tp_overlap);
    line("tp_overlap_prior = %.4f", fit->tp_overlap_prior);
    line("mape_before_pct = %.2f", fit->mape_before);
    line("mape_after_pct = %.2f", fit->mape_after);
  }
  return s;
}

}  // namespace xpu
