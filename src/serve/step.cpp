#include "serve/step.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "perf/collective.hpp"
#include "perf/kernels.hpp"

namespace xpu {

const char* quant_name(Quant q) {
  switch (q) {
    case Quant::bf16: return "bf16";
    case Quant::fp16: return "fp16";
    case Quant::fp8: return "fp8";
    case Quant::int8: return "int8";
    case Quant::int4: return "int4";
    case Quant::fp4: return "fp4";
  }
  return "?";
}

std::optional<Quant> parse_quant(std::string_view s) {
  for (Quant q : {Quant::bf16, Quant::fp16, Quant::fp8, Quant::int8, Quant::int4, Quant::fp4})
    if (s == quant_name(q)) return q;
  return std::nullopt;
}

double quant_bytes(Quant q) {
  switch (q) {
    case Quant::bf16:
    case Quant::fp16: return 2;
    case Quant::fp8:
    case Quant::int8: return 1;
    case Quant::int4:
    case Quant::fp4: return 0.5;
  }
  return 2;
}

const char* draft_method_name(DraftMethod d) {
  switch (d) {
    case DraftMethod::none: return "none";
    case DraftMethod::ngram: return "ngram";
    case DraftMethod::mtp: return "mtp";
    case DraftMethod::eagle: return "eagle";
  }
  return "?";
}

std::optional<DraftMethod> parse_draft_method(std::string_view s) {
  for (DraftMethod d : {DraftMethod::ngram, DraftMethod::mtp, DraftMethod::eagle})
    if (s == draft_method_name(d)) return d;
  return std::nullopt;
}

std::string speculation_summary(const Speculation& sp) {
  if (!sp.on()) return "off";
  return std::string(draft_method_name(sp.method)) + ":" + std::to_string(sp.draft_tokens) + " at " +
         format_number("%.2f", sp.acceptance) + " (" + format_number("%.2f", sp.tokens_per_step()) + " tokens per step)";
}

double value_bytes(Quant q, int fp4_scale_block) {
  return quant_bytes(q) + (q == Quant::fp4 && fp4_scale_block > 0 ? 1.0 / fp4_scale_block : 0.0);
}

double kv_bytes_per_token(const Model& m, Quant kv, int fp4_scale_block) {
  const double b = value_bytes(kv, fp4_scale_block);
  if (m.is_mla()) return static_cast<double>(m.mla.kv_lora_rank + m.mla.qk_rope_head_dim) * m.layers * b;
  return 2.0 * m.kv_heads * m.head_dim * m.layers * b;
}

namespace {

constexpr double kAct = 2.0;            // bytes of a bf16 activation element
constexpr double kElementwisePasses = 10;  // norms, residual adds, rope, activation: reads + writes of h per token per layer


constexpr auto& fmt = format_number;

std::optional<Precision> matrix_precision(const System& s, Quant w) {
  auto has = [&](Precision p) { return s.peak(p).has_value(); };
  auto dense16 = [&]() -> std::optional<Precision> {
    if (has(Precision::bf16)) return Precision::bf16;
    if (has(Precision::fp16)) return Precision::fp16;
    return std::nullopt;
  };
  switch (w) {
    case Quant::bf16: return dense16();
    case Quant::fp16: return has(Precision::fp16) ? std::optional(Precision::fp16) : dense16();
    case Quant::fp8: return has(Precision::fp8) ? std::optional(Precision::fp8) : dense16();
    case Quant::fp4:
      if (has(Precision::fp4)) return Precision::fp4;
      if (has(Precision::fp8)) return Precision::fp8;
      return dense16();
    case Quant::int8:
    case Quant::int4: return dense16();  // weight-only: dequantised to 16-bit before the matmul
  }
  return std::nullopt;
}


// Expected largest of g independent Binomial(n, p) counts: sum over j of P(max >= j). Above
// p = 1/2 it is n less the expected smallest of g Binomial(n, 1 - p) counts, sum over j of
// P(min >= j), so the pmf starts from max(p, 1 - p)^n >= 2^-n and does not underflow.
double expected_max_binomial(int n, double p, int g) {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  const bool flip = p > 0.5;
  const double q = flip ? 1 - p : p;
  double cdf = 0, pmf = std::pow(1 - q, n), sum = 0;  // pmf of 0
  for (int j = 1; j <= n; ++j) {
    cdf = std::min(1.0, cdf + pmf);  // P(X <= j - 1)
    sum += flip ? std::pow(1 - cdf, g) : 1 - std::pow(cdf, g);
    pmf *= (n - j + 1.0) / j * q / (1 - q);
  }
  return flip ? n - sum : sum;
}

// Expected largest of g independent standard normals (0 for g = 1), by quadrature of
// x g phi(x) Phi(x)^(g-1) over [-8, 8].
double expected_max_std_normal(int g) {
  if (g <= 1) return 0;
  const int steps = 4000;
  const double lo = -8, dx = 16.0 / steps;
  double out = 0;
  for (int i = 0; i < steps; ++i) {
    const double x = lo + (i + 0.5) * dx;
    const double phi = std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI), cdf = 0.5 * std::erfc(-x / std::sqrt(2.0));
    out += x * g * phi * std::pow(cdf, g - 1) * dx;
  }
  return out;
}
}  // namespace

