// Bad input is an exception carrying where it was found and what is wrong; the CLI turns it into
// one line on stderr and exit code 2. A well-formed plan that does not fit is NOT an error: it is
// a report with feasible = false and a reason.
#pragma once

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

}  // namespace xpu
