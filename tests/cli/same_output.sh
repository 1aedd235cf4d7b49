#!/usr/bin/env bash
# same_output.sh CMD...: runs CMD twice (the second time with --threads 1) and passes when both
# outputs are byte-identical and non-empty.
set -u
a=$("$@") || exit 1
b=$("$@" --threads 1) || exit 1
[ -n "$a" ] || { echo "empty output"; exit 1; }
[ "$a" == "$b" ] || { echo "outputs differ"; diff <(echo "$a") <(echo "$b") | head; exit 1; }
exit 0
