#!/usr/bin/env bash
# End-to-end test of `cloister volume ...` through the real binary.
#
#   cli_test.sh <path-to-cloister-binary>
#
# Works in a fresh temporary directory that is removed on exit. Prints one
# line per check and, last, "N passed, M failed"; exits non-zero if any
# check failed. Exit codes under test (docs/cli.md): 0 ok, 1 other error,
# 2 usage, 3 integrity failure, 4 stale (rolled back).
set -u

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 <path-to-cloister-binary>" >&2
  exit 2
fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")

T=$(mktemp -d "${TMPDIR:-/tmp}/cloister-cli-test.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
umask 022

PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
not_ok() {
  FAILED=$((FAILED + 1))
  echo "FAIL - $1"
  if [ -s "$T/err" ]; then sed 's/^/       stderr: /' "$T/err" | head -5; fi
}
# check DESCRIPTION COMMAND...: passes if the command succeeds.
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# run CMD...: runs the binary with the arguments, stdout to $T/out, stderr to
# $T/err, exit code in $RC. Everything printed is also kept in $T/all.log
# (to look for the key in it at the end).
RC=0
run() {
  "$BIN" "$@" >"$T/out" 2>"$T/err"
  RC=$?
  cat "$T/out" "$T/err" >>"$T/all.log"
}
# Same, with standard input from a file.
run_in() {
  local in=$1
  shift
  "$BIN" "$@" <"$in" >"$T/out" 2>"$T/err"
  RC=$?
  cat "$T/out" "$T/err" >>"$T/all.log"
}
rc_is() { [ "$RC" -eq "$1" ]; }
is_tag() { grep -Eq '^[0-9a-f]{64}$' "$T/out" && [ "$(wc -l <"$T/out")" -eq 1 ]; }
# A failure report: exactly one line, "cloister: ...", naming the volume,
# and nothing that looks like a crash or a stack trace.
one_error_line_naming() {
  [ "$(wc -l <"$T/err")" -eq 1 ] &&
    grep -q '^cloister: ' "$T/err" &&
    grep -qF -- "$1" "$T/err" &&
    ! grep -Eqi 'terminate called|abort|core dumped|stack|backtrace|exception|#[0-9]+ +0x' "$T/err"
}
# Flips one bit of the byte at OFFSET of FILE, in place.
flip_byte() {
  local file=$1 off=$2 old new
  old=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
  new=$((old ^ 0x10))
  printf '%b' "\\$(printf '%03o' "$new")" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

CONTENT_MARKER=cloister-content-marker-5f1d8e
NAME_MARKER=cloister-name-marker-a7c2b9
DIR_MARKER=cloister-dirname-marker-3e9f44

# ---- a sample tree -----------------------------------------------------------
SRC=$T/src
mkdir -p "$SRC/docs/nested/deeper" "$SRC/$DIR_MARKER" "$SRC/emptydir"
echo "top-level $CONTENT_MARKER" >"$SRC/readme.txt"
for i in 1 2 3; do echo "line $i $CONTENT_MARKER" >>"$SRC/docs/nested/deeper/notes.txt"; done
printf 'secret %s\n' "$CONTENT_MARKER" >"$SRC/$DIR_MARKER/$NAME_MARKER"
: >"$SRC/docs/empty-file"
ln -s nested/deeper/notes.txt "$SRC/docs/link-to-notes"
chmod 0600 "$SRC/docs/nested/deeper/notes.txt"
chmod 0755 "$SRC/readme.txt"
# Sorts last, so a damaged chunk in it is met after other files were
# extracted (the all-or-nothing case of unseal).
head -c $((5 * 1024 * 1024)) /dev/urandom >"$SRC/zz-random.bin"

VOL=$T/vol
KEY=$T/volume.key

# ---- seal ---------------------------------------------------------------------
run volume seal "$SRC" "$VOL" --key-file "$KEY"
check "seal exits 0" rc_is 0
check "seal prints the tag (64 hex digits)" is_tag
TAG1=$(cat "$T/out")
check "seal creates the key file" test -f "$KEY"
check "the key file has mode 0600" test "$(stat -c %a "$KEY")" = 600
KEY_HEX=$(sed -n 's/^cloister-volume-key-v1://p' "$KEY")
check "the key file holds a 32-byte key" test "${#KEY_HEX}" -eq 64

run volume seal "$SRC" "$T/vol-json" --key-file "$KEY" --json
check "seal --json exits 0" rc_is 0
check "seal --json prints {\"tag\": <64 hex>}" grep -Eq '^\{ *"tag" *: *"[0-9a-f]{64}" *\}$' "$T/out"

run volume seal "$SRC" "$VOL" --key-file "$KEY"
check "seal refuses an existing volume" test "$RC" -ne 0
check "the refused seal left the volume intact" test -f "$VOL/cloister-volume"

# ---- nothing readable on disk ---------------------------------------------------
check "the volume holds no file contents in the clear" bash -c "! grep -rqaF -- '$CONTENT_MARKER' '$VOL'"
check "the volume holds no file name (contents or names)" bash -c "! grep -rqaF -- '$NAME_MARKER' '$VOL' && ! find '$VOL' -name '*$NAME_MARKER*' | grep -q ."
check "the volume holds no directory name" bash -c "! grep -rqaF -- '$DIR_MARKER' '$VOL' && ! find '$VOL' -name '*$DIR_MARKER*' | grep -q ."
check "the volume holds no symlink target" bash -c "! grep -rqaF -- 'nested/deeper/notes.txt' '$VOL'"
if command -v python3 >/dev/null; then
  check "the volume does not contain any 64-byte piece of the random file" python3 - "$SRC/zz-random.bin" "$VOL" <<'EOF'
import os, sys
src = open(sys.argv[1], "rb").read()
pieces = [src[off:off + 64] for off in range(0, len(src) - 64, 256 * 1024)]
for root, _, files in os.walk(sys.argv[2]):
    for name in files:
        data = open(os.path.join(root, name), "rb").read()
        assert not any(p in data for p in pieces), name
EOF
fi

# Authenticated-only volumes store contents in the clear, but not names.
run volume seal "$SRC" "$T/vol-auth" --key-file "$KEY" --authenticated-only
check "seal --authenticated-only exits 0" rc_is 0
check "an authenticated-only volume stores contents in the clear" grep -rqaF -- "$CONTENT_MARKER" "$T/vol-auth"
check "an authenticated-only volume hides file names" bash -c "! grep -rqaF -- '$NAME_MARKER' '$T/vol-auth'"
AUTH_OBJ=$(grep -rlaF -- "$CONTENT_MARKER" "$T/vol-auth/objects" | head -1)
flip_byte "$AUTH_OBJ" 3
run volume verify "$T/vol-auth" --key-file "$KEY"
check "a changed cleartext byte in an authenticated-only volume exits 3" rc_is 3

# ---- ls, cat, unseal ---------------------------------------------------------------
run volume ls "$VOL" --key-file "$KEY"
check "ls exits 0" rc_is 0
check "ls lists a nested file" grep -q ' /docs/nested/deeper/notes.txt$' "$T/out"
check "ls lists the marker-named file" grep -qF "/$DIR_MARKER/$NAME_MARKER" "$T/out"
check "ls shows the symlink and its target" grep -q '^l .* /docs/link-to-notes -> nested/deeper/notes.txt$' "$T/out"
check "ls shows the empty file with size 0" grep -Eq '^- [0-7]{4} +0 /docs/empty-file$' "$T/out"
check "ls shows the 5 MiB file's size" grep -Eq '^- [0-7]{4} +5242880 /zz-random.bin$' "$T/out"
check "ls shows the empty directory" grep -q '^d .* /emptydir$' "$T/out"

run volume ls "$VOL" --key-file "$KEY" --json
check "ls --json exits 0" rc_is 0
if command -v python3 >/dev/null; then
  check "ls --json is JSON with the tag and every entry" python3 - "$T/out" "$TAG1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
paths = {e["path"]: e for e in j["entries"]}
assert j["tag"] == sys.argv[2], j["tag"]
assert paths["/zz-random.bin"]["size"] == 5 * 1024 * 1024
assert paths["/docs/link-to-notes"]["type"] == "symlink"
assert paths["/docs/link-to-notes"]["target"] == "nested/deeper/notes.txt"
assert paths["/docs/nested"]["type"] == "dir"
assert paths["/docs/empty-file"]["size"] == 0
assert paths["/docs/nested/deeper/notes.txt"]["mode"] == 0o600
EOF
else
  check "ls --json has the tag" grep -q "\"tag\": \"$TAG1\"" "$T/out"
fi

run volume cat "$VOL" /docs/nested/deeper/notes.txt --key-file "$KEY"
check "cat exits 0" rc_is 0
check "cat prints the file's contents" cmp -s "$T/out" "$SRC/docs/nested/deeper/notes.txt"
run volume cat "$VOL" /zz-random.bin --key-file "$KEY"
check "cat of the 5 MiB file is byte-exact" cmp -s "$T/out" "$SRC/zz-random.bin"
run volume cat "$VOL" /no/such/file --key-file "$KEY"
check "cat of a missing file exits 1" rc_is 1

run volume unseal "$VOL" "$T/out1" --key-file "$KEY"
check "unseal exits 0" rc_is 0
check "unseal reproduces the tree (diff -r)" diff -r --no-dereference "$SRC" "$T/out1"
check "unseal keeps the symlink a symlink" test "$(readlink "$T/out1/docs/link-to-notes")" = nested/deeper/notes.txt
check "unseal keeps permission bits" test "$(stat -c %a "$T/out1/docs/nested/deeper/notes.txt")" = 600
check "unseal keeps the empty directory" test -d "$T/out1/emptydir"
run volume unseal "$VOL" "$T/out1" --key-file "$KEY"
check "unseal refuses a non-empty output directory" test "$RC" -ne 0

# ---- put, rm, tag, verify ------------------------------------------------------------
printf 'put via stdin %s\n' "$CONTENT_MARKER" >"$T/put-input"
run_in "$T/put-input" volume put "$VOL" new/deeply/nested/put.txt --key-file "$KEY"
check "put exits 0" rc_is 0
check "put prints a tag" is_tag
TAG2=$(cat "$T/out")
check "put changes the tag" test "$TAG2" != "$TAG1"
run volume cat "$VOL" /new/deeply/nested/put.txt --key-file "$KEY"
check "cat returns what put stored" cmp -s "$T/out" "$T/put-input"
check "put did not store its contents in the clear" bash -c "! grep -rqaF -- 'put via stdin' '$VOL'"

run volume rm "$VOL" /readme.txt --key-file "$KEY"
check "rm exits 0" rc_is 0
check "rm prints a tag" is_tag
TAG3=$(cat "$T/out")
check "rm changes the tag" test "$TAG3" != "$TAG2"
run volume ls "$VOL" --key-file "$KEY"
check "ls no longer lists the removed file" bash -c "! grep -q ' /readme.txt$' '$T/out'"
check "ls lists the put file" grep -q ' /new/deeply/nested/put.txt$' "$T/out"
run volume rm "$VOL" /emptydir --key-file "$KEY"
check "rm of an empty directory exits 0" rc_is 0
TAG3=$(cat "$T/out")

run volume tag "$VOL" --key-file "$KEY"
check "tag exits 0" rc_is 0
check "tag prints the last commit's tag" test "$(cat "$T/out")" = "$TAG3"
run volume tag "$VOL" --key-file "$KEY" --json
check "tag --json prints {\"tag\": ...}" grep -Eq "^\{ *\"tag\" *: *\"$TAG3\" *\}$" "$T/out"

run volume verify "$VOL" --key-file "$KEY"
check "verify exits 0" rc_is 0
check "verify reports ok" grep -q '^ok: ' "$T/out"
run volume verify "$VOL" --key-file "$KEY" --json
check "verify --json says ok" grep -Eq '"ok": *true' "$T/out"
check "verify --json names format version 3" grep -Eq '"format_version": *3' "$T/out"

# ---- expected tags and rollback --------------------------------------------------------
run volume ls "$VOL" --key-file "$KEY" --tag "$TAG3"
check "--tag with the current tag works" rc_is 0
run volume cat "$VOL" /new/deeply/nested/put.txt --key-file "$KEY" --tag "$TAG3"
check "cat --tag with the current tag works" rc_is 0
run volume ls "$VOL" --key-file "$KEY" --tag "$(printf '%064d' 0)"
check "--tag with a tag the volume never had exits 4" rc_is 4
check "... with one error line naming the volume" one_error_line_naming "$VOL"

# Rollback: a copy of the whole volume directory taken at one commit, put
# back after a later commit. Every byte of it is authentic, but old.
VOL2=$T/vol2
run volume seal "$SRC" "$VOL2" --key-file "$KEY"
OLD_TAG=$(cat "$T/out")
cp -a "$VOL2" "$T/vol2-old"
run_in "$T/put-input" volume put "$VOL2" /later.txt --key-file "$KEY"
NEW_TAG=$(cat "$T/out")
check "a later commit yields a new tag" test "$NEW_TAG" != "$OLD_TAG"
rm -rf "$VOL2"
cp -a "$T/vol2-old" "$VOL2"
for cmd in ls verify; do
  run volume "$cmd" "$VOL2" --key-file "$KEY" --tag "$NEW_TAG"
  check "$cmd --tag <newer tag> on a replayed old copy exits 4" rc_is 4
  check "... with one error line naming the volume" one_error_line_naming "$VOL2"
done
run volume cat "$VOL2" /later.txt --key-file "$KEY" --tag "$NEW_TAG"
check "cat --tag <newer tag> on a replayed old copy exits 4" rc_is 4
run_in "$T/put-input" volume put "$VOL2" /x --key-file "$KEY" --tag "$NEW_TAG"
check "put --tag <newer tag> on a replayed old copy exits 4" rc_is 4
check "... and did not change the copy" diff -r "$T/vol2-old" "$VOL2"
# Without the expected tag the old copy opens as if nothing happened: this
# is why the CAS keeps the latest tag and the runtime always passes it.
run volume tag "$VOL2" --key-file "$KEY"
check "without --tag the replayed copy opens at its old tag" test "$(cat "$T/out")" = "$OLD_TAG"

# ---- tampering ---------------------------------------------------------------------------
TV=$T/vol-tampered
cp -a "$VOL" "$TV"
BIG=
BIG_SIZE=0
for f in "$TV"/objects/*; do
  case $f in *.m) continue ;; esac
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$BIG_SIZE" ]; then BIG=$(basename "$f") BIG_SIZE=$size; fi
done
check "found the 5 MiB file's data object" test "$(stat -c %s "$TV/objects/$BIG")" -ge $((5 * 1024 * 1024))
flip_byte "$TV/objects/$BIG" 3000000
check "the byte flip changed the object" bash -c "! cmp -s '$TV/objects/$BIG' '$VOL/objects/$BIG'"

run volume cat "$TV" /zz-random.bin --key-file "$KEY"
check "cat of a tampered file exits 3" rc_is 3
check "... with one error line naming the volume, no stack trace" one_error_line_naming "$TV"
run volume cat "$TV" /docs/nested/deeper/notes.txt --key-file "$KEY"
check "cat of an intact file of the tampered volume still works" rc_is 0

run volume verify "$TV" --key-file "$KEY"
check "verify of a tampered volume exits 3" rc_is 3
check "... with one error line naming the volume, no stack trace" one_error_line_naming "$TV"
check "... and does not say ok" bash -c "! grep -q '^ok' '$T/out'"

run volume unseal "$TV" "$T/out-tampered" --key-file "$KEY"
check "unseal of a tampered volume exits 3" rc_is 3
check "... with one error line naming the volume, no stack trace" one_error_line_naming "$TV"
check "... and leaves no partial output directory" test ! -e "$T/out-tampered"
mkdir "$T/out-empty"
run volume unseal "$TV" "$T/out-empty" --key-file "$KEY"
check "unseal into an existing empty directory of a tampered volume exits 3" rc_is 3
check "... and leaves that directory empty" test -z "$(ls -A "$T/out-empty")"

# A damaged header (the volume's MAC) and a wrong key: integrity failures too.
HV=$T/vol-header
cp -a "$VOL" "$HV"
flip_byte "$HV/cloister-volume" 40
run volume ls "$HV" --key-file "$KEY"
check "ls of a volume with a damaged header exits 3" rc_is 3
check "... with one error line naming the volume" one_error_line_naming "$HV"
printf 'cloister-volume-key-v1:%064d\n' 7 >"$T/wrong.key"
chmod 600 "$T/wrong.key"
run volume ls "$VOL" --key-file "$T/wrong.key"
check "the wrong key exits 3" rc_is 3
check "... with one error line naming the volume" one_error_line_naming "$VOL"

# ---- the key --------------------------------------------------------------------------------
cp "$KEY" "$T/open.key"
chmod 644 "$T/open.key"
run volume ls "$VOL" --key-file "$T/open.key"
check "a key file with mode 0644 is refused" rc_is 1
check "... saying why" grep -q '0644' "$T/err"
check "... on one line" test "$(wc -l <"$T/err")" -eq 1
chmod 640 "$T/open.key"
run volume ls "$VOL" --key-file "$T/open.key"
check "a group-readable key file is refused" test "$RC" -ne 0
run volume ls "$VOL" --key-file "$T/missing.key"
check "a missing key file exits 1" rc_is 1

# The key is only ever read from --key-file: no subcommand has an option that
# takes key material, and such options are rejected as usage errors.
HELP_OK=1
for sub in seal unseal ls cat put rm tag verify recover; do
  "$BIN" volume "$sub" --help >"$T/help" 2>&1 || HELP_OK=0
  grep -q -- '--key-file' "$T/help" || HELP_OK=0
  if grep -Eo -- '--[a-z-]+' "$T/help" | grep -Ev '^--(help|key-file|json|tag|authenticated-only|chunk-size|recursive)$' | grep -q .; then
    HELP_OK=0
    echo "       unexpected option in 'volume $sub --help': $(grep -Eo -- '--[a-z-]+' "$T/help" | sort -u | tr '\n' ' ')"
  fi
  if grep -Ei -- '--(key|secret|password|passphrase)([^-]|$)' "$T/help" | grep -q .; then HELP_OK=0; fi
done
check "no subcommand has an option taking a key value (only --key-file)" test "$HELP_OK" -eq 1
check "the key never appears in any output" bash -c "! grep -qF -- '$KEY_HEX' '$T/all.log'"
# (A made-up key: the parser echoes arguments it does not expect.)
FAKE_HEX=$(printf '%064d' 1)
run volume ls "$VOL" --key-file "$KEY" --key "$FAKE_HEX"
check "--key <hex> is a usage error (2)" rc_is 2
run volume ls "$VOL" --key "$FAKE_HEX"
check "a key on the command line instead of --key-file is a usage error (2)" rc_is 2

# ---- bad usage ------------------------------------------------------------------------------------
run
check "no arguments: exit 2" rc_is 2
run volume
check "no volume subcommand: exit 2" rc_is 2
run volume frobnicate "$VOL" --key-file "$KEY"
check "unknown subcommand: exit 2" rc_is 2
run volume seal "$SRC"
check "missing arguments: exit 2" rc_is 2
run volume ls "$VOL"
check "missing --key-file: exit 2" rc_is 2
run volume ls "$VOL" --key-file "$KEY" --no-such-option
check "unknown option: exit 2" rc_is 2
run volume seal "$SRC" "$T/vol-bad" --key-file "$KEY" --chunk-size 1000
check "invalid chunk size: exit 2" rc_is 2
check "... and no volume was left behind" test ! -e "$T/vol-bad/cloister-volume"
run volume seal "$SRC" "$T/vol-bad2" --key-file "$KEY" --chunk-size lots
check "non-numeric chunk size: exit 2" rc_is 2
run volume ls "$VOL" --key-file "$KEY" --tag nothex
check "malformed --tag: exit 2" rc_is 2
run --help
check "--help exits 0" rc_is 0

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
