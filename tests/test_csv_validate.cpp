// RFC 4180 CSV reading (src/load/csv.hpp) and the training validation (src/validate/validate.hpp).
#include <gtest/gtest.h>

#include <cmath>

#include "load/csv.hpp"
#include "test_common.hpp"
#include "train/evaluate.hpp"
#include "validate/validate.hpp"

namespace xpu {
namespace {

using test::builtin;

// ---- CSV ----

TEST(Csv, PlainTable) {
  // 1 header line + 2 rows of 3 fields.
  const CsvTable t = parse_csv({"t.csv", "a,b,c\n1,2,3\n4,5,6\n"});
  ASSERT_EQ(t.header, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[1], (std::vector<std::string>{"4", "5", "6"}));
  // Rows start on lines 2 and 3.
  EXPECT_EQ(t.row_lines, (std::vector<int>{2, 3}));
  EXPECT_EQ(t.column("b"), 1);
  EXPECT_EQ(t.column("z"), -1);
  EXPECT_EQ(t.path, "t.csv");
}

TEST(Csv, QuotedCommasAndDoubledQuotes) {
  // "x, y" keeps its comma; "he said ""hi""" unescapes to: he said "hi".
  const CsvTable t = parse_csv({"t.csv", "a,b,c\n\"x, y\",\"he said \"\"hi\"\"\",3\n"});
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0][0], "x, y");
  EXPECT_EQ(t.rows[0][1], "he said \"hi\"");
  EXPECT_EQ(t.rows[0][2], "3");
}

TEST(Csv, CrlfLineEnds) {
  // No '\r' is left in the last field of a CRLF line.
  const CsvTable t = parse_csv({"t.csv", "a,b\r\n1,2\r\n3,4\r\n"});
  ASSERT_EQ(t.header, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0][1], "2");
  EXPECT_EQ(t.rows[1][1], "4");
}

TEST(Csv, ByteOrderMarkIsSkipped) {
  // UTF-8 BOM EF BB BF before the header: the first column is "id", not "\xEF\xBB\xBFid".
  const CsvTable t = parse_csv({"t.csv", "\xEF\xBB\xBFid,value\nR1,7\n"});
  EXPECT_EQ(t.header[0], "id");
  EXPECT_EQ(t.column("id"), 0);
}

TEST(Csv, EmptyFieldsAndMissingFinalNewline) {
  // "1,,3" has an empty middle field; the last line has no '\n'.
  const CsvTable t = parse_csv({"t.csv", "a,b,c\n1,,3\n,,"});
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0][1], "");
  EXPECT_EQ(t.rows[1], (std::vector<std::string>{"", "", ""}));
}

TEST(Csv, NewlineInsideQuotesAndLineNumbers) {
  // Row 1 spans lines 2-3 (a quoted newline); row 2 starts on line 4; a blank line 5 is skipped; row 3 on line 6.
  const CsvTable t = parse_csv({"t.csv", "a,b\n\"two\nlines\",1\nx,2\n\ny,3\n"});
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][0], "two\nlines");
  EXPECT_EQ(t.row_lines, (std::vector<int>{2, 4, 6}));
}

TEST(Csv, TheRepositoryTablesParse) {
  // validation/training-public.csv is a training table; every row has the header's 34 fields.
  const CsvTable t = parse_csv(read_file(test::source_path("validation/training-public.csv")));
  EXPECT_TRUE(is_training_table(t));
  EXPECT_EQ(t.header.size(), 34u);
  EXPECT_GT(t.rows.size(), 0u);
  for (const auto& row : t.rows) EXPECT_EQ(row.size(), t.header.size());
  // The header equals FORMAT.md's column list.
  std::vector<std::string> expected(std::begin(test::kTrainingColumns), std::end(test::kTrainingColumns));
  EXPECT_EQ(t.header, expected);
}

// ---- validate_training ----

// A dense row with its whole layout stated: llama3-8b-shaped columns on 8 dgx-h100 GPUs, tp 2 x dp 4,
// no recompute, bf16, measured 4000 tokens/s per device.
std::map<std::string, std::string> dense_row() {
  return {{"id", "DENSE-1"},    {"source", "unit test"}, {"grade", "A"},          {"system", "dgx-h100"},
          {"devices", "8"},     {"model", "Llama-3-8B-like"}, {"layers", "32"},    {"hidden", "4096"},
          {"heads", "32"},      {"kv_heads", "8"},       {"head_dim", "128"},     {"ffn_hidden", "14336"},
          {"vocab", "128256"},  {"gated_mlp", "1"},      {"seq_len", "8192"},     {"global_batch", "128"},
          {"micro_batch", "1"}, {"tp", "2"},             {"pp", "1"},             {"vp", "1"},
          {"dp", "4"},          {"cp", "1"},             {"ep", "1"},             {"zero", "1"},
          {"recompute", "none"}, {"precision", "bf16"},  {"metric", "tokens_per_s_per_device"},
          {"value", "4000"},    {"notes", "a note, with a comma and \"quotes\""}};
}

