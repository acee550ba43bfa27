#!/usr/bin/env bash
# End-to-end checks of cloister-cas and the `cloister cas` / `cloister session`
# commands over real TLS on loopback (ports chosen by the OS).
# Usage: cas_test.sh PATH-TO-cloister PATH-TO-cloister-cas
set -u
CLOISTER="$1"
CAS_BIN="$2"
T="$(mktemp -d)"
CAS_PID=""
SLOW_PID=""
cleanup() {
  [ -n "$SLOW_PID" ] && kill "$SLOW_PID" 2>/dev/null
  [ -n "$CAS_PID" ] && kill -9 "$CAS_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
source "$(dirname "$0")/checks.sh"
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')'; }

start_cas() {
  rm -f "$T/ports"
  "$CAS_BIN" --state-dir "$T/state" --api-listen 127.0.0.1:0 --attest-listen 127.0.0.1:0 \
    --ports-file "$T/ports" "$@" >>"$T/cas.out" 2>>"$T/cas.log" &
  CAS_PID=$!
  for _ in $(seq 100); do [ -s "$T/ports" ] && break; sleep 0.1; done
  PORT=$(json_field '["api"]' <"$T/ports")
  ATTEST_PORT=$(json_field '["attest"]' <"$T/ports")
  KEY=$(json_field '["key_hash"]' <"$T/ports")
  export CLOISTER_CAS_ADDR="127.0.0.1:$PORT" CLOISTER_CAS_KEY="$KEY"
  # curl pins the same key: sha256// followed by the base64 of the SPKI hash.
  PIN="sha256//$(python3 -c 'import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$KEY")"
}
stop_cas() {
  kill "$CAS_PID" && wait "$CAS_PID" 2>/dev/null
  CAS_PID=""
}
# curl with the CAS pinned; identity A unless NOID=1.
api() {
  local cert=(--cert "$T/a/identity.crt" --key "$T/a/identity.key")
  [ "${NOID:-0}" = 1 ] && cert=()
  [ -n "${ID:-}" ] && cert=(--cert "$T/$ID/identity.crt" --key "$T/$ID/identity.key")
  curl -sk --pinnedpubkey "$PIN" "${cert[@]}" -o "$T/body" -w '%{http_code}' "$@" 2>/dev/null
}
run() {  # run CLOISTER-ARGS... ; sets RC, output in $T/out and $T/err
  "$CLOISTER" "$@" >"$T/out" 2>"$T/err"
  RC=$?
}

"$CLOISTER" identity create --identity "$T/a" >"$T/a.id"
"$CLOISTER" identity create --identity "$T/b" >"$T/b.id"
ID_A=$(cat "$T/a.id")
ID_B=$(cat "$T/b.id")

# ---- first start: identity, key hash, uninitialized -------------------------------------
start_cas
check "the CAS starts and writes its ports" test -n "$PORT"
check "it prints its key hash on stdout" grep -q "CAS key $KEY" "$T/cas.out"
check "the key hash is the SHA-256 of its public key" test \
  "$(openssl pkey -in "$T/state/cas.key" -pubout -outform DER | sha256sum | cut -d' ' -f1)" = "$KEY"
check "its TLS key is mode 0600" test "$(stat -c %a "$T/state/cas.key")" = 600
check "/healthz answers 200 before initialization" test "$(NOID=1 api "https://127.0.0.1:$PORT/healthz")" = 200
check "/readyz answers 503 before initialization" test "$(NOID=1 api "https://127.0.0.1:$PORT/readyz")" = 503
check "/v1/cas serves the key hash" grep -q "$KEY" <<<"$(NOID=1 api "https://127.0.0.1:$PORT/v1/cas" >/dev/null; cat "$T/body")"
check "the attestation endpoint serves the same key" test \
  "$(NOID=1 api "https://127.0.0.1:$ATTEST_PORT/v1/cas")" = 200
check "TLS 1.2 is refused" test "$(NOID=1 curl -sk --tls-max 1.2 -o /dev/null -w '%{http_code}' \
  "https://127.0.0.1:$PORT/healthz")" = 000
