#include "cli/money_flags.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "cli/commands.hpp"
#include "money/money.hpp"
#include "spec/error.hpp"
#include "util/paths.hpp"

namespace xpu::cli {

long MoneyFlags::today() const {
  if (!as_of.empty()) {
    const InputError bad("--as-of", "'" + as_of + "' is not a date (YYYY-MM-DD)");
    if (!is_iso_date(as_of, false)) throw bad;
    try {
      return day_number(as_of, "--as-of");
    } catch (const InputError&) {
      throw bad;  // a day the month does not have (2026-02-30): the same one-line form
    }
  }
  const auto now = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
  return now.time_since_epoch().count();
}

int MoneyFlags::thread_count() const {
  return cli::thread_count(threads);
}

void MoneyFlags::check_paths() const {
  check_output_path(out, "--out");
  check_output_path(plot, "--plot");
  if (!plot.empty() && plot != "-" && same_output(plot, out))  // "-" is refused by its extension
    throw InputError("--plot", "'" + plot + "' is also the --out file: the report would replace the chart");
}

void MoneyFlags::check_not_inputs() const {
  check_not_input(out, "--out");
  check_not_input(plot, "--plot");
}

void write_plot(const std::string& path, const std::vector<PlotPanel>& panels) {
  namespace fs = std::filesystem;
  const std::string ext = fs::path(path).extension().string();
  const int height = 360 * static_cast<int>(std::max<std::size_t>(1, panels.size())) + 80;
  std::string terminal;
  if (ext == ".png") terminal = "pngcairo size 1100," + std::to_string(height) + " font \",10\"";
  else if (ext == ".svg") terminal = "svg size 1100," + std::to_string(height) + " dynamic font \",10\"";
  else throw InputError("--plot", "'" + path + "': the chart's file name must end in .png or .svg");
  for (char c : path)
    if (c == '\'' || c == '"' || static_cast<unsigned char>(c) < 0x20 || c == 0x7F)
      throw InputError("--plot", "'" + path + "': no quotes or control characters (tab, newline) in the file name, please");
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    throw InputError("--plot", "gnuplot is not installed (Debian: apt-get install gnuplot-nox)");
  // Fresh temporary names (mkstemps: created exclusively), as write_output's: never an existing
  // file or a link planted at a fixed name, and two charts of one path do not share them. Every
  // one is removed on the way out, whatever the outcome (the chart is renamed away first).
  struct Temps {
    std::vector<std::string> paths;
    ~Temps() {
      std::error_code ec;
      for (const auto& p : paths) {
        std::filesystem::remove(p, ec);
        forget_temp(p);
      }
    }
  } temps;
  auto fresh = [&](const std::string& name, int suffix, const std::string& text = {}) {
    temps.paths.push_back(write_fresh_file(name, suffix, text, "--plot"));
    return temps.paths.back();
  };
  const std::string tmp_image = fresh(path + ".tmp.XXXXXX" + ext, static_cast<int>(ext.size()));
  const std::string err_path = fresh(path + ".gp.err.XXXXXX", 0);
  const std::string script_path = fresh(path + ".XXXXXX.gp", 3, gnuplot_script(panels, terminal, tmp_image));
  const int rc = std::system(("gnuplot '" + script_path + "' 2>'" + err_path + "'").c_str());
  std::error_code ec;
  std::string err;
  {
    std::ifstream in(err_path);
    std::getline(in, err);
  }
  if (rc != 0 || !fs::exists(tmp_image) || fs::file_size(tmp_image, ec) == 0)
    throw InputError("--plot", "gnuplot failed on the chart's script" + (err.empty() ? "" : ": " + err));
  // Through a symbolic link, as write_output; a FIFO or device would be replaced by the rename.
  const fs::path real = follow_links(path);
  if (fs::exists(real, ec) && !fs::is_regular_file(real, ec)) throw InputError("--plot", "'" + path + "' is not a regular file");
  fs::rename(tmp_image, real, ec);
  if (ec) throw InputError(path, "cannot rename the chart into place");
}

}  // namespace xpu::cli
