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

struct ValidationRow {
  std::string id, grade, system, model, metric;
  int line = 0;
  double measured = 0;
  double predicted = 0;
  double error_pct = 0;    // signed: (predicted - measured) / measured x 100; 100 when not evaluated
  bool evaluated = false;
  bool moe = false;        // mixture-of-experts model
  std::string reason;      // why it could not be evaluated
  TrainReport plan;        // the plan behind the prediction
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
  std::map<std::string, ErrorStats> per_grade;  // all grades
};

// Is this CSV a training table (by its header)?
bool is_training_table(const CsvTable& t);

// Throws InputError for malformed cells (file:line: column: problem). A row naming an unknown
// system or model, or whose plan cannot fit, is kept with its reason and 100% error.
// only: when given, rows whose id is not in it are skipped (calibration works on subsets).
ValidationResult validate_training(const CsvTable& t, const Catalog& c, const std::set<std::string>* only = nullptr);

}  // namespace xpu
