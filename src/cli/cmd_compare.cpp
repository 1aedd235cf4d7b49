#include <iostream>
#include <tuple>

#include "cli/commands.hpp"
#include "cli/money_flags.hpp"
#include "cli/plan_flags.hpp"
#include "money/compare.hpp"
#include "report/money_format.hpp"
#include "spec/error.hpp"

namespace xpu::cli {

namespace {
struct CompareOpts {
  MoneyFlags money;
  std::string model, systems, pricing = "on-demand", rank = "cost", precision, provider;
  double tokens = 0;
  std::optional<int> devices, mtp_layers;
  std::optional<double> deadline_days;
  long seq_len = 8192, global_batch = 2048;
  int max_devices = 131072;
  bool serve = false;
  // --serve
  std::optional<double> tokens_per_day;
  int input_len = 0, output_len = 0, requests = 512;
  std::string input_spread, output_spread;
  double slo_ttft_ms = 0, slo_tpot_ms = 0;
  std::string weights, speculative;
  std::optional<double> acceptance;
};

}  // namespace

void add_compare(CLI::App& app, const Globals& g) {
  auto o = std::make_shared<CompareOpts>();
  CLI::App* c = app.add_subcommand(
      "compare",
      "One training job across systems and vendors: best plan, devices, days, USD, energy, ranked; or with --serve, "
      "one serving traffic profile: devices, USD per month and per million tokens");
  c->add_option("--model", o->model, "Catalog model id, or a path to a Hugging Face config.json or model TOML")->required();
  c->add_option("--tokens", o->tokens, "Tokens to train on (e.g. 15e12); training only");
  c->add_option("--systems", o->systems, "Comma-separated system ids (e.g. dgx-h100,trn2-ultraserver,tpu-v5p)")->required();
  c->add_option("--devices", o->devices, "Devices per system (the system's device unit)");
  c->add_option("--deadline-days", o->deadline_days,
                "Instead of --devices: the fewest devices (node x 2^k, or whole multi-node NVLink domains x 2^k: NVL72 racks) whose fastest plan finishes in this many days");
  c->add_option("--max-devices", o->max_devices, "Deadline mode: the largest device count tried (default 131072)");
  c->add_option("--seq-len", o->seq_len, "Tokens per sequence (default 8192)");
  c->add_option("--global-batch", o->global_batch, "Sequences per step (default 2048)");
  c->add_option("--pricing", o->pricing, "on-demand | reserved-1y | reserved-3y | capacity-block | spot | owned (default on-demand)");
  c->add_option("--provider", o->provider,
                "Only this provider's offers (AWS, GCP, Azure, Lambda, CoreWeave); default: the latest offer of any");
  c->add_option("--rank", o->rank, "cost | time (default cost); with cost, a system with no price is listed unranked (rank -)");
  c->add_option("--precision", o->precision, "Hold the matrix precision fixed (bf16 fp16 fp8 fp4); default: searched");
  c->add_option("--mtp-layers", o->mtp_layers,
                "Multi-token-prediction modules trained, as train's --mtp-layers (default: the model's mtp_layers); training only");
  c->add_flag("--serve", o->serve,
              "Compare serving instead: a traffic profile (--tokens-per-day, --input-len, --output-len, SLOs) on "
              "each system");
  c->add_option("--tokens-per-day", o->tokens_per_day, "With --serve: tokens served per day, input + output (e.g. 1e10)");
  c->add_option("--input-len", o->input_len, "With --serve: prompt tokens per request (sets the input/output mix)");
  c->add_option("--output-len", o->output_len, "With --serve: generated tokens per request");
  c->add_option("--slo-ttft-ms", o->slo_ttft_ms, "With --serve: p99 time-to-first-token SLO (default none)")->check(kPositiveSlo);
  c->add_option("--slo-tpot-ms", o->slo_tpot_ms, "With --serve: p99 time-per-output-token SLO (default none)")->check(kPositiveSlo);
  c->add_option("--weight-precision", o->weights, "With --serve: weights bf16 fp16 fp8 int8 int4 fp4 (default 16-bit)");
  c->add_option("--requests", o->requests, "With --serve: requests simulated per candidate layout, at least; the offline peak simulates at least 2 x the "
                "requests a candidate's replicas run at once (batch cap, or the prompts the KV cache holds) (default 512)");
  c->add_option("--speculative", o->speculative,
                "With --serve: speculative decoding METHOD:K on every system, as serve --speculative (ngram, mtp, eagle)");
  c->add_option("--acceptance", o->acceptance, "With --serve --speculative: probability that a drafted token is accepted");
  c->add_option("--input-spread", o->input_spread,
                "With --serve: prompt lengths around --input-len, uniform:W or normal:SD (as serve --input-spread)");
  c->add_option("--output-spread", o->output_spread,
                "With --serve: output lengths around --output-len, uniform:W or normal:SD (as serve --output-spread)");
  o->money.add_to(c);
  c->callback([o, c, &g] {
    o->money.check_paths();
    const Catalog cat = load_catalog(g, o->money.today());
    const Model m = resolve_model(cat, o->model);
    std::vector<System> systems;
    for (const auto& id : split_ids(o->systems, "--systems")) {
      try {
        systems.push_back(resolve_system(cat, id));
      } catch (const InputError& e) {
        if (e.where() != "--system") throw;  // a system file's own error names its file
        throw InputError("--systems", std::string(e.what()).substr(e.where().size() + 2));
      }
      // A catalog id and a file of the same system name one system twice.
      for (std::size_t i = 0; i + 1 < systems.size(); ++i)
        if (systems[i].id == systems.back().id) throw InputError("--systems", "'" + id + "' is system " + systems.back().id + ", given twice");
    }
    auto p = parse_pricing(o->pricing);
    if (!p) throw InputError("--pricing", "'" + o->pricing + "' is not on-demand, reserved-1y, reserved-3y, capacity-block, spot or owned");
    check_provider(cat.systems, o->provider, "--provider");
    if (*p == Pricing::owned && !o->provider.empty())
      throw InputError("--provider", "is for cloud pricings; owned devices have no provider");
    if (o->serve) {
      if (o->tokens > 0) throw InputError("--tokens", "is for training; with --serve give --tokens-per-day");
      if (o->devices || o->deadline_days)
        throw InputError("--devices/--deadline-days", "are for training; --serve finds the devices the traffic needs");
      for (const char* f : {"--precision", "--rank", "--seq-len", "--global-batch", "--max-devices", "--mtp-layers"})
        if (c->count(f) > 0)
          throw InputError(f, std::string("is for training compares, not --serve") +
                                  (std::string(f) == "--precision" ? " (use --weight-precision)" : ""));
      if (!o->tokens_per_day) throw InputError("--tokens-per-day", "required with --serve (tokens served per day)");
      ServeCompareRequest q;
      q.tokens_per_day = *o->tokens_per_day;
      q.input_len = o->input_len;
      q.output_len = o->output_len;
      q.slo_ttft_s = o->slo_ttft_ms / 1e3;
      q.slo_tpot_s = o->slo_tpot_ms / 1e3;
      if (o->slo_ttft_ms < 0) throw InputError("--slo-ttft-ms", "must not be negative");
      if (o->slo_tpot_ms < 0) throw InputError("--slo-tpot-ms", "must not be negative");
      if (!o->weights.empty()) {
        q.weights = parse_quant(o->weights);
        if (!q.weights) throw InputError("--weight-precision", "'" + o->weights + "' is not bf16, fp16, fp8, int8, int4 or fp4");
      }
      q.requests = o->requests;
      q.spec = parse_speculation(o->speculative, o->acceptance, m);
      for (auto [text, flag, out] : {std::tuple{&o->input_spread, "--input-spread", &q.input_spread},
                                     std::tuple{&o->output_spread, "--output-spread", &q.output_spread}}) {
        if (text->empty()) continue;
        auto sp = parse_spread(*text);
        if (!sp) throw InputError(flag, "'" + *text + "' is not " + kSpreadSyntax);
        *out = *sp;
      }
      q.pricing = *p;
      q.provider = o->provider;
      q.today = o->money.today();
      const std::vector<ServeCompareRow> rows = compare_serving(m, systems, cat.site ? &*cat.site : nullptr, q);
      o->money.check_not_inputs();
      if (!o->money.plot.empty()) write_plot(o->money.plot, serve_compare_plot(m, rows));
      if (o->money.json) write_output(o->money.out, serve_compare_json(m, q, rows, o->money.explain).dump(2) + "\n");
      else write_output(o->money.out, serve_compare_text(m, q, rows, o->money.explain));
      return;
    }
    if (o->tokens_per_day || o->input_len || o->output_len || o->slo_ttft_ms || o->slo_tpot_ms || !o->weights.empty() ||
        !o->input_spread.empty() || !o->output_spread.empty() || !o->speculative.empty() || o->acceptance)
      throw InputError("--tokens-per-day/--input-len/--output-len/--slo-*/--weight-precision/--*-spread/--speculative/--acceptance", "need --serve");
    if (c->count("--max-devices") > 0) {
      if (!o->deadline_days) throw InputError("--max-devices", "applies to deadline mode (--deadline-days), not to a fixed --devices");
      if (o->max_devices < 1) throw InputError("--max-devices", "must be at least 1, got " + std::to_string(o->max_devices));
    }
    CompareRequest q;
    q.tokens = o->tokens;
    q.devices = o->devices;
    q.deadline_days = o->deadline_days;
    q.max_devices = o->max_devices;
    q.seq_len = o->seq_len;
    q.global_batch = o->global_batch;
    q.pricing = *p;
    q.provider = o->provider;
    if (o->rank == "cost") q.rank = CompareRank::cost;
    else if (o->rank == "time") q.rank = CompareRank::time;
    else throw InputError("--rank", "'" + o->rank + "' is not cost or time");
    if (!o->precision.empty()) {
      q.precision = training_precision(o->precision);
    }
    if (o->mtp_layers) {
      if (*o->mtp_layers < 0 || *o->mtp_layers > m.layers)
        throw InputError("--mtp-layers", "must be 0 to the model's layers (" + std::to_string(m.layers) + "), got " +
                                             std::to_string(*o->mtp_layers));
      q.mtp_layers = o->mtp_layers;
    }
    q.today = o->money.today();
    q.threads = o->money.thread_count();
    const std::vector<CompareRow> rows = compare(m, systems, cat.site ? &*cat.site : nullptr, q);
    o->money.check_not_inputs();
    note_context_window("compare", m, o->seq_len, c->count("--seq-len") > 0);  // once the inputs are known good (one-line errors)
    if (!o->money.plot.empty()) write_plot(o->money.plot, compare_plot(m, rows));
    if (o->money.json) write_output(o->money.out, compare_json(m, q, rows, o->money.explain).dump(2) + "\n");
    else write_output(o->money.out, compare_text(m, q, rows, o->money.explain));
  });
}

}  // namespace xpu::cli
