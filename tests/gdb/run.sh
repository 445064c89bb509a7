#!/usr/bin/env bash
# tests/gdb/run.sh EXE SCRIPT - run EXE (tests/gdb/gdb_coroutines.c) under
# gdb in batch mode with the extension SCRIPT (gdb/may-gdb.py), stop it
# when its coroutines are parked, and check what `may coroutines` and
# `may bt all` print.  Fails on any missing line.
set -euo pipefail
exe=$1
script=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 120 gdb -nx -batch \
    -ex "set pagination off" -ex "set confirm off" \
    -ex "source $script" \
    -ex "break gdb_target_ready" -ex run \
    -ex "may coroutines" -ex "may bt all" \
    -ex "echo ==thread-bt==\n" -ex "bt 3" \
    -ex continue \
    --args "$exe" >"$out" 2>&1 || true
cat "$out"
fail=0
need() { # regex: must match a line of the output
    if ! grep -Eq -- "$1" "$out"; then
        echo "run.sh: missing: $1" >&2
        fail=1
    fi
}
# the listing: id, name, worker, state, where the user's code blocked
need '^[0-9]+ +"receiver" +- +parked: chan recv 0x[0-9a-f]+ +gdb_recv_fn at gdb_coroutines.c:[0-9]+'
need '^[0-9]+ +"sleeper" +- +parked: sleep, with deadline +gdb_sleep_fn at gdb_coroutines.c:[0-9]+'
need '^[0-9]+ +"locker" +- +parked: mutex 0x[0-9a-f]+ +gdb_lock_fn at gdb_coroutines.c:[0-9]+'
need '^3 coroutines$'
# the backtraces, unwound by gdb from the saved registers
need '^coroutine [0-9]+ "receiver" \[parked: chan recv'
need '^#[0-9]+ +0x[0-9a-f]+ in gdb_recv_fn \(arg=.*\) at .*gdb_coroutines.c:[0-9]+'
need '^#[0-9]+ +0x[0-9a-f]+ in may_chan_recv '
need '^#[0-9]+ +0x[0-9a-f]+ in gdb_sleep_fn '
need '^#[0-9]+ +0x[0-9a-f]+ in may_sleep_until '
need '^#[0-9]+ +0x[0-9a-f]+ in gdb_lock_fn '
# the thread's own registers are back: its backtrace is where it stopped
need '^==thread-bt==$'
need '^#0 +gdb_target_ready \(\) at .*gdb_coroutines.c'
# and the program ran on to its normal end
need 'gdb_coroutines: done'
need 'exited normally'
exit $fail