run cas status --cas-key "$(printf '%064d' 0)"
check "a CAS whose key is not the pinned one is refused" test "$RC" = 1
check "... saying so in one line" grep -q 'not the CAS whose key was pinned' "$T/err"
run session list --identity "$T/a"
check "sessions are unavailable while uninitialized (503)" grep -q 'sealed' "$T/err"

# ---- init and unseal with shares ------------------------------------------------------------
run cas init --shares 3 --threshold 2
check "cas init succeeds" test "$RC" = 0
grep '^cloister-share-v1:' "$T/out" >"$T/shares"
check "cas init prints 3 shares" test "$(wc -l <"$T/shares")" = 3
run cas init --shares 3 --threshold 2
check "a second init is refused (exit 1)" test "$RC" = 1
check "the keyring holds no share" bash -c "! grep -aqF \"\$(head -1 '$T/shares' | cut -d: -f3)\" '$T/state/keyring'"
"$CLOISTER" cas unseal <<<"$(sed -n 1p "$T/shares")" >"$T/out" 2>&1
check "one share: still sealed, 1 of 2" grep -q 'sealed: 1 of 2' "$T/out"
run cas unseal <<<"$(sed -n 1p "$T/shares")"
check "the same share twice is refused" test "$RC" = 1
run session list --identity "$T/a"
check "a sealed CAS answers no session calls" test "$RC" = 1
"$CLOISTER" cas unseal <<<"$(sed -n 3p "$T/shares")" >"$T/out" 2>&1
check "the second share unseals" grep -q '^unsealed' "$T/out"
check "/readyz answers 200 once unsealed" test "$(NOID=1 api "https://127.0.0.1:$PORT/readyz")" = 200

# ---- restart: sealed again, wrong shares, right shares ---------------------------------------
stop_cas
start_cas
run cas status
check "after a restart the CAS is sealed" grep -q 'sealed: 0 of 2' "$T/out"
check "... with the same key hash" test "$(json_field '["key_hash"]' <"$T/ports")" = "$KEY"
# A share with one digit changed fails its check before anything is combined.
bad=$(sed -n 2p "$T/shares" | python3 -c 'import sys; s=sys.stdin.read().strip(); p=s.split(":"); h=p[2]; p[2]=("1" if h[0]!="1" else "2")+h[1:]; print(":".join(p))')
run cas unseal <<<"$bad"
check "a mistyped share is refused" test "$RC" = 1
"$CLOISTER" cas unseal <<<"$(sed -n 2p "$T/shares")" >/dev/null 2>&1
"$CLOISTER" cas unseal <<<"$(sed -n 3p "$T/shares")" >"$T/out" 2>&1
check "two right shares unseal after a restart" grep -q '^unsealed' "$T/out"

# ---- sessions --------------------------------------------------------------------------------
MEAS=$(printf 'a%.0s' $(seq 64))
EXPLICIT="explicit-value-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
MARKER="policy-marker-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat >"$T/s1.yaml" <<EOF
name: team/app
version: "1"
services:
  - name: api
    measurements: [$MEAS]
    command: python3 /app/main.py --mode $MARKER
    environment:
      DB_PASSWORD: "\$\$CLOISTER::db_password\$\$"
      API_TOKEN: "\$\$CLOISTER::token:hex\$\$"
    pwd: /app
secrets:
  - name: db_password
    kind: ascii
    size: 24
  - name: token
    kind: explicit
    value: "$EXPLICIT"
security:
  attestation:
    allowed: [sim]
    tolerate: [simulation]