StepModel::StepModel(const Model& m, const System& s, const ServeLayout& l, int token_budget, int max_batch,
                     const Speculation& spec)
    : m_(m), s_(s), l_(l), spec_(spec) {
  ws_budget_ = token_budget > 0 ? token_budget : s.serving.token_budget;
  ws_batch_ = max_batch > 0 ? max_batch : s.serving.max_batch;
  const int t = l.tp;
  block_ = std::max(1, s.serving.block_tokens);
  if (t < 1 || l.pp < 1 || l.ep < 1 || l.replicas < 1) {
    reason_ = "degrees must be at least 1";
    return;
  }
  if (l.pp > m.layers) {
    reason_ = "pp exceeds the layer count";
    return;
  }
  if (spec.on() && spec.method == DraftMethod::mtp && m.mtp_layers < 1) {
    reason_ = "speculative decoding with mtp needs the model's multi-token-prediction modules (" + m.name + " has mtp_layers 0)";
    return;
  }
  if (l.ep > 1 && (!m.is_moe() || m.moe.experts % l.ep != 0 || t % l.ep != 0)) {
    reason_ = "ep " + std::to_string(l.ep) + " needs a MoE model whose expert count it divides, and must divide tp";
    return;
  }
  // A checkpoint whose FP4 holds the routed experts alone (GPT-OSS's MXFP4): its other weights
  // stay bf16, and every matmul runs on 16-bit activations (the experts weight-only, W4A16).
  fp4_experts_only_ = l.weights == Quant::fp4 && m.fp4_experts_only && m.is_moe();
  auto cp = matrix_precision(s, fp4_experts_only_ ? Quant::bf16 : l.weights);
  if (!cp) {
    reason_ = std::string("chip has no matrix path for ") + quant_name(l.weights) + " weights";
    return;
  }
  cp_ = *cp;
  // FP4 weights stream their block scales too: one byte per block of the checkpoint's
  // (model fp4_scale_block, MXFP4's 32) or the family's engine.fp4_scale_block.
  fp4_block_ = m.fp4_scale_block > 0 ? m.fp4_scale_block : s.serving.fp4_scale_block;
  wb_expert_ = value_bytes(l.weights, fp4_block_);
  wb_ = fp4_experts_only_ ? quant_bytes(Quant::bf16) : wb_expert_;
  // An FP4 cache carries its block scales as FP4 weights do, in the engine's format (the cache is
  // the engine's, whatever the checkpoint's).
  kvb_ = value_bytes(l.kv, s.serving.fp4_scale_block);
  peak_ = s.peak(cp_)->v;
  const Precision ap = s.peak(Precision::bf16) ? Precision::bf16 : Precision::fp16;
  peak_attn_ = s.peak(ap) ? s.peak(ap)->v : peak_;
  exp_rate_ = s.exp_rate();
  const bool lowp = cp_ == Precision::fp8 || cp_ == Precision::fp4;
  gmax_ = std::min(1.0, s.gemm_cap(cp_) * s.serving.prefill_gemm * (lowp ? s.serving.lowp_gemm_ratio : 1.0));
  half_ = s.calib.gemm_half_dim;
  // The token dimension of a serving GEMM saturates at the chip's smallest matrix tile where the
  // calibration gives one (small-batch GEMV / split-K kernels pad to it, no further: 16 rows on
  // NVIDIA mma and AMD MFMA), else at the large-GEMM half_dim.
  tile_ = s.calib.gemm_tile_rows > 0 ? std::min(half_, s.calib.gemm_tile_rows) : half_;
  // A family's decode bandwidth fraction, capped per chip at what a weight-streaming kernel was
  // measured to reach on that chip (calibration memory.stream_fraction), where measured.
  const double stream = s.calib.memory_stream > 0 ? s.calib.memory_stream : 1.0;
  bw_ = s.hbm_bandwidth().v * std::min(s.serving.decode_bw, stream);
  attn_eff_ = s.calib.attention;

  const double h = static_cast<double>(m.hidden);
  // Heads that the tensor-parallel ranks do not divide are padded up to a multiple of them (as
  // Neuron and TPU engines do); an engine that runs `shards` ranks per device (Neuron: one per
  // NeuronCore) holds that many ranks' heads and replicated KV heads on each device.
  shards_ = std::max(1, s.serving.shards_per_device);
  const double ranks = static_cast<double>(t) * shards_;
  heads_dev_ = std::ceil(static_cast<double>(m.heads) / ranks) * shards_;
  const double hd = m.head_dim;
  if (m.is_mla()) {
    const auto& a = m.mla;
    const double qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
    if (a.q_lora_rank > 0) {
      attn_gemms_.push_back({static_cast<double>(a.q_lora_rank), h, 1});
      attn_gemms_.push_back({heads_dev_ * qk, static_cast<double>(a.q_lora_rank), 1, Split::n});
    } else {
      attn_gemms_.push_back({heads_dev_ * qk, h, 1, Split::n});
    }
    attn_gemms_.push_back({static_cast<double>(a.kv_lora_rank + a.qk_rope_head_dim), h, 1});
    attn_gemms_.push_back({heads_dev_ * (a.qk_nope_head_dim + a.v_head_dim), static_cast<double>(a.kv_lora_rank), 1, Split::n});
    attn_gemms_.push_back({h, heads_dev_ * a.v_head_dim, 1, Split::k});
    // Decode attends in the latent space (weights absorbed): keys kv_lora + rope, values kv_lora.
    attn_dqk_ = a.kv_lora_rank + a.qk_rope_head_dim;
    attn_dv_ = a.kv_lora_rank;
    kv_layer_dev_ = (a.kv_lora_rank + a.qk_rope_head_dim) * kvb_ * shards_;  // latent cache replicated on every tp rank
  } else {
    const double kvh_dev = std::ceil(static_cast<double>(m.kv_heads) / ranks) * shards_;  // replicated when ranks > kv heads
    attn_gemms_.push_back({(heads_dev_ + 2 * kvh_dev) * hd, h, 1, Split::n});
    attn_gemms_.push_back({h, heads_dev_ * hd, 1, Split::k});
    attn_dqk_ = attn_dv_ = hd;
    kv_layer_dev_ = 2 * kvh_dev * hd * kvb_;
  }
  const double mats = m.gated_mlp ? 3 : 2;
  auto mlp = [&](std::vector<Gemm>& out, double width) {
    out.push_back({(mats - 1) * width / t, h, 1, Split::n});
    out.push_back({h, width / t, 1, Split::k});
  };
  mlp(dense_mlp_gemms_, static_cast<double>(m.ffn_hidden));
  moe_layers_ = m.moe_layer_count();
  dense_layers_ = m.layers - moe_layers_;
  if (m.is_moe()) {
    if (m.moe.shared_experts > 0) mlp(shared_gemms_, static_cast<double>(m.moe.shared_experts) * m.moe.ffn_hidden);
    expert_bytes_dev_ = mats * h * m.moe.ffn_hidden * wb_expert_ / t;  // each expert sharded over tp/ep ranks, ep groups hold E/ep
    experts_dev_ = m.moe.experts;
    ep_max_z_ = expected_max_std_normal(l.ep);
  }

  const ParamCounts pc = count_params(m);
  const double body = pc.attention + pc.dense_mlp + pc.experts + pc.shared_experts + pc.router + pc.norms;
  const double ends = l.pp == 1 ? pc.embedding + pc.head : std::max(pc.embedding, pc.head);
  weights_dev_ = ((body - pc.experts) * wb_ + pc.experts * wb_expert_) / (static_cast<double>(t) * l.pp) + ends / t * wb_;
  // The draft's weights: its layers sharded as the model's (attention heads and MLP or experts
  // over tp), the fusion projection (2h -> h for MTP, EAGLE-3's 3h -> h) whole on every rank, the
  // embedding and head shared with the model. With pp they sit on the last stage; counted in full.
  if (const int dl = spec.draft_layers(m); dl > 0) {
    const double fuse = (spec.method == DraftMethod::mtp ? 2.0 : 3.0) * h * h;
    const double layer = spec.method == DraftMethod::mtp
                             ? mtp_module_params(m) - 2.0 * h * h
                             : pc.attention / m.layers + mats * h * static_cast<double>(m.ffn_hidden) + 3.0 * h;
    draft_weights_dev_ = dl * (layer / t + fuse) * wb_;
    weights_dev_ += draft_weights_dev_;
  }
  const int stage_layers = (m.layers + l.pp - 1) / l.pp;
  kv_dev_ = kv_layer_dev_ * stage_layers;
  g_layers_ = stage_layers;
  // Local layers keep at most their window per sequence (engines size their cache so: vLLM's
  // hybrid KV cache manager, TensorRT-LLM's per-layer attention windows): capacity is counted in
  // tokens of the full-attention layers, and the simulator charges each layer its own blocks
  // (kv_units). With pp the stage holding the most full-attention layers bounds the cache: its
  // own global and local layers, not the model's average share. Stages as vLLM splits them
  // (get_pp_indices: L / pp each, the remainder one apiece to the stages before the last, from
  // the back).
  const int nw = m.window_layer_count();
  if (nw > 0) cap_blocks_ = (m.sliding_window - 1 + block_ - 1) / block_ + 1;  // ceil((W - 1) / block) + 1
  if (nw == m.layers) g_layers_ = 0, l_layers_ = stage_layers;
  if (nw > 0 && nw < m.layers) {
    int global_most = -1, local_there = 0, first = 0;
    const int base = m.layers / l.pp, rem = m.layers % l.pp;
    for (int stage = 0; stage < l.pp; ++stage) {
      const int size = base + (stage >= l.pp - 1 - rem && stage < l.pp - 1 ? 1 : 0);
      int g = 0, loc = 0;
      for (int j = first; j < first + size; ++j) ++(m.is_window_layer(j) ? loc : g);
      first += size;
      if (g > global_most) global_most = g, local_there = loc;
    }
    kv_dev_ = kv_layer_dev_ * global_most;  // >= 1: some layer is global (nw < layers)
    g_layers_ = global_most;
    l_layers_ = local_there;
  }
  kv_replica_ = kv_bytes_per_token(m, l.kv, s.serving.fp4_scale_block);

  const double ffn_dev = std::max<double>(m.ffn_hidden, m.is_moe() ? m.moe.ffn_hidden * m.moe.top_k : 0) / t;
  // Activations of an iteration of the token budget, and fp32 logits of a full batch.
  const double workspace = static_cast<double>(ws_budget_) * (6 * h + 2 * ffn_dev) * kAct +
                           static_cast<double>(ws_batch_) * m.vocab / t * 4.0;
  workspace_ = workspace;
  const double hbm = s.hbm_capacity().v;
  const double free = (hbm - weights_dev_ - s.calib.memory_reserve.v - workspace) * s.serving.memory_fraction;
  if (free <= 0 || kv_dev_ <= 0) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "out of memory: weights %.1f GiB + reserve %.1f GiB + workspace %.1f GiB exceed %.1f GiB per device",
                  weights_dev_ / 1073741824.0, s.calib.memory_reserve.v / 1073741824.0, workspace / 1073741824.0,
                  hbm / 1073741824.0);
    reason_ = buf;
    return;
  }
  if (const int dl = spec.draft_layers(m); dl > 0) {
    // A draft layer attends to the whole context and caches its own keys and values for every
    // token: one more full-attention layer of the cache (also where every model layer is local).
    g_layers_ += dl;
    kv_units_ = static_cast<long>(free / (kv_layer_dev_ * block_));
    kv_tokens_ = static_cast<long>(free / (kv_dev_ + dl * kv_layer_dev_));  // tokens every layer and the draft's could hold
  } else {
    kv_tokens_ = static_cast<long>(free / kv_dev_);
    kv_units_ = kv_tokens_ / block_ * (g_layers_ > 0 ? g_layers_ : l_layers_);
  }
  if (kv_tokens_ < block_) {
    reason_ = "out of memory: no room for one KV block";
    return;
  }
}

