#include "train/evaluate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "perf/collective.hpp"
#include "perf/kernels.hpp"
#include "perf/pipeline_sim.hpp"

namespace xpu {

const char* infeasible_name(Infeasible r) {
  switch (r) {
    case Infeasible::none: return "fits";
    case Infeasible::out_of_memory: return "out of memory";
    case Infeasible::indivisible: return "layout does not divide";
    case Infeasible::unsupported_precision: return "precision not supported";
    case Infeasible::too_few_microbatches: return "too few microbatches";
  }
  return "?";
}

namespace {

constexpr double kAct = 2.0;          // bytes of a bf16/fp16 activation element
constexpr double kWeightBytes = 2.0;  // bf16 working weights
// Gradient bytes per parameter: fp32 accumulation (Megatron's default) or bf16.
inline double grad_bytes(const Layout& l) { return l.grad_fp32 ? 4.0 : 2.0; }
// Bytes per parameter of a weight held in the layout's fp8/fp4 precision: FP4 carries its block
// scales, one byte per engine.fp4_scale_block values (NVFP4 16, MXFP4 32; the system's serving file).
inline double lowp_bytes(const Layout& l, const System& s) {
  return precision_bytes(l.precision) + (l.precision == Precision::fp4 && s.serving.fp4_scale_block > 0 ? 1.0 / s.serving.fp4_scale_block : 0.0);
}
// Working-weight bytes per parameter: bf16 plus a cached fp8/fp4 copy, or the low-precision
// primary weights alone.
inline double weight_bytes(const Layout& l, const System& s) {
  if (!can_keep_lowp_params(l.precision)) return kWeightBytes;
  return l.lowp_params ? lowp_bytes(l, s) : kWeightBytes + lowp_bytes(l, s);
}
// Bytes per parameter moved by a parameter all-gather.
inline double gather_bytes(const Layout& l, const System& s) { return l.lowp_params ? lowp_bytes(l, s) : kWeightBytes; }
constexpr double kMasterBytes = 4.0;  // fp32 master weights
constexpr double kAdamBytes = 8.0;    // fp32 first and second moments
// Adam step traffic per parameter: read grad, master, m, v (16); write master, m, v (12);
// write working bf16 weight (2); gradient-norm read (4).
constexpr double kOptimizerTraffic = 34.0;

struct Fb {
  double f = 0, b = 0;
};

// Everything one layer costs per microbatch on one device.
struct LayerCost {
  double gemm_f = 0, gemm_b = 0, attn_f = 0, attn_b = 0, elem_f = 0, elem_b = 0;
  double tp_f = 0, tp_b = 0, cp_f = 0, cp_b = 0, ep_f = 0, ep_b = 0;
  double recompute = 0;        // time added to backward
  double rerun_working = 0;    // selective recompute: bytes a layer's rerun modules hold during its backward
  double params_dense = 0;     // per device: parameters reduced over the dp x cp group
  double params_expert = 0;    // per device: routed-expert parameters
  double act_stored = 0;       // bytes kept per microbatch until backward
  double act_working = 0;      // bytes of one layer's full activations (recompute working set)
  double cp_buffer = 0;        // bytes of K/V held for context parallelism while a layer runs
  double ep_saving = 0;        // DualPipeV: what pairing this layer's forward with another's backward saves
  double fwd() const { return gemm_f + attn_f + elem_f + tp_f + cp_f + ep_f; }
  double bwd() const { return gemm_b + attn_b + elem_b + tp_b + cp_b + ep_b + recompute; }
  // k layers of cost c added to this sum, field by field (a stage's or a chunk's layers; the byte
  // fields are per layer and not summed).
  void add(const LayerCost& c, double k) {
    if (k == 0) return;
    gemm_f += k * c.gemm_f; gemm_b += k * c.gemm_b; attn_f += k * c.attn_f; attn_b += k * c.attn_b;
    elem_f += k * c.elem_f; elem_b += k * c.elem_b; tp_f += k * c.tp_f; tp_b += k * c.tp_b;
    cp_f += k * c.cp_f; cp_b += k * c.cp_b; ep_f += k * c.ep_f; ep_b += k * c.ep_b;
    recompute += k * c.recompute; ep_saving += k * c.ep_saving; params_dense += k * c.params_dense; params_expert += k * c.params_expert;
  }
};

class Evaluator {
 public:
  Evaluator(const Model& m, const System& s, const Layout& l, const Workload& w)
      : m_(m), s_(s), l_(l), w_(w), c_(s.calib) {
    t_ = l.tp;
    b_ = l.micro_batch;
    sq_ = static_cast<double>(w.seq_len) / l.cp;
    T_ = b_ * sq_;
    tsp_ = (l.sequence_parallel && l.tp > 1) ? l.tp : 1;
    const Precision attn_p = s.peak(Precision::bf16) ? Precision::bf16 : Precision::fp16;
    peak_attn_ = s.peak(attn_p) ? s.peak(attn_p)->v : 0;
    exp_rate_ = s.exp_rate();
    auto pk = s.peak(l.precision);
    peak_ = pk ? pk->v : 0;
    gmax_ = s.gemm_cap(l.precision);
    half_ = c_.gemm_half_dim;
    mem_bw_ = s.hbm_bandwidth().v * c_.memory_bw;
    ko_ = c_.kernel_overhead.v;
    eb_ = precision_bytes(l.precision);
    lowp_ = is_low_precision(l.precision);
    // NVFP4 (16-value blocks with E4M3 scales, under a per-tensor FP32 scale) needs the operand's
    // amax before its cast; OCP MXFP4 (32-value blocks, E8M0 scales, no tensor scale) does not.
    amax_pass_ = l.precision == Precision::fp4 && s.serving.fp4_tensor_scale ? 1.0 : 0.0;
    cast_write_ = lowp_bytes(l, s);  // fp4: its block scales too
    gin_ = (l.precision == Precision::fp8 || l.precision == Precision::fp4) ? eb_ : kAct;
  }

  // One GEMM (M x K) . (K x N): roofline of compute at the shape's efficiency and memory traffic.
  // `grouped`: the grouped-GEMM factor of expert GEMMs (1 for a plain GEMM).
  // fp8/fp4/int8: the activation operand (M x K) is quantized by its own kernel before the GEMM
  // (Transformer Engine's cast: read 2 B, write the low-precision bytes), which the GEMM's math
  // cannot hide: its memory time adds (fp4 writes its block scales too). NVFP4 scales in two
  // levels, 16-value blocks under a per-tensor scale from the operand's amax, so the operand is
  // read once more, by its own amax kernel, before it is cast (MXFP4 has no tensor scale).
  double gemm(double M, double N, double K, double grouped = 1.0) const {
    const double bytes = (M * K + K * N) * eb_ + M * N * kAct;
    const GemmRoofline g{peak_, std::min(kMaxEfficiency, gmax_ * grouped), half_, half_, mem_bw_};
    double t = g.seconds(M, N, K, bytes) + ko_;
    if (lowp_) t += c_.lowp_overhead * M * K * (kAct * (1 + amax_pass_) + cast_write_) / mem_bw_ + (1 + amax_pass_) * ko_;
    return t;
  }
  // Forward GEMM and its backward (data gradient and weight gradient), `count` of one shape: each
  // with its own launch, as Transformer Engine's GroupedLinear (Megatron-Core's grouped GEMM) runs
  // one GEMM per local expert, spread over a few streams.
  Fb gemm_fb(double M, double N, double K, double count = 1, double grouped = 1.0) const {
    return {count * gemm(M, N, K, grouped), count * (gemm(M, K, N, grouped) + gemm(K, N, M, grouped))};
  }
  double mem_time(double bytes, int kernels) const { return bytes / mem_bw_ + kernels * ko_; }
  // Of communication whose `share` is hidden under compute: the exposed fraction, plus the compute
  // slowed by the hidden part running beside it.
  double exposed_share(double share) const { return (1.0 - share) + c_.overlap_slowdown * share; }
  // Communication `comm` run beside `compute` seconds of work: the exposed remainder plus the slowdown.
  double hidden_cost(double comm, double compute) const {
    const double hidden = std::min(comm, std::max(0.0, compute));
    return (comm - hidden) + c_.overlap_slowdown * hidden;
  }

  // Ranks fill whole scale-up domains in order: a group whose span does not divide the domain has a
  // copy across a boundary once the job spans several domains (8-GPU nodes: any job beyond one; an
  // NVL72 rack: jobs of whole racks, since a job of 64 x k GPUs is placed 64 to a rack).
  double coll(Collective k, double bytes, Group g) const {
    const long D = s_.scale_up.size, devices = static_cast<long>(l_.tp) * l_.pp * l_.dp * l_.cp;
    const long span = static_cast<long>(g.size) * std::max(1, g.stride);
    if (!g.two_level() && g.size > 1 && span < D && D % span != 0 && devices > D &&
        (D <= s_.devices_per_node || devices % D == 0))
      g.straddle = true;
    return collective_time(s_, k, bytes, g);
  }

  // Average keys each query attends to in layer `layer` (causal; sliding window where it applies).
  // The exact mean over the sequence's queries: a window W over s > W keys averages
  // W - W(W-1)/(2s), not W (which over-counted by a third at s = 2W).
  // Chunked local layers (Llama 4) average (chunk + 1) / 2 over whole chunks.
  double keys_per_query(int layer) const {
    const double s = static_cast<double>(w_.seq_len);
    return (m_.is_window_layer(layer) ? m_.local_pairs(0, s) : causal_pairs(0, s, 0)) / s;
  }

  LayerCost layer(int layer_index) const;
  double attention_fwd_flops(int layer_index) const;  // per device
  double attention_head_dims() const;                 // dqk + dv of one head

