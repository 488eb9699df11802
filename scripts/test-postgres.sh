# Sourced by `make test`: point the suite at a PostgreSQL server.
# Uses the one at 127.0.0.1:5432 when it answers; otherwise starts a throwaway
# server from Debian's postgresql package that lives as long as the test run.
if [ -n "${HOUNSFIELD_TEST_PG:-}" ]; then
  :
elif command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
  export HOUNSFIELD_TEST_PG="postgresql://postgres@127.0.0.1:5432/postgres"
else
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
  PGTMP=$(mktemp -d /tmp/hounsfield-pg.XXXXXX)
  chown -R postgres "$PGTMP" 2>/dev/null || true
  RUNAS=""; [ "$(id -u)" = 0 ] && RUNAS="runuser -u postgres --"
  $RUNAS "$PGBIN/initdb" -D "$PGTMP/data" -U postgres --auth=trust >/dev/null
  $RUNAS "$PGBIN/pg_ctl" -D "$PGTMP/data" -o "-p 55432 -k $PGTMP -c listen_addresses=127.0.0.1" -w -l "$PGTMP/log" start >/dev/null
  trap '$RUNAS "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1; rm -rf "$PGTMP"' EXIT
  export HOUNSFIELD_TEST_PG="postgresql://postgres@127.0.0.1:55432/postgres"
fi
