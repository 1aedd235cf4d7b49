// The calibration fit (src/calibrate/calibrate.hpp): it lowers the error of the rows it fits,
// refits start from the prior (no compounding), excluded rows stay out, cross-validation folds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "calibrate/calibrate.hpp"
#include "load/csv.hpp"
#include "test_common.hpp"
#include "validate/validate.hpp"

namespace xpu {
namespace {

using test::builtin;

// The rows of the project's measured-runs table whose id starts with one of `prefixes`.
CsvTable rows_with(std::initializer_list<const char*> prefixes) {
  std::ifstream in(test::source_path("validation/training-public.csv"), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  CsvTable all = parse_csv({"training-public.csv", ss.str()});
  CsvTable t = all;
  t.rows.clear();
  t.row_lines.clear();
  const int ic = all.column("id");
  for (std::size_t i = 0; i < all.rows.size(); ++i)
    for (const char* p : prefixes)
      if (all.rows[i][ic].rfind(p, 0) == 0) {
        t.rows.push_back(all.rows[i]);
        t.row_lines.push_back(all.row_lines[i]);
        break;
      }
  return t;
}

// The A100 rows whose source is NAR21 (Table 1) or KOR22: 9 dense rows, two sources, one family.
CsvTable a100_rows() { return rows_with({"NAR21-T1", "KOR22-T5"}); }

// The TPU v6e rows of the MaxText recipes (TPUREC-V6E-*): dense and Mixtral (MoE) rows, one family.
CsvTable v6e_rows() { return rows_with({"TPUREC-V6E"}); }

// The shipped catalog with every calibration set back to its prior (assumed) values.
Catalog prior_catalog() {
  std::map<std::string, Calibration> priors;
  for (const auto& [chip, cal] : builtin().calibrations) priors[chip] = prior_calibration(cal);
  return with_calibrations(builtin(), priors);
}

const FamilyFit* fit_of(const CalibrationResult& r, const std::string& family) {
  for (const auto& f : r.families)
    if (f.family == family) return &f;
  return nullptr;
}

TEST(Calibrate, FitLowersTheErrorOfItsRows) {
  const std::vector<CsvTable> truth = {a100_rows()};
  ASSERT_EQ(truth[0].rows.size(), 9u);
  const CalibrationResult r = calibrate(truth, prior_catalog(), CalibrateOptions{});
  const FamilyFit* f = fit_of(r, builtin().system("dgx-a100").calib.family);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->rows.size(), 9u);
  EXPECT_LT(f->loss_after, f->loss_before);
  EXPECT_LT(f->mape_after, f->mape_before);
  // The fitted values are what validate then sees: its MAPE over these rows equals mape_after.
  const Catalog fitted = with_calibrations(builtin(), r.fitted);
  const ValidationResult v = validate_training(truth[0], fitted);
  EXPECT_NEAR(v.headline.mape_pct, f->mape_after, 1e-9);
}

TEST(Calibrate, RefitStartsFromThePrior) {
  // Fitting the fitted catalog again gives the same values: the fit divides out the scales it
  // recorded and starts from the prior, so scales do not compound.
  const std::vector<CsvTable> truth = {a100_rows()};
  const CalibrationResult a = calibrate(truth, prior_catalog(), CalibrateOptions{});
  const CalibrationResult b = calibrate(truth, with_calibrations(builtin(), a.fitted), CalibrateOptions{});
  ASSERT_EQ(a.families.size(), b.families.size());
  for (const auto& [chip, cal] : a.fitted) {
    EXPECT_NEAR(b.fitted.at(chip).gemm_max_at(Precision::bf16), cal.gemm_max_at(Precision::bf16), 1e-6) << chip;
    EXPECT_NEAR(b.fitted.at(chip).attention, cal.attention, 1e-6) << chip;
  }
  // prior_calibration undoes the recorded scales.
  const Calibration& fitted = a.fitted.begin()->second;
  const Calibration prior = prior_calibration(fitted);
  EXPECT_NEAR(prior.gemm_max_at(Precision::bf16) * fitted.fit_gemm_scale, fitted.gemm_max_at(Precision::bf16), 1e-12);
}

TEST(Calibrate, ALowPrecisionScaleFromInt8RowsLeavesFp8ToTheGemmScale) {
  // The TPU v6e recipe rows run bf16 and int8, never fp8: the low-precision scale they fit says
  // nothing of fp8, which v5p and v6e run at their bf16 rate. fp8 takes the GEMM scale (it took the
  // int8 one, and fp8 read 35% slower than bf16 on v5p), int8 the low-precision one; a refit
  // divides each out again.
  const std::vector<CsvTable> truth = {v6e_rows()};
  const Catalog prior = prior_catalog();
  const CalibrationResult r = calibrate(truth, prior, CalibrateOptions{});
  const FamilyFit* f = fit_of(r, builtin().system("tpu-v6e").calib.family);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->fit_lowp);
  EXPECT_FALSE(f->lowp_fp8);
  ASSERT_NE(f->lowp_scale, f->gemm_scale);
  const Calibration& before = prior.calibrations.at("tpu-v5p");
  const Calibration& after = r.fitted.at("tpu-v5p");
  EXPECT_NEAR(after.gemm_max_at(Precision::fp8), before.gemm_max_at(Precision::fp8) * f->gemm_scale, 1e-9);
  EXPECT_NEAR(after.gemm_max_at(Precision::int8), before.gemm_max_at(Precision::int8) * f->lowp_scale, 1e-9);
  const Calibration undone = prior_calibration(after);
  EXPECT_NEAR(undone.gemm_max_at(Precision::fp8), before.gemm_max_at(Precision::fp8), 1e-9);
  EXPECT_NEAR(undone.gemm_max_at(Precision::int8), before.gemm_max_at(Precision::int8), 1e-9);
}

TEST(Calibrate, ExcludedRowsStayOutOfTheFit) {
  const std::vector<CsvTable> truth = {a100_rows()};
  CalibrateOptions o;
  o.exclude = {"KOR22-T5-1b", "KOR22-T5-2a", "KOR22-T5-3b", "KOR22-T5-4a"};
  const CalibrationResult r = calibrate(truth, prior_catalog(), o);
  const FamilyFit* f = fit_of(r, builtin().system("dgx-a100").calib.family);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->rows.size(), 5u);
  for (const auto& id : f->rows) EXPECT_EQ(o.exclude.count(id), 0u) << id;
}

