#include "money/money.hpp"

#include <array>
#include <set>
#include <tuple>
#include <chrono>
#include <cstdio>

#include "spec/error.hpp"

namespace xpu {

namespace {
constexpr std::array<std::pair<Pricing, const char*>, 6> kPricings = {{{Pricing::on_demand, "on-demand"},
                                                                       {Pricing::reserved_1y, "reserved-1y"},
                                                                       {Pricing::reserved_3y, "reserved-3y"},
                                                                       {Pricing::capacity_block, "capacity-block"},
                                                                       {Pricing::spot, "spot"},
                                                                       {Pricing::owned, "owned"}}};

constexpr auto& fmt = format_number;
}  // namespace

std::string usd_rate_problem(double v) {
  if (v >= kMinUsdPerDeviceHour && v <= kMaxUsdPerDeviceHour) return "";
  return "must be between " + format_number("%g", kMinUsdPerDeviceHour) + " and " + format_number("%g", kMaxUsdPerDeviceHour) +
         " USD per device-hour, got " + format_number("%g", v);
}

const char* pricing_name(Pricing p) {
  for (const auto& [k, n] : kPricings)
    if (k == p) return n;
  return "?";
}

std::optional<Pricing> parse_pricing(std::string_view s) {
  for (const auto& [k, n] : kPricings)
    if (s == n) return k;
  return std::nullopt;
}

long day_number(std::string_view date, const std::string& where) {
  int y = 0;
  unsigned m = 0, d = 1;
  char tail = 0;
  const std::string t(date);
  const bool day = std::sscanf(t.c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &tail) == 3 && t.size() == 10;
  const bool month = !day && std::sscanf(t.c_str(), "%4d-%2u%c", &y, &m, &tail) == 2 && t.size() == 7;
  if (!day) d = 1;
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{m}, std::chrono::day{d}};
  if ((!day && !month) || !ymd.ok()) throw InputError(where, "'" + t + "' is not a date (YYYY-MM-DD or YYYY-MM)");
  return std::chrono::sys_days{ymd}.time_since_epoch().count();
}

std::string date_text(long day) {
  const std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{day}}};
  char b[16];
  std::snprintf(b, sizeof b, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return b;
}

std::optional<DevicePower> device_power(const System& s, const Site* site, std::string* why) {
  if (!site) {
    if (why) *why = "no site assumptions (data/tco/site.toml)";
    return std::nullopt;
  }
  const auto tdp = s.tdp();
  if (!tdp && !s.node_power) {
    if (why) *why = "no published TDP for " + s.chip.id;
    return std::nullopt;
  }
  DevicePower p;
  p.tdp_w = tdp ? tdp->v : 0.0;
  if (s.node_power) p.node_w = s.node_power->v / s.devices_per_node;
  p.utilisation = site->utilisation;
  p.pue = s.ownership && s.ownership->pue ? *s.ownership->pue : site->pue;
  p.kg_co2_per_kwh = site->kg_co2_per_joule * kJoulesPerKwh;
  p.wall_w = p.rated_w() * p.utilisation * p.pue;
  const std::string rating =
      s.node_power ? s.file + ": power.node_max / devices_per_node " + std::to_string(s.devices_per_node) + " (the whole node)"
                   : s.chip.file + ": power.tdp" + (s.devices_per_chip > 1 ? " / " + std::to_string(s.devices_per_chip) : "") +
                         " (the accelerator alone: the system file gives no node power)";
  p.origin = rating + " x " + site->file + ": utilisation x " +
             (s.ownership && s.ownership->pue ? s.ownership->file : site->file) + ": pue; CO2 at " + site->file + ": grid";
  return p;
}

std::optional<TcoRate> tco_rate(const System& s, const Site* site, std::string* why) {
  if (!s.ownership) {
    if (why) *why = "no purchase price (no data/tco/" + s.id + ".toml: not sold, or no public price)";
    return std::nullopt;
  }
  const auto pw = device_power(s, site, why);
  if (!pw) return std::nullopt;
  TcoRate t;
  t.purchase_usd = s.ownership->purchase_usd;
  t.overhead_usd = s.ownership->overhead_usd;
  t.years = site->amortisation_years;
  t.rated_w = pw->rated_w();
  t.utilisation = pw->utilisation;
  t.pue = pw->pue;
  t.usd_per_kwh = site->usd_per_joule * kJoulesPerKwh;
  t.kg_co2_per_kwh = pw->kg_co2_per_kwh;
  t.capex_usd_per_hour = (t.purchase_usd + t.overhead_usd) / (t.years * kHoursPerYear);
  t.wall_w = pw->wall_w;
  t.energy_usd_per_hour = t.wall_w / 1000.0 * t.usd_per_kwh;
  t.ownership_file = s.ownership->file;
  t.site_file = site->file;
  return t;
}

