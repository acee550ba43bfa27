#!/usr/bin/env bash
# End-to-end checks of `cloister cas collateral import|list` with the real
# binaries: an administrator imports a directory of the public vectors'
# Intel collateral, the CAS keeps each piece once, says what it skipped,
# refuses other identities, and still holds it all after a restart. Skips,
# saying so, when the vectors are not next to the source tree and
# CLOISTER_TESTDATA does not name them.
# Usage: collateral_test.sh PATH-TO-cloister PATH-TO-cloister-cas SOURCE-DIR
set -u
CLOISTER="$1"
CAS_BIN="$2"
V="${CLOISTER_TESTDATA:-$3/../shared/testdata}/attestation"
if [ ! -f "$V/MANIFEST.md" ]; then
  echo "attestation vectors not found (set CLOISTER_TESTDATA); skipped"
  exit 77
fi
T="$(mktemp -d)"
PIDS=()
source "$(dirname "$0")/checks.sh"
source "$(dirname "$0")/services.sh"

"$CLOISTER" identity create --identity "$T/a" >"$T/a.id"
"$CLOISTER" identity create --identity "$T/b" >/dev/null
ID_A=$(cat "$T/a.id")
start_cas main
CAS=(--cas "127.0.0.1:$main_API" --cas-key "$main_KEY")

# A directory as an operator fills it from a PCCS: two platforms' files side
# by side, names of no importance, one stray file.
mkdir "$T/col"
i=0
for f in tdx_quote.tcbInfo.json tdx_quote.qeIdentity.json tdx_quote.tcbchain.pem tdx_quote.pck_crl.der \
  tdx_quote.root_ca_crl.der tdx_quote.pckcrlchain.pem sgx_quote.tcbInfo.json sgx_quote.qeIdentity.json; do
  i=$((i + 1))
  cp "$V/dcap-qvl/$f" "$T/col/file$i"
done
echo "notes" >"$T/col/README"

"$CLOISTER" cas collateral import "$T/col" "${CAS[@]}" --identity "$T/a" >"$T/out" 2>"$T/err"
check "an administrator imports a directory" test $? = 0
check "... and is told how many pieces were added" grep -q '^9 files: [0-9]* pieces added or updated, 0 already held' "$T/out"
check "... and which file was skipped" grep -q "not collateral, skipped: $T/col/README" "$T/out"
"$CLOISTER" cas collateral import "$T/col" "${CAS[@]}" --identity "$T/a" >"$T/out" 2>&1
check "importing the same again adds nothing" grep -q '^9 files: 0 pieces added or updated, [1-9][0-9]* already held' "$T/out"
"$CLOISTER" cas collateral import "$T/col/file1" "${CAS[@]}" --identity "$T/b" >/dev/null 2>"$T/err"
check "another identity may not import (exit 1)" test $? = 1
check "... and is told so in one line" test "$(wc -l <"$T/err")" = 1
"$CLOISTER" cas collateral import "$T/nothing" "${CAS[@]}" --identity "$T/a" >/dev/null 2>"$T/err"
check "a missing path is refused" grep -q 'no such file or directory' "$T/err"

"$CLOISTER" cas collateral list "${CAS[@]}" --identity "$T/a" >"$T/list" 2>&1
check "list shows the TDX TCB Info by FMSPC" grep -Eq '^tcb-info +2025-07-19T10:16:03Z \(past\) +import +TDX fmspc b0c06f000000$' "$T/list"
check "... the SGX one" grep -q 'SGX fmspc 00a067110000' "$T/list"
check "... both QE Identities" bash -c "grep -q ' TD_QE\$' '$T/list' && grep -q ' QE\$' '$T/list'"
check "... the root CA CRL" grep -q '^root-ca-crl .* Intel SGX Root CA$' "$T/list"
check "... the TCB signing chain" grep -q '^tcb-signing-chain .* Intel SGX TCB Signing$' "$T/list"
"$CLOISTER" cas collateral list "${CAS[@]}" --identity "$T/a" --json >"$T/list.json"
check "--json lists the same pieces" test "$(json_field '["collateral"].__len__()' <"$T/list.json")" = \
  "$(($(wc -l <"$T/list") - 1))"
"$CLOISTER" cas collateral list "${CAS[@]}" --identity "$T/b" >/dev/null 2>&1
check "another identity may not list (exit 1)" test $? = 1

kill "$main_PID"
wait "$main_PID" 2>/dev/null
rm -f "$T/main.ports"
start_cas main
"$CLOISTER" cas collateral list --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" --identity "$T/a" >"$T/list2" 2>&1
check "a restarted CAS holds the same collateral" diff "$T/list" "$T/list2"
check "no sanitizer report from the CAS" bash -c "! grep -Eq 'Sanitizer|runtime error' '$T/main.log'"
finish
