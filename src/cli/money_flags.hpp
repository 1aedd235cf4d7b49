// Flags shared by the money commands (compare, budget, contract): --as-of, --plot, --json, --explain,
// --out, --threads; and the chart writer.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "report/plot.hpp"

namespace xpu::cli {

struct MoneyFlags {
  std::string as_of, plot, out;
  bool json = false, explain = false;
  int threads = 0;

  void add_to(CLI::App* c) {
    c->add_option("--as-of", as_of,
                  "Today's date (YYYY-MM-DD; default: the clock's date): each price is the latest offer dated on or "
                  "before it (a month-only date counts from the 1st), and offers older than a year are flagged");
    c->add_option("--plot", plot, "Write a chart to this file: .png or .svg (needs gnuplot)");
    c->add_flag("--json", json, "Machine-readable result (docs/OUTPUT.md)");
    c->add_flag("--explain", explain, "Trace every dollar figure to its price row and predicted plan");
    c->add_option("--out", out, "Write the result to this file (atomically) instead of stdout");
    c->add_option("--threads", threads, "Search threads (0 or omitted: every core; at most 1024); the answer does not depend on it");
  }
  // --as-of as a day number (the clock's UTC date when absent).
  long today() const;
  // --out and --plot can be written (checked before either is, so a bad one leaves no other file).
  void check_paths() const;
  // Neither --out nor --plot names a file the command read (checked once inputs are read, before
  // either output is written).
  void check_not_inputs() const;
  int thread_count() const;
};

// Writes the panels as a chart to path (.png or .svg by extension): a gnuplot script is run into a
// temporary file that is renamed into place. Throws InputError("--plot", ...) when gnuplot is
// missing or fails.
void write_plot(const std::string& path, const std::vector<PlotPanel>& panels);

}  // namespace xpu::cli
