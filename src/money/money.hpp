// Money: which price a plan pays (a cloud offer of data/prices/, or owning the device per data/tco/),
// the staleness of that price, and the energy and carbon of running devices.
//
// Units: USD, hours for rates (USD per device-hour, as price lists quote), watts, joules, kg CO2.
// Nothing here reads the clock: "today" is a day number the caller passes (the CLI's --as-of).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "spec/hardware.hpp"

namespace xpu {

// The largest amounts the money commands take (beyond them figures print as hundreds of digits or
// round to 0): tokens of a training run, as the budget and contract files cap them; a budget; a
// price per device-hour.
inline constexpr double kMaxTokens = 1e18, kMaxUsd = 1e15, kMaxUsdPerDeviceHour = 1e6, kMinUsdPerDeviceHour = 1e-6;
// "" when a price per device-hour is one a plan can use (kMinUsdPerDeviceHour to
// kMaxUsdPerDeviceHour: beyond them a cost overflows or vanishes); else what is wrong with it.
std::string usd_rate_problem(double usd_per_device_hour);

// How the devices are paid for: one of the offer kinds of data/prices/, or owned (TCO).
enum class Pricing { on_demand, reserved_1y, reserved_3y, capacity_block, spot, owned };
const char* pricing_name(Pricing p);  // "on-demand", ..., "owned"
std::optional<Pricing> parse_pricing(std::string_view s);

inline constexpr double kHoursPerYear = 8766.0;  // 365.25 days
inline constexpr double kHoursPerMonth = kHoursPerYear / 12.0;

// Days since 1970-01-01 of "YYYY-MM-DD", or of the 1st for "YYYY-MM". Throws InputError(where, ...)
// when the text is not such a date.
long day_number(std::string_view date, const std::string& where);
// "YYYY-MM-DD" of a day number.
std::string date_text(long day);

// The cost of owning one device for one hour: purchase and overhead amortised over the site's
// years, plus electricity for TDP x utilisation x PUE.
struct TcoRate {
  double purchase_usd = 0, overhead_usd = 0;   // per device (data/tco/<system>.toml)
  double years = 0;                            // amortisation (site)
  double rated_w = 0, utilisation = 0, pue = 0;  // per device: the rating (DevicePower::rated_w), its utilisation, PUE
  double usd_per_kwh = 0, kg_co2_per_kwh = 0;
  double capex_usd_per_hour = 0;               // (purchase + overhead) / (years x 8766 h)
  double wall_w = 0;                           // rating x utilisation x pue
  double energy_usd_per_hour = 0;              // wall_w / 1000 x usd_per_kwh
  std::string ownership_file, site_file;       // where the figures come from (for origin())
  double usd_per_hour() const { return capex_usd_per_hour + energy_usd_per_hour; }
};
// Empty (with *why) when the system has no data/tco file, the catalog has no site, or the chip's
// TDP is unpublished.
std::optional<TcoRate> tco_rate(const System& s, const Site* site, std::string* why);

// Average power of one device at the wall (TDP x utilisation x PUE), and where it came from.
struct DevicePower {
  double wall_w = 0, tdp_w = 0, utilisation = 0, pue = 0, kg_co2_per_kwh = 0;
  double node_w = 0;  // the node's rated power per device (system [power] node_max / devices_per_node); 0: unpublished
  // The rating the utilisation applies to: the node's share where published (host CPUs, NICs,
  // switches and fans with the accelerators), else the accelerator's TDP alone.
  double rated_w() const { return node_w > 0 ? node_w : tdp_w; }
  std::string origin;  // "data/chips/h100-sxm.toml: power.tdp x data/tco/site.toml: utilisation, pue"
};
std::optional<DevicePower> device_power(const System& s, const Site* site, std::string* why);

// The USD per device-hour a plan pays under one pricing, with where the figure came from.
struct Rate {
  Pricing pricing = Pricing::on_demand;
  bool known = false;
  double usd_per_device_hour = 0;
  std::optional<PriceOffer> offer;  // cloud pricings: the offer used (a copy: a Rate outlives the systems it was read from)
  std::optional<TcoRate> tco;         // owned
  std::string missing;                // why there is no figure (known == false)
  std::string warning;                // a price older than a year at `today`
  // "data/prices/p5.toml: AWS p5.48xlarge reserved-1y 38.00 USD/h for 8 devices, as of 2026-04-28"
  std::string origin() const;
};
// today: a day number (day_number("2026-11-26")): offers older than 365 days get a warning.
// provider: when not empty, only that provider's offers count (e.g. "AWS"); else System::price's
// rule (the latest offer of the kind, any provider).
// Of several offers of the latest date, the cheapest per device-hour, then by provider and instance.
Rate device_hour_rate(const System& s, const Site* site, Pricing p, long today, const std::string& provider = "");

// Throws InputError(where, ...) when provider is not empty and no system's offer is from it (a
// misspelt provider would otherwise leave every system unpriced). Names the providers there are.
void check_provider(const std::map<std::string, System>& systems, const std::string& provider, const std::string& where);

}  // namespace xpu
