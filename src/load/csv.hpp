// RFC 4180 CSV: one header line, quoted fields with "" escapes, CRLF or LF line ends.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "load/catalog.hpp"

namespace xpu {

struct CsvTable {
  std::string path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int> row_lines;  // 1-based line where each row starts

  int column(const std::string& name) const;  // -1 if absent
};

// Throws InputError("path:line", problem) on an unterminated quote or a row whose field count
// differs from the header's.
CsvTable parse_csv(const DataFile& f);

}  // namespace xpu
