#!/usr/bin/env bash
# End-to-end checks of `cloister image protect` on an OCI image built here
# (no registry): a python3 base image whose /app comes in two layers (the
# second overwrites a file, deletes one with a whiteout and adds one)
# becomes an image whose /app is an encrypted volume. The output is a valid
# image (skopeo, umoci), everything outside /app and /opt/cloister is
# unchanged, no layer and not the config holds a plaintext byte or name of
# /app, the volume holds the newest state of /app, and under podman the
# image starts through the LAS and CAS (with a secret that the session
# defines for a placeholder in --env), keeps its state when the container
# is started again, is refused as a rollback when a fresh container starts
# from the image's original volume, and does not start without the LAS.
# Usage: image_test.sh cloister cloister-cas cloister-las libcloister-runtime.so
set -u
CLOISTER="$1"
CAS_BIN="$2"
LAS_BIN="$3"
RUNTIME="$4"
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || { echo "SKIP: $PYTHON is not installed"; exit 0; }
"$PYTHON" -c 'import yaml' 2>/dev/null || { echo "SKIP: python3 has no yaml module (Debian: python3-yaml)"; exit 0; }
for tool in skopeo umoci podman; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed (Debian: $tool)"; exit 0; }
done
T="$(mktemp -d)"
PIDS=()
source "$(dirname "$0")/checks.sh"
source "$(dirname "$0")/services.sh"
# Unique names, so that parallel runs and leftovers of a killed run do not meet.
NAME="cloister-img-test-$$-$RANDOM"
IMAGE="localhost/$NAME:v1"
CONTAINERS=()
IMAGES=()
podman_cleanup() {
  [ -n "${KEEP:-}" ] && return
  for c in "${CONTAINERS[@]}"; do podman rm -f "$c" >/dev/null 2>&1; done
  for i in "${IMAGES[@]}"; do podman rmi -f "$i" >/dev/null 2>&1; done
}
trap 'podman_cleanup; cleanup' EXIT
ROOTLESS=()
[ "$(id -u)" = 0 ] || ROOTLESS=(--rootless)

# Markers: none of them may appear in the protected image.
CSV_V1="csv-plaintext-v1-Qz8TwXk3"
CSV_V2="csv-plaintext-v2-Lm4pR7sN"
MAIN_MARK="main-py-source-Hb5eJ2vD"
HELPER_MARK="helper-py-source-Vc9nG6tY"
OLD_MARK="old-txt-plaintext-Rf3kW8qA"
NEW_MARK="new-txt-plaintext-Pe7xC4mU"

# ---- the base image: python3 in one layer, /app in a second, changes to /app in a third ------
B="$T/bundle-base"
umoci init --layout "$T/base" && umoci new --image "$T/base:v1" &&
  umoci unpack "${ROOTLESS[@]}" --image "$T/base:v1" "$B" >/dev/null
check "umoci makes an empty image" test $? = 0
R="$B/rootfs"
PYREAL=$(readlink -f "$PYTHON")
STDLIB=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
mkdir -p "$R/usr/bin" "$R/etc" "$R/tmp" "$R/root" "$R/opt/vendor" "$R$STDLIB"
chmod 1777 "$R/tmp"
cp "$PYREAL" "$R$PYREAL"
[ "$PYREAL" = "$PYTHON" ] || ln -s "$(basename "$PYREAL")" "$R$PYTHON"
# The shared libraries and the loader, each at the path ldd names (a copy of the file it resolves to).
for lib in $(ldd "$PYREAL" | grep -oE '/[^ ]+'); do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
# The standard library without what a small program does not import (tests, IDLE, build files,
# caches, Debian's sitecustomize that points out of the image): a few MB.
tar -C "$STDLIB" --exclude=__pycache__ --exclude='config-3*' --exclude=test --exclude=tests \
  --exclude=idlelib --exclude=lib2to3 --exclude=tkinter --exclude=turtledemo --exclude=ensurepip \
  --exclude=distutils --exclude=pydoc_data --exclude=asyncio --exclude=unittest \
  --exclude=multiprocessing --exclude=email --exclude=sitecustomize.py --exclude=EXTERNALLY-MANAGED \
  -cf - . | tar -C "$R$STDLIB" -xf -
echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
echo "root:x:0:" >"$R/etc/group"
echo "a file that image protect must leave alone" >"$R/opt/vendor/README"
"$PYTHON" -c 'print("x" * 100000)' >"$R/opt/vendor/big.txt"
chmod 0640 "$R/opt/vendor/big.txt"
umoci repack "${ROOTLESS[@]}" --refresh-bundle --image "$T/base:v1" "$B" >/dev/null
check "the first layer (python3) is made" test $? = 0

mkdir -p "$R/app/lib"
cat >"$R/app/main.py" <<PY
# $MAIN_MARK
import csv, json, os, sys
sys.path.insert(0, "/app/lib")
import helper
with open("data.csv", newline="") as f:
    rows = list(csv.DictReader(f))
runs = 1
if os.path.exists("/app/runs.txt"):
    runs = int(open("/app/runs.txt").read()) + 1
with open("/app/runs.txt", "w") as f:
    f.write(str(runs))
result = {"rows": len(rows), "total": sum(int(r["amount"]) for r in rows), "first": rows[0]["name"]}
with open("/app/result.json", "w") as f:
    json.dump(result, f)
print("result", json.dumps(json.load(open("/app/result.json")), sort_keys=True))
print("helper", helper.greet())
print("mode", os.environ.get("APP_MODE", "<unset>"))
print("token", os.environ.get("SECRET_TOKEN", "<unset>"))
print("cwd", os.getcwd())
print("new", open("new.txt").read().strip())
print("old", os.path.exists("old.txt"))
print("runs", runs)
PY
cat >"$R/app/lib/helper.py" <<PY
# $HELPER_MARK
def greet():
    return "hello from the helper"
PY
printf 'name,amount\n%s,1\nb,2\nc,3\n' "$CSV_V1" >"$R/app/data.csv"
echo "$OLD_MARK" >"$R/app/old.txt"
umoci repack "${ROOTLESS[@]}" --refresh-bundle --image "$T/base:v1" "$B" >/dev/null
check "the second layer (/app) is made" test $? = 0
printf 'name,amount\n%s,10\nb,20\nc,30\nd,40\n' "$CSV_V2" >"$R/app/data.csv"
rm "$R/app/old.txt"
echo "$NEW_MARK" >"$R/app/new.txt"
umoci repack "${ROOTLESS[@]}" --refresh-bundle --image "$T/base:v1" "$B" >/dev/null
check "the third layer (overwrite, whiteout, new file) is made" test $? = 0
CSV_V2_SIZE=$(stat -c %s "$R/app/data.csv")
umoci config --image "$T/base:v1" --config.entrypoint "$PYTHON" --config.entrypoint /app/main.py \
  --config.workingdir /app --config.env PATH=/usr/bin:/bin --config.env APP_MODE=test
check "the base image's config is set" test $? = 0
check "the base image has three layers" \
  test "$(skopeo inspect "oci:$T/base:v1" 2>/dev/null | json_field '["Layers"].__len__()' 2>/dev/null)" = 3
TOP=$(skopeo inspect "oci:$T/base:v1" 2>/dev/null | json_field '["Layers"][2]' 2>/dev/null)
check "the third layer deletes old.txt with a whiteout" \
  bash -c 'tar -tzf "$1" | grep -qx "app/.wh.old.txt"' _ "$T/base/blobs/sha256/${TOP#sha256:}"

