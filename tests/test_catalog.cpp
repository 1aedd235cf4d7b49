// The built-in catalog (data/ compiled in) and the Hugging Face config.json loader.
#include <gtest/gtest.h>

#include <cstring>

#include <cmath>
#include <set>

#include "load/catalog.hpp"
#include "spec/model.hpp"
#include "test_common.hpp"

namespace xpu {
namespace {

using test::builtin;
using test::source_path;

// ---- the built-in catalog ----

TEST(Catalog, BuiltinLoads) {
  // Parsing every embedded file succeeds and yields a non-empty catalog of each kind.
  const Catalog c = build_catalog(builtin_data_files());
  EXPECT_FALSE(c.chips.empty());
  EXPECT_FALSE(c.systems.empty());
  EXPECT_FALSE(c.models.empty());
  // Every chip has its calibration (one calibration file per chip).
  for (const auto& [id, chip] : c.chips) EXPECT_TRUE(c.calibrations.contains(id)) << id << " has no calibration";
}

TEST(Catalog, CopiedValuesEqualTheirSources) {
  // A value one file takes from another's fit ("taken from the Blackwell training fit
  // (data/calibration/b200.toml ...)") equals that file's current value: after later refits
  // Hopper's alltoall cost had stayed at 751.5 us against Blackwell's 766.7 us, and two serving
  // files' expert factor at 1.330 against Hopper's 1.263.
  auto named_file = [](const std::string& source, const std::string& folder) {
    const auto at = source.find(folder);
    if (at == std::string::npos) return std::string();
    const auto end = source.find(".toml", at);
    return end == std::string::npos ? std::string() : source.substr(at, end + 5 - at);
  };
  auto file_text = [](const std::string& path) -> const DataFile* {
    for (const auto& d : builtin_data_files())
      if (d.path == path) return &d;
    return nullptr;
  };
  int checked = 0;
  for (const auto& d : builtin_data_files()) {
    if (d.path.rfind("data/calibration/", 0) == 0) {
      const Calibration c = parse_calibration(d);
      if (c.moe_alltoall_source.empty()) continue;
      const std::string from = named_file(c.moe_alltoall_source, "data/calibration/");
      const DataFile* f = file_text(from);
      ASSERT_NE(f, nullptr) << d.path << " names " << from;
      EXPECT_DOUBLE_EQ(c.moe_alltoall_overhead.v, parse_calibration(*f).moe_alltoall_overhead.v) << d.path << " from " << from;
      ++checked;
    } else if (d.path.rfind("data/serving/", 0) == 0) {
      std::vector<std::string> chips;
      const ServingCalibration sv = parse_serving(d, &chips);
      if (sv.moe_expert_source.empty()) continue;
      const std::string from = named_file(sv.moe_expert_source, "data/serving/");
      const DataFile* f = file_text(from);
      ASSERT_NE(f, nullptr) << d.path << " names " << from;
      std::vector<std::string> other;
      EXPECT_DOUBLE_EQ(sv.moe_expert_factor, parse_serving(*f, &other).moe_expert_factor) << d.path << " from " << from;
      ++checked;
    }
  }
  EXPECT_GE(checked, 5);  // h100, h200, h800; nvidia-blackwell, nvidia-ampere-volta
}

TEST(Catalog, HasEverySystemOfTheValidationFormat) {
  // The ids of validation/FORMAT.md, table "Devices and systems".
  const char* ids[] = {"dgx2-v100", "dgx-a100",   "dgx-a100-40gb", "dgx-h100",  "p5",         "dgx-h800",
                       "hgx-h200",  "dgx-b200",   "gb200-nvl72",   "gb300-nvl72", "mi300x-x8", "mi325x-x8",
                       "mi355x-x8", "gaudi2-x8",  "gaudi3-x8",     "trn1-32xl", "trn2-48xl",  "trn2-ultraserver",
                       "trn3-ultraserver", "inf2-48xl", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "tpu7x"};
  for (const char* id : ids) EXPECT_TRUE(builtin().systems.contains(id)) << "missing system " << id;
}

TEST(Catalog, HasTheReferenceModels) {
  // The models the validation tables and the docs refer to by id.
  const char* ids[] = {"gpt3-175b",    "llama2-7b",     "llama2-13b",     "llama2-70b",     "llama3-8b",
                       "llama3-70b",   "llama3.1-405b", "mixtral-8x7b",   "mixtral-8x22b",  "deepseek-v3",
                       "nemotron4-340b", "qwen3-235b-a22b", "gpt-oss-120b", "bloom-176b"};
  for (const char* id : ids) EXPECT_TRUE(builtin().models.contains(id)) << "missing model " << id;
}

TEST(Catalog, SystemsResolveChipAndCalibration) {
  // Each system carries the chip it names and that chip's calibration.
  for (const auto& [id, s] : builtin().systems) {
    EXPECT_EQ(s.id, id);
    EXPECT_EQ(s.chip.id, s.chip_id) << id;
    EXPECT_EQ(s.calib.id, s.chip_id) << id;
    EXPECT_GE(s.scale_up.size, 1) << id;
    EXPECT_GT(s.scale_up.bandwidth.v, 0) << id;
    EXPECT_GT(s.scale_out.bandwidth.v, 0) << id;
    EXPECT_TRUE(s.peak(Precision::bf16) || s.peak(Precision::fp16)) << id;
  }
}

TEST(Catalog, H100FiguresFromTheDataFile) {
  // data/chips/h100-sxm.toml: bf16 "989.4 TFLOP/s", fp8 "1978.9 TFLOP/s", "80 GB", "3.35 TB/s", "700 W"; no fp4 key.
  const Chip& h = builtin().chips.at("h100-sxm");
  ASSERT_TRUE(h.peak_at(Precision::bf16));
  EXPECT_DOUBLE_EQ(h.peak_at(Precision::bf16)->v, 989.4e12);
  ASSERT_TRUE(h.peak_at(Precision::fp8));
  EXPECT_DOUBLE_EQ(h.peak_at(Precision::fp8)->v, 1978.9e12);
  EXPECT_FALSE(h.peak_at(Precision::fp4));
  EXPECT_DOUBLE_EQ(h.hbm_capacity.v, 81559.0 * 1024 * 1024);  // "81559 MiB", nvidia-smi's total
  EXPECT_DOUBLE_EQ(h.hbm_bandwidth.v, 3.35e12);
  ASSERT_TRUE(h.tdp);
  EXPECT_DOUBLE_EQ(h.tdp->v, 700.0);
}

TEST(Catalog, DgxH100Tiers) {
  // data/systems/dgx-h100.toml: 8 GPUs on an NVSwitch at "450 GB/s", NICs "400 Gb/s" = 50e9 B/s per GPU.
  const System& s = builtin().system("dgx-h100");
  EXPECT_EQ(s.devices_per_chip, 1);
  EXPECT_EQ(s.scale_up.size, 8);
  EXPECT_EQ(s.scale_up.topology, Topology::switched);
  EXPECT_DOUBLE_EQ(s.scale_up.bandwidth.v, 450e9);
  EXPECT_DOUBLE_EQ(s.scale_out.bandwidth.v, 50e9);
  // One GPU per chip: per-device figures equal the chip's.
  EXPECT_DOUBLE_EQ(s.peak(Precision::bf16)->v, 989.4e12);
  EXPECT_DOUBLE_EQ(s.hbm_capacity().v, 81559.0 * 1024 * 1024);
}

TEST(Catalog, Trn1DeviceIsHalfAChip) {
  // trn1-32xl counts NeuronCores: devices_per_chip 2, so per-device peak, HBM and bandwidth are chip / 2.
  const System& s = builtin().system("trn1-32xl");
  ASSERT_EQ(s.devices_per_chip, 2);
  ASSERT_TRUE(s.chip.peak_at(Precision::bf16));
  EXPECT_DOUBLE_EQ(s.peak(Precision::bf16)->v, s.chip.peak_at(Precision::bf16)->v / 2);
  EXPECT_DOUBLE_EQ(s.hbm_capacity().v, s.chip.hbm_capacity.v / 2);
  EXPECT_DOUBLE_EQ(s.hbm_bandwidth().v, s.chip.hbm_bandwidth.v / 2);
  // Trainium1: 190 TFLOP/s bf16 per chip -> 95 TFLOP/s per NeuronCore.
  EXPECT_DOUBLE_EQ(s.peak(Precision::bf16)->v, 95e12);
}

TEST(Catalog, FilesAreSortedByTheirOwnFolder) {
  // A catalog copied under a path that holds "models/" or "chips/" (/home/me/models/data) reads
  // as the built-in one: only a file's own folder says what it is (it read every file as a model).
  std::vector<DataFile> moved = builtin_data_files();
  for (auto& f : moved) f.path = "/home/me/models/my-chips/" + f.path;
  const Catalog c = build_catalog(moved);
  EXPECT_EQ(c.systems.size(), builtin().systems.size());
  EXPECT_EQ(c.models.size(), builtin().models.size());
  // At any depth below a catalog folder (data/models/qwen/x.toml is a model).
  std::vector<DataFile> nested = builtin_data_files();
  for (auto& f : nested)
    if (f.path == "data/models/llama3-8b.toml") f.path = "data/models/meta/llama3-8b.toml";
  EXPECT_EQ(build_catalog(nested, "data").models.size(), builtin().models.size());
  // Not above the catalog's own directory: under /home/me/models/data/, a file in system/ is in
  // no catalog folder (the models/ above the root does not count).
  std::vector<DataFile> above = builtin_data_files();
  for (auto& f : above) f.path = "/home/me/models/" + f.path;
  above.push_back({"/home/me/models/data/system/x.toml", "id = \"x\"\n"});
  EXPECT_THROW((void)build_catalog(above, "/home/me/models/data"), InputError);
  // A .toml outside the catalog folders is an error naming it (it was skipped without a word).
  std::vector<DataFile> stray = builtin_data_files();
  stray.push_back({"data/system/dgx-h900.toml", "id = \"dgx-h900\"\n"});
  try {
    (void)build_catalog(stray);
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where(), "data/system/dgx-h900.toml");
    EXPECT_NE(std::string(e.what()).find("is not in a catalog folder"), std::string::npos) << e.what();
  }
}

TEST(Catalog, DiskCopyMatchesTheEmbeddedOne) {
  // read_data_dir(<repo>/data) reads the same files the build embedded: same count, same ids.
  const auto disk = read_data_dir(source_path("data"));
  EXPECT_EQ(disk.size(), builtin_data_files().size());
  const Catalog c = build_catalog(disk);
  std::set<std::string> a, b;
  for (const auto& [id, s] : c.systems) a.insert(id);
  for (const auto& [id, s] : builtin().systems) b.insert(id);
  EXPECT_EQ(a, b);
  EXPECT_EQ(c.models.size(), builtin().models.size());
  EXPECT_EQ(c.chips.size(), builtin().chips.size());
}

TEST(Catalog, ResolveByIdOrPath) {
  // --model llama3-8b is the catalog entry; a path ending in .json goes through the HF loader.
  const Model& byid = resolve_model(builtin(), "llama3-8b");
  EXPECT_EQ(byid.id, "llama3-8b");
  const Model byjson = resolve_model(builtin(), source_path("tests/data/hf/llama3-8b.json"));
  EXPECT_EQ(byjson.layers, 32);
  // --system: a path to a system TOML resolves its chip from the catalog.
  const System s = resolve_system(builtin(), source_path("data/systems/dgx-h100.toml"));
  EXPECT_EQ(s.chip.id, "h100-sxm");
  EXPECT_EQ(s.calib.id, "h100-sxm");
}

// ---- parameter counts against published totals ----

// |count - published| <= 2% of published.
void expect_within_2pct(double count, double published, const char* what) {
  EXPECT_LE(std::fabs(count - published), 0.02 * published) << what << ": count " << count << " vs published " << published;
}

TEST(ParamCount, DenseModelsMatchPublishedTotals) {
  // Each count within 2% of the published total.
  const auto& m = builtin().models;
  // Meta model cards / HF safetensors totals.
  expect_within_2pct(count_params(m.at("llama3-70b")).total(), 70.6e9, "llama3-70b");
  expect_within_2pct(count_params(m.at("llama3-8b")).total(), 8.03e9, "llama3-8b");
  expect_within_2pct(count_params(m.at("llama2-7b")).total(), 6.74e9, "llama2-7b");
  expect_within_2pct(count_params(m.at("llama2-13b")).total(), 13.0e9, "llama2-13b");
  expect_within_2pct(count_params(m.at("llama2-70b")).total(), 69.0e9, "llama2-70b");
  expect_within_2pct(count_params(m.at("llama3.1-405b")).total(), 405.9e9, "llama3.1-405b");
  // GPT-3 paper 175B; BLOOM 176.2B; Nemotron-4 340B (341B in the tech report table).
  expect_within_2pct(count_params(m.at("gpt3-175b")).total(), 175e9, "gpt3-175b");
  expect_within_2pct(count_params(m.at("bloom-176b")).total(), 176.2e9, "bloom-176b");
  expect_within_2pct(count_params(m.at("nemotron4-340b")).total(), 341e9, "nemotron4-340b");
}

TEST(ParamCount, MoeTotalsAndActive) {
  // Totals and active (routed experts x top_k / experts) within 2% of the published figures.
  const auto& m = builtin().models;
  // Mixtral 8x7B: 46.7B total, 12.9B active (2 of 8 experts).
  const Model& mx = m.at("mixtral-8x7b");
  expect_within_2pct(count_params(mx).total(), 46.7e9, "mixtral-8x7b total");
  expect_within_2pct(count_params(mx).active(mx), 12.9e9, "mixtral-8x7b active");
  // Mixtral 8x22B: 141B total, 39B active.
  const Model& mx22 = m.at("mixtral-8x22b");
  expect_within_2pct(count_params(mx22).total(), 141e9, "mixtral-8x22b total");
  expect_within_2pct(count_params(mx22).active(mx22), 39e9, "mixtral-8x22b active");
  // DeepSeek-V3: 671B total (main model, without the MTP module), 37B active.
  const Model& ds = m.at("deepseek-v3");
  expect_within_2pct(count_params(ds).total(), 671e9, "deepseek-v3 total");
  expect_within_2pct(count_params(ds).active(ds), 37e9, "deepseek-v3 active");
  // Qwen3-235B-A22B: 235B total, 22B active.
  const Model& q = m.at("qwen3-235b-a22b");
  expect_within_2pct(count_params(q).total(), 235e9, "qwen3 total");
  expect_within_2pct(count_params(q).active(q), 22e9, "qwen3 active");
  // gpt-oss-120b: 116.8B total (model card table).
  expect_within_2pct(count_params(m.at("gpt-oss-120b")).total(), 116.8e9, "gpt-oss-120b total");
  // Kimi K2: 1T total, 32B activated (Moonshot); HF lists 1.03T.
  const Model& k2 = m.at("kimi-k2");
  expect_within_2pct(count_params(k2).total(), 1.03e12, "kimi-k2 total");
  expect_within_2pct(count_params(k2).active(k2), 32.6e9, "kimi-k2 active");
  // Llama 4 Maverick: 400B total, 17B active, MoE in every second layer.
  const Model& mav = m.at("llama4-maverick-17b-128e");
  EXPECT_EQ(mav.moe_layer_count(), 24);
  EXPECT_FALSE(mav.is_moe_layer(0));
  EXPECT_TRUE(mav.is_moe_layer(47));
  expect_within_2pct(count_params(mav).total(), 400e9, "llama4-maverick total");
  expect_within_2pct(count_params(mav).active(mav), 17e9, "llama4-maverick active");
  // Qwen3-32B: 32.8B; Qwen3-30B-A3B: 30.5B total, 3.3B active.
  expect_within_2pct(count_params(m.at("qwen3-32b")).total(), 32.8e9, "qwen3-32b");
  const Model& q30 = m.at("qwen3-30b-a3b");
  expect_within_2pct(count_params(q30).total(), 30.5e9, "qwen3-30b-a3b total");
  expect_within_2pct(count_params(q30).active(q30), 3.3e9, "qwen3-30b-a3b active");
}

TEST(ParamCount, PartsOfLlama3_8b) {
  // Llama 3 8B: h = 4096, L = 32, heads 32 x 128, kv 8 x 128, ffn 14336 (SwiGLU, 3 matrices), V = 128256, untied.
  const ParamCounts p = count_params(builtin().model("llama3-8b"));
  const double h = 4096, L = 32, V = 128256, f = 14336;
  // embedding = head = V x h.
  EXPECT_DOUBLE_EQ(p.embedding, V * h);
  EXPECT_DOUBLE_EQ(p.head, V * h);
  // attention per layer: q (h x 4096) + k, v (h x 1024 each) + o (4096 x h) = h x 10240.
  EXPECT_DOUBLE_EQ(p.attention, L * h * (4096 + 2 * 1024 + 4096));
  // MLP per layer: 3 x h x ffn.
  EXPECT_DOUBLE_EQ(p.dense_mlp, L * 3 * h * f);
  // Dense model: no experts, active = total.
  EXPECT_EQ(p.experts, 0);
  EXPECT_DOUBLE_EQ(p.active(builtin().model("llama3-8b")), p.total());
}

TEST(ParamCount, TiedEmbeddingsHaveNoHead) {
  // Tying the LM head to the embedding removes V x h parameters from the total.
  Model m = builtin().model("llama3-8b");
  const double untied = count_params(m).total();
  m.tied_embeddings = true;
  const ParamCounts tied = count_params(m);
  EXPECT_EQ(tied.head, 0);
  EXPECT_DOUBLE_EQ(untied - tied.total(), 128256.0 * 4096.0);
}

// ---- Hugging Face config.json ----

Model load_hf(const char* name) { return parse_hf_config(read_file(source_path(std::string("tests/data/hf/") + name))); }

TEST(HfConfig, Llama3_8b) {
  // Meta-Llama-3-8B config.json: 32 layers, 4096 hidden, 32 heads, 8 kv heads, 14336 ffn, 128256 vocab, silu.
  const Model m = load_hf("llama3-8b.json");
  EXPECT_EQ(m.layers, 32);
  EXPECT_EQ(m.hidden, 4096);
  EXPECT_EQ(m.heads, 32);
  EXPECT_EQ(m.kv_heads, 8);
  // head_dim absent: hidden / heads = 4096 / 32 = 128.
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_EQ(m.ffn_hidden, 14336);
  EXPECT_EQ(m.vocab, 128256);
  EXPECT_TRUE(m.gated_mlp);
  EXPECT_FALSE(m.tied_embeddings);
  EXPECT_FALSE(m.is_moe());
  EXPECT_FALSE(m.is_mla());
  EXPECT_EQ(m.max_seq_len, 8192);
  // Same architecture as data/models/llama3-8b.toml, so the same parameter count.
  EXPECT_DOUBLE_EQ(count_params(m).total(), count_params(builtin().model("llama3-8b")).total());
}

TEST(HfConfig, DeepSeekGroupLimitedRouting) {
  // n_group 8, topk_group 4: a token's 8 experts come from 4 of 8 blocks of 32; the catalog model
  // says the same, and Mixtral (no groups) routes freely.
  const Model m = load_hf("deepseek-v3.json");
  EXPECT_EQ(m.moe.router_groups, 8);
  EXPECT_EQ(m.moe.router_group_topk, 4);
  EXPECT_TRUE(m.moe.group_limited());
  const Model& cat = builtin().model("deepseek-v3");
  EXPECT_EQ(cat.moe.router_groups, m.moe.router_groups);
  EXPECT_EQ(cat.moe.router_group_topk, m.moe.router_group_topk);
  EXPECT_FALSE(load_hf("mixtral-8x7b.json").moe.group_limited());
  // DeepSeek-V2's topk_method "greedy" ignores its groups.
  const DataFile f = read_file(source_path("tests/data/hf/deepseek-v3.json"));
  std::string greedy = f.text;
  const auto at = greedy.find("\"topk_method\"");
  ASSERT_NE(at, std::string::npos);
  greedy.replace(at, greedy.find(',', at) - at, "\"topk_method\": \"greedy\"");
  EXPECT_FALSE(parse_hf_config({f.path, greedy}).moe.group_limited());
  // Kimi K2 (n_group 1) is unrestricted.
  EXPECT_FALSE(builtin().model("kimi-k2").moe.group_limited());
}

TEST(HfConfig, DeepSeekMultiTokenPrediction) {
  // num_nextn_predict_layers 1: one MTP module, as the catalog model says; a config without the key
  // has none, and one with more modules than layers is refused naming the key.
  const Model m = load_hf("deepseek-v3.json");
  EXPECT_EQ(m.mtp_layers, 1);
  EXPECT_EQ(builtin().model("deepseek-v3").mtp_layers, 1);
  EXPECT_EQ(load_hf("mixtral-8x7b.json").mtp_layers, 0);
  const DataFile f = read_file(source_path("tests/data/hf/deepseek-v3.json"));
  std::string many = f.text;
  const auto at = many.find("\"num_nextn_predict_layers\": 1");
  ASSERT_NE(at, std::string::npos);
  many.replace(at, std::strlen("\"num_nextn_predict_layers\": 1"), "\"num_nextn_predict_layers\": 62");
  const auto bad = test::catch_input_error([&] { parse_hf_config({f.path, many}); });
  EXPECT_NE(bad.where.find("num_nextn_predict_layers"), std::string::npos) << bad.where;
  EXPECT_NE(bad.what.find("at most num_hidden_layers (61)"), std::string::npos) << bad.what;
  // One module of DeepSeek-V3: a MoE layer with all 256 experts, the 2h x h projection and norms,
  // 11.6e9 (HF's 685e9 - 671e9 = 14e9 adds its own embedding and head copies, 2 x 0.93e9).
  EXPECT_NEAR(mtp_module_params(m) / 1e9, 11.61, 0.01);
}

TEST(HfConfig, MixtralExperts) {
  // num_local_experts 8, num_experts_per_tok 2; no moe_intermediate_size: experts use intermediate_size 14336.
  const Model m = load_hf("mixtral-8x7b.json");
  EXPECT_TRUE(m.is_moe());
  EXPECT_EQ(m.moe.experts, 8);
  EXPECT_EQ(m.moe.top_k, 2);
  EXPECT_EQ(m.moe.ffn_hidden, 14336);
  EXPECT_EQ(m.moe.shared_experts, 0);
  EXPECT_EQ(m.moe.dense_layers, 0);
  // "sliding_window": null means full attention.
  EXPECT_EQ(m.sliding_window, 0);
  // Every layer is MoE (layer_step 1, no dense layers).
  EXPECT_TRUE(m.is_moe_layer(0));
  EXPECT_TRUE(m.is_moe_layer(31));
}

TEST(HfConfig, Qwen3MoeWithExplicitHeadDim) {
  // num_experts 128, top 8, moe_intermediate_size 1536; head_dim 128 given (hidden / heads would be 4096 / 64 = 64).
  const Model m = load_hf("qwen3-235b-a22b.json");
  EXPECT_EQ(m.layers, 94);
  EXPECT_EQ(m.moe.experts, 128);
  EXPECT_EQ(m.moe.top_k, 8);
  EXPECT_EQ(m.moe.ffn_hidden, 1536);
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_EQ(m.heads, 64);
  EXPECT_EQ(m.kv_heads, 4);
  EXPECT_TRUE(m.gated_mlp);
  // use_sliding_window false: no window.
  EXPECT_EQ(m.sliding_window, 0);
}

TEST(HfConfig, DeepSeekV3MlaAndSharedExpert) {
  // DeepSeek-V3 config.json: 61 layers, MLA ranks q 1536 / kv 512, 256 routed experts (top 8) + 1 shared.
  const Model m = load_hf("deepseek-v3.json");
  EXPECT_EQ(m.layers, 61);
  EXPECT_TRUE(m.is_mla());
  EXPECT_EQ(m.mla.kv_lora_rank, 512);
  EXPECT_EQ(m.mla.q_lora_rank, 1536);
  EXPECT_EQ(m.mla.qk_nope_head_dim, 128);
  EXPECT_EQ(m.mla.qk_rope_head_dim, 64);
  EXPECT_EQ(m.mla.v_head_dim, 128);
  // first_k_dense_replace 3: layers 0..2 dense, layer 3 on MoE.
  EXPECT_EQ(m.moe.dense_layers, 3);
  EXPECT_FALSE(m.is_moe_layer(2));
  EXPECT_TRUE(m.is_moe_layer(3));
  EXPECT_EQ(m.moe.experts, 256);
  EXPECT_EQ(m.moe.shared_experts, 1);
  EXPECT_EQ(m.moe.top_k, 8);
  EXPECT_EQ(m.moe.ffn_hidden, 2048);
  EXPECT_EQ(m.ffn_hidden, 18432);
  // 671B total, as published.
  expect_within_2pct(count_params(m).total(), 671e9, "deepseek-v3 from config.json");
  // Every layer dense (first_k_dense_replace 61): the experts are never used, the model is dense
  // (it was refused).
  const DataFile f = read_file(source_path("tests/data/hf/deepseek-v3.json"));
  std::string text = f.text;
  const auto at = text.find("\"first_k_dense_replace\": 3");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, std::string("\"first_k_dense_replace\": 3").size(), "\"first_k_dense_replace\": 61");
  const Model dense = parse_hf_config({f.path, text});
  EXPECT_FALSE(dense.is_moe());
  EXPECT_FALSE(dense.is_moe_layer(60));
}

