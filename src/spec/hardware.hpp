// Chips, systems and their network tiers: plain structs, filled by load/, read by perf/.
// All quantities in SI base units (see units.hpp). Per-device figures are what the evaluator
// uses; a System derives them from its Chip and devices_per_chip.
#pragma once

#include <algorithm>
#include <array>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "units/units.hpp"

namespace xpu {

// Matrix-multiply precisions. Order matters only for tables.
enum class Precision { fp32, tf32, bf16, fp16, fp8, fp4, int8 };
inline constexpr std::array<Precision, 7> kAllPrecisions = {
    Precision::fp32, Precision::tf32, Precision::bf16, Precision::fp16,
    Precision::fp8,  Precision::fp4,  Precision::int8};
const char* precision_name(Precision p);
std::optional<Precision> parse_precision(std::string_view s);
// Bytes of one operand element at this precision (fp4: 0.5).
double precision_bytes(Precision p);
// The low-precision matmul paths (fp8, fp4, int8): scaled operands, quantized activations.
constexpr bool is_low_precision(Precision p) {
  return p == Precision::fp8 || p == Precision::fp4 || p == Precision::int8;
}

struct Chip {
  std::string id, name, vendor, source, date, file;
  std::array<std::optional<FlopRate>, 7> peak{};  // dense matrix peak per Precision; empty = unsupported
  std::optional<FlopRate> vector_fp32;            // non-matrix FP32 (peak.fp32)
  std::optional<double> exp_rate;                 // softmax exponentials per second (peak.exp: the
                                                  // special-function units); empty = not modelled
  Bytes hbm_capacity{};
  ByteRate hbm_bandwidth{};
  std::optional<Watts> tdp;
  bool flash_attention = true;  // runs FlashAttention (fused attention); false: the planner's default
                                // attention is unfused (scores in memory)
  std::string flash_attention_source;
  // Runs a hierarchical expert dispatch (DeepEP, HybridEP: a token crosses the scale-out network
  // once per destination domain and is forwarded inside it). Elsewhere the flex dispatcher is a
  // flat, device-initiated all-to-all.
  bool hierarchical_ep_dispatch = false;
  std::string hierarchical_ep_dispatch_source;

