// The event-driven pipeline simulator (src/perf/pipeline_sim.hpp) and its Chrome trace
// (src/report/trace.hpp).
#include <gtest/gtest.h>

#include <cmath>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <tuple>

#include "perf/pipeline_sim.hpp"
#include "report/trace.hpp"
#include "test_common.hpp"
#include "train/evaluate.hpp"

namespace xpu {
namespace {

// Uniform stages: F and B are full-stage times per microbatch (all vp chunks); chunk time = / vp.
PipelineInput uniform(int pp, int vp, long m, double F, double B, double p2p = 0) {
  PipelineInput in;
  in.pp = pp;
  in.vp = vp;
  in.microbatches = m;
  in.fwd.assign(pp, F / vp);
  in.bwd.assign(pp, B / vp);
  in.p2p = p2p;
  return in;
}

PipelineInput random_input(std::mt19937& rng, int pp, int vp, long m, double p2p) {
  std::uniform_real_distribution<double> u(0.2, 2.0);
  PipelineInput in;
  in.pp = pp;
  in.vp = vp;
  in.microbatches = m;
  for (int i = 0; i < pp; ++i) {
    in.fwd.push_back(u(rng));
    in.bwd.push_back(u(rng));
  }
  in.p2p = p2p;
  return in;
}

void expect_rel(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-9 * std::max(1.0, std::abs(want))) << what;
}

// Every dependency and stage-exclusivity rule holds in the recorded events.
void check_events(const PipelineInput& in, const PipelineResult& r) {
  const int P = in.pp, VP = in.vp;
  const long M = in.microbatches, V = static_cast<long>(P) * VP;
  const double link = P > 1 ? in.p2p : 0.0, eps = 1e-9;
  ASSERT_EQ(r.events.size(), static_cast<size_t>(2 * M * VP * P));
  std::map<std::tuple<long, long, bool>, PipelineEvent> at;  // (position, microbatch, backward)
  double last_end = 0;
  for (const auto& e : r.events) {
    ASSERT_GE(e.stage, 0);
    ASSERT_LT(e.stage, P);
    ASSERT_GE(e.chunk, 0);
    ASSERT_LT(e.chunk, VP);
    ASSERT_GE(e.microbatch, 0);
    ASSERT_LT(e.microbatch, M);
    const long pos = static_cast<long>(e.chunk) * P + e.stage;
    EXPECT_TRUE(at.emplace(std::make_tuple(pos, e.microbatch, e.backward), e).second) << "an operation ran twice";
    // Per-chunk times (pp x vp entries, chunk-major) where given, else the stage's.
    const size_t at_time = in.fwd.size() == static_cast<size_t>(V) && VP > 1 ? static_cast<size_t>(pos) : static_cast<size_t>(e.stage);
    EXPECT_NEAR(e.end - e.start, e.backward ? in.bwd[at_time] : in.fwd[at_time], eps);
    EXPECT_GE(e.start, -eps);
    last_end = std::max(last_end, e.end);
  }
  expect_rel(r.makespan, last_end, "makespan is the last event's end");
  for (const auto& [key, e] : at) {
    const auto [pos, mb, bwd] = key;
    if (!bwd && pos > 0) {
      const auto& d = at.at({pos - 1, mb, false});
      EXPECT_GE(e.start, d.end + link - eps) << "forward before its predecessor (pos " << pos << ", mb " << mb << ")";
    }
    if (bwd && pos + 1 < V) {
      const auto& d = at.at({pos + 1, mb, true});
      EXPECT_GE(e.start, d.end + link - eps) << "backward before its successor's backward (pos " << pos << ")";
    }
    if (bwd && pos + 1 == V) {
      EXPECT_GE(e.start, at.at({pos, mb, false}).end - eps) << "last backward before its forward";
    }
  }
  // No two events overlap on one stage; events come grouped by stage, in the order they run.
  for (size_t k = 1; k < r.events.size(); ++k) {
    const auto &a = r.events[k - 1], &b = r.events[k];
    if (a.stage == b.stage) {
      EXPECT_GE(b.start, a.end - eps) << "overlap on stage " << a.stage;
    } else {
      EXPECT_EQ(b.stage, a.stage + 1);
    }
  }
}

TEST(PipelineSim, OneF1BUniformMakespanIsClosedForm) {
  const double F = 1.3, B = 2.7;
  for (int pp : {1, 2, 3, 4, 8, 16})
    for (long m : {1L, 2L, 3L, 7L, 8L, 16L, 33L, 64L}) {
      const auto r = simulate_pipeline(uniform(pp, 1, m, F, B), false);
      expect_rel(r.makespan, (m + pp - 1) * (F + B), "pp " + std::to_string(pp) + " m " + std::to_string(m));
      expect_rel(r.bubble_fraction, (pp - 1.0) / (m + pp - 1.0), "bubble");
    }
}

TEST(PipelineSim, InterleavedUniformMakespanIsClosedForm) {
  const double F = 1.0, B = 2.25;  // full-stage times; chunk time = / vp
  for (int pp : {2, 3, 4, 8})
    for (int vp : {2, 3, 4, 8})
      for (int k : {1, 2, 3, 8}) {
        const long m = static_cast<long>(k) * pp;
        const auto r = simulate_pipeline(uniform(pp, vp, m, F, B), false);
        expect_rel(r.makespan, (m + (pp - 1.0) / vp) * (F + B),
                   "pp " + std::to_string(pp) + " vp " + std::to_string(vp) + " m " + std::to_string(m));
      }
}

TEST(PipelineSim, InterleavedNonMultipleOfPp) {
  const double F = 1.0, B = 2.0;
  // m > pp, not a multiple: groups of the size Megatron accepts; the same closed form holds.
  for (auto [pp, vp, m] : {std::tuple{4, 2, 5L}, {4, 3, 7L}, {8, 2, 12L}, {8, 4, 17L}, {8, 3, 23L}}) {
    const auto r = simulate_pipeline(uniform(pp, vp, m, F, B), false);
    expect_rel(r.makespan, (m + (pp - 1.0) / vp) * (F + B), "pp " + std::to_string(pp) + " m " + std::to_string(m));
  }
  // m < pp (Megatron refuses): one group, still simulated; no better than one microbatch's trip
  // through all chunks, no worse than the non-interleaved schedule.
  for (auto [pp, vp, m] : {std::tuple{4, 2, 1L}, {4, 2, 3L}, {8, 4, 5L}, {8, 3, 7L}}) {
    PipelineInput in = uniform(pp, vp, m, F, B);
    const auto r = simulate_pipeline(in, true);
    EXPECT_GE(r.makespan, pp * (F + B) - 1e-9);
    EXPECT_LE(r.makespan, (m + pp - 1) * (F + B) + 1e-9);
    check_events(in, r);
  }
}

TEST(PipelineSim, NeverDeadlocksAndDependenciesHold) {
  std::mt19937 rng(7);
  for (int pp : {1, 2, 3, 5, 8})
    for (int vp : {1, 2, 3, 5})
      for (long m = 1; m <= 2 * pp + 3; ++m)
        for (double p2p : {0.0, 0.05, 3.0}) {
          const PipelineInput in = random_input(rng, pp, vp, m, p2p);
          PipelineResult r;
          ASSERT_NO_THROW(r = simulate_pipeline(in, true)) << "pp " << pp << " vp " << vp << " m " << m;
          check_events(in, r);
          expect_rel(simulate_pipeline(in, false).makespan, r.makespan, "same makespan without events");
        }
}

TEST(PipelineSim, EventCount) {
  for (auto [pp, vp, m] : {std::tuple{1, 1, 1L}, {4, 1, 9L}, {4, 3, 8L}, {16, 8, 128L}}) {
    const auto r = simulate_pipeline(uniform(pp, vp, m, 1, 2), true);
    EXPECT_EQ(r.events.size(), static_cast<size_t>(2 * m * vp * pp));
    EXPECT_TRUE(simulate_pipeline(uniform(pp, vp, m, 1, 2), false).events.empty());
  }
}

TEST(PipelineSim, SlowStageBoundsTheMakespan) {
  for (int vp : {1, 2, 4}) {
    PipelineInput in = uniform(4, vp, 16, 1.0, 2.0);
    in.fwd[2] *= 1.7;
    in.bwd[2] *= 1.7;
    const double slow_stage = (in.fwd[2] + in.bwd[2]) * vp;  // full stage time per microbatch
    const auto r = simulate_pipeline(in, true);
    EXPECT_GE(r.makespan, 16 * slow_stage - 1e-9) << "vp " << vp;
    EXPECT_GT(r.makespan, simulate_pipeline(uniform(4, vp, 16, 1.0, 2.0), false).makespan);
    check_events(in, r);
  }
}

TEST(PipelineSim, P2pIncreasesTheMakespan) {
  for (int vp : {1, 2, 4}) {
    const double without = simulate_pipeline(uniform(4, vp, 8, 1, 2, 0), false).makespan;
    EXPECT_GT(simulate_pipeline(uniform(4, vp, 8, 1, 2, 0.01), false).makespan, without) << "vp " << vp;
  }
  // Uniform 1F1B: at least the fill and drain's 2 x (pp - 1) sends are exposed, at most the
  // evaluator's 2 x (m + pp - 1).
  const double d = 0.01, with = simulate_pipeline(uniform(4, 1, 8, 1, 2, d), false).makespan;
  EXPECT_GE(with, (8 + 3) * 3.0 + 2 * 3 * d - 1e-9);
  EXPECT_LE(with, (8 + 3) * 3.0 + 2 * (8 + 3) * d + 1e-9);
  // One stage: no sends.
  expect_rel(simulate_pipeline(uniform(1, 1, 8, 1, 2, 0.5), false).makespan, 8 * 3.0, "pp 1");
  // Interleaved, sends short beside a chunk: exactly the first microbatch's forward through all
  // pp x vp chunks and the last one's backward, 2 (pp x vp - 1) sends, whatever the microbatches
  // (the evaluator's exposed chain).
  for (auto [pp, vp] : {std::pair{2, 19}, {4, 2}, {4, 8}, {8, 4}})
    for (long k : {1L, 4L}) {
      const long m = k * pp;
      const double base = (m + (pp - 1.0) / vp) * 3.0;
      expect_rel(simulate_pipeline(uniform(pp, vp, m, 1, 2, d), false).makespan, base + 2 * (pp * vp - 1) * d,
                 "pp " + std::to_string(pp) + " vp " + std::to_string(vp) + " m " + std::to_string(m));
    }
}

TEST(PipelineSim, BadInputThrows) {
  EXPECT_THROW(simulate_pipeline(uniform(0, 1, 1, 1, 1), false), std::invalid_argument);
  EXPECT_THROW(simulate_pipeline(uniform(2, 0, 1, 1, 1), false), std::invalid_argument);
  EXPECT_THROW(simulate_pipeline(uniform(2, 1, 0, 1, 1), false), std::invalid_argument);
  PipelineInput in = uniform(2, 1, 4, 1, 1);
  in.fwd.pop_back();
  EXPECT_THROW(simulate_pipeline(in, false), std::invalid_argument);
  in = uniform(2, 1, 4, 1, 1);
  in.bwd[1] = -1;
  EXPECT_THROW(simulate_pipeline(in, false), std::invalid_argument);
}

// --- the Chrome trace ---------------------------------------------------------------------

TrainReport synthetic_report(int pp, int vp, long m, double p2p) {
  TrainReport r;
  r.layout.pp = pp;
  r.layout.vp = vp;
  r.microbatches = m;
  for (int i = 0; i < pp; ++i) {
    r.stage_fwd.push_back(1.0 + 0.1 * i);
    r.stage_bwd.push_back(2.0 + 0.1 * i);
  }
  r.p2p_time = p2p;
  r.step_time = 1;
  return r;
}

// X events per track never overlap (a thread track must nest), and each has the fields asked for.
void check_trace(const nlohmann::ordered_json& j, size_t want_compute, size_t want_sends) {
  ASSERT_TRUE(j.contains("traceEvents"));
  std::map<int, std::vector<std::pair<double, double>>> by_tid;
  std::set<std::string> thread_names;
  size_t compute = 0, sends = 0;
  for (const auto& e : j["traceEvents"]) {
    EXPECT_EQ(e["pid"], 0);
    if (e["ph"] == "M") {
      if (e["name"] == "thread_name") thread_names.insert(e["args"]["name"].get<std::string>());
      continue;
    }
    ASSERT_EQ(e["ph"], "X");
    const double ts = e["ts"], dur = e["dur"];
    EXPECT_GE(dur, 0);
    by_tid[e["tid"].get<int>()].push_back({ts, ts + dur});
    EXPECT_TRUE(e["args"].contains("microbatch"));
    EXPECT_TRUE(e["args"].contains("chunk"));
    EXPECT_TRUE(e["args"].contains("direction"));
    if (e["cat"] == "p2p") {
      ++sends;
      EXPECT_EQ(e["name"].get<std::string>().rfind("send mb ", 0), 0u);
    } else {
      ++compute;
    }
  }
  EXPECT_EQ(compute, want_compute);
  EXPECT_EQ(sends, want_sends);
  EXPECT_TRUE(thread_names.count("stage 0"));
  for (auto& [tid, v] : by_tid) {
    std::sort(v.begin(), v.end());
    for (size_t k = 1; k < v.size(); ++k) EXPECT_GE(v[k].first, v[k - 1].second - 1e-6) << "overlap on tid " << tid;
  }
}

TEST(ChromeTrace, EventsTracksAndSends) {
  for (auto [pp, vp, m] : {std::tuple{4, 1, 8L}, {4, 2, 8L}, {3, 3, 5L}}) {
    const TrainReport r = synthetic_report(pp, vp, m, 0.05);
    const PipelineResult sim = simulate_pipeline(pipeline_input(r), true);
    const long V = static_cast<long>(pp) * vp;
    const auto j = chrome_trace(r, sim);
    check_trace(j, sim.events.size(), static_cast<size_t>(2 * m * (V - 1)));
    EXPECT_NEAR(j["otherData"]["pipeline_sim_s"].get<double>(), sim.makespan, 1e-5 * sim.makespan);  // 6 digits
    // The closed form as train prints it: stages plus the step's exposed sends.
    const auto& od = j["otherData"];
    EXPECT_NEAR(od["pipeline_closed_form_s"].get<double>(),
                od["closed_form_stages_s"].get<double>() + od["closed_form_sends_s"].get<double>(),
                1e-5 * od["pipeline_closed_form_s"].get<double>());
    EXPECT_NEAR(od["closed_form_sends_s"].get<double>(), r.time.pp_comm, 1e-5 * r.time.pp_comm + 1e-12);
    // Every stage's track is named.
    std::set<int> named;
    for (const auto& e : j["traceEvents"])
      if (e["ph"] == "M" && e["name"] == "thread_name" && e["tid"].get<int>() < pp) named.insert(e["tid"].get<int>());
    EXPECT_EQ(named.size(), static_cast<size_t>(pp));
  }
  // Without sends there are no send events; sends slower than the stages need extra lanes.
  {
    const TrainReport r = synthetic_report(4, 2, 8, 0);
    const auto sim = simulate_pipeline(pipeline_input(r), true);
    check_trace(chrome_trace(r, sim), sim.events.size(), 0);
  }
  {
    const TrainReport r = synthetic_report(4, 2, 8, 5.0);
    const auto sim = simulate_pipeline(pipeline_input(r), true);
    check_trace(chrome_trace(r, sim), sim.events.size(), 2 * 8 * 7);
  }
}

TEST(ChromeTrace, FromAnEvaluatedPlan) {
  // Llama 3 70B on 64 H100: tp 8, pp 4, vp 5, dp 2, selective recompute; 64 microbatches per replica.
  Layout l;
  l.tp = 8;
  l.pp = 4;
  l.vp = 5;
  l.dp = 2;
  l.recompute = Recompute::selective;
  const TrainReport r = evaluate(test::builtin().model("llama3-70b"), test::builtin().system("dgx-h100"), l, {8192, 128}, 64);
  ASSERT_TRUE(r.feasible()) << r.reason;
  const PipelineInput in = pipeline_input(r);
  ASSERT_EQ(in.fwd.size(), 4u);
  EXPECT_GT(in.p2p, 0);
  const PipelineResult sim = simulate_pipeline(in, true);
  check_events(in, sim);
  double max_T = 0;
  for (int i = 0; i < 4; ++i) max_T = std::max(max_T, r.stage_fwd[i] + r.stage_bwd[i]);
  EXPECT_GE(sim.makespan, r.microbatches * max_T);
  // The simulation and the evaluator's closed form agree to within the sends and stage imbalance.
  const double closed = pipeline_closed_form(r);
  EXPECT_GT(closed, 0);
  EXPECT_NEAR(sim.makespan / closed, 1.0, 0.15);
  // With the step's exposed sends (the chain of 2 (pp x vp - 1) messages and what the rest slows),
  // within 2%.
  EXPECT_NEAR(sim.makespan / (closed + r.time.pp_comm), 1.0, 0.02);
  check_trace(chrome_trace(r, sim), sim.events.size(), static_cast<size_t>(2 * r.microbatches * (4 * 5 - 1)));
  EXPECT_THROW(pipeline_input(TrainReport{}), std::invalid_argument);
}

// ---- zero-bubble (ZB-H1) ----

PipelineInput zero_bubble(PipelineInput in, double w_share) {
  in.schedule = PipeSchedule::zero_bubble;
  for (double b : in.bwd) in.wgrad.push_back(w_share * b);
  return in;
}

// Every operation runs once; F before B on a stage, B before W; a forward waits for the previous
// stage's forward, an input-gradient backward for the next stage's; at most pp - i microbatches in flight.
void check_zero_bubble_events(const PipelineInput& in, const PipelineResult& r) {
  const int P = in.pp;
  const long M = in.microbatches;
  ASSERT_EQ(r.events.size(), static_cast<size_t>(3 * P * M));
  std::map<std::tuple<int, long, int>, PipelineEvent> at;  // (stage, mb, kind 0 F / 1 B / 2 W)
  std::vector<double> busy_until(P, 0);
  for (const auto& e : r.events) {
    const int kind = e.weight_grad ? 2 : e.backward ? 1 : 0;
    EXPECT_TRUE(at.emplace(std::make_tuple(e.stage, e.microbatch, kind), e).second) << "ran twice";
    EXPECT_GE(e.start, busy_until[e.stage] - 1e-12) << "stage overlap";
    busy_until[e.stage] = e.end;
    const double want = kind == 0 ? in.fwd[e.stage] : kind == 1 ? in.bwd[e.stage] - in.wgrad[e.stage] : in.wgrad[e.stage];
    EXPECT_NEAR(e.end - e.start, want, 1e-12);
  }
  const double link = P > 1 ? in.p2p : 0;
  for (int i = 0; i < P; ++i)
    for (long mb = 0; mb < M; ++mb) {
      const auto& F = at.at({i, mb, 0});
      const auto& B = at.at({i, mb, 1});
      const auto& W = at.at({i, mb, 2});
      if (i > 0) {
        EXPECT_GE(F.start, at.at({i - 1, mb, 0}).end + link - 1e-12);
      }
      if (i + 1 < P) {
        EXPECT_GE(B.start, at.at({i + 1, mb, 1}).end + link - 1e-12);
      }
      EXPECT_GE(B.start, F.end - 1e-12);
      EXPECT_GE(W.start, B.end - 1e-12);
      // In flight when this forward starts: forwards begun minus input gradients done, at most pp - i.
      long in_flight = 0;
      for (long k = 0; k < M; ++k) {
        if (at.at({i, k, 0}).start <= F.start + 1e-12) ++in_flight;
        if (at.at({i, k, 1}).end <= F.start + 1e-12) --in_flight;
      }
      EXPECT_LE(in_flight, P - i) << "stage " << i << " mb " << mb;
      // ...and forwards begun minus weight gradients done, at most pp on every stage (ZB-H1 keeps
      // 1F1B's peak: the activations a forward saves are held until its weight gradient has run).
      long held = 0;
      for (long k = 0; k < M; ++k) {
        if (at.at({i, k, 0}).start <= F.start + 1e-12) ++held;
        if (at.at({i, k, 2}).end <= F.start + 1e-12) --held;
      }
      EXPECT_LE(held, P) << "stage " << i << " mb " << mb;
    }
}

TEST(PipelineSim, ZeroBubbleUniformMatchesItsClosedForm) {
  // F = B = W = 1 (bwd 2, half of it weight gradient): ZB-H1 leaves (p - 1)(F + B - W) = p - 1 of bubble,
  // a third of 1F1B's (p - 1)(F + B + W).
  for (int pp : {2, 4, 8})
    for (long m : {8L, 16L, 33L}) {
      const PipelineInput one = uniform(pp, 1, m, 1.0, 2.0);
      const PipelineInput zb = zero_bubble(one, 0.5);
      const PipelineResult r = simulate_pipeline(zb, true);
      expect_rel(r.makespan, 3.0 * m + (pp - 1) * 1.0, "zb-h1 pp " + std::to_string(pp) + " m " + std::to_string(m));
      expect_rel(simulate_pipeline(one, false).makespan, 3.0 * m + (pp - 1) * 3.0, "1f1b");
      check_zero_bubble_events(zb, r);
    }
}

TEST(PipelineSim, ZeroBubbleFewMicrobatchesMatchesItsClosedForm) {
  // Up to pp microbatches the drain holds only about m + pp - 2 weight gradients, not ZB-H1's
  // 2 (pp - 1): one microbatch walks forward and back in series and only its weight gradients
  // overlap. The closed form (pipeline_fill) is exact for one microbatch and within 2% of the
  // simulation for uniform stages up to pp (the old (pp - 1)(F + B - 2W) fill was 45% short at
  // pp 16 with one microbatch); from pp on, the paper's handcrafted order takes exactly the
  // closed form's time (the greedy schedule it replaced had beaten it by holding W passes back
  // without bound).
  for (auto [F, Bi, W] : {std::tuple{1.0, 1.0, 1.0}, {1.0, 1.0, 0.3}, {1.0, 2.0, 0.5}, {2.0, 1.0, 1.0}})
    for (int pp : {2, 3, 4, 8, 16})
      for (long m = 1; m <= 2L * pp + 1; ++m) {
        PipelineInput in = uniform(pp, 1, m, F, Bi + W);
        in.schedule = PipeSchedule::zero_bubble;
        in.wgrad.assign(pp, W);
        const double T = F + Bi + W;
        const double closed = m * T + pipeline_fill(pp, 1, m, PipeSchedule::zero_bubble, T, W);
        const double sim = simulate_pipeline(in, false).makespan;
        const std::string what = "pp " + std::to_string(pp) + " m " + std::to_string(m) + " W " + std::to_string(W);
        if (m == 1) expect_rel(sim, closed, what);
        if (m <= pp) {
          EXPECT_NEAR(sim / closed, 1.0, 0.02) << what;
        }
        if (m >= pp) expect_rel(sim, closed, what);
      }
  // One microbatch: p (F + B_input) + W.
  EXPECT_DOUBLE_EQ(pipeline_fill(8, 1, 1, PipeSchedule::zero_bubble, 3.0, 1.0), 7 * 3.0 - 7 * 1.0);
}

TEST(PipelineSim, ZeroBubbleNeverSlowerThanOneFOneB) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const int pp = 1 + static_cast<int>(rng() % 8);
    const long m = 1 + static_cast<long>(rng() % 24);
    const PipelineInput one = random_input(rng, pp, 1, m, 0.05 * (rng() % 3));
    const PipelineInput zb = zero_bubble(one, 0.45);
    const PipelineResult r = simulate_pipeline(zb, true);
    EXPECT_LE(r.makespan, simulate_pipeline(one, false).makespan + 1e-9) << "trial " << trial;
    check_zero_bubble_events(zb, r);
  }
}

