// Search: pruning passes against brute force, determinism across threads, objectives, device
// ranges, and agreement with the single evaluation path.
#include <algorithm>
#include <gtest/gtest.h>

#include <set>

#include "search/search.hpp"
#include "test_common.hpp"
#include "train/choose.hpp"
#include "train/evaluate.hpp"
#include "util/parallel.hpp"

namespace xpu {
namespace {

using test::builtin;

PlanRequest small_request() {
  PlanRequest q;
  q.devices = 16;
  q.work = {4096, 64};
  return q;
}

bool same_layout(const Layout& a, const Layout& b) {
  return a.tp == b.tp && a.pp == b.pp && a.vp == b.vp && a.dp == b.dp && a.cp == b.cp && a.ep == b.ep && a.etp == b.etp &&
         a.micro_batch == b.micro_batch && a.zero == b.zero && a.recompute == b.recompute &&
         (a.recompute != Recompute::selective || a.recompute_modules == b.recompute_modules) && a.precision == b.precision &&
         a.grad_fp32 == b.grad_fp32 && a.lowp_params == b.lowp_params;
}

TEST(ParallelFor, EveryIndexOnceAndTheFirstErrorRethrown) {
  for (int threads : {0, 1, 2, 7, 64}) {
    std::vector<int> hits(100, 0);
    parallel_for(hits.size(), threads, [&](std::size_t i) { ++hits[i]; });  // each slot its own
    EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), 100) << threads << " threads";
    parallel_for(0, threads, [&](std::size_t) { FAIL() << "no index to run"; });
    EXPECT_THROW(parallel_for(50, threads,
                              [](std::size_t i) {
                                if (i == 17) throw InputError("--x", "bad");
                              }),
                 InputError)
        << threads << " threads";
  }
}

TEST(Search, ExactPassesKeepTheTopKOfBruteForce) {
  // divisibility and memory drop only plans that cannot run, so with them on (and dominance off)
  // the top 8 equal brute force's, plan for plan; the counts add up to the same space.
  const Model& m = builtin().model("llama3-8b");
  const System& s = builtin().system("dgx-h100");
  SearchOptions brute;
  brute.top_k = 8;
  brute.prune_divisibility = brute.prune_memory = brute.prune_dominance = false;
  SearchOptions exact = brute;
  exact.prune_divisibility = exact.prune_memory = true;
  const SearchResult a = search(m, s, small_request(), brute);
  const SearchResult b = search(m, s, small_request(), exact);
  EXPECT_EQ(a.stats.considered, b.stats.considered);
  EXPECT_GT(b.stats.pruned_divisibility, 0);
  EXPECT_GT(b.stats.pruned_memory, 0);
  EXPECT_EQ(a.stats.feasible, b.stats.feasible);
  ASSERT_EQ(a.top.size(), b.top.size());
  for (std::size_t i = 0; i < a.top.size(); ++i) {
    EXPECT_TRUE(same_layout(a.top[i].layout, b.top[i].layout)) << "rank " << i;
    EXPECT_EQ(a.top[i].step_time, b.top[i].step_time);
  }
}

TEST(Search, DivisibilityDropsInterleavingWithTooFewMicrobatches) {
  // Global batch 8 on 32 GPUs leaves few microbatches per replica: the divisibility pass drops
  // every interleaved layout with fewer than pp of them (check_layout refuses them), so every
  // layout left to time can run, and the answer is brute force's.
  const Model& m = builtin().model("llama3-8b");
  const System& s = builtin().system("dgx-h100");
  PlanRequest q;
  q.devices = 32;
  q.work = Workload{4096, 8};
  SearchOptions exact;
  exact.top_k = 4;
  exact.prune_dominance = false;
  SearchOptions brute = exact;
  brute.prune_divisibility = brute.prune_memory = false;
  const SearchResult a = search(m, s, q, exact), b = search(m, s, q, brute);
  EXPECT_EQ(a.stats.evaluated, a.stats.feasible);
  EXPECT_EQ(a.stats.feasible, b.stats.feasible);
  ASSERT_FALSE(a.top.empty());
  ASSERT_EQ(a.top.size(), b.top.size());
  for (std::size_t i = 0; i < a.top.size(); ++i) {
    EXPECT_TRUE(same_layout(a.top[i].layout, b.top[i].layout)) << "rank " << i;
    const TrainReport& r = a.top[i];
    EXPECT_TRUE(r.layout.vp == 1 || r.microbatches >= r.layout.pp) << "rank " << i;
  }
}

