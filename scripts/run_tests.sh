#!/usr/bin/env bash
# Run the whole test suite; PostgreSQL tests run when the local server answers.
set -uo pipefail
cd "$(dirname "$0")/.."
PG_URL_DEFAULT="postgresql+psycopg://postgres@127.0.0.1:5432/test"
if [ -z "${MSUNAS_TEST_POSTGRES_URL:-}" ]; then
  if .venv/bin/python - "$PG_URL_DEFAULT" <<'PY' 2>/dev/null
import sys, psycopg
psycopg.connect(sys.argv[1].replace("+psycopg", ""), connect_timeout=3).close()
PY
  then
    export MSUNAS_TEST_POSTGRES_URL="$PG_URL_DEFAULT"
    echo "make test: PostgreSQL answers at 127.0.0.1:5432; database tests run on SQLite and PostgreSQL"
    # the local cluster can be restarted by the reliability test (as root, with Debian's pg_ctlcluster)
    if [ -z "${MSUNAS_TEST_PG_RESTART_CMD:-}" ] && [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null \
       && [ -d /etc/postgresql ]; then
      export MSUNAS_TEST_PG_RESTART_CMD="pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n 1) main restart"
      echo "make test: the PostgreSQL restart test will restart the local cluster ($MSUNAS_TEST_PG_RESTART_CMD)"
    fi
  else
    echo "make test: PostgreSQL does not answer at 127.0.0.1:5432; database tests run on SQLite only"
  fi
fi
# the dashboard's end-to-end tests drive Debian's chromium (never a downloaded browser): install it when we can
CHROMIUM="${MSUNAS_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "make test: installing Debian's chromium for the dashboard's browser tests (apt-get, quietly)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; } \
      || echo "make test: could not install chromium; the dashboard's browser tests will skip"
  else
    echo "make test: no $CHROMIUM (and not root with apt-get); the dashboard's browser tests will skip"
  fi
fi
# the generated-client test runs openapi-python-client, which pins its own typer/httpx: give it a venv of its own
GEN=.venv-openapi
if [ -z "${MSUNAS_OPENAPI_CLIENT:-}" ]; then
  if [ ! -x "$GEN/bin/openapi-python-client" ]; then
    echo "make test: installing openapi-python-client into $GEN (the generated-client test)"
    { python3 -m venv "$GEN" && "$GEN/bin/python" -m pip install -q --progress-bar off "openapi-python-client==0.29.1" \
        2> >(grep -v "is ignored: it is neither" >&2); } || echo "make test: could not install openapi-python-client; the generated-client test will skip"
  fi
  [ -x "$GEN/bin/openapi-python-client" ] && export MSUNAS_OPENAPI_CLIENT="$PWD/$GEN/bin/openapi-python-client"
fi
export MSUNAS_SHARED_DATA="${MSUNAS_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
.venv/bin/python -m pytest "$@"
rc=$?
# pytest's exit code 5 means no tests were collected: that is a failure here too
exit $rc
