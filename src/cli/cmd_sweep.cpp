// xpuplan sweep FILE.toml --db results.sqlite [--threads N]: every scenario of a grid searched
// and written to SQLite, resumable, on threads or across MPI ranks (mpirun -np K xpuplan sweep ...).
// xpuplan sweep export --db results.sqlite --table best_plans [--csv out.csv]: one table as CSV.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <set>
#include <string_view>

#include "cli/commands.hpp"
#include "spec/error.hpp"
#include "sweep/mpi_driver.hpp"
#include "sweep/store.hpp"
#include "sweep/sweep_file.hpp"
#include "util/build_info.hpp"
#include "util/fingerprint.hpp"
#include "util/parallel.hpp"

namespace xpu::cli {

namespace {

using namespace xpu::sweep;
using Clock = std::chrono::steady_clock;

struct SweepOpts {
  std::string file, db;
  int threads = 0;
};

struct ExportOpts {
  std::string db, table, csv;
};

// What the results depend on besides the sweep's settings: the catalog's files (built-in or
// --data, named relative to its folder), the files of models and systems the sweep names by path,
// and the build (version and source id: other code may rank plans differently). A resumed sweep
// must see the same inputs, or its old and new rows would disagree. FNV-1a over names and
// contents, in hex.
std::string inputs_fingerprint(const Globals& g, const SweepInputs& in) {
  Fingerprint fp;
  fp.add(xpuplan_version());
  fp.add(source_id());
  for (const auto& quote : g.prices) fp.add("--price " + quote);  // a quote changes every cost column
  const std::vector<DataFile> files = g.data_dir.empty() ? builtin_data_files() : read_data_dir(g.data_dir);
  const std::string root = g.data_dir.empty() ? std::string("data/") : g.data_dir + "/";
  std::set<std::string> catalog_paths;
  for (const auto& f : files) {
    catalog_paths.insert(f.path);
    fp.add(f.path.starts_with(root) ? f.path.substr(root.size()) : f.path);
    fp.add(f.text);
  }
  auto add_file = [&](const std::string& name, const std::string& path) {
    if (path.empty() || catalog_paths.contains(path)) return;
    fp.add(name);
    fp.add(read_file(path).text);
  };
  for (const auto& [name, m] : in.models) add_file(name, m.file);
  for (const auto& [name, sys] : in.systems) add_file(name, sys.file);
  return fp.hex();
}

std::string duration_text(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  long t = static_cast<long>(s + 0.5);
  char b[32];
  if (s < 10) std::snprintf(b, sizeof b, "%.1f s", s);
  else if (t < 60) std::snprintf(b, sizeof b, "%ld s", t);
  else if (t < 3600) std::snprintf(b, sizeof b, "%ld:%02ld", t / 60, t % 60);
  else std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  return b;
}

std::string text_of(const Value& v) {
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  return csv_field(v);
}

// Progress on stderr: one line redrawn in place on a terminal, plain lines otherwise.
class Progress {
 public:
  Progress(long total, long skipped, long to_run)
      : total_(total), skipped_(skipped), to_run_(to_run), tty_(isatty(STDERR_FILENO) == 1), start_(Clock::now()) {}

  void finished(const ScenarioRecord& r) {
    ++run_;
    const auto& t = scenarios_table();
    const std::string status = text_of(r.scenario[t.column("status")]);
    if (status == "ok") ++ok_;
    else if (status == "infeasible") ++infeasible_;
    else ++error_;
    const auto now = Clock::now();
    const bool last = run_ == to_run_;
    if (tty_) {
      if (!last && now - last_print_ < std::chrono::milliseconds(100)) return;
      last_print_ = now;
      const int width = 24;
      const long done = skipped_ + run_;
      const int fill = total_ > 0 ? static_cast<int>(width * done / total_) : width;
      std::string bar = "[" + std::string(fill, '#') + std::string(width - fill, '.') + "]";
      std::string counts;
      if (infeasible_ > 0) counts += ", " + std::to_string(infeasible_) + " infeasible";
      if (error_ > 0) counts += ", " + std::to_string(error_) + (error_ == 1 ? " error" : " errors");
      std::fprintf(stderr, "\r\x1b[Ksweep: %s %ld/%ld scenarios (%ld skipped)%s, %s", bar.c_str(), done, total_,
                   skipped_, counts.c_str(),
                   last ? ("done in " + duration_text(elapsed())).c_str() : ("ETA " + eta()).c_str());
      if (last) std::fputc('\n', stderr);
      std::fflush(stderr);
      return;
    }
    if (!last && to_run_ > 200 && now - last_print_ < std::chrono::seconds(1)) return;
    last_print_ = now;
    std::string what = status;
    if (status == "ok") what += ", " + text_of(r.scenario[t.column("best_step_time_s")]) + " s/step";
    else if (status == "error") what += ": " + text_of(r.scenario[t.column("reason")]);
    std::fprintf(stderr, "sweep: %ld/%ld scenarios (%ld skipped) %s: %s, %s\n", skipped_ + run_, total_, skipped_,
                 r.key.c_str(), what.c_str(), last ? ("done in " + duration_text(elapsed())).c_str() : ("ETA " + eta()).c_str());
    std::fflush(stderr);
  }

  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  long ok() const { return ok_; }
  long infeasible() const { return infeasible_; }
  long errors() const { return error_; }
  long run() const { return run_; }

