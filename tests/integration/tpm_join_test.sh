#!/usr/bin/env bash
# End to end: a LAS joins the CAS with TPM evidence (docs/protocol.md section 4.1), against a
# software TPM (swtpm) whose EK certificate comes from a local CA the CAS trusts; a protected
# program started through that LAS is granted by a session that allows tpm and expects the
# node's real PCR 0, and refused (evidence-not-accepted) by one that expects another value; the
# LAS renews its certificate with fresh TPM evidence.
# Usage: tpm_join_test.sh cloister cloister-cas cloister-las libcloister-runtime.so
set -u
CLOISTER="$1"
CAS_BIN="$2"
LAS_BIN="$3"
RUNTIME="$4"
for tool in swtpm swtpm_setup swtpm_localca certtool tpm2_pcrread curl python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed (swtpm, swtpm-tools, tpm2-tools)"; exit 0; }
done
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || { echo "SKIP: $PYTHON is not installed"; exit 0; }
T="$(mktemp -d)"
PIDS=()
source "$(dirname "$0")/checks.sh"
source "$(dirname "$0")/services.sh"

# ---- a software TPM with an EK certificate from a local CA ----------------------------------
mkdir -p "$T/tpm/ca" "$T/tpm/state"
cat >"$T/tpm/localca.conf" <<EOF
statedir = $T/tpm/ca
signingkey = $T/tpm/ca/signkey.pem
issuercert = $T/tpm/ca/issuercert.pem
certserial = $T/tpm/ca/certserial
EOF
printf -- '--platform-manufacturer Cloister\n--platform-version 2.1\n--platform-model test\n' >"$T/tpm/localca.options"
cat >"$T/tpm/setup.conf" <<EOF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $T/tpm/localca.conf
create_certs_tool_options = $T/tpm/localca.options
active_pcr_banks = sha256
EOF
swtpm_setup --tpm2 --tpmstate "$T/tpm/state" --create-ek-cert --config "$T/tpm/setup.conf" \
  --logfile "$T/tpm/setup.log" >/dev/null 2>&1
check "swtpm_setup makes a TPM with an EK certificate from the local CA" test -s "$T/tpm/ca/issuercert.pem"
# Two free ports next to each other (the TPM and its control channel).
PORT=$(python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); break
    except OSError:
        pass