double StepModel::gemm(double M, double N, double K, Split split) const {
  if (M <= 0) return 0;
  // Each of the device's ranks computes its slice with its share of the peak and bandwidth, all at
  // once: one rank's roofline on one rank's shape (the whole device's on the whole GEMM when the
  // device runs one rank or the GEMM is not split).
  const double r = split == Split::none ? 1.0 : shards_;
  const GemmRoofline g{peak_ / r, gmax_, tile_, half_, bw_ / r};
  const double n = split == Split::n ? N / r : N, k = split == Split::k ? K / r : K;
  return g.seconds(M, n, k, (N * K * wb_ + (M * K + M * N) * kAct) / r);
}

double StepModel::moe_layer_time(double T, bool prefill) const {
  const double E = m_.moe.experts, k = m_.moe.top_k, h = static_cast<double>(m_.hidden);
  const double mats = m_.gated_mlp ? 3 : 2;
  const double f_dev = static_cast<double>(m_.moe.ffn_hidden) * l_.ep / l_.tp;  // an expert's width on a device
  // The experts run as grouped GEMMs (calibration gemm.grouped, as in training).
  const GemmRoofline g{peak_, std::min(kMaxEfficiency, gmax_ * s_.calib.gemm_grouped), tile_, half_, bw_};
  const double acts = 2 * T * k * h * kAct / l_.tp;
  // experts_dev: experts computed on a device; expert_reads: experts whose (tp-sharded) weights
  // are read, counted as the grouped path counts them (expert_bytes_dev_ each).
  auto run = [&](double experts_dev, double rows_per_expert, double expert_reads) {
    const double flops = 2.0 * experts_dev * rows_per_expert * mats * h * f_dev;
    const double eff = g.efficiency(rows_per_expert, h, f_dev / shards_);  // one rank's slice of the expert
    return std::max(flops / (peak_ * eff), (expert_reads * expert_bytes_dev_ + acts) / bw_);
  };
  const auto& eng = s_.serving;
  if (eng.moe_all_experts_from >= 0 || eng.moe_prefill_all_experts) {
    // neuronx-distributed ExpertMLPs: context encoding at full capacity and token generation
    // from the threshold on pass every token through every expert; below it, each token loads
    // its own top-k experts one token at a time.
    const bool all = prefill ? eng.moe_prefill_all_experts
                             : eng.moe_all_experts_from >= 0 && T * k / E >= eng.moe_all_experts_from;
    if (all) return run(E / l_.ep, T, E);
    if (!prefill && eng.moe_all_experts_from >= 0) return run(T * k / l_.ep, 1, T * k);
  }
  const double active = E * (1.0 - std::pow(1.0 - k / E, T));  // expected distinct experts hit by T tokens
  if (l_.ep == 1) return run(active, T * k / active, active);
  // Expert parallelism: each of the ep groups (tp / ep ranks) holds E / ep whole experts, and the
  // layer waits for the busiest group. With tokens routed at random, a group's distinct experts hit
  // are Binomial(E / ep, active / E) and its routed rows Binomial(T k, 1 / ep) (normal): the
  // expected largest of ep draws. Few tokens hit few groups, so a small batch reads whole experts
  // on one group where tp alone reads every hit expert's slice on every rank; a large batch evens out.
  const int per_group = static_cast<int>(E) / l_.ep;
  const double n = T * k, q = 1.0 / l_.ep;
  // The groups' counts add up to the whole: the busiest holds at least the mean and, with a token
  // routed at all, one expert and one row (independent draws alone give 0.7 for one token).
  const double hits = std::max({expected_max_binomial(per_group, active / E, l_.ep), active / l_.ep, std::min(1.0, active)});
  const double rows = std::clamp(n * q + ep_max_z_ * std::sqrt(n * q * (1 - q)), std::max(n * q, std::min(n, 1.0)), n);
  return run(hits, rows / hits, hits * l_.ep);  // an expert on a device is ep x the tp-sharded bytes
}