  const Model& m_;
  const System& s_;
  const Layout& l_;
  const Workload& w_;
  const Calibration& c_;
  double exp_rate_;  // softmax exponentials per second (0: not modelled)
  double t_, b_, sq_, T_, tsp_, peak_attn_, peak_, gmax_, half_, mem_bw_, ko_, eb_;
  double gin_;  // bytes per element of a stored GEMM input activation
  bool lowp_;
  double amax_pass_ = 0;   // NVFP4: one more read of each GEMM operand it casts (its amax)
  double cast_write_ = 0;  // bytes per element a cast writes (the low-precision value and, fp4, its block scale)
};

double Evaluator::attention_head_dims() const {
  if (m_.is_mla()) return m_.mla.qk_nope_head_dim + m_.mla.qk_rope_head_dim + m_.mla.v_head_dim;
  return 2.0 * m_.head_dim;
}

double Evaluator::attention_fwd_flops(int layer_index) const {
  return 2.0 * b_ * sq_ * keys_per_query(layer_index) * (m_.heads / t_) * attention_head_dims();
}

LayerCost Evaluator::layer(int li) const {
  LayerCost c;
  const double h = static_cast<double>(m_.hidden);
  const double a = m_.heads, g = m_.kv_heads, d = m_.head_dim;
  const double T = T_, t = t_;
  double attn_params = 0;

  // Attention projections.
  Fb proj;
  double qkv_out_elems = 0, attn_out_elems = 0;
  double mla_up_f = 0, mla_up_elems = 0;  // MLA: the up-projections' forward, and the q, k, v they produce
  if (m_.is_mla()) {
    const auto& x = m_.mla;
    const double dqk = x.qk_nope_head_dim + x.qk_rope_head_dim;
    auto add = [&](Fb f) { proj.f += f.f; proj.b += f.b; };
    if (x.q_lora_rank > 0) {
      add(gemm_fb(T, x.q_lora_rank, h));
      const Fb q_up = gemm_fb(T, a / t * dqk, x.q_lora_rank);
      add(q_up);
      mla_up_f += q_up.f;
      attn_params += h * x.q_lora_rank + x.q_lora_rank * a / t * dqk;
    } else {
      add(gemm_fb(T, a / t * dqk, h));
      attn_params += h * a / t * dqk;
    }
    add(gemm_fb(T, x.kv_lora_rank + x.qk_rope_head_dim, h));
    const Fb kv_up = gemm_fb(T, a / t * (x.qk_nope_head_dim + x.v_head_dim), x.kv_lora_rank);
    add(kv_up);
    mla_up_f += kv_up.f;
    add(gemm_fb(T, h, a / t * x.v_head_dim));
    attn_params += h * (x.kv_lora_rank + x.qk_rope_head_dim) +
                   x.kv_lora_rank * a / t * (x.qk_nope_head_dim + x.v_head_dim) + a / t * x.v_head_dim * h;
    mla_up_elems = T * (a / t) * (2 * dqk + x.v_head_dim);
    qkv_out_elems = mla_up_elems + T * (x.kv_lora_rank + x.q_lora_rank);
    // Rerunning the up-projections also reapplies RoPE to q and k (read and write their rope part).
    mla_up_f += mem_time(2.0 * kAct * T * (a / t + 1) * x.qk_rope_head_dim, 1);
    attn_out_elems = T * a / t * x.v_head_dim;
  } else {
    // KV heads are replicated when tp exceeds them.
    const double kv_local = std::max(1.0, g / t);
    Fb qkv = gemm_fb(T, (a / t + 2 * kv_local) * d, h);
    Fb out = gemm_fb(T, h, a / t * d);
    proj = {qkv.f + out.f, qkv.b + out.b};
    attn_params = h * (a / t + 2 * kv_local) * d + a / t * d * h;
    qkv_out_elems = T * (a / t + 2 * kv_local) * d;
    attn_out_elems = T * a / t * d;
  }
  c.gemm_f += proj.f;
  c.gemm_b += proj.b;
  c.params_dense += attn_params + 2 * h;  // + norms

  // Attention core.
  const double af = attention_fwd_flops(li);
  const double kq = keys_per_query(li);
  double score_bytes = 0;  // unfused: the softmax output kept for backward (bf16 per score)
  if (l_.attention == AttentionKernel::flash) {
    // Flash attention: no s^2 memory, causal blocks skipped, at the fitted attention efficiency.
    const FlashSeconds fa = flash_attention_seconds(c_, peak_attn_, exp_rate_, attention_head_dims(), af, kq, sq_ * b_);
    c.attn_f = fa.fwd + ko_;
    c.attn_b = fa.bwd + 2 * ko_;
  } else {
    // Unfused: QK^T and PV are batched GEMMs over every key (the causal mask is applied, not
    // skipped), at the bf16 GEMM rate for their shape; between them the scores go through memory:
    // written, read and written by the softmax, read by PV (8 B per score forward); backward runs
    // twice the GEMM work and about twice the passes (16 B per score).
    const double keys = static_cast<double>(w_.seq_len);
    const double flops = af * keys / kq;
    const double dqk = m_.is_mla() ? m_.mla.qk_nope_head_dim + m_.mla.qk_rope_head_dim : m_.head_dim;
    const GemmRoofline g{peak_attn_, c_.gemm_max_at(Precision::bf16), half_, half_, mem_bw_};
    const double rate = peak_attn_ * g.efficiency(sq_, keys, dqk);
    const double scores = b_ * sq_ * keys * (m_.heads / t_);
    c.attn_f = flops / rate + mem_time(8.0 * scores, 3);
    c.attn_b = 2.0 * flops / rate + mem_time(16.0 * scores, 5);
    score_bytes = kAct * scores;
  }

  // MLP: dense or mixture of experts.
  const double mats = m_.gated_mlp ? 3.0 : 2.0;
  const double up_width = m_.gated_mlp ? 2.0 : 1.0;
  double mlp_act = 0, mlp_elem_bytes = 0, moe_fixed = 0;
  // Bytes per element of the MLP block's input (the pre-MLP norm output) kept for backward: the
  // projection's copy in its stored precision (gin_). A MoE layer's router is no Transformer Engine
  // layer: it keeps the bf16 tensor itself, and with fp8/fp4 the shared experts' fc1 keeps its own
  // low-precision copy beside it.
  double mlp_in_bytes = gin_;
  // Selective recompute's pieces of the MLP block: forward time of the whole MLP (dense, or MoE with
  // its dispatch and combine) and of the shared experts; the routed experts' activation function's
  // time and its stored output; the shared experts' stored activations.
  double mlp_f = 0, shared_f = 0, shared_act = 0, moe_act_f = 0, moe_act_out = 0;
  if (m_.is_moe_layer(li)) {
    const double E = m_.moe.experts, k = m_.moe.top_k, fe = static_cast<double>(m_.moe.ffn_hidden);
    const double ep = l_.ep;
    // Expert tensor parallelism follows tp unless ep needs the tp ranks (then it is 1).
    const double etp = l_.expert_tp();
    const double local_experts = E / ep;
    // Tokens this rank routes: its sequence-parallel shard (Megatron-Core needs sequence
    // parallelism for MoE with tp > 1). The expert-tensor group gathers etp shards, and each
    // expert rank holds E / ep experts, so a local expert sees tok * k * ep / E tokens.
    const double tok_local = T / tsp_;
    const double tok = tsp_ > 1 ? tok_local * etp : T;
    // Routing load: padded buffers (capacity factor) or the busiest rank (imbalance) set the pace.
    // Imbalance is between expert ranks: with ep 1 one rank holds every expert and its load is the
    // mean (padded buffers pad every expert whatever ep).
    const double load = w_.moe_capacity_factor > 0 || ep > 1 ? w_.moe_load(m_.moe.routing_imbalance) : 1.0;
    const double tokens_per_expert = load * tok * k * ep / E;
    // The local experts run as a grouped GEMM per projection (calibration gemm.grouped): one GEMM,
    // and one launch, per local expert (Transformer Engine GroupedLinear).
    Fb up = gemm_fb(tokens_per_expert, up_width * fe / etp, h, local_experts, c_.gemm_grouped);
    Fb down = gemm_fb(tokens_per_expert, h, fe / etp, local_experts, c_.gemm_grouped);
    Fb router = gemm_fb(T, E, h);
    c.gemm_f += up.f + down.f + router.f;
    c.gemm_b += up.b + down.b + router.b;
    c.params_expert += local_experts * mats * h * fe / etp;
    c.params_dense += h * E;
    if (m_.moe.shared_experts > 0) {
      const double fs = fe * m_.moe.shared_experts;
      Fb su = gemm_fb(T, up_width * fs / t, h);
      Fb sd = gemm_fb(T, h, fs / t);
      c.gemm_f += su.f + sd.f;
      c.gemm_b += su.b + sd.b;
      c.params_dense += mats * h * fs / t;
      shared_act = T * (m_.gated_mlp ? 4.0 + gin_ : 2.0 + gin_) * fs / t;
      mlp_act += shared_act;
      mlp_elem_bytes += T * (m_.gated_mlp ? 6.0 : 4.0) * fs / t;
      shared_f = su.f + sd.f + mem_time(T * (m_.gated_mlp ? 6.0 : 4.0) * fs / t, 1);
    }
    const double routed = load * tok * k;  // token-expert pairs this rank's experts compute
    // The permuted tokens, stored once as the experts' fc1 input: every expert-tensor rank keeps the
    // whole gathered tokens (Megatron-Core gathers them over the etp group before the experts).
    mlp_act += routed * (m_.gated_mlp ? 4.0 + gin_ : 2.0 + gin_) * fe / etp + routed * h * gin_;
    // The router's scores (fp32, one per expert per token) for the score function's backward.
    mlp_act += 4.0 * E * T / tsp_;
    mlp_in_bytes = kAct + (m_.moe.shared_experts > 0 && gin_ < kAct ? gin_ : 0.0);
    mlp_elem_bytes += routed * (m_.gated_mlp ? 6.0 : 4.0) * fe / etp + load * tok_local * k * 4.0 * h * kAct;
    moe_act_out = routed * gin_ * fe / etp;
    moe_act_f = mem_time(routed * (m_.gated_mlp ? 6.0 : 4.0) * fe / etp, 1);
    // Dispatch and combine: an all-to-all in the expert-parallel group (whose ranks are etp
    // apart, as Megatron-Core orders expert ranks tp-ep-dp), then with etp > 1 an all-gather of
    // the routed tokens in the expert-tensor group (reduce-scatter on the way back).
    const double bytes = load * tok_local * k * h * kAct;
    double one = 0;
    if (ep > 1) {
      Group g_ep{static_cast<int>(ep), static_cast<int>(etp)};
      // flex (DeepEP, HybridEP): hierarchical across scale-up domains, one copy per destination domain.
      if (l_.moe_dispatcher == MoeDispatcher::flex && s_.chip.hierarchical_ep_dispatch) {
        g_ep.dedup_topk = static_cast<int>(k);
        g_ep.dedup_experts = m_.moe.experts;
        if (m_.moe.group_limited()) {
          g_ep.dedup_groups = m_.moe.router_groups;
          g_ep.dedup_group_topk = m_.moe.router_group_topk;
        }
      }
      one += coll(Collective::all_to_all, bytes, g_ep);
    }
    if (etp > 1 && tsp_ > 1) one += coll(Collective::all_gather, bytes * etp, Group{static_cast<int>(etp), 1});
    // ep_overlap of it hides under other work (the other microbatch's compute, as in Megatron-Core's
    // overlapped 1F1B or DualPipe), which then runs overlap_slowdown slower.
    c.ep_f = 2 * one * exposed_share(c_.ep_overlap);
    c.ep_b = c.ep_f;
    moe_fixed = c_.moe_layer_overhead.v + (l_.moe_dispatcher == MoeDispatcher::alltoall ? c_.moe_alltoall_overhead.v : 0.0);
    mlp_f = up.f + down.f + router.f + shared_f + mem_time(mlp_elem_bytes, 4) + moe_fixed + c.ep_f;
  } else {
    const double f = static_cast<double>(m_.ffn_hidden);
    Fb up = gemm_fb(T, up_width * f / t, h);
    Fb down = gemm_fb(T, h, f / t);
    c.gemm_f += up.f + down.f;
    c.gemm_b += up.b + down.b;
    c.params_dense += mats * h * f / t;
    mlp_act = T * (m_.gated_mlp ? 4.0 + gin_ : 2.0 + gin_) * f / t;
    mlp_elem_bytes = T * (m_.gated_mlp ? 6.0 : 4.0) * f / t;
    mlp_f = up.f + down.f + mem_time(mlp_elem_bytes, 1);
  }

  // Memory-bound work: two norms and two residual adds on h (sequence-sharded with SP), rope on
  // q and k, the MLP activation. Backward moves about twice the bytes.
  const double elem_f = 20.0 * h * T / tsp_ + 4.0 * (a / t + std::max(1.0, g / t)) * d * T * kAct / 2.0 + mlp_elem_bytes;
  c.elem_f = mem_time(elem_f, 8) + moe_fixed;
  c.elem_b = mem_time(2.0 * elem_f, 12) + 2.0 * moe_fixed;

  // Tensor parallelism: with SP, all-gather before and reduce-scatter after each block;
  // without, one all-reduce after each block. Same bytes; (1 - tp_overlap) of it is exposed.
  // A MoE layer's MLP block has none: its tokens leave the sequence-parallel shard through the
  // expert dispatch (all-to-all, and the expert-tensor gather with etp > 1, counted above).
  if (l_.tp > 1) {
    const double bytes = T * h * kAct;
    const Group g_tp{l_.tp, 1};
    const double per_block = l_.sequence_parallel
                                 ? coll(Collective::all_gather, bytes, g_tp) + coll(Collective::reduce_scatter, bytes, g_tp)
                                 : coll(Collective::all_reduce, bytes, g_tp);
    const double blocks = m_.is_moe_layer(li) && l_.sequence_parallel ? 1.0 : 2.0;
    c.tp_f = blocks * per_block * exposed_share(c_.tp_overlap);
    c.tp_b = c.tp_f;
  }

  // Context parallelism. Ring: K and V pass around the cp ranks, overlapped with the attention
  // blocks; backward passes K, V and their gradients; two K/V blocks in flight. All-gather: the
  // sequence's K/V gathered before attention (exposed), their gradients reduce-scattered after;
  // the gathered K/V (and its gradient in backward) held while the layer's attention runs.
  if (l_.cp > 1) {
    const double kv_elems = m_.is_mla() ? T * a / t * (m_.mla.qk_nope_head_dim + m_.mla.qk_rope_head_dim + m_.mla.v_head_dim)
                                        : T * 2 * std::max(1.0, g / t) * d;
    const Group g_cp{l_.cp, l_.tp};
    if (l_.cp_mode == CpMode::ring) {
      const double step = coll(Collective::send_recv, kv_elems * kAct, g_cp);
      const double comm_f = (l_.cp - 1) * step;
      c.cp_f = hidden_cost(comm_f, c.attn_f - ko_);
      c.cp_b = hidden_cost(2 * comm_f, c.attn_b - 2 * ko_);
      c.cp_buffer = 2.0 * kv_elems * kAct;
    } else {
      const double full = kv_elems * kAct * l_.cp;
      c.cp_f = coll(Collective::all_gather, full, g_cp);
      c.cp_b = c.cp_f + coll(Collective::reduce_scatter, full, g_cp);
      c.cp_buffer = 2.0 * full;
    }
  }

  // MoE all-to-all overlap (Megatron-Core --overlap-moe-expert-parallel-comm): one microbatch's
  // forward and another's backward run as one combined pass, each one's dispatch and combine under
  // the other's compute. Of the pair's all-to-all, what exceeds the pair's compute stays exposed; the
  // compute beside the rest runs overlap_slowdown slower. The MoE fixed costs (host work) hide nothing.
  // DualPipeV pairs chunks the same way: the saving is kept apart (c.ep_saving), as only its paired
  // chunks earn it (the pipeline simulation counts the pairs).
  if ((l_.moe_a2a_overlap || l_.schedule == PipeSchedule::dualpipe_v) && c.ep_f + c.ep_b > 0) {
    const double comm = c.ep_f + c.ep_b;
    const double compute = c.gemm_f + c.gemm_b + c.attn_f + c.attn_b + c.elem_f + c.elem_b - 3.0 * moe_fixed;
    const double exposed = std::max(0.0, comm - compute) + c_.overlap_slowdown * std::min(comm, compute);
    if (l_.moe_a2a_overlap) c.ep_f = c.ep_b = exposed / 2;
    else c.ep_saving = comm - exposed;
  }

  // Activations kept for backward (Korthikanti et al. 2022, with flash attention: no s^2 term).
  // With fp8/fp4 (Transformer Engine) the inputs of the GEMMs are kept in the low precision.
  const double act = (2.0 * kAct + gin_ + mlp_in_bytes) * h * T / tsp_ + kAct * qkv_out_elems + gin_ * attn_out_elems +
                     2.0 * T * a / t * 2.0 /* lse fp32 */ + mlp_act;
  c.act_working = act + score_bytes;
  switch (l_.recompute) {
    case Recompute::none:
      c.act_stored = act + score_bytes;
      break;
    case Recompute::selective: {
      // The modules chosen (Megatron-Core --recompute-modules; core_attn alone by default). Each
      // drops what it reruns from the stored activations and adds its forward to the backward.
      const unsigned mods = l_.recompute_modules;
      const bool moe_layer = m_.is_moe_layer(li);
      double saved = 0, rerun = 0;
      if (mods & kRecomputeCoreAttn) {  // the attention core from its stored q, k, v (unfused: its scores)
        saved += score_bytes;
        rerun += c.attn_f;
      }
      // The pre-block norms' outputs (the stored inputs of the QKV and MLP projections). Megatron-
      // Core's Transformer Engine layers fuse a norm into the projection after it (LayerNormLinear,
      // which stores its own output) except where that is not one projection: the input norm of
      // MLA (several down-projections) and the pre-MLP norm of a MoE layer (router and experts).
      // The layernorm module reruns those separate norms only; checkpointing a dense MLP whole keeps
      // its input, the residual before the fused norm, so its norm output goes too (a MoE block's
      // checkpoint takes the separate norm's output as its input and keeps it).
      const double norm_out = gin_ * h * T / tsp_, norm_f = mem_time(2.0 * kAct * h * T / tsp_, 1);
      const double separate_norms = (m_.is_mla() ? 1.0 : 0.0) + (moe_layer ? 1.0 : 0.0);
      const bool whole_mlp = moe_layer ? (mods & kRecomputeMoe) != 0 : (mods & kRecomputeMlp) != 0;
      if (mods & kRecomputeLayernorm) {
        saved += (m_.is_mla() ? norm_out : 0.0) + (moe_layer ? mlp_in_bytes * h * T / tsp_ : 0.0);
        rerun += separate_norms * norm_f;
      }
      if (whole_mlp && !moe_layer) {
        saved += norm_out;
        rerun += norm_f;
      }
      if ((mods & kRecomputeMlaUpProj) && m_.is_mla()) {  // q, k, v from the stored latents
        saved += kAct * mla_up_elems;
        rerun += mla_up_f;
      }
      if (whole_mlp) {
        saved += mlp_act;
        rerun += mlp_f + (moe_layer ? 0.0 : c.tp_f / 2);  // a dense MLP block's share of the TP traffic
      } else if (moe_layer) {
        if (mods & kRecomputeMoeAct) {
          saved += moe_act_out;
          rerun += moe_act_f;
        }
        if (mods & kRecomputeSharedExperts) {
          saved += shared_act;
          rerun += shared_f;
        }
      }
      c.act_stored = act + score_bytes - saved;
      c.recompute = rerun;
      // What the layer's backward holds again while it runs (core_attn's scores aside, as before).
      c.rerun_working = saved - ((mods & kRecomputeCoreAttn) ? score_bytes : 0.0);
      break;
    }
    case Recompute::full:  // keep the layer input only; rerun the forward in backward
      c.act_stored = kAct * h * T / tsp_;
      c.recompute = c.gemm_f + c.attn_f + c.elem_f + c.tp_f + c.cp_f + c.ep_f;
      break;
  }
  return c;
}


// Attention-core forward FLOPs per token of `global` layers with full causal attention and
// `local` ones with the model's window or chunk.
double attention_core_flops_per_token(const Model& m, long seq, double global, double local) {
  const double s = static_cast<double>(seq);
  const double kq_full = causal_pairs(0, s, 0) / s;
  const double kq_win = m.sliding_window > 0 ? m.local_pairs(0, s) / s : kq_full;
  double dqk = m.head_dim, dv = m.head_dim;
  if (m.is_mla()) {
    dqk = m.mla.qk_nope_head_dim + m.mla.qk_rope_head_dim;
    dv = m.mla.v_head_dim;
  }
  return 2.0 * m.heads * (dqk + dv) * (global * kq_full + local * kq_win);
}

// The MTP layers of a layout (each like the model's last layer): how many, and whether they are
// MoE and local-attention layers.
struct MtpKind {
  double n = 0;
  bool moe = false, local = false;
};
MtpKind mtp_kind(const Model& m, const Layout& l) {
  return {static_cast<double>(std::max(0, l.mtp_layers)), m.is_moe_layer(m.layers - 1), m.is_window_layer(m.layers - 1)};
}

// Attention-core forward FLOPs per token summed over layers (causal; sliding windows), MTP layers
// included.
double attention_flops_per_token(const Model& m, long seq, const MtpKind& x = {}) {
  const double nw = m.window_layer_count() + (x.local ? x.n : 0.0);
  return attention_core_flops_per_token(m, seq, m.layers + x.n - nw, nw);
}

// Parameters a token multiplies in one layer's MLP: a MoE layer's top-k and shared experts and its
// router, or the dense MLP.
double active_mlp_params(const Model& m, bool moe) {
  const double h = static_cast<double>(m.hidden), mats = m.gated_mlp ? 3.0 : 2.0;
  return moe ? (m.moe.top_k + m.moe.shared_experts) * mats * h * static_cast<double>(m.moe.ffn_hidden) + h * m.moe.experts
             : mats * h * static_cast<double>(m.ffn_hidden);
}

// Model FLOPs per token (forward only), summed over the whole model, with the layout's MTP modules
// (Megatron-LM's num_floating_point_operations counts them too): per module one layer of the last
// kind, its 2 h -> h projection and the output head again.
double model_fwd_flops_per_token(const Model& m, long seq, const MtpKind& x = {}) {
  const ParamCounts pc = count_params(m);
  const double matmul_params = pc.active(m) - pc.embedding - pc.norms;
  const double vh = static_cast<double>(m.vocab) * m.hidden;
  const double head_params = m.tied_embeddings ? vh : 0.0;
  double mtp_params = 0;
  if (x.n > 0) {
    const double h = static_cast<double>(m.hidden);
    mtp_params = x.n * (pc.attention / m.layers + active_mlp_params(m, x.moe) + 2.0 * h * h + vh);
  }
  return 2.0 * (matmul_params + head_params + mtp_params) + attention_flops_per_token(m, seq, x);
}

// Matrix FLOPs per token (forward, summed over the model and its MTP layers) that selective
// recompute reruns.
double selective_recompute_flops_per_token(const Model& m, unsigned mods, long seq, const MtpKind& mtp = {}) {
  const double h = static_cast<double>(m.hidden), mats = m.gated_mlp ? 3.0 : 2.0;
  const double moe_layers = m.moe_layer_count() + (mtp.moe ? mtp.n : 0.0);
  const double dense_layers = m.layers + mtp.n - moe_layers;
  double out = 0;
  if (mods & kRecomputeCoreAttn) out += attention_flops_per_token(m, seq, mtp);
  if ((mods & kRecomputeMlaUpProj) && m.is_mla()) {
    const auto& x = m.mla;
    const double q_up = x.q_lora_rank > 0 ? x.q_lora_rank * m.heads * (x.qk_nope_head_dim + x.qk_rope_head_dim) : 0.0;
    out += 2.0 * (m.layers + mtp.n) * (q_up + x.kv_lora_rank * m.heads * (x.qk_nope_head_dim + x.v_head_dim));
  }
  if (mods & kRecomputeMlp) out += 2.0 * dense_layers * mats * h * static_cast<double>(m.ffn_hidden);
  if (moe_layers > 0) {
    const double fe = static_cast<double>(m.moe.ffn_hidden), shared = mats * h * fe * m.moe.shared_experts;
    if (mods & kRecomputeMoe)
      out += 2.0 * moe_layers * (m.moe.top_k * mats * h * fe + h * m.moe.experts + shared);
    else if (mods & kRecomputeSharedExperts)
      out += 2.0 * moe_layers * shared;
  }
  return out;
}

}  // namespace

double layer_fwd_flops_per_token(const Model& m, int layer, long seq) {
  const bool local = m.is_window_layer(layer);
  return 2.0 * (count_params(m).attention / m.layers + active_mlp_params(m, m.is_moe_layer(layer))) +
         attention_core_flops_per_token(m, seq, local ? 0 : 1, local ? 1 : 0);
}

double mtp_fwd_flops_per_token(const Model& m, int mtp, long seq) {
  if (mtp <= 0) return 0;
  const MtpKind x{static_cast<double>(mtp), m.is_moe_layer(m.layers - 1), m.is_window_layer(m.layers - 1)};
  return model_fwd_flops_per_token(m, seq, x) - model_fwd_flops_per_token(m, seq);
}

double recompute_share(const Layout& l, int layers) {
  if (l.recompute != Recompute::full || l.recompute_layers <= 0 || layers <= 0) return 1.0;
  return std::min(1.0, static_cast<double>(l.recompute_layers) / layers);
}

Infeasible check_layout(const Model& m, const System& s, const Layout& l, const Workload& w, int devices,
                        std::string* why) {
  auto no = [&](Infeasible r, std::string text) {
    if (why) *why = std::move(text);
    return r;
  };
  if (l.tp < 1 || l.pp < 1 || l.dp < 1 || l.cp < 1 || l.ep < 1 || l.vp < 1 || l.micro_batch < 1)
    return no(Infeasible::indivisible, "parallel degrees and micro-batch must be at least 1");
  const long prod = static_cast<long>(l.tp) * l.pp * l.dp * l.cp;
  if (prod != devices)
    return no(Infeasible::indivisible, "tp x pp x dp x cp = " + std::to_string(prod) + " but devices = " + std::to_string(devices));
  if (m.heads % l.tp != 0) return no(Infeasible::indivisible, "tp " + std::to_string(l.tp) + " does not divide heads " + std::to_string(m.heads));
  if (!m.is_mla() && m.kv_heads % l.tp != 0 && l.tp % m.kv_heads != 0)
    return no(Infeasible::indivisible, "tp " + std::to_string(l.tp) + " and kv_heads " + std::to_string(m.kv_heads) + " do not divide");
  if (l.pp > m.layers) return no(Infeasible::indivisible, "pp " + std::to_string(l.pp) + " exceeds layers " + std::to_string(m.layers));
  if (l.vp > 1 && l.pp == 1) return no(Infeasible::indivisible, "interleaving (vp > 1) needs pp > 1");
  if (l.mtp_layers < 0 || l.mtp_layers > m.layers)
    return no(Infeasible::indivisible, "MTP layers must be 0 to layers (" + std::to_string(m.layers) + ")");
  // TF32 is a math mode on fp32 tensors: 4-byte weights and activations, and no flash attention.
  // The training model sizes 2-byte tensors (bf16/fp16, or fp8/fp4 GEMM inputs), so it would
  // undercount memory and traffic; it refuses rather than report that.
  if (l.precision == Precision::tf32 || l.precision == Precision::fp32)
    return no(Infeasible::unsupported_precision, std::string(precision_name(l.precision)) +
                                           " training keeps fp32 tensors, which this model does not size (it holds 2-byte "
                                           "activations and weights): train in bf16 or fp16 (or fp8/fp4)");
  if (l.recompute_layers < 0 || (l.recompute_layers > 0 && l.recompute != Recompute::full))
    return no(Infeasible::indivisible, "recompute layers need full recompute (and are at least 1)");
  if (l.vp > 1 && l.schedule == PipeSchedule::zero_bubble)
    return no(Infeasible::indivisible, "the zero-bubble schedule (zb-h1) runs without interleaving (vp = 1)");
  if (l.schedule == PipeSchedule::dualpipe_v) {
    if (l.pp < 2) return no(Infeasible::indivisible, "DualPipeV is a pipeline schedule and needs pp > 1");
    if (l.vp != 2) return no(Infeasible::indivisible, "DualPipeV holds two chunks per stage (vp = 2)");
    if (l.moe_a2a_overlap)
      return no(Infeasible::indivisible, "DualPipeV pairs forward and backward chunks itself; --moe-a2a-overlap is Megatron's 1F1B pairing");
  }
  if (l.stage_layout) {
    if (auto bad = pipeline_layout_problem(*l.stage_layout, m.layers, l.mtp_layers, l.pp))
      return no(Infeasible::indivisible, "pipeline layout " + *bad);
    if (static_cast<long>(l.stage_layout->chunks.size()) != static_cast<long>(l.pp) * l.vp)
      return no(Infeasible::indivisible, "pipeline layout '" + l.stage_layout->text + "' has " +
                                             std::to_string(l.stage_layout->chunks.size()) + " stages, and pp x vp = " +
                                             std::to_string(l.pp * l.vp));
    if (l.schedule == PipeSchedule::dualpipe_v)
      return no(Infeasible::indivisible, "a pipeline layout places Megatron's interleaved chunks; DualPipeV has its own V");
  }
  // The embedding and the loss may count as one layer each (max_pipeline_chunks, evaluate.hpp).
  if (!l.stage_layout && static_cast<long>(l.pp) * l.vp > max_pipeline_chunks(m.layers))
    return no(Infeasible::indivisible, "pp x vp = " + std::to_string(l.pp * l.vp) + " exceeds layers + 2 = " + std::to_string(m.layers + 2) +
                                           " (the embedding and the loss may count as one layer each)");
  const long per_replica = static_cast<long>(l.dp) * l.micro_batch;
  if (w.global_batch % per_replica != 0)
    return no(Infeasible::indivisible, "global batch " + std::to_string(w.global_batch) + " is not a multiple of dp x micro-batch = " +
                                           std::to_string(per_replica));
  if (l.cp > 1 && w.seq_len % (2L * l.cp) != 0)
    return no(Infeasible::indivisible, "sequence length " + std::to_string(w.seq_len) + " is not a multiple of 2 x cp");
  // Below pp microbatches the chunks cannot hide the fill: a lone microbatch walks all pp x vp
  // chunks in series; DualPipeV runs at least 2 pp (too_few_for_schedule, evaluate.hpp, which the
  // search's divisibility pass applies too).
  if (too_few_for_schedule(l.pp, l.vp, w.global_batch / per_replica, l.schedule))
    return no(Infeasible::too_few_microbatches,
              (l.schedule == PipeSchedule::dualpipe_v ? "DualPipeV needs at least 2 pp = " + std::to_string(2 * l.pp)
                                                      : "interleaving (vp " + std::to_string(l.vp) + ") needs at least pp = " +
                                                            std::to_string(l.pp)) +
                  " microbatches per replica, and the step has " + std::to_string(w.global_batch / per_replica) +
                  " (global batch / (dp x micro-batch))");
  if (!m.is_moe() && l.ep != 1) return no(Infeasible::indivisible, "ep > 1 needs a mixture-of-experts model");
  // Experts are sharded over ep ranks carved from dp x cp, or from tp x dp x cp when the
  // expert tensor-parallel degree drops to 1 (Megatron-Core).
  if (m.is_moe() && (m.moe.experts % l.ep != 0 || (static_cast<long>(l.dp) * l.cp * l.tp) % l.ep != 0))
    return no(Infeasible::indivisible, "ep " + std::to_string(l.ep) + " must divide experts and tp x dp x cp");
  if (l.etp != 0) {
    if (!m.is_moe() && l.etp != 1) return no(Infeasible::indivisible, "etp > 1 needs a mixture-of-experts model");
    if (l.etp < 1 || l.tp % l.etp != 0 || (static_cast<long>(l.dp) * l.cp * l.tp) % (static_cast<long>(l.ep) * l.etp) != 0)
      return no(Infeasible::indivisible, "etp " + std::to_string(l.etp) + " must divide tp and ep x etp must divide tp x dp x cp");
  }
  if (l.zero < 0 || l.zero > 3) return no(Infeasible::indivisible, "zero stage must be 0..3");
  if (l.zero == 3 && l.pp > 1) return no(Infeasible::indivisible, "ZeRO-3 with pipeline parallelism is not modelled");
  if (l.zero_group != 0) {
    const long ranks = static_cast<long>(l.dp) * l.cp;
    if (l.zero_group < 1) return no(Infeasible::indivisible, "the ZeRO group must be at least 1 rank");
    if (l.zero == 0) return no(Infeasible::indivisible, "a ZeRO group (hybrid sharding) needs ZeRO 1, 2 or 3");
    if (ranks % l.zero_group != 0)
      return no(Infeasible::indivisible, "the ZeRO group (" + std::to_string(l.zero_group) + ") must divide dp x cp (" +
                                             std::to_string(ranks) + ")");
    // With data parallelism outermost a replica's cp ranks sit together and its dp ranks a
    // replica apart: a group either holds whole cp blocks or lies within one.
    if (l.rank_order == RankOrder::pp_then_dp && l.cp > 1 && l.zero_group % l.cp != 0 && l.cp % l.zero_group != 0)
      return no(Infeasible::indivisible, "with dp outermost, the ZeRO group (" + std::to_string(l.zero_group) +
                                             ") must divide cp (" + std::to_string(l.cp) + ") or be a multiple of it");
    if (m.is_moe() && l.expert_dp() % l.zero_replicas() != 0)
      return no(Infeasible::indivisible, "the ZeRO group's " + std::to_string(l.zero_replicas()) +
                                             " copies must divide the expert data-parallel ranks (" + std::to_string(l.expert_dp()) + ")");
  }
  if (l.moe_dispatcher != MoeDispatcher::flex && !m.is_moe())
    return no(Infeasible::indivisible, "a MoE token dispatcher needs a mixture-of-experts model");
  if (l.moe_a2a_overlap) {  // Megatron-Bridge comm_overlap.py asserts these
    if (!m.is_moe() || l.ep < 2) return no(Infeasible::indivisible, "MoE all-to-all overlap needs a mixture-of-experts model with ep > 1");
    if (l.recompute == Recompute::full) return no(Infeasible::indivisible, "MoE all-to-all overlap excludes full recompute");
    if (l.pp > 1 && l.vp < 2) return no(Infeasible::indivisible, "MoE all-to-all overlap with pp > 1 needs interleaving (vp > 1)");
  }
  if (l.offload_activations && !s.host_bandwidth)
    return no(Infeasible::indivisible, "activation offload needs the host link's bandwidth, and " +
                                           s.file_or_id() + " has no [host] bandwidth");
  if (l.lowp_params && !can_keep_lowp_params(l.precision))
    return no(Infeasible::indivisible, "low-precision primary weights need fp8 or fp4");
  if (!s.peak(l.precision))
    return no(Infeasible::unsupported_precision, std::string(s.chip.name) + " has no " + precision_name(l.precision) + " matrix rate");
  return Infeasible::none;
}

namespace {

struct Setup {
  std::vector<int> layers_of, moe_layers_of;
  // Of those, the layers with local attention (a window or chunk), dense and MoE.
  std::vector<int> local_dense_of, local_moe_of;
  // Multi-token-prediction layers (Layout::mtp_layers), counted in their stages' layers above:
  // all of them, and per stage (empty when none; the head's stage unless a layout places them).
  int mtp = 0;
  std::vector<int> mtp_of;
  // DualPipeV: chunk 0's MoE and local layers per stage (its layers are the larger half of the
  // stage's decoder layers, (n + 1) / 2; chunk 1 holds the rest, the head and the MTP layers).
  std::vector<int> chunk0_moe, chunk0_local_dense, chunk0_local_moe;
  int mtp_on(int stage) const { return mtp_of.empty() ? 0 : mtp_of[static_cast<std::size_t>(stage)]; }
  // Whether stage i holds a copy of the embedding for its MTP modules' lookups: not stage 0, which
  // has the table, nor a tied model's head stage, whose output weights are the table.
  bool mtp_embedding_copy(const Model& m, const Layout& l, int i) const {
    return mtp_on(i) > 0 && i != 0 && !(m.tied_embeddings && i == head_stage(l));
  }
};


// Memory of pipeline stage i (activations of the microbatches it holds in flight).
MemoryBreakdown stage_memory(const Model& m, const System& s, const Layout& l, const Evaluator& ev,
                             const LayerCost& dense, const LayerCost& moe, const Setup& st, int i, long microbatches) {
  const std::vector<int>& layers_of = st.layers_of;
  const std::vector<int>& moe_layers_of = st.moe_layers_of;
  MemoryBreakdown mb;
  const double t = l.tp;
  const double h = static_cast<double>(m.hidden);
  const int n_moe = moe_layers_of[i], n_dense = layers_of[i] - n_moe;
  double p_dense = n_dense * dense.params_dense + n_moe * moe.params_dense;
  const double p_exp = n_moe * moe.params_expert;
  const bool first = i == 0, last = i == head_stage(l);
  if (first) p_dense += static_cast<double>(m.vocab) * h / t;
  // Tied embeddings are one table where one stage holds both ends (pp 1, or DualPipeV's stage 0).
  if (last && (!m.tied_embeddings || !first)) p_dense += static_cast<double>(m.vocab) * h / t;
  if (last) p_dense += h;  // the final norm
  if (st.mtp_on(i) > 0) {
    // Each MTP module's projection (2 h x h, column-parallel) and its two input norms and final
    // norm (its layer is in the stage's layers); the stage needs the embedding for the shifted
    // tokens, a copy of stage 0's table unless it holds it already (Megatron-Core builds it on the
    // MTP stage and keeps the two in step as tied embeddings are).
    p_dense += st.mtp_on(i) * (2.0 * h * h / t + 3.0 * h);
    if (st.mtp_embedding_copy(m, l, i)) p_dense += static_cast<double>(m.vocab) * h / t;
  }
  const double shard = l.zero_shard();
  const double shard_exp = l.expert_zero_shard();
  const double params = p_dense + p_exp;
  const double wbytes = weight_bytes(l, s);
  // Under ZeRO-3 the fp32 master (in `optimizer`) is the only persistent copy; working weights
  // exist only for the gathered layers (in `transient`).
  mb.weights = l.zero >= 3 ? 0.0 : params * wbytes;
  mb.gradients = l.zero >= 2 ? (p_dense / shard + p_exp / shard_exp) * grad_bytes(l) : params * grad_bytes(l);
  mb.optimizer = l.zero >= 1 ? (p_dense / shard + p_exp / shard_exp) * (kMasterBytes + kAdamBytes)
                             : params * (kMasterBytes + kAdamBytes);

  // Microbatch-layers in flight (1F1B: stage i holds p - i microbatches; ZB-H1: p on every stage,
  // its weight gradients delayed by the stage's depth holding their layers' inputs, most of the
  // activations (src/perf/pipeline_sim.cpp); interleaved: Megatron's warm-up of
  // (p-1)*2 + (v-1)*p + 1 chunks on the first stage).
  const int p = l.pp, v = l.vp;
  double units = 0;
  // Partial full recompute: recompute_layers of the stage keep only their input, the rest everything.
  const double share = recompute_share(l, layers_of[i]);
  const double per_layer_stored =
      (share * (n_dense * dense.act_stored + n_moe * moe.act_stored) +
       (1.0 - share) * (n_dense * dense.act_working + n_moe * moe.act_working)) / std::max(1, layers_of[i]);
  if (l.schedule == PipeSchedule::dualpipe_v) {
    // DualPipeV: 2 p + 1 chunk-microbatches at the peak, deepseek-ai/DualPipe's PP + 1 per device
    // for its PP = 2 p stages, but 2 p - i of them chunk 0's and i + 1 chunk 1's (dualpipe_held),
    // each weighed by its chunk's layers (make_setup gives chunk 0 the larger half of an odd count:
    // halving them had read DeepSeek-V3's 3-layer stage 0 at pp 16 24% low).
    const auto [held0, held1] = dualpipe_held(p, i);
    // The MTP layers ride with the head, in stage 0's chunk 1.
    const int mtp = st.mtp_on(i), n = layers_of[i] - mtp, chunk0 = (n + 1) / 2, chunk1 = n / 2 + mtp;
    units = static_cast<double>(std::min<long>(microbatches, held0)) * chunk0 +
            static_cast<double>(std::min<long>(microbatches, held1)) * chunk1;
  } else if (v == 1) {
    const long held = l.schedule == PipeSchedule::zero_bubble ? p : p - i;
    units = static_cast<double>(std::min<long>(microbatches, held)) * layers_of[i];
  } else {
    const double chunks = std::min<double>(static_cast<double>(microbatches) * v, (p - 1 - i) * 2.0 + (v - 1) * p + 1);
    // MTP layers sit in the stage's last chunk (with the loss, or beside it in a hand-written
    // layout), which the warm-up reaches last: one microbatch of them is in flight at the peak.
    const int mtp = st.mtp_on(i);
    units = chunks * (layers_of[i] - mtp) / v + std::min(1L, microbatches) * mtp;
  }
  mb.activations = units * per_layer_stored;
  // Embedding output, held with chunk 0's forwards.
  const double embedding =
      first ? ev.T_ * h * kAct / ev.tsp_ * std::min<long>(microbatches, l.schedule == PipeSchedule::dualpipe_v ? 2L * p : p) : 0.0;
  if (l.offload_activations) {
    // Offloaded: every layer's kept tensors (the embedding output too: layer 0's input) go to host
    // memory after its forward; the device holds the layer being copied out and the one being
    // copied back in ahead of its backward, two of each where a forward and a backward run at once
    // (DualPipeV's pairs, Megatron's MoE all-to-all overlap), each as large as the largest layer
    // the stage keeps (a kept layer under partial full recompute, the larger kind).
    const bool partial = l.recompute == Recompute::full && share < 1.0;  // some layers keep everything
    auto kept = [&](const LayerCost& c) { return partial ? c.act_working : c.act_stored; };
    const double largest = std::max(n_dense > 0 ? kept(dense) : 0.0, n_moe > 0 ? kept(moe) : 0.0);
    const double buffers = l.schedule == PipeSchedule::dualpipe_v || l.moe_a2a_overlap ? 4.0 : 2.0;
    mb.host = mb.activations + embedding;
    mb.activations = std::min(units, buffers) * largest;
  } else {
    mb.activations += embedding;
  }
  double transient = 0;
  // One layer's rerun held while its backward runs: the largest of the kinds this stage holds.
  if (l.recompute == Recompute::full)
    transient = std::max(n_dense > 0 ? dense.act_working : 0.0, n_moe > 0 ? moe.act_working : 0.0);
  if (l.recompute == Recompute::selective)
    transient = std::max(n_dense > 0 ? dense.rerun_working : 0.0, n_moe > 0 ? moe.rerun_working : 0.0);
  transient += std::max(dense.cp_buffer, moe.cp_buffer);  // beside the layer being run
  if (last) {
    // Logits in bf16 plus the fp32 copy the fused cross-entropy works on; each MTP module's loss,
    // computed in the forward pass before the model's own, keeps its fp32 copy for backward too.
    transient = std::max(transient, ev.T_ * static_cast<double>(m.vocab) / t * (kAct + 4.0 * (1 + st.mtp)));
  }
  if (l.zero >= 3) {
    // Gathered working weights of the current and the prefetched layer.
    const double layer_params = std::max(dense.params_dense, moe.params_dense + moe.params_expert);
    transient += 2.0 * layer_params * gather_bytes(l, s);
  }
  mb.transient = transient;
  mb.reserve = s.calib.memory_reserve.v + s.calib.memory_frag * (mb.activations + mb.transient);
  mb.capacity = s.hbm_capacity().v;
  return mb;
}


// Which stage holds each layer: contiguous runs (split_layers); interleaved (vp > 1), pp x vp
// chunks as split_layers sizes them (Megatron's chunks; chunk 0 and the last hold none where
// pp x vp passes the layers, the embedding's and the loss's), chunk c on stage c mod pp,
// so a stage holds layers r, r + pp, ... when chunks are one layer: where MoE or global-attention
// layers recur with a period that shares a factor with pp, stages differ (Llama 4 Scout, pp 4 with
// one layer per chunk: stage 3 holds all 12 global layers, stage 0 none).
Setup place_layers(const Model& m, const Layout& l) {
  Setup st;
  st.layers_of = split_layers(m.layers, l.pp);
  st.moe_layers_of.assign(l.pp, 0);
  const bool local = m.window_layer_count() > 0;
  if (local) {  // left empty (read as 0) for a model without local layers: one allocation less per plan
    st.local_dense_of.assign(l.pp, 0);
    st.local_moe_of.assign(l.pp, 0);
  }
  auto count = [&](int stage, int layer) {
    const bool moe = m.is_moe_layer(layer);
    if (moe) ++st.moe_layers_of[stage];
    if (local && m.is_window_layer(layer)) ++(moe ? st.local_moe_of : st.local_dense_of)[stage];
  };
  if (l.schedule == PipeSchedule::dualpipe_v) {
    // The V: each stage keeps its even share of the layers (split_layers above: the remainder to
    // the middle stages, away from stage 0's embedding and head), its chunk 0 the larger half; the
    // chunk positions run down the stages on chunk 0 and back up on chunk 1, chunk position c on
    // stage c for c < pp, else 2 pp - 1 - c. (Interleaving's chunk sizes had piled the remainder on
    // the last stage: 6, 7, ..., 7, 8 for 56 layers.)
    // Chunk 0's kinds are kept apart too: the evaluator times the two chunks each with its own.
    const int chunks = 2 * l.pp;
    st.chunk0_moe.assign(l.pp, 0);
    if (local) {
      st.chunk0_local_dense.assign(l.pp, 0);
      st.chunk0_local_moe.assign(l.pp, 0);
    }
    for (int pos = 0, at = 0; pos < chunks; ++pos) {
      const int stage = pos < l.pp ? pos : chunks - 1 - pos;
      const int total = st.layers_of[static_cast<std::size_t>(stage)];
      const int size = pos < l.pp ? (total + 1) / 2 : total / 2;
      for (int j = 0; j < size; ++j, ++at) {
        count(stage, at);
        if (pos >= l.pp) continue;
        const bool moe = m.is_moe_layer(at);
        if (moe) ++st.chunk0_moe[stage];
        if (local && m.is_window_layer(at)) ++(moe ? st.chunk0_local_moe : st.chunk0_local_dense)[stage];
      }
    }
    return st;
  }
  if (l.vp > 1) {
    // Chunks as split_layers gives them (the first and last may hold none where pp x vp passes the
    // layers: the embedding's and the loss's), chunk c on stage c mod pp; sizes computed in place
    // (this runs once per evaluated plan).
    const int chunks = l.pp * l.vp, base = m.layers / chunks, rem = m.layers % chunks;
    const int middle = std::min(rem, chunks - 2);  // chunks 1 .. middle take one more
    std::fill(st.layers_of.begin(), st.layers_of.end(), 0);
    const bool by_layer = local || m.is_moe();  // else only the counts matter
    if (!by_layer) {  // only the counts matter: stage s holds chunks s, s + pp, ..., in closed form
      for (int stage = 0; stage < l.pp; ++stage) {
        // chunks c = stage + k pp (k < vp) with 1 <= c <= middle take one more layer
        const int kmin = stage == 0 ? 1 : 0, kmax = middle >= stage ? std::min(l.vp - 1, (middle - stage) / l.pp) : -1;
        st.layers_of[stage] = base * l.vp + std::max(0, kmax - kmin + 1);
      }
      if (rem > chunks - 2) ++st.layers_of[l.pp - 1];  // the last chunk, on the last stage
      return st;
    }
    int at = 0;
    for (int c = 0, stage = 0; c < chunks; ++c, stage = stage + 1 == l.pp ? 0 : stage + 1) {
      const int size = even_chunk_layers(m.layers, chunks, c);
      st.layers_of[stage] += size;
      for (int j = 0; j < size; ++j, ++at) count(stage, at);
    }
    return st;
  }
  int at = 0;
  for (int i = 0; i < l.pp; ++i) {
    for (int j = 0; j < st.layers_of[i]; ++j) count(i, at + j);
    at += st.layers_of[i];
  }
  return st;
}

// Adds k MTP layers (each like the model's last layer: its MLP kind and its attention) to a stage.
// Out of line, as the hand-written layout below: the chooser's plans take neither.
[[gnu::noinline]] void add_mtp_layers(Setup& st, const Model& m, const Layout& l, int stage, int k) {
  if (k <= 0) return;
  const int last = m.layers - 1;
  const bool moe = m.is_moe_layer(last), local = m.window_layer_count() > 0 && m.is_window_layer(last);
  if (st.mtp_of.empty()) st.mtp_of.assign(static_cast<std::size_t>(l.pp), 0);
  st.mtp += k;
  st.mtp_of[stage] += k;
  st.layers_of[stage] += k;
  if (moe) st.moe_layers_of[stage] += k;
  if (local) (moe ? st.local_moe_of : st.local_dense_of)[stage] += k;
}

// A hand-written layout (Layout::stage_layout): chunk c's decoder layers take the next layer
// indices (forward order) on stage c mod pp, its MTP layers go to that stage.
[[gnu::noinline]] Setup place_by_layout(const Model& m, const Layout& l) {
  const bool local = m.window_layer_count() > 0;
  Setup st;
  st.layers_of.assign(l.pp, 0);
  st.moe_layers_of.assign(l.pp, 0);
  if (local) {
    st.local_dense_of.assign(l.pp, 0);
    st.local_moe_of.assign(l.pp, 0);
  }
  int at = 0, stage = 0;
  for (const PipelineChunk& c : l.stage_layout->chunks) {
    for (int j = 0; j < c.layers; ++j, ++at) {
      ++st.layers_of[stage];
      const bool moe = m.is_moe_layer(at);
      if (moe) ++st.moe_layers_of[stage];
      if (local && m.is_window_layer(at)) ++(moe ? st.local_moe_of : st.local_dense_of)[stage];
    }
    add_mtp_layers(st, m, l, stage, c.mtp);
    stage = stage + 1 == l.pp ? 0 : stage + 1;
  }
  return st;
}

// The layers placed (evenly, or as a hand-written layout says), and the MTP layers on the stage
// that holds the output head, where Megatron-Core builds them and DeepSeek-V3 places them
// (Section 3.2.1: with the output head), unless a layout puts them elsewhere.
Setup make_setup(const Model& m, const Layout& l) {
  if (l.stage_layout) return place_by_layout(m, l);
  Setup st = place_layers(m, l);
  if (l.mtp_layers > 0) add_mtp_layers(st, m, l, head_stage(l), l.mtp_layers);
  return st;
}

// A representative dense or MoE layer: the first of its kind, global or local as asked where the
// model has both (only attention differs between them; memory reads either), else any.
LayerCost kind_layer(const Evaluator& ev, const Model& m, bool moe_kind, bool local = false) {
  int first = -1, any = -1;
  for (int i = 0; i < m.layers && first < 0; ++i) {
    if (m.is_moe_layer(i) != moe_kind) continue;
    if (any < 0) any = i;
    if (m.is_window_layer(i) == local) first = i;
  }
  if (first < 0) first = any;
  if (first < 0) return {};
  return ev.layer(first);
}

}  // namespace

namespace {
MemoryBreakdown memory_of(const Model& m, const System& s, const Layout& l, const Workload& w, const Evaluator& ev,
                          const Setup& st, const LayerCost& dense, const LayerCost& moe) {
  const long mbs = w.global_batch / (static_cast<long>(l.dp) * l.micro_batch);
  MemoryBreakdown worst;
  // Every stage: the first holds the embedding and the most microbatches in flight, the last the
  // logits, but a middle stage may hold more layers (split_layers gives them the remainder first)
  // and almost as many microbatches, or more MoE layers.
  // A middle stage holding the same layers as an earlier middle stage has no more in flight
  // (microbatches in flight fall with the stage index): only the first of each kind is computed.
  // The kinds are few (layer counts differ by one, MoE counts by the leading dense layers): kept on
  // the stack, as this runs once per evaluated plan; past 16 kinds every stage is computed.
  std::array<std::pair<int, int>, 16> seen{};
  std::size_t kinds = 0;
  double host = 0;
  int host_stage = 0;
  for (int i = 0; i < l.pp; ++i) {
    if (i != 0 && i != l.pp - 1 && st.mtp_on(i) == 0) {  // a stage with MTP layers holds more: never skipped
      const std::pair<int, int> kind{st.layers_of[i], st.moe_layers_of[i]};
      if (std::find(seen.begin(), seen.begin() + kinds, kind) != seen.begin() + kinds) continue;
      if (kinds < seen.size()) seen[kinds++] = kind;
    }
    MemoryBreakdown mb = stage_memory(m, s, l, ev, dense, moe, st, i, mbs);
    mb.stage = i;
    if (mb.host > host) {
      host = mb.host;
      host_stage = i;
    }
    if (mb.total() > worst.total()) worst = mb;
  }
  // Host memory is checked on its own: the stage with the most offloaded (the first, which holds
  // the most microbatches in flight) need not be the one with the most HBM.
  worst.host = host;
  worst.host_stage = host_stage;
  return worst;
}
}  // namespace

MemoryBreakdown estimate_memory(const Model& m, const System& s, const Layout& l, const Workload& w) {
  Evaluator ev(m, s, l, w);
  const Setup st = make_setup(m, l);
  return memory_of(m, s, l, w, ev, st, kind_layer(ev, m, false), kind_layer(ev, m, true));
}

bool bounded_simulation(const Model& m, const Layout& l) {
  return l.vp > 1 && l.schedule == PipeSchedule::one_f_one_b &&
         (l.stage_layout ? !uniform_chunks(*l.stage_layout) : m.layers % (l.pp * l.vp) != 0);
}

int fewest_recompute_layers(const Model& m, const System& s, Layout l, const Workload& w, bool bare_fits_known_false) {
  if (!bare_fits_known_false) {
    // Where the layout fits without recompute, rerunning any layer only loses time: keep 0.
    Layout bare = l;
    bare.recompute = Recompute::none;
    bare.recompute_layers = 0;
    const MemoryBreakdown mb = estimate_memory(m, s, bare, w);
    if (mb.total() <= mb.capacity) return 0;
  }
  l.recompute = Recompute::full;
  l.recompute_layers = 0;
  // The layer costs do not depend on how many layers rerun: build them once.
  const Evaluator ev(m, s, l, w);
  const Setup st = make_setup(m, l);
  const LayerCost dense = kind_layer(ev, m, false), moe = kind_layer(ev, m, true);
  const int most = *std::max_element(st.layers_of.begin(), st.layers_of.end());
  auto fits = [&](int r) {
    Layout x = l;
    x.recompute_layers = r;
    const MemoryBreakdown mb = memory_of(m, s, x, w, ev, st, dense, moe);
    return mb.total() <= mb.capacity;
  };
  if (most <= 1 || !fits(most - 1)) return 0;
  int lo = 1, hi = most - 1;  // memory falls as r grows; fits(hi) holds
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (fits(mid)) hi = mid;
    else lo = mid + 1;
  }
  return hi;
}


