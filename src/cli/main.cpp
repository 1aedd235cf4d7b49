// xpuplan: what it takes to train and serve large AI models on any vendor's accelerators.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.hpp"
#include "load/catalog.hpp"
#include "money/money.hpp"
#include "spec/error.hpp"
#include "units/units.hpp"
#include "util/build_info.hpp"
#include "util/paths.hpp"
#include "util/parallel.hpp"

namespace xpu::cli {

Catalog load_catalog(const Globals& g, std::optional<long> quote_day) {
  Catalog c = g.data_dir.empty() ? build_catalog(builtin_data_files(), "data") : build_catalog(read_data_dir(g.data_dir), g.data_dir);
  if (!g.prices.empty()) {
    // A quote is dated the day it is given (the clock's UTC date, or the command's --as-of): never stale.
    const auto now = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
    apply_price_quotes(c, g.prices, date_text(quote_day.value_or(now.time_since_epoch().count())));
  }
  return c;
}

int thread_count(int flag) {
  if (flag < 0) throw InputError("--threads", "must be at least 1 (or 0: every core)");
  if (flag > kMaxThreads) throw InputError("--threads", "at most " + std::to_string(kMaxThreads) + ", got " + std::to_string(flag));
  return flag > 0 ? flag : all_cores();
}

std::vector<std::string> split_ids(const std::string& list, const char* flag) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string id; std::getline(in, id, ',');) {
    if (id.empty()) continue;
    if (std::find(out.begin(), out.end(), id) != out.end()) throw InputError(flag, "'" + id + "' is given twice");
    out.push_back(id);
  }
  return out;
}

void note_context_window(const char* command, const Model& m, long seq_len, bool given) {
  if (m.max_seq_len > 0 && seq_len > m.max_seq_len)
    std::fprintf(stderr, "xpuplan %s: note: %s %ld exceeds %s's context window of %ld tokens (planned as a context-extension run)\n",
                 command, given ? "--seq-len" : "the default sequence length", seq_len, m.name.c_str(), m.max_seq_len);
}

void check_output_path(const std::string& path, const char* flag) {
  if (path.empty() || path == "-") return;
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(path, ec);
  if (ec) throw InputError(flag, "'" + path + "': cannot resolve the path");
  if (fs::is_directory(real, ec)) throw InputError(flag, "'" + path + "' is a directory");
  const fs::path dir = real.parent_path();
  if (!dir.empty() && !fs::is_directory(dir, ec)) throw InputError(flag, "'" + path + "': no folder " + dir.string());
}

namespace {
// Temporary files being written, for the signal handler to remove: Ctrl-C or a SIGTERM while a
// report is written had left a partial <out>.tmp.XXXXXX beside the (untouched) target.
constexpr int kTempSlots = 8;
char g_temp_path[kTempSlots][4096];
volatile std::sig_atomic_t g_temp_used[kTempSlots];

extern "C" void remove_temps_and_die(int sig) {
  for (int i = 0; i < kTempSlots; ++i)
    if (g_temp_used[i]) ::unlink(g_temp_path[i]);  // async-signal-safe
  std::signal(sig, SIG_DFL);
  std::raise(sig);  // die of the signal, as without the handler (exit status 128 + sig)
}
}  // namespace

void remember_temp(const std::string& path) {
  if (path.size() >= sizeof g_temp_path[0]) return;
  for (int i = 0; i < kTempSlots; ++i)
    if (!g_temp_used[i]) {
      std::memcpy(g_temp_path[i], path.c_str(), path.size() + 1);
      std::atomic_signal_fence(std::memory_order_release);  // the path before the flag, for the handler
      g_temp_used[i] = 1;
      return;
    }
}

void forget_temp(const std::string& path) {
  for (int i = 0; i < kTempSlots; ++i)
    if (g_temp_used[i] && path == g_temp_path[i]) g_temp_used[i] = 0;
}

void remove_temps_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = remove_temps_and_die;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    // A signal the process was started ignoring stays ignored (nohup's SIGHUP, a background job's
    // SIGINT): the handler would have made it fatal.
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