// A dense row and one that cannot be predicted (its global batch not stated).
ValidationResult validate_two_rows() {
  auto unstated = dense_row();
  unstated["id"] = "NO-BATCH";
  unstated["global_batch"] = "";
  const std::string text = test::training_header() + test::training_row(dense_row()) + test::training_row(unstated);
  return validate_training(parse_csv({"mem.csv", text}), builtin());
}

TEST(Validate, UnpredictableRowIsKeptWithFullError) {
  // Row 2 (line 3) states no global batch: kept, not evaluated, error 100%, the reason said.
  const ValidationResult v = validate_two_rows();
  ASSERT_EQ(v.rows.size(), 2u);
  const ValidationRow& r = v.rows[1];
  EXPECT_EQ(r.id, "NO-BATCH");
  EXPECT_EQ(r.line, 3);
  EXPECT_FALSE(r.evaluated);
  EXPECT_EQ(r.error_pct, 100.0);
  EXPECT_NE(r.reason.find("global_batch not stated"), std::string::npos) << r.reason;
}

TEST(Validate, UnknownSystemOrModelIsBadInput) {
  // FORMAT.md: `system` is a catalog id, and so is `model` where the architecture columns are
  // empty. A typo is an input error naming the file, line and column; it had been kept as a row
  // NOT EVALUATED at 100%, exit 0.
  auto row = dense_row();
  row["id"] = "TYPO";
  row["system"] = "no-such-system";
  std::string text = test::training_header() + test::training_row(dense_row()) + test::training_row(row);
  test::Caught e = test::catch_input_error([&] { validate_training(parse_csv({"mem.csv", text}), builtin()); });
  EXPECT_EQ(e.where, "mem.csv:3: system");
  EXPECT_NE(e.what.find("'no-such-system' is not a catalog system id"), std::string::npos) << e.what;
  row = dense_row();
  row["model"] = "llama3-8bb";
  for (const char* col : {"layers", "hidden", "heads", "kv_heads", "head_dim", "ffn_hidden", "vocab", "gated_mlp"}) row[col] = "";
  text = test::training_header() + test::training_row(row);
  e = test::catch_input_error([&] { validate_training(parse_csv({"mem.csv", text}), builtin()); });
  EXPECT_EQ(e.where, "mem.csv:2: model");
  EXPECT_NE(e.what.find("'llama3-8bb' is not a catalog model id"), std::string::npos) << e.what;
}

TEST(Validate, DenseRowErrorFromPredictionAndMeasurement) {
  // Row 1 (line 2): the dense row, measured 4000 tokens/s per device.
  const ValidationResult v = validate_two_rows();
  ASSERT_EQ(v.rows.size(), 2u);
  const ValidationRow& r = v.rows[0];
  EXPECT_EQ(r.id, "DENSE-1");
  EXPECT_EQ(r.line, 2);
  ASSERT_TRUE(r.evaluated) << r.reason;
  EXPECT_FALSE(r.moe);
  EXPECT_EQ(r.measured, 4000.0);
  // The metric is tokens/s per device: predicted = the plan's figure.
  EXPECT_DOUBLE_EQ(r.predicted, r.plan.tokens_per_s_per_device);
  // Signed error = (predicted - measured) / measured x 100.
  EXPECT_NEAR(r.error_pct, (r.predicted - 4000.0) / 4000.0 * 100.0, 1e-9);
  // The stated layout is the one evaluated.
  EXPECT_EQ(r.plan.layout.tp, 2);
  EXPECT_EQ(r.plan.layout.dp, 4);
  EXPECT_EQ(r.plan.layout.recompute, Recompute::none);
  // The row's architecture columns equal the catalog's llama3-8b, so evaluating the chosen plan's layout on
  // the catalog model reproduces the prediction.
  const TrainReport direct =
      evaluate(builtin().model("llama3-8b"), builtin().system("dgx-h100"), r.plan.layout, {8192, 128}, 8);
  ASSERT_TRUE(direct.feasible()) << direct.reason;
  EXPECT_DOUBLE_EQ(r.predicted, direct.tokens_per_s_per_device);
}

TEST(Validate, HeadlineCountsBothGradeARows) {
  // Both rows are grade A: headline count 2, MAPE = (|e1| + 100) / 2, max = max(|e1|, 100).
  const ValidationResult v = validate_two_rows();
  ASSERT_EQ(v.rows.size(), 2u);
  const double e1 = std::fabs(v.rows[0].error_pct);
  EXPECT_EQ(v.headline.count, 2);
  EXPECT_NEAR(v.headline.mape_pct, (e1 + 100.0) / 2, 1e-9);
  EXPECT_DOUBLE_EQ(v.headline.max_abs_pct, std::max(e1, 100.0));
  // Dense models only: both rows count as dense (the unpredictable row's model columns are dense).
  EXPECT_EQ(v.dense.count, 2);
  // Per system: both on dgx-h100.
  EXPECT_EQ(v.per_system.at("dgx-h100").count, 2);
  EXPECT_EQ(v.per_grade.at("A").count, 2);
  EXPECT_EQ(v.path, "mem.csv");
}

