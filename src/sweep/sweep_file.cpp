#include "sweep/sweep_file.hpp"

#include <climits>
#include <cmath>
#include <filesystem>
#include <set>
#include <toml++/toml.h>

#include "load/toml_reader.hpp"
#include "money/money.hpp"
#include "spec/error.hpp"

namespace xpu::sweep {

namespace {

// "file:LINE: key" (or "file: key" when toml++ knows no line).
std::string at(const std::string& file, const toml::source_region& src, const std::string& key) {
  if (src.begin.line > 0) return file + ":" + std::to_string(src.begin.line) + ": " + key;
  return file + ": " + key;
}

std::string join(const std::vector<std::string_view>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : ", ") + std::string(x);
  return s;
}

// TomlReader::finish names no line; a typo should point at its line.
void check_keys(const toml::table& t, const std::string& file, const std::string& prefix,
                const std::vector<std::string_view>& allowed) {
  for (const auto& [k, v] : t) {
    bool ok = false;
    for (auto a : allowed) ok = ok || k.str() == a;
    if (ok) continue;
    const auto& src = k.source().begin.line > 0 ? k.source() : v.source();
    throw InputError(at(file, src, prefix + std::string(k.str())), "unknown key (expected " + join(allowed) + ")");
  }
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number with a fraction";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "a list";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

// A required, non-empty list under [grid].
const toml::array& grid_list(TomlReader& r, const toml::table& g, std::string_view key, const char* example) {
  const toml::node* n = g.get(key);
  if (!n) r.fail(key, std::string("missing (required): a list, e.g. ") + example);
  if (!n->is_array()) r.fail(key, "must be a list, e.g. " + std::string(example) + ", got " + type_name(*n));
  const toml::array& a = *n->as_array();
  if (a.empty()) r.fail(key, "must not be empty");
  return a;
}

std::vector<std::string> string_list(TomlReader& r, const std::string& file, const toml::table& g,
                                     std::string_view key, const char* example) {
  const std::string k = "grid." + std::string(key);
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& e : grid_list(r, g, key, example)) {
    if (!e.is_string()) throw InputError(at(file, e.source(), k), "must be a list of strings, got " + type_name(e));
    std::string s(e.as_string()->get());
    if (s.empty()) throw InputError(at(file, e.source(), k), "must not hold an empty string");
    // A file named twice ("sub/config.json", "./sub/config.json") is the same scenario twice.
    const std::string same = s.find('/') != std::string::npos ? std::filesystem::path(s).lexically_normal().generic_string() : s;
    if (!seen.insert(same).second) throw InputError(at(file, e.source(), k), "'" + s + "' is listed twice");
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<long> size_list(TomlReader& r, const std::string& file, const toml::table& g, std::string_view key,
                            const char* example, long max_value) {
  const std::string k = "grid." + std::string(key);
  std::vector<long> out;
  std::set<long> seen;
  for (const auto& e : grid_list(r, g, key, example)) {
    if (!e.is_integer()) throw InputError(at(file, e.source(), k), "must be a list of integers, got " + type_name(e));
    const long v = static_cast<long>(e.as_integer()->get());
    if (v < 1) throw InputError(at(file, e.source(), k), "must be positive, got " + std::to_string(v));
    if (v > max_value)
      throw InputError(at(file, e.source(), k), std::to_string(v) + " is too large (at most " + std::to_string(max_value) + ")");
    if (!seen.insert(v).second) throw InputError(at(file, e.source(), k), std::to_string(v) + " is listed twice");
    out.push_back(v);
  }
  return out;
}

bool looks_like_path(const std::string& s) {
  return s.find('/') != std::string::npos || s.ends_with(".json") || s.ends_with(".toml");
}

// A relative path is read from the sweep file's folder.
std::string locate(const std::string& sweep_file, const std::string& arg) {
  if (!looks_like_path(arg)) return arg;
  std::filesystem::path p(arg);
  if (p.is_absolute()) return arg;
  return (std::filesystem::path(sweep_file).parent_path() / p).lexically_normal().generic_string();
}

// The catalog names the flag (--model, --system) in its errors; here the file, line and key are
// the place. Errors inside a model or system file keep naming that file.
[[noreturn]] void rethrow_at(const InputError& e, const std::string& flag, const std::string& where) {
  std::string msg = e.what();
  if (e.where() == flag) msg = msg.substr(flag.size() + 2);
  throw InputError(where, msg);
}

const toml::node* element_named(const toml::array& a, const std::string& s) {
  for (const auto& e : a)
    if (e.is_string() && e.as_string()->get() == s) return &e;
  return nullptr;
}

}  // namespace

SweepInputs parse_sweep(const DataFile& f, const Catalog& c) {
  const toml::table t = parse_toml_text(f.text, f.path);
  check_keys(t, f.path, "", {"name", "grid", "search"});
  TomlReader top(t, f.path);
  SweepInputs in;
  SweepSpec& s = in.spec;
  s.file = f.path;
  s.name = top.str("name");

  if (!t.contains("grid")) throw InputError(f.path + ": grid", "missing (required): the [grid] table of models, systems and sizes");
  TomlReader gr = *top.table("grid");
  const toml::table& g = *t.get("grid")->as_table();
  check_keys(g, f.path, "grid.", {"models", "systems", "devices", "seq_len", "global_batch"});
  s.models = string_list(gr, f.path, g, "models", "[\"llama3-8b\"]");
  s.systems = string_list(gr, f.path, g, "systems", "[\"dgx-h100\"]");
  for (long d : size_list(gr, f.path, g, "devices", "[8, 64]", INT_MAX)) s.devices.push_back(static_cast<int>(d));
  s.seq_lens = size_list(gr, f.path, g, "seq_len", "[2048, 8192]", 1L << 40);
  s.global_batches = size_list(gr, f.path, g, "global_batch", "[1536]", 1L << 40);

  const toml::array& model_nodes = *g.get("models")->as_array();
  for (const auto& m : s.models) {
    const std::string where = at(f.path, element_named(model_nodes, m)->source(), "grid.models");
    try {
      in.models.emplace(m, resolve_model(c, locate(f.path, m)));
    } catch (const InputError& e) {
      rethrow_at(e, "--model", where);
    }
  }
  const toml::array& system_nodes = *g.get("systems")->as_array();
  for (const auto& sys : s.systems) {
    const std::string where = at(f.path, element_named(system_nodes, sys)->source(), "grid.systems");
    try {
      in.systems.emplace(sys, resolve_system(c, locate(f.path, sys)));
    } catch (const InputError& e) {
      rethrow_at(e, "--system", where);
    }
  }

  if (t.contains("search")) {
    TomlReader sr = *top.table("search");
    const toml::table& st = *t.get("search")->as_table();
    check_keys(st, f.path, "search.", {"objective", "top_k", "usd_per_device_hour"});
    if (auto o = sr.opt_str("objective")) {
      auto ob = parse_objective(*o);
      if (!ob) sr.fail("objective", "'" + *o + "' is not time, cost, tokens-per-dollar or memory-headroom");
      s.objective = *ob;
    }
    if (auto k = sr.opt_integer("top_k", 1)) {
      if (*k > 1000) sr.fail("top_k", "must be at most 1000, got " + std::to_string(*k));
      s.top_k = static_cast<int>(*k);
    }
    if (const toml::node* p = st.get("usd_per_device_hour")) {
      const std::string k = "search.usd_per_device_hour";
      auto price = [&](const toml::node& n, const std::string& key) {
        double v = 0;
        if (n.is_integer()) v = static_cast<double>(n.as_integer()->get());
        else if (n.is_floating_point()) v = n.as_floating_point()->get();
        else throw InputError(at(f.path, n.source(), key), "must be a number (USD per device-hour), got " + type_name(n));
        if (!(v > 0) || !std::isfinite(v)) throw InputError(at(f.path, n.source(), key), "must be a positive, finite USD rate");
        // As --price: beyond it a step's cost overflowed to inf and was stored as "no price".
        if (const std::string why = usd_rate_problem(v); !why.empty()) throw InputError(at(f.path, n.source(), key), why);
        return v;
      };
      if (p->is_table()) {
        for (const auto& [sys, v] : *p->as_table()) {
          const std::string id(sys.str());
          if (!in.systems.contains(id))
            throw InputError(at(f.path, sys.source().begin.line > 0 ? sys.source() : v.source(), k + "." + id),
                             "'" + id + "' is not in grid.systems");
          s.usd_per_device_hour[id] = price(v, k + "." + id);
          s.priced_in_file.insert(id);
        }
      } else {
        const double v = price(*p, k);
        for (const auto& sys : s.systems) {
          s.usd_per_device_hour[sys] = v;
          s.priced_in_file.insert(sys);
        }
      }
    }
  }
  // Systems without a price in the file take the catalog's latest on-demand offer.
  for (const auto& sys : s.systems)
    if (!s.usd_per_device_hour.contains(sys))
      if (const PriceOffer* p = in.systems.at(sys).price("on-demand")) s.usd_per_device_hour[sys] = p->usd_per_device_hour();
  if (s.objective == Objective::cost || s.objective == Objective::tokens_per_dollar) {
    TomlReader sr = *top.table("search");
    for (const auto& sys : s.systems)
      if (!s.usd_per_device_hour.contains(sys))
        sr.fail("objective", std::string("'") + objective_name(s.objective) + "' needs a price for system '" + sys +
                                 "' (the catalog has no on-demand price): set search.usd_per_device_hour (USD per "
                                 "device-hour)");
  }
  return in;
}

}  // namespace xpu::sweep
