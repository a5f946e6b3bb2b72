# shellcheck shell=bash
# The status page (`GET /` of `baton serve`) in a real browser (sourced after common.sh): Debian's headless
# Chromium, driven over the DevTools protocol by scripts/lib/statuspage_check.py, must show a lease acquired through
# the API and then its change to another holder in the same page, without a reload, with authentication on.

# need_chromium: installs Debian's chromium unless it is on the PATH (under CI=true a failed install fails the run).
need_chromium() {
    need_apt chromium chromium
}

# run_statuspage_check BATON [SCREENSHOT]: starts `BATON serve` on a free loopback port with a fresh SQLite store and
# a random bearer token (--auth-token-file), runs the browser check against it (at most 60 s; it writes the page's
# screenshot to SCREENSHOT if given), stops the server, and fails the run on any mismatch.
run_statuspage_check() {
    local baton=$1 screenshot=${2:-} name=statuspage port token status started
    local options=()
    [[ -n $screenshot ]] && options=(--screenshot "$screenshot")
    port=$(free_port)
    mkdir -p "$WORK_DIR/$name"
    token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    (umask 077 && printf '%s\n' "$token" >"$WORK_DIR/$name/token")
    start_server "$name" "$baton" serve --host 127.0.0.1 --port "$port" --store "sqlite:$WORK_DIR/$name/baton.db" \
        --auth-token-file "$WORK_DIR/$name/token"
    local server=${SERVER_PIDS[-1]}
    wait_for_port "$port" "$name"
    say "the status page in headless $(chromium --version 2>/dev/null | head -n 1)"
    started=$(date +%s)
    status=0
    BATON_TOKEN=$token timeout 60 python3 "$ROOT/scripts/lib/statuspage_check.py" --url "http://127.0.0.1:$port" \
        --chromium "$(command -v chromium)" "${options[@]}" || status=$?
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    ((status == 0)) || fail "the status page did not show the lease and its change (above; exit $status)"
    say "status page checked in $(($(date +%s) - started)) s"
}
