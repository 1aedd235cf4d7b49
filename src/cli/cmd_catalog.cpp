#include "cli/commands.hpp"
#include "report/format.hpp"

namespace xpu::cli {

void add_catalog(CLI::App& app, const Globals& g) {
  CLI::App* c = app.add_subcommand("catalog", "List or show the built-in systems, chips and models");
  c->require_subcommand(1);
  auto json = std::make_shared<bool>(false);
  CLI::App* list = c->add_subcommand("list", "Every system and model, one line each");
  list->add_flag("--json", *json, "Machine-readable list");
  list->callback([json, &g] {
    const Catalog cat = load_catalog(g);
    write_output("", *json ? catalog_json(cat).dump(2) + "\n" : catalog_text(cat));
  });
  auto id = std::make_shared<std::string>();
  auto json2 = std::make_shared<bool>(false);
  CLI::App* show = c->add_subcommand("show", "Every figure of one system, chip or model, with its source");
  show->add_option("id", *id, "System, chip or model id; system:ID, model:ID or chip:ID where an id names two (tpu-v5p is a pod and its chip)")->required();
  show->add_flag("--json", *json2, "Machine-readable");
  show->callback([id, json2, &g] {
    const Catalog cat = load_catalog(g);
    write_output("", *json2 ? catalog_item_json(cat, *id).dump(2) + "\n" : catalog_item_text(cat, *id));
  });
}

}  // namespace xpu::cli
