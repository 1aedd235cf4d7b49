#include "money/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <tuple>

#include "search/search.hpp"
#include "serve/search.hpp"
#include "train/choose.hpp"
#include "units/units.hpp"
#include "spec/error.hpp"

namespace xpu {

namespace {

std::optional<TrainReport> fastest(const Model& m, const System& s, const CompareRequest& q, int devices) {
  return fastest_plan(m, s, q.seq_len, q.global_batch, devices, q.threads, q.precision, q.mtp_layers);
}

void fill(CompareRow& row, const Model&, const System& s, const Site* site, const CompareRequest& q) {
  const TrainReport& p = row.plan;
  const double tokens_per_step = static_cast<double>(q.seq_len) * q.global_batch;
  row.devices = p.devices;
  row.steps = std::ceil(q.tokens / tokens_per_step);
  const double seconds = row.steps * p.step_time;
  row.days = seconds / 86400.0;
  row.device_hours = row.devices * seconds / 3600.0;
  row.effective_pflops_days = row.steps * p.model_flops_per_step / 1e15 / 86400.0;
  row.rate = device_hour_rate(s, site, q.pricing, q.today, q.provider);
  std::vector<std::string> notes;
  if (row.rate.known) {
    row.usd = row.device_hours * row.rate.usd_per_device_hour;
    row.usd_per_pflops_day = *row.usd / row.effective_pflops_days;
  } else {
    notes.push_back(row.rate.missing);
  }
  std::string why;
  row.power = device_power(s, site, &why);
  if (row.power) {
    const double kwh = row.device_hours * row.power->wall_w / 1000.0;
    row.energy_mwh = kwh / 1000.0;
    row.co2_t = kwh * row.power->kg_co2_per_kwh / 1000.0;
  } else {
    notes.push_back("no energy figure: " + why);
  }
  for (const auto& n : notes) row.note += (row.note.empty() ? "" : "; ") + n;
}

}  // namespace

std::optional<TrainReport> fastest_plan(const Model& m, const System& s, long seq_len, long global_batch, int devices,
                                        int threads, std::optional<Precision> precision, std::optional<int> mtp_layers) {
  PlanRequest pr;
  pr.precision = precision;
  pr.mtp_layers = mtp_layers;
  pr.devices = devices;
  pr.work = {seq_len, global_batch};
  SearchOptions so;
  so.top_k = 1;
  so.pareto = false;  // the fastest plan alone
  so.threads = threads;
  const SearchResult r = search(m, s, pr, so);
  if (r.top.empty() || !r.top.front().feasible()) return std::nullopt;
  return r.top.front();
}

ServingPick best_serving(const Model& m, const System& s, int input_len, int output_len, double slo_ttft_s,
                         double slo_tpot_s, std::optional<Quant> weights, int requests, const LengthSpread& input_spread,
                         const LengthSpread& output_spread, const Speculation& spec) {
  ServingPick pick;
  const bool slo = slo_ttft_s > 0 || slo_tpot_s > 0;
  ServeSearchOptions so;
  so.top = 1;
  so.vary_disagg = false;
  so.peak_waves = kPeakWaves;  // `requests` is a floor: each candidate fills its batches many times over
  std::string last_reason;
  // One node first; more nodes only when no layout fits one (a model too large for its memory).
  for (int nodes = 1; nodes <= 8; nodes *= 2) {
    const int devices = s.devices_per_node * nodes;
    ServeRequest q;
    q.devices = devices;
    q.weights = weights;
    q.work.kind = WorkloadKind::offline;
    q.work.requests = requests;
    q.work.input_len = input_len;
    q.work.output_len = output_len;
    q.work.input_spread = input_spread;
    q.work.output_spread = output_spread;
    q.spec = spec;
    const ServeSearchResult peak = serve_search(m, s, q, so);
    const ServeReport& top = peak.top.front();
    if (!top.feasible) {
      last_reason = top.reason;
      continue;
    }
    pick.search_devices = devices;
    // The open-loop runs below simulate as many requests as the peak's (sized to its replicas).
    q.work.requests = std::max(requests, top.work.requests);
    std::string n = ", " + std::to_string(q.work.requests) + " requests";
    if (input_spread.set()) n += ", prompt lengths " + spread_name(input_spread);
    if (output_spread.set()) n += ", output lengths " + spread_name(output_spread);
    if (!slo) {
      pick.ok = true;
      pick.report = top;
      pick.workload = "offline" + n;
      return pick;
    }
    // The highest open-loop load, from 90% of the offline peak down by tenths (then 5, 2 and 1%), whose p99 TTFT and
    // TPOT meet the SLOs, on a layout that keeps up with it: one that serves less than
    // kKeepsUp of the offered requests per second (a small batch cap that meets a TPOT SLO below
    // the load) has a queue that grows for as long as the run lasts, so its latencies and the
    // fleet sized from it describe no steady state.
    q.slo_ttft_s = slo_ttft_s;
    q.slo_tpot_s = slo_tpot_s;
    q.work.kind = WorkloadKind::poisson;
    constexpr double kKeepsUp = 0.9;
    // Below a tenth, a strict TTFT SLO may still be met at a twentieth, a fiftieth, a hundredth.
    for (const int percent : {90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 2, 1}) {
      q.work.rate = top.requests_per_s * percent / 100.0;
      const ServeSearchResult r = serve_search(m, s, q, so);
      if (r.top.front().feasible && r.top.front().slo_met && r.top.front().requests_per_s >= kKeepsUp * q.work.rate) {
        pick.ok = true;
        pick.report = r.top.front();
        char b[96];
        std::snprintf(b, sizeof b, "poisson %.3g req/s (%d%% of the offline peak)", q.work.rate, percent);
        pick.workload = b + n;
        return pick;
      }
    }
    pick.note = "no layout on " + count_text(devices, "device", "devices") + " meets the SLOs (p99 TTFT/TPOT) and keeps up with the load even at 1% of " +
                "its peak load";
    return pick;
  }
  pick.note = "no serving layout fits on up to " + count_text(8 * s.devices_per_node, "device", "devices") +
              (last_reason.empty() ? "" : ": " + last_reason);
  return pick;
}

std::vector<ServeCompareRow> compare_serving(const Model& m, const std::vector<System>& systems, const Site* site,
                                             const ServeCompareRequest& q) {
  if (!(q.tokens_per_day > 0 && std::isfinite(q.tokens_per_day)))
    throw InputError("--tokens-per-day", "must be a positive, finite number of tokens");
  if (q.input_len < 1) throw InputError("--input-len", "required with --serve (prompt tokens per request, at least 1)");
  if (q.output_len < 1) throw InputError("--output-len", "required with --serve (generated tokens per request, at least 1)");
  {
    ServeWorkload w;
    w.input_len = q.input_len;
    w.output_len = q.output_len;
    w.input_spread = q.input_spread;
    w.output_spread = q.output_spread;
    check_context_window(m, w);
  }
  if (q.slo_ttft_s < 0) throw InputError("--slo-ttft-ms", "must not be negative");
  if (q.slo_tpot_s < 0) throw InputError("--slo-tpot-ms", "must not be negative");
  if (q.requests < 1) throw InputError("--requests", "must be at least 1");
  if (systems.empty()) throw InputError("--systems", "no system given");
  const double out_share = static_cast<double>(q.output_len) / (q.input_len + q.output_len);
  const double out_per_day = q.tokens_per_day * out_share, in_per_day = q.tokens_per_day - out_per_day;
  const double days_per_month = kHoursPerMonth / 24.0;
  std::vector<ServeCompareRow> rows;
  for (const System& s : systems) {
    ServeCompareRow row;
    row.system_id = s.id;
    row.required_output_tps = out_per_day / 86400.0;
    row.pick = best_serving(m, s, q.input_len, q.output_len, q.slo_ttft_s, q.slo_tpot_s, q.weights, q.requests,
                            q.input_spread, q.output_spread, q.spec);
    row.rate = device_hour_rate(s, site, q.pricing, q.today, q.provider);
    if (!row.pick.ok) {
      row.note = row.pick.note;
      rows.push_back(std::move(row));
      continue;
    }
    row.served = true;
    const ServeReport& r = row.pick.report;
    row.replica_devices = r.layout.tp * r.layout.pp;
    const double per_replica = r.output_tps_per_device * row.replica_devices;
    const double replicas = std::max(1.0, std::ceil(row.required_output_tps / per_replica - 1e-9));
    if (replicas * row.replica_devices > std::numeric_limits<int>::max())
      throw InputError("--tokens-per-day", format_number("%.3g", q.tokens_per_day) + " tokens a day need " +
                                               format_number("%.3g", replicas * row.replica_devices) + " devices of " + s.id +
                                               ", beyond 2^31");
    row.replicas = static_cast<int>(replicas);
    row.devices = row.replicas * row.replica_devices;
    row.utilisation = row.required_output_tps / (row.devices * r.output_tps_per_device);
    if (row.rate.known) {
      const double month = row.devices * row.rate.usd_per_device_hour * kHoursPerMonth;
      row.usd_per_month = month;
      const double f = std::clamp(r.prefill_share, 0.0, 1.0);
      row.usd_per_m_input = month * f / (in_per_day * days_per_month) * 1e6;
      row.usd_per_m_output = month * (1 - f) / (out_per_day * days_per_month) * 1e6;
      row.usd_per_m_tokens = month / (q.tokens_per_day * days_per_month) * 1e6;
    } else {
      row.note = row.rate.missing;
    }
    rows.push_back(std::move(row));
  }
  auto key = [](const ServeCompareRow& r) {
    const int group = !r.served ? 2 : (!r.usd_per_month ? 1 : 0);
    return std::make_tuple(group, r.usd_per_month.value_or(0), r.system_id);
  };
  std::stable_sort(rows.begin(), rows.end(),
                   [&](const ServeCompareRow& a, const ServeCompareRow& b) { return key(a) < key(b); });
  int rank = 0;
  for (ServeCompareRow& r : rows)
    if (r.served && r.usd_per_month) r.rank = ++rank;
  return rows;
}

std::vector<CompareRow> compare(const Model& m, const std::vector<System>& systems, const Site* site,
                                const CompareRequest& q) {
  if (!(q.tokens > 0 && q.tokens <= kMaxTokens)) throw InputError("--tokens", "must be a positive number of tokens, at most 1e18");
  if (q.devices.has_value() == q.deadline_days.has_value())
    throw InputError("--devices/--deadline-days", "give exactly one of them");
  if (q.devices && *q.devices < 1) throw InputError("--devices", "must be at least 1");
  if (q.deadline_days && !(*q.deadline_days > 0 && std::isfinite(*q.deadline_days)))
    throw InputError("--deadline-days", "must be positive and finite");
  if (q.seq_len < 1) throw InputError("--seq-len", "must be at least 1");
  if (q.global_batch < 1) throw InputError("--global-batch", "must be at least 1");
  if (q.global_batch > kMaxGlobalBatch)
    throw InputError("--global-batch", std::to_string(q.global_batch) + " sequences a step is beyond the planner's " +
                                           std::to_string(kMaxGlobalBatch) + " (2^20)");
  if (systems.empty()) throw InputError("--systems", "no system given");

  std::vector<CompareRow> rows;
  for (const System& s : systems) {
    CompareRow row;
    row.system_id = s.id;
    row.calibration_file = s.calib.file;
    row.calibration_status = s.calib.status;
    // A request this system cannot take (a precision its chip lacks) is this row's answer, not
    // an error of the whole comparison.
    try {
      PlanRequest probe;
      probe.devices = q.devices.value_or(s.devices_per_node);
      probe.work = {q.seq_len, q.global_batch};
      probe.precision = q.precision;
      probe.mtp_layers = q.mtp_layers;
      check_request(m, s, probe);
    } catch (const InputError& e) {
      row.note = std::string("no plan: ") + e.what();
      rows.push_back(std::move(row));
      continue;
    }
    if (q.devices) {
      if (auto p = fastest(m, s, q, *q.devices)) {
        row.planned = true;
        row.plan = *p;
      } else {
        row.note = "no plan fits on " + count_text(*q.devices, "device", "devices");
      }
    } else {
      // The fewest devices (node x 2^k, or whole NVL72-style domains x 2^k) whose fastest plan
      // finishes within the deadline. Counts
      // grow until one meets it; the largest that fits is kept when none does. Once one plan is
      // known, counts that could not meet the deadline even at 100% of the chip's highest peak
      // (the run's model FLOPs / (deadline x peak)) are skipped without a search.
      const double steps = std::ceil(q.tokens / (static_cast<double>(q.seq_len) * q.global_batch));
      double max_peak = 0;
      for (Precision pr : kAllPrecisions)
        if (auto r = s.peak(pr)) max_peak = std::max(max_peak, r->v);
      double bound = 0;  // devices needed at 100% of max_peak
      std::optional<TrainReport> best;
      for (long d : device_ladder(s, q.max_devices)) {
        if (d < bound) {
          row.tried.push_back({static_cast<int>(d), kSkipped});
          continue;
        }
        auto p = fastest(m, s, q, static_cast<int>(d));
        if (!p) {
          row.tried.push_back({static_cast<int>(d), -1.0});
          continue;
        }
        const double days = steps * p->step_time / 86400.0;
        row.tried.push_back({static_cast<int>(d), days});
        if (max_peak > 0) bound = steps * p->model_flops_per_step / (*q.deadline_days * 86400.0 * max_peak);
        best = p;
        if (days <= *q.deadline_days) break;
      }
      if (best) {
        row.planned = true;
        row.plan = *best;
      } else {
        row.note = "no plan fits on up to " + count_text(q.max_devices, "device", "devices");
      }
    }
    if (row.planned) {
      fill(row, m, s, site, q);
      if (q.deadline_days && row.days > *q.deadline_days) {
        row.meets_deadline = false;
        // Counts above the plan's were skipped when even the chip's peak could not meet the deadline.
        const bool skipped_above = std::any_of(row.tried.begin(), row.tried.end(), [&](const std::pair<int, double>& t) {
          return t.second == kSkipped && t.first > row.devices;
        });
        row.note = (skipped_above ? "misses the deadline on every count up to " + std::to_string(q.max_devices) +
                                        " devices (larger counts than this plan's " + std::to_string(row.devices) +
                                        " could not meet it even at the chip's peak)"
                                  : "misses the deadline even on " + count_text(row.devices, "device", "devices")) +
                   (row.note.empty() ? "" : "; " + row.note);
      }
    }
    rows.push_back(std::move(row));
  }
  auto key = [&](const CompareRow& r) {
    const int group = !r.planned ? 3 : (!r.meets_deadline ? 2 : (q.rank == CompareRank::cost && !r.usd ? 1 : 0));
    // Rows that miss the deadline rank by days, priced or not (a cost and a day count do not compare).
    const double primary = !r.planned ? 0 : (q.rank == CompareRank::cost && r.usd && r.meets_deadline ? *r.usd : r.days);
    return std::make_tuple(group, primary, r.system_id);
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const CompareRow& a, const CompareRow& b) { return key(a) < key(b); });
  // Energy of a system with its node's published power counts hosts, NICs and switches; a row with
  // the accelerators alone reads low beside it, which the row says.
  bool any_node = false;
  for (const CompareRow& r : rows) any_node = any_node || (r.planned && r.power && r.power->node_w > 0);
  if (any_node)
    for (CompareRow& r : rows)
      if (r.planned && r.power && r.power->node_w <= 0)
        r.note += std::string(r.note.empty() ? "" : "; ") +
                  "energy counts the accelerators alone (no node power published in its system file), so it reads "
                  "low beside rows that count whole nodes";
  // A row without the figure it is ranked by, or that misses the deadline, has no place: listed
  // (missed deadlines by days), not ranked.
  int rank = 0;
  for (CompareRow& r : rows)
    if (r.planned && r.meets_deadline && (q.rank != CompareRank::cost || r.usd)) r.rank = ++rank;
  return rows;
}

}  // namespace xpu
