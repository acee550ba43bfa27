#!/usr/bin/env bash
# End-to-end checks of `cloister measure` through the real binary.
# Usage: measure_test.sh PATH-TO-cloister
set -u
CLOISTER="$1"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/checks.sh"

head -c 3000000 /dev/urandom >"$T/prog"
out=$("$CLOISTER" measure "$T/prog")
check "measure prints the SHA-256 of the file and its name" test "$out" = "$(sha256sum "$T/prog" | cut -d' ' -f1)  $T/prog"
check "it measures the program the way sha256sum does for a real binary" test \
  "$("$CLOISTER" measure "$CLOISTER" | cut -d' ' -f1)" = "$(sha256sum "$CLOISTER" | cut -d' ' -f1)"
: >"$T/empty"
check "an empty file has the SHA-256 of nothing" test "$("$CLOISTER" measure "$T/empty" | cut -d' ' -f1)" = \
  e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
check "--json gives file, sha256 and size" python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d[0]["size"] == 3000000 and len(d[0]["sha256"]) == 64' <<<"$("$CLOISTER" measure --json "$T/prog")"
"$CLOISTER" measure "$T" >/dev/null 2>"$T/err"
check "a directory is refused with exit 1" test $? = 1
check "... in one line" test "$(wc -l <"$T/err")" = 1
"$CLOISTER" measure "$T/missing" >/dev/null 2>&1
check "a missing file exits 1" test $? = 1
"$CLOISTER" measure >/dev/null 2>&1
check "no file is a usage error (exit 2)" test $? = 2

finish
