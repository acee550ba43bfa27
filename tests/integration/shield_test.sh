#!/usr/bin/env bash
# End-to-end checks of the file shield with unmodified python3: a protected
# volume mounted from the session, written and read through plain file
# calls, the csv module, imports and sqlite3 in WAL mode, across processes
# (fork) and across starts, with nothing readable on the disk, and a
# tampered volume that is never read as data.
# Usage: shield_test.sh cloister cloister-cas cloister-las libcloister-runtime.so
set -u
CLOISTER="$1"
CAS_BIN="$2"
LAS_BIN="$3"
RUNTIME="$4"
T="$(mktemp -d)"
PIDS=()
source "$(dirname "$0")/checks.sh"
source "$(dirname "$0")/services.sh"
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || { echo "SKIP: $PYTHON is not installed"; exit 0; }
"$PYTHON" -c 'import sqlite3' 2>/dev/null || { echo "SKIP: python3 has no sqlite3 module"; exit 0; }

# shielded SCRIPT [ARGS...]: python3 SCRIPT under the runtime as service sh/py;
# output in $T/out and $T/err, exit status in RC.
shielded() {
  "$CLOISTER" run --cas-key "$main_KEY" --las "$T/las1.sock" --config sh/py --runtime "$RUNTIME" -- \
    "$PYTHON" "$@" >"$T/out" 2>"$T/err"
  RC=$?
  if [ "$RC" != 0 ]; then echo "--- $* exited $RC:"; cat "$T/err"; fi
}

"$CLOISTER" identity create --identity "$T/a" >"$T/a.id"
ID_A=$(cat "$T/a.id")
start_cas main
start_las las1 main
D="$T/data"
cat >"$T/s.yaml" <<DOC
name: sh
services:
  - name: py
    measurements: [$("$CLOISTER" measure "$PYTHON" | awk '{print $1}'), $("$CLOISTER" measure "$RUNTIME" | awk '{print $1}')]
    mounts:
      - volume: data
        path: $D
volumes:
  - name: data
security:
  attestation:
    allowed: [sim]
    tolerate: [simulation]
DOC
"$CLOISTER" session create --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" -f "$T/s.yaml" --identity "$T/a" >/dev/null
check "the session with a volume is created" test $? = 0