# ---- protect it ---------------------------------------------------------------------------------
"$CLOISTER" identity create --identity "$T/a" >"$T/a.id"
ID_A=$(cat "$T/a.id")
start_cas main
mkdir -p "$T/lasdir"
start_las las1 main "$T/lasdir/las.sock"
# protect [ARGS...]: image protect of the base image into $T/out as img/demo/app, with a secret
# in the environment; the status goes to RC.
protect() {
  "$CLOISTER" image protect --from "oci:$T/base:v1" --to "oci:$T/out:v1" --encrypt /app \
    --session img/demo --service app --cas-key "$main_KEY" --runtime "$RUNTIME" \
    --allow sim --tolerate simulation --session-out "$T/session.yaml" \
    --env 'SECRET_TOKEN=$$CLOISTER::token$$' "$@" >"$T/protect.out" 2>"$T/protect.err"
  RC=$?
}
protect
check "a placeholder naming a secret that is not defined is refused" test "$RC" != 0
check "the refusal names the secret" grep -qw token "$T/protect.err"
check "a refused protect writes no session document" test ! -e "$T/session.yaml"
# An image written anyway would carry a volume whose key nobody has.
check "a refused protect writes no image" bash -c '! skopeo inspect "oci:$1:v1"' _ "$T/out"
rm -rf "$T/out"
protect --secret token:ascii
[ "$RC" = 0 ] || { echo "--- image protect exited $RC:"; cat "$T/protect.err"; }
check "image protect succeeds" test "$RC" = 0
# Nothing below means anything without its output.
[ "$RC" = 0 ] || { finish; exit 1; }
check "the session document is written with mode 0600" test "$(stat -c %a "$T/session.yaml" 2>/dev/null)" = 600

PY_MEASURE=$("$CLOISTER" measure "$PYREAL" | awk '{print $1}')
RT_MEASURE=$("$CLOISTER" measure "$RUNTIME" | awk '{print $1}')
# session_has EXPR: a Python expression on the parsed document `s` (its one service `v`) is true.
session_has() {
  "$PYTHON" - "$T/session.yaml" "$1" <<'PY'
import sys, yaml
s = yaml.safe_load(open(sys.argv[1]))
v = s["services"][0]
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}
check "the session is named img/demo with one service app" \
  session_has 's["name"] == "img/demo" and len(s["services"]) == 1 and v["name"] == "app"'
check "the service measures python3 (resolved in the image) and the runtime" \
  session_has "sorted(x.lower() for x in v['measurements']) == sorted(['$PY_MEASURE', '$RT_MEASURE'])"
check "the command is the image's entrypoint" \
  session_has "(v['command'] if isinstance(v['command'], list) else v['command'].split()) == ['$PYTHON', '/app/main.py']"
check "the environment is the image's plus --env" \
  session_has "v['environment'] == {'PATH': '/usr/bin:/bin', 'APP_MODE': 'test', 'SECRET_TOKEN': '\$\$CLOISTER::token\$\$'}"
check "pwd is the image's WorkingDir" session_has 'v["pwd"] == "/app"'
check "/app is mounted from the volume app" session_has 'v["mounts"] == [{"volume": "app", "path": "/app"}]'
check "the volume has a key and a first tag" \
  session_has 'len(s["volumes"]) == 1 and s["volumes"][0]["name"] == "app" and len(str(s["volumes"][0]["key"])) == 64 and len(str(s["volumes"][0]["tag"])) == 64'
check "the attestation policy is --allow/--tolerate" \
  session_has 's["security"]["attestation"]["allowed"] == ["sim"] and s["security"]["attestation"]["tolerate"] == ["simulation"]'