TEST(Search, DominanceKeepsTheOptimum) {
  // Recompute only adds time, so dropping the recompute variants of a layout that fits without keeps the best
  // plan; the dropped count plus the kept feasible count equals brute force's feasible count.
  const Model& m = builtin().model("llama3-8b");
  const System& s = builtin().system("dgx-h100");
  SearchOptions all;
  SearchOptions no_dom;
  no_dom.prune_dominance = false;
  const SearchResult a = search(m, s, small_request(), all);
  const SearchResult b = search(m, s, small_request(), no_dom);
  ASSERT_FALSE(a.top.empty());
  EXPECT_TRUE(same_layout(a.top[0].layout, b.top[0].layout));
  EXPECT_GT(a.stats.pruned_dominance, 0);
  // Each plan dominance dropped is one brute force may find feasible: the gap is bounded by it.
  EXPECT_LT(a.stats.feasible, b.stats.feasible);
  EXPECT_LE(b.stats.feasible - a.stats.feasible, a.stats.pruned_dominance);
}

TEST(Search, DominanceKeepsTheParetoFront) {
  // More recompute is never faster but buys memory headroom: Llama 3 70B on 16 H100s has front
  // plans with full recompute (tp 8 cp 2, ZeRO-2 and -3: 70.8 and 62.8 GiB) that the pass left out.
  PlanRequest q;
  q.devices = 16;
  q.work = {8192, 32};
  const Model& m = builtin().model("llama3-70b");
  const System& s = builtin().system("dgx-h100");
  SearchOptions all;
  SearchOptions no_dom;
  no_dom.prune_dominance = false;
  // The fronts with and without the pass: point by point, the same time and memory.
  auto same_front = [](const SearchResult& x, const SearchResult& y) {
    ASSERT_EQ(x.pareto.size(), y.pareto.size());
    for (std::size_t i = 0; i < x.pareto.size(); ++i) {
      EXPECT_EQ(x.pareto[i].step_time, y.pareto[i].step_time) << i;
      EXPECT_EQ(x.pareto[i].mem.total(), y.pareto[i].mem.total()) << i;
    }
  };
  const SearchResult a = search(m, s, q, all);
  const SearchResult b = search(m, s, q, no_dom);
  EXPECT_GT(a.stats.pruned_dominance, 0);
  same_front(a, b);
  EXPECT_TRUE(std::any_of(a.pareto.begin(), a.pareto.end(),
                          [](const TrainReport& r) { return r.layout.recompute != Recompute::none; }));
  // The counts add up: every layout considered is pruned by one pass or evaluated.
  EXPECT_EQ(a.stats.considered, a.stats.pruned_divisibility + a.stats.pruned_memory + a.stats.pruned_dominance + a.stats.evaluated);
  // Unfused attention on 8 A100s 40 GB: selective fits, and full recompute of a few layers can be
  // faster and leaner; the pass stopped at selective and lost a front point.
  PlanRequest u;
  u.devices = 8;
  u.work = {8192, 16};
  u.attention = AttentionKernel::unfused;
  const Model& m8 = builtin().model("llama3-8b");
  const System& a100 = builtin().system("dgx-a100-40gb");
  const SearchResult c = search(m8, a100, u, all), d = search(m8, a100, u, no_dom);
  same_front(c, d);
  ASSERT_FALSE(c.top.empty());
  EXPECT_EQ(c.top[0].step_time, d.top[0].step_time);
}

