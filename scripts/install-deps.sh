#!/usr/bin/env bash
# Installs what xpuplan needs to build and test, from Debian's archive. Idempotent, no prompts.
set -euo pipefail
pkgs=(g++ cmake ninja-build pkg-config libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
      libgtest-dev libbenchmark-dev python3
      libsqlite3-dev sqlite3 libopenmpi-dev openmpi-bin openssh-client gnuplot-nox)
# openssh-client: Open MPI's launcher looks for ssh even for ranks on this host.
# gnuplot-nox: charts of compare, budget and contract (--plot FILE.png|FILE.svg).
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
