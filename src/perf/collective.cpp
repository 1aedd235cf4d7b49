#include "perf/collective.hpp"

#include <algorithm>
#include <cmath>

namespace xpu {

double Group::span() const {
  if (two_level()) return static_cast<double>(size / inner) * outer_stride;
  return static_cast<double>(size) * std::max(1, stride);
}

int members_per_domain(const System& s, Group g) {
  const int d = s.scale_up.size;
  int in_block = g.stride >= d ? 1 : std::max(1, std::min(g.two_level() ? g.inner : g.size, d / g.stride));
  if (g.straddle && !g.two_level() && in_block == g.size && g.size > 1) in_block = (g.size + 1) / 2;
  if (!g.two_level() || in_block < g.inner) return in_block;
  // Whole blocks share a domain when they sit less than a domain apart.
  const int blocks = g.outer_stride >= d ? 1 : std::max(1, std::min(g.size / g.inner, d / g.outer_stride));
  return in_block * blocks;
}

namespace {
// Torus dimensions a strided run of members varies along: count members `stride` devices apart,
// ranks laid out dimension by dimension (the first fastest), devices_per_chip to a chip. Dimension
// d varies when the run reaches past one step of it (the chip stride x (count - 1) reaches the
// product of the dimensions before it) and the stride is no whole multiple of it and those before.
// Bit d of the result is dimension d (the catalog allows at most 16); no allocation on this hot path.
unsigned torus_dims_spanned(const System& s, long count, long stride) {
  unsigned used = 0;
  if (count <= 1) return used;
  const auto& dims = s.scale_up.torus_dims;
  const long dpc = std::max(1, s.devices_per_chip);
  long chip_stride = stride / dpc, chips = count;
  if (chip_stride == 0) {  // several members a chip: the run covers its chips one after another
    chip_stride = 1;
    chips = ((count - 1) * stride) / dpc + 1;
  }
  long below = 1;  // product of the dimensions before d
  for (std::size_t d = 0; d < dims.size(); ++d) {
    const long block = below * dims[d];
    if ((chips - 1) * chip_stride >= below && chip_stride % block != 0) used |= 1u << d;
    below = block;
  }
  return used;
}
}  // namespace

double send_share(const System& s, int stride) {
  const Tier& t = s.scale_up;
  if (t.topology != Topology::torus || t.torus_dims.empty()) return 1.0;
  const unsigned used = torus_dims_spanned(s, 2, std::max(1, stride));
  for (std::size_t d = 0; d < t.torus_dims.size(); ++d)
    if (used & (1u << d)) return t.dim_share(d);
  return 1.0;  // within one chip
}

double scale_up_factor(const System& s, int k, Group g) {
  const Tier& t = s.scale_up;
  switch (t.topology) {
    case Topology::mesh:
      return t.size > 1 ? static_cast<double>(k - 1) / (t.size - 1) : 1.0;
    case Topology::torus: {
      // The group drives the links of the torus dimensions its members span in the domain: their
      // share of the chip's bandwidth (equal shares unless torus_share). A contiguous group fills
      // the first dimensions; a strided one (data parallel beside tensor parallel) the dimensions
      // its stride reaches, a Trn2 UltraServer's thin inter-instance ring among them.
      unsigned used = 0;
      if (g.two_level()) {
        const int d = t.size;
        const long in_block = g.stride >= d ? 1 : std::min<long>(g.inner, d / std::max(1, g.stride));
        const long blocks = g.outer_stride >= d ? 1 : std::min<long>(g.size / g.inner, d / g.outer_stride);
        used = torus_dims_spanned(s, in_block, g.stride) | torus_dims_spanned(s, blocks, g.outer_stride);
      } else {
        used = torus_dims_spanned(s, k, std::max(1, g.stride));
      }
      double share = 0;
      for (std::size_t d = 0; d < t.torus_dims.size(); ++d)
        if (used & (1u << d)) share += t.dim_share(d);
      return share > 0 ? share : 1.0;  // within one chip
    }
    default:
      return 1.0;
  }
}

namespace {
// Latency steps of a ring collective over k devices of the scale-up domain: k - 1 hops, except
// on a torus, where the collective runs dimension by dimension (the group fills the torus's
// dimensions in order) and each dimension's ring takes (members along it - 1) hops.
double scale_up_ring_steps(const System& s, int k) {
  if (k <= 1) return 0;
  const Tier& t = s.scale_up;
  if (t.topology != Topology::torus || t.torus_dims.empty()) return k - 1.0;
  double chips = std::max(1.0, static_cast<double>(k) / s.devices_per_chip);
  double steps = s.devices_per_chip > 1 ? s.devices_per_chip - 1.0 : 0.0;  // within a chip first
  for (int dsz : t.torus_dims) {
    if (chips <= 1) break;
    const double along = std::min(chips, static_cast<double>(dsz));
    steps += along - 1;
    chips = std::ceil(chips / along);
  }
  if (chips > 1) steps += chips - 1;  // beyond the listed dimensions
  return std::min(steps, k - 1.0);
}

// All-to-all inside a torus: the group fills dimensions in order; along a dimension with n members
// every chip sends to all others around a bidirectional ring (average distance n/4), so one phase
// moves bytes x n/4 hop-bytes per chip over its 2 links of that dimension; phases run dimension by
// dimension. Link bandwidth = the chip's per-direction total x the dimension's share / 2 (equal
// shares: / (2 x dimensions)).
double torus_all_to_all(const System& s, double bytes, int k, double bus) {
  const Tier& t = s.scale_up;
  double chips = std::max(1.0, static_cast<double>(k) / s.devices_per_chip);
  double time = 0;
  for (std::size_t d = 0; d < t.torus_dims.size(); ++d) {
    const int dsz = t.torus_dims[d];
    const double link = t.bandwidth.v * bus * t.dim_share(d) / 2.0;
    if (chips <= 1) break;
    const double along = std::min(chips, static_cast<double>(dsz));
    time += bytes * along / 8.0 / link * (along >= 2 ? 1.0 : 0.0);
    chips = std::ceil(chips / along);
  }
  return time;
}

// Latency steps for n participants: ring (n-1) or tree (2 log2 n), whichever is fewer.
double latency_steps(int n) {
  if (n <= 1) return 0;
  return std::min<double>(n - 1, 2.0 * std::ceil(std::log2(static_cast<double>(n))));
}
}  // namespace

namespace {
// Chance that none of `draws` distinct experts, drawn from `pool` of which `away` lie outside a
// domain, is inside it: C(away, draws) / C(pool, draws); with a pool the domains do not split
// evenly (or no pool given), draws with replacement: (away / pool)^draws.
double miss_share(double pool, double away, double draws, bool exact) {
  if (!exact) return std::pow(away / pool, draws);
  double miss = 1.0;
  for (int i = 0; i < static_cast<int>(draws); ++i) miss *= std::max(0.0, away - i) / (pool - i);
  return miss;
}
}  // namespace

double domain_hit_share(int n, int topk, int experts, int groups, int group_topk) {
  const double nn = n, k = topk;
  // topk distinct experts spread evenly over the domains in order.
  const bool even = experts > 0 && experts % n == 0;
  const double free = 1.0 - miss_share(even ? experts : nn, even ? experts - experts / nn : nn - 1.0, k, even);
  if (groups <= 1 || group_topk <= 0 || group_topk >= groups || n <= 1) return free;
  double share = free;
  if (groups % n == 0) {
    // Each domain holds groups / n whole groups; it is missed when all group_topk chosen groups lie
    // elsewhere: C(groups - groups/n, group_topk) / C(groups, group_topk).
    share = 1.0 - miss_share(groups, groups - groups / n, group_topk, true);
  } else if (n % groups == 0) {
    // Each group spans n / groups domains: the domain's group is chosen with chance
    // group_topk / groups, and then one of its topk / group_topk experts lands there.
    const double span = static_cast<double>(n) / groups, draws = k / group_topk;
    const bool exact = even && experts % groups == 0 && topk % group_topk == 0;
    const double pool = exact ? static_cast<double>(experts) / groups : span;
    share = static_cast<double>(group_topk) / groups * (1.0 - miss_share(pool, pool - pool / span, draws, exact));
  }
  // A chosen group may take fewer of the experts than topk / group_topk; never count more domains
  // than unrestricted routing reaches.
  return std::min(share, free);
}

double collective_time(const System& s, Collective kind, double bytes, Group g) {
  if (g.size <= 1 || bytes <= 0) return 0.0;
  const Calibration& c = s.calib;
  const int k = members_per_domain(s, g);
  const int n = (g.size + k - 1) / k;  // domains spanned
  const double bw_up = s.scale_up.bandwidth.v * c.scale_up_bus * scale_up_factor(s, k, g);
  // A group reaching beyond one non-blocking island of an oversubscribed fabric crosses its tapered
  // tier: the scale-out bandwidth divides by the oversubscription.
  const Tier& so = s.scale_out;
  const double span = g.span();
  const double taper = so.oversubscription > 1.0 && so.island > 0 && span > so.island ? so.oversubscription : 1.0;
  const double bw_out = so.bandwidth.v * c.scale_out_bus / taper;
  const double lat_up = s.scale_up.latency.v;
  const double lat_out = s.scale_out.latency.v;

  switch (kind) {
    case Collective::send_recv: {
      // Inside the domain: a switch gives the pair every link; on a torus the pair has the links of
      // the dimension its stride crosses (send_share).
      // A ring of sends spanning several domains (context parallelism across nodes) waits on its
      // hops between them each step: the scale-out network sets the pace.
      if (n <= 1 && (k >= 2 || g.stride < s.scale_up.size))
        return lat_up + bytes / (s.scale_up.bandwidth.v * c.scale_up_bus * send_share(s, g.stride));
      return lat_out + bytes / bw_out;
    }
    case Collective::all_to_all: {
      // Each device sends bytes*(size-1)/size: to k-1 peers over scale-up, the rest over scale-out.
      const double per_peer = bytes / g.size;
      double t_up = k > 1 ? (k - 1) * per_peer / bw_up + (k - 1) * lat_up / std::max(1, k - 1) : 0.0;
      if (k > 1 && s.scale_up.topology == Topology::torus && !s.scale_up.torus_dims.empty() && s.devices_per_chip < k)
        t_up = torus_all_to_all(s, (k - 1) * per_peer, k, c.scale_up_bus) + lat_up * scale_up_ring_steps(s, k);
      double out_bytes = (g.size - k) * per_peer;
      if (n > 1 && g.dedup_topk > 0) {
        // Hierarchical dispatch: each token's copies reach, per expected distinct remote domain, one
        // message over scale-out (its experts spread evenly over the n domains): (n - 1) x the
        // chance a given domain holds one of its experts, (1 - (1 - 1/n)^topk) unrestricted, of its
        // topk copies instead of topk (g.size - k) / g.size.
        const double kk = g.dedup_topk, nn = n;
        // Domains of unequal size (the group does not fill whole domains) hold unequal, partial
        // groups: the group-limited figure does not apply.
        const bool whole = g.size % k == 0;
        const double remote_domains = (nn - 1.0) * domain_hit_share(n, g.dedup_topk, whole ? g.dedup_experts : 0,
                                                                    whole ? g.dedup_groups : 0, g.dedup_group_topk);
        const double flat_remote = kk * (g.size - k) / static_cast<double>(g.size);
        out_bytes *= std::min(1.0, remote_domains / flat_remote);
        // Inside each domain every copy but the receiver's own crosses the scale-up links once:
        // the in-domain copies and the forwards of what arrived from other domains.
        if (k > 1) t_up = std::max(t_up, bytes * (k - 1.0) / k / bw_up + lat_up);
      }
      const double t_out = n > 1 ? out_bytes / bw_out + lat_out : 0.0;
      return std::max(t_up, t_out) + lat_up;
    }
    case Collective::all_reduce:
    case Collective::all_gather:
    case Collective::reduce_scatter: {
      const double passes = kind == Collective::all_reduce ? 2.0 : 1.0;
      // All-reduce may use a tree across domains (2 log2 n latency steps); all-gather and
      // reduce-scatter are rings (n - 1 steps), as in NCCL.
      const double steps_out = kind == Collective::all_reduce ? latency_steps(n) : n - 1.0;
      // Hops inside the domains. A ring across switched domains (NCCL's all-gather and
      // reduce-scatter) is one flat ring of every member: besides the n - 1 hops between domains
      // it takes g.size - n hops inside them, not k - 1 (NCCL tuning.cc: (nsteps - nInterSteps) x
      // intraLat + nInterSteps x interLat).
      const bool flat_ring = n > 1 && kind != Collective::all_reduce && s.scale_up.topology == Topology::switched;
      const double steps_up = flat_ring ? static_cast<double>(g.size - n) : scale_up_ring_steps(s, k);
      double t = 0;
      if (k > 1) t += passes * ((k - 1.0) / k * bytes / bw_up + steps_up * lat_up);
      if (n > 1) t += passes * ((n - 1.0) / n * (bytes / k) / bw_out) + passes * steps_out * lat_out;
      return t;
    }
  }
  return 0.0;
}

}  // namespace xpu
