#!/usr/bin/env bash
# End-to-end checks of attestation at program start, with the real binaries
# over loopback: cloister-cas, cloister-las (joined with a token), unmodified
# programs (python3, perl, a C++ reader) started under libcloister-runtime.so
# by `cloister run`.
# Usage: start_test.sh cloister cloister-cas cloister-las libcloister-runtime.so inject_reader
set -u
CLOISTER="$1"
CAS_BIN="$2"
LAS_BIN="$3"
RUNTIME="$4"
READER="$5"
T="$(mktemp -d)"
PIDS=()
source "$(dirname "$0")/checks.sh"
source "$(dirname "$0")/services.sh"
for tool in curl; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 0; }
done
# The programs by absolute path: a wrapper found first in PATH (a version
# manager's shim, say) would be the program measured, not the interpreter.
PYTHON=/usr/bin/python3
PERL=/usr/bin/perl
for tool in "$PYTHON" "$PERL"; do
  [ -x "$tool" ] || { echo "SKIP: $tool is not installed"; exit 0; }
done

# protected CONFIG PROGRAM [ARGS...]: start a program under the runtime against CAS "main" and LAS "las1";
# output in $T/out and $T/err, exit status in RC. The LAS relays the attestation, unless DIRECT=1 or
# CAS_ADDR= is set: then the program connects to the CAS's attestation endpoint itself.
# LAS=, CAS_ADDR=, CAS_PIN= override.
protected() {
  local config="$1" direct=()
  shift
  if [ -n "${DIRECT:-}" ] || [ -n "${CAS_ADDR:-}" ]; then direct=(--cas "${CAS_ADDR:-127.0.0.1:$main_ATTEST}"); fi
  "$CLOISTER" run "${direct[@]}" --cas-key "${CAS_PIN:-$main_KEY}" \
    --las "${LAS:-$T/las1.sock}" --config "$config" --runtime "$RUNTIME" -- "$@" >"$T/out" 2>"$T/err"
  RC=$?
}
one_line() { [ "$(wc -l <"$T/err")" -eq 1 ]; }
api() {  # api ID METHOD PATH [curl args]: HTTPS to the main CAS API as identity ID
  local id="$1" method="$2" path="$3"
  shift 3
  curl -sk --cert "$T/$id/identity.crt" --key "$T/$id/identity.key" -X "$method" -o "$T/body" -w '%{http_code}' \
    "https://127.0.0.1:$main_API$path" "$@"
}

"$CLOISTER" identity create --identity "$T/a" >"$T/a.id"
"$CLOISTER" identity create --identity "$T/b" >"$T/b.id"
ID_A=$(cat "$T/a.id")
export CLOISTER_CAS_ADDR CLOISTER_CAS_KEY

start_cas main
CLOISTER_CAS_ADDR="127.0.0.1:$main_API"
CLOISTER_CAS_KEY="$main_KEY"
start_las las1 main
check "the LAS joins with a token and listens" grep -q "listening on" "$T/las1.out"
check "the LAS says it joined" grep -q "joined" "$T/las1.out"
NODE1=$(grep -o 'LAS node [0-9a-f]\{64\}' "$T/las1.out" | awk '{print $3}')
"$CLOISTER" node list --identity "$T/a" >"$T/nodes"
check "cloister node list shows the node" grep -q "$NODE1" "$T/nodes"
check "a second join with a used token is refused" bash -c \
  "! '$LAS_BIN' --state-dir '$T/las-reuse' --cas 127.0.0.1:$main_API --cas-key $main_KEY --socket '$T/reuse.sock' \
     --join-token-file '$T/las1.token' --name reuse"
check "a LAS without a token or certificate does not start" bash -c \
  "! '$LAS_BIN' --state-dir '$T/las-none' --cas 127.0.0.1:$main_API --cas-key $main_KEY --socket '$T/none.sock'"
check "only administrators list nodes" bash -c "! '$CLOISTER' node list --identity '$T/b'"

# ---- the session -----------------------------------------------------------------------
measure() { "$CLOISTER" measure "$1" | awk '{print $1}'; }
PY=$(measure "$PYTHON")
RT=$(measure "$RUNTIME")
RD=$(measure "$READER")
mkdir -p "$T/work"
cat >"$T/app.py" <<'PY'
import hashlib, mmap, os, sys
pw = os.environ.get("DB_PASSWORD", "")
conf_path = os.environ["CONF"]
with open(conf_path) as f:
    conf = f.read()