TEST(Search, NoPlanTwiceWithoutDivisibilityPruning) {
  // Mixtral on 32 Trainium2 chips: with an automatic expert degree beside the explicit ones, the
  // unpruned search timed tp x etp plans twice (feasible 66,500 -> 102,576, the top list doubled).
  // bf16 and ZeRO-1 held: the unpruned space is a tenth as large (7.5 M layouts; 75 M took 18 s,
  // and two minutes under AddressSanitizer), and the expert degrees are still searched.
  PlanRequest q;
  q.devices = 32;
  q.work = {4096, 64};
  q.precision = Precision::bf16;
  q.zero = 1;
  const Model& m = builtin().model("mixtral-8x7b");
  const System& s = builtin().system("trn2-48xl");
  SearchOptions pruned;
  pruned.top_k = 6;
  SearchOptions raw = pruned;
  raw.prune_divisibility = false;
  const SearchResult a = search(m, s, q, pruned), b = search(m, s, q, raw);
  EXPECT_EQ(a.stats.feasible, b.stats.feasible);
  ASSERT_EQ(a.top.size(), b.top.size());
  for (std::size_t i = 0; i < a.top.size(); ++i) EXPECT_TRUE(same_layout(a.top[i].layout, b.top[i].layout)) << i;
}

TEST(Search, ThreadsDoNotChangeTheAnswer) {
  // Candidates are merged in task order and sorted with a total order: 1 and 3 threads agree.
  const Model& m = builtin().model("gpt3-175b");
  const System& s = builtin().system("dgx-h100");
  PlanRequest q;
  q.devices = 128;
  q.work = {2048, 256};
  SearchOptions one, three;
  three.threads = 3;
  const SearchResult a = search(m, s, q, one), b = search(m, s, q, three);
  EXPECT_EQ(a.stats.considered, b.stats.considered);
  EXPECT_EQ(a.stats.evaluated, b.stats.evaluated);
  ASSERT_EQ(a.top.size(), b.top.size());
  ASSERT_EQ(a.pareto.size(), b.pareto.size());
  for (std::size_t i = 0; i < a.top.size(); ++i) EXPECT_TRUE(same_layout(a.top[i].layout, b.top[i].layout));
  for (std::size_t i = 0; i < a.pareto.size(); ++i) EXPECT_TRUE(same_layout(a.pareto[i].layout, b.pareto[i].layout));
}

TEST(Search, BoundKeepsTheTopKAndTheFront) {
  // Llama 3.1 405B's 126 layers split unevenly at pp x vp = 16 x 4 and most other depths, so many
  // plans would be simulated: the bound skips those provably out of the results, and the top K
  // and the front stay plan for plan, figure for figure. Without the front (compare's fastest
  // plan) it prunes more, and the best plan is the same.
  const Model& m = builtin().model("llama3.1-405b");
  const System& s = builtin().system("dgx-h100");
  PlanRequest q;
  q.devices = 256;
  q.work = {8192, 128};
  SearchOptions bound, plain;
  plain.prune_bound = false;
  SearchOptions fastest = bound;
  fastest.top_k = 1;
  fastest.pareto = false;
  const SearchResult a = search(m, s, q, bound), b = search(m, s, q, plain), c = search(m, s, q, fastest);
  EXPECT_GT(a.stats.pruned_dominance, b.stats.pruned_dominance);
  EXPECT_EQ(a.stats.considered, a.stats.pruned_divisibility + a.stats.pruned_memory + a.stats.pruned_dominance + a.stats.evaluated);
  ASSERT_EQ(a.top.size(), b.top.size());
  for (std::size_t i = 0; i < a.top.size(); ++i) {
    EXPECT_TRUE(same_layout(a.top[i].layout, b.top[i].layout)) << "rank " << i;
    EXPECT_EQ(a.top[i].step_time, b.top[i].step_time) << "rank " << i;
  }
  ASSERT_EQ(a.pareto.size(), b.pareto.size());
  for (std::size_t i = 0; i < a.pareto.size(); ++i) {
    EXPECT_TRUE(same_layout(a.pareto[i].layout, b.pareto[i].layout)) << "front " << i;
    EXPECT_EQ(a.pareto[i].step_time, b.pareto[i].step_time) << "front " << i;
  }
  EXPECT_TRUE(c.pareto.empty());
  EXPECT_GT(c.stats.pruned_dominance, a.stats.pruned_dominance);
  ASSERT_EQ(c.top.size(), 1u);
  ASSERT_FALSE(a.top.empty());
  EXPECT_TRUE(same_layout(c.top[0].layout, a.top[0].layout));
  EXPECT_EQ(c.top[0].step_time, a.top[0].step_time);
}

