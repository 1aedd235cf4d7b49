// Sweeps: a grid of training scenarios (models x systems x device counts x sequence lengths x
// global batches), each searched for its best layouts with xpu::search.
//
// This part is pure: it expands a grid into scenarios in a fixed order, runs one scenario, and
// turns the answer into rows of the results tables. The tables (names, columns, SQL types, units
// in the column names) are declared once, here; the SQLite store (store.hpp), the MPI transport
// (mpi_driver.hpp) and the CSV export all work from these declarations.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "search/search.hpp"
#include "spec/hardware.hpp"
#include "spec/model.hpp"

namespace xpu::sweep {

// The sweep file, checked (see sweep_file.hpp for parsing and docs/SWEEP.md for the format).
struct SweepSpec {
  std::string name;
  std::string file;                          // as given, for messages
  std::vector<std::string> models, systems;  // catalog ids or paths, as written in the file
  std::vector<int> devices;
  std::vector<long> seq_lens, global_batches;
  Objective objective = Objective::time;
  int top_k = 5;
  // By system (as written): the file's search.usd_per_device_hour, else the catalog's latest
  // on-demand offer; absent: no price (cost columns are NULL).
  std::map<std::string, double> usd_per_device_hour;
  std::set<std::string> priced_in_file;  // the systems the file's search.usd_per_device_hour prices
};

// "time", "cost", "tokens-per-dollar", "memory-headroom" (the spelling of sweep files).

struct Scenario {
  long index = 0;     // position in grid order
  std::string key;    // scenario_key(...)
  std::string model, system;
  int devices = 0;
  long seq_len = 0, global_batch = 0;
};

// "gpt3-175b|dgx-h100|1024|2048|1536": model|system|devices|seq_len|global_batch.
std::string scenario_key(const std::string& model, const std::string& system, int devices, long seq_len,
                         long global_batch);

// Every combination, models outermost, then systems, devices, seq_len, global_batch (each in
// the order of the file).
std::vector<Scenario> expand(const SweepSpec& s);

// ---- Result tables -------------------------------------------------------------------------

using Value = std::variant<std::monostate, std::int64_t, double, std::string>;  // monostate: NULL
using Row = std::vector<Value>;  // one value per column, in column order

enum class ColumnType { integer, real, text };
const char* sql_type(ColumnType t);

struct Column {
  std::string name;
  ColumnType type;
};

struct TableSchema {
  std::string name;
  std::vector<Column> columns;
  std::vector<std::string> primary_key;
  std::string order_by;  // SQL ORDER BY clause for a deterministic export
  int column(std::string_view name) const;  // -1 if absent
};

const TableSchema& scenarios_table();
const TableSchema& best_plans_table();
const TableSchema& pareto_plans_table();  // same columns as best_plans
const TableSchema& meta_table();
const std::vector<const TableSchema*>& all_tables();
const TableSchema* find_table(std::string_view name);  // nullptr if unknown

// Builds a row by column name; every column of the table must be named exactly once
// (std::logic_error otherwise: a bug, not bad input).
Row make_row(const TableSchema& t, const std::vector<std::pair<std::string_view, Value>>& values);

// One finished scenario: its row in `scenarios` and its rows in best_plans and pareto_plans.
struct ScenarioRecord {
  std::string key;
  Row scenario;
  std::vector<Row> best, pareto;
};

// The search options a scenario runs with (objective, top K, the system's price if any).
SearchOptions search_options(const SweepSpec& s, const std::string& system);

// Runs xpu::search for one scenario. A request the search refuses (InputError) becomes a record
// with status "error" and the message as reason; other exceptions propagate.
ScenarioRecord run_scenario(const Model& m, const System& sys, const Scenario& sc, const SweepSpec& s);

// The rows for a search result (status "ok" when a plan fits, else "infeasible"), or for a
// scenario the search refused. Reals are rounded to 6 significant digits; non-finite is NULL.
ScenarioRecord make_record(const Scenario& sc, const SweepSpec& s, const SearchResult& r);
ScenarioRecord make_error_record(const Scenario& sc, const SweepSpec& s, const std::string& reason);

// Exact text form of a record (JSON; doubles round-trip), for sending between processes.
std::string record_to_text(const ScenarioRecord& r);
// Throws std::runtime_error on malformed text or rows that do not match the tables.
ScenarioRecord record_from_text(std::string_view text);

// One CSV field (RFC 4180): NULL is empty, reals in shortest round-trip form, text quoted when
// it holds a comma, quote, CR or LF (quotes doubled).
std::string csv_field(const Value& v);

}  // namespace xpu::sweep