with open(conf_path, "rb") as f:
    mapped = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:]
print("argv", " ".join(sys.argv[1:]))
print("cwd", os.getcwd())
print("password-length", len(pw))
print("conf-has-password", ("password=" + pw + "\n") == conf and len(pw) == 32)
print("mmap-same", mapped.decode() == conf)
print("stat-size", os.stat(conf_path).st_size == len(conf))
print("env", " ".join(sorted(os.environ)))
PY
cat >"$T/capture.py" <<'PY'
# Asks the LAS for evidence over a report data the caller chooses and saves it
# (run as a protected program: the evidence names python3 and the runtime).
import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["LAS"])
s.sendall(struct.pack("<IHBB", 0x51434C43, 1, 1, 0) + bytes.fromhex(os.environ["REPORT"]))
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
magic, version, status, _, length = struct.unpack("<IHBBI", data[:12])
assert status == 0, data[12:]
open(os.environ["OUT"], "wb").write(data[12:12 + length])
print("captured", length)
PY
session_doc() {  # session_doc PYTHON-MEASUREMENT > file
  cat <<DOC
name: e2e
services:
  - name: py
    measurements: [$1, $RT]
    command: ["python3", "$T/app.py", "from-session"]
    environment:
      DB_PASSWORD: "@@CLOISTER::db_password@@"
      CONF: $T/inject/app.conf
      GREETING: hello
    pwd: $T/work
    files:
      - path: $T/inject/app.conf
        content: "password=@@CLOISTER::db_password@@\n"
  - name: reader
    measurements: [$RD, $RT]
    command: ["inject_reader", "$T/inject/app.conf"]
    files:
      - path: $T/inject/app.conf
        content: "password=@@CLOISTER::db_password@@\n"
  - name: capture
    measurements: [$1, $RT]
    command: ["python3", "$T/capture.py"]
    environment:
      LAS: $T/las1.sock
      REPORT: $ID_A
      OUT: $T/evidence.bin
  - name: replayer
    measurements: [$1, $RT]
    command: ["python3", "$T/replay_las.py"]
    environment:
      REAL_LAS: $T/las1.sock
      FAKE_LAS: $T/replay.sock
  - name: store
    measurements: [$1, $RT]
    command: ["python3", "-c", "pass"]
    mounts:
      - volume: data
        path: $T/vol
volumes:
  - name: data
secrets:
  - name: db_password
    kind: ascii
security:
  attestation:
    allowed: [sim]
    tolerate: [simulation]
DOC
}
session_doc "$PY" | sed 's/@@/$$/g' >"$T/e2e.yaml"
"$CLOISTER" session create -f "$T/e2e.yaml" --identity "$T/a" >/dev/null
check "the session is created" test $? = 0

# ---- granted start -----------------------------------------------------------------------
HOST_ONLY=1 protected e2e/py "$PYTHON" -c 'print("HOST-ARGV")'
check "granted: python3 runs (exit 0)" test "$RC" = 0
check "granted: argv comes from the session" grep -qx "argv from-session" "$T/out"
check "granted: the host's argv is ignored" bash -c "! grep -q HOST-ARGV '$T/out'"
check "granted: the working directory comes from the session" grep -qx "cwd $T/work" "$T/out"
check "granted: the generated secret is in the environment" grep -qx "password-length 32" "$T/out"
check "granted: the injected file holds the same secret" grep -qx "conf-has-password True" "$T/out"
check "granted: the injected file reads the same through mmap" grep -qx "mmap-same True" "$T/out"
check "granted: stat sees the injected file's size" grep -qx "stat-size True" "$T/out"
check "granted: the host environment is ignored" bash -c "! grep -q HOST_ONLY '$T/out'"
check "granted: CLOISTER_* and LD_PRELOAD are not passed on" bash -c "! grep -E 'CLOISTER_|LD_PRELOAD' '$T/out'"
check "granted: the environment is the session's" grep -q "env CONF DB_PASSWORD GREETING" "$T/out"
check "the injected file was never written to disk" test ! -e "$T/inject/app.conf"
check "the injected file's directory does not exist on disk" test ! -e "$T/inject"

