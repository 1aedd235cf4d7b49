// Helpers shared by the unit tests: the built-in catalog (parsed once), paths of fixtures, and a
// catcher for InputError that keeps where() and what() for the assertions.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "load/catalog.hpp"
#include "spec/error.hpp"

namespace xpu::test {

inline const Catalog& builtin() {
  static const Catalog c = build_catalog(builtin_data_files());
  return c;
}

inline std::string source_path(const std::string& rel) { return std::string(XPUPLAN_SOURCE_DIR) + "/" + rel; }

struct Caught {
  bool thrown = false;
  std::string where, what;
};

// Runs f and returns the InputError it threw (thrown = false, plus a test failure, if none).
template <class F>
Caught catch_input_error(F&& f) {
  Caught c;
  try {
    f();
  } catch (const InputError& e) {
    c.thrown = true;
    c.where = e.where();
    c.what = e.what();
    return c;
  }
  ADD_FAILURE() << "expected an InputError, none was thrown";
  return c;
}

// Replaces the one occurrence of `from` in `text` (fails the test if it is not there exactly once).
inline std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "fixture text lacks '" << from << "'";
  if (at == std::string::npos) return text;
  EXPECT_EQ(text.find(from, at + 1), std::string::npos) << "'" << from << "' occurs more than once";
  return text.replace(at, from.size(), to);
}

// The header of validation/training-public.csv (validation/FORMAT.md, training-*.csv).
inline const char* kTrainingColumns[] = {
    "id", "source", "grade", "system", "devices", "model", "layers", "hidden", "heads", "kv_heads", "head_dim",
    "ffn_hidden", "vocab", "gated_mlp", "moe_experts", "moe_topk", "moe_ffn_hidden", "moe_shared_experts",
    "moe_dense_layers", "seq_len", "global_batch", "micro_batch", "tp", "pp", "vp", "dp", "cp", "ep", "zero",
    "recompute", "precision", "metric", "value", "notes"};

// The inference table's header (validation/FORMAT.md), as one line.
inline const std::string kInferenceHeader =
    "id,source,grade,system,devices,model,layers,hidden,heads,kv_heads,head_dim,ffn_hidden,vocab,gated_mlp,moe_experts,"
    "moe_topk,moe_ffn_hidden,moe_shared_experts,moe_dense_layers,weight_precision,kv_precision,tp,pp,ep,replicas,"
    "scenario,input_len,output_len,concurrency,request_rate,ttft_slo_ms,tpot_slo_ms,metric,stat,value,notes\n";

inline std::string training_header() {
  std::string out;
  for (const char* c : kTrainingColumns) out += (out.empty() ? "" : ",") + std::string(c);
  return out + "\n";
}

// One training-table line from column -> cell (absent columns are empty; every cell is quoted).
inline std::string training_row(const std::map<std::string, std::string>& cells) {
  std::string out;
  bool first = true;
  for (const char* c : kTrainingColumns) {
    if (!first) out += ",";
    first = false;
    auto it = cells.find(c);
    if (it == cells.end()) continue;
    out += "\"";
    for (char ch : it->second) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    out += "\"";
  }
  return out + "\n";
}

}  // namespace xpu::test
