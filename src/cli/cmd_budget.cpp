#include <sstream>

#include "cli/commands.hpp"
#include "cli/money_flags.hpp"
#include "load/scenario.hpp"
#include "money/budget.hpp"
#include "report/money_format.hpp"
#include "spec/error.hpp"

namespace xpu::cli {

namespace {
struct BudgetOpts {
  MoneyFlags money;
  std::string fleet, systems;
  std::optional<double> usd;
};
}  // namespace

void add_budget(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<BudgetOpts>();
  CLI::App* c = app.add_subcommand(
      "budget", "Money to compute: what a sum buys (device-hours, training runs, fleet months) and how long it lasts");
  c->add_option("--usd", o->usd, "The budget in USD (e.g. 10e9); default: the fleet file's usd");
  c->add_option("--fleet", o->fleet, "A fleet and training-schedule file (examples/budget/*.toml)");
  c->add_option("--systems", o->systems, "Also list what the budget buys on these systems (comma-separated ids)");
  o->money.add_to(c);
  c->callback([o, &g] {
    const Catalog cat = load_catalog(g);
    BudgetFile f;
    if (!o->fleet.empty()) f = parse_budget_file(read_file(o->fleet));
    else f.name = "no fleet file";
    if (o->fleet.empty() && o->systems.empty())
      throw InputError("--fleet", "give a fleet file (--fleet FILE) or systems to price (--systems a,b)");
    const double usd = o->usd ? *o->usd : f.usd.value_or(0.0);
    if (!o->usd && !f.usd) throw InputError("--usd", "no budget: give --usd or usd = \"... USD\" in the fleet file");
    std::vector<std::string> systems;
    std::stringstream in(o->systems);
    for (std::string id; std::getline(in, id, ',');)
      if (!id.empty()) systems.push_back(id);
    const long today = o->money.today();
    const BudgetResult r = plan_budget(cat, f, usd, systems, today, o->money.thread_count());
    if (!o->money.plot.empty()) {
      if (r.balance.empty()) throw InputError("--plot", "no runway to plot (no priced fleet or training line)");
      write_plot(o->money.plot, budget_plot(f, r));
    }
    if (o->money.json) write_output(o->money.out, budget_json(f, r, today, o->money.explain).dump(2) + "\n");
    else write_output(o->money.out, budget_text(f, r, today, o->money.explain));
  });
}

}  // namespace xpu::cli