TEST(PipelineSim, ZeroBubbleBadInput) {
  PipelineInput in = zero_bubble(uniform(4, 2, 8, 1.0, 2.0), 0.5);
  EXPECT_THROW(simulate_pipeline(in, false), std::invalid_argument);  // vp 2
  in = zero_bubble(uniform(4, 1, 8, 1.0, 2.0), 0.5);
  in.wgrad[1] = 3.0;  // above bwd
  EXPECT_THROW(simulate_pipeline(in, false), std::invalid_argument);
  in.wgrad.pop_back();
  EXPECT_THROW(simulate_pipeline(in, false), std::invalid_argument);
}

TEST(PipelineSim, ZeroBubbleInTheEvaluator) {
  // Llama 3 70B, pp 4 on 64 H100s: zb-h1 shrinks the bubble term and the step and holds more
  // memory; the trace of the plan holds weight-gradient slices; interleaving is refused.
  const Model& m = test::builtin().model("llama3-70b");
  const System& s = test::builtin().system("dgx-h100");
  Layout l;
  l.tp = 8;
  l.pp = 4;
  l.dp = 2;
  l.recompute = Recompute::selective;
  const Workload w{4096, 64};
  const TrainReport a = evaluate(m, s, l, w, 64);
  l.schedule = PipeSchedule::zero_bubble;
  const TrainReport b = evaluate(m, s, l, w, 64);
  ASSERT_TRUE(a.feasible() && b.feasible()) << a.reason << b.reason;
  EXPECT_LT(b.time.bubble, 0.8 * a.time.bubble);
  EXPECT_LT(b.step_time, a.step_time);
  EXPECT_DOUBLE_EQ(b.time.gemm, a.time.gemm);
  // ZB-H1 delays stage i's weight gradients by i, so every stage holds pp microbatches' layer
  // inputs, not 1F1B's pp - i: the most loaded stage is no longer the first alone. The memory
  // figure had counted pp - i for both schedules, under-counting the last stage (with the logits).
  EXPECT_GT(b.mem.total(), a.mem.total());
  EXPECT_EQ(b.mem.stage, l.pp - 1) << "the last stage, with the logits, is the most loaded";
  const PipelineResult sim = simulate_pipeline(pipeline_input(b), true);
  EXPECT_LE(sim.makespan, pipeline_closed_form(b) * 1.01);
  const auto trace = chrome_trace(b, sim).dump();
  EXPECT_NE(trace.find("wgrad mb 0"), std::string::npos);
  l.vp = 2;
  EXPECT_NE(check_layout(m, s, l, w, 64, nullptr), Infeasible::none);
}