TEST(Search, TopIsSortedAndMatchesTheEvaluator) {
  // The best plans come best first, and each is what evaluate() says for that layout.
  const Model& m = builtin().model("llama3-70b");
  const System& s = builtin().system("dgx-h100");
  PlanRequest q;
  q.devices = 64;
  q.work = {8192, 128};
  SearchOptions o;
  o.top_k = 5;
  const SearchResult r = search(m, s, q, o);
  ASSERT_EQ(r.top.size(), 5u);
  for (std::size_t i = 1; i < r.top.size(); ++i) EXPECT_LE(r.top[i - 1].step_time, r.top[i].step_time);
  for (const auto& t : r.top) {
    const TrainReport e = evaluate(m, s, t.layout, q.work, q.devices);
    EXPECT_EQ(e.step_time, t.step_time);
    EXPECT_LE(e.mem.total(), e.mem.capacity);
  }
}

TEST(Search, ParetoFrontIsNonDominated) {
  // No plan on the front is at least as fast with at least as much memory headroom as another.
  const Model& m = builtin().model("llama3-70b");
  const System& s = builtin().system("dgx-h100");
  PlanRequest q;
  q.devices = 64;
  q.work = {8192, 128};
  const SearchResult r = search(m, s, q, SearchOptions{});
  ASSERT_GE(r.pareto.size(), 2u);
  for (const auto& a : r.pareto)
    for (const auto& b : r.pareto) {
      if (&a == &b) continue;
      const bool dom = a.step_time <= b.step_time && a.mem.total() <= b.mem.total() &&
                       (a.step_time < b.step_time || a.mem.total() < b.mem.total());
      EXPECT_FALSE(dom);
    }
}

TEST(Search, MemoryHeadroomObjectivePrefersSmallerFootprint) {
  // Ranked by memory / capacity: the first plan uses no more memory than the second.
  const Model& m = builtin().model("llama3-8b");
  const System& s = builtin().system("dgx-h100");
  SearchOptions o;
  o.objective = Objective::memory_headroom;
  o.top_k = 3;
  const SearchResult r = search(m, s, small_request(), o);
  ASSERT_EQ(r.top.size(), 3u);
  EXPECT_LE(r.top[0].mem.total(), r.top[1].mem.total());
  EXPECT_EQ(r.stats.pruned_dominance, 0);  // dominance is off for this objective
}

TEST(Search, DeviceRangeSearchesSeveralCounts) {
  // min 8 .. max 64 on 8-GPU nodes: 8, 16, 32, 64 devices are all candidates. More devices finish
  // a step sooner but cost more device-hours, so with a price the Pareto front (time, headroom,
  // cost) holds more than one device count, and the fastest plan uses the most devices.
  const Model& m = builtin().model("llama3-8b");
  const System& s = builtin().system("dgx-h100");
  SearchOptions o;
  o.min_devices = 8;
  o.max_devices = 64;
  o.usd_per_device_hour = 2.0;
  const SearchResult r = search(m, s, small_request(), o);
  std::set<int> counts;
  for (const auto& t : r.pareto) counts.insert(t.devices);
  EXPECT_GE(counts.size(), 2u);
  ASSERT_FALSE(r.top.empty());
  EXPECT_EQ(r.top[0].devices, 64);
}

TEST(Search, DeviceRangeCountsWholeRacks) {
  // GB200 NVL72: 4-GPU trays in 72-GPU NVLink domains. 64..300 devices tried 64, 128 and 256 only
  // (never a whole rack); now 72, 144 and 288 too. 8-GPU DGX nodes are their own domain: unchanged.
  SearchOptions o;
  o.min_devices = 64;
  o.max_devices = 300;
  PlanRequest q = small_request();
  q.devices = 64;
  EXPECT_EQ(device_counts(builtin().system("gb200-nvl72"), q, o), (std::vector<int>{64, 72, 128, 144, 256, 288}));
  EXPECT_EQ(device_counts(builtin().system("dgx-h100"), q, o), (std::vector<int>{64, 128, 256}));
  // A whole-rack count is searched and planned.
  o.min_devices = 72;
  o.max_devices = 72;
  q.devices = 72;
  q.work = {4096, 576};
  const SearchResult r = search(builtin().model("llama3-8b"), builtin().system("gb200-nvl72"), q, o);
  ASSERT_FALSE(r.top.empty());
  EXPECT_EQ(r.top[0].devices, 72);
}