TEST(Calibrate, RowsWithAnUnstatedPrecisionOnAMultiRateChipStayOut) {
  // MCORE24-W-* leave precision empty on H100 (bf16 and fp8): the planner's fp8 says nothing about
  // what the run used, so the Hopper fit leaves them out. KOR22 leaves it empty on A100, whose only
  // matmul rate the planner chooses is bf16: those rows are used.
  std::ifstream in(test::source_path("validation/training-public.csv"), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::vector<CsvTable> truth = {parse_csv({"training-public.csv", ss.str()})};
  const CalibrationResult r = calibrate(truth, prior_catalog(), CalibrateOptions{});
  const FamilyFit* hopper = fit_of(r, builtin().system("dgx-h100").calib.family);
  const FamilyFit* a100 = fit_of(r, builtin().system("dgx-a100").calib.family);
  ASSERT_NE(hopper, nullptr);
  ASSERT_NE(a100, nullptr);
  auto has = [](const std::vector<std::string>& v, const std::string& id) { return std::find(v.begin(), v.end(), id) != v.end(); };
  EXPECT_TRUE(has(hopper->ambiguous, "MCORE24-W-2"));
  EXPECT_FALSE(has(hopper->rows, "MCORE24-W-2"));
  EXPECT_TRUE(has(a100->rows, "KOR22-T5-1b"));
  EXPECT_TRUE(a100->ambiguous.empty());
  CalibrateOptions all;
  all.skip_ambiguous_precision = false;
  EXPECT_TRUE(has(fit_of(calibrate(truth, prior_catalog(), all), "hopper")->rows, "MCORE24-W-2"));
}

TEST(Calibrate, CrossValidationHoldsEachSourceOut) {
  const std::vector<CsvTable> truth = {a100_rows()};
  const CrossValidation cv = cross_validate(truth, builtin(), CalibrateOptions{});
  ASSERT_EQ(cv.folds.size(), 2u);
  EXPECT_EQ(cv.folds[0].group, "NAR21");
  EXPECT_EQ(cv.folds[0].rows, 5);
  EXPECT_EQ(cv.folds[1].group, "KOR22");
  EXPECT_EQ(cv.folds[1].rows, 4);
  EXPECT_EQ(cv.rows, 9);
  // Held out, KOR22's 4 rows leave 5 NAR21 rows (>= 3): A100 is refitted without them, so the
  // held-out error differs from the in-sample one.
  EXPECT_NE(cv.folds[1].mape_out, cv.folds[1].mape_in);
  EXPECT_NEAR(cv.mape_in, (5 * cv.folds[0].mape_in + 4 * cv.folds[1].mape_in) / 9, 1e-9);
  EXPECT_NEAR(cv.mape_out, (5 * cv.folds[0].mape_out + 4 * cv.folds[1].mape_out) / 9, 1e-9);
}

TEST(Calibrate, GroupedGemmFactorFitsOnTheMoeRowsOnly) {
  const std::vector<CsvTable> truth = {v6e_rows()};
  const Catalog prior = prior_catalog();
  const CalibrationResult r = calibrate(truth, prior, CalibrateOptions{});
  const std::string fam = builtin().system("tpu-v6e").calib.family;
  const FamilyFit* f = fit_of(r, fam);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->fit_grouped);
  ASSERT_GE(f->grouped_rows.size(), 3u);
  // The dense fit never sees an MoE row; the grouped fit sees only MoE rows.
  for (const auto& id : f->grouped_rows) EXPECT_EQ(std::count(f->rows.begin(), f->rows.end(), id), 0) << id;
  EXPECT_LE(f->grouped_mape_after, f->grouped_mape_before + 1e-9);
  const std::string chip = builtin().system("tpu-v6e").chip_id;
  const Calibration& fitted = r.fitted.at(chip);
  EXPECT_NEAR(fitted.gemm_grouped, prior.calibrations.at(chip).gemm_grouped * f->grouped_scale, 1e-12);
  // The file records the scale, so the prior comes back exactly.
  EXPECT_NEAR(prior_calibration(fitted).gemm_grouped, prior.calibrations.at(chip).gemm_grouped, 1e-12);
}

