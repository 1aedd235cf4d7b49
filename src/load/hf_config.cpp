// Hugging Face config.json -> Model. Recognises Llama/Mistral/Mixtral/Qwen2/Qwen3(-MoE)/
// DeepSeek-V2/V3/GPT-OSS keys and GPT-2 style keys (n_layer, n_embd, n_head, n_inner).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "load/catalog.hpp"
#include "spec/error.hpp"

namespace xpu {

namespace {

using nlohmann::json;

class JsonReader {
 public:
  JsonReader(const json& j, std::string file) : j_(j), file_(std::move(file)) {}
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw InputError(file_ + ": " + key, what);
  }
  bool has(const std::string& k) const { return j_.contains(k) && !j_[k].is_null(); }
  std::optional<long> opt_int(const std::string& k, long min_value = 1) const {
    if (!has(k)) return std::nullopt;
    const json& v = j_[k];
    constexpr long kMax = std::numeric_limits<int>::max();
    // A whole number beyond 64 bits arrives as a double: too large, not "not an integer".
    if (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()) &&
        std::fabs(v.get<double>()) > static_cast<double>(kMax))
      fail(k, "must be at most " + std::to_string(kMax) + ", got " + v.dump());
    if (!v.is_number_integer()) fail(k, "must be an integer");
    // Counts are held as int (as the catalog's are): refuse what would wrap, unsigned too.
    if (v.is_number_unsigned() ? v.get<std::uint64_t>() > static_cast<std::uint64_t>(kMax) : v.get<long>() > kMax)
      fail(k, "must be at most " + std::to_string(kMax) + ", got " + v.dump());
    long x = v.get<long>();
    if (x < min_value) fail(k, "must be at least " + std::to_string(min_value) + ", got " + std::to_string(x));
    return x;
  }
  long req_int(std::initializer_list<const char*> keys) const {
    for (const char* k : keys)
      if (auto v = opt_int(k)) return *v;
    fail(*keys.begin(), "missing (required)");
  }
  std::optional<long> first_int(std::initializer_list<const char*> keys, long min_value = 1) const {
    for (const char* k : keys)
      if (auto v = opt_int(k, min_value)) return v;
    return std::nullopt;
  }
  std::optional<bool> opt_bool(const std::string& k) const {
    if (!has(k)) return std::nullopt;
    if (!j_[k].is_boolean()) fail(k, "must be true or false");
    return j_[k].get<bool>();
  }
  std::optional<std::string> opt_str(const std::string& k) const {
    if (!has(k)) return std::nullopt;
    if (!j_[k].is_string()) fail(k, "must be a string");
    return j_[k].get<std::string>();
  }

 private:
  const json& j_;
  std::string file_;
};

}  // namespace

