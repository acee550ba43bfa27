#!/usr/bin/env bash
# PostgreSQL, unmodified from Debian, with PGDATA on a protected volume:
# initdb runs through the shield (with the shell, postgres and locale it
# starts joining its volume server after their own attestation), pgbench
# loads and runs, the data survives a restart, the disk holds no plaintext
# row, and SIGKILL of the postmaster during inserts (alone, and together
# with its volume server) loses no committed row and recovers every time.
# Usage: postgresql_test.sh cloister cloister-cas cloister-las libcloister-runtime.so
set -u
CLOISTER="$1"
CAS_BIN="$2"
LAS_BIN="$3"
RUNTIME="$4"
T="$(mktemp -d)"
PIDS=()
source "$(dirname "$0")/checks.sh"
source "$(dirname "$0")/services.sh"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
for tool in "$PGBIN/postgres" "$PGBIN/initdb" "$PGBIN/pgbench" "$PGBIN/psql" /usr/bin/locale; do
  [ -x "$tool" ] || { echo "SKIP: $tool is not installed (Debian: postgresql)"; exit 0; }
done
KILLS="${CLOISTER_POSTGRESQL_KILLS:-4}"

# PostgreSQL refuses to run as root: as root, the database runs as the
# postgres user (setpriv execs, so the postmaster keeps the pid we start).
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "SKIP: no postgres user to run PostgreSQL as"; exit 0; }
  AS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  chmod 755 "$T"
  DBUSER=postgres
else
  AS=()
  DBUSER=$(id -un)
fi

"$CLOISTER" identity create --identity "$T/a" >"$T/a.id"
ID_A=$(cat "$T/a.id")
start_cas main
start_las las1 main
D="$T/pgdata"
S="$T/sock"
mkdir -p "$D" "$S"
[ "$(id -u)" = 0 ] && chown postgres: "$D" "$S"
m() { "$CLOISTER" measure "$1" | awk '{print $1}'; }
RT=$(m "$RUNTIME")
# initdb starts /bin/sh, which starts postgres; postgres starts locale.
# Each is measured and attests as service pg/initdb before it may join.
cat >"$T/pg.yaml" <<DOC
name: pg
services:
  - name: initdb
    measurements: [$RT, $(m "$PGBIN/initdb"), $(m "$PGBIN/postgres"), $(m /bin/sh), $(m /usr/bin/locale)]
    mounts:
      - volume: pgdata
        path: $D
  - name: server
    measurements: [$RT, $(m "$PGBIN/postgres")]
    command: ["$PGBIN/postgres", "-D", "$D", "-c", "listen_addresses=", "-c", "unix_socket_directories=$S"]
    mounts:
      - volume: pgdata
        path: $D
volumes:
  - name: pgdata
security:
  attestation:
    allowed: [sim]
    tolerate: [simulation]
DOC
"$CLOISTER" session create --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" -f "$T/pg.yaml" --identity "$T/a" >/dev/null
check "the session is created" test $? = 0

shielded() {
  local config="$1"
  shift
  "${AS[@]}" "$CLOISTER" run --cas-key "$main_KEY" --las "$T/las1.sock" --config "$config" --runtime "$RUNTIME" -- "$@"
}
shielded pg/initdb "$PGBIN/initdb" -D "$D" -U "$DBUSER" --auth=trust >"$T/initdb.log" 2>&1
RC=$?
[ "$RC" = 0 ] || tail -20 "$T/initdb.log"
check "initdb runs through the shield (its shell, postgres and locale join after attesting)" test "$RC" = 0
check "PGDATA on disk is a protected volume" test -f "$D/cloister-volume" -a ! -e "$D/PG_VERSION"

SERVER_PID=
start_server() {
  rm -f "$S/.s.PGSQL.5432"
  # A simple command, so that $! is the postmaster itself (setpriv and
  # cloister run exec).
  "${AS[@]}" "$CLOISTER" run --cas-key "$main_KEY" --las "$T/las1.sock" --config pg/server --runtime "$RUNTIME" -- \
    "$PGBIN/postgres" >>"$T/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 300); do
    "${AS[@]}" "$PGBIN/pg_isready" -q -h "$S" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "--- the server did not start:"
  tail -20 "$T/server.log"
  return 1
}
stop_server() {
  kill -INT "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
}
sql() { "${AS[@]}" "$PGBIN/psql" -h "$S" -U "$DBUSER" -At -X -q -v ON_ERROR_STOP=1 -c "$1" postgres; }

