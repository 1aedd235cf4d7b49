// Inference step model: the time of one serving iteration (a batch of decode sequences plus
// chunks of prefill) on one replica, the KV cache per token for each attention variant, and the
// memory left for it. All times in seconds, sizes in bytes, per device of the replica.
//
// A replica is tp x pp devices. Tensor parallelism shards heads and FFN columns (query heads
// are padded to a multiple of tp when it does not divide them; KV heads are replicated when tp
// exceeds them; MLA's latent cache is replicated on every tp rank); expert
// parallelism spreads the routed experts over ep of the tp ranks and exchanges tokens by
// all-to-all; pipeline stages run one after the other for a batch (no micro-batching).
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "spec/hardware.hpp"
#include "spec/model.hpp"

namespace xpu {

// Storage format of weights or KV cache. fp8/fp4 weights compute at the chip's fp8/fp4 rate
// where it has one (fp4 falls back to fp8, then 16-bit); int8 and int4 are weight-only
// quantisation (read at their size, multiplied in bf16/fp16), as the published int8 serving
// runs (Neuron "int8 weight storage, matmuls in BF16") use them.
enum class Quant { bf16, fp16, fp8, int8, int4, fp4 };
const char* quant_name(Quant q);
std::optional<Quant> parse_quant(std::string_view s);
double quant_bytes(Quant q);  // bytes per element (int4/fp4: 0.5)

// Speculative decoding: each decode step a draft proposes `draft_tokens` (k) tokens per sequence
// and the target model verifies them together with the sequence's next token in one pass of k + 1
// rows; each drafted token is accepted with probability `acceptance` (alpha) until the first
// rejection, so a step returns (1 - alpha^(k+1)) / (1 - alpha) tokens on average (Leviathan et al.
// 2023, eq. 1; k + 1 at alpha = 1). Drafts: ngram (prompt lookup on the host: no device work),
// mtp (the model's own multi-token-prediction modules, Model::mtp_layers, DeepSeek-V3 Section
// 2.2: a layer like the model's last, its 2h -> h projection and a pass of the shared head, run k
// times, the modules reused in turn beyond their count as SGLang and vLLM do) and eagle (EAGLE-3:
// one decoder layer of the target's width with a dense MLP of its ffn_hidden, a 3h -> h fusion of
// the target's hidden states, and the shared head). Chains only (no draft trees).
enum class DraftMethod { none, ngram, mtp, eagle };
const char* draft_method_name(DraftMethod d);
std::optional<DraftMethod> parse_draft_method(std::string_view s);

inline constexpr int kMaxDraftTokens = 16;  // the most drafted tokens per step accepted (engines use 1-8)

struct Speculation {
  DraftMethod method = DraftMethod::none;
  int draft_tokens = 0;   // k
  double acceptance = 0;  // alpha: probability that a drafted token is accepted, given its predecessors were
  bool on() const { return method != DraftMethod::none && draft_tokens > 0; }
  // Tokens a sequence gains per verification step: 1 when off.
  double tokens_per_step() const { return on() ? tokens_per_step(draft_tokens) : 1.0; }
  // The same for a step that drafts k tokens (the simulator drafts fewer when the token budget
  // cannot hold K + 1 rows per sequence).
  double tokens_per_step(int k) const {
    if (k <= 0) return 1.0;
    if (acceptance >= 1) return k + 1.0;
    return (1.0 - std::pow(acceptance, k + 1)) / (1.0 - acceptance);
  }
  // Tokens drafted per sequence in a step of `sequences` decode sequences under a token budget:
  // K, or fewer when K + 1 rows a sequence do not fit (budget / sequences - 1, at least 0), as
  // engines shrink or switch off speculation for large batches.
  int draft_tokens_within(long budget, long sequences) const {
    if (!on() || sequences <= 0) return 0;
    return static_cast<int>(std::clamp(budget / sequences - 1, 0L, static_cast<long>(draft_tokens)));
  }
  // Draft layers that keep a KV cache of their own (and their weights): MTP modules used (at most
  // the model's), EAGLE's one layer; n-gram none.
  int draft_layers(const Model& m) const {
    if (!on()) return 0;
    if (method == DraftMethod::mtp) return std::min(draft_tokens, m.mtp_layers);
    return method == DraftMethod::eagle ? 1 : 0;
  }
};
// "mtp:2 at 0.80 (2.44 tokens per step)" or "off".
std::string speculation_summary(const Speculation& sp);

struct ServeLayout {
  int tp = 1, pp = 1, ep = 1, replicas = 1;
  Quant weights = Quant::bf16;
  Quant kv = Quant::bf16;
};

// One explained term: a name, its value as text, and the data file and field it came from.
struct ServeTerm {
  std::string name, value, source;
};

// KV-cache bytes per token of context for the whole model (all layers, all KV heads, unsharded):
// MHA/GQA/MQA 2 x kv_heads x head_dim x layers x bytes; MLA (kv_lora_rank + qk_rope_head_dim)
// x layers x bytes.
// Bytes of one stored value (a weight, a cached K or V): the precision's, and FP4's block scales
// (one byte per `fp4_scale_block` values: a checkpoint's, or the serving family's
// engine.fp4_scale_block).
double value_bytes(Quant q, int fp4_scale_block);
double kv_bytes_per_token(const Model& m, Quant kv, int fp4_scale_block);

class StepModel {
 public:
  // Throws nothing; an impossible layout or precision gives fits() == false with a reason.
  // token_budget and max_batch: the engine's limits in effect (the activation workspace held
  // beside the KV cache scales with them); 0 takes the system's serving defaults.
  // spec: speculative decoding (Speculation); its draft's weights and KV cache take memory, and
  // a step with decode sequences verifies k + 1 rows per sequence and runs the draft k times.
  StepModel(const Model& m, const System& s, const ServeLayout& l, int token_budget = 0, int max_batch = 0,
            const Speculation& spec = {});