DIRECT=1 HOST_ONLY=1 protected e2e/py "$PYTHON"
check "granted over the program's own TLS connection too (--cas)" grep -qx "password-length 32" "$T/out"
check "... with the session's argv and without the host's environment" bash -c \
  "grep -qx 'argv from-session' '$T/out' && ! grep -q HOST_ONLY '$T/out'"

protected e2e/reader "$READER"
check "a C++ program reads the injected file with read, mmap, fopen and ifstream" test "$RC" = 0
check "... and writing it is refused" grep -q "write-refused=yes" "$T/out"

# ---- refusals ---------------------------------------------------------------------------
protected e2e/py "$PERL" -e 'print "PERL RAN\n"'
check "wrong binary (perl under python's config): refused with status 70" test "$RC" = 70
check "wrong binary: perl's main never ran" bash -c "! grep -q 'PERL RAN' '$T/out'"
check "wrong binary: one line on stderr" one_line
check "wrong binary: the line says the measurement is not allowed" grep -qi "measurement" "$T/err"
check "wrong binary: the line names the evidence type" grep -q "sim" "$T/err"

protected e2e/nope "$PYTHON"
check "unknown service: refused with status 70, one line" bash -c "test $RC = 70 && test \$(wc -l <'$T/err') = 1"
check "unknown service: says so" grep -qi "unknown session or service" "$T/err"
protected nope/py "$PYTHON"
check "unknown session: the same answer" grep -qi "unknown session or service" "$T/err"

LAS="$T/absent.sock" protected e2e/py "$PYTHON"
check "LAS unreachable: refused with status 70, one line naming the socket" \
  bash -c "test $RC = 70 && test \$(wc -l <'$T/err') = 1 && grep -q absent.sock '$T/err'"
python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' >"$T/closed"
CAS_ADDR="127.0.0.1:$(cat "$T/closed")" protected e2e/py "$PYTHON"
check "CAS unreachable: refused with status 70, one line naming the address" \
  bash -c "test $RC = 70 && test \$(wc -l <'$T/err') = 1 && grep -q '127.0.0.1:$(cat "$T/closed")' '$T/err'"

start_cas other
CAS_ADDR="127.0.0.1:$other_ATTEST" protected e2e/py "$PYTHON"
check "a CAS with another key: refused with status 70" test "$RC" = 70
check "a CAS with another key: one line saying it is not the pinned one" bash -c \
  "test \$(wc -l <'$T/err') = 1 && grep -qi pinned '$T/err'"
CAS_PIN="$other_KEY" protected e2e/py "$PYTHON"
check "relayed: a reply signed by another CAS than the pinned one is refused (70)" test "$RC" = 70
check "... one line saying the key is not the pinned one" bash -c \
  "test \$(wc -l <'$T/err') = 1 && grep -q 'not the pinned CAS key' '$T/err'"

start_las las2 other
check "a second LAS joins the other CAS" grep -q "listening on" "$T/las2.out"
DIRECT=1 LAS="$T/las2.sock" protected e2e/py "$PYTHON"
check "evidence from a LAS this CAS never certified: refused (70)" test "$RC" = 70
check "... the line says the node is not certified" grep -qi "certif" "$T/err"
LAS="$T/las2.sock" protected e2e/py "$PYTHON"
check "relayed by a LAS that belongs to another CAS: refused (70), that CAS is not the pinned one" bash -c \
  "test $RC = 70 && grep -q 'not the pinned CAS key' '$T/err'"

# A LAS that replays: the first relayed answer it passes on is kept, and every later start gets
# fresh evidence for its own key (asked from the real LAS) with that old CAS reply. It runs as a
# protected python3 itself, so that the real LAS measures what the session allows.
cat >"$T/replay_las.py" <<'PY'
import os, socket, struct
real, path = os.environ["REAL_LAS"], os.environ["FAKE_LAS"]
def ask(request):
    c = socket.socket(socket.AF_UNIX)
    c.connect(real)
    c.sendall(request)
    data = b""
    while True:
        chunk = c.recv(1 << 20)
        if not chunk:
            return data
        data += chunk