std::string write_fresh_file(std::string name, int suffix, const std::string& text, const std::string& what) {
  // Signals wait while the file is created and registered: one landing between the two had left
  // the new temporary file behind (the handler did not know it yet).
  sigset_t block, old;
  sigemptyset(&block);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&block, sig);
  ::pthread_sigmask(SIG_BLOCK, &block, &old);
  const int fd = ::mkstemps(name.data(), suffix);
  if (fd >= 0) remember_temp(name);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (fd < 0) throw InputError(what, "cannot create a temporary file beside it");
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);  // the mode a new file would get (mkstemps gives 0600)
  bool ok = true;
  for (std::size_t at = 0; ok && at < text.size();) {
    const ssize_t n = ::write(fd, text.data() + at, text.size() - at);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) at += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) ok = false;
  if (!ok) {
    std::error_code ec;
    std::filesystem::remove(name, ec);
    forget_temp(name);
    throw InputError(what, "write failed");
  }
  return name;
}

bool same_output(const std::string& a, const std::string& b) {
  const bool out_a = a.empty() || a == "-", out_b = b.empty() || b == "-";
  if (out_a || out_b) return out_a && out_b;
  namespace fs = std::filesystem;
  std::error_code ec;
  auto key = [&](const std::string& p) {
    const fs::path abs = fs::absolute(follow_links(p), ec).lexically_normal();
    const fs::path real = fs::weakly_canonical(abs, ec);
    return ec ? abs : real;
  };
  return key(a) == key(b);
}

void check_not_input(const std::string& path, const char* flag) {
  if (!flag || path.empty() || path == "-") return;
  std::error_code ec;
  // A regular file only: /dev/stdout and a terminal read as /dev/stdin may be one device.
  if (std::filesystem::is_regular_file(path, ec) && was_read_as_input(path))
    throw InputError(flag, "'" + path + "' is an input of this command: the output would replace it");
}

void write_output(const std::string& path, const std::string& text, const char* flag) {
  check_not_input(path, flag);
  if (path.empty() || path == "-") {
    std::cout << text;
    std::cout.flush();
    // A full disk or a closed pipe: the report did not arrive, so the run did not succeed.
    if (!std::cout) throw InputError("standard output", "write failed");
    return;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  // A symbolic link is written through (its target replaced, not the link); a FIFO or a device is
  // written straight to, where a temporary file and a rename would replace the node itself.
  const fs::path real = follow_links(path);
  const fs::file_status st = fs::status(real, ec);
  if (fs::is_directory(st)) throw InputError(path, "is a directory");
  if (fs::exists(st) && !fs::is_regular_file(st)) {
    std::ofstream out(real, std::ios::binary);
    if (!out) throw InputError(path, "cannot write file");
    out << text;
    out.flush();
    if (!out) throw InputError(path, "write failed");
    return;
  }
  // A fresh temporary name beside the target (never an existing file or link), so two writers of
  // one path each rename a whole file into place and a link planted at a fixed "<out>.tmp" is
  // never written through.
  const std::string tmp = write_fresh_file(real.string() + ".tmp.XXXXXX", 0, text, path);
  fs::rename(tmp, real, ec);
  if (ec) {
    fs::remove(tmp, ec);
    forget_temp(tmp);
    throw InputError(path, "cannot rename temporary file into place");
  }
  forget_temp(tmp);
}

namespace {

// Every number option of every command must be a finite decimal: CLI11 reads "inf" and "nan" as
// numbers (range checks of the form !(x > 0) let inf through), and "0x10" or "0x1p40" as
// hexadecimal, which no price, count or token figure is written in.
void require_finite_numbers(CLI::App& app) {
  static const CLI::Validator finite(
      [](std::string& s) -> std::string {
        if (s.find_first_of("xX") != std::string::npos) return "must be a decimal number, got '" + s + "'";
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (end != s.c_str() && !std::isfinite(v)) return "must be a finite number, got '" + s + "'";
        return {};  // a finite number, or not a number at all (CLI11's conversion error says so)
      },
      "FINITE");
  // (A validator with a name adds it to the type name: FLOAT:POSITIVE.)
  // An empty text value ("--out ''", "--row ''") is a mistake, not "absent": it printed to
  // standard output, reported every row, wrote nothing.
  static const CLI::Validator nonempty([](std::string& s) -> std::string { return s.empty() ? "must not be empty" : ""; }, "");
  for (CLI::Option* o : app.get_options()) {
    const std::string type = o->get_type_name();
    if (type.starts_with("FLOAT") || type.starts_with("INT") || type.starts_with("UINT")) o->check(finite);
    if (type.starts_with("TEXT")) o->check(nonempty);
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) require_finite_numbers(*sub);
}

}  // namespace

}  // namespace xpu::cli

