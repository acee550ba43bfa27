#!/usr/bin/env bash
# End-to-end checks of `cloister identity` through the real binary.
# Usage: identity_test.sh PATH-TO-cloister
set -u
CLOISTER="$1"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/checks.sh"

id=$("$CLOISTER" identity create --identity "$T/id")
check "create prints a 64-hex id" grep -Eq '^[0-9a-f]{64}$' <<<"$id"
check "key file is mode 0600" test "$(stat -c %a "$T/id/identity.key")" = 600
check "identity directory is mode 0700" test "$(stat -c %a "$T/id")" = 700
check "show prints the same id" test "$("$CLOISTER" identity show --identity "$T/id")" = "$id"
check "the id is the SHA-256 of the public key (DER)" test \
  "$(openssl pkey -in "$T/id/identity.key" -pubout -outform DER | sha256sum | cut -d' ' -f1)" = "$id"
check "the certificate is self-signed and verifies" openssl verify -CAfile "$T/id/identity.crt" "$T/id/identity.crt"
check "--json gives the id" grep -q "\"identity\":\"$id\"" <<<"$("$CLOISTER" identity show --identity "$T/id" --json)"
before=$(sha256sum "$T/id/identity.key")
"$CLOISTER" identity create --identity "$T/id" >/dev/null 2>"$T/err"
rc=$?
check "a second create fails with exit 1" test "$rc" = 1
check "and says so in one line" test "$(wc -l <"$T/err")" = 1
check "and leaves the key untouched" test "$(sha256sum "$T/id/identity.key")" = "$before"
"$CLOISTER" identity show --identity "$T/none" >/dev/null 2>&1
check "show without an identity fails" test $? = 1
HOME="$T/home" XDG_CONFIG_HOME="" "$CLOISTER" identity create >/dev/null
check "the default directory is ~/.config/cloister" test -f "$T/home/.config/cloister/identity.key"
"$CLOISTER" identity create --identity "$T/x" --days 0 >/dev/null 2>&1
check "--days 0 is a usage error" test $? = 2

finish