TEST(HfConfig, DeepSeekV3ReadsAsTheCatalogModel) {
  // The config has no head_dim (hidden / heads would be 56); MLA holds v_head_dim there, as the
  // catalog's deepseek-v3 does, so a plan of either is the same plan.
  const Model m = load_hf("deepseek-v3.json");
  const Model& c = builtin().model("deepseek-v3");
  EXPECT_EQ(m.head_dim, c.head_dim);
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_DOUBLE_EQ(count_params(m).total(), count_params(c).total());
}

// A Qwen3-MoE config with its layer keys replaced.
Model qwen_moe(const std::string& layer_keys, int layers = 10) {
  return parse_hf_config({"q.json", R"({"architectures": ["Qwen3MoeForCausalLM"], "num_hidden_layers": )" + std::to_string(layers) +
                                        R"(, "hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
                           "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
                           "vocab_size": 151936, "hidden_act": "silu", "max_position_embeddings": 40960, )" + layer_keys + "}"});
}

TEST(HfConfig, Mxfp4CheckpointsQuantizeTheExpertsAlone) {
  // GPT-OSS's config: quantization_config quant_method "mxfp4" (modules_to_not_convert: attention,
  // router, embedding, head) marks the FP4 as the routed experts' alone; other methods do not.
  EXPECT_TRUE(qwen_moe(R"("quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["lm_head"]})").fp4_experts_only);
  EXPECT_EQ(qwen_moe(R"("quantization_config": {"quant_method": "mxfp4"})").fp4_scale_block, 32);
  // explain names the config's key as the source of both (not a fp4_scope or fp4_scale_block key it lacks).
  const Model mx = qwen_moe(R"("quantization_config": {"quant_method": "mxfp4"})");
  EXPECT_EQ(mx.fp4_scope_source, "q.json: quantization_config.quant_method mxfp4");
  EXPECT_NE(mx.fp4_scale_block_source.find("q.json: quantization_config.quant_method mxfp4"), std::string::npos);
  EXPECT_NE(builtin().model("gpt-oss-120b").fp4_scope_source.find("gpt-oss-120b.toml: fp4_scope experts"), std::string::npos);
  // A method that is not a string is named, not an internal error.
  EXPECT_NE(test::catch_input_error([] { qwen_moe(R"("quantization_config": {"quant_method": null})"); })
                .what.find("quantization_config.quant_method: must be a string"),
            std::string::npos);
  EXPECT_FALSE(qwen_moe(R"("quantization_config": {"quant_method": "fp8"})").fp4_experts_only);
  EXPECT_FALSE(qwen_moe(R"("decoder_sparse_step": 1)").fp4_experts_only);
  EXPECT_TRUE(builtin().model("gpt-oss-120b").fp4_experts_only);
  EXPECT_FALSE(builtin().model("deepseek-v3").fp4_experts_only);
}