// DualPipeV on pp stages: per-chunk times F, B (whole backward), W (its weight part), S (a pair's saving).
PipelineInput dualpipe(int pp, long m, double F, double B, double W, double S, double p2p = 0) {
  PipelineInput in;
  in.pp = pp;
  in.vp = 2;
  in.microbatches = m;
  in.schedule = PipeSchedule::dualpipe_v;
  in.fwd.assign(pp, F);
  in.bwd.assign(pp, B);
  in.wgrad.assign(pp, W);
  in.pair_saving.assign(pp, S);
  in.p2p = p2p;
  return in;
}

// Every chunk's forward and backward of every microbatch runs once, on its stage of the V, after
// its inputs; a pair's two halves share one interval; weight gradients after their input gradient;
// each stage runs dualpipe_pairs pairs. (The activations held are counted by dualpipe_peak_held and
// dualpipe_chunk_peaks below.)
void check_dualpipe_events(const PipelineInput& in, const PipelineResult& r) {
  const int P = in.pp;
  const long M = in.microbatches, V = 2L * P;
  const double eps = 1e-9;
  std::map<std::tuple<long, long, int>, PipelineEvent> at;  // (position, mb, kind 0 F / 1 B / 2 W)
  std::vector<double> busy_until(P, 0.0);
  std::vector<long> pairs(P, 0);
  for (size_t k = 0; k < r.events.size(); ++k) {
    const PipelineEvent& e = r.events[k];
    const long pos = chunk_position(PipeSchedule::dualpipe_v, P, e.stage, e.chunk);
    ASSERT_EQ(stage_of_position(PipeSchedule::dualpipe_v, P, pos), e.stage);
    const int kind = e.weight_grad ? 2 : e.backward ? 1 : 0;
    EXPECT_TRUE(at.emplace(std::make_tuple(pos, e.microbatch, kind), e).second) << "ran twice";
    if (e.paired == 2) {
      ASSERT_GT(k, 0u);
      EXPECT_EQ(r.events[k - 1].paired, 1);
      EXPECT_EQ(r.events[k - 1].start, e.start);
      EXPECT_EQ(r.events[k - 1].end, e.end);
      EXPECT_NEAR(e.end - e.start, in.fwd[e.stage] + in.bwd[e.stage] - in.pair_saving[e.stage], eps);
      ++pairs[e.stage];
    } else {
      EXPECT_GE(e.start, busy_until[e.stage] - eps) << "stage overlap";
      busy_until[e.stage] = e.end;
    }
  }
  for (int i = 0; i < P; ++i) EXPECT_EQ(pairs[i], dualpipe_pairs(P, M, i)) << "stage " << i;
  for (long pos = 0; pos < V; ++pos)
    for (long mb = 0; mb < M; ++mb) {
      const int st = stage_of_position(PipeSchedule::dualpipe_v, P, pos);
      const auto& F = at.at({pos, mb, 0});
      const auto& B = at.at({pos, mb, 1});
      if (pos > 0) {
        const int from = stage_of_position(PipeSchedule::dualpipe_v, P, pos - 1);
        EXPECT_GE(F.start, at.at({pos - 1, mb, 0}).end + (from == st ? 0.0 : in.p2p) - eps);
      }
      if (pos + 1 < V) {
        const int from = stage_of_position(PipeSchedule::dualpipe_v, P, pos + 1);
        EXPECT_GE(B.start, at.at({pos + 1, mb, 1}).end + (from == st ? 0.0 : in.p2p) - eps);
      }
      EXPECT_GE(B.start, F.end - eps);
      if (auto w = at.find({pos, mb, 2}); w != at.end()) {
        EXPECT_GE(w->second.start, B.end - eps);
      }
    }
}

