# Sourced by the integration tests: `check WHAT CMD...` runs CMD quietly and
# counts it as passed or failed; `finish` prints the counts and fails the
# test if any check failed.
pass=0
fail=0
check() {
  local what="$1"
  shift
  if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL - $what"; fi
}
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
