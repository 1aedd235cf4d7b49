// Charts as gnuplot scripts (text only; cli/plot.cpp writes the script, runs gnuplot and moves the
// image into place). One script holds its data inline, so it can be rerun by hand.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace xpu {

struct PlotSeries {
  std::string title;
  std::vector<std::optional<double>> y;  // one per x; empty = missing (not drawn)
};

// One panel: clustered bars over categories, or lines over numeric x.
struct PlotPanel {
  enum class Style { bars, lines };
  Style style = Style::bars;
  std::string title, xlabel, ylabel;
  std::vector<std::string> x;            // categories (bars) or numbers (lines)
  std::vector<PlotSeries> series;
  bool zero_line = false;                // draw y = 0
};

// terminal: a gnuplot "set terminal ..." argument ("pngcairo size 1000,700", "svg size 1000,700").
// Panels are stacked vertically.
std::string gnuplot_script(const std::vector<PlotPanel>& panels, const std::string& terminal, const std::string& output);

}  // namespace xpu
