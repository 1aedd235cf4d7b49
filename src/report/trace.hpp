// A Chrome / Perfetto trace of one training step's pipeline schedule (open it in
// https://ui.perfetto.dev or chrome://tracing), from the event-driven simulator.
#pragma once

#include <nlohmann/json.hpp>

#include "perf/pipeline_sim.hpp"
#include "train/report.hpp"

namespace xpu {

// The simulator's input for a report's plan: r.layout.pp stages, r.layout.vp chunks, r.microbatches,
// chunk times r.stage_fwd[i] / vp and r.stage_bwd[i] / vp, sends of r.p2p_time. Needs a report
// evaluated with detail (stage_fwd and stage_bwd of size pp); throws std::invalid_argument if not.
PipelineInput pipeline_input(const TrainReport& r);

// The evaluator's closed form of the same pipeline (s): microbatches x slowest stage +
// (pp - 1) / vp x mean stage, a stage being its forward + backward per microbatch. No sends.
// Interleaved chunks of unequal layers (TrainReport::chunk_share) have none: the evaluator's
// figure there, returned here, is the schedule simulated chunk by chunk without sends.
double pipeline_closed_form(const TrainReport& r);

// The trace, JSON object format: {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}.
// Every forward and backward is a complete event ("ph": "X", "ts" and "dur" in microseconds,
// rounded to the nanosecond) on process 0, thread = its stage (named "stage N" by metadata
// events), with args microbatch, chunk and direction. With sends (p2p > 0) each send is a
// "send mb N" event on its receiving stage's companion track(s) "stage N recv" (sorted just
// below the stage; a second lane "stage N recv 2", ... only where sends overlap in time, as a
// thread track must not hold overlapping slices). Needs sim run with record_events.
nlohmann::ordered_json chrome_trace(const TrainReport& r, const PipelineResult& sim);

}  // namespace xpu
