#include "validate/validate.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>
#include <limits>
#include <memory>

#include "serve/workload.hpp"
#include "spec/error.hpp"
#include "train/choose.hpp"
#include "units/units.hpp"
#include "validate/rows.hpp"

namespace xpu {

namespace {

const char* kTrainingColumns[] = {"id", "source", "grade", "system", "devices", "model", "layers", "hidden", "heads",
                                  "kv_heads", "head_dim", "ffn_hidden", "vocab", "gated_mlp", "moe_experts", "moe_topk",
                                  "moe_ffn_hidden", "moe_shared_experts", "moe_dense_layers", "seq_len", "global_batch",
                                  "micro_batch", "tp", "pp", "vp", "dp", "cp", "ep", "zero", "recompute", "precision",
                                  "metric", "value", "notes"};

}  // namespace

void add_error(ErrorStats& s, double err) {
  s.mape_pct += std::fabs(err);
  s.max_abs_pct = std::max(s.max_abs_pct, std::fabs(err));
  ++s.count;
}

bool read_row_head(const RowReader& r, int line, const std::set<std::string>* only, ValidationRow& row) {
  row.line = line;
  row.id = r.str("id");
  if (row.id.empty()) r.fail("id", "empty (required)");
  if (only && !only->count(row.id)) return false;
  row.grade = r.str("grade");
  if (row.grade != "A" && row.grade != "B" && row.grade != "C") r.fail("grade", "must be A, B or C");
  row.system = r.str("system");
  row.model = r.str("model");
  row.metric = r.str("metric");
  return true;
}

void finish_error(ErrorStats& s) {
  if (s.count > 0) s.mape_pct /= s.count;
}

void settle_row(ValidationRow& row, const std::string& reason) {
  if (row.evaluated) {
    row.error_pct = (row.predicted - row.measured) / row.measured * 100.0;
  } else {
    row.reason = reason;
    row.error_pct = 100.0;
  }
}

void summarise(ValidationResult& out, std::map<std::string, ErrorStats>& groups,
               const std::function<std::string(const ValidationRow&)>& group) {
  for (const auto& row : out.rows) {
    add_error(out.per_grade[row.grade], row.error_pct);
    if (row.grade != "A" && row.grade != "B") continue;
    add_error(out.headline, row.error_pct);
    if (row.evaluated) add_error(out.evaluated_ab, row.error_pct);
    if (!row.moe) add_error(out.dense, row.error_pct);
    add_error(out.per_system[row.system], row.error_pct);
    add_error(groups[group(row)], row.error_pct);
  }
  finish_error(out.headline);
  finish_error(out.evaluated_ab);
  finish_error(out.dense);
  for (auto* m : {&out.per_system, &groups, &out.per_grade})
    for (auto& [k, s] : *m) finish_error(s);
}

Model model_from_row(const RowReader& r, const Catalog& c) {
  const std::string name = r.str("model");
  if (r.str("layers").empty()) {
    auto it = c.models.find(name);
    // FORMAT.md: with the architecture columns empty the model must be a catalog id; a typo is bad
    // input, not a row the model cannot predict (it had been counted NOT EVALUATED at 100%).
    if (it == c.models.end()) r.fail("model", "'" + name + "' is not a catalog model id and the architecture columns are empty (xpuplan catalog list)");
    return it->second;
  }
  Model m;
  m.id = m.name = name;
  m.file = r.where() + " (its architecture columns)";  // where --explain says the figures come from
  m.layers = static_cast<int>(r.req_int("layers"));
  if (m.layers > kMaxLayers) r.fail("layers", "must be at most " + std::to_string(kMaxLayers) + ", got " + r.str("layers"));
  m.hidden = r.req_int("hidden");
  m.heads = static_cast<int>(r.req_int("heads"));
  m.kv_heads = static_cast<int>(r.opt_int("kv_heads").value_or(m.heads));
  if (m.heads % m.kv_heads != 0) r.fail("kv_heads", "must divide heads");
  m.head_dim = static_cast<int>(r.opt_int("head_dim").value_or(0));
  if (m.head_dim == 0) {
    if (m.hidden % m.heads != 0) r.fail("head_dim", "empty and hidden is not a multiple of heads");
    m.head_dim = static_cast<int>(m.hidden / m.heads);
  }
  m.ffn_hidden = r.req_int("ffn_hidden");
  m.vocab = r.req_int("vocab");
  auto gated = r.opt_int("gated_mlp", 0);
  if (!gated || *gated > 1) r.fail("gated_mlp", "must be 0 or 1");
  m.gated_mlp = *gated == 1;
  if (auto e = r.opt_int("moe_experts", 0); e && *e > 0) {
    m.moe.experts = static_cast<int>(*e);
    m.moe.top_k = static_cast<int>(r.req_int("moe_topk"));
    if (m.moe.top_k > m.moe.experts) r.fail("moe_topk", "exceeds moe_experts");
    m.moe.ffn_hidden = r.opt_int("moe_ffn_hidden").value_or(m.ffn_hidden);
    m.moe.shared_experts = static_cast<int>(r.opt_int("moe_shared_experts", 0).value_or(0));
    m.moe.dense_layers = static_cast<int>(r.opt_int("moe_dense_layers", 0).value_or(0));
    if (m.moe.dense_layers >= m.layers) r.fail("moe_dense_layers", "must be fewer than layers");
  }
  return m;
}

RunFacts parse_run_facts(const CsvTable& t, FactTable kind) {
  for (const char* col : {"id", "field", "value", "source"})
    if (t.column(col) < 0) throw InputError(t.path + ":1", std::string("header lacks column '") + col + "'");
  const bool inference = kind == FactTable::inference;
  RunFacts out;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    RowReader r(t, i);
    RunFact f;
    f.line = t.row_lines[i];
    f.file = t.path;
    const std::string id = r.str("id");
    if (id.empty()) r.fail("id", "empty (required)");
    f.field = r.str("field");
    bool known = false;
    std::string names;
    auto consider = [&](const char* k) {
      known = known || f.field == k;
      names += (names.empty() ? "" : ", ") + std::string(k);
    };
    if (inference)
      for (const char* k : kInferenceFactFields) consider(k);
    else
      for (const char* k : kRunFactFields) consider(k);
    if (!known) r.fail("field", "'" + f.field + "' is not one of " + names);
    // Facts whose value is a name: each checked by its parser, with the names it takes.
    struct TextFact {
      const char* field;
      bool (*ok)(const std::string&);
      const char* takes;
    };
    static const TextFact kTextFacts[] = {
        {"precision", [](const std::string& v) { return parse_precision(v).has_value(); }, "a known precision"},
        {"rank_order", [](const std::string& v) { return parse_rank_order(v).has_value(); }, "tp-cp-dp-pp or tp-cp-pp-dp"},
        {"attention", [](const std::string& v) { return parse_attention_kernel(v).has_value(); }, "flash or unfused"},
        {"moe_dispatcher", [](const std::string& v) { return parse_moe_dispatcher(v).has_value(); }, "flex or alltoall"},
        {"schedule", [](const std::string& v) { return parse_schedule(v).has_value(); }, "1f1b, zb-h1 or dualpipev"},
        {"recompute_modules", [](const std::string& v) { return parse_recompute_modules(v, nullptr).has_value(); },
         "modules joined by '+' or ',' (core_attn, layernorm, mla_up_proj, moe_act, mlp, moe, shared_experts)"},
        {"input_spread", [](const std::string& v) { return parse_spread(v).has_value(); }, "uniform:TOKENS, normal:TOKENS or none"},
        {"output_spread", [](const std::string& v) { return parse_spread(v).has_value(); }, "uniform:TOKENS, normal:TOKENS or none"},
        {"batcher", [](const std::string& v) { return parse_batcher(v).has_value(); }, "SECONDS or SECONDS:MAX"},
        {"kv_admission", [](const std::string& v) { return parse_kv_admission(v).has_value(); }, "guaranteed or optimistic"},
        {"scheduler", [](const std::string& v) { return parse_scheduler(v).has_value(); }, "chunked or prefill-first"},
        {"attention_window", [](const std::string& v) { return v == "full" || v == "model"; }, "full or model"},
        {"fp4_scope", [](const std::string& v) { return v == "all" || v == "experts"; }, "all or experts"},
    };
    if (f.field == "pipeline_layout") {  // its parser says what is wrong and where
      f.text = r.str("value");
      try {
        parse_pipeline_layout(f.text, "pipeline_layout");
      } catch (const InputError& e) {
        r.fail("value", e.what());
      }
    }
    const TextFact* text_fact = nullptr;
    for (const auto& t : kTextFacts)
      if (f.field == t.field) text_fact = &t;
    if (f.field == "pipeline_layout") {
    } else if (text_fact) {
      f.text = r.str("value");
      if (!text_fact->ok(f.text)) r.fail("value", "'" + f.text + "' is not " + text_fact->takes);
    } else if (f.field == "moe_a2a_overlap") {
      f.value = r.req_number("value");
      if (f.value != 0 && f.value != 1) r.fail("value", "moe_a2a_overlap must be 1 (overlapped) or 0");
    } else if (f.field == "activation_offload") {
      f.value = r.req_number("value");
      if (f.value != 0 && f.value != 1) r.fail("value", "activation_offload must be 1 (kept activations offloaded to host memory) or 0");
    } else if (f.field == "mtp_layers") {
      f.value = r.req_number("value");
      if (!(f.value >= 0 && f.value <= kMaxLayers && f.value == std::floor(f.value)))
        r.fail("value", "mtp_layers must be a whole number of MTP modules, 0 to " + std::to_string(kMaxLayers));
    } else if (f.field == "lowp_params") {
      f.value = r.req_number("value");
      if (f.value != 0 && f.value != 1) r.fail("value", "lowp_params must be 1 (fp8/fp4 primary weights) or 0 (bf16)");
    } else if (f.field == "fsdp_overlap") {
      f.value = r.req_number("value");
      if (!(f.value >= 0 && f.value <= 1)) r.fail("value", "fsdp_overlap must be between 0 and 1");
    } else if (f.field == "prefill_kv_free") {
      f.value = r.req_number("value");
      if (!(f.value >= 0 && f.value < 1)) r.fail("value", "prefill_kv_free must be a share of the KV cache, at least 0 and below 1");
    } else {
      f.value = r.req_positive("value");
    }
    if (f.field == "moe_imbalance" && f.value < 1) r.fail("value", "moe_imbalance must be at least 1");
    if (f.field == "moe_capacity_factor" && f.value < 1)
      r.fail("value", "moe_capacity_factor must be at least 1 (below it tokens are dropped by design)");
    // Counts, held as int by the plan and the simulator.
    static const std::set<std::string> kWholeFacts = {"max_batch", "token_budget", "compiled_batch", "vp", "zero_group",
                                                      "prefill_pad", "requests", "samples", "beam_width"};
    if (kWholeFacts.count(f.field)) {
      if (f.value != std::floor(f.value)) r.fail("value", f.field + " must be a whole number");
      if (f.value > std::numeric_limits<int>::max())
        r.fail("value", f.field + " must be at most " + std::to_string(std::numeric_limits<int>::max()));
    }
    f.source = r.str("source");
    if (f.source.empty()) r.fail("source", "empty: every fact needs its source");
    for (const auto& g : out[id])
      if (g.field == f.field) r.fail("field", f.field + " given twice for " + id);
    out[id].push_back(std::move(f));
  }
  return out;
}

