// Fits per-family efficiency scales (GEMM at bf16/fp16, GEMM at fp8/fp4/int8, flash attention)
// and the share of tensor-parallel traffic hidden under GEMMs on dense rows, then the grouped
// (expert) GEMM factor on mixture-of-experts rows with those fixed,
// by a robust (Cauchy) fit of the log error of measured runs, with a weak pull towards the prior
// values so that a family with few rows moves little. Pure: takes tables and a catalog,
// returns new calibrations; the CLI writes them.
#pragma once

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "load/catalog.hpp"
#include "load/csv.hpp"
#include "validate/validate.hpp"

namespace xpu {

struct FamilyFit {
  std::string family;
  std::vector<std::string> chips;     // chips in the family (all get the fitted scales)
  std::vector<std::string> rows;      // row ids used
  std::vector<std::string> ambiguous; // rows left out: precision unstated on a chip with several matmul rates
  double gemm_scale = 1, lowp_scale = 1, attention_scale = 1;
  bool fit_lowp = false;              // the rows exercise fp8/fp4/int8 plans
  bool lowp_fp8 = false;              // ... fp8/fp4 among them: lowp_scale covers fp8/fp4 (else the GEMM scale does)
  bool fit_tp_overlap = false;        // the rows exercise tensor parallelism
  double tp_overlap = 0, tp_overlap_prior = 0;
  bool fit_grouped = false;               // enough mixture-of-experts rows to fit gemm.grouped
  std::vector<std::string> grouped_rows;  // the MoE rows that fit it
  double grouped_scale = 1, grouped_mape_before = 0, grouped_mape_after = 0;
  double moe_layer_overhead = 0, moe_layer_overhead_prior = 0;  // seconds, fitted with grouped_scale
  bool fit_alltoall = false;               // enough rows with the host-synchronised alltoall dispatcher
  std::vector<std::string> alltoall_rows;  // those rows
  double moe_alltoall_overhead = 0, moe_alltoall_overhead_prior = 0;  // seconds, fitted with them
  double loss_before = 0, loss_after = 0;  // mean robust loss
  double mape_before = 0, mape_after = 0;
};

struct CalibrationResult {
  std::vector<FamilyFit> families;
  std::map<std::string, Calibration> fitted;  // by chip id: the new values
};

struct CalibrateOptions {
  bool dense_only = true;     // fit on dense-model rows only
  double prior_weight = 1.0;  // weight of ln(scale)^2 against the summed robust loss of the rows
  int min_rows = 3;           // families with fewer usable rows are left as they are
  int min_alltoall_rows = 2;  // MoE rows run with the alltoall dispatcher needed to fit its overhead
  double robust_scale = 0.25; // log error at which the Cauchy loss starts to flatten (about 28%)
  std::vector<RunFacts> facts;       // per truth table (same order), or empty: run facts to apply
  std::set<std::string> exclude;     // row ids left out of the fit (cross-validation)
  std::set<std::string> serving_families;  // serving fit: only these data/serving families (empty: all)
  // Leave out rows that do not state their precision on a chip with more than one matmul rate
  // (bf16 and fp8, say): the planner's choice there says nothing about the efficiency of the
  // precision the run actually used, so the row cannot inform the per-precision scales.
  bool skip_ambiguous_precision = true;
};

CalibrationResult calibrate(const std::vector<CsvTable>& truth, const Catalog& c, const CalibrateOptions& o);

// Golden-section search for the minimum of f on [lo, hi] (0 < lo < hi), in log space: the fits'
// one-dimensional searches over scales and costs.
template <class F>
double golden(F f, double lo, double hi, int iters) {
  const double phi = (std::sqrt(5.0) - 1) / 2;
  double a = std::log(lo), b = std::log(hi);
  double c = b - phi * (b - a), d = a + phi * (b - a);
  double fc = f(std::exp(c)), fd = f(std::exp(d));
  for (int i = 0; i < iters; ++i) {
    if (fc < fd) {
      b = d; d = c; fd = fc; c = b - phi * (b - a); fc = f(std::exp(c));
    } else {
      a = c; c = d; fc = fd; d = a + phi * (b - a); fd = f(std::exp(d));
    }
  }
  return std::exp((a + b) / 2);
}

// The prior (assumed) values behind a calibration: a fitted file divided by the scales it records.
Calibration prior_calibration(const Calibration& fitted);

// The catalog with these calibrations (by chip id) in place of its own, in every system that uses them.
Catalog with_calibrations(const Catalog& c, const std::map<std::string, Calibration>& by_chip);

// Leave-one-source-out cross-validation: rows are grouped by source (the id up to its first '-',
// e.g. NAR21, MBRIDGE2511); each group is predicted by a calibration fitted without it. Shows how
// the fit generalises to measurements it has not seen.
struct CrossValidationFold {
  std::string group;
  int rows = 0;
  double mape_in = 0;   // the group's rows, calibration fitted on every row
  double mape_out = 0;  // the group's rows, calibration fitted without them
};
struct CrossValidation {
  std::vector<CrossValidationFold> folds;
  int rows = 0;
  double mape_in = 0, mape_out = 0;  // over all rows of all folds
  // Adds a fold (none when it has no rows) and keeps the row-weighted means over all folds.
  void add(const std::string& group, int n, double in, double out) {
    if (n == 0) return;
    mape_in = (mape_in * rows + in * n) / (rows + n);
    mape_out = (mape_out * rows + out * n) / (rows + n);
    rows += n;
    folds.push_back({group, n, in, out});
  }
};
CrossValidation cross_validate(const std::vector<CsvTable>& truth, const Catalog& c, const CalibrateOptions& o);

// The TOML text of a calibration file, with provenance of the fit.
std::string calibration_toml(const Calibration& c, const FamilyFit* fit, const std::string& truth_names,
                             const std::string& version, const std::string& date);

}  // namespace xpu
