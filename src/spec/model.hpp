// A transformer architecture as published (Hugging Face config or paper). Dense, MoE and MLA.
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

namespace xpu {

// Query-key pairs of the causal queries at positions first+1 .. first+count, each attending to
// at most `window` keys (window <= 0: the whole context): sum of min(position, window).
inline double causal_pairs(double first, double count, double window) {
  if (count <= 0) return 0;
  const double a = first + 1, b = first + count;
  if (window <= 0 || b <= window) return (a + b) * count / 2;
  if (a > window) return count * window;
  return (a + window) * (window - a + 1) / 2 + (b - window) * window;
}

// The same for chunked local attention (Llama 4): the query at position p attends to the keys of
// its own chunk of `chunk` tokens up to itself, ((p - 1) mod chunk) + 1 of them.
inline double chunked_pairs(double first, double count, double chunk) {
  if (count <= 0) return 0;
  if (chunk <= 0) return causal_pairs(first, count, 0);
  auto upto = [chunk](double n) {  // sum over positions 1 .. n
    const double full = std::floor(n / chunk), r = n - full * chunk;
    return full * chunk * (chunk + 1) / 2 + r * (r + 1) / 2;
  };
  return upto(first + count) - upto(first);
}

struct MoeSpec {
  int experts = 0;          // 0 = dense model
  int top_k = 0;
  long ffn_hidden = 0;      // per expert
  int shared_experts = 0;
  int dense_layers = 0;     // leading layers with a dense MLP of Model::ffn_hidden
  int layer_step = 1;       // every layer_step-th layer (after the dense ones) is MoE
  double routing_imbalance = 1.0;  // dropless routing: busiest expert rank's load / mean (1 = balanced)
  // Group-limited routing (DeepSeek-V2/V3's n_group / topk_group; Megatron-Core's
  // --moe-router-num-groups / --moe-router-group-topk): the experts form router_groups equal
  // blocks and a token's top_k experts come from router_group_topk of them. 0 = unrestricted.
  int router_groups = 0;
  int router_group_topk = 0;
  bool group_limited() const { return router_groups > 1 && router_group_topk > 0 && router_group_topk < router_groups; }
};

// What is wrong with group-limited routing of `groups` blocks, `group_topk` per token, over
// `experts` experts picking `top_k` (empty when nothing): the text, and whether it is the group
// count's fault (else the per-token count's). Both loaders (model TOML, config.json) pass their
// keys for the group count and top_k, which the text names.
struct RouterGroupsProblem {
  bool groups_key = false;
  std::string what;
};
std::optional<RouterGroupsProblem> router_groups_problem(int experts, int top_k, long groups, long group_topk,
                                                         const char* groups_key, const char* top_k_key);

struct MlaSpec {
  int q_lora_rank = 0;      // 0 = no query compression
  int kv_lora_rank = 0;     // 0 = no MLA
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
};

// The most layers a model may have: the deepest published models have about 200; plans take time
// in proportion to layers (uneven pipeline stages), so a typo of 2^31 must not run for hours.
inline constexpr int kMaxLayers = 10000;

struct Model {
  std::string id, name, source, date, file;
  // A config.json's keys behind the context window and the experts, as --explain cites them
  // (empty: the model TOML's max_seq_len and [moe]).
  std::string context_key, moe_keys;
  int layers = 0;
  long hidden = 0;
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  long ffn_hidden = 0;
  long vocab = 0;
  bool gated_mlp = false;
  bool tied_embeddings = false;
  long max_seq_len = 0;
  // Local attention: some layers attend only to nearby keys (sliding_window tokens; 0 = full
  // attention everywhere). Which layers: 1 in sliding_window_every (layers 0, N, 2N, ...; Mistral
  // 1, GPT-OSS 2), or, with global_every > 0, every layer except each global_every-th (layers
  // N-1, 2N-1, ... attend globally; Llama 4 4, Gemma 3 6). chunked_local: a local layer attends
  // within its own fixed chunk of sliding_window tokens (Llama 4's chunked attention), not a
  // sliding window.
  int sliding_window = 0;
  int sliding_window_every = 0;
  int global_every = 0;
  bool chunked_local = false;
  MoeSpec moe;
  MlaSpec mla;
  // Multi-token prediction (DeepSeek-V3 Section 2.2; config.json num_nextn_predict_layers): modules
  // that each predict one more token ahead, every one a transformer layer like the model's last
  // (MoE for DeepSeek-V3), a 2 hidden x hidden projection of the previous depth's output joined
  // with the next token's embedding, two norms, and a pass of the shared output head with its
  // loss. Not in `layers` nor in count_params (DeepSeek's 671e9 excludes them). Training runs them
  // by default (Layout::mtp_layers); serving does not load them.
  int mtp_layers = 0;
  // An FP4 checkpoint that quantizes the routed experts alone (config.json quantization_config
  // quant_method "mxfp4": GPT-OSS keeps its attention, router, embedding and head in bf16). Served
  // at fp4, the other weights stay bf16 and every matmul runs on 16-bit activations: the experts
  // weight-only (W4A16), as vLLM's MXFP4 paths run them by default (Marlin or Triton on Hopper,
  // FlashInfer MXFP4 x BF16 on Blackwell). Model TOML: fp4_scope = "experts" (default "all").
  bool fp4_experts_only = false;
  std::string fp4_scope_source;  // where fp4_experts_only came from (file and key, or a run fact), for explain
  // Values per scale of the model's FP4 checkpoint (MXFP4: 32, one E8M0 byte each; OCP MX v1.0), 0
  // when the checkpoint does not say: the serving family's engine.fp4_scale_block then. TOML
  // fp4_scale_block.
  int fp4_scale_block = 0;
  std::string fp4_scale_block_source;  // where fp4_scale_block came from (file and key), for explain

