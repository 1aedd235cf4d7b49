#include "load/catalog.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "load/toml_reader.hpp"
#include "spec/error.hpp"

namespace xpu {

namespace {

toml::table parse_toml(const DataFile& f) { return parse_toml_text(f.text, f.path); }

void check_id(TomlReader& r, const std::string& id, const DataFile& f) {
  // The id must match the file name so that `--system dgx-h100` finds data/systems/dgx-h100.toml.
  std::string stem = std::filesystem::path(f.path).stem().string();
  if (id != stem) r.fail("id", "'" + id + "' does not match the file name '" + stem + "'");
}

// A catalog file's date: when its facts were written down (YYYY-MM-DD).
std::string date_of(TomlReader& r) {
  std::string d = r.str("date");
  if (!is_iso_date(d, false)) r.fail("date", "'" + d + "' is not a date (YYYY-MM-DD)");
  return d;
}

}  // namespace

Chip parse_chip(const DataFile& f) {
  toml::table t = parse_toml(f);
  TomlReader r(t, f.path);
  Chip c;
  c.file = f.path;
  c.id = r.str("id");
  check_id(r, c.id, f);
  c.name = r.str("name");
  c.vendor = r.str("vendor");
  c.source = r.str("source");
  c.date = date_of(r);
  auto peak = r.table("peak");
  if (!peak) r.fail("peak", "missing (required): dense matrix rates per precision");
  for (Precision p : kAllPrecisions) {
    if (p == Precision::fp32) continue;
    if (auto v = peak->opt_quantity(precision_name(p), Dimension::flop_rate)) c.peak[static_cast<int>(p)] = FlopRate{*v};
  }
  if (auto v = peak->opt_quantity("fp32", Dimension::flop_rate)) c.vector_fp32 = FlopRate{*v};
  if (auto v = peak->opt_quantity("exp", Dimension::flop_rate)) {
    if (*v <= 0) peak->fail("exp", "must be positive (exponentials per second, e.g. \"3.87 TOP/s\")");
    c.exp_rate = *v;
  }
  if (!c.peak_at(Precision::bf16) && !c.peak_at(Precision::fp16))
    peak->fail("bf16", "missing: a chip needs a bf16 or fp16 matrix rate");
  peak->finish();
  auto mem = r.table("memory");
  if (!mem) r.fail("memory", "missing (required): capacity and bandwidth");
  c.hbm_capacity = Bytes{mem->quantity("capacity", Dimension::bytes)};
  c.hbm_bandwidth = ByteRate{mem->quantity("bandwidth", Dimension::byte_rate)};
  mem->finish();
  if (auto pw = r.table("power")) {
    if (auto v = pw->opt_quantity("tdp", Dimension::power)) c.tdp = Watts{*v};
    pw->finish();
  }
  if (auto k = r.table("kernels")) {
    c.flash_attention = k->boolean("flash_attention", true);
    c.flash_attention_source = k->opt_str("flash_attention_source").value_or("");
    if (!c.flash_attention && c.flash_attention_source.empty())
      k->fail("flash_attention_source", "missing: say where the chip's lack of FlashAttention is stated");
    c.hierarchical_ep_dispatch = k->boolean("hierarchical_ep_dispatch", false);
    c.hierarchical_ep_dispatch_source = k->opt_str("hierarchical_ep_dispatch_source").value_or("");
    if (c.hierarchical_ep_dispatch && c.hierarchical_ep_dispatch_source.empty())
      k->fail("hierarchical_ep_dispatch_source", "missing: say which library runs the hierarchical dispatch on this chip");
    k->finish();
  }
  r.finish();
  return c;
}

namespace {
Tier parse_tier(TomlReader& r, bool scale_up) {
  Tier t;
  if (scale_up) t.size = static_cast<int>(r.integer("size", 1));
  else t.size = static_cast<int>(r.opt_integer("size", 1).value_or(0));
  auto topo = r.str("topology");
  auto parsed = parse_topology(topo);
  if (!parsed) r.fail("topology", "unknown topology '" + topo + "' (switch, torus, mesh, ring, fat-tree, rail-optimized, dcn)");
  t.topology = *parsed;
  // The scale-out tier is modelled as a switched network (per-device bandwidth, latency, oversubscription).
  // The scale-up domain is one switch (NVSwitch, a UALink or Infinity Fabric crossbar) or a direct
  // torus, mesh or ring; a multi-tier network (fat tree, rails, a data-centre network) is not one.
  if (scale_up && (t.topology == Topology::fat_tree || t.topology == Topology::rail_optimized || t.topology == Topology::dcn))
    r.fail("topology", "'" + topo + "' is a scale-out network; scale_up is a switch, torus, mesh or ring");
  if (!scale_up && (t.topology == Topology::torus || t.topology == Topology::mesh || t.topology == Topology::ring))
    r.fail("topology", "'" + topo + "' is not modelled for the scale-out network (switch, fat-tree, rail-optimized, dcn: a "
                       "switched network); a torus, mesh or ring belongs to scale_up");
  t.torus_dims = r.int_array("torus_dims");
  t.torus_share = r.number_array("torus_share", 0.0, 1.0);
  if (t.topology == Topology::torus) {
    if (t.torus_dims.empty()) r.fail("torus_dims", "missing: a torus needs its dimensions");
    if (t.torus_dims.size() > 16) r.fail("torus_dims", "at most 16 dimensions");
    // A dimension of 1 has no links, yet would take an equal share of the bandwidth (a [1, 8] torus
    // ran at half an [8] one's).
    for (int d : t.torus_dims)
      if (d < 2) r.fail("torus_dims", "a dimension of 1 has no links: leave it out");
    if (!t.torus_share.empty()) {
      if (t.torus_share.size() != t.torus_dims.size())
        r.fail("torus_share", "needs one share per torus dimension (" + std::to_string(t.torus_dims.size()) + ")");
      double sum = 0;
      for (double v : t.torus_share) {
        if (!(v > 0)) r.fail("torus_share", "every dimension needs a share above 0");
        sum += v;
      }
      if (std::abs(sum - 1.0) > 1e-3) r.fail("torus_share", "the shares must sum to 1, got " + format_number("%g", sum));
    }
  } else if (!t.torus_dims.empty()) {
    r.fail("torus_dims", "only a torus has torus_dims");
  } else if (!t.torus_share.empty()) {
    r.fail("torus_share", "only a torus has torus_share");
  }
  t.bandwidth = ByteRate{r.quantity("bandwidth", Dimension::byte_rate)};
  t.latency = Seconds{r.quantity("latency", Dimension::time)};
  if (!scale_up) {
    t.oversubscription = r.opt_number("oversubscription", 1.0, 64.0).value_or(1.0);
    t.island = static_cast<int>(r.opt_integer("island", 1).value_or(0));
    if (t.oversubscription > 1.0 && t.island == 0)
      r.fail("island", "missing: an oversubscribed fabric needs the devices under one non-blocking first tier");
    if (t.island > 0 && t.oversubscription <= 1.0)
      r.fail("island", "means nothing without oversubscription above 1 (a non-blocking fabric has no island)");
  }
  r.finish();
  return t;
}
}  // namespace

System parse_system(const DataFile& f) {
  toml::table t = parse_toml(f);
  TomlReader r(t, f.path);
  System s;
  s.file = f.path;
  s.id = r.str("id");
  check_id(r, s.id, f);
  s.name = r.str("name");
  s.chip_id = r.str("chip");
  s.device_unit = r.str("device_unit");
  // What --devices counts, as reports print it ("64 x GPU").
  if (s.device_unit != "GPU" && s.device_unit != "chip" && s.device_unit != "NeuronCore")
    r.fail("device_unit", "'" + s.device_unit + "' is not GPU, chip or NeuronCore");
  s.devices_per_chip = static_cast<int>(r.opt_integer("devices_per_chip", 1).value_or(1));
  s.devices_per_node = static_cast<int>(r.integer("devices_per_node", 1));
  if (s.devices_per_chip < 1) r.fail("devices_per_chip", "must be at least 1, got " + std::to_string(s.devices_per_chip));
  if (s.devices_per_node % s.devices_per_chip != 0)
    r.fail("devices_per_chip", std::to_string(s.devices_per_chip) + " does not divide devices_per_node " +
                                   std::to_string(s.devices_per_node) + " (a node holds whole chips)");
  s.source = r.str("source");
  s.date = date_of(r);
  auto up = r.table("scale_up");
  if (!up) r.fail("scale_up", "missing (required): the scale-up domain");
  s.scale_up = parse_tier(*up, true);
  auto out = r.table("scale_out");
  if (!out) r.fail("scale_out", "missing (required): the scale-out network");
  s.scale_out = parse_tier(*out, false);
  // A node is one scale-up domain, part of one (NVL72: 4 of 72) or holds whole ones.
  if (s.scale_up.size % s.devices_per_node != 0 && s.devices_per_node % s.scale_up.size != 0)
    r.fail("devices_per_node", std::to_string(s.devices_per_node) + " and scale_up.size " + std::to_string(s.scale_up.size) +
                                   ": one must divide the other (a node is one scale-up domain, part of one, or holds whole ones)");
  // The whole node's rated input power where the vendor publishes it (GPUs, CPUs, NICs, switches,
  // fans): energy counts it per device instead of the accelerator's TDP alone.
  if (auto pw = r.table("power")) {
    if (auto v = pw->opt_quantity("node_max", Dimension::power)) s.node_power = Watts{*v};
    if (s.node_power) {
      s.node_power_source = pw->str("node_max_source");
      if (s.node_power_source.empty()) pw->fail("node_max_source", "empty: the node's power needs its source");
    } else if (pw->opt_str("node_max_source")) {
      pw->fail("node_max_source", "given without node_max (the node's maximum input power, e.g. \"10.2 kW\")");
    }
    pw->finish();
  }
  // The device's link to its host's memory (PCIe, NVLink-C2C) and the host DRAM per device.
  if (auto host = r.table("host")) {
    const auto bw = host->opt_quantity("bandwidth", Dimension::byte_rate);
    if (!bw) host->fail("bandwidth", "missing: a [host] table gives the link's bytes/s per device, each direction (e.g. \"32 GB/s\")");
    s.host_bandwidth = *bw;
    if (auto mem = host->opt_quantity("memory", Dimension::bytes)) s.host_memory = *mem;
    s.host_source = host->str("source");
    if (s.host_source.empty()) host->fail("source", "empty: the host link needs its source");
    host->finish();
  }
  if (s.scale_up.topology == Topology::torus) {
    long prod = 1;
    for (int d : s.scale_up.torus_dims) prod *= d;
    if (prod * s.devices_per_chip != s.scale_up.size)
      up->fail("torus_dims", "product of torus_dims x devices_per_chip (" + std::to_string(prod * s.devices_per_chip) +
                                 ") differs from size (" + std::to_string(s.scale_up.size) + ")");
  }
  r.finish();
  return s;
}

Model parse_model(const DataFile& f) {
  toml::table t = parse_toml(f);
  TomlReader r(t, f.path);
  Model m;
  m.file = f.path;
  m.id = r.str("id");
  check_id(r, m.id, f);
  m.name = r.str("name");
  m.source = r.str("source");
  m.date = date_of(r);
  m.layers = static_cast<int>(r.integer("layers"));
  if (m.layers > kMaxLayers) r.fail("layers", "must be at most " + std::to_string(kMaxLayers) + ", got " + std::to_string(m.layers));
  m.hidden = r.integer("hidden");
  m.heads = static_cast<int>(r.integer("heads"));
  m.kv_heads = static_cast<int>(r.opt_integer("kv_heads", 1).value_or(m.heads));
  if (m.heads % m.kv_heads != 0) r.fail("kv_heads", "must divide heads (" + std::to_string(m.heads) + ")");
  auto hd = r.opt_integer("head_dim", 1);
  if (!hd && m.hidden % m.heads != 0) r.fail("head_dim", "missing and hidden is not a multiple of heads");
  m.head_dim = static_cast<int>(hd.value_or(m.hidden / m.heads));
  m.ffn_hidden = r.integer("ffn_hidden");
  m.vocab = r.integer("vocab");
  m.gated_mlp = r.boolean("gated_mlp", false);
  m.tied_embeddings = r.boolean("tied_embeddings", false);
  m.mtp_layers = static_cast<int>(r.opt_integer("mtp_layers", 0).value_or(0));
  if (m.mtp_layers > m.layers) r.fail("mtp_layers", "must be at most layers (" + std::to_string(m.layers) + ")");
  if (auto scope = r.opt_str("fp4_scope")) {
    if (*scope != "all" && *scope != "experts") r.fail("fp4_scope", "'" + *scope + "' is not all or experts");
    m.fp4_experts_only = *scope == "experts";
    m.fp4_scope_source = m.file + ": fp4_scope " + *scope;
  }
  if (auto b = r.opt_integer("fp4_scale_block", 1)) {
    if (*b > 1024) r.fail("fp4_scale_block", "must be at most 1024 values a scale, got " + std::to_string(*b));
    m.fp4_scale_block = static_cast<int>(*b);
  }
  // Required: without a context window, sequences of any length would be planned and served unchecked.
  m.max_seq_len = r.integer("max_seq_len", 1);
  m.sliding_window = static_cast<int>(r.opt_integer("sliding_window", 0).value_or(0));  // 0: full attention
  m.sliding_window_every = static_cast<int>(r.opt_integer("sliding_window_every", 1).value_or(m.sliding_window ? 1 : 0));
  if (!m.sliding_window && r.opt_integer("sliding_window_every", 1))
    r.fail("sliding_window_every", "needs sliding_window (the local layers' span)");
  if (auto g = r.opt_integer("global_every", 2)) {
    if (!m.sliding_window) r.fail("global_every", "needs sliding_window (the local layers' span)");
    if (r.opt_integer("sliding_window_every", 1)) r.fail("global_every", "give sliding_window_every or global_every, not both");
    m.global_every = static_cast<int>(*g);
  }
  if (auto kind = r.opt_str("local_attention")) {
    if (*kind != "sliding" && *kind != "chunked") r.fail("local_attention", "'" + *kind + "' is not sliding or chunked");
    if (!m.sliding_window) r.fail("local_attention", "needs sliding_window (the window or chunk, tokens)");
    m.chunked_local = *kind == "chunked";
  }
  if (auto moe = r.table("moe")) {
    m.moe.experts = static_cast<int>(moe->integer("experts", 2));
    m.moe.top_k = static_cast<int>(moe->integer("top_k", 1));
    if (m.moe.top_k > m.moe.experts) moe->fail("top_k", "exceeds experts");
    m.moe.ffn_hidden = moe->integer("ffn_hidden");
    m.moe.shared_experts = static_cast<int>(moe->opt_integer("shared_experts", 0).value_or(0));
    m.moe.dense_layers = static_cast<int>(moe->opt_integer("dense_layers", 0).value_or(0));
    m.moe.layer_step = static_cast<int>(moe->opt_integer("layer_step", 1).value_or(1));
    if (auto ri = moe->opt_number("routing_imbalance", 1.0, static_cast<double>(m.moe.experts)))
      m.moe.routing_imbalance = *ri;
    if (m.moe.dense_layers >= m.layers) moe->fail("dense_layers", "must be fewer than layers");
    const auto groups = moe->opt_integer("router_groups", 1), group_topk = moe->opt_integer("router_group_topk", 1);
    if (groups.has_value() != group_topk.has_value())
      moe->fail(groups ? "router_group_topk" : "router_groups", "missing: group-limited routing needs router_groups and router_group_topk");
    if (groups) {
      if (auto bad = router_groups_problem(m.moe.experts, m.moe.top_k, *groups, *group_topk, "router_groups", "top_k"))
        moe->fail(bad->groups_key ? "router_groups" : "router_group_topk", bad->what);
      m.moe.router_groups = static_cast<int>(*groups);
      m.moe.router_group_topk = static_cast<int>(*group_topk);
    }
    moe->finish();
  }
  if (auto mla = r.table("mla")) {
    m.mla.q_lora_rank = static_cast<int>(mla->opt_integer("q_lora_rank", 0).value_or(0));
    m.mla.kv_lora_rank = static_cast<int>(mla->integer("kv_lora_rank"));
    m.mla.qk_nope_head_dim = static_cast<int>(mla->integer("qk_nope_head_dim"));
    m.mla.qk_rope_head_dim = static_cast<int>(mla->integer("qk_rope_head_dim"));
    m.mla.v_head_dim = static_cast<int>(mla->integer("v_head_dim"));
    mla->finish();
  }
  if (m.fp4_experts_only && !m.is_moe()) r.fail("fp4_scope", "experts needs a mixture-of-experts model (a [moe] table)");
  r.finish();
  return m;
}

Calibration parse_calibration(const DataFile& f) {
  toml::table t = parse_toml(f);
  TomlReader r(t, f.path);
  Calibration c;
  c.file = f.path;
  c.id = r.str("id");
  check_id(r, c.id, f);
  c.family = r.opt_str("family").value_or("");
  c.status = r.str("status");
  if (c.status != "assumed" && c.status != "fitted") r.fail("status", "must be \"assumed\" or \"fitted\"");
  c.source = r.str("source");
  (void)date_of(r);
  auto g = r.table("gemm");
  if (!g) r.fail("gemm", "missing (required): achievable GEMM fractions");
  for (Precision p : kAllPrecisions)
    if (auto v = g->opt_number(precision_name(p), 0.01, 1.0)) c.gemm_max[static_cast<int>(p)] = *v;
  if (c.gemm_max[static_cast<int>(Precision::bf16)] <= 0 && c.gemm_max[static_cast<int>(Precision::fp16)] <= 0)
    g->fail("bf16", "missing (required): bf16 or fp16");
  c.gemm_half_dim = g->number("half_dim", 0, 1e5);
  c.gemm_grouped = g->opt_number("grouped", 0.05, 1.5).value_or(1.0);
  if (g->has("grouped")) c.given.insert("gemm.grouped");
  c.gemm_tile_rows = g->opt_number("tile_rows", 1, 1024).value_or(0);
  c.gemm_shape_source = g->opt_str("shape_source").value_or("");
  c.gemm_grouped_source = g->opt_str("grouped_source").value_or("");
  g->finish();
  if (auto a = r.table("attention")) {
    c.attention = a->number("efficiency", 0.01, 1.0);
    c.attention_half_keys = a->opt_number("half_keys", 1, 1e6).value_or(0);
    c.attention_backward = a->opt_number("backward", 0.05, 2.0).value_or(1.0);
    c.attention_source = a->opt_str("source").value_or("");
    a->finish();
  }
  if (auto m = r.table("memory")) {
    c.memory_bw = m->number("bandwidth_fraction", 0.01, 1.0);
    c.memory_stream = m->opt_number("stream_fraction", 0.01, 1.0).value_or(0);
    c.memory_stream_source = m->opt_str("stream_source").value_or("");
    c.memory_reserve = Bytes{m->quantity("reserve", Dimension::bytes, true)};
    c.memory_frag = m->opt_number("fragmentation", 0, 0.5).value_or(0);
    m->finish();
  }
  if (auto k = r.table("kernel")) {
    c.kernel_overhead = Seconds{k->quantity("overhead", Dimension::time, true)};
    c.step_overhead = Seconds{k->opt_quantity("step_overhead", Dimension::time, true).value_or(0)};
    c.lowp_overhead = k->opt_number("lowp_overhead", 0, 5).value_or(0);
    c.moe_layer_overhead = Seconds{k->opt_quantity("moe_layer_overhead", Dimension::time, true).value_or(0)};
    c.moe_alltoall_overhead = Seconds{k->opt_quantity("moe_alltoall_overhead", Dimension::time, true).value_or(0)};
    for (const char* key : {"moe_layer_overhead", "moe_alltoall_overhead"})
      if (k->has(key)) c.given.insert(std::string("kernel.") + key);
    c.moe_alltoall_source = k->opt_str("moe_alltoall_source").value_or("");
    k->finish();
  }
  if (auto f = r.table("fit")) {  // provenance of a fit: checked for shape, not used
    (void)f->str("truth");
    (void)f->opt_str("command");  // the reproducing command and a fingerprint of what it read
    (void)f->opt_str("inputs");
    (void)f->str("xpuplan");
    (void)date_of(*f);
    if (f->str_array("rows").empty()) f->fail("rows", "missing or empty: the rows the fit used");
    c.fit_gemm_scale = f->number("gemm_scale", 0.01, 100);
    c.fit_lowp_scale = f->number("lowp_scale", 0.01, 100);
    c.fit_fp8_scale = f->opt_number("fp8_scale", 0.01, 100).value_or(c.fit_lowp_scale);
    c.fit_attention_scale = f->number("attention_scale", 0.01, 100);
    c.fit_grouped_scale = f->opt_number("grouped_scale", 0.01, 100).value_or(1.0);
    (void)f->str_array("grouped_rows");
    (void)f->number("tp_overlap", 0, 1);
    c.prior_tp_overlap = f->number("tp_overlap_prior", 0, 1);
    if (auto v = f->opt_quantity("moe_layer_overhead_prior", Dimension::time, true)) c.prior_moe_layer_overhead = *v;
    if (auto v = f->opt_quantity("moe_alltoall_overhead_prior", Dimension::time, true)) c.prior_moe_alltoall_overhead = *v;
    (void)f->str_array("alltoall_rows");
    (void)f->number("mape_before_pct", 0, 1e9);
    (void)f->number("mape_after_pct", 0, 1e9);
    f->finish();
  }
  if (auto k = r.table("collectives")) {
    c.scale_up_bus = k->number("scale_up_bus", 0.01, 1.0);
    c.scale_out_bus = k->number("scale_out_bus", 0.01, 1.0);
    c.tp_overlap = k->opt_number("tp_overlap", 0, 1).value_or(0);
    c.fsdp_overlap = k->opt_number("fsdp_overlap", 0, 1).value_or(0.9);
    c.ep_overlap = k->opt_number("ep_overlap", 0, 1).value_or(0);
    c.overlap_slowdown = k->opt_number("overlap_slowdown", 0, 0.9).value_or(0);
    k->finish();
  }
  r.finish();
  return c;
}

ServingCalibration parse_serving(const DataFile& f, std::vector<std::string>* chips) {
  toml::table t = parse_toml(f);
  TomlReader r(t, f.path);
  ServingCalibration c;
  c.file = f.path;
  c.id = r.str("id");
  check_id(r, c.id, f);
  c.status = r.str("status");
  if (c.status != "assumed" && c.status != "fitted") r.fail("status", "must be \"assumed\" or \"fitted\"");
  c.source = r.str("source");
  (void)date_of(r);
  std::vector<std::string> ids = r.str_array("chips");
  if (ids.empty()) r.fail("chips", "missing or empty: the chip ids this file applies to");
  if (chips) *chips = ids;
  c.chips = ids;
  auto d = r.table("decode");
  if (!d) r.fail("decode", "missing (required)");
  c.decode_bw = d->number("bandwidth_fraction", 0.05, 1.0);
  if (auto v = d->opt_quantity("score_time", Dimension::time, true)) c.decode_score_time = Seconds{*v};
  d->finish();
  if (auto p = r.table("prefill")) {
    c.prefill_gemm = p->number("gemm_scale", 0.05, 2.0);
    c.given.insert("prefill.gemm_scale");
    if (auto v = p->opt_number("lowp_gemm_ratio", 0.25, 4.0)) {
      c.lowp_gemm_ratio = *v;
      c.given.insert("prefill.lowp_gemm_ratio");
    }
    if (auto v = p->opt_quantity("score_time", Dimension::time, true)) c.prefill_score_time = Seconds{*v};
    p->finish();
  }
  auto e = r.table("engine");
  if (!e) r.fail("engine", "missing (required)");
  c.step_overhead = Seconds{e->quantity("step_overhead", Dimension::time, true)};
  c.layer_overhead = Seconds{e->quantity("layer_overhead", Dimension::time, true)};
  if (auto v = e->opt_quantity("prefill_layer_overhead", Dimension::time, true)) c.prefill_layer_overhead = Seconds{*v};
  if (auto v = e->opt_quantity("prefill_layer_floor", Dimension::time, true)) c.prefill_layer_floor = Seconds{*v};
  c.memory_fraction = e->number("memory_fraction", 0.1, 1.0);
  c.max_batch = static_cast<int>(e->integer("max_batch"));
  c.token_budget = static_cast<int>(e->integer("token_budget", 16));
  c.block_tokens = static_cast<int>(e->integer("block_tokens"));
  if (auto v = e->opt_integer("shards_per_device", 1)) {
    c.shards_per_device = static_cast<int>(*v);
    c.given.insert("engine.shards_per_device");
  }
  if (auto v = e->opt_integer("fp4_scale_block", 1)) c.fp4_scale_block = static_cast<int>(*v);
  c.fp4_tensor_scale = e->boolean("fp4_tensor_scale", false);
  c.mixed_batches = e->boolean("mixed_batches", true);
  c.pad_heads = e->boolean("pad_heads", false);
  for (const char* k : {"mixed_batches", "kv_admission", "scheduler", "pad_heads"})
    if (e->has(k)) c.given.insert(std::string("engine.") + k);
  if (auto v = e->opt_str("kv_admission")) {
    const auto b = parse_kv_admission(*v);
    if (!b) e->fail("kv_admission", "'" + *v + "' is not optimistic or guaranteed");
    c.reserve_output = *b;
  }
  if (auto v = e->opt_str("scheduler")) {
    const auto b = parse_scheduler(*v);
    if (!b) e->fail("scheduler", "'" + *v + "' is not chunked or prefill-first");
    c.prefill_first = *b;
  }
  if (auto v = e->opt_number("moe_all_experts_from", 0.0, 1e6)) c.moe_all_experts_from = *v;
  c.moe_prefill_all_experts = e->boolean("moe_prefill_all_experts", false);
  if (auto v = e->opt_number("moe_expert_factor", 0.25, 4.0)) c.moe_expert_factor = *v;
  c.moe_expert_source = e->opt_str("moe_expert_source").value_or("");
  e->finish();
  if (auto f = r.table("fit")) {  // provenance of `calibrate` on an inference table
    (void)f->str("truth");
    (void)f->opt_str("command");  // the reproducing command and a fingerprint of what it read
    (void)f->opt_str("inputs");
    (void)f->str("xpuplan");
    (void)date_of(*f);
    if (f->str_array("rows").empty()) f->fail("rows", "missing or empty: the rows the fit used");
    c.prior_decode_bw = f->number("bandwidth_fraction_prior", 0.05, 1.0);
    c.prior_step_overhead_s = f->quantity("step_overhead_prior", Dimension::time, true);
    c.prior_layer_overhead_s = f->quantity("layer_overhead_prior", Dimension::time, true);
    c.prior_gemm_scale = f->number("gemm_scale_prior", 0.05, 2.0);
    if (auto v = f->opt_quantity("prefill_layer_overhead_prior", Dimension::time, true)) c.prior_prefill_layer_overhead_s = *v;
    if (auto v = f->opt_quantity("prefill_layer_floor_prior", Dimension::time, true)) c.prior_prefill_layer_floor_s = *v;
    if (auto v = f->opt_quantity("score_time_prior", Dimension::time, true)) c.prior_decode_score_time_s = *v;
    if (auto v = f->opt_quantity("prefill_score_time_prior", Dimension::time, true)) c.prior_prefill_score_time_s = *v;
    if (auto v = f->opt_number("moe_expert_factor_prior", 0.25, 4.0)) c.prior_moe_expert_factor = *v;
    if (auto v = f->opt_number("lowp_gemm_ratio_prior", 0.25, 4.0)) c.prior_lowp_gemm_ratio = *v;
    (void)f->str_array("moe_rows");
    (void)f->number("mape_before_pct", 0, 1e9);
    (void)f->number("mape_after_pct", 0, 1e9);
    f->finish();
  }
  r.finish();
  return c;
}

const System& Catalog::system(const std::string& id) const {
  auto it = systems.find(id);
  if (it == systems.end()) {
    std::string known;
    for (const auto& [k, v] : systems) known += (known.empty() ? "" : ", ") + k;
    throw InputError("--system", "unknown system '" + id + "' (known: " + known + ")");
  }
  return it->second;
}

const Model& Catalog::model(const std::string& id) const {
  auto it = models.find(id);
  if (it == models.end()) {
    std::string known;
    for (const auto& [k, v] : models) known += (known.empty() ? "" : ", ") + k;
    throw InputError("--model", "unknown model '" + id + "' (known: " + known + "; or a path to config.json)");
  }
  return it->second;
}

namespace {
// The catalog folder a file sits in, at any depth below it (data/models/qwen/x.toml is a model):
// the nearest folder up from the file named chips, systems, models, calibration, serving, prices
// or tco, looking no higher than `root` (the --data directory: a catalog under /home/me/models/
// is read as any other). "" when there is none.
std::string kind_of(const std::string& path, const std::string& root) {
  static const std::set<std::string> kinds = {"chips", "systems", "models", "calibration", "serving", "prices", "tco"};
  namespace fs = std::filesystem;
  const fs::path top = root.empty() ? fs::path() : fs::path(root).lexically_normal();
  for (fs::path d = fs::path(path).lexically_normal().parent_path(); !d.empty(); d = d.parent_path()) {
    if (!top.empty() && (d == top || d.generic_string() + "/" == top.generic_string())) break;
    if (kinds.count(d.filename().string())) return d.filename().string();
    if (d == d.parent_path()) break;
  }
  return "";
}
void resolve(System& s, const Catalog& c) {
  auto chip = c.chips.find(s.chip_id);
  if (chip == c.chips.end()) throw InputError(s.file + ": chip", "unknown chip '" + s.chip_id + "'");
  s.chip = chip->second;
  auto cal = c.calibrations.find(s.chip_id);
  if (cal == c.calibrations.end())
    throw InputError(s.file + ": chip", "no calibration file for chip '" + s.chip_id + "' (data/calibration/" + s.chip_id + ".toml)");
  s.calib = cal->second;
  if (auto sv = c.serving.find(s.chip_id); sv != c.serving.end()) s.serving = sv->second;
}
}  // namespace

Catalog build_catalog(const std::vector<DataFile>& files, const std::string& root) {
  Catalog c;
  std::vector<System> systems;
  auto add = [](auto& map, auto&& item) {
    std::string id = item.id;
    std::string file = item.file;
    if (!map.emplace(id, std::move(item)).second) throw InputError(file + ": id", "duplicate id '" + id + "'");
  };
  std::vector<const DataFile*> prices, tco;
  for (const auto& f : files) {
    const std::string kind = kind_of(f.path, root);
    if (kind == "chips") add(c.chips, parse_chip(f));
    else if (kind == "calibration") add(c.calibrations, parse_calibration(f));
    else if (kind == "models") add(c.models, parse_model(f));
    else if (kind == "systems") systems.push_back(parse_system(f));
    else if (kind == "prices") prices.push_back(&f);
    else if (kind == "tco") tco.push_back(&f);
    else if (kind == "serving") {
      std::vector<std::string> chips;
      ServingCalibration sc = parse_serving(f, &chips);
      for (const auto& id : chips)
        if (!c.serving.emplace(id, sc).second)
          throw InputError(f.path + ": chips", "chip '" + id + "' is named by two serving files");
    } else {
      throw InputError(f.path, "is not in a catalog folder (chips/, systems/, models/, calibration/, serving/, prices/ "
                               "or tco/, at any depth, as in data/): move it there or out of the catalog");
    }
  }
  for (const auto& [id, sc] : c.serving)
    if (!c.chips.count(id)) throw InputError(sc.file + ": chips", "unknown chip '" + id + "'");
  for (auto& s : systems) {
    resolve(s, c);
    add(c.systems, std::move(s));
  }
  for (const auto& [id, chip] : c.chips)
    if (!c.calibrations.count(id))
      throw InputError(chip.file + ": id", "no calibration file for chip '" + id + "' (data/calibration/" + id + ".toml)");

  for (const DataFile* f : prices) {  // after the systems: each file belongs to one of them
    std::string id;
    std::vector<PriceOffer> offers = parse_prices(*f, &id);
    auto it = c.systems.find(id);
    if (it == c.systems.end()) throw InputError(f->path + ": id", "no system '" + id + "' in the catalog");
    if (!it->second.prices.empty())
      throw InputError(f->path + ": id", "duplicate prices for system '" + id + "' (also in " + it->second.prices.front().file + ")");
    it->second.prices = std::move(offers);
  }
  for (const DataFile* f : tco) {
    if (std::filesystem::path(f->path).stem() == "site") {
      c.site = parse_site(*f);
      continue;
    }
    std::string id;
    Ownership own = parse_ownership(*f, &id);
    auto it = c.systems.find(id);
    if (it == c.systems.end()) throw InputError(f->path + ": id", "no system '" + id + "' in the catalog");
    it->second.ownership = std::move(own);
  }
  return c;
}

namespace {
std::mutex g_inputs_mutex;
std::vector<std::string> g_inputs;  // every path read_file read, as given
}  // namespace

bool was_read_as_input(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return false;
  const std::lock_guard<std::mutex> lock(g_inputs_mutex);
  for (const auto& p : g_inputs)
    if (std::filesystem::equivalent(p, path, ec) && !ec) return true;
  return false;
}

DataFile read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(path, "is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot read file");
  {
    const std::lock_guard<std::mutex> lock(g_inputs_mutex);
    g_inputs.push_back(path);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path, "read error");
  return {path, ss.str()};
}

