#include "money/budget.hpp"

#include <cmath>
#include <set>

#include "money/compare.hpp"
#include "spec/error.hpp"

namespace xpu {

namespace {
constexpr Pricing kAll[] = {Pricing::on_demand, Pricing::reserved_1y, Pricing::reserved_3y, Pricing::capacity_block,
                            Pricing::spot, Pricing::owned};

// A catalog id named in the file, or an InputError naming the file, line and key.
template <class Map>
const auto& lookup(const Map& map, const std::string& id, const std::string& file, int line, const std::string& key,
                   const char* what) {
  auto it = map.find(id);
  if (it == map.end())
    throw InputError(file + ":" + std::to_string(line) + ": " + key, std::string("unknown ") + what + " '" + id + "'");
  return it->second;
}

void warn(BudgetResult& r, const std::string& w) {
  if (w.empty()) return;
  for (const auto& x : r.warnings)
    if (x == w) return;
  r.warnings.push_back(w);
}
}  // namespace

BudgetResult plan_budget(const Catalog& c, const BudgetFile& f, double usd, const std::vector<std::string>& systems,
                         long today, int threads) {
  if (!(usd > 0 && usd <= kMaxUsd)) throw InputError("--usd", "the budget must be a positive amount of USD, at most 1e15");
  const Site* site = c.site ? &*c.site : nullptr;
  BudgetResult r;
  r.usd = usd;
  std::vector<std::string> named;
  auto name_system = [&](const std::string& id) {
    for (const auto& n : named)
      if (n == id) return;
    named.push_back(id);
  };
  bool all_priced = true;
  double fleet = 0, total = 0;
  // Keys named as the parser names them: fleet[i].system (its errors use the same form).
  auto key = [](const char* table, std::size_t i, const char* k) { return std::string(table) + "[" + std::to_string(i) + "]." + k; };
  for (std::size_t i = 0; i < f.fleet.size(); ++i) {
    const FleetItem& it = f.fleet[i];
    const System& s = lookup(c.systems, it.system, f.file, it.system_line ? it.system_line : it.line, key("fleet", i, "system"), "system");
    name_system(s.id);
    check_provider(c.systems, it.provider, f.file + ":" + std::to_string(it.provider_line) + ": " + key("fleet", i, "provider"));
    BudgetLine l;
    l.kind = "fleet";
    l.name = it.name;
    l.system = s.id;
    l.devices = it.devices;
    l.rate = device_hour_rate(s, site, it.pricing, today, it.provider);
    warn(r, l.rate.warning);
    if (l.rate.known) {
      l.usd_per_month = it.devices * l.rate.usd_per_device_hour * kHoursPerMonth;
      fleet += *l.usd_per_month;
      total += *l.usd_per_month;
    } else {
      all_priced = false;
      l.note = l.rate.missing;
    }
    r.lines.push_back(std::move(l));
  }
  const bool fleet_priced = all_priced;
  for (std::size_t i = 0; i < f.training.size(); ++i) {
    const TrainingItem& it = f.training[i];
    const System& s = lookup(c.systems, it.system, f.file, it.system_line ? it.system_line : it.line, key("training", i, "system"), "system");
    const Model& m = lookup(c.models, it.model, f.file, it.model_line ? it.model_line : it.line, key("training", i, "model"), "model");
    name_system(s.id);
    check_provider(c.systems, it.provider, f.file + ":" + std::to_string(it.provider_line) + ": " + key("training", i, "provider"));
    BudgetLine l;
    l.kind = "training";
    l.name = it.name;
    l.system = s.id;
    l.devices = it.devices;
    l.runs_per_year = it.runs_per_year;
    l.rate = device_hour_rate(s, site, it.pricing, today, it.provider);
    warn(r, l.rate.warning);
    l.plan = fastest_plan(m, s, it.seq_len, it.global_batch, it.devices, threads);
    // A line with no runs a year prices one run without adding to the burn.
    const bool in_runway = it.runs_per_year > 0;
    if (!l.plan) {
      if (in_runway) all_priced = false;
      l.note = "no plan of " + m.id + " fits on " + count_text(it.devices, "device", "devices");
    } else {
      const double steps = std::ceil(it.tokens / (static_cast<double>(it.seq_len) * it.global_batch));
      const double hours = steps * l.plan->step_time / 3600.0;
      l.days_per_run = hours / 24.0;
      if (l.rate.known) {
        l.usd_per_run = hours * it.devices * l.rate.usd_per_device_hour;
        l.runs_affordable = usd / *l.usd_per_run;
        if (in_runway) {  // a run priced once is on no monthly schedule: its usd_per_month stays null
          l.usd_per_month = *l.usd_per_run * it.runs_per_year / 12.0;
          total += *l.usd_per_month;
        }
      } else {
        if (in_runway) all_priced = false;
        l.note = l.rate.missing;
      }
    }
    r.lines.push_back(std::move(l));
  }
  for (const auto& id : systems) name_system(c.system(id).id);
  for (const auto& id : named) {
    const System& s = c.system(id);
    for (Pricing p : kAll) {
      Rate rate = device_hour_rate(s, site, p, today);
      if (!rate.known) continue;
      warn(r, rate.warning);
      DeviceHoursBought b;
      b.system = id;
      b.rate = rate;
      b.device_hours = usd / rate.usd_per_device_hour;
      b.device_years = b.device_hours / kHoursPerYear;
      r.buys.push_back(std::move(b));
    }
  }
  if (!f.fleet.empty() && fleet_priced) {
    r.fleet_usd_per_month = fleet;
    r.fleet_months = usd / fleet;
  }
  if (!r.lines.empty() && all_priced && total > 0) {
    r.usd_per_month = total;
    r.runway_months = usd / total;
    double left = usd;
    r.balance.push_back(left);
    while (left > 0 && r.balance.size() <= 600) {
      left -= total;
      r.balance.push_back(left);
    }
  }
  for (const auto& l : r.lines)
    if (!l.note.empty()) warn(r, l.kind + " '" + l.name + "': " + l.note + " (no runway without it: every line counts toward the monthly burn)");
  return r;
}

}  // namespace xpu
