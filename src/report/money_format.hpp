// Tables, JSON and charts of the money commands (compare, budget, contract). JSON keys carry
// their unit (_usd, _days, _mwh, _t); a figure that cannot be computed (no price, no TDP) is null.
// Schemas: docs/OUTPUT.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "money/budget.hpp"
#include "money/compare.hpp"
#include "money/contract.hpp"
#include "report/plot.hpp"

namespace xpu {

nlohmann::ordered_json compare_json(const Model& m, const CompareRequest& q, const std::vector<CompareRow>& rows,
                                    bool with_explain);
std::string compare_text(const Model& m, const CompareRequest& q, const std::vector<CompareRow>& rows, bool with_explain);
std::vector<PlotPanel> compare_plot(const Model& m, const std::vector<CompareRow>& rows);

nlohmann::ordered_json serve_compare_json(const Model& m, const ServeCompareRequest& q,
                                          const std::vector<ServeCompareRow>& rows, bool with_explain);
std::string serve_compare_text(const Model& m, const ServeCompareRequest& q, const std::vector<ServeCompareRow>& rows,
                               bool with_explain);
std::vector<PlotPanel> serve_compare_plot(const Model& m, const std::vector<ServeCompareRow>& rows);

nlohmann::ordered_json budget_json(const BudgetFile& f, const BudgetResult& r, long today, bool with_explain);
std::string budget_text(const BudgetFile& f, const BudgetResult& r, long today, bool with_explain);
std::vector<PlotPanel> budget_plot(const BudgetFile& f, const BudgetResult& r);

nlohmann::ordered_json contract_json(const ContractFile& f, const ContractResult& r, long today, bool with_explain);
std::string contract_text(const ContractFile& f, const ContractResult& r, long today, bool with_explain);
std::vector<PlotPanel> contract_plot(const ContractFile& f, const ContractResult& r);

// "38.0 B", "412 M", "5.21 k": money and counts with a decimal prefix, 3 significant digits.
std::string short_number(double v);

}  // namespace xpu
