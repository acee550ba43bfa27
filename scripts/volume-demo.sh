#!/usr/bin/env bash
# The protected-volume walk-through: seal a sample directory into a protected volume, show that
# the disk holds only ciphertext, read it back, and show that a tampered or
# rolled-back volume is refused. Installs what is missing and builds first.
source "$(dirname "$0")/deps.sh"
cd "$CLOISTER_ROOT"

cloister_install "${CLOISTER_BUILD_DEPS[@]}"
echo "building (see build/demo-build.log)"
mkdir -p build
cloister_build build -DCLOISTER_TESTS=OFF > build/demo-build.log 2>&1 || { cat build/demo-build.log; exit 1; }
cloister="$CLOISTER_ROOT/build/cloister"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

say "A directory of sensitive data"
mkdir -p "$work/plain/config" "$work/plain/records"
cat > "$work/plain/config/service.conf" <<'CONF'
database_password = correct-horse-battery-staple
api_token = tok_live_4f9a8c1d2e7b
CONF
{
  echo "patient_id,name,diagnosis"
  for i in $(seq 1 2000); do echo "$i,Patient Name $i,condition-$((i % 17))"; done
} > "$work/plain/records/patients.csv"
head -c 3000000 /dev/urandom > "$work/plain/records/scan.bin"
run find "$work/plain" -type f -printf '%P  %s bytes\n'

say "Seal it into a protected volume (a fresh key is created, mode 0600)"
tag1=$(run "$cloister" volume seal "$work/plain" "$work/vol" --key-file "$work/vol.key")
echo "tag: $tag1"
ls -l "$work/vol.key"

say "What the disk holds: random names, ciphertext only"
run find "$work/vol" -type f -printf '%P  %s bytes\n'
for secret in correct-horse-battery-staple "Patient Name" patients.csv service.conf records; do
  if grep -rqa -- "$secret" "$work/vol"; then
    echo "FOUND '$secret' on disk: this must not happen"; exit 1
  else
    echo "'$secret' does not appear anywhere in the volume directory"
  fi
done

say "Read it back with the key"
run "$cloister" volume ls "$work/vol" --key-file "$work/vol.key"
run "$cloister" volume cat "$work/vol" /config/service.conf --key-file "$work/vol.key"
run "$cloister" volume verify "$work/vol" --key-file "$work/vol.key" --tag "$tag1"

say "Change a file: every commit gives a new tag"
cp -a "$work/vol" "$work/vol-old-copy"
tag2=$(echo "api_token = rotated" | run "$cloister" volume put "$work/vol" /config/token --key-file "$work/vol.key")
echo "new tag: $tag2"

say "Tampering: flip one byte of the patients file's ciphertext"
cp -a "$work/vol" "$work/vol-tampered"
victim=$(ls -S "$work/vol-tampered/objects" | sed -n 2p)   # the second-largest object
printf '\xff' | dd of="$work/vol-tampered/objects/$victim" bs=1 seek=100 conv=notrunc status=none
set +e
run "$cloister" volume cat "$work/vol-tampered" /records/patients.csv --key-file "$work/vol.key" >/dev/null
echo "exit code: $? (3 = integrity failure; no byte of the file was printed)"
run "$cloister" volume verify "$work/vol-tampered" --key-file "$work/vol.key"
echo "exit code: $?"

say "Rollback: the host serves the old copy of the volume, but we expect the new tag"
run "$cloister" volume ls "$work/vol-old-copy" --key-file "$work/vol.key" --tag "$tag2"
echo "exit code: $? (4 = not the expected state)"
set -e

say "Unseal into a fresh directory and compare with the original"
run "$cloister" volume unseal "$work/vol" "$work/out" --key-file "$work/vol.key" --tag "$tag2"
rm "$work/out/config/token"
run diff -r "$work/plain" "$work/out" && echo "identical"
