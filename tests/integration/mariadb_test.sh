#!/usr/bin/env bash
# MariaDB, unmodified from Debian, with its data directory on a protected
# volume: mariadb-install-db bootstraps it through the shield, the server
# gets my.cnf and its InnoDB encryption key only from the session (injected
# files), tables survive a restart, the disk holds no plaintext row, and ten
# SIGKILLs of the server and its volume server together during inserts lose
# no committed row.
# Usage: mariadb_test.sh cloister cloister-cas cloister-las libcloister-runtime.so
set -u
CLOISTER="$1"
CAS_BIN="$2"
LAS_BIN="$3"
RUNTIME="$4"
T="$(mktemp -d)"
PIDS=()
source "$(dirname "$0")/checks.sh"
source "$(dirname "$0")/services.sh"
MARIADBD=/usr/sbin/mariadbd
for tool in "$MARIADBD" /usr/bin/mariadb-install-db /usr/bin/mariadb /usr/bin/mariadb-admin; do
  [ -x "$tool" ] || { echo "SKIP: $tool is not installed (Debian: mariadb-server)"; exit 0; }
done
KILLS="${CLOISTER_MARIADB_KILLS:-10}"

"$CLOISTER" identity create --identity "$T/a" >"$T/a.id"
ID_A=$(cat "$T/a.id")
start_cas main
start_las las1 main
D="$T/data"
SOCK="$T/mysql.sock"
M=$("$CLOISTER" measure "$MARIADBD" | awk '{print $1}')
RT=$("$CLOISTER" measure "$RUNTIME" | awk '{print $1}')
# The server's configuration and key exist only in the session: the files
# are injected into the attested mariadbd, never written to the disk.
cat >"$T/db.yaml" <<DOC
name: db
services:
  - name: bootstrap
    measurements: [$M, $RT]
    mounts:
      - volume: data
        path: $D
  - name: server
    measurements: [$M, $RT]
    command: ["mariadbd", "--defaults-file=$T/etc/my.cnf"]
    mounts:
      - volume: data
        path: $D
    files:
      - path: $T/etc/my.cnf
        content: |
          [mariadbd]
          datadir=$D
          socket=$SOCK
          skip-networking
          user=$(id -un)
          innodb_use_native_aio=0
          innodb_flush_log_at_trx_commit=1
          plugin_load_add=file_key_management
          file_key_management_filename=$T/etc/keys.txt
          innodb_encrypt_tables=ON
          innodb_encrypt_log=ON
      - path: $T/etc/keys.txt
        content: "1;\$\$CLOISTER::innodb_key\$\$\\n"
secrets:
  - name: innodb_key
    kind: binary
    size: 32
volumes:
  - name: data
security:
  attestation:
    allowed: [sim]
    tolerate: [simulation]
DOC
"$CLOISTER" session create --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" -f "$T/db.yaml" --identity "$T/a" >/dev/null
check "the session is created" test $? = 0

# mariadb-install-db runs the server binary named by MYSQLD_BOOTSTRAP: the
# attested mariadbd, as service db/bootstrap (whose arguments the host may
# give: the service sets no command).
cat >"$T/bootstrap" <<W
#!/bin/sh
exec "$CLOISTER" run --cas-key "$main_KEY" --las "$T/las1.sock" --config db/bootstrap --runtime "$RUNTIME" -- "$MARIADBD" "\$@"
W
chmod +x "$T/bootstrap"
MYSQLD_BOOTSTRAP="$T/bootstrap" mariadb-install-db --no-defaults --datadir="$D" --user="$(id -un)" \
  --auth-root-authentication-method=normal --skip-test-db --innodb-use-native-aio=0 >"$T/install.log" 2>&1
check "mariadb-install-db bootstraps the data directory through the shield" test $? = 0
check "the data directory on disk is a protected volume" test -f "$D/cloister-volume" -a ! -e "$D/ibdata1"