  std::optional<FlopRate> peak_at(Precision p) const { return peak[static_cast<int>(p)]; }
};

enum class Topology { switched, torus, mesh, ring, fat_tree, rail_optimized, dcn };
const char* topology_name(Topology t);
std::optional<Topology> parse_topology(std::string_view s);

// One network tier as seen by one device.
struct Tier {
  int size = 1;                 // devices in one domain of this tier (scale-out: unbounded = 0)
  Topology topology = Topology::switched;
  std::vector<int> torus_dims;  // torus only, in chips
  // torus only: each dimension's share of `bandwidth` (its links' bandwidth / all links'), summing
  // to 1; empty = equal shares. A Trn2 UltraServer's inter-instance ring is thinner than its
  // in-instance torus dimensions.
  std::vector<double> torus_share;
  double dim_share(std::size_t d) const { return torus_share.empty() ? 1.0 / static_cast<double>(torus_dims.size()) : torus_share[d]; }
  ByteRate bandwidth{};         // per device, per direction
  Seconds latency{};
  // Scale-out only: a fabric tapered above its first switch tier. Traffic of a group spanning more
  // than `island` devices crosses the tapered tier at bandwidth / oversubscription.
  double oversubscription = 1.0;  // downlinks : uplinks of the first tier (1 = non-blocking)
  int island = 0;                 // devices under one non-blocking first tier (0 = the whole fabric)
};

// Achievable efficiency of one chip: fitted by `calibrate` or assumed from public
// microbenchmarks. Fractions are of the chip's peak.
struct Calibration {
  std::string id, family, status, source, file;
  // Optional keys of the MoE terms the file states ("gemm.grouped", "kernel.moe_layer_overhead",
  // "kernel.moe_alltoall_overhead"); --explain cites one the file leaves out as its default.
  std::set<std::string> given;
  std::string cite(const std::string& key, const std::string& default_text) const {
    return given.count(key) || file.empty() ? key : key + " (not in the file: " + default_text + ")";
  }
  std::array<double, 7> gemm_max{};  // large, square GEMM fraction of peak, per Precision (0 = use bf16's)
  double gemm_half_dim = 64;         // GEMM dimension at which that dimension halves efficiency
  std::string gemm_shape_source;     // where half_dim and tile_rows come from (kept by refits)
  std::string gemm_grouped_source;   // where a measured grouped prior comes from (kept by refits)
  double gemm_tile_rows = 0;         // rows of the smallest matrix tile small-batch (decode) kernels
                                     // pad the token dimension to; 0 = gemm_half_dim
  double gemm_grouped = 1.0;         // grouped (MoE expert) GEMMs: efficiency relative to one dense
                                     // GEMM of the same per-expert shape (many small problems in one
                                     // launch: tile tails per expert, uneven expert sizes)
  double attention = 0.5;            // flash-attention fraction of the attention peak (bf16 peak with
                                     // the softmax exponentials in series: attention_peak)
  double attention_backward = 1.0;   // flash-attention backward's efficiency relative to the
                                     // forward's (measured on the chip's kernels; 1 = unmeasured)
  std::string attention_source;      // where attention_backward comes from (kept by refits)
  double attention_half_keys = 0;    // keys per query at which flash attention reaches half that
                                     // fraction (tile ramp along the causal diagonal); 0 = gemm_half_dim
  double memory_bw = 0.8;            // fraction of HBM bandwidth reached by memory-bound kernels
  double memory_stream = 0;          // measured fraction a weight-streaming GEMV reaches (0 = not
                                     // measured); the ceiling of a fitted serving decode bandwidth
  std::string memory_stream_source;  // where memory_stream comes from (kept by refits)
  Seconds kernel_overhead{5e-6};     // fixed cost per kernel launch
  double scale_up_bus = 0.8;         // collective bus-bandwidth fraction on the scale-up tier
  double scale_out_bus = 0.8;        // ... on the scale-out tier
  double tp_overlap = 0.0;           // fraction of tensor-parallel communication hidden under GEMMs
  double fsdp_overlap = 0.9;         // fraction of compute time that can hide ZeRO-3 gathers
  double ep_overlap = 0.0;           // fraction of expert all-to-all hidden under other work
  double overlap_slowdown = 0.0;     // share of compute lost while a collective runs beside it
                                     // (GPU collectives hold SMs; DMA/collective engines do not)
  double lowp_overhead = 0.0;        // fp8/fp4: extra memory-bound traffic per GEMM input, as a fraction
  Bytes memory_reserve{};            // runtime, communicator buffers, fragmentation
  double memory_frag = 0.0;          // extra fraction of dynamic memory lost to fragmentation
  Seconds step_overhead{};           // fixed per-step cost (optimizer launch, logging, sync)
  Seconds moe_layer_overhead{};      // fixed cost of one MoE layer's forward per microbatch (backward twice
                                     // it): router, permutation and dispatch bookkeeping that does not scale
                                     // with tokens (host launches, the dispatcher's device-to-host sync)
  Seconds moe_alltoall_overhead{};   // beyond it, with Megatron's host-synchronised "alltoall" token
                                     // dispatcher (Layout::moe_dispatcher): one MoE layer's forward per
                                     // microbatch, backward twice it
  std::string moe_alltoall_source;   // where an unfitted moe_alltoall_overhead comes from (kept by refits)
  // A fitted file records the scales it applied, so a new fit starts again from the prior
  // (assumed) values instead of compounding: prior = value / scale.
  double fit_gemm_scale = 1, fit_lowp_scale = 1, fit_attention_scale = 1, fit_grouped_scale = 1;
  // The scale fp8 and fp4 got: the low-precision scale when the fit's rows ran fp8/fp4, else the
  // GEMM scale (a scale fitted on int8 rows says nothing of fp8). < 0: fit_lowp_scale.
  double fit_fp8_scale = -1;
  double prior_tp_overlap = -1;      // < 0: the file is not fitted; prior = tp_overlap
  double prior_moe_layer_overhead = -1;  // < 0: not fitted; prior = moe_layer_overhead
  double prior_moe_alltoall_overhead = -1;  // < 0: not fitted; prior = moe_alltoall_overhead

  double gemm_max_at(Precision p) const {
    double g = gemm_max[static_cast<int>(p)];
    if (g > 0) return g;
    g = gemm_max[static_cast<int>(Precision::bf16)];
    return g > 0 ? g : gemm_max[static_cast<int>(Precision::fp16)];
  }
};

// One public cloud price for a system (data/prices/<system-id>.toml, one [[offer]] each).
// kind: on-demand | reserved-1y | reserved-3y | capacity-block | spot. The price covers `devices`
// of the system's device unit (a NeuronCore for trn1-32xl, a chip for TPUs, a GPU for the rest).
struct PriceOffer {
  std::string kind, provider, instance, region, as_of, source, note, file;  // region, note: "" when absent
  int devices = 1;
  double usd_per_hour = 0;  // for all `devices`

