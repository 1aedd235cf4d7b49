// Bad input: each malformed file, table or flag throws InputError naming where the problem is.
#include <gtest/gtest.h>

#include <map>

#include "load/catalog.hpp"
#include "load/csv.hpp"
#include "test_common.hpp"
#include "train/choose.hpp"
#include "validate/validate.hpp"

namespace xpu {
namespace {

using test::builtin;
using test::catch_input_error;
using test::replace_once;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Minimal valid files: each test breaks one thing.
const char* kChipPath = "data/chips/testchip.toml";
const char* kChip = R"(id = "testchip"
name = "Test chip"
vendor = "Test"
source = "unit test"
date = "2026-01-01"

[peak]
bf16 = "100 TFLOP/s"

[memory]
capacity = "80 GB"
bandwidth = "3.35 TB/s"
)";

const char* kCalibPath = "data/calibration/testchip.toml";
const char* kCalib = R"(id = "testchip"
status = "assumed"
source = "unit test"
date = "2026-01-01"

[gemm]
bf16 = 0.7
half_dim = 64
)";

const char* kSystemPath = "data/systems/testsys.toml";
const char* kSystem = R"(id = "testsys"
name = "Test system"
chip = "testchip"
device_unit = "GPU"
devices_per_node = 8
source = "unit test"
date = "2026-01-01"

[scale_up]
size = 8
topology = "switch"
bandwidth = "450 GB/s"
latency = "3 us"

[scale_out]
bandwidth = "400 Gb/s"
latency = "10 us"
topology = "fat-tree"
)";

const char* kModelPath = "data/models/testmodel.toml";
const char* kModel = R"(id = "testmodel"
name = "Test model"
source = "unit test"
date = "2026-01-01"
layers = 4
hidden = 256
heads = 4
ffn_hidden = 1024
vocab = 1000
max_seq_len = 4096
)";

TEST(BadInput, ModelWithoutContextWindow) {
  // A model file without max_seq_len had no context check at all (a 500k-token prompt served on
  // Llama 3 8B): required, as every catalog model states it.
  const auto e = catch_input_error([] { parse_model({kModelPath, replace_once(kModel, "max_seq_len = 4096\n", "")}); });
  EXPECT_TRUE(contains(e.where, "max_seq_len")) << e.where;
  EXPECT_TRUE(contains(e.what, "missing")) << e.what;
}

TEST(BadInput, IslandNeedsOversubscription) {
  // island without oversubscription was accepted and meant nothing.
  const auto e = catch_input_error([] { parse_system({kSystemPath, replace_once(kSystem, "topology = \"fat-tree\"", "topology = \"fat-tree\"\nisland = 16")}); });
  EXPECT_TRUE(contains(e.where, "scale_out.island")) << e.where;
  EXPECT_TRUE(contains(e.what, "without oversubscription")) << e.what;
}

TEST(BadInput, DeviceUnitIsKnown) {
  // "64 x banana" had been printed.
  const auto e = catch_input_error([] { parse_system({kSystemPath, replace_once(kSystem, "device_unit = \"GPU\"", "device_unit = \"banana\"")}); });
  EXPECT_TRUE(contains(e.where, "device_unit")) << e.where;
  EXPECT_TRUE(contains(e.what, "is not GPU, chip or NeuronCore")) << e.what;
}

TEST(BadInput, OneLineFieldsRefuseControlCharacters) {
  // A newline or control character in a model's name split the report's one-line header.
  const auto e = catch_input_error([] {
    parse_model({kModelPath, replace_once(kModel, "name = \"Test model\"", "name = \"Test\\nmodel\"")});
  });
  EXPECT_TRUE(contains(e.where, "name")) << e.where;
  EXPECT_TRUE(contains(e.what, "without control characters")) << e.what;
}

TEST(BadInput, FixturesAreValid) {
  // The unbroken fixtures load, so each failure below is caused by the one change it makes.
  const Chip c = parse_chip({kChipPath, kChip});
  EXPECT_DOUBLE_EQ(c.hbm_capacity.v, 80e9);
  const Model m = parse_model({kModelPath, kModel});
  // head_dim absent: 256 / 4 = 64; kv_heads absent: = heads.
  EXPECT_EQ(m.head_dim, 64);
  EXPECT_EQ(m.kv_heads, 4);
  const Catalog cat = build_catalog({{kChipPath, kChip}, {kCalibPath, kCalib}, {kSystemPath, kSystem}, {kModelPath, kModel}});
  EXPECT_EQ(cat.system("testsys").chip.id, "testchip");
}

TEST(BadInput, MalformedToml) {
  // An unterminated string on the "bandwidth" line.
  const auto e = catch_input_error([] { parse_chip({kChipPath, replace_once(kChip, "\"3.35 TB/s\"", "\"3.35 TB/s")}); });
  EXPECT_TRUE(contains(e.where, kChipPath)) << e.what;
  EXPECT_TRUE(contains(e.what, "malformed TOML")) << e.what;
}

