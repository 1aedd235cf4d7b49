// Predicts every row of a measured-runs table (FORMAT.md, training-*.csv) and reports the signed
// error per row and the mean absolute percentage error (MAPE) overall, per system and per grade.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "load/catalog.hpp"
#include "load/csv.hpp"
#include "train/report.hpp"

namespace xpu {

// A fact about a measured run that its source states but FORMAT.md has no column for (such as
// the MoE capacity factor of a MaxText "dropped" config). Kept beside the table in
// <table>.facts.csv (columns id, field, value, source), never in the measured rows themselves.
struct RunFact {
  std::string field, source, file;
  double value = 0;
  int line = 0;
};
using RunFacts = std::map<std::string, std::vector<RunFact>>;  // by row id

// Fields a run fact may set.
inline constexpr const char* kRunFactFields[] = {"moe_capacity_factor", "moe_imbalance"};

// Parses a facts table; throws InputError (file:line: column: problem) for unknown fields or bad values.
RunFacts parse_run_facts(const CsvTable& t);

struct ValidationRow {
  std::string id, grade, system, model, metric;
  int line = 0;
  double measured = 0;
  double predicted = 0;
  double error_pct = 0;    // signed: (predicted - measured) / measured x 100; 100 when not evaluated
  bool evaluated = false;
  bool moe = false;        // mixture-of-experts model
  bool precision_stated = false;  // the row names its matmul precision (else the planner chose it)
  std::string reason;      // why it could not be evaluated
  std::vector<RunFact> facts;  // run facts applied to this row
  TrainReport plan;        // the plan behind the prediction
  Model arch;              // the architecture evaluated (from the columns or the catalog)
};

struct ErrorStats {
  double mape_pct = 0;
  double max_abs_pct = 0;
  int count = 0;
};

struct ValidationResult {
  std::string path;
  std::vector<ValidationRow> rows;
  ErrorStats headline;                          // grades A and B
  ErrorStats dense;                             // grades A and B, dense models only
  std::map<std::string, ErrorStats> per_system; // grades A and B
  std::map<std::string, ErrorStats> per_family; // grades A and B, by the system's calibration family
  std::string facts_path;                       // the run-facts file used ("" = none)
  std::map<std::string, ErrorStats> per_grade;  // all grades
};

// Is this CSV a training table (by its header)?
bool is_training_table(const CsvTable& t);

// Throws InputError for malformed cells (file:line: column: problem). A row naming an unknown
// system or model, or whose plan cannot fit, is kept with its reason and 100% error.
// only: when given, rows whose id is not in it are skipped (calibration works on subsets).
// facts: run facts by row id (a fact naming an id absent from the table is an error).
ValidationResult validate_training(const CsvTable& t, const Catalog& c, const std::set<std::string>* only = nullptr,
                                   const RunFacts* facts = nullptr);

}  // namespace xpu