TEST(Validate, GradeCIsOutsideTheHeadline) {
  // Two evaluable rows, grades A and C: headline counts 1, per_grade["C"] counts 1.
  auto c = dense_row();
  c["grade"] = "C";
  c["id"] = "DENSE-1C";
  const std::string text = test::training_header() + test::training_row(dense_row()) + test::training_row(c);
  const ValidationResult v = validate_training(parse_csv({"mem.csv", text}), builtin());
  ASSERT_EQ(v.rows.size(), 2u);
  // One A row in the headline; the C row only in per_grade.
  EXPECT_EQ(v.headline.count, 1);
  EXPECT_EQ(v.per_grade.at("C").count, 1);
}

TEST(Validate, StepTimeMetricAndCatalogModel) {
  // model = a catalog id with empty architecture columns; metric step_time_s: predicted = the plan's step time.
  std::map<std::string, std::string> row = {
      {"id", "STEP-1"},   {"source", "unit test"}, {"grade", "B"},          {"system", "dgx-h100"},
      {"devices", "8"},   {"model", "llama3-8b"},  {"seq_len", "8192"},     {"global_batch", "128"},
      {"tp", "2"},        {"pp", "1"},             {"dp", "4"},             {"cp", "1"},
      {"micro_batch", "1"}, {"zero", "1"},         {"recompute", "none"},   {"precision", "bf16"},
      {"metric", "step_time_s"}, {"value", "12.5"}};
  const std::string text = test::training_header() + test::training_row(row);
  const ValidationResult v = validate_training(parse_csv({"mem.csv", text}), builtin());
  ASSERT_EQ(v.rows.size(), 1u);
  const ValidationRow& r = v.rows[0];
  ASSERT_TRUE(r.evaluated) << r.reason;
  EXPECT_DOUBLE_EQ(r.predicted, r.plan.step_time);
  // (predicted - 12.5) / 12.5 x 100.
  EXPECT_NEAR(r.error_pct, (r.predicted - 12.5) / 12.5 * 100.0, 1e-9);
}

TEST(Validate, OnlyFilterSkipsOtherRows) {
  // only = {"DENSE-1"}: the unknown-system row is skipped entirely.
  auto unknown = dense_row();
  unknown["id"] = "UNKNOWN-SYS";
  unknown["system"] = "no-such-system";
  const std::string text = test::training_header() + test::training_row(dense_row()) + test::training_row(unknown);
  const std::set<std::string> only = {"DENSE-1"};
  const ValidationResult v = validate_training(parse_csv({"mem.csv", text}), builtin(), &only);
  ASSERT_EQ(v.rows.size(), 1u);
  EXPECT_EQ(v.rows[0].id, "DENSE-1");
  EXPECT_EQ(v.headline.count, 1);
}

// ---- run facts ----

// A Mixtral row (tp 1, dp 16, ep 8 on dgx-h100) whose source states a capacity factor of 1.25.
std::string mixtral_table() {
  std::map<std::string, std::string> row = {
      {"id", "MOE-1"},    {"source", "unit test"}, {"grade", "B"},          {"system", "dgx-h100"},
      {"devices", "16"},  {"model", "mixtral-8x7b"}, {"seq_len", "4096"},   {"global_batch", "64"},
      {"tp", "1"},        {"pp", "1"},             {"dp", "16"},            {"cp", "1"}, {"ep", "8"},
      {"micro_batch", "1"}, {"zero", "2"},         {"recompute", "full"},   {"precision", "bf16"},
      {"metric", "tokens_per_s_per_device"}, {"value", "3000"}};
  return test::training_header() + test::training_row(row);
}

TEST(Validate, RunFactsApplyToTheirRow) {
  const CsvTable t = parse_csv({"moe.csv", mixtral_table()});
  const RunFacts facts = parse_run_facts(parse_csv({"moe.facts.csv", "id,field,value,source\nMOE-1,moe_capacity_factor,1.25,config X\n"}));
  const ValidationResult plain = validate_training(t, builtin());
  const ValidationResult with = validate_training(t, builtin(), nullptr, &facts);
  ASSERT_TRUE(plain.rows[0].evaluated && with.rows[0].evaluated);
  ASSERT_EQ(with.rows[0].facts.size(), 1u);
  EXPECT_EQ(with.rows[0].facts[0].source, "config X");
  // Padded expert buffers: slower, so fewer tokens/s.
  EXPECT_LT(with.rows[0].predicted, plain.rows[0].predicted);
  EXPECT_DOUBLE_EQ(with.rows[0].plan.work.moe_capacity_factor, 1.25);
}

