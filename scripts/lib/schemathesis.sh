# shellcheck shell=bash
# The API fuzzer schemathesis against a live `baton serve` (sourced by scripts/test, after common.sh): every check
# of a pinned version, a fixed seed and a bounded time, on docs/openapi.json. Any finding fails the run.
# The settings are scripts/lib/schemathesis.toml; the hooks (scripts/lib/schemathesis_hooks.py) leave out the one
# rule the document cannot state (byte limits; docs/http.md says why). One worker: with two, Python 3.11's parser
# is entered from two threads at once and fails now and then ("AST constructor recursion depth mismatch").

SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_SEED=${SCHEMATHESIS_SEED:-19}

# need_schemathesis: installs schemathesis==$SCHEMATHESIS_VERSION in a virtual environment under $WORK_DIR and sets
# SCHEMATHESIS to its command. Returns 1 (outside CI) when it cannot be installed; under CI=true that fails the run.
need_schemathesis() {
    local venv="$WORK_DIR/schemathesis-venv"
    if ! python3 -m venv "$venv" >"$WORK_DIR/venv.log" 2>&1; then
        rm -rf "$venv"
        say "python3 -m venv failed: apt-get install -y python3-venv"
        if [[ $APT_UPDATED == false ]]; then
            apt-get update -qq || true
            APT_UPDATED=true
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null 2>&1 || true
        python3 -m venv "$venv" >"$WORK_DIR/venv.log" 2>&1 || {
            cat "$WORK_DIR/venv.log" >&2
            schemathesis_missing "python3 -m venv does not work"
            return 1
        }
    fi
    say "pip install schemathesis==$SCHEMATHESIS_VERSION"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
        >"$WORK_DIR/pip.log" 2>&1 || {
        cat "$WORK_DIR/pip.log" >&2
        schemathesis_missing "pip install schemathesis==$SCHEMATHESIS_VERSION failed"
        return 1
    }
    SCHEMATHESIS="$venv/bin/schemathesis"
}

schemathesis_missing() {
    [[ $CI == true ]] && fail "$1 (CI=true: the API fuzzer must run)"
    say "skipping schemathesis: $1"
}

# run_schemathesis NAME SECONDS BATON [SERVE_OPTIONS...] [-- SCHEMATHESIS_OPTIONS...]: starts `BATON serve` on a free
# loopback port with a fresh SQLite store and SERVE_OPTIONS, runs schemathesis with every check for SECONDS against
# it (from a directory of its own: it writes .schemathesis/ where it runs), stops the server, and fails the run on
# any finding.
run_schemathesis() {
    local name=$1 seconds=$2 baton=$3 port status
    shift 3
    local serve=() options=()
    while (($# > 0)) && [[ $1 != -- ]]; do
        serve+=("$1")
        shift
    done
    (($# > 0)) && shift
    options=("$@")
    port=$(free_port)
    mkdir -p "$WORK_DIR/$name"
    start_server "$name" "$baton" serve --host 127.0.0.1 --port "$port" --store "sqlite:$WORK_DIR/$name/baton.db" \
        "${serve[@]}"
    local server=${SERVER_PIDS[-1]}
    wait_for_port "$port" "$name"
    say "schemathesis $SCHEMATHESIS_VERSION ($name): --checks all --max-time $seconds --seed $SCHEMATHESIS_SEED"
    status=0
    (cd "$WORK_DIR/$name" && SCHEMATHESIS_HOOKS="$ROOT/scripts/lib/schemathesis_hooks.py" "$SCHEMATHESIS" \
        --config-file "$ROOT/scripts/lib/schemathesis.toml" --no-color run "$ROOT/docs/openapi.json" \
        --url "http://127.0.0.1:$port" --checks all --max-time "$seconds" --workers 1 --seed "$SCHEMATHESIS_SEED" \
        "${options[@]}") || status=$?
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    ((status == 0)) || fail "schemathesis ($name) found the API and docs/openapi.json disagreeing (above; exit $status)"
}