TEST(HfConfig, MoeLayersWhereTransformersPutsThem) {
  // Qwen2/3-MoE: layer i is MoE when (i + 1) % decoder_sparse_step == 0: with 10 layers and step 3,
  // layers 2, 5, 8 (three; it read 0, 3, 6, 9).
  const Model q = qwen_moe(R"("decoder_sparse_step": 3, "mlp_only_layers": [])");
  int moe = 0;
  for (int i = 0; i < q.layers; ++i) moe += q.is_moe_layer(i);
  EXPECT_EQ(moe, 3);
  EXPECT_TRUE(q.is_moe_layer(2));
  EXPECT_FALSE(q.is_moe_layer(0));
  EXPECT_TRUE(q.is_moe_layer(8));
  // mlp_only_layers: the leading ones dense (it was ignored).
  const Model lead = qwen_moe(R"("decoder_sparse_step": 1, "mlp_only_layers": [0, 1, 2, 3])");
  EXPECT_EQ(lead.moe.dense_layers, 4);
  EXPECT_FALSE(lead.is_moe_layer(3));
  EXPECT_TRUE(lead.is_moe_layer(4));
  // Every layer listed: a dense model.
  EXPECT_FALSE(qwen_moe(R"("mlp_only_layers": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])").is_moe());
  // Dense layers in the middle cannot be held: refused, naming the key.
  try {
    (void)qwen_moe(R"("mlp_only_layers": [4])");
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("q.json: mlp_only_layers: mixture-of-experts layers in a pattern"), std::string::npos) << e.what();
  }
  // DeepSeek's moe_layer_freq F from first_k_dense_replace K: i >= K and i % F == 0, so with
  // K 3 and F 2 the first MoE layer is 4.
  const Model d = qwen_moe(R"("first_k_dense_replace": 3, "moe_layer_freq": 2)");
  EXPECT_EQ(d.moe.dense_layers, 4);
  EXPECT_EQ(d.moe.layer_step, 2);
  // One expert is no mixture.
  EXPECT_THROW((void)parse_hf_config({"one.json", R"({"num_hidden_layers": 4, "hidden_size": 512, "num_attention_heads": 8,
      "intermediate_size": 1024, "vocab_size": 1000, "num_local_experts": 1, "num_experts_per_tok": 1})"}), InputError);
}

