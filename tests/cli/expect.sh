#!/usr/bin/env bash
# expect.sh RC PATTERN CMD...: runs CMD, passes when its exit code is RC and its combined
# output matches the extended regex PATTERN (one line on stderr for errors).
set -u
want_rc=$1; pattern=$2; shift 2
out=$("$@" 2>&1); rc=$?
if [ "$rc" -ne "$want_rc" ]; then
  echo "exit code $rc, expected $want_rc"; echo "$out" | tail -20; exit 1
fi
# A pattern spanning lines (a newline in it) is matched against the whole output at once (PCRE,
# '.' not crossing lines); grep -E would take each of its lines as a separate alternative.
case "$pattern" in
  *$'\n'*) matcher=(grep -Pzq); pattern=${pattern//$'\n'/\\n} ;;
  *) matcher=(grep -Eq) ;;
esac
if ! printf '%s\n' "$out" | "${matcher[@]}" -- "$pattern"; then
  echo "output does not match /$pattern/:"; echo "$out" | tail -20; exit 1
fi
if [ "$want_rc" -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ]; then
  echo "an input error must be one line, got:"; echo "$out"; exit 1
fi
exit 0