void check_unique_ids(const CsvTable& t) {
  std::map<std::string, int> seen;  // id -> line
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const std::string id = RowReader(t, i).str("id");
    if (!id.empty() && (std::isspace(static_cast<unsigned char>(id.front())) || std::isspace(static_cast<unsigned char>(id.back()))))
      throw InputError(t.path + ":" + std::to_string(t.row_lines[i]) + ": id", "'" + id + "' has spaces around it");
    const auto [at, fresh] = seen.emplace(id, t.row_lines[i]);
    if (!fresh)
      throw InputError(t.path + ":" + std::to_string(t.row_lines[i]) + ": id",
                       "'" + id + "' repeats the row of line " + std::to_string(at->second) + " (ids name one row each)");
  }
}

void blame_fact(const std::vector<RunFact>& facts, const std::string& row_id, const std::string& flag,
                const std::string& message) {
  for (const RunFact& f : facts) {
    std::string as_flag = "--" + f.field;
    std::replace(as_flag.begin(), as_flag.end(), '_', '-');
    if (as_flag != flag) continue;
    const std::string value = f.text.empty() ? format_number("%g", f.value) : f.text;
    // The message names the flag the fact stands for; the fact's own name is said already.
    const std::string prefix = flag + ": ";
    const std::string why = message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
    throw InputError(f.file + ":" + std::to_string(f.line) + ": value",
                     f.field + " " + value + " for row " + row_id + " cannot work: " + why);
  }
}