// A copy of a project table given without its facts file takes the built-in facts for the rows
// that are the same runs: same id and run columns; a note, grade or value may differ.
TEST(Validate, BuiltinFactsFollowTheSameRuns) {
  const DataFile* table = nullptr;
  for (const auto& f : builtin_validation_files())
    if (f.path == "validation/training-public.csv") table = &f;
  ASSERT_NE(table, nullptr);
  const CsvTable copy = parse_csv({"elsewhere/training-public.csv", table->text});
  const FoundFacts all = builtin_run_facts(copy, FactTable::training);
  ASSERT_FALSE(all.facts.empty());
  EXPECT_NE(all.label.find("built-in validation/training-public.facts.csv"), std::string::npos);
  // The facts as the file beside the project's copy gives them.
  const FoundFacts beside = read_run_facts(std::string(XPUPLAN_SOURCE_DIR) + "/validation/training-public.facts.csv",
                                           FactTable::training);
  ASSERT_EQ(all.facts.size(), beside.facts.size());
  for (const auto& [id, fs] : beside.facts) {
    ASSERT_TRUE(all.facts.count(id)) << id;
    EXPECT_EQ(all.facts.at(id).size(), fs.size()) << id;
  }
  // Edit one faceted row: its note and value -> still the same run; its devices -> another run.
  const std::string id = beside.facts.begin()->first;
  CsvTable edited = copy;
  std::size_t row = 0;
  while (edited.rows[row][edited.column("id")] != id) ++row;
  edited.rows[row][edited.column("notes")] = "a different note";
  edited.rows[row][edited.column("value")] = "12345";
  EXPECT_TRUE(builtin_run_facts(edited, FactTable::training).facts.count(id));
  edited.rows[row][edited.column("devices")] = "7";
  const FoundFacts fewer = builtin_run_facts(edited, FactTable::training);
  EXPECT_FALSE(fewer.facts.count(id));
  EXPECT_EQ(fewer.facts.size(), all.facts.size() - 1);
  // ... and the report says which row lost its facts, and why.
  EXPECT_NE(fewer.label.find("1 row with facts differs from it in a run column, so take none: " + id + " (devices)"),
            std::string::npos)
      << fewer.label;
  // Each fact names the compiled-in file, no path of the user's.
  EXPECT_EQ(all.facts.at(id).front().file.rfind("built-in validation/", 0), 0u) << all.facts.at(id).front().file;
  // A training table's ids are not looked up among the inference facts.
  EXPECT_TRUE(builtin_run_facts(copy, FactTable::inference).facts.empty());
  // A table of other rows takes none.
  EXPECT_TRUE(builtin_run_facts(parse_csv({"moe.csv", mixtral_table()}), FactTable::training).label.empty());
}

