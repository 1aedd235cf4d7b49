// Fills the knobs a plan request leaves empty by trying every candidate and keeping the fastest
// plan that fits (a small exhaustive loop; the full search engine is search/).
#pragma once

#include <string_view>
#include <tuple>
#include <vector>

#include "spec/hardware.hpp"
#include "spec/model.hpp"
#include "spec/plan.hpp"
#include "train/report.hpp"

namespace xpu {

// The most sequences a step may hold (check_request).
inline constexpr long kMaxGlobalBatch = 1L << 20;

struct ChooseStats {
  long considered = 0;   // layouts enumerated
  long rejected = 0;     // failed check_layout: divisibility, too few microbatches to interleave, precision
  long out_of_memory = 0;
  long evaluated = 0;    // timed
  long dominated = 0;    // skipped: recompute where the same layout fits without any
};

// Validates the explicit knobs (throws InputError naming the flag when they cannot work for
// this model and device count, e.g. a degree that does not divide), then returns the best plan.
// If no candidate fits, returns the report of the candidate that came closest (least memory
// over capacity), with feasible() false and its reason.
// With time_if_none_fit, when no candidate fits the memory model, the least-over candidate is
// timed anyway and carries a warning (validate: the measured run did fit).
// threads: the (tp, pp, cp) groups of candidates are tried on that many threads; the answer and
// the counts do not depend on it (groups are merged in order, ties going to the earlier candidate).
TrainReport choose_plan(const Model& m, const System& s, const PlanRequest& req, ChooseStats* stats = nullptr,
                        bool time_if_none_fit = false, int threads = 1);

// The candidate space of the automatic choices: one for `train`'s chooser and `search`, so that
// either finds the plan the other does. Each list is a knob's raw range, independent of the
// device count and batch; a candidate is kept where it divides what it must (the chooser filters,
// the search prunes and counts what it pruned).
constexpr int kMaxTensorParallel = 64;  // tp and etp are tried up to min(scale-up domain, 64)
constexpr int kMaxMicroBatch = 16;
// tp: 1 .. min(scale-up domain, 64) splitting the KV heads (tp_splits_kv_heads).
std::vector<int> tp_range(const Model& m, const System& s);
// pp: 1 .. layers; a zero-bubble schedule asks for a pipeline, so pp > 1 then.
std::vector<int> pp_range(const Model& m, PipeSchedule schedule);
// A knob given that applies to some values of a free one asks for those values: a --cp-mode for
// context parallelism, an FSDP implementation (--fsdp-rate, --fsdp-overlap) for ZeRO-3, a
// zero-bubble schedule for a pipeline (pp_range). Otherwise the flag would go unused, silently.
// cp: powers of two up to 16 (from 2 with a cp mode given).
std::vector<int> cp_range(const PlanRequest& q);
// ZeRO stage: 0 to 3 (3 alone with an FSDP implementation given).
std::vector<int> zero_range(const PlanRequest& q);
// micro-batch: 1 .. 16 (kept where it divides a replica's sequences).
std::vector<int> micro_batch_range();
// vp for one pp: 1 without a pipeline or with zero bubble, else every depth whose chunks are
// even (even_chunks) within layers + 2 chunks.
std::vector<int> vp_range(const Model& m, int pp, PipeSchedule schedule);
// precision: bf16 (else fp16: the two run at one rate), then fp8 where the chip runs it faster than
// bf16. fp4 and int8 are planned only when --precision asks. every: fp8 at any rate, and fp4 too
// (PlanRequest::every_precision).
std::vector<Precision> precision_range(const System& s, bool every = false);
// ep: the divisors of the experts (kept where they divide a stage's tp x dp x cp); {1} for dense.
std::vector<int> ep_range(const Model& m);
// etp: 1 .. min(scale-up domain, 64), or a larger given --tp, for MoE (kept by etp_candidate),
// explicit degrees only: the
// automatic one (0: tp, or 1 when ep does not fit in dp x cp) is always among them, and listing it
// too would time one plan twice; {0} for dense models.
std::vector<int> etp_range(const Model& m, const System& s, const PlanRequest& q);
// recompute: none, selective, full; for MLA or MoE models selective twice when free: Megatron's
// default (the attention core) and the output-discarding modules the model has (layernorm with
// mla_up_proj for MLA, with moe_act for MoE: Megatron-Bridge's recipes' choices), cheap reruns of
// memory passes and small GEMMs. Given, the one asked (with its --recompute-modules).
struct RecomputeChoice {
  Recompute recompute = Recompute::none;
  unsigned modules = kRecomputeModulesDefault;  // with selective
};
std::vector<RecomputeChoice> recompute_range(const Model& m, const PlanRequest& q);
// Whether an expert tensor degree fits a layout whose tp, dp, cp and ep are set: automatic (0)
// always; an explicit one divides tp, and ep x etp divides tp x dp x cp.
bool etp_candidate(const Layout& l, int etp);

// One layout of a planner's candidates (all but its recompute, which the planner varies in turn),
// with its place in the planner's enumeration and a lower bound of its step time.
struct Ladder {
  Layout base;
  double bound = 0;  // a lower bound of its step time, with any recompute (0: none known)
  std::size_t index = 0;
};
// Reorders a (devices, tp, pp, cp) group's ladders for the planners' cutoffs: those whose pipeline
// evaluate simulates at length (bounded_simulation, 4096 chunk-microbatches and more) after the
// rest, cheapest bound first (evaluate's lower bound of the plan without recompute); the others as
// enumerated, with their bound 0 (none known), as are those that offload activations (where
// recompute can save time).
void order_by_bound(const Model& m, const System& s, const Workload& w, int devices, std::vector<Ladder>& ladders);

// The balanced-layout variants of a plan that fits (PlanRequest::balance_pipeline), which train's
// chooser and search weigh for the fastest plan of each (devices, tp, pp, cp) group: for every vp
// (the given one; else under 1F1B every depth within layers + 2 chunks, even or not; zb-h1 1), each
// distinct balanced layout (balanced_layouts) that does not place the stages as the even split of
// that vp does, as a ladder of the plan with each recompute choice (recompute_range's order, full
// recompute's layer count sized as the chooser sizes it). None without a pipeline, with a layout
// given, under DualPipeV (its own V), or with balance_pipeline false.
std::vector<std::vector<Layout>> balanced_variants(const Model& m, const System& s, const PlanRequest& q, const Layout& l);

// The order of equally fast plans, shared by train's chooser and search (so the two pick the same
// plan of a tie): smaller model-parallel degrees (tp, pp, vp, cp, ep, etp; the data parallelism is
// what they leave), micro-batch, ZeRO stage and recompute first, then precision, the memory options
// and the stage layout (the even split first).
inline auto layout_order_key(const Layout& l) {
  return std::make_tuple(l.tp, l.pp, l.vp, l.cp, l.ep, l.etp, l.dp, l.micro_batch, l.zero, static_cast<int>(l.recompute),
                         l.recompute == Recompute::selective ? l.recompute_modules : 0u, l.recompute_layers,
                         static_cast<int>(l.precision), !l.grad_fp32, l.lowp_params,
                         l.stage_layout ? std::string_view(l.stage_layout->text) : std::string_view());
}

// Throws InputError naming the flag when an explicit knob cannot work (a degree that does not
// divide the devices, heads or batch; an unsupported precision; non-positive sizes).
void check_request(const Model& m, const System& s, const PlanRequest& req);

// Layout from a request with every knob given (defaults: sequence parallel on, overlap on).
Layout layout_from_request(const Model& m, const System& s, const PlanRequest& req);

}  // namespace xpu
