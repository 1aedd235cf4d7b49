#include <string_view>
#include <utility>

#include "spec/hardware.hpp"
#include "spec/model.hpp"
#include "spec/plan.hpp"

namespace xpu {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::tf32: return "tf32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
    case Precision::fp8: return "fp8";
    case Precision::fp4: return "fp4";
    case Precision::int8: return "int8";
  }
  return "?";
}

std::optional<Precision> parse_precision(std::string_view s) {
  for (Precision p : kAllPrecisions)
    if (s == precision_name(p)) return p;
  return std::nullopt;
}

double precision_bytes(Precision p) {
  switch (p) {
    case Precision::fp32:
    case Precision::tf32: return 4;
    case Precision::bf16:
    case Precision::fp16: return 2;
    case Precision::fp8:
    case Precision::int8: return 1;
    case Precision::fp4: return 0.5;
  }
  return 2;
}

const char* topology_name(Topology t) {
  switch (t) {
    case Topology::switched: return "switch";
    case Topology::torus: return "torus";
    case Topology::mesh: return "mesh";
    case Topology::ring: return "ring";
    case Topology::fat_tree: return "fat-tree";
    case Topology::rail_optimized: return "rail-optimized";
    case Topology::dcn: return "dcn";
  }
  return "?";
}

std::optional<Topology> parse_topology(std::string_view s) {
  for (Topology t : {Topology::switched, Topology::torus, Topology::mesh, Topology::ring,
                     Topology::fat_tree, Topology::rail_optimized, Topology::dcn})
    if (s == topology_name(t)) return t;
  return std::nullopt;
}

const char* recompute_name(Recompute r) {
  switch (r) {
    case Recompute::none: return "none";
    case Recompute::selective: return "selective";
    case Recompute::full: return "full";
  }
  return "?";
}

std::optional<Recompute> parse_recompute(std::string_view s) {
  for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full})
    if (s == recompute_name(r)) return r;
  return std::nullopt;
}

namespace {
constexpr std::pair<unsigned, const char*> kRecomputeModuleNames[] = {
    {kRecomputeCoreAttn, "core_attn"}, {kRecomputeMoeAct, "moe_act"},         {kRecomputeLayernorm, "layernorm"},
    {kRecomputeMlaUpProj, "mla_up_proj"}, {kRecomputeMlp, "mlp"},             {kRecomputeMoe, "moe"},
    {kRecomputeSharedExperts, "shared_experts"}};
}  // namespace

std::vector<std::string> recompute_module_names(unsigned modules) {
  std::vector<std::string> out;
  for (const auto& [bit, name] : kRecomputeModuleNames)
    if (modules & bit) out.emplace_back(name);
  return out;
}

std::string recompute_modules_name(unsigned modules) {
  std::string out;
  for (const std::string& name : recompute_module_names(modules)) out += (out.empty() ? "" : "+") + name;
  return out;
}

std::optional<unsigned> parse_recompute_modules(std::string_view s, std::string* bad) {
  unsigned out = 0;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = std::min(s.find_first_of(",+", start), s.size());
    const std::string_view name = s.substr(start, end - start);
    unsigned bit = 0;
    for (const auto& [b, n] : kRecomputeModuleNames)
      if (name == n) bit = b;
    if (bit == 0) {
      if (bad) *bad = std::string(name);
      return std::nullopt;
    }
    out |= bit;
    start = end + 1;
  }
  return out;
}

const char* schedule_name(PipeSchedule s) {
  switch (s) {
    case PipeSchedule::one_f_one_b: return "1f1b";
    case PipeSchedule::zero_bubble: return "zb-h1";
    case PipeSchedule::dualpipe_v: return "dualpipev";
  }
  return "?";
}

std::optional<PipeSchedule> parse_schedule(std::string_view s) {
  for (PipeSchedule x : {PipeSchedule::one_f_one_b, PipeSchedule::zero_bubble, PipeSchedule::dualpipe_v})
    if (s == schedule_name(x)) return x;
  return std::nullopt;
}

const char* cp_mode_name(CpMode m) {
  switch (m) {
    case CpMode::ring: return "ring";
    case CpMode::all_gather: return "all-gather";
  }
  return "?";
}

std::optional<CpMode> parse_cp_mode(std::string_view s) {
  for (CpMode x : {CpMode::ring, CpMode::all_gather})
    if (s == cp_mode_name(x)) return x;
  return std::nullopt;
}

const char* rank_order_name(RankOrder o) {
  switch (o) {
    case RankOrder::dp_then_pp: return "tp-cp-dp-pp";
    case RankOrder::pp_then_dp: return "tp-cp-pp-dp";
  }
  return "?";
}