TEST(BadInput, MissingRequiredField) {
  // vendor removed: "<file>: vendor: missing (required)".
  const auto e = catch_input_error([] { parse_chip({kChipPath, replace_once(kChip, "vendor = \"Test\"\n", "")}); });
  EXPECT_TRUE(contains(e.what, kChipPath)) << e.what;
  EXPECT_TRUE(contains(e.where, "vendor")) << e.what;
  EXPECT_TRUE(contains(e.what, "missing")) << e.what;
}

TEST(BadInput, MissingRequiredQuantity) {
  // [memory] without bandwidth: the error names memory.bandwidth in the file.
  const auto e = catch_input_error([] { parse_chip({kChipPath, replace_once(kChip, "bandwidth = \"3.35 TB/s\"\n", "")}); });
  EXPECT_TRUE(contains(e.what, kChipPath)) << e.what;
  EXPECT_TRUE(contains(e.where, "memory.bandwidth")) << e.what;
}

TEST(BadInput, ChipExponentialRate) {
  // peak.exp is optional; given, it is a positive rate in exponentials per second (OP/s).
  const Chip c = parse_chip({kChipPath, replace_once(kChip, "bf16 = \"100 TFLOP/s\"\n", "bf16 = \"100 TFLOP/s\"\nexp = \"2 TOP/s\"\n")});
  ASSERT_TRUE(c.exp_rate);
  EXPECT_DOUBLE_EQ(*c.exp_rate, 2e12);
  EXPECT_FALSE(parse_chip({kChipPath, kChip}).exp_rate);
  const auto e = catch_input_error(
      [] { parse_chip({kChipPath, replace_once(kChip, "bf16 = \"100 TFLOP/s\"\n", "bf16 = \"100 TFLOP/s\"\nexp = \"0 TOP/s\"\n")}); });
  EXPECT_TRUE(contains(e.what, kChipPath)) << e.what;
  EXPECT_TRUE(contains(e.where, "peak.exp")) << e.what;
  EXPECT_TRUE(contains(e.what, "positive")) << e.what;
}

TEST(BadInput, WrongUnit) {
  // "3.35 TB" is a size where a bandwidth is due.
  const auto e = catch_input_error([] { parse_chip({kChipPath, replace_once(kChip, "\"3.35 TB/s\"", "\"3.35 TB\"")}); });
  EXPECT_TRUE(contains(e.what, kChipPath)) << e.what;
  EXPECT_TRUE(contains(e.where, "memory.bandwidth")) << e.what;
  EXPECT_TRUE(contains(e.what, "3.35 TB")) << e.what;
}

TEST(BadInput, MissingUnit) {
  // capacity = "80": a number without its unit.
  const auto e = catch_input_error([] { parse_chip({kChipPath, replace_once(kChip, "\"80 GB\"", "\"80\"")}); });
  EXPECT_TRUE(contains(e.where, "memory.capacity")) << e.what;
  EXPECT_TRUE(contains(e.what, "no unit")) << e.what;
}

TEST(BadInput, BareNumberWhereQuantityIsDue) {
  // capacity = 80 (a TOML integer, not a string with a unit).
  const auto e = catch_input_error([] { parse_chip({kChipPath, replace_once(kChip, "\"80 GB\"", "80")}); });
  EXPECT_TRUE(contains(e.where, "memory.capacity")) << e.what;
}

TEST(BadInput, ZeroCapacity) {
  // capacity = "0 GB": a size must be > 0.
  const auto e = catch_input_error([] { parse_chip({kChipPath, replace_once(kChip, "\"80 GB\"", "\"0 GB\"")}); });
  EXPECT_TRUE(contains(e.where, "memory.capacity")) << e.what;
  EXPECT_TRUE(contains(e.what, "positive")) << e.what;
}

TEST(BadInput, NegativeCapacity) {
  // capacity = "-80 GB": a size must be > 0.
  const auto e = catch_input_error([] { parse_chip({kChipPath, replace_once(kChip, "\"80 GB\"", "\"-80 GB\"")}); });
  EXPECT_TRUE(contains(e.where, "memory.capacity")) << e.what;
}

TEST(BadInput, ZeroLayers) {
  // layers = 0: at least 1 layer.
  const auto e = catch_input_error([] { parse_model({kModelPath, replace_once(kModel, "layers = 4", "layers = 0")}); });
  EXPECT_TRUE(contains(e.what, kModelPath)) << e.what;
  EXPECT_TRUE(contains(e.where, "layers")) << e.what;
}

TEST(BadInput, NegativeLayers) {
  // layers = -1: at least 1 layer; the message repeats the value.
  const auto e = catch_input_error([] { parse_model({kModelPath, replace_once(kModel, "layers = 4", "layers = -1")}); });
  EXPECT_TRUE(contains(e.where, "layers")) << e.what;
  EXPECT_TRUE(contains(e.what, "-1")) << e.what;
}

TEST(BadInput, TooManyLayers) {
  // 2^31 - 1 layers made a plan run for hours: at most 10000.
  const auto e = catch_input_error([] { parse_model({kModelPath, replace_once(kModel, "layers = 4", "layers = 2147483647")}); });
  EXPECT_TRUE(contains(e.where, "layers")) << e.what;
  EXPECT_TRUE(contains(e.what, "at most 10000")) << e.what;
}

