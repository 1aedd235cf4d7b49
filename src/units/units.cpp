#include "units/units.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace xpu {

const char* dimension_name(Dimension d) {
  switch (d) {
    case Dimension::time: return "a time (s, ms, us, ns)";
    case Dimension::bytes: return "a size (B, GB, GiB, Gb, ...)";
    case Dimension::flop_rate: return "a compute rate (TFLOP/s, ...)";
    case Dimension::byte_rate: return "a bandwidth (GB/s, Gb/s, GiB/s, ...)";
    case Dimension::power: return "a power (W, kW)";
    case Dimension::money_rate: return "a price rate (USD/h)";
    case Dimension::money: return "an amount of money (USD, kUSD, MUSD, GUSD)";
    case Dimension::energy_price: return "an energy price (USD/kWh, USD/MWh)";
    case Dimension::carbon_intensity: return "a carbon intensity (kgCO2/kWh, gCO2/kWh, tCO2/MWh)";
    case Dimension::dimensionless: return "a plain number";
  }
  return "?";
}

namespace {

struct Prefix {
  std::string_view text;
  double factor;
};

// Longest prefixes first so "Gi" wins over "G".
constexpr Prefix kPrefixes[] = {
    {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
    {"Pi", 1125899906842624.0}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
    {"P", 1e15}, {"E", 1e18}, {"", 1.0}};

// Splits `unit` into prefix factor and base; returns false if no prefix+base matches.
bool split_prefix(std::string_view unit, std::string_view base, double& factor) {
  for (const auto& p : kPrefixes) {
    if (unit.size() == p.text.size() + base.size() && unit.substr(0, p.text.size()) == p.text &&
        unit.substr(p.text.size()) == base) {
      factor = p.factor;
      return true;
    }
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

namespace {
double parse_quantity_scaled(std::string_view s, Dimension expected) {
  if (s.empty()) throw UnitError("empty value, expected " + std::string(dimension_name(expected)));
  // Number: optional sign, digits, '.', exponent. Commas as thousands separators are refused so
  // that "1,978.9" cannot be misread.
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.' ||
                          s[i] == '-' || s[i] == '+' || s[i] == 'e' || s[i] == 'E')) {
    // 'e'/'E' only counts as exponent when followed by a digit or sign (so "1 EFLOP/s" works).
    if ((s[i] == 'e' || s[i] == 'E') &&
        !(i + 1 < s.size() && (std::isdigit(static_cast<unsigned char>(s[i + 1])) || s[i + 1] == '-' ||
                               s[i + 1] == '+')))
      break;
    ++i;
  }
  std::string num(s.substr(0, i));
  double value = 0.0;
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), value);
  if (ec == std::errc::result_out_of_range)
    throw UnitError("'" + std::string(s) + "' is out of range (at most 1e24 and, when not 0, at least 1e-24 in SI units)");
  if (num.empty() || ec != std::errc() || ptr != num.data() + num.size() || !std::isfinite(value))
    throw UnitError("'" + std::string(s) + "' does not start with a number");
  std::string_view unit = trim(s.substr(i));

  if (expected == Dimension::dimensionless) {
    if (!unit.empty()) throw UnitError("'" + std::string(s) + "' should be a plain number");
    return value;
  }
  if (unit.empty())
    throw UnitError("'" + std::string(s) + "' has no unit, expected " + dimension_name(expected));

  double f = 0.0;
  switch (expected) {
    case Dimension::time:
      if (unit == "s") return value;
      if (unit == "ms") return value * 1e-3;
      if (unit == "us" || unit == "µs") return value * 1e-6;
      if (unit == "ns") return value * 1e-9;
      break;
    case Dimension::bytes:
      if (split_prefix(unit, "B", f)) return value * f;
      if (split_prefix(unit, "b", f)) return value * f / 8.0;
      break;
    case Dimension::flop_rate:
      if (split_prefix(unit, "FLOP/s", f) || split_prefix(unit, "FLOPS", f) || split_prefix(unit, "OP/s", f))
        return value * f;
      break;
    case Dimension::byte_rate:
      if (split_prefix(unit, "B/s", f)) return value * f;
      if (split_prefix(unit, "b/s", f) || split_prefix(unit, "bps", f)) return value * f / 8.0;
      break;
    case Dimension::power:
      if (split_prefix(unit, "W", f)) return value * f;
      break;
    case Dimension::money_rate:
      if (split_prefix(unit, "USD/h", f)) return value * f;
      break;
    case Dimension::money:
      if (split_prefix(unit, "USD", f)) return value * f;
      break;
    case Dimension::energy_price:
      if (unit == "USD/kWh") return value / kJoulesPerKwh;
      if (unit == "USD/MWh") return value / (1e3 * kJoulesPerKwh);
      break;
    case Dimension::carbon_intensity:
      if (unit == "kgCO2/kWh") return value / kJoulesPerKwh;
      if (unit == "gCO2/kWh") return value * 1e-3 / kJoulesPerKwh;
      if (unit == "tCO2/MWh") return value / kJoulesPerKwh;  // 1 t/MWh = 1 kg/kWh
      break;
    case Dimension::dimensionless: break;
  }
  throw UnitError("'" + std::string(s) + "': unit '" + std::string(unit) + "' is not " +
                  dimension_name(expected));
}
}  // namespace

