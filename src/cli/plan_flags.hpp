// The model / system / workload / layout flags shared by `train` and `search`, declared once.
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <memory>
#include <optional>
#include <string>

#include "spec/error.hpp"
#include "spec/plan.hpp"
#include "train/evaluate.hpp"

namespace xpu::cli {

// An on|off flag's value; anything else is a one-line error naming the flag.
inline bool on_off(const char* flag, const std::string& v) {
  if (v != "on" && v != "off") throw InputError(flag, "'" + v + "' is not on or off");
  return v == "on";
}

inline Precision training_precision(const std::string& text);

struct PlanFlags {
  std::string pipeline_layout, model, system, precision, recompute, recompute_modules, grad_precision, schedule, cp_mode, attention, rank_order, lowp_params, moe_dispatcher, moe_a2a_overlap, offload_activations;
  int devices = 0;
  long seq_len = 0, global_batch = 0;
  std::optional<double> moe_capacity_factor, moe_imbalance;
  std::optional<double> fsdp_rate_gbps, fsdp_overlap;
  std::optional<int> tp, pp, vp, dp, cp, ep, etp, micro_batch, zero, zero_group, recompute_layers, mtp_layers;

  // `what_if_omitted`: how a free layout knob is handled ("chosen if omitted", "searched if omitted").
  void add_to(CLI::App* c, const std::string& what_if_omitted) {
    const std::string free = " (" + what_if_omitted + ")";
    c->add_option("--model", model, "Catalog model id, or a path to a Hugging Face config.json or model TOML")->required();
    c->add_option("--system", system, "Catalog system id, or a path to a system TOML")->required();
    c->add_option("--devices", devices, "Devices (the system's device unit: GPU, chip, NeuronCore)")->required();
    c->add_option("--seq-len", seq_len, "Tokens per sequence")->required();
    c->add_option("--global-batch", global_batch, "Sequences per optimizer step")->required();
    c->add_option("--micro-batch", micro_batch, "Sequences per microbatch" + free);
    c->add_option("--tp", tp, "Tensor-parallel degree" + free);
    c->add_option("--pp", pp, "Pipeline-parallel degree" + free);
    c->add_option("--vp", vp, "Interleaved pipeline chunks per stage" + free);
    c->add_option("--dp", dp, "Data-parallel degree (devices / (tp x pp x cp) if omitted)");
    c->add_option("--cp", cp, "Context-parallel degree" + free);
    c->add_option("--ep", ep, "Expert-parallel degree, MoE only" + free);
    c->add_option("--etp", etp, "Expert tensor-parallel degree, MoE only" + free);
    c->add_option("--zero", zero, "ZeRO stage 0-3 (3 = FSDP)" + free);
    c->add_option("--recompute", recompute, "none | selective | full" + free);
    c->add_option("--recompute-layers", recompute_layers,
                  "With --recompute full: layers per pipeline stage rerun, the rest keep their activations (Megatron's "
                  "block method). --recompute full alone reruns every layer; with --recompute left to the planner, full "
                  "recompute reruns the fewest layers that fit");
    c->add_option("--recompute-modules", recompute_modules,
                  "With --recompute selective (implied when --recompute is left out): what it reruns, Megatron-Core's "
                  "--recompute-modules, separated by ',' or '+': core_attn (the attention core), layernorm (the pre-block norms "
                  "that are not fused into a projection: MLA's input norm, a MoE layer's pre-MLP norm), mla_up_proj (MLA's up-projections and RoPE), moe_act (the routed experts' activation), mlp "
                  "(dense MLP blocks), moe (whole MoE blocks, dispatch included), shared_experts (default core_attn)");
    c->add_option("--precision", precision, "Matrix precision: bf16 fp16 fp8 fp4 int8 (tf32/fp32 training is refused: fp32 tensors are not sized); "
                  "when omitted, bf16 or fp8 where the chip runs fp8 faster (fp4 and int8 only when given)" + free);
    c->add_option("--lowp-params", lowp_params,
                  "on | off: fp8/fp4 primary weights, kept and gathered in the matrix precision (Megatron "
                  "--fp8-param-gather; 'lowp-w' in the layout) rather than bf16 with a low-precision copy" + free);
    c->add_option("--grad-precision", grad_precision,
                  "fp32 | bf16 | fp16: gradients accumulated and reduced in fp32, or in the run's half precision "
                  "('g-bf16' in the layout; bf16 and fp16 both name it)" + free);
    c->add_option("--schedule", schedule,
                  "Pipeline schedule: 1f1b (Megatron's; interleaved when vp > 1), zb-h1 (zero-bubble, vp 1) or dualpipev (DeepSeek's DualPipe cut in half: two chunks per stage in a V, forward-backward pairs hiding the expert all-to-all, vp 2, at least 2 pp microbatches) (default 1f1b)");
    c->add_option("--cp-mode", cp_mode,
                  "Context parallelism: ring (K/V passed around, overlapped with attention) or all-gather (K/V gathered "
                  "before attention) (default ring; with --cp left out, cp > 1 is chosen)");
    c->add_option("--attention", attention,
                  "Attention kernel: flash (fused, no s x s matrix in memory) or unfused (QK^T, softmax, dropout and PV as "
                  "separate passes over the s x s scores, as Megatron before 2023) (default flash)");
    c->add_option("--rank-order", rank_order,
                  "How ranks are numbered, tensor parallelism innermost: tp-cp-dp-pp (Megatron's default: a stage's "
                  "data-parallel replicas side by side, pipeline stages a stage group apart) or tp-cp-pp-dp (Megatron "
                  "--use-tp-pp-dp-mapping: a replica's stages side by side, data parallelism outermost) (default "
                  "tp-cp-dp-pp)");
    c->add_option("--zero-group", zero_group,
                  "Hybrid sharding: shard the ZeRO state over groups of this many consecutive data-parallel ranks "
                  "(dp x cp) and replicate it across the groups, which all-reduce their gradient shards once a step "
                  "(PyTorch HSDP, MaxText's ici_fsdp x dcn_data, Megatron --num-distributed-optimizer-instances = dp x cp "
                  "/ this); plans whose dp x cp it does not divide are skipped (default: one group of all dp x cp ranks; "
                  "with --zero left out, ZeRO 1-3 are tried)");
    c->add_option("--fsdp-rate", fsdp_rate_gbps,
                  "ZeRO-3 only: GB/s per device at which the implementation gathers (or reduce-scatters) a layer, when "
                  "slower than the fabric (early DeepSpeed stage 3: about 24; docs/ACCURACY.md) (default: the fabric's "
                  "collectives alone; with --zero left out, ZeRO-3 is chosen)");
    c->add_option("--fsdp-overlap", fsdp_overlap,
                  "ZeRO-3 only: share of compute that can hide its gathers and reduce-scatters, 0-1 (default: the "
                  "calibration's collectives.fsdp_overlap; with --zero left out, ZeRO-3 is chosen)");
    c->add_option("--moe-dispatcher", moe_dispatcher,
                  "MoE token dispatcher: flex (DeepEP/HybridEP, device-initiated) or alltoall (Megatron's "
                  "'alltoall' dispatcher: split sizes copied to the host and the device synchronised every MoE layer, "
                  "kernel.moe_alltoall_overhead per layer and microbatch) (default flex)");
    c->add_option("--moe-a2a-overlap", moe_a2a_overlap,
                  "on | off: MoE all-to-all overlapped with compute (Megatron --overlap-moe-expert-parallel-comm: one "
                  "microbatch's forward paired with another's backward; needs ep > 1, no full recompute, vp > 1 when pp "
                  "> 1) (default off)");
    c->add_option("--offload-activations", offload_activations,
                  "on | off: what each layer keeps for backward goes to host memory after its forward and comes back "
                  "before its backward, over the system's host link ([host] bandwidth: PCIe, NVLink-C2C), beside the "
                  "compute (MaxText's offloading remat policies, Megatron-Core's activation offloading); needs a "
                  "system whose file gives [host] (default off)");
    c->add_option("--pipeline-layout", pipeline_layout,
                  "Hand-written pipeline layout in Megatron-Core's --pipeline-model-parallel-layout syntax: stages "
                  "split by '|' (virtual rank 0's pp stages, then rank 1's, ...), E embedding, t decoder layer, m MTP "
                  "layer, L loss, x*N and (...)*N repeat, commas ignored; e.g. \"Et*4|(t*4|)*14,tmL\" (DeepSeek-V3, pp 16); "
                  "needs --pp, sets vp to its stages / pp; E first, L last; or 'balanced': the layout whose largest chunk "
                  "has the least forward FLOPs, the embedding on the first chunk and the head, loss and MTP modules on "
                  "the last, over --pp x --vp (default 1) chunks, the even split written out weighed too; or 'even': the layers split evenly (Megatron's "
                  "default) and nothing else (default: the planner weighs the even split and, for the fastest plan of "
                  "each tp, pp and cp, the balanced layouts at every vp, and keeps the fastest)");
    c->add_option("--mtp-layers", mtp_layers,
                  "Multi-token-prediction modules trained (Megatron-Core --mtp-num-layers; DeepSeek-V3's MTP depth): each "
                  "one more layer like the model's last, a 2 hidden x hidden projection and a second pass of the output "
                  "head, on the stage holding the head; 0 leaves them out (default: the model's mtp_layers, "
                  "num_nextn_predict_layers in a config.json)");
    c->add_option("--moe-capacity-factor", moe_capacity_factor,
                  "MoE token dropping: expert buffers padded to this multiple of the mean load (default: dropless)");
    c->add_option("--moe-imbalance", moe_imbalance,
                  "MoE dropless routing: busiest expert rank's load / mean, >= 1 (default: the model file's [moe] routing_imbalance)");
  }

