// One training job (a model, a number of tokens) across systems and vendors, side by side: per
// system the fastest plan the search finds, the days it takes, what it costs under one pricing, the
// energy and carbon, and dollars per effective PFLOP/s-day; ranked.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "money/money.hpp"
#include "spec/model.hpp"
#include "train/report.hpp"

namespace xpu {

enum class CompareRank { cost, time };

struct CompareRequest {
  long seq_len = 8192;          // tokens per sequence
  long global_batch = 2048;     // sequences per step
  double tokens = 0;            // tokens to train on
  std::optional<int> devices;   // fixed device count, or
  std::optional<double> deadline_days;  // the fewest devices (node x 2^k) that finish in time
  int max_devices = 131072;     // deadline mode: the largest count tried
  Pricing pricing = Pricing::on_demand;
  std::string provider;         // only this provider's offers (empty: the latest offer of any)
  CompareRank rank = CompareRank::cost;
  long today = 0;               // day number, for stale-price warnings
  int threads = 1;
  std::optional<Precision> precision;  // held fixed when given
};

inline constexpr double kNoFit = -1, kSkipped = -2;

struct CompareRow {
  std::string system_id;
  bool planned = false;         // a plan fits
  std::string note;             // why there is no plan, no price or no energy figure
  TrainReport plan;             // the fastest plan found (valid when planned)
  int devices = 0;
  double steps = 0, days = 0, device_hours = 0;
  double effective_pflops_days = 0;  // model FLOPs of the whole run / (1e15 x 86400)
  Rate rate;
  std::optional<double> usd, usd_per_pflops_day;
  std::optional<DevicePower> power;
  std::optional<double> energy_mwh, co2_t;
  bool meets_deadline = true;   // deadline mode only
  // Deadline mode: (devices, days), days = kNoFit when no plan fits, kSkipped when the count could
  // not meet the deadline even at 100% of peak (not searched).
  std::vector<std::pair<int, double>> tried;
};

// The fastest plan of a model on `devices` devices (search over every free layout knob), or empty
// when none fits.
// precision: held fixed when given (else searched, fp8/fp4 included where the chip has them).
std::optional<TrainReport> fastest_plan(const Model& m, const System& s, long seq_len, long global_batch, int devices,
                                        int threads, std::optional<Precision> precision = std::nullopt);

// Rows ranked: planned rows that meet the deadline first (by USD when --rank cost and priced,
// then by days), then rows that miss it, then systems with no plan; ties by system id.
// Throws InputError for a bad request (no tokens, neither or both of devices and deadline).
std::vector<CompareRow> compare(const Model& m, const std::vector<System>& systems, const Site* site,
                                const CompareRequest& req);

// The hook for `compare --serve`: serving (src/serve) is not part of this build, so this throws
// InputError("--serve", ...) saying so. It is the one place that will call the serving model.
void compare_serving_unavailable();

}  // namespace xpu
