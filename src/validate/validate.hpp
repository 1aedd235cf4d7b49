// Predicts every row of a measured-runs table (FORMAT.md: training-*.csv or inference-*.csv,
// told apart by the header) and reports the signed error per row and the mean absolute percentage error (MAPE) overall, per system and per grade.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "load/catalog.hpp"
#include "load/csv.hpp"
#include "perf/kernels.hpp"
#include "train/report.hpp"

namespace xpu {

struct ServeReport;  // serve/serve.hpp

// A fact about a measured run that its source states but FORMAT.md has no column for (such as
// the MoE capacity factor of a MaxText "dropped" config). Kept beside the table in
// <table>.facts.csv (columns id, field, value, source), never in the measured rows themselves.
struct RunFact {
  std::string field, source, file;
  double value = 0;   // numeric facts
  std::string text;   // textual facts (precision, attention), as written; empty for numeric ones
  int line = 0;
};
using RunFacts = std::map<std::string, std::vector<RunFact>>;  // by row id

// Fields a run fact may set, for a training table...
// precision is for a row whose precision cell is empty (a fact never overrides a stated cell);
// attention names the attention kernel (flash or unfused) when the run's software predates flash
// attention (the table has no column for it; the default is flash).
// fsdp_rate (bytes/s per device) and fsdp_overlap (0-1) describe a ZeRO-3 implementation slower
// than the fabric (FsdpImpl in spec/plan.hpp), for a row with zero = 3. rank_order names the order
// the run numbered its ranks in (tp-cp-dp-pp, Megatron's default, or tp-cp-pp-dp: RankOrder). vp
// is the interleaved pipeline's chunks per stage, for a row whose vp cell is empty. lowp_params
// (1 or 0) says whether an fp8/fp4 run kept its primary weights in that precision (Megatron
// --fp8-param-gather: `lowp-w`) or in bf16; the table has no column for it (chosen if not stated).
// moe_dispatcher (flex or alltoall, MoE rows only) says how the run's tokens reached their experts
// (Layout::moe_dispatcher; flex if not stated); moe_a2a_overlap (1 or 0, MoE rows only) whether
// its expert all-to-all was overlapped (Megatron --overlap-moe-expert-parallel-comm; 0 if not stated).
// recompute_modules names what the run's selective recompute reruns (Megatron-Core
// --recompute-modules, joined by '+', e.g. mla_up_proj+mlp) for a row whose recompute cell is
// empty or selective; it makes the recompute selective. schedule names the run's pipeline schedule
// (1f1b, zb-h1 or dualpipev, as --schedule; 1f1b if not stated). activation_offload (1 or 0) says
// whether the run kept its layers' saved activations in host memory (MaxText's offloading remat
// policies, --offload-activations; 0 if not stated). mtp_layers (0 or more) says how many
// multi-token-prediction modules the run trained (Megatron-Core --mtp-num-layers, --mtp-layers; the
// model's own count if not stated, e.g. 0 for a "w/o MTP" benchmark of DeepSeek-V3).
// pipeline_layout is the run's hand-written pipeline layout in Megatron-Core's
// --pipeline-model-parallel-layout syntax (--pipeline-layout; the even split if not stated); the
// row's pp must be stated, and its vp, where stated, must agree. zero_group (whole, at least 1) is
// the dp x cp ranks that share one sharded copy of a ZeRO 1-3 run's state, replicated across the
// rest (hybrid sharding, --zero-group: MaxText's ici_fsdp inside a slice under dcn_data, PyTorch
// HSDP); all of dp x cp if not stated.
inline constexpr const char* kRunFactFields[] = {"moe_capacity_factor", "moe_imbalance", "precision", "attention",
                                                 "fsdp_rate", "fsdp_overlap", "zero_group", "rank_order", "vp", "lowp_params",
                                                 "moe_dispatcher", "moe_a2a_overlap", "recompute_modules",
                                                 "schedule", "activation_offload", "mtp_layers",
                                                 "pipeline_layout"};
// ...and for an inference table: the engine's batch (max_batch: sequences per iteration per
// replica; token_budget: tokens per iteration), and input_len / output_len for a row whose
// cell is empty (a benchmark dataset's published token statistics; a fact never overrides a
// stated cell), compiled_batch (a static-shape engine's decode batch: idle slots are padded) and
// prefill_pad (its prefill graph length: each prompt is padded up to a multiple of it), requests
// (an offline run's request count, e.g. a benchmark's number of prompts), input_spread /
// output_spread (how the benchmark drew lengths around the row's mean: uniform:W or normal:SD,
// LengthSpread in serve/workload.hpp), scheduler (the engine's: chunked or prefill-first,
// ServingCalibration::prefill_first in spec/hardware.hpp), batcher (the benchmark harness's
// front-end batcher, SECONDS[:MAX]: FrontBatcher in serve/workload.hpp; server and offline rows),
// kv_admission (the engine's KV admission, guaranteed or optimistic, as serve --kv-admission),
// prefill_kv_free (a prompt admission gate, a share of the KV blocks in [0, 1): SimOptions),
// samples / beam_width (sequences decoded per request from one prompt: ServeWorkload::samples),
// attention_window (full: the engine ran every layer with full attention, not the model's sliding
// window or chunks, as serve --full-attention; model: as the model defines them), fp4_scope
// (experts: the run's FP4 checkpoint quantizes the routed experts alone, Model::fp4_experts_only,
// as a model file's fp4_scope; all: every weight).
inline constexpr const char* kInferenceFactFields[] = {"max_batch", "token_budget", "input_len", "output_len",
                                                       "compiled_batch", "prefill_pad", "requests",
                                                       "input_spread", "output_spread", "scheduler", "batcher",
                                                       "kv_admission", "prefill_kv_free", "samples", "beam_width",
                                                       "attention_window", "fp4_scope"};

enum class FactTable { training, inference };

// Parses a facts table; throws InputError (file:line: column: problem) for unknown fields or bad values.
RunFacts parse_run_facts(const CsvTable& t, FactTable kind = FactTable::training);

// Run facts found for a measured table, and where they came from.
struct FoundFacts {
  RunFacts facts;
  std::string label;  // the facts file read, or the built-in copy and the rows matched; "" = none
  std::string text;   // what was read (the facts file's bytes and the rows matched): for fingerprints
};

// Reads the facts file at path (--facts, or <truth>.facts.csv beside the table).
FoundFacts read_run_facts(const std::string& path, FactTable kind);

// The built-in run facts for a copy of one of the project's measured tables given without its
// facts file (../shared/validation/training-public.csv, say): the facts of validation/*.facts.csv,
// embedded at build, for each row of t whose id and run columns (every column of the project's
// copy but value, grade, source and notes) equal that copy's row, so the same published run. A row
// that differs gets none. Empty label when no row matches.
FoundFacts builtin_run_facts(const CsvTable& t, FactTable kind);

// The measured tables and facts files embedded at build (CMakeLists.txt: validation/*.facts.csv
// and the table beside each).
const std::vector<DataFile>& builtin_validation_files();

// Throws InputError when a fact names an id that is not a row of t.
void check_fact_ids(const CsvTable& t, const RunFacts& facts);
// A plan or layout check failed on `flag` ("--vp", "--max-batch"): when one of the row's facts
// set that flag's value (field vp, max_batch), the facts file is at fault, not the row: throws
// InputError naming the fact's file, line and value. Returns otherwise.
void blame_fact(const std::vector<RunFact>& facts, const std::string& row_id, const std::string& flag,
                const std::string& message);

// Throws InputError (path:line: id) when two rows of a measured-runs table share an id.
void check_unique_ids(const CsvTable& t);

struct ValidationRow {
  std::string id, grade, system, model, metric;
  int line = 0;
  double measured = 0;
  double predicted = 0;
  double error_pct = 0;    // signed: (predicted - measured) / measured x 100; 100 when not evaluated
  bool evaluated = false;
  bool moe = false;        // mixture-of-experts model
  bool precision_stated = false;  // the row names its matmul precision (else the planner chose it)
  std::string reason;      // why it could not be evaluated
  std::vector<RunFact> facts;  // run facts applied to this row
  TrainReport plan;        // the plan behind the prediction (training rows)
  Model arch;              // the architecture evaluated (from the columns or the catalog)
  std::string stat;        // inference rows: mean, p50, p90 or p99
  std::string layout;      // inference rows: the serving layout behind the prediction
  std::shared_ptr<const ServeReport> serve;  // inference rows: the simulation behind the prediction
};

struct ErrorStats {
  double mape_pct = 0;
  double max_abs_pct = 0;
  int count = 0;
};

struct ValidationResult {
  std::string path;
  std::vector<ValidationRow> rows;
  ErrorStats headline;                          // grades A and B
  ErrorStats dense;                             // grades A and B, dense models only
  std::map<std::string, ErrorStats> per_system; // grades A and B
  std::map<std::string, ErrorStats> per_family; // grades A and B, by the system's calibration family
  std::string facts_path;                       // the run-facts file used ("" = none)
  std::map<std::string, ErrorStats> per_grade;  // all grades
  // Inference tables only:
  ErrorStats evaluated_ab;                      // grades A and B, evaluated rows only
  std::map<std::string, ErrorStats> per_metric; // grades A and B
};

// Is this CSV a training table (by its header)?
bool is_training_table(const CsvTable& t);

// Throws InputError for malformed cells (file:line: column: problem). A row naming an unknown
// system or model, or whose plan cannot fit, is kept with its reason and 100% error.
// only: when given, rows whose id is not in it are skipped (calibration works on subsets).
// facts: run facts by row id (a fact naming an id absent from the table is an error).
ValidationResult validate_training(const CsvTable& t, const Catalog& c, const std::set<std::string>* only = nullptr,
                                   const RunFacts* facts = nullptr);

// Is this CSV an inference table (by its header)?
bool is_inference_table(const CsvTable& t);

// Each row simulated by the serving simulator (src/serve): `server` as Poisson arrivals at
// request_rate, `offline` as all requests at once, `fixed_batch` as `concurrency` requests in
// flight, `single` as one at a time; the row's metric and stat compared with the measurement.
// Knobs the row leaves empty (tp, replicas, precisions) are chosen as `serve` chooses them.
// Rows without input_len or output_len (and no run fact giving it) cannot be evaluated (kept
// with their reason, 100% error). facts: run facts by row id (kInferenceFactFields).
ValidationResult validate_inference(const CsvTable& t, const Catalog& c, const std::set<std::string>* only = nullptr,
                                    const RunFacts* facts = nullptr);

// Is this CSV a kernels table (by its header: chip, kernel, metric; validation/README.md)?
bool is_kernel_table(const CsvTable& t);

// One row of a kernels table, read and checked.
enum class KernelKind { gemm, attention, attention_fwd_bwd, copy };
struct KernelRow {
  std::string id, grade, chip, kernel, precision_text;
  int line = 0;
  KernelKind kind = KernelKind::gemm;
  Precision precision = Precision::bf16;   // gemm and attention
  double m = 0, n = 0, k = 0;              // gemm
  double batch = 0, heads = 0, seq = 0, head_dim = 0;  // attention
  double bytes = 0;                        // copy: read + written
  double measured_s = 0;
};

// Every row of a kernels table; throws InputError (file:line: column: problem) for a bad cell.
std::vector<KernelRow> read_kernel_rows(const CsvTable& t);

// An attention row's flash-attention forward and backward seconds, launch overheads excluded
// (perf/kernels.hpp: causal, head dims 2 x head_dim); empty when the chip has no 16-bit peak.
std::optional<FlashSeconds> attention_seconds(const KernelRow& k, const Chip& chip, const Calibration& cal);

// One kernel's time on a chip with a calibration (perf/kernels.hpp); empty with *reason set when
// the chip lacks the kernel's precision.
std::optional<double> predict_kernel(const KernelRow& k, const Chip& chip, const Calibration& cal, std::string* reason);

// Each row is one kernel (gemm, attention, attention_fwd_bwd, copy) timed on one chip; predicted
// from data/chips and data/calibration by perf/kernels.hpp, as training and serving use them.
// Throws InputError for malformed cells; a chip absent from the catalog leaves the row
// unevaluated with its reason. Summaries: per kernel and precision (per_metric), per chip
// (per_system), per grade.
ValidationResult validate_kernels(const CsvTable& t, const Catalog& c);

}  // namespace xpu
