#!/usr/bin/env bash
# Reproduces the section "Image conversion" of docs/benchmarks.md: how long
# `cloister image protect` takes to turn an image of several hundred MB with
# a large directory into a confidential one, next to a plain `skopeo copy`
# of the same image (the baseline), measured alternately in the same run.
#
# The image is built here with umoci (no registry), in two gzip layers:
#   1. a base: the host's python3 binary with its shared libraries, its
#      standard library and GCC's library directory (a few hundred MB of
#      programs, libraries and text);
#   2. /app: BENCH_APP_MIB MiB of incompressible "model" files (2 MB each)
#      and 2,000 generated CSV files (about a sixth of it).
# protect encrypts /app (`--encrypt /app`); the base layer holds nothing of
# it and is copied, the /app layer is rewritten and sealed.
#
# Each run ends with `sync`, for both commands, so that both are timed until
# their output is on the disk (protect syncs what it writes; skopeo leaves it
# to the page cache). Page caches are warm for both: the image is read
# before the first timed run.
#
#   bench/image_run.sh
#
# Environment:
#   BENCH_BUILD     build directory (default build-bench, Release)
#   BENCH_DIR       parent of the scratch directory (default /var/tmp)
#   BENCH_APP_MIB   size of /app's model files in MiB (default 240)
#   BENCH_REPEAT    alternated runs of each command (default 5)
#   BENCH_OUT       where the markdown report is also written (default
#                   BENCH_BUILD/image-benchmarks-result.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BENCH_BUILD:-$ROOT/build-bench}"
PARENT="${BENCH_DIR:-/var/tmp}"
APP_MIB="${BENCH_APP_MIB:-240}"
REPEAT="${BENCH_REPEAT:-5}"
OUT="${BENCH_OUT:-$BUILD/image-benchmarks-result.md}"

log() { echo "image_run.sh [${SECONDS}s]: $*" >&2; }

# ---- packages and build ------------------------------------------------------------
missing=()
for tool in skopeo umoci python3 cmake; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  sudo=()
  [[ "$(id -u)" -ne 0 ]] && sudo=(sudo)
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
log "building in $BUILD (Release)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCLOISTER_BENCH=ON >/dev/null
cmake --build "$BUILD" --target cloister cloister-runtime -j "$(nproc)" >/dev/null
CLOISTER="$BUILD/cloister"
RUNTIME="$BUILD/libcloister-runtime.so"

mkdir -p "$PARENT"
WORK="$(mktemp -d "$PARENT/cloister-image-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ROOTLESS=()
[[ "$(id -u)" -eq 0 ]] || ROOTLESS=(--rootless)