namespace {

// The pipeline of uneven interleaved chunks (evaluate's branch, kept out of line: evaluate's
// inlining is fragile): each chunk's share of its stage's time into `share`, and the simulated
// makespan, or with `floor_only` a lower bound of it: stage i is busy mbs (f_i + b_i), and can
// start no sooner than microbatch 0's forward through chunk 0 of the stages before it, and ends no
// later than its last backward's chunk 0 there (chunk-major shares: chunk 0 of stage j is entry j).
[[gnu::noinline]] double uneven_chunk_pipeline(const Model& m, const Layout& l, long mbs, const std::vector<double>& f,
                                               const std::vector<double>& b, const ChunkCosts& cc, bool floor_only,
                                               std::vector<double>& share) {
  share = l.stage_layout ? layout_chunk_shares(m, l, cc) : even_chunk_shares(m, l, cc);
  if (!floor_only) return layout_pipeline_time(l, mbs, f, b, share);
  double floor = 0, way = 0;  // way: chunk 0's forward and backward on stages 0 .. i - 1
  for (std::size_t i = 0; i < f.size(); ++i) {
    floor = std::max(floor, way + static_cast<double>(mbs) * (f[i] + b[i]));
    way += (f[i] + b[i]) * share[i];
  }
  return floor;
}

}  // namespace