// Activations held per stage (chunk-microbatches between a forward and the end of its whole
// backward or weight gradient), as the simulation runs the order. A pair's forward stores what its
// backward frees, layer by layer: counted as neither (the table's PP + 1 counts it so).
std::vector<long> dualpipe_peak_held(const PipelineInput& in, const PipelineResult& r) {
  std::vector<long> held(in.pp, 0), peak(in.pp, 0);
  std::set<std::tuple<int, int, long>> split;  // (stage, chunk, mb) whose weight gradient runs apart
  for (const auto& e : r.events)
    if (e.weight_grad) split.insert({e.stage, e.chunk, e.microbatch});
  for (const auto& e : r.events) {
    if (e.paired) continue;
    if (!e.backward) peak[e.stage] = std::max(peak[e.stage], ++held[e.stage]);
    else if (e.weight_grad || !split.count({e.stage, e.chunk, e.microbatch})) --held[e.stage];
  }
  return peak;
}

// Per chunk, the most chunk-microbatches a stage holds, in event order (a pair's forward before its
// backward's release), as the evaluator's memory counts them (dualpipe_held).
std::vector<std::pair<long, long>> dualpipe_chunk_peaks(const PipelineInput& in, const PipelineResult& r) {
  std::vector<std::array<long, 2>> held(in.pp, {0, 0});
  std::vector<std::pair<long, long>> peak(in.pp, {0, 0});
  std::set<std::tuple<int, int, long>> split;
  for (const auto& e : r.events)
    if (e.weight_grad) split.insert({e.stage, e.chunk, e.microbatch});
  for (const auto& e : r.events) {
    if (!e.backward) ++held[e.stage][e.chunk];
    else if (e.weight_grad || !split.count({e.stage, e.chunk, e.microbatch})) --held[e.stage][e.chunk];
    peak[e.stage].first = std::max(peak[e.stage].first, held[e.stage][0]);
    peak[e.stage].second = std::max(peak[e.stage].second, held[e.stage][1]);
  }
  return peak;
}