TEST(BadInput, WindowEveryWithoutWindow) {
  // sliding_window = 0 is full attention, as data/README.md says (it was refused); a pattern of
  // local layers without a window is an error (it was ignored).
  EXPECT_EQ(parse_model({kModelPath, replace_once(kModel, "vocab = 1000", "vocab = 1000\nsliding_window = 0")}).sliding_window, 0);
  const auto e = catch_input_error([] { parse_model({kModelPath, replace_once(kModel, "vocab = 1000", "vocab = 1000\nsliding_window_every = 2")}); });
  EXPECT_TRUE(contains(e.where, "sliding_window_every")) << e.what;
  EXPECT_TRUE(contains(e.what, "needs sliding_window")) << e.what;
}

TEST(BadInput, SystemDateAndNodeShape) {
  // date = "yesterday" is no date; 3 devices per node beside an 8-device scale-up domain is no
  // machine (each was accepted without a word).
  auto e = catch_input_error([] { parse_system({kSystemPath, replace_once(kSystem, "date = \"2026-01-01\"", "date = \"yesterday\"")}); });
  EXPECT_TRUE(contains(e.where, "date")) << e.what;
  EXPECT_TRUE(contains(e.what, "'yesterday' is not a date")) << e.what;
  e = catch_input_error([] { parse_system({kSystemPath, replace_once(kSystem, "devices_per_node = 8", "devices_per_node = 3")}); });
  EXPECT_TRUE(contains(e.where, "devices_per_node")) << e.what;
  EXPECT_TRUE(contains(e.what, "one must divide the other")) << e.what;
  e = catch_input_error([] { parse_model({kModelPath, replace_once(kModel, "date = \"2026-01-01\"", "date = \"2026-13-01\"")}); });
  EXPECT_TRUE(contains(e.where, "date")) << e.what;
}

TEST(BadInput, ScaleOutTorusAndFitDate) {
  // The scale-out network is modelled as switched: a torus there was read as a fat tree.
  auto e = catch_input_error([] {
    parse_system({kSystemPath, replace_once(kSystem, "topology = \"fat-tree\"", "topology = \"torus\"\ntorus_dims = [4, 4]")});
  });
  EXPECT_TRUE(contains(e.where, "scale_out.topology")) << e.where;
  EXPECT_TRUE(contains(e.what, "not modelled for the scale-out network")) << e.what;
  // Per-dimension torus shares: one per dimension, summing to 1, and only on a torus.
  const std::string torus = replace_once(kSystem, "topology = \"switch\"", "topology = \"torus\"\ntorus_dims = [4, 2]");
  EXPECT_NO_THROW(parse_system({kSystemPath, replace_once(torus, "torus_dims = [4, 2]", "torus_dims = [4, 2]\ntorus_share = [0.75, 0.25]")}));
  for (const char* bad : {"torus_share = [0.5]", "torus_share = [0.5, 0.6]", "torus_share = [1.0, 0]"}) {
    e = catch_input_error([&] { parse_system({kSystemPath, replace_once(torus, "torus_dims = [4, 2]", std::string("torus_dims = [4, 2]\n") + bad)}); });
    EXPECT_TRUE(contains(e.where, "scale_up.torus_share")) << bad << ": " << e.where;
  }
  // A dimension of 1 has no links: it had taken half the bandwidth of a [1, 8] torus.
  e = catch_input_error([&] { parse_system({kSystemPath, replace_once(torus, "torus_dims = [4, 2]", "torus_dims = [1, 8]")}); });
  EXPECT_TRUE(contains(e.where, "scale_up.torus_dims")) << e.where;
  EXPECT_TRUE(contains(e.what, "a dimension of 1 has no links")) << e.what;
  e = catch_input_error([] { parse_system({kSystemPath, replace_once(kSystem, "size = 8", "size = 8\ntorus_share = [1.0]")}); });
  EXPECT_TRUE(contains(e.what, "only a torus has torus_share")) << e.what;
  // A fit's date is a date, as every catalog file's (it was read as any text).
  for (const char* path : {"data/calibration/h100-sxm.toml", "data/serving/nvidia-hopper.toml"}) {
    const DataFile* f = nullptr;
    for (const auto& d : builtin_data_files())
      if (d.path == path) f = &d;
    ASSERT_NE(f, nullptr) << path;
    const std::size_t fit = f->text.find("[fit]");
    ASSERT_NE(fit, std::string::npos) << path;
    const std::size_t at = f->text.find("date = \"", fit);
    ASSERT_NE(at, std::string::npos) << path;
    std::string text = f->text;
    text.replace(at, text.find('\n', at) - at, "date = \"last week\"");
    e = catch_input_error([&] {
      std::vector<std::string> chips;
      if (std::string(path).find("serving") != std::string::npos) (void)parse_serving({path, text}, &chips);
      else (void)parse_calibration({path, text});
    });
    EXPECT_TRUE(contains(e.where, "fit.date")) << path << ": " << e.where;
    EXPECT_TRUE(contains(e.what, "'last week' is not a date")) << e.what;
  }
}