TEST(Search, CostObjectiveNeedsAPrice) {
  // Without a price, cost and tokens-per-dollar are refused with an InputError naming --objective.
  SearchOptions o;
  o.objective = Objective::cost;
  const auto e = test::catch_input_error(
      [&] { search(builtin().model("llama3-8b"), builtin().system("dgx-h100"), small_request(), o); });
  EXPECT_EQ(e.where, "--objective");
  o.usd_per_device_hour = 2.0;
  const SearchResult r = search(builtin().model("llama3-8b"), builtin().system("dgx-h100"), small_request(), o);
  ASSERT_FALSE(r.top.empty());
}

TEST(Search, ExplicitKnobsAreHeldAndChecked) {
  // --tp 2 holds tp at 2 in every result; --tp 3 does not divide 16 devices: InputError on --tp.
  PlanRequest q = small_request();
  q.tp = 2;
  const SearchResult r = search(builtin().model("llama3-8b"), builtin().system("dgx-h100"), q, SearchOptions{});
  for (const auto& t : r.top) EXPECT_EQ(t.layout.tp, 2);
  q.tp = 3;
  const auto e = test::catch_input_error(
      [&] { search(builtin().model("llama3-8b"), builtin().system("dgx-h100"), q, SearchOptions{}); });
  EXPECT_EQ(e.where, "--tp");
}

TEST(Search, LowpParamsIsHeldBothWays) {
  // Free, the fastest fp8 plans keep their primary weights in fp8; pinned off, no result does;
  // pinned on, every result does (and so runs fp8 or fp4).
  PlanRequest q = small_request();
  SearchOptions o;
  o.top_k = 16;
  const Model& m = builtin().model("llama3-8b");
  const System& s = builtin().system("dgx-h100");
  const SearchResult free = search(m, s, q, o);
  EXPECT_TRUE(std::any_of(free.top.begin(), free.top.end(), [](const auto& t) { return t.layout.lowp_params; }));
  q.lowp_params = false;
  const SearchResult off = search(m, s, q, o);
  // Pruning keeps its count of the space in step with the pinned options.
  SearchOptions brute = o;
  brute.prune_divisibility = brute.prune_memory = brute.prune_dominance = false;
  EXPECT_EQ(search(m, s, q, brute).stats.considered, off.stats.considered);
  EXPECT_LT(off.stats.considered, free.stats.considered);
  ASSERT_FALSE(off.top.empty());
  for (const auto& t : off.top) EXPECT_FALSE(t.layout.lowp_params);
  q.lowp_params = true;
  const SearchResult on = search(m, s, q, o);
  ASSERT_FALSE(on.top.empty());
  for (const auto& t : on.top) {
    EXPECT_TRUE(t.layout.lowp_params);
    EXPECT_TRUE(t.layout.precision == Precision::fp8 || t.layout.precision == Precision::fp4);
  }
}

TEST(Search, PrecisionCandidates) {
  // Left free, the planner trains in bf16, or fp8 where the chip runs it faster: fp8 on H100, B200,
  // MI300X; bf16 on TPU v5p and Gaudi 3 (fp8 at the bf16 rate: only a memory gain, no framework's
  // recipe); fp4 never unless asked (it had won every Blackwell and MI355X comparison on an
  // assumption). validate's every_precision adds fp4 and same-rate fp8 (a run's owners tuned it).
  auto range = [](const char* id, bool every = false) { return precision_range(builtin().system(id), every); };
  const std::vector<Precision> bf16_fp8 = {Precision::bf16, Precision::fp8}, bf16 = {Precision::bf16};
  EXPECT_EQ(range("dgx-h100"), bf16_fp8);
  EXPECT_EQ(range("dgx-b200"), bf16_fp8);
  EXPECT_EQ(range("mi355x-x8"), bf16_fp8);
  EXPECT_EQ(range("tpu-v5p"), bf16);
  EXPECT_EQ(range("gaudi3-x8"), bf16);
  EXPECT_EQ(range("dgx-a100"), bf16);
  EXPECT_EQ(range("dgx-b200", true), (std::vector<Precision>{Precision::bf16, Precision::fp8, Precision::fp4}));
  EXPECT_EQ(range("tpu-v5p", true), bf16_fp8);
  // train's chooser on B200 with precision free: no fp4 plan; asked, fp4 runs.
  PlanRequest q;
  q.devices = 64;
  q.work = {8192, 128};
  const Model& m = builtin().model("llama3-70b");
  const TrainReport free = choose_plan(m, builtin().system("dgx-b200"), q);
  ASSERT_TRUE(free.feasible()) << free.reason;
  EXPECT_EQ(free.layout.precision, Precision::fp8);
  q.precision = Precision::fp4;
  const TrainReport fp4 = choose_plan(m, builtin().system("dgx-b200"), q);
  ASSERT_TRUE(fp4.feasible()) << fp4.reason;
  EXPECT_LT(fp4.step_time, free.step_time);
}

