#include "serve/workload.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "spec/error.hpp"
#include "units/units.hpp"

namespace xpu {

const char* workload_name(WorkloadKind k) {
  switch (k) {
    case WorkloadKind::offline: return "offline";
    case WorkloadKind::poisson: return "poisson";
    case WorkloadKind::concurrency: return "concurrency";
    case WorkloadKind::trace: return "trace";
    case WorkloadKind::agent: return "agent";
  }
  return "?";
}

std::optional<LengthSpread> parse_spread(const std::string& s) {
  if (s == "none") return LengthSpread{};
  const auto colon = s.find(':');
  if (colon == std::string::npos) return std::nullopt;
  const std::string kind = s.substr(0, colon), num = s.substr(colon + 1);
  LengthSpread out;
  if (kind == "uniform") out.kind = SpreadKind::uniform;
  else if (kind == "normal") out.kind = SpreadKind::normal;
  else return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (num.empty() || ec != std::errc() || p != num.data() + num.size() || !std::isfinite(v) || v < 0 || v > 1e7)
    return std::nullopt;
  out.width = v;
  return out;
}

std::string spread_name(const LengthSpread& s) {
  if (!s.set()) return "none";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s:%g", s.kind == SpreadKind::uniform ? "uniform" : "normal", s.width);
  return buf;
}

std::optional<FrontBatcher> parse_batcher(const std::string& s) {
  if (s == "none") return FrontBatcher{};
  const auto colon = s.find(':');
  const std::string win = s.substr(0, colon), cap = colon == std::string::npos ? "" : s.substr(colon + 1);
  FrontBatcher out;
  auto [p, ec] = std::from_chars(win.data(), win.data() + win.size(), out.window_s);
  if (win.empty() || ec != std::errc() || p != win.data() + win.size() || !std::isfinite(out.window_s) ||
      out.window_s <= 0 || out.window_s > 3600)
    return std::nullopt;
  if (colon != std::string::npos) {
    auto [q, ec2] = std::from_chars(cap.data(), cap.data() + cap.size(), out.max);
    if (cap.empty() || ec2 != std::errc() || q != cap.data() + cap.size() || out.max < 1) return std::nullopt;
  }
  return out;
}

std::string batcher_name(const FrontBatcher& b) {
  if (!b.set()) return "none";
  char buf[64];
  if (b.max > 0) std::snprintf(buf, sizeof buf, "%g:%d", b.window_s, b.max);
  else std::snprintf(buf, sizeof buf, "%g", b.window_s);
  return buf;
}

std::string workload_summary(const ServeWorkload& w) {
  char buf[160];
  std::string out;
  switch (w.kind) {
    case WorkloadKind::trace: out = "trace, " + std::to_string(w.trace.size()) + " requests"; break;
    case WorkloadKind::agent:
      return "agent, " + std::to_string(w.tasks.size()) + " tasks" + (w.prefix_cache ? "" : ", no prefix cache (every call prefills its whole context)");
    case WorkloadKind::offline: out = "offline"; break;
    case WorkloadKind::poisson:
      std::snprintf(buf, sizeof buf, "poisson at %g req/s (seed %llu)", w.rate, static_cast<unsigned long long>(w.seed));
      out = buf;
      break;
    case WorkloadKind::concurrency: out = "concurrency " + std::to_string(w.concurrency); break;
  }
  if (w.kind != WorkloadKind::trace) {
    out += ", " + std::to_string(w.requests) + " requests of " + std::to_string(w.input_len) + " prompt + " +
           std::to_string(w.output_len) + " output tokens";
    if (w.input_spread.set()) out += ", prompt lengths " + spread_name(w.input_spread);
    if (w.output_spread.set()) out += ", output lengths " + spread_name(w.output_spread);
  }
  if (w.samples > 1)
    out += ", " + std::to_string(w.samples) + (w.beam ? " beams per request (beam search: one returned)"
                                                       : " samples per request (prompt shared, all returned)");
  if (w.batcher.set()) {
    std::snprintf(buf, sizeof buf, ", front-end batcher every %g s", w.batcher.window_s);
    out += buf;
    if (w.batcher.max > 0) out += " (at most " + std::to_string(w.batcher.max) + ")";
  }
  return out;
}

namespace {

class Cells {
 public:
  Cells(const CsvTable& t, std::size_t r) : t_(t), r_(r) {}
  [[noreturn]] void fail(const std::string& col, const std::string& what) const {
    throw InputError(t_.path + ":" + std::to_string(t_.row_lines[r_]) + ": " + col, what);
  }
  std::string str(const std::string& col) const { return t_.rows[r_][t_.column(col)]; }
  double number(const std::string& col, double min_value, bool allow_empty, double fallback = 0,
                double max_value = std::numeric_limits<double>::infinity()) const {
    std::string s = str(col);
    if (s.empty()) {
      if (allow_empty) return fallback;
      fail(col, "empty (required)");
    }
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) fail(col, "'" + s + "' is not a number");
    if (v < min_value) fail(col, "must be at least " + std::to_string(static_cast<long>(min_value)) + ", got " + s);
    if (v > max_value) fail(col, "'" + s + "' is beyond " + format_number("%.0e", max_value) + " s (give seconds, e.g. from the trace's start or Unix time)");
    return v;
  }
  int tokens(const std::string& col, int min_value) const {
    std::string s = str(col);
    if (s.empty()) fail(col, "empty (required)");
    long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) fail(col, "'" + s + "' is not an integer");
    if (v < min_value) fail(col, "must be at least " + std::to_string(min_value) + ", got " + s);
    if (v > 10'000'000) fail(col, "more than 10,000,000 tokens");
    return static_cast<int>(v);
  }

