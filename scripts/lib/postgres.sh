# shellcheck shell=bash
# PostgreSQL helpers shared by scripts/test, scripts/chaos and scripts/bench (sourced after
# scripts/lib/common.sh).
# initdb and postgres refuse to run as root: every server runs as the postgres user, in PG_DIR (which the
# sourcing script sets, under WORK_DIR).

# need_postgres: installs the server if missing and sets PG_BIN to its binaries.
need_postgres() {
    need_apt postgresql pg_config
    PG_BIN=$(pg_config --bindir)
    if [[ ! -x $PG_BIN/initdb ]]; then
        # pg_config can come from libpq-dev alone; the server is the postgresql package.
        # shellcheck disable=SC2034 # read by need_apt (scripts/lib/common.sh)
        APT_UPDATED=true
        say "apt-get update; apt-get install -y postgresql (no initdb in $PG_BIN)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        PG_BIN=$(pg_config --bindir)
    fi
    [[ -x $PG_BIN/initdb ]] || fail "PostgreSQL's initdb is missing from $PG_BIN"
}

# as_postgres COMMAND: runs a shell command as the postgres user.
as_postgres() { runuser -u postgres -- sh -c "$1"; }

# prepare_postgres_dir: creates PG_DIR, owned by the postgres user, reachable through WORK_DIR.
prepare_postgres_dir() {
    mkdir -p "$PG_DIR"
    chmod o+x "$WORK_DIR" # mktemp made it 0700; the postgres user must reach its own directory inside
    chown postgres "$PG_DIR"
}

# start_postgres NAME PORT [OPTIONS [HOST NETWORK]]: initializes $PG_DIR/NAME and starts PostgreSQL on
# HOST:PORT (default 127.0.0.1); with a NETWORK (a CIDR such as 10.1.2.0/24) its clients are trusted too.
start_postgres() {
    local name=$1 port=$2 options=${3:-} host=${4:-127.0.0.1} network=${5:-} data="$PG_DIR/$1"
    say "starting PostgreSQL $name on $host:$port"
    as_postgres "'$PG_BIN/initdb' -D '$data' -A trust -U postgres >'$PG_DIR/$name-initdb.log' 2>&1" ||
        fail "initdb of PostgreSQL $name failed (log: $PG_DIR/$name-initdb.log)"
    if [[ -n $network ]]; then
        printf 'host all all %s trust\n' "$network" >>"$data/pg_hba.conf"
    fi
    as_postgres "'$PG_BIN/pg_ctl' -D '$data' -l '$PG_DIR/$name.log' -w -t 60 -o \"-p $port -k '$PG_DIR' \
-c listen_addresses=$host -c max_connections=400 $options\" start >/dev/null" ||
        fail "PostgreSQL $name did not start (log: $PG_DIR/$name.log)"
    wait_for_port "$port" "postgres-$name" 30 "$host"
}

# stop_postgres_all: stops (immediately) every server started under PG_DIR.
stop_postgres_all() {
    local data
    [[ -n ${PG_DIR:-} && -d $PG_DIR ]] || return 0
    for data in "$PG_DIR"/*/; do
        if [[ -f $data/postmaster.pid ]]; then
            as_postgres "'$PG_BIN/pg_ctl' -D '$data' -m immediate stop" >/dev/null 2>&1 || true
        fi
    done
}