TEST(Search, SizesRecomputeForTheLayoutAsItRuns) {
  // Llama 3 70B on one NVL72 rack, every knob given but recompute: train's chooser reruns 3
  // layers per stage. The search sized the partial recompute before applying the memory options
  // (fp32 gradients, bf16 primary weights) and fell back to rerunning every layer, 31% slower.
  PlanRequest q;
  q.devices = 72;
  q.work = {8192, 144};
  q.tp = 1;
  q.pp = 1;
  q.cp = 1;
  q.micro_batch = 1;
  q.zero = 2;
  q.precision = Precision::fp4;
  q.lowp_params = true;  // fp4 primary weights, asked for (the planner keeps bf16 ones unless asked)
  const Model& m = builtin().model("llama3-70b");
  const System& s = builtin().system("gb200-nvl72");
  const TrainReport chosen = choose_plan(m, s, q);
  ASSERT_TRUE(chosen.feasible()) << chosen.reason;
  SearchOptions o;
  o.threads = 1;
  const SearchResult res = search(m, s, q, o);
  ASSERT_FALSE(res.top.empty());
  EXPECT_LE(res.top[0].step_time, chosen.step_time * (1 + 1e-9));
}

TEST(Search, TriesAsManyChunksAsTheEvaluatorAccepts) {
  // pp 16 x vp 8 = 128 chunks over Llama 3.1 405B's 126 layers, the embedding and the loss
  // counted as one layer each (the 405B recipes' layout): check_layout accepts it, so the
  // search and train's chooser must too.
  PlanRequest q;
  q.devices = 16384;
  q.work = {8192, 2048};
  q.tp = 8;
  q.pp = 16;
  q.dp = 128;
  q.vp = 8;
  q.micro_batch = 1;
  const Model& m = builtin().model("llama3.1-405b");
  const System& s = builtin().system("dgx-h100");
  SearchOptions o;
  o.threads = 1;
  const SearchResult res = search(m, s, q, o);
  ASSERT_FALSE(res.top.empty());
  EXPECT_EQ(res.top[0].layout.vp, 8);
  q.vp.reset();
  const TrainReport chosen = choose_plan(m, s, q);
  ASSERT_TRUE(chosen.feasible()) << chosen.reason;
  EXPECT_LE(chosen.step_time, res.top[0].step_time * (1 + 1e-9));  // vp 8 among its candidates
}

TEST(Search, GivenDpHoldsWithoutDivisibilityPruning) {
  PlanRequest q;
  q.devices = 64;
  q.work = {4096, 128};
  q.dp = 8;
  SearchOptions o;
  o.threads = 1;
  o.prune_divisibility = false;
  const SearchResult res = search(builtin().model("llama3-8b"), builtin().system("dgx-h100"), q, o);
  ASSERT_FALSE(res.top.empty());
  for (const auto& r : res.top) EXPECT_EQ(r.layout.dp, 8);
}