  bool fits() const { return reason_.empty(); }
  const std::string& reason() const { return reason_; }

  // One iteration: `tokens` new tokens in the batch (decode sequences + prefill chunk tokens),
  // `decode_seqs` of them decode with `decode_ctx` keys in total, prefill attention work
  // `prefill_pairs` (sum over prefill tokens of the keys each attends to), `logits` rows of the
  // LM head (sequences that sample a token). `window_pairs`: the same sum where each key set is
  // cut to the sliding window (causal_pairs per chunk), for the model's window layers; < 0: bounded
  // by prompt tokens x window instead. Seconds.
  // local_keys >= 0: the keys the decode sequences' local layers read, summed over the sequences
  // (the simulator tracks each one's position in its window or chunk); < 0: the sequences' count
  // x Model::local_decode_keys of their mean context.
  // draft_tokens >= 0: speculative decoding drafts this many tokens per sequence this step (at
  // most the Speculation's; the simulator's budget-limited steps); < 0: the Speculation's.
  double step_time(long tokens, int decode_seqs, double decode_ctx, double prefill_pairs, int logits,
                   double window_pairs = -1, double local_keys = -1, int draft_tokens = -1) const;
  // The same split into named terms (for --explain); sums to step_time.
  // prompt_share >= 0: the step stands for a run's mean iteration, of which this share computed
  // prompt tokens; the per-prefill-layer overhead is charged that share (else: whether this step
  // has prompt tokens). An engine that cannot mix prefill into a decode pass (serving
  // engine.mixed_batches = false) runs them as two graphs: the mean iteration is then the decode
  // pass plus that share of a prompt pass of (tokens - decode_seqs) / prompt_share tokens, each
  // with its own overheads, as the simulator times them.
  // draft_tokens: as step_time's.
  std::vector<ServeTerm> explain_step(long tokens, int decode_seqs, double decode_ctx, double prefill_pairs,
                                      int logits, double prompt_share = -1, double window_pairs = -1, int draft_tokens = -1) const;
  // Memory and data terms of the replica (weights, KV per token, capacity, compute precision).
  std::vector<ServeTerm> explain_memory() const;

