// One function per subcommand; main.cpp wires them into CLI11 and turns InputError into a
// one-line message with exit code 2.
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "load/catalog.hpp"

namespace xpu::cli {

struct Globals {
  std::string data_dir;  // empty: the built-in catalog
  std::vector<std::string> prices;  // --price quotes, applied to the catalog (apply_price_quotes)
};

// The catalog for this run: data_dir's TOML files, or the one compiled in.
// quote_day: the date --price quotes carry (days since 1970-01-01), the money commands' --as-of
// so that a pinned run does not age with the clock; default the clock's UTC date.
Catalog load_catalog(const Globals& g, std::optional<long> quote_day = std::nullopt);

// Writes text to a file atomically (temp file + rename), or to stdout when path is empty or "-".
// A symbolic link is written through; a FIFO or device is written to directly.
// A file this command read is refused (check_not_input), named as `flag`; flag nullptr: a file
// the command means to replace (calibrate rewriting the calibration files it read).
void write_output(const std::string& path, const std::string& text, const char* flag = "--out");
// Throws InputError(flag) when an output path cannot be written: a directory, or a file in a
// folder that does not exist. Commands that write two files check both before writing either.
void check_output_path(const std::string& path, const char* flag);
// Throws InputError(flag) when path is a file this command has read (a model, system, trace,
// fleet, contract or catalog file): the output would replace its own input. write_output checks
// it too; a command writing two files checks both before writing either.
void check_not_input(const std::string& path, const char* flag);
// Whether two output paths name one file (links followed, any spelling: ./x, an absolute path).
// Standard output ("" or "-") is one "file" too.
bool same_output(const std::string& a, const std::string& b);
// Creates a file of a fresh name from `name` (mkstemps: its last 6 characters before `suffix`
// characters are XXXXXX; created exclusively, never an existing file or link), writes `text`
// into it and returns the name; errors name `what`.
std::string write_fresh_file(std::string name, int suffix, const std::string& text, const std::string& what);
// The temporary files a SIGINT, SIGTERM or SIGHUP removes before the process dies of it:
// write_fresh_file remembers each; whoever renames or removes one forgets it.
void remember_temp(const std::string& path);
void forget_temp(const std::string& path);
void remove_temps_on_signals();  // installs the handlers (main)

// A latency SLO flag's check: given, it must be positive (left out, there is no SLO; 0 had read as
// none, silently).
inline const CLI::Validator kPositiveSlo(
    [](std::string& v) -> std::string {
      char* end = nullptr;
      const double x = std::strtod(v.c_str(), &end);
      if (end != v.c_str() && std::isfinite(x) && !(x > 0))  // (inf and nan: the finite-number check)
        return "must be positive, got '" + v + "' (leave it out for no SLO)";
      return {};
    },
    "POSITIVE");

// A comma-separated list of ids (--systems a,b): empty items dropped; an id given twice is an
// InputError naming the flag.
std::vector<std::string> split_ids(const std::string& list, const char* flag);

// A training sequence longer than the model's context window is a context-extension run: planned as
// asked, with a note on stderr (train, search, compare).
// given = false: the command's default length, not a --seq-len the user gave.
void note_context_window(const char* command, const Model& m, long seq_len, bool given = true);

// A --threads flag's value: 0 (or not given) is every core; below 0 or above kMaxThreads is an
// InputError.
inline constexpr int kMaxThreads = 1024;
int thread_count(int flag);

// The run-facts file for a truth table: `given` when not empty; else <truth>.facts.csv beside it
// when that exists; "" when none (or when `ignore`).
std::string run_facts_path(const std::string& truth, const std::string& given, bool ignore);
// Do two paths name one file (or one folder)? False when either cannot be resolved.
bool same_file(const std::string& a, const std::string& b);

void add_train(CLI::App& app, const Globals& g);
void add_validate(CLI::App& app, const Globals& g);
void add_catalog(CLI::App& app, const Globals& g);
void add_calibrate(CLI::App& app, const Globals& g);
void add_search(CLI::App& app, const Globals& g);
void add_sweep(CLI::App& app, const Globals& g);
void add_compare(CLI::App& app, const Globals& g);
void add_budget(CLI::App& app, const Globals& g);
void add_contract(CLI::App& app, const Globals& g);
void add_serve(CLI::App& app, const Globals& g);

}  // namespace xpu::cli