TEST(PipelineSim, DualPipeVUniformMatchesItsClosedForm) {
  // deepseek-ai/DualPipe's table: bubble (PP/2 - 1)(F&B + B - 3W) for PP = 2 pp stages, in the
  // setting it assumes (the input gradient as long as the forward: B - W = F). With the pairs'
  // saving S the step is 2 m (F + B) less S for the last stage's pairs beyond the fill.
  for (auto [F, B, W, S] : {std::tuple{1.0, 2.0, 1.0, 0.0}, {1.0, 2.0, 1.0, 0.5}, {1.0, 1.5, 0.5, 0.3}, {0.7, 1.3, 0.6, 0.0}})
    for (int pp : {1, 2, 3, 4, 8, 16})
      for (long m : {2L * pp, 2L * pp + 1, 3L * pp + 2, 8L * pp}) {
        const PipelineInput in = dualpipe(pp, m, F, B, W, S);
        const PipelineResult r = simulate_pipeline(in, true);
        const std::string what = "pp " + std::to_string(pp) + " m " + std::to_string(m) + " S " + std::to_string(S);
        expect_rel(r.makespan, dualpipe_closed_form(pp, m, F, B, W, S), what);
        check_dualpipe_events(in, r);
        const std::vector<long> peak = dualpipe_peak_held(in, r);
        for (int i = 0; i < pp; ++i) EXPECT_EQ(peak[i], 2L * pp + (i == pp - 1 ? 1 : 0)) << what << " stage " << i;
        const auto chunk_peak = dualpipe_chunk_peaks(in, r);
        for (int i = 0; i < pp; ++i) EXPECT_EQ(chunk_peak[i], dualpipe_held(pp, i)) << what << " stage " << i;
        ASSERT_EQ(r.stage_busy.size(), static_cast<size_t>(pp));
        for (int i = 0; i < pp; ++i) expect_rel(r.stage_busy[i], 2.0 * m * (F + B) - dualpipe_pairs(pp, m, i) * S, what);
      }
}

TEST(PipelineSim, DualPipeVBeatsInterleavedOneFOneB) {
  // Uniform stages, two chunks per stage either way, a backward 1.5-2.5 forwards long and its weight
  // part more than a third of it (dW and dX GEMMs have equal FLOPs): the V with deferred weight
  // gradients leaves less bubble than Megatron's interleaved 1F1B even with no pair saving (its
  // (pp - 1)(F + 2B - 3W) against (pp - 1)(F + B)), and sends only slow it. (Below a third, or with
  // uneven stages, it need not: the V puts the first and last chunks on stage 0.)
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(0.2, 2.0), ratio(1.5, 2.5), share(0.34, 0.5);
  for (int trial = 0; trial < 30; ++trial) {
    const int pp = 2 + static_cast<int>(rng() % 7);
    const long m = 2L * pp + static_cast<long>(rng() % 20);
    const double F = u(rng), B = ratio(rng) * F;
    const PipelineInput one = uniform(pp, 2, m, 2 * F, 2 * B);
    const PipelineInput dp = dualpipe(pp, m, F, B, share(rng) * B, 0.0);
    const PipelineResult r = simulate_pipeline(dp, true);
    check_dualpipe_events(dp, r);
    const double slowest = *std::max_element(r.stage_busy.begin(), r.stage_busy.end());
    EXPECT_GE(r.makespan, slowest - 1e-9);
    EXPECT_LE(r.makespan, simulate_pipeline(one, false).makespan + 1e-9) << "trial " << trial;
    PipelineInput slow = dp;
    slow.p2p = 0.05;
    EXPECT_GT(simulate_pipeline(slow, false).makespan, r.makespan) << "trial " << trial;
  }
}

