// What this binary is: the xpuplan version and the source it was built from (cmake/source_id.cmake
// hashes every file under src/ at build time). Results that must be recomputed when the code
// changes (a sweep database's inputs fingerprint) record both.
#pragma once

namespace xpu {

const char* xpuplan_version();  // e.g. "0.1.0" (CMakeLists.txt's project version)
const char* source_id();        // 16 hex digits of SHA-256 over src/'s file names and contents

}  // namespace xpu
