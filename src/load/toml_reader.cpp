#include "load/toml_reader.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

namespace xpu {

toml::table parse_toml_text(const std::string& text, const std::string& path) {
  try {
    return toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw InputError(path + ":" + std::to_string(e.source().begin.line), "malformed TOML: " + std::string(e.description()));
  }
}

std::string TomlReader::where(std::string_view key) const {
  std::string w = file_ + ": " + prefix_ + std::string(key);
  if (auto* n = t_.get(key)) {
    const auto& src = n->source();
    if (src.begin.line > 0) w = file_ + ":" + std::to_string(src.begin.line) + ": " + prefix_ + std::string(key);
  }
  return w;
}

int TomlReader::line_of(std::string_view key) const {
  const auto* n = t_.get(key);
  return n ? static_cast<int>(n->source().begin.line) : 0;
}

void TomlReader::fail(std::string_view key, const std::string& what) const {
  throw InputError(where(key), what);
}

const toml::node* TomlReader::get(std::string_view key) {
  seen_.emplace(key);
  return t_.get(key);
}

std::optional<std::string> TomlReader::opt_str(std::string_view key) {
  const auto* n = get(key);
  if (!n) return std::nullopt;
  if (!n->is_string()) fail(key, "must be a string");
  std::string s(n->as_string()->get());
  // Every string a catalog file gives (ids, names, units, sources, notes) is printed on one line of
  // a report or an --explain term: no control characters (a newline in a model's name had split
  // the report's header).
  for (unsigned char ch : s)
    if (ch < 0x20 || ch == 0x7f) fail(key, "must be one line without control characters (tab, newline, ...)");
  return s;
}

std::string TomlReader::str(std::string_view key) {
  auto s = opt_str(key);
  if (!s) fail(key, "missing (required)");
  if (s->empty()) fail(key, "must not be empty");
  return *s;
}

std::optional<long> TomlReader::opt_integer(std::string_view key, long min_value) {
  const auto* n = get(key);
  if (!n) return std::nullopt;
  if (!n->is_integer()) fail(key, "must be an integer");
  const std::int64_t raw = n->as_integer()->get();
  // Every catalog count is held as an int: refuse what would wrap.
  if (raw > std::numeric_limits<int>::max())
    fail(key, "must be at most " + std::to_string(std::numeric_limits<int>::max()) + ", got " + std::to_string(raw));
  long v = static_cast<long>(raw);
  if (v < min_value) fail(key, "must be at least " + std::to_string(min_value) + ", got " + std::to_string(v));
  return v;
}

long TomlReader::integer(std::string_view key, long min_value) {
  auto v = opt_integer(key, min_value);
  if (!v) fail(key, "missing (required)");
  return *v;
}

std::optional<double> TomlReader::opt_number(std::string_view key, double lo, double hi) {
  const auto* n = get(key);
  if (!n) return std::nullopt;
  double v = 0;
  if (n->is_integer()) v = static_cast<double>(n->as_integer()->get());
  else if (n->is_floating_point()) v = n->as_floating_point()->get();
  else fail(key, "must be a number");
  if (!(v >= lo && v <= hi))
    fail(key, "must be between " + format_number("%g", lo) + " and " + format_number("%g", hi) + ", got " + format_number("%g", v));
  return v;
}

double TomlReader::number(std::string_view key, double lo, double hi) {
  auto v = opt_number(key, lo, hi);
  if (!v) fail(key, "missing (required)");
  return *v;
}

bool TomlReader::boolean(std::string_view key, bool fallback_if_absent) {
  const auto* n = get(key);
  if (!n) return fallback_if_absent;
  if (!n->is_boolean()) fail(key, "must be true or false");
  return n->as_boolean()->get();
}

std::vector<int> TomlReader::int_array(std::string_view key) {
  const auto* n = get(key);
  std::vector<int> out;
  if (!n) return out;
  if (!n->is_array()) fail(key, "must be an array of integers");
  for (const auto& e : *n->as_array()) {
    if (!e.is_integer() || e.as_integer()->get() < 1) fail(key, "must be an array of positive integers");
    if (e.as_integer()->get() > std::numeric_limits<int>::max())  // held as int: refuse what would wrap
      fail(key, "must hold integers of at most " + std::to_string(std::numeric_limits<int>::max()) + ", got " +
                    std::to_string(e.as_integer()->get()));
    out.push_back(static_cast<int>(e.as_integer()->get()));
  }
  return out;
}

std::vector<double> TomlReader::number_array(std::string_view key, double lo, double hi) {
  const auto* n = get(key);
  std::vector<double> out;
  if (!n) return out;
  if (!n->is_array()) fail(key, "must be an array of numbers");
  for (const auto& e : *n->as_array()) {
    if (!e.is_number()) fail(key, "must be an array of numbers");
    const double v = e.is_integer() ? static_cast<double>(e.as_integer()->get()) : e.as_floating_point()->get();
    if (!(v >= lo && v <= hi)) fail(key, "must hold numbers from " + format_number("%g", lo) + " to " + format_number("%g", hi));
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> TomlReader::str_array(std::string_view key) {
  const auto* n = get(key);
  std::vector<std::string> out;
  if (!n) return out;
  if (!n->is_array()) fail(key, "must be an array of strings");
  for (const auto& e : *n->as_array()) {
    if (!e.is_string()) fail(key, "must be an array of strings");
    out.emplace_back(e.as_string()->get());
  }
  return out;
}

std::optional<double> TomlReader::opt_quantity(std::string_view key, Dimension d, bool allow_zero) {
  auto s = opt_str(key);
  if (!s) {
    if (t_.contains(key)) fail(key, "must be a string with a unit, e.g. \"3.35 TB/s\"");
    return std::nullopt;
  }
  double v = 0;
  try {
    v = parse_quantity(*s, d);
  } catch (const UnitError& e) {
    fail(key, e.what());
  }
  if (v < 0 || (!allow_zero && v == 0)) fail(key, "must be positive, got '" + *s + "'");
  return v;
}

double TomlReader::quantity(std::string_view key, Dimension d, bool allow_zero) {
  if (!t_.contains(key)) fail(key, std::string("missing (required): ") + dimension_name(d));
  if (!t_.get(key)->is_string()) {
    seen_.emplace(key);
    fail(key, std::string("must be a string with a unit, ") + dimension_name(d));
  }
  return *opt_quantity(key, d, allow_zero);
}

std::optional<TomlReader> TomlReader::table(std::string_view key) {
  const auto* n = get(key);
  if (!n) return std::nullopt;
  if (!n->is_table()) fail(key, "must be a table");
  return TomlReader(*n->as_table(), file_, prefix_ + std::string(key) + ".");
}

void TomlReader::finish() const {
  for (const auto& [k, v] : t_) {
    if (!seen_.contains(k.str())) {
      const auto line = v.source().begin.line;
      throw InputError(file_ + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + prefix_ + std::string(k.str()),
                       "unknown key");
    }
  }
}

}  // namespace xpu
