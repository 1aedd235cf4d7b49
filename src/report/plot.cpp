#include "report/plot.hpp"

#include "units/units.hpp"

#include <cstdio>

namespace xpu {

namespace {
// A gnuplot double-quoted string: quote and backslash escaped; a control character (which gnuplot
// strings cannot escape as \uXXXX, as TOML's can) becomes a space.
std::string quoted(const std::string& v) {
  std::string clean = v;
  for (char& c : clean)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  return double_quoted(clean);
}

std::string num(double v) { return format_number("%.6g", v); }
}  // namespace

std::string gnuplot_script(const std::vector<PlotPanel>& panels, const std::string& terminal, const std::string& output) {
  std::string s = "# written by xpuplan; rerun with: gnuplot THIS_FILE\n";
  s += "set terminal " + terminal + "\nset output " + quoted(output) + "\nset datafile missing \"?\"\n";
  s += "set grid ytics\nset key outside right top\nset border 3\nset tics nomirror\n";
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const PlotPanel& pl = panels[p];
    s += "$d" + std::to_string(p) + " << EOD\n";
    for (std::size_t i = 0; i < pl.x.size(); ++i) {
      s += pl.style == PlotPanel::Style::bars ? quoted(pl.x[i]) : pl.x[i];
      for (const auto& se : pl.series) s += " " + (i < se.y.size() && se.y[i] ? num(*se.y[i]) : std::string("?"));
      s += "\n";
    }
    s += "EOD\n";
  }
  if (panels.size() > 1) s += "set multiplot layout " + std::to_string(panels.size()) + ",1\n";
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const PlotPanel& pl = panels[p];
    const std::string d = "$d" + std::to_string(p);
    s += "set title " + quoted(pl.title) + "\nset xlabel " + quoted(pl.xlabel) + "\nset ylabel " + quoted(pl.ylabel) + "\n";
    if (pl.style == PlotPanel::Style::bars) {
      s += "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
           "set boxwidth 0.9\nset xtics rotate by -20\nset yrange [0:*]\n";
      // Every category keeps its slot, also when its last values are missing.
      s += "set xrange [-0.5:" + num(static_cast<double>(pl.x.size()) - 0.5) + "]\n";
    } else {
      s += "set style data lines\nset xtics norotate\nset autoscale xy\n";
    }
    s += "plot ";
    for (std::size_t k = 0; k < pl.series.size(); ++k) {
      if (k) s += ", ";
      const std::string col = std::to_string(k + 2);
      if (pl.style == PlotPanel::Style::bars)
        s += (k ? "''" : d) + " using " + col + (k ? "" : ":xtic(1)") + " title " + quoted(pl.series[k].title);
      else
        s += d + " using 1:" + col + " with linespoints lw 2 title " + quoted(pl.series[k].title);
    }
    if (pl.zero_line) s += ", 0 with lines lc rgb \"black\" dt 2 notitle";
    s += "\n";
  }
  if (panels.size() > 1) s += "unset multiplot\n";
  return s;
}

}  // namespace xpu