std::optional<RankOrder> parse_rank_order(std::string_view s) {
  for (RankOrder x : {RankOrder::dp_then_pp, RankOrder::pp_then_dp})
    if (s == rank_order_name(x)) return x;
  return std::nullopt;
}

const char* attention_kernel_name(AttentionKernel a) {
  switch (a) {
    case AttentionKernel::flash: return "flash";
    case AttentionKernel::unfused: return "unfused";
  }
  return "?";
}

std::optional<AttentionKernel> parse_attention_kernel(std::string_view s) {
  for (AttentionKernel x : {AttentionKernel::flash, AttentionKernel::unfused})
    if (s == attention_kernel_name(x)) return x;
  return std::nullopt;
}

const char* moe_dispatcher_name(MoeDispatcher d) {
  switch (d) {
    case MoeDispatcher::flex: return "flex";
    case MoeDispatcher::alltoall: return "alltoall";
  }
  return "?";
}

std::optional<MoeDispatcher> parse_moe_dispatcher(std::string_view s) {
  for (MoeDispatcher x : {MoeDispatcher::flex, MoeDispatcher::alltoall})
    if (s == moe_dispatcher_name(x)) return x;
  return std::nullopt;
}

std::optional<RouterGroupsProblem> router_groups_problem(int experts, int top_k, long groups, long group_topk,
                                                         const char* groups_key, const char* top_k_key) {
  if (experts % groups != 0)
    return RouterGroupsProblem{true, std::to_string(groups) + " does not divide the " + std::to_string(experts) + " routed experts"};
  if (group_topk > groups) return RouterGroupsProblem{false, std::string("exceeds ") + groups_key};
  if (group_topk * (experts / groups) < top_k)
    return RouterGroupsProblem{false, std::to_string(group_topk) + " groups of " + std::to_string(experts / groups) +
                                          " experts hold fewer than " + top_k_key + " (" + std::to_string(top_k) + ")"};
  return std::nullopt;
}

ParamCounts count_params(const Model& m) {
  ParamCounts c;
  const double h = static_cast<double>(m.hidden);
  c.embedding = static_cast<double>(m.vocab) * h;
  c.head = m.tied_embeddings ? 0.0 : static_cast<double>(m.vocab) * h;
  double attn = 0;
  if (m.is_mla()) {
    const auto& a = m.mla;
    const double qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
    const double q = a.q_lora_rank > 0 ? h * a.q_lora_rank + a.q_lora_rank * m.heads * qk + a.q_lora_rank
                                       : h * m.heads * qk;
    const double kv = h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank +
                      a.kv_lora_rank * m.heads * (a.qk_nope_head_dim + a.v_head_dim);
    const double o = static_cast<double>(m.heads) * a.v_head_dim * h;
    attn = q + kv + o;
  } else {
    const double d = m.head_dim;
    attn = h * (m.heads + 2.0 * m.kv_heads) * d + m.heads * d * h;
  }
  const double mats = m.gated_mlp ? 3.0 : 2.0;
  const double n_moe = m.moe_layer_count(), n_dense = m.layers - n_moe;
  c.attention = m.layers * attn;
  c.norms = m.layers * 2 * h;
  c.experts = n_moe * m.moe.experts * mats * h * static_cast<double>(m.moe.ffn_hidden);
  c.shared_experts = n_moe * m.moe.shared_experts * mats * h * static_cast<double>(m.moe.ffn_hidden);
  c.router = n_moe * h * m.moe.experts;
  c.dense_mlp = n_dense * mats * h * static_cast<double>(m.ffn_hidden);
  c.norms += h;  // final norm
  return c;
}

double mtp_module_params(const Model& m) {
  const ParamCounts pc = count_params(m);
  const double h = static_cast<double>(m.hidden), mats = m.gated_mlp ? 3.0 : 2.0;
  const bool moe = m.is_moe_layer(m.layers - 1);
  const double mlp = moe ? (m.moe.experts + m.moe.shared_experts) * mats * h * static_cast<double>(m.moe.ffn_hidden) + h * m.moe.experts
                         : mats * h * static_cast<double>(m.ffn_hidden);
  return pc.attention / m.layers + mlp + 2.0 * h + 2.0 * h * h + 3.0 * h;
}

double ParamCounts::active(const Model& m) const {
  const double routed = m.is_moe() ? experts * m.moe.top_k / m.moe.experts : 0.0;
  return embedding + head + attention + dense_mlp + routed + shared_experts + router + norms;
}

std::string offer_label(const std::string& provider, const std::string& instance) {
  if (provider.empty()) return instance;
  if (instance.empty()) return provider;
  const bool repeats = instance.size() > provider.size() && instance.compare(0, provider.size(), provider) == 0 &&
                       instance[provider.size()] == ' ';
  return repeats || instance == provider ? instance : provider + " " + instance;
}

}  // namespace xpu