TEST(Validate, RunFactsBadInput) {
  auto err = [](const std::string& text) {
    return test::catch_input_error([&] { parse_run_facts(parse_csv({"f.csv", text})); });
  };
  auto e = err("id,field,value,source\nMOE-1,capacity,1.25,x\n");
  EXPECT_EQ(e.where, "f.csv:2: field");
  e = err("id,field,value,source\nMOE-1,moe_imbalance,0.5,x\n");
  EXPECT_EQ(e.where, "f.csv:2: value");
  e = err("id,field,value,source\nMOE-1,moe_imbalance,1.2,\n");
  EXPECT_EQ(e.where, "f.csv:2: source");
  e = err("id,field,value\nMOE-1,moe_imbalance,1.2\n");
  EXPECT_EQ(e.where, "f.csv:1");
  e = err("id,field,value,source\nMOE-1,fsdp_overlap,1.5,x\n");
  EXPECT_EQ(e.where, "f.csv:2: value");
  e = err("id,field,value,source\nMOE-1,fsdp_rate,0,x\n");
  EXPECT_EQ(e.where, "f.csv:2: value");
  // fsdp_overlap may be 0 (an implementation that overlaps nothing)...
  EXPECT_NO_THROW(parse_run_facts(parse_csv({"f.csv", "id,field,value,source\nMOE-1,fsdp_overlap,0,x\n"})));
  // ...but applies to ZeRO-3 rows only (this one is zero = 2).
  {
    const RunFacts f = parse_run_facts(parse_csv({"f.csv", "id,field,value,source\nMOE-1,fsdp_overlap,0,x\n"}));
    const CsvTable t = parse_csv({"moe.csv", mixtral_table()});
    e = test::catch_input_error([&] { validate_training(t, builtin(), nullptr, &f); });
    EXPECT_EQ(e.where, "f.csv:2: field");
  }
  // zero_group: a whole number of ranks, for a row that shards ZeRO state, applied to its plan.
  e = err("id,field,value,source\nMOE-1,zero_group,2.5,x\n");
  EXPECT_EQ(e.where, "f.csv:2: value");
  e = err("id,field,value,source\nMOE-1,zero_group,0,x\n");
  EXPECT_EQ(e.where, "f.csv:2: value");
  {
    // A group that does not divide the row's dp x cp (16 x 1) is refused where the fact is read.
    const RunFacts odd = parse_run_facts(parse_csv({"f.csv", "id,field,value,source\nMOE-1,zero_group,3,x\n"}));
    e = test::catch_input_error([&] { validate_training(parse_csv({"moe.csv", mixtral_table()}), builtin(), nullptr, &odd); });
    EXPECT_EQ(e.where, "f.csv:2: value");
    EXPECT_NE(e.what.find("zero_group: 3 does not divide row MOE-1's dp x cp (16)"), std::string::npos) << e.what;
    const RunFacts f = parse_run_facts(parse_csv({"f.csv", "id,field,value,source\nMOE-1,zero_group,8,x\n"}));
    const ValidationResult with = validate_training(parse_csv({"moe.csv", mixtral_table()}), builtin(), nullptr, &f);
    ASSERT_TRUE(with.rows[0].evaluated) << with.rows[0].reason;
    EXPECT_EQ(with.rows[0].plan.layout.zero_group, 8);
    std::string table = mixtral_table();
    const std::string zero2 = "\"2\",\"full\"";  // the row's zero and recompute cells
    ASSERT_NE(table.find(zero2), std::string::npos);
    table.replace(table.find(zero2), zero2.size(), "\"0\",\"full\"");
    e = test::catch_input_error([&] { validate_training(parse_csv({"moe.csv", table}), builtin(), nullptr, &f); });
    EXPECT_EQ(e.where, "f.csv:2: field");
    EXPECT_NE(e.what.find("zero_group: shards ZeRO state"), std::string::npos) << e.what;
  }
  e = err("id,field,value,source\nMOE-1,rank_order,dp-pp-tp,x\n");
  EXPECT_EQ(e.where, "f.csv:2: value");
  e = err("id,field,value,source\nMOE-1,vp,2.5,x\n");
  EXPECT_EQ(e.where, "f.csv:2: value");
  // vp fills an empty cell only: this row states pp 1 and no vp... so a vp fact applies; a row
  // that states vp refuses it.
  {
    std::string table = mixtral_table();
    const RunFacts f = parse_run_facts(parse_csv({"f.csv", "id,field,value,source\nMOE-1,vp,1,x\n"}));
    EXPECT_NO_THROW(validate_training(parse_csv({"moe.csv", table}), builtin(), nullptr, &f));
    std::map<std::string, std::string> row = {
        {"id", "MOE-1"}, {"source", "unit test"}, {"grade", "B"}, {"system", "dgx-h100"}, {"devices", "16"},
        {"model", "llama3-8b"}, {"seq_len", "4096"}, {"global_batch", "64"}, {"tp", "1"}, {"pp", "1"}, {"vp", "1"},
        {"dp", "16"}, {"metric", "tokens_per_s_per_device"}, {"value", "3000"}};
    const CsvTable t = parse_csv({"vp.csv", test::training_header() + test::training_row(row)});
    e = test::catch_input_error([&] { validate_training(t, builtin(), nullptr, &f); });
    EXPECT_EQ(e.where, "f.csv:2: field");
  }
  // A fact for a row the table lacks.
  const RunFacts facts = parse_run_facts(parse_csv({"f.csv", "id,field,value,source\nNOPE,moe_imbalance,1.2,x\n"}));
  const CsvTable t = parse_csv({"moe.csv", mixtral_table()});
  e = test::catch_input_error([&] { validate_training(t, builtin(), nullptr, &facts); });
  EXPECT_EQ(e.where, "f.csv:2: id");
}

TEST(Validate, RankOrderFactPutsReplicasAcrossDomains) {
  // Llama 3.1 405B on 1,024 GB200s, tp 4 x cp 2 x pp 8 = 64 per replica, 16 replicas. With the
  // replicas outermost (NVIDIA's MLPerf runs: TP_PP_DP_MAPPING) the pipeline stays in a rack and
  // the gradients cross racks: more data-parallel time, less pipeline time.
  std::map<std::string, std::string> row = {
      {"id", "L405"}, {"source", "unit test"}, {"grade", "B"}, {"system", "gb200-nvl72"}, {"devices", "1024"},
      {"model", "llama3.1-405b"}, {"seq_len", "8192"}, {"global_batch", "256"}, {"tp", "4"}, {"pp", "8"}, {"vp", "8"},
      {"dp", "16"}, {"cp", "2"}, {"micro_batch", "1"}, {"zero", "1"}, {"recompute", "none"}, {"precision", "fp8"},
      {"metric", "tokens_per_s_per_device"}, {"value", "1000"}};
  const CsvTable t = parse_csv({"l405.csv", test::training_header() + test::training_row(row)});
  const RunFacts f = parse_run_facts(parse_csv({"f.csv", "id,field,value,source\nL405,rank_order,tp-cp-pp-dp,config\n"}));
  const ValidationResult plain = validate_training(t, builtin());
  const ValidationResult outer = validate_training(t, builtin(), nullptr, &f);
  ASSERT_TRUE(plain.rows[0].evaluated && outer.rows[0].evaluated);
  EXPECT_EQ(outer.rows[0].plan.layout.rank_order, RankOrder::pp_then_dp);
  EXPECT_GT(outer.rows[0].plan.time.dp_comm, 2 * plain.rows[0].plan.time.dp_comm);
  EXPECT_LT(outer.rows[0].plan.time.pp_comm, plain.rows[0].plan.time.pp_comm);
}

