// Time of one kernel on one chip, from its peak rates and calibration: the roofline pieces that
// the training model, the serving step model and the kernel-level validation share.
#pragma once

#include <algorithm>

#include "spec/hardware.hpp"

namespace xpu {

// No kernel is taken to reach more than this fraction of its peak, however a calibration or a
// fit scales its efficiency.
inline constexpr double kMaxEfficiency = 0.98;

// Efficiency of one dimension of size x that reaches half its asymptote at `half`.
inline double saturation(double x, double half) { return x / (x + half); }

// A GEMM (M x K) . (K x N) at a chip's rate: `cap` is the fraction of `peak` a large GEMM
// reaches; each dimension saturates at its own half size (the token dimension M may saturate at
// the smallest matrix tile instead); memory traffic `bytes` moves at `bandwidth`.
struct GemmRoofline {
  double peak = 0;       // FLOP/s of the matrix precision
  double cap = 1;        // fraction of peak of a large GEMM
  double half_m = 64;    // token (row) dimension half size
  double half_nk = 64;   // output and reduction dimension half size
  double bandwidth = 0;  // B/s reached by the GEMM's memory traffic

  double efficiency(double M, double N, double K) const {
    return cap * saturation(M, half_m) * saturation(N, half_nk) * saturation(K, half_nk);
  }
  double compute_seconds(double M, double N, double K) const { return 2.0 * M * N * K / (peak * efficiency(M, N, K)); }
  // The slower of the math and the memory traffic.
  double seconds(double M, double N, double K, double bytes) const {
    return std::max(compute_seconds(M, N, K), bytes / bandwidth);
  }
};

// Attention's peak matrix rate with its softmax exponentials in series: every (query, key) score
// of every head takes one exponential on the special-function units, in the forward pass and again
// when the backward pass recomputes the scores, and a flash-attention kernel waits for them between
// its two matrix products. Per score the forward does 2 (dqk + dv) matrix FLOPs, the backward
// kAttnBwdWork times that; `flops_per_exp` is that figure. On an H100 at head dim 128 the
// exponentials add half the matrix time to the forward; on a B200 as much again (the matrix rate
// doubled, the exponential rate did not); at head dim 64 twice that. exp_rate 0: not modelled.
inline double attention_peak(double peak16, double exp_rate, double flops_per_exp) {
  if (exp_rate <= 0 || flops_per_exp <= 0) return peak16;
  return 1.0 / (1.0 / peak16 + 1.0 / (exp_rate * flops_per_exp));
}

// Flash attention's rate: the calibrated fraction of the 16-bit peak, ramping up with the keys
// each query attends to (tile fill along the causal diagonal, attention.half_keys) and with the
// query rows of the launch (b x s, at the GEMM half size).
inline double flash_attention_rate(const Calibration& c, double peak16, double keys_per_query, double query_rows) {
  const double hk = c.attention_half_keys > 0 ? c.attention_half_keys : c.gemm_half_dim;
  return peak16 * c.attention * saturation(keys_per_query, hk) * saturation(query_rows, c.gemm_half_dim);
}

// Flash-attention backward does 2.5x the forward's matrix work (it recomputes the scores).
inline constexpr double kAttnBwdWork = 2.5;

// Seconds of flash attention's forward and backward over `fwd_flops` of forward matrix work at
// head dims dqk + dv (`head_dims`), `keys_per_query` keys per query and `query_rows` query rows:
// the calibrated rate at the attention peak of each pass, the backward's times
// attention.backward (its efficiency relative to the forward's: shared-memory traffic and the dQ
// accumulation that the forward does not have).
struct FlashSeconds {
  double fwd = 0, bwd = 0;
};
inline FlashSeconds flash_attention_seconds(const Calibration& c, double peak16, double exp_rate, double head_dims,
                                            double fwd_flops, double keys_per_query, double query_rows) {
  const double ramp = flash_attention_rate(c, 1.0, keys_per_query, query_rows);  // efficiency x shape terms
  const double f = ramp * attention_peak(peak16, exp_rate, 2 * head_dims);
  const double b = ramp * c.attention_backward * attention_peak(peak16, exp_rate, kAttnBwdWork * 2 * head_dims);
  return {fwd_flops / f, kAttnBwdWork * fwd_flops / b};
}

}  // namespace xpu
