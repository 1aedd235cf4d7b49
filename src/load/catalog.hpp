// The catalog: chips, systems, models and calibrations, parsed from TOML texts.
// This folder is the only code that reads files; the parse functions take (path, text) so tests
// and the built-in (embedded) catalog use the same path as files on disk.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "spec/hardware.hpp"
#include "spec/model.hpp"

namespace xpu {

struct DataFile {
  std::string path;  // as shown in errors, e.g. "data/chips/h100-sxm.toml"
  std::string text;
};

struct Catalog {
  std::map<std::string, Chip> chips;
  std::map<std::string, Calibration> calibrations;  // by chip id
  std::map<std::string, System> systems;            // chip and calibration resolved
  std::map<std::string, Model> models;
  std::optional<Site> site;                         // data/tco/site.toml; empty when absent
  std::map<std::string, ServingCalibration> serving;  // by chip id (a file names its chips)

  const System& system(const std::string& id) const;  // throws InputError naming --system
  const Model& model(const std::string& id) const;    // throws InputError naming --model
};

// Parses one file of each kind. Throws InputError("path: key", problem).
Chip parse_chip(const DataFile& f);
System parse_system(const DataFile& f);  // chip/calib unresolved
Model parse_model(const DataFile& f);
Calibration parse_calibration(const DataFile& f);
// data/serving/<family>.toml: serving-engine knobs and the chips they apply to (*chips gets them).
ServingCalibration parse_serving(const DataFile& f, std::vector<std::string>* chips);
// data/prices/<system-id>.toml: the offers in file order; *system_id (when not null) gets the
// file's id. Checks kind, devices >= 1, a positive "<n> USD/h" price and as_of (YYYY-MM[-DD]).
std::vector<PriceOffer> parse_prices(const DataFile& f, std::string* system_id);
// --price quotes, "SYSTEM[:KIND]=PRICE" each: PRICE is USD per device-hour, a bare number or a
// quantity ("6.5 USD/h"); KIND is on-demand (the default), reserved-1y, reserved-3y,
// capacity-block or spot. Each quote replaces the system's offers of that kind with one offer
// (provider "quote", instance and file "--price", as_of `as_of`). Throws InputError("--price", ...)
// for a malformed quote, an unknown system or kind, a price that is not positive, or a system and
// kind quoted twice.
void apply_price_quotes(Catalog& c, const std::vector<std::string>& quotes, const std::string& as_of);
// The system and price kind a --price quote (SYSTEM[:KIND]=USD) names; an InputError if it is not
// of that form (the kind and system are checked by apply_price_quotes).
struct PriceQuoteTarget {
  std::string system, kind;
};
PriceQuoteTarget price_quote_target(const std::string& quote);
// data/tco/<system-id>.toml: the ownership cost of one device; *system_id gets the file's id.
Ownership parse_ownership(const DataFile& f, std::string* system_id);
// data/tco/site.toml: amortisation, utilisation, PUE, electricity price, grid carbon intensity.
Site parse_site(const DataFile& f);

// Builds a catalog from files below a chips/, systems/, models/, calibration/, serving/, prices/
// or tco/ folder (the nearest such folder up from the file, looking no higher than `root`, the
// catalog's directory; a .toml below none is an error) (tco/site.toml: the site; any other: a
// system's ownership). Every system's
// chip must exist; a chip without a calibration file is an error; a
// prices file is attached to the system with its id (an unknown id is an error).
Catalog build_catalog(const std::vector<DataFile>& files, const std::string& root = "");

// The catalog compiled into the binary (data/ at build time).
const std::vector<DataFile>& builtin_data_files();
// Every *.toml under dir (recursively), read from disk, sorted by path.
std::vector<DataFile> read_data_dir(const std::string& dir);
// Reads a whole file; throws InputError(path, "cannot read ...").
DataFile read_file(const std::string& path);
// Whether `path` names a file (the same file: links and hard links followed, any spelling) that
// this process has read with read_file: an output written there would replace an input.
bool was_read_as_input(const std::string& path);

// A Hugging Face config.json (Llama, Mistral/Mixtral, Qwen2/3 (MoE), DeepSeek-V2/V3, GPT-2 keys).
Model parse_hf_config(const DataFile& f);

// --model: a catalog id, a path to config.json, or a path to a model TOML.
Model resolve_model(const Catalog& c, const std::string& arg);
// --system: a catalog id or a path to a system TOML (its chip must be in the catalog).
System resolve_system(const Catalog& c, const std::string& arg);

}  // namespace xpu
