#!/usr/bin/env bash
# calibration_reproduces.sh XPUPLAN SOURCE_DIR: the shipped data/calibration files are what their
# recorded command writes: rerun `calibrate --truth validation/training-public.csv` into a
# scratch folder (from the source folder, as the command records its paths) and compare every
# written file with the shipped one, all but its date.
set -u
x=$1; src=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$src" || exit 1
"$x" calibrate --truth validation/training-public.csv --out-dir "$out" > /dev/null || exit 1
n=0
for f in "$out"/*.toml; do
  b=$(basename "$f")
  if ! diff <(grep -v '^date = ' "$f") <(grep -v '^date = ' "data/calibration/$b") > /dev/null; then
    echo "data/calibration/$b differs from a refit (run the command in its [fit] command and commit):"
    diff <(grep -v '^date = ' "$f") <(grep -v '^date = ' "data/calibration/$b") | head -8
    exit 1
  fi
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "the fit wrote no file"; exit 1; }
echo "$n calibration files reproduce"
