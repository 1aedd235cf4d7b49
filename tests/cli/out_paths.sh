#!/usr/bin/env bash
# out_paths.sh XPUPLAN CONTRACT: --out writes through a symbolic link (the link stays a link, also a
# dangling one), to a
# FIFO without replacing it, and refuses a missing folder before writing the --plot beside it.
set -u
x=$1 contract=$2
d=$(mktemp -d "${TMPDIR:-/tmp}/xpuplan-out.XXXXXX")
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$d" || exit 1
echo old > real.json && ln -s real.json link.json
"$x" contract "$contract" --json --out link.json || fail "write through a link exited $?"
[ -L link.json ] || fail "the link was replaced by a file"
grep -q '"name"' real.json || fail "the link's target was not written"
ln -s new.json dangling.json
"$x" contract "$contract" --json --out dangling.json || fail "write through a dangling link exited $?"
[ -L dangling.json ] && grep -q '"name"' new.json || fail "a dangling link was replaced, or its target not created"
mkfifo p.json
cat p.json > got.txt &
"$x" contract "$contract" --json --out p.json || fail "write to a FIFO exited $?"
wait
[ -p p.json ] || fail "the FIFO was replaced"
grep -q '"name"' got.txt || fail "the FIFO's reader got nothing"
if "$x" contract "$contract" --json --out nodir/x.json --plot chart.svg 2> err.txt; then fail "a missing --out folder was accepted"; fi
grep -q -- "--out: 'nodir/x.json': no folder" err.txt || fail "unexpected error: $(cat err.txt)"
[ ! -e chart.svg ] || fail "the chart was written although --out could not be"
# The temporary file is a fresh name: a link planted at "<out>.tmp" is never written through.
echo precious > keep.txt && ln -s keep.txt planted.json.tmp
"$x" contract "$contract" --json --out planted.json || fail "write beside a planted .tmp link exited $?"
[ "$(cat keep.txt)" = precious ] || fail "the planted <out>.tmp link was written through"
grep -q '"name"' planted.json || fail "planted.json was not written"
[ -z "$(ls planted.json.tmp.* 2>/dev/null)" ] || fail "a temporary file was left behind"
echo ok