 private:
  const CsvTable& t_;
  std::size_t r_;
};

void need_columns(const CsvTable& t, std::initializer_list<const char*> cols, const char* what) {
  for (const char* c : cols)
    if (t.column(c) < 0)
      throw InputError(t.path + ":1", std::string("header lacks column '") + c + "' (a " + what + " needs " + [&] {
        std::string all;
        for (const char* x : cols) all += (all.empty() ? "" : ",") + std::string(x);
        return all;
      }() + ")");
}

// Times in a workload file (arrival_s, tool_s), in seconds: beyond this a double's step exceeds a
// few microseconds, too coarse for iterations of milliseconds.
constexpr double kMaxFileSeconds = 1e10;

}  // namespace

std::vector<TraceRequest> parse_trace(const CsvTable& t) {
  need_columns(t, {"arrival_s", "input_tokens", "output_tokens"}, "trace");
  std::vector<TraceRequest> out;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    Cells c(t, i);
    TraceRequest r;
    r.arrival_s = c.number("arrival_s", 0, false, 0, kMaxFileSeconds);
    r.input = c.tokens("input_tokens", 1);
    r.output = c.tokens("output_tokens", 1);
    r.line = t.row_lines[i];
    out.push_back(r);
  }
  if (out.empty()) throw InputError(t.path + ":2", "no requests");
  // Only the gaps matter: the clock starts at the first arrival (Unix times keep their precision).
  double first = out.front().arrival_s;
  for (const auto& r : out) first = std::min(first, r.arrival_s);
  for (auto& r : out) r.arrival_s -= first;
  return out;
}

std::vector<AgentTask> parse_agent(const CsvTable& t) {
  need_columns(t, {"task", "arrival_s", "new_input_tokens", "output_tokens", "tool_s"}, "agent file");
  std::vector<AgentTask> out;
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    Cells c(t, i);
    const std::string id = c.str("task");
    if (id.empty()) c.fail("task", "empty (required)");
    auto it = index.find(id);
    if (it == index.end()) {
      it = index.emplace(id, out.size()).first;
      AgentTask task;
      task.id = id;
      task.start_s = c.number("arrival_s", 0, false, 0, kMaxFileSeconds);
      out.push_back(task);
    } else if (!c.str("arrival_s").empty()) {
      c.fail("arrival_s", "only a task's first call may give its arrival");
    }
    AgentCall call;
    call.new_input = c.tokens("new_input_tokens", 1);
    call.output = c.tokens("output_tokens", 1);
    call.tool_s = c.number("tool_s", 0, true, 0, kMaxFileSeconds);
    call.line = t.row_lines[i];
    out[it->second].calls.push_back(call);
  }
  if (out.empty()) throw InputError(t.path + ":2", "no tasks");
  double first = out.front().start_s;  // the clock starts at the first task, as for a trace
  for (const auto& task : out) first = std::min(first, task.start_s);
  for (auto& task : out) task.start_s -= first;
  return out;
}

}  // namespace xpu