  double usd_per_device_hour() const { return usd_per_hour / devices; }
};

// "provider instance" for people, without saying the provider twice when the instance's name
// already starts with it ("Lambda 8x H100 SXM", not "Lambda Lambda 8x H100 SXM").
std::string offer_label(const std::string& provider, const std::string& instance);

// What it costs to own one device of a system (data/tco/<system-id>.toml). USD per device; the
// purchase and the overhead are amortised together over the years; pue, when set, overrides the
// site's (e.g. 1.2 for a liquid-cooled rack).
struct Ownership {
  std::string file, source, date, purchase_source, overhead_source;
  double purchase_usd = 0;       // per device
  double overhead_usd = 0;       // per device: network and facility capital cost
  std::optional<double> pue;     // overrides Site::pue
};

// The operating assumptions shared by every owned system (data/tco/site.toml): how long hardware is
// amortised, the average draw as a fraction of TDP, the data-centre PUE, electricity price and grid
// carbon intensity, each with its source.
struct Site {
  std::string file, source, date;
  double amortisation_years = 0;
  double utilisation = 0;        // average draw / TDP while running
  double pue = 0;                // facility power / IT power
  double usd_per_joule = 0;      // electricity price
  double kg_co2_per_joule = 0;   // grid carbon intensity
  std::string amortisation_source, utilisation_source, pue_source, electricity_source, grid_source;
};

// How a serving engine runs on one chip family (data/serving/*.toml): the efficiency knobs of
// inference that training does not exercise. Defaults apply to a chip no serving file names.
struct ServingCalibration {
  std::string id = "built-in defaults", status = "assumed", source, file;  // file: "" for the defaults
  // Where --explain says a serving value comes from: the file, or the built-in defaults.
  std::string where() const { return file.empty() ? "built-in serving defaults" : file; }
  // Optional keys the file states ("prefill.gemm_scale", "engine.kv_admission", ...).
  std::set<std::string> given;
  // An --explain citation of an optional key: the key, or that the file leaves it to the default.
  std::string cite(const std::string& key, const std::string& default_text) const {
    return given.count(key) || file.empty() ? key : key + " (not in the file: " + default_text + ")";
  }
  double decode_bw = 0.8;            // fraction of HBM bandwidth reached streaming weights and KV in decode
  double prefill_gemm = 1.0;         // scale on the calibrated GEMM efficiency for serving GEMMs
  // Serving GEMMs computed at fp8 or fp4: their scale relative to prefill_gemm (1: the same).
  // An engine's low-precision GEMMs (activation quantisation, scaled epilogues, the kernels it has
  // for its serving shapes) can sit further below their peak than the calibrated training GEMMs do.
  double lowp_gemm_ratio = 1.0;
  // Decode attention time per query head, key position and layer on a device, beyond the KV read:
  // the score and softmax passes an engine runs outside the matrix units (Neuron's vector and
  // scalar engines), which grow with heads x context whatever the KV layout. 0: none.
  Seconds decode_score_time{0};
  Seconds prefill_score_time{0};     // the same per query x key pair of a prompt (causal pairs), per head and layer
  Seconds step_overhead{1e-3};       // per iteration: scheduling, sampling, host sync
  Seconds layer_overhead{10e-6};     // per layer per iteration: kernel launches and syncs
  Seconds prefill_layer_overhead{0}; // per layer of an iteration (or graph) that computes prompt tokens,
                                     // beyond layer_overhead: the prefill (context-encoding) path's own
                                     // launches and syncs
  // Engines that compile prefill as its own graph (mixed_batches = false): the least time a layer
  // of that graph takes, however few the prompt tokens, a latency floor (Neuron's context-encoding
  // graph runs about as long per layer at 128 prompt tokens for a 7-8B model as for a 70B one).
  // The prefill pass takes max(its layers' work, layers x floor); 0: none. Not fitted, and not
  // applied, where prefill mixes into the decode pass (GPU engines).
  Seconds prefill_layer_floor{0};
  // The floor in effect: none where prefill mixes into the decode pass.
  double prefill_floor_s() const { return mixed_batches ? 0.0 : prefill_layer_floor.v; }
  double memory_fraction = 0.9;      // share of the HBM left after weights, reserve and workspace that the KV cache takes
  int max_batch = 256;               // default cap on sequences per iteration
  int token_budget = 8192;           // default cap on tokens per iteration (chunked prefill)
  int block_tokens = 16;             // paged-KV block size
  // FP4 weights carry one 1-byte scale per this many values: 32 for OCP MXFP4 (E8M0 scales, OCP
  // Microscaling Formats v1.0), 16 for NVIDIA's NVFP4 (FP8 E4M3 scales). 0.5 B + 1 B / block.
  int fp4_scale_block = 32;
  // FP4 also scales each tensor as a whole (NVIDIA's NVFP4: an FP32 scale over the E4M3 block
  // scales, from the tensor's amax), so a training cast reads its operand once more for the amax
  // first; OCP MXFP4 has block scales alone. engine.fp4_tensor_scale.
  bool fp4_tensor_scale = false;
  // Tensor-parallel ranks the engine runs on each device (Neuron shards over NeuronCores: 2 per
  // Inferentia2 chip, 4 logical cores per Trainium2 chip at LNC=2). Heads are padded and KV heads
  // replicated per rank, so a device holds `shards` ranks' worth of them.
  int shards_per_device = 1;
  // Whether the engine pads attention heads that tensor parallelism does not divide (Neuron's
  // engines do; vLLM, TensorRT-LLM and SGLang require tp to divide the heads). engine.pad_heads.
  bool pad_heads = false;
  // Whether one iteration runs decode tokens and prefill chunks in one forward pass (vLLM,
  // TensorRT-LLM). Neuron engines compile prefill (context encoding) and decode (token
  // generation) as separate graphs: an iteration with both runs the decode graph, then the
  // prefill graph, each a full pass over the weights with its own overhead.
  bool mixed_batches = true;
  // KV-cache admission. false ("optimistic", vLLM, SGLang): a request is admitted with blocks for
  // its prompt; when decode growth finds the cache full, the newest running sequence is preempted
  // and later recomputed. true ("guaranteed", TensorRT-LLM's default capacity scheduler policy
  // GUARANTEED_NO_EVICT): a request is admitted only when blocks for its whole context, prompt
  // plus every token it will generate, are free beside those reserved for the running ones: no
  // preemption, fewer sequences at once.
  bool reserve_output = false;
  // Scheduler. false ("chunked": vLLM V1, vLLM V0 with --enable-chunked-prefill, TensorRT-LLM,
  // SGLang): every iteration decodes all running sequences and spends the rest of the token budget
  // on prompt chunks. true ("prefill-first": vLLM V0's default scheduler before chunked prefill,
  // Scheduler._schedule_default "Don't schedule decodes if prefills are scheduled"): an iteration
  // with admissible waiting prompts runs those prompts whole and no decode; decodes run only when
  // no prompt waits. Lower TTFT, and every prompt pass stalls the running decodes.
  bool prefill_first = false;
  // How the engine runs MoE experts (default: a grouped GEMM over the experts the batch's tokens
  // hit, as vLLM, SGLang and TensorRT-LLM do). neuronx-distributed's ExpertMLPs instead runs
  // every token through every expert in context encoding (full capacity), and in token
  // generation either the same (once batch x top_k / experts reaches `moe_all_experts_from`) or
  // each token's own top-k experts, loaded token by token (below it). < 0: grouped dispatch.
  double moe_all_experts_from = -1;
  bool moe_prefill_all_experts = false;
  // Routed experts' time over the roofline of the same GEMMs run dense (grouped expert kernels,
  // routing and permutation): a multiplier on the MoE layers' expert work, fitted on a family's
  // MoE rows (1: none).
  double moe_expert_factor = 1.0;
  std::string moe_expert_source;     // where an unfitted factor comes from (kept by refits)
  std::vector<std::string> chips;    // the chip ids the file names
  // A fitted file records the assumed values it started from, so a refit starts again from
  // them instead of compounding (< 0: not fitted).
  double prior_decode_bw = -1, prior_step_overhead_s = -1, prior_layer_overhead_s = -1, prior_gemm_scale = -1,
         prior_prefill_layer_overhead_s = -1, prior_decode_score_time_s = -1, prior_prefill_score_time_s = -1,
         prior_moe_expert_factor = -1, prior_prefill_layer_floor_s = -1, prior_lowp_gemm_ratio = -1;
};

// An engine's scheduler by name, as serving files, `serve --scheduler` and run facts give it:
// "prefill-first" -> true, "chunked" -> false (ServingCalibration::prefill_first); else nullopt.
inline std::optional<bool> parse_scheduler(std::string_view s) {
  if (s == "prefill-first") return true;
  if (s == "chunked") return false;
  return std::nullopt;
}
inline const char* scheduler_name(bool prefill_first) { return prefill_first ? "prefill-first" : "chunked"; }
// KV admission by name: "guaranteed" -> true, "optimistic" -> false
// (ServingCalibration::reserve_output); else nullopt.
inline std::optional<bool> parse_kv_admission(std::string_view s) {
  if (s == "guaranteed") return true;
  if (s == "optimistic") return false;
  return std::nullopt;
}
inline const char* kv_admission_name(bool reserve_output) { return reserve_output ? "guaranteed" : "optimistic"; }

struct System {
  std::string id, name, device_unit, source, date, file;
  std::string chip_id;
  int devices_per_chip = 1;
  int devices_per_node = 8;
  Tier scale_up, scale_out;
  Chip chip;          // resolved from chip_id
  Calibration calib;  // resolved by chip id
  ServingCalibration serving;      // resolved by chip id from data/serving/ (defaults when none names it)
  std::vector<PriceOffer> prices;  // from data/prices/<id>.toml, in file order; empty when none
  std::optional<Ownership> ownership;  // from data/tco/<id>.toml; empty when the system is not sold
  bool standalone = false;             // given as a file (--system path.toml): outside the catalog, no offers
  std::optional<Watts> node_power;     // [power] node_max: a node's rated input power, all of it (empty: unpublished)
  std::string node_power_source;
  // [host]: the link from each device to its host's memory and that memory's share per device, where
  // published; activation offload (Layout::offload_activations) needs the bandwidth.
  std::optional<double> host_bandwidth;  // bytes/s per device, each direction
  std::optional<double> host_memory;     // bytes of host DRAM per device (empty: not checked)
  std::string host_source;