VKEY=$("$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["volumes"][0]["key"])' "$T/session.yaml" 2>/dev/null)
VTAG=$("$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["volumes"][0]["tag"])' "$T/session.yaml" 2>/dev/null)

check "the session defines the secret for the placeholder" \
  session_has 's["secrets"] == [{"name": "token", "kind": "ascii"}]'
"$CLOISTER" session create --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" -f "$T/session.yaml" \
  --identity "$T/a" >"$T/create.out" 2>&1
RC=$?
[ "$RC" = 0 ] || { echo "--- session create exited $RC:"; cat "$T/create.out"; }
check "the CAS accepts the session" test "$RC" = 0
volumes() { "$CLOISTER" session volumes img/demo --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" --identity "$T/a"; }
volume_at_cas() { volumes 2>/dev/null | awk -v f="$1" '$1 == "app" {print $f}'; }
check "the CAS expects the volume at the image's tag" test "$(volume_at_cas 3)" = "${VTAG:-none}"

# ---- the output image ---------------------------------------------------------------------------
check "skopeo inspects the output" skopeo inspect "oci:$T/out:v1"
umoci unpack "${ROOTLESS[@]}" --image "$T/out:v1" "$T/bundle-out" >/dev/null 2>"$T/unpack.err"
RC=$?
[ "$RC" = 0 ] || { echo "--- umoci unpack of the output exited $RC:"; cat "$T/unpack.err"; }
check "umoci unpacks the output (all digests verified)" test "$RC" = 0
umoci unpack "${ROOTLESS[@]}" --image "$T/base:v1" "$T/bundle-orig" >/dev/null
check "umoci unpacks the original" test $? = 0
O="$T/bundle-orig/rootfs"
P="$T/bundle-out/rootfs"
# tree_list DIR: every entry outside /app and /opt/cloister with its type, mode, owner,
# modification time and link target, then a hash of each file's content.
tree_list() {
  (cd "$1" && find . \( -path ./app -o -path ./opt/cloister \) -prune -o -printf '%p %y %m %U %G %Ts %l\n' |
    LC_ALL=C sort &&
    find . \( -path ./app -o -path ./opt/cloister \) -prune -o -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum)
}
tree_list "$O" >"$T/orig.list" 2>&1
tree_list "$P" >"$T/out.list" 2>&1
check "the original's tree is listed" test "$(grep -c python "$T/orig.list")" -gt 100
check "outside /app and /opt/cloister every file, mode, owner and time is as in the original" \
  cmp "$T/orig.list" "$T/out.list"
check "/app holds a Cloister volume" test -f "$P/app/cloister-volume"
check "/app holds no plaintext file" test ! -e "$P/app/main.py" -a ! -e "$P/app/data.csv" -a ! -e "$P/app/lib"
check "the runtime in the image is the one given" cmp "$RUNTIME" "$P/opt/cloister/lib/libcloister-runtime.so"
CONFIG_ENV=$(skopeo inspect --config "oci:$T/out:v1" 2>/dev/null | json_field '["config"]["Env"]' 2>/dev/null)
for kv in "LD_PRELOAD=/opt/cloister/lib/libcloister-runtime.so" "CLOISTER_CONFIG_ID=img/demo/app" \
  "CLOISTER_CAS_KEY=$main_KEY" "CLOISTER_LAS_SOCKET=/run/cloister/las.sock"; do
  check "the config sets $kv" grep -qF "'$kv'" <<<"$CONFIG_ENV"
done

# blob_text FILE: a blob's bytes, decompressed if it is gzip or zstd.
blob_text() {
  case "$(od -An -tx1 -N4 "$1" | tr -d ' \n')" in
    1f8b*) gzip -dc "$1" ;;
    28b52ffd) zstd -dcq "$1" ;;
    *) cat "$1" ;;
  esac
}
# The markers as extended regular expressions; a name counts only as a whole name (python3 holds
# "import_helper.py").
printf '%s\n' "$CSV_V1" "$CSV_V2" "$MAIN_MARK" "$HELPER_MARK" "$OLD_MARK" "$NEW_MARK" \
  "hello from the helper" 'csv\.DictReader' >"$T/markers"
for name in helper.py data.csv old.txt new.txt; do
  echo "(^|[^[:alnum:]_])${name//./\\.}" >>"$T/markers"
done
# leaks DIR: how many files under DIR (blobs, or the members of an archive) hold a marker, after
# decompression; prints what each holds. A file that does not decompress counts: it was not seen.
leaks() {
  local n=0 f
  while IFS= read -r -d '' f; do
    if ! blob_text "$f" >"$T/blob"; then
      n=$((n + 1))
      echo "--- ${f#"$T"/} does not decompress" >&2
    elif grep -qaE -f "$T/markers" "$T/blob"; then
      n=$((n + 1))
      echo "--- ${f#"$T"/} holds: $(grep -aoE -f "$T/markers" "$T/blob" | sort -u | tr '\n' ' ')" >&2
    fi
  done < <(find "$1" -type f -print0)
  rm -f "$T/blob"
  echo "$n"
}
blobs=$(find "$T/out/blobs" -type f | wc -l)
check "the output has blobs" test "$blobs" -ge 4
check "no blob of the output (layers, config, manifest) holds a plaintext byte or name of /app" \
  test "$(leaks "$T/out/blobs")" = 0
