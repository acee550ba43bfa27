#!/usr/bin/env bash
# Reproduces the section "Attested start" of docs/benchmarks.md: what
# attestation at start costs a protected program, with a CAS and a LAS of
# its own on loopback.
#
#   1. start-up latency: a program that does nothing (a tiny C program
#      compiled here, /bin/true, python3 -c pass), started plain and
#      protected in alternation, p50 and p99, and where the time of a
#      protected start goes (CLOISTER_LOG=debug);
#   2. attestations per second with 8 and 32 programs starting at once, from
#      the driver and from the CAS's counter, with the CPU of every party,
#      and what the CAS alone sustains (bench/attest_load.cc), next to the
#      bound that the machine's P-256 speed sets (openssl speed, measured in
#      the same run);
#   3. the memory the runtime adds: VmHWM and VmRSS at the moment main runs.
#
# Protected starts attest the default way, relayed by the LAS
# (docs/protocol.md section 6); rows marked "direct" use the program's own
# TLS connection to the CAS (--cas, section 5), for comparison.
#
# Every start is timed by bench/start_load.cc (posix_spawn + waitpid of the
# program itself, LD_PRELOAD and the CLOISTER_* variables set by the driver;
# `cloister run` is not used, so its own exec is not counted). Stops the CAS
# and the LAS and removes everything it made; bounded in time (about 150 s
# after the build).
#
#   bench/start_run.sh
#
# Environment:
#   BENCH_BUILD       build directory (default build-bench, Release)
#   BENCH_RUNS        starts of each kind in the latency test (default 300)
#   BENCH_CONCURRENCY programs starting at once in the load test (default 8,32)
#   BENCH_SECONDS     duration of each load phase (default 10)
#   BENCH_OUT         where the markdown report is also written
#                     (default BENCH_BUILD/start-benchmarks-result.md); the
#                     CAS's log goes to BENCH_BUILD/start_load-cas.log
#   BENCH_NICE        run the CAS, the LAS, the driver (so the programs it
#                     starts) and openssl speed under `nice -n BENCH_NICE`
#                     (e.g. -10, needs root); the report shows how much CPU
#                     the rest of the machine still used
#   TMPDIR            parent of the temporary directory (default /tmp)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BENCH_BUILD:-$ROOT/build-bench}"
RUNS="${BENCH_RUNS:-300}"
CONCURRENCY="${BENCH_CONCURRENCY:-8,32}"
LOAD_SECONDS="${BENCH_SECONDS:-10}"
OUT="${BENCH_OUT:-$BUILD/start-benchmarks-result.md}"
CAS_LOG_KEEP="$BUILD/start_load-cas.log"
NICE=()
[[ -n "${BENCH_NICE:-}" ]] && NICE=(nice -n "$BENCH_NICE")
PYTHON=/usr/bin/python3  # by path: a version manager's shim would be a shell script

log() { echo "start_run.sh [${SECONDS}s]: $*" >&2; }

for tool in cmake cc curl openssl timeout awk; do
  command -v "$tool" >/dev/null || { log "needs $tool"; exit 1; }
done
[[ -x "$PYTHON" ]] || { log "needs $PYTHON"; exit 1; }
PYTHON="$(readlink -f "$PYTHON")"

# ---- build -----------------------------------------------------------------
log "building in $BUILD (Release)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCLOISTER_BENCH=ON >/dev/null
cmake --build "$BUILD" --target start_load attest_load cloister cloister-cas cloister-las cloister-runtime -j "$(nproc)" >/dev/null
LOAD="$BUILD/start_load"
ATTEST_LOAD="$BUILD/attest_load"
CLOISTER="$BUILD/cloister"
CAS="$BUILD/cloister-cas"
LAS="$BUILD/cloister-las"
RUNTIME="$BUILD/libcloister-runtime.so"

