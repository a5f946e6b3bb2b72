#!/bin/sh
# once-per-round.sh SYSTEM COMMAND [ARGS...]: runs COMMAND once per day among all the hosts that run this script
# with the same SYSTEM, over the store in $BATON_STORE (default: sqlite:baton.db, which only this host sees).
#
# The winner of today's round runs COMMAND; when it exits 0 the round is recorded as completed, and a retry on
# the winning host after a failure runs COMMAND again. Every other host prints "lost: winner is HOST" on standard
# error and exits 0 without running it. The exit status is COMMAND's, or baton's (3: the store failed and the
# outcome is unknown; a retry is safe).
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 SYSTEM COMMAND [ARGS...]" >&2
    exit 64
fi
system=$1
shift
exec "${BATON:-baton}" run --key "$system" --round "$(date +%F)" -- "$@"