def read(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(8)
kept = None
while True:
    conn, _ = srv.accept()
    head = read(conn, 40)
    tail = read(conn, 67)
    tail += read(conn, struct.unpack("<H", tail[65:67])[0])
    if kept is None:
        answer = ask(head + tail)
        body = answer[12:]
        n = struct.unpack("<I", body[:4])[0]
        kept = body[4 + n:]  # u32 length and the CAS's reply
        conn.sendall(answer)
    else:
        fresh = ask(struct.pack("<IHBB", 0x51434C43, 1, 1, 0) + head[8:40])
        evidence = fresh[12:]
        body = struct.pack("<I", len(evidence)) + evidence + kept
        conn.sendall(struct.pack("<IHBBI", 0x52434C43, 1, 2, 0, len(body)) + body)
    conn.close()
PY
"$CLOISTER" run --cas-key "$main_KEY" --las "$T/las1.sock" --config e2e/replayer --runtime "$RUNTIME" \
  -- "$PYTHON" 2>"$T/replay.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$T/replay.sock" ] && break; sleep 0.1; done
LAS="$T/replay.sock" protected e2e/py "$PYTHON"
check "through a replaying LAS: the first start is granted" grep -qx "password-length 32" "$T/out"
LAS="$T/replay.sock" protected e2e/py "$PYTHON"
check "a CAS reply replayed to a later start, with fresh evidence: refused (70)" test "$RC" = 70
check "... one line saying the signature is not for this start" bash -c \
  "test \$(wc -l <'$T/err') = 1 && grep -q 'does not verify for this start' '$T/err'"
check "... and the program did not run" bash -c "! grep -q password-length '$T/out'"

# Replay: evidence made for identity A's key, presented over a connection with B's key.
protected e2e/capture "$PYTHON"
check "a protected program obtains evidence over a chosen report data" test -s "$T/evidence.bin"
EV=$(base64 -w0 "$T/evidence.bin")
attest_as() {  # attest_as ID: POST the captured evidence to /v1/attest with identity ID's key
  curl -sk --cert "$T/$1/identity.crt" --key "$T/$1/identity.key" -o "$T/body" -w '%{http_code}' \
    -X POST "https://127.0.0.1:$main_ATTEST/v1/attest" -d "{\"config_id\":\"e2e/py\",\"evidence\":\"$EV\"}"
}
check "replayed evidence from a process without the key: 403" test "$(attest_as b)" = 403
check "... reason evidence-not-bound" grep -q '"reason":"evidence-not-bound"' "$T/body"
check "the same evidence with the key it names is granted (the binding is what refused it)" \
  test "$(attest_as a)" = 200

# ---- a volume commit, relayed by the LAS ---------------------------------------------------
# The program's side done by hand: identity A's key stands for the runtime's fresh key (the
# captured evidence names it), the grant of service store (which mounts volume data) carries
# the token, and the report is signed with openssl and sent over the LAS socket (kind 3).
cat >"$T/commit.py" <<'PY'
import base64, hashlib, json, os, socket, struct, subprocess, sys
key, las, grant = os.environ["KEY"], os.environ["LAS"], json.load(open(os.environ["GRANT"]))
seq, tag = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
token = base64.b64decode(grant["volume_token"])
point = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                       capture_output=True, check=True).stdout[-65:]
signed = (b"cloister volume commit v1" + struct.pack(">I", len(token)) + token +
          struct.pack(">I", 4) + b"data" + struct.pack(">Q", seq) + tag)
signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signed,
                           capture_output=True, check=True).stdout
report = json.dumps({"token": grant["volume_token"], "key": base64.b64encode(point).decode(),
                     "volume": "data", "seq": seq, "tag": tag.hex(),
                     "signature": base64.b64encode(signature).decode()}).encode()
s = socket.socket(socket.AF_UNIX)
s.connect(las)
s.sendall(struct.pack("<IHBB", 0x51434C43, 1, 3, 0) + bytes(32) + struct.pack("<I", len(report)) + report)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
magic, version, status, _, length = struct.unpack("<IHBBI", data[:12])
if status != 3:
    print("refused", data[12:].decode())
    sys.exit()
