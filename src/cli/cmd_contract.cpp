#include "cli/commands.hpp"
#include "cli/money_flags.hpp"
#include "load/scenario.hpp"
#include "money/contract.hpp"
#include "report/money_format.hpp"

namespace xpu::cli {

namespace {
struct ContractOpts {
  MoneyFlags money;
  std::string file;
};
}  // namespace

void add_contract(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<ContractOpts>();
  CLI::App* c = app.add_subcommand(
      "contract", "A capacity commitment in device-hours, FLOPs and training runs per year; a deal's cash flows");
  c->add_option("file", o->file, "Contract file (examples/contracts/*.toml)")->required();
  o->money.add_to(c);
  c->callback([o, &g] {
    o->money.check_paths();
    const Catalog cat = load_catalog(g, o->money.today());
    const ContractFile f = parse_contract_file(read_file(o->file));
    const long today = o->money.today();
    const ContractResult r = evaluate_contract(cat, f, today, o->money.thread_count());
    o->money.check_not_inputs();
    if (!o->money.plot.empty()) write_plot(o->money.plot, contract_plot(f, r));
    if (o->money.json) write_output(o->money.out, contract_json(f, r, today, o->money.explain).dump(2) + "\n");
    else write_output(o->money.out, contract_text(f, r, today, o->money.explain));
  });
}

}  // namespace xpu::cli
