#!/usr/bin/env bash
# Shared helpers for scripts/up and scripts/test. Source it, do not run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Every ensure_* function is idempotent: it first checks, prints what it found
# ("==> postgres: already running") and only installs or starts what is missing.
# apt-get update runs at most once per process, and only when something must be
# installed. Works on a fresh Debian/Ubuntu machine or container without systemd.
#
# Layout (add new services/tools as a new section with one ensure_* function):
#   1. settings            GH_* defaults, overridable from the environment
#   2. logging and steps   log, warn, die, step
#   3. small helpers       have, port_open, wait_until, as_root
#   4. apt                 ensure_apt_packages
#   5. postgres            ensure_postgres, pg_admin, ensure_db_role, drop_test_databases
#   6. redis               ensure_redis
#   7. rust                ensure_rust, ensure_cargo_install
#   8. docker-compose      ensure_docker_compose
#   9. media               ensure_s3s_fs, ensure_cargo_lambda, start_local_media
#  10. scratch server      scratch_database, serve_scratch (scripts/schemathesis, scripts/sdk)

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  echo "scripts/lib.sh is a library: source it from a script" >&2
  exit 2
fi

set -euo pipefail

# --------------------------------------------------------------------------
# 1. settings
# --------------------------------------------------------------------------
# GH_ROOT and GH_CONFIG_DIR are used by the scripts that source this file.
# shellcheck disable=SC2034
GH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

GH_PG_HOST="${GH_PG_HOST:-127.0.0.1}"
GH_PG_PORT="${GH_PG_PORT:-5432}"
GH_DB_ROLE="${GH_DB_ROLE:-guildhall}"
GH_DB_PASSWORD="${GH_DB_PASSWORD:-guildhall}"
GH_DB_NAME="${GH_DB_NAME:-guildhall}"

GH_REDIS_HOST="${GH_REDIS_HOST:-127.0.0.1}"
GH_REDIS_PORT="${GH_REDIS_PORT:-6379}"
GH_REDIS_DIR="${GH_REDIS_DIR:-/var/lib/redis}"
GH_REDIS_LOG="${GH_REDIS_LOG:-/var/log/redis/guildhall.log}"

# shellcheck disable=SC2034
GH_CONFIG_DIR="${XDG_CONFIG_HOME:-$HOME/.config}/guildhall"

# Builds live outside the clone so fresh clones (CI) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/guildhall/target}"
export DEBIAN_FRONTEND=noninteractive

# --------------------------------------------------------------------------
# 2. logging and steps
# --------------------------------------------------------------------------
_gh_now_ms() { date +%s%3N; }

# Seconds since a _gh_now_ms timestamp, e.g. "3.217s".
_gh_elapsed() {
  local ms=$(($(_gh_now_ms) - $1))
  printf '%d.%03ds' $((ms / 1000)) $((ms % 1000))
}

GH_START_MS="${GH_START_MS:-$(_gh_now_ms)}"

log() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

# step NAME cmd...: run cmd in the current shell (so exports stick), print
# its elapsed time. On failure the EXIT trap below names the failed step.
_GH_STEP=""
_GH_STEP_START=0
step() {
  local name="$1"
  shift
  local start
  start="$(_gh_now_ms)"
  _GH_STEP="$name"
  _GH_STEP_START="$start"
  log "--- [$name] ---"
  "$@"
  log "--- [$name] done in $(_gh_elapsed "$start") ---"
  _GH_STEP=""
}

# Commands run when the script exits (background services started for this run).
GH_CLEANUP=()

# Set GH_PRINT_TOTAL=1 to print the total wall time when the script exits.
_gh_on_exit() {
  local rc=$? cmd
  for cmd in "${GH_CLEANUP[@]}"; do
    eval "$cmd" || true
  done
  if [[ -n "$_GH_STEP" && $rc -ne 0 ]]; then
    printf '!!! [%s] FAILED (exit %d) after %s\n' "$_GH_STEP" "$rc" "$(_gh_elapsed "$_GH_STEP_START")" >&2
  fi
  if [[ "${GH_PRINT_TOTAL:-0}" == 1 ]]; then
    printf '=== total wall time: %s (exit %d) ===\n' "$(_gh_elapsed "$GH_START_MS")" "$rc"
  fi
  return "$rc"
}
trap _gh_on_exit EXIT

