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
  else
    echo "make test: PostgreSQL does not answer at 127.0.0.1:5432; database tests run on SQLite only"
  fi
fi
export MSUNAS_SHARED_DATA="${MSUNAS_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
.venv/bin/python -m pytest "$@"
rc=$?
# pytest's exit code 5 means no tests were collected: that is a failure here too
exit $rc
