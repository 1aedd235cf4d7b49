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
// pp = 1 they cost nothing. Cost is O(total operations), or without events for a long
// 1F1B step, O(the operations of 8 to G / 4 of its G microbatch groups) (steady_1f1b_makespan);
// events are kept only when asked for.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "spec/plan.hpp"

namespace xpu {

struct PipelineInput {
  int pp = 1, vp = 1;            // stages, interleaved model chunks per stage
  long microbatches = 1;
  std::vector<double> fwd, bwd;  // seconds per microbatch for one chunk on each stage: size pp (chunk time = stage time / vp);
                                 // DualPipeV and interleaved 1F1B (vp > 1) may give each chunk its own: size pp x vp,
                                 // chunk-major, entry c x pp + i chunk c on stage i (set_dualpipe_chunks; an uneven
                                 // --pipeline-layout's chunks, train/balance.cpp)
  double p2p = 0;                // seconds for one activation (or gradient) send between adjacent chunks
  // Zero-bubble (ZB-H1, vp = 1): bwd is split into the input gradient (bwd - wgrad), which the
  // previous stage waits for, and the weight gradient (wgrad), which nothing waits for. Stage i runs
  // the paper's order (Qi et al. 2024, 2.1): pp - i warm-up forwards, then for each microbatch k its
  // input gradient, the weight gradient of microbatch k - i and the next forward; the delayed weight
  // gradients last. Every stage so holds at most pp microbatches between a forward and its weight
  // gradient (the memory model counts pp on every stage). wgrad: one time per stage, each at most bwd.
  PipeSchedule schedule = PipeSchedule::one_f_one_b;
  std::vector<double> wgrad;
  // DualPipeV (vp = 2, microbatches >= 2 pp; fwd, bwd and wgrad per chunk): each rank runs the
  // order of deepseek-ai/DualPipe's DualPipeV.step: 2 (pp - i - 1) chunk-0 forwards; i + 1 pairs of
  // chunk-0 and chunk-1 forwards; pp - i - 1 of (chunk-1 input gradient, a deferred weight gradient,
  // chunk-1 forward); m - 2 pp + i + 1 of (chunk-0 forward paired with chunk-1 backward, chunk-1
  // forward paired with chunk-0 backward) (the last rank runs its first such forward and backward
  // apart); pp - i - 1 of (chunk-1 backward, chunk-1 forward paired with chunk-0 backward); i + 1 of
  // (chunk-1 backward, chunk-0 backward), the later half split with the weight gradient deferred;
  // pp - i - 1 of (a weight gradient, chunk-0 input gradient); the i + 1 weight gradients left.
  // A pair takes fwd + bwd - pair_saving (its all-to-all under the other's compute: one time per
  // stage, each at most min(fwd, bwd)); wgrad as for zero-bubble.
  std::vector<double> pair_saving;
};

// DualPipeV's per-chunk times (2 pp entries, chunk-major) from each stage's totals and its chunk
// 0's part: chunk 1 has the rest; each clamped into its valid range (times >= 0, wgrad <= bwd,
// saving <= min(fwd, bwd)).
void set_dualpipe_chunks(PipelineInput& in, const std::vector<double>& fwd, const std::vector<double>& bwd,
                         const std::vector<double>& wgrad, const std::vector<double>& pair, const std::vector<double>& fwd0,
                         const std::vector<double>& bwd0, const std::vector<double>& wgrad0, const std::vector<double>& pair0);

// Interleaved 1F1B with uneven chunks: each chunk's times (pp x vp entries, chunk-major) from its
// stage's totals and the chunk's share of them (share: pp x vp entries, each stage's summing to 1).
void set_interleaved_chunks(PipelineInput& in, const std::vector<double>& fwd, const std::vector<double>& bwd,
                            const std::vector<double>& share);

// DualPipeV: what a pair saves on stage i when it runs chunk c_fwd's forward beside chunk c_bwd's
// backward: the mean of the two chunks' savings, at most either pass (a pair never ends sooner
// than its longer half). Per-stage input: the stage's saving.
double dualpipe_pair_saving(const PipelineInput& in, int i, int c_fwd, int c_bwd);

// Chunk position (0 .. pp x vp - 1, the order a microbatch's forward visits them) of chunk `chunk`
// on stage `stage`: interleaved c x pp + i; DualPipeV's V, i going down and 2 pp - 1 - i back.
long chunk_position(PipeSchedule s, int pp, int stage, int chunk);
// The stage that holds chunk position `pos` (inverse of chunk_position).
int stage_of_position(PipeSchedule s, int pp, long pos);

// DualPipeV: the forward-backward pairs stage `stage` runs in one step (its saving counts this
// many times): 2 m - 3 pp + stage + 1, one fewer on the last stage.
long dualpipe_pairs(int pp, long microbatches, int stage);

// DualPipeV: the most chunk-microbatches of activations stage `stage` holds at once, per chunk:
// {2 pp - stage on chunk 0, stage + 1 on chunk 1} (a pair's forward counted before its backward
// frees the other chunk's), 2 pp + 1 together: the DualPipe table's PP + 1, split unevenly, so a
// stage whose chunks differ in layers weighs each by its own (tests/test_pipeline_sim.cpp).
std::pair<long, long> dualpipe_held(int pp, int stage);

// One forward or backward of one microbatch through one model chunk on one stage (seconds from
// the start of the step).
struct PipelineEvent {
  int stage, chunk;
  long microbatch;
  bool backward;             // input-gradient (or, unsplit, whole) backward; also true for weight_grad
  double start, end;
  bool weight_grad = false;  // zero-bubble only: the deferred weight-gradient part
  // DualPipeV: 1 for the forward of a forward-backward pair, 2 for its backward (the next event of
  // the stage, with the same start and end); 0 otherwise.
  int paired = 0;
};

struct PipelineResult {
  double makespan = 0;         // s, from the first forward to the last backward
  double bubble_fraction = 0;  // idle share of all stages' time: 1 - busy / (pp x makespan)
  std::vector<double> stage_busy;  // DualPipeV only (else empty): each stage's busy seconds
  // With record_events: 2 x m x vp events per stage (3 x m with zero-bubble; with DualPipeV 4 m
  // plus the weight gradients split off), grouped by stage (stage 0 first), each stage's in the
  // order it runs them.
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
// Not for DualPipeV (std::invalid_argument): dualpipe_closed_form.
double pipeline_fill(int pp, int vp, long microbatches, PipeSchedule schedule, double mean_T, double mean_W);

// DualPipeV's closed form on uniform stages, from per-chunk times: 2 m (F + B) on every stage, less
// the pairs' saving S on the last stage's 2 m - 2 pp - 1 pairs beyond the fill, plus the README of
// deepseek-ai/DualPipe's bubble (pp - 1)(F&B + B - 3W) with F&B = F + B - S (pp ranks are its
// PP / 2). Exact against the simulation when the input gradient takes as long as the forward
// (B - W = F, the setting of that table), for m >= 2 pp (tests/test_pipeline_sim.cpp); the
// evaluator runs the simulation itself, which holds for any times.
double dualpipe_closed_form(int pp, long microbatches, double F, double B, double W, double S);
// Its idle part, the table's bubble (pp - 1)(F&B + B - 3W) with F&B = F + B - S: the closed form
// is the last stage's busy time, 2 m (F + B) less its 2 m - 2 pp - 1 pairs' saving, plus this.
double dualpipe_bubble(int pp, double F, double B, double W, double S);

// DualPipeV's step (pipeline only) for the evaluator: the simulation of min(m, 4 pp) microbatches,
// and beyond that each microbatch at the busiest stage's pace, 2 (fwd + bwd - pair_saving) (two
// pairs per stage and microbatch in the steady phase). Exact on uniform stages (the steady phase
// repeats); within 1% of the whole simulation with uneven ones (tests/test_pipeline_sim.cpp), at
// a cost independent of m, as the evaluator runs it for every plan a search considers.
double dualpipe_makespan(const PipelineInput& in);

// 1F1B's makespan, interleaved (vp > 1) or not, without simulating every group of microbatches, exact:
// nullopt where this does not apply, and simulate_pipeline (which tries it first when no events
// are asked for) then simulates the whole step.
// In the steady phase every stage repeats the same operations one group later (Q = 2 x g x vp
// operations, g microbatches a group), and each waits only on its own stage's previous operation
// and on one 1 to 2 g positions earlier in another stage's order (the same forward one stage up:
// 2; a chunk's first forward on the last stage's previous chunk: 2 g - 2 (pp - 1); backwards the
// mirror; the last position's backward on its forward: 1). End times are max-plus linear in the
// earlier ones, so once every stage's end times over Q consecutive positions equal those one
// period earlier plus one constant lambda, every later steady operation repeats them plus lambda,
// whatever the number of groups: a step of G full groups takes the simulation of G' < G (the same
// warm-up, remainder group and drain) plus (G - G') lambda. G' starts at 8 and doubles while no
// such window shows (uneven chunks can take long to settle), up to G / 4 (so a step that never
// settles costs at most half again its whole simulation); nullopt past that, for fewer than 32
// full groups, and where the shortened step would group its microbatches otherwise (a group size
// above pp chosen for the remainder). Exact in exact arithmetic; in floating point within about
// 1e-13 of the whole simulation (the planners compare step times on a coarser grid, tie_grid).
std::optional<double> steady_1f1b_makespan(const PipelineInput& in);

// Throws std::invalid_argument for pp, vp or microbatches below 1, fwd/bwd not of size pp, or a
// negative or non-finite time; for zero-bubble also vp > 1 or wgrad not of size pp or above bwd;
// for DualPipeV also vp != 2, microbatches below 2 pp, wgrad as for zero-bubble, or pair_saving
// not of size pp or above min(fwd, bwd).
PipelineResult simulate_pipeline(const PipelineInput& in, bool record_events);

}  // namespace xpu
