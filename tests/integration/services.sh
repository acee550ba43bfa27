# Sourced by the end-to-end tests: start a CAS and a LAS on loopback.
# Expects CLOISTER, CAS_BIN, LAS_BIN, T (a scratch directory), ID_A (an
# administrator identity made in $T/a) and the array PIDS (processes to stop).
# Stops what the test started and removes $T (kept with KEEP=1).
cleanup() {
  [ -n "${KEEP:-}" ] && { echo "kept $T"; return; }
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')'; }
# start_cas NAME [flags]: a CAS with state in $T/NAME; sets NAME_API, NAME_ATTEST, NAME_KEY.
start_cas() {
  local name="$1"
  shift
  "$CAS_BIN" --state-dir "$T/$name" --api-listen 127.0.0.1:0 --attest-listen 127.0.0.1:0 \
    --unseal-key-file "$T/$name.unseal" --ports-file "$T/$name.ports" --admin "$ID_A" "$@" \
    >"$T/$name.out" 2>"$T/$name.log" &
  PIDS+=($!)
  eval "${name}_PID=$!"
  for _ in $(seq 100); do [ -s "$T/$name.ports" ] && break; sleep 0.1; done
  eval "${name}_API=$(json_field '["api"]' <"$T/$name.ports")"
  eval "${name}_ATTEST=$(json_field '["attest"]' <"$T/$name.ports")"
  eval "${name}_KEY=$(json_field '["key_hash"]' <"$T/$name.ports")"
}
# start_las NAME CAS-NAME [SOCKET]: a LAS with state in $T/NAME joined to that CAS, socket
# SOCKET (default $T/NAME.sock).
start_las() {
  local name="$1" cas="$2" socket="${3:-$T/$1.sock}" api key
  api="$(eval echo "\$${cas}_API")"
  key="$(eval echo "\$${cas}_KEY")"
  "$CLOISTER" cas join-token create --cas "127.0.0.1:$api" --cas-key "$key" --identity "$T/a" --ttl 10m \
    --out "$T/$name.token" 2>/dev/null
  "$LAS_BIN" --state-dir "$T/$name" --cas "127.0.0.1:$api" --cas-key "$key" --socket "$socket" \
    --join-token-file "$T/$name.token" --name "$name" >"$T/$name.out" 2>"$T/$name.log" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$T/$name.out" 2>/dev/null && break; sleep 0.1; done
}
