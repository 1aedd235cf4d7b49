#include "sweep/sweep.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "spec/error.hpp"

namespace xpu::sweep {

std::string scenario_key(const std::string& model, const std::string& system, int devices, long seq_len,
                         long global_batch) {
  return model + "|" + system + "|" + std::to_string(devices) + "|" + std::to_string(seq_len) + "|" +
         std::to_string(global_batch);
}

std::vector<Scenario> expand(const SweepSpec& s) {
  std::vector<Scenario> out;
  out.reserve(s.models.size() * s.systems.size() * s.devices.size() * s.seq_lens.size() * s.global_batches.size());
  for (const auto& m : s.models)
    for (const auto& sys : s.systems)
      for (int d : s.devices)
        for (long sl : s.seq_lens)
          for (long gb : s.global_batches) {
            Scenario sc;
            sc.index = static_cast<long>(out.size());
            sc.key = scenario_key(m, sys, d, sl, gb);
            sc.model = m;
            sc.system = sys;
            sc.devices = d;
            sc.seq_len = sl;
            sc.global_batch = gb;
            out.push_back(std::move(sc));
          }
  return out;
}

// ---- Tables ----------------------------------------------------------------------------------

const char* sql_type(ColumnType t) {
  switch (t) {
    case ColumnType::integer: return "INTEGER";
    case ColumnType::real: return "REAL";
    case ColumnType::text: return "TEXT";
  }
  return "TEXT";
}

int TableSchema::column(std::string_view n) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i].name == n) return static_cast<int>(i);
  return -1;
}

namespace {
constexpr ColumnType I = ColumnType::integer, R = ColumnType::real, T = ColumnType::text;

std::vector<Column> plan_columns() {
  return {{"scenario_key", T}, {"rank", I},          {"devices", I},
          {"tp", I},           {"pp", I},            {"vp", I},
          {"dp", I},           {"cp", I},            {"ep", I},
          {"etp", I},
          {"micro_batch", I},  {"zero", I},          {"recompute", T},
          {"recompute_layers", I},  {"recompute_modules", T},
          {"precision", T},    {"sequence_parallel", I}, {"grad_precision", T},
          {"lowp_params", I},  {"pipeline_layout", T}, {"microbatches", I},  {"step_time_s", R},
          {"tokens_per_s", R}, {"tokens_per_s_per_device", R}, {"mfu_pct", R},
          {"hfu_pct", R},      {"memory_bytes", I},  {"capacity_bytes", I},
          {"cost_per_step_usd", R}};
}

const char* kPlanOrder = "(SELECT s.grid_index FROM scenarios AS s WHERE s.key = p.scenario_key), p.scenario_key, p.rank";
}  // namespace

const TableSchema& scenarios_table() {
  static const TableSchema t{
      "scenarios",
      {{"key", T},
       {"grid_index", I},
       {"model", T},
       {"system", T},
       {"devices", I},
       {"seq_len", I},
       {"global_batch", I},
       {"objective", T},
       {"top_k", I},
       {"usd_per_device_hour", R},
       {"status", T},
       {"reason", T},
       {"feasible", I},
       {"considered", I},
       {"pruned_divisibility", I},
       {"pruned_memory", I},
       {"pruned_dominance", I},
       {"evaluated", I},
       {"best_step_time_s", R},
       {"best_tokens_per_s_per_device", R},
       {"best_mfu_pct", R},
       {"best_memory_bytes", I},
       {"best_cost_per_step_usd", R}},
      {"key"},
      "p.grid_index, p.key"};
  return t;
}

const TableSchema& best_plans_table() {
  static const TableSchema t{"best_plans", plan_columns(), {"scenario_key", "rank"}, kPlanOrder};
  return t;
}

const TableSchema& pareto_plans_table() {
  static const TableSchema t{"pareto_plans", plan_columns(), {"scenario_key", "rank"}, kPlanOrder};
  return t;
}

const TableSchema& meta_table() {
  static const TableSchema t{"meta", {{"key", T}, {"value", T}}, {"key"}, "p.key"};
  return t;
}

const std::vector<const TableSchema*>& all_tables() {
  static const std::vector<const TableSchema*> v{&scenarios_table(), &best_plans_table(), &pareto_plans_table(),
                                                 &meta_table()};
  return v;
}

const TableSchema* find_table(std::string_view name) {
  for (const auto* t : all_tables())
    if (t->name == name) return t;
  return nullptr;
}

Row make_row(const TableSchema& t, const std::vector<std::pair<std::string_view, Value>>& values) {
  Row row(t.columns.size());
  std::vector<bool> set(t.columns.size(), false);
  for (const auto& [name, v] : values) {
    int i = t.column(name);
    if (i < 0) throw std::logic_error("table " + t.name + " has no column " + std::string(name));
    if (set[i]) throw std::logic_error("table " + t.name + ": column " + std::string(name) + " given twice");
    set[i] = true;
    row[i] = v;
  }
  for (size_t i = 0; i < set.size(); ++i)
    if (!set[i]) throw std::logic_error("table " + t.name + ": column " + t.columns[i].name + " not given");
  return row;
}

