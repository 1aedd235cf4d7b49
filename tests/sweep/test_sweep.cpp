// Sweep core: grid expansion, sweep-file checks (file, line, key), the tables' rows, their exact
// text form, CSV fields and the SQLite store (one transaction per scenario, resume, refusals).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "spec/error.hpp"
#include "sweep/driver.hpp"
#include "sweep/store.hpp"
#include "sweep/sweep_file.hpp"

namespace xpu::sweep {
namespace {

const Catalog& catalog() {
  static const Catalog c = build_catalog(builtin_data_files());
  return c;
}

const char* kGood = R"(name = "t"
[grid]
models = ["llama3-8b", "llama2-7b"]
systems = ["dgx-h100"]
devices = [8, 16]
seq_len = [2048, 4096]
global_batch = [64]
[search]
objective = "time"
top_k = 3
)";

SweepInputs parse(const std::string& text) { return parse_sweep({"s.toml", text}, catalog()); }

// The message of the InputError that parsing `text` raises ("" when none).
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto i = s.find(from);
  EXPECT_NE(i, std::string::npos) << from;
  if (i != std::string::npos) s.replace(i, from.size(), to);
  return s;
}

TEST(SweepFile, GoodFile) {
  SweepInputs in = parse(kGood);
  EXPECT_EQ(in.spec.name, "t");
  EXPECT_EQ(in.spec.top_k, 3);
  EXPECT_EQ(in.spec.devices, (std::vector<int>{8, 16}));
  EXPECT_EQ(in.models.size(), 2u);
  EXPECT_EQ(in.systems.size(), 1u);
  EXPECT_EQ(in.systems.at("dgx-h100").id, "dgx-h100");
}

TEST(SweepFile, ExampleFilesParse) {
  for (const char* f : {"/examples/sweeps/small.toml", "/examples/sweeps/gpt3-vs-llama.toml"})
    EXPECT_NO_THROW(parse_sweep(read_file(std::string(XPUPLAN_SOURCE_DIR) + f), catalog())) << f;
}

TEST(SweepFile, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(error_of(replace(kGood, "top_k = 3", "top_k = 3\ntopk = 4")).rfind("s.toml:11: search.topk: unknown key", 0), 0u);
  EXPECT_EQ(error_of(replace(kGood, "name = \"t\"", "name = \"t\"\nnmae = 1")).rfind("s.toml:2: nmae: unknown key", 0), 0u);
  EXPECT_EQ(error_of(replace(kGood, "devices = [8, 16]", "devices = [8, 16, 8]")), "s.toml:5: grid.devices: 8 is listed twice");
  EXPECT_EQ(error_of(replace(kGood, "devices = [8, 16]", "devices = [8, 16.0]")),
            "s.toml:5: grid.devices: must be a list of integers, got a number with a fraction");
  EXPECT_EQ(error_of(replace(kGood, "devices = [8, 16]", "devices = [8, \"16\"]")),
            "s.toml:5: grid.devices: must be a list of integers, got a string");
  EXPECT_EQ(error_of(replace(kGood, "global_batch = [64]", "global_batch = [-1]")),
            "s.toml:7: grid.global_batch: must be positive, got -1");
  EXPECT_EQ(error_of(replace(kGood, "global_batch = [64]\n", "")),
            "s.toml: grid.global_batch: missing (required): a list, e.g. [1536]");
  EXPECT_EQ(error_of(replace(kGood, "systems = [\"dgx-h100\"]", "systems = []")), "s.toml:4: grid.systems: must not be empty");
  EXPECT_EQ(error_of(replace(kGood, "top_k = 3", "top_k = 0")), "s.toml:10: search.top_k: must be at least 1, got 0");
  EXPECT_EQ(error_of(replace(kGood, "name = \"t\"\n", "")), "s.toml: name: missing (required)");
  EXPECT_EQ(error_of("name = \"t\"\n"), "s.toml: grid: missing (required): the [grid] table of models, systems and sizes");
  EXPECT_EQ(error_of("name = \"t\"\ngrid = 3\n"), "s.toml:2: grid: must be a table");
  EXPECT_EQ(error_of("name = \"t\n").rfind("s.toml:1: malformed TOML", 0), 0u);
  const std::string unknown_model = error_of(replace(kGood, "\"llama2-7b\"", "\"gpt-9\""));
  EXPECT_EQ(unknown_model.rfind("s.toml:3: grid.models: unknown model 'gpt-9'", 0), 0u) << unknown_model;
  const std::string missing_config = error_of(replace(kGood, "\"llama2-7b\"", "\"no/such/config.json\""));
  EXPECT_EQ(missing_config, "s.toml:3: grid.models: no/such/config.json: cannot read file");
}