EOF
run session verify -f "$T/s1.yaml"
check "verify accepts a valid document offline" test "$RC" = 0
run session create -f "$T/s1.yaml" --identity "$T/a"
check "create succeeds" test "$RC" = 0
check "... and reports the generated secret" grep -q 'db_password' "$T/out"
H1=$(grep -o 'hash [0-9a-f]*' "$T/out" | cut -d' ' -f2)
check "... with the document's SHA-256 as hash" test "$H1" = "$(sha256sum <"$T/s1.yaml" | cut -d' ' -f1)"
run session create -f "$T/s1.yaml" --identity "$T/a"
check "creating an existing session is refused (exit 1)" test "$RC" = 1
run session show team/app --identity "$T/a"
check "the creator can show it" test "$RC" = 0
check "show never returns an explicit secret value" bash -c "! grep -qF '$EXPLICIT' '$T/out'"
check "show lists the secrets by name" grep -q 'db_password (ascii)' "$T/out"
run session show team/app --identity "$T/b"
check "another identity may not read it (exit 1)" test "$RC" = 1
check "... and is told why" grep -q 'may not read' "$T/err"
run session list --identity "$T/b" --json
check "list hides sessions the caller may not read" bash -c "! grep -q team/app '$T/out'"

# update: missing predecessor, stale predecessor, right predecessor
sed 's/^    size: 24$/    size: 24\n  - name: extra\n    kind: binary/' "$T/s1.yaml" >"$T/s2.yaml"
run session update -f "$T/s2.yaml" --identity "$T/a"
check "an update without predecessor is refused (exit 1)" test "$RC" = 1
check "... naming the field" grep -q 'predecessor' "$T/err"
{ echo "predecessor: $(printf 'b%.0s' $(seq 64))"; cat "$T/s2.yaml"; } >"$T/s2-stale.yaml"
run session update -f "$T/s2-stale.yaml" --identity "$T/a"
check "a stale predecessor is refused with exit 4" test "$RC" = 4
{ echo "predecessor: $H1"; cat "$T/s2.yaml"; } >"$T/s2-ok.yaml"
run session update -f "$T/s2-ok.yaml" --identity "$T/b"
check "an identity without update rights is refused" test "$RC" = 1
run session update -f "$T/s2-ok.yaml" --identity "$T/a"
check "an update naming the current hash succeeds" test "$RC" = 0
check "... as version 2" grep -q 'version 2' "$T/out"
check "... generating only the new secret" grep -q 'secrets generated: extra$' "$T/out"
run session update -f "$T/s2-ok.yaml" --identity "$T/a"
check "replaying the same update is stale (exit 4)" test "$RC" = 4
run session history team/app --identity "$T/a" --json
check "history lists both versions" test "$(grep -c '"version"' "$T/out")" = 2
check "... with the author's identity" grep -q "$ID_A" "$T/out"

# access policy: read for ANY, delete only by B
cat >"$T/shared.yaml" <<EOF
name: team/shared
services:
  - name: web
    measurements: [$MEAS]
    command: [nginx, -g, "daemon off;"]
access_policy:
  read: [ANY]
  update: [CREATOR]
  delete: [$ID_B]
EOF
run session create -f "$T/shared.yaml" --identity "$T/a"
check "a session readable by ANY is created" test "$RC" = 0
run session show team/shared --identity "$T/b"
check "... and B can read it" test "$RC" = 0
run session delete team/shared --identity "$T/a"
check "the creator may not delete what only B may delete" test "$RC" = 1
run session delete team/shared --identity "$T/b"
check "B deletes it" test "$RC" = 0
run session show team/shared --identity "$T/a"
check "a deleted session is gone (not found)" grep -q 'no session' "$T/err"

# ---- bad input over the API ------------------------------------------------------------------
check "no client certificate: 401" test "$(NOID=1 api "https://127.0.0.1:$PORT/v1/sessions")" = 401
check "malformed JSON: 400" test "$(api -X POST -d '{"document": ' "https://127.0.0.1:$PORT/v1/sessions")" = 400
check "JSON without a document: 400" test "$(api -X POST -d '{"doc": 1}' "https://127.0.0.1:$PORT/v1/sessions")" = 400
code=$(api -X POST -d '{"document": "name: x\nservices: [\n  - {"}' "https://127.0.0.1:$PORT/v1/sessions")
check "malformed YAML: 400" test "$code" = 400
check "... with the line of the problem" python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); assert d["problems"][0]["line"] > 0' "$T/body"
cat >"$T/bad.yaml" <<EOF
name: team/bad
colour: blue
services:
  - name: api
    measurements: [nothex]
    environment:
      X: "\$\$CLOISTER::nosuch\$\$"
