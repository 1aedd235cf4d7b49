// Fills the knobs a plan request leaves empty by trying every candidate and keeping the fastest
// plan that fits (a small exhaustive loop; the full search engine is search/).
#pragma once

#include "spec/hardware.hpp"
#include "spec/model.hpp"
#include "spec/plan.hpp"
#include "train/report.hpp"

namespace xpu {

struct ChooseStats {
  long considered = 0;   // layouts enumerated
  long rejected = 0;     // failed check_layout: divisibility, too few microbatches to interleave, precision
  long out_of_memory = 0;
  long evaluated = 0;    // timed
};

// Validates the explicit knobs (throws InputError naming the flag when they cannot work for
// this model and device count, e.g. a degree that does not divide), then returns the best plan.
// If no candidate fits, returns the report of the candidate that came closest (least memory
// over capacity), with feasible() false and its reason.
// With time_if_none_fit, when no candidate fits the memory model, the least-over candidate is
// timed anyway and carries a warning (validate: the measured run did fit).
// threads: the (tp, pp, cp) groups of candidates are tried on that many threads; the answer and
// the counts do not depend on it (groups are merged in order, ties going to the earlier candidate).
TrainReport choose_plan(const Model& m, const System& s, const PlanRequest& req, ChooseStats* stats = nullptr,
                        bool time_if_none_fit = false, int threads = 1);

// Throws InputError naming the flag when an explicit knob cannot work (a degree that does not
// divide the devices, heads or batch; an unsupported precision; non-positive sizes).
void check_request(const Model& m, const System& s, const PlanRequest& req);

// Layout from a request with every knob given (defaults: sequence parallel on, overlap on).
Layout layout_from_request(const Model& m, const System& s, const PlanRequest& req);

}  // namespace xpu
