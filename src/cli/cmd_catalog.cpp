#include "cli/commands.hpp"
#include "report/format.hpp"

namespace xpu::cli {

void add_catalog(CLI::App& app, const Globals& g) {
  CLI::App* c = app.add_subcommand("catalog", "List or show the built-in systems, chips and models");
  c->require_subcommand(1);
  auto json = std::make_shared<bool>(false);
  CLI::App* list = c->add_subcommand("list", "Every system and model, one line each");
  auto out = std::make_shared<std::string>();
  list->add_flag("--json", *json, "Machine-readable list");
  list->add_option("--out", *out, "Write the list to this file (atomically) instead of stdout");
  list->callback([json, out, &g] {
    const Catalog cat = load_catalog(g);
    write_output(*out, *json ? catalog_json(cat).dump(2) + "\n" : catalog_text(cat));
  });
  auto id = std::make_shared<std::string>();
  auto json2 = std::make_shared<bool>(false);
  CLI::App* show = c->add_subcommand("show", "Every figure of one system, chip or model, with its source");
  show->add_option("id", *id, "System, chip or model id; system:ID, model:ID or chip:ID where an id names two (tpu-v5p is a pod and its chip)")->required();
  auto out2 = std::make_shared<std::string>();
  show->add_flag("--json", *json2, "Machine-readable");
  show->add_option("--out", *out2, "Write the figures to this file (atomically) instead of stdout");
  show->callback([id, json2, out2, &g] {
    const Catalog cat = load_catalog(g);
    write_output(*out2, *json2 ? catalog_item_json(cat, *id).dump(2) + "\n" : catalog_item_text(cat, *id));
  });
}

}  // namespace xpu::cli
