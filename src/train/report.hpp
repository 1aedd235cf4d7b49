// The result of evaluating one training plan: times, throughput, memory, and why it does or does
// not fit. Every field is in SI base units (seconds, bytes, FLOP).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "spec/plan.hpp"

namespace xpu {

// Where one optimizer step's time goes, on the critical path (slowest pipeline stage).
// The terms add up to step_time.
struct TimeBreakdown {
  double gemm = 0;           // matrix multiplies, forward + backward (no recompute)
  double attention = 0;      // flash-attention core, forward + backward
  double elementwise = 0;    // norms, activations, residuals, rope, loss, casts (memory-bound)
  double recompute = 0;      // forward work repeated in backward
  double tp_comm = 0;        // exposed tensor-parallel collectives
  double cp_comm = 0;        // exposed context-parallel KV exchange
  double ep_comm = 0;        // exposed expert all-to-all
  double pp_comm = 0;        // exposed pipeline send/recv
  double bubble = 0;         // pipeline fill and drain, and waiting on slower stages
  double dp_comm = 0;        // exposed data-parallel gradient reduce / parameter gather
  double fsdp_comm = 0;      // exposed ZeRO-3 parameter gathers and gradient reduce-scatters
  double optimizer = 0;      // optimizer step (memory-bound)
  double overhead = 0;       // kernel launches and fixed per-step cost
  double offload = 0;        // exposed host-link transfers of offloaded activations
  double total() const {
    return gemm + attention + elementwise + recompute + tp_comm + cp_comm + ep_comm + pp_comm + bubble + dp_comm +
           fsdp_comm + optimizer + overhead + offload;
  }
};

// Peak memory of the most loaded device (bytes).
struct MemoryBreakdown {
  double weights = 0;
  double gradients = 0;
  double optimizer = 0;
  double activations = 0;  // all microbatches in flight
  double transient = 0;    // logits, gathered ZeRO-3 layers, recompute working set
  double reserve = 0;      // runtime, communicators, fragmentation
  double capacity = 0;     // HBM per device
  int stage = 0;           // the pipeline stage these figures are for (the most loaded one)
  double host = 0;         // offloaded activations in host memory (not in total(): outside HBM), the
  int host_stage = 0;      // largest over the stages (the first holds the most) and its stage
  double total() const { return weights + gradients + optimizer + activations + transient + reserve; }
};

enum class Infeasible { none, out_of_memory, indivisible, unsupported_precision, too_few_microbatches };
const char* infeasible_name(Infeasible r);

// A step time as the planners compare plans by it: 36 significant bits (cells 1.5e-11 to 2.9e-11
// of it), so that plans equal but for floating-point rounding (the pipeline simulation's order of
// sums and its steady extrapolation differ by about 1e-13) almost always tie, and the layout order
// decides between them; a pair straddling a cell's edge still splits (about 1 in 100 at 1e-13).
// A grid rather than a tolerance keeps the comparison a strict weak order (monotone, transitive).
inline double tie_grid(double t) {
  if (!(t > 0) || !std::isfinite(t)) return t;
  int e = 0;
  const double frac = std::frexp(t, &e);  // t = frac x 2^e, frac in [0.5, 1)
  return std::ldexp(std::round(std::ldexp(frac, 36)), e - 36);
}

struct TrainReport {
  Layout layout;
  Workload work;
  int devices = 0;
  long microbatches = 0;   // per data-parallel replica per step
  Infeasible why = Infeasible::none;
  std::string reason;      // filled when why != none: human text with the figures
  std::string warning;     // a timed plan the memory model puts over capacity (validate only)
  bool feasible() const { return why == Infeasible::none; }
  // evaluate() with a cutoff: the plan's step time is at least step_time, which already exceeds
  // the cutoff, so its pipeline was not simulated (the figures past the time breakdown are unset).
  bool bounded = false;

  double step_time = 0;                // s
  double tokens_per_s = 0;             // whole job
  double tokens_per_s_per_device = 0;
  double model_flops_per_step = 0;     // fwd + bwd of the model, no recompute (see mfu_formula)
  double hardware_flops_per_step = 0;  // plus recompute
  double mfu = 0, hfu = 0;             // of the layout precision's dense peak
  double peak_flops_per_device = 0;    // the peak MFU is taken against (FLOP/s)
  TimeBreakdown time;
  MemoryBreakdown mem;
  std::vector<int> stage_layers;       // transformer layers per pipeline stage
  // Per pipeline stage, seconds per microbatch for all of the stage's layers (all vp chunks),
  // forward and backward (backward includes recompute), and one activation send between
  // adjacent stages: the inputs of the event-driven pipeline simulator (detail only).
  std::vector<double> stage_fwd, stage_bwd;
  std::vector<double> stage_wgrad;  // weight-gradient part of stage_bwd (zero-bubble schedules split it off)
  std::vector<double> stage_pair_saving;  // DualPipeV: what a forward-backward pair saves, per microbatch of the stage's layers
  // DualPipeV: chunk 0's part of stage_fwd, stage_bwd, stage_wgrad and stage_pair_saving (chunk 1
  // has the rest: stage 0's head and MTP modules sit there); empty for other schedules.
  std::vector<double> chunk0_fwd, chunk0_bwd, chunk0_wgrad, chunk0_pair_saving;
  double p2p_time = 0;
  // An interleaved stage layout's chunks: each one's share of its stage's times (pp x vp entries,
  // chunk-major; layout_chunk_shares), with which the schedule was simulated; empty otherwise.
  std::vector<double> chunk_share;
};

// A line of --explain: a term, its value, and where the number came from.
struct ExplainLine {
  std::string term, value, origin;
};

inline constexpr const char* kMfuFormula =
    "MFU = model FLOPs / (step time x devices x dense peak at the plan's precision); model FLOPs = "
    "forward + backward (3x forward) of every matrix multiply, with causal attention (half the s^2 "
    "score and value products) and the LM head, no recompute; HFU adds recompute";

}  // namespace xpu