double parse_quantity(std::string_view text, Dimension expected) {
  const std::string_view s = trim(text);
  const double v = parse_quantity_scaled(s, expected);
  // Nothing a plan reads is beyond 1e24 or below 1e-24 in SI units (a zettabyte, a yoctosecond);
  // values out there are typos, and they would reach the output as inf, nan or 0.
  if (!in_quantity_range(v))
    throw UnitError("'" + std::string(s) + "' is out of range (" + format_number("%g", v) + " in SI units; at most 1e24 and, when not 0, at least 1e-24)");
  return v;
}

namespace {
std::string with_prefix(double v, const char* unit, bool binary) {
  static constexpr const char* kDec[] = {"", "k", "M", "G", "T", "P", "E"};
  static constexpr const char* kBin[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  const double step = binary ? 1024.0 : 1000.0;
  int k = 0;
  double a = std::fabs(v);
  while (a >= step && k < 6) {
    a /= step;
    v /= step;
    ++k;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, a >= 100 ? "%.0f %s%s" : (a >= 10 ? "%.1f %s%s" : "%.2f %s%s"), v,
                binary ? kBin[k] : kDec[k], unit);
  return buf;
}
}  // namespace

std::string format_seconds(Seconds s) {
  char buf[64];
  double v = s.v;
  if (std::fabs(v) >= 1.0) std::snprintf(buf, sizeof buf, "%.3f s", v);
  else if (std::fabs(v) >= 1e-3) std::snprintf(buf, sizeof buf, "%.2f ms", v * 1e3);
  else std::snprintf(buf, sizeof buf, "%.1f us", v * 1e6);
  return buf;
}
std::string format_bytes(Bytes b) { return with_prefix(b.v, "B", true); }
std::string format_flop_rate(FlopRate r) { return with_prefix(r.v, "FLOP/s", false); }
std::string format_byte_rate(ByteRate r) { return with_prefix(r.v, "B/s", false); }

bool is_iso_date(std::string_view s, bool month_only_ok) {
  auto digits = [&](std::size_t at, std::size_t n) {
    if (at + n > s.size()) return -1;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() != 7 && s.size() != 10) return false;
  if (digits(0, 4) < 0 || s[4] != '-') return false;
  const int month = digits(5, 2);
  if (month < 1 || month > 12) return false;
  if (s.size() == 7) return month_only_ok;
  if (s[7] != '-') return false;
  const int day = digits(8, 2);
  return day >= 1 && day <= 31;
}

std::string count_text(long long n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string format_number(const char* printf_format, double v) {
  char b[64];
  const int n = std::snprintf(b, sizeof b, printf_format, v);
  if (n < 0) return {};
  if (n < static_cast<int>(sizeof b)) return std::string(b, static_cast<std::size_t>(n));
  std::string out(static_cast<std::size_t>(n) + 1, '\0');  // a long format: size it, never cut it
  std::snprintf(out.data(), out.size(), printf_format, v);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string double_quoted(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    // TOML basic string: quote and backslash escaped, control characters as \uXXXX (a newline
    // in a CSV row id would end the string).
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      char u[8];
      std::snprintf(u, sizeof u, "\\u%04X", static_cast<unsigned char>(c));
      o += u;
      continue;
    }
    o += c;
  }
  return o + "\"";
}

double round6(double v) {
  if (v == 0 || !std::isfinite(v)) return v;
  return std::strtod(format_number("%.6g", v).c_str(), nullptr);
}

}  // namespace xpu
