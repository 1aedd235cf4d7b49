#include <cmath>
#include <filesystem>
#include <optional>
#include <set>

#include "cli/commands.hpp"
#include "load/csv.hpp"
#include "report/format.hpp"
#include "report/serve_format.hpp"
#include "spec/error.hpp"
#include "validate/validate.hpp"

namespace xpu::cli {

std::string run_facts_path(const std::string& truth, const std::string& given, bool ignore) {
  if (ignore) return "";
  if (!given.empty()) return given;
  std::string p = truth;
  if (p.size() > 4 && p.substr(p.size() - 4) == ".csv") p = p.substr(0, p.size() - 4);
  p += ".facts.csv";
  return std::filesystem::exists(p) ? p : "";
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code e1, e2;
  const auto ca = std::filesystem::weakly_canonical(a, e1), cb = std::filesystem::weakly_canonical(b, e2);
  return !e1 && !e2 && ca == cb;
}

namespace {
struct ValidateOpts {
  std::string truth, out;
  bool json = false;
  std::optional<double> max_mape, max_row;  // given: a gate
  bool dense_only_gate = false;
  std::string facts;
  bool no_facts = false;
  std::string row;  // --row: one row, with the whole prediction behind it
};
}  // namespace

void add_validate(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<ValidateOpts>();
  CLI::App* c = app.add_subcommand("validate", "Predict every row of a measured-runs table and report the error");
  c->add_option("--truth", o->truth,
                "CSV table of measured runs (validation/FORMAT.md): a training table, or an inference table "
                "(recognised by its header; rows simulated by the serving simulator), or a kernels table "
                "(validation/README.md: single kernels timed on one chip, predicted from its data and calibration)")
      ->required();
  c->add_flag("--json", o->json, "Machine-readable result: rows and summary");
  c->add_option("--out", o->out, "Write the result to this file (atomically) instead of stdout");
  c->add_option("--max-mape", o->max_mape, "Exit 1 if the A+B MAPE (of the dense rows with --gate-dense) exceeds this percentage");
  c->add_option("--max-row-error", o->max_row, "Exit 1 if any A+B row (dense rows only with --gate-dense) errs by more than this percentage");
  CLI::Option* facts_opt = c->add_option("--facts", o->facts,
                 "Run facts (id,field,value,source CSV: what a row's source states beyond FORMAT.md's columns); "
                 "default: <truth>.facts.csv beside the table when it exists, else the built-in facts of the project's copy "
                 "(validation/) for rows whose id and run columns equal it");
  c->add_flag("--no-facts", o->no_facts, "Ignore run facts, even <truth>.facts.csv and the built-in ones")->excludes(facts_opt);
  c->add_flag("--gate-dense", o->dense_only_gate, "Apply --max-mape/--max-row-error to dense-model rows only");
  c->add_option("--row", o->row,
                "Predict this row only and show the whole prediction behind it: the plan (training) or the simulated "
                "deployment (inference) with every term and the data file and field it came from, as train/serve "
                "--explain print it (--json: under \"prediction\")");
  c->callback([o, &g] {
    // -1 is "no gate"; a given threshold is a finite percentage (NaN or a negative one gated nothing).
    for (auto [v, flag] : {std::pair{o->max_mape, "--max-mape"}, std::pair{o->max_row, "--max-row-error"}})
      if (v && !(*v >= 0 && std::isfinite(*v))) throw InputError(flag, "must be a percentage of at least 0");
    if (o->dense_only_gate && !o->max_mape && !o->max_row)
      throw InputError("--gate-dense", "narrows a gate to dense rows: give --max-mape or --max-row-error with it");
    // The report must not replace the measurements it is about.
    if (!o->out.empty()) {
      if (same_file(o->out, o->truth)) throw InputError("--out", "'" + o->out + "' is the --truth table: the report would replace it");
      const std::string fp = run_facts_path(o->truth, o->facts, o->no_facts);
      if (!fp.empty() && same_file(o->out, fp)) throw InputError("--out", "'" + o->out + "' is the run facts file: the report would replace it");
    }
    const Catalog cat = load_catalog(g);
    const CsvTable t = parse_csv(read_file(o->truth));
    const bool kernels = !is_training_table(t) && !is_inference_table(t) && is_kernel_table(t);
    const bool inference = !is_training_table(t) && is_inference_table(t);
    if (!is_training_table(t) && !inference && !kernels)
      throw InputError(o->truth + ":1",
                       "not a training, inference or kernels table (expected a header of FORMAT.md: training-*.csv or "
                       "inference-*.csv, or of validation/README.md: kernels-*.csv)");
    ValidationResult v;
    std::set<std::string> only_set;
    const std::set<std::string>* only = nullptr;
    if (!o->row.empty()) {
      if (kernels) throw InputError("--row", "applies to training and inference tables; a kernels table's rows are one kernel each");
      bool found = false;
      const int id_col = t.column("id");
      for (const auto& cells : t.rows) found = found || (id_col >= 0 && id_col < static_cast<int>(cells.size()) && cells[id_col] == o->row);
      if (!found) throw InputError("--row", "'" + o->row + "' is not a row of " + o->truth);
      only_set.insert(o->row);
      only = &only_set;
    }
    if (kernels && !o->facts.empty()) throw InputError("--facts", "a kernels table has no run facts");
    // Facts given or beside the table; else, for a copy of a project table, its built-in facts.
    const FactTable kind = inference ? FactTable::inference : FactTable::training;
    const std::string facts_file = kernels ? "" : run_facts_path(o->truth, o->facts, o->no_facts);
    const FoundFacts found = kernels || o->no_facts ? FoundFacts{}
                             : !facts_file.empty() ? read_run_facts(facts_file, kind)
                                                   : builtin_run_facts(t, kind);
    const std::string& facts_path = found.label;
    const RunFacts& facts = found.facts;
    if (kernels) {
      v = validate_kernels(t, cat);
      write_output(o->out, o->json ? kernel_validation_json(v).dump(2) + "\n" : kernel_validation_text(v));
    } else if (inference) {
      v = validate_inference(t, cat, only, facts_path.empty() ? nullptr : &facts);
      v.facts_path = facts_path;
      auto j = inference_validation_json(v);
      std::string text = inference_validation_text(v);
      if (only) {
        const ValidationRow& r = v.rows.at(0);
        auto sys = cat.systems.find(r.system);
        if (r.serve && sys != cat.systems.end() && (r.evaluated || !r.serve->reason.empty())) {
          j["prediction"] = serve_json(r.arch, sys->second, *r.serve, true);
          text += "\nprediction behind " + r.id + ":\n" + serve_text(r.arch, sys->second, *r.serve, true);
        } else {
          j["prediction"] = nullptr;
          text += "\nprediction behind " + r.id + ": none (" + r.reason + ")\n";
        }
      }
      write_output(o->out, o->json ? j.dump(2) + "\n" : text);
    } else {
      v = validate_training(t, cat, only, facts_path.empty() ? nullptr : &facts);
      v.facts_path = facts_path;
      auto j = validation_json(v);
      std::string text = validation_text(v);
      if (only) {
        const ValidationRow& r = v.rows.at(0);
        auto sys = cat.systems.find(r.system);
        if (r.evaluated && sys != cat.systems.end()) {
          j["prediction"] = train_json(r.arch, sys->second, r.plan, true);
          text += "\nprediction behind " + r.id + ":\n" + train_text(r.arch, sys->second, r.plan, true);
        } else {
          j["prediction"] = nullptr;
          text += "\nprediction behind " + r.id + ": none (" + r.reason + ")\n";
        }
      }
      write_output(o->out, o->json ? j.dump(2) + "\n" : text);
    }
    const ErrorStats& gate = o->dense_only_gate ? v.dense : v.headline;
    bool fail = false;
    if ((o->max_mape || o->max_row) && gate.count == 0) {
      std::fprintf(stderr, "xpuplan validate: no grade A or B row%s to gate\n", o->dense_only_gate ? " of a dense model" : "");
      fail = true;
    }
    if (o->max_mape && gate.mape_pct > *o->max_mape) {
      std::fprintf(stderr, "xpuplan validate: MAPE %.6g%% exceeds --max-mape %.6g%%\n", gate.mape_pct, *o->max_mape);
      fail = true;
    }
    if (o->max_row) {
      for (const auto& r : v.rows) {
        if (r.grade == "C" || (o->dense_only_gate && r.moe)) continue;
        if (std::fabs(r.error_pct) > *o->max_row) {
          std::fprintf(stderr, "xpuplan validate: row %s errs by %+.6g%% (limit %.6g%%)\n", r.id.c_str(), r.error_pct, *o->max_row);
          fail = true;
        }
      }
    }
    if (fail) throw CLI::RuntimeError(1);
  });
}

}  // namespace xpu::cli