// ---- One scenario ----------------------------------------------------------------------------

SearchOptions search_options(const SweepSpec& s, const std::string& system) {
  SearchOptions o;
  o.objective = s.objective;
  o.top_k = s.top_k;
  o.threads = 1;
  if (auto it = s.usd_per_device_hour.find(system); it != s.usd_per_device_hour.end()) o.usd_per_device_hour = it->second;
  return o;
}

namespace {

// 6 significant digits (the project's output convention), NULL when not finite.
Value real(double v) {
  if (!std::isfinite(v)) return std::monostate{};
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return std::strtod(b, nullptr);
}
Value integer(long long v) { return static_cast<std::int64_t>(v); }
Value bytes(double v) {
  if (!std::isfinite(v)) return std::monostate{};
  return static_cast<std::int64_t>(std::llround(v));
}

double price_of(const SweepSpec& s, const std::string& system) {
  auto it = s.usd_per_device_hour.find(system);
  return it == s.usd_per_device_hour.end() ? 0.0 : it->second;
}

Value cost_per_step(double price, const TrainReport& r) {
  if (price <= 0) return std::monostate{};
  return real(r.step_time * r.devices * price / 3600.0);
}

Row plan_row(const TableSchema& t, const std::string& key, int rank, const TrainReport& r, double price) {
  const Layout& l = r.layout;
  return make_row(t, {{"scenario_key", key},
                      {"rank", integer(rank)},
                      {"devices", integer(r.devices)},
                      {"tp", integer(l.tp)},
                      {"pp", integer(l.pp)},
                      {"vp", integer(l.vp)},
                      {"dp", integer(l.dp)},
                      {"cp", integer(l.cp)},
                      {"ep", integer(l.ep)},
                      {"etp", integer(l.expert_tp())},
                      {"micro_batch", integer(l.micro_batch)},
                      {"zero", integer(l.zero)},
                      {"recompute", std::string(recompute_name(l.recompute))},
                      {"recompute_layers", integer(l.recompute_layers)},
                      {"recompute_modules", std::string(l.recompute == Recompute::selective ? recompute_modules_name(l.recompute_modules) : "")},
                      {"precision", std::string(precision_name(l.precision))},
                      {"sequence_parallel", integer(l.sequence_parallel && l.tp > 1 ? 1 : 0)},  // as train --json
                      {"grad_precision", std::string(grad_name(l))},
                      {"lowp_params", integer(l.lowp_params ? 1 : 0)},
                      {"pipeline_layout", std::string(l.stage_layout ? l.stage_layout->text : "")},
                      {"microbatches", integer(r.microbatches)},
                      {"step_time_s", real(r.step_time)},
                      {"tokens_per_s", real(r.tokens_per_s)},
                      {"tokens_per_s_per_device", real(r.tokens_per_s_per_device)},
                      {"mfu_pct", real(r.mfu * 100)},
                      {"hfu_pct", real(r.hfu * 100)},
                      {"memory_bytes", bytes(r.mem.total())},
                      {"capacity_bytes", bytes(r.mem.capacity)},
                      {"cost_per_step_usd", cost_per_step(price, r)}});
}

Row scenario_row(const Scenario& sc, const SweepSpec& s, const std::string& status, const std::string& reason,
                 const SearchStats& st, const TrainReport* best) {
  const double price = price_of(s, sc.system);
  const Value none;
  return make_row(scenarios_table(),
                  {{"key", sc.key},
                   {"grid_index", integer(sc.index)},
                   {"model", sc.model},
                   {"system", sc.system},
                   {"devices", integer(sc.devices)},
                   {"seq_len", integer(sc.seq_len)},
                   {"global_batch", integer(sc.global_batch)},
                   {"objective", std::string(objective_name(s.objective))},
                   {"top_k", integer(s.top_k)},
                   {"usd_per_device_hour", price > 0 ? real(price) : none},
                   {"status", status},
                   {"reason", reason.empty() ? none : Value(reason)},
                   {"feasible", integer(st.feasible)},
                   {"considered", integer(st.considered)},
                   {"pruned_divisibility", integer(st.pruned_divisibility)},
                   {"pruned_memory", integer(st.pruned_memory)},
                   {"pruned_dominance", integer(st.pruned_dominance)},
                   {"evaluated", integer(st.evaluated)},
                   {"best_step_time_s", best ? real(best->step_time) : none},
                   {"best_tokens_per_s_per_device", best ? real(best->tokens_per_s_per_device) : none},
                   {"best_mfu_pct", best ? real(best->mfu * 100) : none},
                   {"best_memory_bytes", best ? bytes(best->mem.total()) : none},
                   {"best_cost_per_step_usd", best ? cost_per_step(price, *best) : none}});
}

}  // namespace

