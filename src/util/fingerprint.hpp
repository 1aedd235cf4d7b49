// A fingerprint of texts: FNV-1a (64-bit) over each text followed by a separator byte, so that
// ("ab", "c") and ("a", "bc") differ; hex of 16 digits. Records what a result was computed from
// (a sweep's inputs, a calibration's tables), not a security hash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace xpu {

class Fingerprint {
 public:
  void add(std::string_view text) {
    for (unsigned char ch : text) {
      h_ ^= ch;
      h_ *= kPrime;
    }
    h_ ^= 0xff;
    h_ *= kPrime;
  }
  std::string hex() const {
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h_));
    return out;
  }

 private:
  static constexpr std::uint64_t kPrime = 1099511628211ull;
  std::uint64_t h_ = 1469598103934665603ull;
};

}  // namespace xpu
