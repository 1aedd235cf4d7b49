// `serve --search`: the deployment layout (tensor parallelism and replicas, batch cap,
// disaggregated prefill/decode split) that maximises output tokens/s per device, or minimises
// cost per million output tokens, within the latency SLOs. Every candidate is simulated with
// the same workload and seed; ties go to the lower mean TTFT, then the smaller tp.
#pragma once

#include "serve/serve.hpp"

namespace xpu {

enum class ServeObjective { throughput, cost };
const char* serve_objective_name(ServeObjective o);

struct ServeSearchOptions {
  ServeObjective objective = ServeObjective::throughput;
  bool vary_batch = true;   // try batch caps 8, 16, ... up to the engine default (unless --max-batch)
  bool vary_disagg = true;  // try prefill/decode splits (open-loop workloads, 2+ replicas)
  // MoE models: try every expert-parallel degree inside the tensor-parallel group (divisors of tp
  // that divide the experts; unless --ep). Off: ep 1, the engines' default (vLLM, SGLang,
  // TensorRT-LLM and NxD Inference all make expert parallelism opt-in), as `serve` without
  // --search and `validate` assume for a row that does not state it.
  bool vary_ep = true;
  // Pipeline stages 1, 2, 4, ... dividing the devices (unless --pp); off: pp 1, as `serve` without
  // --search and `validate` assume.
  bool vary_pp = true;
  int top = 5;
  // > 0: the search estimates a peak (compare --serve, contract, serve --search --offline): an
  // offline workload is simulated, per candidate, with at least this many times the requests its
  // replicas can run at once (each replica's batch cap, or the prompts its KV cache holds if
  // fewer), so start-up and drain do not dominate the throughput (ServeWorkload::requests is the
  // floor; at most kPeakMaxRequests). 0: every candidate simulates the requests given.
  int peak_waves = 0;
};

// The waves of a peak estimate (ServeSearchOptions::peak_waves): within 1% of the throughput of
// ten times as many requests on Llama 3 8B / H100, MI300X and TPU v6e (tests/test_serve.cpp).
inline constexpr int kPeakWaves = 2;
inline constexpr int kPeakMaxRequests = 1000000;
// The most one simulation takes (serve refuses more, exit 2): a deployment's devices (each replica
// is simulated; a fleet is sized arithmetically by compare --serve) and requests (about 0.3 KB of
// memory each: 10 M is some 3 GB).
inline constexpr int kMaxServeDevices = 65536;
inline constexpr int kMaxServeRequests = 10000000;

// The requests a peak estimate simulates for one candidate (see ServeSearchOptions::peak_waves):
// at least `floor`, and `waves` x replicas x min(batch cap, prompts the KV cache holds at once:
// kv_units / prompt_units, StepModel::kv_units and seq_units of one prompt).
int peak_requests(int floor, int waves, int replicas, int max_batch, long kv_units, long prompt_units);

struct ServeSearchResult {
  std::vector<ServeReport> top;  // best first
  int considered = 0, feasible = 0, within_slo = 0;
  int peak_waves = 0;  // > 0: the offline request count was sized per layout (ServeSearchOptions::peak_waves)
};

// Throws InputError for explicit knobs that cannot work (naming the flag).
ServeSearchResult serve_search(const Model& m, const System& s, const ServeRequest& q, const ServeSearchOptions& o);

}  // namespace xpu
