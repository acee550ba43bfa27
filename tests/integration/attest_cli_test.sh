#!/usr/bin/env bash
# End-to-end checks of `cloister attest verify` through the real binary, on
# the public attestation vectors (real Intel quotes and collateral). Skips,
# saying so, when the vectors are not next to the source tree and
# CLOISTER_TESTDATA does not name them.
# Usage: attest_cli_test.sh PATH-TO-cloister SOURCE-DIR
set -u
CLOISTER="$1"
V="${CLOISTER_TESTDATA:-$2/../shared/testdata}/attestation"
if [ ! -f "$V/MANIFEST.md" ]; then
  echo "attestation vectors not found (set CLOISTER_TESTDATA); skipped"
  exit 77
fi
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/checks.sh"

# A collateral directory as an operator would fill it: several platforms'
# files side by side, names of no importance, one stray file.
mkdir "$T/col"
i=0
for f in sgx_quote.tcbInfo.json sgx_quote.qeIdentity.json tdx_quote.tcbInfo.json tdx_quote.qeIdentity.json \
  sgx_quote.tcbchain.pem sgx_quote.root_ca_crl.der sgx_quote.pck_crl.der tdx_quote.pck_crl.der; do
  i=$((i + 1))
  cp "$V/dcap-qvl/$f" "$T/col/file$i"
done
echo "notes" >"$T/col/README"
AT=2025-07-01T00:00:00Z

out=$("$CLOISTER" attest verify "$V/dcap-qvl/sgx_quote" --collateral "$T/col" --at $AT 2>"$T/err")
check "an SGX quote with its collateral verifies (exit 0)" test $? = 0
check "... and says what it is" grep -q "authentic sgx evidence" <<<"$out"
check "... with the TCB status Intel's collateral gives" grep -q "^TCB status: ConfigurationAndSWHardeningNeeded$" <<<"$out"
check "... and its advisories" grep -q "^advisories: INTEL-SA-00289, INTEL-SA-00615$" <<<"$out"
check "... and MRENCLAVE" grep -q "mrenclave  *33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" <<<"$out"
check "the stray file is named on stderr and ignored" grep -q "README is not collateral" "$T/err"

"$CLOISTER" attest verify "$V/dcap-qvl/tdx_quote" --collateral "$T/col" --at $AT --json >"$T/tdx.json" 2>/dev/null
check "a TDX quote verifies too, as JSON" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["verified"] and d["type"] == "tdx" and d["tcb_status"] == "UpToDate" and not d["debug"]
assert d["claims"]["mrtd"].startswith("91eb2b44d141d4ec")
assert any("TDX module TDX_01" in c for c in d["checks"])' "$T/tdx.json"

out=$("$CLOISTER" attest verify "$V/trustee/occlum_quote.dat" --at $AT)
check "without collateral: signatures and chain only, TCB not evaluated" grep -q "^TCB status: NotEvaluated$" <<<"$out"
check "... and a DEBUG enclave is shown as such" grep -q "^debug: YES" <<<"$out"

# The TDX event log explains the RTMRs.
C="$V/tdx/go-tdx-guest/ccel"
out=$("$CLOISTER" attest verify "$C/cos-113-tdx-quote.dat" --event-log "$C/ccel_data.dat" --at $AT)
check "a TDX quote with its event log: the log replays to the RTMRs" grep -q "event log (43 events) replays to the quote's RTMR0-3" <<<"$out"
"$CLOISTER" attest verify "$V/dcap-qvl/tdx_quote" --event-log "$C/ccel_data.dat" --at $AT >/dev/null 2>"$T/err"
check "another quote's event log is refused (exit 3)" test $? = 3
check "... naming the RTMR" grep -q "replays to an RTMR0 other than the quote's" "$T/err"

# Tampering: one byte of the report body.
cp "$V/dcap-qvl/sgx_quote" "$T/bad"
printf '\x01' | dd of="$T/bad" bs=1 seek=120 conv=notrunc 2>/dev/null
"$CLOISTER" attest verify "$T/bad" --collateral "$T/col" --at $AT >/dev/null 2>"$T/err"
check "a changed quote is refused with exit 3" test $? = 3
check "... in one line naming the quote signature" grep -q "quote signature does not verify" "$T/err"
check "... one line only (besides the stray file's note)" test "$(grep -vc "is not collateral" "$T/err")" = 1
"$CLOISTER" attest verify "$T/bad" --json >"$T/bad.json" 2>/dev/null
check "... and --json says verified: false with the reason" python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); assert d["verified"] is False and "quote signature" in d["error"]' "$T/bad.json"

