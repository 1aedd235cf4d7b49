// Reading a sweep file (TOML; the format is in docs/SWEEP.md). Every problem (malformed TOML,
// an unknown key, a wrong type, an empty list, a non-positive size, a duplicate, an unknown model
// or system id, a cost objective without prices) is an InputError naming the file, the line and
// the key, raised before any scenario runs.
#pragma once

#include <map>
#include <string>

#include "load/catalog.hpp"
#include "sweep/sweep.hpp"

namespace xpu::sweep {

// The checked sweep and the models and systems it names, resolved (keys as written in the file).
struct SweepInputs {
  SweepSpec spec;
  std::map<std::string, Model> models;
  std::map<std::string, System> systems;
};

// Model and system paths (anything with a '/' or ending in .json / .toml) are read relative to
// the sweep file's folder unless absolute.
SweepInputs parse_sweep(const DataFile& f, const Catalog& c);

}  // namespace xpu::sweep
