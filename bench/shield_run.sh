#!/usr/bin/env bash
# Reproduces the section "File shield" of docs/benchmarks.md: what the file
# shield (docs/runtime.md, "The file shield") costs unmodified programs, next
# to the same programs on a plain directory and on a gocryptfs mount, all
# three on the same file system (a directory on the disk, not a tmpfs: fsync
# has to cost what it costs).
#
#   1. sysbench fileio, one thread, 16 KiB blocks: seqwr, seqrd, rndwr and
#      rndrd, each with its own prepare, run and cleanup; under the shield
#      sysbench itself is the attested program, its working directory on a
#      volume;
#   2. pgbench (TPC-B like, scale 10, 4 clients, 2 threads, 60 s) against
#      PostgreSQL 15 from Debian with its data directory on each variant;
#      under the shield the postgres server is the attested program and
#      pgbench, the client, runs natively.
#
# The shield variant runs against a CAS and a LAS of its own on loopback
# (relayed attestation, rollback-protected volumes: commits are reported
# to the CAS). The server's data directory is made by initdb through
# `cloister run` (initdb execs /bin/sh, postgres and locale, which join the
# shield: "Programs that exec" in docs/runtime.md); if that fails, the report
# gives the reason, and the data directory is made by a native initdb and
# sealed into a volume with `cloister volume seal`, which the session names
# with its key and tag.
# A variant that cannot run is reported as "not available (reason)"; the
# others still run.
#
# Needs root (PostgreSQL runs as the user postgres, gocryptfs is mounted with
# -allow_other); run by another user, it runs itself again with sudo, and
# builds and writes its report as that user.
# Installs what is missing from Debian (postgresql-15, sysbench, gocryptfs,
# fuse3), builds Release binaries in build-bench, stops everything it started
# and removes everything it made, also when interrupted. About 11 minutes
# after the build with the defaults.
#
#   bench/shield_run.sh
#
# Environment:
#   BENCH_BUILD          build directory (default build-bench, Release)
#   BENCH_DIR            parent of the scratch directory (default /var/tmp);
#                        the report says which file system it is on
#   BENCH_VARIANTS       what to compare (default "native gocryptfs shield")
#   BENCH_TESTS          what to run (default "fileio pgbench")
#   BENCH_FILEIO_MODES   sysbench test modes (default "seqwr seqrd rndwr rndrd")
#   BENCH_FILEIO_SIZE    --file-total-size (default 1G)
#   BENCH_FILEIO_FILES   --file-num (default 4)
#   BENCH_FILEIO_SECONDS --time of each sysbench run (default 20)
#   BENCH_SCALE          pgbench -i -s (default 10)
#   BENCH_CLIENTS        pgbench -c (default 4)
#   BENCH_JOBS           pgbench -j (default 2)
#   BENCH_SECONDS        pgbench -T (default 60)
#   BENCH_OUT            where the markdown report is also written (default
#                        BENCH_BUILD/shield-benchmarks-result.md); the logs of
#                        every command are kept in BENCH_BUILD/shield_run-logs
set -euo pipefail

if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "shield_run.sh: needs root or sudo" >&2; exit 1; }
  exec sudo --preserve-env "$0" "$@"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BENCH_BUILD:-$ROOT/build-bench}"
PARENT="${BENCH_DIR:-/var/tmp}"
VARIANTS="${BENCH_VARIANTS:-native gocryptfs shield}"
TESTS="${BENCH_TESTS:-fileio pgbench}"
MODES="${BENCH_FILEIO_MODES:-seqwr seqrd rndwr rndrd}"
FILE_SIZE="${BENCH_FILEIO_SIZE:-1G}"
FILE_NUM="${BENCH_FILEIO_FILES:-4}"
FILE_SECONDS="${BENCH_FILEIO_SECONDS:-20}"
SCALE="${BENCH_SCALE:-10}"
CLIENTS="${BENCH_CLIENTS:-4}"
JOBS="${BENCH_JOBS:-2}"
PG_SECONDS="${BENCH_SECONDS:-60}"
OUT="${BENCH_OUT:-$BUILD/shield-benchmarks-result.md}"
LOGS_KEEP="$BUILD/shield_run-logs"
PGBIN=/usr/lib/postgresql/15/bin
PGUSER=postgres

