// Capacity contracts and the cash flows of a deal.
//
// A commitment (total USD over years, a ramp of shares per year) is split over systems; each
// share buys device-hours at its price, which deliver FLOPs at the MFU the planner predicts for a
// reference training run, and cover a number of such runs. A deal's flows (equity, cloud spending,
// chip purchases) among parties give each party's net flow per year, and the share of each
// investment that returns to the investor as revenue.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "load/catalog.hpp"
#include "money/compare.hpp"
#include "money/money.hpp"
#include "serve/workload.hpp"
#include "train/report.hpp"

namespace xpu {

// A contract file (examples/contracts/*.toml), as parsed by load/scenario.cpp.
struct CapacityItem {                  // [[capacity]]
  std::string system;
  double share = 1;                    // of each year's dollars
  Pricing pricing = Pricing::on_demand;
  std::string provider;                // only this provider's offers (empty: any)
  std::optional<double> usd_per_device_hour;  // an explicit price (then price_source says where from)
  std::string price_source;
  std::string model;                   // the reference training run: sets MFU and run size
  double tokens = 0;
  int devices = 0;
  long seq_len = 8192, global_batch = 2048;
  // Optional serving profile: when serve_model is given, the tokens the device-hours would serve
  // (input + output) at the best layout's throughput within the SLOs (see best_serving).
  std::string serve_model;
  int serve_input_len = 0, serve_output_len = 0;
  double serve_slo_ttft_ms = 0, serve_slo_tpot_ms = 0;
  std::string serve_weight_precision;  // empty: the chip's 16-bit format
  LengthSpread serve_input_spread, serve_output_spread;  // request lengths around the means (serve --input-spread)
  int line = 0;                        // the [[capacity]] header
  std::map<std::string, int, std::less<>> key_lines;  // each key given: the line of its value
};
struct Flow {                          // [[flow]]
  int year = 0;
  std::string from, to, kind, note;    // kind: equity | cloud | chips | other
  double usd = 0;
  int line = 0;
};
struct ContractFile {
  std::string file, name, source;
  std::string buyer, seller;           // optional: the commitment's dollars flow buyer -> seller ("cloud")
  double total_usd = 0;
  int start_year = 0, years = 0;
  std::vector<double> ramp;            // share of total per year (sums to 1)
  std::vector<CapacityItem> capacity;
  std::vector<Flow> flows;
};

struct CapacityYear {                  // one capacity item in one year
  double usd = 0, device_hours = 0, average_devices = 0, flops = 0, runs = 0;
  double served_tokens = 0, served_output_tokens = 0;  // with a serving profile
};
struct CapacityResult {
  CapacityItem item;
  Rate rate;                           // when the price comes from the catalog
  std::string price_origin;            // the catalog row, or the file's price_source
  bool priced = false;
  std::optional<TrainReport> plan;     // the reference run's plan (MFU, step time)
  double peak_flops_per_device = 0;    // at the plan's precision
  double run_device_hours = 0;         // one reference run
  double run_days = 0;
  std::vector<CapacityYear> years;
  CapacityYear total;
  std::optional<ServingPick> serving;  // with a serving profile: the layout and its tokens/s per device
  std::string note;
};
struct ContractResult {
  std::vector<int> years;              // calendar years
  std::vector<double> usd_by_year;     // the commitment's dollars
  std::vector<CapacityResult> capacity;
  // Cash flows: parties (sorted), net flow (in - out) per party per year, and the sum per year
  // (zero: every flow leaves one party and enters another).
  std::vector<std::string> parties;
  std::vector<int> flow_years;
  std::map<std::string, std::vector<double>> net;   // party -> per flow_years
  std::vector<double> net_sum;                       // per flow_years
  struct Return {
    std::string investor, investee;
    double invested = 0, returned = 0;  // equity investor -> investee; cloud + chips investee -> investor
    double share() const { return invested > 0 ? returned / invested : 0; }
  };
  std::vector<Return> returns;
  std::vector<Flow> all_flows;          // the file's flows plus the commitment's (when buyer/seller given)
  std::vector<std::string> warnings;
};

// Throws InputError (file:line: key) for unknown ids and impossible inputs.
ContractResult evaluate_contract(const Catalog& c, const ContractFile& f, long today, int threads);

}  // namespace xpu
