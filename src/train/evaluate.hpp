// One training step of a model on a system under a layout: the single evaluation path that train,
// search, sweep and validate all use.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "spec/hardware.hpp"
#include "spec/model.hpp"
#include "spec/pipeline_layout.hpp"
#include "spec/plan.hpp"
#include "train/report.hpp"

namespace xpu {

// Checks a layout against the model and device count. Returns Infeasible::none or a reason
// (with text in `why_text`). Pure arithmetic: divisibility and supported precision.
Infeasible check_layout(const Model& m, const System& s, const Layout& l, const Workload& w, int devices,
                        std::string* why_text);

// Megatron-Core's interleaved schedule runs microbatches in groups of pp and refuses fewer than pp
// of them (core 0.7: forward_backward_pipelining_with_interleaving raises unless the count is a
// multiple of pp; later releases accept any count of at least microbatch_group_size_per_vp_stage,
// pp by default). check_layout and the search's divisibility pass both apply it.
inline bool too_few_to_interleave(int pp, int vp, long microbatches) { return vp > 1 && microbatches < pp; }
// DualPipeV runs at least 2 pp microbatches (deepseek-ai/DualPipe asserts num_chunks >= 2 x ranks).
inline bool too_few_for_schedule(int pp, int vp, long microbatches, PipeSchedule schedule) {
  return too_few_to_interleave(pp, vp, microbatches) || (schedule == PipeSchedule::dualpipe_v && microbatches < 2L * pp);
}

// The stage that holds the LM head and the loss: the last, or with DualPipeV's V stage 0 (its
// chunk 1 is the model's last chunk).
inline int head_stage(const Layout& l) { return l.schedule == PipeSchedule::dualpipe_v ? 0 : l.pp - 1; }

// The most pipeline chunks (pp x vp) a model of this many layers splits into: Megatron-Core may
// count the embedding and the loss as one layer each (account_for_embedding_in_pipeline_split,
// account_for_loss_in_pipeline_split, as the Llama 3.1 405B recipes do with pp 16 x vp 8 over 126
// layers). check_layout refuses more; train's chooser and the search try up to it.
inline long max_pipeline_chunks(int layers) { return layers + 2L; }

// Whether an interleaved pipeline's chunks hold equal whole layers, as stock Megatron-Core builds
// them: pp x vp divides the layers, with the embedding and the loss counted as a layer each or
// not (layers, layers + 1 or layers + 2). Other splits need a hand-written
// pipeline_model_parallel_layout with chunks one layer apart, whose imbalance the evaluator's
// mean-chunk pipeline does not see; the automatic choices take only even chunks, a given vp is
// evaluated.
inline bool even_chunks(int layers, int pp, int vp) {
  if (vp <= 1) return true;
  const long chunks = static_cast<long>(pp) * vp;
  for (long extra = 0; extra <= 2; ++extra)
    if ((layers + extra) % chunks == 0) return true;
  return false;
}

// Decoder layers of chunk c of the even split of `layers` over `chunks` interleaved chunks (vp >
// 1): base = layers / chunks each, one more on chunks 1 .. min(rem, chunks - 2), and one more on
// the last where rem passes that (rem = layers mod chunks; the first and the last may hold none
// where chunks pass the layers: the embedding's and the loss's).
inline int even_chunk_layers(int layers, int chunks, int c) {
  const int base = layers / chunks, rem = layers % chunks, middle = rem < chunks - 2 ? rem : chunks - 2;
  return base + (c >= 1 && c <= middle ? 1 : 0) + (c == chunks - 1 && rem > chunks - 2 ? 1 : 0);
}

// A tensor-parallel degree the automatic choices try: it splits the KV heads evenly (Megatron-Core
// divides num_query_groups by tp and asserts; MLA has no KV heads to split). A tp above the KV
// heads, each replicated over tp / kv_heads ranks, runs in some frameworks (NeuronX Distributed)
// and is evaluated when given, never chosen.
inline bool tp_splits_kv_heads(const Model& m, int tp) { return m.is_mla() || m.kv_heads % tp == 0; }

// Megatron-Core's layout that balances the pipeline's compute (train --pipeline-layout balanced):
// the model's layers in order over pp x vp chunks (virtual rank 0's pp stages first), the
// embedding on the first, the output head, its loss and the `mtp` MTP modules on the last, so that
// the largest chunk's forward FLOPs per token at sequence length `seq` are least (ties: the evener
// split). A layer costs its projections (a MoE layer its top-k and shared experts and router) and
// the layers' mean attention core; the head 2 vocab x hidden; each MTP module what it adds to the
// model's FLOPs. Its text is the layout in --pipeline-layout syntax, e.g. "Et*4|t*4|...|tmL".
PipelineLayout balanced_pipeline_layout(const Model& m, int pp, int vp, int mtp, long seq, double tail_weight = 1.0,
                                        double moe_weight = 1.0);

// Forward FLOPs per token of decoder layer `layer` (its projections, a MoE layer's top-k and shared
// experts and router, its attention core, full or local), and what `mtp` MTP modules add to the
// model's (train/evaluate.cpp; the balanced layout's costs).
double layer_fwd_flops_per_token(const Model& m, int layer, long seq);
double mtp_fwd_flops_per_token(const Model& m, int mtp, long seq);

// The distinct balanced layouts of one plan shape: balanced_pipeline_layout at head weights 1,
// 0.75, 0.5, 0.25 and 0 and, for a MoE model, MoE weights 1 and 1.5, those that place the layers
// as an earlier weighting did left out (train/balance.cpp; kept per thread).
std::vector<std::shared_ptr<const PipelineLayout>> balanced_layouts(const Model& m, int pp, int vp, int mtp, long seq);

// Whether a plan's stage layout gives every chunk the decoder and MTP layers the even split of its
// pp and vp does, so that the two evaluate alike (true without a layout; train/balance.cpp).
bool places_as_even_split(const Model& m, const Layout& l);

// The even split's layers per stage: every stage gets floor(L/p); the remainder goes to the
// middle stages first (the first carries the embedding, the last the LM head and loss), then the
// last and the first.
inline std::vector<int> split_layers(int layers, int pp) {
  std::vector<int> out(pp, layers / pp);
  int rem = layers % pp;
  for (int i = 1; i < pp - 1 && rem > 0; ++i, --rem) ++out[i];
  for (int i : {pp - 1, 0})
    if (rem > 0) { ++out[i]; --rem; }
  return out;
}

// What a layout's chunks are made of, forward and backward per microbatch: one decoder layer of each
// kind (dense or MoE, global or local attention), the embedding lookup, one output head pass with
// its loss, and an MTP module's own pieces besides its layer.
struct ChunkCosts {
  double dense = 0, moe = 0, dense_local = 0, moe_local = 0;
  double lookup = 0, head = 0, mtp = 0;
};

// Each chunk's share of its stage's time under the plan's stage layout (pp x vp entries,
// chunk-major, each stage's summing to 1): what its layers, MTP modules, embedding and head (with
// the MTP modules' losses) cost by `c` over what its stage's chunks cost (an empty stage's chunks
// alike). The interleaved schedule is simulated with them (train/balance.cpp).
std::vector<double> layout_chunk_shares(const Model& m, const Layout& l, const ChunkCosts& c);

// The same for the even split of a plan without a layout (vp > 1): its chunks as
// even_chunk_layers sizes them, the embedding on the first, the head and MTP modules on the last.
std::vector<double> even_chunk_shares(const Model& m, const Layout& l, const ChunkCosts& c);

// The interleaved 1F1B schedule of `microbatches` over a stage layout's uneven chunks, simulated
// (perf/pipeline_sim.hpp) without sends: its makespan, from each stage's forward and backward time
// per microbatch and each chunk's share of them (layout_chunk_shares).
double layout_pipeline_time(const Layout& l, long microbatches, const std::vector<double>& fwd, const std::vector<double>& bwd,
                            const std::vector<double>& share);

// evaluate() of a plan whose stage layout is a pending --pipeline-layout balanced: every distinct
// balanced layout (balanced_layouts) evaluated, the fastest kept (train/balance.cpp).
TrainReport evaluate_balanced(const Model& m, const System& s, const Layout& l, const Workload& w, int devices,
                              bool enforce_memory, bool detail);

// A search's bar for a plan, from the plan's memory (its headroom): a step time above it cannot
// place the plan among the results (evaluate's cutoff).
using StepCutoff = std::function<double(const MemoryBreakdown&)>;

// Whether evaluate simulates the plan's pipeline with a cutoff's lower bound first: interleaved
// 1F1B over chunks of unequal decoder layers (a layout's, or the even split's where pp x vp does
// not divide the layers). Other plans take a closed form (DualPipeV its short simulation).
bool bounded_simulation(const Model& m, const Layout& l);

// Evaluates the plan. Never throws for a well-formed plan that does not fit: the report says why.
// With enforce_memory false, a plan over capacity is still timed; the report keeps feasible()
// true and says so in `warning` (used by validate, where the measured run is known to fit).
// With detail false (the search's hot loop) no text is formatted and stage_layers stays empty.
// With a cutoff, a plan whose pipeline would be simulated (uneven interleaved chunks) is first
// timed with a lower bound of that simulation (each stage's busy time plus the first forward's way
// to it and the last backward's way back); when that step time already exceeds the cutoff, the
// report is marked `bounded`, holds the bound as its step time, and the simulation is skipped.
TrainReport evaluate(const Model& m, const System& s, const Layout& l, const Workload& w, int devices,
                     bool enforce_memory = true, bool detail = true, const StepCutoff* cutoff = nullptr);

// Memory only (cheap): used to prune before timing.
MemoryBreakdown estimate_memory(const Model& m, const System& s, const Layout& l, const Workload& w);

// Share of a stage of `layers` layers that the layout's recompute reruns: recompute_layers of them
// under full recompute (1 otherwise, and when recompute_layers is 0 or covers the stage).
double recompute_share(const Layout& l, int layers);

// Full recompute of fewer layers: the fewest layers per stage (recompute_layers) with which layout
// `l` fits in memory, or 0 (every layer) when only that fits, nothing does, or the layout fits
// without any recompute (where rerunning layers only loses time).
// `bare_fits_known_false`: the caller has already found that the layout without recompute does not
// fit (the search's dominance pass), so that check is skipped.
int fewest_recompute_layers(const Model& m, const System& s, Layout l, const Workload& w,
                            bool bare_fits_known_false = false);

// The terms behind a report, each with its origin (data file and field, or formula).
std::vector<ExplainLine> explain(const Model& m, const System& s, const TrainReport& r);

}  // namespace xpu