TEST(HfConfig, GatedMlpByArchitectureBeforeActivation) {
  // StarCoder2 names gelu_pytorch_tanh, as Gemma does, but its MLP is plain (c_fc, c_proj): about
  // 16e9 parameters, not 22e9.
  const Model sc = parse_hf_config({"sc.json", R"({"architectures": ["Starcoder2ForCausalLM"], "hidden_size": 6144,
      "intermediate_size": 24576, "num_hidden_layers": 40, "num_attention_heads": 48, "num_key_value_heads": 4,
      "vocab_size": 49152, "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": false, "max_position_embeddings": 16384})"});
  EXPECT_FALSE(sc.gated_mlp);
  expect_within_2pct(count_params(sc).total(), 15.96e9, "starcoder2-15b");
  EXPECT_TRUE(load_hf("gemma2-9b.json").gated_mlp);  // GeGLU, same activation name
  // Plain architectures by their exact names: Falcon-H1 (SwiGLU) is not Falcon.
  const Model fh = parse_hf_config({"fh.json", R"({"architectures": ["FalconH1ForCausalLM"], "hidden_size": 1024,
      "intermediate_size": 4096, "num_hidden_layers": 4, "num_attention_heads": 8, "vocab_size": 1000, "hidden_act": "silu",
      "max_position_embeddings": 4096})"});
  EXPECT_TRUE(fh.gated_mlp);
}

