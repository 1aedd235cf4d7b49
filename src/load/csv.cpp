#include "load/csv.hpp"

#include <cstdio>

#include "spec/error.hpp"

namespace xpu {

int CsvTable::column(const std::string& name) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (1 to 4), or 0 when it is not one: overlong
// forms, surrogates and code points past U+10FFFF are refused, as JSON output would refuse them.
std::size_t utf8_length(const std::string& s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
  if (c == 0xED && b(i + 1) >= 0xA0) return 0;  // surrogate
  if (c == 0xF0 && b(i + 1) < 0x90) return 0;   // overlong
  if (c == 0xF4 && b(i + 1) >= 0x90) return 0;  // past U+10FFFF
  return n;
}

// Tables are UTF-8 text with LF or CRLF line ends: a byte that is not UTF-8 (Latin-1 text) or a
// lone CR (old Mac line ends, which would run every row into one) is refused with its line.
void check_text(const DataFile& f) {
  const std::string& s = f.text;
  int line = 1;
  bool quoted = false;  // a CR inside a quoted field is the field's text (RFC 4180)
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] == '"') quoted = !quoted;  // "" inside a quoted field toggles twice
    if (s[i] == '\n') ++line;
    if (!quoted && s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n'))
      throw InputError(f.path + ":" + std::to_string(line), "a line ends with a lone carriage return: save the table with LF or CRLF line ends");
    const std::size_t n = utf8_length(s, i);
    if (n == 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(s[i]));
      throw InputError(f.path + ":" + std::to_string(line), std::string("byte ") + hex + " is not UTF-8 text: save the table as UTF-8");
    }
    i += n;
  }
}

}  // namespace

CsvTable parse_csv(const DataFile& f) {
  check_text(f);
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