check "the attested postmaster starts" start_server
"${AS[@]}" "$PGBIN/pgbench" -h "$S" -U "$DBUSER" -i -s 1 postgres >"$T/pgbench-init.log" 2>&1
check "pgbench -i loads its tables" test "$(sql 'select count(*) from pgbench_accounts')" = 100000
"${AS[@]}" "$PGBIN/pgbench" -h "$S" -U "$DBUSER" -c 4 -j 2 -T 5 postgres >"$T/pgbench.log" 2>&1
check "a 5 s pgbench run with 4 clients completes without failed transactions" \
  grep -q "number of failed transactions: 0 " "$T/pgbench.log"
grep -E "^tps" "$T/pgbench.log"
sql "create table secrets(id int primary key, v text); insert into secrets values (1, 'top-secret-pg-row-1');
     create table confirmed(id int primary key);"
stop_server
check "after a restart the data is intact" bash -c "$(declare -f start_server stop_server sql shielded); \
  T='$T' S='$S' D='$D' PGBIN='$PGBIN' DBUSER='$DBUSER' CLOISTER='$CLOISTER' main_KEY='$main_KEY' RUNTIME='$RUNTIME' \
  AS=(${AS[*]}) PIDS=(); start_server >/dev/null &&
  [ \"\$(sql 'select v from secrets where id = 1')\" = top-secret-pg-row-1 ] &&
  [ \"\$(sql 'select count(*) from pgbench_accounts')\" = 100000 ]; r=\$?; stop_server; exit \$r"
sleep 1
check "no plaintext row or file name on the disk" bash -c "! grep -rqa -e top-secret-pg-row -e pgbench_accounts '$D'"

# ---- SIGKILL during inserts -----------------------------------------------------------------
# One client inserts rows one by one (autocommit) and prints each id once
# the server confirmed it. Odd rounds kill the postmaster alone (its
# backends notice and exit; the volume server commits what they wrote);
# even rounds kill the postmaster and its volume server together, as in a
# power cut. Every confirmed row must be there after the restart.
start_server >/dev/null || true
next=1000
lost=0
recovered=0
for round in $(seq "$KILLS"); do
  : >"$T/confirmed"
  (
    for i in $(seq "$next" $((next + 100000))); do
      echo "insert into confirmed values ($i); select $i;"
    done
  ) | "${AS[@]}" "$PGBIN/psql" -h "$S" -U "$DBUSER" -At -X -q postgres >"$T/confirmed" 2>/dev/null &
  client=$!
  for _ in $(seq 200); do [ -s "$T/confirmed" ] && break; sleep 0.1; done
  sleep "0.$((RANDOM % 6 + 2))"
  if [ $((round % 2)) = 1 ]; then
    kill -9 "$SERVER_PID" 2>/dev/null
  else
    kill -9 $(pgrep -P "$SERVER_PID") "$SERVER_PID" 2>/dev/null
  fi
  wait "$client" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  # Orphaned backends hold the shared memory until they notice.
  started=no
  for _ in $(seq 20); do
    if start_server >/dev/null; then
      started=yes
      break
    fi
    sleep 0.5
  done
  if [ "$started" = yes ]; then
    recovered=$((recovered + 1))
    confirmed=$(grep -c '^[0-9]*$' "$T/confirmed")
    last=$(grep '^[0-9]*$' "$T/confirmed" | tail -1)
    if [ -n "$last" ]; then
      present=$(sql "select count(*) from confirmed where id between $next and $last")
      [ "$present" -lt "$confirmed" ] && lost=$((lost + confirmed - present))
      echo "round $round: $confirmed confirmed, $present present"
      next=$((last + 1000))
    fi
  else
    echo "round $round: the server did not come back"
  fi
done
check "PostgreSQL recovered after each of $KILLS SIGKILLs" test "$recovered" = "$KILLS"
check "no confirmed row was lost" test "$lost" = 0
stop_server
finish
