// Scenario files of the money commands: a fleet and training schedule (`budget --fleet FILE`) and a
// capacity contract with a deal's cash flows (`contract FILE`). Errors name file, line and key.
#pragma once

#include "load/catalog.hpp"
#include "money/budget.hpp"
#include "money/contract.hpp"

namespace xpu {

BudgetFile parse_budget_file(const DataFile& f);
ContractFile parse_contract_file(const DataFile& f);

}  // namespace xpu