TEST(BadInput, KvHeadsNotDividingHeads) {
  // 4 heads in 3 groups.
  const auto e = catch_input_error([] { parse_model({kModelPath, replace_once(kModel, "heads = 4\n", "heads = 4\nkv_heads = 3\n")}); });
  EXPECT_TRUE(contains(e.where, "kv_heads")) << e.what;
}

TEST(BadInput, UnknownKeyAtTopLevel) {
  // A typo is not silently ignored.
  const auto e = catch_input_error([] { parse_model({kModelPath, replace_once(kModel, "vocab = 1000", "vocab = 1000\nffn_hiden = 4")}); });
  EXPECT_TRUE(contains(e.what, kModelPath)) << e.what;
  EXPECT_TRUE(contains(e.where, "ffn_hiden")) << e.what;
  EXPECT_TRUE(contains(e.what, "unknown key")) << e.what;
}

TEST(BadInput, UnknownKeyInTable) {
  // "capacty" next to "capacity" in [memory]: the error names memory.capacty.
  const auto e = catch_input_error([] { parse_chip({kChipPath, replace_once(kChip, "capacity = ", "capacty = \"1 GB\"\ncapacity = ")}); });
  EXPECT_TRUE(contains(e.where, "memory.capacty")) << e.what;
}

TEST(BadInput, IdDoesNotMatchFileName) {
  // id "testchip" in otherchip.toml: --system/--model lookups by file name would miss it.
  const auto e = catch_input_error([] { parse_chip({"data/chips/otherchip.toml", kChip}); });
  EXPECT_TRUE(contains(e.what, "data/chips/otherchip.toml")) << e.what;
  EXPECT_TRUE(contains(e.where, "id")) << e.what;
  EXPECT_TRUE(contains(e.what, "otherchip")) << e.what;
}

TEST(BadInput, UnknownTopology) {
  // topology = "hypercube" is none of switch, torus, mesh, ring, fat-tree, rail-optimized, dcn.
  const auto e = catch_input_error([] { parse_system({kSystemPath, replace_once(kSystem, "\"switch\"", "\"hypercube\"")}); });
  EXPECT_TRUE(contains(e.what, kSystemPath)) << e.what;
  EXPECT_TRUE(contains(e.where, "scale_up.topology")) << e.what;
  EXPECT_TRUE(contains(e.what, "hypercube")) << e.what;
}

TEST(BadInput, TorusWithoutDimensions) {
  // A torus needs torus_dims.
  const auto e = catch_input_error([] { parse_system({kSystemPath, replace_once(kSystem, "\"switch\"", "\"torus\"")}); });
  EXPECT_TRUE(contains(e.where, "scale_up.torus_dims")) << e.what;
}

TEST(BadInput, OversubscriptionWithoutIsland) {
  // A tapered fabric needs the size of its non-blocking islands.
  const auto e = catch_input_error(
      [] { parse_system({kSystemPath, replace_once(kSystem, "topology = \"fat-tree\"", "topology = \"fat-tree\"\noversubscription = 2")}); });
  EXPECT_TRUE(contains(e.where, "scale_out.island")) << e.what;
}

TEST(BadInput, SystemNamesUnknownChip) {
  // chip = "nochip", and no chips/nochip.toml among the files.
  const std::string sys = replace_once(kSystem, "chip = \"testchip\"", "chip = \"nochip\"");
  const auto e = catch_input_error([&] { build_catalog({{kChipPath, kChip}, {kCalibPath, kCalib}, {kSystemPath, sys}}); });
  EXPECT_TRUE(contains(e.where, kSystemPath)) << e.what;
  EXPECT_TRUE(contains(e.where, "chip")) << e.what;
  EXPECT_TRUE(contains(e.what, "nochip")) << e.what;
}

TEST(BadInput, SystemChipWithoutCalibration) {
  // The system's chip exists but has no calibration/testchip.toml.
  const auto e = catch_input_error([] { build_catalog({{kChipPath, kChip}, {kSystemPath, kSystem}}); });
  EXPECT_TRUE(contains(e.where, kSystemPath)) << e.what;
  EXPECT_TRUE(contains(e.what, "calibration")) << e.what;
}

TEST(BadInput, ChipWithoutCalibrationEvenWhenUnused) {
  // catalog.hpp: "a chip without a calibration file is an error" (no system needs to name it).
  const auto e = catch_input_error([] { build_catalog({{kChipPath, kChip}}); });
  EXPECT_TRUE(contains(e.what, "testchip")) << e.what;
}

TEST(BadInput, DuplicateIds) {
  // Two chip files with the same id (same stem in different folders).
  const auto e = catch_input_error([] {
    build_catalog({{kChipPath, kChip}, {"extra/chips/testchip.toml", kChip}, {kCalibPath, kCalib}});
  });
  EXPECT_TRUE(contains(e.what, "duplicate")) << e.what;
  EXPECT_TRUE(contains(e.what, "testchip")) << e.what;
  EXPECT_TRUE(contains(e.where, "extra/chips/testchip.toml")) << e.what;
}