  bool is_moe() const { return moe.experts > 0; }
  bool is_mla() const { return mla.kv_lora_rank > 0; }
  // Layers with a routed MoE block (closed form of counting is_moe_layer).
  int moe_layer_count() const {
    if (!is_moe()) return 0;
    return (layers - moe.dense_layers + moe.layer_step - 1) / moe.layer_step;
  }
  // Layers with local attention (the window or chunk), and whether layer i is one.
  int window_layer_count() const {
    if (sliding_window <= 0) return 0;
    if (global_every > 0) return layers - layers / global_every;
    if (sliding_window_every <= 0) return 0;
    return (layers + sliding_window_every - 1) / sliding_window_every;
  }
  bool is_window_layer(int i) const {
    if (sliding_window <= 0) return false;
    if (global_every > 0) return (i + 1) % global_every != 0;
    return sliding_window_every > 0 && i % sliding_window_every == 0;
  }
  // Query-key pairs of a local layer for the causal queries at positions first+1 .. first+count.
  double local_pairs(double first, double count) const {
    return chunked_local ? chunked_pairs(first, count, sliding_window) : causal_pairs(first, count, sliding_window);
  }
  // The same model served with full attention on every layer: an engine that does not apply the
  // window or chunk (serve --full-attention; TensorRT-LLM builds Mistral as a Llama model and
  // applies a window only when max_attention_window is set at run time).
  Model with_full_attention() const {
    Model f = *this;
    f.sliding_window = 0;
    f.sliding_window_every = 0;
    f.global_every = 0;
    f.chunked_local = false;
    return f;
  }
  // Keys a local layer reads for a decode step at context ctx: min(ctx, window); chunked, the
  // tokens of the current chunk, which average (chunk + 1) / 2 once the context passes one chunk.
  double local_decode_keys(double ctx) const {
    const double w = sliding_window;
    if (!chunked_local) return std::min(ctx, w);
    return ctx <= w ? ctx : (w + 1) / 2;
  }
  // The same for one decode row whose context, itself included, is q >= 1 tokens: min(q, window),
  // or chunked, its position in its chunk, ((q - 1) mod chunk) + 1 (whose mean past a chunk is the
  // (chunk + 1) / 2 above).
  long local_row_keys(long q) const {
    const long w = sliding_window;
    return chunked_local ? (q - 1) % w + 1 : std::min(q, w);
  }
  bool is_moe_layer(int layer) const {
    return is_moe() && layer >= moe.dense_layers && ((layer - moe.dense_layers) % moe.layer_step) == 0;
  }
};

// Parameter counts (exact, from the architecture).
struct ParamCounts {
  double embedding = 0;      // input embedding
  double head = 0;           // LM head (0 when tied)
  double attention = 0;      // all layers
  double dense_mlp = 0;      // all dense-MLP layers
  double experts = 0;        // all routed experts, all layers
  double shared_experts = 0; // all layers
  double router = 0;
  double norms = 0;
  double total() const { return embedding + head + attention + dense_mlp + experts + shared_experts + router + norms; }
  // Parameters touched per token: routed experts scaled by top_k / experts.
  double active(const Model& m) const;
};
ParamCounts count_params(const Model& m);
// Parameters of one multi-token-prediction module (Model::mtp_layers), the shared embedding and
// output head not counted: a layer like the model's last (attention, its MLP or all its experts
// and router, two norms), the 2 hidden x hidden projection and three norms (the two inputs', its
// final one). DeepSeek-V3: 11.6e9 (HF's 685e9 - 671e9 = 14e9 adds the module's own copies of the
// embedding and head, 2 x 0.93e9).
double mtp_module_params(const Model& m);

}  // namespace xpu
