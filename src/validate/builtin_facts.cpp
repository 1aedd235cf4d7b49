// Run facts for a copy of a project table given without its facts file (validate.hpp).
#include <map>
#include <set>

#include "load/csv.hpp"
#include "validate/validate.hpp"

namespace xpu {

FoundFacts read_run_facts(const std::string& path, FactTable kind) {
  FoundFacts out;
  const DataFile f = read_file(path);
  out.facts = parse_run_facts(parse_csv(f), kind);
  out.label = path;
  out.text = f.text;
  return out;
}

namespace {
// Columns that describe the measurement or its bookkeeping, not the run: a corrected value, a
// regraded row or an edited note is still the same run with the same stated facts.
const std::set<std::string> kNotRunColumns = {"value", "grade", "source", "notes"};

std::string cell(const CsvTable& t, std::size_t row, int col) {
  return col >= 0 && col < static_cast<int>(t.rows[row].size()) ? t.rows[row][col] : std::string();
}
}  // namespace

FoundFacts builtin_run_facts(const CsvTable& t, FactTable kind) {
  FoundFacts out;
  const int id_col = t.column("id");
  if (id_col < 0) return out;
  const auto& files = builtin_validation_files();
  std::map<std::string, const DataFile*> by_path;
  for (const auto& f : files) by_path[f.path] = &f;
  std::vector<std::string> used;  // facts files that matched a row
  std::size_t matched = 0;
  std::vector<std::string> differ;  // "ID (column)": rows with facts whose run columns were changed
  for (const auto& f : files) {
    const std::string suffix = ".facts.csv";
    if (f.path.size() <= suffix.size() || f.path.compare(f.path.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    auto table_file = by_path.find(f.path.substr(0, f.path.size() - suffix.size()) + ".csv");
    if (table_file == by_path.end()) continue;
    const CsvTable copy = parse_csv(*table_file->second);
    if ((kind == FactTable::inference) != (is_inference_table(copy) && !is_training_table(copy))) continue;
    const RunFacts facts = parse_run_facts(parse_csv(f), kind);
    const int copy_id = copy.column("id");
    std::map<std::string, std::size_t> copy_rows;
    for (std::size_t i = 0; i < copy.rows.size(); ++i) copy_rows.emplace(cell(copy, i, copy_id), i);
    std::size_t here = 0;
    for (std::size_t i = 0; i < t.rows.size(); ++i) {
      const std::string id = cell(t, i, id_col);
      auto fs = facts.find(id);
      auto at = copy_rows.find(id);
      if (fs == facts.end() || at == copy_rows.end() || out.facts.count(id)) continue;
      std::string changed;  // the first run column that differs
      for (std::size_t c = 0; changed.empty() && c < copy.header.size(); ++c)
        if (!kNotRunColumns.count(copy.header[c]) && cell(t, i, t.column(copy.header[c])) != cell(copy, at->second, static_cast<int>(c)))
          changed = copy.header[c];
      if (!changed.empty()) {
        differ.push_back(id + " (" + changed + ")");
        continue;
      }
      out.facts[id] = fs->second;
      for (RunFact& f : out.facts[id]) f.file = "built-in " + f.file;  // no file of the user's
      out.text += id + "\n";
      ++here;
    }
    if (here) {
      used.push_back(f.path);
      out.text += f.text;
      matched += here;
    }
  }
  if (matched) {
    std::string names;
    for (const auto& u : used) names += (names.empty() ? "" : ", ") + u;
    out.label = "built-in " + names + " (for " + std::to_string(matched) + " of " + std::to_string(t.rows.size()) +
                " rows: their id and run columns equal the project's copy";
  }
  if (!differ.empty()) {  // say which rows lost their facts, and why
    std::string list;
    for (std::size_t k = 0; k < differ.size() && k < 5; ++k) list += (k ? ", " : "") + differ[k];
    if (differ.size() > 5) list += ", ...";
    out.label += std::string(out.label.empty() ? "built-in facts: none applied (" : "; ") + std::to_string(differ.size()) +
                 (differ.size() == 1 ? " row with facts differs" : " rows with facts differ") +
                 " from it in a run column, so take none: " + list;
    out.text += "differ: " + list + "\n";
  }
  if (!out.label.empty()) out.label += ")";
  return out;
}

}  // namespace xpu
