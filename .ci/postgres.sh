#!/usr/bin/env bash
# Start a throw-away PostgreSQL server (Debian's packages) on 127.0.0.1 for the store tests;
# prints the URL to use as PILAH_TEST_POSTGRES_URL. Usage: .ci/postgres.sh [PORT]
# (default: a free port). The server runs until the machine stops or `pg_ctl stop`.
set -euo pipefail
port="${1:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
data="$(mktemp -d /tmp/pilah-pg.XXXXXX)"
run=(bash -c)
if [ "$(id -u)" = 0 ]; then  # the server refuses to run as root
  chown postgres:postgres "$data"
  run=(su postgres -s /bin/bash -c)
fi
"${run[@]}" "'$bin/initdb' -D '$data/db' -U postgres -A trust --no-sync -E UTF8 >'$data/initdb.log'"
"${run[@]}" "'$bin/pg_ctl' -D '$data/db' -l '$data/server.log' -w -o \"-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null"
echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
