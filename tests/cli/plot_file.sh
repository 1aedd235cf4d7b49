#!/usr/bin/env bash
# plot_file.sh OUT CMD...: runs CMD (which writes the chart OUT), passes when it exits 0 and OUT is a
# non-empty PNG or SVG with no temporary files left beside it.
set -u
out=$1; shift
rm -f "$out"
"$@" >/dev/null || { echo "command failed"; exit 1; }
[ -s "$out" ] || { echo "no chart at $out"; exit 1; }
case "$out" in
  *.png) head -c 8 "$out" | od -An -c | grep -q "P   N   G" || { echo "not a PNG"; exit 1; } ;;
  *.svg) grep -q "<svg" "$out" || { echo "not an SVG"; exit 1; } ;;
esac
ls "$out".* >/dev/null 2>&1 && { echo "temporary files left: $(ls "$out".*)"; exit 1; }
exit 0
