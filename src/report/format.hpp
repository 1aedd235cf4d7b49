// Output: human tables and stable JSON. Field names and units are documented in docs/OUTPUT.md;
// each JSON key carries its unit in its name (_s, _bytes, _pct) so scripts never guess.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "load/catalog.hpp"
#include "train/report.hpp"
#include "validate/validate.hpp"

namespace xpu {

// A plain text table with aligned columns; numeric-looking cells are right-aligned.
std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                         bool right_align_numbers = true);

// A layout in one short line: "tp4 pp8 vp5 dp2 cp1 mb1 z1 none fp8" (+ " g-bf16", " lowp-w").
std::string layout_summary(const Layout& l);
// ", N copies" of a hybrid-sharded ZeRO state (Layout::zero_group), where the group divides dp x cp;
// "" otherwise.
std::string zero_copies(const Layout& l);
// Every knob of a layout, as train --json's "layout" (docs/OUTPUT.md); MoE models add the dispatcher.
nlohmann::ordered_json layout_json(const Model& m, const Layout& l);

nlohmann::ordered_json train_json(const Model& m, const System& s, const TrainReport& r, bool with_explain);
std::string train_text(const Model& m, const System& s, const TrainReport& r, bool with_explain);

// The subset table that ends every `validate` report (training, inference, kernels): one line
// per subset with its row count, MAPE and largest error.
class SubsetTable {
 public:
  void add(const std::string& name, const ErrorStats& s);
  // One line per key: prefix + key + suffix.
  void add_each(const std::map<std::string, ErrorStats>& by, const std::string& prefix, const std::string& suffix);
  std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// The first lines of every `validate` report: "xpuplan validate[ (kind)]: <table>", the run-facts
// file when one was applied, and a blank line.
std::string validation_head(const std::string& kind, const ValidationResult& v);
// The run facts applied to a row, as " field=value" each (a textual fact as written).
std::string facts_suffix(const std::vector<RunFact>& facts);

nlohmann::ordered_json validation_json(const ValidationResult& v);
std::string validation_text(const ValidationResult& v);
// A kernels table's validation (validate_kernels): rows, then MAPE per kernel, chip and grade.
nlohmann::ordered_json kernel_validation_json(const ValidationResult& v);
std::string kernel_validation_text(const ValidationResult& v);

nlohmann::ordered_json catalog_json(const Catalog& c);
std::string catalog_text(const Catalog& c);
// One catalog entry by id, or by kind:id (system:, model:, chip:) where an id names more than one
// kind (a TPU pod and its chip); a bare id is looked up as a system, then a model, then a chip,
// and the text says which other kinds share it. Throws InputError for an unknown id.
nlohmann::ordered_json catalog_item_json(const Catalog& c, const std::string& id);
std::string catalog_item_text(const Catalog& c, const std::string& id);
// The kinds ("system", "model", "chip") an id names.
std::vector<std::string> catalog_kinds_of(const Catalog& c, const std::string& id);

}  // namespace xpu