TEST(PipelineSim, DualPipeVExtrapolatedStepMatchesTheSimulation) {
  // The evaluator simulates min(m, 4 pp) microbatches and runs the rest at the busiest stage's
  // pace: exact on uniform stages, within 1% on uneven ones (stage 0 heavier with the embedding and
  // the head, or every stage different), never below the busiest stage's work.
  // (The evaluator passes no send time: it counts the sends apart. With them the chain of pairs
  // sets a pace that repeats over two microbatches, read within 0.5%.)
  for (int pp : {2, 4, 8})
    for (long m : {2L * pp, 4L * pp + 3, 30L * pp}) {
      const PipelineInput in = dualpipe(pp, m, 1.0, 2.0, 0.9, 0.4);
      expect_rel(dualpipe_makespan(in), simulate_pipeline(in, false).makespan, "uniform pp " + std::to_string(pp));
      const PipelineInput sends = dualpipe(pp, m, 1.0, 2.0, 0.9, 0.4, 0.05);
      EXPECT_NEAR(dualpipe_makespan(sends) / simulate_pipeline(sends, false).makespan, 1.0, 0.005) << "pp " << pp << " m " << m;
    }
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> extra(0.0, 0.6), spread(0.5, 1.5), wshare(0.35, 0.5), saving(0.0, 0.5);
  for (int trial = 0; trial < 200; ++trial) {
    const int pp = 2 + static_cast<int>(rng() % 15);
    const long m = 2L * pp + static_cast<long>(rng() % (30 * pp));
    const double e0 = extra(rng), w = wshare(rng), x = saving(rng);
    PipelineInput in = dualpipe(pp, m, 1.0, 2.0, 1.0, 0.0, 0.05 * (trial % 3));
    for (int i = 0; i < pp; ++i) {
      const double k = trial % 2 ? spread(rng) : (i == 0 ? 1.0 + e0 : 1.0);
      in.fwd[i] = k;
      in.bwd[i] = 2.0 * k;
      in.wgrad[i] = w * 2.0 * k;
      in.pair_saving[i] = x * std::min(1.0, k);
    }
    const PipelineResult r = simulate_pipeline(in, false);
    const double est = dualpipe_makespan(in);
    EXPECT_NEAR(est / r.makespan, 1.0, 0.01) << "trial " << trial << " pp " << pp << " m " << m;
    EXPECT_GE(est, *std::max_element(r.stage_busy.begin(), r.stage_busy.end()) - 1e-9) << "trial " << trial;
  }
}

TEST(PipelineSim, InterleavedUnevenChunks) {
  // Chunks with their own times (an uneven --pipeline-layout): equal shares reproduce the per-stage
  // input; a chunk twice as heavy as its siblings, its stage's total unchanged, stalls the order
  // beyond the even pipeline; an empty chunk is passed through; dependencies hold throughout.
  for (int pp : {2, 4, 8})
    for (int vp : {2, 3}) {
      const PipelineInput even = uniform(pp, vp, 8L * pp, 1.0, 2.0);
      PipelineInput chunks = even;
      std::vector<double> share(static_cast<size_t>(pp * vp), 1.0 / vp);
      set_interleaved_chunks(chunks, std::vector<double>(pp, 1.0), std::vector<double>(pp, 2.0), share);
      ASSERT_EQ(chunks.fwd.size(), static_cast<size_t>(pp * vp));
      expect_rel(simulate_pipeline(chunks, false).makespan, simulate_pipeline(even, false).makespan, "equal shares");
      PipelineInput heavy = even;
      std::vector<double> lop = share;
      for (int c = 0; c < vp; ++c) lop[static_cast<size_t>(c * pp + pp - 1)] = c + 1 == vp ? 2.0 / (vp + 1) : 1.0 / (vp + 1);
      set_interleaved_chunks(heavy, std::vector<double>(pp, 1.0), std::vector<double>(pp, 2.0), lop);
      EXPECT_GT(simulate_pipeline(heavy, false).makespan, simulate_pipeline(even, false).makespan * (1 + 1e-9)) << pp << " " << vp;
    }
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> weight(0.0, 1.0);
  for (int trial = 0; trial < 100; ++trial) {
    const int pp = 2 + static_cast<int>(rng() % 9), vp = 2 + static_cast<int>(rng() % 3);
    const long m = static_cast<long>(pp) * (1 + static_cast<long>(rng() % 6)) + (trial % 5 == 0 ? 1 : 0);
    PipelineInput in = uniform(pp, vp, m, 1.0, 2.0, trial % 3 ? 0.0 : 0.02);
    std::vector<double> f(pp), b(pp), share(static_cast<size_t>(pp * vp));
    double busiest = 0;
    for (int i = 0; i < pp; ++i) {
      f[i] = 0.5 + weight(rng);
      b[i] = 2.0 * f[i];
      busiest = std::max(busiest, m * (f[i] + b[i]));
      double sum = 0;
      for (int c = 0; c < vp; ++c) sum += share[static_cast<size_t>(c * pp + i)] = weight(rng) < 0.1 ? 0.0 : 0.2 + weight(rng);
      for (int c = 0; c < vp; ++c) share[static_cast<size_t>(c * pp + i)] = sum > 0 ? share[static_cast<size_t>(c * pp + i)] / sum : 1.0 / vp;
    }
    set_interleaved_chunks(in, f, b, share);
    const PipelineResult r = simulate_pipeline(in, true);
    check_events(in, r);
    EXPECT_GE(r.makespan, busiest - 1e-9) << "trial " << trial;
  }
  PipelineInput bad = uniform(4, 2, 8, 1.0, 2.0);
  EXPECT_THROW(set_interleaved_chunks(bad, {1, 1, 1, 1}, {2, 2, 2, 2}, {0.5, 0.5}), std::invalid_argument);
}