log() { echo "shield_run.sh [${SECONDS}s]: $*" >&2; }
has() { [[ " $2 " == *" $1 "* ]]; }  # has WORD "LIST"

# ---- packages -------------------------------------------------------------------
missing=()
[[ -x "$PGBIN/postgres" && -x "$PGBIN/initdb" && -x "$PGBIN/pgbench" ]] || missing+=(postgresql-15)
command -v sysbench >/dev/null || missing+=(sysbench)
command -v gocryptfs >/dev/null || missing+=(gocryptfs)
command -v fusermount3 >/dev/null || missing+=(fuse3)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v cmake >/dev/null || missing+=(cmake)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
id "$PGUSER" >/dev/null 2>&1 || { log "there is no user $PGUSER (Debian's postgresql-common makes it)"; exit 1; }
for tool in timeout awk setsid; do
  command -v "$tool" >/dev/null || { log "needs $tool"; exit 1; }
done
SYSBENCH="$(command -v sysbench)"

# ---- build -----------------------------------------------------------------------
# Started through sudo: the build tree and the report belong to the user.
OWNER=()
if [[ -n "${SUDO_UID:-}" && "${SUDO_UID}" != 0 ]]; then
  OWNER=(setpriv --reuid="$SUDO_UID" --regid="$SUDO_GID" --init-groups --)
fi
log "building in $BUILD (Release)"
"${OWNER[@]}" cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCLOISTER_BENCH=ON >/dev/null
"${OWNER[@]}" cmake --build "$BUILD" --target cloister cloister-cas cloister-las cloister-runtime -j "$(nproc)" >/dev/null

