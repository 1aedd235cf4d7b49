// Time to run one collective among a group of devices placed on the system's two network tiers.
//
// Ranks are numbered with tensor parallelism innermost (Megatron order tp, cp, ep, dp, pp, or
// tp, cp, ep, pp, dp with --use-tp-pp-dp-mapping), so a group is (size, stride): members r0,
// r0+stride, ... A group keeps k = min(size, D/stride) members inside one scale-up domain of D
// devices and spans size/k domains. A group may have two levels: blocks of `inner` members at
// `stride`, the blocks `outer_stride` apart (the data-parallel group of context-parallel pairs
// when data parallelism is outermost). Collectives are
// hierarchical: the scale-up part runs first (reduce-scatter), the scale-out part moves 1/k of
// the data over each device's share of the node's NICs, then the scale-up part finishes
// (all-gather). Each tier costs latency x steps + bytes / bus bandwidth, where bus bandwidth is
// the tier's per-device bandwidth times the calibrated bus fraction and a topology factor.
#pragma once

#include "spec/hardware.hpp"

namespace xpu {

enum class Collective { all_reduce, all_gather, reduce_scatter, all_to_all, send_recv };

struct Group {
  int size = 1;
  int stride = 1;
  int inner = 0;         // > 0 and < size: members per block at `stride`; blocks `outer_stride` apart
  int outer_stride = 0;
  // Some copy of the group sits across a domain boundary (ranks fill whole domains in order and the
  // group's span does not divide the domain: tp 3 on 8-GPU nodes, 16 of a 72-GPU NVL72 rack): the
  // slowest copy sets the pace, timed as split over two domains.
  bool straddle = false;
  // All-to-all of expert-parallel tokens, hierarchical (DeepEP's and HybridEP's internode dispatch:
  // a token crosses the scale-out network once per destination domain, to the device of its own
  // local rank there, and is forwarded inside that domain): the top-k copies each token sends.
  // 0 = a flat all-to-all (NCCL's), every copy its own message.
  int dedup_topk = 0;
  // With group-limited routing (MoeSpec::router_groups), a token's experts come from dedup_group_topk
  // of dedup_groups equal blocks of the experts, laid out in order over the group's ranks.
  int dedup_groups = 0, dedup_group_topk = 0;
  int dedup_experts = 0;  // the routed experts (top-k picks distinct ones); 0 = draws with replacement

  bool two_level() const { return inner > 0 && inner < size && outer_stride > 0; }
  // Devices from the first member to one past the last.
  double span() const;
};

// The chance that a given one of n scale-up domains holds at least one of a token's topk experts,
// the experts spread evenly over the domains in order: 1 - C(E - E/n, topk)/C(E, topk) for topk
// distinct of E experts (E = experts, where n divides it; else 1 - (1 - 1/n)^topk); with group-limited
// routing (groups equal blocks of experts, group_topk of them per token) the chosen groups bound
// it where groups and domains nest (one divides the other), else unrestricted routing's figure.
double domain_hit_share(int n, int topk, int experts, int groups, int group_topk);

// Members of `g` inside one scale-up domain.
int members_per_domain(const System& s, Group g);

// Fraction of a device's scale-up bandwidth a collective among k domain members of g can use:
// 1 on a switch; (k-1)/(D-1) of the links of a fully connected mesh; on a torus, the shares of the
// dimensions g's members span (by its stride: a contiguous group the first ones).
double scale_up_factor(const System& s, int k, Group g = Group{});

// The bandwidth share of the torus dimension a send between devices `stride` apart crosses (the
// lowest dimension the stride moves along); 1 off a torus.
double send_share(const System& s, int stride);

// Seconds for one collective. `bytes` is the full buffer: the all-reduce buffer, the all-gather
// output, the reduce-scatter input, the all-to-all send buffer of one device, the message of a
// send/recv.
double collective_time(const System& s, Collective kind, double bytes, Group g);

}  // namespace xpu
