#include "load/scenario.hpp"

#include <cmath>
#include <functional>
#include <set>
#include <utility>

#include "load/toml_reader.hpp"
#include "serve/workload.hpp"
#include "spec/error.hpp"

namespace xpu {

namespace {

// The latest year a contract or budget file may name (a year beyond it wrapped the year columns).
constexpr int kLastYear = 2200;

// Top-level keys other than those read through TomlReader (arrays of tables) are checked here.
void check_keys(const toml::table& t, const DataFile& f, const std::set<std::string, std::less<>>& known) {
  for (const auto& [k, v] : t)
    if (!known.contains(k.str())) {
      const int line = static_cast<int>(v.source().begin.line);
      throw InputError(f.path + (line > 0 ? ":" + std::to_string(line) : "") + ": " + std::string(k.str()), "unknown key");
    }
}

// Calls each(reader, line) for every table of the array `key` (absent: none; required: at least one).
void each_table(const toml::table& t, const DataFile& f, const std::string& key, bool required,
                const std::function<void(TomlReader&, int)>& each) {
  const toml::node* n = t.get(key);
  if (!n) {
    if (required) throw InputError(f.path + ": " + key, "missing (required): at least one [[" + key + "]]");
    return;
  }
  const toml::array* arr = n->as_array();
  const int line0 = static_cast<int>(n->source().begin.line);
  if (!arr || arr->empty() || !arr->is_array_of_tables())
    throw InputError(f.path + ":" + std::to_string(line0) + ": " + key, "must be one or more [[" + key + "]] tables");
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const toml::table& tab = *arr->get(i)->as_table();
    TomlReader r(tab, f.path, key + "[" + std::to_string(i) + "].");
    each(r, static_cast<int>(tab.source().begin.line));
    r.finish();
  }
}

Pricing pricing_of(TomlReader& r, const char* key) {
  const std::string p = r.opt_str(key).value_or("on-demand");
  auto v = parse_pricing(p);
  if (!v) r.fail(key, "'" + p + "' is not on-demand, reserved-1y, reserved-3y, capacity-block, spot or owned");
  return *v;
}

}  // namespace

BudgetFile parse_budget_file(const DataFile& f) {
  const toml::table t = parse_toml_text(f.text, f.path);
  check_keys(t, f, {"name", "source", "usd", "fleet", "training"});
  TomlReader r(t, f.path);
  BudgetFile b;
  b.file = f.path;
  b.name = r.str("name");
  b.source = r.str("source");
  b.usd = r.opt_quantity("usd", Dimension::money);
  if (b.usd && *b.usd > kMaxUsd) r.fail("usd", "at most 1e15 USD");  // else blamed on --usd
  each_table(t, f, "fleet", false, [&](TomlReader& x, int line) {
    FleetItem it;
    it.line = line;
    it.system_line = x.line_of("system");
    it.name = x.str("name");
    it.system = x.str("system");
    it.devices = static_cast<int>(x.integer("devices", 1));
    it.pricing = pricing_of(x, "pricing");
    it.provider = x.opt_str("provider").value_or("");
    it.provider_line = x.line_of("provider");
    if (it.pricing == Pricing::owned && !it.provider.empty())
      x.fail("provider", "applies to rented pricing (a provider's offers); owned devices are costed from their TCO");
    it.note = x.opt_str("note").value_or("");
    b.fleet.push_back(it);
  });
  each_table(t, f, "training", false, [&](TomlReader& x, int line) {
    TrainingItem it;
    it.line = line;
    it.system_line = x.line_of("system");
    it.model_line = x.line_of("model");
    it.name = x.str("name");
    it.model = x.str("model");
    it.system = x.str("system");
    it.devices = static_cast<int>(x.integer("devices", 1));
    it.tokens = x.number("tokens", 1, 1e18);
    it.runs_per_year = x.opt_number("runs_per_year", 0, 1000).value_or(1.0);
    it.seq_len = x.opt_integer("seq_len", 1).value_or(8192);
    it.global_batch = x.opt_integer("global_batch", 1).value_or(2048);
    it.pricing = pricing_of(x, "pricing");
    it.provider = x.opt_str("provider").value_or("");
    it.provider_line = x.line_of("provider");
    if (it.pricing == Pricing::owned && !it.provider.empty())
      x.fail("provider", "applies to rented pricing (a provider's offers); owned devices are costed from their TCO");
    it.note = x.opt_str("note").value_or("");
    b.training.push_back(it);
  });
  if (b.fleet.empty() && b.training.empty())
    throw InputError(f.path + ": fleet", "a budget file needs at least one [[fleet]] or [[training]]");
  return b;
}