TEST(Search, InterleavesOnlyIntoEvenChunksUnlessVpIsGiven) {
  PlanRequest q;
  q.devices = 64;
  q.work = {4096, 256};
  q.tp = 8;
  q.pp = 4;
  const Model& m = builtin().model("llama3-70b");
  SearchOptions o;
  o.threads = 1;
  o.top_k = 20;
  const SearchResult res = search(m, builtin().system("dgx-h100"), q, o);
  ASSERT_FALSE(res.top.empty());
  for (const auto& r : res.top)  // uneven chunks only with the layout that runs them written out
    EXPECT_TRUE(even_chunks(m.layers, r.layout.pp, r.layout.vp) || (r.layout.stage_layout && r.layout.stage_layout->balanced)) << r.layout.vp;
  q.balance_pipeline = false;  // the even split alone: even chunks alone
  for (const auto& r : search(m, builtin().system("dgx-h100"), q, o).top) {
    EXPECT_TRUE(even_chunks(m.layers, r.layout.pp, r.layout.vp)) << r.layout.vp;
    EXPECT_FALSE(r.layout.stage_layout);
  }
  q.balance_pipeline = true;
  q.vp = 9;  // given: evaluated as asked
  const SearchResult given = search(m, builtin().system("dgx-h100"), q, o);
  ASSERT_FALSE(given.top.empty());
  EXPECT_EQ(given.top[0].layout.vp, 9);
}

TEST(Search, TrainAndSearchShareOneCandidateSpace) {
  // Both enumerate train/choose.hpp's ranges, so train's choice is the search's first. Before,
  // the search tried only powers of two for tp, micro-batch and ep, and train never varied etp:
  // GPT-3 on 1,024 A100s with ZeRO-3 runs micro-batch 3 (train found it, the search could not),
  // and DeepSeek-V3 runs tp 2 with expert tensor degree 1 (the search found it, train could not).
  struct Case {
    const char* model;
    const char* system;
    int devices;
    long seq, batch;
    void (*pin)(PlanRequest&);
  };
  const Case cases[] = {
      {"gpt3-175b", "dgx-a100", 1024, 2048, 1536,
       [](PlanRequest& q) { q.zero = 3; q.pp = 1; q.cp = 1; q.precision = Precision::bf16; q.recompute = Recompute::none; }},
      {"deepseek-v3", "dgx-h100", 1024, 4096, 1024,
       [](PlanRequest& q) { q.tp = 2; q.pp = 32; q.cp = 2; q.zero = 1; q.precision = Precision::fp8; q.recompute = Recompute::none; }},
      // Unfused attention: selective recompute fits at 9.754 s, full recompute of 2 layers per stage
      // at 8.613 s; a chooser that stopped at the first level that fits missed it.
      {"llama3-70b", "dgx-h100", 64, 8192, 64,
       [](PlanRequest& q) {
         q.tp = 2; q.cp = 8; q.pp = 4; q.vp = 10; q.micro_batch = 1; q.zero = 2; q.precision = Precision::fp8;
         q.attention = AttentionKernel::unfused;
       }},
      // Recompute left free on a MoE model that needs some: the output-discarding modules
      // (layernorm+moe_act, as Megatron-Bridge's GPT-OSS recipes set) beat full recompute of 5 layers.
      {"gpt-oss-120b", "dgx-b200", 64, 4096, 512,
       [](PlanRequest& q) { q.tp = 1; q.pp = 1; q.ep = 8; q.micro_batch = 4; q.zero = 1; q.precision = Precision::bf16; }},
      // A tie (dp 24 cp 4 mb 1 and dp 6 cp 16 mb 4 both take 13.253 s): both break it the same way.
      {"llama3-70b", "tpu-v5p", 96, 8192, 96,
       [](PlanRequest& q) { q.zero = 3; q.precision = Precision::bf16; q.recompute = Recompute::none; }},
  };
  for (const Case& c : cases) {
    PlanRequest q;
    q.devices = c.devices;
    q.work = {c.seq, c.batch};
    c.pin(q);
    const Model& m = builtin().model(c.model);
    const System& s = builtin().system(c.system);
    const TrainReport chosen = choose_plan(m, s, q);
    ASSERT_TRUE(chosen.feasible()) << c.model << ": " << chosen.reason;
    SearchOptions o;
    o.threads = 1;
    const SearchResult res = search(m, s, q, o);
    ASSERT_FALSE(res.top.empty()) << c.model;
    EXPECT_DOUBLE_EQ(chosen.step_time, res.top[0].step_time) << c.model;
    EXPECT_TRUE(same_layout(chosen.layout, res.top[0].layout)) << c.model;
    // train skips recompute beyond the least that fits, as the search's dominance pass does; the
    // search without that pass still agrees.
    o.prune_dominance = false;
    EXPECT_DOUBLE_EQ(chosen.step_time, search(m, s, q, o).top[0].step_time) << c.model;
  }
  // The two plans that only one of them found before.
  PlanRequest gpt;
  gpt.devices = 1024;
  gpt.work = {2048, 1536};
  cases[0].pin(gpt);
  EXPECT_EQ(choose_plan(builtin().model("gpt3-175b"), builtin().system("dgx-a100"), gpt).layout.micro_batch % 2, 1);
  PlanRequest oss;
  oss.devices = 64;
  oss.work = {4096, 512};
  cases[3].pin(oss);
  const Layout oss_l = choose_plan(builtin().model("gpt-oss-120b"), builtin().system("dgx-b200"), oss).layout;
  EXPECT_EQ(oss_l.recompute, Recompute::selective);
  EXPECT_EQ(oss_l.recompute_modules, kRecomputeLayernorm | kRecomputeMoeAct);
  PlanRequest ds;
  ds.devices = 1024;
  ds.work = {4096, 1024};
  cases[1].pin(ds);
  EXPECT_EQ(choose_plan(builtin().model("deepseek-v3"), builtin().system("dgx-h100"), ds).layout.expert_tp(), 1);
  PlanRequest unfused;
  unfused.devices = 64;
  unfused.work = {8192, 64};
  cases[2].pin(unfused);
  const TrainReport u = choose_plan(builtin().model("llama3-70b"), builtin().system("dgx-h100"), unfused);
  EXPECT_EQ(u.layout.recompute, Recompute::full);
  EXPECT_GT(u.layout.recompute_layers, 0);
}

