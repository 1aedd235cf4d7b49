// Speed of the serving simulator (Release build, one core): one million requests.
#include <benchmark/benchmark.h>

#include "load/catalog.hpp"
#include "serve/sim.hpp"

namespace {

const xpu::Catalog& serve_catalog() {
  static const xpu::Catalog c = xpu::build_catalog(xpu::builtin_data_files());
  return c;
}

// Llama 3 8B on 8 H100s (tp 1 x 8 replicas, batch <= 1024), 1,000,000 requests of 512 prompt and
// 128 output tokens: Arg 0 offline (all at once), Arg 1 Poisson at 400 req/s (just under capacity).
void BM_Serve1MRequests(benchmark::State& st) {
  const auto& c = serve_catalog();
  xpu::ServeLayout l;
  l.replicas = 8;
  const xpu::StepModel sm(c.model("llama3-8b"), c.system("dgx-h100"), l);
  xpu::ServeWorkload w;
  w.kind = st.range(0) == 0 ? xpu::WorkloadKind::offline : xpu::WorkloadKind::poisson;
  w.rate = 400;
  w.requests = 1'000'000;
  w.input_len = 512;
  w.output_len = 128;
  xpu::SimOptions o;
  o.max_batch = 1024;
  long iterations = 0;
  for (auto _ : st) {
    const xpu::SimResult r = xpu::simulate(sm, w, o);
    iterations = r.iterations;
    benchmark::DoNotOptimize(r.output_tokens);
  }
  st.counters["sim_iterations"] = static_cast<double>(iterations);
}
BENCHMARK(BM_Serve1MRequests)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
