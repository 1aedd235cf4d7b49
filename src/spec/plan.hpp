// A training plan: workload (sequence length, batch) plus parallel layout and settings.
// Knobs left empty (std::nullopt) are chosen by train/choose.hpp.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spec/hardware.hpp"
#include "spec/model.hpp"
#include "spec/pipeline_layout.hpp"

namespace xpu {

enum class Recompute { none, selective, full };

// What selective recompute reruns: Megatron-Core's --recompute-modules (with
// --recompute-granularity selective), a set of these bits. core_attn (the default) reruns the
// attention core from its stored q, k, v; layernorm, mla_up_proj and moe_act discard their outputs
// after use and rerun them in backward ("output-discarding checkpointing"): the two pre-block norms,
// MLA's up-projections and RoPE from the stored latents, the routed experts' activation function;
// mlp, moe and shared_experts checkpoint the whole submodule (a dense layer's MLP, a MoE layer's
// MLP with its dispatch and combine, the shared experts), keeping its input only.
enum RecomputeModule : unsigned {
  kRecomputeCoreAttn = 1u << 0,
  kRecomputeLayernorm = 1u << 1,
  kRecomputeMlaUpProj = 1u << 2,
  kRecomputeMoeAct = 1u << 3,
  kRecomputeMlp = 1u << 4,
  kRecomputeMoe = 1u << 5,
  kRecomputeSharedExperts = 1u << 6,
};
inline constexpr unsigned kRecomputeModulesDefault = kRecomputeCoreAttn;
inline constexpr unsigned kRecomputeModulesAll = (1u << 7) - 1;
// The modules' names in Megatron's order; joined by '+' ("core_attn+mla_up_proj"). parse takes
// names separated by ',' or '+'.
std::vector<std::string> recompute_module_names(unsigned modules);
std::string recompute_modules_name(unsigned modules);
// Empty optional, and *bad set to the offending name, on an unknown or empty name.
std::optional<unsigned> parse_recompute_modules(std::string_view s, std::string* bad);

// Pipeline schedule: 1F1B (Megatron's, interleaved when vp > 1), or zero-bubble ZB-H1 (Qi et al.
// 2023, "Zero Bubble Pipeline Parallelism"): the backward split into the input gradient (B) and the
// weight gradient (W), W deferred to fill the bubbles, at 1F1B's activation memory; vp = 1 only.
// Or DualPipeV (DeepSeek-AI's DualPipe cut in half, deepseek-ai/DualPipe): each of the pp ranks
// holds two model chunks in a V (chunk 0 is stage i going down, chunk 1 stage 2 pp - 1 - i coming
// back, so rank 0 holds the embedding and the loss), microbatches enter both directions' work at
// once, and a forward of one chunk runs paired with a backward of the other, each one's expert
// all-to-all under the other's compute; vp = 2 (the two chunks), at least 2 pp microbatches.
enum class PipeSchedule { one_f_one_b, zero_bubble, dualpipe_v };
const char* schedule_name(PipeSchedule s);
std::optional<PipeSchedule> parse_schedule(std::string_view s);

// Context parallelism: ring attention (K/V blocks passed around the cp ranks, overlapped with
// attention; Megatron's p2p) or all-gathered K/V (the whole sequence's K/V gathered before
// attention and its gradient reduce-scattered after, not overlapped; as Llama 3 trained).
enum class CpMode { ring, all_gather };
const char* cp_mode_name(CpMode m);
std::optional<CpMode> parse_cp_mode(std::string_view s);
// The attention core's kernel: flash attention (fused, tiled; no s x s matrix in memory, causal
// blocks skipped) or unfused (Megatron's pre-2023 path: QK^T and PV as batched GEMMs over the
// whole s x s score matrix, a fused scale-mask-softmax and dropout between them, each a pass over
// that matrix in memory; the softmax output and dropout mask are stored for backward).
enum class AttentionKernel { flash, unfused };
const char* attention_kernel_name(AttentionKernel a);
std::optional<AttentionKernel> parse_attention_kernel(std::string_view s);
// Order in which the parallel dimensions number the ranks, tensor parallelism innermost. Megatron's
// default, tp-cp-dp-pp, puts the data-parallel replicas of a pipeline stage next to each other and
// the stages a whole stage group apart; tp-cp-pp-dp (Megatron --use-tp-pp-dp-mapping, NeMo's
// TP_PP_DP_MAPPING) keeps a replica's stages together and makes data parallelism outermost, so a
// replica can sit in one scale-up domain and its gradients cross the scale-out network. Expert
// parallelism is carved next to tensor parallelism in both.
enum class RankOrder { dp_then_pp, pp_then_dp };
const char* rank_order_name(RankOrder o);
std::optional<RankOrder> parse_rank_order(std::string_view s);
// How Megatron-Core routes MoE tokens to their experts. flex: DeepEP or HybridEP kernels
// (moe_token_dispatcher_type "flex") that exchange tokens device-initiated, the split sizes never
// leaving the GPU. alltoall: the "alltoall" dispatcher, which copies each layer's split sizes to the
// host for a variable-size all_to_all_single and synchronises the device on them every MoE layer
// forward (MoEAlltoAllTokenDispatcher's cuda_dtoh_point / cuda_sync_point). The synchronisation
// and the host work behind it cost kernel.moe_alltoall_overhead per MoE layer and microbatch.
enum class MoeDispatcher { flex, alltoall };
const char* moe_dispatcher_name(MoeDispatcher d);
std::optional<MoeDispatcher> parse_moe_dispatcher(std::string_view s);
const char* recompute_name(Recompute r);
std::optional<Recompute> parse_recompute(std::string_view s);

// The ZeRO-3 / FSDP implementation, where it is slower than the fabric. Early DeepSpeed stage 3
// (0.3.x, 2021) gathered parameter by parameter, copying each gathered tensor and synchronising the
// device after every gather (DeepSpeed PR #1188), so its gathers ran at a rate set by the software,
// far below NVLink or InfiniBand, and did not overlap compute. Unset, ZeRO-3 traffic costs what the
// fabric's collectives cost and hides under compute up to the calibration's fsdp_overlap.
struct FsdpImpl {
  double rate = 0;      // bytes/s per device at which a gather (or reduce-scatter) delivers a layer's
                        // full bytes, when that is slower than the fabric; 0 = the fabric alone
  double overlap = -1;  // share of compute that can hide ZeRO-3 traffic; < 0 = collectives.fsdp_overlap
  bool set() const { return rate > 0 || overlap >= 0; }
};

// The precisions whose primary weights can be kept (and gathered) in the matrix precision
// (Layout::lowp_params; Transformer Engine's fp8/fp4 parameters).
constexpr bool can_keep_lowp_params(Precision p) { return p == Precision::fp8 || p == Precision::fp4; }

// Fully specified layout, as the evaluator takes it.
struct Layout {
  int tp = 1, pp = 1, vp = 1, dp = 1, cp = 1, ep = 1;
  int etp = 0;                       // expert tensor parallelism (MoE); 0 = automatic: tp when ep
                                     // fits in dp x cp, else 1 (Megatron-Core's default rule)
  int micro_batch = 1;
  int zero = 1;                      // 0..3
  int zero_group = 0;                // ZeRO >= 1: the dp x cp ranks that share one sharded copy of
                                     // the optimizer state (and gradients, weights by stage),
                                     // consecutive in that group; the copies are replicated across
                                     // the zero_replicas() groups, which all-reduce their gradient
                                     // shards (hybrid sharding: PyTorch HSDP, MaxText's fsdp x data
                                     // axes, Megatron's --num-distributed-optimizer-instances).
                                     // 0 = all of dp x cp
  Recompute recompute = Recompute::none;
  int recompute_layers = 0;          // full recompute: layers of each pipeline stage rerun, the
                                     // others keep their activations (Megatron's --recompute-method
                                     // block --recompute-num-layers); 0 = every layer
  unsigned recompute_modules = kRecomputeModulesDefault;  // selective recompute: RecomputeModule bits
  Precision precision = Precision::bf16;
  PipeSchedule schedule = PipeSchedule::one_f_one_b;
  CpMode cp_mode = CpMode::ring;
  AttentionKernel attention = AttentionKernel::flash;
  FsdpImpl fsdp;                     // ZeRO-3 only
  bool sequence_parallel = true;     // with tp > 1: reduce-scatter/all-gather instead of all-reduce
  RankOrder rank_order = RankOrder::dp_then_pp;
  bool overlap_grad_reduce = true;   // data-parallel traffic hidden under the last backward
  bool grad_fp32 = true;             // gradients accumulated and reduced in fp32 (else bf16)
  bool lowp_params = false;          // fp8/fp4 only: primary weights kept at that precision
                                     // (no bf16 copy; gathers move the low-precision bytes)
  MoeDispatcher moe_dispatcher = MoeDispatcher::flex;  // MoE only
  bool moe_a2a_overlap = false;      // MoE, ep > 1: Megatron-Core's --overlap-moe-expert-parallel-comm
                                     // (a microbatch's forward paired with another's backward, each
                                     // one's all-to-all under the other's compute)
  bool offload_activations = false;  // what each layer keeps for backward goes to host memory after
                                     // its forward and returns before its backward, over the host
                                     // link (MaxText's offloading remat policies, Megatron-Core's
                                     // activation offloading); needs the system's [host] bandwidth
  int mtp_layers = 0;                // multi-token-prediction modules trained (Model::mtp_layers;
                                     // Megatron-Core's --mtp-num-layers): each one more layer of the
                                     // model's last kind, its projection, norms and a second pass of
                                     // the output head, on the stage that holds the head
  // A hand-written pipeline layout (Megatron-Core's --pipeline-model-parallel-layout): the layers
  // and MTP layers of each of the pp x vp chunks; null = the even split (split_layers).
  std::shared_ptr<const PipelineLayout> stage_layout;