  double weight_bytes_per_device() const { return weights_dev_; }
  // KV bytes per context token on a device: all layers of one stage, or only its full-attention
  // layers when some layers are local (sliding window or chunked: their cache is bounded,
  // local_cap_blocks). With pp, the stage holding the most full-attention layers.
  double kv_bytes_per_token_per_device() const { return kv_dev_; }
  double kv_bytes_per_token_replica() const { return kv_replica_; } // what a KV transfer moves
  long kv_capacity_tokens() const { return kv_tokens_; }            // per replica, in tokens of kv_bytes_per_token_per_device
  int block_tokens() const { return block_; }
  // The paged cache in units of one block (block_tokens) of one layer on a device of that stage.
  // A full-attention layer holds a block per block_tokens of context; a local layer (sliding
  // window or chunk) at most local_cap_blocks, the blocks its last `sliding_window` tokens can
  // span: engines free a block once the window has passed it (vLLM's sliding-window and
  // chunked-local cache managers, TensorRT-LLM's per-layer attention windows).
  long kv_units() const { return kv_units_; }
  int global_layers() const { return g_layers_; }  // full-attention layers of that stage
  int local_layers() const { return l_layers_; }   // local layers of that stage
  long local_cap_blocks() const { return cap_blocks_; }  // 0 without local layers
  // Units a request holds once its context has grown from ctx0 tokens (its prompt, shared by its
  // `samples` sequences) to ctx: in full-attention layers the prompt's blocks once and each
  // sequence's own beyond them; in local layers each sequence's last local_cap_blocks, the
  // prompt's among them shared until the window has passed them. units_at counts the same in
  // blocks of context: P = ceil(ctx0 / block), n = ceil(ctx / block) >= P.
  long seq_units(long ctx0, long ctx, int samples) const {
    return units_at((ctx0 + block_ - 1) / block_, (ctx + block_ - 1) / block_, samples);
  }
  long units_at(long P, long n, int samples) const {
    long u = g_layers_ * (P + samples * (n - P));
    if (l_layers_ > 0) {
      const long Pl = std::min(P, cap_blocks_);
      u += l_layers_ * (samples * std::min(n, cap_blocks_) - (samples - 1) * std::min(Pl, std::max(0L, P + cap_blocks_ - n)));
    }
    return u;
  }
  // KV bytes a prompt of `tokens` leaves on a device (what a disaggregated transfer moves).
  double prompt_kv_bytes(double tokens) const {
    return kv_layer_dev_ * (g_layers_ * tokens + l_layers_ * std::min(tokens, static_cast<double>(cap_blocks_ * block_)));
  }
  const Speculation& speculation() const { return spec_; }
  double draft_weight_bytes_per_device() const { return draft_weights_dev_; }
  Precision compute_precision() const { return cp_; }
  const ServeLayout& layout() const { return l_; }
  const System& system() const { return s_; }
  const Model& model() const { return m_; }
  int devices() const { return l_.tp * l_.pp; }