ScenarioRecord make_record(const Scenario& sc, const SweepSpec& s, const SearchResult& r) {
  ScenarioRecord rec;
  rec.key = sc.key;
  const double price = price_of(s, sc.system);
  const TrainReport* best = nullptr;
  int rank = 0;
  for (const auto& p : r.top) {
    if (!p.feasible()) continue;
    if (!best) best = &p;
    rec.best.push_back(plan_row(best_plans_table(), sc.key, ++rank, p, price));
  }
  rank = 0;
  for (const auto& p : r.pareto)
    if (p.feasible()) rec.pareto.push_back(plan_row(pareto_plans_table(), sc.key, ++rank, p, price));
  std::string reason;
  if (!best) {
    for (const auto& p : r.top)
      if (!p.reason.empty()) {
        reason = p.reason;
        break;
      }
    if (reason.empty())
      reason = "no layout fits: " + std::to_string(r.stats.considered) + " considered, " +
               std::to_string(r.stats.pruned_divisibility) + " not dividing, " + std::to_string(r.stats.pruned_memory) +
               " out of memory";
  }
  rec.scenario = scenario_row(sc, s, best ? "ok" : "infeasible", reason, r.stats, best);
  return rec;
}

ScenarioRecord make_error_record(const Scenario& sc, const SweepSpec& s, const std::string& reason) {
  ScenarioRecord rec;
  rec.key = sc.key;
  rec.scenario = scenario_row(sc, s, "error", reason, SearchStats{}, nullptr);
  return rec;
}

ScenarioRecord run_scenario(const Model& m, const System& sys, const Scenario& sc, const SweepSpec& s) {
  PlanRequest q;
  q.devices = sc.devices;
  q.work.seq_len = sc.seq_len;
  q.work.global_batch = sc.global_batch;
  SearchResult r;
  try {
    r = search(m, sys, q, search_options(s, sc.system));
  } catch (const InputError& e) {
    return make_error_record(sc, s, e.what());
  }
  return make_record(sc, s, r);
}

// ---- Text form -------------------------------------------------------------------------------

namespace {

nlohmann::json row_json(const Row& row) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& v : row) {
    if (std::holds_alternative<std::monostate>(v)) a.push_back(nullptr);
    else if (auto* i = std::get_if<std::int64_t>(&v)) a.push_back(*i);
    else if (auto* d = std::get_if<double>(&v)) a.push_back(*d);
    else a.push_back(std::get<std::string>(v));
  }
  return a;
}

Row row_from_json(const nlohmann::json& a, const TableSchema& t) {
  if (!a.is_array() || a.size() != t.columns.size())
    throw std::runtime_error("record: a " + t.name + " row must have " + std::to_string(t.columns.size()) + " values");
  Row row;
  row.reserve(a.size());
  for (const auto& e : a) {
    if (e.is_null()) row.emplace_back(std::monostate{});
    else if (e.is_number_integer()) row.emplace_back(e.get<std::int64_t>());
    else if (e.is_number_float()) row.emplace_back(e.get<double>());
    else if (e.is_string()) row.emplace_back(e.get<std::string>());
    else throw std::runtime_error("record: unexpected value in a " + t.name + " row");
  }
  return row;
}

}  // namespace

std::string record_to_text(const ScenarioRecord& r) {
  nlohmann::json j;
  j["key"] = r.key;
  j["scenario"] = row_json(r.scenario);
  j["best"] = nlohmann::json::array();
  for (const auto& row : r.best) j["best"].push_back(row_json(row));
  j["pareto"] = nlohmann::json::array();
  for (const auto& row : r.pareto) j["pareto"].push_back(row_json(row));
  // Text that is not UTF-8 (a path in another encoding) is replaced rather than failing the send.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ScenarioRecord record_from_text(std::string_view text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("record: malformed JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("key") || !j["key"].is_string() || !j.contains("scenario") ||
      !j.contains("best") || !j["best"].is_array() || !j.contains("pareto") || !j["pareto"].is_array())
    throw std::runtime_error("record: expected {key, scenario, best, pareto}");
  ScenarioRecord r;
  r.key = j["key"].get<std::string>();
  r.scenario = row_from_json(j["scenario"], scenarios_table());
  for (const auto& a : j["best"]) r.best.push_back(row_from_json(a, best_plans_table()));
  for (const auto& a : j["pareto"]) r.pareto.push_back(row_from_json(a, pareto_plans_table()));
  return r;
}

std::string csv_field(const Value& v) {
  if (std::holds_alternative<std::monostate>(v)) return "";
  if (auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) {
    if (!std::isfinite(*d)) return "";
    char b[64];
    auto res = std::to_chars(b, b + sizeof b, *d);
    return std::string(b, res.ptr);
  }
  const auto& s = std::get<std::string>(v);
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace xpu::sweep
