// A hand-written pipeline layout: which layers each pipeline chunk holds, in Megatron-Core's
// --pipeline-model-parallel-layout syntax (Megatron-Bridge's DeepSeek-V3 recipes use it to take
// layers off the stages that hold the embedding, the loss and the MTP module).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace xpu {

// One chunk (a virtual pipeline stage): its decoder layers, MTP layers, and whether it holds the
// embedding or the loss (output head).
struct PipelineChunk {
  int layers = 0;
  int mtp = 0;
  bool embedding = false, loss = false;
};

// Chunks in forward order: the pp chunks of virtual rank 0 (stages 0 .. pp-1), then virtual rank 1,
// and so on; chunk c runs on stage c mod pp. `text` is the string as given.
struct PipelineLayout {
  std::string text;
  std::vector<PipelineChunk> chunks;
  bool balanced = false;     // built by balanced_pipeline_layout (--pipeline-layout balanced), not written by hand
  double tail_weight = 1.0;  // balanced: the share of the head's and MTP modules' FLOPs it weighed
  double moe_weight = 1.0;   // balanced: the weight of a MoE layer's FLOPs
  bool pending = false;      // --pipeline-layout balanced as asked: evaluate() weighs the balanced layouts and keeps the fastest
  bool even_split = false;   // --pipeline-layout balanced's last candidate: Megatron-Core's even split, written out
  // The string's order, which Megatron-Core checks: E the first symbol, L the last, no decoder
  // layer after an MTP layer.
  bool opens_with_embedding = false, closes_with_loss = false, layer_after_mtp = false;
  int layers() const;
  int mtp() const;
};

// Whether every chunk holds the same number of decoder layers (the even split's chunks, written out).
inline bool uniform_chunks(const PipelineLayout& p) {
  for (const PipelineChunk& c : p.chunks)
    if (c.layers != p.chunks.front().layers) return false;
  return true;
}

// Parses the string: stages split by '|'; symbols E (embedding), t (decoder layer), m (MTP layer),
// L (loss); "x*N" repeats a symbol, "(...)*N" a group; commas and spaces are ignored; a stage may
// be empty. Throws InputError(where, ...) naming the problem and its position.
PipelineLayout parse_pipeline_layout(const std::string& text, const std::string& where);

// What is wrong with a parsed layout for a model of `layers` decoder layers training `mtp` MTP
// layers over `pp` stages (empty when nothing): chunks a multiple of pp, every decoder and MTP
// layer placed once, E opening the string and L closing it (where the evaluator, like Megatron-Core,
// puts them), each once, and as Megatron-Core's validate_layer_layout: the MTP layers after every
// decoder layer, in one stage that is a rank's last virtual chunk.
// The interleaving a layout implies: its stages over pp (which it needs: the string alone does not
// say how many pipeline ranks it folds onto), agreeing with vp where that is given. Throws
// InputError(where, ...) otherwise.
int pipeline_layout_vp(const PipelineLayout& p, std::optional<int> pp, std::optional<int> vp, const std::string& where);

std::optional<std::string> pipeline_layout_problem(const PipelineLayout& p, int layers, int mtp, int pp);

}  // namespace xpu
