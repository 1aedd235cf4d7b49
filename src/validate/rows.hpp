// Reading one row of a measured-runs table (FORMAT.md): typed cells with errors that name
// file:line and column, and the model columns shared by the training and inference tables.
#pragma once

#include <charconv>
#include <cmath>
#include <optional>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "load/catalog.hpp"
#include "load/csv.hpp"
#include "spec/error.hpp"
#include "units/units.hpp"
#include "validate/validate.hpp"

namespace xpu {

class RowReader {
 public:
  RowReader(const CsvTable& t, std::size_t r) : t_(t), r_(r) {}
  // "path:line" of the row, as errors and --explain name it.
  std::string where() const { return t_.path + ":" + std::to_string(t_.row_lines[r_]); }
  [[noreturn]] void fail(const std::string& col, const std::string& what) const {
    throw InputError(t_.path + ":" + std::to_string(t_.row_lines[r_]) + ": " + col, what);
  }
  std::string str(const std::string& col) const {
    int i = t_.column(col);
    if (i < 0) fail(col, "column missing from the header");
    return t_.rows[r_][i];
  }
  std::optional<long> opt_int(const std::string& col, long min_value = 1) const {
    std::string s = str(col);
    if (s.empty()) return std::nullopt;
    long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) fail(col, "'" + s + "' is not an integer");
    if (v < min_value) fail(col, "must be at least " + std::to_string(min_value) + ", got " + s);
    // Counts are held as int (as the catalog's are): refuse what would wrap.
    if (v > std::numeric_limits<int>::max())
      fail(col, "must be at most " + std::to_string(std::numeric_limits<int>::max()) + ", got " + s);
    return v;
  }
  long req_int(const std::string& col, long min_value = 1) const {
    auto v = opt_int(col, min_value);
    if (!v) fail(col, "empty (required)");
    return *v;
  }
  double req_number(const std::string& col) const {
    std::string s = str(col);
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) fail(col, "'" + s + "' is not a number");
    // As parse_quantity: a magnitude beyond 1e24 or below 1e-24 is a typo, and would reach the
    // prediction and its error as inf or nan.
    if (!in_quantity_range(v))
      fail(col, "'" + s + "' is out of range (at most 1e24 and, when not 0, at least 1e-24)");
    return v;
  }
  double req_positive(const std::string& col) const {
    const double v = req_number(col);
    if (v <= 0) fail(col, "must be positive, got " + str(col));
    return v;
  }

 private:
  const CsvTable& t_;
  std::size_t r_;
};

// The header holds every column of FORMAT.md's table and no other (a column it does not know would
// be ignored: what a source states beyond the columns goes in the run facts file beside it).
template <std::size_t N>
void check_header(const CsvTable& t, const char* const (&columns)[N], const char* kind) {
  for (const char* col : columns)
    if (t.column(col) < 0) throw InputError(t.path + ":1", std::string("header lacks column '") + col + "'");
  for (const auto& h : t.header) {
    bool known = false;
    for (const char* col : columns) known = known || h == col;
    if (!known)
      throw InputError(t.path + ":1", "column '" + h + "' is not a column of FORMAT.md's " + kind +
                                          " table (what a source states beyond them goes in the run facts file beside it)");
  }
}

// The architecture from the row's model columns, or the catalog model its name gives when
// `layers` is empty (an InputError naming the cell when it is neither).
Model model_from_row(const RowReader& r, const Catalog& c);

// The cells every measured row has: id (and its line), grade, system, model and metric.
// Returns false, reading nothing more, when `only` is given and does not hold the row's id; the
// metric's allowed values are the table's own, checked by the caller.
bool read_row_head(const RowReader& r, int line, const std::set<std::string>* only, ValidationRow& row);

// Error statistics: add one row's signed error, then turn the sum into the mean.
void add_error(ErrorStats& s, double err);
void finish_error(ErrorStats& s);

// A predicted row's signed error in percent; a row that could not be evaluated keeps its reason
// and counts as 100%.
void settle_row(ValidationRow& row, const std::string& reason);

// The summaries both tables share (per grade; for grades A+B the headline, evaluated rows, dense
// rows and per system) plus the table's own group of each A+B row (`group`: per chip family for
// training, per metric for inference), each turned into a mean.
void summarise(ValidationResult& out, std::map<std::string, ErrorStats>& groups,
               const std::function<std::string(const ValidationRow&)>& group);

}  // namespace xpu