TEST(Calibrate, MoeLayerFixedCostFitsWithTheGroupedScaleAndRoundTrips) {
  // The Blackwell MoE rows (Megatron-Bridge DeepSeek-V3, Qwen3, GPT-OSS) fit a fixed cost per MoE
  // layer and microbatch beside the grouped-GEMM scale; the written file records the prior it
  // started from, so reading it back and refitting starts from that prior again.
  const std::vector<CsvTable> truth = {rows_with({"MBRIDGE2511"})};
  const Catalog prior = prior_catalog();
  const CalibrationResult r = calibrate(truth, prior, CalibrateOptions{});
  const FamilyFit* f = fit_of(r, builtin().system("gb200-nvl72").calib.family);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->fit_grouped);
  EXPECT_GT(f->moe_layer_overhead, 1e-5);  // the MoE rows run slower than their GEMMs and bytes say
  EXPECT_LT(f->moe_layer_overhead, 5e-3);  // within the searched range
  EXPECT_EQ(f->moe_layer_overhead_prior, 0.0);
  EXPECT_LE(f->grouped_mape_after, f->grouped_mape_before + 1e-9);
  const Calibration& fitted = r.fitted.at("gb200");
  EXPECT_DOUBLE_EQ(fitted.moe_layer_overhead.v, f->moe_layer_overhead);
  const std::string text = calibration_toml(fitted, f, "t.csv", "xpuplan test", "2026-11-27");
  const Calibration back = parse_calibration(DataFile{"gb200.toml", text});
  EXPECT_NEAR(back.moe_layer_overhead.v, f->moe_layer_overhead, 1e-3 * f->moe_layer_overhead);  // written to 4 digits
  EXPECT_EQ(back.prior_moe_layer_overhead, 0.0);
  EXPECT_EQ(prior_calibration(back).moe_layer_overhead.v, 0.0);
}