TEST(SweepFile, AFileNamedTwoWaysIsListedTwice) {
  const std::string e = error_of(replace(kGood, "\"llama2-7b\"", "\"sub/config.json\", \"./sub/config.json\""));
  EXPECT_NE(e.find("grid.models: './sub/config.json' is listed twice"), std::string::npos) << e;
}

TEST(SweepFile, Prices) {
  // A price for a system outside the grid, a non-positive price, a cost objective without any.
  EXPECT_EQ(error_of(replace(kGood, "top_k = 3", "top_k = 3\nusd_per_device_hour = { gb200-nvl72 = 4.0 }")),
            "s.toml:11: search.usd_per_device_hour.gb200-nvl72: 'gb200-nvl72' is not in grid.systems");
  EXPECT_EQ(error_of(replace(kGood, "top_k = 3", "top_k = 3\nusd_per_device_hour = 0")),
            "s.toml:11: search.usd_per_device_hour: must be a positive, finite USD rate");
  // 1e308: a step's cost overflowed and was stored as "no price".
  EXPECT_EQ(error_of(replace(kGood, "top_k = 3", "top_k = 3\nusd_per_device_hour = 1e308")),
            "s.toml:11: search.usd_per_device_hour: must be between 1e-06 and 1e+06 USD per device-hour, got 1e+308");
  SweepInputs in = parse(replace(kGood, "objective = \"time\"", "objective = \"cost\"\nusd_per_device_hour = 2.5"));
  EXPECT_EQ(in.spec.objective, Objective::cost);
  EXPECT_DOUBLE_EQ(in.spec.usd_per_device_hour.at("dgx-h100"), 2.5);
  EXPECT_DOUBLE_EQ(search_options(in.spec, "dgx-h100").usd_per_device_hour, 2.5);
}

TEST(Sweep, ExpandsInFileOrder) {
  SweepInputs in = parse(kGood);
  auto sc = expand(in.spec);
  ASSERT_EQ(sc.size(), 2u * 1 * 2 * 2 * 1);
  EXPECT_EQ(sc[0].key, "llama3-8b|dgx-h100|8|2048|64");
  EXPECT_EQ(sc[1].key, "llama3-8b|dgx-h100|8|4096|64");
  EXPECT_EQ(sc[2].key, "llama3-8b|dgx-h100|16|2048|64");
  EXPECT_EQ(sc[4].key, "llama2-7b|dgx-h100|8|2048|64");
  for (size_t i = 0; i < sc.size(); ++i) EXPECT_EQ(sc[i].index, static_cast<long>(i));
  EXPECT_EQ(scenario_key("gpt3-175b", "dgx-h100", 1024, 2048, 1536), "gpt3-175b|dgx-h100|1024|2048|1536");
}

TrainReport plan(double step, bool feasible) {
  TrainReport r;
  r.devices = 8;
  r.layout.tp = 2;
  r.layout.dp = 4;
  r.step_time = step;
  r.tokens_per_s_per_device = 1000.0 / 3;
  r.mfu = 0.4123456789;
  r.mem.weights = 10.4e9;
  r.mem.capacity = 80e9;
  if (!feasible) {
    r.why = Infeasible::out_of_memory;
    r.reason = "needs 90 GiB";
  }
  return r;
}