Model parse_hf_config(const DataFile& f) {
  json j;
  // A key given twice in one object: JSON leaves it open and the parser keeps the last, so a
  // config with two vocab_size keys read one silently; refused, as the TOML reader refuses it.
  std::vector<std::set<std::string>> keys_seen;
  std::string duplicate;
  const json::parser_callback_t track = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys_seen.resize(static_cast<std::size_t>(depth) + 1);
      keys_seen[static_cast<std::size_t>(depth)].clear();
    } else if (event == json::parse_event_t::key && depth >= 1 && duplicate.empty()) {
      auto& seen = keys_seen[static_cast<std::size_t>(depth) - 1];
      if (!seen.insert(parsed.get<std::string>()).second) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  try {
    j = json::parse(f.text, track);
  } catch (const json::exception& e) {  // syntax, or a number beyond a double's range (1e400)
    // The library's text without its "[json.exception.parse_error.101] " tag, and any byte that is
    // not printable ASCII (invalid UTF-8 it quotes back) as \xNN, so the error stays one plain line.
    std::string what = e.what();
    if (!what.empty() && what[0] == '[') {
      const auto close = what.find("] ");
      if (close != std::string::npos) what.erase(0, close + 2);
    }
    const std::string clean = InputError::one_line(what, /*ascii_only=*/true);
    throw InputError(f.path, "malformed JSON: " + clean);
  }
  if (!j.is_object()) throw InputError(f.path, "a config.json must be a JSON object");
  if (!duplicate.empty()) throw InputError(f.path + ": " + duplicate, "given twice in one object (JSON keeps the last silently)");
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  // A multimodal config (Llama 4, Gemma 3, Qwen2.5-VL) nests its language model in text_config:
  // that is the model planned here (the vision encoder is not counted). Keys are then named
  // text_config.<key> in errors.
  std::string file = f.path;
  if (j.contains("text_config") && !j["text_config"].is_object() && !j["text_config"].is_null())
    throw InputError(f.path + ": text_config", "must be an object (the language model's keys)");
  if (!j.contains("num_hidden_layers") && j.contains("text_config") && j["text_config"].is_object()) {
    const json text = j["text_config"];
    j = text;
    file += ": text_config";
  }
  // Keys a config may leave out because its transformers class defaults them: the published
  // Gemma 3 text_config omits vocab_size, head_dim, head counts and the local/global pattern;
  // every Gemma ties its embeddings. Filled in as the class would (transformers Gemma2Config,
  // Gemma3TextConfig), so the model read is the one the config describes.
  const std::string model_type = j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
  const bool gemma = model_type.rfind("gemma", 0) == 0 || arch.find("Gemma") != std::string::npos;
  auto default_to = [&](const char* key, const json& v) {
    if (!j.contains(key) || j[key].is_null()) j[key] = v;
  };
  if (gemma) default_to("tie_word_embeddings", true);
  // transformers FalconConfig: max_position_embeddings 2048 when the config leaves it out (the
  // published Falcon-7B/40B do); the new decoder architecture (40B, 180B) counts its KV heads in
  // num_kv_heads.
  if (model_type == "falcon" || arch == "FalconForCausalLM") {
    default_to("max_position_embeddings", 2048);
    if (j.value("new_decoder_architecture", false) && j.contains("num_kv_heads")) default_to("num_key_value_heads", j["num_kv_heads"]);
  }
  if (model_type == "gemma3_text" || model_type == "gemma3" || arch.find("Gemma3") != std::string::npos) {
    default_to("vocab_size", 262208);
    default_to("head_dim", 256);
    default_to("num_attention_heads", 8);
    default_to("num_key_value_heads", 4);
    default_to("sliding_window", 4096);
    default_to("max_position_embeddings", 131072);
    if (!j.contains("layer_types")) default_to("sliding_window_pattern", 6);
  }
  // Gemma 2 alternates local and global layers, layer 0 local (its class has no key for it).
  const bool gemma2 = model_type == "gemma2" || arch.find("Gemma2") != std::string::npos;
  if (gemma2) {  // transformers Gemma2Config's defaults
    default_to("head_dim", 256);
    default_to("sliding_window", 4096);
    default_to("num_attention_heads", 8);
    default_to("num_key_value_heads", 4);
    default_to("vocab_size", 256000);
    default_to("max_position_embeddings", 8192);
  }
  JsonReader r(j, file);
  // Architectures this model cannot hold are refused rather than read as a Llama-style decoder:
  // state-space (Mamba) layers, alone or beside attention (Jamba, Zamba, Falcon-H1, Nemotron-H),
  // and encoder or encoder-decoder models (BERT, T5, BART, Whisper).
  for (const char* key : {"mamba_d_state", "mamba_d_ssm", "mamba_expand", "mamba_d_conv", "ssm_cfg", "attn_layer_period",
                          "hybrid_override_pattern", "layers_block_type", "state_size"})
    if (r.has(key))
      r.fail(key, "state-space (Mamba) layers are not modelled; xpuplan would read them as attention layers");
  // Recurrent or linear-attention layers listed per block (RecurrentGemma's block_types,
  // MiniMax-Text-01's attn_type_list with 0 for lightning attention): not held either.
  if (j.contains("block_types") && j["block_types"].is_array())
    for (const auto& t : j["block_types"])
      if (!(t.is_string() && t.get<std::string>() == "attention"))
        r.fail("block_types", "a " + t.dump() + " block is not modelled (only attention layers are); xpuplan would read it as attention");
  if (j.contains("attn_type_list") && j["attn_type_list"].is_array())
    for (const auto& t : j["attn_type_list"])
      if (t.is_number() && t.get<double>() == 0)
        r.fail("attn_type_list", "linear-attention layers (type 0) are not modelled; xpuplan would read them as softmax attention");
  {
    static const std::set<std::string> kEncoders = {"bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "electra",
                                                    "distilbert", "albert", "t5", "mt5", "umt5", "bart", "mbart",
                                                    "pegasus", "whisper", "marian", "modernbert"};
    auto ends_with = [&](const char* tail) {
      const std::string t = tail;
      return arch.size() >= t.size() && arch.compare(arch.size() - t.size(), t.size(), t) == 0;
    };
    if (kEncoders.count(model_type) || r.opt_bool("is_encoder_decoder").value_or(false) || ends_with("ForMaskedLM"))
      r.fail(kEncoders.count(model_type) ? "model_type" : r.has("is_encoder_decoder") ? "is_encoder_decoder" : "architectures",
             "'" + (kEncoders.count(model_type) ? model_type : arch.empty() ? std::string("encoder-decoder") : arch) +
                 "' is not a decoder-only language model (encoders and encoder-decoders are not modelled)");
  }
  // Linear-attention layers (Qwen3-Next's Gated DeltaNet: full_attention_interval, linear_* keys)
  // keep a fixed state instead of a KV cache and cost no attention over the context: the model has
  // no such layer, and reading them as softmax attention would overstate both 4x. Refused.
  for (const char* key : {"full_attention_interval", "linear_num_value_heads", "linear_key_head_dim"})
    if (r.has(key))
      r.fail(key, "linear-attention layers (Gated DeltaNet, as Qwen3-Next's) are not modelled; xpuplan would read "
                  "them as softmax attention with a KV cache");
  Model m;
  m.file = f.path;
  m.id = f.path;
  m.source = f.path;
  m.name = arch.empty() ? r.opt_str("model_type").value_or("config.json model") : arch;

  const bool gpt2_style = r.has("n_layer") || r.has("n_embd");
  m.layers = static_cast<int>(r.req_int({"num_hidden_layers", "n_layer", "num_layers"}));
  if (m.layers > kMaxLayers) {
    const char* key = r.has("num_hidden_layers") ? "num_hidden_layers" : r.has("n_layer") ? "n_layer" : "num_layers";
    r.fail(key, "must be at most " + std::to_string(kMaxLayers) + ", got " + std::to_string(m.layers));
  }
  m.hidden = r.req_int({"hidden_size", "n_embd", "d_model"});
  m.heads = static_cast<int>(r.req_int({"num_attention_heads", "n_head"}));
  m.kv_heads = static_cast<int>(r.first_int({"num_key_value_heads", "multi_query_group_num"}).value_or(m.heads));
  if (r.opt_bool("multi_query").value_or(false)) m.kv_heads = 1;
  if (m.heads % m.kv_heads != 0) r.fail("num_key_value_heads", "must divide num_attention_heads");
  if (auto hd = r.opt_int("head_dim")) m.head_dim = static_cast<int>(*hd);
  else {
    if (m.hidden % m.heads != 0) r.fail("head_dim", "missing and hidden_size is not a multiple of num_attention_heads");
    m.head_dim = static_cast<int>(m.hidden / m.heads);
  }
  m.vocab = r.req_int({"vocab_size", "padded_vocab_size"});
  // The context window under the names configs give it (Baichuan: model_max_length; MPT:
  // max_seq_len). ALiBi models (BLOOM, MPT with alibi) have no fixed window: none is checked.
  static const std::initializer_list<const char*> kContextKeys = {
      "max_position_embeddings", "n_positions", "seq_length", "model_max_length", "max_sequence_length", "max_seq_len", "n_ctx"};
  m.max_seq_len = r.first_int(kContextKeys).value_or(0);
  for (const char* k : kContextKeys)
    if (m.max_seq_len > 0 && m.context_key.empty() && r.has(k)) m.context_key = k;
  const bool alibi = model_type == "bloom" || arch.rfind("Bloom", 0) == 0 || r.opt_bool("alibi").value_or(false) ||
                     (j.contains("attn_config") && j["attn_config"].is_object() && j["attn_config"].value("alibi", false)) ||
                     (j.contains("position_embedding_type") && j["position_embedding_type"] == "alibi");
  m.tied_embeddings = r.opt_bool("tie_word_embeddings").value_or(gpt2_style);
  // Multi-token prediction modules (DeepSeek-V3, GLM-4.5, MiMo): trained by default, not served.
  m.mtp_layers = static_cast<int>(r.opt_int("num_nextn_predict_layers", 0).value_or(0));
  if (m.mtp_layers > m.layers) r.fail("num_nextn_predict_layers", "must be at most num_hidden_layers (" + std::to_string(m.layers) + ")");

  const char* act_key = r.has("hidden_act") ? "hidden_act" : "activation_function";
  const std::string act = r.opt_str("hidden_act").value_or(r.opt_str("activation_function").value_or(gpt2_style ? "gelu_new" : "silu"));
  // transformers' ACT2FN names (and the gated spellings some configs use): another is a typo.
  static const std::set<std::string> kActivations = {
      "silu", "swish", "swiglu", "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python", "gelu_accurate",
      "gelu_10", "quick_gelu", "geglu", "gegelu", "relu", "relu2", "relu6", "leaky_relu", "prelu", "tanh", "sigmoid",
      "mish", "laplace", "linear", "xielu"};
  if (!kActivations.count(act))
    r.fail(act_key, "unknown activation '" + act + "' (transformers' names: silu, gelu, gelu_new, gelu_pytorch_tanh, relu, relu2, ...)");
  if (gpt2_style) {
    // GPT-2 keys with a gated activation (Jais: swiglu) have three matrices.
    m.gated_mlp = act == "swiglu" || act == "geglu";
    m.ffn_hidden = r.first_int({"n_inner"}).value_or(4 * m.hidden);
  } else {
    // FalconConfig leaves ffn_hidden_size out for its 4 x hidden (Falcon-7B/40B publish none).
    if (arch == "FalconForCausalLM" && !r.has("intermediate_size") && !r.has("ffn_hidden_size") && !r.has("ffn_dim"))
      m.ffn_hidden = 4 * m.hidden;
    else
      m.ffn_hidden = r.req_int({"intermediate_size", "ffn_hidden_size", "ffn_dim"});
    // SwiGLU/GeGLU families use three matrices; plain gelu/relu2 models use two. The
    // architecture decides where it is known: Gemma's GeGLU and StarCoder2's plain MLP both name
    // gelu_pytorch_tanh. Otherwise a SiLU/SwiGLU activation means gated.
    auto arch_has = [&](std::initializer_list<const char*> names) {
      for (const char* n : names)
        if (arch.find(n) != std::string::npos) return true;
      return false;
    };
    const bool gated_arch = arch_has({"Llama", "Mistral", "Mixtral", "Qwen", "Deepseek", "DeepSeek", "Gemma", "GptOss", "Phi3"});
    // Plain-MLP architectures by their exact names (FalconH1ForCausalLM is SwiGLU: "Falcon" alone
    // would catch it).
    static const std::set<std::string> kPlain = {"Starcoder2ForCausalLM", "GPTBigCodeForCausalLM", "GPTNeoXForCausalLM",
                                                 "GPT2LMHeadModel", "GPTJForCausalLM", "FalconForCausalLM", "OPTForCausalLM",
                                                 "BloomForCausalLM", "MPTForCausalLM", "PhiForCausalLM"};
    const bool plain_arch = kPlain.count(arch) > 0;
    m.gated_mlp = gated_arch || (!plain_arch && (act == "silu" || act == "swiglu"));
  }
  if (m.ffn_hidden <= 0) r.fail("intermediate_size", "must be positive");

  // Mixture of experts. The expert count's key by family (a config giving top-k or an expert width
  // without it is a mixture of experts missing its count, not a dense model).
  const bool deepseek = model_type.rfind("deepseek", 0) == 0 || arch.find("Deepseek") != std::string::npos ||
                        arch.find("DeepSeek") != std::string::npos;
  const bool qwen_moe = model_type.rfind("qwen", 0) == 0 || arch.find("Qwen") != std::string::npos;
  const char* count_key = deepseek ? "n_routed_experts" : qwen_moe ? "num_experts" : "num_local_experts";
  if (!r.first_int({"num_local_experts", "n_routed_experts", "num_experts"}))
    for (const char* key : {"num_experts_per_tok", "num_experts_per_token", "moe_topk", "moe_intermediate_size"})
      if (r.opt_int(key, 0).value_or(0) > 0)
        r.fail(count_key, std::string("missing for a mixture-of-experts config (") + key + " is given)");
  if (auto e = r.first_int({"num_local_experts", "n_routed_experts", "num_experts"})) {
    m.moe.experts = static_cast<int>(*e);
    if (m.moe.experts < 2)
      r.fail(r.has("num_local_experts") ? "num_local_experts" : r.has("n_routed_experts") ? "n_routed_experts" : "num_experts",
             "must be at least 2 for a mixture of experts, got " + std::to_string(m.moe.experts));
    m.moe.top_k = static_cast<int>(r.first_int({"num_experts_per_tok", "num_experts_per_token", "moe_topk"}).value_or(0));
    if (m.moe.top_k < 1) r.fail("num_experts_per_tok", "missing for a mixture-of-experts config");
    if (m.moe.top_k > m.moe.experts) r.fail("num_experts_per_tok", "exceeds the number of experts");
    // DeepSeek and Qwen MoE give an expert's width apart from the dense intermediate_size (8-9x
    // wider); Mixtral, GPT-OSS and Llama 4 use intermediate_size for the experts.
    if ((deepseek || qwen_moe) && !r.has("moe_intermediate_size"))
      r.fail("moe_intermediate_size", "missing (an expert's width; intermediate_size is the dense layers')");
    m.moe.ffn_hidden = r.first_int({"moe_intermediate_size"}).value_or(m.ffn_hidden);
    m.moe.shared_experts = static_cast<int>(r.first_int({"n_shared_experts", "num_shared_experts"}, 0).value_or(0));
    // Qwen2-MoE / Qwen3-Next give the shared expert's width instead: held as that many experts'
    // widths (Qwen2-57B-A14B: 20,480 = 8 x 2,560).
    if (auto w = r.opt_int("shared_expert_intermediate_size", 0); w && *w > 0 && m.moe.shared_experts == 0) {
      if (*w % m.moe.ffn_hidden != 0)
        r.fail("shared_expert_intermediate_size", std::to_string(*w) + " is not a multiple of the expert width " +
                                                      std::to_string(m.moe.ffn_hidden) + " (shared experts are held in expert widths)");
      m.moe.shared_experts = static_cast<int>(*w / m.moe.ffn_hidden);
    }
    // Group-limited routing (DeepSeek-V2/V3: n_group groups of experts, topk_group of them per token).
    // DeepSeek-V2's topk_method "greedy" ignores the groups; "group_limited_greedy" (V2) and
    // "noaux_tc" (V3) use them.
    const auto topk_method = r.opt_str("topk_method");
    if (auto g = r.opt_int("n_group", 1); g && *g > 1 && (!topk_method || *topk_method != "greedy")) {
      const auto tg = r.opt_int("topk_group", 1);
      if (!tg) r.fail("topk_group", "missing, and n_group gives group-limited routing");
      if (auto bad = router_groups_problem(m.moe.experts, m.moe.top_k, *g, *tg, "n_group", "num_experts_per_tok"))
        r.fail(bad->groups_key ? "n_group" : "topk_group", bad->what);
      m.moe.router_groups = static_cast<int>(*g);
      m.moe.router_group_topk = static_cast<int>(*tg);
    }
    // Llama 4 (model_type llama4_text): intermediate_size is an expert's width and
    // intermediate_size_mlp the dense layers'; every MoE layer has one shared expert.
    if (r.has("intermediate_size_mlp")) {
      m.moe.ffn_hidden = m.ffn_hidden;
      m.ffn_hidden = r.req_int({"intermediate_size_mlp"});
      if (!r.has("n_shared_experts") && !r.has("num_shared_experts")) m.moe.shared_experts = 1;
    }
    // Which layers are MoE, as each transformers class places them:
    //   DeepSeek (moe_layer_freq F, first_k_dense_replace K): i >= K and i % F == 0;
    //   Qwen2/3-MoE (decoder_sparse_step N, mlp_only_layers L): i not in L and (i + 1) % N == 0;
    //   Llama 4 (interleave_moe_layer_step N): (i + 1) % N == 0 (and i >= K when given);
    //   others: every layer from K.
    // Model holds "every layer_step-th from dense_layers": the set is matched to that, or refused.
    const long k = r.first_int({"first_k_dense_replace"}, 0).value_or(0);
    const char* pattern_key = "first_k_dense_replace";
    std::vector<bool> moe_layer(static_cast<std::size_t>(m.layers), true);
    std::set<long> mlp_only;
    if (r.has("mlp_only_layers")) {
      const json& a = j["mlp_only_layers"];
      if (!a.is_array()) r.fail("mlp_only_layers", "must be a list of layer indices");
      for (const auto& x : a) {
        if (!x.is_number_integer() || x.get<long>() < 0 || x.get<long>() >= m.layers)
          r.fail("mlp_only_layers", "must list layer indices from 0 to " + std::to_string(m.layers - 1) + ", got " + x.dump());
        mlp_only.insert(x.get<long>());
      }
      if (!mlp_only.empty()) pattern_key = "mlp_only_layers";
    }
    const auto freq = r.opt_int("moe_layer_freq");
    const auto step = freq ? std::nullopt : r.first_int({"decoder_sparse_step", "interleave_moe_layer_step"});
    if (freq && *freq > 1) pattern_key = "moe_layer_freq";
    if (step && *step > 1) pattern_key = r.has("decoder_sparse_step") ? "decoder_sparse_step" : "interleave_moe_layer_step";
    for (int i = 0; i < m.layers; ++i)
      moe_layer[static_cast<std::size_t>(i)] = i >= k && !mlp_only.count(i) && (!freq || i % *freq == 0) && (!step || (i + 1) % *step == 0);
    // The keys this config gave the experts, as --explain cites them.
    for (const char* key : {"num_local_experts", "n_routed_experts", "num_experts", "num_experts_per_tok", "num_experts_per_token",
                            "moe_topk", "moe_intermediate_size", "intermediate_size_mlp", "n_shared_experts", "num_shared_experts",
                            "shared_expert_intermediate_size", "first_k_dense_replace", "moe_layer_freq", "decoder_sparse_step",
                            "interleave_moe_layer_step", "mlp_only_layers"})
      if (r.has(key)) m.moe_keys += (m.moe_keys.empty() ? "" : ", ") + std::string(key);
    const auto first = std::find(moe_layer.begin(), moe_layer.end(), true);
    if (first == moe_layer.end()) {
      // Every layer dense (first_k_dense_replace >= num_hidden_layers, which the config allows):
      // the experts are never used, and the model is the dense one.
      m.moe = {};
    } else {
      m.moe.dense_layers = static_cast<int>(first - moe_layer.begin());
      const auto second = std::find(first + 1, moe_layer.end(), true);
      m.moe.layer_step = second == moe_layer.end() ? m.layers : static_cast<int>(second - first);
      for (int i = 0; i < m.layers; ++i)
        if (m.is_moe_layer(i) != moe_layer[static_cast<std::size_t>(i)])
          r.fail(pattern_key, "mixture-of-experts layers in a pattern xpuplan cannot hold (every N-th layer from the first "
                              "MoE layer; dense layers elsewhere than before it)");
    }
  }
  // Multi-head latent attention (DeepSeek-V2/V3).
  if (!r.has("kv_lora_rank"))
    for (const char* key : {"qk_rope_head_dim", "qk_nope_head_dim", "q_lora_rank"})
      if (r.has(key)) r.fail("kv_lora_rank", std::string("missing, and ") + key + " gives multi-head latent attention");
  if (auto kv = r.opt_int("kv_lora_rank")) {
    m.mla.kv_lora_rank = static_cast<int>(*kv);
    m.mla.q_lora_rank = static_cast<int>(r.opt_int("q_lora_rank", 0).value_or(0));
    m.mla.qk_nope_head_dim = static_cast<int>(r.req_int({"qk_nope_head_dim"}));
    m.mla.qk_rope_head_dim = static_cast<int>(r.req_int({"qk_rope_head_dim"}));
    m.mla.v_head_dim = static_cast<int>(r.req_int({"v_head_dim"}));
    // MLA has no single head dimension (q/k: qk_nope + qk_rope, v: v_head_dim); the catalog's
    // MLA models hold v_head_dim there, and so does a config (its head_dim, when transformers
    // writes one, is qk_rope_head_dim), so that a model reads the same from either.
    m.head_dim = m.mla.v_head_dim;
  }
  // Local attention. Llama 4: attention_chunk_size, with no_rope_layers marking the global layers
  // (0). Others: sliding_window, on every layer, or on the layers layer_types names
  // sliding_attention (GPT-OSS, Qwen3), or all but each sliding_window_pattern-th (Gemma 3).
  // The layers are matched to one of the two patterns Model holds; another is refused.
  std::vector<bool> local;  // per layer, when the config lists them
  const char* local_key = nullptr;  // the key that gave them, when not layer_types / no_rope_layers
  auto list_of = [&](const char* key, auto is_local) {
    const json& a = j[key];
    if (!a.is_array() || a.size() != static_cast<std::size_t>(m.layers))
      r.fail(key, "must list one entry per layer (" + std::to_string(m.layers) + ")");
    for (const auto& t : a) {
      // transformers' attention layer types; another (a state-space "mamba" layer) is not held.
      if (std::string(key) == "layer_types" &&
          (!t.is_string() || (t != "full_attention" && t != "sliding_attention" && t != "chunked_attention")))
        r.fail(key, "unknown layer type " + t.dump() + " (full_attention, sliding_attention or chunked_attention)");
      local.push_back(is_local(t));
    }
  };
  if (auto c = r.opt_int("attention_chunk_size", 0); c && *c > 0) {
    m.sliding_window = static_cast<int>(*c);
    m.chunked_local = true;
    // transformers' Llama4TextConfig: an absent or empty no_rope_layers means every
    // no_rope_layer_interval-th layer (default 4) is global, the published configs' case.
    if (r.has("no_rope_layers") && j["no_rope_layers"].is_array() && !j["no_rope_layers"].empty())
      list_of("no_rope_layers", [](const json& t) { return t.is_number() && t.get<double>() != 0; });
    else if (r.has("layer_types"))
      list_of("layer_types", [](const json& t) { return t.is_string() && t.get<std::string>() == "chunked_attention"; });
    else {
      const long every = r.opt_int("no_rope_layer_interval").value_or(4);
      for (int i = 0; i < m.layers; ++i) local.push_back((i + 1) % every != 0);
    }
  } else if (auto sw = r.opt_int("sliding_window", 0);
             sw && *sw > 0 && (!r.has("use_sliding_window") || r.opt_bool("use_sliding_window").value_or(true))) {
    m.sliding_window = static_cast<int>(*sw);
    if (r.has("layer_types"))
      list_of("layer_types", [](const json& t) { return t.is_string() && t.get<std::string>() == "sliding_attention"; });
    else if (auto below = r.opt_int("max_window_layers", 0); below && r.opt_bool("use_sliding_window").value_or(false)) {
      // Qwen2: layers from max_window_layers up use the window, the ones below attend in full.
      local_key = "max_window_layers";
      for (int i = 0; i < m.layers; ++i) local.push_back(i >= *below);
    }
    else if (auto every = r.opt_int("sliding_window_pattern"))
      for (int i = 0; i < m.layers; ++i) local.push_back((i + 1) % *every != 0);
    else if (gemma2)
      for (int i = 0; i < m.layers; ++i) local.push_back(i % 2 == 0);
  }
  if (m.sliding_window > 0) {
    m.sliding_window_every = 1;
    if (!local.empty()) {
      auto matches = [&](const Model& c) {
        for (int i = 0; i < m.layers; ++i)
          if (c.is_window_layer(i) != local[static_cast<std::size_t>(i)]) return false;
        return true;
      };
      const long n_local = std::count(local.begin(), local.end(), true);
      bool found = n_local == 0;
      if (n_local == 0) m.sliding_window = 0;  // every layer global
      for (int n = 1; !found && n <= m.layers; ++n) {
        Model c = m;
        c.sliding_window_every = n;
        c.global_every = 0;
        if (matches(c)) { m = c; found = true; break; }
        c.sliding_window_every = 0;
        c.global_every = n + 1;
        if (n + 1 <= m.layers && matches(c)) { m = c; found = true; }
      }
      if (!found)
        r.fail(local_key ? local_key : m.chunked_local ? "no_rope_layers" : "layer_types",
               "local layers in a pattern xpuplan cannot hold (1 in N from layer 0, or all but each N-th)");
    }
  }
  // An MXFP4 checkpoint (GPT-OSS) quantizes the routed experts alone: its quantization_config
  // leaves the attention, router, embedding and head out (modules_to_not_convert).
  if (j.contains("quantization_config") && j["quantization_config"].is_object() && j["quantization_config"].contains("quant_method")) {
    const json& method = j["quantization_config"]["quant_method"];
    if (!method.is_string()) r.fail("quantization_config.quant_method", "must be a string");
    if (m.is_moe() && method.get<std::string>() == "mxfp4") {
      m.fp4_experts_only = true;
      m.fp4_scope_source = m.file + ": quantization_config.quant_method mxfp4";
      m.fp4_scale_block = 32;  // OCP MX: one shared scale per 32 values
      m.fp4_scale_block_source = m.file + ": quantization_config.quant_method mxfp4 (OCP MX: a scale per 32 values)";
    }
  }
  // Without a context window, sequences of any length would be planned and served unchecked.
  if (m.max_seq_len == 0 && !alibi)
    r.fail("max_position_embeddings", "missing (the context window, which serve checks request lengths against and train, search and compare note a longer --seq-len against; "
                                      "ALiBi models, which have none, say alibi)");
  return m;
}

}  // namespace xpu
