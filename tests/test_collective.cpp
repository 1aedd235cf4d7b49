// Collective costs on the built-in systems (src/perf/collective.hpp).
#include <gtest/gtest.h>

#include <cmath>

#include "perf/collective.hpp"
#include "test_common.hpp"

namespace xpu {
namespace {

using test::builtin;

const System& h100() { return builtin().system("dgx-h100"); }

TEST(Collective, GroupOfOneCostsNothing) {
  // One member has nobody to talk to: 0 s for any collective and any size.
  for (Collective k : {Collective::all_reduce, Collective::all_gather, Collective::reduce_scatter,
                       Collective::all_to_all, Collective::send_recv})
    EXPECT_EQ(collective_time(h100(), k, 1e9, Group{1, 1}), 0.0);
}

TEST(Collective, ZeroBytesCostNothing) {
  // Nothing to move: 0 s, even with 8 members (no latency charged).
  EXPECT_EQ(collective_time(h100(), Collective::all_reduce, 0.0, Group{8, 1}), 0.0);
}

TEST(Collective, OversubscribedFabricSlowsOnlyGroupsBeyondAnIsland) {
  // dgx-h100 with a 2:1 taper above islands of 256 GPUs: a data-parallel all-reduce over 1,024
  // GPUs pays it on its scale-out part; one over 128 GPUs (inside an island) does not.
  System tapered = h100();
  tapered.scale_out.oversubscription = 2.0;
  tapered.scale_out.island = 256;
  const double bytes = 4e9;
  const Group wide{1024, 1}, narrow{128, 1};
  EXPECT_GT(collective_time(tapered, Collective::all_reduce, bytes, wide),
            1.2 * collective_time(h100(), Collective::all_reduce, bytes, wide));
  EXPECT_DOUBLE_EQ(collective_time(tapered, Collective::all_reduce, bytes, narrow),
                   collective_time(h100(), Collective::all_reduce, bytes, narrow));
}

TEST(Collective, AllReduceInsideOneNode) {
  // Ring all-reduce over k = 8 GPUs of one NVSwitch domain:
  // 2 (k-1)/k x bytes / (bw x bus) + 2 (k-1) x latency, from the system's fields.
  const System& s = h100();
  const double bytes = 1e9, k = 8;
  const double bw = s.scale_up.bandwidth.v * s.calib.scale_up_bus;
  const double expected = 2 * (k - 1) / k * bytes / bw + 2 * (k - 1) * s.scale_up.latency.v;
  EXPECT_NEAR(collective_time(s, Collective::all_reduce, bytes, Group{8, 1}), expected, 1e-12 * expected);
  // Sanity of the inputs: 450 GB/s link, a bus fraction in (0, 1].
  EXPECT_DOUBLE_EQ(s.scale_up.bandwidth.v, 450e9);
  EXPECT_GT(s.calib.scale_up_bus, 0);
  EXPECT_LE(s.calib.scale_up_bus, 1);
}

TEST(Collective, AllGatherIsHalfAnAllReduce) {
  // All-gather and reduce-scatter are one pass: (k-1)/k x bytes / bw + (k-1) x latency, half of the all-reduce
  // bandwidth term (and of its latency term).
  const System& s = h100();
  const double bytes = 256e6, k = 4;
  const double bw = s.scale_up.bandwidth.v * s.calib.scale_up_bus;
  const double lat = s.scale_up.latency.v;
  const double ag = collective_time(s, Collective::all_gather, bytes, Group{4, 1});
  const double ar = collective_time(s, Collective::all_reduce, bytes, Group{4, 1});
  EXPECT_NEAR(ag - (k - 1) * lat, (k - 1) / k * bytes / bw, 1e-12);
  EXPECT_NEAR(ag - (k - 1) * lat, 0.5 * (ar - 2 * (k - 1) * lat), 1e-12);
  EXPECT_DOUBLE_EQ(collective_time(s, Collective::reduce_scatter, bytes, Group{4, 1}), ag);
}

TEST(Collective, SpanningNodesIsSlower) {
  // Two GPUs in one node (stride 1) vs two in different nodes (stride 8): the second crosses 50 GB/s NICs
  // instead of 450 GB/s NVLink, for the same 1 GB.
  const System& s = h100();
  const double inside = collective_time(s, Collective::all_reduce, 1e9, Group{2, 1});
  const double across = collective_time(s, Collective::all_reduce, 1e9, Group{2, 8});
  EXPECT_GT(across, inside);
  // And 16 GPUs (two nodes) cost more than 8 (one node).
  EXPECT_GT(collective_time(s, Collective::all_reduce, 1e9, Group{16, 1}),
            collective_time(s, Collective::all_reduce, 1e9, Group{8, 1}));
}

TEST(Collective, HierarchicalAllReduceOverTwoNodes) {
  // 16 GPUs, stride 1: k = 8 per node, n = 2 nodes. Scale-up part 2 x [(7/8) B / bw_up + 7 lat_up];
  // scale-out part moves B/8 per GPU: 2 x [(1/2) (B/8) / bw_out] + 2 x steps(2) x lat_out with steps(2) = 1.
  const System& s = h100();
  const double B = 1e9;
  const double bw_up = s.scale_up.bandwidth.v * s.calib.scale_up_bus;
  const double bw_out = s.scale_out.bandwidth.v * s.calib.scale_out_bus;
  const double expected = 2 * (7.0 / 8 * B / bw_up + 7 * s.scale_up.latency.v) + 2 * (0.5 * (B / 8) / bw_out) +
                          2 * 1 * s.scale_out.latency.v;
  EXPECT_NEAR(collective_time(s, Collective::all_reduce, B, Group{16, 1}), expected, 1e-12 * expected);
}

TEST(Collective, CrossNodeOnlyAllReduce) {
  // 2 GPUs with stride 8: k = 1 per node, n = 2: 2 x (1/2) x B / bw_out + 2 x 1 x lat_out.
  const System& s = h100();
  const double B = 1e8;
  const double bw_out = s.scale_out.bandwidth.v * s.calib.scale_out_bus;
  const double expected = 2 * 0.5 * B / bw_out + 2 * s.scale_out.latency.v;
  EXPECT_NEAR(collective_time(s, Collective::all_reduce, B, Group{2, 8}), expected, 1e-12 * expected);
}

TEST(Collective, SendRecvInsideNode) {
  // One message over NVLink: latency + bytes / (bw x bus).
  const System& s = h100();
  const double B = 64e6;
  const double expected = s.scale_up.latency.v + B / (s.scale_up.bandwidth.v * s.calib.scale_up_bus);
  EXPECT_NEAR(collective_time(s, Collective::send_recv, B, Group{2, 1}), expected, 1e-12 * expected);
  // Across nodes it is slower (NIC instead of NVLink).
  EXPECT_GT(collective_time(s, Collective::send_recv, B, Group{2, 8}), expected);
}

TEST(Collective, GrowsWithBytes) {
  // Twice the bytes, same group: strictly more time, at most twice (latency is fixed).
  const System& s = h100();
  for (Collective k : {Collective::all_reduce, Collective::all_gather, Collective::all_to_all}) {
    const double a = collective_time(s, k, 1e8, Group{16, 1});
    const double b = collective_time(s, k, 2e8, Group{16, 1});
    EXPECT_GT(b, a);
    EXPECT_LE(b, 2 * a);
  }
}

TEST(Collective, MembersPerDomain) {
  // Domains of 8: stride 1 size 16 -> min(16, 8/1) = 8; stride 2 size 8 -> 8/2 = 4; stride 8 -> 1; size 4 stride 1 -> 4.
  const System& s = h100();
  EXPECT_EQ(members_per_domain(s, Group{16, 1}), 8);
  EXPECT_EQ(members_per_domain(s, Group{8, 2}), 4);
  EXPECT_EQ(members_per_domain(s, Group{16, 8}), 1);
  EXPECT_EQ(members_per_domain(s, Group{4, 1}), 4);
}

TEST(Collective, TwoLevelGroupMembersPerDomain) {
  // Pairs (stride 4) whose blocks sit 64 apart on 72-device domains: one pair per domain; 16 apart
  // on 8-device domains: one pair, and a pair straddling domains leaves one member per domain.
  const System& nvl = builtin().system("gb200-nvl72");
  EXPECT_EQ(members_per_domain(nvl, Group{160, 4, 2, 64}), 2);
  EXPECT_EQ(members_per_domain(nvl, Group{160, 4}), 18);  // the same size as one flat group
  EXPECT_EQ(members_per_domain(nvl, Group{40, 4, 2, 8}), 18);  // blocks 8 apart: 9 blocks share a domain
  EXPECT_EQ(members_per_domain(h100(), Group{8, 8, 2, 16}), 1);
  EXPECT_DOUBLE_EQ(Group({160, 4, 2, 64}).span(), 80.0 * 64);
  // Fewer members per domain put more bytes on the scale-out tier: slower.
  EXPECT_GT(collective_time(nvl, Collective::reduce_scatter, 1e10, Group{160, 4, 2, 64}),
            3 * collective_time(nvl, Collective::reduce_scatter, 1e10, Group{160, 4}));
}

TEST(Collective, ScaleUpFactorSwitch) {
  // A switch gives every member its full bandwidth.
  EXPECT_EQ(scale_up_factor(h100(), 2), 1.0);
  EXPECT_EQ(scale_up_factor(h100(), 8), 1.0);
}

TEST(Collective, ScaleUpFactorMesh) {
  // mi300x-x8: full mesh of D = 8; a 2-member group uses (2-1)/(8-1) = 1/7 of the links, all 8 use 7/7.
  const System& s = builtin().system("mi300x-x8");
  ASSERT_EQ(s.scale_up.topology, Topology::mesh);
  ASSERT_EQ(s.scale_up.size, 8);
  EXPECT_LT(scale_up_factor(s, 2), 1.0);
  EXPECT_DOUBLE_EQ(scale_up_factor(s, 2), 1.0 / 7);
  EXPECT_DOUBLE_EQ(scale_up_factor(s, 8), 1.0);
  // So a 2-GPU all-gather is slower on the mesh than on a switch with the same link figures would be.
  System as_switch = s;
  as_switch.scale_up.topology = Topology::switched;
  EXPECT_GT(collective_time(s, Collective::all_gather, 1e9, Group{2, 1}),
            collective_time(as_switch, Collective::all_gather, 1e9, Group{2, 1}));
}

TEST(Collective, ScaleUpFactorTorus) {
  // tpu-v6e: a 16 x 16 torus. 16 chips fill one dimension: 1 of 2 dimensions -> 0.5; 256 chips span both -> 1.
  const System& s = builtin().system("tpu-v6e");
  ASSERT_EQ(s.scale_up.topology, Topology::torus);
  ASSERT_EQ(s.scale_up.torus_dims, (std::vector<int>{16, 16}));
  EXPECT_DOUBLE_EQ(scale_up_factor(s, 16), 0.5);
  EXPECT_DOUBLE_EQ(scale_up_factor(s, 256), 1.0);
  // 17 chips no longer fit in one dimension: both dimensions -> 1.
  EXPECT_DOUBLE_EQ(scale_up_factor(s, 17), 1.0);
}

TEST(Collective, TorusDimensionsOfUnequalBandwidth) {
  // Trn2 UltraServer: 4 x 4 in-instance dimensions (1,024 GB/s per chip) and a 4-chip ring across
  // instances (256 GB/s): shares 0.4, 0.4, 0.2. Tensor parallelism inside one instance drives the
  // in-instance links, as on a lone trn2.48xlarge (equal shares had given it 2/3 of 640 GB/s, below
  // the 48xl's 512); only a group spanning instances adds the thin ring.
  const System& u = builtin().system("trn2-ultraserver");
  const System& one = builtin().system("trn2-48xl");
  ASSERT_EQ(u.scale_up.torus_share, (std::vector<double>{0.4, 0.4, 0.2}));
  EXPECT_NEAR(scale_up_factor(u, 4), 0.4, 1e-12);
  EXPECT_NEAR(scale_up_factor(u, 16), 0.8, 1e-12);
  EXPECT_NEAR(scale_up_factor(u, 64), 1.0, 1e-12);
  for (int k : {4, 16})
    for (Collective c : {Collective::all_gather, Collective::reduce_scatter, Collective::all_reduce, Collective::all_to_all})
      EXPECT_NEAR(collective_time(u, c, 1e9, Group{k, 1}), collective_time(one, c, 1e9, Group{k, 1}),
                  1e-9 * collective_time(one, c, 1e9, Group{k, 1}))
          << k;
  // A strided group drives the dimensions its stride reaches: beside tp 16, a data-parallel group
  // of 4 (stride 16) spans the inter-instance ring alone (0.2; it had been charged the first
  // dimension's 0.4), a group of 4 at stride 4 the second in-instance dimension; a thinner ring
  // makes that traffic slower, not faster. A pipeline send takes the links of the dimension it crosses.
  EXPECT_NEAR(scale_up_factor(u, 4, Group{4, 16}), 0.2, 1e-12);
  EXPECT_NEAR(scale_up_factor(u, 4, Group{4, 4}), 0.4, 1e-12);
  EXPECT_NEAR(scale_up_factor(u, 16, Group{16, 4}), 0.6, 1e-12);  // y and z
  EXPECT_NEAR(send_share(u, 16), 0.2, 1e-12);
  EXPECT_NEAR(send_share(u, 1), 0.4, 1e-12);
  EXPECT_GT(collective_time(u, Collective::all_gather, 1e9, Group{4, 16}), collective_time(u, Collective::all_gather, 1e9, Group{4, 1}));
  EXPECT_GT(collective_time(u, Collective::send_recv, 1e9, Group{2, 16}), collective_time(u, Collective::send_recv, 1e9, Group{2, 1}));
  // On equal shares (TPU v6e, 16 x 16) a strided group of 16 spans one dimension too: the second.
  const System& v6e = builtin().system("tpu-v6e");
  EXPECT_DOUBLE_EQ(scale_up_factor(v6e, 16, Group{16, 16}), 0.5);
  EXPECT_DOUBLE_EQ(scale_up_factor(v6e, 32, Group{32, 8}), 1.0);  // stride 8 across rows: both
  // The ring across instances costs its dimension's links: an all-to-all over 64 chips pays the
  // third dimension at 0.2 / 2 of the bandwidth, slower than equal shares would say.
  System equal = u;
  equal.scale_up.torus_share.clear();
  EXPECT_GT(collective_time(u, Collective::all_to_all, 1e9, Group{64, 1}),
            collective_time(equal, Collective::all_to_all, 1e9, Group{64, 1}));
}

TEST(Collective, TorusLatencyIsPerDimension) {
  // A one-byte all-gather over a whole 16 x 16 x 24 TPU v5p slice is latency-bound: run dimension by
  // dimension it takes 15 + 15 + 23 = 53 hops, not the 6,143 of one ring through every chip.
  const System& s = builtin().system("tpu-v5p");
  const double lat = s.scale_up.latency.v;
  const double t = collective_time(s, Collective::all_gather, 1.0, Group{6144, 1});
  EXPECT_NEAR(t, 53 * lat, 1e-3 * lat);
  // 16 chips fill the first dimension: 15 hops.
  EXPECT_NEAR(collective_time(s, Collective::all_gather, 1.0, Group{16, 1}), 15 * lat, 1e-3 * lat);
  // A switched domain keeps k - 1 hops.
  const System& h = h100();
  EXPECT_NEAR(collective_time(h, Collective::all_gather, 1.0, Group{8, 1}), 7 * h.scale_up.latency.v,
              1e-3 * h.scale_up.latency.v);
}

TEST(Collective, TorusAllToAllPaysTheDistance) {
  // 16 TPU v5p chips fill one dimension of the 16 x 16 x 24 torus. An all-to-all sends each chip's
  // bytes an average n/4 = 4 hops around the bidirectional ring: bytes x 16/8 over one link, the
  // link being the chip's per-direction bandwidth / 6 (x the bus fraction), plus 15 hops of latency.
  const System& s = builtin().system("tpu-v5p");
  const double bytes = 1.6e9;
  const double link = s.scale_up.bandwidth.v * s.calib.scale_up_bus / 6.0;
  const double sent = bytes * 15.0 / 16.0;
  const double want = sent * 16.0 / 8.0 / link + 15 * s.scale_up.latency.v + s.scale_up.latency.v;
  EXPECT_NEAR(collective_time(s, Collective::all_to_all, bytes, Group{16, 1}), want, 1e-9 * want);
  // A switched domain of the same size pays no distance: 8 H100s exchange the same bytes faster than
  // 8 torus chips would at equal per-chip bandwidth.
  const double torus8 = collective_time(s, Collective::all_to_all, bytes, Group{8, 1});
  const double ag8 = collective_time(s, Collective::all_gather, bytes, Group{8, 1});
  EXPECT_GT(torus8, ag8);  // the ring all-gather needs one pass; the all-to-all n/4 hops per byte
}

TEST(Collective, GroupLimitedRoutingReachesFewerDomains) {
  // DeepSeek-V3: 256 experts in 8 groups of 32, top-8 from 4 groups. Over 8 nodes (a group per
  // node) a node is reached when one of the 4 chosen groups is its own: 1 - C(7,4)/C(8,4) = 1/2,
  // so 7 x 1/2 = 3.5 remote nodes per token (the report: at most 4 nodes), against 7 (1 -
  // C(224,8)/C(256,8)) = 4.63 unrestricted (8 distinct experts of 256; 4.59 drawn with replacement).
  auto c = [](double a, double b, int k) {  // C(a, k) / C(b, k)
    double r = 1;
    for (int i = 0; i < k; ++i) r *= (a - i) / (b - i);
    return r;
  };
  EXPECT_NEAR(domain_hit_share(8, 8, 0, 0, 0), 1.0 - std::pow(7.0 / 8.0, 8), 1e-12);
  EXPECT_NEAR(domain_hit_share(8, 8, 256, 0, 0), 1.0 - c(224, 256, 8), 1e-12);
  EXPECT_NEAR(domain_hit_share(8, 8, 256, 8, 4), 0.5, 1e-12);
  // Distinct experts reach more domains than draws with replacement, most when a domain holds few
  // (16 experts over 16 domains, top 8: exactly 8 of the 16 domains, half of them).
  EXPECT_GT(domain_hit_share(8, 8, 64, 0, 0), domain_hit_share(8, 8, 0, 0, 0));
  EXPECT_NEAR(domain_hit_share(16, 8, 16, 0, 0), 0.5, 1e-12);
  // 256 experts do not split over 3 domains: drawn with replacement.
  EXPECT_EQ(domain_hit_share(3, 8, 256, 0, 0), domain_hit_share(3, 8, 0, 0, 0));
  // Over 4 nodes (2 groups each): 1 - C(6,4)/C(8,4) = 1 - 15/70; over 2 nodes almost every node.
  EXPECT_NEAR(domain_hit_share(4, 8, 256, 8, 4), 1.0 - 15.0 / 70.0, 1e-12);
  EXPECT_NEAR(domain_hit_share(2, 8, 256, 8, 4), std::min(1.0 - 1.0 / 70.0, 1.0 - c(128, 256, 8)), 1e-12);
  // Over 16 nodes a group of 32 spans 2: the group is chosen with 4/8, then its 2 experts miss the
  // node's 16 with C(16,2)/C(32,2).
  EXPECT_NEAR(domain_hit_share(16, 8, 256, 8, 4), 0.5 * (1.0 - c(16, 32, 2)), 1e-12);
  // All groups chosen, one group, or groups that do not nest with the domains: unrestricted.
  EXPECT_EQ(domain_hit_share(8, 8, 256, 8, 8), domain_hit_share(8, 8, 256, 0, 0));
  EXPECT_EQ(domain_hit_share(8, 8, 256, 1, 1), domain_hit_share(8, 8, 256, 0, 0));
  EXPECT_EQ(domain_hit_share(3, 8, 255, 5, 2), domain_hit_share(3, 8, 255, 0, 0));
  // The all-to-all of an expert group that does not fill whole domains (EP 128 on 72-GPU racks:
  // 72 + 56) holds partial groups per domain: unrestricted routing's figure.
  {
    const System& nvl = builtin().system("gb200-nvl72");
    Group free{128, 1};
    free.dedup_topk = 8;
    free.dedup_experts = 256;
    Group grouped = free;
    grouped.dedup_groups = 8;
    grouped.dedup_group_topk = 4;
    EXPECT_EQ(collective_time(nvl, Collective::all_to_all, 4e9, grouped), collective_time(nvl, Collective::all_to_all, 4e9, free));
  }
  // Never more than unrestricted routing.
  for (int n : {2, 4, 8, 16, 32})
    for (int tg : {1, 2, 3, 4, 7}) EXPECT_LE(domain_hit_share(n, 8, 256, 8, tg), domain_hit_share(n, 8, 256, 0, 0) + 1e-15);

  // The all-to-all: the scale-out bytes scale by the remote domains, 3.5 of 4.59 (no expert count
  // given: draws with replacement).
  const System& s = h100();
  const double bytes = 4e9;
  Group free{64, 1};
  free.dedup_topk = 8;
  Group grouped = free;
  grouped.dedup_groups = 8;
  grouped.dedup_group_topk = 4;
  const double lat = s.scale_out.latency.v + s.scale_up.latency.v;
  const double t_free = collective_time(s, Collective::all_to_all, bytes, free) - lat;
  const double t_grouped = collective_time(s, Collective::all_to_all, bytes, grouped) - lat;
  EXPECT_NEAR(t_grouped / t_free, 3.5 / (7.0 * (1.0 - std::pow(7.0 / 8.0, 8))), 1e-9);
}

TEST(Collective, HierarchicalAllToAllSendsEachTokenOncePerRemoteDomain) {
  // EP 64 over eight 8-GPU nodes, top-8 routing: a flat all-to-all sends 8 x 56/64 = 7 copies of a
  // token over InfiniBand; DeepEP's dispatch sends one per distinct remote node, 7 (1 - (7/8)^8) =
  // 4.59 on average. The scale-out term sets the pace, so the time scales by that ratio.
  const System& s = h100();
  const double bytes = 4e9;
  Group flat{64, 1};
  Group dedup = flat;
  dedup.dedup_topk = 8;
  const double lat = s.scale_out.latency.v + s.scale_up.latency.v;
  const double t_flat = collective_time(s, Collective::all_to_all, bytes, flat) - lat;
  const double t_dedup = collective_time(s, Collective::all_to_all, bytes, dedup) - lat;
  const double ratio = 7.0 * (1.0 - std::pow(7.0 / 8.0, 8)) / 7.0;
  EXPECT_NEAR(t_dedup / t_flat, ratio, 1e-9);
  // Top-1 has nothing to merge; inside one domain nothing crosses scale-out.
  Group one = flat;
  one.dedup_topk = 1;
  EXPECT_NEAR(collective_time(s, Collective::all_to_all, bytes, one), collective_time(s, Collective::all_to_all, bytes, flat),
              1e-12);
  Group node{8, 1};
  Group node_dedup = node;
  node_dedup.dedup_topk = 8;
  EXPECT_EQ(collective_time(s, Collective::all_to_all, bytes, node_dedup), collective_time(s, Collective::all_to_all, bytes, node));
}

}  // namespace
}  // namespace xpu