# --------------------------------------------------------------------------
# 3. small helpers
# --------------------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }

# port_open HOST PORT: true if something accepts TCP connections there.
port_open() {
  # shellcheck disable=SC2016 # $1/$2 expand in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# wait_until SECONDS DESCRIPTION cmd...: poll cmd every 0.5s.
wait_until() {
  local secs="$1" what="$2"
  shift 2
  local tries=$((secs * 2))
  while ((tries-- > 0)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  die "$what: not ready after ${secs}s"
}

# as_root cmd...: run cmd as root (sudo when we are not root).
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif have sudo; then
    sudo -E "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# --------------------------------------------------------------------------
# 4. apt
# --------------------------------------------------------------------------
_GH_APT_UPDATED=0

_gh_pkg_installed() {
  dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

# ensure_apt_packages PKG...: install only the packages that are missing.
ensure_apt_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    _gh_pkg_installed "$pkg" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    log "==> apt: already installed: $*"
    return 0
  fi
  # Explicit returns: callers may use this in an `if`, where set -e is off.
  if ! have apt-get; then
    warn "apt-get not found; install manually: ${missing[*]}"
    return 1
  fi
  if ((_GH_APT_UPDATED == 0)); then
    log "==> apt: apt-get update"
    _gh_apt update || return 1
    _GH_APT_UPDATED=1
  fi
  log "==> apt: installing ${missing[*]}"
  _gh_apt install -y --no-install-recommends "${missing[@]}" || return 1
}

# apt-get with its chatter in a log file; the log's tail is shown on failure.
_gh_apt() {
  local out rc=0
  out="$(mktemp)"
  as_root apt-get -q "$@" >"$out" 2>&1 || rc=$?
  if ((rc != 0)); then
    tail -n 20 "$out" >&2
    warn "apt-get $1 failed (exit $rc)"
  fi
  rm -f "$out"
  return "$rc"
}

# --------------------------------------------------------------------------
# 5. postgres
# --------------------------------------------------------------------------
_gh_pg_ready() { pg_isready -q -h "$GH_PG_HOST" -p "$GH_PG_PORT"; }

# The local cluster configured for GH_PG_PORT, as "VERSION NAME" (empty if none).
_gh_pg_cluster() {
  pg_lsclusters -h 2>/dev/null | awk -v p="$GH_PG_PORT" '$3 == p { print $1, $2; exit }'
}

ensure_postgres() {
  if have pg_isready && _gh_pg_ready; then
    log "==> postgres: already running on $GH_PG_HOST:$GH_PG_PORT"
    return 0
  fi
  if ! have pg_isready && port_open "$GH_PG_HOST" "$GH_PG_PORT"; then
    # A server we did not install (another cluster, a container): only the client is needed.
    log "==> postgres: port $GH_PG_PORT is open, installing the client tools"
    ensure_apt_packages postgresql-client
    wait_until 30 postgres _gh_pg_ready
    log "==> postgres: running on $GH_PG_HOST:$GH_PG_PORT"
    return 0
  fi

  log "==> postgres: not running on $GH_PG_HOST:$GH_PG_PORT"
  ensure_apt_packages postgresql postgresql-client

  local cluster ver name
  cluster="$(_gh_pg_cluster)"
  if [[ -z "$cluster" ]]; then
    ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -1)"
    [[ -n "$ver" ]] || die "postgres: no server version found under /usr/lib/postgresql"
    # "main" unless a main cluster already exists (on another port).
    name=main
    [[ ! -e "/etc/postgresql/$ver/main" ]] || name=guildhall
    log "==> postgres: creating cluster $ver/$name on port $GH_PG_PORT"
    as_root pg_createcluster --port "$GH_PG_PORT" "$ver" "$name"
    cluster="$ver $name"
  fi
  read -r ver name <<<"$cluster"
  if _gh_pg_ready; then # some packages start the cluster on install
    log "==> postgres: running on $GH_PG_HOST:$GH_PG_PORT (started by the package)"
    return 0
  fi

  # /run is often a fresh tmpfs in containers.
  as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  log "==> postgres: starting cluster $ver/$name"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start
  wait_until 30 postgres _gh_pg_ready
  log "==> postgres: running on $GH_PG_HOST:$GH_PG_PORT"
}

# pg_admin [psql args...]: run psql as the superuser, SQL on stdin (so psql
# variables such as :'pw' given with -v are interpolated). Prefers the local
# `postgres` OS user (peer auth on the socket); falls back to TCP as postgres.
_GH_PG_ADMIN=""
_gh_pg_admin_mode() {
  [[ -n "$_GH_PG_ADMIN" ]] && return 0
  if (cd / && runuser -u postgres -- psql -X -At -d postgres -c 'select 1') >/dev/null 2>&1; then
    _GH_PG_ADMIN=runuser
  elif psql -X -At -h "$GH_PG_HOST" -p "$GH_PG_PORT" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
    _GH_PG_ADMIN=tcp
  else
    die "postgres: cannot connect as superuser (tried 'runuser -u postgres -- psql' and 'psql -h $GH_PG_HOST -U postgres')"
  fi
}
pg_admin() {
  _gh_pg_admin_mode
  if [[ "$_GH_PG_ADMIN" == runuser ]]; then
    (cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$GH_PG_PORT" -d postgres "$@")
  else
    psql -X -q -At -v ON_ERROR_STOP=1 -h "$GH_PG_HOST" -p "$GH_PG_PORT" -U postgres -d postgres "$@"
  fi
}

# Role GH_DB_ROLE (LOGIN CREATEDB, password GH_DB_PASSWORD) and database GH_DB_NAME owned by it.
ensure_db_role() {
  local state
  state="$(pg_admin -v role="$GH_DB_ROLE" <<'SQL'
SELECT concat_ws(',', rolcanlogin, rolcreatedb, rolpassword IS NOT NULL)
FROM pg_authid WHERE rolname = :'role';
SQL
)"
  if [[ -z "$state" ]]; then
    log "==> postgres: creating role $GH_DB_ROLE"
    pg_admin -v role="$GH_DB_ROLE" -v pw="$GH_DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN CREATEDB PASSWORD :'pw';
SQL
  elif [[ "$state" != "t,t,t" ]]; then
    log "==> postgres: fixing role $GH_DB_ROLE (login,createdb,password = $state)"
    pg_admin -v role="$GH_DB_ROLE" -v pw="$GH_DB_PASSWORD" <<'SQL'
ALTER ROLE :"role" LOGIN CREATEDB PASSWORD :'pw';
SQL
  else
    log "==> postgres: role $GH_DB_ROLE already exists (LOGIN CREATEDB, password set)"
  fi

  local owner
  owner="$(pg_admin -v db="$GH_DB_NAME" <<'SQL'
SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :'db';
SQL
)"
  if [[ -z "$owner" ]]; then
    log "==> postgres: creating database $GH_DB_NAME owned by $GH_DB_ROLE"
    pg_admin -v db="$GH_DB_NAME" -v role="$GH_DB_ROLE" <<'SQL'
CREATE DATABASE :"db" OWNER :"role";
SQL
  elif [[ "$owner" != "$GH_DB_ROLE" ]]; then
    log "==> postgres: database $GH_DB_NAME is owned by $owner, giving it to $GH_DB_ROLE"
    pg_admin -v db="$GH_DB_NAME" -v role="$GH_DB_ROLE" <<'SQL'
ALTER DATABASE :"db" OWNER TO :"role";
SQL
  else
    log "==> postgres: database $GH_DB_NAME already exists (owner $GH_DB_ROLE)"
  fi
}

