#!/usr/bin/env bash
# stale-leader.sh WORKER_BINARY: checks with real processes that the ledger refuses a leader whose lease expired
# while it was paused. Prints what happens; exits non-zero, naming the broken expectation, if anything differs.
set -euo pipefail

worker=${1:?usage: stale-leader.sh PATH/TO/FencedWorkerExample}
dir=$(mktemp -d "${TMPDIR:-/tmp}/baton-fenced.XXXXXX")
a_pid=
finish() {
    if [[ -n $a_pid ]] && kill -0 "$a_pid" 2>/dev/null; then
        kill -CONT "$a_pid" 2>/dev/null || true
        kill "$a_pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap finish EXIT
fail() {
    printf 'stale-leader.sh: %s\n' "$*" >&2
    for log in "$dir"/*.log; do
        [[ -f $log ]] && { printf -- '--- %s\n' "$log" >&2; cat "$log" >&2; }
    done
    [[ -f $dir/ledger.txt ]] && { printf -- '--- ledger\n' >&2; cat "$dir/ledger.txt" >&2; }
    exit 1
}
# state PID: the process state letter from /proc (T: stopped).
state() { awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo gone; }

store="sqlite:$dir/baton.db"
ledger="$dir/ledger.txt"

echo "1. worker A campaigns, is elected, and pauses (SIGSTOP) before its first write"
"$worker" --store "$store" --ledger "$ledger" --id worker-a --ttl 1s --work 10ms --jobs 2 \
    --pause-before-first-write yes >"$dir/a.log" 2>&1 &
a_pid=$!
for ((i = 0; i < 600; i++)); do
    [[ $(state "$a_pid") == T ]] && break
    [[ $(state "$a_pid") == gone ]] && fail "worker A exited before pausing"
    sleep 0.1
done
[[ $(state "$a_pid") == T ]] || fail "worker A did not pause within 60 s"
a_token=$(sed -n 's/.*elected with token \([0-9]*\).*/\1/p' "$dir/a.log" | head -n 1)
[[ -n $a_token ]] || fail "worker A's log does not show its token"
echo "   worker A holds token $a_token and is stopped"

echo "2. worker A's lease expires; worker B is elected and records its jobs"
if ! "$worker" --store "$store" --ledger "$ledger" --id worker-b --ttl 1s --work 10ms --jobs 2 >"$dir/b.log" 2>&1; then
    fail "worker B failed"
fi
b_token=$(sed -n 's/.*elected with token \([0-9]*\).*/\1/p' "$dir/b.log" | head -n 1)
[[ -n $b_token ]] || fail "worker B's log does not show its token"
((b_token > a_token)) || fail "worker B's token $b_token is not larger than worker A's $a_token"
echo "   worker B held token $b_token"

echo "3. worker A resumes and writes with its old token"
kill -CONT "$a_pid"
status=0
wait "$a_pid" || status=$?
a_pid=
[[ $status == 4 ]] || fail "worker A exited $status; expected 4 (the ledger refused its stale token)"
grep -q "stale fencing token $a_token" "$dir/a.log" || fail "worker A's log does not say that token $a_token was refused"
echo "   the ledger refused token $a_token; worker A exited 4"

echo "4. the ledger holds worker B's jobs only"
grep -qx "$(printf 'highest\texamples/ledger-worker\t%s' "$b_token")" "$ledger" ||
    fail "the ledger's highest token is not $b_token"
grep -q "holder worker-a" "$ledger" && fail "the ledger holds a write of worker A"
[[ $(grep -c "holder worker-b" "$ledger") == 2 ]] || fail "the ledger does not hold worker B's two jobs"
cat "$ledger" | sed 's/^/   /'
echo "ok: a stale leader's write was refused"