TEST(Search, CandidateRangesFollowTheModelAndSystem) {
  const Model& gpt = builtin().model("gpt3-175b");  // 96 heads, multi-head attention
  const Model& llama = builtin().model("llama3-70b");  // 8 KV heads
  const System& a100 = builtin().system("dgx-a100");
  EXPECT_EQ(tp_range(gpt, a100), (std::vector<int>{1, 2, 3, 4, 6, 8}));  // not only powers of two
  std::vector<int> tps = tp_range(llama, builtin().system("tpu-v5p"));
  EXPECT_EQ(tps, (std::vector<int>{1, 2, 4, 8}));  // KV heads split evenly; the torus is not a cap
  EXPECT_EQ(micro_batch_range().size(), 16u);
  EXPECT_EQ(pp_range(llama, PipeSchedule::zero_bubble).front(), 2);
  EXPECT_EQ(static_cast<int>(pp_range(llama, PipeSchedule::one_f_one_b).size()), llama.layers);
  EXPECT_EQ(ep_range(llama), (std::vector<int>{1}));
  EXPECT_EQ(etp_range(llama, a100, PlanRequest{}), (std::vector<int>{0}));
  for (int v : vp_range(llama, 4, PipeSchedule::one_f_one_b)) EXPECT_TRUE(even_chunks(llama.layers, 4, v)) << v;
  EXPECT_EQ(vp_range(llama, 4, PipeSchedule::zero_bubble), (std::vector<int>{1}));
  // MoE: explicit expert degrees only (the automatic one is among them: no plan timed twice).
  const Model& mixtral = builtin().model("mixtral-8x7b");
  EXPECT_EQ(etp_range(mixtral, a100, PlanRequest{}), (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
  PlanRequest tp16;
  tp16.tp = 16;  // beyond the 8-GPU domain: its automatic expert degree, 16, stays a candidate
  EXPECT_EQ(etp_range(mixtral, a100, tp16).back(), 16);
  Layout l;
  l.tp = 4; l.dp = 8; l.cp = 1; l.ep = 8;
  EXPECT_EQ(l.expert_tp(), 4);
  EXPECT_TRUE(etp_candidate(l, 0));
  EXPECT_TRUE(etp_candidate(l, 4));
  EXPECT_TRUE(etp_candidate(l, 2));
  EXPECT_TRUE(etp_candidate(l, 1));
  EXPECT_FALSE(etp_candidate(l, 3));   // does not divide tp
  l.ep = 32;                           // ep x etp = 64 > tp x dp x cp = 32
  EXPECT_FALSE(etp_candidate(l, 2));
}

}  // namespace
}  // namespace xpu
