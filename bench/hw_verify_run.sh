#!/usr/bin/env bash
# Reproduces the section "Hardware evidence" of docs/benchmarks.md: how many
# verifications of each kind of hardware evidence one core does per second
# with the collateral in memory (bench/hw_verify_bench.cc), next to what
# `openssl speed` says the signature checks inside them cost on the same
# machine, in the same run.
#
#   bench/hw_verify_run.sh
#
# Environment:
#   BENCH_VECTORS   the attestation vectors (default ../shared/testdata/attestation
#                   next to the source tree, or $CLOISTER_TESTDATA/attestation)
#   BENCH_SECONDS   seconds per kind of evidence and per openssl algorithm (default 5)
#   BENCH_OUT       where the markdown report is also written
#                   (default build-bench/hw-verify-result.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-bench"
VECTORS="${BENCH_VECTORS:-${CLOISTER_TESTDATA:-$ROOT/../shared/testdata}/attestation}"
SECONDS_EACH="${BENCH_SECONDS:-5}"
OUT="${BENCH_OUT:-$BUILD/hw-verify-result.md}"
log() { echo "hw_verify_run.sh: $*" >&2; }

[[ -f "$VECTORS/MANIFEST.md" ]] || { log "no attestation vectors at $VECTORS (set BENCH_VECTORS)"; exit 1; }
command -v openssl >/dev/null || { log "openssl is needed (Debian: openssl)"; exit 1; }

log "building hw_verify_bench in $BUILD (Release)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCLOISTER_BENCH=ON >/dev/null
cmake --build "$BUILD" --target hw_verify_bench -j "$(nproc)" >/dev/null

{
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores;" \
    "$(openssl version | cut -d' ' -f1-2); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "One thread, $SECONDS_EACH s per kind, collateral parsed once before the clock starts:"
  echo
  "$BUILD/hw_verify_bench" "$VECTORS" "$SECONDS_EACH"
  echo
  echo "The signature checks they contain (\`openssl speed -seconds $SECONDS_EACH\`, one thread):"
  echo
  echo "| algorithm | verifications/s |"
  echo "|---|---:|"
  # openssl speed prints a table; take the verify/s column of each line.
  for alg in ecdsap256 ecdsap384 rsa3072 rsa4096; do
    line=$(openssl speed -seconds "$SECONDS_EACH" "$alg" 2>/dev/null | grep -E '^ *(256|384) bits ecdsa|^rsa +(3072|4096) bits' | tail -1)
    case "$alg" in
      ecdsa*) rate=$(awk '{print $(NF)}' <<<"$line") ;;
      rsa*) rate=$(awk '{print $(NF)}' <<<"$line") ;;
    esac
    echo "| $alg | ${rate%.*} |"
  done
  echo
  echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
log "report also written to $OUT"
