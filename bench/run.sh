#!/usr/bin/env bash
# Reproduces docs/benchmarks.md: volume library vs plain files vs gocryptfs
# on one tmpfs, the machine's AES-256-GCM speed, and the peak RSS of
# `cloister volume seal` / `cloister volume cat` at several file sizes.
#
#   bench/run.sh [--quick]
#
# Environment:
#   BENCH_REPEAT      runs of volume_bench, the median is reported (default 5)
#   BENCH_SIZE_MIB    file size of volume_bench (default 1024)
#   BENCH_RSS_GIB     file sizes of the RSS measurement (default "1 2 4")
#   BENCH_OUT         where the markdown report is also written
#                     (default build-bench/benchmarks-result.md); the result of
#                     every single run goes to build-bench/volume_bench-runs.log
# --quick: one run, 256 MiB, RSS at 1 GiB only (a smoke test, not for the docs).
#
# Needs root or sudo to install packages and mount a tmpfs; without them it
# uses /dev/shm and whatever is installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-bench"
REPEAT="${BENCH_REPEAT:-5}"
SIZE_MIB="${BENCH_SIZE_MIB:-1024}"
RSS_GIB="${BENCH_RSS_GIB:-1 2 4}"
OUT="${BENCH_OUT:-$BUILD/benchmarks-result.md}"
if [[ "${1:-}" == "--quick" ]]; then
  REPEAT=1 SIZE_MIB=256 RSS_GIB=1
fi

log() { echo "run.sh: $*" >&2; }

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; fi
fi

# ---- packages ----------------------------------------------------------
missing=()
command -v gocryptfs >/dev/null || missing+=(gocryptfs)
command -v fusermount3 >/dev/null || missing+=(fuse3)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v openssl >/dev/null || missing+=(openssl)
command -v cmake >/dev/null || missing+=(cmake)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ---- build ---------------------------------------------------------------
log "building in $BUILD (Release)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCLOISTER_BENCH=ON -DCLOISTER_TESTS=OFF >/dev/null
cmake --build "$BUILD" --target volume_bench cloister -j "$(nproc)" >/dev/null
BENCH="$BUILD/volume_bench"
CLOISTER="$BUILD/cloister"