ContractFile parse_contract_file(const DataFile& f) {
  const toml::table t = parse_toml_text(f.text, f.path);
  check_keys(t, f, {"name", "source", "buyer", "seller", "total", "start_year", "years", "ramp", "capacity", "flow"});
  TomlReader r(t, f.path);
  ContractFile c;
  c.file = f.path;
  c.name = r.str("name");
  c.source = r.str("source");
  c.buyer = r.opt_str("buyer").value_or("");
  c.seller = r.opt_str("seller").value_or("");
  if (c.buyer.empty() != c.seller.empty()) r.fail(c.buyer.empty() ? "buyer" : "seller", "buyer and seller go together");
  c.total_usd = r.quantity("total", Dimension::money);
  if (c.total_usd > kMaxUsd) r.fail("total", "at most 1e15 USD");
  if (!c.buyer.empty() && c.buyer == c.seller) r.fail("seller", "the same party as the buyer (a commitment flows between two)");
  c.start_year = static_cast<int>(r.integer("start_year", 1900));
  if (c.start_year > kLastYear) r.fail("start_year", "must be at most " + std::to_string(kLastYear));
  c.years = static_cast<int>(r.integer("years", 1));
  if (c.years > 50) r.fail("years", "at most 50");
  if (r.has("ramp")) {
    const toml::array* a = t.get("ramp")->as_array();
    if (!a) r.fail("ramp", "must be an array of shares, one per year");
    for (const auto& v : *a) {
      if (!v.is_number()) r.fail("ramp", "must hold numbers");
      const double x = v.is_integer() ? static_cast<double>(v.as_integer()->get()) : v.as_floating_point()->get();
      if (!(x >= 0)) r.fail("ramp", "shares must be >= 0");
      c.ramp.push_back(x);
    }
  } else {
    c.ramp.assign(c.years, 1.0 / c.years);  // even over the years
  }
  if (static_cast<int>(c.ramp.size()) != c.years)
    r.fail("ramp", std::to_string(c.ramp.size()) + " shares for " + std::to_string(c.years) + " years");
  double sum = 0;
  for (double x : c.ramp) sum += x;
  if (std::fabs(sum - 1.0) > 1e-6) r.fail("ramp", "shares sum to " + std::to_string(sum) + ", not 1");
  double shares = 0;
  each_table(t, f, "capacity", true, [&](TomlReader& x, int line) {
    CapacityItem it;
    it.line = line;
    for (const char* k : {"system", "model", "serve_model", "serve_weight_precision", "serve_output_len", "provider"})
      if (const int l = x.line_of(k); l > 0) it.key_lines[k] = l;
    it.system = x.str("system");
    it.share = x.opt_number("share", 0, 1).value_or(1.0);
    if (x.has("price") && x.has("pricing")) x.fail("price", "give price or pricing, not both");
    if (x.has("price")) {
      it.usd_per_device_hour = x.quantity("price", Dimension::money_rate);
      if (const std::string why = usd_rate_problem(*it.usd_per_device_hour); !why.empty()) x.fail("price", why);
      it.price_source = x.str("price_source");
    } else {
      it.pricing = pricing_of(x, "pricing");
      it.provider = x.opt_str("provider").value_or("");
    }
    it.model = x.str("model");
    it.tokens = x.number("tokens", 1, 1e18);
    it.devices = static_cast<int>(x.integer("devices", 1));
    it.seq_len = x.opt_integer("seq_len", 1).value_or(8192);
    it.global_batch = x.opt_integer("global_batch", 1).value_or(2048);
    if (x.has("serve_model")) {
      it.serve_model = x.str("serve_model");
      it.serve_input_len = static_cast<int>(x.integer("serve_input_len", 1));
      it.serve_output_len = static_cast<int>(x.integer("serve_output_len", 1));
      // Given, an SLO is positive (0 had read as none); left out, there is none.
      it.serve_slo_ttft_ms = x.opt_number("serve_slo_ttft_ms", 1e-3, 1e9).value_or(0);
      it.serve_slo_tpot_ms = x.opt_number("serve_slo_tpot_ms", 1e-3, 1e9).value_or(0);
      it.serve_weight_precision = x.opt_str("serve_weight_precision").value_or("");
      for (auto [key, out] : {std::pair{"serve_input_spread", &it.serve_input_spread},
                              std::pair{"serve_output_spread", &it.serve_output_spread}}) {
        if (!x.has(key)) continue;
        const std::string v = x.str(key);
        auto sp = parse_spread(v);
        if (!sp) x.fail(key, "'" + v + "' is not uniform:TOKENS, normal:TOKENS or none");
        *out = *sp;
      }
    } else {
      for (const char* k : {"serve_input_len", "serve_output_len", "serve_slo_ttft_ms", "serve_slo_tpot_ms",
                            "serve_weight_precision", "serve_input_spread", "serve_output_spread"})
        if (x.has(k)) x.fail(k, "needs serve_model (the model served)");
    }
    shares += it.share;
    c.capacity.push_back(it);
  });
  if (std::fabs(shares - 1.0) > 1e-6)
    throw InputError(f.path + ": capacity.share", "the capacity shares sum to " + std::to_string(shares) + ", not 1");
  each_table(t, f, "flow", false, [&](TomlReader& x, int line) {
    Flow fl;
    fl.line = line;
    fl.year = static_cast<int>(x.integer("year", 1900));
    if (fl.year > kLastYear) x.fail("year", "must be at most " + std::to_string(kLastYear));
    fl.from = x.str("from");
    fl.to = x.str("to");
    if (fl.from == fl.to) x.fail("to", "a flow needs two different parties");
    fl.kind = x.str("kind");
    if (fl.kind != "equity" && fl.kind != "cloud" && fl.kind != "chips" && fl.kind != "other")
      x.fail("kind", "'" + fl.kind + "' is not equity, cloud, chips or other");
    fl.usd = x.quantity("usd", Dimension::money);
    fl.note = x.str("source");
    c.flows.push_back(fl);
  });
  return c;
}

}  // namespace xpu