# ---- scratch directory and cleanup ---------------------------------------------------
mkdir -p "$PARENT"
WORK="$(mktemp -d "$PARENT/cloister-shield-bench.XXXXXX")"
# The user postgres must get through to its directories, the LAS socket and
# the copies of cloister and the runtime; nothing else here is readable.
chmod 0711 "$WORK"
LOGS="$WORK/logs"
mkdir "$LOGS"
CAS_PID=""
LAS_PID=""
PG_PID=""
GC_MNT=""
NICE=()
CAS="$BUILD/cloister-cas"
LAS="$BUILD/cloister-las"
# shellcheck source=bench/services.sh
source "$ROOT/bench/services.sh"  # stop, start_cas, start_las
# stop_group PGID: a server started with setsid, and every process of its
# group (PostgreSQL's own, and the shield's volume server, which commits
# after the program stopped and leaves when the last process has gone).
stop_group() {
  local pgid="$1"
  [[ -n "$pgid" ]] || return 0
  kill -INT "$pgid" 2>/dev/null || true  # PostgreSQL's fast shutdown
  for _ in $(seq 300); do
    kill -0 -- "-$pgid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 -- "-$pgid" 2>/dev/null; then
    log "process group $pgid still there 60 s after SIGINT; killing it"
    kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  wait "$pgid" 2>/dev/null || true
}
cleanup() {
  set +e
  stop_group "$PG_PID"
  if [[ -n "$GC_MNT" ]] && mountpoint -q "$GC_MNT"; then
    fusermount3 -u "$GC_MNT" 2>/dev/null || umount "$GC_MNT" 2>/dev/null || umount -l "$GC_MNT"
  fi
  stop "$LAS_PID" "the LAS"
  stop "$CAS_PID" "the CAS"
  cp "$WORK"/cas.log "$WORK"/las.log "$LOGS/" 2>/dev/null
  rm -rf "$LOGS_KEEP" && cp -r "$LOGS" "$LOGS_KEEP"
  [[ -n "${SUDO_UID:-}" ]] && chown -R "$SUDO_UID:$SUDO_GID" "$LOGS_KEEP" "$OUT" 2>/dev/null
  # The gocryptfs daemon exits shortly after the unmount.
  for _ in $(seq 20); do
    rm -rf "$WORK" 2>/dev/null && break
    sleep 0.5
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FSTYPE="$(df --output=fstype "$WORK" | tail -n 1)"
DEVICE="$(df --output=source "$WORK" | tail -n 1)"
[[ "$FSTYPE" == tmpfs ]] && log "warning: $WORK is on a tmpfs; fsync costs nothing there"
log "scratch directory $WORK ($FSTYPE on $DEVICE)"

# The binaries the user postgres runs, where it can read them (the build
# tree may be in a home directory of mode 0700). A measurement is of the
# contents, so the copies measure as the originals.
mkdir -m 0755 "$WORK/bin"
cp "$BUILD/cloister" "$BUILD/libcloister-runtime.so" "$WORK/bin/"
CLOISTER="$WORK/bin/cloister"
RUNTIME="$WORK/bin/libcloister-runtime.so"
AS_PG=(setpriv --reuid="$PGUSER" --regid="$PGUSER" --init-groups --)
pg_dir() {  # pg_dir DIR: an empty directory of the user postgres, mode 0700
  mkdir -p "$1"
  chown "$PGUSER:" "$1"
  chmod 0700 "$1"
}
# The line of a log that says best why a command failed: the runtime's
# refusal, else PostgreSQL's first FATAL or PANIC, else the first line that
# names an error, else the last line.
reason() {
  local r="" pattern
  for pattern in '^cloister-runtime:' 'FATAL|PANIC' 'could not|[Ee]rror|denied|[Ff]ailed|^cloister:.*: '; do
    r="$(grep -v 'created a new volume key' "$1" 2>/dev/null | grep -m 1 -E "$pattern" || true)"
    [[ -n "$r" ]] && break
  done
  [[ -n "$r" ]] || r="$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 || true)"
  r="${r:-no output}"
  printf '%s' "${r//|/\\|}" | cut -c 1-300
}

# ---- a CAS and a LAS of our own (shield) -------------------------------------------------
if has shield "$VARIANTS"; then
  start_cas "$WORK"
  # The LAS makes the socket's directory 0755 and the socket 0666: the user
  # postgres can connect.
  start_las "$WORK" "$WORK/run/las.sock"
  log "CAS pid $CAS_PID (API $API_PORT), LAS pid $LAS_PID"

  measure() { "$CLOISTER" measure "$(readlink -f "$1")" | awk '{print $1}'; }
  RT="$(measure "$RUNTIME")"
  # The volume server opens the parent of a volume's directory (to sync the
  # directory entry when it creates the volume): readable by postgres.
  mkdir -m 0755 "$WORK/shield"
  mkdir -m 0700 "$WORK/shield/fileio"
  pg_dir "$WORK/shield/pg"
  # sysbench creates its files in its working directory: the session's pwd,
  # on the volume. PostgreSQL takes its data directory from -D (no command:
  # the arguments are the host's), a directory in the volume rather than its
  # root: PostgreSQL keys its shared memory by the data directory's inode
  # number, and every volume's root has the same one, so a server on
  # another volume's root would refuse this one. initdb starts postgres,
  # and `locale -a` to list the system's locales, through /bin/sh.
  cat >"$WORK/session.yaml" <<DOC
name: shield-bench
services:
  - name: fileio
    measurements: [$(measure "$SYSBENCH"), $RT]
    pwd: $WORK/shield/fileio
    mounts:
      - volume: fileio
        path: $WORK/shield/fileio
  - name: pg
    measurements: [$(measure "$PGBIN/postgres"), $(measure "$PGBIN/initdb"), $(measure /bin/sh),
      $(measure /usr/bin/locale), $RT]
    mounts:
      - volume: pgdata
        path: $WORK/shield/pg
volumes:
  - name: fileio
  - name: pgdata
security:
  attestation:
    allowed: [sim]
    tolerate: [simulation]
DOC
  "$CLOISTER" session create -f "$WORK/session.yaml" "${CLI[@]}" >/dev/null
fi
# A command as an attested program: "${SHIELDED[@]}" --config SESSION/SERVICE -- CMD...
SHIELDED=("$CLOISTER" run --cas-key "${KEY_HASH:-}" --las "$WORK/run/las.sock" --runtime "$RUNTIME")

# ---- gocryptfs ---------------------------------------------------------------------------
# One gocryptfs file system for both tests, default options, mounted by root
# with -allow_other so that PostgreSQL (user postgres) can use it; as root
# with -allow_other, gocryptfs creates files as the calling user.
GC_OK=0
if has gocryptfs "$VARIANTS"; then
  GC_CIPHER="$WORK/gocryptfs.cipher"
  GC_PASS="$WORK/gocryptfs.pass"
  mkdir "$GC_CIPHER" "$WORK/gocryptfs.mnt"
  (umask 077 && head -c 24 /dev/urandom | base64 >"$GC_PASS")
  timeout 60 gocryptfs -init -q -nosyslog -passfile "$GC_PASS" "$GC_CIPHER" >/dev/null
  GC_MNT="$WORK/gocryptfs.mnt"
  if timeout 60 gocryptfs -q -nosyslog -allow_other -passfile "$GC_PASS" "$GC_CIPHER" "$GC_MNT" </dev/null \
    >"$LOGS/gocryptfs.log" 2>&1; then
    chmod 0711 "$GC_MNT"
    mkdir -m 0700 "$GC_MNT/fileio"
    GC_OK=1
  else
    log "gocryptfs did not mount: $(reason "$LOGS/gocryptfs.log")"
    GC_MNT=""
  fi
fi

# place VARIANT NAME: the directory of VARIANT for NAME (fileio, pgdata);
# fails when the variant is not there.
place() {
  case "$1" in
    native) echo "$WORK/native/$2" ;;
    gocryptfs) ((GC_OK)) && echo "$GC_MNT/$2" ;;
    shield) echo "$WORK/shield/$2" ;;
  esac
}
mkdir -m 0711 "$WORK/native"
mkdir -m 0700 "$WORK/native/fileio"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. sysbench fileio ---------------------------------------------------------------------
# Same options for every variant; the defaults of sysbench 1.0 otherwise
# (--file-block-size=16384, --file-io-mode=sync, --file-fsync-freq=100,
# --file-fsync-end=on, no --file-extra-flags).
FILEIO=(fileio --file-total-size="$FILE_SIZE" --file-num="$FILE_NUM" --threads=1 --time="$FILE_SECONDS"
  --events=0 --percentile=95)