TEST(BadInput, UnknownSystemId) {
  // "dgx-h1000" is not a system id: the error names the flag and the id.
  const auto e = catch_input_error([] { (void)builtin().system("dgx-h1000"); });
  EXPECT_EQ(e.where, "--system");
  EXPECT_TRUE(contains(e.what, "dgx-h1000")) << e.what;
  // The message lists the known ids.
  EXPECT_TRUE(contains(e.what, "dgx-h100,")) << e.what;
}

TEST(BadInput, UnknownModelId) {
  // "llama9-1t" is not a model id.
  const auto e = catch_input_error([] { (void)builtin().model("llama9-1t"); });
  EXPECT_EQ(e.where, "--model");
  EXPECT_TRUE(contains(e.what, "llama9-1t")) << e.what;
}

TEST(BadInput, MissingFile) {
  // A path that does not exist: the error names the path.
  const auto e = catch_input_error([] { (void)read_file("/nonexistent/dir/config.json"); });
  EXPECT_EQ(e.where, "/nonexistent/dir/config.json");
}

// ---- config.json ----

TEST(BadInput, MalformedJson) {
  // A trailing comma and no closing brace.
  const auto e = catch_input_error([] { parse_hf_config({"cfg/config.json", R"({"num_hidden_layers": 32,)"}); });
  EXPECT_EQ(e.where, "cfg/config.json");
  EXPECT_TRUE(contains(e.what, "malformed JSON")) << e.what;
}

TEST(BadInput, JsonNotAnObject) {
  // A config.json must be an object, not an array.
  const auto e = catch_input_error([] { parse_hf_config({"cfg/config.json", "[1, 2, 3]"}); });
  EXPECT_EQ(e.where, "cfg/config.json");
}

TEST(BadInput, JsonMissingLayers) {
  // No num_hidden_layers (nor n_layer / num_layers).
  const auto e = catch_input_error([] {
    parse_hf_config({"cfg/config.json", R"({"hidden_size": 4096, "num_attention_heads": 32, "vocab_size": 32000,
                                             "intermediate_size": 11008})"});
  });
  EXPECT_TRUE(contains(e.where, "cfg/config.json")) << e.what;
  EXPECT_TRUE(contains(e.where, "num_hidden_layers")) << e.what;
  EXPECT_TRUE(contains(e.what, "missing")) << e.what;
}

TEST(BadInput, JsonMissingIntermediateSize) {
  // No intermediate_size (nor ffn_hidden_size / ffn_dim) in a non-GPT-2 config.
  const auto e = catch_input_error([] {
    parse_hf_config({"cfg/config.json", R"({"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
                                             "vocab_size": 32000})"});
  });
  EXPECT_TRUE(contains(e.where, "intermediate_size")) << e.what;
}

TEST(BadInput, JsonWrongType) {
  // num_hidden_layers as a string.
  const auto e = catch_input_error([] {
    parse_hf_config({"cfg/config.json", R"({"num_hidden_layers": "32", "hidden_size": 4096, "num_attention_heads": 32,
                                             "vocab_size": 32000, "intermediate_size": 11008})"});
  });
  EXPECT_TRUE(contains(e.where, "num_hidden_layers")) << e.what;
}

// A published config.json with one edit: a key removed (with its line) or a text replaced.
std::string hf_text(const char* name) { return read_file(test::source_path(std::string("tests/data/hf/") + name)).text; }
std::string without_key(std::string text, const std::string& key) {
  const auto at = text.find("\"" + key + "\"");
  EXPECT_NE(at, std::string::npos) << key;
  if (at == std::string::npos) return text;
  const auto line = text.rfind('\n', at);
  text.erase(line, text.find('\n', at) - line);
  return text;
}

