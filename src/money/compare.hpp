// One training job (a model, a number of tokens) across systems and vendors, side by side: per
// system the fastest plan the search finds, the days it takes, what it costs under one pricing, the
// energy and carbon, and dollars per effective PFLOP/s-day; ranked.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "money/money.hpp"
#include "serve/serve.hpp"
#include "spec/model.hpp"
#include "train/report.hpp"

namespace xpu {

enum class CompareRank { cost, time };

struct CompareRequest {
  long seq_len = 8192;          // tokens per sequence
  long global_batch = 2048;     // sequences per step
  double tokens = 0;            // tokens to train on
  std::optional<int> devices;   // fixed device count, or
  std::optional<double> deadline_days;  // the fewest devices (node x 2^k, and NVL72-style domain x 2^k) that finish in time
  int max_devices = 131072;     // deadline mode: the largest count tried
  Pricing pricing = Pricing::on_demand;
  std::string provider;         // only this provider's offers (empty: the latest offer of any)
  CompareRank rank = CompareRank::cost;
  long today = 0;               // day number, for stale-price warnings
  int threads = 1;
  std::optional<Precision> precision;  // held fixed when given
  std::optional<int> mtp_layers;       // MTP modules trained (--mtp-layers); the model's own if not given
};

inline constexpr double kNoFit = -1, kSkipped = -2;

struct CompareRow {
  std::string system_id;
  int rank = 0;                 // place by the ranking figure, 1 = best; 0: unranked (no plan, a missed deadline, or no price when ranked by cost)
  std::string calibration_file, calibration_status;  // the chip's efficiencies: "fitted" or "assumed"
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
// precision: held fixed when given (else chosen as train chooses it: bf16, or fp8 where faster).
std::optional<TrainReport> fastest_plan(const Model& m, const System& s, long seq_len, long global_batch, int devices,
                                        int threads, std::optional<Precision> precision = std::nullopt, std::optional<int> mtp_layers = std::nullopt);

// Rows ranked: planned rows that meet the deadline first (by USD when --rank cost and priced,
// then by days), then rows that miss it, then systems with no plan; ties by system id.
// Throws InputError for a bad request (no tokens, neither or both of devices and deadline).
std::vector<CompareRow> compare(const Model& m, const std::vector<System>& systems, const Site* site,
                                const CompareRequest& req);

// ---- compare --serve: one traffic profile served on each system ----

// The traffic: tokens per day (input + output), split by the request shape input_len:output_len,
// and the latency SLOs (0: none).
struct ServeCompareRequest {
  double tokens_per_day = 0;
  int input_len = 0, output_len = 0;
  LengthSpread input_spread, output_spread;  // request lengths around the means (serve --input-spread)
  double slo_ttft_s = 0, slo_tpot_s = 0;  // p99
  std::optional<Quant> weights;           // held fixed when given (else the chip's 16-bit format)
  Speculation spec;                       // speculative decoding on every system (off unless given)
  int requests = 512;                     // simulated per candidate, at least (best_serving sizes the peak)
  Pricing pricing = Pricing::on_demand;
  std::string provider;
  long today = 0;
};

// The best serving layout of a model on a system for one request shape: searched (tp, replicas,
// batch cap) on one node (more nodes when the model does not fit one), maximising output tokens/s
// per device. Without SLOs the workload is offline (all requests queued: the peak throughput),
// each candidate simulating at least `requests` and at least kPeakWaves times the requests its
// replicas run at once (ServeSearchOptions::peak_waves), so that start-up and drain do not set
// the peak; with SLOs it is Poisson arrivals at 90%, 80%, ... 10% of that offline peak's
// requests/s, as many requests as the peak's, and the highest load at which the best layout's
// p99 TTFT and TPOT meet the SLOs is kept.
struct ServingPick {
  bool ok = false;         // a layout meets the SLOs
  std::string note;        // why not
  ServeReport report;      // the chosen layout and its simulated figures
  int search_devices = 0;  // devices the search ran on
  std::string workload;    // "offline, 32768 requests" or "poisson 12.3 req/s (70% of the offline peak), 32768 requests"
};
ServingPick best_serving(const Model& m, const System& s, int input_len, int output_len, double slo_ttft_s,
                         double slo_tpot_s, std::optional<Quant> weights, int requests = 512,
                         const LengthSpread& input_spread = {}, const LengthSpread& output_spread = {},
                         const Speculation& spec = {});

struct ServeCompareRow {
  std::string system_id;
  int rank = 0;                 // place by USD per month, 1 = best; 0: unranked (not served, or no price)
  bool served = false;          // a layout meets the SLOs
  std::string note;             // why not served, or why not priced
  ServingPick pick;
  double required_output_tps = 0;  // the traffic's output tokens/s
  int replica_devices = 0;      // tp x pp of the chosen layout
  int replicas = 0, devices = 0;   // whole replicas covering the traffic
  double utilisation = 0;       // required / (devices x tokens/s per device)
  Rate rate;
  std::optional<double> usd_per_month, usd_per_m_input, usd_per_m_output, usd_per_m_tokens;
};

// Per system: devices = replicas x (tp x pp), replicas = ceil(required output tokens/s / output
// tokens/s of one replica); USD per month = devices x USD/device-hour x kHoursPerMonth; the month's
// dollars split into input and output by the prefill share of busy time. Ranked: served and
// priced by USD per month, then served without a price, then not served; ties by system id.
// Throws InputError (naming the flag) for a bad request.
std::vector<ServeCompareRow> compare_serving(const Model& m, const std::vector<System>& systems, const Site* site,
                                             const ServeCompareRequest& q);

}  // namespace xpu