TEST(HfConfig, ExplainCitesTheKeysTheConfigHas) {
  // GPT-2's context comes from n_positions; Qwen2-57B's shared expert from
  // shared_expert_intermediate_size (it has no n_shared_experts or first_k_dense_replace).
  EXPECT_EQ(load_hf("gpt2.json").context_key, "n_positions");
  EXPECT_EQ(load_hf("llama3-8b.json").context_key, "max_position_embeddings");
  const Model q = load_hf("qwen2-57b-a14b.json");
  EXPECT_NE(q.moe_keys.find("shared_expert_intermediate_size"), std::string::npos) << q.moe_keys;
  EXPECT_EQ(q.moe_keys.find("n_shared_experts"), std::string::npos) << q.moe_keys;
  EXPECT_EQ(q.moe_keys.find("first_k_dense_replace"), std::string::npos) << q.moe_keys;
}

TEST(HfConfig, Qwen2WindowFromMaxWindowLayers) {
  // Qwen2 with use_sliding_window: layers from max_window_layers up are local. All of them
  // (max_window_layers 0): every layer windowed; none (>= layers): full attention; a split at 28
  // of 36 layers is a pattern Model cannot hold: refused, naming the key (it windowed every layer).
  auto qwen2 = [](int below) {
    return parse_hf_config({"q2.json", R"({"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 36, "hidden_size": 2048,
        "num_attention_heads": 16, "num_key_value_heads": 2, "intermediate_size": 11008, "vocab_size": 151936,
        "max_position_embeddings": 32768, "use_sliding_window": true, "sliding_window": 4096, "max_window_layers": )" + std::to_string(below) + "}"});
  };
  EXPECT_EQ(qwen2(0).sliding_window, 4096);
  EXPECT_TRUE(qwen2(0).is_window_layer(0));
  EXPECT_EQ(qwen2(36).sliding_window, 0);
  try {
    (void)qwen2(28);
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("q2.json: max_window_layers"), std::string::npos) << e.what();
  }
}

