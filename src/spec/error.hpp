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
      : std::runtime_error(where + ": " + what), where_(std::move(where)) {}
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

// A flag that, when given, must be at least `lo`: "--tp: must be at least 1, got 0".
inline void require_at_least(const std::optional<int>& v, const char* flag, int lo = 1) {
  if (v && *v < lo) throw InputError(flag, "must be at least " + std::to_string(lo) + ", got " + std::to_string(*v));
}

}  // namespace xpu