print(p)')
swtpm socket --tpm2 --tpmstate dir="$T/tpm/state" --server type=tcp,port="$PORT",bindaddr=127.0.0.1 \
  --ctrl type=tcp,port=$((PORT + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear \
  --log file="$T/tpm/swtpm.log" &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
TCTI="swtpm:host=127.0.0.1,port=$PORT"
PCR0=$(TPM2TOOLS_TCTI="$TCTI" tpm2_pcrread sha256:0 | awk '$1 == "0" {print $3}' | sed 's/^0x//' | tr 'A-F' 'a-f')
check "tpm2_pcrread reads the node's PCR 0" bash -c "[[ '$PCR0' =~ ^[0-9a-f]{64}$ ]]"

# ---- a CAS that trusts the local CA, and a LAS that joins with TPM evidence --------------------
"$CLOISTER" identity create --identity "$T/a" >"$T/a.id"
ID_A=$(cat "$T/a.id")
# Short node certificates, so that the test sees a renewal (after half of them).
start_cas main --tpm-ek-ca "$T/tpm/ca/issuercert.pem" --node-certificate-seconds 60
"$CLOISTER" cas join-token create --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" --identity "$T/a" --ttl 10m \
  --out "$T/tpm1.token" 2>/dev/null
start_las_tpm() {  # start_las_tpm [FLAGS]: the LAS on $T/tpm1; waits until it listens or ends
  "$LAS_BIN" --state-dir "$T/tpm1" --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" --socket "$T/tpm1.sock" \
    --name tpm1 --evidence tpm --tpm-tcti "$TCTI" "$@" >"$T/tpm1.out" 2>>"$T/tpm1.log" &
  LAS_PID=$!
  PIDS+=($LAS_PID)
  for _ in $(seq 200); do
    grep -q "listening on" "$T/tpm1.out" 2>/dev/null && break
    kill -0 "$LAS_PID" 2>/dev/null || break
    sleep 0.1
  done
}
start_las_tpm --join-token-file "$T/tpm1.token"
check "the LAS joins with tpm evidence and listens" grep -q "listening on" "$T/tpm1.out"
check "... and says it joined with tpm evidence" grep -q "^joined the CAS as tpm1 with tpm evidence; " "$T/tpm1.out"
grep -q "listening on" "$T/tpm1.out" || echo "  LAS: $(head -c 400 "$T/tpm1.log")" >&2
"$CLOISTER" node list --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" --identity "$T/a" >"$T/nodes"
check "cloister node list shows the node joined with tpm" grep -q "tpm1 .*tpm" "$T/nodes"

# ---- sessions that allow tpm ---------------------------------------------------------------
measure() { "$CLOISTER" measure "$1" | awk '{print $1}'; }
PY=$(measure "$PYTHON")
RT=$(measure "$RUNTIME")
session_doc() {  # session_doc NAME ALLOWED PCR0-VALUE
  cat <<DOC
name: $1
services:
  - name: py
    measurements: [$PY, $RT]
    command: ["python3", "-c", "print('RAN')"]
security:
  attestation:
    allowed: [$2]
    expect:
      tpm:
        pcrs:
          0: [$3]
DOC
}
export CLOISTER_CAS_ADDR="127.0.0.1:$main_API" CLOISTER_CAS_KEY="$main_KEY"
session_doc tpm-good tpm "$PCR0" >"$T/good.yaml"
session_doc tpm-bad tpm "$(printf 'ab%.0s' $(seq 32))" >"$T/bad.yaml"
cat >"$T/sim.yaml" <<DOC
name: sim-only
services:
  - name: py
    measurements: [$PY, $RT]
    command: ["python3", "-c", "print('RAN')"]
security:
  attestation:
    allowed: [sim]
    tolerate: [simulation]
DOC
for f in good bad sim; do
  "$CLOISTER" session create -f "$T/$f.yaml" --identity "$T/a" >/dev/null
  check "the session $f is created" test $? = 0
done

protected() {  # protected CONFIG: start python3 under the runtime through the TPM node's LAS
  "$CLOISTER" run --cas-key "$main_KEY" --las "$T/tpm1.sock" --config "$1" --runtime "$RUNTIME" -- "$PYTHON" \
    >"$T/out" 2>"$T/err"
  RC=$?
}
protected tpm-good/py
check "a session that allows tpm and expects the node's PCR 0: granted" grep -qx RAN "$T/out"
grep -qx RAN "$T/out" || echo "  $(head -c 400 "$T/err")" >&2
protected tpm-bad/py
check "a session that expects another PCR 0: refused (70)" test "$RC" = 70
check "... in one line" test "$(wc -l <"$T/err")" = 1
check "... and the program did not run" bash -c "! grep -q RAN '$T/out'"
"$CLOISTER" session attestations tpm-bad --identity "$T/a" >"$T/att-bad"
check "... recorded as evidence-not-accepted" grep -q "evidence-not-accepted" "$T/att-bad"
check "... naming the evidence type tpm" grep -q " tpm " "$T/att-bad"
check "... and the claim the policy did not accept" grep -Eq "pcr0 [0-9a-f]+(\.\.\.)? is not one the policy accepts" "$T/att-bad"
"$CLOISTER" session attestations tpm-good --identity "$T/a" >"$T/att-good"
check "the granted start is recorded with evidence type tpm" bash -c "grep granted '$T/att-good' | grep -q ' tpm '"
protected sim-only/py
check "a session that allows only sim refuses the tpm node's evidence (70)" test "$RC" = 70
"$CLOISTER" session attestations sim-only --identity "$T/a" >"$T/att-sim"
check "... as evidence-type-not-allowed" grep -q "evidence-type-not-allowed" "$T/att-sim"

# ---- renewal with fresh TPM evidence -------------------------------------------------------------
for _ in $(seq 600); do
  grep -q "renewed the node certificate" "$T/tpm1.log" 2>/dev/null && break
  sleep 0.1
done
check "the LAS renews with fresh tpm evidence" grep -q "renewed the node certificate with tpm evidence" "$T/tpm1.log"
grep -q "renewed the node certificate" "$T/tpm1.log" || echo "  LAS: $(tail -c 400 "$T/tpm1.log")" >&2
protected tpm-good/py
check "after the renewal, the session that expects the node's PCR 0 still grants" grep -qx RAN "$T/out"

# ---- a restart attests again ---------------------------------------------------------------------
restart_las() {  # stop the LAS and start it again on its state
  kill "$LAS_PID"
  wait "$LAS_PID" 2>/dev/null
  start_las_tpm
}
restart_las
check "a restarted LAS attests again with fresh tpm evidence before it serves" \
  grep -q "^attested again at start with tpm evidence; certificate valid until " "$T/tpm1.out"
protected tpm-good/py
check "... and programs are still granted" grep -qx RAN "$T/out"
NODE=$(grep -o 'LAS node [0-9a-f]\{64\}' "$T/tpm1.out" | awk '{print $3}')
"$CLOISTER" node revoke "$NODE" --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" --identity "$T/a" >/dev/null
restart_las
wait "$LAS_PID" 2>/dev/null
check "a revoked node's LAS does not start again (exit 1)" test $? = 1
check "... saying that the CAS refused its evidence" grep -q "refused this node's tpm evidence at start" "$T/tpm1.log"

check "the LAS's log has one line per event and no TSS noise" bash -c "! grep -v '^cloister-las: ' '$T/tpm1.log'"
finish
