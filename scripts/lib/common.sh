# shellcheck shell=bash
# Shell helpers shared by scripts/test, scripts/chaos and scripts/bench (sourced, not run): installing what is
# missing, free loopback ports, starting servers in the background. The sourcing script sets WORK_DIR before starting servers.

APT_UPDATED=false
SERVER_PIDS=()

say() { printf '==> %s\n' "$*" >&2; }
fail() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}

# need_apt PACKAGES... BINARY: installs the Debian packages unless BINARY is already on the PATH.
# Runs `apt-get update` at most once per run.
need_apt() {
    local binary=${*: -1}
    local packages=("${@:1:$#-1}")
    if command -v "$binary" >/dev/null 2>&1; then
        return 0
    fi
    if [[ $APT_UPDATED == false ]]; then
        say "apt-get update"
        apt-get update -qq
        APT_UPDATED=true
    fi
    say "apt-get install -y ${packages[*]} (for $binary)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    command -v "$binary" >/dev/null 2>&1 || fail "$binary is still missing after installing ${packages[*]}"
}

# need_pip REQUIREMENT BINARY: installs a Python package with pip unless BINARY is already on the PATH.
need_pip() {
    local requirement=$1 binary=$2
    if command -v "$binary" >/dev/null 2>&1; then
        return 0
    fi
    say "pip install $requirement (for $binary)"
    python3 -m pip install --quiet "$requirement"
    command -v "$binary" >/dev/null 2>&1 || fail "$binary is still missing after pip install $requirement"
}

# need_swift: puts Swift 6.3 on the PATH (it is expected at /opt/swift).
need_swift() {
    if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    command -v swift >/dev/null 2>&1 || fail "swift is not installed (Swift 6.3 is expected at /opt/swift)"
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on (the kernel's choice for port 0).
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_for_port PORT NAME [SECONDS [HOST]]: waits until something accepts connections on HOST:PORT (default
# 127.0.0.1).
wait_for_port() {
    local port=$1 name=$2 seconds=${3:-30} host=${4:-127.0.0.1} tries
    for ((tries = 0; tries < seconds * 10; tries++)); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    fail "$name did not accept connections on $host:$port within ${seconds}s (log: $WORK_DIR/$name.log)"
}

# start_server NAME COMMAND...: starts a server in the background, logging to $WORK_DIR/NAME.log; the sourcing
# script stops the processes in SERVER_PIDS when it exits.
start_server() {
    local name=$1
    shift
    say "starting $name: $*"
    "$@" >"$WORK_DIR/$name.log" 2>&1 &
    SERVER_PIDS+=("$!")
}

# stop_servers: stops what start_server started.
stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
