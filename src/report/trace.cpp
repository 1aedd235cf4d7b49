#include "report/trace.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "units/units.hpp"

namespace xpu {

using nlohmann::ordered_json;

PipelineInput pipeline_input(const TrainReport& r) {
  const int pp = r.layout.pp, vp = r.layout.vp;
  if (pp < 1 || vp < 1 || r.microbatches < 1 || r.stage_fwd.size() != static_cast<size_t>(pp) ||
      r.stage_bwd.size() != static_cast<size_t>(pp))
    throw std::invalid_argument("pipeline_input: the report has no per-stage times (evaluate with detail)");
  PipelineInput in;
  in.pp = pp;
  in.vp = vp;
  in.microbatches = r.microbatches;
  in.fwd.resize(pp);
  in.bwd.resize(pp);
  for (int i = 0; i < pp; ++i) {
    in.fwd[i] = r.stage_fwd[i] / vp;
    in.bwd[i] = r.stage_bwd[i] / vp;
  }
  in.p2p = r.p2p_time;
  in.schedule = r.layout.schedule;
  // An uneven stage layout's chunks, each with its own share of its stage (as the evaluator ran them).
  if (in.schedule == PipeSchedule::one_f_one_b && vp > 1 && r.chunk_share.size() == static_cast<size_t>(pp) * vp)
    set_interleaved_chunks(in, r.stage_fwd, r.stage_bwd, r.chunk_share);
  if (in.schedule != PipeSchedule::one_f_one_b) {
    if (r.stage_wgrad.size() != static_cast<size_t>(pp))
      throw std::invalid_argument("pipeline_input: the report has no per-stage weight-gradient times");
    for (double w : r.stage_wgrad) in.wgrad.push_back(w / vp);
  }
  if (in.schedule == PipeSchedule::dualpipe_v) {
    if (r.stage_pair_saving.size() != static_cast<size_t>(pp))
      throw std::invalid_argument("pipeline_input: the report has no per-stage pair savings");
    for (double x : r.stage_pair_saving) in.pair_saving.push_back(x / vp);
    // Each chunk with its own times where the report has chunk 0's part (the evaluator's input).
    if (r.chunk0_fwd.size() == static_cast<size_t>(pp) && r.chunk0_bwd.size() == static_cast<size_t>(pp) &&
        r.chunk0_wgrad.size() == static_cast<size_t>(pp) && r.chunk0_pair_saving.size() == static_cast<size_t>(pp))
      set_dualpipe_chunks(in, r.stage_fwd, r.stage_bwd, r.stage_wgrad, r.stage_pair_saving, r.chunk0_fwd, r.chunk0_bwd,
                          r.chunk0_wgrad, r.chunk0_pair_saving);
  }
  return in;
}

double pipeline_closed_form(const TrainReport& r) {
  const size_t p = std::min(r.stage_fwd.size(), r.stage_bwd.size());
  if (p == 0) return 0;
  if (r.layout.schedule == PipeSchedule::dualpipe_v) {
    // Its table's form with the busiest stage's work: each stage's 2 m chunk forwards and backwards
    // less the pairs' saving at the last stage's pair count (the form is the last stage's busy time
    // plus its idle; a stage with fewer pairs idles less), plus the bubble of the stages' mean chunk
    // (dualpipe_bubble). Exact on uniform stages with B - W = F; with uneven ones the evaluator's
    // simulation is the figure (the V's busier stage 0 overlaps some of the fill).
    const int pp = static_cast<int>(p);
    const double m = static_cast<double>(r.microbatches);
    const double pairs = static_cast<double>(dualpipe_pairs(pp, r.microbatches, pp - 1));
    double F = 0, B = 0, W = 0, S = 0, busiest = 0;
    for (size_t i = 0; i < p; ++i) {
      const double f = r.stage_fwd[i] / 2, b = r.stage_bwd[i] / 2;
      const double x = i < r.stage_pair_saving.size() ? r.stage_pair_saving[i] / 2 : 0.0;
      F += f;
      B += b;
      W += i < r.stage_wgrad.size() ? r.stage_wgrad[i] / 2 : 0.0;
      S += x;
      busiest = std::max(busiest, 2.0 * m * (f + b) - pairs * x);
    }
    const double n = static_cast<double>(p);
    return busiest + dualpipe_bubble(pp, F / n, B / n, W / n, S / n);
  }
  // Uneven interleaved chunks: the evaluator's figure is the schedule simulated without sends.
  if (r.layout.schedule == PipeSchedule::one_f_one_b && r.layout.vp > 1 &&
      r.chunk_share.size() == p * static_cast<size_t>(r.layout.vp)) {
    PipelineInput in = pipeline_input(r);
    in.p2p = 0;
    return simulate_pipeline(in, false).makespan;
  }
  double max_T = 0, sum_T = 0;
  for (size_t i = 0; i < p; ++i) {
    const double T = r.stage_fwd[i] + r.stage_bwd[i];
    max_T = std::max(max_T, T);
    sum_T += T;
  }
  double sum_w = 0;
  if (r.layout.schedule == PipeSchedule::zero_bubble && r.stage_wgrad.size() == p)
    for (double w : r.stage_wgrad) sum_w += w;
  const double n = static_cast<double>(p);
  return static_cast<double>(r.microbatches) * max_T +
         pipeline_fill(static_cast<int>(p), r.layout.vp, r.microbatches, r.layout.schedule, sum_T / n, sum_w / n);
}

namespace {

// Seconds to microseconds, rounded to the nanosecond (monotone, so abutting slices never overlap).
double us(double s) { return std::round(s * 1e9) / 1e3; }

ordered_json meta(const char* name, int tid, ordered_json args) {
  return {{"name", name}, {"ph", "M"}, {"pid", 0}, {"tid", tid}, {"args", std::move(args)}};
}

ordered_json slice(std::string name, const char* cat, int tid, double start, double end, ordered_json args) {
  const double ts = us(start);
  return {{"name", std::move(name)}, {"cat", cat},      {"ph", "X"},       {"pid", 0},
          {"tid", tid},              {"ts", ts},        {"dur", std::round((us(end) - ts) * 1e3) / 1e3},
          {"args", std::move(args)}};
}

struct Send {
  int stage;  // receiving stage
  int chunk;  // receiving chunk
  long mb;
  bool backward;
  int from_stage;
  double start, end;
  int lane = 0;
};

}  // namespace

ordered_json chrome_trace(const TrainReport& r, const PipelineResult& sim) {
  const int pp = std::max(1, r.layout.pp), vp = std::max(1, r.layout.vp);
  const long m = std::max(1L, r.microbatches);
  const long V = static_cast<long>(pp) * vp;
  const double p2p = pp > 1 ? r.p2p_time : 0.0;

  // Sends: one into every chunk position but the first (forward) and the last (backward), on the
  // receiving stage, from the end of the operation it follows.
  std::vector<Send> sends;
  if (p2p > 0 && !sim.events.empty()) {
    std::vector<double> fend(static_cast<size_t>(V * m), -1.0), bend(static_cast<size_t>(V * m), -1.0);
    for (const auto& e : sim.events) {
      if (e.weight_grad) continue;  // nothing is sent after a weight gradient
      if (e.stage < 0 || e.stage >= pp || e.chunk < 0 || e.chunk >= vp || e.microbatch < 0 || e.microbatch >= m) continue;
      const long pos = chunk_position(r.layout.schedule, pp, e.stage, e.chunk);
      (e.backward ? bend : fend)[pos * m + e.microbatch] = e.end;
    }
    sends.reserve(sim.events.size());
    for (const auto& e : sim.events) {
      if (e.weight_grad) continue;
      if (e.stage < 0 || e.stage >= pp || e.chunk < 0 || e.chunk >= vp || e.microbatch < 0 || e.microbatch >= m) continue;
      const long pos = chunk_position(r.layout.schedule, pp, e.stage, e.chunk);
      const long from = e.backward ? pos + 1 : pos - 1;
      if (from < 0 || from >= V) continue;
      const int from_stage = stage_of_position(r.layout.schedule, pp, from);
      if (from_stage == e.stage) continue;  // DualPipeV's turn on the last stage: no send
      const double t = (e.backward ? bend : fend)[from * m + e.microbatch];
      if (t < 0) continue;
      sends.push_back({e.stage, e.chunk, e.microbatch, e.backward, from_stage, t, t + p2p});
    }
    // Lanes: within a stage, in start order, each send takes the first lane free by its start.
    std::stable_sort(sends.begin(), sends.end(), [](const Send& a, const Send& b) {
      return a.stage != b.stage ? a.stage < b.stage : a.start < b.start;
    });
    std::vector<double> lane_end;
    for (size_t k = 0; k < sends.size(); ++k) {
      if (k == 0 || sends[k].stage != sends[k - 1].stage) lane_end.clear();
      const double s = us(sends[k].start);
      size_t l = 0;
      while (l < lane_end.size() && lane_end[l] > s) ++l;
      if (l == lane_end.size()) lane_end.push_back(0);
      lane_end[l] = us(sends[k].end);
      sends[k].lane = static_cast<int>(l);
    }
  }
  int lanes = 0;
  for (const auto& s : sends) lanes = std::max(lanes, s.lane + 1);
  auto recv_tid = [&](int stage, int lane) { return pp + stage * lanes + lane; };

  ordered_json ev = ordered_json::array();
  ev.push_back(meta("process_name", 0,
                    {{"name", "xpuplan pipeline: pp " + std::to_string(pp) + " vp " + std::to_string(vp) + ", " +
                                  std::to_string(m) + " microbatches"}}));
  for (int i = 0; i < pp; ++i) {
    ev.push_back(meta("thread_name", i, {{"name", "stage " + std::to_string(i)}}));
    ev.push_back(meta("thread_sort_index", i, {{"sort_index", i * (lanes + 1)}}));
  }
  std::vector<char> used(static_cast<size_t>(pp) * std::max(1, lanes), 0);
  for (const auto& s : sends) used[static_cast<size_t>(s.stage) * lanes + s.lane] = 1;
  for (int i = 0; i < pp; ++i)
    for (int l = 0; l < lanes; ++l) {
      if (!used[static_cast<size_t>(i) * lanes + l]) continue;
      std::string name = "stage " + std::to_string(i) + " recv";
      if (l > 0) name += " " + std::to_string(l + 1);
      ev.push_back(meta("thread_name", recv_tid(i, l), {{"name", name}}));
      ev.push_back(meta("thread_sort_index", recv_tid(i, l), {{"sort_index", i * (lanes + 1) + 1 + l}}));
    }

  const bool zb = r.layout.schedule == PipeSchedule::zero_bubble;
  // Which DualPipeV backwards are split (their weight gradient runs apart): named bwd-input.
  std::vector<char> split;
  if (r.layout.schedule == PipeSchedule::dualpipe_v) {
    split.assign(static_cast<size_t>(V * m), 0);
    for (const auto& e : sim.events)
      if (e.weight_grad && e.stage >= 0 && e.stage < pp && e.chunk >= 0 && e.chunk < vp && e.microbatch >= 0 && e.microbatch < m)
        split[static_cast<size_t>(chunk_position(r.layout.schedule, pp, e.stage, e.chunk) * m + e.microbatch)] = 1;
  }
  auto label = [&](const PipelineEvent& e) {
    bool input_only = zb;
    if (!split.empty() && e.backward && !e.weight_grad && e.chunk >= 0 && e.chunk < vp && e.microbatch >= 0 && e.microbatch < m)
      input_only = split[static_cast<size_t>(chunk_position(r.layout.schedule, pp, e.stage, e.chunk) * m + e.microbatch)] != 0;
    std::string name = std::string(e.weight_grad ? "wgrad" : e.backward ? (input_only ? "bwd-input" : "bwd") : "fwd") + " mb " +
                       std::to_string(e.microbatch);
    if (vp > 1) name += " chunk " + std::to_string(e.chunk);
    return name;
  };
  for (size_t k = 0; k < sim.events.size(); ++k) {
    const auto& e = sim.events[k];
    if (e.paired == 2) continue;  // drawn with its forward
    if (e.paired == 1 && k + 1 < sim.events.size() && sim.events[k + 1].paired == 2) {
      // DualPipeV: one slice for a forward and a backward run together (their all-to-all overlapped).
      const auto& b = sim.events[k + 1];
      ev.push_back(slice(label(e) + " + " + label(b), "forward-backward", e.stage, e.start, e.end,
                         {{"microbatch", e.microbatch},
                          {"chunk", e.chunk},
                          {"direction", "forward"},
                          {"backward_microbatch", b.microbatch},
                          {"backward_chunk", b.chunk}}));
      continue;
    }
    ev.push_back(slice(label(e), e.weight_grad ? "weight-gradient" : e.backward ? "backward" : "forward", e.stage,
                       e.start, e.end,
                       {{"microbatch", e.microbatch}, {"chunk", e.chunk}, {"direction", e.backward ? "backward" : "forward"}}));
  }
  for (const auto& s : sends)
    ev.push_back(slice("send mb " + std::to_string(s.mb), "p2p", recv_tid(s.stage, s.lane), s.start, s.end,
                       {{"microbatch", s.mb},
                        {"chunk", s.chunk},
                        {"direction", s.backward ? "backward" : "forward"},
                        {"from_stage", s.from_stage}}));

  ordered_json j;
  j["traceEvents"] = std::move(ev);
  j["displayTimeUnit"] = "ms";
  j["otherData"] = {{"generator", "xpuplan train --trace"},
                    {"pp", pp},
                    {"vp", vp},
                    {"schedule", schedule_name(r.layout.schedule)},
                    {"microbatches", m},
                    {"pipeline_sim_s", round6(sim.makespan)},
                    // As train prints it: the closed form's stages plus the step's exposed sends.
                    {"pipeline_closed_form_s", round6(pipeline_closed_form(r) + r.time.pp_comm)},
                    {"closed_form_stages_s", round6(pipeline_closed_form(r))},
                    {"closed_form_sends_s", round6(r.time.pp_comm)},
                    {"bubble_fraction", round6(sim.bubble_fraction)},
                    {"send_s", round6(p2p)},
                    {"step_time_s", round6(r.step_time)}};
  return j;
}

}  // namespace xpu
