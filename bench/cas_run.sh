#!/usr/bin/env bash
# Reproduces the section "CAS API under load" of docs/benchmarks.md: starts a
# CAS on loopback ports with a fresh state directory, drives it with
# cas_load at 1, 16 and 64 client threads (one keep-alive TLS connection
# each), reports the CAS's peak RSS and the size of its state directory, and
# measures the machine's P-256 and AES-256-GCM speed with openssl speed as
# the baseline. Stops the CAS and removes everything it made; bounded in
# time (about 70 s after the build).
#
#   bench/cas_run.sh
#
# Environment:
#   BENCH_CLIENTS     concurrency levels (default 1,16,64)
#   BENCH_SECONDS     time limit of each phase (default 5)
#   BENCH_REQUESTS    request limit of each phase (default 20000)
#   BENCH_OUT         where the markdown report is also written
#                     (default build-bench/cas-benchmarks-result.md); the CAS's
#                     request log goes to build-bench/cas_load-cas.log
#   BENCH_NICE        run the CAS, cas_load and openssl speed under
#                     `nice -n BENCH_NICE` (e.g. -10, needs root) so that other
#                     work on a shared machine disturbs the measurement less;
#                     the report shows how much CPU the rest of the machine
#                     still used in each phase
#   TMPDIR            parent of the CAS state directory (default /tmp). SQLite
#                     syncs every write, so it matters whether this is a disk
#                     or a tmpfs; the report says which.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-bench"
CLIENTS="${BENCH_CLIENTS:-1,16,64}"
SECONDS_PER_PHASE="${BENCH_SECONDS:-5}"
REQUESTS="${BENCH_REQUESTS:-20000}"
OUT="${BENCH_OUT:-$BUILD/cas-benchmarks-result.md}"
CAS_LOG_KEEP="$BUILD/cas_load-cas.log"
NICE=()
[[ -n "${BENCH_NICE:-}" ]] && NICE=(nice -n "$BENCH_NICE")

log() { echo "cas_run.sh [${SECONDS}s]: $*" >&2; }

for tool in cmake openssl timeout; do
  command -v "$tool" >/dev/null || { log "needs $tool"; exit 1; }
done

# ---- build ---------------------------------------------------------------
log "building in $BUILD (Release)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCLOISTER_BENCH=ON -DCLOISTER_TESTS=OFF >/dev/null
cmake --build "$BUILD" --target cas_load cloister cloister-cas -j "$(nproc)" >/dev/null
LOAD="$BUILD/cas_load"
CLOISTER="$BUILD/cloister"
CAS="$BUILD/cloister-cas"

