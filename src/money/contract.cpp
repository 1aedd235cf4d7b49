#include "money/contract.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "money/compare.hpp"
#include "spec/error.hpp"

namespace xpu {

namespace {
// file:line: capacity.KEY, on the key's own line (else the [[capacity]] header's).
std::string at(const ContractFile& f, const CapacityItem& it, const std::string& key) {
  const auto k = it.key_lines.find(key);
  return f.file + ":" + std::to_string(k != it.key_lines.end() ? k->second : it.line) + ": capacity." + key;
}
}  // namespace

ContractResult evaluate_contract(const Catalog& c, const ContractFile& f, long today, int threads) {
  const Site* site = c.site ? &*c.site : nullptr;
  ContractResult r;
  // The ramp sums to 1 within 1e-6 (checked by the loader); normalised so the years add up to the total.
  double ramp_sum = 0;
  for (double x : f.ramp) ramp_sum += x;
  for (int i = 0; i < f.years; ++i) {
    r.years.push_back(f.start_year + i);
    r.usd_by_year.push_back(f.total_usd * f.ramp[i] / ramp_sum);
  }
  for (const CapacityItem& it : f.capacity) {
    auto sit = c.systems.find(it.system);
    if (sit == c.systems.end()) throw InputError(at(f, it, "system"), "unknown system '" + it.system + "'");
    auto mit = c.models.find(it.model);
    if (mit == c.models.end()) throw InputError(at(f, it, "model"), "unknown model '" + it.model + "'");
    const System& s = sit->second;
    const Model& m = mit->second;
    CapacityResult cr;
    cr.item = it;
    double rate = 0;
    if (it.usd_per_device_hour) {
      rate = *it.usd_per_device_hour;
      cr.priced = true;
      cr.price_origin = f.file + ": capacity.price (" + it.price_source + ")";
    } else {
      check_provider(c.systems, it.provider, at(f, it, "provider"));
      cr.rate = device_hour_rate(s, site, it.pricing, today, it.provider);
      if (!cr.rate.warning.empty()) r.warnings.push_back(cr.rate.warning);
      // One price serves every year of the deal: say so when the offer is from a year after its first.
      if (cr.rate.offer && std::stoi(cr.rate.offer->as_of.substr(0, 4)) > f.start_year)
        r.warnings.push_back(std::string(pricing_name(it.pricing)) + " price of " + s.id + " (" + cr.rate.offer->instance +
                             ") is from " + cr.rate.offer->as_of + ", after the contract's start (" + std::to_string(f.start_year) +
                             "): its earlier years are priced at it");
      cr.priced = cr.rate.known;
      rate = cr.rate.usd_per_device_hour;
      cr.price_origin = cr.rate.origin();
      if (!cr.priced) cr.note = cr.rate.missing;
    }
    cr.plan = fastest_plan(m, s, it.seq_len, it.global_batch, it.devices, threads);
    if (!cr.plan) {
      cr.note += (cr.note.empty() ? "" : "; ") + std::string("no plan of ") + m.id + " fits on " +
                 count_text(it.devices, "device", "devices");
    } else {
      cr.peak_flops_per_device = cr.plan->peak_flops_per_device;
      const double steps = std::ceil(it.tokens / (static_cast<double>(it.seq_len) * it.global_batch));
      const double hours = steps * cr.plan->step_time / 3600.0;
      cr.run_days = hours / 24.0;
      cr.run_device_hours = hours * it.devices;
    }
    double served_per_device_hour = 0, served_output_per_device_hour = 0;
    if (!it.serve_model.empty()) {
      auto sm = c.models.find(it.serve_model);
      if (sm == c.models.end())
        throw InputError(at(f, it, "serve_model"), "unknown model '" + it.serve_model + "'");
      std::optional<Quant> w;
      if (!it.serve_weight_precision.empty()) {
        w = parse_quant(it.serve_weight_precision);
        if (!w)
          throw InputError(at(f, it, "serve_weight_precision"),
                           "'" + it.serve_weight_precision + "' is not bf16, fp16, fp8, int8, int4 or fp4");
      }
      {
        ServeWorkload sw;  // the served requests, spreads included, against the model's context window
        sw.input_len = it.serve_input_len;
        sw.output_len = it.serve_output_len;
        sw.input_spread = it.serve_input_spread;
        sw.output_spread = it.serve_output_spread;
        if (auto e = context_window_excess(sm->second, sw)) {
          // In the file's words: its fields, not serve's prompt and output.
          const std::string serve_words = "prompt + output", file_words = "serve_input_len + serve_output_len";
          if (const auto at_words = e->what.find(serve_words); at_words != std::string::npos)
            e->what.replace(at_words, serve_words.size(), file_words);
          throw InputError(at(f, it, "serve_output_len"), e->what);
        }
      }
      cr.serving = best_serving(sm->second, s, it.serve_input_len, it.serve_output_len, it.serve_slo_ttft_ms / 1e3,
                                it.serve_slo_tpot_ms / 1e3, w, ServeCompareRequest{}.requests, it.serve_input_spread, it.serve_output_spread);
      if (cr.serving->ok) {
        served_output_per_device_hour = cr.serving->report.output_tps_per_device * 3600.0;
        served_per_device_hour = served_output_per_device_hour * (it.serve_input_len + it.serve_output_len) /
                                 static_cast<double>(it.serve_output_len);
      } else {
        cr.note += (cr.note.empty() ? "" : "; ") + std::string("no served tokens: ") + cr.serving->note;
      }
    }
    for (std::size_t y = 0; y < r.years.size(); ++y) {
      CapacityYear cy;
      cy.usd = r.usd_by_year[y] * it.share;
      if (cr.priced) {
        cy.device_hours = cy.usd / rate;
        cy.average_devices = cy.device_hours / kHoursPerYear;
        if (cr.plan) {
          cy.flops = cy.device_hours * 3600.0 * cr.peak_flops_per_device * cr.plan->mfu;
          cy.runs = cy.device_hours / cr.run_device_hours;
        }
        cy.served_tokens = cy.device_hours * served_per_device_hour;
        cy.served_output_tokens = cy.device_hours * served_output_per_device_hour;
      }
      cr.total.usd += cy.usd;
      cr.total.device_hours += cy.device_hours;
      cr.total.flops += cy.flops;
      cr.total.runs += cy.runs;
      cr.total.served_tokens += cy.served_tokens;
      cr.total.served_output_tokens += cy.served_output_tokens;
      cr.years.push_back(cy);
    }
    cr.total.average_devices = r.years.empty() ? 0 : cr.total.device_hours / (kHoursPerYear * r.years.size());
    r.capacity.push_back(std::move(cr));
  }

  // Cash flows.
  r.all_flows = f.flows;
  if (!f.buyer.empty() && !f.seller.empty())
    for (std::size_t y = 0; y < r.years.size(); ++y)
      r.all_flows.push_back({r.years[y], f.buyer, f.seller, "cloud", "the commitment (" + f.name + ")", r.usd_by_year[y], 0});
  std::set<std::string> parties;
  std::set<int> years;
  for (const Flow& fl : r.all_flows) {
    parties.insert(fl.from);
    parties.insert(fl.to);
    years.insert(fl.year);
  }
  r.parties.assign(parties.begin(), parties.end());
  r.flow_years.assign(years.begin(), years.end());
  for (const auto& p : r.parties) r.net[p] = std::vector<double>(r.flow_years.size(), 0.0);
  r.net_sum.assign(r.flow_years.size(), 0.0);
  for (const Flow& fl : r.all_flows) {
    const auto y = std::lower_bound(r.flow_years.begin(), r.flow_years.end(), fl.year) - r.flow_years.begin();
    r.net[fl.from][y] -= fl.usd;
    r.net[fl.to][y] += fl.usd;
  }
  for (const auto& p : r.parties)
    for (std::size_t y = 0; y < r.flow_years.size(); ++y) r.net_sum[y] += r.net[p][y];
  // Returns: every (investor, investee) pair with equity, and what flows back as revenue.
  for (const Flow& fl : r.all_flows) {
    if (fl.kind != "equity") continue;
    auto it = std::find_if(r.returns.begin(), r.returns.end(),
                           [&](const auto& x) { return x.investor == fl.from && x.investee == fl.to; });
    if (it == r.returns.end()) {
      r.returns.push_back({fl.from, fl.to, 0, 0});
      it = r.returns.end() - 1;
    }
    it->invested += fl.usd;
  }
  for (auto& ret : r.returns)
    for (const Flow& fl : r.all_flows)
      if (fl.from == ret.investee && fl.to == ret.investor && (fl.kind == "cloud" || fl.kind == "chips"))
        ret.returned += fl.usd;
  return r;
}

}  // namespace xpu