: >"$WORK/fileio.tsv"  # mode variant status MiB/s ops/s fsyncs/s avg-ms p95-ms prepare-MiB/s run-wall-s
fileio_one() {  # fileio_one MODE VARIANT
  local mode="$1" variant="$2" dir run=() phase out rc limit t0 wall=""
  dir="$(place "$variant" fileio)" ||
    { printf '%s\t%s\tnot available (gocryptfs did not mount)\n' "$mode" "$variant" >>"$WORK/fileio.tsv"; return; }
  [[ "$variant" == shield ]] && run=("${SHIELDED[@]}" --config shield-bench/fileio --)
  for phase in prepare run cleanup; do
    out="$LOGS/fileio-$mode-$variant-$phase.log"
    rc=0
    t0="$EPOCHREALTIME"
    limit=300
    if [[ "$phase" == run ]]; then
      limit=$((FILE_SECONDS + 120))
      # What the previous steps left for the kernel to write back (this
      # variant's prepare, the previous variant's files) is written now,
      # not during the measurement.
      sync
    fi
    (cd "$dir" && timeout "$limit" "${run[@]}" "$SYSBENCH" "${FILEIO[@]}" --file-test-mode="$mode" "$phase") \
      >"$out" 2>&1 || rc=$?
    [[ "$phase" == run ]] && wall="$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')"
    if ((rc != 0)); then
      log "fileio $mode $variant: $phase exited $rc: $(reason "$out")"
      printf '%s\t%s\tnot available (%s exited %d: %s)\n' "$mode" "$variant" "$phase" "$rc" "$(reason "$out")" \
        >>"$WORK/fileio.tsv"
      [[ "$phase" == cleanup ]] || (cd "$dir" && timeout 300 "${run[@]}" "$SYSBENCH" "${FILEIO[@]}" cleanup) \
        >/dev/null 2>&1 || true
      return
    fi
    if [[ "$variant" == shield && "$phase" == prepare ]] &&
      { [[ -e "$dir/test_file.0" ]] || [[ ! -e "$dir/cloister-volume" ]]; }; then
      log "fileio $mode shield: the files are not in the volume"
      printf '%s\t%s\tnot available (the files went past the shield)\n' "$mode" "$variant" >>"$WORK/fileio.tsv"
      return
    fi
  done
  local prep
  prep="$(sed -n 's/.*bytes written in .*(\([0-9.]*\) MiB\/sec).*/\1/p' "$LOGS/fileio-$mode-$variant-prepare.log" | tail -n 1)"
  awk -v mode="$mode" -v variant="$variant" -v prep="${prep:--}" -v wall="$wall" '
    function val() { v = $NF; sub(/s$/, "", v); return v + 0 }
    $1 == "reads/s:" { r = val() }
    $1 == "writes/s:" { w = val() }
    $1 == "fsyncs/s:" { f = val() }
    $1 == "read," { rm = val() }
    $1 == "written," { wm = val() }
    $1 == "avg:" { avg = val() }
    $1 == "95th" { p95 = val() }
    END {
      if (mode ~ /rd$/) { mib = rm; ops = r } else { mib = wm; ops = w }
      printf "%s\t%s\tok\t%.1f\t%.0f\t%.1f\t%.2f\t%.2f\t%s\t%s\n", mode, variant, mib, ops, f, avg, p95, prep, wall
    }' "$LOGS/fileio-$mode-$variant-run.log" >>"$WORK/fileio.tsv"
  log "fileio $mode $variant: $(tail -n 1 "$WORK/fileio.tsv" | cut -f 4) MiB/s"
}
if has fileio "$TESTS"; then
  for mode in $MODES; do
    for variant in $VARIANTS; do
      log "sysbench fileio $mode, $variant ($FILE_SIZE in $FILE_NUM files, $FILE_SECONDS s)"
      fileio_one "$mode" "$variant"
    done
  done
