// --pipeline-layout balanced: the Megatron-Core layout that balances a pipeline's ranks, and the
// evaluation that weighs its variants (evaluate.hpp). Kept apart from evaluate.cpp: with the
// builder beside it an evaluation measured about 10% slower (the compiler's inlining there is
// fragile).
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "perf/pipeline_sim.hpp"
#include "spec/pipeline_layout.hpp"
#include "train/evaluate.hpp"

namespace xpu {

namespace {

// Chunks of per[j] decoder layers (the embedding on the first, the MTP layers and the loss on the
// last) written out in Megatron-Core's syntax, and parsed as a hand-written layout would be.
PipelineLayout layout_of_chunks(const std::vector<int>& per, int mtp) {
  const int chunks = static_cast<int>(per.size());
  auto run = [](const char* sym, int count) -> std::string {
    if (count <= 0) return "";
    return count == 1 ? std::string(sym) : std::string(sym) + "*" + std::to_string(count);
  };
  std::vector<std::string> stage(static_cast<std::size_t>(chunks));
  for (int j = 0; j < chunks; ++j)
    stage[j] = (j == 0 ? "E" : "") + run("t", per[j]) + (j == chunks - 1 ? run("m", mtp) + "L" : "");
  // Runs of equal chunks between the first and the last as "(t*4|)*14", as the recipes write them.
  std::string text = stage[0];
  if (chunks > 1) text += "|";
  for (int j = 1; j < chunks - 1;) {
    int r = 1;
    while (j + r < chunks - 1 && stage[j + r] == stage[j]) ++r;
    text += r == 1 ? stage[j] + "|" : "(" + stage[j] + "|)*" + std::to_string(r);
    j += r;
  }
  if (chunks > 1) text += stage[chunks - 1];
  return parse_pipeline_layout(text, "--pipeline-layout balanced");
}

}  // namespace

PipelineLayout balanced_pipeline_layout(const Model& m, int pp, int vp, int mtp, long seq, double tail_weight, double moe_weight) {
  pp = std::max(1, pp);
  const int chunks = pp * std::max(1, vp), n = m.layers;
  const double h = static_cast<double>(m.hidden);
  std::vector<double> prefix(static_cast<std::size_t>(n) + 1, 0.0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + (m.is_moe_layer(i) ? moe_weight : 1.0) * layer_fwd_flops_per_token(m, i, seq);
  // The last chunk's loss: the output head, and the MTP modules (their layers, projections and
  // second head passes: what they add to the model's FLOPs), scaled by tail_weight. The embedding
  // lookup computes nothing.
  const double tail = tail_weight * (2.0 * static_cast<double>(m.vocab) * h +
                                     (m.is_moe_layer(n - 1) ? moe_weight : 1.0) * mtp_fwd_flops_per_token(m, mtp, seq));
  // 1. Contiguous chunks (possibly empty), the last with the tail, whose largest is least: the
  // bound by bisection, each bound checked by filling the chunks before the last greedily
  // (the fewest layers left for the last). O(layers x 100).
  std::vector<int> per(static_cast<std::size_t>(chunks), 0);
  auto fill = [&](double bound, bool keep) {
    int i = 0;
    for (int j = 0; j + 1 < chunks; ++j) {
      int k = i;
      while (k < n && prefix[k + 1] - prefix[i] <= bound) ++k;
      if (keep) per[j] = k - i;
      i = k;
    }
    if (keep) per[chunks - 1] = n - i;
    return prefix[n] - prefix[i] + tail <= bound;
  };
  double lo = tail, hi = prefix[n] + tail;
  for (int i = 0; i < n; ++i) lo = std::max(lo, prefix[i + 1] - prefix[i]);
  if (!fill(lo, false))
    for (int it = 0; it < 100 && hi - lo > 1e-12 * hi; ++it) {
      const double mid = 0.5 * (lo + hi);
      (fill(mid, false) ? hi : lo) = mid;
    }
  else
    hi = lo;
  fill(hi, true);
  // 2. What the step waits for is each pipeline rank's work, the sum of its vp chunks (chunk c on
  // rank c mod pp). A second start aims every rank at an equal share: each chunk a 1/(pp vp) share
  // of the whole, the last chunk's tail taken off its own layers and, beyond them, off its rank's
  // other chunks, the boundaries where the layers' running sum crosses the chunks' running targets.
  // Each start is then polished, boundaries moving one layer at a time while that lowers the
  // largest rank's sum, or keeps it and evens the ranks (least sum of squares; at vp = 1 this
  // evens the chunks under the least largest one), with bounded work (at most 2e7 moves tried);
  // the better end wins.
  std::vector<std::vector<int>> starts(2, std::vector<int>(static_cast<std::size_t>(chunks) + 1, 0));
  for (int j = 0; j < chunks; ++j) starts[0][j + 1] = starts[0][j] + per[j];
  {
    std::vector<double> target(static_cast<std::size_t>(chunks), (prefix[n] + tail) / chunks);
    double deficit = tail - target[chunks - 1];
    target[chunks - 1] = std::max(0.0, -deficit);
    std::vector<int> same;  // the last rank's other chunks
    for (int j = pp - 1; j < chunks - 1; j += pp) same.push_back(j);
    for (int j : same) {
      if (deficit <= 0) break;
      const double cut = std::min(target[j], deficit / static_cast<double>(same.size()));
      target[j] -= cut;
    }
    double sum = 0;
    for (double t : target) sum += t;
    double run = 0;
    for (int j = 0; j + 1 < chunks; ++j) {
      run += sum > 0 ? target[j] * prefix[n] / sum : 0.0;
      int k = starts[1][j];
      while (k < n && std::fabs(prefix[k + 1] - run) <= std::fabs(prefix[k] - run)) ++k;
      starts[1][j + 1] = k;
    }
    starts[1][chunks] = n;
  }
  auto polish = [&](std::vector<int>& start, double& worst, double& squares) {
    std::vector<double> rank(static_cast<std::size_t>(pp), 0.0);
    for (int j = 0; j < chunks; ++j) rank[j % pp] += prefix[start[j + 1]] - prefix[start[j]] + (j == chunks - 1 ? tail : 0.0);
    std::multiset<double> sums(rank.begin(), rank.end());
    squares = 0;
    for (double r : rank) squares += r * r;
    const double tol = 1e-12 * (prefix[n] + tail);
    long tries = 0;
    for (bool moved = pp > 1; moved && tries < 20000000L;) {
      moved = false;
      for (int j = 0; j + 1 < chunks; ++j)
        for (int dir : {-1, 1}) {  // -1: chunk j's last layer to chunk j + 1; +1: chunk j + 1's first to chunk j
          if (dir < 0 ? start[j + 1] == start[j] : start[j + 2] == start[j + 1]) continue;
          ++tries;
          const int a = j % pp, b = (j + 1) % pp;  // different ranks: pp > 1
          const double ra = rank[a], rb = rank[b], top = *sums.rbegin();
          start[j + 1] += dir;
          const int moved_layer = dir < 0 ? start[j + 1] : start[j + 1] - 1;
          const double cost = prefix[moved_layer + 1] - prefix[moved_layer];
          const double na = ra - dir * -cost, nb = rb + dir * -cost;  // dir -1: a gives `cost` to b
          sums.erase(sums.find(ra));
          sums.erase(sums.find(rb));
          sums.insert(na);
          sums.insert(nb);
          const double w2 = *sums.rbegin(), q2 = squares - ra * ra - rb * rb + na * na + nb * nb;
          if (w2 < top - tol || (w2 <= top + tol && q2 < squares * (1 - 1e-12))) {
            rank[a] = na, rank[b] = nb, squares = q2, moved = true;
          } else {
            start[j + 1] -= dir;
            sums.erase(sums.find(na));
            sums.erase(sums.find(nb));
            sums.insert(ra);
            sums.insert(rb);
          }
        }
    }
    worst = *sums.rbegin();
  };
  double w0 = 0, q0 = 0, w1 = 0, q1 = 0;
  polish(starts[0], w0, q0);
  polish(starts[1], w1, q1);
  const double tol = 1e-12 * (prefix[n] + tail);
  const std::vector<int>& start = w1 < w0 - tol || (w1 <= w0 + tol && q1 < q0 * (1 - 1e-12)) ? starts[1] : starts[0];
  for (int j = 0; j < chunks; ++j) per[j] = start[j + 1] - start[j];
  PipelineLayout out = layout_of_chunks(per, mtp);
  out.balanced = true;
  return out;
}

namespace {

bool same_chunks(const PipelineLayout& a, const PipelineLayout& b) {
  if (a.chunks.size() != b.chunks.size()) return false;
  for (std::size_t i = 0; i < a.chunks.size(); ++i)
    if (a.chunks[i].layers != b.chunks[i].layers || a.chunks[i].mtp != b.chunks[i].mtp) return false;
  return true;
}

}  // namespace

namespace {

// The layouts' cache key: the model's shape and the layout's pp, vp, MTP layers and sequence.
std::string layouts_key(const Model& m, int pp, int vp, int mtp, long seq) {
  std::string key = m.id;
  for (long v : {static_cast<long>(m.layers), static_cast<long>(m.hidden), static_cast<long>(m.vocab), static_cast<long>(m.ffn_hidden),
                 static_cast<long>(m.heads), static_cast<long>(m.kv_heads), static_cast<long>(m.moe.experts), static_cast<long>(m.moe.top_k),
                 static_cast<long>(m.moe.ffn_hidden), static_cast<long>(m.moe.dense_layers), static_cast<long>(m.sliding_window)})
    key += "|" + std::to_string(v);
  return key + "|" + std::to_string(pp) + "|" + std::to_string(vp) + "|" + std::to_string(mtp) + "|" + std::to_string(seq);
}

// Megatron-Core's even split written out (--pipeline-layout balanced's last candidate), kept per
// thread as the balanced layouts are: the chooser weighs it for every plan it considers.
std::shared_ptr<const PipelineLayout> even_split_layout(const Model& m, int pp, int vp, int mtp) {
  thread_local std::map<std::string, std::shared_ptr<const PipelineLayout>> cache;
  const std::string key = layouts_key(m, pp, vp, mtp, 0);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  if (cache.size() > 1024) cache.clear();
  const int chunks = std::max(1, pp) * std::max(1, vp);
  std::vector<int> per(static_cast<std::size_t>(chunks));
  if (vp > 1) {
    for (int k = 0; k < chunks; ++k) per[static_cast<std::size_t>(k)] = even_chunk_layers(m.layers, chunks, k);
  } else {
    per = split_layers(m.layers, std::max(1, pp));
  }
  auto even = std::make_shared<PipelineLayout>(layout_of_chunks(per, mtp));
  even->even_split = true;
  return cache[key] = std::move(even);
}

}  // namespace

std::vector<std::shared_ptr<const PipelineLayout>> balanced_layouts(const Model& m, int pp, int vp, int mtp, long seq) {
  // Kept per thread: the chooser and the search weigh the layouts of many plans of one shape.
  thread_local std::map<std::string, std::vector<std::shared_ptr<const PipelineLayout>>> cache;
  const std::string key = layouts_key(m, pp, vp, mtp, seq);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  if (cache.size() > 1024) cache.clear();
  // Forward FLOPs leave out what a layer costs beyond them (communication, a MoE layer's dispatch
  // and fixed costs), so the head and MTP modules are weighted 1, 3/4, 1/2, 1/4 and 0 of their
  // FLOPs and, for a MoE model, its MoE layers 1 or 1.5x theirs; a weighting that places the
  // layers as an earlier one did adds nothing.
  std::vector<std::shared_ptr<const PipelineLayout>> out;
  for (double moe_weight : {1.0, 1.5}) {
    if (moe_weight != 1.0 && !m.is_moe()) break;
    for (double weight : {1.0, 0.75, 0.5, 0.25, 0.0}) {
      auto p = std::make_shared<PipelineLayout>(balanced_pipeline_layout(m, pp, vp, mtp, seq, weight, moe_weight));
      p->tail_weight = weight;
      p->moe_weight = moe_weight;
      if (std::none_of(out.begin(), out.end(), [&](const auto& q) { return same_chunks(*q, *p); })) out.push_back(std::move(p));
    }
  }
  return cache[key] = std::move(out);
}

std::vector<double> layout_chunk_shares(const Model& m, const Layout& l, const ChunkCosts& c) {
  const auto& chunks = l.stage_layout->chunks;
  const std::size_t p = static_cast<std::size_t>(std::max(1, l.pp));
  std::vector<double> work(chunks.size(), 0.0), stage(p, 0.0);
  auto layer = [&](int i) {
    const bool moe = m.is_moe_layer(i), local = m.is_window_layer(i);
    return moe ? (local ? c.moe_local : c.moe) : (local ? c.dense_local : c.dense);
  };
  int at = 0;
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    for (int j = 0; j < chunks[k].layers && at < m.layers; ++j, ++at) work[k] += layer(at);
    // An MTP module: a layer like the model's last and its own pieces; its loss goes with the head's.
    work[k] += chunks[k].mtp * (layer(m.layers - 1) + c.mtp);
    if (chunks[k].embedding) work[k] += c.lookup;
    if (chunks[k].loss) work[k] += (1.0 + std::max(0, l.mtp_layers)) * c.head;
    stage[k % p] += work[k];
  }
  const double per_stage = static_cast<double>(chunks.size()) / static_cast<double>(p);
  for (std::size_t k = 0; k < chunks.size(); ++k) work[k] = stage[k % p] > 0 ? work[k] / stage[k % p] : 1.0 / per_stage;
  return work;
}

std::vector<double> even_chunk_shares(const Model& m, const Layout& l, const ChunkCosts& c) {
  auto p = std::make_shared<PipelineLayout>();
  const int chunks = l.pp * l.vp;
  p->chunks.resize(static_cast<std::size_t>(chunks));
  for (int k = 0; k < chunks; ++k) p->chunks[static_cast<std::size_t>(k)].layers = even_chunk_layers(m.layers, chunks, k);
  p->chunks.front().embedding = true;
  p->chunks.back().loss = true;
  p->chunks.back().mtp = std::max(0, l.mtp_layers);  // with the head, on its stage
  Layout even = l;
  even.stage_layout = std::move(p);
  return layout_chunk_shares(m, even, c);
}

bool places_as_even_split(const Model& m, const Layout& l) {
  if (!l.stage_layout) return true;
  // Chunk by chunk, the even split's decoder layers (interleaved: even_chunk_layers; else
  // split_layers' stages); both put the MTP layers on the last chunk, with the head.
  const auto& chunks = l.stage_layout->chunks;
  const int n = l.pp * l.vp;
  if (static_cast<int>(chunks.size()) != n) return false;
  const std::vector<int> stages = l.vp > 1 ? std::vector<int>() : split_layers(m.layers, l.pp);
  for (int k = 0; k < n; ++k) {
    const int even = l.vp > 1 ? even_chunk_layers(m.layers, n, k) : stages[static_cast<std::size_t>(k)];
    if (chunks[static_cast<std::size_t>(k)].layers != even) return false;
    if (chunks[static_cast<std::size_t>(k)].mtp != (k == n - 1 ? std::max(0, l.mtp_layers) : 0)) return false;
  }
  return true;
}

double layout_pipeline_time(const Layout& l, long microbatches, const std::vector<double>& fwd, const std::vector<double>& bwd,
                            const std::vector<double>& share) {
  PipelineInput in;
  in.pp = l.pp;
  in.vp = l.vp;
  in.microbatches = microbatches;
  set_interleaved_chunks(in, fwd, bwd, share);
  return simulate_pipeline(in, /*record_events=*/false).makespan;
}

TrainReport evaluate_balanced(const Model& m, const System& s, const Layout& l, const Workload& w, int devices,
                                                bool enforce_memory, bool detail) {
  // --pipeline-layout balanced: every distinct balanced layout (balanced_layouts) evaluated, the
  // fastest kept (a fitting one over one that does not; the first of equals).
  // Megatron-Core's even split, written out, is weighed last: at a deep vp the balancer can leave
  // chunks empty where the even split keeps the interleaving full, and the even split then wins.
  TrainReport best;
  bool have = false;
  std::vector<std::shared_ptr<const PipelineLayout>> layouts = balanced_layouts(m, l.pp, l.vp, std::max(0, l.mtp_layers), w.seq_len);
  layouts.push_back(even_split_layout(m, l.pp, l.vp, std::max(0, l.mtp_layers)));
  for (const auto& layout : layouts) {
    Layout lw = l;
    lw.stage_layout = layout;
    TrainReport r = evaluate(m, s, lw, w, devices, enforce_memory, detail);  // built layouts are not pending
    const bool better = !have || (r.feasible() && (!best.feasible() || tie_grid(r.step_time) < tie_grid(best.step_time)));
    if (better) best = std::move(r), have = true;
  }
  return best;
}

}  // namespace xpu