double StepModel::gemms_time(const std::vector<Gemm>& gemms, double T) const {
  double t = 0;
  for (const auto& g : gemms) t += g.count * gemm(T, g.n, g.k, g.split);
  return t;
}

double StepModel::mlp_time(double T, bool prefill, bool moe) const {
  if (!moe) return gemms_time(dense_mlp_gemms_, T);
  const double shared = gemms_time(shared_gemms_, T);
  return moe_layer_time(T, prefill) * s_.serving.moe_expert_factor + gemm(T, m_.moe.experts, static_cast<double>(m_.hidden)) + shared;
}

double StepModel::linear_time(long tokens, bool prefill) const {
  if (tokens <= 0) return 0;
  const auto& eng = s_.serving;
  const bool own_dispatch = moe_layers_ > 0 && (eng.moe_all_experts_from >= 0 || eng.moe_prefill_all_experts);
  auto& cache = linear_cache_[own_dispatch && prefill ? 1 : 0];
  if (static_cast<std::size_t>(tokens) < cache.size() && cache[tokens] >= 0) return cache[tokens];
  const double T = tokens;
  const double attn = gemms_time(attn_gemms_, T), dense = gemms_time(dense_mlp_gemms_, T);
  const double moe = moe_layers_ > 0 ? mlp_time(T, prefill, true) : 0.0;
  const double v = m_.layers * attn + dense_layers_ * dense + moe_layers_ * moe;
  if (tokens < 65536) {
    if (cache.size() <= static_cast<std::size_t>(tokens)) cache.resize(tokens + 1, -1.0);
    cache[tokens] = v;
  }
  return v;
}