fi

# ---- 2. pgbench ----------------------------------------------------------------------------
# A port nothing listens on. The server listens on its Unix socket only (in
# a directory of its own), so the port just names the socket.
PORT=54320
while (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do PORT=$((PORT + 1)); done
SOCK="$WORK/pgsock"
pg_dir "$SOCK"
INITDB=(-U "$PGUSER" --auth=trust -E UTF8 --locale=C --no-instructions)
# initdb sizes these two by what the machine allows: the same for every variant.
PGOPTS=(-p "$PORT" -k "$SOCK" -c listen_addresses= -c max_connections=100 -c shared_buffers=128MB)
PGENV=(env -i PATH=/usr/bin:/bin TZ=UTC)
: >"$WORK/pgbench.tsv"  # variant status how-made init-s tps lat-ms failed
PG_NOTES=""
# pg_start VARIANT DATADIR [RUN...]: the server in a session of its own;
# waits until it accepts connections.
pg_start() {
  local variant="$1" data="$2"
  shift 2
  (cd "$SOCK" && exec setsid "${PGENV[@]}" "${AS_PG[@]}" \
    "$@" "$PGBIN/postgres" -D "$data" "${PGOPTS[@]}" \
    </dev/null >>"$LOGS/postgres-$variant.log" 2>&1) &
  PG_PID=$!
  for _ in $(seq 600); do
    "$PGBIN/pg_isready" -q -h "$SOCK" -p "$PORT" -U "$PGUSER" && return 0
    kill -0 "$PG_PID" 2>/dev/null || break
    sleep 0.1
  done
  pg_stop
  return 1
}
pg_stop() {
  stop_group "$PG_PID"
  PG_PID=""
}
pg_fail() {  # pg_fail VARIANT WHAT LOG
  log "pgbench $1: $2: $(reason "$3")"
  printf '%s\tnot available (%s: %s)\n' "$1" "$2" "$(reason "$3")" >>"$WORK/pgbench.tsv"
}
pg_variant() {  # pg_variant VARIANT
  local variant="$1" data mount="" made="initdb" run=() init_s tps lat failed
  data="$(place "$variant" pgdata)" ||
    { printf '%s\tnot available (gocryptfs did not mount)\n' "$variant" >>"$WORK/pgbench.tsv"; return; }
  if [[ "$variant" == shield ]]; then
    mount="$WORK/shield/pg"
    data="$mount/pgdata"  # made by initdb, in the volume
    run=("${SHIELDED[@]}" --config shield-bench/pg --)
  else
    pg_dir "$data"
  fi
  log "pgbench $variant: initdb"
  if ! (cd "$SOCK" && timeout 300 "${PGENV[@]}" "${AS_PG[@]}" \
    "${run[@]}" "$PGBIN/initdb" -D "$data" "${INITDB[@]}") >"$LOGS/initdb-$variant.log" 2>&1; then
    [[ "$variant" == shield ]] || { pg_fail "$variant" "initdb failed" "$LOGS/initdb-$variant.log"; return; }
    # initdb through the shield did not work: the data directory of a native
    # initdb, sealed into a new volume that a second session names with its
    # key and tag.
    PG_NOTES+="- initdb through \`cloister run\`: not available ($(reason "$LOGS/initdb-$variant.log")). The shield row"
    PG_NOTES+=" uses a data directory made by a native initdb and sealed with \`cloister volume seal\` into a volume"
    PG_NOTES+=" that the session names with its \`key\` and \`tag\`."$'\n'
    log "pgbench shield: initdb through the shield failed ($(reason "$LOGS/initdb-$variant.log")); sealing a native one"
    made="sealed"
    pg_dir "$WORK/seed"
    local seeddata="$WORK/seed/root/pgdata" key tag
    pg_dir "$WORK/seed/root"
    pg_dir "$seeddata"
    if ! (cd "$SOCK" && timeout 300 "${PGENV[@]}" "${AS_PG[@]}" \
      "$PGBIN/initdb" -D "$seeddata" "${INITDB[@]}") >"$LOGS/initdb-seed.log" 2>&1; then
      pg_fail "$variant" "native initdb for the seed failed" "$LOGS/initdb-seed.log"
      return
    fi
    mount="$WORK/shield/pg-sealed"
    data="$mount/pgdata"
    pg_dir "$mount"
    if ! tag="$(cd "$SOCK" && timeout 300 "${AS_PG[@]}" "$CLOISTER" volume seal "$WORK/seed/root" "$mount" \
      --key-file "$WORK/seed/volume.key" \
      2>"$LOGS/seal.log")"; then
      pg_fail "$variant" "cloister volume seal failed" "$LOGS/seal.log"
      return
    fi
    key="$(sed -n 's/^cloister-volume-key-v1:\([0-9a-f]*\)$/\1/p' "$WORK/seed/volume.key")"
    rm -rf "$WORK/seed"
    sed -e 's/^name: shield-bench$/name: shield-bench-sealed/' \
      -e "s|path: $WORK/shield/pg\$|path: $mount|" \
      -e "s|^  - name: pgdata\$|  - name: pgdata\n    key: $key\n    tag: $tag|" "$WORK/session.yaml" >"$WORK/session-sealed.yaml"
    if ! "$CLOISTER" session create -f "$WORK/session-sealed.yaml" "${CLI[@]}" >/dev/null 2>"$LOGS/session-sealed.log"; then
      pg_fail "$variant" "the session with the sealed volume was refused" "$LOGS/session-sealed.log"
      return
    fi
    run=("${SHIELDED[@]}" --config shield-bench-sealed/pg --)
  fi
  log "pgbench $variant: starting the server"
  if ! pg_start "$variant" "$data" "${run[@]}"; then
    pg_fail "$variant" "the server did not start" "$LOGS/postgres-$variant.log"
    return
  fi
  if [[ "$variant" == shield ]] && [[ -e "$data" || ! -e "$mount/cloister-volume" ]]; then
    pg_stop
    printf '%s\tnot available (the data directory went past the shield)\n' "$variant" >>"$WORK/pgbench.tsv"
    return
  fi
  local conn=(-h "$SOCK" -p "$PORT" -U "$PGUSER")
  log "pgbench $variant: pgbench -i -s $SCALE"
  if ! timeout 600 "$PGBIN/pgbench" "${conn[@]}" -i -s "$SCALE" -q postgres >"$LOGS/pgbench-init-$variant.log" 2>&1; then
    pg_stop
    pg_fail "$variant" "pgbench -i failed" "$LOGS/pgbench-init-$variant.log"
    return
  fi
  sync  # as before a sysbench run
  log "pgbench $variant: pgbench -c $CLIENTS -j $JOBS -T $PG_SECONDS"
  if ! timeout $((PG_SECONDS + 300)) "$PGBIN/pgbench" "${conn[@]}" -c "$CLIENTS" -j "$JOBS" -T "$PG_SECONDS" postgres \
    >"$LOGS/pgbench-$variant.log" 2>&1; then
    pg_stop
    pg_fail "$variant" "pgbench failed" "$LOGS/pgbench-$variant.log"
    return
  fi
  pg_stop
  init_s="$(sed -n 's/^done in \([0-9.]*\) s.*/\1/p' "$LOGS/pgbench-init-$variant.log")"
  tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$LOGS/pgbench-$variant.log" | tail -n 1)"
  lat="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$LOGS/pgbench-$variant.log")"
  failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$LOGS/pgbench-$variant.log")"
  printf '%s\tok\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$made" "${init_s:--}" "${tps:-0}" "${lat:--}" "${failed:-0}" \
    >>"$WORK/pgbench.tsv"
  log "pgbench $variant: ${tps:-?} TPS"
}
if has pgbench "$TESTS"; then
  for variant in $VARIANTS; do
    pg_variant "$variant"
  done
