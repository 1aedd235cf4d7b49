#include "calibrate/calibrate_kernels.hpp"

#include <cmath>
#include <set>

#include "perf/kernels.hpp"
#include "report/format.hpp"
#include "validate/validate.hpp"

namespace xpu {

namespace {

constexpr double kHalfDims[] = {8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256};
constexpr double kStreamMinBytes = 128.0 * 1024 * 1024;  // over twice the L2 of any chip here

// Mean |ln(predicted / measured)| and MAPE of rows under a calibration.
struct Err {
  double log = 0, mape = 0;
};
Err error_of(const std::vector<const KernelRow*>& rows, const Chip& ch, const Calibration& cal) {
  Err e;
  std::string reason;
  for (const KernelRow* k : rows) {
    const double p = predict_kernel(*k, ch, cal, &reason).value_or(1e9);
    e.log += std::fabs(std::log(p / k->measured_s));
    e.mape += std::fabs(p / k->measured_s - 1) * 100;
  }
  if (!rows.empty()) {
    e.log /= static_cast<double>(rows.size());
    e.mape /= static_cast<double>(rows.size());
  }
  return e;
}

// Tries every value of `grid` for the field(s) of `cal` that `set` writes, in place, and leaves
// the best (or the values it started with); true when it moved.
template <typename Set>
bool best_on_grid(const std::vector<double>& grid, Set set, Calibration& cal, double& best,
                  const std::vector<const KernelRow*>& rows, const Chip& ch) {
  const Calibration start = cal;  // one copy per grid, not per point
  bool moved = false;
  double keep = 0;
  for (double v : grid) {
    set(cal, v);
    const double e = error_of(rows, ch, cal).log;
    if (e < best - 1e-12) {
      best = e;
      keep = v;
      moved = true;
    }
  }
  cal = start;
  if (moved) set(cal, keep);
  return moved;
}

std::vector<double> steps(double from, double to, double step) {
  std::vector<double> v;
  for (double x = from; x <= to + 1e-12; x += step) v.push_back(x);
  return v;
}

}  // namespace

std::vector<KernelFit> fit_kernels(const CsvTable& t, const Catalog& c) {
  const std::vector<KernelRow> rows = read_kernel_rows(t);
  std::set<std::string> chips;
  for (const auto& k : rows) chips.insert(k.chip);
  std::vector<KernelFit> out;
  for (const std::string& id : chips) {
    auto ch_it = c.chips.find(id);
    auto cal_it = c.calibrations.find(id);
    if (ch_it == c.chips.end() || cal_it == c.calibrations.end()) continue;
    const Chip& ch = ch_it->second;
    KernelFit fit;
    fit.chip = id;
    std::vector<const KernelRow*> gemms, attn, attn_fwd;
    std::set<Precision> precs;
    for (const auto& k : rows) {
      if (k.chip != id || (k.grade != "A" && k.grade != "B")) continue;
      if (k.kind == KernelKind::gemm && ch.peak_at(k.precision)) {
        gemms.push_back(&k);
        precs.insert(k.precision);
        const double wbytes = k.n * k.k * precision_bytes(k.precision);
        if (k.m <= 16 && wbytes >= kStreamMinBytes) {
          fit.stream_fraction = std::max(fit.stream_fraction, wbytes / k.measured_s / ch.hbm_bandwidth.v);
          ++fit.stream_rows;
        }
      }
      if (k.kind == KernelKind::attention_fwd_bwd) attn.push_back(&k);
      if (k.kind == KernelKind::attention) attn_fwd.push_back(&k);
    }
    fit.gemm_rows = static_cast<int>(gemms.size());
    fit.attention_rows = static_cast<int>(attn.size());

    Calibration cal = cal_it->second;
    if (!gemms.empty()) {
      fit.gemm_mape_shipped = error_of(gemms, ch, cal).mape;
      const std::vector<double> caps = steps(0.30, 0.98, 0.01), fracs = steps(0.50, 0.98, 0.01), kos = steps(0, 10e-6, 0.5e-6);
      // Every half size on its grid; for each, coordinate descent over the other parameters from
      // the shipped values; the best pair kept (the half size couples with the caps, so a joint
      // descent stalls in local minima).
      double best_all = 1e300;
      Calibration best_cal = cal;
      for (double half : kHalfDims) {
        Calibration x = cal_it->second;
        x.gemm_half_dim = half;
        double best = error_of(gemms, ch, x).log;
        for (int round = 0; round < 12; ++round) {
          bool moved = false;
          for (Precision p : precs)
            moved |= best_on_grid(caps, [p](Calibration& y, double v) { y.gemm_max[static_cast<int>(p)] = v; }, x, best, gemms, ch);
          // Memory fraction and kernel overhead trade against each other on memory-bound rows:
          // searched together.
          for (double fr : fracs) {
            const bool m = best_on_grid(kos, [fr](Calibration& y, double v) { y.memory_bw = fr; y.kernel_overhead = Seconds{v}; },
                                        x, best, gemms, ch);
            moved |= m;
          }
          if (!moved) break;
        }
        if (best < best_all) {
          best_all = best;
          best_cal = x;
        }
      }
      cal = best_cal;
      for (Precision p : precs) fit.cap[precision_name(p)] = cal.gemm_max_at(p);
      fit.half_dim = cal.gemm_half_dim;
      fit.memory_fraction = cal.memory_bw;
      fit.kernel_overhead_s = cal.kernel_overhead.v;
      fit.gemm_mape_fitted = error_of(gemms, ch, cal).mape;
    }
    if (!attn.empty()) {
      fit.attention_mape_shipped = error_of(attn, ch, cal_it->second).mape;
      // The backward's efficiency relative to the forward's: over every forward row with a
      // forward + backward row of the same shape from the same run, the geometric mean of the
      // modelled backward / forward time ratio (at equal efficiencies) over the measured one.
      {
        double sum = 0;
        int n = 0;
        // The forward + backward row of the same shape that pairs with forward row f: the one
        // whose id is f's with "_FWD_BWD" after the kernel name, else one whose id ends alike.
        auto partner = [&](const KernelRow* f) -> const KernelRow* {
          const KernelRow* alike = nullptr;
          for (const KernelRow* fb : attn) {
            if (f->batch != fb->batch || f->heads != fb->heads || f->head_dim != fb->head_dim || f->seq != fb->seq) continue;
            std::string plain = fb->id;
            if (const auto at = plain.find("_FWD_BWD"); at != std::string::npos) plain.erase(at, 8);
            if (plain == f->id) return fb;
            if (!alike && f->id.substr(f->id.rfind('-') + 1) == fb->id.substr(fb->id.rfind('-') + 1)) alike = fb;
          }
          return alike;
        };
        Calibration one = cal;
        one.attention_backward = 1;
        for (const KernelRow* f : attn_fwd) {
          const KernelRow* fb = partner(f);
          if (!fb) continue;
          const double ko = cal.kernel_overhead.v;
          const double mf = f->measured_s - ko, mb = fb->measured_s - f->measured_s - 2 * ko;
          const auto m = attention_seconds(*f, ch, one);
          if (mf <= 0 || mb <= 0 || !m) continue;
          sum += std::log((m->bwd / m->fwd) / (mb / mf));
          ++n;
        }
        fit.attention_pairs = n;
        fit.attention_backward = n > 0 ? std::exp(sum / n) : cal.attention_backward;
        cal.attention_backward = fit.attention_backward;
      }
      // For each half size the efficiency that centres the log errors, the best half size kept.
      double best = 1e300;
      Calibration x = cal;
      Calibration one = cal;  // efficiency 1: the seconds at the attention peaks
      one.attention = 1;
      for (double h = 50; h <= 3000; h += 10) {
        one.attention_half_keys = h;
        double mean = 0;
        for (const KernelRow* k : attn) {
          const double t = std::max(1e-9, k->measured_s - 3 * cal.kernel_overhead.v);
          const auto ideal = attention_seconds(*k, ch, one);
          mean += ideal ? std::log((ideal->fwd + ideal->bwd) / t) : 0.0;
        }
        mean /= static_cast<double>(attn.size());
        x.attention = std::clamp(std::exp(mean), 0.01, 1.0);
        x.attention_half_keys = h;
        const double e = error_of(attn, ch, x).log;
        if (e < best) {
          best = e;
          fit.attention = x.attention;
          fit.attention_half_keys = h;
        }
      }
      x.attention = fit.attention;
      x.attention_half_keys = fit.attention_half_keys;
      fit.attention_mape_fitted = error_of(attn, ch, x).mape;
    }
    out.push_back(std::move(fit));
  }
  return out;
}

std::string kernel_fit_text(const std::string& path, const std::vector<KernelFit>& fits, const Catalog& c) {
  std::vector<std::vector<std::string>> krows;
  auto pct = [](double v) { return format_number("%.1f%%", v); };
  for (const KernelFit& k : fits) {
    const Calibration& cal = c.calibrations.at(k.chip);
    std::string caps, caps_now;
    for (const auto& [p, v] : k.cap) {
      caps += (caps.empty() ? "" : " ") + p + " " + format_number("%.2f", v);
      caps_now += (caps_now.empty() ? "" : " ") + p + " " + format_number("%.2f", cal.gemm_max_at(*parse_precision(p)));
    }
    auto row = [&](const std::string& what, const std::string& shipped, const std::string& fitted, const std::string& rows) {
      krows.push_back({k.chip, what, shipped, fitted, rows});
    };
    const std::string gr = std::to_string(k.gemm_rows), ar = std::to_string(k.attention_rows);
    if (k.gemm_rows > 0) {
      row("gemm cap (per precision)", caps_now, caps, gr);
      row("gemm half_dim", format_number("%g", cal.gemm_half_dim), format_number("%g", k.half_dim), gr);
      row("memory bandwidth_fraction", format_number("%.2f", cal.memory_bw), format_number("%.2f", k.memory_fraction), gr);
      row("kernel overhead", format_number("%.1f us", cal.kernel_overhead.v * 1e6), format_number("%.1f us", k.kernel_overhead_s * 1e6), gr);
      row("gemm MAPE", pct(k.gemm_mape_shipped), pct(k.gemm_mape_fitted), gr);
    }
    if (k.stream_rows > 0)
      row("memory stream_fraction (best GEMV)", cal.memory_stream > 0 ? format_number("%.2f", cal.memory_stream) : "-",
          format_number("%.2f", k.stream_fraction), std::to_string(k.stream_rows));
    if (k.attention_rows > 0) {
      // At its bound (1 of the attention peak) the kernels run faster than the serial
      // matrix-plus-exponentials peak allows: they overlap part of the exponentials.
      row("attention efficiency", format_number("%.3f", cal.attention),
          format_number("%.3f", k.attention) + (k.attention >= 1.0 ? " (at its bound: faster than the serial peak)" : ""), ar);
      row("attention half_keys", cal.attention_half_keys > 0 ? format_number("%g", cal.attention_half_keys) : "(half_dim)",
          format_number("%g", k.attention_half_keys), ar);
      if (k.attention_pairs > 0)
        row("attention backward (relative to forward)", format_number("%.2f", cal.attention_backward),
            format_number("%.2f", k.attention_backward), std::to_string(k.attention_pairs) + " forward / forward+backward pairs");
      row("attention fwd+bwd MAPE", pct(k.attention_mape_shipped), pct(k.attention_mape_fitted), ar);
    }
  }
  return "kernel parameters (" + path + ", grades A+B; a report: data/calibration's caps are fitted to training steps)\n" +
         render_table({"chip", "parameter", "shipped", "best fit to the kernels", "rows"}, krows);
}

}  // namespace xpu
