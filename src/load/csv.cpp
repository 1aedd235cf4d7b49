#include "load/csv.hpp"

#include "spec/error.hpp"

namespace xpu {

int CsvTable::column(const std::string& name) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

CsvTable parse_csv(const DataFile& f) {
  CsvTable t;
  t.path = f.path;
  const std::string& s = f.text;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  int line = 1, row_line = 1;
  auto end_field = [&] {
    row.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_row = [&] {
    end_field();
    const bool blank = row.size() == 1 && row[0].empty();
    if (!blank) {
      if (t.header.empty()) {
        for (std::size_t i = 0; i < row.size(); ++i)
          for (std::size_t j = 0; j < i; ++j)
            if (row[i] == row[j])
              throw InputError(f.path + ":" + std::to_string(row_line),
                               "header names column '" + row[i] + "' twice (columns " + std::to_string(j + 1) + " and " +
                                   std::to_string(i + 1) + ")");
        t.header = std::move(row);
      } else {
        if (row.size() != t.header.size())
          throw InputError(f.path + ":" + std::to_string(row_line),
                           "row has " + std::to_string(row.size()) + " fields, header has " + std::to_string(t.header.size()));
        t.rows.push_back(std::move(row));
        t.row_lines.push_back(row_line);
      }
    }
    row.clear();
  };
  std::size_t i = 0;
  if (s.size() >= 3 && static_cast<unsigned char>(s[0]) == 0xEF && static_cast<unsigned char>(s[1]) == 0xBB &&
      static_cast<unsigned char>(s[2]) == 0xBF)
    i = 3;  // UTF-8 byte-order mark
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < s.size() && s[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
          // RFC 4180: a closing quote ends the field.
          if (i + 1 < s.size() && s[i + 1] != ',' && s[i + 1] != '\n' && s[i + 1] != '\r')
            throw InputError(f.path + ":" + std::to_string(line), "text after a closing quote");
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      if (field_started && !field.empty())
        throw InputError(f.path + ":" + std::to_string(line), "quote inside an unquoted field");
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\r') {
      // part of CRLF; ignored
    } else if (c == '\n') {
      end_row();
      ++line;
      row_line = line;
    } else {
      field += c;
      field_started = true;
    }
  }
  if (quoted) throw InputError(f.path + ":" + std::to_string(row_line), "unterminated quoted field");
  if (!field.empty() || !row.empty()) end_row();
  if (t.header.empty()) throw InputError(f.path, "empty CSV (no header line)");
  return t;
}

}  // namespace xpu
