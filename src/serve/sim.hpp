// Discrete-event serving simulator: continuous batching with iteration-level scheduling.
//
// Each replica runs iterations back to back while it has work. An iteration decodes one token
// for every running sequence and spends the rest of the token budget on prefill chunks (running
// prefills first, then waiting requests first-come first-served, each admitted only when the
// paged KV cache has blocks for its whole prompt and the batch has a free slot; with
// SimOptions::reserve_output, only when blocks for its whole output are free too, beside those
// promised to the running sequences). A decode sequence takes a new KV block each time its
// context crosses a block boundary; when no block is free the most recently admitted running
// sequence, decoding or still prefilling, is preempted as vLLM does (its blocks freed, its prompt
// and every token it generated recomputed later, before it generates more; an iteration that
// preempted admits no waiting prompt), which reserved admission never lets happen. A sequence
// that cannot grow even alone in the cache is dropped, as is one whose context exceeds the cache
// at admission. The iteration's time comes from StepModel (for an engine
// whose serving file sets engine.mixed_batches = false, the decode pass plus the prefill pass
// when an iteration has both). Events are
// iterations, not tokens: per-sequence state changes only on admission, completion and
// preemption, so a million requests take seconds.
//
// Replicas are independent: requests go round robin (open-loop workloads), a fixed share of the
// concurrency, or whole agent tasks. A replica of pp > 1 pipeline stages keeps pp micro-batches in
// flight (vLLM's batch queue, TensorRT-LLM's micro-batches): it runs as pp lanes, each with 1/pp of
// the replica's KV cache and batch cap, whose iterations pass through every stage (a full pass),
// so a single request sees every stage and the stages take turns on the lanes. Disaggregated serving (prefill_replicas > 0) runs the
// prefill pool first (each request ends at its first token), moves its KV cache to the decode
// pool over the network, and runs the decode pool on those arrivals.
#pragma once

#include <string>
#include <vector>

#include "serve/step.hpp"
#include "serve/workload.hpp"

namespace xpu {

struct SimOptions {
  int max_batch = 256;       // sequences per iteration
  int token_budget = 8192;   // tokens per iteration
  int prefill_replicas = 0;  // > 0: disaggregated; the other replicas decode
  int compiled_batch = 0;    // > 0: static-shape decode graph; a decode pass computes this many
                             // slots, idle ones padded and attending over the mean running context
  int prefill_pad = 0;       // > 0: fixed-shape prefill graph; each prompt's prefill is padded up
                             // to a multiple of this many tokens (Neuron context encoding / chunks)
  bool reserve_output = false;  // KV admission reserves each request's whole output (ServingCalibration)
  bool prefill_first = false;   // scheduler: an iteration with waiting prompts runs them whole and
                                // no decode (vLLM V0 without chunked prefill); else decode first,
                                // prompts chunked into the rest of the token budget
  // Speculative decoding (step.hpp). An iteration is one verification step: each decode sequence
  // takes k + 1 tokens of the budget and gains the whole part's increase of the running sum of
  // tokens_per_step (E), so the steps average E tokens (floor(E) or floor(E) + 1 each, the same for
  // every sequence: no per-sequence draw of the accepted count); its KV blocks are taken position
  // by position. The StepModel must be built with the same Speculation.
  Speculation spec;
  double prefill_kv_free = 0;   // > 0: waiting prompts are admitted only in an iteration that starts
                                // with more than this share of the KV blocks free (AMD's vLLM fork,
                                // VLLM_SCHED_PREFILL_KVC_FREEPCT / 100); 0: whenever blocks fit them
};

struct RequestRecord {
  double arrival = 0, first_token = 0, finish = 0;
  int input = 0, output = 0;
  int task = -1;           // agent task, or -1
  int preemptions = 0;
  double kv_transfer = 0;  // disaggregated: seconds moving the KV cache
};

struct SimResult {
  bool ok = true;
  std::string reason;               // when !ok: why nothing could be simulated
  std::vector<RequestRecord> requests;  // completed requests, in order of creation
  int dropped = 0;                  // requests whose context can never fit the KV cache (not completed;
                                    // tokens they sampled are not in output_tokens)
  int dropped_prompt = 0;           // of those, requests whose prompt alone exceeds the cache
  double makespan_s = 0;            // first arrival to last completion
  long iterations = 0;
  long decode_rows = 0;             // decode sequences summed over iterations (requests, not samples)
  long prompt_iterations = 0;       // iterations that computed prompt tokens
  long preemptions = 0;
  double kv_util_mean = 0, kv_util_peak = 0;  // blocks in use / blocks, time-weighted over busy time
  double busy_s = 0;                // replica-seconds with an iteration running
  double prefill_share = 0;         // share of busy time spent on prefill tokens (by tokens in each step)
  long input_tokens = 0, output_tokens = 0, prefill_tokens = 0;  // prefill_tokens: computed (with recompute, without cache hits)
  int tasks = 0;
  int tasks_completed = 0;          // agent tasks whose every call completed (a dropped call ends its task)
  // Disaggregated serving: the prefill pool's share of the figures above (the rest is the decode
  // pool's), for --explain's per-pool steps.
  struct Pool {
    long iterations = 0, prompt_iterations = 0, prefill_tokens = 0, output_tokens = 0, decode_rows = 0;
    double busy_s = 0;
  } prefill_pool;
};

// Deterministic for a given workload seed. `prefill` models the prefill pool in disaggregated
// mode (it may be the same object as `decode`).
SimResult simulate(const StepModel& decode, const ServeWorkload& w, const SimOptions& o, const StepModel* prefill = nullptr);

}  // namespace xpu