 private:
  std::string eta() const {
    if (run_ == 0) return "?";
    return duration_text(elapsed() / static_cast<double>(run_) * static_cast<double>(to_run_ - run_));
  }
  long total_, skipped_, to_run_;
  bool tty_;
  Clock::time_point start_, last_print_{};
  long run_ = 0, ok_ = 0, infeasible_ = 0, error_ = 0;
};

// Prices decide the ranking only for cost objectives; then a database holds one set of them.
// The prices of the cost columns, whatever the objective ranks by: a resume at other prices would
// mix them in one database.
std::string prices_text(const SweepSpec& s) {
  std::string out;
  for (const auto& [sys, p] : s.usd_per_device_hour) out += (out.empty() ? "" : ",") + sys + "=" + csv_field(Value(p));
  return out.empty() ? "(no price)" : out;
}

void run_sweep(const SweepOpts& o, const Globals& g) {
  // Checked before anything is opened, so a bad value leaves no database behind.
  if (o.threads < 0) throw InputError("--threads", "must be at least 1 (or 0: every core)");
  if (o.threads > kMaxThreads) throw InputError("--threads", "at most " + std::to_string(kMaxThreads) + ", got " + std::to_string(o.threads));
  Cluster cl = cluster_start();
  struct Stop {
    Cluster& c;
    ~Stop() { cluster_stop(c); }
  } stop{cl};
  const bool root = cl.rank == 0;

  // Set-up: every rank reads and checks the sweep; rank 0 opens the database and finds what is
  // left to do. Any failure stops every rank before work starts; the first failing rank says why.
  std::optional<SweepInputs> in;
  std::vector<Scenario> all;
  std::optional<Store> store;
  std::vector<long> pending;
  std::exception_ptr setup_error;
  try {
    if (o.file.empty()) throw InputError("sweep", "a sweep file is required: xpuplan sweep FILE.toml --db results.sqlite");
    if (o.db.empty()) throw InputError("--db", "required: the results database (SQLite), e.g. --db results.sqlite");
    const Catalog cat = load_catalog(g);
    in = parse_sweep(read_file(o.file), cat);
    // An on-demand --price quote for a system the file prices itself would be silently outranked.
    for (const std::string& quote : g.prices) {
      const PriceQuoteTarget t = price_quote_target(quote);
      if (t.kind == "on-demand" && in->spec.priced_in_file.contains(t.system))
        throw InputError("--price", "'" + quote + "': " + o.file + " prices " + t.system +
                                        " itself (search.usd_per_device_hour), which the sweep uses: give one or the other");
    }
    all = expand(in->spec);
    if (root) {
      store.emplace(Store::open_for_writing(o.db));
      const SweepSpec& s = in->spec;
      store->claim({{"schema_version", "2"},
                    {"sweep_name", s.name},
                    {"objective", objective_name(s.objective)},
                    {"top_k", std::to_string(s.top_k)},
                    {"usd_per_device_hour", prices_text(s)},
                    {"inputs_fingerprint", inputs_fingerprint(g, *in)}},
                   {{"xpuplan_version", xpuplan_version()}, {"xpuplan_source", source_id()}});
      const auto done = store->keys();
      for (const auto& sc : all)
        if (!done.contains(sc.key)) pending.push_back(sc.index);
    }
  } catch (...) {
    setup_error = std::current_exception();
  }
  const std::vector<bool> oks = cluster_all_ok(cl, !setup_error);
  for (int r = 0; r < static_cast<int>(oks.size()); ++r) {
    if (oks[r]) continue;
    if (r == cl.rank) std::rethrow_exception(setup_error);  // the first failing rank reports
    throw CLI::RuntimeError(2);                             // the others exit quietly
  }
  pending = cluster_broadcast(cl, pending);

  const long total = static_cast<long>(all.size());
  const long to_run = static_cast<long>(pending.size());
  std::vector<Scenario> mine;
  for (size_t i = 0; i < pending.size(); ++i)
    if (static_cast<int>(i % static_cast<size_t>(cl.size)) == cl.rank) mine.push_back(all[static_cast<size_t>(pending[i])]);
  int threads = o.threads;
  if (threads <= 0) threads = cl.size > 1 ? 1 : all_cores();
  threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), std::max<size_t>(mine.size(), 1)));

  Progress progress(total, total - to_run, to_run);
  if (root) {
    if (to_run == 0) {
      std::fprintf(stderr, "sweep: %ld/%ld scenarios (%ld skipped), nothing to run\n", total, total, total);
    } else {
      std::fprintf(stderr, "sweep: %s: %ld scenarios, %ld already in %s, %ld to run on %d %s x %d %s\n",
                   in->spec.name.c_str(), total, total - to_run, o.db.c_str(), to_run, cl.size,
                   cl.size == 1 ? "process" : "MPI ranks", threads, threads == 1 ? "thread" : "threads");
    }
    std::fflush(stderr);
  }

  const SweepInputs& inputs = *in;
  auto work = [&inputs](const Scenario& sc) {
    return run_scenario(inputs.models.at(sc.model), inputs.systems.at(sc.system), sc, inputs.spec);
  };
  auto done = [&](ScenarioRecord&& r) {
    store->write(r);
    progress.finished(r);
  };
  try {
    run_cluster(cl, mine, threads, work, done);
  } catch (const std::exception& e) {
    if (root && cl.size > 1) {
      // Other ranks may be blocked sending to this one: report, then stop them all.
      const bool input = dynamic_cast<const InputError*>(&e) != nullptr;
      std::cerr << "xpuplan: " << (input ? "error: " : "internal error: ") << e.what() << std::endl;
      cluster_abort(cl, input ? 2 : 3);
    }
    throw;
  }

  if (root)
    std::printf("sweep %s: %ld scenarios: %ld run (%ld ok, %ld infeasible, %ld error), %ld skipped, in %s; results in %s\n",
                in->spec.name.c_str(), total, progress.run(), progress.ok(), progress.infeasible(), progress.errors(),
                total - to_run, duration_text(progress.elapsed()).c_str(), o.db.c_str());
  std::fflush(stdout);
}