SERVER_PID=
start_server() {
  rm -f "$SOCK"
  "$CLOISTER" run --cas-key "$main_KEY" --las "$T/las1.sock" --config db/server --runtime "$RUNTIME" -- "$MARIADBD" \
    >>"$T/server.out" 2>>"$T/server.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 300); do
    mariadb-admin -S "$SOCK" -u root ping >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "--- the server did not start:"
  tail -20 "$T/server.err"
  return 1
}
sql() { mariadb -S "$SOCK" -u root -N -B -e "$1"; }

check "the attested server starts with the injected my.cnf" start_server
check "InnoDB encryption is on (the key came from the session)" \
  bash -c "mariadb -S '$SOCK' -u root -N -B -e \"show variables like 'innodb_encrypt_tables'\" | grep -qw ON"
sql "create database shop; create table shop.orders(id int primary key, item varchar(100)) engine=innodb;
     insert into shop.orders values (1, 'top-secret-order-1'), (2, 'top-secret-order-2');"
check "rows are inserted" test "$(sql 'select count(*) from shop.orders')" = 2
mariadb-admin -S "$SOCK" -u root shutdown
wait "$SERVER_PID" 2>/dev/null
check "after a restart the rows are there" bash -c "$(declare -f start_server sql); T='$T' SOCK='$SOCK' \
  CLOISTER='$CLOISTER' main_KEY='$main_KEY' RUNTIME='$RUNTIME' MARIADBD='$MARIADBD' PIDS=(); start_server >/dev/null &&
  [ \"\$(sql 'select item from shop.orders where id = 2')\" = top-secret-order-2 ] && mariadb-admin -S '$SOCK' -u root shutdown"
sleep 1
check "no plaintext row on the disk" bash -c "! grep -rqa top-secret-order '$D'"

# ---- kill -9 during inserts ----------------------------------------------------------------
# One client inserts rows one by one (autocommit) and prints each id once
# the server confirmed it; the server and its volume server are then killed
# together, as in a power cut. Every confirmed row must be there after the
# restart.
start_server >/dev/null || true
next=1000
lost=0
recovered=0
for round in $(seq "$KILLS"); do
  : >"$T/confirmed"
  (
    for i in $(seq "$next" $((next + 100000))); do
      echo "insert into shop.orders values ($i, 'row-$i'); select $i;"
    done
  ) | mariadb -S "$SOCK" -u root -N -B --unbuffered >"$T/confirmed" 2>/dev/null &
  client=$!
  # Killed while rows are going in: after the first confirmation, at a
  # random moment.
  for _ in $(seq 200); do [ -s "$T/confirmed" ] && break; sleep 0.1; done
  sleep "0.$((RANDOM % 6 + 2))"
  kill -9 $(pgrep -P "$SERVER_PID") "$SERVER_PID" 2>/dev/null
  wait "$client" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  if start_server >/dev/null; then
    recovered=$((recovered + 1))
    confirmed=$(wc -l <"$T/confirmed")
    last=$(tail -1 "$T/confirmed")
    present=$(sql "select count(*) from shop.orders where id between $next and ${last:-0}")
    [ "$confirmed" -gt 0 ] && [ "$present" = "$confirmed" ] || {
      echo "round $round: $confirmed rows confirmed, $present present"
      lost=$((lost + 1))
    }
    # Rows committed but not yet confirmed when the kill came are there
    # too: go on after the highest id.
    next=$(( $(sql 'select max(id) from shop.orders') + 1 ))
  fi
done
check "InnoDB recovers after every one of $KILLS SIGKILLs" test "$recovered" = "$KILLS"
check "no confirmed row is lost in any round" test "$lost" = 0
echo "rows after $KILLS kills: $(sql 'select count(*) from shop.orders' 2>/dev/null)"
mariadb-admin -S "$SOCK" -u root shutdown 2>/dev/null
wait "$SERVER_PID" 2>/dev/null
finish