  // The system's file where it came from one, else its id: what an error about its data names.
  const std::string& file_or_id() const { return file.empty() ? id : file; }

  // Why no offer prices this system, for a report's "no price" line (the --price hint only where
  // --price reaches: catalog systems).
  std::string no_price_hint(const std::string& kind_suffix) const {
    return standalone ? "a system given as a file (" + file + ") has no offers: --price quotes catalog systems; put it and "
                        "prices/" + id + ".toml in a --data catalog to price it"
                      : "--price " + id + kind_suffix + "=USD per device-hour gives one";
  }

  // The most recent offer of this kind (by as_of, YYYY-MM or YYYY-MM-DD; a month-only date counts
  // as earlier than any day of that month; ties: the first in the file), or nullptr.
  const PriceOffer* price(std::string_view kind) const {
    const PriceOffer* best = nullptr;
    for (const auto& o : prices)
      if (o.kind == kind && (!best || o.as_of > best->as_of)) best = &o;
    return best;
  }

  // Per-device figures (chip figures divided by devices_per_chip).
  std::optional<FlopRate> peak(Precision p) const {
    auto r = chip.peak_at(p);
    if (!r) return r;
    return FlopRate{r->v / devices_per_chip};
  }
  // The GEMM efficiency cap at precision p (calibration gemm.<p>). A low precision the chip runs
  // no faster than bf16 (peak.fp8 = peak.bf16 on Trainium1, Inferentia2) cannot do better than a
  // bf16 GEMM either: its cap is held to the bf16 one (an assumed fp8 cap of 0.75 beside a fitted
  // bf16 cap of 0.53 made fp8 GEMMs 42% faster at the same peak).
  double gemm_cap(Precision p) const {
    const double g = calib.gemm_max_at(p);
    if (!is_low_precision(p)) return g;
    const auto lp = peak(p), hp = peak(Precision::bf16);
    if (lp && hp && lp->v <= hp->v) return std::min(g, calib.gemm_max_at(Precision::bf16));
    return g;
  }
  // Softmax exponentials per second per device; 0 where the chip file gives none.
  double exp_rate() const { return chip.exp_rate ? *chip.exp_rate / devices_per_chip : 0.0; }
  Bytes hbm_capacity() const { return chip.hbm_capacity / devices_per_chip; }
  ByteRate hbm_bandwidth() const { return chip.hbm_bandwidth / devices_per_chip; }
  // The chip's TDP per device, or empty where unpublished.
  std::optional<Watts> tdp() const {
    if (!chip.tdp) return std::nullopt;
    return Watts{chip.tdp->v / devices_per_chip};
  }
};

}  // namespace xpu
