#!/usr/bin/env bash
# tests/gdb/run.sh EXE SCRIPT [PRIMES] - run EXE (tests/gdb/gdb_coroutines.c)
# under gdb in batch mode with the extension SCRIPT (gdb/may-gdb.py), stop
# it when its coroutines are parked, and check what `may coroutines` and
# `may bt all` print.  Then, if given, the same against the prime-sieve
# example (examples/primes.c) stopped when its 31st filter is spawned.
# Fails on any missing line.
set -euo pipefail
exe=$1
script=$2
primes=${3:-}
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
# The program exited with status 0.  Under load gdb sometimes loses a thread
# that exits while it stops the program ("Couldn't get registers: No such
# process.") and then reports no exit at all; the program's own last line,
# checked with need before this, shows that it ran to its end, so that case
# passes as long as gdb saw no other exit status.
need_exit() {
    if grep -q 'exited normally' "$out"; then
        return
    fi
    if grep -q "Couldn't get registers: No such process" "$out" &&
        ! grep -q 'exited with code' "$out"; then
        echo "run.sh: gdb lost a thread at the exit (a gdb race under load); the output shows the end"
        return
    fi
    echo "run.sh: missing: exited normally" >&2
    fail=1
}
# the listing: id, name, worker, state, where the user's code blocked
need '^[0-9]+ +"receiver" +- +parked: chan recv 0x[0-9a-f]+ +gdb_recv_fn at gdb_coroutines.c:[0-9]+'
need '^[0-9]+ +"sleeper" +- +parked: sleep, with deadline +gdb_sleep_fn at gdb_coroutines.c:[0-9]+'
need '^[0-9]+ +"locker" +- +parked: mutex 0x[0-9a-f]+ +gdb_lock_fn at gdb_coroutines.c:[0-9]+'
need '^3 coroutines$'
# the backtraces, unwound by gdb from the saved registers (a frame the
# compiler inlined, as the unity build does with the library's own calls,
# shows no address)
need '^coroutine [0-9]+ "receiver" \[parked: chan recv'
need '^#[0-9]+ +0x[0-9a-f]+ in gdb_recv_fn \(arg=.*\) at .*gdb_coroutines.c:[0-9]+'
need '^#[0-9]+ +(0x[0-9a-f]+ in )?may_chan_recv '
need '^#[0-9]+ +0x[0-9a-f]+ in gdb_sleep_fn '
need '^#[0-9]+ +(0x[0-9a-f]+ in )?may_sleep_until '
need '^#[0-9]+ +0x[0-9a-f]+ in gdb_lock_fn '
# the thread's own registers are back: its backtrace is where it stopped
need '^==thread-bt==$'
need '^#0 +gdb_target_ready \(\) at .*gdb_coroutines.c'
# and the program ran on to its normal end
need 'gdb_coroutines: done'
need_exit

if [[ -n $primes ]]; then
    timeout 120 gdb -nx -batch \
        -ex "set pagination off" -ex "set confirm off" \
        -ex "source $script" \
        -ex "break may_scope_spawn_sized" -ex "ignore 1 30" -ex run \
        -ex "may coroutines" -ex "may bt all" \
        -ex "delete" -ex continue \
        --args "$primes" 50 >"$out" 2>&1 || true
    cat "$out"
    # 30 filters and the generator, each parked on a channel (one may be
    # running): the listing shows where in primes.c each one blocked
    n=$(grep -Ec '^[0-9]+ +"" +- +parked: chan (recv|send) 0x[0-9a-f]+ +(filter|generate) at primes.c:[0-9]+' "$out" || true)
    echo "run.sh: $n coroutines of the sieve parked on channels"
    if ((n < 25)); then
        echo "run.sh: expected at least 25 parked sieve coroutines" >&2
        fail=1
    fi
    need '^3[01] coroutines$'
    need '^#[0-9]+ +0x[0-9a-f]+ in filter \(arg=.*\) at .*primes.c:[0-9]+'
    need '^229$|229$' # the 50th prime: the sieve ran on to its end
    need_exit
fi
exit $fail
