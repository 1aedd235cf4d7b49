#include "calibrate/calibrate_serve.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "serve/serve.hpp"
#include "validate/validate.hpp"

namespace xpu {

namespace {

// Parameters by index: 0 decode bandwidth fraction, 1 layer overhead (s), 2 step overhead (s),
// 3 scale on the calibrated GEMM efficiency, 4 prefill layer overhead (s), each clamped to a
// physically plausible range (a memory-bound decode reaches at least 40% of HBM bandwidth on
// every chip here).
// 5 the decode score time per query head x key position x layer (s).
// 6 the same for prompt (prefill) query x key pairs.
// 7 the prefill layer latency floor (s).
// 8 the fp8/fp4 serving GEMMs' scale relative to parameter 3.
constexpr int kParams = 9;
constexpr int kFloorParam = 7;
constexpr int kLowpParam = 8;
constexpr int kMinMoeRows = 3;      // mixture-of-experts rows needed to fit engine.moe_expert_factor
constexpr int kMinMoeRuns = 2;      // from at least this many measured runs
constexpr int kMinPrecisionRows = 3;  // rows of each kind (fp8/fp4 and wider) to fit the low-precision GEMM ratio

// The measured run a row belongs to: its id without the "-<metric>-<stat>" suffix
// ("INF2-09-tpot-p50" -> "INF2-09").
std::string run_of(const std::string& id) {
  std::string r = id;
  for (int k = 0; k < 2; ++k) {
    const auto p = r.rfind('-');
    if (p == std::string::npos) return id;
    r.resize(p);
  }
  return r;
}

double get(const ServingCalibration& s, int i) {
  switch (i) {
    case 0: return s.decode_bw;
    case 1: return s.layer_overhead.v;
    case 2: return s.step_overhead.v;
    case 4: return s.prefill_layer_overhead.v;
    case 5: return s.decode_score_time.v;
    case 6: return s.prefill_score_time.v;
    case 7: return s.prefill_layer_floor.v;
    case 8: return s.lowp_gemm_ratio;
    default: return s.prefill_gemm;
  }
}
// A fitted decode bandwidth stays at or below 0.95, and at or below the highest measured stream
// fraction when every chip of the family has one; each chip applies its own measured cap.
constexpr double kDecodeBwCeiling = 0.95;
void set(ServingCalibration& s, int i, double v, double bw_ceiling = kDecodeBwCeiling) {
  switch (i) {
    case 0: s.decode_bw = std::clamp(v, 0.4, bw_ceiling); break;
    case 1: s.layer_overhead = Seconds{std::clamp(v, 0.0, 2e-3)}; break;
    case 2: s.step_overhead = Seconds{std::clamp(v, 0.0, 50e-3)}; break;
    case 4: s.prefill_layer_overhead = Seconds{std::clamp(v, 0.0, 5e-3)}; break;
    case 5: s.decode_score_time = Seconds{std::clamp(v, 0.0, 1e-7)}; break;
    case 6: s.prefill_score_time = Seconds{std::clamp(v, 0.0, 1e-7)}; break;
    case 7: s.prefill_layer_floor = Seconds{std::clamp(v, 0.0, 5e-3)}; break;
    case 8: s.lowp_gemm_ratio = std::clamp(v, 0.5, 1.5); break;
    default: s.prefill_gemm = std::clamp(v, 0.5, 1.5); break;
  }
}
// Keep ln defined at zero; each is also the scale of its prior's pull (ln((v + offset) / (prior +
// offset))^2). The prefill floor's is a layer's time in a small prefill graph (500 us): a floor
// below that is about as plausible as none.
constexpr double kOffset[kParams] = {0.0, 5e-6, 50e-6, 0.0, 20e-6, 1e-10, 1e-11, 500e-6, 0.0};

// Puts a family's serving values in place for every system and chip of the family.
void apply_serving(Catalog& c, const ServingCalibration& s) {
  const std::set<std::string> chips(s.chips.begin(), s.chips.end());
  for (auto& [id, sys] : c.systems)
    if (chips.count(sys.chip_id)) sys.serving = s;
  for (const auto& ch : s.chips) c.serving[ch] = s;
}

Catalog with_serving(const Catalog& c, const ServingCalibration& s) {
  Catalog out = c;
  apply_serving(out, s);
  return out;
}

// Robust (Cauchy) loss of the log error over the given rows of each table under catalog `cs` (a row
// that cannot be evaluated counts as a log error of 10 scales); `mape`, if given, gets their MAPE.
double rows_loss(const std::vector<ServingTruth>& truths, const Catalog& cs, const std::vector<std::set<std::string>>& rows,
                 double robust_scale, double* mape) {
  double loss = 0, abs_sum = 0;
  int n = 0;
  for (std::size_t ti = 0; ti < truths.size(); ++ti) {
    if (rows[ti].empty()) continue;
    for (const auto& r : validate_inference(*truths[ti].table, cs, &rows[ti], truths[ti].facts).rows) {
      const double e = r.evaluated ? std::log(r.predicted / r.measured) / robust_scale : 10.0;
      loss += std::log1p(e * e);
      abs_sum += std::fabs(r.error_pct);
      ++n;
    }
  }
  if (mape) *mape = n ? abs_sum / n : 0;
  return loss;
}

}  // namespace

ServingCalibration prior_serving(const ServingCalibration& cur) {
  ServingCalibration prior = cur;
  if (cur.prior_decode_bw > 0) prior.decode_bw = cur.prior_decode_bw;
  if (cur.prior_layer_overhead_s >= 0) prior.layer_overhead = Seconds{cur.prior_layer_overhead_s};
  if (cur.prior_step_overhead_s >= 0) prior.step_overhead = Seconds{cur.prior_step_overhead_s};
  if (cur.prior_gemm_scale > 0) prior.prefill_gemm = cur.prior_gemm_scale;
  if (cur.prior_prefill_layer_overhead_s >= 0) prior.prefill_layer_overhead = Seconds{cur.prior_prefill_layer_overhead_s};
  if (cur.prior_decode_score_time_s >= 0) prior.decode_score_time = Seconds{cur.prior_decode_score_time_s};
  if (cur.prior_prefill_score_time_s >= 0) prior.prefill_score_time = Seconds{cur.prior_prefill_score_time_s};
  if (cur.prior_prefill_layer_floor_s >= 0) prior.prefill_layer_floor = Seconds{cur.prior_prefill_layer_floor_s};
  if (cur.prior_moe_expert_factor > 0) prior.moe_expert_factor = cur.prior_moe_expert_factor;
  if (cur.prior_lowp_gemm_ratio > 0) prior.lowp_gemm_ratio = cur.prior_lowp_gemm_ratio;
  return prior;
}

std::vector<ServingFit> calibrate_serving(const CsvTable& truth, const Catalog& c, const CalibrateOptions& o,
                                          const RunFacts* facts) {
  return calibrate_serving(std::vector<ServingTruth>{{&truth, facts}}, c, o);
}

std::vector<ServingFit> calibrate_serving(const std::vector<ServingTruth>& truths, const Catalog& c,
                                          const CalibrateOptions& o) {
  // Families in id order; the prior is the assumed value a fitted file recorded, else its value.
  std::map<std::string, ServingCalibration> fams;
  for (const auto& [chip, s] : c.serving) fams.emplace(s.id, s);
  std::vector<ValidationResult> base;
  for (const auto& t : truths) base.push_back(validate_inference(*t.table, c, nullptr, t.facts));
  std::vector<ServingFit> out;
  for (auto& [id, cur] : fams) {
    ServingFit fit;
    fit.family = id;
    if (!o.serving_families.empty() && !o.serving_families.count(id)) continue;
    const ServingCalibration prior = prior_serving(cur);
    fit.prior = prior;
    const std::set<std::string> chips(cur.chips.begin(), cur.chips.end());
    // Each chip's decode bandwidth is capped at its measured stream fraction (StepModel), so the
    // family value needs to go no higher than the highest of them when every chip was measured.
    double bw_ceiling = 0;
    for (const auto& ch : chips) {
      auto k = c.calibrations.find(ch);
      const double m = k != c.calibrations.end() && k->second.memory_stream > 0 ? k->second.memory_stream : kDecodeBwCeiling;
      bw_ceiling = std::max(bw_ceiling, std::min(m, kDecodeBwCeiling));
    }
    if (bw_ceiling <= 0) bw_ceiling = kDecodeBwCeiling;
    fit.decode_bw_ceiling = bw_ceiling;
    // Rows per table; a run is a table's row id before "-<metric>-<stat>".
    std::vector<std::set<std::string>> rows(truths.size());
    std::set<std::string> runs;
    std::size_t n_rows = 0;
    int n_lowp = 0, n_wide = 0;  // rows whose serving GEMMs run at fp8/fp4, and the others
    for (std::size_t ti = 0; ti < truths.size(); ++ti)
      for (const auto& r : base[ti].rows) {
        if (r.grade == "C" || !r.evaluated) continue;
        if (o.dense_only && r.moe) continue;
        if (o.exclude.count(r.id)) continue;
        auto sys = c.systems.find(r.system);
        if (sys == c.systems.end() || !chips.count(sys->second.chip_id)) continue;
        rows[ti].insert(r.id);
        runs.insert(truths[ti].table->path + ":" + run_of(r.id));
        fit.rows.push_back(r.id);
        ++n_rows;
        const bool lowp = r.serve && (r.serve->layout.weights == Quant::fp8 || r.serve->layout.weights == Quant::fp4);
        ++(lowp ? n_lowp : n_wide);
      }
    if (static_cast<int>(n_rows) < std::max(o.min_rows, kMinServingRows) ||
        static_cast<int>(runs.size()) < kMinServingRuns)
      continue;
    auto evaluate = [&](const ServingCalibration& s, double* mape) {
      double loss = rows_loss(truths, with_serving(c, s), rows, o.robust_scale, mape);
      for (int i = 0; i < kParams; ++i) {
        const double d = std::log((get(s, i) + kOffset[i]) / (get(prior, i) + kOffset[i]));
        loss += o.prior_weight * d * d;
      }
      return loss;
    };
    // The fp8/fp4 GEMMs' ratio to the others is fitted only where the family has rows of both.
    const bool fit_lowp = n_lowp >= kMinPrecisionRows && n_wide >= kMinPrecisionRows;
    ServingCalibration best = prior;
    double best_loss = evaluate(best, &fit.mape_before);
    // Coordinate search in log space: try x f and / f per parameter; shrink f when a pass
    // improves nothing.
    // Keeps candidate `t` if it lowers the loss.
    auto try_candidate = [&](const ServingCalibration& t) {
      const double l = evaluate(t, nullptr);
      if (l >= best_loss - 1e-12) return false;
      best_loss = l;
      best = t;
      return true;
    };
    auto refine = [&](double f) {
      for (int pass = 0; pass < 60 && f > 1.01; ++pass) {
        bool improved = false;
        for (int i = 0; i < kParams; ++i)
          for (double k : {f, 1.0 / f}) {
            if (i == kFloorParam && cur.mixed_batches) continue;  // no prefill graph of its own
            if (i == kLowpParam && !fit_lowp) continue;
            ServingCalibration t = best;
            set(t, i, (get(best, i) + kOffset[i]) * k - kOffset[i], bw_ceiling);
            improved = try_candidate(t) || improved;
          }
        // The GEMM scale with the low-precision ratio moved inversely: the bf16/fp16 GEMMs'
        // scale alone, with the fp8/fp4 GEMMs' product held (a valley across the two axes).
        for (double k : {f, 1.0 / f}) {
          if (!fit_lowp) break;
          ServingCalibration t = best;
          set(t, 3, get(best, 3) * k, bw_ceiling);
          set(t, kLowpParam, get(best, kLowpParam) * get(best, 3) / get(t, 3), bw_ceiling);
          improved = try_candidate(t) || improved;
        }
        if (!improved) f = std::sqrt(f);
      }
    };
    refine(2.0);
    // The prefill latency floor changes nothing until it exceeds a pass's work, so the loss is
    // flat around a small value and the search above cannot leave it: scan it on a log grid
    // (20 us to 5 ms) with the rest fixed, and refine everything again from the best point. Only
    // for engines that run prefill as its own graph (StepModel applies it to no other).
    if (!cur.mixed_batches) {
      ServingCalibration t = best;
      double scan_loss = best_loss;
      double scan_v = get(best, kFloorParam);
      for (double v = 20e-6; v <= 5e-3 * 1.0001; v *= std::pow(2.0, 0.25)) {
        set(t, kFloorParam, v, bw_ceiling);
        const double l = evaluate(t, nullptr);
        if (l < scan_loss - 1e-12) {
          scan_loss = l;
          scan_v = v;
        }
      }
      if (scan_loss < best_loss - 1e-12) {
        set(best, kFloorParam, scan_v, bw_ceiling);
        best_loss = scan_loss;
        refine(1.2);
      }
    }
    evaluate(best, &fit.mape_after);

    // The routed experts' factor, on the family's mixture-of-experts rows with the values above
    // fixed (its own robust loss and ln(factor / prior)^2 pull; golden-section search in log space
    // over 0.5-3).
    std::vector<std::set<std::string>> moe_rows(truths.size());
    std::set<std::string> moe_runs;
    for (std::size_t ti = 0; ti < truths.size(); ++ti)
      for (const auto& r : base[ti].rows) {
        if (r.grade == "C" || !r.evaluated || !r.moe || o.exclude.count(r.id)) continue;
        auto sys = c.systems.find(r.system);
        if (sys == c.systems.end() || !chips.count(sys->second.chip_id)) continue;
        moe_rows[ti].insert(r.id);
        moe_runs.insert(truths[ti].table->path + ":" + run_of(r.id));
        fit.moe_rows.push_back(r.id);
      }
    if (static_cast<int>(fit.moe_rows.size()) >= kMinMoeRows && static_cast<int>(moe_runs.size()) >= kMinMoeRuns) {
      auto moe_loss = [&](double factor, double* mape) {
        ServingCalibration s = best;
        s.moe_expert_factor = factor;
        const double d = std::log(factor / prior.moe_expert_factor);
        return rows_loss(truths, with_serving(c, s), moe_rows, o.robust_scale, mape) + o.prior_weight * d * d;
      };
      moe_loss(prior.moe_expert_factor, &fit.moe_mape_before);
      best.moe_expert_factor = golden([&](double x) { return moe_loss(x, nullptr); }, 0.5, 3.0, 24);
      best.moe_expert_source.clear();
      moe_loss(best.moe_expert_factor, &fit.moe_mape_after);
      fit.fit_moe = true;
    } else {
      fit.moe_rows.clear();
    }
    best.status = "fitted";
    best.prior_decode_bw = prior.decode_bw;
    best.prior_layer_overhead_s = prior.layer_overhead.v;
    best.prior_step_overhead_s = prior.step_overhead.v;
    best.prior_gemm_scale = prior.prefill_gemm;
    best.prior_prefill_layer_overhead_s = prior.prefill_layer_overhead.v;
    best.prior_decode_score_time_s = prior.decode_score_time.v;
    best.prior_prefill_score_time_s = prior.prefill_score_time.v;
    best.prior_prefill_layer_floor_s = prior.prefill_layer_floor.v;
    best.prior_lowp_gemm_ratio = prior.lowp_gemm_ratio;
    best.prior_moe_expert_factor = fit.fit_moe ? prior.moe_expert_factor : -1;
    fit.fitted = best;
    out.push_back(std::move(fit));
  }
  return out;
}

CrossValidation cross_validate_serving(const std::vector<ServingTruth>& truths, const Catalog& c,
                                       const CalibrateOptions& o) {
  // Groups of rows by source (the id up to its first '-'), in table order, and the serving
  // family each group's rows run on.
  std::map<std::string, std::set<std::string>> groups, families_of;
  std::vector<std::string> order;
  for (const auto& t : truths) {
    const int ic = t.table->column("id"), is = t.table->column("system");
    if (ic < 0 || is < 0) continue;
    for (const auto& row : t.table->rows) {
      const std::string g = row[ic].substr(0, row[ic].find('-'));
      if (!groups.count(g)) order.push_back(g);
      groups[g].insert(row[ic]);
      auto sys = c.systems.find(row[is]);
      if (sys == c.systems.end()) continue;
      auto fam = c.serving.find(sys->second.chip_id);
      if (fam != c.serving.end()) families_of[g].insert(fam->second.id);
    }
  }
  // Held out means held out: a family a fold cannot refit (too few rows or runs left) falls back
  // to its assumed values, not to the shipped fit, which saw every row.
  std::map<std::string, ServingCalibration> prior;
  for (const auto& [chip, s] : c.serving) prior.emplace(s.id, prior_serving(s));
  auto catalog_with = [&](const std::map<std::string, ServingCalibration>& by_family) {
    Catalog out = c;
    for (const auto& [fam, s] : by_family) apply_serving(out, s);  // one copy, not one per family
    return out;
  };
  std::map<std::string, ServingCalibration> all = prior;
  for (const auto& fit : calibrate_serving(truths, c, o)) all[fit.family] = fit.fitted;
  const Catalog all_fit = catalog_with(all);
  auto group_mape = [&](const Catalog& cat, const std::set<std::string>& ids) {
    double ape = 0;
    int n = 0;
    for (const auto& t : truths)
      for (const auto& r : validate_inference(*t.table, cat, &ids, t.facts).rows) {
        if (r.grade == "C" || (o.dense_only && r.moe)) continue;
        ape += std::fabs(r.error_pct);
        ++n;
      }
    return std::pair<double, int>{n ? ape / n : 0.0, n};
  };
  CrossValidation cv;
  for (const auto& g : order) {
    const std::set<std::string>& ids = groups.at(g);
    // Only the families the group's rows run on change when the group is left out.
    CalibrateOptions held = o;
    held.exclude.insert(ids.begin(), ids.end());
    held.serving_families = families_of[g];
    std::map<std::string, ServingCalibration> without = all;
    for (const auto& fam : families_of[g]) without[fam] = prior.at(fam);
    if (!held.serving_families.empty())
      for (const auto& fit : calibrate_serving(truths, c, held)) without[fit.family] = fit.fitted;
    const auto [in, n] = group_mape(all_fit, ids);
    cv.add(g, n, in, n ? group_mape(catalog_with(without), ids).first : 0.0);
  }
  return cv;
}

std::string serving_toml(const ServingCalibration& s, const ServingFit* fit, const std::string& truth_name,
                         const std::string& version, const std::string& date) {
  std::string out;
  char b[512];
  auto line = [&](const char* fmt, auto... v) {
    std::snprintf(b, sizeof b, fmt, v...);
    out += b;
    out += "\n";
  };
  auto quote_list = [](const std::vector<std::string>& v) {
    std::string q = "[";
    for (std::size_t i = 0; i < v.size(); ++i) q += (i ? ", " : "") + double_quoted(v[i]);
    return q + "]";
  };
  out += "id = " + double_quoted(s.id) + "\n";
  out += "status = " + double_quoted(s.status) + "\n";
  out += "chips = " + quote_list(s.chips) + "\n";
  std::string src = s.source;
  for (auto& ch : src)
    if (ch == '"') ch = '\'';
  out += "source = \"" + src + "\"\n";
  line("date = \"%s\"", date.c_str());
  out += "\n[decode]\n";
  line("bandwidth_fraction = %.4f              # share of HBM bandwidth reached streaming weights and KV cache in decode", s.decode_bw);
  if (s.decode_score_time.v > 0 || fit)
    line("score_time = \"%.4g ns\"                # per query head x key position x layer on a device, beyond the KV read", s.decode_score_time.v * 1e9);
  out += "\n[prefill]\n";
  line("gemm_scale = %.4f                      # scale on data/calibration gemm efficiency for serving GEMMs", s.prefill_gemm);
  if (s.lowp_gemm_ratio != 1.0 || fit)
    line("lowp_gemm_ratio = %.4f                 # fp8/fp4 serving GEMMs: their scale relative to gemm_scale", s.lowp_gemm_ratio);
  if (s.prefill_score_time.v > 0 || fit)
    line("score_time = \"%.4g ns\"                # per query head x prompt query-key pair x layer on a device, beyond the matrix work", s.prefill_score_time.v * 1e9);
  out += "\n[engine]\n";
  line("step_overhead = \"%.4g us\"             # per iteration: scheduler, sampling, host synchronisation", s.step_overhead.v * 1e6);
  line("layer_overhead = \"%.4g us\"            # per layer per iteration: kernel launches and synchronisation", s.layer_overhead.v * 1e6);
  if (s.prefill_layer_overhead.v > 0 || fit)
    line("prefill_layer_overhead = \"%.4g us\"    # per layer of an iteration with prompt tokens, beyond layer_overhead", s.prefill_layer_overhead.v * 1e6);
  if (s.prefill_layer_floor.v > 0 || (fit && !s.mixed_batches))
    line("prefill_layer_floor = \"%.4g us\"       # least time per layer of the prefill (context-encoding) graph, however few its tokens: the pass takes max(its work, layers x floor)", s.prefill_layer_floor.v * 1e6);
  line("memory_fraction = %.2f               # share of the HBM left after weights, reserve and workspace that the KV cache takes (TensorRT-LLM kv_cache free_gpu_memory_fraction default 0.9)", s.memory_fraction);
  line("max_batch = %d                       # default cap on sequences per iteration", s.max_batch);
  line("token_budget = %d                    # default cap on tokens per iteration (chunked prefill)", s.token_budget);
  line("block_tokens = %d                    # paged-KV block size in tokens", s.block_tokens);
  if (s.shards_per_device != 1)
    line("shards_per_device = %d               # tensor-parallel ranks per device (heads padded, KV heads replicated per rank)", s.shards_per_device);
  if (s.pad_heads)
    line("pad_heads = true                    # query heads that tp does not divide are padded, KV heads replicated per rank (transformers-neuronx / NxD Inference)");
  if (s.fp4_scale_block != 32)
    line("fp4_scale_block = %d                 # FP4 weights: one 1-byte scale per this many values (NVFP4: FP8 E4M3 per 16; OCP MXFP4: E8M0 per 32, the default)", s.fp4_scale_block);
  if (s.fp4_tensor_scale)
    line("fp4_tensor_scale = true              # NVFP4's second level: an FP32 scale per tensor from its amax, over the E4M3 block scales (NVIDIA Model Optimizer compute_fp4_scales(amax, global_amax)); MXFP4 has none");
  if (!s.mixed_batches)
    line("mixed_batches = false               # prefill and decode run as separate graphs, one after the other in an iteration");
  if (s.reserve_output)
    line("kv_admission = \"guaranteed\"         # a request is admitted only with KV blocks for its whole output reserved (TensorRT-LLM capacity scheduler GUARANTEED_NO_EVICT): no preemption");
  if (s.prefill_first)
    line("scheduler = \"prefill-first\"          # waiting prompts run whole in an iteration of their own, decodes paused (vLLM V0 without chunked prefill)");
  if (s.moe_all_experts_from >= 0)
    line("moe_all_experts_from = %.4g           # MoE token generation: every expert runs over every token once batch x top_k / experts reaches this, else each token loads its own top-k experts (neuronx-distributed ExpertMLPs.SELECTIVE_LOADING_THRESHOLD)", s.moe_all_experts_from);
  if (s.moe_prefill_all_experts)
    line("moe_prefill_all_experts = true      # MoE context encoding runs every token through every expert (neuronx-distributed ExpertMLPs.forward_all_experts at full capacity)");
  if (s.moe_expert_factor != 1.0 || (fit && fit->fit_moe))
    line("moe_expert_factor = %.4f               # routed experts' time over the roofline of the same GEMMs run dense (grouped expert kernels, routing, permutation)", s.moe_expert_factor);
  if (!s.moe_expert_source.empty()) {
    std::string m = s.moe_expert_source;
    for (auto& ch : m)
      if (ch == '"') ch = '\'';
    out += "moe_expert_source = \"" + m + "\"\n";
  }
  if (fit) {
    out += "\n[fit]                                   # provenance: xpuplan calibrate on an inference table\n";
    out += "truth = " + double_quoted(truth_name) + "\n";  // escaped, whole (a table name may hold a quote)
    out += "xpuplan = " + double_quoted(version) + "\n";
    line("date = \"%s\"", date.c_str());
    out += "rows = " + quote_list(fit->rows) + "\n";
    line("bandwidth_fraction_prior = %.4f", fit->prior.decode_bw);
    line("# bandwidth_fraction was fitted at or below %.2f (the highest data/calibration memory.stream_fraction of these chips, else 0.95); each chip is capped at its own",
         fit->decode_bw_ceiling);
    line("step_overhead_prior = \"%.4g us\"", fit->prior.step_overhead.v * 1e6);
    line("layer_overhead_prior = \"%.4g us\"", fit->prior.layer_overhead.v * 1e6);
    line("prefill_layer_overhead_prior = \"%.4g us\"", fit->prior.prefill_layer_overhead.v * 1e6);
    if (!s.mixed_batches) line("prefill_layer_floor_prior = \"%.4g us\"", fit->prior.prefill_layer_floor.v * 1e6);
    line("score_time_prior = \"%.4g ns\"", fit->prior.decode_score_time.v * 1e9);
    line("prefill_score_time_prior = \"%.4g ns\"", fit->prior.prefill_score_time.v * 1e9);
    line("gemm_scale_prior = %.4f", fit->prior.prefill_gemm);
    line("lowp_gemm_ratio_prior = %.4f", fit->prior.lowp_gemm_ratio);
    if (fit->fit_moe) {
      out += "moe_rows = " + quote_list(fit->moe_rows) + "\n";
      line("moe_expert_factor_prior = %.4f", fit->prior.moe_expert_factor);
    }
    line("mape_before_pct = %.2f", fit->mape_before);
    line("mape_after_pct = %.2f", fit->mape_after);
  }
  return out;
}

}  // namespace xpu
