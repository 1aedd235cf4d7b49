#include "train/choose.hpp"

#include <algorithm>
#include <limits>
#include <cmath>
#include <string>
#include <vector>

#include "spec/error.hpp"
#include "train/evaluate.hpp"
#include "util/parallel.hpp"

namespace xpu {

namespace {

std::vector<int> divisors(long n, long cap) {
  std::vector<int> out;
  for (long d = 1; d <= std::min(n, cap); ++d)
    if (n % d == 0) out.push_back(static_cast<int>(d));
  return out;
}

template <class T>
std::vector<T> one_or(const std::optional<T>& given, std::vector<T> candidates) {
  if (given) return {*given};
  return candidates;
}

}  // namespace

std::vector<int> tp_range(const Model& m, const System& s) {
  std::vector<int> out;
  for (int t = 1; t <= std::min(s.scale_up.size, kMaxTensorParallel); ++t)
    if (tp_splits_kv_heads(m, t)) out.push_back(t);
  return out;
}

std::vector<int> pp_range(const Model& m, PipeSchedule schedule) {
  std::vector<int> out;
  const bool pipeline_only = schedule != PipeSchedule::one_f_one_b;  // zb-h1 and dualpipev schedule a pipeline
  for (int p = pipeline_only && m.layers > 1 ? 2 : 1; p <= m.layers; ++p) out.push_back(p);
  return out;
}

std::vector<int> cp_range(const PlanRequest& q) {
  if (q.cp_mode) return {2, 4, 8, 16};
  return {1, 2, 4, 8, 16};
}

std::vector<int> zero_range(const PlanRequest& q) {
  if (q.fsdp.set()) return {3};
  if (q.zero_group > 0) return {1, 2, 3};  // hybrid sharding shards some ZeRO state
  return {0, 1, 2, 3};
}

std::vector<int> micro_batch_range() {
  std::vector<int> out;
  for (int b = 1; b <= kMaxMicroBatch; ++b) out.push_back(b);
  return out;
}

std::vector<int> vp_range(const Model& m, int pp, PipeSchedule schedule) {
  if (schedule == PipeSchedule::dualpipe_v) return {2};  // its V: two chunks per stage
  if (pp == 1 || schedule == PipeSchedule::zero_bubble) return {1};
  std::vector<int> out;
  for (int v = 1; static_cast<long>(pp) * v <= max_pipeline_chunks(m.layers); ++v)
    if (even_chunks(m.layers, pp, v)) out.push_back(v);
  return out;
}

std::vector<Precision> precision_range(const System& s, bool every) {
  std::vector<Precision> out;
  auto rate = [&](Precision p) { return s.peak(p) ? s.peak(p)->v : 0.0; };
  const double base = rate(Precision::bf16) > 0 ? rate(Precision::bf16) : rate(Precision::fp16);
  if (s.peak(Precision::bf16)) out.push_back(Precision::bf16);
  else if (s.peak(Precision::fp16)) out.push_back(Precision::fp16);
  // fp8 where the chip runs it faster than bf16: at the same rate (TPU v5p and v6e, Gaudi 3,
  // Trainium1) frameworks train in bf16, and fp8's only gain would be memory. fp4 training (NVFP4,
  // MXFP4) is new practice (MLPerf Training 5.1's Blackwell runs): planned only when asked.
  if (rate(Precision::fp8) > base || (every && rate(Precision::fp8) > 0)) out.push_back(Precision::fp8);
  if (every && rate(Precision::fp4) > 0) out.push_back(Precision::fp4);
  return out;
}

std::vector<int> ep_range(const Model& m) {
  if (!m.is_moe()) return {1};
  return divisors(m.moe.experts, m.moe.experts);
}

std::vector<int> etp_range(const Model& m, const System& s, const PlanRequest& q) {
  if (!m.is_moe()) return {0};
  std::vector<int> out;
  // Up to a given tp beyond the range too: the automatic degree (tp) must stay among them.
  const int top = std::max(std::min(s.scale_up.size, kMaxTensorParallel), q.tp.value_or(0));
  for (int t = 1; t <= top; ++t) out.push_back(t);
  return out;
}

std::vector<RecomputeChoice> recompute_range(const Model& m, const PlanRequest& q) {
  if (q.recompute)
    return {{*q.recompute, *q.recompute == Recompute::selective ? q.recompute_modules.value_or(kRecomputeModulesDefault)
                                                                : kRecomputeModulesDefault}};
  // The norms that are not fused into a projection: MLA's input norm, a MoE layer's pre-MLP norm.
  const unsigned cheap = (m.is_mla() ? kRecomputeLayernorm | kRecomputeMlaUpProj : 0u) |
                         (m.is_moe() ? kRecomputeLayernorm | kRecomputeMoeAct : 0u);
  if (cheap == 0) return {{Recompute::none}, {Recompute::selective, kRecomputeModulesDefault}, {Recompute::full}};
  return {{Recompute::none},
          {Recompute::selective, kRecomputeModulesDefault},
          {Recompute::selective, cheap},
          {Recompute::full}};
}

bool etp_candidate(const Layout& l, int etp) {
  if (etp == 0) return true;
  return l.tp % etp == 0 && (static_cast<long>(l.tp) * l.dp * l.cp) % (static_cast<long>(l.ep) * etp) == 0;
}

std::vector<std::vector<Layout>> balanced_variants(const Model& m, const System& s, const PlanRequest& q, const Layout& l) {
  std::vector<std::vector<Layout>> out;
  if (!q.balance_pipeline || q.stage_layout || l.stage_layout || l.pp < 2 || l.schedule == PipeSchedule::dualpipe_v) return out;
  std::vector<int> vps;
  if (q.vp) vps = {*q.vp};
  else if (l.schedule == PipeSchedule::zero_bubble) vps = {1};
  else
    for (int v = 1; static_cast<long>(l.pp) * v <= m.layers; ++v) vps.push_back(v);
  const std::vector<RecomputeChoice> rcs = recompute_range(m, q);
  const long per_replica = static_cast<long>(l.dp) * l.micro_batch;
  const long microbatches = per_replica > 0 ? q.work.global_batch / per_replica : 0;
  for (int vp : vps) {
    if (too_few_for_schedule(l.pp, vp, microbatches, l.schedule)) continue;  // check_layout's rule, as the search prunes it
    for (const auto& layout : balanced_layouts(m, l.pp, vp, std::max(0, l.mtp_layers), q.work.seq_len)) {
      Layout v = l;
      v.vp = vp;
      v.stage_layout = layout;
      if (even_chunks(m.layers, l.pp, vp) && places_as_even_split(m, v)) continue;  // the even plan again
      std::vector<Layout> ladder;
      for (const RecomputeChoice& choice : rcs) {
        Layout r = v;
        r.recompute = choice.recompute;
        r.recompute_modules = choice.modules;
        r.recompute_layers = 0;
        if (r.recompute == Recompute::full)
          r.recompute_layers = q.recompute_layers ? *q.recompute_layers : q.recompute ? 0 : fewest_recompute_layers(m, s, r, q.work);
        ladder.push_back(std::move(r));
      }
      out.push_back(std::move(ladder));
    }
  }
  return out;
}

void check_request(const Model& m, const System& s, const PlanRequest& q) {
  auto bad = [](const char* flag, const std::string& what) { throw InputError(flag, what); };
  if (q.devices < 1) bad("--devices", "must be at least 1");
  if (q.work.seq_len < 1) bad("--seq-len", "must be at least 1");
  if (q.work.global_batch < 1) bad("--global-batch", "must be at least 1");
  // A step's microbatches are simulated one by one where its pipeline is uneven: a bound keeps
  // that in memory (2^20 sequences a step is hundreds of times any published run's batch).
  if (q.work.global_batch > kMaxGlobalBatch)
    bad("--global-batch", std::to_string(q.work.global_batch) + " sequences a step is beyond the planner's " +
                              std::to_string(kMaxGlobalBatch) + " (2^20)");
  require_at_least(q.tp, "--tp");
  require_at_least(q.pp, "--pp");
  require_at_least(q.vp, "--vp");
  require_at_least(q.dp, "--dp");
  require_at_least(q.cp, "--cp");
  require_at_least(q.ep, "--ep");
  require_at_least(q.etp, "--etp");
  if (q.etp && *q.etp > 1 && !m.is_moe()) bad("--etp", "expert tensor parallelism needs a mixture-of-experts model");
  if (q.etp && q.tp && *q.tp % *q.etp != 0) bad("--etp", std::to_string(*q.etp) + " does not divide tp (" + std::to_string(*q.tp) + ")");
  // With tp free, etp must divide some tensor-parallel degree, and every one divides the heads.
  if (q.etp && !q.tp && m.heads % *q.etp != 0)
    bad("--etp", std::to_string(*q.etp) + " does not divide the attention heads (" + std::to_string(m.heads) +
                     "), so no tensor-parallel degree holds it");
  require_at_least(q.micro_batch, "--micro-batch");
  if (!(q.work.moe_capacity_factor == 0 || q.work.moe_capacity_factor >= 1) || !std::isfinite(q.work.moe_capacity_factor))
    bad("--moe-capacity-factor", "must be at least 1 (below it tokens are dropped by design, which the model FLOPs and MFU do not discount)");
  if (q.work.moe_capacity_factor > 0 && !m.is_moe()) bad("--moe-capacity-factor", "needs a mixture-of-experts model");
  if (m.is_moe() && q.work.moe_capacity_factor * m.moe.top_k > m.moe.experts)
    bad("--moe-capacity-factor", "exceeds experts / top_k (every expert would hold every token)");
  if (q.work.moe_imbalance != 0 && !(q.work.moe_imbalance >= 1 && std::isfinite(q.work.moe_imbalance)))
    bad("--moe-imbalance", "must be at least 1 (1 = balanced routing)");
  if (q.work.moe_imbalance > 0 && !m.is_moe()) bad("--moe-imbalance", "needs a mixture-of-experts model");
  if (m.is_moe() && q.work.moe_imbalance * m.moe.top_k > m.moe.experts)
    bad("--moe-imbalance", "exceeds experts / top_k (the busiest expert would get more than every token)");
  if (q.moe_dispatcher != MoeDispatcher::flex && !m.is_moe()) bad("--moe-dispatcher", "needs a mixture-of-experts model");
  if (q.moe_a2a_overlap && !m.is_moe()) bad("--moe-a2a-overlap", "needs a mixture-of-experts model");
  if (q.moe_a2a_overlap && q.ep && *q.ep < 2) bad("--moe-a2a-overlap", "needs expert parallelism (ep > 1)");
  if (q.moe_a2a_overlap && q.recompute && *q.recompute == Recompute::full)
    bad("--moe-a2a-overlap", "excludes full recompute (Megatron-Core asserts it)");
  if (q.moe_a2a_overlap && q.pp && *q.pp > 1 && q.vp && *q.vp < 2)
    bad("--moe-a2a-overlap", "with --pp > 1 needs interleaving, and --vp is 1 (Megatron-Core asserts it)");
  if (q.offload_activations && !s.host_bandwidth)
    bad("--offload-activations", s.file_or_id() +
                                     " has no [host] bandwidth (the link from a device to its host's memory), so offloading cannot be timed");
  if (q.work.moe_imbalance > 0 && q.work.moe_capacity_factor > 0)
    bad("--moe-imbalance", "applies to dropless routing; with --moe-capacity-factor the padded buffers set the load");
  if (q.zero && (*q.zero < 0 || *q.zero > 3)) bad("--zero", "must be 0, 1, 2 or 3");
  if (q.mtp_layers && (*q.mtp_layers < 0 || *q.mtp_layers > m.layers))
    bad("--mtp-layers", "must be 0 to the model's layers (" + std::to_string(m.layers) + "), got " + std::to_string(*q.mtp_layers));
  if (q.stage_layout) {
    // pp and vp come with the layout (plan_flags, or validate's run fact); the rest is the model's.
    if (!q.pp) bad("--pipeline-layout", "needs --pp");
    if (auto why = pipeline_layout_problem(*q.stage_layout, m.layers, q.mtp_layers.value_or(m.mtp_layers), *q.pp))
      bad("--pipeline-layout", *why);
    if (q.schedule == PipeSchedule::dualpipe_v)
      bad("--pipeline-layout", "places Megatron's interleaved chunks; --schedule dualpipev folds its own V");
  }
  if (q.recompute_layers) {
    require_at_least(q.recompute_layers, "--recompute-layers");
    if (!q.recompute || *q.recompute != Recompute::full) bad("--recompute-layers", "needs --recompute full");
    // The most layers a stage holds (split_layers: floor or ceil of layers / pp, and the MTP layers
    // on the head's stage), or as a hand-written layout places them.
    const int mtp = q.mtp_layers.value_or(m.mtp_layers);
    int most = (q.pp ? (m.layers + *q.pp - 1) / *q.pp : m.layers) + mtp;
    if (q.stage_layout && q.pp && *q.pp > 0) {
      std::vector<int> per(static_cast<std::size_t>(*q.pp), 0);
      for (std::size_t c = 0; c < q.stage_layout->chunks.size(); ++c)
        per[c % per.size()] += q.stage_layout->chunks[c].layers + q.stage_layout->chunks[c].mtp;
      most = *std::max_element(per.begin(), per.end());
    }
    if (*q.recompute_layers > most)
      bad("--recompute-layers", std::to_string(*q.recompute_layers) + " exceeds the " + std::to_string(most) +
                                    " layers a pipeline stage holds at most");
  }
  if (q.recompute_modules) {
    const unsigned mods = *q.recompute_modules;
    if (!q.recompute || *q.recompute != Recompute::selective) bad("--recompute-modules", "needs --recompute selective");
    if (mods == 0 || (mods & ~kRecomputeModulesAll)) bad("--recompute-modules", "names no module");
    // A module the model does not have would rerun nothing: refused, not ignored.
    const bool has_dense_mlp = !m.is_moe() || m.moe_layer_count() < m.layers;
    if ((mods & kRecomputeLayernorm) && !m.is_mla() && !m.is_moe())
      bad("--recompute-modules", "layernorm: every norm of " + m.name +
                                     " is fused into the projection after it (Transformer Engine's LayerNormLinear), so "
                                     "there is no norm output to discard (MLA and MoE layers have separate norms)");
    if ((mods & kRecomputeMlaUpProj) && !m.is_mla())
      bad("--recompute-modules", "mla_up_proj needs multi-head latent attention (MLA), and " + m.name + " has none");
    if ((mods & (kRecomputeMoeAct | kRecomputeMoe | kRecomputeSharedExperts)) && !m.is_moe())
      bad("--recompute-modules", "moe_act, moe and shared_experts need a mixture-of-experts model, and " + m.name + " is dense");
    if ((mods & kRecomputeSharedExperts) && m.is_moe() && m.moe.shared_experts == 0)
      bad("--recompute-modules", "shared_experts: " + m.name + " has no shared experts");
    if ((mods & kRecomputeMlp) && !has_dense_mlp)
      bad("--recompute-modules", "mlp reruns dense MLP layers, and every layer of " + m.name + " is MoE (use moe or moe_act)");
  }
  if (q.lowp_params && *q.lowp_params && q.precision && !can_keep_lowp_params(*q.precision))
    bad("--lowp-params", "on needs fp8 or fp4 weights, and the precision is " + std::string(precision_name(*q.precision)));
  if (q.grad_fp32 && *q.grad_fp32 && q.lowp_params && *q.lowp_params)
    bad("--grad-precision", "fp32 with --lowp-params on: low-precision primary weights go with half-precision gradients (no memory option has both)");
  if (q.schedule != PipeSchedule::one_f_one_b && q.pp && *q.pp == 1)
    bad("--schedule", std::string(schedule_name(q.schedule)) + " is a pipeline schedule and --pp is 1 (nothing to schedule)");
  if (q.schedule == PipeSchedule::zero_bubble && q.vp && *q.vp > 1)
    bad("--schedule", "zb-h1 runs without interleaving: drop --vp or set it to 1");
  if (q.schedule == PipeSchedule::dualpipe_v && q.vp && *q.vp != 2)
    bad("--schedule", "dualpipev holds two chunks per stage: drop --vp or set it to 2");
  if (q.schedule == PipeSchedule::dualpipe_v && q.moe_a2a_overlap)
    bad("--moe-a2a-overlap", "is Megatron's pairing for 1F1B; dualpipev pairs forward and backward chunks itself");
  auto divides = [&](const std::optional<int>& v, long n, const char* flag, const char* what) {
    if (v && n % *v != 0) bad(flag, std::to_string(*v) + " does not divide " + what + " (" + std::to_string(n) + ")");
  };
  divides(q.tp, q.devices, "--tp", "devices");
  divides(q.pp, q.devices, "--pp", "devices");
  divides(q.dp, q.devices, "--dp", "devices");
  divides(q.cp, q.devices, "--cp", "devices");
  divides(q.tp, m.heads, "--tp", "attention heads");
  if (q.pp && *q.pp > m.layers) bad("--pp", std::to_string(*q.pp) + " exceeds the model's " + std::to_string(m.layers) + (m.layers == 1 ? " layer" : " layers"));
  {
    // The given degrees together must divide the devices (each may divide alone and still not).
    long prod = 1;
    std::string names, last = "--tp";
    for (auto [v, flag] : {std::pair{q.tp, "--tp"}, std::pair{q.pp, "--pp"}, std::pair{q.cp, "--cp"}, std::pair{q.dp, "--dp"}})
      if (v) {
        prod *= *v;
        names += std::string(names.empty() ? "" : " x ") + (flag + 2);
        last = flag;
      }
    if (q.devices > 0 && q.devices % prod != 0)
      bad(last.c_str(), names + " = " + std::to_string(prod) + " does not divide devices (" + std::to_string(q.devices) + ")");
  }
  if (q.tp && q.pp && q.dp && q.cp && static_cast<long>(*q.tp) * *q.pp * *q.dp * *q.cp != q.devices)
    bad("--dp", "tp x pp x dp x cp = " + std::to_string(static_cast<long>(*q.tp) * *q.pp * *q.dp * *q.cp) +
                    " differs from --devices " + std::to_string(q.devices));
  if (q.dp) divides(q.dp, q.work.global_batch, "--dp", "the global batch");
  if (q.micro_batch && q.work.global_batch % *q.micro_batch != 0)
    bad("--micro-batch", std::to_string(*q.micro_batch) + " does not divide the global batch " + std::to_string(q.work.global_batch));
  if (q.ep && *q.ep > 1 && !m.is_moe()) bad("--ep", "expert parallelism needs a mixture-of-experts model");
  if (q.ep && m.is_moe()) divides(q.ep, m.moe.experts, "--ep", "the number of experts");
  if (q.cp && *q.cp > 1 && q.work.seq_len % (2L * *q.cp) != 0)
    bad("--cp", "sequence length " + std::to_string(q.work.seq_len) + " is not a multiple of 2 x cp");
  if (q.vp && *q.vp > 1 && q.pp && *q.pp == 1) bad("--vp", "interleaving needs --pp > 1");
  if (q.vp && q.pp && static_cast<long>(*q.pp) * *q.vp > max_pipeline_chunks(m.layers))
    bad("--vp", "pp x vp = " + std::to_string(static_cast<long>(*q.pp) * *q.vp) + " exceeds the model's layers + 2 = " +
                    std::to_string(max_pipeline_chunks(m.layers)) + " (the embedding and the loss may count as one layer each)");
  if (q.zero && *q.zero == 3 && q.pp && *q.pp > 1) bad("--zero", "ZeRO-3 with pipeline parallelism is not modelled (give --pp 1)");
  if (q.zero && *q.zero == 3 && q.schedule != PipeSchedule::one_f_one_b)
    bad("--zero", std::string("ZeRO-3 with pipeline parallelism is not modelled, and --schedule ") + schedule_name(q.schedule) +
                      " schedules a pipeline");
  // An FSDP implementation asks for ZeRO-3, which a pipeline excludes.
  if (q.fsdp.set() && ((q.pp && *q.pp > 1) || q.schedule != PipeSchedule::one_f_one_b))
    bad(q.fsdp.rate > 0 ? "--fsdp-rate" : "--fsdp-overlap",
        "describes ZeRO-3, which is not modelled with pipeline parallelism (--pp > 1 or --schedule zb-h1 or dualpipev)");
  if (q.zero_group > 0 && q.zero && *q.zero == 0) bad("--zero-group", "shards ZeRO state, and --zero is 0 (give --zero 1, 2 or 3)");
  // Expert ranks are carved from a stage's tp x dp x cp ranks, which are devices / pp.
  if (q.ep && m.is_moe() && (q.devices % *q.ep != 0 || (q.pp && q.devices % *q.pp == 0 && (q.devices / *q.pp) % *q.ep != 0)))
    bad("--ep", std::to_string(*q.ep) + " does not divide the ranks of a pipeline stage (tp x dp x cp = devices / pp)");
  if (q.precision && !s.peak(*q.precision))
    bad("--precision", s.chip.name + " has no " + precision_name(*q.precision) + " matrix rate (" + s.chip.file + ": peak)");
  if (q.lowp_params && *q.lowp_params && !q.precision && !s.peak(Precision::fp8) && !s.peak(Precision::fp4))
    bad("--lowp-params", "on needs fp8 or fp4 weights, and " + s.chip.name + " has neither matrix rate (" + s.chip.file + ": peak)");
}

Layout layout_from_request(const Model& m, const System& s, const PlanRequest& q) {
  Layout l;
  // A held knob's free counterpart takes the least value it asks for (cp_range, zero_range,
  // pp_range), so that a request no candidate satisfies is reported as such, not planned without it.
  l.tp = q.tp.value_or(1);
  l.pp = q.pp.value_or(q.schedule != PipeSchedule::one_f_one_b ? 2 : 1);
  l.cp = q.cp.value_or(q.cp_mode ? 2 : 1);
  l.vp = q.vp.value_or(q.schedule == PipeSchedule::dualpipe_v ? 2 : 1);
  l.ep = q.ep.value_or(1);
  l.etp = q.etp.value_or(0);
  l.dp = q.dp.value_or(std::max(1, q.devices / std::max(1, l.tp * l.pp * l.cp)));
  l.micro_batch = q.micro_batch.value_or(1);
  l.zero = q.zero.value_or(q.fsdp.set() ? 3 : 1);  // (zero_range's least: 1 for a zero_group alone)
  l.recompute = q.recompute.value_or(Recompute::none);
  l.recompute_layers = q.recompute_layers.value_or(0);
  l.precision = q.precision.value_or(Precision::bf16);
  apply_given_knobs(l, q, m, s);
  return l;
}

namespace {

// a before b: faster, or as fast and first in layout_order_key.
bool faster(const TrainReport& a, const TrainReport& b) {
  return std::make_pair(tie_grid(a.step_time), layout_order_key(a.layout)) <
         std::make_pair(tie_grid(b.step_time), layout_order_key(b.layout));
}

// The best (and, failing that, the closest) plan among one (tp, pp, cp) group's candidates.
struct GroupResult {
  ChooseStats st;
  TrainReport best, closest;
  bool have_best = false, have_closest = false;
  double closest_over = 0;
};

// order_by_bound orders a ladder only if its simulation runs this many chunk-microbatches per
// stage or more (pp x vp x microbatches): a shorter one costs about what its bound does.
constexpr long kOrderedChunkMicrobatches = 4096;

}  // namespace

void order_by_bound(const Model& m, const System& s, const Workload& w, int devices, std::vector<Ladder>& ladders) {
  // Closed-form ladders first, as enumerated; then the simulated ones by their bound without
  // recompute (a plan that is not valid sorts last: it is refused before it is timed). With
  // activations offloaded, recompute can save time (less to copy to the host and back): no bound
  // without it holds for the ladder, which stays in enumeration order, unbounded.
  // Only long simulations are worth the bound's evaluation (kOrderedChunkMicrobatches).
  auto simulated = [&](const Ladder& ld) {
    const long per_replica = static_cast<long>(ld.base.dp) * ld.base.micro_batch;
    const long chunk_mbs = per_replica > 0 ? static_cast<long>(ld.base.pp) * ld.base.vp * (w.global_batch / per_replica) : 0;
    return chunk_mbs >= kOrderedChunkMicrobatches && bounded_simulation(m, ld.base) && !ld.base.offload_activations;
  };
  const auto tail = std::stable_partition(ladders.begin(), ladders.end(), [&](const Ladder& ld) { return !simulated(ld); });
  if (ladders.end() - tail < 2) return;
  const StepCutoff at_bound = [](const MemoryBreakdown&) { return 0.0; };  // timed by its bound alone
  for (auto it = tail; it != ladders.end(); ++it) {
    Layout bare = it->base;
    bare.recompute = Recompute::none;
    const TrainReport r = evaluate(m, s, bare, w, devices, /*enforce_memory=*/false, /*detail=*/false, &at_bound);
    it->bound = r.bounded ? r.step_time : std::numeric_limits<double>::infinity();
  }
  std::stable_sort(tail, ladders.end(), [](const Ladder& a, const Ladder& b) { return a.bound < b.bound; });
}

TrainReport choose_plan(const Model& m, const System& s, const PlanRequest& q, ChooseStats* stats, bool time_if_none_fit,
                        int threads) {
  check_request(m, s, q);
  const long n = q.devices;

  // The shared candidate space (tp_range and the rest), kept where a degree divides the devices.
  auto dividing = [](std::vector<int> v, long of) {
    v.erase(std::remove_if(v.begin(), v.end(), [&](int d) { return of % d != 0; }), v.end());
    return v;
  };
  const std::vector<int> tps = one_or(q.tp, dividing(tp_range(m, s), n));
  // (Empty under zb-h1 when no pp > 1 divides the devices: no candidate, reported as not fitting.)
  const std::vector<int> pps = one_or(q.pp, dividing(pp_range(m, q.schedule), n));
  std::vector<int> cps = one_or(q.cp, cp_range(q));
  std::vector<int> zeros = one_or(q.zero, zero_range(q));
  const std::vector<RecomputeChoice> rcs = recompute_range(m, q);
  const std::vector<Precision> precs = one_or(q.precision, precision_range(s, q.every_precision));

  struct Group {
    int tp, pp, cp;
  };
  std::vector<Group> groups;
  for (int tp : tps)
    for (int pp : pps)
      for (int cp : cps) groups.push_back({tp, pp, cp});

  // Every candidate of one group, in a fixed order; the group keeps its fastest (the earliest of
  // equals) and, while none fits, the one least over the memory.
  auto run_group = [&](const Group& gr, GroupResult& g) {
    // A plan slower than the group's best so far cannot win: its pipeline is simulated only if a
    // lower bound of the step does not already say so (evaluate's cutoff).
    const StepCutoff beat_best = [&g](const MemoryBreakdown&) { return g.best.step_time; };
    const int tp = gr.tp, pp = gr.pp, cp = gr.cp;
    const long tpc = static_cast<long>(tp) * pp * cp;
    if (n % tpc != 0) return;
    const int dp = static_cast<int>(n / tpc);
    if (q.dp && *q.dp != dp) return;
    if (q.work.global_batch % dp != 0) return;
    const long per_replica = q.work.global_batch / dp;
    const std::vector<int> mbs = one_or(q.micro_batch, dividing(micro_batch_range(), per_replica));
    const std::vector<int> vps = one_or(q.vp, vp_range(m, pp, q.schedule));
    const std::vector<int> eps = one_or(q.ep, dividing(ep_range(m), static_cast<long>(dp) * cp * tp));
    const std::vector<int> etp_all = one_or(q.etp, etp_range(m, s, q));
    // The group's candidates come in recompute ladders: a layout tried with each recompute choice
    // in turn, those whose pipeline is simulated last, cheapest bound first (order_by_bound), so
    // that the plans a simulation would show losing are bounded out by the best found before them.
    // The answer and the counts do not depend on the order (the best is a minimum, ties broken by
    // layout; the closest to fitting, ties broken by the ladders' enumeration).
    std::vector<Ladder> ladders;
    for (int vp : vps)
      for (int ep : eps) {
        std::vector<int> etps;
        for (int etp : etp_all) {
          Layout probe;
          probe.tp = tp; probe.dp = dp; probe.cp = cp; probe.ep = ep;
          if (q.etp || etp_candidate(probe, etp)) etps.push_back(etp);
        }
        for (int etp : etps)
        for (int mb : mbs)
          for (int z : zeros)
            for (Precision pr : precs)
              for (int mem_opt = 0; mem_opt < kMemoryOptions; ++mem_opt) {
                if (!memory_option_allowed(q, pr, mem_opt)) continue;
                Layout l;
                l.tp = tp; l.pp = pp; l.vp = vp; l.dp = dp; l.cp = cp; l.ep = ep; l.etp = etp;
                l.micro_batch = mb; l.zero = z; l.precision = pr;
                apply_given_knobs(l, q, m, s);
                apply_memory_option(l, mem_opt);
                ladders.push_back({l, 0.0, ladders.size()});
              }
      }
    order_by_bound(m, s, q.work, q.devices, ladders);
    std::size_t closest_index = 0;
    for (const Ladder& ld : ladders) {
      // Recompute from none up: once the layout fits without any, recompute can only add
      // time (the search's dominance pass; not with activations offloaded, where recompute
      // shrinks what is copied to the host) and the rest are skipped. Selective fitting
      // does not end it: full recompute of the fewest layers that fit can be faster
      // than selective's rerun of every layer's attention (unfused attention).
      bool fitted = false;
      for (const RecomputeChoice& choice : rcs) {
        const Recompute rc = choice.recompute;
        ++g.st.considered;
        if (fitted) {
          ++g.st.dominated;
          continue;
        }
        Layout l = ld.base;
        l.recompute = rc;
        l.recompute_modules = choice.modules;
        if (check_layout(m, s, l, q.work, q.devices, nullptr) != Infeasible::none) {
          ++g.st.rejected;
          continue;
        }
        // Full recompute as asked: every layer, or --recompute-layers of them; chosen
        // freely: the fewest layers that fit.
        if (rc == Recompute::full)
          l.recompute_layers = q.recompute_layers ? *q.recompute_layers
                               : q.recompute     ? 0
                                                 : fewest_recompute_layers(m, s, l, q.work);
        MemoryBreakdown mem = estimate_memory(m, s, l, q.work);
        if (mem.total() > mem.capacity) {
          ++g.st.out_of_memory;
          const double over = mem.total() / mem.capacity;
          // (Kept while none fits, the least over; of equals, the first in enumeration order.)
          if (!g.have_best && (!g.have_closest || over < g.closest_over || (over == g.closest_over && ld.index < closest_index))) {
            g.closest = evaluate(m, s, l, q.work, q.devices, !time_if_none_fit);
            g.closest_over = over;
            g.have_closest = true;
            closest_index = ld.index;
          }
          continue;
        }
        ++g.st.evaluated;
        // Bounded by its ladder's bound (order_by_bound; recompute only adds time), as evaluate's
        // cutoff would bound it, without timing it again.
        if (g.have_best && ld.bound > g.best.step_time * (1 + 1e-10)) {
          fitted = rc == Recompute::none && !l.offload_activations;
          continue;
        }
        TrainReport r = evaluate(m, s, l, q.work, q.devices, true, true, g.have_best ? &beat_best : nullptr);
        if (!r.feasible()) continue;
        fitted = rc == Recompute::none && !l.offload_activations;  // (offloaded: recompute shrinks the copies)
        if (r.bounded) continue;  // provably slower than the group's best: its pipeline not simulated
        // Fastest wins; ties go by layout_order_key, as in the search.
        if (!g.have_best || faster(r, g.best)) {
          g.best = std::move(r);
          g.have_best = true;
        }
      }
    }
    // The group's fastest plan laid out in balanced pipeline stages (balanced_variants), each
    // variant a candidate like the rest.
    if (!g.have_best) return;
    const Layout base = g.best.layout;
    for (const std::vector<Layout>& ladder : balanced_variants(m, s, q, base)) {
      bool fitted = false;  // recompute ladder as above: once it fits without, the rest only add time
      for (const Layout& l : ladder) {
        ++g.st.considered;
        if (fitted) {
          ++g.st.dominated;
          continue;
        }
        if (check_layout(m, s, l, q.work, q.devices, nullptr) != Infeasible::none) {
          ++g.st.rejected;
          continue;
        }
        if (const MemoryBreakdown mem = estimate_memory(m, s, l, q.work); mem.total() > mem.capacity) {
          ++g.st.out_of_memory;
          continue;
        }
        ++g.st.evaluated;
        TrainReport r = evaluate(m, s, l, q.work, q.devices, true, true, &beat_best);
        if (!r.feasible()) continue;
        fitted = l.recompute == Recompute::none && !l.offload_activations;
        if (!r.bounded && faster(r, g.best)) g.best = std::move(r);
      }
    }
  };
  std::vector<GroupResult> results(groups.size());
  parallel_for(groups.size(), threads, [&](std::size_t i) { run_group(groups[i], results[i]); });

  // Merge in group order, with the same rules as within a group.
  ChooseStats local;
  ChooseStats& st = stats ? *stats : local;
  GroupResult all;
  for (auto& g : results) {
    st.considered += g.st.considered;
    st.rejected += g.st.rejected;
    st.out_of_memory += g.st.out_of_memory;
    st.evaluated += g.st.evaluated;
    st.dominated += g.st.dominated;
    if (g.have_best && (!all.have_best || faster(g.best, all.best))) {
      all.best = std::move(g.best);
      all.have_best = true;
    }
    if (g.have_closest && (!all.have_closest || g.closest_over < all.closest_over)) {
      all.closest = std::move(g.closest);
      all.closest_over = g.closest_over;
      all.have_closest = true;
    }
  }
  if (all.have_best) return all.best;
  if (all.have_closest) return all.closest;
  // Nothing even divides: evaluate the request as given so the report carries the reason.
  return evaluate(m, s, layout_from_request(m, s, q), q.work, q.devices);
}

}  // namespace xpu
