#include <cmath>
#include <optional>
#include <cstdio>

#include "cli/commands.hpp"
#include "money/money.hpp"
#include "cli/plan_flags.hpp"
#include "report/format.hpp"
#include "search/search.hpp"
#include "spec/error.hpp"

namespace xpu::cli {

namespace {
struct SearchOpts {
  PlanFlags plan;
  std::string out, objective = "time";
  int top = 10, threads = 0;
  std::optional<int> min_devices, max_devices;
  std::vector<std::string> no_prune;
  std::optional<double> usd;
  bool json = false;
};

// The system's most recent on-demand USD per device-hour (0 when the catalog has no price).
double system_usd_per_device_hour(const System& s) {
  const PriceOffer* p = s.price("on-demand");
  return p ? p->usd_per_device_hour() : 0.0;
}

// USD per optimizer step at a device-hour price (the table's USD/step and --json's cost_per_step_usd).
double usd_per_step(const TrainReport& r, double usd_per_device_hour) {
  return r.devices * r.step_time / 3600.0 * usd_per_device_hour;
}

std::vector<std::string> plan_row(const TrainReport& r, double usd) {
  auto f = format_number;
  return {std::to_string(r.devices), layout_summary(r.layout), format_seconds(Seconds{r.step_time}),
          f("%.1f", r.tokens_per_s_per_device), f("%.1f%%", 100 * r.mfu),
          format_bytes(Bytes{r.mem.total()}) + " / " + format_bytes(Bytes{r.mem.capacity}),
          usd > 0 ? f(usd_per_step(r, usd) < 0.995 ? "%.3g" : "%.2f", usd_per_step(r, usd)) : "-"};  // cents would read 0.00
}
}  // namespace

void add_search(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<SearchOpts>();
  CLI::App* c = app.add_subcommand("search", "Search every layout (and device count) for the best plans and the Pareto front");
  o->plan.add_to(c, "searched if omitted");
  c->add_option("--objective", o->objective, "time | cost | tokens-per-dollar | memory-headroom (default time)");
  c->add_option("--top", o->top, "How many plans to list (default 10)");
  c->add_option("--min-devices", o->min_devices, "Also search device counts (besides --devices, always searched) from this ...");
  c->add_option("--max-devices", o->max_devices, "... to this (node size x powers of two, and whole scale-up domains x powers of two where a domain spans nodes: NVL72 racks of 72)");
  c->add_option("--threads", o->threads, "Worker threads (0 or omitted: every core; at most 1024); the answer does not depend on it");
  c->add_option("--no-prune", o->no_prune, "Switch a pruning pass off: divisibility | memory | dominance (repeatable)");
  c->add_option("--usd-per-device-hour", o->usd, "Price for cost objectives (default: the system's on-demand price)");
  c->add_flag("--json", o->json, "Machine-readable result (docs/OUTPUT.md)");
  c->add_option("--out", o->out, "Write the result to this file (atomically) instead of stdout");
  c->callback([o, &g] {
    check_output_path(o->out, "--out");  // before the search, so a bad path is the only line
    const Catalog cat = load_catalog(g);
    const Model m = resolve_model(cat, o->plan.model);
    const System s = resolve_system(cat, o->plan.system);
    const PlanRequest q = o->plan.request(m);
    SearchOptions so;
    auto obj = parse_objective(o->objective);
    if (!obj) throw InputError("--objective", "'" + o->objective + "' is not time, cost, tokens-per-dollar or memory-headroom");
    so.objective = *obj;
    so.top_k = o->top;
    so.threads = thread_count(o->threads);
    so.min_devices = o->min_devices;
    so.max_devices = o->max_devices;
    for (const auto& n : o->no_prune) {
      if (n == "divisibility") so.prune_divisibility = false;
      else if (n == "memory") so.prune_memory = false;
      else if (n == "dominance") so.prune_dominance = false;
      else throw InputError("--no-prune", "'" + n + "' is not divisibility, memory or dominance");
    }
    if (o->usd && !(*o->usd > 0 && std::isfinite(*o->usd)))
      throw InputError("--usd-per-device-hour", "must be a positive number of US dollars");
    if (o->usd)
      if (const std::string why = usd_rate_problem(*o->usd); !why.empty()) throw InputError("--usd-per-device-hour", why);
    so.usd_per_device_hour = o->usd ? *o->usd : system_usd_per_device_hour(s);
    const SearchResult res = search(m, s, q, so);
    note_context_window("search", m, q.work.seq_len);  // once the inputs are known good (an error is one line)
    const SearchStats& st = res.stats;
    if (o->json) {
      nlohmann::ordered_json j;
      j["model"] = m.id;
      j["system"] = s.id;
      j["objective"] = objective_name(so.objective);
      j["usd_per_device_hour"] = so.usd_per_device_hour > 0 ? nlohmann::ordered_json(round6(so.usd_per_device_hour)) : nlohmann::ordered_json(nullptr);  // 6 significant digits, as every figure
      nlohmann::ordered_json top = nlohmann::ordered_json::array(), front = nlohmann::ordered_json::array();
      // Each plan with the cost the table ranks by (USD/step), where a price is known; null otherwise.
      auto plan_json = [&](const TrainReport& r) {
        auto x = train_json(m, s, r, false);
        x["cost_per_step_usd"] = so.usd_per_device_hour > 0 && r.step_time > 0
                                     ? nlohmann::ordered_json(round6(usd_per_step(r, so.usd_per_device_hour)))
                                     : nlohmann::ordered_json(nullptr);
        return x;
      };
      for (const auto& r : res.top) top.push_back(plan_json(r));
      for (const auto& r : res.pareto) front.push_back(plan_json(r));
      j["top"] = top;
      j["pareto"] = front;
      j["counts"] = {{"considered", st.considered}, {"pruned_divisibility", st.pruned_divisibility},
                     {"pruned_memory", st.pruned_memory}, {"pruned_dominance", st.pruned_dominance},
                     {"evaluated", st.evaluated}, {"feasible", st.feasible}};
      write_output(o->out, j.dump(2) + "\n");
      return;
    }
    std::string text = "xpuplan search: " + m.name + " on " + s.name + ", objective " + objective_name(so.objective) + "\n\n";
    const std::vector<std::string> head = {"devices", "layout", "step", "tok/s/dev", "MFU", "memory", "USD/step"};
    std::vector<std::vector<std::string>> rows;
    int rank = 0;
    for (const auto& r : res.top) {
      auto row = plan_row(r, so.usd_per_device_hour);
      row.insert(row.begin(), std::to_string(++rank));
      rows.push_back(row);
    }
    std::vector<std::string> h2 = head;
    h2.insert(h2.begin(), "#");
    text += rows.empty() ? "no plan fits" +
                               (q.zero_group > 0 ? " (--zero-group " + std::to_string(q.zero_group) +
                                                       ": only layouts whose dp x cp it divides are tried)"
                                                 : std::string()) +
                               "\n"
                         : render_table(h2, rows);
    std::vector<std::vector<std::string>> prow;
    for (const auto& r : res.pareto) prow.push_back(plan_row(r, so.usd_per_device_hour));
    text += "\nPareto front (step time vs memory headroom" + std::string(so.usd_per_device_hour > 0 ? " vs cost" : "") + "): " +
            std::to_string(res.pareto.size()) + " plans\n" + render_table(head, prow);
    text += "\nlayouts considered " + std::to_string(st.considered) + "; pruned: divisibility " +
            std::to_string(st.pruned_divisibility) + ", memory " + std::to_string(st.pruned_memory) + ", dominance " +
            std::to_string(st.pruned_dominance) + "; evaluated " + std::to_string(st.evaluated) + ", feasible " +
            std::to_string(st.feasible) + "\n";
    std::fprintf(stderr, "search: %.3f s, %.2f M layouts/s considered, %.2f M evaluations/s, %d threads\n", st.seconds,
                 st.considered / st.seconds / 1e6, st.evaluated / st.seconds / 1e6, so.threads);
    write_output(o->out, text);
  });
}

}  // namespace xpu::cli
