// Fits the serving-engine knobs of each data/serving/ family (decode bandwidth fraction,
// per-layer and per-step engine overhead) to the measured rows of an inference table, the way
// `calibrate` fits training efficiency: a robust (Cauchy) loss of the log error summed over the
// family's evaluated A+B rows, plus prior_weight x ln(value / prior)^2 per parameter pulling
// towards the assumed values. Families with fewer than 5 such rows, or rows from fewer than 3
// measured runs (a run's rows share the id before "-<metric>-<stat>"), keep their values.
#pragma once

#include <string>
#include <vector>

#include "calibrate/calibrate.hpp"

namespace xpu {

inline constexpr int kMinServingRows = 5;  // fewer rows leave a serving family as assumed
inline constexpr int kMinServingRuns = 3;  // and the rows must come from at least this many measured runs


struct ServingFit {
  std::string family;                // data/serving/<family>.toml id
  std::vector<std::string> rows;     // row ids used
  ServingCalibration prior, fitted;  // values before (the assumed ones) and after
  double mape_before = 0, mape_after = 0;
  double decode_bw_ceiling = 0.95;   // upper bound of the fitted decode bandwidth (memory.stream_fraction)
  // Then, with those values fixed, engine.moe_expert_factor on the family's mixture-of-experts
  // rows, where it has enough of them.
  bool fit_moe = false;
  std::vector<std::string> moe_rows;
  double moe_mape_before = 0, moe_mape_after = 0;
};

// facts: the table's run facts (validate_inference), or null.
std::vector<ServingFit> calibrate_serving(const CsvTable& truth, const Catalog& c, const CalibrateOptions& o,
                                          const RunFacts* facts = nullptr);

// The same fit over the rows of several inference tables together (each with its run facts, or
// null): a family's rows and runs are counted across all of them.
struct ServingTruth {
  const CsvTable* table = nullptr;
  const RunFacts* facts = nullptr;
};
std::vector<ServingFit> calibrate_serving(const std::vector<ServingTruth>& truths, const Catalog& c,
                                          const CalibrateOptions& o);

// The assumed values behind a serving file: a fitted file records the prior of every knob it fits.
ServingCalibration prior_serving(const ServingCalibration& fitted);

// Leave-one-source-out cross-validation of the serving fit (rows grouped by the id up to its first
// '-', e.g. INF2, MLP41): each group is predicted with the families its rows run on refitted
// without them (or at their assumed values when too few rows or runs remain), and compared with
// the fit on every row. Families that cannot be fitted at all stay as assumed in both.
CrossValidation cross_validate_serving(const std::vector<ServingTruth>& truths, const Catalog& c,
                                       const CalibrateOptions& o);

// The TOML text of a serving file, with the provenance of the fit when given.
std::string serving_toml(const ServingCalibration& s, const ServingFit* fit, const std::string& truth_name,
                         const std::string& version, const std::string& date);

}  // namespace xpu