TEST(Calibrate, AlltoallDispatcherCostFitsOnItsRowsAndRoundTrips) {
  // The Megatron-Bridge 25.11 rows with their run facts: GPT-OSS (MBRIDGE2511-12, -18) ran the
  // host-synchronised alltoall dispatcher, DeepSeek-V3 and Qwen3 HybridEP. With the facts the MoE fit
  // adds a cost per MoE layer and microbatch for the alltoall rows; without them there is none.
  const CsvTable t = rows_with({"MBRIDGE2511"});
  std::ifstream in(test::source_path("validation/training-public.facts.csv"), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const RunFacts all = parse_run_facts(parse_csv({"training-public.facts.csv", ss.str()}));
  RunFacts facts;
  for (const auto& [id, fs] : all)
    if (id.rfind("MBRIDGE2511", 0) == 0) facts[id] = fs;
  const Catalog prior = prior_catalog();
  CalibrateOptions o;
  o.facts = {facts};
  const CalibrationResult r = calibrate({t}, prior, o);
  const FamilyFit* f = fit_of(r, builtin().system("gb200-nvl72").calib.family);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->fit_alltoall);
  EXPECT_EQ(f->alltoall_rows, (std::vector<std::string>{"MBRIDGE2511-12", "MBRIDGE2511-18"}));
  EXPECT_GT(f->moe_alltoall_overhead, 1e-4);  // GPT-OSS runs slower than the HybridEP rows' costs say
  EXPECT_LT(f->moe_alltoall_overhead, 10e-3);
  EXPECT_EQ(f->moe_alltoall_overhead_prior, 0.0);
  const Calibration& fitted = r.fitted.at("b200");
  EXPECT_DOUBLE_EQ(fitted.moe_alltoall_overhead.v, f->moe_alltoall_overhead);
  const std::string text = calibration_toml(fitted, f, "t.csv", "xpuplan test", "2026-11-27");
  const Calibration back = parse_calibration(DataFile{"b200.toml", text});
  EXPECT_NEAR(back.moe_alltoall_overhead.v, f->moe_alltoall_overhead, 1e-3 * f->moe_alltoall_overhead);
  EXPECT_EQ(prior_calibration(back).moe_alltoall_overhead.v, 0.0);

  const CalibrationResult plain = calibrate({t}, prior, CalibrateOptions{});
  const FamilyFit* p = fit_of(plain, builtin().system("gb200-nvl72").calib.family);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->fit_alltoall);
  EXPECT_TRUE(p->alltoall_rows.empty());
  EXPECT_EQ(plain.fitted.at("b200").moe_alltoall_overhead.v, 0.0);
}

TEST(Calibrate, WrittenFileKeepsMeasuredShapeFieldsAndTheirSource) {
  // A refit rewrites the file from the Calibration: the shape fields measured elsewhere
  // (half_dim, tile_rows, attention.half_keys, memory.stream_fraction, a measured gemm.grouped
  // prior) and their provenance must survive it.
  Calibration c = builtin().calibrations.at("h100-sxm");
  c.attention_half_keys = 600;
  c.gemm_shape_source = "measured \"here\" on a probe";
  c.gemm_grouped = 0.93;
  c.gemm_grouped_source = "grouped GEMMs on a probe";
  c.memory_stream = 0.87;
  c.memory_stream_source = "a GEMV on a probe";
  c.moe_alltoall_overhead = Seconds{623.7e-6};
  c.moe_alltoall_source = "taken from another family's fit";
  const std::string text = calibration_toml(c, nullptr, "t.csv", "xpuplan test", "2026-11-26");
  const Calibration back = parse_calibration(DataFile{"h100-sxm.toml", text});
  EXPECT_EQ(back.gemm_half_dim, c.gemm_half_dim);
  EXPECT_EQ(back.gemm_tile_rows, c.gemm_tile_rows);
  EXPECT_EQ(back.attention_half_keys, 600);
  EXPECT_EQ(back.gemm_shape_source, c.gemm_shape_source);
  EXPECT_NEAR(back.gemm_grouped, 0.93, 1e-9);
  EXPECT_EQ(back.gemm_grouped_source, c.gemm_grouped_source);
  EXPECT_NEAR(back.memory_stream, 0.87, 1e-9);
  EXPECT_EQ(back.memory_stream_source, c.memory_stream_source);
  EXPECT_NEAR(back.moe_alltoall_overhead.v, 623.7e-6, 1e-12);
  EXPECT_EQ(back.moe_alltoall_source, c.moe_alltoall_source);
  EXPECT_NEAR(back.gemm_max_at(Precision::bf16), c.gemm_max_at(Precision::bf16), 1e-4);
}

TEST(Calibrate, WrittenFileKeepsALongSourceWhole) {
  // A source longer than any line buffer, with quotes and a backslash, comes back whole (the
  // writer once cut it at 255 characters and left a string unterminated).
  Calibration c = builtin().calibrations.at("gb300");
  c.source = std::string(400, 'x') + " \"quoted\" and a back\\slash";
  const std::string text = calibration_toml(c, nullptr, "t.csv", "xpuplan test", "2026-11-27");
  const Calibration back = parse_calibration(DataFile{"gb300.toml", text});
  EXPECT_EQ(back.source, c.source);
  EXPECT_EQ(back.family, c.family);
}

}  // namespace
}  // namespace xpu