namespace {
// All-reduce of a small decode buffer inside one scale-up domain: the better of the ring
// (training's collective model) and a two-shot reduce-scatter + all-gather with one latency
// each (what inference engines use for small messages).
double serve_all_reduce(const System& s, double bytes, int tp) {
  if (tp <= 1 || bytes <= 0) return 0;
  const double ring = collective_time(s, Collective::all_reduce, bytes, Group{tp, 1});
  if (tp > s.scale_up.size) return ring;
  const double bw = s.scale_up.bandwidth.v * s.calib.scale_up_bus * scale_up_factor(s, tp);
  const double two_shot = 2 * s.scale_up.latency.v + 2.0 * (tp - 1) / tp * bytes / bw;
  return std::min(ring, two_shot);
}
}  // namespace

double StepModel::decode_attention(double keys, double queries) const {
  const double flops = 2.0 * keys * heads_dev_ * (attn_dqk_ + attn_dv_) * queries;
  const double peak = attention_peak(peak_attn_, exp_rate_, 2.0 * (attn_dqk_ + attn_dv_));
  return std::max(keys * kv_layer_dev_ / bw_, flops / (peak * attn_eff_)) + keys * heads_dev_ * s_.serving.decode_score_time.v * queries;
}

double StepModel::prefill_attention(double pairs) const {
  double dqk = attn_dqk_, dv = attn_dv_;
  if (m_.is_mla()) {  // prompts attend in the expanded heads, not the latent space
    dqk = m_.mla.qk_nope_head_dim + m_.mla.qk_rope_head_dim;
    dv = m_.mla.v_head_dim;
  }
  const double peak = attention_peak(peak_attn_, exp_rate_, 2.0 * (dqk + dv));
  return 2.0 * pairs * heads_dev_ * (dqk + dv) / (peak * attn_eff_) + pairs * heads_dev_ * s_.serving.prefill_score_time.v;
}

double StepModel::draft_gemm_time(long rows, bool prefill) const {
  if (rows <= 0) return 0;
  auto& cache = draft_cache_[prefill ? 1 : 0];
  if (static_cast<std::size_t>(rows) < cache.size() && cache[rows] >= 0) return cache[rows];
  const double T = static_cast<double>(rows), h = static_cast<double>(m_.hidden);
  // A layer like the model's (an MTP module's MLP as the last layer's; EAGLE's dense), and the
  // fusion projection, whole on every rank.
  double t = gemms_time(attn_gemms_, T) + mlp_time(T, prefill, spec_.method == DraftMethod::mtp && m_.is_moe_layer(m_.layers - 1));
  t += gemm(T, h, (spec_.method == DraftMethod::mtp ? 2.0 : 3.0) * h);
  if (rows < 65536) {
    if (cache.size() <= static_cast<std::size_t>(rows)) cache.resize(rows + 1, -1.0);
    cache[rows] = t;
  }
  return t;
}

double StepModel::draft_layer_time(double rows, double decode_keys, double prefill_pairs, bool prefill, bool head) const {
  if (rows <= 0) return 0;
  const double h = static_cast<double>(m_.hidden);
  // The layer's GEMMs at whole rows (cached: the simulator asks every step).
  double t = draft_gemm_time(std::max(1L, std::lround(rows)), prefill);
  if (head) t += gemm(rows, static_cast<double>(m_.vocab) / l_.tp, h, Split::n);
  if (decode_keys > 0) t += decode_attention(decode_keys, 1);  // the draft layer's own cache
  if (prefill_pairs > 0) t += prefill_attention(prefill_pairs);
  t += rows * h * kAct * kElementwisePasses / bw_;
  if (l_.tp > 1) t += 2 * serve_all_reduce(s_, rows * h * kAct, l_.tp);
  return t + s_.serving.layer_overhead.v;
}