int main(int argc, char** argv) {
  CLI::App app{
      "xpuplan: plans training and serving of large AI models on any vendor's accelerators (NVIDIA, AMD, AWS Trainium, "
      "Google TPU, Intel Gaudi), prices it (compare, budget, contract) and checks its predictions against published "
      "measurements."};
  app.require_subcommand(1);
  // The global options (--data, --price) may also follow the subcommand: subcommands created below
  // inherit this and pass an option they do not know up to the app.
  app.fallthrough();
  app.set_version_flag("--version", std::string("xpuplan ") + xpu::xpuplan_version() + " (source " + xpu::source_id() + ")");
  xpu::cli::Globals g;
  app.add_option("--data", g.data_dir, "Read the catalog from this directory of TOML files instead of the built-in one");
  app.add_option("--price", g.prices,
                 "SYSTEM[:KIND]=USD: a price quote per device-hour (e.g. gb200-nvl72=6.5, tpu-v5p:reserved-3y=2.1); "
                 "replaces the catalog's offers of that kind (default kind on-demand) for every command; repeatable")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  xpu::cli::add_train(app, g);
  xpu::cli::add_validate(app, g);
  xpu::cli::add_catalog(app, g);
  xpu::cli::add_calibrate(app, g);
  xpu::cli::add_search(app, g);
  xpu::cli::add_sweep(app, g);
  xpu::cli::add_compare(app, g);
  xpu::cli::add_budget(app, g);
  xpu::cli::add_contract(app, g);
  xpu::cli::add_serve(app, g);
  xpu::cli::require_finite_numbers(app);
  xpu::cli::remove_temps_on_signals();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::ConversionError& e) {
    // CLI11 says "Could not convert: --devices = 2147483648": name the option first, as every
    // other error does, and say why.
    std::string what = e.what();
    const std::string head = "Could not convert: ";
    const auto eq = what.find(" = ");
    if (what.rfind(head, 0) == 0 && eq != std::string::npos) {
      const std::string name = what.substr(head.size(), eq - head.size());
      std::string type;
      for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
        if (const CLI::Option* o = sub->get_option_no_throw(name); o && type.empty()) type = o->get_type_name();
      if (const CLI::Option* o = app.get_option_no_throw(name); o && type.empty()) type = o->get_type_name();
      const std::string kind = type.starts_with("INT") || type.starts_with("UINT")
                                   ? "a whole number up to " + std::to_string(std::numeric_limits<int>::max())
                               : type.starts_with("FLOAT")                        ? "a number"
                                                                                  : "a value of its type";
      what = name + ": '" + what.substr(eq + 3) + "' is not " + kind;
    }
    std::cerr << "xpuplan: error: " << what << "\n";
    return 2;
  } catch (const CLI::RequiredError& e) {
    // CLI11's "A subcommand is required": name the word given instead and the subcommands known.
    std::string what = e.what();
    if (what.find("A subcommand is required") != std::string::npos) {
      CLI::App* at = &app;
      while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
      std::string names;
      for (const CLI::App* sub : at->get_subcommands([](CLI::App*) { return true; }))
        names += (names.empty() ? "" : ", ") + sub->get_name();
      auto rest = at->remaining();
      if (rest.empty()) rest = app.remaining();  // a word after a subcommand can land in the root's leftovers
      std::erase(rest, std::string("--"));
      const std::string where = at == &app ? std::string() : at->get_name() + ": ";
      if (rest.empty()) what = where + "needs a subcommand (" + names + ")";
      else if (rest.front().starts_with("-"))
        what = where + "'" + rest.front() + "' is not an option here; give a subcommand (" + names + ")";
      else what = where + "'" + rest.front() + "' is not a subcommand (" + names + ")";
    }
    std::cerr << "xpuplan: error: " << what << "\n";
    return 2;
  } catch (const CLI::ParseError& e) {
    std::cerr << "xpuplan: error: " << e.what() << "\n";
    return 2;
  } catch (const xpu::InputError& e) {
    std::cerr << "xpuplan: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "xpuplan: internal error: " << e.what() << "\n";
    return 3;
  }
  return 0;
}