check "the scan finds the markers in the original's layers (it sees plaintext where there is some)" \
  test "$(leaks "$T/base/blobs" 2>/dev/null)" -ge 2

printf 'cloister-volume-key-v1:%s\n' "$VKEY" >"$T/app.key"
chmod 600 "$T/app.key"
"$CLOISTER" volume ls "$P/app" --key-file "$T/app.key" --tag "$VTAG" >"$T/ls.out" 2>&1
RC=$?
[ "$RC" = 0 ] || { echo "--- volume ls exited $RC:"; cat "$T/ls.out"; }
check "the volume opens with the key and at the tag of the session" test "$RC" = 0
check "the volume holds main.py" grep -qE '^- [0-7]{4} +[0-9]+ /main\.py$' "$T/ls.out"
check "the volume holds lib/helper.py" grep -qE '^- [0-7]{4} +[0-9]+ /lib/helper\.py$' "$T/ls.out"
check "the volume holds the third layer's data.csv" grep -qE "^- [0-7]{4} +$CSV_V2_SIZE /data\\.csv\$" "$T/ls.out"
check "the volume holds new.txt" grep -qE '^- [0-7]{4} +[0-9]+ /new\.txt$' "$T/ls.out"
check "the volume does not hold the deleted old.txt" bash -c "! grep -q old.txt '$T/ls.out'"
check "the volume holds nothing else" test "$(grep -c . "$T/ls.out")" = 5

# ---- the archive forms: oci-archive in, docker-archive out ----------------------------------------
skopeo copy "oci:$T/base:v1" "oci-archive:$T/base.tar:v1" >/dev/null 2>&1
"$CLOISTER" image protect --from "oci-archive:$T/base.tar:v1" --to "docker-archive:$T/out.tar:localhost/$NAME-archive:v1" \
  --encrypt /app --session img/archive --service app --cas-key "$main_KEY" --runtime "$RUNTIME" \
  --allow sim --tolerate simulation --session-out "$T/session-archive.yaml" >"$T/protect-archive.out" 2>&1
RC=$?
[ "$RC" = 0 ] || { echo "--- image protect oci-archive to docker-archive exited $RC:"; cat "$T/protect-archive.out"; }
check "image protect reads an oci-archive and writes a docker-archive" test "$RC" = 0
check "skopeo inspects the docker-archive" skopeo inspect "docker-archive:$T/out.tar"
mkdir -p "$T/out-archive"
tar -C "$T/out-archive" -xf "$T/out.tar" 2>/dev/null
check "the docker-archive names the image" grep -q "localhost/$NAME-archive:v1" "$T/out-archive/manifest.json"
check "nothing in the docker-archive holds a plaintext byte or name of /app" \
  test "$(leaks "$T/out-archive")" = 0

# ---- --upload: the session goes straight to the CAS ------------------------------------------------
"$CLOISTER" image protect --from "oci:$T/base:v1" --to "oci:$T/out-up:v1" --encrypt /app \
  --session img/uploaded --service app --cas-key "$main_KEY" --runtime "$RUNTIME" \
  --allow sim --tolerate simulation --secret token:ascii --env 'SECRET_TOKEN=$$CLOISTER::token$$' \
  --upload --cas "127.0.0.1:$main_API" --identity "$T/a" >"$T/protect-up.out" 2>&1