http, answer = struct.unpack("<H", data[12:14])[0], data[14:12 + length].decode()
if http == 200:
    # The receipt: signed by the pinned CAS key over the label and the SHA-256 of what was signed.
    a = json.loads(answer)
    cas_key = base64.b64decode(a["cas_key"])
    assert hashlib.sha256(cas_key).hexdigest() == os.environ["PIN"], "receipt not from the pinned CAS"
    open(os.environ["T"] + "/cas_key.der", "wb").write(cas_key)
    open(os.environ["T"] + "/receipt.sig", "wb").write(base64.b64decode(a["receipt"]))
    subprocess.run(["openssl", "dgst", "-sha256", "-keyform", "DER", "-verify", os.environ["T"] + "/cas_key.der",
                    "-signature", os.environ["T"] + "/receipt.sig"],
                   input=b"cloister volume commit receipt v1" + hashlib.sha256(signed).digest(),
                   capture_output=True, check=True)
    answer += " receipt-verified"
print(http, answer)
PY
EV=$(base64 -w0 "$T/evidence.bin")
curl -sk --cert "$T/a/identity.crt" --key "$T/a/identity.key" -o "$T/store-grant.json" \
  -X POST "https://127.0.0.1:$main_ATTEST/v1/attest" -d "{\"config_id\":\"e2e/store\",\"evidence\":\"$EV\"}"
check "the grant of a service that mounts a volume carries a volume token" \
  test -n "$(json_field '["volume_token"]' <"$T/store-grant.json")"
TAG1=$(printf 'ab%.0s' $(seq 32))
commit_answers() {  # commit_answers SEQ TAG PATTERN: the LAS's answer to that commit matches PATTERN
  KEY="$T/a/identity.key" LAS="$T/las1.sock" GRANT="$T/store-grant.json" PIN="$main_KEY" T="$T" \
    python3 "$T/commit.py" "$1" "$2" \
    >"$T/commit.out" 2>&1
  grep -q "$3" "$T/commit.out"
}
check "a signed commit relayed by the LAS is recorded (200)" commit_answers 1 "$TAG1" '^200 .*"seq": *1'
check "... with a receipt signed by the pinned CAS key" grep -q 'receipt-verified$' "$T/commit.out"
check "... the same commit again is answered alike" commit_answers 1 "$TAG1" '^200 .*receipt-verified$'
check "... an older one is refused as stale (409)" commit_answers 0 "$TAG1" '^409 .*"reason": *"stale"'
"$CLOISTER" session volumes e2e --identity "$T/a" >"$T/volumes"
check "cloister session volumes shows the recorded seq and tag" grep -Eq "^data +1 +$TAG1 " "$T/volumes"
curl -sk --cert "$T/a/identity.crt" --key "$T/a/identity.key" -o "$T/store-grant2.json" \
  -X POST "https://127.0.0.1:$main_ATTEST/v1/attest" -d "{\"config_id\":\"e2e/store\",\"evidence\":\"$EV\"}"
check "the next grant carries the committed tag" grep -q "\"tag\":\"$TAG1\"" "$T/store-grant2.json"

cat >"$T/hw.yaml" <<DOC
name: e2e-hardware
services:
  - name: py
    measurements: [$PY, $RT]
    command: ["python3", "-c", "print('RAN')"]
security:
  attestation:
    allowed: [tdx, snp]
DOC
"$CLOISTER" session create -f "$T/hw.yaml" --identity "$T/a" >/dev/null
protected e2e-hardware/py "$PYTHON"
check "a hardware-only session refuses sim evidence (70)" test "$RC" = 70
check "... saying the evidence type is not allowed" grep -qi "type" "$T/err"
check "... and the program did not run" bash -c "! grep -q RAN '$T/out'"