EOF
run session create -f "$T/bad.yaml" --identity "$T/a"
check "a document with several problems is refused (exit 1)" test "$RC" = 1
check "... reporting the unknown field with its line" grep -q ':2:[0-9]*: colour' "$T/err"
check "... the ill-formed measurement" grep -q 'measurements' "$T/err"
check "... and the dangling placeholder, all in one response" grep -q 'nosuch' "$T/err"
run session verify -f "$T/bad.yaml"
check "verify finds the same problems offline" test "$RC" = 1
python3 -c 'import json; print(json.dumps({"document": "name: big\n#" + "x" * (3 << 20)}))' >"$T/huge.json"
check "a huge body: 413" test "$(api -X POST --data-binary @"$T/huge.json" "https://127.0.0.1:$PORT/v1/sessions")" = 413
check "unknown route: 404" test "$(api "https://127.0.0.1:$PORT/v2/nothing")" = 404
# Volume commits: a well-formed report whose token this CAS did not issue.
python3 -c '
import base64, json, os
b64 = lambda n: base64.b64encode(os.urandom(n)).decode()
print(json.dumps({"token": b64(60), "key": base64.b64encode(b"\x04" + os.urandom(64)).decode(), "volume": "data",
                  "seq": 1, "tag": "ab" * 32, "signature": b64(70)}))' >"$T/commit.json"
code=$(NOID=1 api -X POST --data-binary @"$T/commit.json" "https://127.0.0.1:$ATTEST_PORT/v1/volumes/commit")
check "a commit report with a forged token: 403" test "$code" = 403
check "... reason token-invalid" grep -q '"reason":"token-invalid"' "$T/body"
code=$(NOID=1 api -X POST -d '{"seq": 1}' "https://127.0.0.1:$ATTEST_PORT/v1/volumes/commit")
check "a malformed commit report: 400 bad-request" bash -c "test $code = 400 && grep -q bad-request '$T/body'"
code=$(api -X POST --data-binary @"$T/commit.json" "https://127.0.0.1:$PORT/v1/volumes/commit")
check "a commit relayed by a caller that is not a node: 403 node-not-allowed" bash -c \
  "test $code = 403 && grep -q node-not-allowed '$T/body'"
run session volumes team/app --identity "$T/a"
check "session volumes of a session without volumes says so" grep -q "has no volumes" "$T/out"