StepModel::Parts StepModel::parts(long tokens, int decode_seqs, double decode_ctx, double prefill_pairs, int logits,
                                  double window_pairs, double local_keys, int draft_tokens) const {
  Parts p;
  if (tokens <= 0) return p;
  const bool prompt = tokens > decode_seqs;  // the pass computes prompt tokens
  // Speculative decoding: each decode sequence verifies its k drafted tokens beside its next one,
  // k + 1 rows through every projection and the head, its KV read once for all of them.
  const int k = spec_.on() && decode_seqs > 0 ? (draft_tokens >= 0 ? std::min(draft_tokens, spec_.draft_tokens) : spec_.draft_tokens) : 0;
  const long verify = static_cast<long>(decode_seqs) * k;
  tokens += verify;
  const double head_rows = static_cast<double>(logits) + static_cast<double>(verify);
  const double T = tokens, h = static_cast<double>(m_.hidden), L = m_.layers;
  p.linear = linear_time(tokens, prompt);  // dense and MoE projections, all layers
  // Sliding-window layers (model sliding_window, sliding_window_every) attend to at most the
  // window's keys: a decode sequence reads min(context, window) of them, a prompt token
  // min(position, window) (window_pairs). `keys` and `pairs` are summed over layers.
  const double nw = m_.window_layer_count(), W = m_.sliding_window;
  if (decode_seqs > 0) {
    const double local = local_keys >= 0 ? local_keys : decode_seqs * m_.local_decode_keys(decode_ctx / decode_seqs);  // n x min(mean, W) = min(sum, n W)
    p.attn_decode = decode_attention((L - nw) * decode_ctx + nw * local, k + 1);
  }
  if (prefill_pairs > 0) {
    const double prompt_tokens = std::max(0L, tokens - verify - decode_seqs);
    const double win = window_pairs >= 0 ? window_pairs : std::min(prefill_pairs, prompt_tokens * W);
    p.attn_prefill = prefill_attention((L - nw) * prefill_pairs + nw * win);
  }
  p.elementwise = T * h * kAct * kElementwisePasses * L / bw_;
  if (head_rows > 0) p.head = gemm(head_rows, static_cast<double>(m_.vocab) / l_.tp, h, Split::n);
  const double act = T * h * kAct;
  // Expert parallelism runs inside the tensor-parallel group, whose ranks all hold every token after
  // the attention all-reduce: each rank runs its experts on the tokens routed to them (no dispatch)
  // and the MLP's all-reduce sums the experts' outputs, as for tensor-parallel experts (vLLM and
  // SGLang expert parallelism without data-parallel attention). So no all-to-all.
  if (l_.tp > 1) p.tp_comm = serve_all_reduce(s_, act, l_.tp) * (L + dense_layers_ + moe_layers_);
  if (l_.pp > 1) p.pp_comm = (l_.pp - 1) * collective_time(s_, Collective::send_recv, act, Group{2, l_.tp});
  p.overhead = L * s_.serving.layer_overhead.v + s_.serving.step_overhead.v +
               (prompt ? L * s_.serving.prefill_layer_overhead.v : 0.0);
  // A prompt pass of an engine that compiles prefill as its own graph takes at least the layers'
  // latency floor (beyond the step overhead).
  if (prompt && s_.serving.prefill_floor_s() > 0)
    p.floor = std::max(0.0, L * s_.serving.prefill_floor_s() - (p.total() - s_.serving.step_overhead.v));
  // The draft (MTP or EAGLE; n-gram lookup runs on the host): its layer over the prompt tokens
  // (its own KV), and for the decode sequences k passes, the first over the tokens the
  // verification accepted (tokens_per_step rows each), the rest one row each, each sampling a
  // draft token through the head.
  if (spec_.on() && spec_.method != DraftMethod::ngram) {
    const double prompt_tokens = static_cast<double>(tokens - verify - decode_seqs);
    if (prompt) p.draft += draft_layer_time(prompt_tokens, 0, prefill_pairs, true, false);
    if (k > 0) {
      const double n = decode_seqs;
      p.draft += draft_layer_time(n * spec_.tokens_per_step(k), decode_ctx, 0, false, true) +
                 (k - 1) * draft_layer_time(n, decode_ctx, 0, false, true);
    }
  }
  return p;
}

double StepModel::step_time(long tokens, int decode_seqs, double decode_ctx, double prefill_pairs, int logits,
                            double window_pairs, double local_keys, int draft_tokens) const {
  return parts(tokens, decode_seqs, decode_ctx, prefill_pairs, logits, window_pairs, local_keys, draft_tokens).total();
}

