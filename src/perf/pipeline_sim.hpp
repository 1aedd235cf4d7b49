// An event-driven simulation of one training step's pipeline schedule: every forward and backward
// of every microbatch on every stage (and model chunk), with the sends between them.
//
// Schedules (as Megatron-LM runs them):
// - vp = 1, non-interleaved 1F1B: stage i runs min(pp - i - 1, m) warm-up forwards, then
//   alternates one forward and one backward, then drains the remaining backwards.
// - vp > 1, interleaved 1F1B: each stage holds vp model chunks; the pipeline is pp x vp chunk
//   positions deep, position c x pp + i being chunk c on stage i. Microbatches go in groups of pp:
//   forwards run chunk 0 for the group's microbatches, then chunk 1, ..., then the next group;
//   backwards the same with the chunks reversed (Megatron's get_model_chunk_id /
//   get_schedule_table). Stage i runs (pp - i - 1) x 2 + (vp - 1) x pp warm-up chunk-forwards
//   (at most m x vp), then 1F1B, then drains. When m is not a multiple of pp the last group holds
//   the remainder (m mod pp microbatches), as Megatron-Core's schedule table does; when m < pp
//   there is one group of m. Megatron-LM itself asks for m to be a multiple of pp (older
//   releases) or m >= pp; those cases are still simulated here, in this order.
//
// An operation starts when its stage is free and its dependency is done: the forward of a chunk
// position waits for the forward of the previous position plus one send (p2p), the backward for
// the backward of the next position plus one send, and the backward of the last position for its
// own forward. Sends are asynchronous (never block the sender) and only cross stages, so with
// pp = 1 they cost nothing. Cost is O(total operations); events are kept only when asked for.
#pragma once

#include <vector>

#include "spec/plan.hpp"

namespace xpu {

struct PipelineInput {
  int pp = 1, vp = 1;            // stages, interleaved model chunks per stage
  long microbatches = 1;
  std::vector<double> fwd, bwd;  // seconds per microbatch for one chunk on each stage: size pp (chunk time = stage time / vp)
  double p2p = 0;                // seconds for one activation (or gradient) send between adjacent chunks
  // Zero-bubble (ZB-H1, vp = 1): bwd is split into the input gradient (bwd - wgrad), which the
  // previous stage waits for, and the weight gradient (wgrad), which nothing waits for. Stage i runs
  // the paper's order (Qi et al. 2024, 2.1): pp - i warm-up forwards, then for each microbatch k its
  // input gradient, the weight gradient of microbatch k - i and the next forward; the delayed weight
  // gradients last. Every stage so holds at most pp microbatches between a forward and its weight
  // gradient (the memory model counts pp on every stage). wgrad: one time per stage, each at most bwd.
  PipeSchedule schedule = PipeSchedule::one_f_one_b;
  std::vector<double> wgrad;
};

// One forward or backward of one microbatch through one model chunk on one stage (seconds from
// the start of the step).
struct PipelineEvent {
  int stage, chunk;
  long microbatch;
  bool backward;             // input-gradient (or, unsplit, whole) backward; also true for weight_grad
  double start, end;
  bool weight_grad = false;  // zero-bubble only: the deferred weight-gradient part
};

struct PipelineResult {
  double makespan = 0;         // s, from the first forward to the last backward
  double bubble_fraction = 0;  // idle share of all stages' time: 1 - busy / (pp x makespan)
  // With record_events: 2 x m x vp events per stage (3 x m with zero-bubble), grouped by stage
  // (stage 0 first), each stage's in the order it runs them.
  std::vector<PipelineEvent> events;
};

// The closed form's fill and drain: the pipeline step is m x (slowest stage's fwd + bwd per
// microbatch) plus this, from the stages' mean fwd + bwd (mean_T) and, for zero-bubble, their mean
// weight-gradient part (mean_W).
// - 1F1B: (pp - 1) x mean_T / vp. With vp > 1 this needs m >= pp, as Megatron-Core does (the
//   evaluator refuses fewer); with vp = 1 it holds for any m.
// - ZB-H1 (Qi et al. 2023): 1F1B's (pp - 1) x mean_T less the weight gradients moved into the
//   fill and drain: 2 (pp - 1) of them once m >= pp (the paper's (pp - 1)(F + B - W)), and
//   m + pp - 2 below that (one microbatch has only pp - 1: it walks forward and back in series
//   and only its weight gradients overlap), never below 0. For uniform stages (weight gradient
//   no longer than the input gradient) it equals the simulation of the paper's order at m = 1
//   and from m = pp on, and is within 2% of it between (tests/test_pipeline_sim.cpp).
double pipeline_fill(int pp, int vp, long microbatches, PipeSchedule schedule, double mean_T, double mean_W);

// Throws std::invalid_argument for pp, vp or microbatches below 1, fwd/bwd not of size pp, or a
// negative or non-finite time; for zero-bubble also vp > 1 or wgrad not of size pp or above bwd.
PipelineResult simulate_pipeline(const PipelineInput& in, bool record_events);

}  // namespace xpu
