#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>

#include "calibrate/calibrate.hpp"
#include "calibrate/calibrate_kernels.hpp"
#include "calibrate/calibrate_serve.hpp"
#include "cli/commands.hpp"
#include "load/csv.hpp"
#include "report/format.hpp"
#include "spec/error.hpp"
#include "util/build_info.hpp"
#include "util/fingerprint.hpp"
#include "units/units.hpp"
#include "validate/validate.hpp"

namespace xpu::cli {

namespace {
struct CalibrateOpts {
  std::vector<std::string> truth;
  std::string out_dir, out;
  bool json = false;
  bool all_rows = false;
  double prior = 1.0;
  bool cross_validate = false, no_facts = false;
};
// The version only (not the source id): a refit from unchanged inputs reproduces the shipped file.
const std::string kVersion = std::string("xpuplan ") + xpuplan_version();

// What reproduces a fit, beside its truth tables: the command (options included, --out-dir left
// out) and a fingerprint of the tables and fact files it read (FNV-1a, hex). Written into the
// [fit] table before its `xpuplan` line.
std::string with_provenance(std::string toml, const std::string& command, const std::string& inputs) {
  const std::size_t at = toml.find("\nxpuplan = ");
  if (at == std::string::npos) return toml;
  toml.insert(at + 1, "command = " + double_quoted(command) + "\ninputs = \"" + inputs + "\"                 # FNV-1a of the tables and run facts read\n");
  return toml;
}

std::string today() {
  std::time_t t = std::time(nullptr);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d", std::gmtime(&t));
  return b;
}
// The report of a leave-one-source-out cross-validation.
std::string cross_validation_text(const CrossValidation& cv, bool dense_only, const std::string& what) {
  char b[64];
  auto pct = [&](double v) {
    std::snprintf(b, sizeof b, "%.1f%%", v);
    return std::string(b);
  };
  std::vector<std::vector<std::string>> rows;
  for (const auto& fold : cv.folds) rows.push_back({fold.group, std::to_string(fold.rows), pct(fold.mape_in), pct(fold.mape_out)});
  if (cv.rows == 0) rows.push_back({"all", "0", "-", "-"});  // no rows: no error (0.0% would read as a perfect fit)
  else rows.push_back({"all", std::to_string(cv.rows), pct(cv.mape_in), pct(cv.mape_out)});
  return std::string("leave-one-source-out cross-validation (") + (dense_only ? "dense" : "all") + " A+B rows; MAPE with the " +
         what + " fitted on every row / fitted without the source's rows)\n\n" +
         render_table({"source", "rows", "MAPE in sample", "MAPE held out"}, rows);
}
using nlohmann::ordered_json;

ordered_json cross_validation_json(const CrossValidation& cv) {
  ordered_json folds = ordered_json::array();
  for (const auto& fold : cv.folds)
    folds.push_back({{"source", fold.group}, {"rows", fold.rows}, {"mape_in_sample_pct", round6(fold.mape_in)},
                     {"mape_held_out_pct", round6(fold.mape_out)}});
  const bool any = cv.rows > 0;  // no rows: no error (0 would read as a perfect fit)
  return {{"folds", folds}, {"rows", cv.rows}, {"mape_in_sample_pct", any ? ordered_json(round6(cv.mape_in)) : ordered_json(nullptr)},
          {"mape_held_out_pct", any ? ordered_json(round6(cv.mape_out)) : ordered_json(nullptr)}};
}

ordered_json family_json(const FamilyFit& f) {
  auto opt = [](bool given, double v) { return given ? ordered_json(round6(v)) : ordered_json(nullptr); };
  ordered_json j = {{"family", f.family}, {"chips", f.chips}, {"rows", f.rows}, {"unstated_precision_rows", f.ambiguous},
                    {"gemm_scale", round6(f.gemm_scale)}, {"lowp_scale", opt(f.fit_lowp, f.lowp_scale)},
                    {"attention_scale", round6(f.attention_scale)}, {"tp_overlap", opt(f.fit_tp_overlap, f.tp_overlap)},
                    {"mape_before_pct", round6(f.mape_before)}, {"mape_after_pct", round6(f.mape_after)}};
  j["moe"] = f.fit_grouped ? ordered_json{{"rows", f.grouped_rows}, {"grouped_scale", round6(f.grouped_scale)},
                                          {"layer_overhead_s", round6(f.moe_layer_overhead)},
                                          {"alltoall_overhead_s", opt(f.fit_alltoall, f.moe_alltoall_overhead)},
                                          {"mape_before_pct", round6(f.grouped_mape_before)},
                                          {"mape_after_pct", round6(f.grouped_mape_after)}}
                           : ordered_json(nullptr);
  return j;
}

ordered_json knobs_json(const ServingCalibration& k) {
  return {{"decode_bandwidth_fraction", round6(k.decode_bw)}, {"layer_overhead_s", round6(k.layer_overhead.v)},
          {"prefill_layer_overhead_s", round6(k.prefill_layer_overhead.v)}, {"step_overhead_s", round6(k.step_overhead.v)},
          {"prefill_gemm_scale", round6(k.prefill_gemm)}, {"lowp_gemm_ratio", round6(k.lowp_gemm_ratio)},
          {"decode_score_time_s", round6(k.decode_score_time.v)}, {"prefill_score_time_s", round6(k.prefill_score_time.v)},
          {"moe_expert_factor", round6(k.moe_expert_factor)}};
}

ordered_json serving_fit_json(const ServingFit& f) {
  return {{"family", f.family}, {"rows", f.rows}, {"prior", knobs_json(f.prior)}, {"fitted", knobs_json(f.fitted)},
          {"mape_before_pct", round6(f.mape_before)}, {"mape_after_pct", round6(f.mape_after)},
          {"moe", f.fit_moe ? ordered_json{{"rows", f.moe_rows}, {"mape_before_pct", round6(f.moe_mape_before)},
                                           {"mape_after_pct", round6(f.moe_mape_after)}}
                            : ordered_json(nullptr)}};
}

ordered_json kernel_fit_json(const std::string& path, const std::vector<KernelFit>& fits) {
  ordered_json chips = ordered_json::array();
  for (const auto& k : fits) {
    ordered_json cap = ordered_json::object();
    for (const auto& [prec, v] : k.cap) cap[prec] = round6(v);
    chips.push_back({{"chip", k.chip}, {"gemm_rows", k.gemm_rows}, {"attention_rows", k.attention_rows},
                     {"stream_rows", k.stream_rows}, {"gemm_cap", cap}, {"gemm_half_dim", round6(k.half_dim)},
                     {"memory_fraction", round6(k.memory_fraction)}, {"kernel_overhead_s", round6(k.kernel_overhead_s)},
                     {"gemm_mape_shipped_pct", round6(k.gemm_mape_shipped)}, {"gemm_mape_fitted_pct", round6(k.gemm_mape_fitted)},
                     {"stream_fraction", round6(k.stream_fraction)}, {"attention_efficiency", round6(k.attention)},
                     {"attention_half_keys", round6(k.attention_half_keys)}, {"attention_backward", round6(k.attention_backward)},
                     {"attention_pairs", k.attention_pairs}, {"attention_mape_shipped_pct", round6(k.attention_mape_shipped)},
                     {"attention_mape_fitted_pct", round6(k.attention_mape_fitted)}});
  }
  return {{"truth", path}, {"chips", chips}};
}
}  // namespace

void add_calibrate(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<CalibrateOpts>();
  CLI::App* c = app.add_subcommand(
      "calibrate", "Fit per-family efficiency scales (GEMM, low-precision GEMM, attention) to measured runs");
  c->add_option("--truth", o->truth,
                "Tables of measured runs (FORMAT.md): training tables fit data/calibration/, inference tables fit "
                "the serving knobs of data/serving/ (several are fitted together); a kernels table "
                "(validation/README.md) gets a report of the chip's best-fit kernel parameters (no files)")
      ->required();
  c->add_option("--out-dir", o->out_dir,
                "Write the fitted data/calibration/*.toml (or data/serving/*.toml) files here (atomically); without it, only report");
  c->add_flag("--all-rows", o->all_rows, "Fit on mixture-of-experts rows too (default: dense rows only)");
  c->add_option("--prior-weight", o->prior, "Pull towards the prior values: weight of ln(scale)^2 against the summed row loss (default 1)");
  c->add_flag("--cross-validate", o->cross_validate,
              "Leave-one-source-out: predict each source's rows with a calibration (training tables) or serving knobs "
              "(inference tables) fitted without them, and report the error in and out of sample (writes nothing)");
  c->add_flag("--json", o->json, "Machine-readable report (docs/OUTPUT.md): the fits, or the cross-validation, and the files written");
  c->add_option("--out", o->out, "Write the report to this file (atomically) instead of stdout");
  c->add_flag("--no-facts", o->no_facts,
              "Ignore run facts: <truth>.facts.csv beside each table, and the built-in facts applied to a copy of a "
              "project table (validation/) given without them");
  c->callback([o, &g] {
    // Fail before the fit (which can take a while), not when the first file is written.
    std::error_code ec;
    if (!o->out_dir.empty() && !std::filesystem::is_directory(o->out_dir, ec))
      throw InputError("--out-dir", "'" + o->out_dir + "' is not an existing directory (create it first)");
    // The report must not replace a table or facts file it reads, nor a file --out-dir writes, and a
    // place it cannot be written is found before the fit (which can take minutes) and its files.
    if (!o->out.empty()) {
      for (const auto& p : o->truth) {
        if (same_file(o->out, p)) throw InputError("--out", "'" + o->out + "' is a --truth table: the report would replace it");
        const std::string facts = run_facts_path(p, "", false);
        if (!facts.empty() && same_file(o->out, facts))
          throw InputError("--out", "'" + o->out + "' is the run facts file of " + p + ": the report would replace it");
      }
      if (!o->out_dir.empty()) {
        std::error_code e;
        const auto parent = std::filesystem::weakly_canonical(std::filesystem::path(o->out).parent_path().empty()
                                                                   ? std::filesystem::path(".")
                                                                   : std::filesystem::path(o->out).parent_path(), e);
        if (!e && same_file(parent.string(), o->out_dir))
          throw InputError("--out", "'" + o->out + "' is in --out-dir, where the fitted files go: write the report elsewhere");
      }
      const std::filesystem::path dir = std::filesystem::path(o->out).parent_path();
      if (!dir.empty() && !std::filesystem::is_directory(dir, ec))
        throw InputError("--out", "no folder " + dir.string() + " to write '" + o->out + "' in (nothing fitted, nothing written)");
    }
    const Catalog cat = load_catalog(g);
    std::vector<CsvTable> tables, serving_tables, kernel_tables;
    std::vector<std::string> training_paths;
    std::string names;
    {
      std::set<std::string> seen;  // a table given twice would count every row twice
      for (const auto& p : o->truth) {
        std::error_code e;
        const auto real = std::filesystem::weakly_canonical(p, e);
        if (!seen.insert(e ? p : real.string()).second) throw InputError("--truth", "'" + p + "' is given twice");
      }
    }
    std::map<std::string, std::string> texts;  // each table read once: its bytes for the fingerprint
    for (const auto& p : o->truth) {
      const DataFile file = read_file(p);
      texts[p] = file.text;
      CsvTable t = parse_csv(file);
      if (!is_training_table(t) && is_inference_table(t)) {
        serving_tables.push_back(std::move(t));
        continue;
      }
      if (!is_training_table(t) && is_kernel_table(t)) {
        if (!o->out_dir.empty())
          throw InputError(p + ":1", "a kernels table gives a report, not files: data/calibration's caps are fitted to "
                                     "training steps; put the measured shape fields there by hand, with their source (drop --out-dir)");
        kernel_tables.push_back(std::move(t));
        continue;
      }
      tables.push_back(std::move(t));
      training_paths.push_back(p);
      names += (names.empty() ? "" : ", ") + p;
    }
    check_not_input(o->out, "--out");  // a catalog (--data) file read: before the fit writes anything
    if (!o->out_dir.empty() && !tables.empty() && !serving_tables.empty())
      throw InputError("--out-dir", "training tables fit data/calibration/ files, inference tables data/serving/ files: "
                                    "give one kind of table per run with --out-dir");
    // Provenance of written fits: the reproducing command and what it read.
    std::string command = "xpuplan" + (g.data_dir.empty() ? std::string() : " --data " + g.data_dir) + " calibrate";
    Fingerprint read;
    // Each table's run facts: beside it, else the built-in facts when it is a copy of a project table.
    std::map<std::string, FoundFacts> found;
    for (const auto& p : o->truth) {
      command += " --truth " + p;
      read.add(texts.at(p));
      const std::string fp = run_facts_path(p, "", o->no_facts);
      const CsvTable* t = nullptr;  // the parsed table; a kernels table has no run facts
      for (const auto* v : {&tables, &serving_tables})
        for (const auto& x : *v)
          if (x.path == p) t = &x;
      const FactTable kind = t && !is_training_table(*t) ? FactTable::inference : FactTable::training;
      FoundFacts ff = o->no_facts || !t ? FoundFacts{}
                      : !fp.empty()    ? read_run_facts(fp, kind)
                                       : builtin_run_facts(*t, kind);
      if (!ff.label.empty()) read.add(ff.text);  // contents only: the same bytes, the same fingerprint
      found[p] = std::move(ff);
    }
    if (o->all_rows) command += " --all-rows";
    if (o->prior != 1.0) command += " --prior-weight " + format_number("%.17g", o->prior);
    if (o->no_facts) command += " --no-facts";
    const std::string inputs = read.hex();
    ordered_json j;  // --json: the same report
    j["truth"] = o->truth;
    // Which run facts each table took (a file beside it, the built-in ones of a project table, none).
    std::string facts_text;
    ordered_json facts_json = ordered_json::object();
    for (const auto& p : o->truth) {
      const std::string& label = found.at(p).label;
      facts_json[p] = label.empty() ? ordered_json(nullptr) : ordered_json(label);
      if (!label.empty()) facts_text += "run facts of " + p + ": " + label + "\n";
    }
    j["run_facts"] = facts_json;
    j["mode"] = o->cross_validate ? "cross_validate" : "fit";
    j["training"] = nullptr;
    j["serving"] = nullptr;
    j["kernels"] = ordered_json::array();
    j["written"] = ordered_json::array();
    auto emit = [&](const std::string& text) {
      write_output(o->out, o->json ? j.dump(2) + "\n" : text + (facts_text.empty() ? "" : "\n" + facts_text));
    };
    // The files are written together once every fit is done, each atomically; a target that
    // cannot be replaced is found before any is written.
    std::vector<std::pair<std::string, std::string>> files;
    auto write_files = [&] {
      for (const auto& [path, text] : files) {
        if (std::filesystem::is_directory(path, ec))
          throw InputError(path, "is a directory: cannot write the fitted file there (nothing written)");
        // A fitted file never replaces what the fit read (a table named like a chip or family).
        for (const auto& t : o->truth) {
          if (same_file(path, t))
            throw InputError("--out-dir", "'" + path + "' is a --truth table: the fitted file would replace it (nothing written)");
          const std::string facts = run_facts_path(t, "", false);
          if (!facts.empty() && same_file(path, facts))
            throw InputError("--out-dir", "'" + path + "' is the run facts file of " + t + ": the fitted file would replace it (nothing written)");
        }
        // A fit of absurd measurements can give values the catalog refuses to load: write only
        // files it reads back.
        try {
          const DataFile back{path, text};
          if (tables.empty()) {
            std::vector<std::string> chips;
            (void)parse_serving(back, &chips);
          } else {
            (void)parse_calibration(back);
          }
        } catch (const InputError& e) {
          throw InputError("--truth", std::string("the fit gives a file the catalog would refuse (") + e.what() +
                                          "): check the measured values (nothing written)");
        }
      }
      for (const auto& [path, text] : files) {
        write_output(path, text, nullptr);  // a refit replaces the file it read (--data DIR --out-dir DIR/...)
        j["written"].push_back(path);
      }
    };
    if (!(o->prior >= 0) || !std::isfinite(o->prior))
      throw InputError("--prior-weight", "must be a finite weight of at least 0 (0: no pull towards the prior)");
    CalibrateOptions opts;
    opts.dense_only = !o->all_rows;
    opts.prior_weight = o->prior;
    for (const auto& p : training_paths) opts.facts.push_back(found.at(p).facts);
    std::string serving_text;
    // Every inference table given is fitted together: a family's rows and runs count across them.
    std::vector<RunFacts> sfacts(serving_tables.size());
    std::vector<ServingTruth> truths;
    std::string snames;
    for (std::size_t i = 0; i < serving_tables.size(); ++i) {
      const CsvTable& t = serving_tables[i];
      const FoundFacts& ff = found.at(t.path);
      sfacts[i] = ff.facts;
      truths.push_back({&t, ff.label.empty() ? nullptr : &sfacts[i]});
      snames += (snames.empty() ? "" : ", ") + t.path;
    }
    if (o->cross_validate && !o->out_dir.empty()) throw InputError("--cross-validate", "writes nothing; drop --out-dir");
    if (!truths.empty() && o->cross_validate) {
      const CrossValidation cv = cross_validate_serving(truths, cat, opts);
      serving_text += "serving fit (" + snames + "): " + cross_validation_text(cv, opts.dense_only, "serving knobs");
      j["serving"] = {{"cross_validation", cross_validation_json(cv)}};
    }
    if (!truths.empty() && !o->cross_validate) {
      const std::vector<ServingFit> fits = calibrate_serving(truths, cat, opts);
      ordered_json sf_json = ordered_json::array();
      for (const auto& fit : fits) sf_json.push_back(serving_fit_json(fit));
      j["serving"] = {{"families", sf_json}};
      std::vector<std::vector<std::string>> srows;
      char sb[64];
      auto sf = [&](const char* fmt, double v) {
        std::snprintf(sb, sizeof sb, fmt, v);
        return std::string(sb);
      };
      for (const auto& fit : fits)
        srows.push_back({fit.family, std::to_string(fit.rows.size()),
                         sf("%.3f", fit.prior.decode_bw) + " -> " + sf("%.3f", fit.fitted.decode_bw),
                         sf("%.0f us", fit.prior.layer_overhead.v * 1e6) + " -> " + sf("%.0f us", fit.fitted.layer_overhead.v * 1e6),
                         sf("%.0f us", fit.prior.prefill_layer_overhead.v * 1e6) + " -> " + sf("%.0f us", fit.fitted.prefill_layer_overhead.v * 1e6),
                         sf("%.2f ms", fit.prior.step_overhead.v * 1e3) + " -> " + sf("%.2f ms", fit.fitted.step_overhead.v * 1e3),
                         sf("%.2f", fit.prior.prefill_gemm) + " -> " + sf("%.2f", fit.fitted.prefill_gemm) +
                             (fit.fitted.lowp_gemm_ratio != fit.prior.lowp_gemm_ratio
                                  ? " (fp8/fp4 x " + sf("%.2f", fit.fitted.lowp_gemm_ratio) + ")"
                                  : ""),
                         sf("%.3f", fit.prior.decode_score_time.v * 1e9) + " / " + sf("%.3f ns", fit.prior.prefill_score_time.v * 1e9) +
                             " -> " + sf("%.3f", fit.fitted.decode_score_time.v * 1e9) + " / " +
                             sf("%.3f ns", fit.fitted.prefill_score_time.v * 1e9),
                         sf("%.1f%%", fit.mape_before), sf("%.1f%%", fit.mape_after),
                         fit.fit_moe ? std::to_string(fit.moe_rows.size()) + ": " + sf("%.3f", fit.prior.moe_expert_factor) + " -> " +
                                           sf("%.3f", fit.fitted.moe_expert_factor) + " (" + sf("%.1f%%", fit.moe_mape_before) +
                                           " -> " + sf("%.1f%%", fit.moe_mape_after) + ")"
                                     : std::string("-")});
      if (fits.empty())
        serving_text += "serving fit (" + snames + "): no family has enough rows to fit (at least " +
                        std::to_string(std::max(opts.min_rows, kMinServingRows)) + " rows from " +
                        std::to_string(kMinServingRuns) + " runs): nothing fitted\n";
      serving_text += "serving families (" + snames + ")\n" +
                      render_table({"family", "rows", "decode bandwidth", "layer overhead", "prefill layer overhead", "step overhead", "GEMM x",
                                   "score time decode / prefill", "MAPE before", "MAPE after",
                                   "MoE rows: expert factor (MAPE)"},
                                  srows);
      if (!o->out_dir.empty())
        for (const auto& fit : fits) {
          const std::string path = o->out_dir + "/" + fit.family + ".toml";
          files.emplace_back(path, with_provenance(serving_toml(fit.fitted, &fit, snames, kVersion, today()), command, inputs));
          serving_text += "wrote " + path + "\n";
        }
    }
    for (const auto& t : kernel_tables) {
      const std::vector<KernelFit> kf = fit_kernels(t, cat);
      serving_text += kernel_fit_text(t.path, kf, cat);
      j["kernels"].push_back(kernel_fit_json(t.path, kf));
    }
    if (tables.empty()) {
      write_files();
      emit(serving_text);
      return;
    }
    char b[64];
    auto f = [&](const char* fmt, double v) {
      std::snprintf(b, sizeof b, fmt, v);
      return std::string(b);
    };
    if (o->cross_validate) {
      const CrossValidation cv = cross_validate(tables, cat, opts);
      j["training"] = {{"cross_validation", cross_validation_json(cv)}};
      const std::string text = cross_validation_text(cv, opts.dense_only, "calibration");
      emit(text + (serving_text.empty() ? "" : "\n" + serving_text));  // the serving folds too, when given
      return;
    }
    const CalibrationResult res = calibrate(tables, cat, opts);
    {
      ordered_json fams = ordered_json::array();
      for (const auto& fit : res.families) fams.push_back(family_json(fit));
      j["training"] = {{"families", fams}};
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& fit : res.families)
      rows.push_back({fit.family, std::to_string(fit.rows.size()), std::to_string(fit.ambiguous.size()), f("%.3f", fit.gemm_scale),
                      fit.fit_lowp ? f("%.3f", fit.lowp_scale) : "-", f("%.3f", fit.attention_scale),
                      fit.fit_tp_overlap ? f("%.2f", fit.tp_overlap) : "-",
                      f("%.1f%%", fit.mape_before), f("%.1f%%", fit.mape_after),
                      fit.fit_grouped ? std::to_string(fit.grouped_rows.size()) + ": " + f("%.3f", fit.grouped_scale) + ", " +
                                            f("%.0f us", fit.moe_layer_overhead * 1e6) +
                                            (fit.fit_alltoall ? f(" + alltoall %.0f us", fit.moe_alltoall_overhead * 1e6) : std::string()) + " (" +
                                            f("%.1f%%", fit.grouped_mape_before) + " -> " + f("%.1f%%", fit.grouped_mape_after) + ")"
                                      : "-"});
    std::string text = res.families.empty()
                           ? "no family has enough rows to fit (at least " + std::to_string(opts.min_rows) +
                                 " usable rows of one calibration family): nothing fitted\n"
                           : std::string();
    text += render_table({"family", "rows", "unstated precision (left out)", "gemm x", "fp8/fp4/int8 x", "attention x",
                                     "tp overlap", "MAPE before", "MAPE after", "MoE rows: grouped GEMM x, layer fixed cost (MAPE)"}, rows);
    if (!o->out_dir.empty()) {
      for (const auto& fit : res.families)
        for (const auto& chip : fit.chips) {
          const std::string path = o->out_dir + "/" + chip + ".toml";
          files.emplace_back(path, with_provenance(calibration_toml(res.fitted.at(chip), &fit, names, kVersion, today()), command, inputs));
          text += "wrote " + path + "\n";
        }
    }
    write_files();
    emit(text + (serving_text.empty() ? "" : "\n" + serving_text));
  });
}

}  // namespace xpu::cli