RC=$?
[ "$RC" = 0 ] || { echo "--- image protect --upload exited $RC:"; cat "$T/protect-up.out"; }
check "image protect --upload succeeds" test "$RC" = 0
check "it reports the session it created" grep -q '^created session img/uploaded: version 1' "$T/protect-up.out"
UP_TAG=$(sed -n 's/^volume app at \/app .*, tag \([0-9a-f]\{64\}\)$/\1/p' "$T/protect-up.out")
UP_VOLS=$("$CLOISTER" session volumes img/uploaded --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" \
  --identity "$T/a" 2>/dev/null | awk '$1 == "app" {print $3}')
check "the CAS holds the uploaded session's volume at the tag protect printed" \
  test -n "$UP_TAG" -a "$UP_VOLS" = "$UP_TAG"
"$CLOISTER" image protect --from "oci:$T/base:v1" --to "oci:$T/out-up2:v1" --encrypt /app \
  --session img/uploaded2 --service app --cas-key "$main_KEY" --runtime "$RUNTIME" >"$T/protect-nokeys.out" 2>&1
RC=$?
check "without --session-out or --upload protect refuses (the keys would be lost)" \
  bash -c "[ '$RC' = 1 ] && grep -q 'session-out' '$T/protect-nokeys.out' && [ ! -e '$T/out-up2' ]"

# ---- podman ---------------------------------------------------------------------------------------
PODMAN_RUN=(podman run --pull never --runtime runc --cgroup-manager cgroupfs --ulimit nofile=1024:1024
  --ulimit nproc=1024:1024 --network none)
podman_skip=""
[ "$(id -u)" = 0 ] || podman_skip="not root (the LAS must run as root to measure processes in containers)"
if [ -z "$podman_skip" ]; then
  # Can this machine run a container at all? The unprotected base image must.
  IMAGES+=("localhost/$NAME-base:v1")
  CONTAINERS+=("$NAME-base")
  skopeo copy "oci:$T/base:v1" "containers-storage:localhost/$NAME-base:v1" >/dev/null 2>"$T/podman.err"
  "${PODMAN_RUN[@]}" --rm --name "$NAME-base" "localhost/$NAME-base:v1" >"$T/plain.out" 2>>"$T/podman.err"
  RC=$?
  if [ "$RC" != 0 ] || ! grep -qx "helper hello from the helper" "$T/plain.out"; then
    podman_skip="podman cannot run the unprotected base image here (exit $RC: $(tail -1 "$T/podman.err"))"
  fi
fi
if [ -n "$podman_skip" ]; then
  echo "SKIP: podman part: $podman_skip"
else
  check "the unprotected base image runs main.py under podman, without a secret" \
    bash -c "grep -qxF 'result {\"first\": \"$CSV_V2\", \"rows\": 4, \"total\": 100}' '$T/plain.out' &&
      grep -qx 'token <unset>' '$T/plain.out'"
  IMAGES+=("localhost/$NAME-archive:v1")
  podman load -i "$T/out.tar" >/dev/null 2>&1
  check "podman loads the docker-archive under the name given to --to" podman image exists "localhost/$NAME-archive:v1"
  IMAGES+=("$IMAGE")
  skopeo copy "oci:$T/out:v1" "containers-storage:$IMAGE" >/dev/null 2>"$T/copy.err"
  RC=$?
  [ "$RC" = 0 ] || { echo "--- skopeo copy into containers-storage exited $RC:"; cat "$T/copy.err"; }
  check "the protected image loads into podman's storage" test "$RC" = 0
  # run_app OUT ERR PODMAN-ARGS...: the status goes to RC.
  run_app() {
    local out="$1" err="$2"
    shift 2
    "$@" >"$out" 2>"$err"
    RC=$?
  }
  C1="$NAME-1"
  CONTAINERS+=("$C1")
  run_app "$T/run1.out" "$T/run1.err" "${PODMAN_RUN[@]}" --name "$C1" -v "$T/lasdir:/run/cloister" "$IMAGE"
  [ "$RC" = 0 ] || { echo "--- podman run exited $RC:"; cat "$T/run1.err"; }
  check "the protected image runs under podman" test "$RC" = 0
  check "it reads the newest data.csv from the volume" \
    grep -qxF "result {\"first\": \"$CSV_V2\", \"rows\": 4, \"total\": 100}" "$T/run1.out"
  check "it imports the helper from the volume" grep -qx "helper hello from the helper" "$T/run1.out"
  check "it has the image's environment" grep -qx "mode test" "$T/run1.out"
  check "it runs in the image's working directory" grep -qx "cwd /app" "$T/run1.out"
  check "it sees new.txt and not the deleted old.txt" \
    bash -c "grep -qx 'new $NEW_MARK' '$T/run1.out' && grep -qx 'old False' '$T/run1.out'"
  check "it writes to the volume" grep -qx "runs 1" "$T/run1.out"
  TOKEN=$(sed -n 's/^token //p' "$T/run1.out")
  check "it receives the secret from the session" \
    bash -c "[ \${#1} = 32 ] && [[ \$1 != *CLOISTER* ]]" _ "$TOKEN"
  "$CLOISTER" session attestations img/demo --json --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" \
    --identity "$T/a" >"$T/attestations.json" 2>&1
  check "the CAS granted the start on the LAS's measurement of python3 and the runtime in the container" \
    "$PYTHON" -c 'import json, sys
a = json.load(open(sys.argv[1]))["attestations"]
sys.exit(0 if any(r["granted"] and r["executable"] == sys.argv[2] and r["runtime"] == sys.argv[3]
                  and r["pid"] > 0 for r in a) else 1)' "$T/attestations.json" "$PY_MEASURE" "$RT_MEASURE"
  SEQ=$(volume_at_cas 2)
  check "the CAS recorded the container's commits to the volume" test "${SEQ//[^0-9]/}" -ge 1
  # The container's disk: what the program wrote is encrypted there too.
  podman cp "$C1:/app" "$T/app-after" >/dev/null 2>&1
  check "after the run the container's /app is still a volume" test -f "$T/app-after/cloister-volume"
  check "after the run the container's /app holds no plaintext" \
    bash -c '! grep -rqaF -e "$1" -e result.json -e runs.txt -e "$2" "$3"' _ "$CSV_V2" "${TOKEN:-none}" "$T/app-after"

  run_app "$T/run2.out" "$T/run2.err" podman start -a "$C1"
  [ "$RC" = 0 ] || { echo "--- podman start exited $RC:"; cat "$T/run2.err"; }
  check "the same container starts again" test "$RC" = 0
  check "it continues from its own last state" grep -qx "runs 2" "$T/run2.out"
  check "it receives the same secret" grep -qxF "token $TOKEN" "$T/run2.out"

  # A fresh container starts from the image's volume, whose tag the CAS has moved past.
  C2="$NAME-2"
  CONTAINERS+=("$C2")
  run_app "$T/run3.out" "$T/run3.err" "${PODMAN_RUN[@]}" --name "$C2" -v "$T/lasdir:/run/cloister" "$IMAGE"
  check "a fresh container from the image is refused as a rollback (exit 70)" test "$RC" = 70
  check "the refusal is one line from the runtime" \
    bash -c "[ \$(wc -l <'$T/run3.err') = 1 ] && grep -q '^cloister-runtime: ' '$T/run3.err'"
  check "the refused container ran nothing of the program" test ! -s "$T/run3.out"

  C3="$NAME-3"
  CONTAINERS+=("$C3")
  run_app "$T/run4.out" "$T/run4.err" "${PODMAN_RUN[@]}" --name "$C3" "$IMAGE"
  check "without the LAS the image does not start (exit 70)" test "$RC" = 70
  check "the refusal without the LAS is one line from the runtime" \
    bash -c "[ \$(wc -l <'$T/run4.err') = 1 ] && grep -q '^cloister-runtime: ' '$T/run4.err'"
  check "without the LAS main.py did not run" test ! -s "$T/run4.out"

  # The image loaded with `podman load` from the docker-archive runs too, once its session is in the CAS.
  "$CLOISTER" session create --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" -f "$T/session-archive.yaml" \
    --identity "$T/a" >/dev/null 2>&1
  check "the CAS accepts the docker-archive's session" test $? = 0
  C4="$NAME-4"
  CONTAINERS+=("$C4")
  run_app "$T/run5.out" "$T/run5.err" "${PODMAN_RUN[@]}" --name "$C4" -v "$T/lasdir:/run/cloister" \
    "localhost/$NAME-archive:v1"
  [ "$RC" = 0 ] || { echo "--- podman run of the loaded docker-archive exited $RC:"; cat "$T/run5.err"; }
  check "the image podman loaded from the docker-archive runs and reads its volume" \
    bash -c "[ '$RC' = 0 ] && grep -qxF 'result {\"first\": \"$CSV_V2\", \"rows\": 4, \"total\": 100}' '$T/run5.out'"
fi

finish