std::vector<ServeTerm> StepModel::explain_step(long tokens, int decode_seqs, double decode_ctx, double prefill_pairs,
                                               int logits, double prompt_share, double window_pairs, int draft_tokens) const {
  Parts p = parts(tokens, decode_seqs, decode_ctx, prefill_pairs, logits, window_pairs, -1, draft_tokens);
  const int k = spec_.on() ? (draft_tokens >= 0 ? std::min(draft_tokens, spec_.draft_tokens) : spec_.draft_tokens) : 0;
  const double prefill_overhead = static_cast<double>(m_.layers) * s_.serving.prefill_layer_overhead.v;
  const bool split = !s_.serving.mixed_batches && prompt_share > 0 && decode_seqs > 0 && tokens > decode_seqs;
  long prompt_pass = 0;  // split: tokens of one prompt pass
  if (split) {
    prompt_pass = std::max(1L, std::lround(static_cast<double>(tokens - decode_seqs) / prompt_share));
    const Parts d = parts(decode_seqs, decode_seqs, decode_ctx, 0, logits, -1, -1, draft_tokens);
    const Parts f = parts(prompt_pass, 0, 0, prefill_pairs / prompt_share, 1, window_pairs >= 0 ? window_pairs / prompt_share : -1);
    auto mix = [&](double Parts::*x) { p.*x = d.*x + prompt_share * f.*x; };
    for (double Parts::*x : {&Parts::linear, &Parts::attn_decode, &Parts::attn_prefill, &Parts::elementwise, &Parts::head,
                             &Parts::tp_comm, &Parts::pp_comm, &Parts::overhead, &Parts::floor, &Parts::draft})
      mix(x);
  } else if (prompt_share >= 0) {
    p.overhead += (prompt_share - (tokens > decode_seqs ? 1.0 : 0.0)) * prefill_overhead;
    if (tokens > decode_seqs) p.floor *= prompt_share;  // the mean step: only prompt passes reach the floor
  }
  const std::string chip = s_.chip.file, cal = s_.calib.file;
  const std::string srv = s_.serving.where();
  const std::string pk = std::string("peak.") + precision_name(cp_);
  auto ms = [](double v) { return fmt("%.3f ms", v * 1e3); };
  std::vector<ServeTerm> out;
  out.push_back({"weights and projections (GEMMs, all layers)", ms(p.linear),
                 chip + ": " + pk + ", memory.bandwidth; " + cal + ": gemm." + precision_name(cp_) +
                     ", gemm.half_dim, " + (s_.calib.gemm_tile_rows > 0 ? "gemm.tile_rows" : "gemm.tile_rows (not in the file: tiles of half_dim)") +
                     (m_.is_moe() ? ", gemm.grouped" : "") + "; " + srv + ": " +
                     s_.serving.cite("prefill.gemm_scale", fmt("%.2f", s_.serving.prefill_gemm)) +
                     (cp_ == Precision::fp8 || cp_ == Precision::fp4
                          ? ", " + s_.serving.cite("prefill.lowp_gemm_ratio", fmt("%.2f", s_.serving.lowp_gemm_ratio))
                          : std::string()) +
                     ", decode.bandwidth_fraction" + (m_.is_moe() ? ", engine.moe_expert_factor" : "") +
                     (m_.is_moe() && l_.ep > 1 ? "; ep " + std::to_string(l_.ep) + ": the busiest expert group's experts and rows (random routing)" : "") +
                     (m_.is_moe() && (s_.serving.moe_all_experts_from >= 0 || s_.serving.moe_prefill_all_experts)
                          ? ", engine.moe_all_experts_from, engine.moe_prefill_all_experts (neuronx-distributed expert dispatch)"
                          : "")});
  out.push_back({"attention over the KV cache (decode)", ms(p.attn_decode),
                 chip + ": memory.bandwidth; " + srv + ": decode.bandwidth_fraction" +
                     (s_.serving.decode_score_time.v > 0 ? ", decode.score_time (per query head x key position x layer)" : "") +
                     "; model KV layout" + window_note()});
  out.push_back({"attention (prefill chunks)", ms(p.attn_prefill),
                 chip + ": peak.bf16" + (exp_rate_ > 0 ? ", peak.exp (softmax exponentials in series)" : "") + "; " + cal +
                     ": attention.efficiency" +
                     (s_.serving.prefill_score_time.v > 0 ? "; " + srv + ": prefill.score_time (per query head x prompt query-key pair x layer)"
                                                          : std::string()) +
                     window_note()});
  out.push_back({"norms, residuals, rope (memory-bound)", ms(p.elementwise), chip + ": memory.bandwidth"});
  out.push_back({"LM head", ms(p.head), chip + ": " + pk + "; " + cal + ": gemm"});
  out.push_back({"tensor-parallel all-reduce" +
                     std::string(l_.ep > 1 ? " (with ep: it sums the experts' outputs; every rank holds every token, so no all-to-all)" : ""),
                 ms(p.tp_comm), s_.file + ": scale_up.bandwidth, scale_up.latency; " + cal + ": collectives.scale_up_bus"});
  out.push_back({"pipeline sends", ms(p.pp_comm), s_.file + ": scale_up, scale_out"});
  out.push_back({"engine overhead (per layer + per step)", ms(p.overhead),
                 srv + ": engine.layer_overhead, engine.step_overhead" +
                     (s_.serving.prefill_layer_overhead.v <= 0 ? std::string()
                      : prompt_share >= 0 ? fmt(", engine.prefill_layer_overhead x %.3f (the share of iterations with prompt tokens)", prompt_share)
                                          : std::string(", engine.prefill_layer_overhead (iterations with prompt tokens)"))});
  if (s_.serving.prefill_floor_s() > 0)
    out.push_back({"prefill latency floor (beyond the terms above)", ms(p.floor),
                   srv + ": engine.prefill_layer_floor x layers (a prefill pass takes at least that)" +
                       (prompt_share >= 0 ? fmt(", x %.3f (the share of iterations with prompt tokens)", prompt_share) : std::string())});
  if (spec_.on())
    out.push_back({"speculative draft (" + speculation_summary(spec_) + ")", ms(p.draft),
                   spec_.method == DraftMethod::ngram
                       ? std::string("--speculative ngram: drafts looked up in the prompt on the host, no device work; the verification's k + 1 rows per sequence are in the terms above")
                       : "--speculative " + std::string(draft_method_name(spec_.method)) +
                             ": k passes of the draft layer (the first over the accepted tokens) with its head, and one over the prompt tokens; " +
                             (spec_.method == DraftMethod::mtp ? m_.file + ": mtp_layers (each module a layer like the last)"
                                                               : "an EAGLE-3 layer of " + m_.file + ": hidden, heads, kv_heads, ffn_hidden, vocab") +
                             "; the verification's k + 1 rows per sequence are in the terms above"});
  out.push_back({"step time", ms(p.total()),
                 split ? "sum of the above: a decode pass of " + std::to_string(decode_seqs) + fmt(" sequences + %.3f x", prompt_share) +
                             " a prompt pass of " + std::to_string(prompt_pass) + " tokens (" + srv + ": engine.mixed_batches = false)"
                       : "sum of the above (" + std::to_string(tokens) + " tokens in the batch" +
                             (spec_.on() && decode_seqs > 0
                                  ? "; each of the " + std::to_string(decode_seqs) + " decode sequences verifies " +
                                        std::to_string(k) + " drafted tokens beside it: " +
                                        std::to_string(tokens + static_cast<long>(decode_seqs) * k) + " rows"
                                  : std::string()) +
                             ")"});
  return out;
}

std::string StepModel::window_note() const {
  const int nw = m_.window_layer_count();
  if (nw <= 0) return "";
  if (m_.chunked_local)
    return "; " + std::to_string(nw) + " of " + std::to_string(m_.layers) + " layers attend within their own " +
           std::to_string(m_.sliding_window) + "-token chunk (model sliding_window, global_every, local_attention = chunked)";
  return "; " + std::to_string(nw) + " of " + std::to_string(m_.layers) + " layers attend to a " +
         std::to_string(m_.sliding_window) + "-token window (model sliding_window, " +
         (m_.global_every > 0 ? "global_every)" : "sliding_window_every)");
}

