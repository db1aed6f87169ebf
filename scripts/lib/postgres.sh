# PostgreSQL for the production profile's stores in the tests (Dagster's instance on
# dagster-postgres, Feast's SQL registry). Sourced by scripts/setup.sh; needs say,
# apt_install and VENV from it. POSTGRES_URL: a server whose user may create databases.

postgres_answers() {  # exit 0 when POSTGRES_URL accepts a connection
  "$VENV/bin/python" - "$POSTGRES_URL" <<'PY'
import sys

import psycopg

try:
    psycopg.connect(sys.argv[1], connect_timeout=2).close()
except Exception:
    sys.exit(1)
PY
}

postgres_start_local() {  # Debian's server: install, create the cluster, trust loopback, start
  command -v pg_ctlcluster >/dev/null || { say "installing postgresql"; apt_install postgresql; }
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1 || true)
    pg_createcluster "$version" main >/dev/null
  fi
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q '^# flashrec: trust loopback' "$hba"; then
    say "PostgreSQL $version: trusting loopback connections (a development/CI machine)"
    { echo '# flashrec: trust loopback'
      echo 'host all all 127.0.0.1/32 trust'
      echo 'host all all ::1/128 trust'
      cat "$hba"; } > "$hba.new" && mv "$hba.new" "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
}

ensure_postgres() {
  if postgres_answers; then
    say "postgresql answers at $POSTGRES_URL"
    return 0
  fi
  postgres_start_local
  for _ in $(seq 1 50); do postgres_answers && break; sleep 0.2; done
  postgres_answers || { say "postgresql did not start at $POSTGRES_URL"; return 1; }
  say "postgresql started at $POSTGRES_URL"
}