# drop_test_databases PREFIX: drop leftover databases named PREFIX* (e.g. gh_test_).
drop_test_databases() {
  local prefix="$1" pattern count
  # Escape LIKE wildcards so "gh_test_" matches literally.
  pattern="$(printf '%s' "$prefix" | sed 's/[\\%_]/\\&/g')%"
  count="$(pg_admin -v pat="$pattern" <<'SQL'
SELECT count(*) FROM pg_database WHERE datname LIKE :'pat';
SQL
)"
  if [[ "$count" == 0 ]]; then
    log "==> postgres: no leftover ${prefix}* databases"
    return 0
  fi
  log "==> postgres: dropping $count leftover ${prefix}* databases"
  pg_admin -v pat="$pattern" <<'SQL'
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', datname)
FROM pg_database WHERE datname LIKE :'pat' ORDER BY datname
\gexec
SQL
}

# --------------------------------------------------------------------------
# 6. redis
# --------------------------------------------------------------------------
_gh_redis_ready() { [[ "$(redis-cli -h "$GH_REDIS_HOST" -p "$GH_REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

ensure_redis() {
  if have redis-cli && _gh_redis_ready; then
    log "==> redis: already running on $GH_REDIS_HOST:$GH_REDIS_PORT"
    return 0
  fi
  if ! have redis-cli && port_open "$GH_REDIS_HOST" "$GH_REDIS_PORT"; then
    log "==> redis: port $GH_REDIS_PORT is open, installing the client tools"
    ensure_apt_packages redis-tools
    wait_until 10 redis _gh_redis_ready
    log "==> redis: running on $GH_REDIS_HOST:$GH_REDIS_PORT"
    return 0
  fi

  log "==> redis: not running on $GH_REDIS_HOST:$GH_REDIS_PORT"
  ensure_apt_packages redis-server redis-tools
  as_root mkdir -p "$GH_REDIS_DIR" "$(dirname "$GH_REDIS_LOG")"
  log "==> redis: starting redis-server (no persistence, log $GH_REDIS_LOG)"
  local args=(--daemonize yes --port "$GH_REDIS_PORT" --save "" --appendonly no
    --dir "$GH_REDIS_DIR" --logfile "$GH_REDIS_LOG")
  # "-::1" (bind ::1 only if available) needs Redis >= 6.2; fall back to IPv4 only.
  if ! as_root redis-server "${args[@]}" --bind "$GH_REDIS_HOST" -::1; then
    warn "redis: start with '-::1' failed, retrying with IPv4 only"
    as_root redis-server "${args[@]}" --bind "$GH_REDIS_HOST"
  fi
  wait_until 10 redis _gh_redis_ready
  log "==> redis: running on $GH_REDIS_HOST:$GH_REDIS_PORT"
}

# --------------------------------------------------------------------------
# 7. rust
# --------------------------------------------------------------------------
_gh_cargo_path() {
  if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

ensure_rust() {
  ensure_apt_packages build-essential pkg-config ca-certificates curl git
  _gh_cargo_path
  if have cargo; then
    log "==> rust: already installed ($(cargo --version))"
  else
    log "==> rust: cargo not found, installing a stable toolchain"
    if ensure_apt_packages rustup 2>/dev/null && have rustup; then
      rustup default stable
    else
      log "==> rust: no apt rustup package, using the rustup.rs installer"
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --default-toolchain stable
    fi
    _gh_cargo_path
    have cargo || die "rust: cargo still not found after installing"
    log "==> rust: installed ($(cargo --version))"
  fi
  # fmt and clippy are needed by scripts/test; the minimal profile lacks them.
  local sub comp
  for sub in fmt:rustfmt clippy:clippy; do
    comp="${sub#*:}"
    if ! cargo "${sub%%:*}" --version >/dev/null 2>&1; then
      have rustup || die "rust: cargo ${sub%%:*} missing and no rustup to add $comp"
      log "==> rust: adding component $comp"
      rustup component add "$comp"
    fi
  done
  log "==> rust: CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
}

# ensure_cargo_install BIN CRATE [cargo install args...]: install a cargo
# binary (e.g. s3s-fs, cargo-lambda) only when BIN is not on PATH.
ensure_cargo_install() {
  local bin="$1" crate="$2"
  shift 2
  _gh_cargo_path
  if have "$bin"; then
    log "==> $bin: already installed ($(command -v "$bin"))"
    return 0
  fi
  log "==> $bin: cargo install $crate $*"
  cargo install --locked "$crate" "$@"
}

# ensure_node [MAJOR]: Node.js and npm (Debian's, when missing), at least MAJOR (default 20).
ensure_node() {
  local want="${1:-20}" major
  have node && have npm || ensure_apt_packages nodejs npm
  major="$(node -p 'process.versions.node.split(".")[0]')"
  ((major >= want)) || die "node: $(node --version) found, Node $want or later is needed"
  log "==> node: $(node --version)"
}

# --------------------------------------------------------------------------
# 8. docker-compose
# --------------------------------------------------------------------------
# Optional tool: a machine that cannot install it only gets a warning.
ensure_docker_compose() {
  if have docker-compose; then
    log "==> docker-compose: already installed ($(docker-compose version --short 2>/dev/null || echo '?'))"
    return 0
  fi
  if ensure_apt_packages docker-compose && have docker-compose; then
    log "==> docker-compose: installed ($(docker-compose version --short 2>/dev/null || echo '?'))"
  else
    warn "docker-compose: could not be installed with apt; skipping compose checks"
  fi
}

# --------------------------------------------------------------------------
# 9. media: an S3-compatible server (s3s-fs) and the media Lambda behind a
#    local Lambda invoke API (cargo lambda watch), as the app talks to in AWS.
# --------------------------------------------------------------------------
GH_S3S_VERSION="${GH_S3S_VERSION:-0.14.1}" # later versions need a newer rustc
GH_MEDIA_KEY="${GH_MEDIA_KEY:-guildhall}"
GH_MEDIA_SECRET_KEY="${GH_MEDIA_SECRET_KEY:-guildhall-local-s3-secret}"

ensure_s3s_fs() {
  ensure_cargo_install s3s-fs s3s-fs --version "$GH_S3S_VERSION" --features binary
}

_gh_local_bin_path() {
  local user_bin
  user_bin="$(python3 -m site --user-base 2>/dev/null)/bin"
  if [[ -d "$user_bin" && ":$PATH:" != *":$user_bin:"* ]]; then
    export PATH="$user_bin:$PATH"
  fi
}

# cargo-lambda from PyPI: a prebuilt binary, installed in seconds.
ensure_cargo_lambda() {
  _gh_cargo_path
  _gh_local_bin_path
  if cargo lambda --version >/dev/null 2>&1; then
    log "==> cargo-lambda: already installed ($(cargo lambda --version 2>/dev/null | head -1))"
    return 0
  fi
  python3 -m pip --version >/dev/null 2>&1 || ensure_apt_packages python3 python3-pip
  local user=(--user)
  python3 -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' && user=()
  log "==> cargo-lambda: pip install ${user[*]:+${user[*]} }cargo-lambda"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet "${user[@]}" cargo-lambda
  _gh_local_bin_path
  cargo lambda --version >/dev/null 2>&1 || die "cargo-lambda: installed but 'cargo lambda' does not run"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# _gh_spawn LOG cmd...: start cmd in its own session (so its whole process tree can be
# stopped) and print its pid.
_gh_spawn() {
  local logfile="$1"
  shift
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  echo $!
}

# start_local_media MODE DATA_DIR: s3s-fs and the media Lambda on 127.0.0.1.
#   MODE=test   random ports, stopped when the script exits
#   MODE=up     GH_S3_PORT (9311) and GH_LAMBDA_PORT (9310), reused if already listening,
#               left running with the server
#   GH_S3_PUBLIC_PORT (9312) in up mode: browsers reach S3 there (scripts/s3_cors.mjs)
# Exports GH_S3_ENDPOINT, GH_S3_PUBLIC_ENDPOINT (the same S3 with CORS, for presigned URLs that
# browsers use), GH_LAMBDA_ENDPOINT, GH_MEDIA_CALLBACK_SECRET (must be set before), and the AWS
# credentials both sides use.
start_local_media() {
  local mode="$1" data="$2" s3_port lambda_port public_port
  [[ -n "${GH_MEDIA_CALLBACK_SECRET:-}" ]] || die "media: GH_MEDIA_CALLBACK_SECRET is not set"
  ensure_s3s_fs
  ensure_cargo_lambda
  ensure_node
  mkdir -p "$data"
  if [[ "$mode" == test ]]; then
    s3_port="$(free_port)" lambda_port="$(free_port)" public_port="$(free_port)"
  else
    s3_port="${GH_S3_PORT:-9311}" lambda_port="${GH_LAMBDA_PORT:-9310}"
    public_port="${GH_S3_PUBLIC_PORT:-9312}"
  fi
  export AWS_ACCESS_KEY_ID="$GH_MEDIA_KEY" AWS_SECRET_ACCESS_KEY="$GH_MEDIA_SECRET_KEY"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  export GH_S3_ENDPOINT="http://127.0.0.1:$s3_port" GH_LAMBDA_ENDPOINT="http://127.0.0.1:$lambda_port"
  export GH_S3_PUBLIC_ENDPOINT="http://127.0.0.1:$public_port"

  if port_open 127.0.0.1 "$s3_port"; then
    log "==> s3s-fs: something already listens on $s3_port, using it"
  else
    local pid
    pid="$(_gh_spawn "$data.s3s-fs.log" s3s-fs --host 127.0.0.1 --port "$s3_port" \
      --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$data")"
    [[ "$mode" == test ]] && GH_CLEANUP+=("kill -- -$pid 2>/dev/null")
    wait_until 20 s3s-fs port_open 127.0.0.1 "$s3_port"
    log "==> s3s-fs: serving $data on $GH_S3_ENDPOINT (log $data.s3s-fs.log)"
  fi

  if port_open 127.0.0.1 "$public_port"; then
    log "==> s3 cors: something already listens on $public_port, using it"
  else
    local pid
    pid="$(_gh_spawn "$data.cors.log" node "$GH_ROOT/scripts/s3_cors.mjs" "$public_port" "$s3_port")"
    [[ "$mode" == test ]] && GH_CLEANUP+=("kill -- -$pid 2>/dev/null")
    wait_until 20 "s3 cors" port_open 127.0.0.1 "$public_port"
    log "==> s3 cors: browsers reach S3 on $GH_S3_PUBLIC_ENDPOINT (log $data.cors.log)"
  fi

  if port_open 127.0.0.1 "$lambda_port"; then
    log "==> media lambda: something already listens on $lambda_port, using it"
    return 0
  fi
  # Built the way `cargo lambda watch` runs it (this package's features alone), so its first
  # invocation finds the binary up to date instead of compiling for minutes.
  log "==> media lambda: building guildhall-media"
  cargo build --quiet --manifest-path "$GH_ROOT/lambda/Cargo.toml" --bin guildhall-media
  local envfile="$data.lambda.env" pid
  (umask 077 && cat >"$envfile" <<ENV
GUILDHALL_S3_ENDPOINT=$GH_S3_ENDPOINT
GUILDHALL_S3_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
GUILDHALL_MEDIA_CALLBACK_SECRET=$GH_MEDIA_CALLBACK_SECRET
RUST_LOG=info
ENV
  )
  pid="$(cd "$GH_ROOT/lambda" && _gh_spawn "$data.lambda.log" cargo lambda watch --ignore-changes \
    --concurrency 2 -A 127.0.0.1 -P "$lambda_port" --env-file "$envfile")"
  [[ "$mode" == test ]] && GH_CLEANUP+=("kill -- -$pid 2>/dev/null")
  wait_until 60 "media lambda" port_open 127.0.0.1 "$lambda_port"
  log "==> media lambda: invoke API on $GH_LAMBDA_ENDPOINT (log $data.lambda.log)"
}

# --------------------------------------------------------------------------
# 10. a scratch server: a fresh database and `guildhall serve` on a random port, both gone
#     when the script exits (scripts/schemathesis, scripts/sdk).
# --------------------------------------------------------------------------
# scratch_database PREFIX [KEEP]: creates PREFIX<12 hex digits>, owned by GH_DB_ROLE, and sets
# GH_SCRATCH_DB. Dropped at exit unless KEEP is 1.
scratch_database() {
  local prefix="$1" keep="${2:-0}"
  GH_SCRATCH_DB="$prefix$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
  pg_admin -v db="$GH_SCRATCH_DB" -v role="$GH_DB_ROLE" <<'SQL'
CREATE DATABASE :"db" OWNER :"role";
SQL
  if [[ "$keep" == 1 ]]; then
    log "==> postgres: database $GH_SCRATCH_DB (kept)"
  else
    GH_CLEANUP+=("pg_admin -c 'DROP DATABASE IF EXISTS $GH_SCRATCH_DB WITH (FORCE)'")
    log "==> postgres: database $GH_SCRATCH_DB (dropped at exit)"
  fi
}

# scratch_env: exports the GUILDHALL_* settings of a server on GH_SCRATCH_DB: a random port
# (GH_SERVER_URL), a Redis key prefix of its own, a fresh JWT secret, rate limits off (one client
# sends everything from one IP as a few users), a small pool. Set GUILDHALL_LOG before to change
# the log level; other GUILDHALL_* (media) may be exported after.
scratch_env() {
  [[ -n "${GH_SCRATCH_DB:-}" ]] || die "scratch_env: call scratch_database first"
  local port
  port="$(free_port)"
  GH_SERVER_URL="http://127.0.0.1:$port"
  export GUILDHALL_DATABASE_URL="postgres://$GH_DB_ROLE:$GH_DB_PASSWORD@$GH_PG_HOST:$GH_PG_PORT/$GH_SCRATCH_DB"
  export GUILDHALL_REDIS_URL="redis://$GH_REDIS_HOST:$GH_REDIS_PORT"
  export GUILDHALL_REDIS_PREFIX="${GH_SCRATCH_DB//_/-}:"
  export GUILDHALL_BIND="127.0.0.1:$port"
  GUILDHALL_JWT_SECRET="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  export GUILDHALL_JWT_SECRET
  export GUILDHALL_RATE_LIMITS=off
  export GUILDHALL_LOG="${GUILDHALL_LOG:-warn,guildhall=info}"
  export GUILDHALL_DATABASE_MAX_CONNECTIONS=10
}

# serve_scratch BIN LOG_DIR: migrates GH_SCRATCH_DB and starts `BIN serve` with the scratch_env
# settings in its own session (stopped at exit, before the database is dropped), then waits
# for /readyz. Logs: LOG_DIR/migrate.log, LOG_DIR/server.log.
serve_scratch() {
  local bin="$1" dir="$2" pid
  mkdir -p "$dir"
  "$bin" migrate up >"$dir/migrate.log" 2>&1 || {
    cat "$dir/migrate.log" >&2
    die "migrate failed"
  }
  pid="$(_gh_spawn "$dir/server.log" "$bin" serve)"
  GH_CLEANUP=("kill -- -$pid 2>/dev/null; sleep 0.5" "${GH_CLEANUP[@]}")
  wait_until 30 guildhall curl -fsS "$GH_SERVER_URL/readyz"
  log "==> guildhall: serving on $GH_SERVER_URL (pid $pid, log $dir/server.log)"
}
