// Money to compute: what a sum buys (device-hours per system and pricing, training runs, months of a
// fleet), and runway: how many months a budget lasts for a standing fleet plus a training schedule.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "load/catalog.hpp"
#include "money/money.hpp"
#include "train/report.hpp"

namespace xpu {

// A fleet file (examples/budget/*.toml), as parsed by load/scenario.cpp.
struct FleetItem {          // [[fleet]]: devices running around the clock (serving, research)
  std::string name, system, note;
  int devices = 0;
  Pricing pricing = Pricing::on_demand;
  std::string provider;                // only this provider's offers (empty: any)
  int line = 0;                        // the [[fleet]] header
  int system_line = 0;                 // the system key's line
  int provider_line = 0;               // the provider key's line (0: not given)
};
struct TrainingItem {       // [[training]]: a training run repeated runs_per_year times
  std::string name, model, system, note;
  int devices = 0;
  double tokens = 0;
  double runs_per_year = 1;          // 0: price one run, outside the runway
  long seq_len = 8192, global_batch = 2048;
  Pricing pricing = Pricing::on_demand;
  std::string provider;                // only this provider's offers (empty: any)
  int line = 0;                        // the [[training]] header
  int system_line = 0, model_line = 0; // the system and model keys' lines
  int provider_line = 0;               // the provider key's line (0: not given)
};
struct BudgetFile {
  std::string file, name, source;
  std::optional<double> usd;          // the budget (--usd overrides)
  std::vector<FleetItem> fleet;
  std::vector<TrainingItem> training;
};

struct BudgetLine {
  std::string kind;                    // "fleet" | "training"
  std::string name, system;
  int devices = 0;
  Rate rate;
  std::optional<double> usd_per_month; // the line's burn
  // training only:
  std::optional<TrainReport> plan;     // empty when no plan fits
  double days_per_run = 0, runs_per_year = 0;
  std::optional<double> usd_per_run;
  std::optional<double> runs_affordable;  // budget / usd_per_run
  std::string note;
};

struct DeviceHoursBought {             // the whole budget spent on one system at one pricing
  std::string system;
  Rate rate;
  double device_hours = 0, device_years = 0;
};

struct BudgetResult {
  double usd = 0;
  std::vector<BudgetLine> lines;
  std::vector<DeviceHoursBought> buys;       // every system named, every pricing with a figure
  std::optional<double> fleet_usd_per_month; // fleet lines only
  std::optional<double> fleet_months;        // budget / fleet burn
  std::optional<double> usd_per_month;       // fleet + training schedule
  std::optional<double> runway_months;       // budget / burn
  std::vector<double> balance;               // USD left at the end of month 0, 1, ... (until <= 0, 600 at most)
  std::vector<std::string> warnings;         // stale prices, lines without a price
};

// systems: extra system ids whose device-hours to list (--systems), besides those of the file.
// Throws InputError for unknown ids, a non-positive budget, or a training run with no plan inputs.
BudgetResult plan_budget(const Catalog& c, const BudgetFile& f, double usd, const std::vector<std::string>& systems,
                         long today, int threads);

}  // namespace xpu