fi
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- report -------------------------------------------------------------------------------
# ratio A B: A/B as "0.87x", "-" when either is missing
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "" || v == "-") print "-"; else printf "%.*f", d, v }'; }
# target A B LIMIT: "| A/B (three decimals) | met or missed |", judged on the
# exact quotient (0.497 is not 50%, although it prints as 0.50x)
target() {
  awk -v a="$1" -v b="$2" -v l="$3" 'BEGIN {
    if (a == "" || b == "" || b + 0 == 0) { print "| - | not measured |"; exit }
    printf "| %.3fx | %s |\n", a / b, (a / b >= l) ? "met" : "**missed**" }'
}
fileio_val() { awk -F'\t' -v m="$1" -v v="$2" -v c="$3" '$1 == m && $2 == v && $3 == "ok" {print $c}' "$WORK/fileio.tsv"; }
pg_val() { awk -F'\t' -v v="$1" -v c="$2" '$1 == v && $2 == "ok" {print $c}' "$WORK/pgbench.tsv"; }
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT with local changes"
{
  echo "## Machine"
  echo
  echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores online"
  echo "- Memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2/1024/1024}' /proc/meminfo); kernel $(uname -r)"
  echo "- Scratch directory on $FSTYPE ($DEVICE); every variant in it"
  echo "- $("$PGBIN/postgres" --version); $(sysbench --version | head -n 1); $(gocryptfs -version 2>/dev/null | cut -d';' -f1)"
  echo "- Cloister at commit $COMMIT, Release build"
  echo "- Load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
  if has fileio "$TESTS"; then
    echo
    echo "## sysbench fileio"
    echo
    echo "\`sysbench ${FILEIO[*]} --file-test-mode=MODE prepare|run|cleanup\` in a directory of each variant;" \
      "MiB/s read (rd) or written (wr), ops/s the reads or writes per second, latency per operation;" \
      "\"prepare MiB/s\" is what sysbench reports for writing the files at prepare; \"run s\" the wall time of" \
      "the whole run command (for the shield with the attested start and the first open of each file)."
    echo
    echo "| test | variant | MiB/s | ops/s | fsyncs/s | avg ms | p95 ms | vs native | vs gocryptfs | prepare MiB/s | run s |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    while IFS=$'\t' read -r mode variant status mib ops fs avg p95 prep wall; do
      if [[ "$status" != ok ]]; then
        echo "| $mode | $variant: $status | | | | | | | | | |"
        continue
      fi
      echo "| $mode | $variant | $mib | $ops | $fs | $avg | $p95 | $(ratio "$mib" "$(fileio_val "$mode" native 4)") |" \
        "$(ratio "$mib" "$(fileio_val "$mode" gocryptfs 4)") | $prep | $wall |"
    done <"$WORK/fileio.tsv"
  fi
  if has pgbench "$TESTS"; then
    echo
    echo "## pgbench"
    echo
    echo "\`pgbench -i -s $SCALE -q\`, then \`pgbench -c $CLIENTS -j $JOBS -T $PG_SECONDS\`, against" \
      "\`postgres -D DATADIR ${PGOPTS[*]/#$SOCK/SOCKETDIR}\` (user postgres; data directory from" \
      "\`initdb ${INITDB[*]}\`, PostgreSQL's defaults otherwise: fsync on, synchronous_commit on)."
    echo
    echo "| variant | data directory | pgbench -i s | TPS | latency avg ms | failed | vs native | vs gocryptfs |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    while IFS=$'\t' read -r variant status made init_s tps lat failed; do
      if [[ "$status" != ok ]]; then
        echo "| $variant: $status | | | | | | | |"
        continue
      fi
      echo "| $variant | $made | $init_s | $(fmt "$tps" 0) | $(fmt "$lat" 2) | $failed |" \
        "$(ratio "$tps" "$(pg_val native 5)") |" \
        "$(ratio "$tps" "$(pg_val gocryptfs 5)") |"
    done <"$WORK/pgbench.tsv"
    if [[ -n "$PG_NOTES" ]]; then
      echo
      printf '%s' "$PG_NOTES"
    fi
  fi
  echo
  echo "## Targets"
  echo
  echo "| target | measured | result |"
  echo "|---|---|---|"
  echo "| pgbench TPS, shield ≥ 0.8× native $(target "$(pg_val shield 5)" "$(pg_val native 5)" 0.8)"
  echo "| pgbench TPS, shield ≥ 1.2× gocryptfs $(target "$(pg_val shield 5)" "$(pg_val gocryptfs 5)" 1.2)"
  for mode in seqwr seqrd; do
    echo "| sysbench $mode MiB/s, shield ≥ 50% of native" \
      "$(target "$(fileio_val "$mode" shield 4)" "$(fileio_val "$mode" native 4)" 0.5)"
  done
} >"$OUT"
cat "$OUT"
log "report also written to $OUT; logs in $LOGS_KEEP"