TEST(Validate, LowpParamsFactKeepsBf16PrimaryWeights) {
  // Llama 3.1 405B in NVFP4 on 5,120 GB200s, replicas across racks (NVIDIA's MLPerf v5.1 layout).
  // Left free, the planner keeps bf16 primary weights with fp4 (as NVFP4 recipes do: the run's
  // config says FP8_PARAM_GATHER=False); the fact can pin either. fp4 primary weights would gather
  // a quarter of the bytes: less data-parallel time, more tokens/s.
  std::map<std::string, std::string> row = {
      {"id", "L405"}, {"source", "unit test"}, {"grade", "B"}, {"system", "gb200-nvl72"}, {"devices", "5120"},
      {"model", "llama3.1-405b"}, {"seq_len", "8192"}, {"global_batch", "1280"}, {"tp", "4"}, {"pp", "8"},
      {"vp", "8"}, {"dp", "80"}, {"cp", "2"}, {"micro_batch", "1"}, {"zero", "1"}, {"recompute", "none"},
      {"precision", "fp4"}, {"metric", "tokens_per_s_per_device"}, {"value", "800"}};
  const CsvTable t = parse_csv({"l405.csv", test::training_header() + test::training_row(row)});
  const RunFacts off = parse_run_facts(parse_csv({"f.csv", "id,field,value,source\nL405,lowp_params,0,config\n"}));
  const RunFacts on = parse_run_facts(parse_csv({"f.csv", "id,field,value,source\nL405,lowp_params,1,config\n"}));
  const ValidationResult free = validate_training(t, builtin());
  const ValidationResult pinned_off = validate_training(t, builtin(), nullptr, &off);
  const ValidationResult pinned_on = validate_training(t, builtin(), nullptr, &on);
  ASSERT_TRUE(free.rows[0].evaluated && pinned_off.rows[0].evaluated && pinned_on.rows[0].evaluated);
  EXPECT_FALSE(free.rows[0].plan.layout.lowp_params);
  EXPECT_DOUBLE_EQ(free.rows[0].predicted, pinned_off.rows[0].predicted);
  EXPECT_TRUE(pinned_on.rows[0].plan.layout.lowp_params);
  EXPECT_FALSE(pinned_off.rows[0].plan.layout.lowp_params);
  EXPECT_GT(pinned_off.rows[0].plan.time.dp_comm, 2 * pinned_on.rows[0].plan.time.dp_comm);
  EXPECT_LT(pinned_off.rows[0].predicted, pinned_on.rows[0].predicted);

  // Only 0 or 1; and 1 (fp8/fp4 primary weights) contradicts a bf16 row.
  auto err = [](const std::string& text) {
    return test::catch_input_error([&] { parse_run_facts(parse_csv({"f.csv", text})); });
  };
  EXPECT_EQ(err("id,field,value,source\nL405,lowp_params,2,x\n").where, "f.csv:2: value");
  row["precision"] = "bf16";
  const CsvTable bf16 = parse_csv({"l405.csv", test::training_header() + test::training_row(row)});
  const auto e = test::catch_input_error([&] { validate_training(bf16, builtin(), nullptr, &on); });
  EXPECT_EQ(e.where, "f.csv:2: value");
  EXPECT_NE(e.what.find("runs bf16"), std::string::npos) << e.what;
}

TEST(Validate, RecomputeModulesFactMakesTheRecomputeSelective) {
  // The row's recompute cell left empty: the fact names what the recipe's selective recompute reruns.
  std::string text = mixtral_table();
  text.replace(text.find(",\"full\","), 8, ",,");
  const CsvTable t = parse_csv({"moe.csv", text});
  auto facts = [](const std::string& body) { return parse_run_facts(parse_csv({"f.csv", "id,field,value,source\n" + body})); };
  const RunFacts act = facts("MOE-1,recompute_modules,moe_act+layernorm,recipe\n");
  const ValidationResult r = validate_training(t, builtin(), nullptr, &act);
  ASSERT_TRUE(r.rows[0].evaluated);
  EXPECT_EQ(r.rows[0].plan.layout.recompute, Recompute::selective);
  EXPECT_EQ(r.rows[0].plan.layout.recompute_modules, kRecomputeMoeAct | kRecomputeLayernorm);
  // A module the model lacks blames the fact; so does a row that states another recompute.
  const RunFacts mla = facts("MOE-1,recompute_modules,mla_up_proj,recipe\n");
  const auto no_mla = test::catch_input_error([&] { validate_training(t, builtin(), nullptr, &mla); });
  EXPECT_EQ(no_mla.where, "f.csv:2: value");
  EXPECT_NE(no_mla.what.find("needs multi-head latent attention"), std::string::npos) << no_mla.what;
  const CsvTable full = parse_csv({"moe.csv", mixtral_table()});
  const auto stated = test::catch_input_error([&] { validate_training(full, builtin(), nullptr, &act); });
  EXPECT_EQ(stated.where, "f.csv:2: field");
  EXPECT_NE(stated.what.find("states recompute full"), std::string::npos) << stated.what;
  EXPECT_EQ(test::catch_input_error([&] { facts("MOE-1,recompute_modules,attn,x\n"); }).where, "f.csv:2: value");
  EXPECT_EQ(test::catch_input_error([&] { facts("MOE-1,schedule,gpipe,x\n"); }).where, "f.csv:2: value");
  // A schedule the row's layout cannot run blames the fact (pp 1: nothing to schedule).
  const RunFacts zb = facts("MOE-1,schedule,dualpipev,recipe\n");
  const auto pp1 = test::catch_input_error([&] { validate_training(full, builtin(), nullptr, &zb); });
  EXPECT_EQ(pp1.where, "f.csv:2: value");
}