TEST(HfConfig, Gpt2StyleKeys) {
  // n_layer 12, n_embd 768, n_head 12, n_inner absent -> ffn = 4 x 768 = 3072; plain GELU MLP; tied by default.
  const Model m = load_hf("gpt2.json");
  EXPECT_EQ(m.layers, 12);
  EXPECT_EQ(m.hidden, 768);
  EXPECT_EQ(m.heads, 12);
  EXPECT_EQ(m.kv_heads, 12);
  EXPECT_EQ(m.head_dim, 64);
  EXPECT_EQ(m.ffn_hidden, 3072);
  EXPECT_FALSE(m.gated_mlp);
  EXPECT_TRUE(m.tied_embeddings);
  EXPECT_EQ(m.vocab, 50257);
  EXPECT_EQ(m.max_seq_len, 1024);
  // GPT-2 small has 124.4M parameters (this count leaves out the 0.8M position embeddings and biases).
  expect_within_2pct(count_params(m).total(), 124.4e6, "gpt2");
}

TEST(HfConfig, MistralSlidingWindow) {
  // sliding_window 4096 on every layer.
  const Model m = load_hf("mistral-7b.json");
  EXPECT_EQ(m.sliding_window, 4096);
  EXPECT_EQ(m.sliding_window_every, 1);
  EXPECT_EQ(m.vocab, 32000);
}