 private:
  // Which dimension tensor parallelism splits: column-parallel GEMMs split their output columns,
  // row-parallel ones their reduction; on a device that runs several ranks (Neuron: one per
  // NeuronCore) each rank's GEMM is that much narrower, and its efficiency follows that shape.
  enum class Split { none, n, k };
  struct Gemm {
    double n, k, count;  // per device: output columns, reduction dim, how many per layer
    Split split = Split::none;
  };
  struct Parts {
    double linear = 0, attn_decode = 0, attn_prefill = 0, elementwise = 0, head = 0, tp_comm = 0,
           pp_comm = 0, overhead = 0, floor = 0;  // floor: what a prompt pass adds to reach its latency floor
    double draft = 0;                             // speculative decoding: the draft's passes
    double total() const {
      return linear + attn_decode + attn_prefill + elementwise + head + tp_comm + pp_comm + overhead + floor + draft;
    }
  };
  Parts parts(long tokens, int decode_seqs, double decode_ctx, double prefill_pairs, int logits,
              double window_pairs = -1, double local_keys = -1, int draft_tokens = -1) const;
  double gemm(double M, double N, double K, Split split = Split::none) const;
  // Projections of all layers for a pass of `tokens` tokens; `prefill`: the pass holds prompt
  // tokens (context encoding), which matters to engines with their own MoE dispatch. Cached.
  double linear_time(long tokens, bool prefill) const;
  double moe_layer_time(double T, bool prefill) const;  // routed experts of one MoE layer
  double gemms_time(const std::vector<Gemm>& gemms, double T) const;  // a list of GEMMs at T rows
  // One layer's MLP at T rows: dense, or MoE (routed experts x engine.moe_expert_factor, router,
  // shared experts).
  double mlp_time(double T, bool prefill, bool moe) const;
  // One pass of the speculative draft's layer (Speculation): `rows` new tokens, decode rows
  // reading `decode_keys` keys of its own cache in total, prompt rows attending over
  // `prefill_pairs` query-key pairs; `head`: the rows sample a draft token (the LM head).
  double draft_layer_time(double rows, double decode_keys, double prefill_pairs, bool prefill, bool head) const;
  double draft_gemm_time(long rows, bool prefill) const;  // its projections (cached)
  // Attention of decode rows over `keys` cached keys (summed over rows and layers), each row with
  // `queries` query tokens (k + 1 when verifying drafts): the KV read once, the matrix work per query.
  double decode_attention(double keys, double queries) const;
  // Attention of prompt tokens over `pairs` query-key pairs (summed over layers).
  double prefill_attention(double pairs) const;

  const Model& m_;
  const System& s_;
  ServeLayout l_;
  Speculation spec_;
  double draft_weights_dev_ = 0;  // the draft's weights on a device (Speculation)
  std::string reason_;
  Precision cp_ = Precision::bf16;
  double exp_rate_ = 0;  // softmax exponentials per second (0: not modelled)
  double wb_ = 2, kvb_ = 2, peak_ = 0, peak_attn_ = 0, gmax_ = 0.5, half_ = 64, tile_ = 64, bw_ = 1, attn_eff_ = 0.5;
  // Bytes per routed-expert weight: wb_, or the FP4 experts' of a checkpoint that quantizes them
  // alone (Model::fp4_experts_only; its other weights, wb_, stay bf16).
  double wb_expert_ = 2;
  bool fp4_experts_only_ = false;
  int fp4_block_ = 16;  // values per FP4 scale: the model's fp4_scale_block, else the family's
  std::string window_note() const;  // explain: the sliding-window layers, if any
  double attn_dqk_ = 0, attn_dv_ = 0, heads_dev_ = 0, kv_layer_dev_ = 0;
  double weights_dev_ = 0, kv_dev_ = 0, kv_replica_ = 0;
  int g_layers_ = 0, l_layers_ = 0;  // the binding stage's full-attention and local layers
  long cap_blocks_ = 0;              // local layers: the blocks a sequence holds at most in each
  long kv_units_ = 0;                // kv_units
  long kv_tokens_ = 0;
  double workspace_ = 0;             // activation workspace per device (bytes)
  int ws_budget_ = 0, ws_batch_ = 0;  // the token budget and batch cap it was sized for
  int block_ = 16;
  int shards_ = 1;  // tensor-parallel ranks per device (data/serving engine.shards_per_device)
  int dense_layers_ = 0, moe_layers_ = 0;
  std::vector<Gemm> attn_gemms_, dense_mlp_gemms_, shared_gemms_;
  double expert_bytes_dev_ = 0;  // one routed expert's weights on one device
  double experts_dev_ = 0;       // routed experts held per device
  double ep_max_z_ = 0;          // expected largest of ep standard normals (the busiest expert group's rows)
  mutable std::vector<double> draft_cache_[2];   // draft_gemm_time: [0] decode, [1] prompt
  mutable std::vector<double> linear_cache_[2];  // [0]: grouped dispatch or token generation, [1]: context encoding
};

}  // namespace xpu