TEST(Validate, ActivationOffloadFactMovesTheRowsActivationsToHost) {
  const CsvTable t = parse_csv({"moe.csv", mixtral_table()});  // dgx-h100: a [host] link of 63 GB/s
  auto facts = [](const std::string& body) { return parse_run_facts(parse_csv({"f.csv", "id,field,value,source\n" + body})); };
  const RunFacts on = facts("MOE-1,activation_offload,1,recipe\n");
  const Catalog& c = builtin();
  const ValidationResult plain = validate_training(t, c);
  const ValidationResult off = validate_training(t, c, nullptr, &on);
  ASSERT_TRUE(plain.rows[0].evaluated && off.rows[0].evaluated);
  EXPECT_FALSE(plain.rows[0].plan.layout.offload_activations);
  EXPECT_TRUE(off.rows[0].plan.layout.offload_activations);
  EXPECT_GT(off.rows[0].plan.mem.host, 0);
  EXPECT_LT(off.rows[0].plan.mem.activations, plain.rows[0].plan.mem.activations);
  // Only 0 or 1.
  const auto bad = test::catch_input_error([&] { facts("MOE-1,activation_offload,2,x\n"); });
  EXPECT_EQ(bad.where, "f.csv:2: value");
}

TEST(Validate, MtpLayersFactTrainsTheModules) {
  // A Mixtral row (no MTP of its own) told it trained one MTP module: one more layer on the stage
  // with the head, more model FLOPs per step; unstated, the model's own count (0).
  const CsvTable t = parse_csv({"moe.csv", mixtral_table()});
  auto facts = [](const std::string& body) { return parse_run_facts(parse_csv({"f.csv", "id,field,value,source\n" + body})); };
  const RunFacts one = facts("MOE-1,mtp_layers,1,recipe\n");
  const ValidationResult plain = validate_training(t, builtin());
  const ValidationResult mtp = validate_training(t, builtin(), nullptr, &one);
  ASSERT_TRUE(plain.rows[0].evaluated && mtp.rows[0].evaluated);
  EXPECT_EQ(plain.rows[0].plan.layout.mtp_layers, 0);
  EXPECT_EQ(mtp.rows[0].plan.layout.mtp_layers, 1);
  EXPECT_GT(mtp.rows[0].plan.model_flops_per_step, plain.rows[0].plan.model_flops_per_step);
  EXPECT_GT(mtp.rows[0].plan.step_time, plain.rows[0].plan.step_time);
  // A whole number, 0 or more.
  EXPECT_EQ(test::catch_input_error([&] { facts("MOE-1,mtp_layers,-1,x\n"); }).where, "f.csv:2: value");
  EXPECT_EQ(test::catch_input_error([&] { facts("MOE-1,mtp_layers,1.5,x\n"); }).where, "f.csv:2: value");
}

TEST(Validate, PipelineLayoutFactPlacesTheRowsLayers) {
  // Mixtral (32 layers) over pp 2 with the vp left empty: a layout of 4 stages sets vp 2 and puts
  // 10 layers on stage 0 (chunks 0 and 2), 22 on stage 1.
  std::map<std::string, std::string> row = {
      {"id", "PP-1"},     {"source", "unit test"}, {"grade", "B"},        {"system", "dgx-h100"},
      {"devices", "16"},  {"model", "mixtral-8x7b"}, {"seq_len", "4096"}, {"global_batch", "64"},
      {"tp", "1"},        {"pp", "2"},             {"dp", "8"},           {"cp", "1"}, {"ep", "8"},
      {"micro_batch", "1"}, {"zero", "1"},         {"recompute", "full"}, {"precision", "bf16"},
      {"metric", "tokens_per_s_per_device"}, {"value", "3000"}};
  const CsvTable t = parse_csv({"pp.csv", test::training_header() + test::training_row(row)});
  auto facts = [](const std::string& body) { return parse_run_facts(parse_csv({"f.csv", "id,field,value,source\n" + body})); };
  const RunFacts given = facts("PP-1,pipeline_layout,Et*5|t*11|t*5|t*11L,recipe\n");
  const ValidationResult r = validate_training(t, builtin(), nullptr, &given);
  ASSERT_TRUE(r.rows[0].evaluated) << r.rows[0].reason;
  EXPECT_EQ(r.rows[0].plan.layout.vp, 2);
  ASSERT_TRUE(r.rows[0].plan.layout.stage_layout);
  EXPECT_EQ(r.rows[0].plan.stage_layers, (std::vector<int>{10, 22}));
  // Malformed, or not fitting the row (3 stages over pp 2; 31 layers): the fact is blamed.
  EXPECT_EQ(test::catch_input_error([&] { facts("PP-1,pipeline_layout,Et*5|x,recipe\n"); }).where, "f.csv:2: value");
  const RunFacts odd = facts("PP-1,pipeline_layout,Et*5|t*11|t*16L,recipe\n");
  const auto e1 = test::catch_input_error([&] { validate_training(t, builtin(), nullptr, &odd); });
  EXPECT_EQ(e1.where, "f.csv:2: value");
  EXPECT_NE(e1.what.find("3 stages, not a multiple of pp 2"), std::string::npos) << e1.what;
  const RunFacts short_ = facts("PP-1,pipeline_layout,Et*5|t*11|t*5|t*10L,recipe\n");
  const auto e2 = test::catch_input_error([&] { validate_training(t, builtin(), nullptr, &short_); });
  EXPECT_EQ(e2.where, "f.csv:2: value");
  EXPECT_NE(e2.what.find("places 31 decoder layers (t), and the model has 32"), std::string::npos) << e2.what;
}

