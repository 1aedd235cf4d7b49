#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/plan_flags.hpp"
#include "perf/pipeline_sim.hpp"
#include "report/format.hpp"
#include "report/trace.hpp"
#include "spec/error.hpp"
#include "train/choose.hpp"

namespace xpu::cli {

namespace {
struct TrainOpts {
  PlanFlags plan;
  std::string out, trace;
  bool json = false, explain = false;
  int threads = 0;
};
}  // namespace

void add_train(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<TrainOpts>();
  CLI::App* c = app.add_subcommand("train", "Predict one training plan: step time, tokens/s, MFU, memory, breakdowns");
  o->plan.add_to(c, "chosen if omitted");
  c->add_flag("--json", o->json, "Machine-readable report (docs/OUTPUT.md)");
  c->add_flag("--explain", o->explain, "Show every term with the data file and field it came from");
  c->add_option("--out", o->out, "Write the report to this file (atomically) instead of stdout");
  c->add_option("--trace", o->trace,
                "Simulate the chosen plan's pipeline schedule event by event and write a Chrome/Perfetto trace "
                "(JSON) of it to this file (open in https://ui.perfetto.dev)");
  c->add_option("--threads", o->threads, "Worker threads for choosing the knobs left out (0 or omitted: every core; at most 1024); the answer does not depend on it");
  c->callback([o, &g] {
    check_output_path(o->out, "--out");  // both outputs checked before either is written
    check_output_path(o->trace, "--trace");
    if (!o->trace.empty() && same_output(o->trace, o->out))
      throw InputError("--trace", o->trace == "-" ? std::string("'-' is standard output, where the report goes too: give --out FILE")
                                                  : "'" + o->trace + "' is also the --out file: the report would replace the trace");
    const Catalog cat = load_catalog(g);
    const Model m = resolve_model(cat, o->plan.model);
    const System s = resolve_system(cat, o->plan.system);
    const PlanRequest q = o->plan.request(m);
    ChooseStats st;
    TrainReport r = choose_plan(m, s, q, &st, /*time_if_none_fit=*/false, thread_count(o->threads));
    // --trace: the chosen plan's pipeline, simulated event by event, as a Chrome/Perfetto trace.
    bool simulated = false;
    double sim_s = 0, closed_s = 0, sends_s = 0;
    if (!o->trace.empty()) {
      if (!r.feasible()) {
        std::cerr << "xpuplan train: --trace: no trace written to " << o->trace << ": the plan does not fit ("
                  << infeasible_name(r.why) << (r.reason.empty() ? "" : ": " + r.reason) << ")\n";
      } else if (r.stage_fwd.size() != static_cast<size_t>(r.layout.pp) || r.stage_bwd.size() != r.stage_fwd.size()) {
        std::cerr << "xpuplan train: --trace: no trace written to " << o->trace << ": the report has no per-stage times\n";
      } else {
        // Every forward, backward and weight-gradient pass of every chunk is a span (plus the
        // sends): bound the file (about 200 bytes a span) and the memory that builds it.
        // 1e6 spans: about 200 MB of JSON, 2.3 GB of memory and 9 s here (5e6 had run past a minute
        // and 11 GB).
        constexpr double kMaxSpans = 1e6;
        const double spans = 3.0 * r.layout.pp * r.layout.vp * static_cast<double>(r.microbatches);
        if (spans > kMaxSpans)
          throw InputError("--trace", "the step has " + format_number("%.0f", spans) +
                                          " compute spans (3 x pp x vp x microbatches); a trace holds at most 1000000 "
                                          "(about 200 MB of JSON): trace a smaller global batch, or drop --trace");
        check_not_input(o->out, "--out");  // both checked before either file is written
        check_not_input(o->trace, "--trace");
        const PipelineResult sim = simulate_pipeline(pipeline_input(r), true);
        write_output(o->trace, chrome_trace(r, sim).dump() + "\n", "--trace");
        simulated = true;
        sim_s = sim.makespan;
        closed_s = pipeline_closed_form(r);
        sends_s = r.time.pp_comm;
      }
    }
    note_context_window("train", m, q.work.seq_len);  // once the inputs are known good (an error is one line)
    if (o->json) {
      auto j = train_json(m, s, r, o->explain);
      j["choice"] = {{"considered", st.considered}, {"rejected", st.rejected}, {"out_of_memory", st.out_of_memory},
                     {"evaluated", st.evaluated}, {"dominated", st.dominated}};
      if (simulated) {
        char b[32];
        std::snprintf(b, sizeof b, "%.6g", sim_s);  // 6 significant digits, as the report's other times
        j["pipeline_sim_s"] = std::strtod(b, nullptr);
      }
      write_output(o->out, j.dump(2) + "\n");
    } else {
      std::string text = train_text(m, s, r, o->explain);
      if (simulated) {
        // The simulation runs the sends too: compare it with the closed form's compute and the
        // step's exposed sends (PP send/recv), as the step adds them.
        char b[256];
        std::snprintf(b, sizeof b, "\npipeline (event-driven, with sends): %.4f s vs closed form %.4f s (%.4f s of stages%s + %.4f s of sends)\n",
                      sim_s, closed_s + sends_s, closed_s,
                      r.chunk_share.empty() ? "" : ", uneven chunks simulated without sends as the step is", sends_s);
        text += b;
      }
      if (st.considered > 1)
        text += "\nchosen among " + std::to_string(st.considered) + " layouts (" + std::to_string(st.evaluated) + " timed, " +
                std::to_string(st.out_of_memory) + " out of memory, " + std::to_string(st.rejected) +
                " not valid: indivisible, or too few microbatches to interleave, " + std::to_string(st.dominated) +
                " skipped: recompute where the layout fits without)\n";
      write_output(o->out, text);
    }
  });
}

}  // namespace xpu::cli