cat >"$T/write.py" <<'PY'
import csv, importlib, os, sqlite3, sys
d = sys.argv[1]
os.makedirs(d + "/in", exist_ok=True)
with open(d + "/in/prices.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["item", "price"])
    for i in range(2000):
        w.writerow(["confidential-item-%d" % i, i])
with open(d + "/in/prices.csv", newline="") as f:
    rows = list(csv.DictReader(f))
with open(d + "/total.txt", "w") as f:
    f.write("total %d\n" % sum(int(r["price"]) for r in rows))
print(open(d + "/total.txt").read().strip())
os.makedirs(d + "/lib", exist_ok=True)
with open(d + "/lib/hiddenmodule.py", "w") as f:
    f.write("ANSWER = 'from-an-encrypted-module'\n")
sys.path.insert(0, d + "/lib")
print("import", importlib.import_module("hiddenmodule").ANSWER)
db = sqlite3.connect(d + "/app.db")
print("journal", db.execute("pragma journal_mode=wal").fetchone()[0])
db.execute("create table if not exists t(k integer primary key, v text)")
with db:
    for i in range(500):
        db.execute("insert into t(v) values (?)", ("secret-row-%d" % i,))
print("rows", db.execute("select count(*) from t").fetchone()[0])
print("listing", " ".join(sorted(os.listdir(d))))
print("cwd-listing", " ".join(sorted(os.listdir(d + "/in"))))
PY
shielded "$T/write.py" "$D"
check "python3 runs with the volume mounted" test "$RC" = 0
check "csv: written and read back through the shield" grep -qx "total 1999000" "$T/out"
check "a module is imported from the volume" grep -qx "import from-an-encrypted-module" "$T/out"
check "sqlite3 runs in WAL mode on the volume" grep -qx "journal wal" "$T/out"
check "sqlite3 sees its rows" grep -qx "rows 500" "$T/out"
check "the directory lists the files written" grep -qx "listing app.db app.db-shm app.db-wal in lib total.txt" "$T/out"
check "the disk holds the volume format, not the files" test -f "$D/cloister-volume" -a ! -e "$D/in"
volumes() { "$CLOISTER" session volumes sh --cas "127.0.0.1:$main_API" --cas-key "$main_KEY" --identity "$T/a"; }
seq_at_cas() { volumes | awk '$1 == "data" {print $2}'; }
SEQ_A=$(seq_at_cas)
check "the CAS recorded the program's last commit before it exited" test "${SEQ_A:-0}" -ge 1
cp -a "$D" "$T/data.A"

cat >"$T/read.py" <<'PY'
import os, sqlite3, sys
d = sys.argv[1]
print(open(d + "/total.txt").read().strip())
db = sqlite3.connect(d + "/app.db")
print("rows", db.execute("select count(*) from t").fetchone()[0])
print("first", db.execute("select v from t order by k limit 1").fetchone()[0])
PY
shielded "$T/read.py" "$D"
check "a second start reads what the first wrote" grep -qx "total 1999000" "$T/out"
check "a second start reads the database" grep -qx "rows 500" "$T/out"
check "a second start reads the rows' contents" grep -qx "first secret-row-0" "$T/out"
check "no plaintext content on the disk" bash -c "! grep -rqa -e confidential-item -e secret-row -e from-an-encrypted-module '$D'"
check "no plaintext names on the disk" bash -c "! grep -rqa -e prices.csv -e hiddenmodule -e app.db '$D'"
check "no plaintext file names in the volume directory" bash -c "! find '$D' | grep -q -e prices -e hiddenmodule -e app.db"

cat >"$T/fork.py" <<'PY'
import os, sys
d = sys.argv[1]
fd = os.open(d + "/shared.log", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
os.write(fd, b"parent-before\n")
pid = os.fork()
if pid == 0:
    os.write(fd, b"child\n")  # the inherited descriptor: the same offset
    with open(d + "/from-child.txt", "w") as f:
        f.write("written by the child\n")
    os._exit(0)
os.waitpid(pid, 0)
os.write(fd, b"parent-after\n")
os.close(fd)
print("log", open(d + "/shared.log").read().replace("\n", "|"))
print("child-file", open(d + "/from-child.txt").read().strip())
PY
shielded "$T/fork.py" "$D"
check "fork: parent and child share the inherited descriptor" grep -qx "log parent-before|child|parent-after|" "$T/out"
check "fork: the parent reads a file the child wrote" grep -qx "child-file written by the child" "$T/out"
shielded "$T/read.py" "$D"
check "fork: the volume still opens" test "$RC" = 0

cat >"$T/kill.py" <<'PY'
import os, signal, sys
d = sys.argv[1]
with open(d + "/durable.txt", "w") as f:
    f.write("synced before the kill\n")
    f.flush()
    os.fsync(f.fileno())
os.kill(os.getpid(), signal.SIGKILL)
PY
shielded "$T/kill.py" "$D"
check "SIGKILL: the program died" test "$RC" = 137
cat >"$T/cat.py" <<'PY'
import sys
print(open(sys.argv[1]).read().strip())
PY
shielded "$T/cat.py" "$D/durable.txt"
check "SIGKILL: what was fsync'd is there at the next start" grep -qx "synced before the kill" "$T/out"

cat >"$T/copy.py" <<'PY'
import os, shutil, sys
d = sys.argv[1]
shutil.copyfile(d + "/total.txt", d + "/copied.txt")  # sendfile or copy_file_range into the volume
src = os.open(d + "/total.txt", os.O_RDONLY)
dst = os.open(d + "/spliced.txt", os.O_CREAT | os.O_WRONLY, 0o600)
os.sendfile(dst, src, 0, 100)
os.close(src)
os.close(dst)
PY
shielded "$T/copy.py" "$D"
shielded "$T/cat.py" "$D/copied.txt"
check "a kernel copy into a shielded file is committed" grep -qx "total 1999000" "$T/out"
shielded "$T/cat.py" "$D/spliced.txt"
check "sendfile into a shielded file is committed" grep -qx "total 1999000" "$T/out"

cat >"$T/unsupported.py" <<'PY'
import errno, os, sys
d = sys.argv[1]
try:
    os.link(d + "/total.txt", d + "/hardlink")
    print("link made")
except OSError as e:
    print("link", errno.errorcode[e.errno])
try:
    os.rename(d + "/total.txt", "/tmp/outside-the-volume")
except OSError as e:
    print("rename-out", errno.errorcode[e.errno])
PY
shielded "$T/unsupported.py" "$D"
check "hard links on a volume fail with EPERM" grep -qx "link EPERM" "$T/out"
check "renaming out of a volume fails with EXDEV" grep -qx "rename-out EXDEV" "$T/out"

# ---- rollback and tampering while the program is stopped ------------------------------------
cp -a "$D" "$T/data.good"
check "later commits reached the CAS" test "$(seq_at_cas)" -gt "$SEQ_A"
rm -rf "$D" && cp -a "$T/data.A" "$D"
shielded "$T/read.py" "$D" 2>/dev/null
check "a whole volume rolled back to an older copy is refused at start" test "$RC" = 70
check "the refusal is one line naming the volume and the rollback" \
  bash -c "[ \$(wc -l <'$T/err') = 1 ] && grep -q 'volume data at .*not in the expected state' '$T/err'"
check "a refused start printed nothing of the program" test ! -s "$T/out"
rm -rf "$D" && cp -a "$T/data.good" "$D"
cp "$T/data.A"/journal.* "$D/"
shielded "$T/read.py" "$D" 2>/dev/null
check "the journal rolled back under newer objects is refused at start" test "$RC" = 70
rm -rf "$D" && cp -a "$T/data.good" "$D"
shielded "$T/read.py" "$D"
check "the current copy still starts" grep -qx "rows 500" "$T/out"
# That start committed (sqlite checkpoints at close): this is the newest copy now.
rm -rf "$T/data.good" && cp -a "$D" "$T/data.good"
rm -rf "$D" && mkdir "$D"
shielded "$T/read.py" "$D" 2>/dev/null
check "an emptied volume directory is refused, not started afresh" test "$RC" = 70
rm -rf "$D" && cp -a "$T/data.good" "$D"
biggest=$(find "$D/objects" -type f -printf '%s %p\n' | sort -n | tail -1 | awk '{print $2}')
"$PYTHON" - "$biggest" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(100)
    b = f.read(1)
    f.seek(100)
    f.write(bytes([b[0] ^ 1]))
PY
cat >"$T/readall.py" <<'PY'
import os, sys
d = sys.argv[1]
for root, dirs, files in os.walk(d):
    for name in files:
        try:
            open(os.path.join(root, name), "rb").read()
        except OSError as e:
            print("error", name, e.strerror)
print("done")
PY
shielded "$T/readall.py" "$D"
check "a flipped byte: the read fails with EIO, or the start is refused" \
  bash -c "grep -q 'error .* Input/output error' '$T/out' || { [ '$RC' != 0 ] && ! grep -q done '$T/out'; }"
rm -rf "$D" && cp -a "$T/data.good" "$D"
shielded "$T/read.py" "$D"
check "the untampered copy still reads" grep -qx "rows 500" "$T/out"

finish
