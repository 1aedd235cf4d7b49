#include <cstdio>

#include "train/evaluate.hpp"
#include "report/format.hpp"

namespace xpu {

namespace {
std::string num(double v, const char* fmt = "%.4g") {
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}
std::string pct(double part, double whole) { return num(whole > 0 ? 100.0 * part / whole : 0, "%.1f%%"); }
}  // namespace

std::vector<ExplainLine> explain(const Model& m, const System& s, const TrainReport& r) {
  std::vector<ExplainLine> out;
  const Layout& l = r.layout;
  const Calibration& c = s.calib;
  const std::string chip = s.chip.file, cal = c.file, sys = s.file;
  const std::string mfile = m.file.empty() ? "validation row / command line" : m.file;
  const std::string prec = precision_name(l.precision);
  auto add = [&](std::string term, std::string value, std::string origin) {
    out.push_back({std::move(term), std::move(value), std::move(origin)});
  };

  // Inputs and where they come from.
  add("model", m.name + ": " + std::to_string(m.layers) + " layers, hidden " + std::to_string(m.hidden) + ", heads " +
                   std::to_string(m.heads) + "/" + std::to_string(m.kv_heads) + " kv, ffn " + std::to_string(m.ffn_hidden) +
                   ", vocab " + std::to_string(m.vocab) + (m.gated_mlp ? ", gated MLP" : ", plain MLP") +
                   (m.is_mla() ? ", MLA (latent KV " + std::to_string(m.mla.kv_lora_rank) + ", q/k head " +
                                     std::to_string(m.mla.qk_nope_head_dim + m.mla.qk_rope_head_dim) + ", v head " +
                                     std::to_string(m.mla.v_head_dim) + ")"
                               : std::string()) +
                   (m.window_layer_count() > 0 ? ", " + std::to_string(m.window_layer_count()) + " of the layers " +
                                                     (m.chunked_local ? "chunked-local" : "sliding-window") + " (" +
                                                     std::to_string(m.sliding_window) + " tokens: attention over at most that many keys)"
                                               : std::string()),
      mfile);
  const ParamCounts pc = count_params(m);
  add("parameters", num(pc.total() / 1e9, "%.2f") + "e9 total, " + num(pc.active(m) / 1e9, "%.2f") + "e9 active per token",
      "count_params(model)");
  if (l.mtp_layers > 0 || m.mtp_layers > 0) {
    const std::string n = std::to_string(l.mtp_layers);
    add("multi-token prediction",
        l.mtp_layers == 0 ? "the model's " + std::to_string(m.mtp_layers) + " MTP module(s) not trained"
                          : n + " module(s) trained on " + (l.stage_layout ? std::string("the stage the pipeline layout gives (their losses with the output head)") : std::string("the stage with the output head")) + ", each " +
                                num(mtp_module_params(m) / 1e9, "%.2f") +
                                "e9 parameters (a layer like the last, a 2h x h projection, norms) and a second pass of "
                                "the output head and loss; their FLOPs count in MFU",
        l.mtp_layers == m.mtp_layers
            ? mfile + (m.file.ends_with(".json") ? ": num_nextn_predict_layers" : ": mtp_layers") +
                  " (or --mtp-layers / the run fact mtp_layers, giving the same count)"
            : std::string("plan: --mtp-layers (or the run fact mtp_layers)"));
  }
  if (m.is_moe()) {
    const Workload& w = r.work;
    const double load = w.moe_load(m.moe.routing_imbalance);
    add("MoE experts", std::to_string(m.moe.experts) + " routed (top " + std::to_string(m.moe.top_k) + ", width " +
                           std::to_string(m.moe.ffn_hidden) + "), " + std::to_string(m.moe.shared_experts) + " shared, " +
                           std::to_string(m.moe.dense_layers) + " leading dense layers" +
                           (m.moe.group_limited() ? ", routed within " + std::to_string(m.moe.router_group_topk) + " of " +
                                                        std::to_string(m.moe.router_groups) + " expert groups per token"
                                                  : std::string()),
        mfile + ": " + (m.moe_keys.empty() ? std::string("[moe]") : m.moe_keys));
    add("MoE expert load", num(load) + " x balanced (" +
                               (w.moe_capacity_factor > 0 ? std::string("token dropping, padded buffers") : std::string("dropless")) +
                               "): scales expert GEMMs, permutes and all-to-all",
        w.moe_capacity_factor > 0 ? std::string("--moe-capacity-factor")
        : w.moe_imbalance > 0     ? std::string("--moe-imbalance")
        : !m.moe_keys.empty()     ? std::string("balanced (a config.json has no routing imbalance; --moe-imbalance sets one)")
                                  : mfile + ": moe.routing_imbalance (default 1)");
  }
  add("peak " + prec + " per device", format_flop_rate(*s.peak(l.precision)) +
                                          (s.devices_per_chip > 1 ? " (chip / " + std::to_string(s.devices_per_chip) + ")" : ""),
      chip + ": peak." + prec);
  if (s.gemm_cap(l.precision) < c.gemm_max_at(l.precision))
    add("GEMM efficiency cap", num(s.gemm_cap(l.precision)) + " of peak (status: " + c.status + "; " + prec +
                                   " runs no faster than bf16 on this chip, so its cap " + num(c.gemm_max_at(l.precision)) +
                                   " is held to bf16's)",
        cal + ": gemm.bf16, gemm." + prec + "; " + chip + ": peak." + prec + ", peak.bf16");
  else
    add("GEMM efficiency cap", num(c.gemm_max_at(l.precision)) + " of peak (status: " + c.status + ")", cal + ": gemm." + prec);
  add("GEMM shape half-efficiency dim", num(c.gemm_half_dim), cal + ": gemm.half_dim; eff = cap x prod d/(d+half)");
  if (m.is_moe()) {
    add("grouped-GEMM efficiency", num(c.gemm_grouped) + " of the dense GEMM efficiency for the expert GEMMs",
        cal + ": " + c.cite("gemm.grouped", "1"));
    add("MoE layer fixed cost", format_seconds(c.moe_layer_overhead) + " per MoE layer forward per microbatch, 2x in backward",
        cal + ": " + c.cite("kernel.moe_layer_overhead", "0") +
            (c.prior_moe_layer_overhead >= 0 ? " (fitted on the family's MoE rows; in the elementwise time)" : " (in the elementwise time)"));
    add("MoE token dispatcher", std::string(moe_dispatcher_name(r.layout.moe_dispatcher)) +
            (r.layout.moe_dispatcher == MoeDispatcher::alltoall
                 ? ": host-synchronised all-to-all, + " + format_seconds(c.moe_alltoall_overhead) +
                       " per MoE layer forward per microbatch, 2x in backward"
                 : std::string(": device-initiated (DeepEP/HybridEP), no host synchronisation")),
        r.layout.moe_dispatcher == MoeDispatcher::alltoall
            ? "--moe-dispatcher; " + cal + ": " + c.cite("kernel.moe_alltoall_overhead", "0") + " (in the elementwise time" +
                  (c.moe_alltoall_source.empty() ? std::string(")") : "; kernel.moe_alltoall_source: " + c.moe_alltoall_source + ")")
            : std::string("--moe-dispatcher (default flex)"));
  }
  if (r.layout.attention == AttentionKernel::flash) {
    add("flash-attention efficiency", num(c.attention) + " of the attention peak (forward); backward at " + num(c.attention_backward) + " of that",
        cal + ": attention.efficiency, attention.backward" + (c.attention_backward != 1.0 ? " (measured: attention.source)" : std::string(" (1: unmeasured)")));
    add("softmax exponentials per device",
        s.exp_rate() > 0 ? num(s.exp_rate() / 1e12) + "e12 exponentials/s (1 per score per head, forward and backward, in series with the matrix work)"
                         : std::string("not modelled (the chip file gives no peak.exp)"),
        chip + ": peak.exp");
  } else
    add("unfused attention", "score GEMMs at the half-precision GEMM cap " + num(c.gemm_max_at(Precision::bf16)) +
                                 ", softmax passes at the HBM fraction below",
        cal + ": " + (c.gemm_max[static_cast<int>(Precision::bf16)] > 0 ? "gemm.bf16" : "gemm.fp16") +
            ", gemm.half_dim, memory.bandwidth_fraction" +
            (s.chip.flash_attention ? std::string() : "; the default here: " + s.chip.file + ": kernels.flash_attention = false"));
  add("HBM bandwidth per device", format_byte_rate(s.hbm_bandwidth()) + " x " + num(c.memory_bw) + " achievable",
      chip + ": memory.bandwidth" +
          (s.devices_per_chip > 1 ? " / " + count_text(s.devices_per_chip, "device", "devices") + " per chip (" + sys + ": devices_per_chip)"
                                  : std::string()) +
          "; " + cal + ": memory.bandwidth_fraction");
  add("kernel launch overhead", format_seconds(c.kernel_overhead) + " per kernel", cal + ": kernel.overhead");
  std::string torus;  // the torus's shape and, when unequal, each dimension's share of the bandwidth
  if (s.scale_up.topology == Topology::torus) {
    for (std::size_t d = 0; d < s.scale_up.torus_dims.size(); ++d)
      torus += (d ? "x" : " ") + std::to_string(s.scale_up.torus_dims[d]);
    if (!s.scale_up.torus_share.empty()) {
      torus += " (shares";
      for (double v : s.scale_up.torus_share) torus += " " + num(v);
      torus += ")";
    }
  }
  add("scale-up tier", count_text(s.scale_up.size, "device", "devices") + ", " + topology_name(s.scale_up.topology) + torus + ", " +
                           format_byte_rate(s.scale_up.bandwidth) + "/dir x " + num(c.scale_up_bus) + " bus, " +
                           format_seconds(s.scale_up.latency),
      sys + ": scale_up.*; " + cal + ": collectives.scale_up_bus");
  add("scale-out tier", format_byte_rate(s.scale_out.bandwidth) + "/dir per device x " + num(c.scale_out_bus) + " bus, " +
                            format_seconds(s.scale_out.latency),
      sys + ": scale_out.*; " + cal + ": collectives.scale_out_bus");
  add("tensor-parallel overlap", num(c.tp_overlap) + " of TP traffic hidden", cal + ": collectives.tp_overlap");
  if (m.is_moe()) add("expert all-to-all overlap", num(c.ep_overlap) + " of EP traffic hidden", cal + ": collectives.ep_overlap");
  if (r.layout.zero == 3) {
    const FsdpImpl& f = r.layout.fsdp;
    add("ZeRO-3 overlap", num(f.overlap >= 0 ? f.overlap : c.fsdp_overlap) + " of compute can hide ZeRO-3 traffic",
        f.overlap >= 0 ? std::string("plan: --fsdp-overlap (the implementation's)") : cal + ": collectives.fsdp_overlap");
    if (f.rate > 0)
      add("ZeRO-3 implementation rate", format_byte_rate(ByteRate{f.rate}) + " per device (a layer's gather or reduce-scatter takes at least its bytes / rate)",
          "plan: --fsdp-rate (the implementation's own throughput, below the fabric's)");
  }
  if (l.offload_activations && s.host_bandwidth)
    add("host link (activation offload)",
        format_byte_rate(ByteRate{*s.host_bandwidth}) + "/dir per device" +
            (s.host_memory ? ", host memory " + format_bytes(Bytes{*s.host_memory}) + " per device"
                           : std::string(", host memory not in the catalog (not checked)")),
        sys + ": host.bandwidth" + (s.host_memory ? ", host.memory" : "") + " (" + s.host_source + ")");
  add("compute slowdown beside communication", num(c.overlap_slowdown) + " of each hidden second of communication",
      cal + ": collectives.overlap_slowdown (charged to the communication term it hides)");

  // Layout.
  std::string stages;
  for (std::size_t i = 0; i < r.stage_layers.size(); ++i) stages += (i ? "," : "") + std::to_string(r.stage_layers[i]);
  if (l.stage_layout)
    stages += ", as the pipeline layout '" + l.stage_layout->text + "' places them" +
              (l.stage_layout->even_split
                   ? std::string(" (--pipeline-layout balanced: Megatron-Core's even split, written out, was faster than every "
                                 "balanced split)")
               : l.stage_layout->balanced
                   ? " (--pipeline-layout balanced: the split whose busiest pipeline rank has the least forward FLOPs per token, "
                     "the head, loss and MTP modules on the last chunk weighted " +
                         num(l.stage_layout->tail_weight, "%g") + " of their FLOPs" +
                         (m.is_moe() ? ", MoE layers " + num(l.stage_layout->moe_weight, "%g") + "x theirs" : std::string()) +
                         ": the fastest of head weights 1, 0.75, 0.5, 0.25, 0" + (m.is_moe() ? " and MoE weights 1, 1.5" : "") + ")"
                   : std::string());
  if (l.mtp_layers > 0) stages += l.stage_layout ? ", MTP layers included" : ", the MTP layers counted on the head's stage";
  add("layout", "tp " + std::to_string(l.tp) + ", pp " + std::to_string(l.pp) + " (layers per stage " + stages + "), vp " +
                    std::to_string(l.vp) + ", dp " + std::to_string(l.dp) + ", cp " + std::to_string(l.cp) + ", ep " +
                    std::to_string(l.ep) + ", micro-batch " + std::to_string(l.micro_batch) + ", ZeRO-" +
                    std::to_string(l.zero) +
                    (l.zero_group > 0 ? " sharded over groups of " + std::to_string(l.zero_group) + " of the " +
                                            std::to_string(l.dp * l.cp) + " dp x cp ranks" + zero_copies(l)
                                      : std::string()) +
                    ", recompute " + recompute_name(l.recompute) +
                    (l.recompute_layers > 0 ? " of " + std::to_string(l.recompute_layers) + " layers per stage" : "") +
                    (l.recompute == Recompute::selective ? " (" + recompute_modules_name(l.recompute_modules) + ")" : "") + ", " + prec,
      "plan (given or chosen)");
  add("microbatches per step", std::to_string(r.microbatches), "global batch / (dp x micro-batch)");
  if (!r.feasible()) {
    add("infeasible", r.reason, infeasible_name(r.why));
    return out;
  }

  // Time terms.
  const TimeBreakdown& t = r.time;
  const double st = r.step_time;
  auto term = [&](const char* name, double v, const std::string& how) {
    add(std::string("time: ") + name, format_seconds(Seconds{v}) + " (" + pct(v, st) + ")", how);
  };
  term("GEMM", t.gemm,
       std::string("slowest stage: microbatches x sum over layers of roofline(2MNK / (peak x eff), bytes / HBM)") +
           (is_low_precision(l.precision)
                ? " + each GEMM's activation cast, its own kernel: M K (2 B + low-precision B" +
                      std::string(l.precision == Precision::fp4
                                      ? std::string(" and its block scales") +
                                            (s.serving.fp4_tensor_scale
                                                 ? " + 2 B read for NVFP4's per-tensor amax, its own kernel and launch"
                                                 : "")
                                      : "") +
                      ") / HBM x " + cal + ": kernel.lowp_overhead" +
                      (l.precision == Precision::fp4 ? "; " + s.serving.where() + ": engine.fp4_scale_block, engine.fp4_tensor_scale" : std::string())
                : ""));
  term("attention", t.attention,
       l.attention == AttentionKernel::flash
           ? std::string("4 b s_q s_k/2 heads/tp d / (attention peak x attention eff); backward 2.5x the matrix work; ") +
                 "attention peak = 1 / (1/bf16 peak + 1/(exponentials/s x matrix FLOPs per score))"
           : std::string("unfused: 4 b s_q s_k heads/tp d (no causal skip) at the half-precision (bf16, else fp16) GEMM rate + ") +
                 "8 B (forward) / 16 B (backward) per score element / (HBM x fraction)");
  term("elementwise", t.elementwise,
       m.is_moe() ? "bytes of norms, residuals, rope, activation, permutation, loss / (HBM x fraction), + the MoE layer fixed cost"
                  : "bytes of norms, residuals, rope, activation, loss / (HBM x fraction)");
  term("recompute", t.recompute,
       std::string("recompute = ") + recompute_name(l.recompute) +
           (l.recompute_layers > 0 ? " of " + std::to_string(l.recompute_layers) +
                                         " layers per stage (the others keep their activations)"
                                   : "") +
           (l.recompute == Recompute::selective
                ? " of " + recompute_modules_name(l.recompute_modules) +
                      ": each module's forward rerun in backward (--recompute-modules; core_attn the attention core, "
                      "layernorm the separate norms' memory pass (MLA's input norm, a MoE layer's pre-MLP norm), mla_up_proj the up-projection GEMMs and RoPE, moe_act the "
                      "experts' activation pass, mlp / moe / shared_experts their whole forward)"
                : ""));
  term("TP communication", t.tp_comm,
       std::string("per layer 2 all-gather + 2 reduce-scatter (SP) of b s h 2 B, x (1 - tp_overlap)") +
           (m.is_moe() ? "; a MoE layer 1 of each (its MLP block's tokens leave through the expert dispatch)" : ""));
  term("CP communication", t.cp_comm,
       l.cp_mode == CpMode::ring ? std::string("ring K/V exchange (cp-1 steps) not hidden under attention")
                                 : std::string("all-gather of K/V before attention, reduce-scatter of dK/dV after (exposed)"));
  term("EP all-to-all", t.ep_comm,
       std::string("dispatch + combine of load x (b s / tp) k h 2 B per MoE layer, fwd and bwd (ep > 1), and with etp > 1 the "
                   "expert-tensor gather of the routed tokens") +
           (!m.is_moe() ? ""
            : l.moe_dispatcher == MoeDispatcher::flex && !s.chip.hierarchical_ep_dispatch
                ? "; flex on a chip without a hierarchical dispatch library (" + chip +
                      ": kernels.hierarchical_ep_dispatch absent): a flat device-initiated all-to-all, every copy its own message"
            : l.moe_dispatcher == MoeDispatcher::flex
                ? std::string("; flex (DeepEP/HybridEP) across scale-up domains: a token crosses scale-out once per distinct remote "
                              "domain, (n - 1)(1 - C(E - E/n, k)/C(E, k)) of its k copies of E experts for n domains, and is forwarded inside the domain") +
                      (m.moe.group_limited()
                           ? "; group-limited routing (" + std::to_string(m.moe.router_group_topk) + " of " +
                                 std::to_string(m.moe.router_groups) + " groups, " + (m.file.empty() ? std::string("the model") : m.file) +
                                 ": moe.router_groups, router_group_topk): (n - 1) x the chance a domain holds a chosen group, "
                                 "1 - C(G - G/n, g)/C(G, g) when each domain holds whole groups, (g/G)(1 - C(E/G - E/n, k/g)/C(E/G, k/g)) "
                                 "when each group spans n/G domains, else unrestricted"
                           : std::string())
                : "; alltoall: every one of the k copies its own message") +
           (l.moe_a2a_overlap ? "; overlapped (--moe-a2a-overlap): a forward and a backward paired, only what exceeds "
                                "their compute exposed, + collectives.overlap_slowdown x the hidden part"
            : l.schedule == PipeSchedule::dualpipe_v
                ? "; dualpipev: in each forward-backward pair of chunks only what exceeds their compute is exposed, + "
                  "collectives.overlap_slowdown x the hidden part (the slowest stage's 2 x microbatches - 3 pp + stage + 1 pairs, one fewer on the last stage)"
                : ""));
  term("PP send/recv", t.pp_comm,
       l.schedule == PipeSchedule::dualpipe_v
           ? std::string("dualpipev: 2 (2 pp - 2) exposed messages of b s h 2 B / tp (the V turns on the last stage without one) + 2 x microbatches x 2 "
                         "messages overlapped with the next chunk (overlap_slowdown of them)")
       : l.vp > 1 ? std::string("interleaved: 2 (pp x vp - 1) exposed messages of b s h 2 B / tp (the first microbatch's forward through every chunk, the last one's backward) + 2 x microbatches x vp "
                              "messages overlapped with the next chunk (overlap_slowdown of them)")
                : std::string("2 x (microbatches + pp - 1) x message of b s h 2 B / tp"));
  term("pipeline bubble", t.bubble,
       l.schedule == PipeSchedule::dualpipe_v
           ? std::string("dualpipev: the simulated step (deepseek-ai/DualPipe's DualPipeV order, each chunk with its own layers; stage 0's chunk 1 the head) less the busiest "
                         "stage's work; uniform stages: (pp - 1)(F&B + B - 3W) per chunk, F&B = F + B - the pair's saving")
       : l.schedule == PipeSchedule::zero_bubble
           ? std::string("zb-h1: (pp - 1) x mean(F + B) - min(2 (pp - 1), microbatches + pp - 2) x mean W per microbatch "
                         "(the paper's (pp - 1)(F + B - W) from pp microbatches), W = weight-gradient GEMMs (half the backward GEMMs)")
           : !r.chunk_share.empty()
           ? std::string("interleaved over chunks of unequal layers: the simulated step (perf/pipeline_sim.cpp, Megatron's order, each chunk its "
                         "share of its stage's time by the layers, embedding, head and MTP modules it holds) less the slowest stage's work")
           : std::string("(pp - 1) / vp x mean stage time per microbatch (interleaving needs at least pp microbatches)"));
  const bool hybrid = l.zero >= 1 && l.zero_replicas() > 1;
  const std::string copies = hybrid ? "the " + std::to_string(l.zero_replicas()) + " copies' all-reduce of their gradient shards" : "";
  term("DP communication", t.dp_comm,
       (l.zero == 3 ? (hybrid ? copies + " (" + grad_name(l) + ", once a step) not hidden under the last backward"
                              : std::string("none outside ZeRO-3's per-layer traffic"))
                    : std::string("gradient reduce (") + grad_name(l) + ")" +
                          (l.zero == 2 ? " after every microbatch's backward (ZeRO-2 keeps only its gradient shard)" : "") +
                          (hybrid ? " within each ZeRO group of " + std::to_string(l.zero_group) + ", then " + copies : "") +
                          " and parameter gather not hidden under the " + (l.zero == 2 ? "backward" : "last backward") + "/first forward") +
           "; ranks " + rank_order_name(l.rank_order) +
           (l.rank_order == RankOrder::pp_then_dp ? " (replicas a whole tp x cp x pp apart)" : " (a stage's replicas side by side)"));
  term("ZeRO-3 communication", t.fsdp_comm,
       std::string("per microbatch 2 all-gathers + 1 reduce-scatter per layer") +
           (hybrid && l.zero == 3 ? " within each ZeRO group of " + std::to_string(l.zero_group) + " ranks" : "") +
           ", beyond the ZeRO-3 overlap x compute");
  if (l.offload_activations)
    term("host offload", t.offload,
         "per layer and microbatch: its kept activations / host bandwidth, out after the forward and back before the "
         "backward, beside that pass; only what outlasts the pass is exposed");
  term("optimizer", t.optimizer, "34 B per local parameter (Adam, fp32 master) / (HBM x fraction)");
  term("fixed per step", t.overhead, cal + ": kernel.step_overhead");
  add("step time", format_seconds(Seconds{st}), "sum of the terms above");
  add("tokens/s per device", num(r.tokens_per_s_per_device, "%.1f"), "global batch x seq len / step / devices");
  add("MFU", num(100 * r.mfu, "%.1f%%") + " (HFU " + num(100 * r.hfu, "%.1f%%") + ")", kMfuFormula);

  // Memory terms.
  const MemoryBreakdown& mm = r.mem;
  auto mem = [&](const char* name, double v, const std::string& how) {
    add(std::string("memory: ") + name, format_bytes(Bytes{v}), how);
  };
  const bool lowp = can_keep_lowp_params(l.precision);
  // What the ZeRO state divides by: dp x cp, or the hybrid-sharding group (the experts' likewise).
  const std::string shard_by =
      l.zero_group > 0 ? "the ZeRO group (" + std::to_string(l.zero_shard()) + (m.is_moe() ? "; experts " + std::to_string(l.expert_zero_shard()) : std::string()) + ")"
                       : std::string("dp x cp");
  // FP4 weights carry their block scales (one byte per engine.fp4_scale_block values).
  const bool fp4 = l.precision == Precision::fp4 && s.serving.fp4_scale_block > 0;
  const std::string lb = fp4 ? num(0.5 + 1.0 / s.serving.fp4_scale_block) + " B (0.5 B + a scale byte per " +
                                   std::to_string(s.serving.fp4_scale_block) + " values, " + s.serving.where() + ": engine.fp4_scale_block)"
                             : num(precision_bytes(l.precision)) + " B";
  mem("weights", mm.weights,
      l.zero >= 3 ? std::string("none kept outside the gathered layers (ZeRO-3: the fp32 master is the copy)")
      : l.lowp_params ? std::string("local params x ") + lb + " (" + prec + " primary weights)"
      : lowp ? std::string("local params x (2 B bf16 + ") + lb + " " + prec + " copy)"
             : std::string("local params x 2 B (bf16)"));
  mem("gradients", mm.gradients, std::string("local params x ") + (l.grad_fp32 ? std::string("4 B (fp32)") : std::string("2 B (") + grad_name(l) + ")") +
                                     (l.zero >= 2 ? std::string(", / ") + shard_by + " (ZeRO-2+)" : std::string()));
  mem("optimizer", mm.optimizer, std::string("local params x 12 B (fp32 master + Adam m, v); / ") + shard_by + " under ZeRO-1+");
  mem("activations", mm.activations,
      std::string(l.attention == AttentionKernel::flash
          ? "Korthikanti et al. per layer (flash attention, SP) x microbatch-layers in flight"
          : "Korthikanti et al. per layer (SP) + the unfused softmax output, 2 B per score (none with selective or full "
            "recompute) x microbatch-layers in flight") +
          (l.recompute == Recompute::selective && l.recompute_modules != kRecomputeModulesDefault
               ? std::string(", less what the recompute modules rerun (norm outputs, MLA q/k/v, expert activation "
                             "outputs, whole MLP blocks' activations)")
               : std::string()));
  mem("transient", mm.transient,
      "logits (bf16 + fp32), recompute working set (full: one layer's activations; selective: what its modules "
      "rerun for one layer), ZeRO-3 gathered layers");
  if (l.offload_activations)
    mem("host (offloaded)", mm.host,
        "activations in flight and the embedding output, held in host memory (the stage holding most: " +
            std::to_string(mm.host_stage + 1) + "); the device keeps two of its largest kept layers (one going out, one coming back), "
            "four with DualPipeV or MoE all-to-all overlap (a forward and a backward at once)");
  mem("reserve", mm.reserve, cal + ": memory.reserve + memory.fragmentation x dynamic");
  mem("total", mm.total(), "of " + format_bytes(Bytes{mm.capacity}) + " (" + chip + ": memory.capacity)");
  return out;
}

}  // namespace xpu
