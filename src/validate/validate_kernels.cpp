// Kernel-level validation: each row of a kernels table (validation/README.md) is one kernel timed
// on one chip, predicted from that chip's data and calibration by the same roofline pieces the
// training and serving models use (perf/kernels.hpp).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "perf/kernels.hpp"
#include "spec/error.hpp"
#include "validate/rows.hpp"
#include "validate/validate.hpp"

namespace xpu {

namespace {

const char* kKernelColumns[] = {"id",    "source", "grade",    "chip",  "kernel", "precision", "m",     "n", "k",
                                "batch", "heads",  "head_dim", "seq",   "bytes",  "metric",    "value", "notes"};

constexpr double kOut = 2.0;  // bytes per element of a GEMM's 16-bit output

std::string shape_of(const KernelRow& k) {
  char buf[128];
  if (k.kind == KernelKind::gemm)
    std::snprintf(buf, sizeof buf, "%.0f x %.0f x %.0f %s", k.m, k.n, k.k, precision_name(k.precision));
  else if (k.kind == KernelKind::copy)
    return format_bytes(Bytes{k.bytes}) + " read + written";
  else
    std::snprintf(buf, sizeof buf, "causal b%.0f h%.0f s%.0f d%.0f", k.batch, k.heads, k.seq, k.head_dim);
  return buf;
}

}  // namespace

bool is_kernel_table(const CsvTable& t) {
  return t.column("kernel") >= 0 && t.column("chip") >= 0 && t.column("metric") >= 0;
}

std::vector<KernelRow> read_kernel_rows(const CsvTable& t) {
  for (const char* col : kKernelColumns)
    if (t.column(col) < 0) throw InputError(t.path + ":1", std::string("header lacks column '") + col + "'");
  check_unique_ids(t);
  std::vector<KernelRow> out;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    RowReader r(t, i);
    KernelRow k;
    k.line = t.row_lines[i];
    k.id = r.str("id");
    if (k.id.empty()) r.fail("id", "empty (required)");
    k.grade = r.str("grade");
    if (k.grade != "A" && k.grade != "B" && k.grade != "C") r.fail("grade", "must be A, B or C");
    k.chip = r.str("chip");
    const std::string kernel = r.str("kernel");
    if (kernel == "gemm") k.kind = KernelKind::gemm;
    else if (kernel == "attention") k.kind = KernelKind::attention;
    else if (kernel == "attention_fwd_bwd") k.kind = KernelKind::attention_fwd_bwd;
    else if (kernel == "copy") k.kind = KernelKind::copy;
    else r.fail("kernel", "'" + kernel + "' is not gemm, attention, attention_fwd_bwd or copy");
    k.kernel = kernel;
    const std::string metric = r.str("metric");
    if (metric != "time_us") r.fail("metric", "'" + metric + "' is not time_us");
    k.measured_s = r.req_positive("value") * 1e-6;
    k.precision_text = r.str("precision");
    if (k.kind != KernelKind::copy) {
      auto p = parse_precision(k.precision_text);
      if (!p) r.fail("precision", "'" + k.precision_text + "' is not a precision (bf16, fp16, fp8, fp4, int8, tf32)");
      k.precision = *p;
    }
    if (k.kind == KernelKind::gemm) {
      k.m = static_cast<double>(r.req_int("m"));
      k.n = static_cast<double>(r.req_int("n"));
      k.k = static_cast<double>(r.req_int("k"));
    } else if (k.kind == KernelKind::copy) {
      k.bytes = r.req_positive("bytes");
    } else {
      k.batch = static_cast<double>(r.req_int("batch"));
      k.heads = static_cast<double>(r.req_int("heads"));
      k.seq = static_cast<double>(r.req_int("seq"));
      k.head_dim = static_cast<double>(r.req_int("head_dim"));
    }
    out.push_back(std::move(k));
  }
  return out;
}

std::optional<FlashSeconds> attention_seconds(const KernelRow& k, const Chip& ch, const Calibration& cal) {
  const auto p16 = ch.peak_at(Precision::bf16) ? ch.peak_at(Precision::bf16) : ch.peak_at(Precision::fp16);
  if (!p16) return std::nullopt;
  const double kq = (k.seq + 1) / 2;  // causal: keys per query on average
  const double fwd_flops = 2.0 * k.batch * k.seq * kq * k.heads * (2 * k.head_dim);
  return flash_attention_seconds(cal, p16->v, ch.exp_rate.value_or(0), 2 * k.head_dim, fwd_flops, kq, k.batch * k.seq);
}

std::optional<double> predict_kernel(const KernelRow& k, const Chip& ch, const Calibration& cal, std::string* reason) {
  const double bw = ch.hbm_bandwidth.v * cal.memory_bw;
  const double ko = cal.kernel_overhead.v;
  switch (k.kind) {
    case KernelKind::gemm: {
      const auto peak = ch.peak_at(k.precision);
      if (!peak) {
        *reason = "chip '" + k.chip + "' has no " + k.precision_text + " peak";
        return std::nullopt;
      }
      const double eb = precision_bytes(k.precision);
      // The token rows saturate at the smallest matrix tile where the calibration names one, as in
      // the serving step model; the other dimensions at half_dim.
      const double half_m = cal.gemm_tile_rows > 0 ? std::min(cal.gemm_tile_rows, cal.gemm_half_dim) : cal.gemm_half_dim;
      const GemmRoofline g{peak->v, std::min(kMaxEfficiency, cal.gemm_max_at(k.precision)), half_m, cal.gemm_half_dim, bw};
      return g.seconds(k.m, k.n, k.k, (k.m * k.k + k.k * k.n) * eb + k.m * k.n * kOut) + ko;
    }
    case KernelKind::copy: return k.bytes / bw + ko;
    case KernelKind::attention:
    case KernelKind::attention_fwd_bwd: {
      const auto fa = attention_seconds(k, ch, cal);
      if (!fa) {
        *reason = "chip '" + k.chip + "' has no 16-bit peak";
        return std::nullopt;
      }
      return k.kind == KernelKind::attention ? fa->fwd + ko : fa->fwd + fa->bwd + 3 * ko;
    }
  }
  return std::nullopt;
}

ValidationResult validate_kernels(const CsvTable& t, const Catalog& c) {
  ValidationResult out;
  out.path = t.path;
  for (const KernelRow& k : read_kernel_rows(t)) {
    ValidationRow row;
    row.line = k.line;
    row.id = k.id;
    row.grade = k.grade;
    row.system = k.chip;
    row.model = k.kernel;
    row.metric = "time_us";
    row.stat = k.precision_text;  // the kernel's matrix precision ("" for copy)
    row.measured = k.measured_s * 1e6;
    std::string reason;
    auto chip = c.chips.find(k.chip);
    auto cal = c.calibrations.find(k.chip);
    if (chip == c.chips.end() || cal == c.calibrations.end()) {
      throw InputError(t.path + ":" + std::to_string(k.line) + ": chip",
                       "'" + k.chip + "' is not a catalog chip id with a calibration (data/chips, data/calibration)");
    } else if (auto s = predict_kernel(k, chip->second, cal->second, &reason)) {
      row.predicted = *s * 1e6;
      row.evaluated = true;
      row.layout = shape_of(k);
    }
    settle_row(row, reason);
    out.rows.push_back(std::move(row));
  }
  summarise(out, out.per_metric, [](const ValidationRow& row) { return row.model + (row.stat.empty() ? "" : " " + row.stat); });
  return out;
}

}  // namespace xpu
