#include "serve/search.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "spec/error.hpp"

namespace xpu {

const char* serve_objective_name(ServeObjective o) {
  return o == ServeObjective::throughput ? "throughput" : "cost";
}

namespace {

Quant default_weights(const System& s) { return s.peak(Precision::bf16) ? Quant::bf16 : Quant::fp16; }

// KV cache format when not given: fp8 next to fp8/fp4 weights (as TensorRT-LLM and MLPerf
// submissions run), otherwise the 16-bit format of the activations.
Quant default_kv(const System& s, Quant w) {
  if (w == Quant::fp8 || w == Quant::fp4) return Quant::fp8;
  if (w == Quant::fp16) return Quant::fp16;
  return default_weights(s);
}

bool open_loop(WorkloadKind k) {
  return k == WorkloadKind::offline || k == WorkloadKind::poisson || k == WorkloadKind::trace;
}

// The highest throughput per device among the fitting candidates of each goodput share: at an
// offered rate, throughput within 1% of it is a tie (see better).
using BestTps = std::map<double, double>;
BestTps best_tps(const std::vector<ServeReport>& all) {
  BestTps best;
  for (const auto& r : all)
    if (r.feasible) best[r.goodput_fraction] = std::max(best[r.goodput_fraction], r.output_tps_per_device);
  return best;
}

// Strict weak order: within the SLOs first (at an offered rate: the share within them, then
// throughput within 1% of the best of that share ranked by p99 TTFT, ahead of the rest by
// throughput), then the objective, then lower mean TTFT, smaller tp; among layouts that do not
// fit, the fewest weight bytes per device (the closest to fitting).
bool better(const ServeReport& a, const ServeReport& b, ServeObjective obj, const BestTps& best) {
  if (a.feasible != b.feasible) return a.feasible;
  if (!a.feasible) return a.weight_bytes_per_device < b.weight_bytes_per_device;
  if (a.slo_met != b.slo_met) return a.slo_met;
  if (!a.slo_met && a.goodput_fraction != b.goodput_fraction) return a.goodput_fraction > b.goodput_fraction;
  // At an offered rate (Poisson arrivals, a trace) every layout that keeps up delivers the same
  // load, and throughput then differs only by when the last request ends: the share served within
  // the SLOs and the tail latency decide among the layouts within 1% of the best throughput of
  // that share. (Fixed 1% bins put two layouts 0.8% apart on either side of an edge.)
  if (a.work.kind == WorkloadKind::poisson || a.work.kind == WorkloadKind::trace) {
    if (a.goodput_fraction != b.goodput_fraction) return a.goodput_fraction > b.goodput_fraction;
    const auto it = best.find(a.goodput_fraction);
    const double top = it != best.end() ? it->second : 0;
    const bool na = a.output_tps_per_device >= 0.99 * top, nb = b.output_tps_per_device >= 0.99 * top;
    if (na != nb) return na;
    if (na && a.ttft.p99 != b.ttft.p99) return a.ttft.p99 < b.ttft.p99;
  }
  if (obj == ServeObjective::cost && a.cost.priced && b.cost.priced &&
      a.cost.usd_per_m_output_all_in != b.cost.usd_per_m_output_all_in)
    return a.cost.usd_per_m_output_all_in < b.cost.usd_per_m_output_all_in;
  if (a.output_tps_per_device != b.output_tps_per_device) return a.output_tps_per_device > b.output_tps_per_device;
  if (a.ttft.mean != b.ttft.mean) return a.ttft.mean < b.ttft.mean;
  return a.layout.tp < b.layout.tp;
}

// Expert-parallel degrees to try inside a tensor-parallel group of tp: the one given, else (when
// varied) for a mixture-of-experts model every divisor of tp that also divides the experts (1:
// experts split by tensor parallelism), else 1.
std::vector<int> ep_choices(const Model& m, const ServeRequest& q, int tp, bool vary) {
  if (q.ep) return {*q.ep};
  std::vector<int> out;
  if (vary && m.is_moe())
    for (int d = 1; d <= tp; ++d)
      if (tp % d == 0 && m.moe.experts % d == 0) out.push_back(d);
  if (out.empty()) out.push_back(1);
  return out;
}

bool same_deployment(const ServeReport& a, const ServeReport& b) {
  return a.layout.tp == b.layout.tp && a.layout.pp == b.layout.pp && a.layout.ep == b.layout.ep &&
         a.layout.replicas == b.layout.replicas && (a.options.prefill_replicas == b.options.prefill_replicas || !a.feasible);
}

// The kind of failure: a reason up to its first colon ("out of memory"; the figures after it
// vary with the batch cap's workspace).
std::string failure_kind(const std::string& reason) { return reason.substr(0, reason.find(':')); }

bool same_outcome(const ServeReport& a, const ServeReport& b) {
  if (!a.feasible || !b.feasible) return a.feasible == b.feasible && failure_kind(a.reason) == failure_kind(b.reason);
  return a.output_tps_per_device == b.output_tps_per_device && a.ttft.p99 == b.ttft.p99 && a.tpot.p99 == b.tpot.p99 &&
         a.ttft.mean == b.ttft.mean && a.tpot.mean == b.tpot.mean && a.goodput_fraction == b.goodput_fraction &&
         a.slo_met == b.slo_met;
}

}  // namespace

int peak_requests(int floor, int waves, int replicas, int max_batch, long kv_units, long prompt_units) {
  const long at_once = std::max(1L, std::min<long>(max_batch, kv_units / std::max(1L, prompt_units)));
  const long n = static_cast<long>(waves) * std::max(1, replicas) * at_once;
  return static_cast<int>(std::max<long>(floor, std::min<long>(n, kPeakMaxRequests)));
}

ServeSearchResult serve_search(const Model& m, const System& s, const ServeRequest& q, const ServeSearchOptions& o) {
  const int N = q.devices;
  if (N < 1) throw InputError("--devices", "must be at least 1");
  if (o.objective == ServeObjective::cost && !s.price("on-demand"))
    throw InputError("--objective", "cost needs a price: system '" + s.id + "' has no on-demand price in data/prices/ (give --price " +
                                        s.id + "=USD)");
  const int pp = q.pp.value_or(1);
  if (N % pp != 0) throw InputError("--pp", std::to_string(pp) + " does not divide devices " + std::to_string(N));
  if (q.tp && (N / pp) % *q.tp != 0)
    throw InputError("--tp", std::to_string(*q.tp) + " does not divide devices / pp = " + std::to_string(N / pp));
  // The tp given, or implied by --replicas, must divide the heads unless the engine pads them.
  const int fixed_tp = q.tp ? *q.tp : q.replicas && (N / pp) % *q.replicas == 0 ? (N / pp) / *q.replicas : 0;
  if (fixed_tp > 0 && !s.serving.pad_heads && m.heads % fixed_tp != 0)
    throw InputError(q.tp ? "--tp" : "--replicas",
                     (q.tp ? std::string() : std::to_string(*q.replicas) + " replicas make tp ") + std::to_string(fixed_tp) +
                         (q.tp ? " does not divide" : ", which does not divide") + " the attention heads (" + std::to_string(m.heads) +
                         "): the engine " + s.serving.where() +
                         " describes shards whole heads (vLLM, TensorRT-LLM and SGLang require it; an engine that pads heads, "
                         "as Neuron's do, says engine.pad_heads = true)");
  if (q.tp && q.replicas && *q.tp * pp * *q.replicas != N)
    throw InputError("--replicas", "tp x pp x replicas = " + std::to_string(*q.tp * pp * *q.replicas) + " but devices = " +
                                       std::to_string(N));
  if (q.replicas && (N / pp) % *q.replicas != 0)
    throw InputError("--replicas", std::to_string(*q.replicas) + " does not divide devices / pp = " + std::to_string(N / pp));
  if (q.prefill_replicas > 0) {
    if (!open_loop(q.work.kind))
      throw InputError("--prefill-replicas", "disaggregated serving needs an open-loop workload (--offline, --rate or --trace)");
  }
  if (q.ep && m.is_moe() && m.moe.experts % *q.ep != 0)
    throw InputError("--ep", std::to_string(*q.ep) + " does not divide " + std::to_string(m.moe.experts) + " experts");
  if (q.ep && !m.is_moe() && *q.ep > 1) throw InputError("--ep", "the model has no experts");

  // Pipeline stages: the one given; else 1, and when varied and no layout of fewer stages fits,
  // 2, 4, ... (dividing the devices, at most one stage per layer), stopping at the first count
  // with a layout that fits: a model that one scale-up domain cannot hold. (With its pp
  // micro-batch lanes a pipeline serves about as the same devices would as replicas, so stages
  // are added for memory only.)
  std::vector<int> pps{pp};
  if (!q.pp && o.vary_pp)
    for (int p = 2; p <= N && p <= m.layers; p *= 2)
      if (N % p == 0) pps.push_back(p);
  // Tensor-parallel degrees for pp stages: the one given (or implied by --replicas), else every
  // divisor of the devices per stage that divides the heads, within the scale-up domain.
  auto tp_choices = [&](int pp) {
    std::vector<int> tps;
    const int per = N / pp;
    if (q.tp) {
      if (per % *q.tp == 0) tps.push_back(*q.tp);
    } else if (q.replicas) {
      if (per % *q.replicas == 0) tps.push_back(per / *q.replicas);
    } else {
      for (int d = 1; d <= per; ++d)
        if (per % d == 0 && m.heads % d == 0 && d <= std::max(1, s.scale_up.size)) tps.push_back(d);
      if (tps.empty()) tps.push_back(per);
    }
    return tps;
  };
  const Quant w = q.weights.value_or(default_weights(s));
  const Quant kv = q.kv.value_or(default_kv(s, w));
  const int def_batch = s.serving.max_batch;
  std::vector<int> batches;
  if (q.max_batch) batches.push_back(*q.max_batch);
  else if (o.vary_batch) {
    for (int b = 8; b < def_batch; b *= 2) batches.push_back(b);
    batches.push_back(def_batch);
  } else {
    batches.push_back(def_batch);
  }
  // A static decode graph of C slots decodes at most C sequences: the batch cap is at most C.
  if (q.compiled_batch) {
    if (q.max_batch && *q.max_batch > *q.compiled_batch)
      throw InputError("--max-batch", std::to_string(*q.max_batch) + " exceeds --compiled-batch " + std::to_string(*q.compiled_batch) +
                                          ": a static decode graph of that many slots decodes no more sequences");
    for (int& b : batches) b = std::min(b, *q.compiled_batch);
    std::sort(batches.begin(), batches.end());
    batches.erase(std::unique(batches.begin(), batches.end()), batches.end());
  }
  const int budget = q.token_budget.value_or(s.serving.token_budget);

  ServeSearchResult res;
  if (q.work.kind == WorkloadKind::offline) res.peak_waves = o.peak_waves;
  std::vector<ServeReport> all;
  // Every batch cap and prefill/decode split of one layout.
  auto try_layout = [&](int pp, int tp, int ep) {
    ServeLayout l;
    l.tp = tp;
    l.pp = pp;
    l.ep = ep;
    if (l.ep > 1 && tp % l.ep != 0) {
      if (q.tp) throw InputError("--ep", std::to_string(l.ep) + " must divide tp " + std::to_string(tp));
      return;
    }
    l.replicas = N / (tp * pp);
    l.weights = w;
    l.kv = kv;
    std::vector<int> splits;
    if (q.prefill_replicas) {
      // With tp (or pp) chosen, a layout of too few replicas is no candidate; with both given, the
      // split is wrong.
      if (*q.prefill_replicas >= l.replicas) {
        if ((!q.tp && !q.replicas) || (!q.pp && pp > 1)) return;
        throw InputError("--prefill-replicas", std::to_string(*q.prefill_replicas) + " must leave at least one of the " +
                                                   std::to_string(l.replicas) + " replicas for decode");
      }
      splits.push_back(*q.prefill_replicas);
    } else {
      splits.push_back(0);
      if (o.vary_disagg && open_loop(q.work.kind) && l.replicas >= 2) {
        const int R = l.replicas, step = std::max(1, (R - 1) / 7);
        for (int p = 1; p < R; p += step) splits.push_back(p);
      }
    }
    // Offline peak estimates: one request count for every batch cap and split of this layout, enough
    // that its most concurrent candidate (all replicas decoding, the largest cap) fills its batch
    // many times over; at a count of its own, a cap that never binds won only by amortising the
    // start-up and drain over more requests.
    int peak_count = 0;
    if (o.peak_waves > 0 && q.work.kind == WorkloadKind::offline) {
      const int top = *std::max_element(batches.begin(), batches.end());
      const StepModel sm(m, s, l, std::max(budget, 1), top, q.spec);
      peak_count = peak_requests(q.work.requests, o.peak_waves, l.replicas, top, sm.fits() ? sm.kv_units() : 0,
                                 sm.seq_units(q.work.input_len, q.work.input_len, std::max(1, q.work.samples)));
    }
    for (int b : batches)
      for (int p : splits) {
        SimOptions so;
        so.max_batch = b;
        so.token_budget = std::max(budget, 1);
        so.prefill_replicas = p;
        so.compiled_batch = q.compiled_batch.value_or(0);
        so.prefill_pad = q.prefill_pad.value_or(0);
        so.reserve_output = q.reserve_output.value_or(s.serving.reserve_output);
        so.prefill_first = q.prefill_first.value_or(s.serving.prefill_first);
        so.prefill_kv_free = q.prefill_kv_free.value_or(0.0);
        so.spec = q.spec;
        ServeReport r;
        if (peak_count > 0) {
          ServeRequest qp = q;
          qp.work.requests = peak_count;
          r = evaluate_serve(m, s, qp, l, so);
        } else {
          r = evaluate_serve(m, s, q, l, so);
        }
        ++res.considered;
        if (r.feasible) ++res.feasible;
        if (r.feasible && r.slo_met) ++res.within_slo;
        all.push_back(std::move(r));
      }
  };
  for (int pp : pps) {
    if (pp != pps.front() && res.feasible > 0) break;
    for (int tp : tp_choices(pp))
      for (int ep : ep_choices(m, q, tp, o.vary_ep)) try_layout(pp, tp, ep);
  }
  const BestTps best = best_tps(all);
  std::stable_sort(all.begin(), all.end(),
                   [&](const ServeReport& a, const ServeReport& b) { return better(a, b, o.objective, best); });
  // The list skips a candidate that repeats one ranked above it: the same deployment with a batch
  // cap that never bound (the same simulated figures), or the same layout failing for the same
  // reason whatever its batch cap or prefill/decode split.
  for (auto& r : all) {
    if (res.top.size() >= static_cast<std::size_t>(std::max(1, o.top))) break;
    const bool repeat = std::any_of(res.top.begin(), res.top.end(), [&](const ServeReport& k) {
      return same_deployment(k, r) && same_outcome(k, r);
    });
    if (!repeat) res.top.push_back(std::move(r));
  }
  if (res.top.empty() && q.prefill_replicas > 0)
    throw InputError("--prefill-replicas", std::to_string(*q.prefill_replicas) + " prefill replicas leave no decode replica in any layout of " +
                                               count_text(N, "device", "devices"));
  if (res.top.empty()) {
    ServeReport r;
    r.work = q.work;
    r.workload_detail = workload_summary(q.work);
    r.reason = "no tensor-parallel degree divides both the devices and the attention heads";
    res.top.push_back(r);
  }
  return res;
}

}  // namespace xpu