TEST(BadInput, JsonConfigsMissingWhatTheirFamilyNeeds) {
  // Each had been read silently as another model (QA, session 26): a MoE config without its expert
  // count as the dense model (Mixtral 7.2e9), without its expert width with the dense layers' (DeepSeek-V3
  // 5.9e12 parameters), without a context window with none checked; MLA keys without kv_lora_rank
  // as plain attention; an activation typo ignored.
  struct Case {
    const char* file;
    std::string text;
    const char* where;
    const char* what;
  };
  const Case cases[] = {
      {"mixtral-8x7b.json", without_key(hf_text("mixtral-8x7b.json"), "num_local_experts"), "num_local_experts",
       "missing for a mixture-of-experts config (num_experts_per_tok is given)"},
      {"deepseek-v3.json", without_key(hf_text("deepseek-v3.json"), "n_routed_experts"), "n_routed_experts", "missing for a mixture-of-experts config"},
      {"qwen3-235b-a22b.json", without_key(hf_text("qwen3-235b-a22b.json"), "num_experts"), "num_experts", "missing for a mixture-of-experts config"},
      {"deepseek-v3.json", without_key(hf_text("deepseek-v3.json"), "moe_intermediate_size"), "moe_intermediate_size", "an expert's width"},
      {"qwen3-235b-a22b.json", without_key(hf_text("qwen3-235b-a22b.json"), "moe_intermediate_size"), "moe_intermediate_size", "an expert's width"},
      {"llama3-8b.json", without_key(hf_text("llama3-8b.json"), "max_position_embeddings"), "max_position_embeddings", "missing (the context window"},
      {"deepseek-v3.json", without_key(hf_text("deepseek-v3.json"), "kv_lora_rank"), "kv_lora_rank", "gives multi-head latent attention"},
      {"deepseek-v3.json", without_key(hf_text("deepseek-v3.json"), "topk_group"), "topk_group", "missing, and n_group gives group-limited routing"},
      {"deepseek-v3.json", replace_once(hf_text("deepseek-v3.json"), "\"n_group\": 8", "\"n_group\": 7"), "n_group", "7 does not divide the 256 routed experts"},
      {"deepseek-v3.json", replace_once(replace_once(hf_text("deepseek-v3.json"), "\"n_group\": 8", "\"n_group\": 128"), "\"topk_group\": 4", "\"topk_group\": 1"),
       "topk_group", "1 groups of 2 experts hold fewer than num_experts_per_tok (8)"},
      {"llama3-8b.json", replace_once(hf_text("llama3-8b.json"), "\"hidden_act\": \"silu\"", "\"hidden_act\": \"frobnicate\""), "hidden_act",
       "unknown activation 'frobnicate'"},
      {"llama3-8b.json", replace_once(hf_text("llama3-8b.json"), "\"hidden_act\": \"silu\"", "\"hidden_act\": \"silu\", \"mamba_d_state\": 16"),
       "mamba_d_state", "state-space (Mamba) layers are not modelled"},
      {"llama3-8b.json", replace_once(hf_text("llama3-8b.json"), "\"hidden_act\": \"silu\"", "\"hidden_act\": \"silu\", \"is_encoder_decoder\": true"),
       "is_encoder_decoder", "not a decoder-only language model"},
  };
  for (const Case& c : cases) {
    const auto e = catch_input_error([&] { parse_hf_config({c.file, c.text}); });
    EXPECT_EQ(e.where, std::string(c.file) + ": " + c.where) << e.what;
    EXPECT_TRUE(contains(e.what, c.what)) << c.where << ": " << e.what;
  }
  // The error says what is wrong: an unknown layer type (not "a pattern xpuplan cannot hold"), a
  // text_config that is not an object (not "num_hidden_layers: missing"), a whole number beyond 64
  // bits (not "must be an integer").
  const std::string small = R"({"num_hidden_layers": 2, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 1024,
      "vocab_size": 1000, "max_position_embeddings": 4096)";
  auto err = catch_input_error([&] {
    parse_hf_config({"lt.json", small + R"(, "sliding_window": 128, "layer_types": ["sliding_attention", "mamba"]})"});
  });
  EXPECT_EQ(err.where, "lt.json: layer_types");
  EXPECT_TRUE(contains(err.what, "unknown layer type \"mamba\"")) << err.what;
  err = catch_input_error([&] { parse_hf_config({"tc.json", R"({"text_config": "oops"})"}); });
  EXPECT_EQ(err.where, "tc.json: text_config");
  err = catch_input_error([&] {
    parse_hf_config({"big.json", replace_once(small + "}", "\"hidden_size\": 512", "\"hidden_size\": 100000000000000000000")});
  });
  EXPECT_EQ(err.where, "big.json: hidden_size");
  EXPECT_TRUE(contains(err.what, "must be at most 2147483647")) << err.what;
  // A key given twice in one object is refused (the parser kept the last: vocab 5); the same key in
  // two different objects is not a duplicate.
  err = catch_input_error([&] { parse_hf_config({"dup.json", small + R"(, "vocab_size": 5})"}); });
  EXPECT_EQ(err.where, "dup.json: vocab_size");
  err = catch_input_error([&] {
    parse_hf_config({"dup2.json", R"({"text_config": )" + small + R"(, "rope_scaling": {"factor": 8, "factor": 4}}})"});
  });
  EXPECT_EQ(err.where, "dup2.json: factor");
  EXPECT_NO_THROW(parse_hf_config({"ok.json", small + R"(, "a": {"factor": 1}, "b": {"factor": 2}, "rope_scaling": {"factor": 8}})"}));
  // Recurrent blocks (RecurrentGemma) and linear-attention layers (MiniMax-Text-01) are refused, as
  // Mamba layers are; they had been read as softmax attention.
  err = catch_input_error([&] { parse_hf_config({"rg.json", small + R"(, "block_types": ["recurrent", "recurrent", "attention"]})"}); });
  EXPECT_EQ(err.where, "rg.json: block_types");
  err = catch_input_error([&] { parse_hf_config({"mm.json", small + R"(, "attn_type_list": [0, 0, 1]})"}); });
  EXPECT_EQ(err.where, "mm.json: attn_type_list");
  // The context window under other names (Baichuan's model_max_length), and none for ALiBi models
  // (BLOOM): both loaded before the window became required, and load now.
  const std::string no_window = R"({"num_hidden_layers": 2, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 1024,
      "vocab_size": 1000)";
  EXPECT_EQ(parse_hf_config({"bc.json", no_window + R"(, "model_max_length": 4096})"}).max_seq_len, 4096);
  const Model bloom = parse_hf_config({"bl.json", R"({"architectures": ["BloomForCausalLM"], "model_type": "bloom", "n_layer": 24,
      "hidden_size": 1024, "n_head": 16, "vocab_size": 250880})"});
  EXPECT_EQ(bloom.max_seq_len, 0);
  EXPECT_FALSE(bloom.gated_mlp);
  // GPT-2 keys with a gated activation (Jais: swiglu) have three matrices; Falcon's MLP is 4 x hidden.
  EXPECT_TRUE(parse_hf_config({"j.json", R"({"architectures": ["JAISLMHeadModel"], "n_layer": 2, "n_embd": 512, "n_head": 8,
      "n_inner": 1365, "vocab_size": 1000, "n_positions": 2048, "activation_function": "swiglu"})"}).gated_mlp);
  // As Falcon-7B publishes it: no intermediate size and no context window (FalconConfig's 2048).
  const Model falcon = parse_hf_config({"f.json", R"({"architectures": ["FalconForCausalLM"], "model_type": "falcon",
      "num_hidden_layers": 2, "hidden_size": 512, "num_attention_heads": 8, "vocab_size": 1000, "multi_query": true})"});
  EXPECT_EQ(falcon.ffn_hidden, 2048);
  EXPECT_EQ(falcon.max_seq_len, 2048);
  EXPECT_EQ(falcon.kv_heads, 1);
  // Falcon-40B's new decoder architecture counts its KV heads in num_kv_heads (it had read as MHA).
  EXPECT_EQ(parse_hf_config({"f40.json", R"({"architectures": ["FalconForCausalLM"], "model_type": "falcon", "num_hidden_layers": 2,
      "hidden_size": 512, "num_attention_heads": 8, "num_kv_heads": 2, "new_decoder_architecture": true, "vocab_size": 1000})"}).kv_heads, 2);
  // BERT by its model_type.
  const auto e = catch_input_error([] {
    parse_hf_config({"bert.json", R"({"architectures": ["BertForMaskedLM"], "model_type": "bert", "num_hidden_layers": 12,
        "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522,
        "max_position_embeddings": 512, "hidden_act": "gelu"})"});
  });
  EXPECT_EQ(e.where, "bert.json: model_type");
  // Gemma 2 without head_dim or sliding_window takes Gemma2Config's defaults (256, 4096), as the
  // README says (it had read hidden / heads = 224 and full attention in every layer).
  const Model full = parse_hf_config({"g.json", hf_text("gemma2-9b.json")});
  std::string bare = without_key(hf_text("gemma2-9b.json"), "head_dim");
  bare = without_key(without_key(bare, "sliding_window_size"), "sliding_window");
  const Model g = parse_hf_config({"g.json", bare});
  EXPECT_EQ(g.head_dim, 256);
  EXPECT_EQ(g.sliding_window, 4096);
  EXPECT_EQ(g.window_layer_count(), full.window_layer_count());
}

TEST(BadInput, JsonMoeWithoutTopK) {
  // 8 experts but no num_experts_per_tok.
  const auto e = catch_input_error([] {
    parse_hf_config({"cfg/config.json", R"({"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
                                             "vocab_size": 32000, "intermediate_size": 11008, "num_local_experts": 8})"});
  });
  EXPECT_TRUE(contains(e.where, "num_experts_per_tok")) << e.what;
}

// ---- CSV ----

TEST(BadInput, CsvUnterminatedQuote) {
  // The quote opened on line 3 never closes.
  const auto e = catch_input_error([] { parse_csv({"runs.csv", "a,b\n1,2\n3,\"four\n5,6\n"}); });
  EXPECT_EQ(e.where, "runs.csv:3");
  EXPECT_TRUE(contains(e.what, "unterminated")) << e.what;
}

TEST(BadInput, CsvWrongFieldCount) {
  // Line 3 has 3 fields, the header 2.
  const auto e = catch_input_error([] { parse_csv({"runs.csv", "a,b\n1,2\n3,4,5\n"}); });
  EXPECT_EQ(e.where, "runs.csv:3");
  EXPECT_TRUE(contains(e.what, "3 fields")) << e.what;
}

TEST(BadInput, CsvEmpty) {
  // No header line at all.
  const auto e = catch_input_error([] { parse_csv({"runs.csv", ""}); });
  EXPECT_EQ(e.where, "runs.csv");
}

// ---- validate: malformed cells ----

// A valid row (llama3-8b from the catalog on 8 dgx-h100 GPUs) with some cells replaced.
std::map<std::string, std::string> valid_row(const std::map<std::string, std::string>& changes) {
  std::map<std::string, std::string> row = {
      {"id", "R1"},        {"source", "test"}, {"grade", "A"},     {"system", "dgx-h100"}, {"devices", "8"},
      {"model", "llama3-8b"}, {"seq_len", "8192"}, {"global_batch", "128"}, {"micro_batch", "1"}, {"tp", "2"},
      {"pp", "1"},          {"dp", "4"},        {"cp", "1"},        {"zero", "1"},          {"recompute", "none"},
      {"precision", "bf16"}, {"metric", "tokens_per_s_per_device"}, {"value", "5000"}};
  for (const auto& [k, v] : changes) row[k] = v;
  return row;
}

TEST(BadInput, ValidateValidRowPasses) {
  // The row without changes is evaluated (so the failures below come from the changed cell).
  const CsvTable t = parse_csv({"runs.csv", test::training_header() + test::training_row(valid_row({}))});
  const ValidationResult r = validate_training(t, builtin());
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_TRUE(r.rows[0].evaluated) << r.rows[0].reason;
}

TEST(BadInput, ValidateNonNumericDevices) {
  // Row on line 2 with devices = "abc".
  const std::string text = test::training_header() + test::training_row(valid_row({{"devices", "abc"}}));
  const CsvTable t = parse_csv({"runs.csv", text});
  const auto e = catch_input_error([&] { validate_training(t, builtin()); });
  EXPECT_EQ(e.where, "runs.csv:2: devices");
  EXPECT_TRUE(contains(e.what, "abc")) << e.what;
}

TEST(BadInput, ValidateUnknownRecompute) {
  // recompute = "sometimes" is none of none, selective, full.
  const std::string text = test::training_header() + test::training_row(valid_row({{"recompute", "sometimes"}}));
  const CsvTable t = parse_csv({"runs.csv", text});
  const auto e = catch_input_error([&] { validate_training(t, builtin()); });
  EXPECT_EQ(e.where, "runs.csv:2: recompute");
}

TEST(BadInput, ValidateHeaderLacksColumn) {
  // A header with 3 of the 34 training columns: the error points at line 1.
  const CsvTable t = parse_csv({"runs.csv", "id,grade,system\nR1,A,dgx-h100\n"});
  const auto e = catch_input_error([&] { validate_training(t, builtin()); });
  EXPECT_EQ(e.where, "runs.csv:1");
}

// ---- explicit plan knobs that cannot work ----

PlanRequest request_64() {
  PlanRequest q;
  q.devices = 64;
  q.work = {8192, 128};
  return q;
}

TEST(BadInput, TpNotDividingDevices) {
  // 64 % 3 != 0.
  PlanRequest q = request_64();
  q.tp = 3;
  const auto e = catch_input_error([&] { choose_plan(builtin().model("llama3-70b"), builtin().system("dgx-h100"), q); });
  EXPECT_EQ(e.where, "--tp");
  EXPECT_TRUE(contains(e.what, "64")) << e.what;
}

TEST(BadInput, DegreesDoNotMultiplyToDevices) {
  // tp 8 x pp 2 x dp 2 x cp 1 = 32 != 64.
  PlanRequest q = request_64();
  q.tp = 8;
  q.pp = 2;
  q.dp = 2;
  q.cp = 1;
  const auto e = catch_input_error([&] { choose_plan(builtin().model("llama3-70b"), builtin().system("dgx-h100"), q); });
  EXPECT_EQ(e.where, "--dp");
  EXPECT_TRUE(contains(e.what, "32")) << e.what;
}

TEST(BadInput, GivenDegreesExceedDevices) {
  // tp 8 x pp 16 = 128 > 64 devices: no dp or cp can make the product 64, so the knobs cannot work
  // (choose.hpp: InputError naming the flag), even though each degree alone divides 64.
  PlanRequest q = request_64();
  q.tp = 8;
  q.pp = 16;
  const auto e = catch_input_error([&] { choose_plan(builtin().model("llama3-70b"), builtin().system("dgx-h100"), q); });
  EXPECT_EQ(e.where.rfind("--", 0), 0u) << "where = '" << e.where << "'";
  EXPECT_TRUE(contains(e.what, "128")) << e.what;
}

TEST(BadInput, TpNotDividingHeads) {
  // llama2-13b has 40 heads: tp 16 divides 64 devices but not 40 heads.
  PlanRequest q = request_64();
  q.tp = 16;
  const auto e = catch_input_error([&] { choose_plan(builtin().model("llama2-13b"), builtin().system("dgx-h100"), q); });
  EXPECT_EQ(e.where, "--tp");
  EXPECT_TRUE(contains(e.what, "40")) << e.what;
}

TEST(BadInput, ExpertParallelOnDenseModel) {
  // ep 8 on llama3-70b, which has no experts.
  PlanRequest q = request_64();
  q.ep = 8;
  const auto e = catch_input_error([&] { choose_plan(builtin().model("llama3-70b"), builtin().system("dgx-h100"), q); });
  EXPECT_EQ(e.where, "--ep");
}

TEST(BadInput, UnsupportedPrecision) {
  // H100 has no fp4 matrix path.
  PlanRequest q = request_64();
  q.precision = Precision::fp4;
  const auto e = catch_input_error([&] { choose_plan(builtin().model("llama3-70b"), builtin().system("dgx-h100"), q); });
  EXPECT_EQ(e.where, "--precision");
}

}  // namespace
}  // namespace xpu
