#!/usr/bin/env bash
# A PostgreSQL server on loopback for the tests (Debian's package), and a role that may create
# databases. Prints the URL to use as POSTGRES_TEST_URL, and nothing else, on stdout (everything
# the tools say goes to stderr: pg_ctlcluster's "Removed stale pid file." once ended up in the URL).
# Idempotent; fails unless the role can log in over TCP with that URL.
set -euo pipefail
exec 3>&1 1>&2
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
if ! command -v pg_lsclusters >/dev/null || [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi
read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
[ "$status" = online ] || $sudo pg_ctlcluster "$version" "$cluster" start
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }
# a password no log line could hold by chance: tests/bot/test_secrets.py searches the logs for it
password=pg-test-secret-41
as_postgres "psql -q -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'tonebot'\" | grep -q 1 \
    || psql -q -p $port -c \"CREATE ROLE tonebot LOGIN CREATEDB\""
as_postgres "psql -q -p $port -c \"ALTER ROLE tonebot PASSWORD '$password'\""
# DROP DATABASE ... WITH (FORCE) ends the sessions left on a test database; an autovacuum worker
# there is nobody's, and ending it takes pg_signal_backend (without it the drop failed in CI)
as_postgres "psql -q -p $port -c \"GRANT pg_signal_backend TO tonebot\""
url="postgresql://tonebot:$password@127.0.0.1:$port/postgres"
psql "$url" -qtAc "SELECT 1" >/dev/null
echo "$url" >&3