TEST(Validate, MoeDispatcherAndOverlapFactsApplyToMoeRows) {
  const CsvTable t = parse_csv({"moe.csv", mixtral_table()});
  auto facts = [](const std::string& body) { return parse_run_facts(parse_csv({"f.csv", "id,field,value,source\n" + body})); };
  const RunFacts a2a = facts("MOE-1,moe_dispatcher,alltoall,recipe\n");
  const RunFacts flex = facts("MOE-1,moe_dispatcher,flex,recipe\n");
  const RunFacts over = facts("MOE-1,moe_a2a_overlap,1,recipe\n");
  Catalog c = builtin();
  for (auto& [id, sys] : c.systems) sys.calib.moe_alltoall_overhead = Seconds{1e-3};
  const ValidationResult plain = validate_training(t, c);
  const ValidationResult with_a2a = validate_training(t, c, nullptr, &a2a);
  const ValidationResult with_flex = validate_training(t, c, nullptr, &flex);
  ASSERT_TRUE(plain.rows[0].evaluated && with_a2a.rows[0].evaluated && with_flex.rows[0].evaluated);
  EXPECT_EQ(with_a2a.rows[0].plan.layout.moe_dispatcher, MoeDispatcher::alltoall);
  EXPECT_LT(with_a2a.rows[0].predicted, plain.rows[0].predicted);
  EXPECT_EQ(with_flex.rows[0].predicted, plain.rows[0].predicted);  // flex is the default
  // The row states full recompute, which Megatron-Core's overlap excludes: the fact cannot hold
  // for this row, and the facts file is blamed (it had left the row NOT EVALUATED).
  const auto bad = test::catch_input_error([&] { validate_training(t, c, nullptr, &over); });
  EXPECT_EQ(bad.where, "f.csv:2: value");
  EXPECT_NE(bad.what.find("excludes full recompute"), std::string::npos) << bad.what;

  // Bad values, and facts on a dense row.
  auto err = [&](const std::string& text) { return test::catch_input_error([&] { facts(text); }); };
  EXPECT_EQ(err("MOE-1,moe_dispatcher,deepep,x\n").where, "f.csv:2: value");
  EXPECT_EQ(err("MOE-1,moe_a2a_overlap,2,x\n").where, "f.csv:2: value");
  std::map<std::string, std::string> dense = {
      {"id", "MOE-1"}, {"source", "unit test"}, {"grade", "B"}, {"system", "dgx-h100"}, {"devices", "8"},
      {"model", "llama3-8b"}, {"seq_len", "4096"}, {"global_batch", "64"}, {"tp", "1"}, {"pp", "1"}, {"dp", "8"},
      {"cp", "1"}, {"micro_batch", "1"}, {"zero", "1"}, {"recompute", "none"}, {"precision", "bf16"},
      {"metric", "tokens_per_s_per_device"}, {"value", "9000"}};
  const CsvTable d = parse_csv({"dense.csv", test::training_header() + test::training_row(dense)});
  const auto e = test::catch_input_error([&] { validate_training(d, builtin(), nullptr, &a2a); });
  EXPECT_EQ(e.where, "f.csv:2: field");
  EXPECT_NE(e.what.find("is dense"), std::string::npos) << e.what;
}

TEST(Validate, SummaryByFamily) {
  const ValidationResult v = validate_training(parse_csv({"moe.csv", mixtral_table()}), builtin());
  ASSERT_EQ(v.per_family.size(), 1u);
  EXPECT_EQ(v.per_family.begin()->first, builtin().system("dgx-h100").calib.family);
  EXPECT_EQ(v.per_family.begin()->second.count, 1);
}

}  // namespace
}  // namespace xpu
