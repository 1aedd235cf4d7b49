#!/usr/bin/env bash
# calibration_reproduces.sh XPUPLAN SOURCE_DIR [DATA_DIR TRUTH...]: the shipped fitted files are
# what their recorded command writes: rerun `calibrate --truth TRUTH...` (by default
# validation/training-public.csv, whose files are data/calibration) into a scratch folder, from
# the source folder as the command records its paths, and compare every written file with the
# shipped one in DATA_DIR, all but its dates.
set -u
x=$1; src=$2; shift 2
dir=data/calibration
truth=(validation/training-public.csv)
if [ $# -gt 0 ]; then dir=$1; shift; truth=("$@"); fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$src" || exit 1
args=()
for t in "${truth[@]}"; do args+=(--truth "$t"); done
"$x" calibrate "${args[@]}" --out-dir "$out" > /dev/null || exit 1
n=0
for f in "$out"/*.toml; do
  b=$(basename "$f")
  if ! diff <(grep -v '^date = ' "$f") <(grep -v '^date = ' "$dir/$b") > /dev/null; then
    echo "$dir/$b differs from a refit (run the command in its [fit] command and commit):"
    diff <(grep -v '^date = ' "$f") <(grep -v '^date = ' "$dir/$b") | head -8
    exit 1
  fi
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "the fit wrote no file"; exit 1; }
echo "$n files in $dir reproduce"