# ---- the image ----------------------------------------------------------------------
log "building the image in $WORK"
umoci init --layout "$WORK/img" >/dev/null
umoci new --image "$WORK/img:v1" >/dev/null
umoci unpack "${ROOTLESS[@]}" --image "$WORK/img:v1" "$WORK/b" >/dev/null
R="$WORK/b/rootfs"
PY="$(readlink -f "$(command -v python3)")"
case "$PY" in /usr/*) ;; *) PY=/usr/bin/python3 ;; esac
PY="$(readlink -f "$PY")"
STDLIB="$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
mkdir -p "$R/usr/bin" "$R$STDLIB" "$R/usr/lib"
cp "$PY" "$R/usr/bin/"
# Its shared libraries and the loader, at the paths ldd names (protect checks the loader is there).
for lib in $(ldd "$PY" | grep -oE '/[^ ]+'); do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
cp -a "$STDLIB/." "$R$STDLIB/"
[[ -d /usr/lib/gcc ]] && cp -a /usr/lib/gcc "$R/usr/lib/"
umoci repack "${ROOTLESS[@]}" --refresh-bundle --image "$WORK/img:v1" "$WORK/b" >/dev/null
mkdir -p "$R/app/models" "$R/app/docs"
models=$((APP_MIB / 2))
for i in $(seq "$models"); do head -c 2000000 /dev/urandom >"$R/app/models/w$i.bin"; done
/usr/bin/python3 - "$R/app/docs" <<'PY'
import random, sys
random.seed(1)
words = ["alpha", "beta", "gamma", "delta", "record", "value", "customer", "order", "amount", "total"]
for i in range(2000):
    with open(f"{sys.argv[1]}/d{i:04d}.csv", "w") as f:
        f.write("\n".join(",".join(random.choice(words) + str(random.randint(0, 99999)) for _ in range(8))
                          for _ in range(300)))
PY
umoci repack "${ROOTLESS[@]}" --refresh-bundle --image "$WORK/img:v1" "$WORK/b" >/dev/null
umoci config --image "$WORK/img:v1" --config.entrypoint "/usr/bin/$(basename "$PY")" --config.workingdir /app >/dev/null
BASE_MB=$(du -sm --apparent-size "$R" | awk '{print $1}')
APP_MB=$(du -sm --apparent-size "$R/app" | awk '{print $1}')
rm -rf "$WORK/b"
BLOB_BYTES=$(find "$WORK/img/blobs" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
BLOB_MB=$(awk -v b="$BLOB_BYTES" 'BEGIN {printf "%.0f", b / 1e6}')
cat "$WORK/img/blobs/sha256/"* >/dev/null  # warm the page cache for both commands
KEY="$(printf '%064d' 0)"

now() { date +%s.%N; }
copy_times=()
protect_times=()
for i in $(seq "$REPEAT"); do
  rm -rf "$WORK/copy" "$WORK/prot" "$WORK/session.yaml"
  sync
  t0=$(now)
  skopeo copy -q "oci:$WORK/img:v1" "oci:$WORK/copy:v1"
  sync
  t1=$(now)
  copy_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')")
  sync
  t0=$(now)
  CI=1 "$CLOISTER" image protect --from "oci:$WORK/img:v1" --to "oci:$WORK/prot:v1" --encrypt /app \
    --session bench/image --service app --cas-key "$KEY" --runtime "$RUNTIME" \
    --session-out "$WORK/session.yaml" >"$WORK/protect.out"
  sync
  t1=$(now)
  protect_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')")
  log "run $i: skopeo copy ${copy_times[-1]} s, image protect ${protect_times[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
COPY=$(median "${copy_times[@]}")
PROTECT=$(median "${protect_times[@]}")
RATIO=$(awk -v p="$PROTECT" -v c="$COPY" 'BEGIN {printf "%.2f", p / c}')
VOLUME_LINE=$(grep '^volume' "$WORK/protect.out")
LAYERS_LINE=$(grep '^layers' "$WORK/protect.out")
VERDICT=$(awk -v r="$RATIO" 'BEGIN {print (r <= 2.0) ? "met" : "not met"}')

{
  echo "### Image conversion"
  echo
  echo "Image: ${BLOB_MB} MB of blobs (two gzip layers), ${BASE_MB} MiB of files unpacked. /app holds ${APP_MB} MiB:"
  echo "${models} random model files of 2 MB and 2,000 CSV files. $(nproc) cores; scratch on"
  echo "$(df --output=fstype "$WORK" | tail -1), volumes built in /dev/shm. Medians of ${REPEAT} alternated runs, each ending with \`sync\`."
  echo
  echo "| command | seconds (median) | MB/s of image blobs | runs |"
  echo "|---|---:|---:|---|"
  echo "| \`skopeo copy oci:IMG oci:COPY\` (baseline) | $COPY | $(awk -v b="$BLOB_BYTES" -v t="$COPY" 'BEGIN {printf "%.0f", b / 1e6 / t}') | ${copy_times[*]} |"
  echo "| \`cloister image protect --encrypt /app\` | $PROTECT | $(awk -v b="$BLOB_BYTES" -v t="$PROTECT" 'BEGIN {printf "%.0f", b / 1e6 / t}') | ${protect_times[*]} |"
  echo
  echo "protect / copy: **${RATIO}x** (target: at most 2x, ${VERDICT})."
  echo
  echo "protect's summary of the last run: \`${VOLUME_LINE%, tag *}\`; \`${LAYERS_LINE}\`."
} | tee "$OUT"
log "report also written to $OUT"