# ---- scratch tmpfs and gocryptfs ------------------------------------------
# Room for the RSS test: the plaintext file and its sealed copy.
max_rss_gib=0
for g in $RSS_GIB; do ((g > max_rss_gib)) && max_rss_gib=$g; done
need_gib=$((2 * max_rss_gib + 2))
avail_gib=$(($(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1024 / 1024))
if ((avail_gib < need_gib + 2)); then
  log "only ${avail_gib} GiB of memory available; RSS measured at 1 GiB only"
  RSS_GIB=1
  need_gib=4
fi

WORK="$(mktemp -d /tmp/cloister-bench.XXXXXX)"
MOUNTED_TMPFS=0
GC_MNT=""
cleanup() {
  set +e
  if [[ -n "$GC_MNT" ]] && mountpoint -q "$GC_MNT"; then
    fusermount3 -u "$GC_MNT" 2>/dev/null || fusermount -u "$GC_MNT" 2>/dev/null || $SUDO umount "$GC_MNT"
  fi
  if ((MOUNTED_TMPFS)); then
    # The gocryptfs daemon exits shortly after the unmount; until then it
    # keeps files of the tmpfs open.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      $SUDO umount "$WORK" 2>/dev/null && break
      sleep 0.5
    done
    mountpoint -q "$WORK" && $SUDO umount -l "$WORK"
  else
    rm -rf "$SCRATCH"
  fi
  rmdir "$WORK" 2>/dev/null
}
SCRATCH="$WORK"
trap cleanup EXIT
trap 'exit 130' INT TERM
if $SUDO mount -t tmpfs -o "size=${need_gib}g,mode=0700" cloister-bench "$WORK" 2>/dev/null; then
  MOUNTED_TMPFS=1
else
  SCRATCH="/dev/shm/cloister-bench.$$"
  mkdir -m 0700 "$SCRATCH"
  log "cannot mount a tmpfs; using $SCRATCH"
fi
[[ "$(stat -f -c %T "$SCRATCH")" == tmpfs ]] || { log "$SCRATCH is not on tmpfs"; exit 1; }

GC_CIPHER="$SCRATCH/gocryptfs.cipher"
GC_MNT="$SCRATCH/gocryptfs.mnt"
GC_PASS="$SCRATCH/gocryptfs.pass"
mkdir "$GC_CIPHER" "$GC_MNT"
(umask 077 && head -c 24 /dev/urandom | base64 >"$GC_PASS")
gocryptfs -init -q -nosyslog -passfile "$GC_PASS" "$GC_CIPHER" >/dev/null
gocryptfs -q -nosyslog -passfile "$GC_PASS" "$GC_CIPHER" "$GC_MNT" </dev/null >/dev/null

# ---- volume_bench --------------------------------------------------------------
log "volume_bench: ${SIZE_MIB} MiB, ${REPEAT} runs (progress below)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
BENCH_ARGS=(--size-mib "$SIZE_MIB" --repeat "$REPEAT" --random-ops 100000 --random-seconds 30)
"$BENCH" "${BENCH_ARGS[@]}" \
  --gocryptfs-cipher "$GC_CIPHER" --gocryptfs-mount "$GC_MNT" --gocryptfs-passfile "$GC_PASS" \
  "$SCRATCH/bench" >"$SCRATCH/bench.md" 2> >(tee "$BUILD/volume_bench-runs.log" >&2)
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- openssl speed ---------------------------------------------------------------
log "openssl speed"
ossl_row() {  # extra arguments of openssl speed; prints the last column in MB/s
  openssl speed -seconds 2 -evp aes-256-gcm "$@" 2>/dev/null | awk '/^AES-256-GCM/ {v=$NF} END {sub("k","",v); printf "%.0f", v/1000}'
}
ossl_table() {
  openssl speed -seconds 2 -evp aes-256-gcm 2>/dev/null | awk '
    /^type/ {n=0; for (i=2; i<=NF; i+=2) h[++n]=$i}
    /^AES-256-GCM/ {for (i=2; i<=NF; i++) {v=$i; sub("k","",v); r[i-1]=sprintf("%.0f", v/1000)}}
    END {
      line="| block (bytes) |"; sep="|---|"; row="| encrypt MB/s |"
      for (i=1; i<=n; i++) {line=line " " h[i] " |"; sep=sep "---:|"; row=row " " r[i] " |"}
      print line; print sep; print row
    }'
}
OSSL_TABLE="$(ossl_table)"
OSSL_ENC_4K="$(ossl_row -bytes 4096)"
OSSL_DEC_4K="$(ossl_row -bytes 4096 -decrypt)"

# ---- peak RSS of seal and cat --------------------------------------------------
log "peak RSS of cloister volume seal / cat at: ${RSS_GIB} GiB"
KEY="$SCRATCH/volume.key"
RSS_ROWS=""
for g in $RSS_GIB; do
  plain="$SCRATCH/rss-plain"
  vol="$SCRATCH/rss-volume"
  mkdir -p "$plain"
  # Pseudo-random contents (coreutils' generator is fast; the volume does not
  # compress, so any incompressible data will do).
  shred -n 1 -s "${g}G" - >"$plain/big.dat"
  # On virtual machines the first touch of guest memory is slow (the host
  # backs it lazily); write and free as much as the volume will take, so the
  # wall times below are not dominated by that.
  shred -n 1 -s "${g}G" - >"$SCRATCH/warm" && rm -f "$SCRATCH/warm"
  rm -f "$KEY"
  /usr/bin/time -v -o "$SCRATCH/time-seal" "$CLOISTER" volume seal "$plain" "$vol" --key-file "$KEY" \
    >/dev/null 2>"$SCRATCH/seal.err" || { cat "$SCRATCH/seal.err" >&2; exit 1; }
  /usr/bin/time -v -o "$SCRATCH/time-cat" "$CLOISTER" volume cat "$vol" /big.dat --key-file "$KEY" \
    >/dev/null 2>"$SCRATCH/cat.err" || { cat "$SCRATCH/cat.err" >&2; exit 1; }
  for op in seal cat; do
    rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$SCRATCH/time-$op")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$SCRATCH/time-$op")
    secs=$(echo "$wall" | awk -F: '{s=0; for (i=1; i<=NF; i++) s=s*60+$i; print s}')
    rate=$(awk -v b=$((g * 1024 * 1024 * 1024)) -v s="$secs" 'BEGIN {printf "%.0f", b / s / 1e6}')
    RSS_ROWS+="| \`cloister volume $op\` | ${g} GiB | $((rss_kib / 1024)) MiB | ${secs} s | ${rate} MB/s |"$'\n'
  done
  rm -rf "$plain" "$vol"
done

# ---- report --------------------------------------------------------------------------
{
  echo "## Machine"
  echo
  echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores online"
  echo "- Memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2/1024/1024}' /proc/meminfo); kernel $(uname -r)"
  echo "- $(openssl version | cut -d' ' -f1-2); $(gocryptfs -version 2>/dev/null | cut -d';' -f1)"
  echo "- Load average before / after volume_bench: ${LOAD_BEFORE} / ${LOAD_AFTER}" \
    "(the benchmark itself and gocryptfs account for 1-2; more means something else ran)"
  echo
  echo "## volume_bench"
  echo
  echo "\`volume_bench ${BENCH_ARGS[*]} --gocryptfs-cipher C --gocryptfs-mount M --gocryptfs-passfile P DIR\`" \
    "with DIR, C and M on one tmpfs"
  echo
  cat "$SCRATCH/bench.md"
  echo
  echo "## openssl speed -evp aes-256-gcm (one thread)"
  echo
  echo "$OSSL_TABLE"
  echo
  echo "4096-byte blocks: encrypt ${OSSL_ENC_4K} MB/s, decrypt ${OSSL_DEC_4K} MB/s."
  echo
  echo "## Peak RSS (/usr/bin/time -v)"
  echo
  echo "| command | file size | peak RSS | wall time | throughput |"
  echo "|---|---:|---:|---:|---:|"
  printf "%s" "$RSS_ROWS"
} >"$OUT"
cat "$OUT"
log "report also written to $OUT"