TEST(Sweep, RecordFromSearchResult) {
  SweepInputs in = parse(replace(kGood, "top_k = 3", "top_k = 3\nusd_per_device_hour = 3.6"));
  Scenario sc = expand(in.spec)[0];
  SearchResult r;
  r.top = {plan(1.5, true), plan(1.7, false), plan(2.0, true)};
  r.pareto = {plan(1.5, true)};
  r.stats.considered = 100;
  r.stats.feasible = 2;
  ScenarioRecord rec = make_record(sc, in.spec, r);
  const auto& s = scenarios_table();
  const auto& b = best_plans_table();
  EXPECT_EQ(rec.key, sc.key);
  EXPECT_EQ(std::get<std::string>(rec.scenario[s.column("status")]), "ok");
  EXPECT_EQ(std::get<std::int64_t>(rec.scenario[s.column("considered")]), 100);
  EXPECT_EQ(std::get<double>(rec.scenario[s.column("best_step_time_s")]), 1.5);
  EXPECT_EQ(std::get<double>(rec.scenario[s.column("best_mfu_pct")]), 41.2346);  // 6 significant digits
  EXPECT_TRUE(std::holds_alternative<std::monostate>(rec.scenario[s.column("reason")]));
  ASSERT_EQ(rec.best.size(), 2u);  // the infeasible one is left out
  EXPECT_EQ(std::get<std::int64_t>(rec.best[1][b.column("rank")]), 2);
  EXPECT_EQ(std::get<double>(rec.best[1][b.column("step_time_s")]), 2.0);
  EXPECT_EQ(std::get<std::int64_t>(rec.best[0][b.column("memory_bytes")]), 10400000000);
  // 1.5 s x 8 devices x 3.6 USD/h / 3600 s/h = 0.012 USD.
  EXPECT_DOUBLE_EQ(std::get<double>(rec.best[0][b.column("cost_per_step_usd")]), 0.012);
  EXPECT_EQ(rec.pareto.size(), 1u);

  SearchResult none;
  none.top = {plan(1.7, false)};
  ScenarioRecord inf = make_record(sc, in.spec, none);
  EXPECT_EQ(std::get<std::string>(inf.scenario[s.column("status")]), "infeasible");
  EXPECT_EQ(std::get<std::string>(inf.scenario[s.column("reason")]), "needs 90 GiB");
  EXPECT_TRUE(inf.best.empty());
  EXPECT_TRUE(std::holds_alternative<std::monostate>(inf.scenario[s.column("best_step_time_s")]));

  ScenarioRecord err = make_error_record(sc, in.spec, "--tp: no");
  EXPECT_EQ(std::get<std::string>(err.scenario[s.column("status")]), "error");
}

TEST(Sweep, RecordTextIsExact) {
  SweepInputs in = parse(kGood);
  Scenario sc = expand(in.spec)[0];
  SearchResult r;
  r.top = {plan(0.1 + 0.2, true), plan(1e-300, true)};
  ScenarioRecord rec = make_record(sc, in.spec, r);
  rec.best[0][best_plans_table().column("step_time_s")] = 0.1 + 0.2;  // not rounded: must survive exactly
  rec.best[1][best_plans_table().column("recompute")] = std::string("a \"quoted\",\nvalue");
  ScenarioRecord back = record_from_text(record_to_text(rec));
  EXPECT_EQ(back.key, rec.key);
  EXPECT_EQ(back.scenario, rec.scenario);
  EXPECT_EQ(back.best, rec.best);
  EXPECT_EQ(back.pareto, rec.pareto);
  EXPECT_THROW(record_from_text("{\"key\": 1}"), std::runtime_error);
  EXPECT_THROW(record_from_text("not json"), std::runtime_error);
}

TEST(Sweep, CsvFields) {
  EXPECT_EQ(csv_field(Value{}), "");
  EXPECT_EQ(csv_field(Value(std::int64_t{-42})), "-42");
  EXPECT_EQ(csv_field(Value(0.5)), "0.5");
  EXPECT_EQ(csv_field(Value(1e21)), "1e+21");
  EXPECT_EQ(csv_field(Value(std::string("plain"))), "plain");
  EXPECT_EQ(csv_field(Value(std::string("a,b"))), "\"a,b\"");
  EXPECT_EQ(csv_field(Value(std::string("say \"hi\""))), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field(Value(std::string("two\nlines"))), "\"two\nlines\"");
}

