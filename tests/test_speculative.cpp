// Speculative decoding in serving (src/serve/step.hpp Speculation, the simulator's iterations per
// verification step in src/serve/sim.cpp, the report's layout and explain terms).
#include <gtest/gtest.h>

#include <cmath>

#include "report/serve_format.hpp"
#include "serve/serve.hpp"
#include <string>
#include "serve/sim.hpp"
#include "test_common.hpp"

namespace xpu {
namespace {

using test::builtin;

Speculation spec(DraftMethod d, int k, double a) {
  Speculation s;
  s.method = d;
  s.draft_tokens = k;
  s.acceptance = a;
  return s;
}

ServeWorkload closed_loop(int c, int n, int in, int out) {
  ServeWorkload w;
  w.kind = WorkloadKind::concurrency;
  w.concurrency = c;
  w.requests = n;
  w.input_len = in;
  w.output_len = out;
  return w;
}

ServeWorkload offline(int n, int in, int out) {
  ServeWorkload w = closed_loop(1, n, in, out);
  w.kind = WorkloadKind::offline;
  return w;
}

double mean_tpot(const SimResult& r) {
  double s = 0;
  long n = 0;
  for (const auto& q : r.requests)
    if (q.output > 1) s += (q.finish - q.first_token) / (q.output - 1), ++n;
  return s / static_cast<double>(n);
}

double output_tps(const SimResult& r) { return static_cast<double>(r.output_tokens) / r.makespan_s; }

TEST(Speculation, TokensPerStepIsTheExpectedAcceptedRunPlusOne) {
  // A step returns the next token plus the drafted ones up to the first rejection: the sum of
  // a^i for i = 0..k (Leviathan et al. 2023).
  for (int k : {1, 2, 3, 5, 8})
    for (double a : {0.3, 0.6, 0.85, 0.99}) {
      double sum = 0;
      for (int i = 0; i <= k; ++i) sum += std::pow(a, i);
      EXPECT_NEAR(spec(DraftMethod::ngram, k, a).tokens_per_step(), sum, 1e-12) << k << " " << a;
    }
  EXPECT_DOUBLE_EQ(spec(DraftMethod::eagle, 4, 1.0).tokens_per_step(), 5.0);
  EXPECT_DOUBLE_EQ(Speculation{}.tokens_per_step(), 1.0);
  EXPECT_DOUBLE_EQ(spec(DraftMethod::none, 4, 0.9).tokens_per_step(), 1.0);
}

TEST(Speculation, MethodNamesRoundTrip) {
  for (DraftMethod d : {DraftMethod::ngram, DraftMethod::mtp, DraftMethod::eagle})
    EXPECT_EQ(parse_draft_method(draft_method_name(d)), d);
  EXPECT_FALSE(parse_draft_method("none"));
  EXPECT_FALSE(parse_draft_method("medusa"));
}

TEST(SpeculativeStep, DraftWeightsAndKvTakeMemory) {
  const Model& ds = builtin().model("deepseek-v3");
  const System& h200 = builtin().system("hgx-h200");
  ServeLayout l;
  l.tp = 8;
  l.weights = l.kv = Quant::fp8;
  const StepModel plain(ds, h200, l);
  const StepModel mtp(ds, h200, l, 0, 0, spec(DraftMethod::mtp, 3, 0.8));
  ASSERT_TRUE(plain.fits() && mtp.fits()) << mtp.reason();
  // One module (the model's count) even with three drafted tokens: its layers over 8 ranks, the
  // 2h x h projection whole on each, at one byte a weight.
  const double h = ds.hidden;
  EXPECT_NEAR(mtp.draft_weight_bytes_per_device(), (mtp_module_params(ds) - 2 * h * h) / 8 + 2 * h * h, 1e6);
  EXPECT_NEAR(mtp.weight_bytes_per_device() - plain.weight_bytes_per_device(), mtp.draft_weight_bytes_per_device(), 1.0);
  // Its layer caches KV beside the model's 61: capacity falls by more than the weights' share.
  EXPECT_LT(mtp.kv_capacity_tokens(), plain.kv_capacity_tokens() * 61.0 / 62.0);
  // n-gram drafts live on the host.
  const StepModel ngram(ds, h200, l, 0, 0, spec(DraftMethod::ngram, 3, 0.8));
  EXPECT_EQ(ngram.weight_bytes_per_device(), plain.weight_bytes_per_device());
  EXPECT_EQ(ngram.kv_capacity_tokens(), plain.kv_capacity_tokens());
}

TEST(SpeculativeStep, MtpNeedsTheModelsModules) {
  ServeLayout l;
  const StepModel sm(builtin().model("llama3-8b"), builtin().system("dgx-h100"), l, 0, 0, spec(DraftMethod::mtp, 1, 0.8));
  EXPECT_FALSE(sm.fits());
  EXPECT_NE(sm.reason().find("mtp_layers 0"), std::string::npos) << sm.reason();
}

TEST(SpeculativeStep, VerificationReadsTheWeightsOnceForKPlusOneRows) {
  // One sequence on one H100: verifying 4 rows streams the same weights as decoding 1, so the step
  // costs little more (an n-gram draft adds no device work); an EAGLE draft adds its layer's passes.
  const Model& m = builtin().model("llama3-8b");
  ServeLayout l;
  const StepModel plain(m, builtin().system("dgx-h100"), l);
  const StepModel ngram(m, builtin().system("dgx-h100"), l, 0, 0, spec(DraftMethod::ngram, 3, 0.7));
  const StepModel eagle(m, builtin().system("dgx-h100"), l, 0, 0, spec(DraftMethod::eagle, 3, 0.7));
  const double t1 = plain.step_time(1, 1, 2000, 0, 1), tn = ngram.step_time(1, 1, 2000, 0, 1), te = eagle.step_time(1, 1, 2000, 0, 1);
  EXPECT_GT(tn, t1);
  EXPECT_LT(tn, 1.2 * t1);
  EXPECT_GT(te, tn);
  // At 512 short sequences the GEMMs are compute-bound: four rows each cost several times one.
  const double b1 = plain.step_time(512, 512, 512 * 200.0, 0, 512), bn = ngram.step_time(512, 512, 512 * 200.0, 0, 512);
  EXPECT_GT(bn, 2.0 * b1);
}

TEST(SpeculativeSim, OneUsersTpotFallsByAboutTheTokensPerStep) {
  const Model& m = builtin().model("llama3-8b");
  ServeLayout l;
  const Speculation sp = spec(DraftMethod::ngram, 3, 0.7);
  const StepModel plain(m, builtin().system("dgx-h100"), l), fast(m, builtin().system("dgx-h100"), l, 0, 0, sp);
  SimOptions o, os;
  os.spec = sp;
  const ServeWorkload w = closed_loop(1, 20, 1000, 400);
  const SimResult a = simulate(plain, w, o), b = simulate(fast, w, os);
  ASSERT_EQ(b.requests.size(), 20u);
  const double ratio = mean_tpot(a) / mean_tpot(b), e = sp.tokens_per_step();
  EXPECT_GT(ratio, 0.8 * e);
  EXPECT_LE(ratio, e);
  // Every token delivered, no more.
  EXPECT_EQ(b.output_tokens, 20L * 400);
  // Engine iterations: about output / E per request.
  EXPECT_NEAR(static_cast<double>(b.iterations), 20 * (1 + 399 / e), 20 * 2.0);
}

TEST(SpeculativeSim, FirstTokensAndShortOutputsTakeWholeSteps) {
  // A step's tokens come at its end: an n-gram draft (no device work on the prompt) leaves TTFT
  // as it was, and a second token still takes a whole step (a QA pass had found TTFT at a fifth of
  // a prefill when iterations were fractions of a step).
  const Model& m = builtin().model("llama3-8b");
  ServeLayout l;
  const Speculation sp = spec(DraftMethod::ngram, 16, 1.0);
  const StepModel plain(m, builtin().system("dgx-h100"), l), fast(m, builtin().system("dgx-h100"), l, 0, 0, sp);
  SimOptions o, os;
  os.spec = sp;
  for (int out : {2, 300}) {
    const ServeWorkload w = closed_loop(1, 6, 800, out);
    const SimResult a = simulate(plain, w, o), b = simulate(fast, w, os);
    ASSERT_EQ(b.requests.size(), 6u);
    for (std::size_t i = 0; i < b.requests.size(); ++i)
      EXPECT_NEAR(b.requests[i].first_token - b.requests[i].arrival, a.requests[i].first_token - a.requests[i].arrival,
                  1e-9 + 1e-6 * (a.requests[i].first_token - a.requests[i].arrival));
    if (out == 2) EXPECT_GE(mean_tpot(b), mean_tpot(a));  // one step, now verifying 17 rows
    else EXPECT_LT(mean_tpot(b), mean_tpot(a) / 5);
  }
}

TEST(SpeculativeSim, EveryStepGainsTheWholePartsOfTheRunningMean) {
  // E = 2.44: steps gain 2 or 3 tokens, 2.44 on average, so 1 + 299 / 2.44 steps per request.
  const Model& m = builtin().model("llama3-8b");
  ServeLayout l;
  const Speculation sp = spec(DraftMethod::ngram, 2, 0.8);
  const StepModel sm(m, builtin().system("dgx-h100"), l, 0, 0, sp);
  SimOptions o;
  o.spec = sp;
  const SimResult r = simulate(sm, closed_loop(1, 10, 200, 300), o);
  ASSERT_EQ(r.requests.size(), 10u);
  EXPECT_NEAR(static_cast<double>(r.iterations), 10 * (1 + 299 / sp.tokens_per_step()), 10.0);
  EXPECT_EQ(r.output_tokens, 3000);
}

TEST(SpeculativeSim, AFullCacheReservesTheStepsPositionsFirst) {
  // Llama 3 70B on two H100s with prompts arriving faster than they can be served: the cache is
  // full and optimistic admission preempts. The step reserves blocks for every position it may
  // fill before it runs (preempting for them), so speculation still helps (a QA pass had found a
  // step cut to two tokens after paying seventeen rows: TPOT 114 -> 417 ms).
  const Model& m = builtin().model("llama3-70b");
  ServeLayout l;
  l.tp = 2;
  const Speculation sp = spec(DraftMethod::ngram, 16, 1.0);
  const StepModel plain(m, builtin().system("dgx-h100"), l, 16384, 4096), fast(m, builtin().system("dgx-h100"), l, 16384, 4096, sp);
  SimOptions o, os;
  o.max_batch = os.max_batch = 4096;
  o.token_budget = os.token_budget = 16384;
  os.spec = sp;
  ServeWorkload w = offline(1500, 10, 300);
  const SimResult a = simulate(plain, w, o), b = simulate(fast, w, os);
  ASSERT_EQ(b.requests.size(), 1500u);
  EXPECT_GT(a.preemptions, 0);
  EXPECT_EQ(b.output_tokens, 1500L * 300);
  EXPECT_LT(mean_tpot(b), mean_tpot(a));
  EXPECT_GT(output_tps(b), output_tps(a));
}

TEST(SpeculativeSim, LargeBatchesDraftWhatTheTokenBudgetHolds) {
  // 2,000 sequences of Llama 3 8B on one H100 at a budget of 8,192 tokens: a step drafts
  // 8192 / n - 1 tokens a sequence, not 16, so its rows stay within the budget, and the explained
  // mean step is the simulated one.
  const Model& m = builtin().model("llama3-8b");
  const System& s = builtin().system("dgx-h100");
  ServeRequest q;
  q.devices = 1;
  q.tp = 1;
  q.max_batch = 4096;
  q.token_budget = 8192;
  q.work = offline(2000, 4, 100);
  q.spec = spec(DraftMethod::ngram, 16, 1.0);
  const ServeReport r = choose_serve(m, s, q);
  ASSERT_TRUE(r.feasible) << r.reason;
  double step = 0, mean = 0;
  std::string drafted;
  for (const auto& t : r.explain) {
    if (t.name == "step time") step = std::stod(t.value);
    if (t.name == "simulated mean iteration") mean = std::stod(t.value);
    if (t.name == "drafted tokens at the mean step") drafted = t.value;
  }
  EXPECT_FALSE(drafted.empty());
  EXPECT_NE(drafted.find("of 16"), std::string::npos);
  EXPECT_NEAR(step, mean, 0.05 * mean);
}

TEST(SpeculativeStep, TheDraftLayerHoldsTheWholeContextEvenWhereEveryLayerIsWindowed) {
  // Mistral 7B v0.1 windows every layer at 4,096 tokens; an EAGLE layer attends to the whole
  // context, so at 30,000 tokens a sequence holds 30,000 / 16 of its blocks beside the window's.
  const Model& m = builtin().model("mistral-7b");
  ServeLayout l;
  const StepModel plain(m, builtin().system("dgx-h100"), l), eagle(m, builtin().system("dgx-h100"), l, 0, 0, spec(DraftMethod::eagle, 4, 0.8));
  ASSERT_TRUE(eagle.fits()) << eagle.reason();
  EXPECT_EQ(eagle.global_layers(), 1);
  const long per_plain = plain.seq_units(28000, 30000, 1), per_eagle = eagle.seq_units(28000, 30000, 1);
  EXPECT_EQ(per_eagle - per_plain, (30000 + eagle.block_tokens() - 1) / eagle.block_tokens());
}

TEST(SpeculativeSim, ComputeBoundBatchesLoseThroughput) {
  const Model& m = builtin().model("llama3-8b");
  ServeLayout l;
  const Speculation sp = spec(DraftMethod::ngram, 4, 0.5);
  const StepModel plain(m, builtin().system("dgx-h100"), l), fast(m, builtin().system("dgx-h100"), l, 0, 0, sp);
  SimOptions o, os;
  o.max_batch = os.max_batch = 512;
  os.spec = sp;
  const ServeWorkload w = offline(2000, 500, 300);
  const SimResult a = simulate(plain, w, o), b = simulate(fast, w, os);
  ASSERT_EQ(b.requests.size(), 2000u);
  EXPECT_EQ(b.output_tokens, 2000L * 300);
  EXPECT_LT(output_tps(b), output_tps(a));
}

TEST(SpeculativeSim, DisaggregatedDecodePoolSpeculatesAndConserves) {
  const Model& m = builtin().model("llama3-8b");
  ServeLayout l;
  l.replicas = 4;
  const Speculation sp = spec(DraftMethod::eagle, 2, 0.75);
  const StepModel sm(m, builtin().system("dgx-h100"), l, 0, 0, sp);
  SimOptions o;
  o.prefill_replicas = 1;
  o.spec = sp;
  ServeWorkload w = closed_loop(8, 200, 800, 200);
  const SimResult r = simulate(sm, w, o, &sm);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.requests.size(), 200u);
  EXPECT_EQ(r.output_tokens, 200L * 200);
  const SimResult again = simulate(sm, w, o, &sm);
  EXPECT_EQ(again.makespan_s, r.makespan_s);  // deterministic
}

TEST(SpeculativeReport, LayoutJsonAndExplainNameTheDraft) {
  const Model& m = builtin().model("deepseek-v3");
  const System& s = builtin().system("hgx-h200");
  ServeRequest q;
  q.devices = 8;
  q.tp = 8;
  q.weights = Quant::fp8;
  q.work = closed_loop(4, 16, 500, 100);
  const ServeReport plain = choose_serve(m, s, q);
  q.spec = spec(DraftMethod::mtp, 2, 0.8);
  const ServeReport r = choose_serve(m, s, q);
  ASSERT_TRUE(r.feasible && plain.feasible) << r.reason;
  EXPECT_LT(r.tpot.mean, plain.tpot.mean);
  const auto j = serve_json(m, s, r, true);
  EXPECT_EQ(j["layout"]["speculative"]["method"], "mtp");
  EXPECT_EQ(j["layout"]["speculative"]["draft_tokens"], 2);
  EXPECT_NEAR(j["layout"]["speculative"]["tokens_per_step"].get<double>(), 1 + 0.8 + 0.64, 1e-6);
  EXPECT_TRUE(serve_json(m, s, plain, false)["layout"]["speculative"].is_null());
  EXPECT_NE(serve_layout_summary(r).find(" spec mtp:2@0.80"), std::string::npos);
  bool draft = false, weights = false;
  for (const auto& t : r.explain) {
    draft |= t.name.rfind("speculative draft (mtp:2", 0) == 0 && t.source.find("mtp_layers") != std::string::npos;
    weights |= t.name.rfind("speculative draft weights", 0) == 0;
  }
  EXPECT_TRUE(draft);
  EXPECT_TRUE(weights);
}

}  // namespace
}  // namespace xpu