void check_fact_ids(const CsvTable& t, const RunFacts& facts) {
  std::set<std::string> ids;
  for (std::size_t i = 0; i < t.rows.size(); ++i) ids.insert(RowReader(t, i).str("id"));
  for (const auto& [id, fs] : facts)
    if (!ids.count(id))
      throw InputError(fs.front().file + ":" + std::to_string(fs.front().line) + ": id", "'" + id + "' is not a row of " + t.path);
}

bool is_training_table(const CsvTable& t) {
  return t.column("global_batch") >= 0 && t.column("metric") >= 0 && t.column("recompute") >= 0;
}

ValidationResult validate_training(const CsvTable& t, const Catalog& c, const std::set<std::string>* only,
                                   const RunFacts* facts) {
  check_header(t, kTrainingColumns, "training");
  check_unique_ids(t);
  if (facts) check_fact_ids(t, *facts);
  ValidationResult out;
  out.path = t.path;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    RowReader r(t, i);
    ValidationRow row;
    if (!read_row_head(r, t.row_lines[i], only, row)) continue;
    if (row.metric != "step_time_s" && row.metric != "tokens_per_s_per_device")
      r.fail("metric", "'" + row.metric + "' is not step_time_s or tokens_per_s_per_device");
    row.measured = r.req_positive("value");

    PlanRequest q;
    q.devices = static_cast<int>(r.req_int("devices"));
    q.work.seq_len = r.req_int("seq_len");
    auto gb = r.opt_int("global_batch");
    auto tp = r.opt_int("tp"), pp = r.opt_int("pp"), vp = r.opt_int("vp"), dp = r.opt_int("dp"), cp = r.opt_int("cp"),
         ep = r.opt_int("ep"), mb = r.opt_int("micro_batch"), z = r.opt_int("zero", 0);
    if (z && *z > 3) r.fail("zero", "must be 0..3");
    auto narrow = [](std::optional<long> v) { return v ? std::optional<int>(static_cast<int>(*v)) : std::nullopt; };
    q.tp = narrow(tp); q.pp = narrow(pp); q.vp = narrow(vp); q.dp = narrow(dp); q.cp = narrow(cp); q.ep = narrow(ep);
    q.micro_batch = narrow(mb); q.zero = narrow(z);
    if (std::string rc = r.str("recompute"); !rc.empty()) {
      auto v = parse_recompute(rc);
      if (!v) r.fail("recompute", "'" + rc + "' is not none, selective or full");
      q.recompute = v;
    }
    q.every_precision = true;  // an unstated precision is the owners' tuned choice, fp4 included
    // A run that states no pipeline layout (no pipeline_layout fact) ran Megatron's default: the
    // layers split evenly, never a layout the planner would balance.
    q.balance_pipeline = false;
    if (std::string pr = r.str("precision"); !pr.empty()) {
      row.precision_stated = true;
      auto v = parse_precision(pr);
      if (!v || (*v != Precision::bf16 && *v != Precision::fp16 && *v != Precision::fp8 && *v != Precision::fp4 && *v != Precision::int8))
        r.fail("precision", "'" + pr + "' is not a precision of FORMAT.md (bf16, fp16, fp8, fp4 or int8)");
      q.precision = v;
    }

    if (facts) {
      if (auto it = facts->find(row.id); it != facts->end()) {
        row.facts = it->second;
        for (const auto& f : row.facts) {
          if (f.field == "moe_capacity_factor") q.work.moe_capacity_factor = f.value;
          if (f.field == "moe_imbalance") q.work.moe_imbalance = f.value;
          if (f.field == "attention") q.attention = *parse_attention_kernel(f.text);
          if (f.field == "rank_order") q.rank_order = *parse_rank_order(f.text);
          if (f.field == "lowp_params") q.lowp_params = f.value == 1;
          if (f.field == "moe_dispatcher") q.moe_dispatcher = *parse_moe_dispatcher(f.text);
          if (f.field == "moe_a2a_overlap") q.moe_a2a_overlap = f.value == 1;
          if (f.field == "activation_offload") q.offload_activations = f.value == 1;
          if (f.field == "mtp_layers") q.mtp_layers = static_cast<int>(f.value);
          if (f.field == "pipeline_layout") {
            const std::string where = f.file + ":" + std::to_string(f.line) + ": value";
            auto layout = std::make_shared<PipelineLayout>(parse_pipeline_layout(f.text, where));
            try {
              q.vp = pipeline_layout_vp(*layout, q.pp, q.vp, where);
            } catch (const InputError& e) {
              throw InputError(where, "pipeline_layout for row " + row.id + ": " + std::string(e.what()).substr(where.size() + 2));
            }
            q.stage_layout = std::move(layout);
          }
          if (f.field == "schedule") q.schedule = *parse_schedule(f.text);
          if (f.field == "recompute_modules") {
            // The modules a recipe's selective recompute reruns; a row that states another recompute
            // contradicts it.
            if (q.recompute && *q.recompute != Recompute::selective)
              throw InputError(f.file + ":" + std::to_string(f.line) + ": field",
                               "recompute_modules: row " + row.id + " states recompute " + recompute_name(*q.recompute) +
                                   "; the modules are selective recompute's");
            q.recompute = Recompute::selective;
            q.recompute_modules = parse_recompute_modules(f.text, nullptr);
          }
          if (f.field == "vp") {
            if (vp)
              throw InputError(f.file + ":" + std::to_string(f.line) + ": field",
                               "vp: row " + row.id + " states its vp; a fact never overrides a stated cell");
            q.vp = static_cast<int>(f.value);
          }
          if (f.field == "zero_group") {
            if (!q.zero || *q.zero == 0)
              throw InputError(f.file + ":" + std::to_string(f.line) + ": field",
                               "zero_group: shards ZeRO state, and row " + row.id + " is not zero = 1, 2 or 3");
            q.zero_group = static_cast<int>(f.value);
            // The row's data-parallel ranks, where its cells give them (cp stated, or what tp, pp and
            // dp leave of the devices), must split into such groups.
            std::optional<long> cp_ranks = q.cp;
            if (!cp_ranks && q.tp && q.pp && q.dp) {
              const long model = static_cast<long>(*q.tp) * *q.pp * *q.dp;
              if (model > 0 && q.devices % model == 0) cp_ranks = q.devices / model;
            }
            if (q.dp && cp_ranks && (static_cast<long>(*q.dp) * *cp_ranks) % q.zero_group != 0)
              throw InputError(f.file + ":" + std::to_string(f.line) + ": value",
                               "zero_group: " + std::to_string(q.zero_group) + " does not divide row " + row.id + "'s dp x cp (" +
                                   std::to_string(static_cast<long>(*q.dp) * *cp_ranks) + ")");
          }
          if (f.field == "fsdp_rate" || f.field == "fsdp_overlap") {
            if (!q.zero || *q.zero != 3)
              throw InputError(f.file + ":" + std::to_string(f.line) + ": field",
                               f.field + ": applies to ZeRO-3 only, and row " + row.id + " is not zero = 3");
            (f.field == "fsdp_rate" ? q.fsdp.rate : q.fsdp.overlap) = f.value;
          }
          if (f.field == "precision") {
            if (row.precision_stated)
              throw InputError(f.file + ":" + std::to_string(f.line) + ": field",
                               "precision: row " + row.id + " states its precision; a fact never overrides a stated cell");
            q.precision = parse_precision(f.text);
            row.precision_stated = true;
          }
        }
        for (const auto& f : row.facts)
          if (f.field == "lowp_params" && f.value == 1 && q.precision && !can_keep_lowp_params(*q.precision))
            throw InputError(f.file + ":" + std::to_string(f.line) + ": value",
                             "lowp_params: 1 needs fp8 or fp4 weights, and row " + row.id + " runs " +
                                 precision_name(*q.precision));
      }
    }

    std::string reason;
    Model m = model_from_row(r, c);
    row.moe = m.is_moe();
    for (const auto& f : row.facts)
      if ((f.field == "moe_dispatcher" || f.field == "moe_a2a_overlap") && !row.moe)
        throw InputError(f.file + ":" + std::to_string(f.line) + ": field",
                         f.field + ": applies to mixture-of-experts rows, and row " + row.id + " is dense");
    row.arch = m;
    auto sys = c.systems.find(row.system);
    if (sys == c.systems.end()) r.fail("system", "'" + row.system + "' is not a catalog system id (xpuplan catalog list)");
    if (!gb) reason = "global_batch not stated";
    if (reason.empty()) {
      q.work.global_batch = *gb;
      try {
        TrainReport rep = choose_plan(m, sys->second, q, nullptr, /*time_if_none_fit=*/true);
        if (!rep.feasible()) reason = std::string("no plan fits: ") + rep.reason;
        else {
          row.plan = rep;
          row.predicted = row.metric == "step_time_s" ? rep.step_time : rep.tokens_per_s_per_device;
          row.evaluated = true;
        }
      } catch (const InputError& e) {
        blame_fact(row.facts, row.id, e.where(), e.what());
        reason = std::string("layout cannot work: ") + e.what();
      }
    }
    settle_row(row, reason);
    out.rows.push_back(std::move(row));
  }
  summarise(out, out.per_family, [&](const ValidationRow& row) {
    auto sys = c.systems.find(row.system);
    return sys != c.systems.end() ? sys->second.calib.family : std::string("unknown");
  });
  return out;
}

}  // namespace xpu