# ---- cleanup -----------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cloister-start-bench.XXXXXX")"
CAS_PID=""
LAS_PID=""
DRIVER_PID=""
# shellcheck source=bench/services.sh
source "$ROOT/bench/services.sh"  # stop, start_cas, start_las
cleanup() {
  set +e
  [[ -n "$DRIVER_PID" ]] && kill -TERM "$DRIVER_PID" 2>/dev/null && wait "$DRIVER_PID" 2>/dev/null
  stop "$LAS_PID" "the LAS"
  stop "$CAS_PID" "the CAS"
  [[ -f "$WORK/cas.log" ]] && cp "$WORK/cas.log" "$CAS_LOG_KEEP"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the programs ------------------------------------------------------------------
# A program that does nothing, and one that prints its memory when main runs.
printf 'int main(void) { return 0; }\n' >"$WORK/true.c"
cat >"$WORK/status.c" <<'C'
#include <stdio.h>
#include <string.h>
int main(void) {
  char line[256];
  FILE* f = fopen("/proc/self/status", "r");
  if (f == NULL) return 1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "Vm", 2) == 0 || strncmp(line, "Rss", 3) == 0) fputs(line, stdout);
  }
  fclose(f);
  return 0;
}
C
cat >"$WORK/faults.c" <<'C'
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
/* What one minor page fault costs here: 64 MiB of fresh anonymous memory
   touched a page at a time, and the same populated by the kernel in one go. */
static double touch(int flags) {
  const size_t n = 64u << 20;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  volatile char* p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
  if (p == MAP_FAILED) return -1;
  for (size_t i = 0; i < n; i += 4096) p[i] = 1;
  clock_gettime(CLOCK_MONOTONIC, &b);
  munmap((void*)p, n);
  return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / (n / 4096);
}
int main(void) {
  double one = touch(0), populated = touch(MAP_POPULATE);
  printf("%.2f %.2f\n", one, populated);
  return 0;
}
C
cc -O2 -o "$WORK/faults" "$WORK/faults.c"
cc -O2 -o "$WORK/true" "$WORK/true.c"
cc -O2 -o "$WORK/status" "$WORK/status.c"
PY_STATUS='import sys
sys.stdout.write("".join(l for l in open("/proc/self/status") if l.startswith(("Vm", "Rss"))))'
log "programs: $WORK/true ($(stat -c %s "$WORK/true") bytes), /bin/true, $PYTHON"

# ---- a CAS and a LAS of our own ------------------------------------------------------
# Request logging is on by default; said explicitly, since it is part of what
# is measured (two lines per attestation) and gives each request's latency.
printf 'log_requests: true\n' >"$WORK/cas.yaml"
start_cas "$WORK" --config "$WORK/cas.yaml"
start_las "$WORK" "$WORK/las.sock"
log "CAS pid $CAS_PID (API $API_PORT, attestation $ATTEST_PORT), LAS pid $LAS_PID"

measure() { "$CLOISTER" measure "$1" | awk '{print $1}'; }
RT="$(measure "$RUNTIME")"
cat >"$WORK/session.yaml" <<DOC
name: bench
services:
  - name: tiny
    measurements: [$(measure "$WORK/true"), $RT]
  - name: bintrue
    measurements: [$(measure /bin/true), $RT]
  - name: status
    measurements: [$(measure "$WORK/status"), $RT]
  - name: python
    measurements: [$(measure "$PYTHON"), $RT]
security:
  attestation:
    allowed: [sim]
    tolerate: [simulation]
DOC
"$CLOISTER" session create -f "$WORK/session.yaml" "${CLI[@]}" >/dev/null

# What the runtime negotiates: it sets no groups, so OpenSSL's defaults, as
# for openssl s_client.
KEX="$(timeout 10 openssl s_client -connect "127.0.0.1:$ATTEST_PORT" -tls1_3 </dev/null 2>/dev/null |
  awk -F': ' '/^(Server|Peer) Temp Key/ {print $2; exit}')" || true
KEX="${KEX:-unknown}"

SUMMARY="$WORK/summary"
: >"$SUMMARY"
# Relayed, the default; DIRECT adds --cas.
CONNECT=(--runtime "$RUNTIME" --cas-key "$KEY_HASH" --las "$WORK/las.sock" --summary "$SUMMARY")
DIRECT=("${CONNECT[@]}" --cas "127.0.0.1:$ATTEST_PORT")
RC=0
# The driver runs in the background so that a signal reaches the trap at once;
# cleanup stops it.
drive() {
  timeout 120 "${NICE[@]}" "$LOAD" "$@" &
  DRIVER_PID=$!
  wait "$DRIVER_PID" || RC=1
  DRIVER_PID=""
}
granted() {  # the CAS's count of granted attestations
  curl -sk "https://127.0.0.1:$API_PORT/metrics" |
    awk '/^cloister_cas_attestations_total\{/ && /result="granted"/ {n += $NF} END {printf "%d", n}'
}
# How many relay requests the LAS sent between two lines of the CAS's log.
relay_requests() {
  awk -v from="$1" -v to="$2" 'NR > from && NR <= to && $1 == "cloister-cas:" && $3 == "/v1/attest/relay/batch"' \
    "$WORK/cas.log" | wc -l
}
# The CAS's median time of a relay request between two lines of its log
# (from the request read to the response written).
attest_ms() {
  awk -v from="$1" -v to="$2" 'NR > from && NR <= to && $1 == "cloister-cas:" && $3 == "/v1/attest/relay/batch" {
      v = $5; sub("ms", "", v); print v + 0 }' "$WORK/cas.log" | sort -g |
    awk '{a[NR] = $1} END { if (NR == 0) print "-"; else printf "%.2f", a[int((NR + 1) / 2)] }'
}
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
read -r FAULT_US POPULATE_US < <("$WORK/faults")

