// One training step (src/train/evaluate.hpp) and the plan chooser (src/train/choose.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <cstring>
#include <memory>

#include "report/format.hpp"
#include "spec/pipeline_layout.hpp"
#include "test_common.hpp"
#include "train/choose.hpp"
#include "train/evaluate.hpp"

namespace xpu {
namespace {

using test::builtin;

const System& h100() { return builtin().system("dgx-h100"); }
const Model& llama8b() { return builtin().model("llama3-8b"); }

// llama3-8b on 8 H100: tp 2 x dp 4, micro-batch 1, ZeRO-1, no recompute, bf16; seq 8192, global batch 128.
Layout base_layout() {
  Layout l;
  l.tp = 2;
  l.dp = 4;
  return l;
}
const Workload kWork{8192, 128};

// The 14 terms of a breakdown, added here (not through total()).
double sum_terms(const TimeBreakdown& t) {
  return t.gemm + t.attention + t.elementwise + t.recompute + t.tp_comm + t.cp_comm + t.ep_comm + t.pp_comm + t.bubble +
         t.dp_comm + t.fsdp_comm + t.optimizer + t.overhead + t.offload;
}

TEST(Evaluate, BasicPlan) {
  // llama3-8b, 8 GPUs, tp 2 x dp 4, seq 8192, global batch 128.
  const TrainReport r = evaluate(llama8b(), h100(), base_layout(), kWork, 8);
  ASSERT_TRUE(r.feasible()) << r.reason;
  EXPECT_GT(r.step_time, 0);
  // The breakdown terms add up to the step time (relative 1e-9).
  EXPECT_NEAR(sum_terms(r.time), r.step_time, 1e-9 * r.step_time);
  // Microbatches per replica: 128 / (dp 4 x micro-batch 1) = 32.
  EXPECT_EQ(r.microbatches, 32);
  // tokens/s = global batch x seq / step time = 128 x 8192 / step; per device: / 8.
  EXPECT_NEAR(r.tokens_per_s, 128.0 * 8192.0 / r.step_time, 1e-9 * r.tokens_per_s);
  EXPECT_NEAR(r.tokens_per_s_per_device, r.tokens_per_s / 8, 1e-9 * r.tokens_per_s_per_device);
  // 0 < MFU < 1, and HFU >= MFU.
  EXPECT_GT(r.mfu, 0);
  EXPECT_LT(r.mfu, 1);
  EXPECT_GE(r.hfu, r.mfu);
  // No pipeline: no bubble and no pipeline traffic; no cp/ep.
  EXPECT_EQ(r.time.bubble, 0);
  EXPECT_EQ(r.time.pp_comm, 0);
  EXPECT_EQ(r.time.cp_comm, 0);
  EXPECT_EQ(r.time.ep_comm, 0);
  // tp 2: some tensor-parallel communication.
  EXPECT_GT(r.time.tp_comm, 0);
  // Memory fits and capacity is the H100's 81559 MiB (nvidia-smi's total of an "80GB" H100).
  EXPECT_DOUBLE_EQ(r.mem.capacity, 81559.0 * 1024 * 1024);
  EXPECT_LE(r.mem.total(), r.mem.capacity);
  ASSERT_EQ(r.stage_layers.size(), 1u);
  EXPECT_EQ(r.stage_layers[0], 32);
}

// FP4 weights carry their block scales: NVFP4 on Blackwell, a byte per 16 values, 0.5625 B per
// parameter against fp8's 1 B (data/serving/nvidia-blackwell.toml: engine.fp4_scale_block).
TEST(Evaluate, Fp4WeightsCarryTheirBlockScales) {
  const System& gb200 = builtin().system("gb200-nvl72");
  ASSERT_EQ(gb200.serving.fp4_scale_block, 16);
  Layout l = base_layout();
  l.lowp_params = true;
  l.precision = Precision::fp8;
  const TrainReport f8 = evaluate(llama8b(), gb200, l, kWork, 8);
  l.precision = Precision::fp4;
  const TrainReport f4 = evaluate(llama8b(), gb200, l, kWork, 8);
  ASSERT_TRUE(f8.feasible() && f4.feasible()) << f8.reason << f4.reason;
  EXPECT_NEAR(f4.mem.weights / f8.mem.weights, 0.5625, 1e-12);
}

TEST(Evaluate, Fp4CastReadsItsOperandTwice) {
  // Each fp8/fp4 GEMM's operand is cast by its own kernel (read 2 B, write the low-precision bytes
  // and, fp4, a scale byte per block). NVFP4's per-tensor scale needs the operand's amax first, one
  // more 2 B read; OCP MXFP4 has no tensor scale. With the launch cost taken out, the cast traffic
  // of one plan against fp8's (2 + 1): NVFP4 (2 + 2 + 0.5 + 1/16), MXFP4 (2 + 0.5 + 1/32); measured
  // as the GEMM time lowp_overhead 1 adds over 0.
  auto ratio = [](const char* id) {
    System s = builtin().system(id);
    s.calib.kernel_overhead = Seconds{0};
    Layout l = base_layout();
    auto cast_time = [&](Precision p) {
      l.precision = p;
      s.calib.lowp_overhead = 0;
      const TrainReport none = evaluate(llama8b(), s, l, kWork, 8);
      s.calib.lowp_overhead = 1;
      const TrainReport one = evaluate(llama8b(), s, l, kWork, 8);
      EXPECT_TRUE(none.feasible() && one.feasible()) << id << ": " << none.reason << one.reason;
      return one.time.gemm - none.time.gemm;
    };
    const double f8 = cast_time(Precision::fp8);
    EXPECT_GT(f8, 0) << id;
    return cast_time(Precision::fp4) / f8;
  };
  ASSERT_EQ(builtin().system("gb200-nvl72").serving.fp4_scale_block, 16);
  ASSERT_EQ(builtin().system("mi355x-x8").serving.fp4_scale_block, 32);
  ASSERT_TRUE(builtin().system("gb200-nvl72").serving.fp4_tensor_scale);
  ASSERT_FALSE(builtin().system("mi355x-x8").serving.fp4_tensor_scale);
  EXPECT_NEAR(ratio("gb200-nvl72"), (2 + 2 + 0.5 + 1.0 / 16) / 3, 1e-9);
  EXPECT_NEAR(ratio("mi355x-x8"), (2 + 0.5 + 1.0 / 32) / 3, 1e-9);
}

TEST(Evaluate, CutoffBoundsTheSimulatedPipeline) {
  // Llama 3.1 405B's 126 layers in pp x vp = 16 x 4 chunks are uneven, so the pipeline is
  // simulated. With a cutoff above the step time the report is the same; below the step's lower
  // bound it is marked bounded and holds that bound, at most the step time; plans with layouts
  // (uneven or not) and depths: the bound never exceeds the simulated step.
  const Model& m = test::builtin().model("llama3.1-405b");
  const System& s = test::builtin().system("dgx-h100");
  const Workload w{8192, 256};
  const StepCutoff above = [](const MemoryBreakdown&) { return 1e30; };
  const StepCutoff below = [](const MemoryBreakdown&) { return 0.0; };
  int checked = 0;
  for (int pp : {4, 8, 16})
    for (int vp : {2, 4, 8}) {
      Layout l;
      l.tp = 8;
      l.pp = pp;
      l.vp = vp;
      l.dp = 1024 / (8 * pp);
      const int devices = 1024;
      const TrainReport r = evaluate(m, s, l, w, devices, /*enforce_memory=*/false, /*detail=*/false);
      ASSERT_TRUE(r.feasible()) << r.reason;
      const TrainReport hi = evaluate(m, s, l, w, devices, false, false, &above);
      EXPECT_FALSE(hi.bounded);
      EXPECT_EQ(hi.step_time, r.step_time) << pp << " x " << vp;
      const TrainReport lo = evaluate(m, s, l, w, devices, false, false, &below);
      EXPECT_EQ(lo.bounded, !r.chunk_share.empty()) << pp << " x " << vp;  // bounded only where simulated
      if (!lo.bounded) continue;
      ++checked;
      EXPECT_LE(lo.step_time, r.step_time) << pp << " x " << vp;
      EXPECT_GT(lo.step_time, 0.9 * r.step_time) << pp << " x " << vp;  // and not a loose one
    }
  EXPECT_GE(checked, 6);
}

TEST(Evaluate, MfuFollowsTheStatedFormula) {
  // MFU = model FLOPs / (step x devices x peak). Model FLOPs = 3 x forward; forward per token =
  // 2 x (matmul parameters: everything but embedding and norms) + causal attention
  // 2 x (s+1)/2 x heads x (d_qk + d_v) per layer. Llama 3 8B: untied, head_dim 128.
  const Model& m = llama8b();
  const TrainReport r = evaluate(m, h100(), base_layout(), kWork, 8);
  ASSERT_TRUE(r.feasible()) << r.reason;
  const ParamCounts p = count_params(m);
  const double matmul = p.total() - p.embedding - p.norms;
  const double s = 8192;
  const double attn = m.layers * 2.0 * (s + 1) / 2 * m.heads * (2.0 * m.head_dim);
  const double tokens = 128 * s;
  const double model_flops = 3 * (2 * matmul + attn) * tokens;
  EXPECT_NEAR(r.model_flops_per_step, model_flops, 1e-9 * model_flops);
  EXPECT_DOUBLE_EQ(r.peak_flops_per_device, 989.4e12);
  EXPECT_NEAR(r.mfu, model_flops / (r.step_time * 8 * 989.4e12), 1e-9);
  // No recompute: hardware FLOPs = model FLOPs.
  EXPECT_DOUBLE_EQ(r.hardware_flops_per_step, r.model_flops_per_step);
}

TEST(Evaluate, FullRecomputeTradesTimeForMemory) {
  // Same layout, recompute none vs full.
  Layout none = base_layout(), full = base_layout();
  full.recompute = Recompute::full;
  const TrainReport a = evaluate(llama8b(), h100(), none, kWork, 8);
  const TrainReport b = evaluate(llama8b(), h100(), full, kWork, 8);
  ASSERT_TRUE(a.feasible()) << a.reason;
  ASSERT_TRUE(b.feasible()) << b.reason;
  // Rerunning the forward costs time and keeps only each layer's input.
  EXPECT_GT(b.step_time, a.step_time);
  EXPECT_LT(b.mem.activations, a.mem.activations);
  EXPECT_GT(b.time.recompute, 0);
  EXPECT_EQ(a.time.recompute, 0);
  // Same model FLOPs; HFU counts the repeated forward, so HFU > MFU with recompute.
  EXPECT_DOUBLE_EQ(b.model_flops_per_step, a.model_flops_per_step);
  EXPECT_GT(b.hardware_flops_per_step, b.model_flops_per_step);
  EXPECT_GT(b.hfu, b.mfu);
}

TEST(Evaluate, OffloadedActivationsLiveInHostMemory) {
  // llama3-8b, tp 2 x dp 4 on an 8-GPU node with a 63 GB/s PCIe link per GPU: a layer's kept
  // tensors (its input under full recompute) cross the link well within the layer's forward.
  Layout l = base_layout();
  l.recompute = Recompute::full;
  const TrainReport kept = evaluate(llama8b(), h100(), l, kWork, 8);
  l.offload_activations = true;
  const TrainReport off = evaluate(llama8b(), h100(), l, kWork, 8);
  ASSERT_TRUE(kept.feasible() && off.feasible()) << off.reason;
  ASSERT_TRUE(h100().host_bandwidth.has_value());
  // Everything in flight moves to host memory, the embedding output (layer 0's input) too; the
  // device keeps two layers' worth (one going out, one coming back). This layout holds one
  // microbatch of 32 layers on the stage, each keeping its input (b s h 2 B / tp with SP).
  EXPECT_DOUBLE_EQ(kept.mem.host, 0);
  EXPECT_DOUBLE_EQ(off.mem.host, kept.mem.activations);
  const double layer_input = 8192.0 * 4096 * 2 / 2;
  EXPECT_NEAR(off.mem.activations, 2 * layer_input, 1e-9 * layer_input);
  // Hidden: no time added.
  EXPECT_DOUBLE_EQ(off.time.offload, 0);
  EXPECT_DOUBLE_EQ(off.step_time, kept.step_time);
  EXPECT_DOUBLE_EQ(sum_terms(off.time), off.step_time);

  // A link too slow for the layer's compute exposes what outlasts each pass.
  System slow = h100();
  slow.host_bandwidth = 1e9;
  const TrainReport crawl = evaluate(llama8b(), slow, l, kWork, 8);
  ASSERT_TRUE(crawl.feasible()) << crawl.reason;
  EXPECT_GT(crawl.time.offload, 0);
  EXPECT_NEAR(crawl.step_time - kept.step_time, crawl.time.offload, 1e-9 * crawl.step_time);
  // Each layer's bytes cross twice (out and back) per microbatch, less the compute beside them.
  const double per_pass = layer_input / 1e9;
  const double mbs = static_cast<double>(crawl.microbatches);
  EXPECT_LT(crawl.time.offload, 2 * 32 * mbs * per_pass);
  EXPECT_GT(crawl.time.offload, 2 * 32 * mbs * per_pass - kept.time.gemm - kept.time.attention - kept.time.elementwise -
                                    kept.time.recompute - kept.time.tp_comm);

  // Host memory smaller than the offloaded activations: out of memory, saying which memory.
  System small = h100();
  small.host_memory = off.mem.host / 2;
  const TrainReport full_host = evaluate(llama8b(), small, l, kWork, 8);
  EXPECT_EQ(full_host.why, Infeasible::out_of_memory);
  EXPECT_NE(full_host.reason.find("host memory"), std::string::npos) << full_host.reason;

  // Partial full recompute: the kept layers send everything, each against its own passes (an
  // average over the stage's layers had hidden their transfers), and the device holds two of them.
  Layout part = l;
  part.recompute_layers = 28;
  const TrainReport p_off = evaluate(llama8b(), h100(), part, kWork, 8);
  Layout part_kept = part;
  part_kept.offload_activations = false;
  Layout none_kept = base_layout();
  const TrainReport p_kept = evaluate(llama8b(), h100(), part_kept, kWork, 8), n_kept = evaluate(llama8b(), h100(), none_kept, kWork, 8);
  ASSERT_TRUE(p_off.feasible() && p_kept.feasible() && n_kept.feasible()) << p_off.reason;
  const double whole_layer = (n_kept.mem.activations - layer_input) / 32;  // one layer without recompute
  EXPECT_NEAR(p_off.mem.activations, 2 * whole_layer, 1e-9 * whole_layer);
  Layout none_off = none_kept;
  none_off.offload_activations = true;
  const TrainReport n_off = evaluate(llama8b(), h100(), none_off, kWork, 8);
  ASSERT_TRUE(n_off.feasible()) << n_off.reason;
  ASSERT_GT(n_off.time.offload, 0);  // a whole layer outlasts its passes on this link
  // 4 of the 32 layers keep everything: about 4/32 of the no-recompute exposure (their forward and
  // backward passes are the same as without recompute).
  EXPECT_NEAR(p_off.time.offload, 4.0 / 32 * n_off.time.offload, 1e-6 * n_off.time.offload);

  // A system without a [host] link cannot time it: refused, naming the missing field.
  System none = h100();
  none.host_bandwidth.reset();
  const TrainReport refused = evaluate(llama8b(), none, l, kWork, 8);
  EXPECT_EQ(refused.why, Infeasible::indivisible);
  EXPECT_NE(refused.reason.find("[host] bandwidth"), std::string::npos) << refused.reason;
}

TEST(Evaluate, OffloadedActivationsPerStage) {
  // Llama 3 70B, tp 8 x pp 8, one replica: the first stage holds 8 microbatches in flight, the
  // last one; the last stage has the most HBM (the logits), the first the most in host memory.
  // Host memory is reported and checked for the first.
  Layout l;
  l.tp = 8;
  l.pp = 8;
  l.recompute = Recompute::none;
  l.offload_activations = true;
  const Workload w{8192, 256};
  const Model& m = builtin().model("llama3-70b");
  const TrainReport r = evaluate(m, h100(), l, w, 64);
  ASSERT_TRUE(r.feasible()) << r.reason;
  EXPECT_EQ(r.mem.host_stage, 0);
  EXPECT_EQ(r.mem.stage, 7);
  System small = h100();
  small.host_memory = r.mem.host * 0.9;
  const TrainReport over = evaluate(m, small, l, w, 64);
  EXPECT_EQ(over.why, Infeasible::out_of_memory);
  EXPECT_NE(over.reason.find("(stage 1)"), std::string::npos) << over.reason;
}

TEST(Evaluate, UnfusedAttentionPaysForTheScoreMatrix) {
  // Unfused attention (Megatron's pre-flash path) computes every key, not half, and moves the
  // s x s scores through memory: slower than flash attention, and without recompute it keeps the
  // softmax output (2 B per score per layer) for backward. Selective recompute drops that again.
  Layout flash = base_layout();
  Layout unfused = flash;
  unfused.attention = AttentionKernel::unfused;
  const Workload w{4096, 64};
  const TrainReport a = evaluate(llama8b(), h100(), flash, w, 8, /*enforce_memory=*/false);
  const TrainReport b = evaluate(llama8b(), h100(), unfused, w, 8, /*enforce_memory=*/false);
  ASSERT_TRUE(a.feasible() && b.feasible());
  EXPECT_GT(b.time.attention, 2.0 * a.time.attention);
  EXPECT_DOUBLE_EQ(b.time.gemm, a.time.gemm);
  const Model& m = llama8b();
  const double scores_per_layer = 1.0 * 4096 * 4096 * (m.heads / 2);  // micro-batch 1, tp 2
  const double layers_in_flight = m.layers;                          // pp 1: every layer of one microbatch
  EXPECT_NEAR(b.mem.activations - a.mem.activations, 2.0 * scores_per_layer * layers_in_flight,
              0.01 * 2.0 * scores_per_layer * layers_in_flight);
  Layout sel = unfused;
  sel.recompute = Recompute::selective;
  Layout sel_flash = flash;
  sel_flash.recompute = Recompute::selective;
  const TrainReport c = evaluate(llama8b(), h100(), sel, w, 8, false);
  const TrainReport d = evaluate(llama8b(), h100(), sel_flash, w, 8, false);
  EXPECT_DOUBLE_EQ(c.mem.activations, d.mem.activations);
  EXPECT_GT(c.time.recompute, d.time.recompute);
}

TEST(Evaluate, InterleavedPipelineOverlapsItsSends) {
  // Interleaved 1F1B sends vp times the messages, but overlapped with the next chunk (Megatron's
  // overlap_p2p_comm): only the fill/drain chain is exposed, so it pays less than plain 1F1B.
  Layout a;
  a.tp = 8;
  a.pp = 4;
  a.dp = 1;
  Layout b = a;
  b.vp = 2;
  const Model& m = builtin().model("llama3-70b");
  const Workload w{8192, 64};
  const TrainReport ra = evaluate(m, h100(), a, w, 32, false);
  const TrainReport rb = evaluate(m, h100(), b, w, 32, false);
  ASSERT_TRUE(ra.feasible() && rb.feasible());
  EXPECT_GT(ra.time.pp_comm, 0);
  EXPECT_LT(rb.time.pp_comm, ra.time.pp_comm);
  EXPECT_GT(rb.time.pp_comm, 0);
}

TEST(Evaluate, PartialFullRecomputeSitsBetweenNoneAndFull) {
  // Full recompute of r of a stage's layers (Megatron's block method): the other layers keep
  // their activations, and the recompute time is r / layers of the all-layer figure.
  const Model& m = builtin().model("llama3-70b");
  const System& s = builtin().system("gb300-nvl72");
  const Workload w{8192, 256};
  Layout l;
  l.dp = 64;
  l.zero = 3;
  l.micro_batch = 2;
  l.precision = Precision::fp8;
  Layout none = l, all = l, part = l;
  all.recompute = part.recompute = Recompute::full;
  part.recompute_layers = 20;
  const TrainReport rn = evaluate(m, s, none, w, 64, false), ra = evaluate(m, s, all, w, 64, false),
                    rp = evaluate(m, s, part, w, 64, false);
  ASSERT_TRUE(rn.feasible() && ra.feasible() && rp.feasible());
  EXPECT_LT(ra.mem.activations, rp.mem.activations);
  EXPECT_LT(rp.mem.activations, rn.mem.activations);
  EXPECT_NEAR(rp.time.recompute, ra.time.recompute * 20.0 / m.layers, 1e-9 * ra.time.recompute);
  EXPECT_LT(rp.step_time, ra.step_time);
  EXPECT_LT(rp.hfu * rp.step_time, ra.hfu * ra.step_time);  // fewer hardware FLOPs
  // The fewest layers that fit: r fits, r - 1 does not.
  const int r = fewest_recompute_layers(m, s, l, w);
  ASSERT_GT(r, 0);
  ASSERT_LT(r, m.layers);
  Layout at = all, below = all;
  at.recompute_layers = r;
  below.recompute_layers = r - 1;
  const MemoryBreakdown fa = estimate_memory(m, s, at, w), fb = estimate_memory(m, s, below, w);
  EXPECT_LE(fa.total(), fa.capacity);
  if (r > 1) {
    EXPECT_GT(fb.total(), fb.capacity);
  }
  // Left to the planner, full recompute reruns that many layers; asked for, every layer.
  PlanRequest q;
  q.devices = 64;
  q.work = w;
  q.tp = 1; q.pp = 1; q.cp = 1; q.zero = 3; q.micro_batch = 2;
  q.precision = Precision::fp8;
  const TrainReport chosen = choose_plan(m, s, q);
  ASSERT_TRUE(chosen.feasible());
  EXPECT_EQ(chosen.layout.recompute, Recompute::full);
  EXPECT_GT(chosen.layout.recompute_layers, 0);
  q.recompute = Recompute::full;
  EXPECT_EQ(choose_plan(m, s, q).layout.recompute_layers, 0);
}

TEST(Evaluate, Zero3ImplementationRateAndOverlap) {
  // gpt3-175b on 1536 A100s, ZeRO-3, dp 1536, one sequence each. An implementation that gathers at
  // R bytes/s per device, without overlap, takes at least 2 gathers (fp16 weights) + 1
  // reduce-scatter (bf16 gradients) of every parameter / R, all exposed; with the fabric alone
  // (NCCL-like hierarchical rings) the same traffic is far cheaper, and an overlap hides more of it.
  const Model& m = builtin().model("gpt3-175b");
  const System& s = builtin().system("dgx-a100");
  const Workload w{2048, 1536};
  Layout l;
  l.dp = 1536;
  l.zero = 3;
  l.recompute = Recompute::full;
  l.precision = Precision::fp16;
  l.grad_fp32 = false;
  Layout slow = l, slow_hidden = l;
  slow.fsdp.rate = 24e9;
  slow.fsdp.overlap = 0;
  slow_hidden.fsdp.rate = 24e9;
  slow_hidden.fsdp.overlap = 0.9;
  const TrainReport base = evaluate(m, s, l, w, 1536, false), rs = evaluate(m, s, slow, w, 1536, false),
                    rh = evaluate(m, s, slow_hidden, w, 1536, false);
  ASSERT_TRUE(base.feasible() && rs.feasible() && rh.feasible());
  const ParamCounts pc = count_params(m);
  const double floor = 3.0 * 2.0 * (pc.attention + pc.dense_mlp) / 24e9;  // the layers' weights at least
  EXPECT_GE(rs.time.fsdp_comm, floor);
  EXPECT_LT(rs.time.fsdp_comm, 1.1 * 3.0 * 2.0 * pc.total() / 24e9);  // the rate, not the fabric, sets it
  EXPECT_LT(base.time.fsdp_comm, 0.5 * floor);
  EXPECT_LT(rh.time.fsdp_comm, rs.time.fsdp_comm);  // overlap hides part of it
  // Compute terms are untouched.
  EXPECT_DOUBLE_EQ(rs.time.gemm, base.time.gemm);
  EXPECT_NEAR(sum_terms(rs.time), rs.step_time, 1e-9 * rs.step_time);
  // Not ZeRO-3: the fields do nothing.
  Layout z1 = l, z1_slow = slow;
  z1.zero = z1_slow.zero = 1;
  z1.dp = z1_slow.dp = 1536;
  EXPECT_DOUBLE_EQ(evaluate(m, s, z1, w, 1536, false).step_time, evaluate(m, s, z1_slow, w, 1536, false).step_time);
}

TEST(Evaluate, HybridShardingShardsWithinGroupsAndReducesAcrossThem) {
  // Llama 3 70B on 256 H100 (32 nodes), tp 8 x dp 32. A ZeRO group of all 32 dp ranks is the plain
  // plan, to the bit; groups of 8 keep 4 copies of the state (4x the optimizer state of one
  // shard over 32), add the copies' all-reduce of their gradient shards, and shard each copy's
  // gathers over 8 ranks.
  const Model& m = builtin().model("llama3-70b");
  const Workload w{8192, 256};
  Layout l;
  l.tp = 8;
  l.dp = 32;
  for (int zero : {1, 2, 3}) {
    SCOPED_TRACE(zero);
    l.zero = zero;
    l.zero_group = 0;
    const TrainReport plain = evaluate(m, h100(), l, w, 256, false);
    Layout all = l, hybrid = l;
    all.zero_group = 32;
    hybrid.zero_group = 8;
    const TrainReport same = evaluate(m, h100(), all, w, 256, false), r = evaluate(m, h100(), hybrid, w, 256, false);
    ASSERT_TRUE(plain.feasible() && same.feasible() && r.feasible());
    EXPECT_EQ(same.step_time, plain.step_time);
    EXPECT_EQ(same.mem.total(), plain.mem.total());
    EXPECT_DOUBLE_EQ(r.mem.optimizer, 4.0 * plain.mem.optimizer);
    if (zero >= 2) {
      EXPECT_DOUBLE_EQ(r.mem.gradients, 4.0 * plain.mem.gradients);
    }
    EXPECT_EQ(r.time.gemm, plain.time.gemm);
    EXPECT_NEAR(sum_terms(r.time), r.step_time, 1e-9 * r.step_time);
    // Not overlapped, the copies' all-reduce is exposed on top of the within-group traffic.
    Layout bare = hybrid;
    bare.overlap_grad_reduce = false;
    Layout bare_plain = l;
    bare_plain.overlap_grad_reduce = false;
    const TrainReport rb = evaluate(m, h100(), bare, w, 256, false), pb = evaluate(m, h100(), bare_plain, w, 256, false);
    EXPECT_GT(rb.time.dp_comm, 0.0);
    if (zero == 3) {
      EXPECT_EQ(pb.time.dp_comm, 0.0);  // ZeRO-3 has no other once-a-step data-parallel traffic
      EXPECT_LT(r.time.fsdp_comm, plain.time.fsdp_comm);  // each layer gathered from 8 ranks, not 32
    }
  }
}

TEST(Evaluate, HybridShardingRules) {
  std::string why;
  Layout l;
  l.dp = 8;
  l.zero_group = 3;  // does not divide dp x cp
  EXPECT_EQ(check_layout(llama8b(), h100(), l, kWork, 8, &why), Infeasible::indivisible);
  EXPECT_NE(why.find("must divide dp x cp"), std::string::npos) << why;
  l.zero_group = 4;
  l.zero = 0;  // nothing sharded
  EXPECT_EQ(check_layout(llama8b(), h100(), l, kWork, 8, &why), Infeasible::indivisible);
  EXPECT_NE(why.find("needs ZeRO 1, 2 or 3"), std::string::npos) << why;
  l.zero = 1;
  EXPECT_EQ(check_layout(llama8b(), h100(), l, kWork, 8, &why), Infeasible::none) << why;
  // Data parallelism outermost: a group holds whole cp blocks or lies within one.
  Layout o;
  o.dp = 2;
  o.cp = 4;
  o.rank_order = RankOrder::pp_then_dp;
  o.zero_group = 8;
  EXPECT_EQ(check_layout(llama8b(), h100(), o, kWork, 8, &why), Infeasible::none) << why;
  o.zero_group = 2;
  EXPECT_EQ(check_layout(llama8b(), h100(), o, kWork, 8, &why), Infeasible::none) << why;
  const TrainReport within = evaluate(llama8b(), h100(), o, kWork, 8, false);
  EXPECT_TRUE(within.feasible());
  EXPECT_NEAR(sum_terms(within.time), within.step_time, 1e-9 * within.step_time);
}

TEST(Evaluate, DoublingGlobalBatchRoughlyDoublesStep) {
  // dp 8 (tp 1), full recompute: 128 -> 256 sequences doubles the microbatches (16 -> 32); the fixed
  // per-step terms (optimizer, overhead, exposed dp traffic) keep the ratio just under 2. Only time is
  // checked here, so memory is not enforced.
  Layout l;
  l.dp = 8;
  l.recompute = Recompute::full;
  const TrainReport a = evaluate(llama8b(), h100(), l, Workload{8192, 128}, 8, /*enforce_memory=*/false);
  const TrainReport b = evaluate(llama8b(), h100(), l, Workload{8192, 256}, 8, /*enforce_memory=*/false);
  ASSERT_TRUE(a.feasible()) << a.reason;
  ASSERT_TRUE(b.feasible()) << b.reason;
  EXPECT_EQ(a.microbatches, 16);
  EXPECT_EQ(b.microbatches, 32);
  const double ratio = b.step_time / a.step_time;
  EXPECT_GE(ratio, 1.8);
  EXPECT_LE(ratio, 2.05);
}

TEST(Evaluate, OutOfMemoryIsAReportNotAnError) {
  // Llama 3.1 405B on 8 GPUs with tp 8: ~406e9 params x 16 bytes (weights, grads, Adam) / 8 >> 80 GB.
  Layout l;
  l.tp = 8;
  TrainReport r;
  EXPECT_NO_THROW(r = evaluate(builtin().model("llama3.1-405b"), h100(), l, kWork, 8));
  EXPECT_FALSE(r.feasible());
  EXPECT_EQ(r.why, Infeasible::out_of_memory);
  EXPECT_NE(r.reason.find("needs"), std::string::npos) << r.reason;
  EXPECT_GT(r.mem.total(), r.mem.capacity);
  // Not timed.
  EXPECT_EQ(r.step_time, 0);
}

TEST(Evaluate, OverCapacityStillTimedWhenNotEnforced) {
  // validate's mode: the plan is timed and carries a warning instead of a reason.
  Layout l;
  l.tp = 8;
  const TrainReport r = evaluate(builtin().model("llama3.1-405b"), h100(), l, kWork, 8, /*enforce_memory=*/false);
  EXPECT_TRUE(r.feasible());
  EXPECT_GT(r.step_time, 0);
  EXPECT_FALSE(r.warning.empty());
}

TEST(Evaluate, CheckLayoutRejectsTpNotDividingHeads) {
  // llama3-8b has 32 heads; tp 3 (x dp 8 = 24 devices) does not divide them.
  Layout l;
  l.tp = 3;
  l.dp = 8;
  std::string why;
  EXPECT_EQ(check_layout(llama8b(), h100(), l, kWork, 24, &why), Infeasible::indivisible);
  EXPECT_NE(why.find("heads"), std::string::npos) << why;
  // evaluate reports the same reason rather than throwing.
  const TrainReport r = evaluate(llama8b(), h100(), l, kWork, 24);
  EXPECT_EQ(r.why, Infeasible::indivisible);
  // tp 4 x dp 6 = 24 divides the heads: accepted (global batch 120 is a multiple of dp 6).
  l.tp = 4;
  l.dp = 6;
  EXPECT_EQ(check_layout(llama8b(), h100(), l, Workload{8192, 120}, 24, nullptr), Infeasible::none);
}

TEST(Evaluate, CheckLayoutOtherReasons) {
  // Each layout below breaks one rule of check_layout.
  std::string why;
  // tp 2 x dp 4 = 8 != 16 devices.
  EXPECT_EQ(check_layout(llama8b(), h100(), base_layout(), kWork, 16, &why), Infeasible::indivisible);
  // Global batch 100 is not a multiple of dp 8.
  Layout l;
  l.dp = 8;
  EXPECT_EQ(check_layout(llama8b(), h100(), l, Workload{8192, 100}, 8, &why), Infeasible::indivisible);
  // fp4 on an H100: unsupported precision.
  l.precision = Precision::fp4;
  EXPECT_EQ(check_layout(llama8b(), h100(), l, kWork, 8, &why), Infeasible::unsupported_precision);
  // Interleaving without a pipeline.
  Layout v = base_layout();
  v.vp = 2;
  EXPECT_EQ(check_layout(llama8b(), h100(), v, kWork, 8, &why), Infeasible::indivisible);
}

TEST(Evaluate, InterleavedChunksMayCountEmbeddingAndLoss) {
  // Megatron-Core can count the embedding and the loss as one layer each when it splits a pipeline,
  // so the 405B recipes run pp 16 x vp 8 = 128 chunks over 126 layers: accepted, and 129+ refused.
  const Model& m = builtin().model("llama3.1-405b");
  ASSERT_EQ(m.layers, 126);
  Layout l;
  l.tp = 8;
  l.pp = 16;
  l.vp = 8;
  std::string why;
  EXPECT_EQ(check_layout(m, h100(), l, Workload{8192, 1536}, 128, &why), Infeasible::none) << why;
  const TrainReport r = evaluate(m, h100(), l, Workload{8192, 1536}, 128, /*enforce_memory=*/false);
  EXPECT_TRUE(r.feasible());
  EXPECT_GT(r.step_time, 0);
  l.pp = 43;  // 43 x 3 = 129 > 126 + 2
  l.vp = 3;
  l.tp = 1;
  EXPECT_EQ(check_layout(m, h100(), l, Workload{8192, 1548}, 43, &why), Infeasible::indivisible);
  EXPECT_NE(why.find("layers + 2"), std::string::npos) << why;
}

TEST(Evaluate, InterleavingNeedsAtLeastPpMicrobatches) {
  // Megatron-Core runs the interleaved schedule in groups of pp microbatches and refuses fewer;
  // below pp a microbatch walks all pp x vp chunks in series, which the closed form's
  // (pp - 1) / vp fill does not describe. Plain 1F1B (vp 1) takes any count.
  const Model& m = builtin().model("llama3-70b");
  Layout l;
  l.tp = 8;
  l.pp = 4;
  l.vp = 2;
  l.dp = 2;
  std::string why;
  EXPECT_EQ(check_layout(m, h100(), l, Workload{8192, 4}, 64, &why), Infeasible::too_few_microbatches);
  EXPECT_NE(why.find("at least pp = 4 microbatches"), std::string::npos) << why;
  const TrainReport r = evaluate(m, h100(), l, Workload{8192, 4}, 64);
  EXPECT_EQ(r.why, Infeasible::too_few_microbatches);
  EXPECT_EQ(r.microbatches, 2);  // reported even though the plan is refused
  EXPECT_EQ(check_layout(m, h100(), l, Workload{8192, 8}, 64, &why), Infeasible::none) << why;  // 4 = pp
  l.vp = 1;
  EXPECT_EQ(check_layout(m, h100(), l, Workload{8192, 4}, 64, &why), Infeasible::none) << why;
}

TEST(Choose, StepTimesTieOnTheirGrid) {
  // tie_grid: monotone, idempotent, within 2^-36 of the time (relative); times a rounding apart
  // (1e-14) around a grid point share it, so the layout order, not the pipeline simulation's last
  // bits, decides between plans equal in exact arithmetic (a QA pass saw the steady extrapolation
  // flip one); only a pair straddling a cell's edge splits.
  double prev = 0;
  for (double t = 1e-6; t < 1e6; t *= 1.37) {
    const double g = tie_grid(t);
    EXPECT_GE(g, prev);
    EXPECT_EQ(tie_grid(g), g);
    EXPECT_LE(std::fabs(g - t), t * std::ldexp(1.0, -36) * 1.0000001);
    const double centre = g;  // a grid point: its neighbours a rounding apart round to it
    EXPECT_EQ(tie_grid(centre * (1 + 1e-14)), centre);
    EXPECT_EQ(tie_grid(centre * (1 - 1e-14)), centre);
    prev = g;
  }
  EXPECT_EQ(tie_grid(0.0), 0.0);
  EXPECT_TRUE(std::isinf(tie_grid(std::numeric_limits<double>::infinity())));
}

TEST(Choose, OrderByBoundPutsSimulatedLaddersLastCheapestFirst) {
  // Llama 3.1 405B (126 layers) on 1024 H100, tp 8 x pp 8 x dp 16, 8192 sequences (512 or 256
  // microbatches): vp 1 takes the closed form (a plain 1F1B), vp 2..8 are simulated (126 % (8 vp)
  // != 0: chunks of unequal layers), long enough to be worth ordering. order_by_bound keeps the
  // others first as enumerated (bound 0: none known) and sorts these by a bound that never
  // exceeds their simulated step. With activations offloaded (recompute can then save time) a
  // ladder keeps no bound and its place.
  const Model& m = builtin().model("llama3.1-405b");
  const Workload w{8192, 8192};
  std::vector<Ladder> ladders;
  for (int vp = 1; vp <= 8; ++vp)
    for (int mb : {1, 2})
      for (bool offload : {false, true}) {
        Layout l;
        l.tp = 8;
        l.pp = 8;
        l.vp = vp;
        l.dp = 16;
        l.micro_batch = mb;
        l.precision = Precision::fp8;
        l.offload_activations = offload;
        ladders.push_back({l, 0.0, ladders.size()});
      }
  order_by_bound(m, h100(), w, 1024, ladders);
  std::size_t first_sorted = ladders.size(), last_index = 0;
  for (std::size_t i = 0; i < ladders.size(); ++i) {
    const Ladder& ld = ladders[i];
    if (ld.bound == 0.0) {
      EXPECT_LT(i, first_sorted) << "an unbounded ladder after a sorted one";
      if (i > 0) {
        EXPECT_GT(ld.index, last_index);  // as enumerated
      }
      last_index = ld.index;
      EXPECT_TRUE(!bounded_simulation(m, ld.base) || ld.base.offload_activations);
      continue;
    }
    first_sorted = std::min(first_sorted, i);
    EXPECT_TRUE(bounded_simulation(m, ld.base));
    EXPECT_FALSE(ld.base.offload_activations);
    if (i > first_sorted) {
      EXPECT_LE(ladders[i - 1].bound, ld.bound);
    }
    const TrainReport r = evaluate(m, h100(), ld.base, w, 1024, false);
    ASSERT_TRUE(r.feasible());
    EXPECT_LE(ld.bound, r.step_time * (1 + 1e-12));
  }
  EXPECT_EQ(ladders.size() - first_sorted, 14u);  // vp 2..8 x mb 1, 2 without offload
}

TEST(Choose, NeverInterleavesFewerMicrobatchesThanStages) {
  // Small global batches leave few microbatches per replica; whatever the chooser picks, an
  // interleaved pipeline gets at least pp of them.
  const Model& m = builtin().model("llama3-70b");
  for (int gbs : {4, 8, 16}) {
    PlanRequest q;
    q.devices = 64;
    q.work = Workload{8192, gbs};
    ChooseStats st;
    const TrainReport r = choose_plan(m, h100(), q, &st);
    ASSERT_TRUE(r.feasible()) << r.reason;
    EXPECT_TRUE(r.layout.vp == 1 || r.microbatches >= r.layout.pp)
        << "gbs " << gbs << ": pp " << r.layout.pp << " vp " << r.layout.vp << " with " << r.microbatches << " microbatches";
    EXPECT_EQ(st.rejected + st.out_of_memory + st.evaluated + st.dominated, st.considered);
  }
}

TEST(Evaluate, Deterministic) {
  // The same inputs give bit-for-bit the same step time and memory.
  const TrainReport a = evaluate(llama8b(), h100(), base_layout(), kWork, 8);
  const TrainReport b = evaluate(llama8b(), h100(), base_layout(), kWork, 8);
  EXPECT_EQ(std::memcmp(&a.step_time, &b.step_time, sizeof(double)), 0);
  // Field by field, bit for bit (a memcmp of the struct read its padding after `stage`).
  for (auto f : {&MemoryBreakdown::weights, &MemoryBreakdown::gradients, &MemoryBreakdown::optimizer,
                 &MemoryBreakdown::activations, &MemoryBreakdown::transient, &MemoryBreakdown::reserve,
                 &MemoryBreakdown::capacity})
    EXPECT_EQ(std::memcmp(&(a.mem.*f), &(b.mem.*f), sizeof(double)), 0);
  EXPECT_EQ(a.mem.stage, b.mem.stage);
  EXPECT_EQ(a.mfu, b.mfu);
}

TEST(Evaluate, EstimateMemoryMatchesEvaluate) {
  // The cheap memory estimate is the same figure evaluate reports.
  const MemoryBreakdown m = estimate_memory(llama8b(), h100(), base_layout(), kWork);
  const TrainReport r = evaluate(llama8b(), h100(), base_layout(), kWork, 8);
  EXPECT_DOUBLE_EQ(m.total(), r.mem.total());
  // ZeRO-1 over dp 4, tp 2: optimizer state (12 B/param) is sharded 4 ways, weights (2 B/param) are not, so
  // optimizer / weights = 12 / (2 x 4) = 1.5.
  EXPECT_NEAR(m.optimizer / m.weights, 1.5, 1e-9);
}

TEST(Evaluate, PipelineBubbleShrinksWithInterleaving) {
  // tp 2 x pp 4 x dp 1: 128 microbatches through 4 stages.
  Layout l;
  l.tp = 2;
  l.pp = 4;
  l.dp = 1;
  Layout l2 = l;
  l2.vp = 2;
  const TrainReport a = evaluate(llama8b(), h100(), l, kWork, 8);
  const TrainReport b = evaluate(llama8b(), h100(), l2, kWork, 8);
  ASSERT_TRUE(a.feasible()) << a.reason;
  ASSERT_TRUE(b.feasible()) << b.reason;
  ASSERT_EQ(a.microbatches, 128);
  // Bubble = (pp - 1) / vp x mean stage time per microbatch: > 0, less than the step, and halved by vp 2
  // (the stage times do not depend on vp).
  EXPECT_GT(a.time.bubble, 0);
  EXPECT_LT(a.time.bubble, a.step_time);
  EXPECT_LT(b.time.bubble, a.time.bubble);
  EXPECT_NEAR(b.time.bubble, a.time.bubble / 2, 1e-9 * a.time.bubble);
  // The slowest stage's per-microbatch time is (its compute and in-stage communication) / microbatches; the
  // mean stage lies between max / pp and max, so (pp-1)/vp x max / pp <= bubble <= (pp-1)/vp x max.
  const TimeBreakdown& t = a.time;
  const double max_stage =
      (t.gemm + t.attention + t.elementwise + t.recompute + t.tp_comm + t.cp_comm + t.ep_comm) / a.microbatches;
  EXPECT_LE(a.time.bubble, 3 * max_stage * (1 + 1e-9));
  EXPECT_GE(a.time.bubble, 3 * max_stage / 4);
  // 32 layers over 4 stages: 8 each.
  EXPECT_EQ(a.stage_layers, (std::vector<int>{8, 8, 8, 8}));
  // Pipeline traffic on the critical path.
  EXPECT_GT(a.time.pp_comm, 0);
  EXPECT_NEAR(sum_terms(a.time), a.step_time, 1e-9 * a.step_time);
}

TEST(Evaluate, UnevenLayerSplit) {
  // 32 layers over pp 5 is not possible on 8 devices; use llama2-13b's 40 layers over pp 3 on 6 devices (tp 2):
  // floor(40/3) = 13 each, the remainder 1 goes to the middle stage -> 13, 14, 13.
  Layout l;
  l.tp = 2;
  l.pp = 3;
  l.dp = 1;
  l.recompute = Recompute::full;
  const TrainReport r = evaluate(builtin().model("llama2-13b"), h100(), l, Workload{4096, 12}, 6);
  ASSERT_TRUE(r.feasible()) << r.reason;
  EXPECT_EQ(r.stage_layers, (std::vector<int>{13, 14, 13}));
}

TEST(Evaluate, Zero2ReducesEveryMicrobatch) {
  // ZeRO-2 keeps only its gradient shard, so every microbatch's gradients are reduce-scattered
  // (ZeRO-1 accumulates and reduces once a step). Llama 2 13B on 64 H100s, pp 2, dp 32: with 16
  // microbatches ZeRO-2's data-parallel traffic is 16 reduce-scatters; without overlap it exceeds
  // ZeRO-1's by about 15 of them. It cost the same as ZeRO-1 and so was chosen for its memory.
  Layout l;
  l.tp = 1;
  l.pp = 2;
  l.dp = 32;
  l.recompute = Recompute::full;
  l.overlap_grad_reduce = false;
  const Model& m = builtin().model("llama2-13b");
  const Workload w{4096, 512};  // 512 / 32 = 16 microbatches of 1
  Layout z1 = l, z2 = l;
  z1.zero = 1;
  z2.zero = 2;
  const TrainReport a = evaluate(m, h100(), z1, w, 64, false), b = evaluate(m, h100(), z2, w, 64, false);
  ASSERT_TRUE(a.feasible() && b.feasible());
  EXPECT_GT(b.time.dp_comm, 8 * a.time.dp_comm);
  EXPECT_LT(b.mem.gradients, a.mem.gradients);
  // One microbatch a step: the same traffic.
  const Workload one{4096, 32};
  EXPECT_DOUBLE_EQ(evaluate(m, h100(), z2, one, 64, false).time.dp_comm, evaluate(m, h100(), z1, one, 64, false).time.dp_comm);
}

// Mixtral 8x7B on 16 GPUs: tp 1, dp 16, ep 8 (each GPU holds 1 of the 8 experts of a layer).
Layout mixtral_ep8(int zero, Recompute recompute) {
  Layout l;
  l.dp = 16;
  l.ep = 8;
  l.zero = zero;
  l.recompute = recompute;
  return l;
}

TEST(Evaluate, MoeModelHasExpertTraffic) {
  // ZeRO-2, full recompute: two replicas of each expert, and tokens cross GPUs in all-to-alls.
  const Layout l = mixtral_ep8(2, Recompute::full);
  const TrainReport r = evaluate(builtin().model("mixtral-8x7b"), h100(), l, Workload{4096, 64}, 16);
  ASSERT_TRUE(r.feasible()) << r.reason;
  EXPECT_GT(r.time.ep_comm, 0);
  EXPECT_NEAR(sum_terms(r.time), r.step_time, 1e-9 * r.step_time);
  // MFU counts active parameters only: 0 < MFU < 1.
  EXPECT_GT(r.mfu, 0);
  EXPECT_LT(r.mfu, 1);
  // Without expert parallelism there is no all-to-all (every GPU holds all 8 experts; memory is not enforced here).
  Layout no_ep = l;
  no_ep.ep = 1;
  const TrainReport d = evaluate(builtin().model("mixtral-8x7b"), h100(), no_ep, Workload{4096, 64}, 16, false);
  EXPECT_EQ(d.time.ep_comm, 0);
  // ...and more memory per GPU: 8 experts' weights instead of 1.
  EXPECT_GT(d.mem.weights, r.mem.weights);
}

TEST(Evaluate, MoeLayerFixedCostIsChargedPerMoeLayerAndMicrobatch) {
  // calibration kernel.moe_layer_overhead: X per MoE layer forward per microbatch, 2X in backward.
  // Mixtral 8x7B (32 MoE layers), dp 16, ep 8, no recompute, global batch 64: 4 microbatches of 1.
  const Layout l = mixtral_ep8(1, Recompute::none);
  const Workload w{4096, 64};
  const Model& m = builtin().model("mixtral-8x7b");
  System s = h100();
  s.calib.moe_layer_overhead = Seconds{0};
  const TrainReport a = evaluate(m, s, l, w, 16, false);
  s.calib.moe_layer_overhead = Seconds{200e-6};
  const TrainReport b = evaluate(m, s, l, w, 16, false);
  ASSERT_TRUE(a.feasible() && b.feasible());
  EXPECT_NEAR(b.time.elementwise - a.time.elementwise, 4 * 32 * 3 * 200e-6, 1e-9);
  EXPECT_NEAR(b.step_time - a.step_time, 4 * 32 * 3 * 200e-6, 1e-6);
  // A dense model pays nothing.
  Layout d;
  d.dp = 8;
  System sd = h100();
  sd.calib.moe_layer_overhead = Seconds{0};
  const TrainReport da = evaluate(llama8b(), sd, d, kWork, 8, false);
  sd.calib.moe_layer_overhead = Seconds{200e-6};
  const TrainReport db = evaluate(llama8b(), sd, d, kWork, 8, false);
  EXPECT_EQ(da.step_time, db.step_time);
}

TEST(Evaluate, AlltoallDispatcherAddsItsFixedCostPerMoeLayerAndMicrobatch) {
  // kernel.moe_alltoall_overhead: with Megatron's host-synchronised alltoall dispatcher, X more per
  // MoE layer forward per microbatch (2X in backward); the flex dispatcher pays only moe_layer_overhead.
  // Mixtral 8x7B (32 MoE layers), dp 16, ep 8, global batch 64: 4 microbatches of 1.
  Layout l = mixtral_ep8(1, Recompute::none);
  const Workload w{4096, 64};
  const Model& m = builtin().model("mixtral-8x7b");
  System s = h100();
  s.calib.moe_layer_overhead = Seconds{100e-6};
  s.calib.moe_alltoall_overhead = Seconds{500e-6};
  const TrainReport flex = evaluate(m, s, l, w, 16, false);
  l.moe_dispatcher = MoeDispatcher::alltoall;
  const TrainReport a2a = evaluate(m, s, l, w, 16, false);
  ASSERT_TRUE(flex.feasible() && a2a.feasible());
  EXPECT_NEAR(a2a.time.elementwise - flex.time.elementwise, 4 * 32 * 3 * 500e-6, 1e-9);
  EXPECT_NEAR(a2a.step_time - flex.step_time, 4 * 32 * 3 * 500e-6, 1e-6);
  // A dense model cannot name a dispatcher.
  Layout d;
  d.dp = 8;
  d.moe_dispatcher = MoeDispatcher::alltoall;
  EXPECT_FALSE(evaluate(llama8b(), h100(), d, kWork, 8, false).feasible());
}

TEST(Evaluate, MoeAllToAllOverlapHidesUnderThePairedCompute) {
  // Megatron's --overlap-moe-expert-parallel-comm: a layer's dispatch and combine (forward and
  // backward) run beside the compute of another microbatch's pass; what exceeds that compute stays
  // exposed and the compute beside the rest runs overlap_slowdown slower.
  Layout l = mixtral_ep8(1, Recompute::none);
  const Workload w{4096, 64};
  const Model& m = builtin().model("mixtral-8x7b");
  for (double slowdown : {0.0, 0.2}) {
    System s = h100();
    s.calib.overlap_slowdown = slowdown;
    l.moe_a2a_overlap = false;
    const TrainReport plain = evaluate(m, s, l, w, 16, false);
    l.moe_a2a_overlap = true;
    const TrainReport over = evaluate(m, s, l, w, 16, false);
    ASSERT_TRUE(plain.feasible() && over.feasible()) << over.reason;
    ASSERT_GT(plain.time.ep_comm, 0);
    // Inside one NVLink node the all-to-all is far shorter than a layer's compute: all of it hides,
    // leaving the slowdown share.
    const double compute = plain.time.gemm + plain.time.attention + plain.time.elementwise;
    ASSERT_LT(plain.time.ep_comm, compute);
    EXPECT_NEAR(over.time.ep_comm, slowdown * plain.time.ep_comm, 1e-9 + 1e-9 * plain.time.ep_comm);
    EXPECT_NEAR(over.step_time - plain.step_time, over.time.ep_comm - plain.time.ep_comm, 1e-9 * plain.step_time);
  }
  // On a slow fabric the all-to-all outlasts the compute: only the compute's worth hides.
  System s = h100();
  s.calib.overlap_slowdown = 0;
  s.scale_up.bandwidth = ByteRate{2e9};
  Layout x = mixtral_ep8(1, Recompute::none);
  x.moe_a2a_overlap = false;
  const TrainReport plain = evaluate(m, s, x, w, 16, false);
  x.moe_a2a_overlap = true;
  const TrainReport over = evaluate(m, s, x, w, 16, false);
  ASSERT_TRUE(plain.feasible() && over.feasible()) << over.reason;
  const double compute = plain.time.gemm + plain.time.attention + plain.time.elementwise;
  ASSERT_GT(plain.time.ep_comm, compute);
  EXPECT_GT(over.time.ep_comm, 0);
  EXPECT_LT(over.time.ep_comm, plain.time.ep_comm);
  // Hidden: at most the compute (the MoE fixed costs, host work, hide nothing).
  EXPECT_LE(plain.time.ep_comm - over.time.ep_comm, compute * (1 + 1e-9));
  // Megatron-Core's conditions: ep > 1, no full recompute, interleaving when pipelined.
  Layout bad = mixtral_ep8(1, Recompute::full);
  bad.moe_a2a_overlap = true;
  EXPECT_FALSE(evaluate(m, s, bad, w, 16, false).feasible());
  bad = mixtral_ep8(1, Recompute::none);
  bad.moe_a2a_overlap = true;
  bad.ep = 1;
  EXPECT_FALSE(evaluate(m, s, bad, w, 16, false).feasible());
}

TEST(Evaluate, MoeLoadScalesExpertWork) {
  // Mixtral 8x7B, 16 GPUs, ep 8. A capacity factor of 1.25 pads every expert's buffer by 25%: the expert
  // GEMMs (and the all-to-all) carry 25% more; attention does not change. Imbalance 1 equals the default.
  Layout l;
  l.dp = 16;
  l.ep = 8;
  l.zero = 2;
  l.recompute = Recompute::full;
  const Model& m = builtin().model("mixtral-8x7b");
  Workload w{4096, 64};
  const TrainReport base = evaluate(m, h100(), l, w, 16, false);
  Workload padded = w;
  padded.moe_capacity_factor = 1.25;
  const TrainReport cf = evaluate(m, h100(), l, padded, 16, false);
  EXPECT_GT(cf.time.gemm, 1.1 * base.time.gemm);
  EXPECT_LT(cf.time.gemm, 1.25 * base.time.gemm);  // the attention projections are not padded
  EXPECT_NEAR(cf.time.ep_comm / base.time.ep_comm, 1.25, 0.05);
  EXPECT_DOUBLE_EQ(cf.time.attention, base.time.attention);
  Workload balanced = w;
  balanced.moe_imbalance = 1.0;
  EXPECT_DOUBLE_EQ(evaluate(m, h100(), l, balanced, 16, false).step_time, base.step_time);
  Workload skewed = w;
  skewed.moe_imbalance = 1.5;
  EXPECT_GT(evaluate(m, h100(), l, skewed, 16, false).step_time, cf.step_time);
}

TEST(Evaluate, ExpertTensorParallelismSplitsTokensOrWidth) {
  // Qwen3-235B-A22B, tp 2, ep 8 on 16 GPUs. With etp 2 each expert rank gathers both sequence shards and
  // computes half the expert width; with etp 1 it computes the full width on its own shard. Same FLOPs, so
  // the GEMM time is close either way (it was twice as large with etp 1 when the shard was ignored).
  Layout l;
  l.tp = 2;
  l.dp = 8;
  l.ep = 8;
  l.zero = 1;
  l.recompute = Recompute::full;
  const Model& m = builtin().model("qwen3-235b-a22b");
  const Workload w{4096, 64};
  Layout e1 = l, e2 = l;
  e1.etp = 1;
  e2.etp = 2;
  const TrainReport a = evaluate(m, h100(), e1, w, 16, false);
  const TrainReport b = evaluate(m, h100(), e2, w, 16, false);
  ASSERT_TRUE(a.feasible() && b.feasible());
  EXPECT_NEAR(a.time.gemm / b.time.gemm, 1.0, 0.1);
  // etp 2 adds the gather of routed tokens inside the expert-tensor group.
  EXPECT_GT(b.time.ep_comm, a.time.ep_comm * 0.5);
}

TEST(Evaluate, OverlapSlowdownChargesHiddenCommunication) {
  // llama3-8b on 64 H100s, dp 64: the gradient reduce-scatter hides under the last backward. A compute
  // slowdown of 0.2 beside communication charges 0.2 s per hidden second to the DP term; 0 charges nothing.
  System s = h100();
  Layout l;
  l.dp = 64;
  l.recompute = Recompute::full;
  s.calib.overlap_slowdown = 0;
  const TrainReport free = evaluate(llama8b(), s, l, kWork, 64);
  s.calib.overlap_slowdown = 0.2;
  const TrainReport slowed = evaluate(llama8b(), s, l, kWork, 64);
  ASSERT_TRUE(free.feasible()) << free.reason;
  EXPECT_GT(slowed.time.dp_comm, free.time.dp_comm);
  EXPECT_DOUBLE_EQ(slowed.time.gemm, free.time.gemm);
  // Expert all-to-all: hiding half of it (ep_overlap 0.5) with no slowdown halves the EP term.
  Layout moe;
  moe.dp = 16;
  moe.ep = 8;
  moe.zero = 2;
  moe.recompute = Recompute::full;
  const Model& mx = builtin().model("mixtral-8x7b");
  s.calib.overlap_slowdown = 0;
  s.calib.ep_overlap = 0;
  const double full = evaluate(mx, s, moe, Workload{4096, 64}, 16, false).time.ep_comm;
  s.calib.ep_overlap = 0.5;
  EXPECT_NEAR(evaluate(mx, s, moe, Workload{4096, 64}, 16, false).time.ep_comm, 0.5 * full, 1e-12);
}

TEST(Evaluate, ContextParallelRingVersusAllGather) {
  // Llama 3 70B, 128k tokens, cp 8 x tp 8 on 64 H100s. Ring attention hides its K/V passes under the
  // attention blocks; all-gathered K/V is exposed and holds the whole sequence's K/V while a layer runs.
  // (A small vocabulary keeps the logits from setting the transient memory.)
  Model m = builtin().model("llama3-70b");
  m.vocab = 1024;
  Layout l;
  l.tp = 8;
  l.cp = 8;
  l.recompute = Recompute::full;
  const Workload w{131072, 1};
  const TrainReport ring = evaluate(m, h100(), l, w, 64, false);
  l.cp_mode = CpMode::all_gather;
  const TrainReport ag = evaluate(m, h100(), l, w, 64, false);
  EXPECT_GT(ag.time.cp_comm, ring.time.cp_comm);
  EXPECT_GT(ag.mem.transient, ring.mem.transient);
  EXPECT_DOUBLE_EQ(ag.time.attention, ring.time.attention);
  // GQA: 8 KV heads over tp 8 = 1 local KV head of 128; gathered K and V for 128k tokens in bf16 (x2 for
  // the gradients in backward) = 2 x 131072 x 2 x 128 x 2 B = 128 MiB more than ring's two 16k-token blocks.
  const double kv_local = 131072.0 / 8 * 2 * 128 * 2;  // one rank's K and V, bytes
  EXPECT_NEAR(ag.mem.transient - ring.mem.transient, 2.0 * kv_local * 8 - 2.0 * kv_local, 1.0);
}

// ---- choose_plan ----

TEST(Choose, EveryKnobFree) {
  // llama3-70b on 64 H100 (8 nodes), seq 8192, global batch 128: the best plan fits and is at least as fast as
  // a hand-written one from the same search space.
  PlanRequest q;
  q.devices = 64;
  q.work = kWork;
  ChooseStats st;
  const Model& m = builtin().model("llama3-70b");
  const TrainReport r = choose_plan(m, h100(), q, &st);
  ASSERT_TRUE(r.feasible()) << r.reason;
  EXPECT_LE(r.mem.total(), r.mem.capacity);
  EXPECT_GT(r.step_time, 0);
  // Degrees multiply to the device count: tp x pp x dp x cp = 64.
  EXPECT_EQ(r.layout.tp * r.layout.pp * r.layout.dp * r.layout.cp, 64);
  // Counters: every evaluated layout was first considered; rejected + out of memory + evaluated +
  // dominated (more recompute than a fitting variant) = considered.
  EXPECT_GE(st.considered, st.evaluated);
  EXPECT_GT(st.evaluated, 0);
  EXPECT_GT(st.dominated, 0);
  EXPECT_EQ(st.rejected + st.out_of_memory + st.evaluated + st.dominated, st.considered);
  // tp 8 x dp 8, full recompute, ZeRO-1, bf16, micro-batch 1 is one of the candidates.
  Layout hand;
  hand.tp = 8;
  hand.dp = 8;
  hand.recompute = Recompute::full;
  const TrainReport h = evaluate(m, h100(), hand, kWork, 64);
  ASSERT_TRUE(h.feasible()) << h.reason;
  EXPECT_LE(r.step_time, h.step_time);
}

TEST(Choose, ThreadsDoNotChangeTheAnswer) {
  // The (tp, pp, cp) groups run on threads and merge in order: the plan, its step time to the bit
  // and the counts are those of one thread (dense, and MoE with its expert degrees).
  for (const char* id : {"llama3-70b", "mixtral-8x7b"}) {
    PlanRequest q;
    q.devices = 64;
    q.work = Workload{4096, 256};
    const Model& m = builtin().model(id);
    ChooseStats a, b;
    const TrainReport one = choose_plan(m, h100(), q, &a, false, 1);
    const TrainReport many = choose_plan(m, h100(), q, &b, false, 5);
    ASSERT_TRUE(one.feasible()) << one.reason;
    EXPECT_EQ(layout_summary(one.layout), layout_summary(many.layout)) << id;
    EXPECT_EQ(one.step_time, many.step_time) << id;
    EXPECT_EQ(a.considered, b.considered);
    EXPECT_EQ(a.rejected, b.rejected);
    EXPECT_EQ(a.out_of_memory, b.out_of_memory);
    EXPECT_EQ(a.evaluated, b.evaluated);
    EXPECT_GT(a.evaluated, 0);
  }
  // Nothing fits (405B on 8 GPUs): the closest candidate is the same too.
  PlanRequest q;
  q.devices = 8;
  q.work = Workload{8192, 8};
  const TrainReport one = choose_plan(builtin().model("llama3.1-405b"), h100(), q, nullptr, false, 1);
  const TrainReport many = choose_plan(builtin().model("llama3.1-405b"), h100(), q, nullptr, false, 3);
  EXPECT_FALSE(one.feasible());
  EXPECT_EQ(layout_summary(one.layout), layout_summary(many.layout));
  EXPECT_EQ(one.mem.total(), many.mem.total());
}

TEST(Choose, AllKnobsGivenKeepsTheLayout) {
  // Every knob given (tp 8 x pp 2 x dp 4 x cp 1 = 64): the result keeps each one.
  PlanRequest q;
  q.devices = 64;
  q.work = kWork;
  q.tp = 8;
  q.pp = 2;
  q.vp = 2;
  q.dp = 4;
  q.cp = 1;
  q.ep = 1;
  q.micro_batch = 1;
  q.zero = 1;
  q.recompute = Recompute::selective;
  q.precision = Precision::bf16;
  ChooseStats st;
  const TrainReport r = choose_plan(builtin().model("llama3-70b"), h100(), q, &st);
  EXPECT_EQ(r.layout.tp, 8);
  EXPECT_EQ(r.layout.pp, 2);
  EXPECT_EQ(r.layout.vp, 2);
  EXPECT_EQ(r.layout.dp, 4);
  EXPECT_EQ(r.layout.cp, 1);
  EXPECT_EQ(r.layout.ep, 1);
  EXPECT_EQ(r.layout.micro_batch, 1);
  EXPECT_EQ(r.layout.zero, 1);
  EXPECT_EQ(r.layout.recompute, Recompute::selective);
  EXPECT_EQ(r.layout.precision, Precision::bf16);
  // Only the request itself is tried (in at most the 3 memory options of a layout: fp32 or bf16 gradients,
  // low-precision primary weights for fp8/fp4).
  EXPECT_GE(st.considered, 1);
  EXPECT_LE(st.considered, 3);
  // layout_from_request gives the same layout.
  const Layout l = layout_from_request(builtin().model("llama3-70b"), h100(), q);
  EXPECT_EQ(l.tp, 8);
  EXPECT_EQ(l.pp, 2);
  EXPECT_EQ(l.vp, 2);
  EXPECT_EQ(l.dp, 4);
  EXPECT_EQ(l.recompute, Recompute::selective);
}

TEST(Choose, NothingFitsReturnsClosest) {
  // Llama 3.1 405B on 8 GPUs cannot fit however it is laid out: the report says why.
  PlanRequest q;
  q.devices = 8;
  q.work = kWork;
  q.tp = 8;
  const TrainReport r = choose_plan(builtin().model("llama3.1-405b"), h100(), q);
  EXPECT_FALSE(r.feasible());
  EXPECT_EQ(r.why, Infeasible::out_of_memory);
  EXPECT_FALSE(r.reason.empty());
}

TEST(Evaluate, MemoryChecksEveryPipelineStage) {
  // 80 layers over 32 stages: split_layers gives the 16 leftover layers to stages 1..16, so
  // stage 1 holds 3 layers with 31 microbatches in flight against stage 0's 2 layers with 32.
  // Checking only the first and last stage called this plan a fit.
  const Model& m = builtin().model("llama3-70b");
  Layout l;
  l.tp = 8;
  l.pp = 32;
  l.micro_batch = 3;
  const Workload w{8192, 384};
  const TrainReport r = evaluate(m, h100(), l, w, 256);
  EXPECT_EQ(r.why, Infeasible::out_of_memory) << r.mem.total() / 1e9 << " GB of " << r.mem.capacity / 1e9;
  EXPECT_GT(r.mem.stage, 0);
  EXPECT_LT(r.mem.stage, l.pp - 1);
  // The figures are the most loaded stage's: no stage needs more.
  const MemoryBreakdown mb = estimate_memory(m, h100(), l, w);
  EXPECT_EQ(mb.stage, r.mem.stage);
  EXPECT_GT(mb.total(), mb.capacity);
}

TEST(Evaluate, ExpertDataParallelSpansTheTensorRanksExpertsDoNotSplit) {
  // Mixtral on 64 ranks (tp 8 x dp 8), ep 8. With etp 8 every expert is split over the 8 tensor
  // ranks and not replicated; with etp 1 each rank holds a whole expert, replicated over 8 ranks
  // (edp = tp x dp x cp / (ep x etp)), so ZeRO-1 shards its optimizer state 8 ways and its
  // gradients are reduced over those 8. The optimizer state per device is the same either way.
  const Model& m = builtin().model("mixtral-8x7b");
  Layout l;
  l.tp = 8;
  l.dp = 8;
  l.ep = 8;
  const Workload w{4096, 256};
  l.etp = 8;
  EXPECT_EQ(l.expert_dp(), 1);
  const TrainReport split = evaluate(m, h100(), l, w, 64);
  l.etp = 1;
  EXPECT_EQ(l.expert_dp(), 8);
  const TrainReport whole = evaluate(m, h100(), l, w, 64);
  ASSERT_EQ(split.why, Infeasible::none) << split.reason;
  ASSERT_EQ(whole.why, Infeasible::none) << whole.reason;  // 63 GiB of optimizer state before
  EXPECT_NEAR(whole.mem.optimizer, split.mem.optimizer, 0.01 * split.mem.optimizer);
  EXPECT_GT(whole.mem.weights, 4.0 * split.mem.weights);  // whole experts, unsplit
  // Whole experts replicated 8 ways have their gradients reduced; split ones have none to reduce.
  EXPECT_GT(whole.time.dp_comm, split.time.dp_comm);
}

TEST(Choose, NeverSplitsKvHeadsUnevenly) {
  // Llama 3.1 405B (8 KV heads) at 128k context on NVL72 racks: the chooser took tp 16, which
  // Megatron-Core refuses (num_query_groups must divide by tp). Given, such a tp is evaluated.
  const Model& m = builtin().model("llama3.1-405b");
  const System& s = builtin().system("gb200-nvl72");
  PlanRequest q;
  q.devices = 2304;
  q.work = Workload{131072, 16};
  const TrainReport r = choose_plan(m, s, q);
  ASSERT_TRUE(r.feasible()) << r.reason;
  EXPECT_EQ(m.kv_heads % r.layout.tp, 0) << "tp " << r.layout.tp;
  Layout l;
  l.tp = 16;
  l.pp = 9;
  l.cp = 16;
  EXPECT_EQ(check_layout(m, s, l, q.work, q.devices, nullptr), Infeasible::none);
}

TEST(Choose, InterleavesOnlyIntoEvenChunks) {
  // Stock Megatron-Core builds equal chunks of whole layers (the embedding and the loss may count
  // as one each). The chooser picked pp 4 x vp 9 for Llama 3 70B on 64 H100s: 20 layers a stage in
  // 9 chunks, which only a hand-written layout of 3- and 2-layer chunks runs.
  EXPECT_TRUE(even_chunks(80, 4, 5));
  EXPECT_FALSE(even_chunks(80, 4, 9));
  EXPECT_TRUE(even_chunks(126, 16, 8));  // 128 = 126 + embedding + loss
  EXPECT_TRUE(even_chunks(61, 2, 31));   // 62 = 61 + embedding
  EXPECT_FALSE(even_chunks(92, 4, 16));
  EXPECT_TRUE(even_chunks(92, 4, 23));
  for (const char* id : {"llama3-70b", "llama3.1-405b", "deepseek-v3"}) {
    const Model& m = builtin().model(id);
    for (int devices : {64, 256}) {
      PlanRequest q;
      q.devices = devices;
      q.work = Workload{4096, 1024};
      const TrainReport r = choose_plan(m, h100(), q);
      if (!r.feasible()) continue;
      // Uneven chunks only with the layout that runs them written out (a balanced one).
      EXPECT_TRUE(even_chunks(m.layers, r.layout.pp, r.layout.vp) || (r.layout.stage_layout && r.layout.stage_layout->balanced))
          << id << " on " << devices << ": pp " << r.layout.pp << " vp " << r.layout.vp;
    }
  }
}

TEST(Choose, AttentionDefaultsToUnfusedOnChipsWithoutFlashAttention) {
  // FlashAttention needs Turing/Ampere or newer: V100 plans default to unfused attention (its
  // chip file's [kernels] flash_attention = false); a given kernel is still taken as asked.
  const System& v100 = builtin().system("dgx2-v100");
  ASSERT_FALSE(v100.chip.flash_attention);
  EXPECT_TRUE(h100().chip.flash_attention);
  PlanRequest q;
  q.devices = 16;
  q.work = Workload{2048, 64};
  const Model& m = builtin().model("llama3-8b");
  const TrainReport r = choose_plan(m, v100, q);
  ASSERT_TRUE(r.feasible()) << r.reason;
  EXPECT_EQ(r.layout.attention, AttentionKernel::unfused);
  EXPECT_EQ(choose_plan(m, h100(), q).layout.attention, AttentionKernel::flash);
  q.attention = AttentionKernel::flash;
  EXPECT_EQ(choose_plan(m, v100, q).layout.attention, AttentionKernel::flash);
}

TEST(Layout, SixteenBitGradientsTakeTheRunsType) {
  // An fp16 run (V100, the 2021 Megatron runs) reduces fp16 gradients, not bf16 ones.
  Layout l;
  l.grad_fp32 = false;
  l.precision = Precision::fp16;
  EXPECT_STREQ(grad_name(l), "fp16");
  l.precision = Precision::fp8;
  EXPECT_STREQ(grad_name(l), "bf16");
  l.grad_fp32 = true;
  EXPECT_STREQ(grad_name(l), "fp32");
}

// causal_pairs sums min(position, window) over a chunk of causal queries: check it against the
// sum itself, chunks inside, across and past the window.
TEST(Attention, CausalPairsIsTheSumOfMinPositionWindow) {
  for (double W : {0.0, 1.0, 7.0, 128.0})
    for (double first : {0.0, 3.0, 100.0, 200.0})
      for (double count : {1.0, 5.0, 64.0, 300.0}) {
        double brute = 0;
        for (double p = first + 1; p <= first + count; ++p) brute += W > 0 ? std::min(p, W) : p;
        EXPECT_DOUBLE_EQ(causal_pairs(first, count, W), brute) << "W " << W << " first " << first << " count " << count;
      }
}

// A sliding window of W keys over s > W positions averages W - W(W-1)/(2s) keys per query, not W:
// Mistral 7B (every layer windowed at 4,096) at 8,192 tokens spends 3/4 of Llama 3 8B's attention
// (same heads and head size); min(s/2, W) charged them the same.
TEST(Evaluate, SlidingWindowAttentionAveragesOverPositions) {
  const Model& mistral = builtin().model("mistral-7b");
  ASSERT_EQ(mistral.sliding_window, 4096);
  ASSERT_EQ(mistral.heads, llama8b().heads);
  ASSERT_EQ(mistral.head_dim, llama8b().head_dim);
  Layout l;
  l.dp = 8;
  l.zero = 3;
  l.recompute = Recompute::full;
  const Workload w{8192, 16};
  const TrainReport a = evaluate(mistral, h100(), l, w, 8), b = evaluate(llama8b(), h100(), l, w, 8);
  ASSERT_TRUE(a.feasible() && b.feasible());
  const double expect = (4096.0 - 4096.0 * 4095 / (2 * 8192)) / (8193.0 / 2);  // 3072 / 4096.5
  EXPECT_NEAR(a.time.attention / b.time.attention, expect, 0.01);
}

// Chunked local attention (Llama 4 Scout: 36 of 48 layers within 8,192-token chunks): from 8k to
// 32k tokens the attention grows 7x, (12 x 16 + 36 x 4) / 48, not 16x as full causal attention.
TEST(Evaluate, ChunkedLocalAttentionGrowsLinearlyPastTheChunk) {
  const Model& scout = builtin().model("llama4-scout-17b-16e");
  ASSERT_TRUE(scout.chunked_local);
  EXPECT_DOUBLE_EQ(chunked_pairs(0, 20, 8), 36 + 36 + 10);  // chunks 1..8, 1..8, 1..4
  EXPECT_DOUBLE_EQ(chunked_pairs(5, 10, 8), (36 + 28) - 15);  // positions 6..15
  Layout l;
  l.dp = 16;
  l.cp = 4;
  l.ep = 16;
  l.zero = 3;
  l.recompute = Recompute::full;
  auto attention = [&](long seq) {
    const TrainReport r = evaluate(scout, h100(), l, Workload{seq, 32}, 64);
    EXPECT_TRUE(r.feasible()) << r.reason;
    return r.time.attention;
  };
  EXPECT_NEAR(attention(32768) / attention(8192), 7.0, 0.2);
}

// Interleaved chunks put layer j on stage (chunk of j) mod pp: Llama 4 Scout at pp 4, vp 12 (one
// layer a chunk) puts all 12 global layers (3, 7, ..., 47) on stage 3, which sets the pace as if
// every layer of it were global; at vp 1 each stage holds 3 global and 9 chunked layers.
TEST(Evaluate, InterleavedStagesHoldTheirOwnLayers) {
  const Model& scout = builtin().model("llama4-scout-17b-16e");
  Model global = scout;
  global.sliding_window = 0;
  global.global_every = 0;
  global.chunked_local = false;
  Layout l;
  l.tp = 4;
  l.pp = 4;
  l.vp = 12;
  l.cp = 16;
  l.dp = 4;
  l.micro_batch = 2;
  const Workload w{131072, 64};
  const TrainReport a = evaluate(scout, h100(), l, w, 1024, false), g = evaluate(global, h100(), l, w, 1024, false);
  ASSERT_TRUE(a.feasible() && g.feasible()) << a.reason << g.reason;
  EXPECT_NEAR(a.time.attention, g.time.attention, 1e-9 * g.time.attention);
  l.vp = 1;
  const TrainReport a1 = evaluate(scout, h100(), l, w, 1024, false), g1 = evaluate(global, h100(), l, w, 1024, false);
  ASSERT_TRUE(a1.feasible() && g1.feasible());
  EXPECT_LT(a1.time.attention, 0.5 * g1.time.attention);
}

// The stages' layer counts under interleaving, in closed form for a dense model with no local
// layers, equal the chunk-by-chunk count that a model with local layers takes (split_layers over
// pp x vp chunks, chunk c on stage c mod pp), for even and uneven chunks.
TEST(Evaluate, InterleavedStageCountsClosedFormMatchesChunks) {
  Model dense = llama8b();  // 32 layers
  Model local = dense;
  local.sliding_window = 1 << 20;  // longer than any sequence: every layer local, nothing else changes
  local.sliding_window_every = 1;
  for (int pp : {2, 3, 4, 5, 6})
    for (int vp : {2, 3, 5, 7}) {
      if (pp * vp > dense.layers + 2) continue;
      Layout l;
      l.pp = pp;
      l.vp = vp;
      l.dp = 1;
      const Workload w{1024, 64 * pp};
      const TrainReport a = evaluate(dense, h100(), l, w, pp, false), b = evaluate(local, h100(), l, w, pp, false);
      ASSERT_EQ(a.stage_layers.size(), static_cast<std::size_t>(pp)) << a.reason;
      EXPECT_EQ(a.stage_layers, b.stage_layers) << "pp " << pp << " vp " << vp;
      int sum = 0;
      for (int n : a.stage_layers) sum += n;
      EXPECT_EQ(sum, dense.layers);
    }
}

// MoE accounting, from a physics QA round (each expectation failed before its fix): routing
// imbalance is between expert ranks, so with ep 1 it changes nothing; a MoE layer's MLP block has
// no tensor-parallel gather and scatter (its tokens leave through the dispatch): Mixtral's TP
// traffic is half of Mistral 7B's (same hidden, heads and layers), not equal.
TEST(Evaluate, MoeImbalanceAndTpBlocks) {
  const Model& q3 = builtin().model("qwen3-30b-a3b");
  const System& b300 = builtin().system("dgx-b300");
  const Workload w{4096, 64};
  Layout l;
  l.dp = 8;
  l.zero = 1;
  l.recompute = Recompute::full;
  const TrainReport ep1 = evaluate(q3, b300, l, w, 8);
  Layout l8 = l;
  l8.ep = 8;
  const TrainReport ep8 = evaluate(q3, b300, l8, w, 8);
  ASSERT_TRUE(ep1.feasible() && ep8.feasible()) << ep1.reason << ep8.reason;
  Workload skew = w;
  skew.moe_imbalance = 2;
  EXPECT_DOUBLE_EQ(evaluate(q3, b300, l, skew, 8).step_time, ep1.step_time);
  EXPECT_GT(evaluate(q3, b300, l8, skew, 8).step_time, ep8.step_time);  // ep 8: the busiest rank sets the pace
  Layout t;
  t.tp = 8;
  t.dp = 8;
  t.zero = 1;
  t.recompute = Recompute::selective;
  const Workload wt{4096, 256};
  const TrainReport dense = evaluate(builtin().model("mistral-7b"), h100(), t, wt, 64);
  Layout te = t;
  te.ep = 8;
  te.etp = 1;
  const TrainReport moe = evaluate(builtin().model("mixtral-8x7b"), h100(), te, wt, 64);
  ASSERT_TRUE(dense.feasible() && moe.feasible()) << dense.reason << moe.reason;
  EXPECT_NEAR(moe.time.tp_comm, 0.5 * dense.time.tp_comm, 0.02 * dense.time.tp_comm);  // the embedding and head differ a little
}

// Ranks fill whole scale-up domains in order, so a group whose span does not divide the domain has
// a copy across a boundary. Qwen3-30B with ep 16 on GB200 NVL72: 128 GPUs are placed 64 to a rack
// and every EP group stays in one; 144 GPUs fill two racks of 72 and the group on GPUs 64-79 has 8
// members in each, its all-to-all half over the network (it had been timed in-rack). Same work per
// GPU (global batch scaled), so only the straddle differs.
TEST(Evaluate, GroupsAcrossADomainBoundary) {
  const Model& m = builtin().model("qwen3-30b-a3b");
  const System& s = builtin().system("gb200-nvl72");
  Layout l;
  l.ep = 16;
  l.etp = 1;
  l.zero = 1;
  l.recompute = Recompute::selective;
  l.dp = 128;
  const TrainReport packed = evaluate(m, s, l, Workload{4096, 256}, 128);
  l.dp = 144;
  const TrainReport whole = evaluate(m, s, l, Workload{4096, 288}, 144);
  ASSERT_TRUE(packed.feasible() && whole.feasible()) << packed.reason << whole.reason;
  EXPECT_GT(whole.time.ep_comm, 2 * packed.time.ep_comm);
  // A group that divides the rack (ep 8 of 72) never straddles.
  l.ep = 8;
  const TrainReport eight = evaluate(m, s, l, Workload{4096, 288}, 144);
  l.dp = 128;
  const TrainReport eight_packed = evaluate(m, s, l, Workload{4096, 256}, 128);
  EXPECT_NEAR(eight.time.ep_comm, eight_packed.time.ep_comm, 1e-9 * eight_packed.time.ep_comm);
}

// ---- selective recompute modules (Megatron-Core --recompute-modules) ----

TEST(RecomputeModules, NamesRoundTrip) {
  std::string bad;
  EXPECT_EQ(parse_recompute_modules("mla_up_proj,mlp", &bad), kRecomputeMlaUpProj | kRecomputeMlp);
  EXPECT_EQ(parse_recompute_modules("mlp+mla_up_proj", &bad), kRecomputeMlaUpProj | kRecomputeMlp);
  EXPECT_EQ(recompute_modules_name(kRecomputeMlaUpProj | kRecomputeMlp), "mla_up_proj+mlp");
  EXPECT_EQ(parse_recompute_modules(recompute_modules_name(kRecomputeModulesAll), &bad), kRecomputeModulesAll);
  EXPECT_FALSE(parse_recompute_modules("core_attn,attn", &bad));
  EXPECT_EQ(bad, "attn");
  EXPECT_FALSE(parse_recompute_modules("", &bad));
  EXPECT_FALSE(parse_recompute_modules("moe,", &bad));
  EXPECT_EQ(bad, "");
}

// DeepSeek-V3 (MLA, 58 MoE layers with a shared expert, 3 dense) on one pipeline stage: every layer
// of the one microbatch in flight, so each module's saving is its bytes per layer times the layers.
struct DeepSeekCase {
  const Model& m = builtin().model("deepseek-v3");
  const System& s = builtin().system("gb200-nvl72");
  Workload w{4096, 64};
  Layout l;
  DeepSeekCase() {
    w.moe_imbalance = 1;  // balanced: the routed tokens are exactly top_k per token
    l.dp = 64;
    l.ep = 64;
  }
  TrainReport run(Recompute rc, unsigned mods = kRecomputeModulesDefault) const {
    Layout x = l;
    x.recompute = rc;
    x.recompute_modules = mods;
    return evaluate(m, s, x, w, 64, /*enforce_memory=*/false);
  }
};

TEST(RecomputeModules, EachModuleDropsItsBytesAndRerunsItsForward) {
  const DeepSeekCase c;
  const TrainReport none = c.run(Recompute::none);
  ASSERT_TRUE(none.feasible()) << none.reason;
  const double T = 4096, h = c.m.hidden, heads = c.m.heads, layers = c.m.layers;
  const double moe_layers = c.m.moe_layer_count(), k = c.m.moe.top_k, fe = c.m.moe.ffn_hidden;
  const double dqk = c.m.mla.qk_nope_head_dim + c.m.mla.qk_rope_head_dim, dv = c.m.mla.v_head_dim;
  struct Want {
    unsigned mods;
    double saved;  // bytes of activations (bf16: 2 B per element)
  };
  const Want wants[] = {
      // MLA's input norm on every layer, a MoE layer's pre-MLP norm (the dense layers' is fused).
      {kRecomputeLayernorm, (layers + moe_layers) * 2.0 * h * T},
      {kRecomputeMlaUpProj, layers * 2.0 * T * heads * (2 * dqk + dv)},  // q, k, v
      {kRecomputeMoeAct, moe_layers * 2.0 * T * k * fe},               // the experts' SwiGLU output
      {kRecomputeSharedExperts, moe_layers * (4.0 + 2.0) * T * fe},    // the shared expert's MLP
  };
  double saved_sum = 0;
  unsigned all = 0;
  for (const Want& want : wants) {
    const TrainReport r = c.run(Recompute::selective, want.mods);
    ASSERT_TRUE(r.feasible()) << r.reason;
    EXPECT_NEAR(none.mem.activations - r.mem.activations, want.saved, 1e-9 * want.saved) << recompute_modules_name(want.mods);
    EXPECT_GT(r.time.recompute, 0) << recompute_modules_name(want.mods);
    EXPECT_GT(r.step_time, none.step_time) << recompute_modules_name(want.mods);
    saved_sum += want.saved;
    all |= want.mods;
  }
  // Disjoint modules add up.
  const TrainReport together = c.run(Recompute::selective, all);
  EXPECT_NEAR(none.mem.activations - together.mem.activations, saved_sum, 1e-9 * saved_sum);
  // Rerunning the MLA up-projections is matrix work: hardware FLOPs above model FLOPs.
  const TrainReport mla = c.run(Recompute::selective, kRecomputeMlaUpProj);
  EXPECT_GT(mla.hfu, mla.mfu);
  const TrainReport norms = c.run(Recompute::selective, kRecomputeLayernorm);
  EXPECT_DOUBLE_EQ(norms.hfu, norms.mfu);  // memory passes only
}

TEST(RecomputeModules, WholeBlocksSaveMoreAndCostMoreThanTheirParts) {
  const DeepSeekCase c;
  const TrainReport act = c.run(Recompute::selective, kRecomputeMoeAct);
  const TrainReport shared = c.run(Recompute::selective, kRecomputeSharedExperts);
  const TrainReport moe = c.run(Recompute::selective, kRecomputeMoe);
  const TrainReport mlp = c.run(Recompute::selective, kRecomputeMlp);
  const TrainReport full = c.run(Recompute::full);
  ASSERT_TRUE(act.feasible() && shared.feasible() && moe.feasible() && mlp.feasible() && full.feasible());
  EXPECT_LT(moe.mem.activations, act.mem.activations);
  EXPECT_LT(moe.mem.activations, shared.mem.activations);
  EXPECT_GT(moe.time.recompute, act.time.recompute + shared.time.recompute);
  // The whole MoE block (dispatch included) is less than the whole layer's forward.
  EXPECT_LT(moe.time.recompute, full.time.recompute);
  EXPECT_GT(moe.mem.activations, full.mem.activations);
  // mlp reruns the 3 dense layers' MLPs only: a small saving, a small cost.
  EXPECT_LT(mlp.mem.activations, c.run(Recompute::none).mem.activations);
  EXPECT_LT(mlp.time.recompute, moe.time.recompute);
  // What a module reruns is held again while its layer's backward runs (on stage 0 of 2, which
  // holds no logits).
  DeepSeekCase two;
  two.l.pp = 2;
  two.l.dp = 32;
  two.l.ep = 32;
  const TrainReport act2 = two.run(Recompute::selective, kRecomputeMoeAct);
  const TrainReport moe2 = two.run(Recompute::selective, kRecomputeMoe);
  ASSERT_TRUE(act2.feasible() && moe2.feasible());
  ASSERT_EQ(moe2.mem.stage, 0);
  EXPECT_GT(moe2.mem.transient, act2.mem.transient);
  // A stage without dense layers holds no dense MLP rerun: mlp changes nothing on pp 16's stage 1.
  DeepSeekCase deep;
  deep.l.pp = 16;
  deep.l.dp = 4;
  deep.l.ep = 4;
  const TrainReport bare = deep.run(Recompute::none), mlp16 = deep.run(Recompute::selective, kRecomputeMlp);
  ASSERT_TRUE(bare.feasible() && mlp16.feasible());
  ASSERT_NE(bare.mem.stage, 0);
  EXPECT_DOUBLE_EQ(mlp16.mem.total(), bare.mem.total());
}

TEST(Evaluate, MoeKeepsThePermutedTokensOnceForBackward) {
  // Megatron-Core (0.13 on) applies the routing probabilities in the experts' activation, so the
  // unpermute keeps nothing: one more expert per token stores its gate and up outputs, its
  // activation output (the down projection's input) and its permuted input token, not the
  // expert's output as well.
  DeepSeekCase c;
  const TrainReport k8 = c.run(Recompute::none);
  Model m9 = c.m;
  m9.moe.top_k = 9;
  Layout l = c.l;
  const TrainReport k9 = evaluate(m9, c.s, l, c.w, 64, false);
  ASSERT_TRUE(k8.feasible() && k9.feasible());
  const double T = 4096, per_layer = T * ((4.0 + 2.0) * c.m.moe.ffn_hidden + 2.0 * c.m.hidden);
  const double want = c.m.moe_layer_count() * per_layer;
  EXPECT_NEAR(k9.mem.activations - k8.mem.activations, want, 1e-9 * want);

  // Expert-tensor parallelism: the etp group gathers the routed tokens before the experts, so each
  // etp rank keeps the whole permuted tokens (QA, session 28: they had been divided by etp).
  Layout e = c.l;
  e.tp = 2;
  e.dp = 32;
  e.ep = 32;
  e.etp = 2;
  const TrainReport e8 = evaluate(c.m, c.s, e, c.w, 64, false), e9 = evaluate(m9, c.s, e, c.w, 64, false);
  ASSERT_TRUE(e8.feasible() && e9.feasible()) << e8.reason;
  const double per_layer_etp = T * ((4.0 + 2.0) * c.m.moe.ffn_hidden / 2 + 2.0 * c.m.hidden);
  const double want_etp = c.m.moe_layer_count() * per_layer_etp;
  EXPECT_NEAR(e9.mem.activations - e8.mem.activations, want_etp, 1e-9 * want_etp);
}

TEST(Evaluate, Fp8MoeLayersKeepTheRoutersBf16Input) {
  // The router is no Transformer Engine layer: a MoE layer keeps its pre-MLP norm output in bf16
  // for it, and in fp8 its shared experts' fc1 keeps an fp8 copy beside it. The layernorm module
  // drops both (and MLA's fp8 input-norm output, kept by the fp8 down-projections).
  DeepSeekCase c;
  Layout l = c.l;
  l.precision = Precision::fp8;
  Layout ln = l;
  ln.recompute = Recompute::selective;
  ln.recompute_modules = kRecomputeLayernorm;
  const TrainReport none = evaluate(c.m, c.s, l, c.w, 64, false), norm = evaluate(c.m, c.s, ln, c.w, 64, false);
  ASSERT_TRUE(none.feasible() && norm.feasible()) << none.reason;
  const double hT = 4096.0 * c.m.hidden;
  const double want = c.m.layers * 1.0 * hT + c.m.moe_layer_count() * (2.0 + 1.0) * hT;
  EXPECT_NEAR(none.mem.activations - norm.mem.activations, want, 1e-9 * want);
}

TEST(Evaluate, FlexDispatchCrossesNodesOncePerNode) {
  // DeepEP/HybridEP (flex) send a token once per destination node and forward it over NVLink;
  // Megatron's alltoall dispatcher sends every top-k copy. Across nodes flex moves less; inside one
  // node the two exchange the same bytes.
  const Model& m = builtin().model("deepseek-v3");
  const System& s = builtin().system("dgx-h800");
  Layout l;
  l.pp = 16;
  l.dp = 64;
  l.ep = 64;
  l.precision = Precision::fp8;
  const Workload w{4096, 1024};
  Layout a2a = l;
  a2a.moe_dispatcher = MoeDispatcher::alltoall;
  const TrainReport flex = evaluate(m, s, l, w, 1024, false), all = evaluate(m, s, a2a, w, 1024, false);
  ASSERT_TRUE(flex.feasible() && all.feasible());
  EXPECT_LT(flex.time.ep_comm, 0.8 * all.time.ep_comm);
  // A chip without a hierarchical dispatch library (no DeepEP/HybridEP): flex is a flat all-to-all,
  // the same bytes as Megatron's alltoall (QA, session 28: every vendor had been given DeepEP's saving).
  System flat = s;
  flat.chip.hierarchical_ep_dispatch = false;
  const TrainReport flex_flat = evaluate(m, flat, l, w, 1024, false), all_flat = evaluate(m, flat, a2a, w, 1024, false);
  EXPECT_DOUBLE_EQ(flex_flat.time.ep_comm, all_flat.time.ep_comm);
  EXPECT_DOUBLE_EQ(all_flat.time.ep_comm, all.time.ep_comm);
  l.ep = a2a.ep = 8;
  const TrainReport flex8 = evaluate(m, s, l, w, 1024, false), all8 = evaluate(m, s, a2a, w, 1024, false);
  EXPECT_DOUBLE_EQ(flex8.time.ep_comm, all8.time.ep_comm);
}

TEST(RecomputeModules, DefaultIsTheAttentionCore) {
  const DeepSeekCase c;
  const TrainReport def = c.run(Recompute::selective);
  const TrainReport core = c.run(Recompute::selective, kRecomputeCoreAttn);
  EXPECT_DOUBLE_EQ(def.step_time, core.step_time);
  EXPECT_DOUBLE_EQ(def.mem.activations, core.mem.activations);
  EXPECT_GT(def.time.recompute, 0);
  // The modules mean nothing without selective recompute.
  Layout x = c.l;
  x.recompute_modules = kRecomputeMoe;
  EXPECT_DOUBLE_EQ(evaluate(c.m, c.s, x, c.w, 64, false).step_time, c.run(Recompute::none).step_time);
}

TEST(RecomputeModules, ChooserRefusesModulesTheModelLacks) {
  PlanRequest q;
  q.devices = 64;
  q.work = {4096, 64};
  q.recompute = Recompute::selective;
  q.recompute_modules = kRecomputeMlaUpProj;
  EXPECT_THROW(choose_plan(builtin().model("llama3-70b"), h100(), q), InputError);
  q.recompute_modules = kRecomputeLayernorm;  // a dense GQA layer's norms are fused into projections
  EXPECT_THROW(choose_plan(builtin().model("llama3-70b"), h100(), q), InputError);
  // Left free, a dense GQA model is offered no second selective set.
  PlanRequest free = q;
  free.recompute.reset();
  free.recompute_modules.reset();
  EXPECT_EQ(recompute_range(builtin().model("llama3-70b"), free).size(), 3u);
  EXPECT_EQ(recompute_range(builtin().model("gpt-oss-120b"), free).size(), 4u);
  q.recompute_modules = kRecomputeMoeAct;
  EXPECT_THROW(choose_plan(builtin().model("llama3-70b"), h100(), q), InputError);
  q.recompute_modules = kRecomputeMlp;
  EXPECT_THROW(choose_plan(builtin().model("gpt-oss-120b"), h100(), q), InputError);
  q.recompute = Recompute::full;
  q.recompute_modules = kRecomputeMoe;
  EXPECT_THROW(choose_plan(builtin().model("gpt-oss-120b"), h100(), q), InputError);
  // Given, the modules reach the plan.
  q.recompute = Recompute::selective;
  q.recompute_modules = kRecomputeLayernorm | kRecomputeMoeAct;
  const TrainReport r = choose_plan(builtin().model("gpt-oss-120b"), h100(), q);
  EXPECT_EQ(r.layout.recompute, Recompute::selective);
  EXPECT_EQ(r.layout.recompute_modules, kRecomputeLayernorm | kRecomputeMoeAct);
}

TEST(Mtp, ALayerAndASecondHeadOnTheHeadStage) {
  // DeepSeek-V3 (one MTP module, like its last layer: MoE) on 64 GB200, pp 4 x dp 16 x ep 16.
  const Model& m = builtin().model("deepseek-v3");
  const System& s = builtin().system("gb200-nvl72");
  Workload w{4096, 64};
  w.moe_imbalance = 1;
  Layout l;
  l.pp = 4;
  l.dp = 16;
  l.ep = 16;
  const TrainReport r0 = evaluate(m, s, l, w, 64, false);
  Layout l1 = l;
  l1.mtp_layers = 1;
  const TrainReport r1 = evaluate(m, s, l1, w, 64, false);
  ASSERT_TRUE(r0.feasible() && r1.feasible()) << r0.reason << r1.reason;
  // The MTP layer sits on the last stage, with the head; the others keep theirs.
  ASSERT_EQ(r0.stage_layers.size(), 4u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(r1.stage_layers[i], r0.stage_layers[i]);
  EXPECT_EQ(r1.stage_layers[3], r0.stage_layers[3] + 1);
  EXPECT_GT(r1.step_time, r0.step_time);
  // Model FLOPs grow by one MoE layer (attention projections, 8 routed + 1 shared experts, router),
  // its causal attention core, the 2h x h projection and the output head, x 3 (forward + backward).
  const double h = m.hidden, fe = m.moe.ffn_hidden, seq = 4096, tokens = 64 * seq;
  const double dqk = m.mla.qk_nope_head_dim + m.mla.qk_rope_head_dim, dv = m.mla.v_head_dim;
  const double layer = count_params(m).attention / m.layers + (m.moe.top_k + m.moe.shared_experts) * 3.0 * h * fe + h * m.moe.experts;
  const double core = 2.0 * m.heads * (dqk + dv) * (seq + 1) / 2;
  const double want = 3.0 * tokens * (2.0 * (layer + 2.0 * h * h + static_cast<double>(m.vocab) * h) + core);
  EXPECT_NEAR(r1.model_flops_per_step - r0.model_flops_per_step, want, 1e-9 * want);
  // Out of range: refused.
  Layout bad = l;
  bad.mtp_layers = -1;
  EXPECT_FALSE(evaluate(m, s, bad, w, 64, false).feasible());
}

TEST(Mtp, WeightsGrowByTheModuleAndTheEmbeddingCopy) {
  // One stage, tp 1, ep 1: the weights grow by exactly one module's parameters (2 B each in bf16).
  const Model& m = builtin().model("deepseek-v3");
  const System& s = builtin().system("gb200-nvl72");
  const Workload w{4096, 1};
  Layout l;
  const TrainReport r0 = evaluate(m, s, l, w, 1, false);
  l.mtp_layers = 1;
  const TrainReport r1 = evaluate(m, s, l, w, 1, false);
  ASSERT_TRUE(r0.feasible() && r1.feasible());
  const double want = 2.0 * mtp_module_params(m);
  EXPECT_NEAR(r1.mem.weights - r0.mem.weights, want, 1e-6 * want);
  // Over two stages of a dense model the last stage also holds a copy of the embedding (the MTP
  // module looks up the next tokens there), so its weights grow by the module and V x h.
  const Model& d = builtin().model("llama3-8b");
  Model dm = d;
  dm.mtp_layers = 1;
  Layout p2;
  p2.pp = 2;
  p2.dp = 4;
  const Workload wd{8192, 4};  // one microbatch a replica: the last stage's logits make it the heavier
  const MemoryBreakdown a = estimate_memory(d, h100(), p2, wd);
  p2.mtp_layers = 1;
  const MemoryBreakdown b = estimate_memory(d, h100(), p2, wd);
  // Stage 1 (with the head) is the heavier one in both.
  ASSERT_EQ(a.stage, 1);
  ASSERT_EQ(b.stage, 1);
  const double module_and_copy = mtp_module_params(dm) + static_cast<double>(d.vocab) * d.hidden;
  EXPECT_NEAR(b.weights - a.weights, 2.0 * module_and_copy, 1e-6 * 2.0 * module_and_copy);
}

TEST(Mtp, DualPipeVPutsItWithTheHeadOnStageZero) {
  const Model& m = builtin().model("deepseek-v3");
  const System& s = builtin().system("dgx-h800");
  Workload w{4096, 128};
  Layout l;
  l.pp = 4;
  l.vp = 2;
  l.dp = 16;
  l.ep = 16;
  l.schedule = PipeSchedule::dualpipe_v;
  const TrainReport r0 = evaluate(m, s, l, w, 64, false);
  l.mtp_layers = 1;
  const TrainReport r1 = evaluate(m, s, l, w, 64, false);
  ASSERT_TRUE(r0.feasible() && r1.feasible()) << r0.reason << r1.reason;
  EXPECT_EQ(r1.stage_layers[0], r0.stage_layers[0] + 1);
  for (std::size_t i = 1; i < 4; ++i) EXPECT_EQ(r1.stage_layers[i], r0.stage_layers[i]);
}

TEST(Mtp, InterleavedHeadStageHoldsOneMicrobatchOfItAndEachLossKeepsItsSoftmax) {
  // The MTP layer sits in the head stage's last chunk, which the interleaved warm-up reaches last:
  // one microbatch of it is in flight at the peak, as with vp 1 on the last stage (layouts that
  // make stage 1 the heaviest in both).
  const Model& m = builtin().model("llama3-8b");
  const Workload w{4096, 64};
  auto acts = [&](int vp, const char* text) {
    Layout l;
    l.pp = 2;
    l.vp = vp;
    l.dp = 4;
    l.grad_fp32 = false;
    l.mtp_layers = std::strchr(text, 'm') ? 1 : 0;
    l.stage_layout = std::make_shared<PipelineLayout>(parse_pipeline_layout(text, "test"));
    const MemoryBreakdown mb = estimate_memory(m, h100(), l, w);
    EXPECT_EQ(mb.stage, 1) << text;
    return mb;
  };
  const double d1 = acts(1, "Et*8|t*24mL").activations - acts(1, "Et*8|t*24L").activations;
  const double d2 = acts(2, "Et*4|t*12|t*4|t*12mL").activations - acts(2, "Et*4|t*12|t*4|t*12L").activations;
  EXPECT_GT(d1, 0);
  EXPECT_NEAR(d2, d1, 1e-9 * d1);
  // Each MTP module's loss keeps its fp32 softmax (T x V x 4 B) until backward beside the model's.
  Layout one;
  one.dp = 8;
  one.grad_fp32 = false;
  const MemoryBreakdown a = estimate_memory(m, h100(), one, w);
  one.mtp_layers = 2;
  const MemoryBreakdown b = estimate_memory(m, h100(), one, w);
  const double want = 2 * 4096.0 * static_cast<double>(m.vocab) * 4.0;
  EXPECT_NEAR(b.transient - a.transient, want, 1e-9 * want);
}

}  // namespace
}  // namespace xpu
