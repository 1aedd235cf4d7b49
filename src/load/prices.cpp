// data/prices/<system-id>.toml: public cloud prices of one catalog system, one [[offer]] each.
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>

#include "load/catalog.hpp"
#include "load/toml_reader.hpp"
#include "money/money.hpp"
#include "spec/error.hpp"

namespace xpu {

namespace {

constexpr std::array<std::string_view, 5> kKinds = {"on-demand", "reserved-1y", "reserved-3y", "capacity-block", "spot"};

bool is_date(const std::string& s, bool day_required) { return is_iso_date(s, !day_required); }

PriceOffer parse_offer(TomlReader& r, const std::string& file) {
  PriceOffer o;
  o.file = file;
  o.kind = r.str("kind");
  if (std::find(kKinds.begin(), kKinds.end(), o.kind) == kKinds.end())
    r.fail("kind", "unknown kind '" + o.kind + "' (on-demand, reserved-1y, reserved-3y, capacity-block, spot)");
  o.provider = r.str("provider");
  o.instance = r.str("instance");
  o.region = r.opt_str("region").value_or("");
  o.devices = static_cast<int>(r.integer("devices", 1));
  o.usd_per_hour = r.quantity("price", Dimension::money_rate);
  if (const std::string why = usd_rate_problem(o.usd_per_hour / o.devices); !why.empty()) r.fail("price", why + " (per device)");
  o.as_of = r.str("as_of");
  if (!is_date(o.as_of, false)) r.fail("as_of", "'" + o.as_of + "' is not a date (YYYY-MM or YYYY-MM-DD)");
  o.source = r.str("source");
  o.note = r.opt_str("note").value_or("");
  r.finish();
  return o;
}

}  // namespace

PriceQuoteTarget price_quote_target(const std::string& q) {
  const auto eq = q.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == q.size())
    throw InputError("--price", "'" + q + "' is not SYSTEM[:KIND]=USD per device-hour (e.g. gb200-nvl72=6.5)");
  PriceQuoteTarget t{q.substr(0, eq), "on-demand"};
  if (const auto colon = t.system.find(':'); colon != std::string::npos) {
    t.kind = t.system.substr(colon + 1);
    t.system.resize(colon);
  }
  return t;
}

void apply_price_quotes(Catalog& c, const std::vector<std::string>& quotes, const std::string& as_of) {
  std::set<std::string> seen;
  for (const std::string& q : quotes) {
    const auto eq = q.find('=');
    auto [id, kind] = price_quote_target(q);
    if (std::find(kKinds.begin(), kKinds.end(), kind) == kKinds.end())
      throw InputError("--price", "'" + q + "': unknown kind '" + kind +
                                      "' (on-demand, reserved-1y, reserved-3y, capacity-block, spot)");
    auto sys = c.systems.find(id);
    if (sys == c.systems.end()) throw InputError("--price", "'" + q + "': unknown system '" + id + "' (xpuplan catalog list)");
    if (!seen.insert(id + ":" + kind).second) throw InputError("--price", "'" + q + "': " + id + " " + kind + " quoted twice");
    std::string value = q.substr(eq + 1);
    // Spaces around the price are not part of it ("p5=3 " is 3 USD per device-hour).
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.erase(0, 1);
    // A bare number is USD per device-hour; anything else goes through the units parser ("6.5 USD/h").
    double usd = 0;
    std::size_t used = 0;
    try {
      usd = std::stod(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    // Decimal only: stod also reads hexadecimal ("0x10"), which the units parser refuses.
    if (used != value.size() || value.find_first_of("xX") != std::string::npos) {
      try {
        usd = parse_quantity(value, Dimension::money_rate);
      } catch (const std::exception& e) {  // the units parser's message: what is wrong with the value
        throw InputError("--price", "'" + q + "': " + e.what());
      }
    }
    if (!(usd > 0) || !std::isfinite(usd)) throw InputError("--price", "'" + q + "': the price must be a positive, finite USD rate");
    if (const std::string why = usd_rate_problem(usd); !why.empty()) throw InputError("--price", "'" + q + "': " + why);
    auto& offers = sys->second.prices;
    offers.erase(std::remove_if(offers.begin(), offers.end(), [&](const PriceOffer& o) { return o.kind == kind; }),
                 offers.end());
    PriceOffer o;
    o.kind = kind;
    o.provider = "quote";
    o.instance = "--price";
    o.file = "--price";
    o.devices = 1;
    o.usd_per_hour = usd;
    o.as_of = as_of;
    o.source = "command line: --price " + q;
    o.note = "a price the user gave, per device-hour";
    offers.push_back(o);
  }
}

std::vector<PriceOffer> parse_prices(const DataFile& f, std::string* system_id) {
  const toml::table t = parse_toml_text(f.text, f.path);
  TomlReader r(t, f.path);
  const std::string id = r.str("id");
  // The id must match the file name, as for every other catalog file.
  const std::string stem = std::filesystem::path(f.path).stem().string();
  if (id != stem) r.fail("id", "'" + id + "' does not match the file name '" + stem + "'");
  (void)r.str("source");
  const std::string date = r.str("date");
  if (!is_date(date, true)) r.fail("date", "'" + date + "' is not a date (YYYY-MM-DD)");
  // TomlReader has no arrays of tables: every other top-level key is checked here.
  static const std::set<std::string, std::less<>> known = {"id", "source", "date", "offer"};
  for (const auto& [k, v] : t)
    if (!known.contains(k.str())) throw InputError(f.path + ": " + std::string(k.str()), "unknown key");

  const toml::node* n = t.get("offer");
  if (!n) r.fail("offer", "missing (required): at least one [[offer]]");
  const toml::array* arr = n->as_array();
  if (!arr || arr->empty() || !arr->is_array_of_tables()) r.fail("offer", "must be one or more [[offer]] tables");
  std::vector<PriceOffer> out;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    TomlReader o(*arr->get(i)->as_table(), f.path, "offer[" + std::to_string(i) + "].");
    out.push_back(parse_offer(o, f.path));
  }
  if (system_id) *system_id = id;
  return out;
}

}  // namespace xpu