# ---- a session update takes effect at the next start -----------------------------------------
HASH=$("$CLOISTER" session show e2e --identity "$T/a" --json | json_field '["hash"]')
{ echo "predecessor: $HASH"; session_doc "$(printf '%064d' 7)" | sed 's/@@/$$/g'; } >"$T/e2e-v2.yaml"
"$CLOISTER" session update -f "$T/e2e-v2.yaml" --identity "$T/a" >/dev/null
protected e2e/py "$PYTHON"
check "after the measurement is changed, the same python3 is refused" test "$RC" = 70
HASH=$("$CLOISTER" session show e2e --identity "$T/a" --json | json_field '["hash"]')
{ echo "predecessor: $HASH"; session_doc "$PY" | sed 's/@@/$$/g'; } >"$T/e2e-v3.yaml"
"$CLOISTER" session update -f "$T/e2e-v3.yaml" --identity "$T/a" >/dev/null
protected e2e/py "$PYTHON"
check "after it is changed back, python3 is granted again" grep -qx "password-length 32" "$T/out"
grep -qx "password-length 32" "$T/out" || echo "  $(head -c 300 "$T/err")" >&2

# ---- many programs starting at once ---------------------------------------------------------
for i in $(seq 24); do
  direct=()
  [ $((i % 4)) = 0 ] && direct=(--cas "127.0.0.1:$main_ATTEST")  # a quarter over their own TLS connection
  "$CLOISTER" run "${direct[@]}" --cas-key "$main_KEY" --las "$T/las1.sock" --config e2e/py \
    --runtime "$RUNTIME" -- "$PYTHON" >"$T/many.$i" 2>&1 &
done
wait_ok=0
for job in $(jobs -p); do
  case " ${PIDS[*]} " in *" $job "*) continue ;; esac
  wait "$job" || wait_ok=1
done
check "24 programs starting at once: all granted" test "$(cat "$T"/many.* | grep -cx 'password-length 32')" = 24
for f in $(grep -Lx 'password-length 32' "$T"/many.*); do echo "  $(basename "$f"): $(head -c 300 "$f")" >&2; done

# ---- records and metrics -------------------------------------------------------------------
"$CLOISTER" session attestations e2e --identity "$T/a" --limit 200 >"$T/att"
check "session attestations lists granted starts" grep -q "granted" "$T/att"
check "... and refused ones with the reason" grep -q "measurement-not-allowed" "$T/att"
check "... naming the evidence type" grep -q " sim " "$T/att"
check "... and the node" grep -q "las1" "$T/att"
check "... with a note that sim protects nothing in use" grep -q "no protection in use" "$T/att"
"$CLOISTER" session attestations e2e --identity "$T/a" --limit 200 --json >"$T/att.json"
check "--json lists every start of the session" test "$(json_field '["attestations"].__len__()' <"$T/att.json")" -ge 30
check "another identity may not read the records" bash -c \
  "! '$CLOISTER' session attestations e2e --identity '$T/b'"
curl -sk "https://127.0.0.1:$main_API/metrics" >"$T/metrics"
check "/metrics counts granted sim attestations" grep -q 'cloister_cas_attestations_total{evidence="sim",result="granted",reason=""}' "$T/metrics"
check "/metrics counts refusals by reason" grep -q 'result="refused",reason="measurement-not-allowed"' "$T/metrics"
check "/metrics counts volume commits by result" grep -q '^cloister_cas_volume_commits_total{result="accepted"} 1$' "$T/metrics"

# ---- the LAS's CAS is down ---------------------------------------------------------------------
kill "$other_PID" 2>/dev/null
wait "$other_PID" 2>/dev/null
LAS="$T/las2.sock" protected e2e/py "$PYTHON"
check "relayed while the LAS's CAS is down: refused (70), one line" bash -c \
  "test $RC = 70 && test \$(wc -l <'$T/err') = 1"
check "... saying the LAS could not relay to the CAS" grep -q "could not relay to the CAS at 127.0.0.1:$other_API" "$T/err"

# ---- revocation takes effect at once ---------------------------------------------------------
"$CLOISTER" node revoke "$NODE1" --identity "$T/a" >/dev/null
check "an administrator revokes the node" test $? = 0
protected e2e/py "$PYTHON"
check "evidence from the revoked LAS is refused (70)" test "$RC" = 70
check "... the line says the node is revoked" grep -qi "revoked" "$T/err"
"$CLOISTER" node list --identity "$T/a" >"$T/nodes"
check "node list shows it revoked" grep -q "revoked" "$T/nodes"
check "no secret value reached the CAS or LAS logs" bash -c \
  "! grep -l 'password=' '$T/main.log' '$T/las1.log' '$T/main.out' '$T/las1.out'"
finish