std::vector<ServeTerm> StepModel::explain_memory() const {
  const std::string srv = s_.serving.where();
  auto gib = [](double v) { return fmt("%.2f GiB", v / 1073741824.0); };
  std::vector<ServeTerm> out;
  out.push_back({"compute precision", precision_name(cp_),
                 std::string("weights ") + quant_name(l_.weights) +
                     (fp4_experts_only_ ? " in the routed experts alone, weight-only (W4A16; the other weights " +
                                              std::string(precision_name(cp_)) + ": " +
                                              (m_.fp4_scope_source.empty() ? m_.file + " fp4_scope experts" : m_.fp4_scope_source) + ")"
                                        : std::string()) +
                     " at " + s_.chip.file + ": peak." + precision_name(cp_)});
  out.push_back({"HBM per device", gib(s_.hbm_capacity().v), s_.chip.file + ": memory.capacity"});
  out.push_back({"KV share of the memory left", fmt("%.2f", s_.serving.memory_fraction), srv + ": engine.memory_fraction"});
  out.push_back({"weights per device", gib(weights_dev_),
                 std::string("model parameters (") + m_.file + ") x " + quant_name(l_.weights) +
                     (fp4_experts_only_ ? std::string(" in the routed experts, the rest ") + precision_name(cp_) : std::string()) +
                     (l_.weights == Quant::fp4 ? fmt(" (%.4f B: 0.5 B + one scale byte per ", wb_expert_) +
                                                     std::to_string(fp4_block_) + " values, " +
                                                     (m_.fp4_scale_block > 0 ? (m_.fp4_scale_block_source.empty() ? m_.file + ": fp4_scale_block" : m_.fp4_scale_block_source) + ")"
                                                                             : srv + ": engine.fp4_scale_block)")
                                               : std::string())});
  if (draft_weights_dev_ > 0)
    out.push_back({"speculative draft weights per device (in the weights above)", gib(draft_weights_dev_),
                   std::to_string(spec_.draft_layers(m_)) +
                       (spec_.method == DraftMethod::mtp ? " MTP module(s) (" + m_.file + ": mtp_layers; mtp_module_params)"
                                                         : " EAGLE-3 layer (" + m_.file + ": attention + dense MLP of ffn_hidden + 3 hidden x hidden fusion)") +
                       " x " + (fp4_experts_only_ ? std::string(precision_name(cp_)) : std::string(quant_name(l_.weights))) +
                       "; layers sharded over tp, the fusion projection whole on every rank"});
  out.push_back({"reserve per device", gib(s_.calib.memory_reserve.v), s_.calib.file + ": memory.reserve"});
  out.push_back({"KV per token per device", fmt("%.0f B", kv_dev_),
                 std::string(m_.is_mla() ? "MLA latent (kv_lora_rank + qk_rope_head_dim)" : "2 x kv_heads x head_dim") +
                     " x layers per stage (" + m_.file + ") x " + quant_name(l_.kv) +
                     (l_.kv == Quant::fp4 && s_.serving.fp4_scale_block > 0
                          ? " with a scale byte per " + std::to_string(s_.serving.fp4_scale_block) + " values (" + srv + ": engine.fp4_scale_block)"
                          : std::string()) +
                     (cap_blocks_ > 0 ? (g_layers_ > 0 ? std::string(" (its ") + std::to_string(g_layers_) + " full-attention layers; each sequence adds its " +
                                                             std::to_string(l_layers_) + " local layers' cache, "
                                                       : std::string(" (every layer local: a sequence holds ")) +
                                            "at most " + std::to_string(cap_blocks_) + " blocks of " + std::to_string(block_) +
                                            " tokens a layer, the blocks its last " + std::to_string(m_.sliding_window) + " tokens can span)"
                                      : std::string())});
  out.push_back({"activation workspace per device", gib(workspace_),
                 "token budget " + std::to_string(ws_budget_) + " x (6 x hidden + 2 x FFN per rank) x 2 B + batch cap " +
                     std::to_string(ws_batch_) + " x vocab per rank x 4 B (the limits in effect: --token-budget, --max-batch or " +
                     srv + ": engine.token_budget, engine.max_batch)"});
  out.push_back({"KV capacity per replica", std::to_string(kv_tokens_) + " tokens",
                 spec_.draft_layers(m_) > 0
                     ? "(HBM - weights - reserve - workspace) x share / (KV per token + the draft's " + std::to_string(spec_.draft_layers(m_)) +
                           " layer(s) of KV per token)"
                     : std::string("(HBM - weights - reserve - workspace) x share / KV per token")});
  out.push_back({"KV block", std::to_string(block_) + " tokens", srv + ": engine.block_tokens"});
  out.push_back({"prefill mixed into decode steps", s_.serving.mixed_batches ? "yes" : "no (separate graphs, run one after the other)",
                 srv + ": " + s_.serving.cite("engine.mixed_batches", s_.serving.mixed_batches ? "true" : "false")});
  out.push_back({"tensor-parallel ranks per device", std::to_string(shards_),
                 srv + ": " + s_.serving.cite("engine.shards_per_device", std::to_string(s_.serving.shards_per_device)) +
                     (s_.serving.shards_per_device > 1
                          ? " (heads padded, KV heads replicated per rank; each rank's GEMM slice sets the GEMM efficiency)"
                          : "")});
  return out;
}

}  // namespace xpu