  // The ranks one sharded copy of the ZeRO state spans, and the copies (hybrid sharding).
  int zero_shard() const { return zero_group > 0 ? zero_group : dp * cp; }
  int zero_replicas() const { return zero_group > 0 ? std::max(1, dp * cp / zero_group) : 1; }
  // The expert tensor-parallel degree in effect.
  int expert_tp() const {
    if (etp > 0) return etp;
    return (static_cast<long>(dp) * cp) % ep == 0 ? tp : 1;
  }
  // The expert data-parallel degree: the ranks of a pipeline stage (tp x dp x cp) over the
  // expert-parallel and expert-tensor-parallel groups (Megatron-Core's expert rank order
  // etp, ep, edp); each expert weight is replicated, and its gradient reduced, over these ranks.
  int expert_dp() const {
    const long ranks = static_cast<long>(tp) * dp * cp, per = static_cast<long>(ep) * expert_tp();
    return static_cast<int>(std::max(1L, ranks / per));
  }
  // The expert data-parallel ranks one sharded copy of the experts' ZeRO state spans: the expert
  // data-parallel group split into the same number of copies as the dense state (check_layout
  // requires that they divide it).
  int expert_zero_shard() const { return std::max(1, expert_dp() / zero_replicas()); }
};

// The gradients' type: fp32, or the 16-bit type of the run (fp16 for an fp16 run, as Megatron's
// --fp16 reduces them; else bf16).
inline const char* grad_name(const Layout& l) {
  return l.grad_fp32 ? "fp32" : l.precision == Precision::fp16 ? "fp16" : "bf16";
}

struct Workload {
  long seq_len = 0;                  // tokens per sequence
  long global_batch = 0;             // sequences per optimizer step
  // Mixture-of-experts routing (ignored for dense models):
  double moe_capacity_factor = 0;    // > 0: token dropping with expert buffers padded to this
                                     // multiple of the mean load (GShard/MaxText "dropped"); the
                                     // experts compute and exchange the padded buffers. 0 = dropless.
  double moe_imbalance = 0;          // dropless only: busiest expert rank's tokens / mean (>= 1);
                                     // 0 = the model file's [moe] routing_imbalance