// GCC 12 at -O1 (the ASan build) reports std::variant's move of an initializer-list element as
// maybe-uninitialized (a false positive inside <variant>); the values here are all initialized.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
TEST(Sweep, MakeRowNamesEveryColumnOnce) {
  EXPECT_THROW(make_row(meta_table(), {{"key", std::string("a")}}), std::logic_error);
  EXPECT_THROW(make_row(meta_table(), {{"key", std::string("a")}, {"value", std::string("b")}, {"x", Value{}}}),
               std::logic_error);
  EXPECT_EQ(make_row(meta_table(), {{"value", std::string("b")}, {"key", std::string("a")}}),
            (Row{std::string("a"), std::string("b")}));
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic pop
#endif

struct TempDir {
  std::filesystem::path p;
  TempDir() {
    char t[] = "/tmp/xpuplan-store.XXXXXX";
    p = mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(p); }
};

TEST(Store, WritesResumesAndExports) {
  TempDir dir;
  const std::string db = (dir.p / "r.sqlite").string();
  SweepInputs in = parse(kGood);
  auto all = expand(in.spec);
  SearchResult r;
  r.top = {plan(1.5, true), plan(2.0, true)};
  r.pareto = {plan(1.5, true)};
  const Store::Entries id{{"sweep_name", "t"}}, info{{"xpuplan_version", "test"}};
  {
    Store s = Store::open_for_writing(db);
    s.claim(id, info);
    // Written out of grid order; the export is in grid order.
    s.write(make_record(all[2], in.spec, r));
    s.write(make_record(all[0], in.spec, r));
    EXPECT_THROW(s.write(make_record(all[0], in.spec, r)), InputError);  // key already present
    EXPECT_EQ(s.keys(), (std::set<std::string>{all[0].key, all[2].key}));
  }
  Store s = Store::open_for_writing(db);
  s.claim(id, {{"xpuplan_version", "newer"}});  // same sweep: accepted, meta kept
  EXPECT_THROW(s.claim({{"sweep_name", "other"}}, info), InputError);
  EXPECT_EQ(s.keys().size(), 2u);  // the refused duplicate left nothing behind
  const std::string csv = s.export_csv(best_plans_table());
  EXPECT_EQ(csv.rfind("scenario_key,rank,devices,tp,pp,vp,dp,cp,ep,etp,micro_batch,zero,", 0), 0u);
  const auto first = csv.find("\r\n" + all[0].key + ",1,");
  const auto second = csv.find("\r\n" + all[2].key + ",1,");
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(second, std::string::npos);
  EXPECT_LT(first, second);
  EXPECT_EQ(Store::open_read_only(db).export_csv(meta_table()),
            "key,value\r\nsweep_name,t\r\nxpuplan_version,test\r\n");
  EXPECT_THROW(Store::open_read_only((dir.p / "none.sqlite").string()), InputError);
  EXPECT_FALSE(std::filesystem::exists(dir.p / "none.sqlite"));
}

TEST(Store, RefusesOtherFiles) {
  TempDir dir;
  const auto junk = dir.p / "junk.sqlite";
  { std::ofstream(junk) << "this is not a database, it is a text file of some length............."; }
  EXPECT_THROW(Store::open_for_writing(junk.string()), InputError);
  // A database of somebody else's (a table of its own): refused, naming the table, and nothing
  // added to it (the sweep's tables went in beside it).
  const auto other = dir.p / "other.sqlite";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(other.string().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE foo(x)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  try {
    (void)Store::open_for_writing(other.string());
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a sweep database (it holds table foo)"), std::string::npos) << e.what();
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(other.string().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 1);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

TEST(Pool, EveryScenarioOnceOnTheCallingThread) {
  std::vector<Scenario> todo(50);
  for (size_t i = 0; i < todo.size(); ++i) todo[i].key = std::to_string(i);
  const auto caller = std::this_thread::get_id();
  std::set<std::string> seen;
  run_pool(
      todo, 4, [](const Scenario& s) { return ScenarioRecord{s.key, {}, {}, {}}; },
      [&](ScenarioRecord&& r) {
        EXPECT_EQ(std::this_thread::get_id(), caller);
        EXPECT_TRUE(seen.insert(r.key).second);
      });
  EXPECT_EQ(seen.size(), todo.size());
  EXPECT_THROW(run_pool(
                   todo, 3,
                   [](const Scenario& s) -> ScenarioRecord {
                     if (s.key == "7") throw std::runtime_error("boom");
                     return {s.key, {}, {}, {}};
                   },
                   [](ScenarioRecord&&) {}),
               std::runtime_error);
  run_pool({}, 4, [](const Scenario&) { return ScenarioRecord{}; }, [](ScenarioRecord&&) { FAIL(); });
}

}  // namespace
}  // namespace xpu::sweep
