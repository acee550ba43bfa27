# Sourced by the benchmark scripts that run a CAS and a LAS of their own on
# loopback (start_run.sh, shield_run.sh). Expects a function log, the paths
# CLOISTER, CAS and LAS of the binaries, and the array NICE (a command prefix
# for the services, may be empty). Each function exits the script with a
# message if the service does not come up.
#
#   start_cas DIR [OPTION...]  a CAS with its state in DIR/cas, listening on
#                              127.0.0.1 ports 0, an administrator identity
#                              in DIR/admin; its output in DIR/cas.out and
#                              DIR/cas.log; the OPTIONs are added to its
#                              command line. Sets CAS_PID, API_PORT,
#                              ATTEST_PORT, KEY_HASH and CLI (the --cas,
#                              --cas-key and --identity options of the CLI).
#   start_las DIR SOCKET       a LAS joined to that CAS with a join token,
#                              its state in DIR/las, its output in
#                              DIR/las.out and DIR/las.log. Sets LAS_PID.
#   stop PID NAME              SIGTERM, then SIGKILL after 10 s

stop() {
  local pid="$1"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$2 did not stop within 10 s of SIGTERM; killing it"
    kill -KILL "$pid"
  fi
  wait "$pid" 2>/dev/null || true
}

start_cas() {
  local dir="$1"
  shift
  "$CLOISTER" identity create --identity "$dir/admin" >"$dir/admin.id"
  "${NICE[@]}" "$CAS" "$@" --state-dir "$dir/cas" --api-listen 127.0.0.1:0 --attest-listen 127.0.0.1:0 \
    --unseal-key-file "$dir/unseal.key" --ports-file "$dir/ports.json" --admin "$(cat "$dir/admin.id")" \
    </dev/null >"$dir/cas.out" 2>"$dir/cas.log" &
  CAS_PID=$!
  for _ in $(seq 100); do
    [[ -s "$dir/ports.json" ]] && break
    kill -0 "$CAS_PID" 2>/dev/null || { log "the CAS exited:"; cat "$dir/cas.log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -s "$dir/ports.json" ]] || { log "the CAS wrote no ports file within 10 s"; exit 1; }
  API_PORT="$(sed -n 's/.*"api": *\([0-9]*\).*/\1/p' "$dir/ports.json")"
  ATTEST_PORT="$(sed -n 's/.*"attest": *\([0-9]*\).*/\1/p' "$dir/ports.json")"
  KEY_HASH="$(sed -n 's/.*"key_hash": *"\([0-9a-fA-F]*\)".*/\1/p' "$dir/ports.json")"
  [[ -n "$API_PORT" && -n "$ATTEST_PORT" && -n "$KEY_HASH" ]] || { log "cannot read $dir/ports.json"; exit 1; }
  CLI=(--cas "127.0.0.1:$API_PORT" --cas-key "$KEY_HASH" --identity "$dir/admin")
}

start_las() {
  local dir="$1" socket="$2"
  "$CLOISTER" cas join-token create "${CLI[@]}" --ttl 10m --out "$dir/join.token" >/dev/null 2>&1
  "${NICE[@]}" "$LAS" --state-dir "$dir/las" --cas "127.0.0.1:$API_PORT" --cas-key "$KEY_HASH" \
    --socket "$socket" --join-token-file "$dir/join.token" --name bench \
    </dev/null >"$dir/las.out" 2>"$dir/las.log" &
  LAS_PID=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$dir/las.out" 2>/dev/null && break
    kill -0 "$LAS_PID" 2>/dev/null || { log "the LAS exited:"; cat "$dir/las.log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q "listening on" "$dir/las.out" || { log "the LAS did not listen within 10 s"; exit 1; }
}
