// Serving workloads: what arrives, when, and how long each request is.
//
// offline      all requests queued at time 0
// poisson      requests arrive at `rate` per second (exponential gaps, seeded)
// concurrency  `concurrency` requests in flight at all times (a new one arrives when one ends)
//              (offline, poisson and concurrency requests have input_len / output_len tokens, or,
//              with a LengthSpread, lengths drawn around them: see draw_length in sim.cpp)
// trace        explicit requests from a CSV file: arrival_s, input_tokens, output_tokens
// agent        tasks from a CSV file: each task is a chain of calls; a call's prompt is the
//              task's whole context so far (earlier prompts and answers) plus its new tokens, and
//              the next call is sent tool_s seconds after the previous one finished. With prefix
//              caching the context already in the cache is not prefilled again.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "load/csv.hpp"

namespace xpu {

enum class WorkloadKind { offline, poisson, concurrency, trace, agent };
const char* workload_name(WorkloadKind k);

// How request lengths vary around their mean in offline, poisson and concurrency workloads, as
// benchmark tools generate them:
// uniform  integer uniform in [mean - width, mean + width] (guidellm's emulated data
//          "prompt_tokens_variance", vLLM's random dataset with --random-range-ratio r: width = r x mean)
// normal   normal with standard deviation `width`, rounded (aiperf/genai-perf
//          --synthetic-input-tokens-stddev, --output-tokens-stddev)
// Either is clamped to [1, 2 x mean - 1], symmetrically, so the mean stays the stated one.
enum class SpreadKind { none, uniform, normal };
struct LengthSpread {
  SpreadKind kind = SpreadKind::none;
  double width = 0;  // tokens: uniform half-width, or normal standard deviation
  bool set() const { return kind != SpreadKind::none && width > 0; }
};
// "uniform:150", "normal:40" (or "none"); std::nullopt when malformed (negative or non-finite width,
// unknown kind).
std::optional<LengthSpread> parse_spread(const std::string& s);
// What a spread flag takes, for error messages (parse_spread's syntax and range).
inline constexpr const char* kSpreadSyntax = "uniform:TOKENS, normal:TOKENS or none (TOKENS a number from 0 to 1e7)";
// The inverse of parse_spread: "uniform:150", "none".
std::string spread_name(const LengthSpread& s);

// A front end that gathers open-loop arrivals and hands them to the engine in batches, as a
// benchmark harness's batcher does (AMD's MLPerf v4.1 vLLM harness, --enable-batcher): pending
// arrivals are released together once `window_s` has passed since the previous release, or as
// soon as `max` are pending, and each batch goes whole to one replica, replicas in turn. TTFT
// counts from the original arrival, so the wait in the batcher is part of it.
struct FrontBatcher {
  double window_s = 0;  // seconds between releases; 0: no batcher
  int max = 0;          // release as soon as this many are pending (0: no cap)
  bool set() const { return window_s > 0; }
};
// "0.3" or "0.3:96" (seconds, then an optional request cap), or "none"; std::nullopt when malformed.
std::optional<FrontBatcher> parse_batcher(const std::string& s);
// The inverse of parse_batcher: "0.3:96", "none".
std::string batcher_name(const FrontBatcher& b);

struct TraceRequest {
  double arrival_s = 0;
  int input = 0, output = 0;
  int line = 0;       // the trace file's line (0: not from a file), for errors
};

struct AgentCall {
  int new_input = 0;  // tokens added to the context before this call (user turn, tool results)
  int output = 0;
  double tool_s = 0;  // wait after this call finishes before the next call is sent
  int line = 0;       // the agent file's line (0: not from a file), for errors
};

struct AgentTask {
  std::string id;     // the file's task column
  double start_s = 0;
  std::vector<AgentCall> calls;
};

// A workload's settings without a trace's requests or an agent's tasks: what a report keeps.
struct WorkloadShape {
  WorkloadKind kind = WorkloadKind::offline;
  int requests = 1000;  // offline, poisson, concurrency: how many requests to simulate
  int input_len = 0, output_len = 0;
  LengthSpread input_spread, output_spread;  // offline, poisson, concurrency: lengths around the mean
  double rate = 0;       // poisson: requests per second (whole deployment)
  int concurrency = 0;   // concurrency: requests in flight (whole deployment)
  std::uint64_t seed = 1;
  bool prefix_cache = true;        // agent: reuse the cached context of earlier calls
  FrontBatcher batcher;            // offline, poisson, trace: arrivals reach the engine in batches
  // Sequences each request decodes from its one prompt: parallel sampling (vLLM's n, the several
  // completions per prompt of RL rollouts) or, with `beam`, beam search (TensorRT-LLM's beam
  // width). The prompt is prefilled once and its KV blocks are shared; every sequence decodes, with
  // KV blocks of its own for its generated tokens, and attends to the whole context. Parallel
  // samples are all returned (each counts as output); beams return one sequence per request.
  int samples = 1;
  bool beam = false;
};

struct ServeWorkload : WorkloadShape {
  std::vector<TraceRequest> trace; // trace
  std::vector<AgentTask> tasks;    // agent
  std::string source;              // trace, agent: the file read (errors name its lines)
};

// One line for reports: "poisson at 4 req/s (seed 1), 1000 requests of 1024 prompt + 256 output
// tokens, output lengths uniform:64"; trace and agent workloads give their request or task count.
std::string workload_summary(const ServeWorkload& w);

// A trace table: header arrival_s,input_tokens,output_tokens (any order; other columns are
// ignored). Arrivals need not be sorted; they are shifted so that the first is at 0 (Unix times
// work), and a time beyond 1e10 s is refused. Throws InputError("file:line: column", problem).
std::vector<TraceRequest> parse_trace(const CsvTable& t);

// An agent table: header task,arrival_s,new_input_tokens,output_tokens,tool_s. Rows of one task
// are its calls in order; the task's first row gives its start (arrival_s), later rows may leave
// arrival_s empty. Starts are shifted so that the first is at 0; arrival_s or tool_s beyond
// 1e10 s is refused. Throws InputError("file:line: column", problem).
std::vector<AgentTask> parse_agent(const CsvTable& t);

}  // namespace xpu