// A multimodal config nests its language model in text_config. Llama 4: chunked local attention
// (attention_chunk_size) on the layers no_rope_layers marks 1, global on every fourth; an expert's
// width in intermediate_size, the dense layers' in intermediate_size_mlp; one shared expert per
// MoE layer; with interleave_moe_layer_step 2 the odd layers are MoE. The same model as the
// catalog's (parameters to the unit).
TEST(HfConfig, Llama4TextConfigChunkedAttention) {
  for (const auto& [file, id] : {std::pair<const char*, const char*>{"llama4-scout-text-config.json", "llama4-scout-17b-16e"},
                                 {"llama4-maverick-text-config.json", "llama4-maverick-17b-128e"}}) {
    const Model m = load_hf(file);
    const Model& c = builtin().model(id);
    EXPECT_EQ(m.sliding_window, 8192) << file;
    EXPECT_TRUE(m.chunked_local) << file;
    EXPECT_EQ(m.global_every, 4) << file;
    EXPECT_EQ(m.window_layer_count(), 36) << file;
    EXPECT_FALSE(m.is_window_layer(3));
    EXPECT_TRUE(m.is_window_layer(4));
    EXPECT_EQ(m.moe.shared_experts, 1) << file;
    EXPECT_EQ(m.moe_layer_count(), c.moe_layer_count()) << file;
    EXPECT_DOUBLE_EQ(count_params(m).total(), count_params(c).total()) << file;
    EXPECT_DOUBLE_EQ(count_params(m).active(m), count_params(c).active(c)) << file;
  }
}