std::string Rate::origin() const {
  if (!known) return missing;
  if (offer)
    return offer->file + ": " + offer_label(offer->provider, offer->instance) + " " + offer->kind + " " +
           fmt("%.4g", offer->usd_per_hour) + " USD/h for " + count_text(offer->devices, "device", "devices") + ", as of " +
           offer->as_of;
  if (tco)
    return "owned: (" + fmt("%.0f", tco->purchase_usd) + " + " + fmt("%.0f", tco->overhead_usd) + " USD) / (" +
           fmt("%g", tco->years) + " y x 8766 h) + " + fmt("%.0f", tco->rated_w) + " W x " + fmt("%g", tco->utilisation) +
           " x PUE " + fmt("%g", tco->pue) + " x " + fmt("%.4g", tco->usd_per_kwh) + " USD/kWh (" + tco->ownership_file +
           ": purchase_price, overhead (pue where it overrides the site's); " + tco->site_file + ": amortisation_years, utilisation, pue, electricity; the W: the system file's power.node_max per device, else the chip file's power.tdp)";
  return "";
}

Rate device_hour_rate(const System& s, const Site* site, Pricing p, long today, const std::string& provider) {
  Rate r;
  r.pricing = p;
  if (p == Pricing::owned) {
    std::string why;
    r.tco = tco_rate(s, site, &why);
    if (!r.tco) {
      r.missing = "no owned cost: " + why;
      return r;
    }
    r.known = true;
    r.usd_per_device_hour = r.tco->usd_per_hour();
    return r;
  }
  // The latest offer dated on or before the as-of date (a later one did not exist yet); when every
  // offer is later, the earliest, with a warning below. Offers of one date: the cheapest per
  // device-hour (what a buyer takes), then by provider and instance, whatever the files' order.
  auto before = [](const PriceOffer& a, const PriceOffer& b) {
    const double x = a.usd_per_device_hour(), y = b.usd_per_device_hour();
    return x != y ? x < y : std::tie(a.provider, a.instance) < std::tie(b.provider, b.instance);
  };
  const PriceOffer* earliest = nullptr;
  for (const auto& o : s.prices) {
    // A --price quote (provider "quote") replaced every offer of its kind: it is the price whatever
    // provider the request names.
    if (o.kind != pricing_name(p) || (!provider.empty() && o.provider != provider && o.provider != "quote")) continue;
    if (day_number(o.as_of, o.file + ": as_of") <= today) {
      if (!r.offer || o.as_of > r.offer->as_of || (o.as_of == r.offer->as_of && before(o, *r.offer))) r.offer = o;
    } else if (!earliest || o.as_of < earliest->as_of || (o.as_of == earliest->as_of && before(o, *earliest))) {
      earliest = &o;
    }
  }
  const bool from_later = !r.offer && earliest;
  if (from_later) r.offer = *earliest;
  if (!r.offer) {
    r.missing = std::string("no ") + pricing_name(p) + " price of " + s.id + (provider.empty() ? "" : " from " + provider) +
                (s.standalone ? std::string() : std::string(" in data/prices/")) + " (" +
                s.no_price_hint(p == Pricing::on_demand ? "" : std::string(":") + pricing_name(p)) + ")";
    return r;
  }
  r.known = true;
  r.usd_per_device_hour = r.offer->usd_per_device_hour();
  const long age = today - day_number(r.offer->as_of, r.offer->file + ": as_of");
  if (from_later)
    r.warning = std::string(pricing_name(p)) + " price of " + s.id + " (" + r.offer->instance + ") is from " +
                r.offer->as_of + ", after " + date_text(today) + ": no offer in the catalog is dated earlier";
  else if (age > 365)
    r.warning = std::string(pricing_name(p)) + " price of " + s.id + " (" + r.offer->instance + ") is from " +
                r.offer->as_of + ", " + fmt("%.1f", age / 365.25) + " years before " + date_text(today);
  return r;
}

void check_provider(const std::map<std::string, System>& systems, const std::string& provider, const std::string& where) {
  if (provider.empty()) return;
  std::set<std::string> known;
  for (const auto& [id, s] : systems)
    for (const auto& o : s.prices)
      if (o.provider != "quote") known.insert(o.provider);
  if (known.count(provider)) return;
  std::string names;
  for (const auto& n : known) names += (names.empty() ? "" : ", ") + n;
  throw InputError(where, "'" + provider + "' is the provider of no offer in the catalog (" + (names.empty() ? "none" : names) + ")");
}

}  // namespace xpu
