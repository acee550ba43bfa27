#!/bin/sh
# Checks the built libcloister-runtime.so from the outside:
#  - it exports exactly the symbols of its version script, and depends on
#    nothing but glibc;
#  - it fails closed before main, with one line and status 70, when
#    attestation cannot even begin (a missing or ill-formed CLOISTER_*
#    variable, no LAS at the socket), for a C program and for Python.
# Usage: runtime_library_test.sh LIBRARY VERSION_SCRIPT
set -u
lib=$1
map=$2
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# ---- exports: the names listed under global: in the version script ----
expected=$(sed -n '/global:/,/local:/p' "$map" | tr ' ;' '\n\n' | grep -E '^[A-Za-z_][A-Za-z0-9_]*$' | sort)
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
if [ "$expected" != "$exported" ]; then
  fail "exported symbols differ from $map:"
  echo "$expected" > "${TMPDIR:-/tmp}/runtime_expected.$$"
  echo "$exported" | diff "${TMPDIR:-/tmp}/runtime_expected.$$" - >&2
  rm -f "${TMPDIR:-/tmp}/runtime_expected.$$"
fi

# ---- dependencies: glibc only ----
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for n in $needed; do
  case $n in
    libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | ld-linux*) ;;
    *) fail "depends on $n" ;;
  esac
done

# ---- fail closed before main ----
key=0000000000000000000000000000000000000000000000000000000000000000
out=${TMPDIR:-/tmp}/runtime_library_test.$$
# expect_refusal DESCRIPTION PATTERN ENV... -- COMMAND...
expect_refusal() {
  what=$1
  pattern=$2
  shift 2
  env -i "$@" >"$out.stdout" 2>"$out.stderr"
  status=$?
  if [ "$status" -ne 70 ]; then fail "$what: exit status $status, expected 70"; fi
  if [ -s "$out.stdout" ]; then fail "$what: main ran (stdout: $(cat "$out.stdout"))"; fi
  lines=$(wc -l <"$out.stderr")
  if [ "$lines" -ne 1 ]; then fail "$what: $lines lines on stderr, expected 1: $(cat "$out.stderr")"; fi
  if ! grep -q "^cloister-runtime: .*$pattern" "$out.stderr"; then
    fail "$what: stderr does not match '$pattern': $(cat "$out.stderr")"
  fi
}

expect_refusal "no CLOISTER_CONFIG_ID" "CLOISTER_CONFIG_ID is not set" \
  LD_PRELOAD="$lib" /bin/echo main ran
expect_refusal "ill-formed CLOISTER_CONFIG_ID" "CLOISTER_CONFIG_ID='noservice' is not SESSION/SERVICE" \
  LD_PRELOAD="$lib" CLOISTER_CONFIG_ID=noservice CLOISTER_CAS_ADDR=127.0.0.1:1 CLOISTER_CAS_KEY=$key \
  /bin/echo main ran
expect_refusal "ill-formed CLOISTER_CAS_ADDR" "CLOISTER_CAS_ADDR='localhost' is not host:port" \
  LD_PRELOAD="$lib" CLOISTER_CONFIG_ID=shop/web CLOISTER_CAS_ADDR=localhost CLOISTER_CAS_KEY=$key \
  /bin/echo main ran
expect_refusal "ill-formed CLOISTER_CAS_KEY" "CLOISTER_CAS_KEY is not 64 hex digits" \
  LD_PRELOAD="$lib" CLOISTER_CONFIG_ID=shop/web CLOISTER_CAS_ADDR=127.0.0.1:1 CLOISTER_CAS_KEY=abc \
  /bin/echo main ran
expect_refusal "no LAS" "the LAS at /nonexistent/las.sock is unreachable" \
  LD_PRELOAD="$lib" CLOISTER_CONFIG_ID=shop/web CLOISTER_CAS_ADDR=127.0.0.1:1 CLOISTER_CAS_KEY=$key \
  CLOISTER_LAS_SOCKET=/nonexistent/las.sock /bin/echo main ran
if [ -x /usr/bin/python3 ]; then
  expect_refusal "no LAS, python3" "the LAS at /nonexistent/las.sock is unreachable" \
    LD_PRELOAD="$lib" CLOISTER_CONFIG_ID=shop/web CLOISTER_CAS_ADDR=127.0.0.1:1 CLOISTER_CAS_KEY=$key \
    CLOISTER_LAS_SOCKET=/nonexistent/las.sock /usr/bin/python3 -c 'print("main ran")'
fi
rm -f "$out.stdout" "$out.stderr"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "runtime library checks passed"
