#!/usr/bin/env bash
# Command-line tests of `xpuplan sweep` (run by CTest, see CMakeLists.txt here):
#   sweep_test.sh run    XPUPLAN SWEEP.toml N        runs; the database holds N scenario rows
#   sweep_test.sh resume XPUPLAN SWEEP.toml N BIG.toml
#                                 reruns skip all N and change nothing; a partial database, or one
#                                 left by a run of BIG killed with SIGKILL, completes to the same
#   sweep_test.sh bad    XPUPLAN BAD.toml PATTERN    exit 2, one line matching PATTERN, no database
#   sweep_test.sh export XPUPLAN SWEEP.toml          export errors: unknown table, missing database
#   sweep_test.sh mpi    XPUPLAN SWEEP.toml MPIEXEC  2 ranks give the same tables as 1 process
set -u
mode=$1; x=$2; shift 2
work=$(mktemp -d "${TMPDIR:-/tmp}/xpuplan-sweep.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

fail() { echo "FAIL: $*"; exit 1; }

# Runs a sweep; fails the test unless it exits 0. Output in $work/out.txt.
sweep() { "$x" sweep "$@" > out.txt 2>&1 || { cat out.txt; fail "xpuplan sweep $* exited $?"; }; }

# Exports every table of database $1 to $2.<table>.csv.
export_all() {
  for t in scenarios best_plans pareto_plans meta; do
    "$x" sweep export --db "$1" --table "$t" --csv "$2.$t.csv" || fail "export $t of $1"
  done
}

# Scenario rows in database $1 (sqlite3 when present, else the CSV export).
count_scenarios() {
  if command -v sqlite3 > /dev/null; then
    sqlite3 "$1" "SELECT count(*) FROM scenarios"
  else
    "$x" sweep export --db "$1" --table scenarios --csv count.csv || fail "export scenarios"
    echo $(( $(wc -l < count.csv) - 1 ))
  fi
}

same_tables() {  # $1 $2: prefixes of export_all
  for t in scenarios best_plans pareto_plans meta; do
    cmp "$1.$t.csv" "$2.$t.csv" || { diff "$1.$t.csv" "$2.$t.csv" | head -20; fail "$t differs: $1 vs $2"; }
  done
}

case "$mode" in
  run)
    file=$1; n=$2
    sweep "$file" --db r.sqlite --threads 2
    cat out.txt
    grep -Eq "sweep: $n/$n scenarios \(0 skipped\)" out.txt || fail "no final progress line $n/$n"
    [ "$(count_scenarios r.sqlite)" = "$n" ] || fail "expected $n scenario rows, got $(count_scenarios r.sqlite)"
    export_all r.sqlite a
    grep -q '^key,grid_index,model,system,devices,seq_len,global_batch,objective,' a.scenarios.csv || fail "scenarios header"
    grep -q ',ok,' a.scenarios.csv || fail "no scenario found a plan"
    [ "$(wc -l < a.best_plans.csv)" -gt 1 ] || fail "best_plans is empty"
    grep -q '^sweep_name,' a.meta.csv || fail "meta has no sweep_name"
    # The build that made the database: its source id, as --version prints it.
    src=$("$x" --version | sed -n 's/.*(source \([0-9a-f]\{16\}\))$/\1/p')
    [ -n "$src" ] || fail "--version names no source id"
    grep -q "^xpuplan_source,$src" a.meta.csv || fail "meta has no xpuplan_source $src"
    # Plans carry their expert tp (two plans differing only in etp were identical rows), and
    # sequence parallelism only where tp > 1 (as train --json says).
    head -1 a.best_plans.csv | grep -q ',ep,etp,micro_batch,' || fail "best_plans has no etp column after ep"
    if grep -q '^[^,]*,[0-9]*,[0-9]*,1,' a.best_plans.csv; then  # rows with tp 1
      sp=$(head -1 a.best_plans.csv | tr ',' '\n' | grep -n '^sequence_parallel$' | cut -d: -f1)
      awk -F, -v c="$sp" 'NR > 1 && $4 == 1 && $c != 0 { bad = 1 } END { exit bad }' a.best_plans.csv ||
        fail "sequence_parallel is 1 on a tp 1 plan"
    fi
    # A finished sweep leaves a rollback-journal database: no -wal beside it.
    [ ! -e r.sqlite-wal ] || fail "a finished sweep left r.sqlite-wal (still in WAL mode)"
    # A directory is no database (its lock went beside it, in the parent).
    mkdir dir.sqlite
    "$x" sweep "$file" --db dir.sqlite > dir.txt 2>&1 && fail "a directory as --db was accepted"
    grep -q 'dir.sqlite: is a directory, not a database file' dir.txt || { cat dir.txt; fail "directory --db message"; }
    [ ! -e dir.sqlite.lock ] || fail "a refused directory --db left dir.sqlite.lock"
    # RFC 4180: CRLF line ends.
    [ "$(head -1 a.scenarios.csv | od -An -c | tr -d ' \n' | tail -c 4)" = '\r\n' ] || fail "CSV lines must end in CRLF"
    # Thread count does not change the tables.
    sweep "$file" --db one.sqlite --threads 1
    export_all one.sqlite b
    same_tables a b
    # --threads 0: every core, as search and train take it.
    sweep "$file" --db zero.sqlite --threads 0
    ;;
  resume)
    file=$1; n=$2; big=$3
    sweep "$file" --db r.sqlite
    export_all r.sqlite first
    sweep "$file" --db r.sqlite
    cat out.txt
    grep -q "sweep: $n/$n scenarios ($n skipped), nothing to run" out.txt || fail "rerun did not skip all $n"
    grep -Eq "0 run .*, $n skipped" out.txt || fail "summary does not say 0 run, $n skipped"
    export_all r.sqlite second
    same_tables first second
    if command -v sqlite3 > /dev/null; then
      # A run killed half way: only whole scenarios are left; the rerun completes the same tables.
      cp r.sqlite part.sqlite
      sqlite3 part.sqlite "DELETE FROM best_plans WHERE scenario_key IN (SELECT key FROM scenarios WHERE grid_index % 2 = 1);
                           DELETE FROM pareto_plans WHERE scenario_key IN (SELECT key FROM scenarios WHERE grid_index % 2 = 1);
                           DELETE FROM scenarios WHERE grid_index % 2 = 1;" || fail "sqlite3"
      sweep "$file" --db part.sqlite
      cat out.txt
      grep -q "$(( (n + 1) / 2 )) already in part.sqlite" out.txt || fail "partial rerun did not skip the written half"
      export_all part.sqlite part
      same_tables first part
    fi
    # Really killed (SIGKILL part way through a longer sweep): whatever was committed stays, and
    # the rerun completes the same tables as an uninterrupted run.
    sweep "$big" --db whole.sqlite --threads 1
    export_all whole.sqlite whole
    "$x" sweep "$big" --db killed.sqlite --threads 1 > /dev/null 2>&1 &
    pid=$!
    sleep 0.5
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    sweep "$big" --db killed.sqlite
    grep -E "already in killed.sqlite|nothing to run" out.txt
    export_all killed.sqlite killed
    same_tables whole killed
    # Another sweep into the same database is refused.
    sed 's/^name = .*/name = "other"/' "$file" > other.toml
    out=$("$x" sweep other.toml --db r.sqlite 2>&1); rc=$?
    [ "$rc" -eq 2 ] || fail "another sweep into the same database: exit $rc, expected 2"
    printf '%s\n' "$out" | grep -q "r.sqlite: holds results of another sweep" || fail "no refusal message: $out"
    # The same sweep at another price (its cost columns; the objective ranks by time) is refused.
    printf '%s\nusd_per_device_hour = 50.0\n' "$(cat "$file")" > priced.toml
    out=$("$x" sweep priced.toml --db r.sqlite 2>&1); rc=$?
    [ "$rc" -eq 2 ] || fail "a resume at another price: exit $rc, expected 2"
    printf '%s\n' "$out" | grep -q "usd_per_device_hour is" || fail "no price refusal message: $out"
    # One writer at a time: while another process holds the database's lock, a sweep is refused
    # before it starts (it would claim the same scenarios and stop on a constraint error).
    if command -v flock > /dev/null; then
      out=$(flock r.sqlite.lock "$x" sweep "$file" --db r.sqlite 2>&1); rc=$?
      [ "$rc" -eq 2 ] || fail "a sweep ran while another held the lock: exit $rc, expected 2"
      printf '%s\n' "$out" | grep -q "another sweep is writing to this database" || fail "no lock message: $out"
    fi
    # The same sweep over other inputs is refused too: an identical copy of the catalog resumes, a
    # changed one (a chip's memory bandwidth) would mix old and new figures.
    cp -r "$(dirname "$file")/../../data" catalog
    "$x" --data catalog sweep "$file" --db r.sqlite > copy.txt 2>&1 || fail "an identical catalog copy was refused: $(cat copy.txt)"
    sed -i 's/^bandwidth = .*/bandwidth = "2.0 TB\/s"/' catalog/chips/h100-sxm.toml
    out=$("$x" --data catalog sweep "$file" --db r.sqlite 2>&1); rc=$?
    [ "$rc" -eq 2 ] || fail "a changed catalog resumed: exit $rc, expected 2"
    printf '%s\n' "$out" | grep -q "r.sqlite: holds results computed from other inputs" || fail "no refusal message: $out"
    ;;
  bad)
    file=$1; pattern=$2
    out=$("$x" sweep "$file" --db bad.sqlite 2>&1); rc=$?
    echo "$out"
    [ "$rc" -eq 2 ] || fail "exit code $rc, expected 2"
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "an input error must be one line"
    printf '%s\n' "$out" | grep -Eq -- "$pattern" || fail "output does not match /$pattern/"
    [ ! -e bad.sqlite ] || fail "a bad sweep file created the database"
    ;;
  export)
    file=$1
    sweep "$file" --db r.sqlite
    out=$("$x" sweep export --db r.sqlite --table plans 2>&1); rc=$?
    [ "$rc" -eq 2 ] && printf '%s\n' "$out" | grep -q -- "--table: 'plans' is not" || fail "unknown table: $rc $out"
    out=$("$x" sweep export --db missing.sqlite --table scenarios 2>&1); rc=$?
    [ "$rc" -eq 2 ] && printf '%s\n' "$out" | grep -q "missing.sqlite: cannot open database" || fail "missing db: $rc $out"
    [ ! -e missing.sqlite ] || fail "export created a database"
    "$x" sweep export --db r.sqlite --table best_plans > stdout.csv || fail "export to stdout"
    "$x" sweep export --db r.sqlite --table best_plans --csv file.csv || fail "export to file"
    cmp stdout.csv file.csv || fail "stdout and file exports differ"
    [ ! -e file.csv.tmp ] || fail "temporary file left behind"
    ;;
  mpi)
    file=$1; mpiexec=$2
    sweep "$file" --db local.sqlite --threads 1
    export_all local.sqlite local
    "$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$x" sweep "$file" --db mpi.sqlite > mpi.txt 2>&1 ||
      { cat mpi.txt; fail "mpirun exited $?"; }
    cat mpi.txt
    grep -q "on 2 MPI ranks" mpi.txt || fail "the sweep did not run on 2 ranks"
    export_all mpi.sqlite mpi
    same_tables local mpi
    ;;
  *) fail "unknown mode $mode" ;;
esac
echo "PASS"