// Gemma 3 27B as published: a sparse text_config that leaves vocab_size, the local/global pattern
// (five sliding-window layers to each global one) and the tied embeddings to its class defaults.
TEST(HfConfig, Gemma3SparseTextConfigTakesClassDefaults) {
  const Model m = load_hf("gemma3-27b.json");
  EXPECT_EQ(m.vocab, 262208);
  EXPECT_EQ(m.sliding_window, 1024);
  EXPECT_FALSE(m.chunked_local);
  EXPECT_EQ(m.window_layer_count(), 62 - 10);
  EXPECT_FALSE(m.is_window_layer(5));
  EXPECT_TRUE(m.tied_embeddings);
  EXPECT_NEAR(count_params(m).total(), 27.0e9, 0.02 * 27.0e9);  // the text model: 27B less the vision encoder
}

// Gemma 2 alternates local and global layers from layer 0 (no key says so) and ties its embeddings.
TEST(HfConfig, Gemma2AlternatesLocalAndGlobal) {
  const Model m = load_hf("gemma2-9b.json");
  EXPECT_EQ(m.window_layer_count(), 21);
  EXPECT_TRUE(m.is_window_layer(0));
  EXPECT_FALSE(m.is_window_layer(1));
  EXPECT_TRUE(m.tied_embeddings);
  EXPECT_NEAR(count_params(m).total(), 9.24e9, 0.02 * 9.24e9);
}

// Qwen2-MoE gives its shared expert as a width (20,480 = 8 experts of 2,560): 57.4B total, 14.2B active.
TEST(HfConfig, Qwen2MoeSharedExpertWidth) {
  const Model m = load_hf("qwen2-57b-a14b.json");
  EXPECT_EQ(m.moe.shared_experts, 8);
  EXPECT_NEAR(count_params(m).total(), 57.4e9, 0.02 * 57.4e9);
  EXPECT_NEAR(count_params(m).active(m), 14.2e9, 0.02 * 14.2e9);
}

// The published Llama 4 config's no_rope_layers is empty: transformers reads every fourth layer as
// global (no_rope_layer_interval 4), so the model is the catalog's.
TEST(HfConfig, Llama4EmptyNoRopeLayersIsTheDefaultInterval) {
  const Model m = load_hf("llama4-scout-published.json");
  EXPECT_EQ(m.global_every, 4);
  EXPECT_EQ(m.window_layer_count(), 36);
  EXPECT_DOUBLE_EQ(count_params(m).total(), count_params(builtin().model("llama4-scout-17b-16e")).total());
}

// A layer_types list in a pattern Model cannot hold, or of the wrong length, is refused.
TEST(HfConfig, UnheldLocalPatternRefused) {
  auto cfg = [](const std::string& types) {
    return R"({"num_hidden_layers": 4, "hidden_size": 1024, "num_attention_heads": 8, "intermediate_size": 4096,
               "vocab_size": 32000, "max_position_embeddings": 4096, "sliding_window": 128, "layer_types": )" + types + "}";
  };
  EXPECT_THROW(parse_hf_config({"c.json", cfg(R"(["sliding_attention", "sliding_attention", "full_attention", "full_attention"])")}),
               InputError);
  EXPECT_THROW(parse_hf_config({"c.json", cfg(R"(["sliding_attention", "full_attention"])")}), InputError);
  const Model ok = parse_hf_config({"c.json", cfg(R"(["sliding_attention", "full_attention", "sliding_attention", "full_attention"])")});
  EXPECT_EQ(ok.window_layer_count(), 2);
  EXPECT_TRUE(ok.is_window_layer(0));
}

}  // namespace
}  // namespace xpu
