// The file a path names once its symbolic links are followed, a dangling one too (its target may
// not exist yet: an output or a database about to be created). What output files are written
// through, and what a sweep database's lock is keyed on.
#pragma once

#include <filesystem>
#include <string>

#include "spec/error.hpp"

namespace xpu {

inline std::filesystem::path follow_links(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path real = path;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(real, ec)); ++hops) {
    if (hops == 40) throw InputError(path, "too many levels of symbolic links");
    const fs::path target = fs::read_symlink(real, ec);
    if (ec) throw InputError(path, "cannot resolve the symbolic link");
    real = target.is_absolute() ? target : real.parent_path() / target;
  }
  return real;
}

}  // namespace xpu