void run_export(const ExportOpts& e) {
  const TableSchema* t = find_table(e.table);
  if (!t) throw InputError("--table", "'" + e.table + "' is not scenarios, best_plans, pareto_plans or meta");
  // The CSV written over the database would destroy every result in it.
  if (!e.csv.empty() && e.csv != "-" && same_file(e.csv, e.db))
    throw InputError("--csv", "'" + e.csv + "' is the --db database: the export would replace it");
  const Store s = Store::open_read_only(e.db);
  write_output(e.csv, s.export_csv(*t), "--csv");
}

}  // namespace

void add_sweep(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<SweepOpts>();
  auto e = std::make_shared<ExportOpts>();
  CLI::App* c = app.add_subcommand(
      "sweep", "Search every scenario of a grid (models x systems x sizes) into SQLite; resumable; MPI-distributed "
               "under mpirun (docs/SWEEP.md)");
  c->add_option("file", o->file, "Sweep file (TOML, docs/SWEEP.md)");
  c->add_option("--db", o->db, "Results database (SQLite); scenarios already in it are skipped");
  CLI::Option* threads = c->add_option("--threads", o->threads,
                "Scenarios searched at once per process (0 or omitted: every core, 1 per MPI rank; at most 1024)");
  CLI::App* x = c->add_subcommand("export", "Write one table of a sweep database as CSV (RFC 4180)");
  x->add_option("--db", e->db, "Results database (SQLite)")->required();
  x->add_option("--table", e->table, "scenarios | best_plans | pareto_plans | meta")->required();
  x->add_option("--csv", e->csv, "Output file, written atomically (default: stdout)");
  x->callback([e, o, threads] {
    // A sweep file or --db beside export (before it, or a stray word after it) would be ignored.
    if (!o->file.empty())
      throw InputError("sweep export", "'" + o->file + "' is not an argument of export (it takes --db, --table and --csv)");
    if (!o->db.empty()) throw InputError("--db", "give it after export (sweep export --db FILE --table T)");
    if (threads->count() > 0) throw InputError("--threads", "applies to running a sweep, not to export");
    run_export(*e);
  });
  c->callback([o, x, &g] {
    if (x->parsed()) return;
    run_sweep(*o, g);
  });
}

}  // namespace xpu::cli