# ---- a CAS of our own ------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cloister-cas-bench.XXXXXX")"
CAS_PID=""
# shellcheck source=bench/services.sh
source "$ROOT/bench/services.sh"  # stop
stop_cas() {
  stop "$CAS_PID" "the CAS"
  CAS_PID=""
}
# The files of the state directory and their sizes: "cas.db 12.3 MiB, ...".
state_files() {
  local f out=""
  for f in "$WORK/state"/*; do
    [[ -f "$f" ]] || continue
    out+="${out:+, }$(stat -c '%n %s' "$f" | awk '{n=$1; sub(".*/", "", n); printf "%s %.1f MiB", n, $2/1048576}')"
  done
  echo "${out:-no files}"
}
cleanup() {
  set +e
  stop_cas
  [[ -f "$WORK/cas.log" ]] && cp "$WORK/cas.log" "$CAS_LOG_KEEP"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$CLOISTER" identity create --identity "$WORK/identity" >/dev/null
# Request logging is on by default; said explicitly, since it is part of
# what is measured (one line to stderr per request).
printf 'log_requests: true\n' >"$WORK/cas.yaml"
"${NICE[@]}" "$CAS" --config "$WORK/cas.yaml" --state-dir "$WORK/state" --api-listen 127.0.0.1:0 --attest-listen 127.0.0.1:0 \
  --unseal-key-file "$WORK/unseal.key" --ports-file "$WORK/ports.json" \
  </dev/null >"$WORK/cas.out" 2>"$WORK/cas.log" &
CAS_PID=$!
for _ in $(seq 100); do
  [[ -s "$WORK/ports.json" ]] && break
  kill -0 "$CAS_PID" 2>/dev/null || { log "the CAS exited:"; cat "$WORK/cas.log" >&2; exit 1; }
  sleep 0.1
done
[[ -s "$WORK/ports.json" ]] || { log "the CAS wrote no ports file within 10 s"; cat "$WORK/cas.log" >&2; exit 1; }
API_PORT="$(sed -n 's/.*"api": *\([0-9]*\).*/\1/p' "$WORK/ports.json")"
KEY_HASH="$(sed -n 's/.*"key_hash": *"\([0-9a-fA-F]*\)".*/\1/p' "$WORK/ports.json")"
[[ -n "$API_PORT" && -n "$KEY_HASH" ]] || { log "cannot read $WORK/ports.json"; exit 1; }
STATE_FS="$(df --output=fstype "$WORK" | tail -n 1)"
log "CAS pid $CAS_PID on 127.0.0.1:$API_PORT, state on $STATE_FS"

# ---- load ---------------------------------------------------------------------
LOAD_ARGS=(--clients "$CLIENTS" --seconds "$SECONDS_PER_PHASE" --requests "$REQUESTS")
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_RC=0
CONNECT=(--cas "127.0.0.1:$API_PORT" --cas-key "$KEY_HASH" --identity "$WORK/identity" --cas-pid "$CAS_PID")
log "cas_load ${LOAD_ARGS[*]}"
timeout 100 "${NICE[@]}" "$LOAD" "${CONNECT[@]}" "${LOAD_ARGS[@]}" >"$WORK/load.md" || LOAD_RC=$?
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
CAS_HWM="$(awk '/^VmHWM:/ {printf "%.1f MiB", $2/1024}' "/proc/$CAS_PID/status")"
CAS_RSS="$(awk '/^VmRSS:/ {printf "%.1f MiB", $2/1024}' "/proc/$CAS_PID/status")"
CAS_THREADS="$(awk '/^Threads:/ {print $2}' "/proc/$CAS_PID/status")"
STATE_BYTES="$(du -sk "$WORK/state" | awk '{printf "%.1f MiB", $1/1024}')"
STATE_RUNNING="$(state_files)"
# Request lines: "cloister-cas: METHOD ROUTE STATUS 1.23ms identity=...".
LOGGED="$(awk '$1 == "cloister-cas:" && $4 ~ /^[0-9]+$/' "$WORK/cas.log" | wc -l)"
NON2XX="$(awk '$1 == "cloister-cas:" && $4 ~ /^[0-9]+$/ && ($4 < 200 || $4 > 299)' "$WORK/cas.log" | wc -l)"
SESSION_WRITES="$(awk '$1 == "cloister-cas:" && ($2 == "POST" || $2 == "PUT") && $4 ~ /^2[0-9][0-9]$/' "$WORK/cas.log" | wc -l)"

# ---- baseline: openssl speed -------------------------------------------------------
log "openssl speed -seconds 3 ecdsap256"
ECDSA="$("${NICE[@]}" openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/ecdsa \(nistp256\)/ {printf "%.0f signs/s, %.0f verifies/s", $(NF-1), $NF}')"
log "openssl speed -seconds 3 -evp aes-256-gcm"
AES_TABLE="$("${NICE[@]}" openssl speed -seconds 3 -evp aes-256-gcm 2>/dev/null | awk '
  /^type/ {n=0; for (i=2; i<=NF; i+=2) h[++n]=$i}
  /^AES-256-GCM/ {for (i=2; i<=NF; i++) {v=$i; sub("k","",v); r[i-1]=sprintf("%.0f", v/1000)}}
  END {
    line="| block (bytes) |"; sep="|---|"; row="| encrypt MB/s |"
    for (i=1; i<=n; i++) {line=line " " h[i] " |"; sep=sep "---:|"; row=row " " r[i] " |"}
    print line; print sep; print row
  }')"

# SQLite checkpoints the WAL into the database and removes it when the last
# connection closes, so what remains after a clean stop is the data.
log "stopping the CAS"
stop_cas
STATE_STOPPED="$(state_files)"

# ---- report --------------------------------------------------------------------------
{
  echo "## Machine"
  echo
  echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores online"
  echo "- Memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2/1024/1024}' /proc/meminfo); kernel $(uname -r); $(openssl version | cut -d' ' -f1-2)"
  echo "- CAS state directory on $STATE_FS (SQLite, WAL, synchronous=FULL); request log on (stderr to a file)"
  echo "- Load average before / after cas_load: ${LOAD_BEFORE} / ${LOAD_AFTER}${NICE:+; CAS, cas_load and openssl run under ${NICE[*]}}"
  echo
  echo "## cas_load"
  echo
  echo "\`cas_load --cas 127.0.0.1:PORT --cas-key HASH --identity DIR --cas-pid PID ${LOAD_ARGS[*]}\`," \
    "the CAS and the driver on the same machine"
  echo
  cat "$WORK/load.md"
  echo
  echo "CAS after the run: peak RSS (VmHWM) ${CAS_HWM}, RSS ${CAS_RSS}, ${CAS_THREADS} threads;" \
    "${LOGGED} requests in its log, ${NON2XX} of them not 2xx, ${SESSION_WRITES} of them session writes (POST, PUT)."
  echo
  echo "State directory ${STATE_BYTES} while the CAS ran (${STATE_RUNNING});" \
    "after it stopped: ${STATE_STOPPED}."
  echo
  echo "## Baseline: openssl speed (one thread)"
  echo
  echo "- \`openssl speed -seconds 3 ecdsap256\`: ${ECDSA}"
  echo "  (a TLS 1.3 handshake with client certificates costs the CAS one P-256 sign and one verify)"
  echo "- \`openssl speed -seconds 3 -evp aes-256-gcm\`:"
  echo
  echo "$AES_TABLE"
} >"$OUT"
cat "$OUT"
log "report also written to $OUT; the CAS request log to $CAS_LOG_KEEP"
if ((LOAD_RC != 0)); then
  log "cas_load exited with status $LOAD_RC (failed requests or a time-out)"
  exit "$LOAD_RC"
fi