TEST(PipelineSim, InterleavedSteadyExtrapolationIsExact) {
  // steady_1f1b_makespan (which simulate_pipeline takes when no events are asked for)
  // equals the simulation of every microbatch (events asked for), on uniform and random uneven
  // chunks, sends or none, with a remainder group or without; and it applies to most of them.
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> weight(0.0, 1.0);
  int applied = 0, trials = 0;
  for (int trial = 0; trial < 120; ++trial) {
    const int pp = 2 + static_cast<int>(rng() % 15), vp = 1 + static_cast<int>(rng() % 8);
    const long m = static_cast<long>(pp) * (32 + static_cast<long>(rng() % 40)) + (trial % 4 == 0 ? pp / 2 + 1 : 0);
    PipelineInput in = uniform(pp, vp, m, 1.0, 2.0, trial % 3 ? 0.0 : 0.05);
    if (trial % 5) {
      std::vector<double> f(pp), b(pp), share(static_cast<size_t>(pp * vp));
      for (int i = 0; i < pp; ++i) {
        f[i] = 0.5 + weight(rng);
        b[i] = (1.5 + weight(rng)) * f[i];
        double sum = 0;
        for (int c = 0; c < vp; ++c) sum += share[static_cast<size_t>(c * pp + i)] = weight(rng) < 0.1 ? 0.0 : 0.2 + weight(rng);
        for (int c = 0; c < vp; ++c) share[static_cast<size_t>(c * pp + i)] = sum > 0 ? share[static_cast<size_t>(c * pp + i)] / sum : 1.0 / vp;
      }
      set_interleaved_chunks(in, f, b, share);
    }
    const double whole = simulate_pipeline(in, true).makespan;
    const std::optional<double> steady = steady_1f1b_makespan(in);
    ++trials;
    if (!steady) continue;
    ++applied;
    EXPECT_NEAR(*steady, whole, 1e-9 * whole) << "trial " << trial << ": pp " << pp << " vp " << vp << " m " << m;
    EXPECT_EQ(simulate_pipeline(in, false).makespan, *steady);
  }
  EXPECT_GT(applied, trials * 3 / 4) << applied << " of " << trials;
  // Uniform chunks: the closed form, whatever the number of groups.
  const PipelineInput uni = uniform(8, 4, 8L * 200, 1.0, 2.0);
  ASSERT_TRUE(steady_1f1b_makespan(uni));
  expect_rel(*steady_1f1b_makespan(uni), 1600 * 3.0 + pipeline_fill(8, 4, 1600, PipeSchedule::one_f_one_b, 3.0, 0), "uniform");
  // Plain 1F1B (vp = 1) too: m (F + B) + (pp - 1)(F + B).
  const PipelineInput plain = uniform(8, 1, 8L * 200, 1.0, 2.0);
  ASSERT_TRUE(steady_1f1b_makespan(plain));
  expect_rel(*steady_1f1b_makespan(plain), 1600 * 3.0 + pipeline_fill(8, 1, 1600, PipeSchedule::one_f_one_b, 3.0, 0), "plain");
  // Too few groups: not applied.
  EXPECT_FALSE(steady_1f1b_makespan(uniform(8, 4, 8L * 20, 1.0, 2.0)));
}

TEST(PipelineSim, UnevenChunksTraceComparesWithTheStepsOwnFigure) {
  // An even split whose chunks are uneven (Llama 3 8B at pp 2 x vp 17: 34 chunks, the first and the
  // last empty) is simulated by the evaluator; the trace's "closed form" is that figure (slowest
  // stage's work + its bubble), not the equal-chunk formula.
  const Model& m = test::builtin().model("llama3-8b");
  Layout l;
  l.pp = 2;
  l.vp = 17;
  l.dp = 4;
  const TrainReport r = evaluate(m, test::builtin().system("dgx-h100"), l, Workload{4096, 64}, 8);
  ASSERT_TRUE(r.feasible()) << r.reason;
  ASSERT_FALSE(r.chunk_share.empty());
  double max_T = 0;
  for (std::size_t i = 0; i < r.stage_fwd.size(); ++i) max_T = std::max(max_T, r.stage_fwd[i] + r.stage_bwd[i]);
  expect_rel(pipeline_closed_form(r), static_cast<double>(r.microbatches) * max_T + r.time.bubble, "the step's pipeline");
}

TEST(PipelineSim, DualPipeVBadInput) {
  PipelineInput in = dualpipe(4, 8, 1.0, 2.0, 1.0, 0.5);
  EXPECT_NO_THROW(simulate_pipeline(in, false));
  in.microbatches = 7;  // below 2 pp
  EXPECT_THROW(simulate_pipeline(in, false), std::invalid_argument);
  in = dualpipe(4, 8, 1.0, 2.0, 1.0, 1.5);  // saving above the forward
  EXPECT_THROW(simulate_pipeline(in, false), std::invalid_argument);
  in = dualpipe(4, 8, 1.0, 2.0, 1.0, 0.5);
  in.vp = 1;
  EXPECT_THROW(simulate_pipeline(in, false), std::invalid_argument);
  in.vp = 2;
  in.pair_saving.pop_back();
  EXPECT_THROW(simulate_pipeline(in, false), std::invalid_argument);
  EXPECT_THROW(pipeline_fill(4, 2, 8, PipeSchedule::dualpipe_v, 3.0, 1.0), std::invalid_argument);
}

TEST(PipelineSim, DualPipeVChunksWithTheirOwnTimes) {
  // Each chunk may carry its own times (2 pp entries, chunk-major). Halves of the stage totals
  // give the per-stage schedule exactly; moving work from stage 0's chunk 0 to its chunk 1 (the
  // V's last chunk, with the head) keeps every stage's total and changes the schedule.
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0.5, 1.5);
  const int pp = 4;
  const long m = 24;
  PipelineInput per_stage = dualpipe(pp, m, 1.0, 2.0, 0.8, 0.2, 0.01);
  for (int i = 0; i < pp; ++i) {
    const double k = u(rng);
    per_stage.fwd[i] *= k;
    per_stage.bwd[i] *= k;
    per_stage.wgrad[i] *= k;
    per_stage.pair_saving[i] *= k;
  }
  std::vector<double> f(pp), b(pp), w(pp), x(pp), f0(pp), b0(pp), w0(pp), x0(pp);
  for (int i = 0; i < pp; ++i) {
    f[i] = 2 * per_stage.fwd[i], b[i] = 2 * per_stage.bwd[i], w[i] = 2 * per_stage.wgrad[i], x[i] = 2 * per_stage.pair_saving[i];
    f0[i] = per_stage.fwd[i], b0[i] = per_stage.bwd[i], w0[i] = per_stage.wgrad[i], x0[i] = per_stage.pair_saving[i];
  }
  PipelineInput halves = per_stage;
  set_dualpipe_chunks(halves, f, b, w, x, f0, b0, w0, x0);
  ASSERT_EQ(halves.fwd.size(), 2u * pp);
  EXPECT_DOUBLE_EQ(simulate_pipeline(halves, false).makespan, simulate_pipeline(per_stage, false).makespan);
  EXPECT_DOUBLE_EQ(dualpipe_makespan(halves), dualpipe_makespan(per_stage));
  // Stage 0's chunk 1 twice its chunk 0: the same totals, a different step (the order of which
  // chunk waits on which changes; with these stages a little shorter).
  PipelineInput lopsided = per_stage;
  f0[0] = f[0] / 3, b0[0] = b[0] / 3, w0[0] = w[0] / 3;
  set_dualpipe_chunks(lopsided, f, b, w, x, f0, b0, w0, x0);
  EXPECT_NEAR(lopsided.fwd[0] + lopsided.fwd[pp], f[0], 1e-12);
  EXPECT_GT(std::abs(simulate_pipeline(lopsided, false).makespan - simulate_pipeline(per_stage, false).makespan), 0.1);
  // A chunk's time that does not add up is refused, as a stage's is; so is a NaN total, which the
  // split keeps (QA, session 29: a clamp had turned it into 0).
  PipelineInput bad = halves;
  bad.fwd[pp] = -1;
  EXPECT_THROW(simulate_pipeline(bad, false), std::invalid_argument);
  std::vector<double> nan_f = f;
  nan_f[1] = std::nan("");
  PipelineInput nan_in = per_stage;
  set_dualpipe_chunks(nan_in, nan_f, b, w, x, f0, b0, w0, x0);
  EXPECT_THROW(simulate_pipeline(nan_in, false), std::invalid_argument);
  // A pair saves at most either of its passes: chunk 0 with a short forward and no saving beside a
  // chunk 1 that saves much (DeepSeek-V3's stage 0: two dense layers, then the MoE head chunk).
  PipelineInput pair = per_stage;
  std::vector<double> pf = f, pb = b, pw = w, px = x, pf0 = f0, pb0 = b0, pw0 = w0, px0 = x0;
  pf0[0] = 0.05 * pf[0];
  px0[0] = 0;
  px[0] = std::min(0.9 * (pf[0] - pf0[0]), pb[0] - pb0[0]);
  set_dualpipe_chunks(pair, pf, pb, pw, px, pf0, pb0, pw0, px0);
  EXPECT_LE(dualpipe_pair_saving(pair, 0, 0, 1), pair.fwd[0]);
  EXPECT_DOUBLE_EQ(dualpipe_pair_saving(pair, 0, 0, 1), pair.fwd[0]);  // the mean would pass it
}