  // The model is needed for --pipeline-layout balanced (its layers' costs).
  PlanRequest request(const Model& m) const {
    PlanRequest q;
    q.devices = devices;
    q.work.seq_len = seq_len;
    q.work.global_batch = global_batch;
    // Given, each must be at least 1 (0 is the request's "not given"; check_request checks the rest).
    if (moe_capacity_factor && !(*moe_capacity_factor >= 1))
      throw InputError("--moe-capacity-factor", "must be at least 1 (below it tokens are dropped by design, which the "
                                                "model FLOPs and MFU do not discount)");
    if (moe_imbalance && !(*moe_imbalance >= 1)) throw InputError("--moe-imbalance", "must be at least 1 (1 = balanced routing)");
    q.work.moe_capacity_factor = moe_capacity_factor.value_or(0);
    q.work.moe_imbalance = moe_imbalance.value_or(0);
    q.tp = tp; q.pp = pp; q.vp = vp; q.dp = dp; q.cp = cp; q.ep = ep; q.etp = etp;
    q.micro_batch = micro_batch;
    q.recompute_layers = recompute_layers;
    q.zero = zero;
    if (pipeline_layout == "even") {
      q.balance_pipeline = false;
    } else if (pipeline_layout == "balanced") {
      if (!q.pp || *q.pp < 1) throw InputError("--pipeline-layout", "balanced needs --pp (the stages to balance), at least 1");
      const int v = q.vp.value_or(1);
      if (v < 1) throw InputError("--vp", "must be at least 1, got " + std::to_string(v));
      if (static_cast<long>(*q.pp) * v > max_pipeline_chunks(m.layers))
        throw InputError("--pipeline-layout", "balanced: pp x vp = " + std::to_string(static_cast<long>(*q.pp) * v) + " chunks exceed the " +
                                                  std::to_string(m.layers) + " layers + embedding + loss of " + m.name);
      const int mtp = mtp_layers.value_or(m.mtp_layers);
      if (mtp < 0 || mtp > m.layers)  // as check_request words it, before a layout is built on it
        throw InputError("--mtp-layers", "must be 0 to the model's layers (" + std::to_string(m.layers) + "), got " + std::to_string(mtp));
      auto layout = std::make_shared<PipelineLayout>(balanced_pipeline_layout(m, *q.pp, v, std::max(0, mtp), std::max(1L, seq_len)));
      layout->pending = true;  // evaluate() resolves it plan by plan
      q.stage_layout = std::move(layout);
      q.vp = v;
    } else if (!pipeline_layout.empty()) {
      auto layout = std::make_shared<PipelineLayout>(parse_pipeline_layout(pipeline_layout, "--pipeline-layout"));
      q.vp = pipeline_layout_vp(*layout, q.pp, q.vp, "--pipeline-layout");
      q.stage_layout = std::move(layout);
    }
    if (mtp_layers) {
      if (*mtp_layers < 0) throw InputError("--mtp-layers", "must be at least 0, got " + std::to_string(*mtp_layers));
      q.mtp_layers = mtp_layers;
    }
    if (!recompute.empty()) {
      q.recompute = parse_recompute(recompute);
      if (!q.recompute) throw InputError("--recompute", "'" + recompute + "' is not none, selective or full");
    }
    if (!recompute_modules.empty()) {
      std::string bad;
      q.recompute_modules = parse_recompute_modules(recompute_modules, &bad);
      if (!q.recompute_modules)
        throw InputError("--recompute-modules", (bad.empty() ? std::string("an empty module name (a stray ',' or '+')")
                                                             : "'" + bad + "' is not a module") +
                                                    " (" + recompute_modules_name(kRecomputeModulesAll) + ")");
      if (!q.recompute) q.recompute = Recompute::selective;
    }
    if (!lowp_params.empty()) q.lowp_params = on_off("--lowp-params", lowp_params);
    if (!grad_precision.empty()) {
      if (grad_precision != "fp32" && grad_precision != "bf16" && grad_precision != "fp16")
        throw InputError("--grad-precision", "'" + grad_precision + "' is not fp32, bf16 or fp16");
      // The half precision is the run's: fp16 for an fp16 run, bf16 otherwise.
      if (grad_precision == "fp16" && !precision.empty() && precision != "fp16")
        throw InputError("--grad-precision", "fp16 gradients go with --precision fp16 (a " + precision + " run keeps bf16 ones)");
      if (grad_precision == "bf16" && precision == "fp16")
        throw InputError("--grad-precision", "bf16 gradients with --precision fp16: an fp16 run keeps fp16 ones");
      q.grad_fp32 = grad_precision == "fp32";
    }
    if (!schedule.empty()) {
      auto v = parse_schedule(schedule);
      if (!v) throw InputError("--schedule", "'" + schedule + "' is not 1f1b, zb-h1 or dualpipev");
      q.schedule = *v;
    }
    if (!cp_mode.empty()) {
      auto v = parse_cp_mode(cp_mode);
      if (!v) throw InputError("--cp-mode", "'" + cp_mode + "' is not ring or all-gather");
      q.cp_mode = *v;
      if (cp && *cp == 1) throw InputError("--cp-mode", "applies to context parallelism and --cp is 1");
    }
    if (!attention.empty()) {
      auto v = parse_attention_kernel(attention);
      if (!v) throw InputError("--attention", "'" + attention + "' is not flash or unfused");
      q.attention = *v;
    }
    if (!moe_dispatcher.empty()) {
      auto v = parse_moe_dispatcher(moe_dispatcher);
      if (!v) throw InputError("--moe-dispatcher", "'" + moe_dispatcher + "' is not flex or alltoall");
      q.moe_dispatcher = *v;
    }
    if (!moe_a2a_overlap.empty()) q.moe_a2a_overlap = on_off("--moe-a2a-overlap", moe_a2a_overlap);
    if (!offload_activations.empty()) q.offload_activations = on_off("--offload-activations", offload_activations);
    if (!rank_order.empty()) {
      auto v = parse_rank_order(rank_order);
      if (!v) throw InputError("--rank-order", "'" + rank_order + "' is not tp-cp-dp-pp or tp-cp-pp-dp");
      q.rank_order = *v;
    }
    if (zero_group) {
      if (*zero_group < 1) throw InputError("--zero-group", "must be at least 1 rank");
      if (zero && *zero == 0) throw InputError("--zero-group", "shards ZeRO state, and --zero is 0 (give --zero 1, 2 or 3)");
      q.zero_group = *zero_group;
    }
    if (fsdp_rate_gbps || fsdp_overlap) {
      const char* flag = fsdp_rate_gbps ? "--fsdp-rate" : "--fsdp-overlap";
      if (zero && *zero != 3) throw InputError(flag, "applies to ZeRO-3 only, and --zero is " + std::to_string(*zero));
      // From a thousandth of a GB/s (a gather a layer a minute) to 100 TB/s (beyond any device's memory).
      if (fsdp_rate_gbps && !(*fsdp_rate_gbps >= 1e-3 && *fsdp_rate_gbps <= 1e5))
        throw InputError("--fsdp-rate", "must be a number of GB/s per device from 0.001 to 100000");
      if (fsdp_overlap && !(*fsdp_overlap >= 0 && *fsdp_overlap <= 1))
        throw InputError("--fsdp-overlap", "must be between 0 and 1");
      if (fsdp_rate_gbps) q.fsdp.rate = *fsdp_rate_gbps * 1e9;
      if (fsdp_overlap) q.fsdp.overlap = *fsdp_overlap;
    }
    if (!precision.empty()) q.precision = training_precision(precision);
    return q;
  }
};

// A training --precision (train, search, compare): tf32 and fp32 are refused here, where the flag
// is read, with the reason (the evaluator also reports them as unsupported).
inline Precision training_precision(const std::string& text) {
  const auto p = parse_precision(text);
  if (!p) throw InputError("--precision", "'" + text + "' is not bf16, fp16, fp8, fp4 or int8");
  if (*p == Precision::tf32 || *p == Precision::fp32)
    throw InputError("--precision", "'" + text + "': training keeps fp32 tensors at this precision, which the model does not "
                                              "size (it holds 2-byte activations and weights); use bf16 or fp16 (or fp8/fp4)");
  return *p;
}

}  // namespace xpu::cli
