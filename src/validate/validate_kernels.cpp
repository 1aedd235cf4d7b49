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

std::string shape_of(double a, double b, double c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.0f x %.0f x %.0f", a, b, c);
  return buf;
}

}  // namespace

bool is_kernel_table(const CsvTable& t) {
  return t.column("kernel") >= 0 && t.column("chip") >= 0 && t.column("metric") >= 0;
}

ValidationResult validate_kernels(const CsvTable& t, const Catalog& c) {
  for (const char* col : kKernelColumns)
    if (t.column(col) < 0) throw InputError(t.path + ":1", std::string("header lacks column '") + col + "'");
  ValidationResult out;
  out.path = t.path;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    RowReader r(t, i);
    ValidationRow row;
    row.line = t.row_lines[i];
    row.id = r.str("id");
    if (row.id.empty()) r.fail("id", "empty (required)");
    row.grade = r.str("grade");
    if (row.grade != "A" && row.grade != "B" && row.grade != "C") r.fail("grade", "must be A, B or C");
    row.system = r.str("chip");
    row.model = r.str("kernel");
    row.metric = r.str("metric");
    if (row.metric != "time_us") r.fail("metric", "'" + row.metric + "' is not time_us");
    row.measured = r.req_positive("value");
    const std::string& kernel = row.model;
    if (kernel != "gemm" && kernel != "attention" && kernel != "attention_fwd_bwd" && kernel != "copy")
      r.fail("kernel", "'" + kernel + "' is not gemm, attention, attention_fwd_bwd or copy");
    row.stat = r.str("precision");  // the kernel's matrix precision ("" for copy)
    std::optional<Precision> prec;
    if (kernel != "copy") {
      prec = parse_precision(row.stat);
      if (!prec) r.fail("precision", "'" + row.stat + "' is not a precision (bf16, fp16, fp8, fp4, int8, tf32)");
    }

    std::string reason;
    auto chip = c.chips.find(row.system);
    auto cal = c.calibrations.find(row.system);
    if (chip == c.chips.end() || cal == c.calibrations.end()) {
      reason = "chip '" + row.system + "' is not in the catalog (data/chips, data/calibration)";
    } else if (prec && !chip->second.peak_at(*prec)) {
      reason = "chip '" + row.system + "' has no " + row.stat + " peak";
    } else {
      const Chip& ch = chip->second;
      const Calibration& k = cal->second;
      const double bw = ch.hbm_bandwidth.v * k.memory_bw;
      const double ko = k.kernel_overhead.v;
      double seconds = 0;
      if (kernel == "gemm") {
        const double M = static_cast<double>(r.req_int("m")), N = static_cast<double>(r.req_int("n")),
                     K = static_cast<double>(r.req_int("k"));
        const double eb = precision_bytes(*prec);
        const GemmRoofline g{ch.peak_at(*prec)->v, std::min(0.98, k.gemm_max_at(*prec)), k.gemm_half_dim, k.gemm_half_dim, bw};
        seconds = g.seconds(M, N, K, (M * K + K * N) * eb + M * N * kOut) + ko;
        row.layout = shape_of(M, N, K) + " " + row.stat;
      } else if (kernel == "copy") {
        const double bytes = r.req_positive("bytes");
        seconds = bytes / bw + ko;
        row.layout = format_bytes(Bytes{bytes}) + " read + written";
      } else {
        const double b = static_cast<double>(r.req_int("batch")), heads = static_cast<double>(r.req_int("heads"));
        const double s = static_cast<double>(r.req_int("seq")), hd = static_cast<double>(r.req_int("head_dim"));
        const double kq = (s + 1) / 2;  // causal: keys per query on average
        const double fwd_flops = 2.0 * b * s * kq * heads * (2 * hd);
        const auto p16 = ch.peak_at(Precision::bf16) ? ch.peak_at(Precision::bf16) : ch.peak_at(Precision::fp16);
        if (!p16) {
          reason = "chip '" + row.system + "' has no 16-bit peak";
        } else {
          const double rate = flash_attention_rate(k, p16->v, kq, b * s);
          seconds = kernel == "attention" ? fwd_flops / rate + ko : (1 + kAttnBwdWork) * fwd_flops / rate + 3 * ko;
          row.layout = "causal b" + std::to_string(static_cast<long>(b)) + " h" + std::to_string(static_cast<long>(heads)) +
                       " s" + std::to_string(static_cast<long>(s)) + " d" + std::to_string(static_cast<long>(hd));
        }
      }
      if (reason.empty()) {
        row.predicted = seconds * 1e6;
        row.evaluated = true;
      }
    }
    settle_row(row, reason);
    out.rows.push_back(std::move(row));
  }
  summarise(out, out.per_metric, [](const ValidationRow& row) { return row.model + (row.stat.empty() ? "" : " " + row.stat); });
  return out;
}

}  // namespace xpu
