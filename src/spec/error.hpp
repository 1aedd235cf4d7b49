// Bad input is an exception carrying where it was found and what is wrong; the CLI turns it into
// one line on stderr and exit code 2. A well-formed plan that does not fit is NOT an error: it is
// a report with feasible = false and a reason.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace xpu {

class InputError : public std::runtime_error {
 public:
  // where: "data/chips/h100-sxm.toml: peak.bf16" or "--tp" or "file.csv:12: tp"
  InputError(std::string where, const std::string& what)
      : std::runtime_error(one_line(where + ": " + what)), where_(std::move(where)) {}
  const std::string& where() const { return where_; }

  // The message as one printable line: a control character quoted from the input (a NUL in a CSV
  // cell had cut the message short, a newline split it) is written \xNN.
  // With ascii_only, any byte past ASCII too (invalid UTF-8 a JSON parser quotes back).
  static std::string one_line(const std::string& s, bool ascii_only = false) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char ch : s) {
      if (ch >= 0x20 && ch != 0x7f && !(ascii_only && ch >= 0x80)) {
        out += static_cast<char>(ch);
      } else {
        static const char* hex = "0123456789ABCDEF";
        out += "\\x";
        out += hex[ch >> 4];
        out += hex[ch & 15];
      }
    }
    return out;
  }

 private:
  std::string where_;
};

// A flag that, when given, must be at least `lo`: "--tp: must be at least 1, got 0".
inline void require_at_least(const std::optional<int>& v, const char* flag, int lo = 1) {
  if (v && *v < lo) throw InputError(flag, "must be at least " + std::to_string(lo) + ", got " + std::to_string(*v));
}

}  // namespace xpu