  // Expert load factor in effect: what the experts (and the dispatch) carry relative to perfectly
  // balanced, dropless routing.
  double moe_load(double model_default) const {
    if (moe_capacity_factor > 0) return moe_capacity_factor;
    return moe_imbalance > 0 ? moe_imbalance : model_default;
  }
};

// What the user asked for; empty knobs are free.
struct PlanRequest {
  int devices = 0;
  Workload work;
  std::optional<int> tp, pp, vp, dp, cp, ep, etp, micro_batch, zero;
  std::optional<Recompute> recompute;
  std::optional<int> recompute_layers;   // with full recompute; chosen (the fewest that fit) if omitted
  std::optional<unsigned> recompute_modules;  // with selective recompute (RecomputeModule bits);
                                              // core_attn if omitted
  std::optional<Precision> precision;
  // With precision omitted: choose among every matrix precision the chip has a rate for (fp4, and
  // fp8 at the bf16 rate, too), not only bf16 and a faster fp8. validate sets it: a measured run's
  // unstated precision is what its owners tuned (MLPerf Training 5.1 ships NVFP4 configs).
  bool every_precision = false;
  // fp8/fp4 primary weights (Layout::lowp_params: Megatron/Transformer Engine --fp8-param-gather,
  // weights kept and gathered in the matrix precision): pinned on or off, chosen if omitted.
  std::optional<bool> lowp_params;
  // Gradients accumulated and reduced in fp32 (true) or in the run's half precision (false):
  // pinned, or chosen if omitted (Layout::grad_fp32).
  std::optional<bool> grad_fp32;
  PipeSchedule schedule = PipeSchedule::one_f_one_b;  // not searched: as given
  std::optional<CpMode> cp_mode;                       // not searched: as given (ring if not); given
                                                      // with cp free, it asks for cp > 1
  std::optional<AttentionKernel> attention;  // not searched: as given, else the chip's default
                                             // (flash where the chip runs FlashAttention)
  RankOrder rank_order = RankOrder::dp_then_pp;      // not searched: as given
  MoeDispatcher moe_dispatcher = MoeDispatcher::flex; // not searched: as given
  bool moe_a2a_overlap = false;                       // not searched: as given
  bool offload_activations = false;                   // not searched: as given
  std::optional<int> mtp_layers;                      // not searched: as given, else the model's
  std::shared_ptr<const PipelineLayout> stage_layout;  // not searched: as given (fixes pp and vp)
  // Where no stage_layout is given: besides the even split, the balanced layouts of the fastest
  // plan of every (devices, tp, pp, cp) group with a pipeline (balanced_variants, train/choose.hpp).
  // false: the even split alone (--pipeline-layout even; validate, whose measured runs that state
  // no layout ran Megatron's default split).
  bool balance_pipeline = true;
  FsdpImpl fsdp;                                      // not searched: as given; set with ZeRO
                                                      // free, it asks for ZeRO-3
  int zero_group = 0;                                 // not searched: as given (Layout::zero_group);
                                                      // set with ZeRO free, it asks for ZeRO 1..3
};

// The knobs a plan holds as given (not searched): copied from the request onto every layout that
// `train` and `search` build.
inline void apply_given_knobs(Layout& l, const PlanRequest& q, const Model& m, const System& s) {
  l.schedule = q.schedule;
  l.cp_mode = q.cp_mode.value_or(CpMode::ring);
  l.attention = q.attention.value_or(s.chip.flash_attention ? AttentionKernel::flash : AttentionKernel::unfused);
  l.moe_dispatcher = q.moe_dispatcher;
  l.moe_a2a_overlap = q.moe_a2a_overlap;
  l.offload_activations = q.offload_activations;
  l.mtp_layers = q.mtp_layers.value_or(m.mtp_layers);
  l.stage_layout = q.stage_layout;
  l.rank_order = q.rank_order;
  l.fsdp = q.fsdp;
  l.zero_group = q.zero_group;
  l.recompute_modules = q.recompute_modules.value_or(kRecomputeModulesDefault);
}

// The memory options the planner tries for a precision, cheapest first: 0 fp32 gradients, 1 bf16
// gradients, 2 bf16 gradients and low-precision primary weights (fp8 only, unless asked: NVFP4
// recipes keep bf16 weights and gather them in bf16, FP4 primary weights are no recipe's); a
// request that pins lowp_params or the gradient precision keeps only the options that agree with it. `train` and `search`
// share these.
inline constexpr int kMemoryOptions = 3;
inline bool memory_option_allowed(const PlanRequest& q, Precision p, int option) {
  if (option == 2 && !can_keep_lowp_params(p)) return false;
  if (option == 2 && p == Precision::fp4 && !(q.lowp_params && *q.lowp_params)) return false;
  if (q.grad_fp32 && *q.grad_fp32 != (option == 0)) return false;
  return !q.lowp_params || *q.lowp_params == (option == 2);
}
inline void apply_memory_option(Layout& l, int option) {
  l.grad_fp32 = option == 0;
  l.lowp_params = option == 2;
}

}  // namespace xpu
