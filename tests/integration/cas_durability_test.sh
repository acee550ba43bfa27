#!/usr/bin/env bash
# Acknowledged writes survive SIGKILL: a writer creates sessions one after the
# other while the CAS is killed with SIGKILL at a random moment; after each
# restart every session whose create got a success response must be there,
# and the database must open. Repeated CLOISTER_KILL_ROUNDS times (default 10).
# Usage: cas_durability_test.sh PATH-TO-cloister PATH-TO-cloister-cas
set -u
CLOISTER="$1"
CAS_BIN="$2"
ROUNDS="${CLOISTER_KILL_ROUNDS:-10}"
T="$(mktemp -d)"
CAS_PID=""
WRITER_PID=""
cleanup() {
  [ -n "$WRITER_PID" ] && kill "$WRITER_PID" 2>/dev/null
  [ -n "$CAS_PID" ] && kill -9 "$CAS_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')'; }

start_cas() {
  rm -f "$T/ports"
  "$CAS_BIN" --state-dir "$T/state" --api-listen 127.0.0.1:0 --attest-listen 127.0.0.1:0 \
    --unseal-key-file "$T/unseal.key" --ports-file "$T/ports" >/dev/null 2>>"$T/cas.log" &
  CAS_PID=$!
  for _ in $(seq 100); do [ -s "$T/ports" ] && break; sleep 0.1; done
  [ -s "$T/ports" ] || return 1
  export CLOISTER_CAS_ADDR="127.0.0.1:$(json_field '["api"]' <"$T/ports")"
  export CLOISTER_CAS_KEY="$(json_field '["key_hash"]' <"$T/ports")"
}

"$CLOISTER" identity create --identity "$T/id" >/dev/null
MEAS=$(printf 'c%.0s' $(seq 64))
: >"$T/acked"
failures=0
for round in $(seq "$ROUNDS"); do
  if ! start_cas; then echo "FAIL - round $round: the CAS did not start after SIGKILL"; failures=$((failures + 1)); break; fi
  # The writer records a name only after its create returned success.
  (
    i=0
    while true; do
      i=$((i + 1))
      name="kill/r$round-$i"
      printf 'name: %s\nservices:\n  - name: s\n    measurements: [%s]\nsecrets:\n  - name: k\n    kind: private-key\n' \
        "$name" "$MEAS" >"$T/doc-$round.yaml"
      if "$CLOISTER" session create -f "$T/doc-$round.yaml" --identity "$T/id" >/dev/null 2>&1; then
        echo "$name" >>"$T/acked"
      fi
    done
  ) &
  WRITER_PID=$!
  sleep "0.$((RANDOM % 9 + 2))"
  kill -9 "$CAS_PID"
  wait "$CAS_PID" 2>/dev/null
  CAS_PID=""
  sleep 0.3
  kill "$WRITER_PID" 2>/dev/null
  wait "$WRITER_PID" 2>/dev/null
  WRITER_PID=""
  if ! start_cas; then echo "FAIL - round $round: the database did not open after SIGKILL"; failures=$((failures + 1)); break; fi
  "$CLOISTER" session list --identity "$T/id" --json >"$T/list" 2>"$T/err" || {
    echo "FAIL - round $round: list failed: $(cat "$T/err")"
    failures=$((failures + 1))
  }
  missing=$(python3 -c '
import json, sys
have = {s["name"] for s in json.load(open(sys.argv[1]))["sessions"]}
acked = [l.strip() for l in open(sys.argv[2]) if l.strip()]
print(len([a for a in acked if a not in have]))' "$T/list" "$T/acked")
  if [ "$missing" != 0 ]; then
    echo "FAIL - round $round: $missing acknowledged sessions lost"
    failures=$((failures + 1))
  fi
  kill "$CAS_PID"
  wait "$CAS_PID" 2>/dev/null
  CAS_PID=""
done
echo "$ROUNDS rounds, $(wc -l <"$T/acked") acknowledged creates checked, $failures failures"
[ "$failures" -eq 0 ] && [ "$(wc -l <"$T/acked")" -gt 0 ]