TrainReport evaluate(const Model& m, const System& s, const Layout& l, const Workload& w, int devices,
                     bool enforce_memory, bool detail, const StepCutoff* cutoff) {
  TrainReport r;  // one object returned on every path (a second return value defeats the copy elision)
  if (l.stage_layout && l.stage_layout->pending && l.pp >= 1 && l.vp >= 1) {
    r = evaluate_balanced(m, s, l, w, devices, enforce_memory, detail);
    return r;
  }
  r.layout = l;
  r.work = w;
  r.devices = devices;
  const long per_replica = static_cast<long>(l.dp) * l.micro_batch;
  if (per_replica > 0 && w.global_batch % per_replica == 0) r.microbatches = w.global_batch / per_replica;
  std::string why;
  r.why = check_layout(m, s, l, w, devices, detail ? &why : nullptr);
  if (r.why != Infeasible::none) {
    r.reason = why;
    return r;
  }

  Evaluator ev(m, s, l, w);
  const Setup st = make_setup(m, l);
  if (detail) r.stage_layers = st.layers_of;
  const LayerCost dense = kind_layer(ev, m, false);
  const LayerCost moe = kind_layer(ev, m, true);

  // Memory first: a plan that does not fit is reported with its figures.
  r.mem = memory_of(m, s, l, w, ev, st, dense, moe);
  if (r.mem.total() > r.mem.capacity) {
    r.why = Infeasible::out_of_memory;
    if (!detail && enforce_memory) return r;
    if (!detail) {  // timed over capacity, its figures unwritten (the planners' bounds)
      r.why = Infeasible::none;
      r.warning = "memory model over capacity";
    } else {
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "needs %s of %s per device: weights %s, gradients %s, optimizer %s, activations %s, transient %s, reserve %s",
                    format_bytes(Bytes{r.mem.total()}).c_str(), format_bytes(Bytes{r.mem.capacity}).c_str(),
                    format_bytes(Bytes{r.mem.weights}).c_str(), format_bytes(Bytes{r.mem.gradients}).c_str(),
                    format_bytes(Bytes{r.mem.optimizer}).c_str(), format_bytes(Bytes{r.mem.activations}).c_str(),
                    format_bytes(Bytes{r.mem.transient}).c_str(), format_bytes(Bytes{r.mem.reserve}).c_str());
      if (enforce_memory) {
        r.reason = buf;
        return r;
      }
      r.why = Infeasible::none;
      r.warning = std::string("memory model over capacity: ") + buf;
    }
  }
  // Offloaded activations must fit the host's memory where the catalog gives it.
  if (l.offload_activations && s.host_memory && r.mem.host > *s.host_memory) {
    const std::string text = "offloaded activations need " + format_bytes(Bytes{r.mem.host}) + " of host memory per device" +
                             (l.pp > 1 ? " (stage " + std::to_string(r.mem.host_stage + 1) + ")" : std::string()) + ", and " +
                             s.file_or_id() + " gives " + format_bytes(Bytes{*s.host_memory}) + " ([host] memory)";
    if (enforce_memory) {
      r.why = Infeasible::out_of_memory;
      r.reason = text;
      return r;
    }
    r.warning += (r.warning.empty() ? "" : "; ") + text;
  }

  const double h = static_cast<double>(m.hidden);
  const double t = l.tp;
  const double V = static_cast<double>(m.vocab);
  const double T = ev.T_;
  const long mbs = r.microbatches;
  const int p = l.pp;

  // Per-stage time per microbatch.
  struct Stage {
    double f = 0, b = 0;
    double w = 0;  // weight-gradient GEMMs: half of the backward GEMM time (dW and dX have equal FLOPs)
    double pair = 0;  // DualPipeV: what pairing its forward with a backward saves (all-to-all hidden)
    // DualPipeV: chunk 0's share of f, b, w and pair (its layers and, on stage 0, the embedding;
    // chunk 1 has the rest: its layers, the head and the MTP modules).
    double f0 = 0, b0 = 0, w0 = 0, pair0 = 0;
    TimeBreakdown parts;  // per microbatch
    double p_dense = 0, p_exp = 0;
  };
  std::vector<Stage> stages(p);
  // The stages' layers by kind: dense or MoE, global or local attention (only attention differs).
  const bool has_local = m.window_layer_count() > 0;
  LayerCost dense_l{}, moe_l{};  // read only where has_local
  if (has_local) {
    dense_l = kind_layer(ev, m, false, true);
    moe_l = kind_layer(ev, m, true, true);
  }
  // Stage-independent pieces, each computed once and added where a stage runs them (the head's
  // stage once per loss: the model's and each MTP module's).
  // A pass's cost: forward, backward, weight-gradient share, and its parts.
  struct Piece {
    double f = 0, b = 0, w = 0, gemm = 0, elem = 0, tp = 0;
    void add_to(Stage& sg, double k) const {
      if (k == 0) return;
      sg.f += k * f;
      sg.b += k * b;
      sg.w += k * w;
      sg.parts.gemm += k * gemm;
      sg.parts.elementwise += k * elem;
      sg.parts.tp_comm += k * tp;
    }
  };
  const double tp_hide = 1.0 - s.calib.tp_overlap;
  // Embedding lookup and its gradient scatter; vocab-parallel, its output all-reduced (or
  // reduce-scattered) over the tp ranks.
  Piece lookup;
  {
    const double e = ev.mem_time(T * h * kAct, 1), eb = ev.mem_time(T * h * 6.0, 2);
    lookup.f = e;
    lookup.b = eb;
    lookup.elem = e + eb;
    if (l.tp > 1) {
      const double c = ev.coll(l.sequence_parallel ? Collective::reduce_scatter : Collective::all_reduce, T * h * kAct,
                               Group{l.tp, 1}) * tp_hide;
      lookup.tp = c;
      lookup.f += c;
    }
  }
  // Output head (vocab-parallel GEMM) and the fused cross-entropy, with the hidden states gathered
  // over the tp ranks in forward and their gradient in backward (not recomputed: Megatron reruns
  // transformer layers only).
  Piece head;
  {
    const Fb g = ev.gemm_fb(T, V / t, h);
    const double ce_f = ev.mem_time(T * V / t * 10.0 + 4.0 * h * T / ev.tsp_, 3);
    const double ce_b = ev.mem_time(T * V / t * 6.0 + 8.0 * h * T / ev.tsp_, 3);
    head.f = g.f + ce_f;
    head.b = g.b + ce_b;
    head.w = 0.5 * g.b;
    head.gemm = g.f + g.b;
    head.elem = ce_f + ce_b;
    if (l.tp > 1) {
      const double c = 2 * ev.coll(Collective::all_gather, T * h * kAct, Group{l.tp, 1}) * tp_hide;
      head.tp = c;
      head.f += c / 2;
      head.b += c / 2;
    }
  }
  // An MTP module's own pieces besides its layer (in the stage's layer count): the next tokens'
  // embedding lookup, two norms and the 2 h -> h projection (input gathered over the tp ranks,
  // output gathered back).
  Piece mtp_proj;
  if (st.mtp > 0) {
    const double nf = ev.mem_time(4.0 * T * h * kAct / ev.tsp_, 2), nb = ev.mem_time(8.0 * T * h * kAct / ev.tsp_, 2);
    // (gemm_fb's three GEMMs written out: a third caller of it stops the compiler inlining it
    // into Evaluator::layer, the chooser's hot loop, 5% of its time.)
    const double gf = ev.gemm(T, h / t, 2.0 * h), gb = ev.gemm(T, 2.0 * h, h / t) + ev.gemm(2.0 * h, h / t, T);
    mtp_proj.f = gf + nf + lookup.f;
    mtp_proj.b = gb + nb + lookup.b;
    mtp_proj.w = 0.5 * gb;
    mtp_proj.gemm = gf + gb;
    mtp_proj.elem = nf + nb + lookup.elem;
    mtp_proj.tp = lookup.tp;
    if (l.tp > 1) {
      const double c = 2 * (ev.coll(Collective::all_gather, T * 2.0 * h * kAct, Group{l.tp, 1}) +
                            ev.coll(Collective::all_gather, T * h * kAct, Group{l.tp, 1})) * tp_hide;
      mtp_proj.tp += c;
      mtp_proj.f += c / 2;
      mtp_proj.b += c / 2;
    }
  }
  for (int i = 0; i < p; ++i) {
    Stage& sg = stages[i];
    const double nm = st.moe_layers_of[i], nd = st.layers_of[i] - nm;
    // The stage's layers summed field by field: (dense, MoE) x (global, local) times their counts.
    LayerCost x{};
    auto add = [&x](const LayerCost& c, double k) { x.add(c, k); };
    const double nd_l = has_local ? st.local_dense_of[i] : 0, nm_l = has_local ? st.local_moe_of[i] : 0;
    add(dense, nd - nd_l);
    add(moe, nm - nm_l);
    if (has_local) {
      add(dense_l, nd_l);
      add(moe_l, nm_l);
    }
    sg.parts.gemm = x.gemm_f + x.gemm_b;
    sg.parts.attention = x.attn_f + x.attn_b;
    sg.parts.elementwise = x.elem_f + x.elem_b;
    const double rshare = recompute_share(l, st.layers_of[i]);
    sg.parts.recompute = rshare * x.recompute;
    sg.parts.tp_comm = x.tp_f + x.tp_b;
    sg.parts.cp_comm = x.cp_f + x.cp_b;
    sg.parts.ep_comm = x.ep_f + x.ep_b;
    sg.f = x.fwd();
    sg.b = x.bwd() - (1.0 - rshare) * x.recompute;
    sg.w = 0.5 * x.gemm_b;
    sg.pair = x.ep_saving;
    sg.p_dense = x.params_dense;
    sg.p_exp = x.params_expert;
    const bool dual = l.schedule == PipeSchedule::dualpipe_v;
    const int n_main = st.layers_of[i] - st.mtp_on(i);
    if (dual) {  // chunk 0: the larger half of the stage's decoder layers, by kind
      LayerCost y{};
      auto add0 = [&y](const LayerCost& c, double k) { y.add(c, k); };
      const double n0 = (n_main + 1) / 2, m0 = st.chunk0_moe[i];
      const double d0_l = has_local ? st.chunk0_local_dense[i] : 0, m0_l = has_local ? st.chunk0_local_moe[i] : 0;
      add0(dense, n0 - m0 - d0_l);
      add0(moe, m0 - m0_l);
      if (has_local) {
        add0(dense_l, d0_l);
        add0(moe_l, m0_l);
      }
      sg.f0 = y.fwd();
      sg.b0 = y.bwd() - (1.0 - rshare) * y.recompute;
      sg.w0 = 0.5 * y.gemm_b;
      sg.pair0 = y.ep_saving;
    }
    if (l.offload_activations) {
      // Each layer's kept tensors cross the host link after its forward and come back before its
      // backward, beside that pass's compute (their own DMA engines): only what outlasts the pass
      // is exposed.
      const double bw = *s.host_bandwidth;
      double off_f = 0, off_b = 0;
      // Under partial full recompute the rerun layers send their input only, the others everything,
      // each against its own passes (the rerun layers' backward includes their rerun).
      auto offload_into = [&](double& of, double& ob, const LayerCost& c, double k) {
        if (k == 0) return;
        const double rerun = c.act_stored / bw, whole = c.act_working / bw;
        of += k * (rshare * std::max(0.0, rerun - c.fwd()) + (1.0 - rshare) * std::max(0.0, whole - c.fwd()));
        ob += k * (rshare * std::max(0.0, rerun - c.bwd()) + (1.0 - rshare) * std::max(0.0, whole - (c.bwd() - c.recompute)));
      };
      auto offload = [&](const LayerCost& c, double k) { offload_into(off_f, off_b, c, k); };
      offload(dense, nd - nd_l);
      offload(moe, nm - nm_l);
      if (has_local) {
        offload(dense_l, nd_l);
        offload(moe_l, nm_l);
      }
      sg.parts.offload = off_f + off_b;
      sg.f += off_f;
      sg.b += off_b;
      if (dual) {  // chunk 0's own layers, by kind
        double f0 = 0, b0 = 0;
        const double n0 = (n_main + 1) / 2, m0 = st.chunk0_moe[i];
        const double d0_l = has_local ? st.chunk0_local_dense[i] : 0, m0_l = has_local ? st.chunk0_local_moe[i] : 0;
        offload_into(f0, b0, dense, n0 - m0 - d0_l);
        offload_into(f0, b0, moe, m0 - m0_l);
        if (has_local) {
          offload_into(f0, b0, dense_l, d0_l);
          offload_into(f0, b0, moe_l, m0_l);
        }
        sg.f0 += f0;
        sg.b0 += b0;
      }
    }
    if (i == 0) {
      lookup.add_to(sg, 1);
      sg.f0 += lookup.f;  // DualPipeV: the embedding opens chunk 0
      sg.b0 += lookup.b;
      sg.p_dense += V * h / t;
    }
    if (i == head_stage(l)) {  // final norm, LM head, cross-entropy; again for each MTP module's loss
      head.add_to(sg, 1 + st.mtp);
      if (!m.tied_embeddings || i != 0) sg.p_dense += V * h / t;  // tied: one table where stage 0 holds both ends
    }
    if (const int k = st.mtp_on(i); k > 0) {  // MTP modules on this stage (their layers counted above)
      mtp_proj.add_to(sg, k);
      sg.p_dense += k * (2.0 * h * h / t + 3.0 * h);
      if (st.mtp_embedding_copy(m, l, i)) sg.p_dense += V * h / t;
    }
  }

  // Pipeline schedule: m microbatches through p stages, v chunks per stage.
  int slow = 0;
  double sum_T = 0;
  for (int i = 0; i < p; ++i) {
    sum_T += stages[i].f + stages[i].b;
    if (stages[i].f + stages[i].b > stages[slow].f + stages[slow].b) slow = i;
  }
  const double max_T = stages[slow].f + stages[slow].b;
  const double mean_T = sum_T / p;
  const double steady = static_cast<double>(mbs) * max_T;
  // Fill and drain: 1F1B's (p - 1) / vp of a stage; ZB-H1 (Qi et al. 2023) moves the deferred
  // weight gradients into them (pipeline_fill in perf/pipeline_sim.hpp).
  double sum_w = 0;
  if (l.schedule == PipeSchedule::zero_bubble)
    for (int i = 0; i < p; ++i) sum_w += stages[i].w;
  double pipe = 0, slow_busy = static_cast<double>(mbs) * max_T;
  bool simulate_later = false;  // pipe holds a lower bound of the simulation the cutoff may skip
  std::vector<double> chunk_f, chunk_b;  // uneven interleaved chunks: each stage's fwd and bwd
  if (l.schedule == PipeSchedule::dualpipe_v) {
    // DualPipeV has no closed form for uneven stages or B - W != F: its order is simulated
    // (dualpipe_makespan, perf/pipeline_sim.hpp), per chunk (each with its own work), the sends counted below
    // as for an interleaved pipeline. The slowest stage is the busiest once its pairs' saving (each
    // stage's pair count, dualpipe_pairs) is taken off.
    const double k_mbs = static_cast<double>(mbs);
    PipelineInput in;
    in.pp = p;
    in.vp = 2;
    in.microbatches = mbs;
    in.schedule = l.schedule;
    // Each chunk with its own times (2 pp entries, chunk-major): stage 0's chunk 1 carries the
    // head and any MTP module, chunk 0 the embedding.
    std::vector<double> f(p), b(p), w(p), x(p), f0(p), b0(p), w0(p), x0(p);
    for (int i = 0; i < p; ++i) {
      const Stage& sg = stages[i];
      f[i] = sg.f, b[i] = sg.b, w[i] = std::min(sg.w, sg.b), x[i] = std::min({sg.pair, sg.f, sg.b});
      f0[i] = sg.f0, b0[i] = sg.b0, w0[i] = sg.w0, x0[i] = sg.pair0;
    }
    set_dualpipe_chunks(in, f, b, w, x, f0, b0, w0, x0);
    pipe = dualpipe_makespan(in);
    slow_busy = 0;
    for (int i = 0; i < p; ++i) {
      const std::size_t j = static_cast<std::size_t>(p + i);
      const double pair = (dualpipe_pair_saving(in, i, 0, 1) + dualpipe_pair_saving(in, i, 1, 0)) / 2;
      const double busy = k_mbs * (in.fwd[i] + in.bwd[i] + in.fwd[j] + in.bwd[j]) - static_cast<double>(dualpipe_pairs(p, mbs, i)) * pair;
      if (busy > slow_busy) {
        slow_busy = busy;
        slow = i;
      }
    }
  } else if (bounded_simulation(m, l)) {
    // Chunks of unequal decoder layers (a layout's, or the even split's where pp x vp does not
    // divide the layers: an empty first or last chunk, a light one beside the head): the
    // interleaved order is simulated with each chunk's share of its stage's time
    // (layout_chunk_shares). Equal chunks take the closed form.
    chunk_f.resize(p), chunk_b.resize(p);
    for (int i = 0; i < p; ++i) chunk_f[i] = stages[i].f, chunk_b[i] = stages[i].b;
    ChunkCosts cc;
    cc.dense = dense.fwd() + dense.bwd();
    cc.moe = moe.fwd() + moe.bwd();
    cc.dense_local = has_local ? dense_l.fwd() + dense_l.bwd() : cc.dense;
    cc.moe_local = has_local ? moe_l.fwd() + moe_l.bwd() : cc.moe;
    cc.lookup = lookup.f + lookup.b;
    cc.head = head.f + head.b;
    cc.mtp = mtp_proj.f + mtp_proj.b;
    pipe = uneven_chunk_pipeline(m, l, mbs, chunk_f, chunk_b, cc, cutoff != nullptr, r.chunk_share);
    simulate_later = cutoff != nullptr;
  } else {
    pipe = steady + pipeline_fill(p, l.vp, mbs, l.schedule, mean_T, sum_w / p);
  }

  TimeBreakdown tb;
  const Stage& sl = stages[slow];
  const double k = static_cast<double>(mbs);
  tb.gemm = k * sl.parts.gemm;
  tb.attention = k * sl.parts.attention;
  tb.elementwise = k * sl.parts.elementwise;
  tb.recompute = k * sl.parts.recompute;
  tb.tp_comm = k * sl.parts.tp_comm;
  tb.cp_comm = k * sl.parts.cp_comm;
  tb.ep_comm = k * sl.parts.ep_comm;
  tb.offload = k * sl.parts.offload;
  if (l.schedule == PipeSchedule::dualpipe_v) {
    // The slowest stage's pairs hid part of its all-to-all (its busy time is less by that).
    tb.ep_comm = std::max(0.0, tb.ep_comm - (k * (sl.f + sl.b) - slow_busy));  // (rounding: -4e-16 where nothing was hidden)
    tb.bubble = std::max(0.0, pipe - slow_busy);  // rounding: uniform stages can read -1e-16
  } else {
    tb.bubble = pipe - steady;
  }

  // Pipeline send/recv of activations. 1F1B: one forward and one backward message per microbatch
  // on the critical path, plus the fill and drain chain. Interleaved (vp > 1): a message per chunk,
  // sent while the next chunk computes (Megatron's overlap_p2p_comm, on by default for the
  // interleaved schedule and refused by the plain one), so only the fill and drain chain is
  // exposed and the rest costs the compute it slows. That chain is the first microbatch's forward
  // through all pp x vp chunks and the last one's backward: 2 (pp x vp - 1) messages, as the
  // event-driven schedule finds (tests/test_pipeline_sim.cpp), not 2 (pp - 1).
  // Rank order: with data parallelism outermost (tp-cp-pp-dp) a replica's stages are a tp x cp
  // group apart and the replicas a whole replica (tp x cp x pp) apart; else (Megatron's default)
  // the stages are a tp x cp x dp group apart.
  const bool dp_outer = l.rank_order == RankOrder::pp_then_dp;
  if (p > 1) {
    const double bytes = T * h * kAct / ev.tsp_;
    const Group g{2, dp_outer ? l.tp * l.cp : l.tp * l.cp * l.dp};
    const double one = ev.coll(Collective::send_recv, bytes, g);
    // DualPipeV's V turns on the last stage without a send: 2 (2 pp - 2) messages in its chain.
    const double chain = l.schedule == PipeSchedule::dualpipe_v ? 2.0 * p - 2.0 : p * l.vp - 1.0;
    if (l.vp > 1)
      tb.pp_comm = 2.0 * chain * one + ev.hidden_cost(2.0 * k * l.vp * one, k * (sl.f + sl.b));
    else
      tb.pp_comm = 2.0 * (k + (p - 1.0)) * one;
    if (detail) r.p2p_time = one;
  }
  if (detail) {
    r.stage_fwd.resize(p);
    r.stage_bwd.resize(p);
    r.stage_wgrad.resize(p);
    r.stage_pair_saving.resize(p);
    for (int i = 0; i < p; ++i) {
      r.stage_fwd[i] = stages[i].f;
      r.stage_bwd[i] = stages[i].b;
      r.stage_wgrad[i] = std::min(stages[i].w, stages[i].b);
      r.stage_pair_saving[i] = std::min({stages[i].pair, stages[i].f, stages[i].b});
    }
    if (l.schedule == PipeSchedule::dualpipe_v) {
      r.chunk0_fwd.resize(p);
      r.chunk0_bwd.resize(p);
      r.chunk0_wgrad.resize(p);
      r.chunk0_pair_saving.resize(p);
      for (int i = 0; i < p; ++i) {
        r.chunk0_fwd[i] = stages[i].f0;
        r.chunk0_bwd[i] = stages[i].b0;
        r.chunk0_wgrad[i] = stages[i].w0;
        r.chunk0_pair_saving[i] = stages[i].pair0;
      }
    }
  }

  // Data-parallel gradient reduction (and parameter gather), per stage; the slowest counts. With
  // data parallelism outermost the group is the replica's context-parallel ranks (tp apart) times
  // the replicas; experts' data-parallel ranks (Megatron's expert order tp, ep, pp, dp) likewise.
  // Hybrid sharding (Layout::zero_group): the ZeRO collectives run inside each group of S
  // consecutive dp x cp ranks (g_dp; the experts' E, g_edp), and the R copies all-reduce their
  // gradient shards once a step (g_rep, g_erep: one rank of each group, S or E ranks apart).
  // (Without ZeRO there is no group: check_layout refuses one, so S is dp x cp and R 1.)
  const int S = l.zero_shard(), R = l.zero_replicas(), E = l.expert_zero_shard(), estride = l.expert_tp() * l.ep;
  Group g_dp{S, l.tp}, g_rep{R, l.tp * S};
  if (dp_outer && S <= l.cp) {
    g_rep = Group{R, l.tp * S, l.cp / S, l.tp * l.cp * l.pp};
  } else if (dp_outer) {
    g_dp = Group{S, l.tp, l.cp, l.tp * l.cp * l.pp};
    g_rep = Group{R, l.tp * l.cp * l.pp * (S / l.cp)};
  }
  const int eunit = dp_outer ? estride * l.pp : estride;
  const Group g_edp{E, eunit}, g_erep{R, eunit * E};
  double dp_exposed = 0, fsdp_exposed = 0, opt_time = 0;
  for (int i = 0; i < p; ++i) {
    const Stage& sg = stages[i];
    auto coll2 = [&](Collective c, double bytes_per_param) {
      return ev.coll(c, sg.p_dense * bytes_per_param, g_dp) + ev.coll(c, sg.p_exp * bytes_per_param, g_edp);
    };
    double exposed = 0, fsdp = 0;
    // The copies' all-reduce of their gradient shards (hybrid sharding), once a step.
    const double replicas_ar = R > 1 ? ev.coll(Collective::all_reduce, sg.p_dense / S * grad_bytes(l), g_rep) +
                                           ev.coll(Collective::all_reduce, sg.p_exp / E * grad_bytes(l), g_erep)
                                     : 0.0;
    if (l.zero == 0) {
      const double ar = coll2(Collective::all_reduce, grad_bytes(l));
      exposed = l.overlap_grad_reduce ? ev.hidden_cost(ar, sg.b) : ar;
    } else if (l.zero <= 2) {
      // ZeRO-1 (Megatron's distributed optimizer) accumulates whole gradients and reduce-scatters
      // them once per step. ZeRO-2 keeps only its shard of the gradients, so every microbatch's
      // gradients are reduce-scattered after its backward (DeepSpeed stage 2, FSDP
      // SHARD_GRAD_OP): k reductions a step, each hidden under one microbatch's backward.
      const double rs = coll2(Collective::reduce_scatter, grad_bytes(l));
      const double ag = coll2(Collective::all_gather, gather_bytes(l, s));
      const double reductions = l.zero == 2 ? static_cast<double>(k) : 1.0;
      if (!l.overlap_grad_reduce)
        exposed = reductions * rs + replicas_ar + ag;
      else if (R > 1)  // the copies' all-reduce follows the step's last reduce-scatter, under the same backward
        exposed = (reductions - 1) * ev.hidden_cost(rs, sg.b) + ev.hidden_cost(rs + replicas_ar, sg.b) + ev.hidden_cost(ag, sg.f);
      else
        exposed = reductions * ev.hidden_cost(rs, sg.b) + ev.hidden_cost(ag, sg.f);
    } else {
      // ZeRO-3 / FSDP: gather weights for forward and again for backward, reduce-scatter
      // gradients, every microbatch; prefetch hides it under compute up to fsdp_overlap.
      // One gather/gather/reduce-scatter per layer, so latency counts once per layer.
      // An implementation slower than the fabric (l.fsdp.rate) delivers a layer's full bytes at
      // its own rate.
      const double nl = std::max(1, st.layers_of[i]);
      auto one = [&](Collective c, double bytes, Group g) {
        const double t = ev.coll(c, bytes, g);
        return l.fsdp.rate > 0 && bytes > 0 ? std::max(t, bytes / l.fsdp.rate) : t;
      };
      auto coll_layer = [&](Collective c, double bytes_per_param) {
        return nl * (one(c, sg.p_dense / nl * bytes_per_param, g_dp) + one(c, sg.p_exp / nl * bytes_per_param, g_edp));
      };
      const double per_mb = 2 * coll_layer(Collective::all_gather, gather_bytes(l, s)) + coll_layer(Collective::reduce_scatter, grad_bytes(l));
      const double first_layer = per_mb / (3.0 * nl);
      const double overlap = l.fsdp.overlap >= 0 ? l.fsdp.overlap : s.calib.fsdp_overlap;
      fsdp = k * (ev.hidden_cost(per_mb, overlap * (sg.f + sg.b)) + first_layer);
      // The copies' all-reduce of the accumulated gradient shards, under the last backward.
      if (R > 1) exposed = l.overlap_grad_reduce ? ev.hidden_cost(replicas_ar, sg.b) : replicas_ar;
    }
    dp_exposed = std::max(dp_exposed, exposed);
    fsdp_exposed = std::max(fsdp_exposed, fsdp);
    const double shard = l.zero >= 1 ? static_cast<double>(l.zero_shard()) : 1.0;
    const double shard_e = l.zero >= 1 ? static_cast<double>(l.expert_zero_shard()) : 1.0;
    const double opt_params = sg.p_dense / shard + sg.p_exp / shard_e;
    opt_time = std::max(opt_time, ev.mem_time(opt_params * kOptimizerTraffic, 4));
  }
  tb.dp_comm = dp_exposed;
  tb.fsdp_comm = fsdp_exposed;
  tb.optimizer = opt_time;
  tb.overhead = s.calib.step_overhead.v;
  r.time = tb;
  r.step_time = tb.total();
  if (simulate_later) {
    // With a margin of 1e-10: the bound can exceed the simulated step by rounding (about 4e-14 where
    // one stage is busy throughout), and a plan within the planners' tie grid (tie_grid) must be
    // timed, as the layout order may pick it.
    if (r.step_time > (*cutoff)(r.mem) * (1 + 1e-10)) {
      r.bounded = true;
      return r;
    }
    tb.bubble = layout_pipeline_time(l, mbs, chunk_f, chunk_b, r.chunk_share) - steady;  // as without a cutoff, to the bit
    r.time = tb;
    r.step_time = tb.total();
  }

  const double tokens = static_cast<double>(w.global_batch) * static_cast<double>(w.seq_len);
  r.tokens_per_s = tokens / r.step_time;
  r.tokens_per_s_per_device = r.tokens_per_s / devices;
  const MtpKind mtp = mtp_kind(m, l);
  const double fwd_per_token = model_fwd_flops_per_token(m, w.seq_len, mtp);
  r.model_flops_per_step = 3.0 * fwd_per_token * tokens;
  // Recompute FLOPs: full = one more forward of the layers (MTP layers included, their projection
  // and the heads not); selective = the modules' share.
  double recompute_per_token = 0;
  if (l.recompute == Recompute::full) {
    const double heads = 2.0 * h * V * (1.0 + mtp.n) + mtp.n * 2.0 * 2.0 * h * h;
    double rerun = 0;  // layers rerun, over all stages
    for (int i = 0; i < p; ++i) rerun += recompute_share(l, st.layers_of[i]) * st.layers_of[i];
    recompute_per_token = (fwd_per_token - heads) * rerun / (m.layers + mtp.n);
  } else if (l.recompute == Recompute::selective) {
    recompute_per_token = selective_recompute_flops_per_token(m, l.recompute_modules, w.seq_len, mtp);
  }
  r.hardware_flops_per_step = r.model_flops_per_step + recompute_per_token * tokens;
  r.peak_flops_per_device = s.peak(l.precision)->v;
  r.mfu = r.model_flops_per_step / (r.step_time * devices * r.peak_flops_per_device);
  r.hfu = r.hardware_flops_per_step / (r.step_time * devices * r.peak_flops_per_device);
  return r;
}

}  // namespace xpu
