// One training step of a model on a system under a layout: the single evaluation path that train,
// search, sweep and validate all use.
#pragma once

#include <vector>

#include "spec/hardware.hpp"
#include "spec/model.hpp"
#include "spec/plan.hpp"
#include "train/report.hpp"

namespace xpu {

// Checks a layout against the model and device count. Returns Infeasible::none or a reason
// (with text in `why_text`). Pure arithmetic: divisibility and supported precision.
Infeasible check_layout(const Model& m, const System& s, const Layout& l, const Workload& w, int devices,
                        std::string* why_text);

// Evaluates the plan. Never throws for a well-formed plan that does not fit: the report says why.
// With enforce_memory false, a plan over capacity is still timed; the report keeps feasible()
// true and says so in `warning` (used by validate, where the measured run is known to fit).
// With detail false (the search's hot loop) no text is formatted and stage_layers stays empty.
TrainReport evaluate(const Model& m, const System& s, const Layout& l, const Workload& w, int devices,
                     bool enforce_memory = true, bool detail = true);

// Memory only (cheap): used to prune before timing.
MemoryBreakdown estimate_memory(const Model& m, const System& s, const Layout& l, const Workload& w);

// The terms behind a report, each with its origin (data file and field, or formula).
std::vector<ExplainLine> explain(const Model& m, const System& s, const TrainReport& r);

}  // namespace xpu
