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
  std::string fleet, systems, model, pricing = "on-demand";
  std::optional<double> usd, tokens;
  std::optional<int> devices;
  long seq_len = 8192, global_batch = 2048;
};
}  // namespace

void add_budget(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<BudgetOpts>();
  CLI::App* c = app.add_subcommand(
      "budget", "Money to compute: what a sum buys (device-hours, training runs, fleet months) and how long it lasts");
  c->add_option("--usd", o->usd, "The budget in USD (e.g. 10e9); default: the fleet file's usd");
  c->add_option("--fleet", o->fleet, "A fleet and training-schedule file (examples/budget/*.toml)");
  c->add_option("--systems", o->systems, "Also list what the budget buys on these systems (comma-separated ids)");
  c->add_option("--model", o->model, "With --tokens and --devices: how many training runs of this model the budget buys "
                                     "on each of --systems");
  c->add_option("--tokens", o->tokens, "Tokens per training run (with --model)");
  c->add_option("--devices", o->devices, "Devices per training run (with --model)");
  CLI::Option* run_opts[] = {c->add_option("--pricing", o->pricing, "Pricing of those runs (default on-demand)"),
                             c->add_option("--seq-len", o->seq_len, "Tokens per sequence of those runs (default 8192)"),
                             c->add_option("--global-batch", o->global_batch, "Sequences per step of those runs (default 2048)")};
  o->money.add_to(c);
  c->callback([o, &g, run_opts] {
    for (const CLI::Option* opt : run_opts)  // options of --model's runs: without it they would be ignored
      if (o->model.empty() && opt->count() > 0)
        throw InputError(opt->get_name(), "describes the training runs of --model, and no --model is given");
    o->money.check_paths();
    const Catalog cat = load_catalog(g, o->money.today());
    BudgetFile f;
    if (!o->fleet.empty()) f = parse_budget_file(read_file(o->fleet));
    else f.name = "priced on " + o->systems;
    if (o->fleet.empty() && o->systems.empty())
      throw InputError("--fleet", "give a fleet file (--fleet FILE) or systems to price (--systems a,b)");
    const double usd = o->usd ? *o->usd : f.usd.value_or(0.0);
    if (!o->usd && !f.usd) throw InputError("--usd", "no budget: give --usd or usd = \"... USD\" in the fleet file");
    const std::vector<std::string> systems = split_ids(o->systems, "--systems");
    for (const auto& id : systems) {  // an unknown id is an error of --systems, as compare says
      try {
        (void)cat.system(id);
      } catch (const InputError& e) {
        if (e.where() != "--system") throw;
        throw InputError("--systems", std::string(e.what()).substr(e.where().size() + 2));
      }
    }
    // --model: one run of it on each named system, priced but not part of the runway (0 a year).
    if (o->model.empty() && (o->tokens || o->devices))
      throw InputError(o->tokens ? "--tokens" : "--devices", "describes a training run of --model, and no --model is given");
    if (!o->model.empty()) {
      if (!o->tokens || !o->devices) throw InputError("--model", "needs --tokens and --devices");
      if (systems.empty()) throw InputError("--model", "needs --systems to run it on");
      const auto p = parse_pricing(o->pricing);
      if (!p) throw InputError("--pricing", "'" + o->pricing + "' is not on-demand, reserved-1y, reserved-3y, capacity-block, spot or owned");
      if (!(*o->tokens >= 1 && *o->tokens <= kMaxTokens)) throw InputError("--tokens", "must be a positive number of tokens, at most 1e18");
      if (*o->devices < 1) throw InputError("--devices", "must be at least 1");
      const std::string model_id = cat.model(o->model).id;  // a catalog id
      for (const auto& id : systems) {
        TrainingItem t;
        t.name = "one run of " + model_id;
        t.model = model_id;
        t.system = cat.system(id).id;
        t.devices = *o->devices;
        t.tokens = *o->tokens;
        t.runs_per_year = 0;
        t.seq_len = o->seq_len;
        t.global_batch = o->global_batch;
        t.pricing = *p;
        f.training.push_back(t);
      }
    }
    const long today = o->money.today();
    const BudgetResult r = plan_budget(cat, f, usd, systems, today, o->money.thread_count());
    o->money.check_not_inputs();
    if (!o->money.plot.empty()) {
      if (r.balance.empty()) throw InputError("--plot", "no runway to plot (no priced fleet or training line)");
      write_plot(o->money.plot, budget_plot(f, r));
    }
    if (o->money.json) write_output(o->money.out, budget_json(f, r, today, o->money.explain).dump(2) + "\n");
    else write_output(o->money.out, budget_text(f, r, today, o->money.explain));
  });
}

}  // namespace xpu::cli
