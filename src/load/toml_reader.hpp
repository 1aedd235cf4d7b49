// Typed access to one TOML table with errors that name file and key, and a check that no key
// is left unread (a typo is an error, not a silent default).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <toml++/toml.h>

#include "spec/error.hpp"
#include "units/units.hpp"

namespace xpu {

// Parses TOML text; a syntax error is InputError("path:line", "malformed TOML: ...").
toml::table parse_toml_text(const std::string& text, const std::string& path);

class TomlReader {
 public:
  TomlReader(const toml::table& t, std::string file, std::string prefix = "")
      : t_(t), file_(std::move(file)), prefix_(std::move(prefix)) {}

  std::string where(std::string_view key) const;
  [[noreturn]] void fail(std::string_view key, const std::string& what) const;

  bool has(std::string_view key) const { return t_.contains(key); }
  // The line a key's value starts on (0 when absent or unknown), for errors raised after parsing.
  int line_of(std::string_view key) const;
  std::string str(std::string_view key);
  std::optional<std::string> opt_str(std::string_view key);
  long integer(std::string_view key, long min_value = 1);
  std::optional<long> opt_integer(std::string_view key, long min_value = 0);
  double number(std::string_view key, double lo, double hi);
  std::optional<double> opt_number(std::string_view key, double lo, double hi);
  bool boolean(std::string_view key, bool fallback_if_absent);
  std::vector<int> int_array(std::string_view key);
  std::vector<double> number_array(std::string_view key, double lo, double hi);  // each in [lo, hi]
  std::vector<std::string> str_array(std::string_view key);
  // A quantity string with its unit; must be > 0 unless allow_zero.
  double quantity(std::string_view key, Dimension d, bool allow_zero = false);
  std::optional<double> opt_quantity(std::string_view key, Dimension d, bool allow_zero = false);
  // A sub-table, or nullopt when absent.
  std::optional<TomlReader> table(std::string_view key);
  // Throws if the table holds keys never asked for.
  void finish() const;

 private:
  const toml::node* get(std::string_view key);
  const toml::table& t_;
  std::string file_, prefix_;
  std::set<std::string, std::less<>> seen_;
};

}  // namespace xpu
