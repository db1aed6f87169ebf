#!/usr/bin/env bash
# Set up a fresh machine (Debian, Python 3.11, root) for flashrec:
#   - a virtual environment in .venv from pyproject.toml, pinned by constraints.txt
#   - Java 17 for Spark and Flink (installed with apt-get when missing)
#   - a redis-server answering at REDIS_URL (installed and started under var/ if none)
#   - a PostgreSQL server at 127.0.0.1:5432 (Debian's, installed and started if none)
#   - Flink's Redis Streams source jar (compiled) and Kafka connector jars (fetched)
#   - Prometheus and promtool (Debian's prometheus package) for `make up` and the rule tests
#   - Dagster/BentoML homes under var/ with telemetry off
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-.venv}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
mkdir -p var

say() { printf '[setup] %s\n' "$*"; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    say "apt-get not available: install $* by hand"; return 1
  fi
  if [ ! -f var/.apt-updated ]; then apt-get update -qq && touch var/.apt-updated; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Python 3.11 virtual environment ---------------------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && \
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { say "Python 3.11 is required"; exit 1; }

stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  say "creating $VENV with $($PYTHON --version)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip >/dev/null
  [ -x "$VENV/bin/uv" ] || "$VENV/bin/python" -m pip install -q --disable-pip-version-check uv
  start=$(date +%s)
  VIRTUAL_ENV="$ROOT/$VENV" "$VENV/bin/uv" pip install -q -c constraints.txt -e '.[dev]'
  say "dependencies installed in $(( $(date +%s) - start ))s"
  touch "$stamp"
else
  say "$VENV is up to date"
fi

# --- Java 17 ---------------------------------------------------------------------------
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then
  say "installing OpenJDK 17"
  apt_install openjdk-17-jdk-headless
fi
say "java $(java_major) at $(command -v java)"

# --- Prometheus: `make up` scrapes every process; promtool checks the alert rules -------
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  say "installing prometheus (Debian's package: prometheus and promtool)"
  apt_install prometheus
fi
say "$(prometheus --version 2>&1 | head -1)"

# --- Redis -----------------------------------------------------------------------------
redis_host_port=$(echo "$REDIS_URL" | sed -E 's#redis://([^/@]*@)?([^:/]+):?([0-9]*).*#\2 \3#')
read -r REDIS_HOST REDIS_PORT <<<"$redis_host_port"
REDIS_PORT=${REDIS_PORT:-6379}
redis_answers() {
  "$VENV/bin/python" - "$REDIS_URL" <<'PY'
import sys, redis
try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
except Exception:
    sys.exit(1)
PY
}
if redis_answers; then
  say "redis answers at $REDIS_URL"
else
  command -v redis-server >/dev/null || { say "installing redis-server"; apt_install redis-server; }
  mkdir -p var/redis
  say "starting redis-server on $REDIS_HOST:$REDIS_PORT (data in var/redis)"
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
    --dir "$ROOT/var/redis" --logfile "$ROOT/var/redis/redis.log" --save "" --appendonly no
  for _ in $(seq 1 50); do redis_answers && break; sleep 0.1; done
  redis_answers || { say "redis did not start: see var/redis/redis.log"; exit 1; }
fi

# --- PostgreSQL (the production profile's stores, run for real by the tests) -----------
POSTGRES_URL=${FLASHREC_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
# shellcheck source=scripts/lib/postgres.sh
. scripts/lib/postgres.sh
ensure_postgres

# --- Flink's Redis Streams source (Java, compiled against PyFlink's own jars) -----------
"$VENV/bin/python" -m flink_jobs.build_java

# --- Flink's Kafka connector jars (two jars taken from a PyPI wheel; no Maven) ---------
"$VENV/bin/python" -m flink_jobs.kafka_jars

# --- DuckDB's Delta extension, from the duckdb-ext-delta wheel (no download) --------------
"$VENV/bin/python" -m feature_repo.duckdb_delta

# --- Dagster / BentoML homes (telemetry off) -------------------------------------------
mkdir -p var/dagster var/bentoml
"$VENV/bin/python" -m orchestration.instance var/dagster >/dev/null
say "ready"
