#!/usr/bin/env bash
# The main job: attestation at every program start, end to end, on this
# machine. Starts a CAS and a LAS on loopback (state in build/demo,
# development unseal key), creates an identity and a session, and runs an
# unmodified python3 script under the runtime: it receives a secret the CAS
# generated in its environment and a configuration file injected from the
# session, and prints proof that it has them, never the values. Then the
# refusals: another program (perl) under the same configuration id, and the
# same python3 after the session's measurement is changed. Installs what is
# missing and builds first.
source "$(dirname "$0")/deps.sh"
cd "$CLOISTER_ROOT"

cloister_install "${CLOISTER_BUILD_DEPS[@]}" python3 curl
echo "building (see build/demo-build.log)"
mkdir -p build
cloister_build build -DCLOISTER_TESTS=OFF > build/demo-build.log 2>&1 || { cat build/demo-build.log; exit 1; }
B="$CLOISTER_ROOT/build"
cloister="$B/cloister"
runtime="$B/libcloister-runtime.so"
python=/usr/bin/python3
perl=/usr/bin/perl

state="$B/demo"
rm -rf "$state"
mkdir -p "$state"
chmod 700 "$state"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
wait_for() { for _ in $(seq 100); do eval "$1" && return 0; sleep 0.1; done; echo "timed out: $1"; exit 1; }

say "An administrator identity (a P-256 key and certificate, the key mode 0600)"
admin=$(run "$cloister" identity create --identity "$state/admin")
echo "identity $admin"

say "The CAS: loopback ports, state in $state/cas, development unseal key (in production: key shares)"
run "$B/cloister-cas" --state-dir "$state/cas" --api-listen 127.0.0.1:0 --attest-listen 127.0.0.1:0 \
  --unseal-key-file "$state/unseal.key" --admin "$admin" --ports-file "$state/cas.ports" \
  >"$state/cas.out" 2>"$state/cas.log" &
pids+=($!)
wait_for "[ -s '$state/cas.ports' ]"
api="127.0.0.1:$(field "$state/cas.ports" api)"
attest="127.0.0.1:$(field "$state/cas.ports" attest)"
key=$(field "$state/cas.ports" key_hash)
echo "client API on $api, attestation endpoint on $attest, CAS key $key"
export CLOISTER_CAS_ADDR="$api" CLOISTER_CAS_KEY="$key"

say "The LAS joins the CAS with a single-use token, then serves evidence on a Unix socket"
run "$cloister" cas join-token create --identity "$state/admin" --ttl 10m --out "$state/join.token"
run "$B/cloister-las" --state-dir "$state/las" --cas "$api" --cas-key "$key" --socket "$state/las.sock" \
  --join-token-file "$state/join.token" --name demo-node >"$state/las.out" 2>"$state/las.log" &
pids+=($!)
wait_for "grep -q 'listening on' '$state/las.out'"
cat "$state/las.out"
run "$cloister" node list --identity "$state/admin"

say "The program and what the session allows it to run as"
cat >"$state/app.py" <<'PY'
# An ordinary Python script: nothing in it knows about Cloister.
import hashlib, os, sys
password = os.environ.get("DB_PASSWORD", "")
with open("/etc/demo/app.conf") as f:
    conf = f.read()
print("  arguments from the session:", sys.argv[1:])
print("  working directory:", os.getcwd())
print("  DB_PASSWORD: %d characters, SHA-256 starts %s" % (len(password), hashlib.sha256(password.encode()).hexdigest()[:12]))
print("  /etc/demo/app.conf: %d bytes, holds the same password: %s" % (len(conf), ("password = " + password) in conf))
print("  the host's environment is gone:", "HOST_SECRET" not in os.environ)
PY
py_m=$("$cloister" measure "$python" | awk '{print $1}')
rt_m=$("$cloister" measure "$runtime" | awk '{print $1}')
echo "python3 ($python): $py_m"
echo "runtime ($runtime): $rt_m"
write_session() {  # write_session MEASUREMENT [PREDECESSOR]
  {
    [ -n "${2:-}" ] && echo "predecessor: $2"
    cat <<DOC
name: demo
services:
  - name: app
    measurements: [$1, $rt_m]
    command: ["python3", "$state/app.py", "--from-the-session"]
    pwd: $state
    environment:
      DB_PASSWORD: "\$\$CLOISTER::db_password\$\$"
    files:
      - path: /etc/demo/app.conf
        content: |
          # injected by the CAS: never written to disk
          password = \$\$CLOISTER::db_password\$\$
secrets:
  - name: db_password
    kind: ascii
    size: 24
security:
  attestation:
    allowed: [sim]
    tolerate: [simulation]   # no hardware TEE here: this protects nothing in use
DOC
  } >"$state/session.yaml"
}
write_session "$py_m"
cat "$state/session.yaml"
run "$cloister" session create -f "$state/session.yaml" --identity "$state/admin"

say "Start python3 under the runtime: it attests before main and gets its configuration"
# No --cas: the LAS relays the attestation to its CAS (docs/protocol.md section 6).
start() { run "$cloister" run --las "$state/las.sock" --config demo/app --runtime "$runtime" -- "$@"; }
HOST_SECRET=leaked start "$python" -c 'print("the host chose these arguments")'
echo "(the host asked for -c '...'; the session decided. /etc/demo/app.conf on disk: $(ls /etc/demo/app.conf 2>&1 | sed 's/.*: //'))"

say "Refused: another program (perl) under the same configuration id"
set +e
start "$perl" -e 'print "perl ran\n"'
echo "exit status $? (main never ran)"

say "Refused: the same python3 after the session's measurement is changed"
hash=$("$cloister" session show demo --identity "$state/admin" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["hash"])')
write_session "$(printf '%064d' 0)" "$hash"
run "$cloister" session update -f "$state/session.yaml" --identity "$state/admin"
start "$python"
echo "exit status $?"
set -e

say "What the CAS recorded"
run "$cloister" session attestations demo --identity "$state/admin"
curl -sk "https://$api/metrics" | grep '^cloister_cas_attestations_total'

say "Done. The state is in $state; the CAS and LAS stop now."
