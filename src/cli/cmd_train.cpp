#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "perf/pipeline_sim.hpp"
#include "report/format.hpp"
#include "report/trace.hpp"
#include "spec/error.hpp"
#include "train/choose.hpp"

namespace xpu::cli {

namespace {
struct TrainOpts {
  std::string model, system, precision, recompute, out, trace;
  int devices = 0;
  long seq_len = 0, global_batch = 0;
  std::optional<int> tp, pp, vp, dp, cp, ep, etp, micro_batch, zero;
  bool json = false, explain = false;
};
}  // namespace

void add_train(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<TrainOpts>();
  CLI::App* c = app.add_subcommand("train", "Predict one training plan: step time, tokens/s, MFU, memory, breakdowns");
  c->add_option("--model", o->model, "Catalog model id, or a path to a Hugging Face config.json or model TOML")->required();
  c->add_option("--system", o->system, "Catalog system id, or a path to a system TOML")->required();
  c->add_option("--devices", o->devices, "Devices (the system's device unit: GPU, chip, NeuronCore)")->required();
  c->add_option("--seq-len", o->seq_len, "Tokens per sequence")->required();
  c->add_option("--global-batch", o->global_batch, "Sequences per optimizer step")->required();
  c->add_option("--micro-batch", o->micro_batch, "Sequences per microbatch (chosen if omitted)");
  c->add_option("--tp", o->tp, "Tensor-parallel degree (chosen if omitted)");
  c->add_option("--pp", o->pp, "Pipeline-parallel degree (chosen if omitted)");
  c->add_option("--vp", o->vp, "Interleaved pipeline chunks per stage (chosen if omitted)");
  c->add_option("--dp", o->dp, "Data-parallel degree (devices / (tp x pp x cp) if omitted)");
  c->add_option("--cp", o->cp, "Context-parallel degree (chosen if omitted)");
  c->add_option("--etp", o->etp, "Expert tensor-parallel degree, MoE only (default: tp when ep fits in dp x cp, else 1)");
  c->add_option("--ep", o->ep, "Expert-parallel degree, MoE only (chosen if omitted)");
  c->add_option("--zero", o->zero, "ZeRO stage 0-3 (3 = FSDP; chosen if omitted)");
  c->add_option("--recompute", o->recompute, "none | selective | full (chosen if omitted)");
  c->add_option("--precision", o->precision, "Matrix precision: bf16 fp16 fp8 fp4 int8 tf32 (chosen if omitted)");
  c->add_flag("--json", o->json, "Machine-readable report (docs/OUTPUT.md)");
  c->add_flag("--explain", o->explain, "Show every term with the data file and field it came from");
  c->add_option("--out", o->out, "Write the report to this file (atomically) instead of stdout");
  c->add_option("--trace", o->trace,
                "Simulate the chosen plan's pipeline schedule event by event and write a Chrome/Perfetto trace "
                "(JSON) of it to this file (open in https://ui.perfetto.dev)");
  c->callback([o, &g] {
    const Catalog cat = load_catalog(g);
    const Model m = resolve_model(cat, o->model);
    const System s = resolve_system(cat, o->system);
    PlanRequest q;
    q.devices = o->devices;
    q.work.seq_len = o->seq_len;
    q.work.global_batch = o->global_batch;
    q.tp = o->tp; q.pp = o->pp; q.vp = o->vp; q.dp = o->dp; q.cp = o->cp; q.ep = o->ep; q.etp = o->etp;
    q.micro_batch = o->micro_batch;
    q.zero = o->zero;
    if (!o->recompute.empty()) {
      q.recompute = parse_recompute(o->recompute);
      if (!q.recompute) throw InputError("--recompute", "'" + o->recompute + "' is not none, selective or full");
    }
    if (!o->precision.empty()) {
      q.precision = parse_precision(o->precision);
      if (!q.precision) throw InputError("--precision", "'" + o->precision + "' is not bf16, fp16, fp8, fp4, int8, tf32 or fp32");
    }
    ChooseStats st;
    TrainReport r = choose_plan(m, s, q, &st);
    // --trace: the chosen plan's pipeline, simulated event by event, as a Chrome/Perfetto trace.
    bool simulated = false;
    double sim_s = 0, closed_s = 0;
    if (!o->trace.empty()) {
      if (!r.feasible()) {
        std::cerr << "xpuplan train: --trace: no trace written to " << o->trace << ": the plan does not fit ("
                  << infeasible_name(r.why) << (r.reason.empty() ? "" : ": " + r.reason) << ")\n";
      } else if (r.stage_fwd.size() != static_cast<size_t>(r.layout.pp) || r.stage_bwd.size() != r.stage_fwd.size()) {
        std::cerr << "xpuplan train: --trace: no trace written to " << o->trace << ": the report has no per-stage times\n";
      } else {
        const PipelineResult sim = simulate_pipeline(pipeline_input(r), true);
        write_output(o->trace, chrome_trace(r, sim).dump() + "\n");
        simulated = true;
        sim_s = sim.makespan;
        closed_s = pipeline_closed_form(r);
      }
    }
    if (o->json) {
      auto j = train_json(m, s, r, o->explain);
      j["choice"] = {{"considered", st.considered}, {"rejected", st.rejected}, {"out_of_memory", st.out_of_memory},
                     {"evaluated", st.evaluated}};
      if (simulated) {
        char b[32];
        std::snprintf(b, sizeof b, "%.6g", sim_s);  // 6 significant digits, as the report's other times
        j["pipeline_sim_s"] = std::strtod(b, nullptr);
      }
      write_output(o->out, j.dump(2) + "\n");
    } else {
      std::string text = train_text(m, s, r, o->explain);
      if (simulated) {
        char b[128];
        std::snprintf(b, sizeof b, "\npipeline (event-driven): %.4f s vs closed form %.4f s\n", sim_s, closed_s);
        text += b;
      }
      if (st.considered > 1)
        text += "\nchosen among " + std::to_string(st.considered) + " layouts (" + std::to_string(st.evaluated) + " timed, " +
                std::to_string(st.out_of_memory) + " out of memory, " + std::to_string(st.rejected) + " not dividing)\n";
      write_output(o->out, text);
    }
  });
}

}  // namespace xpu::cli