std::vector<DataFile> read_data_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError(dir, "not a directory");
  std::vector<std::string> paths;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code fe;
    // Hidden entries are no catalog files: an editor's lock (Emacs's .#name.toml, a dangling link)
    // or backup.
    if (it->path().filename().string().rfind('.', 0) == 0) {
      if (it->is_directory(fe)) it.disable_recursion_pending();
      continue;
    }
    if (it->path().extension() != ".toml") continue;
    // A .toml that is no readable file (a dangling or looping link) is an error, not a file quietly
    // left out of the catalog.
    if (!it->is_regular_file(fe) && !it->is_directory(fe))
      throw InputError(it->path().generic_string(), "is not a readable file (a dangling or looping link?)");
    if (it->is_regular_file(fe)) paths.push_back(it->path().generic_string());
  }
  if (ec) throw InputError(dir, "cannot list directory: " + ec.message());
  if (paths.empty()) throw InputError(dir, "holds no .toml catalog files (chips/, systems/, models/, ... as in data/)");
  std::sort(paths.begin(), paths.end());
  std::vector<DataFile> out;
  for (const auto& p : paths) out.push_back(read_file(p));
  return out;
}

namespace {
// s ends with ext, in any case ("config.JSON", "model.TOML").
bool has_ext(const std::string& s, std::string_view ext) {
  if (s.size() < ext.size()) return false;
  for (std::size_t i = 0; i < ext.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - ext.size() + i])) != ext[i]) return false;
  return true;
}
bool looks_like_path(const std::string& s) {
  return s.find('/') != std::string::npos || has_ext(s, ".json") || has_ext(s, ".toml");
}
}  // namespace

Model resolve_model(const Catalog& c, const std::string& arg) {
  if (!looks_like_path(arg) && c.models.count(arg)) return c.model(arg);
  // A Hugging Face model folder (a snapshot or a clone): its config.json.
  std::error_code ec;
  if (!arg.empty() && std::filesystem::is_directory(arg, ec)) {
    const std::string config = (std::filesystem::path(arg) / "config.json").string();
    if (!std::filesystem::is_regular_file(config, ec))
      throw InputError("--model", "'" + arg + "' is a folder without a config.json (give a catalog id, a config.json or a model .toml)");
    return parse_hf_config(read_file(config));
  }
  if (!looks_like_path(arg)) return c.model(arg);
  DataFile f = read_file(arg);
  if (has_ext(arg, ".toml")) return parse_model(f);
  return parse_hf_config(f);
}

System resolve_system(const Catalog& c, const std::string& arg) {
  if (!looks_like_path(arg)) return c.system(arg);
  System s = parse_system(read_file(arg));
  resolve(s, c);
  s.standalone = true;
  return s;
}

}  // namespace xpu
