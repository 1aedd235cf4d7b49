// data/tco/: what owning a device costs (per system) and the site it runs in (site.toml).
#include <filesystem>

#include "load/catalog.hpp"
#include "load/toml_reader.hpp"
#include "spec/error.hpp"

namespace xpu {

namespace {

void check_date(TomlReader& r, const std::string& key, std::string* out) {
  *out = r.str(key);
  if (!is_iso_date(*out, false)) r.fail(key, "'" + *out + "' is not a date (YYYY-MM-DD)");
}

}  // namespace

Ownership parse_ownership(const DataFile& f, std::string* system_id) {
  const toml::table t = parse_toml_text(f.text, f.path);
  TomlReader r(t, f.path);
  Ownership o;
  o.file = f.path;
  const std::string id = r.str("id");
  const std::string stem = std::filesystem::path(f.path).stem().string();
  if (id != stem) r.fail("id", "'" + id + "' does not match the file name '" + stem + "'");
  o.source = r.str("source");
  check_date(r, "date", &o.date);
  o.purchase_usd = r.quantity("purchase_price", Dimension::money);
  o.purchase_source = r.str("purchase_source");
  o.overhead_usd = r.opt_quantity("overhead", Dimension::money, true).value_or(0.0);
  o.overhead_source = r.opt_str("overhead_source").value_or("");
  if (o.overhead_usd > 0 && o.overhead_source.empty()) r.fail("overhead_source", "missing (required with overhead)");
  o.pue = r.opt_number("pue", 1.0, 3.0);
  r.finish();
  if (system_id) *system_id = id;
  return o;
}

Site parse_site(const DataFile& f) {
  const toml::table t = parse_toml_text(f.text, f.path);
  TomlReader r(t, f.path);
  Site s;
  s.file = f.path;
  if (r.str("id") != "site") r.fail("id", "must be \"site\" in site.toml");
  s.source = r.str("source");
  check_date(r, "date", &s.date);
  s.amortisation_years = r.number("amortisation_years", 0.5, 30);
  s.amortisation_source = r.str("amortisation_source");
  s.utilisation = r.number("utilisation", 0.01, 1.0);
  s.utilisation_source = r.str("utilisation_source");
  s.pue = r.number("pue", 1.0, 3.0);
  s.pue_source = r.str("pue_source");
  s.usd_per_joule = r.quantity("electricity", Dimension::energy_price);
  s.electricity_source = r.str("electricity_source");
  s.kg_co2_per_joule = r.quantity("grid", Dimension::carbon_intensity, true);
  s.grid_source = r.str("grid_source");
  r.finish();
  return s;
}

}  // namespace xpu
