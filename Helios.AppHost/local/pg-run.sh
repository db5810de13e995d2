#!/usr/bin/env bash
# PostgreSQL 15 for the AppHost's local mode (no container runtime): initdb on first use, then the server in the
# foreground, so DCP owns and stops it. As root it runs as the postgres OS user (initdb refuses root).
#   pg-run.sh <data-directory>        environment: PG_PORT, PG_PASSWORD (the postgres user's, set at initdb)
set -euo pipefail
DATA="$1"
BIN="$(pg_config --bindir)"
if [ ! -x "$BIN/postgres" ]; then BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); fi
mkdir -p "$DATA"
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DATA"; chmod 700 "$DATA"; AS=(runuser -u postgres --); else AS=(); fi
if ! "${AS[@]}" test -w "$DATA"; then
  echo "pg-run.sh: the postgres OS user cannot reach $DATA: every directory above it must be searchable by others (chmod o+x), or choose another Helios:DataDirectory" >&2
  exit 1
fi
if [ ! -f "$DATA/PG_VERSION" ]; then
  PW=$(mktemp); chmod 644 "$PW"; printf '%s' "$PG_PASSWORD" > "$PW"
  "${AS[@]}" "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$PW" --auth-host=scram-sha-256 --auth-local=trust -E UTF8 > "$DATA.initdb.log" 2>&1 || { cat "$DATA.initdb.log"; rm -f "$PW"; exit 1; }
  rm -f "$PW"
fi
exec "${AS[@]}" "$BIN/postgres" -D "$DATA" -p "$PG_PORT" -h 127.0.0.1 -k "$DATA" -c max_connections=300