# ---- 1. latency ---------------------------------------------------------------------
log "latency: $RUNS plain and $RUNS protected starts of each program"
{
  echo "| program | starts (plain + protected) | plain min | plain p50 | plain p99 | protected min | protected p50 | protected p99 | added at p50 | added at p99 | plain page faults | protected page faults | failed |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$WORK/latency.md"
drive latency --runs "$RUNS" --config bench/tiny --label "tiny C program" "${CONNECT[@]}" -- "$WORK/true" >>"$WORK/latency.md"
drive latency --runs "$RUNS" --config bench/bintrue --label /bin/true "${CONNECT[@]}" -- /bin/true >>"$WORK/latency.md"
drive latency --runs "$RUNS" --config bench/tiny --label "tiny C program, direct" "${DIRECT[@]}" \
  -- "$WORK/true" >>"$WORK/latency.md"
drive latency --runs "$((RUNS / 3))" --config bench/python --label "python3 -c pass" "${CONNECT[@]}" \
  -- "$PYTHON" -c pass >>"$WORK/latency.md"
log "trace: 50 protected starts with CLOISTER_LOG=debug"
drive trace --runs 50 --config bench/tiny --label "the tiny C program" "${CONNECT[@]}" -- "$WORK/true" >"$WORK/trace.md"

# ---- 3. memory -------------------------------------------------------------------------
log "memory at main"
{
  echo "| program | field of /proc/self/status | plain MiB | protected MiB | added MiB |"
  echo "|---|---|---:|---:|---:|"
} >"$WORK/rss.md"
drive rss --runs 7 --config bench/status --label "tiny C program" "${CONNECT[@]}" -- "$WORK/status" >>"$WORK/rss.md"
drive rss --runs 7 --config bench/python --label "python3" "${CONNECT[@]}" -- "$PYTHON" -c "$PY_STATUS" >>"$WORK/rss.md"

# ---- 2. attestations per second -----------------------------------------------------------
{
  echo "| starts | at once | seconds | starts done | failed | starts/s | p50 ms | p99 ms | machine CPU | CAS CPU | LAS CPU | programs' CPU | driver CPU | other CPU | CAS ms/start | LAS ms/start | program ms/start |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$WORK/load.md"
: >"$WORK/counter.md"
LOAD_ARGS=(--seconds "$LOAD_SECONDS" --cas-pid "$CAS_PID" --las-pid "$LAS_PID" --config bench/tiny "${CONNECT[@]}")
FIRST_C="${CONCURRENCY%%,*}"
log "load: plain starts, $FIRST_C at once, $((LOAD_SECONDS / 2)) s (the machine's cost of a start without attestation)"
drive load --plain --concurrency "$FIRST_C" --seconds "$((LOAD_SECONDS / 2))" --summary "$SUMMARY" \
  --cas-pid "$CAS_PID" --las-pid "$LAS_PID" -- "$WORK/true" >>"$WORK/load.md"
for c in ${CONCURRENCY//,/ }; do
  log "load: protected starts, $c at once, $LOAD_SECONDS s"
  before="$(granted)"
  lines_before="$(wc -l <"$WORK/cas.log")"
  drive load --concurrency "$c" "${LOAD_ARGS[@]}" -- "$WORK/true" >>"$WORK/load.md"
  after="$(granted)"
  lines_after="$(wc -l <"$WORK/cas.log")"
  secs="$(awk -F= -v k="load.protected.$c.seconds" '$1 == k {print $2}' "$SUMMARY")"
  requests="$(relay_requests "$lines_before" "$lines_after")"
  echo "load.protected.$c.cas_granted=$((after - before))" >>"$SUMMARY"
  echo "| $c | $before | $after | $((after - before)) | $(awk -v n="$((after - before))" -v s="$secs" 'BEGIN {printf "%.0f", n / s}') | $requests | $(awk -v n="$((after - before))" -v r="$requests" 'BEGIN {printf "%.1f", (r > 0 ? n / r : 0)}') | $(attest_ms "$lines_before" "$lines_after") |" >>"$WORK/counter.md"
done
# ---- 2b. the CAS alone ------------------------------------------------------------------------
# attest_load: the runtime's client code with keys and evidence made ahead
# (signed with the LAS's node key), so no process starts; the same with
# GET /healthz for the handshake alone.
{
  echo "| request | at once | seconds | done | failed | per s | p50 ms | p99 ms | CAS CPU | driver CPU | CAS ms each | driver ms each | CAS alone could do, per s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$WORK/alone.md"
ALONE=(--cas "127.0.0.1:$ATTEST_PORT" --cas-key "$KEY_HASH" --config bench/tiny --node-dir "$WORK/las"
  --executable "$WORK/true" --runtime "$RUNTIME" --cas-pid "$CAS_PID" --seconds "$LOAD_SECONDS" --summary "$SUMMARY")
alone() {
  timeout 120 "${NICE[@]}" "$ATTEST_LOAD" "$@" >>"$WORK/alone.md" &
  DRIVER_PID=$!
  wait "$DRIVER_PID" || RC=1
  DRIVER_PID=""
}
# Relayed as the LAS sends them: C starts waiting on one LAS go out as two
# requests at a time of C/2 starts each (at most 32).
for c in ${CONCURRENCY//,/ }; do
  batch=$((c / 2 > 32 ? 32 : (c / 2 < 1 ? 1 : c / 2)))
  log "the CAS alone: relayed attestations, $c waiting on one LAS: 2 connections, $batch starts per request"
  alone "${ALONE[@]}" --concurrency 2 --batch "$batch" --relay "127.0.0.1:$API_PORT" \
    --label "POST /v1/attest/relay/batch, $c starts waiting: 2 requests of $batch"
done
log "the CAS alone: relayed attestations one per request, $FIRST_C connections"
alone "${ALONE[@]}" --concurrency "$FIRST_C" --relay "127.0.0.1:$API_PORT" --label "POST /v1/attest/relay, one start each"
log "the CAS alone: direct attestations (a TLS handshake each), $FIRST_C at once"
alone "${ALONE[@]}" --concurrency "$FIRST_C" --label "POST /v1/attest (direct)"
log "the CAS alone: the same connections with GET /healthz, $FIRST_C at once"
alone "${ALONE[@]}" --concurrency "$FIRST_C" --healthz --label "GET /healthz (direct connections)"


# What a TLS 1.3 handshake costs OpenSSL's own server (openssl s_server, one
# thread, no HTTP) with and without asking for a client certificate, driven
# by openssl s_time: the floor for any server built on this OpenSSL.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-server \
  -keyout "$WORK/ossl-server.key" -out "$WORK/ossl-server.crt" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-client \
  -keyout "$WORK/ossl-client.key" -out "$WORK/ossl-client.crt" 2>/dev/null
: >"$WORK/ossl.md"
ossl_handshakes() {  # ossl_handshakes LABEL [s_server options...]
  local label="$1" port spid t0 t1 out n
  shift
  port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "${NICE[@]}" openssl s_server -accept "127.0.0.1:$port" -cert "$WORK/ossl-server.crt" -key "$WORK/ossl-server.key" \
    -tls1_3 -num_tickets 0 -quiet "$@" </dev/null >/dev/null 2>&1 &
  spid=$!
  for _ in $(seq 50); do
    timeout 2 openssl s_client -connect "127.0.0.1:$port" </dev/null >/dev/null 2>&1 && break
    sleep 0.1
  done
  t0="$(awk '{print $14 + $15}' "/proc/$spid/stat")"
  out="$(timeout 60 "${NICE[@]}" openssl s_time -connect "127.0.0.1:$port" -new -time "$((LOAD_SECONDS / 2))" \
    -cert "$WORK/ossl-client.crt" -key "$WORK/ossl-client.key" 2>&1)" || true
  t1="$(awk '{print $14 + $15}' "/proc/$spid/stat")"
  kill "$spid" 2>/dev/null
  wait "$spid" 2>/dev/null || true
  n="$(awk '/connections in [0-9.]+ real seconds/ {print $1; exit}' <<<"$out")"
  [[ -n "$n" && "$n" -gt 0 ]] || { log "openssl s_time made no connection ($label)"; RC=1; return; }
  awk -v l="$label" -v n="$n" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v cores="$CORES" 'BEGIN {
    ms = 1000 * t / hz / n
    printf "| %s | %d | %.2f | %.0f |\n", l, n, ms, cores * 1000 / ms }' >>"$WORK/ossl.md"
}
CORES="$(nproc)"
log "openssl s_server handshakes, without and with a client certificate"
ossl_handshakes "openssl s_server, no client certificate"
ossl_handshakes "openssl s_server, client certificate asked for (-verify 1 -verify_quiet)" -verify 1 -verify_quiet

CAS_HWM="$(awk '/^VmHWM:/ {printf "%.1f MiB", $2 / 1024}' "/proc/$CAS_PID/status")"
LAS_HWM="$(awk '/^VmHWM:/ {printf "%.1f MiB", $2 / 1024}' "/proc/$LAS_PID/status")"
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the crypto baseline ---------------------------------------------------------------------
log "openssl speed -seconds 2 ecdsap256 ecdhp256 ecdhx25519"
SPEED="$("${NICE[@]}" openssl speed -seconds 2 ecdsap256 ecdhp256 ecdhx25519 2>/dev/null)"
SIGN="$(awk '/^ *256 bits ecdsa \(nistp256\)/ {print $(NF-1)}' <<<"$SPEED")"
VERIFY="$(awk '/^ *256 bits ecdsa \(nistp256\)/ {print $NF}' <<<"$SPEED")"
ECDH_P256="$(awk '/^ *256 bits ecdh \(nistp256\)/ {print $NF}' <<<"$SPEED")"
ECDH_X25519="$(awk '/^ *253 bits ecdh \(X25519\)/ {print $NF}' <<<"$SPEED")"
log "key generation rates (start_load keygen)"
"${NICE[@]}" "$LOAD" keygen --seconds 1 --summary "$SUMMARY" >/dev/null
KEYGEN_P256="$(awk -F= '$1 == "keygen.p256" {print $2}' "$SUMMARY")"
KEYGEN_X25519="$(awk -F= '$1 == "keygen.x25519" {print $2}' "$SUMMARY")"
[[ -n "$SIGN" && -n "$VERIFY" && -n "$ECDH_P256" && -n "$ECDH_X25519" ]] || { log "cannot read openssl speed"; exit 1; }

log "stopping the LAS and the CAS"
stop "$LAS_PID" "the LAS"
LAS_PID=""
stop "$CAS_PID" "the CAS"
CAS_PID=""
# The LAS says at exit how it batched what it relayed.
LAS_RELAYED="$(sed -n 's/^cloister-las: relayed \(.*\)$/\1/p' "$WORK/las.log" | tail -n 1)"

# ---- report -------------------------------------------------------------------------------------
val() { awk -F= -v k="$1" '$1 == k {print $2}' "$SUMMARY"; }
num() { awk -v v="$1" -v d="${2:-2}" 'BEGIN {printf "%.*f", d, v}'; }
# µs of each operation on one core, and the sums of the derivation. PLAIN is
# the CPU of one plain start (the program and the driver's spawn), measured in
# the plain load row.
PLAIN_MS="$(awk -v p="$(val "load.plain.$FIRST_C.program_ms")" -v d="$(val "load.plain.$FIRST_C.driver_ms")" \
  'BEGIN {printf "%.3f", p + d}')"
BOUND="$(awk -v s="$SIGN" -v v="$VERIFY" -v e="$ECDH_P256" -v x="$ECDH_X25519" -v kp="$KEYGEN_P256" \
  -v kx="$KEYGEN_X25519" -v cores="$CORES" -v kex="$KEX" -v plain="$PLAIN_MS" 'BEGIN {
    S = 1e6 / s; V = 1e6 / v; E = 1e6 / e; X = 1e6 / x; KP = 1e6 / kp; KX = 1e6 / kx
    # Relayed (section 6), all P-256. CAS: verify the evidence, HPKE seal
    # (key generation + ECDH), sign the reply. Runtime: its fresh key, HPKE
    # open (ECDH), verify the reply. LAS: sign the evidence.
    cas = V + KP + E + S
    client = KP + E + V
    las = S
    total = cas + client + las
    with_start = total + plain * 1000
    # Direct (section 5), for comparison: a TLS 1.3 handshake per start with
    # the key exchange negotiated (KEX).
    if (kex ~ /X25519/) { kg = KX; kd = X; kname = "X25519" } else { kg = KP; kd = E; kname = "P-256" }
    dcas = S + 3 * V + kg + kd
    dtotal = dcas + (KP + S + kg + kd + S + V) + S
    printf "S=%.1f V=%.1f E=%.1f X=%.1f KP=%.1f KX=%.1f kname=%s cas=%.0f client=%.0f las=%.0f total=%.0f bound=%.0f cas_bound=%.0f with_start=%.0f with_start_bound=%.0f dcas=%.0f dcas_bound=%.0f dtotal=%.0f dbound=%.0f\n",
      S, V, E, X, KP, KX, kname, cas, client, las, total, cores * 1e6 / total, cores * 1e6 / cas,
      with_start, cores * 1e6 / with_start, dcas, cores * 1e6 / dcas, dtotal, cores * 1e6 / dtotal
  }')"
b() { tr ' ' '\n' <<<"$BOUND" | awk -F= -v k="$1" '$1 == k {print $2}'; }
RATE_MAX=0
RATE_AT=""
for c in ${CONCURRENCY//,/ }; do
  r="$(val "load.protected.$c.rate")"
  if awk -v a="$RATE_MAX" -v b="$r" 'BEGIN {exit !(b > a)}'; then RATE_MAX="$r"; RATE_AT="$c"; fi
done
CPU_PER="$(awk -v c="$(val "load.protected.$RATE_AT.cas_ms")" -v l="$(val "load.protected.$RATE_AT.las_ms")" \
  -v p="$(val "load.protected.$RATE_AT.program_ms")" -v d="$(val "load.protected.$RATE_AT.driver_ms")" \
  'BEGIN {printf "%.2f", c + l + p + d}')"
verdict() {  # verdict VALUE LIMIT le|ge
  awk -v v="$1" -v l="$2" -v op="$3" 'BEGIN {
    ok = (op == "le") ? (v <= l) : (v >= l); print ok ? "met" : "**missed**" }'
}
TRUE_ADDED="$(num "$(val 'latency.tiny C program.added_p50_ms')")"
BIN_ADDED="$(num "$(val 'latency./bin/true.added_p50_ms')")"
PY_ADDED="$(num "$(val 'latency.python3 -c pass.added_p50_ms')")"
DIRECT_ADDED="$(num "$(val 'latency.tiny C program, direct.added_p50_ms')")"
LAT_WORST="$(awk -v a="$TRUE_ADDED" -v b="$BIN_ADDED" 'BEGIN {print (a > b ? a : b)}')"
RSS_ADDED="$(num "$(val 'rss.tiny C program.VmHWM_added_mib')" 1)"
PY_RSS_ADDED="$(num "$(val 'rss.python3.VmHWM_added_mib')" 1)"
SHARE="$(awk -v r="$RATE_MAX" -v bd="$(b bound)" 'BEGIN {printf "%.1f", 100 * r / bd}')"
SHARE_START="$(awk -v r="$RATE_MAX" -v bd="$(b with_start_bound)" 'BEGIN {printf "%.0f", 100 * r / bd}')"
# The CAS alone: the relayed runs as a LAS sends them, one row per
# concurrency; the verdict takes the row of the most starts waiting.
ALONE_KEY=""
for c in ${CONCURRENCY//,/ }; do
  batch=$((c / 2 > 32 ? 32 : (c / 2 < 1 ? 1 : c / 2)))
  ALONE_KEY="alone.relaybatch$batch.2"
  ALONE_WAITING="$c"
done
ALONE_MS="$(val "$ALONE_KEY.cas_ms")"
ALONE_MS="${ALONE_MS:-0}"
ALONE_RATE="$(val "$ALONE_KEY.rate")"
ALONE_CAP="$(awk -v m="$ALONE_MS" -v c="$CORES" 'BEGIN {printf "%.0f", (m > 0) ? c * 1000 / m : 0}')"
ALONE_SHARE="$(awk -v r="$ALONE_CAP" -v bd="$(b cas_bound)" 'BEGIN {printf "%.1f", 100 * r / bd}')"
ALONE_MS="$(num "$ALONE_MS")"
SINGLE_MS="$(num "$(val "alone.relay.$FIRST_C.cas_ms")")"
DIRECT_MS="$(num "$(val "alone.attest.$FIRST_C.cas_ms")")"
HEALTHZ_MS="$(num "$(val "alone.healthz.$FIRST_C.cas_ms")")"
{
  echo "## Machine"
  echo
  echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $CORES cores online"
  echo "- Memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2/1024/1024}' /proc/meminfo); kernel $(uname -r); $(openssl version | cut -d' ' -f1-2); $(cc --version | head -n 1)"
  echo "- CAS (request log on, state on $(df --output=fstype "$WORK" | tail -n 1)) and LAS (8 threads) on loopback, on the same cores as the programs"
  echo "- A minor page fault (fresh anonymous memory, touched a page at a time): ${FAULT_US} µs; populated by the kernel in one call (MAP_POPULATE): ${POPULATE_US} µs a page"
  echo "- Load average before / after: ${LOAD_BEFORE} / ${LOAD_AFTER}${NICE:+; CAS, LAS, driver and openssl under ${NICE[*]}}"
  echo
  echo "## 1. Start-up latency"
  echo
  echo "Each start is posix_spawn + waitpid of the program itself, plain and protected in alternation" \
    "(protected: LD_PRELOAD and the CLOISTER_* variables set by the driver, no \`cloister run\`), after 10 of each" \
    "not counted. Protected starts attest relayed by the LAS (the default); the \"direct\" row attests over the" \
    "program's own TLS connection to the CAS (\`--cas\`). Milliseconds:"
  echo
  cat "$WORK/latency.md"
  echo
  echo "Where a protected start of the tiny C program goes (\`CLOISTER_LOG=debug\`, the runtime's own clock from" \
    "its first line, written when glibc is about to call main; medians of each column, so the second is not the" \
    "difference of the first):"
  echo
  cat "$WORK/trace.md"
  echo
  echo "## 2. Attestations per second"
  echo
  echo "\`start_load load\`: C threads each start the tiny C program, protected, one after the other. CPU in cores" \
    "(of $CORES), from /proc (10 ms ticks); \"programs' CPU\" is what the started programs used (getrusage of the" \
    "children); \"other\" is the rest of the machine. The first row starts the same program plain, for comparison."
  echo
  cat "$WORK/load.md"
  echo
  echo "The CAS's own count, \`cloister_cas_attestations_total{result=\"granted\"}\` from /metrics before and after" \
    "each run; the relay requests the LAS sent (\`POST /v1/attest/relay/batch\` lines of the CAS's request log)," \
    "so how many starts one request carried; and the CAS's median time per request (from the request read to" \
    "the answer written):"
  echo
  echo "| at once | granted before | granted after | granted | granted/s | relay requests | starts per request | CAS median ms per request |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  cat "$WORK/counter.md"
  echo
  echo "Peak RSS afterwards: CAS ${CAS_HWM}, LAS ${LAS_HWM}. Over the whole run the LAS relayed ${LAS_RELAYED:-nothing}."
  echo
  echo "### The bound set by the cryptography"
  echo
  echo "\`openssl speed -seconds 2 ecdsap256 ecdhp256 ecdhx25519\` (one thread): ECDSA P-256 $(num "$SIGN" 0) signs/s" \
    "($(b S) µs) and $(num "$VERIFY" 0) verifies/s ($(b V) µs); ECDH P-256 $(num "$ECDH_P256" 0)/s ($(b E) µs);" \
    "X25519 $(num "$ECDH_X25519" 0)/s ($(b X) µs). Key generation (\`start_load keygen\`, EVP, one" \
    "thread): P-256 $(num "$KEYGEN_P256" 0)/s ($(b KP) µs), X25519 $(num "$KEYGEN_X25519" 0)/s ($(b KX) µs)."
  echo
  echo "| who | public-key operations per relayed attestation | µs |"
  echo "|---|---|---:|"
  echo "| CAS | 1 ECDSA verify (the evidence), 1 P-256 key generation + 1 ECDH (HPKE seal of the grant), 1 ECDSA sign (the reply) | $(b cas) |"
  echo "| runtime | 1 P-256 key generation (the fresh key), 1 ECDH (HPKE open), 1 ECDSA verify (the reply) | $(b client) |"
  echo "| LAS | 1 ECDSA sign (the evidence) | $(b las) |"
  echo "| all | 2 signs, 2 verifies, 2 key generations, 2 ECDH | **$(b total)** |"
  echo
  echo "All three run on the same $CORES cores, so the bound is $CORES × 10⁶ / $(b total) µs =" \
    "**$(b bound) attestations/s**; the CAS's part alone allows **$(b cas_bound)/s** on $CORES cores. Each" \
    "attestation also starts a process: with the CPU of a plain start added ($(num "$PLAIN_MS") ms, programs' and" \
    "driver CPU per start in the plain row), the bound is $CORES × 10⁶ / $(b with_start) µs = $(b with_start_bound)/s." \
    "For comparison, a direct attestation (a TLS 1.3 handshake with $(b kname) key exchange: the CAS 1 sign," \
    "3 verifies, 1 key generation and 1 key exchange) costs the CAS $(b dcas) µs ($(b dcas_bound)/s) and all" \
    "parties $(b dtotal) µs ($(b dbound)/s)."
  echo
  echo "Measured: $(num "$RATE_MAX" 0) attestations/s at best ($RATE_AT at once), ${SHARE}% of the crypto bound" \
    "and ${SHARE_START}% of the bound with the process start; ${CPU_PER} ms of CPU per attestation (CAS, LAS," \
    "program and driver, from the table) against $(b total) µs of public-key operations."
  echo
  echo "### The CAS alone"
  echo
  echo "\`attest_load\`: no process starts and no LAS; the driver does the LAS's and the programs' part with keys" \
    "and evidence made before the clock starts (the evidence signed with the LAS's node key, over the" \
    "measurements of the tiny C program and the runtime), and checks and opens every reply as the runtime" \
    "would. The \`relay/batch\` rows send as one LAS with C starts waiting does: two requests at a time over" \
    "kept TLS connections with the node key, each carrying C/2 starts (at most 32). The other rows, for" \
    "comparison: one start per request; direct attestations (a TCP connection and a full TLS 1.3 handshake with" \
    "a fresh key's self-signed certificate per start, the runtime's own client code); \`GET /healthz\` over" \
    "such connections (the handshake alone). \"CAS alone could do\" is $CORES cores divided by the CAS's CPU" \
    "per attestation: the rate if the CAS had the machine to itself."
  echo
  cat "$WORK/alone.md"
  echo
  echo "OpenSSL's own server (\`openssl s_server -tls1_3 -num_tickets 0\`, one thread, no HTTP), driven by" \
    "\`openssl s_time -new\` with a client certificate for $((LOAD_SECONDS / 2)) s, P-256 certificates:"
  echo
  echo "| server | handshakes | server CPU ms each | handshakes/s on $CORES cores at that cost |"
  echo "|---|---:|---:|---:|"
  cat "$WORK/ossl.md"
  echo
  echo "The CAS's part of the public-key operations ($(b cas) µs) allows $(b cas_bound) attestations/s on" \
    "$CORES cores. With $ALONE_WAITING starts waiting on a LAS the CAS spends ${ALONE_MS} ms of CPU per" \
    "attestation, so it could do ${ALONE_CAP}/s with the machine to itself: ${ALONE_SHARE}% of that bound" \
    "(measured with the driver beside it on the same cores: $(num "$ALONE_RATE" 0)/s). One start per request" \
    "costs it ${SINGLE_MS} ms, a direct attestation ${DIRECT_MS} ms (${HEALTHZ_MS} ms for the handshake alone)."
  echo
  echo "## 3. Memory"
  echo
  echo "The program prints its /proc/self/status when main runs (the protected one after attestation, so" \
    "VmHWM includes its peak); python3 runs \`-c\` with a line that prints it. Median of 7 starts of each:"
  echo
  cat "$WORK/rss.md"
  echo
  echo "## Targets"
  echo
  echo "| target | measured | result |"
  echo "|---|---|---|"
  echo "| added start-up latency at p50 ≤ 10 ms | tiny C program ${TRUE_ADDED} ms, /bin/true ${BIN_ADDED} ms (python3 ${PY_ADDED} ms; direct ${DIRECT_ADDED} ms) | $(verdict "$LAT_WORST" 10 le) |"
  echo "| attestations/s the CAS sustains ≥ 50% of its crypto bound ($(b cas_bound)/s on $CORES cores) | ${ALONE_CAP}/s from its CPU per attestation (${ALONE_MS} ms, $ALONE_WAITING starts waiting): ${ALONE_SHARE}%; $(num "$ALONE_RATE" 0)/s measured with the driver on the same cores | $(verdict "$ALONE_SHARE" 50 ge) |"
  echo "| (for information, not a target) the whole machine: programs starting, LAS and CAS on $CORES cores, against $(b bound)/s | $(num "$RATE_MAX" 0)/s: ${SHARE}% (${SHARE_START}% of the bound with a process start, $(b with_start_bound)/s) | - |"
  echo "| added memory ≤ 16 MiB | VmHWM +${RSS_ADDED} MiB (tiny C program), +${PY_RSS_ADDED} MiB (python3) | $(verdict "$RSS_ADDED" 16 le) |"
} >"$OUT"
cat "$OUT"
log "report also written to $OUT; the CAS's log to $CAS_LOG_KEEP"
((RC == 0)) || log "a start failed (see above)"
exit "$RC"