# Time.
out=$("$CLOISTER" attest verify "$V/dcap-qvl/sgx_quote" --collateral "$T/col" --at 2025-09-01T00:00:00Z)
check "expired collateral is verified but reported" grep -q "^warning: TCB Info expired at 2025-07-19T10:56:11Z" <<<"$out"
"$CLOISTER" attest verify "$V/dcap-qvl/sgx_quote" --at 2031-01-01T00:00:00Z >/dev/null 2>"$T/err"
check "an expired PCK certificate is refused (exit 1)" test $? = 1
check "... saying so" grep -q "expired at" "$T/err"
"$CLOISTER" attest verify "$V/dcap-qvl/sgx_quote" --at yesterday >/dev/null 2>&1
check "a malformed --at is refused" test $? = 1

# Intel's sample PKI: a test root, accepted only when named.
S="$V/sgx/intel-qvl-sample"
"$CLOISTER" attest verify "$S/tdx/quote.dat" --at 2024-01-01T00:00:00Z >/dev/null 2>"$T/err"
check "a quote under a test root is refused by default (exit 3)" test $? = 3
check "... naming the root" grep -q "not a trusted root" "$T/err"
out=$("$CLOISTER" attest verify "$S/tdx/quote.dat" --at 2024-01-01T00:00:00Z --trust-root "$S/tdx/trustedRootCaCert.pem")
check "... and verified with --trust-root" grep -q "authentic tdx evidence" <<<"$out"
# A quote that carries only a PPID: its PCK certificate comes with the collateral.
mkdir "$T/ppid"
cp "$S"/{tcbInfo.json,qeIdentity.json,tcbSignChain.pem,rootCaCrl.der,intermediateCaCrl.der,pckCert.pem,pckSignChain.pem} "$T/ppid/"
out=$("$CLOISTER" attest verify "$S/quote.dat" --collateral "$T/ppid" --at 2024-01-01T00:00:00Z \
  --trust-root "$S/trustedRootCaCert.pem")
check "a PPID-only quote verifies with its PCK certificate from the collateral" grep -q "^TCB status: UpToDate$" <<<"$out"

# AMD SEV-SNP: the report with its VCEK and AMD's certificates.
mkdir "$T/amd"
cp "$V/snp/go-sev-guest/vcek.testcer" "$V/snp/go-sev-guest/ask_ark_milan.pem" "$T/amd/"
out=$("$CLOISTER" attest verify "$V/snp/go-sev-guest/attestation.bin" --collateral "$T/amd" --at 2025-06-01T00:00:00Z)
check "an SEV-SNP report verifies with its VCEK and the Milan ARK and ASK" grep -q "authentic snp evidence" <<<"$out"
check "... with its measurement" grep -q "measurement  *b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01" <<<"$out"
check "... and its DEBUG policy shown" grep -q "^debug: YES" <<<"$out"
"$CLOISTER" attest verify "$V/snp/go-sev-guest/attestation.bin" >/dev/null 2>"$T/err"
check "an SEV-SNP report without collateral is refused, saying what it needs" grep -q "needs --collateral" "$T/err"

# TPM 2.0: the quote, its signature, the AK, the PCR values and the nonce.
P="$V/tpm"
tpm=(--tpm-signature "$P/quote.sig.tss" --tpm-ak "$P/ak.pem" --tpm-pcrs "$P/quote.pcrs")
out=$("$CLOISTER" attest verify "$P/quote.msg" "${tpm[@]}" --tpm-nonce "$(cat "$P/nonce.hex")")
check "a TPM quote verifies" grep -q "authentic tpm evidence" <<<"$out"
check "... with its PCR 16" grep -q "pcr16  *e43c833be76772e22820ee39d86b91c969044247ccbb30319bb4fda2d1e90c48" <<<"$out"
"$CLOISTER" attest verify "$P/quote.msg" "${tpm[@]}" --tpm-nonce 00112233 >/dev/null 2>"$T/err"
check "a TPM quote with another nonce is refused (exit 3)" test $? = 3
check "... saying so" grep -q "nonce" "$T/err"

printf 'not a quote' >"$T/junk"
"$CLOISTER" attest verify "$T/junk" >/dev/null 2>&1
check "something that is no quote is refused" test $? = 1

finish
