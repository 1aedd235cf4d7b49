// Quantities with their dimension in the type, and the one place where unit strings are parsed.
//
// Every quantity is stored in SI base units (seconds, bytes, FLOP, FLOP/s, bytes/s, watts), so
// arithmetic never needs a conversion factor. Distinct types keep a latency from being passed as a
// bandwidth: Bytes / ByteRate gives Seconds, Flops / FlopRate gives Seconds, and nothing else mixes.
#pragma once

#include <compare>
#include <stdexcept>
#include <string>
#include <string_view>

namespace xpu {

template <class Tag>
struct Quantity {
  double v = 0.0;  // value in the SI base unit of Tag
  constexpr Quantity() = default;
  constexpr explicit Quantity(double x) : v(x) {}
  constexpr Quantity& operator+=(Quantity o) { v += o.v; return *this; }
  constexpr Quantity& operator-=(Quantity o) { v -= o.v; return *this; }
  friend constexpr Quantity operator+(Quantity a, Quantity b) { return Quantity{a.v + b.v}; }
  friend constexpr Quantity operator-(Quantity a, Quantity b) { return Quantity{a.v - b.v}; }
  friend constexpr Quantity operator*(Quantity a, double k) { return Quantity{a.v * k}; }
  friend constexpr Quantity operator*(double k, Quantity a) { return Quantity{a.v * k}; }
  friend constexpr Quantity operator/(Quantity a, double k) { return Quantity{a.v / k}; }
  friend constexpr double operator/(Quantity a, Quantity b) { return a.v / b.v; }
  friend constexpr auto operator<=>(Quantity a, Quantity b) = default;
};

struct SecondsTag {};
struct BytesTag {};
struct FlopsTag {};
struct FlopRateTag {};
struct ByteRateTag {};
struct WattsTag {};
struct UsdPerHourTag {};

using Seconds = Quantity<SecondsTag>;    // s
using Bytes = Quantity<BytesTag>;        // B
using Flops = Quantity<FlopsTag>;        // FLOP
using FlopRate = Quantity<FlopRateTag>;  // FLOP/s
using ByteRate = Quantity<ByteRateTag>;  // B/s
using Watts = Quantity<WattsTag>;        // W
using UsdPerHour = Quantity<UsdPerHourTag>;  // USD/h (money rate; dollars are not SI, hours are kept as written)

constexpr Seconds operator/(Bytes b, ByteRate r) { return Seconds{b.v / r.v}; }
constexpr Seconds operator/(Flops f, FlopRate r) { return Seconds{f.v / r.v}; }

// What a unit string measures.
enum class Dimension { time, bytes, flop_rate, byte_rate, power, money_rate, money, energy_price, carbon_intensity,
                       dimensionless };
const char* dimension_name(Dimension d);

// Thrown for a malformed quantity; the loader adds the file and key.
class UnitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses "<number> <unit>" into the SI base value of `expected`.
// Accepted: time s ms us ns; bytes B, KB MB GB TB PB, KiB MiB GiB TiB, bits b Kb Mb Gb Tb;
// FLOP/s with k M G T P E prefixes; byte rates B/s and b/s with decimal or binary prefixes;
// power W kW MW; money rates USD/h (also k/M prefixes: "1.2 MUSD/h"); money USD (k M G prefixes: "38 GUSD");
// energy prices USD/kWh or USD/MWh (stored as USD per joule); carbon intensity kgCO2/kWh, gCO2/kWh or
// tCO2/MWh (stored as kg CO2 per joule). Throws UnitError naming the problem.
// Refuses a value whose magnitude in SI units is above kQuantityMax or, when not 0, below
// 1 / kQuantityMax.
inline constexpr double kQuantityMax = 1e24;
// v within that range (finite; 0, or a magnitude from 1 / kQuantityMax to kQuantityMax).
inline bool in_quantity_range(double v) {
  const double a = v < 0 ? -v : v;
  return v == 0 || (a <= kQuantityMax && a >= 1 / kQuantityMax);
}
double parse_quantity(std::string_view text, Dimension expected);

// A calendar date as the data files write it: YYYY-MM-DD (month 01-12, day 01-31), or YYYY-MM
// when month_only_ok.
bool is_iso_date(std::string_view s, bool month_only_ok);

inline Seconds parse_seconds(std::string_view t) { return Seconds{parse_quantity(t, Dimension::time)}; }
inline Bytes parse_bytes(std::string_view t) { return Bytes{parse_quantity(t, Dimension::bytes)}; }
inline FlopRate parse_flop_rate(std::string_view t) { return FlopRate{parse_quantity(t, Dimension::flop_rate)}; }
inline ByteRate parse_byte_rate(std::string_view t) { return ByteRate{parse_quantity(t, Dimension::byte_rate)}; }
inline Watts parse_watts(std::string_view t) { return Watts{parse_quantity(t, Dimension::power)}; }
// One kWh in joules: energy prices and carbon intensities are stored per joule.
inline constexpr double kJoulesPerKwh = 3.6e6;

inline UsdPerHour parse_usd_per_hour(std::string_view t) { return UsdPerHour{parse_quantity(t, Dimension::money_rate)}; }

// Human formatting with a sensible prefix and 3 significant digits ("989 TFLOP/s", "3.35 TB/s",
// "80.0 GiB", "1.25 ms").
std::string format_seconds(Seconds s);
// One number through a printf format ("%.3f", "%.1f%%", ...).
std::string format_number(const char* printf_format, double v);
// "1 device", "8 devices": a count with its noun in the right number.
std::string count_text(long long n, const char* one, const char* many);
// s in double quotes with quotes and backslashes escaped (a TOML basic string, a gnuplot string).
std::string double_quoted(const std::string& s);
// v rounded to 6 significant digits (what the JSON reports print, so output is stable).
double round6(double v);
std::string format_bytes(Bytes b);  // binary prefixes (GiB), as memory is reported
std::string format_flop_rate(FlopRate r);
std::string format_byte_rate(ByteRate r);

}  // namespace xpu