# Slow clients: connections that never finish their request hold no more
# than a thread each until the read timeout, and others are still served.
python3 - "$PORT" >"$T/slow.out" 2>&1 <<'EOF' &
import socket, ssl, sys, time
port = int(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conns = []
for _ in range(20):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
    s.sendall(b"GET /v1/sessions HTTP/1.1\r\nHost: x\r\n")  # never finished
    conns.append(s)
start = time.time()
closed = 0
for s in conns:
    s.settimeout(30)
    try:
        while s.recv(4096) != b"":  # an error response, then the close
            pass
        closed += 1
    except (ssl.SSLError, ConnectionError):
        closed += 1
print("closed", closed, "after", round(time.time() - start))
EOF
SLOW_PID=$!
sleep 1
start=$(date +%s%N)
run session list --identity "$T/a"
check "while 20 slow clients wait, others are served" test "$RC" = 0
check "... promptly (under 2 s)" test $(( ($(date +%s%N) - start) / 1000000 )) -lt 2000
wait "$SLOW_PID"
SLOW_PID=""
check "slow clients are dropped after the read timeout" grep -q "^closed 20 after" "$T/slow.out"
check "the CAS still serves after all of that" test "$(NOID=1 api "https://127.0.0.1:$PORT/readyz")" = 200

# ---- metrics -------------------------------------------------------------------------------
NOID=1 api "https://127.0.0.1:$PORT/metrics" >/dev/null
cp "$T/body" "$T/metrics"
check "metrics count requests by route and status" \
  grep -q 'cloister_cas_requests_total{route="/v1/sessions",method="POST",status="201"}' "$T/metrics"
check "metrics have latency histograms" grep -q 'cloister_cas_request_duration_seconds_bucket{route="/v1/sessions/{name}"' "$T/metrics"
check "metrics count sessions" grep -q '^cloister_cas_sessions 1$' "$T/metrics"
check "metrics give the store size" grep -Eq '^cloister_cas_store_bytes [1-9]' "$T/metrics"
check "metrics count refused volume commits by reason" \
  grep -q '^cloister_cas_volume_commits_total{result="token-invalid"} 1$' "$T/metrics"

# ---- nothing secret in the logs or the state directory ----------------------------------------
stop_cas
check "the state directory holds no explicit secret value" bash -c "! grep -raqF '$EXPLICIT' '$T/state'"
check "... and no policy string" bash -c "! grep -raqF '$MARKER' '$T/state'"
check "... and no session name" bash -c "! grep -raqF 'team/app' '$T/state'"
check "the log holds no explicit secret value" bash -c "! grep -qF '$EXPLICIT' '$T/cas.log' '$T/cas.out'"
check "the log holds no policy string" bash -c "! grep -qF '$MARKER' '$T/cas.log' '$T/cas.out'"
share_hex=$(sed -n 1p "$T/shares" | cut -d: -f3)
check "the log holds no share" bash -c "! grep -qF '$share_hex' '$T/cas.log' '$T/cas.out'"
check "the log has one line per request" grep -q 'POST /v1/sessions 201' "$T/cas.log"

# ---- development unseal with a key file ---------------------------------------------------------
rm -rf "$T/state"
start_cas --unseal-key-file "$T/unseal.key"
check "a key-file CAS is unsealed at start" test "$(NOID=1 api "https://127.0.0.1:$PORT/readyz")" = 200
check "the unseal key file is mode 0600" test "$(stat -c %a "$T/unseal.key")" = 600
stop_cas
cp "$T/unseal.key" "$T/other.key"
printf 'cloister-unseal-key-v1:%064d\n' 0 >"$T/other.key"
"$CAS_BIN" --state-dir "$T/state" --api-listen 127.0.0.1:0 --attest-listen 127.0.0.1:0 \
  --unseal-key-file "$T/other.key" >/dev/null 2>"$T/err"
check "a wrong unseal key file stops the CAS (exit 1)" test $? = 1
check "... with one line saying why" test "$(wc -l <"$T/err")" = 1

# Under sanitizers (scripts/test.sh runs this test against the ASan build
# too) any report lands in the CAS's log.
check "no sanitizer report from the CAS" bash -c "! grep -Eq 'Sanitizer|runtime error' '$T/cas.log'"

# ---- start-up checks ------------------------------------------------------------------------
"$CAS_BIN" --state-dir "$T/new" --validate >"$T/out" 2>&1
check "--validate accepts a good configuration" test $? = 0
check "... and creates nothing" test ! -e "$T/new"
"$CAS_BIN" --state-dir "$T/new" --no-such-flag >/dev/null 2>&1
check "an unknown flag is a usage error (exit 2)" test $? = 2
mkdir -m 755 "$T/open-state"
"$CAS_BIN" --state-dir "$T/open-state" --validate >/dev/null 2>"$T/err"
check "a state directory others can read is refused" test $? = 1
check "... saying how to fix it" grep -q 'chmod 700' "$T/err"
printf 'state_dir: %s\ncolour: blue\n' "$T/state" >"$T/cas.yaml"
"$CAS_BIN" --config "$T/cas.yaml" --validate >/dev/null 2>"$T/err"
check "a config file with an unknown field is refused" grep -q "unknown field 'colour'" "$T/err"

finish