TEST(PipelineSim, DualPipeVInTheEvaluator) {
  // Qwen3-30B-A3B, pp 4 ep 8 on 64 H100s: the V's pairs hide part of the expert all-to-all and its
  // deferred weight gradients shrink the bubble against interleaved 1F1B with the same two chunks
  // per stage; the GEMM time is the same work. Stage 0 holds the embedding and the loss (the V's
  // first and last chunks); the trace draws the pairs; the step's pipeline is the simulation's.
  const Model& m = test::builtin().model("qwen3-30b-a3b");
  const System& s = test::builtin().system("dgx-h100");
  Layout l;
  l.pp = 4;
  l.vp = 2;
  l.dp = 16;
  l.ep = 8;
  l.recompute = Recompute::selective;
  const Workload w{4096, 256};
  const TrainReport a = evaluate(m, s, l, w, 64, true, true);
  l.schedule = PipeSchedule::dualpipe_v;
  const TrainReport b = evaluate(m, s, l, w, 64, true, true);
  ASSERT_TRUE(a.feasible() && b.feasible()) << a.reason << b.reason;
  EXPECT_LT(b.time.ep_comm, 0.8 * a.time.ep_comm);
  EXPECT_LT(b.time.bubble, a.time.bubble);
  EXPECT_LT(b.step_time, a.step_time);
  EXPECT_NEAR(b.time.gemm, a.time.gemm, 0.05 * a.time.gemm);  // the busiest stage may differ
  EXPECT_GT(b.stage_fwd[0], b.stage_fwd[l.pp - 1]) << "stage 0 holds the embedding and the LM head";
  // Its two chunks timed apart: the head is the V's last chunk (stage 0's chunk 1), so chunk 0
  // holds less than half of stage 0's forward; a middle stage's chunks hold their own layers.
  ASSERT_EQ(b.chunk0_fwd.size(), static_cast<size_t>(l.pp));
  EXPECT_LT(b.chunk0_fwd[0], 0.5 * b.stage_fwd[0]);
  EXPECT_GT(b.chunk0_fwd[1], 0.0);
  EXPECT_LE(b.chunk0_fwd[1], b.stage_fwd[1]);
  const PipelineResult sim = simulate_pipeline(pipeline_input(b), true);
  PipelineInput quiet = pipeline_input(b);
  quiet.p2p = 0;
  const double stages = simulate_pipeline(quiet, false).makespan;
  expect_rel(b.step_time - b.time.pp_comm - b.time.dp_comm - b.time.fsdp_comm - b.time.optimizer - b.time.overhead, stages,
             "the step's pipeline is the simulated DualPipeV order");
  // The closed form (busiest stage + the uniform-stage bubble) reads the uneven V (stage 0 with the
  // embedding and the head) within 6%; the simulation is what the step counts.
  EXPECT_NEAR(pipeline_closed_form(b) / stages, 1.0, 0.06);
  const auto trace = chrome_trace(b, sim).dump();
  EXPECT_NE(trace.find("forward-backward"), std::string::npos);
  EXPECT_NE(trace.find("wgrad mb 0 chunk 1"), std::string::npos);
  // Fewer than 2 pp microbatches, one chunk per stage, or Megatron's pairing on top are refused.
  EXPECT_EQ(check_layout(m, s, l, Workload{4096, 16 * 7}, 64, nullptr), Infeasible::too_few_microbatches);
  Layout one = l;
  one.vp = 1;
  EXPECT_NE(check_layout(m, s, one, w, 64, nullptr), Infeasible::none);
  one = l;
  one.moe_a2a_overlap = true;
  EXPECT_NE(check_layout(m, s, one, w, 64, nullptr), Infeasible::none);
  // The memory counts 2 pp + 1 chunk-microbatches (the DualPipe table's PP + 1), not interleaving's warm-up.
  EXPECT_LT(b.mem.activations, a.mem.activations);
}

TEST(PipelineSim, DualPipeVSplitsLayersEvenlyAndCountsTiedTablesOnce) {
  // Mixtral 8x22B, 56 layers over pp 8: 7 on every stage (interleaving's chunk sizes had given the
  // V 6, 7, ..., 7, 8, slower than interleaved 1F1B with its 7 each).
  const Model& mx = test::builtin().model("mixtral-8x22b");
  const System& h100 = test::builtin().system("dgx-h100");
  Layout l;
  l.tp = 2;
  l.pp = 8;
  l.vp = 2;
  l.dp = 32;
  l.ep = 8;
  l.recompute = Recompute::selective;
  const Workload w{4096, 1024};
  const TrainReport one = evaluate(mx, h100, l, w, 512, true, true);
  l.schedule = PipeSchedule::dualpipe_v;
  const TrainReport v = evaluate(mx, h100, l, w, 512, true, true);
  ASSERT_TRUE(one.feasible() && v.feasible()) << one.reason << v.reason;
  EXPECT_EQ(v.stage_layers, std::vector<int>(8, 7));
  EXPECT_LT(v.step_time, one.step_time);
  // A model with tied embeddings keeps one table on stage 0, which holds both ends of the V (it
  // had been counted twice: 2.675 GiB of weights against interleaving's 2.603 GiB).
  Model tied = test::builtin().model("llama3-8b");
  tied.tied_embeddings = true;
  Layout t;
  t.tp = 1;
  t.pp = 4;
  t.vp = 2;
  t.dp = 2;
  t.recompute = Recompute::selective;
  const Workload tw{4096, 64};
  t.schedule = PipeSchedule::dualpipe_v;
  const TrainReport tv = evaluate(tied, h100, t, tw, 8, false, true);
  Layout untied_l = t;
  Model untied = tied;
  untied.tied_embeddings = false;
  const TrainReport uv = evaluate(untied, h100, untied_l, tw, 8, false, true);
  EXPECT_EQ(tv.mem.stage, 0);
  EXPECT_NEAR(uv.mem.weights - tv.mem.weights, static_cast<double>(tied.vocab) * tied.hidden * 2.0, 1.0)
      << "untied: stage 0 holds the embedding and the head; tied: one table";
}

}  // namespace
}  // namespace xpu
