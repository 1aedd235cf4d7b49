// Speed of the single evaluation path (Release build). Run: build/release/bench/xpuplan_bench
#include <benchmark/benchmark.h>

#include "load/catalog.hpp"
#include "perf/pipeline_sim.hpp"
#include "search/search.hpp"
#include "train/choose.hpp"
#include "train/evaluate.hpp"

namespace {

const xpu::Catalog& catalog() {
  static const xpu::Catalog c = xpu::build_catalog(xpu::builtin_data_files());
  return c;
}

// One evaluation of GPT-3 175B on 1,024 H100s (tp 8, pp 8, dp 16, interleaved).
void BM_EvaluateGpt3_175B(benchmark::State& st) {
  const auto& c = catalog();
  const auto& m = c.model("gpt3-175b");
  const auto& s = c.system("dgx-h100");
  xpu::Layout l;
  l.tp = 8; l.pp = 8; l.vp = 3; l.dp = 16; l.micro_batch = 1; l.zero = 1;
  l.recompute = xpu::Recompute::selective;
  xpu::Workload w{2048, 1536};
  for (auto _ : st) {
    auto r = xpu::evaluate(m, s, l, w, 1024);
    benchmark::DoNotOptimize(r.step_time);
  }
}
BENCHMARK(BM_EvaluateGpt3_175B);

// train's knob choice for Llama 3 70B on 64 H100s with every knob free, on 1 and 2 threads.
void BM_ChooseLlama3_70B(benchmark::State& st) {
  const auto& c = catalog();
  xpu::PlanRequest q;
  q.devices = 64;
  q.work = {8192, 128};
  const int threads = static_cast<int>(st.range(0));
  for (auto _ : st) {
    auto r = xpu::choose_plan(c.model("llama3-70b"), c.system("dgx-h100"), q, nullptr, false, threads);
    benchmark::DoNotOptimize(r.step_time);
  }
}
BENCHMARK(BM_ChooseLlama3_70B)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// The full GPT-3 175B space on 1,024 H100s (seq 2048, global batch 1536), one thread.
void BM_SearchGpt3_175B_1024(benchmark::State& st) {
  const auto& c = catalog();
  xpu::PlanRequest q;
  q.devices = 1024;
  q.work = {2048, 1536};
  xpu::SearchOptions o;
  o.threads = static_cast<int>(st.range(0));
  for (auto _ : st) {
    auto r = xpu::search(c.model("gpt3-175b"), c.system("dgx-h100"), q, o);
    benchmark::DoNotOptimize(r.top.front().step_time);
    st.counters["layouts"] = static_cast<double>(r.stats.considered);
    st.counters["evaluated"] = static_cast<double>(r.stats.evaluated);
  }
}
BENCHMARK(BM_SearchGpt3_175B_1024)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// The event-driven pipeline simulator on a 16,384-device job's pipeline: pp 16, vp 8
// (interleaved), 128 microbatches = 32,768 operations; arg 0 = makespan only, 1 = with events.
void BM_PipelineSim16384(benchmark::State& st) {
  xpu::PipelineInput in;
  in.pp = 16;
  in.vp = 8;
  in.microbatches = 128;
  for (int i = 0; i < in.pp; ++i) {  // chunk times (s), the first and last stages a little slower
    const double extra = (i == 0 || i == in.pp - 1) ? 1.1 : 1.0;
    in.fwd.push_back(0.012 * extra);
    in.bwd.push_back(0.025 * extra);
  }
  in.p2p = 0.0008;
  const bool record = st.range(0) != 0;
  for (auto _ : st) {
    auto r = xpu::simulate_pipeline(in, record);
    benchmark::DoNotOptimize(r.makespan);
    benchmark::DoNotOptimize(r.events.data());
  }
  st.counters["ops"] = 2.0 * in.pp * in.vp * static_cast<double>(in.microbatches);
}
BENCHMARK(BM_PipelineSim16384)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// The zero-bubble (ZB-H1) greedy schedule on the same job's pipeline without interleaving: pp 16,
// 128 microbatches, backward split into input and weight gradients (6,144 operations);
// arg 0 = makespan only, 1 = with events.
void BM_PipelineSimZeroBubble16384(benchmark::State& st) {
  xpu::PipelineInput in;
  in.pp = 16;
  in.microbatches = 128;
  in.schedule = xpu::PipeSchedule::zero_bubble;
  for (int i = 0; i < in.pp; ++i) {
    const double extra = (i == 0 || i == in.pp - 1) ? 1.1 : 1.0;
    in.fwd.push_back(0.096 * extra);
    in.bwd.push_back(0.200 * extra);
    in.wgrad.push_back(0.090 * extra);
  }
  in.p2p = 0.0008;
  const bool record = st.range(0) != 0;
  for (auto _ : st) {
    auto r = xpu::simulate_pipeline(in, record);
    benchmark::DoNotOptimize(r.makespan);
    benchmark::DoNotOptimize(r.events.data());
  }
  st.counters["ops"] = 3.0 * in.pp * static_cast<double>(in.microbatches);
}
BENCHMARK(BM_PipelineSimZeroBubble16384)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// DualPipeV on DeepSeek-V3's pipeline as DeepSeek trained it: pp 16, 240 microbatches (global batch
// 15,360 over dp 64), stage 0 heavier (the embedding and the head); arg 0 = the whole simulation,
// makespan only; 1 = with events; 2 = what the evaluator runs per plan (4 pp microbatches and the
// steady pace, dualpipe_makespan).
void BM_PipelineSimDualPipeV(benchmark::State& st) {
  xpu::PipelineInput in;
  in.pp = 16;
  in.vp = 2;
  in.microbatches = 240;
  in.schedule = xpu::PipeSchedule::dualpipe_v;
  for (int i = 0; i < in.pp; ++i) {
    const double extra = i == 0 ? 1.3 : 1.0;
    in.fwd.push_back(0.030 * extra);
    in.bwd.push_back(0.062 * extra);
    in.wgrad.push_back(0.028 * extra);
    in.pair_saving.push_back(0.010);
  }
  const int mode = static_cast<int>(st.range(0));
  for (auto _ : st) {
    if (mode == 2) {
      benchmark::DoNotOptimize(xpu::dualpipe_makespan(in));
    } else {
      auto r = xpu::simulate_pipeline(in, mode == 1);
      benchmark::DoNotOptimize(r.makespan);
      benchmark::DoNotOptimize(r.events.data());
    }
  }
}
BENCHMARK(BM_PipelineSimDualPipeV)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
