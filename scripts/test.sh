#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#  1. the unit and integration tests (ctest) in a normal build;
#  2. the unit tests and the CAS API test again under AddressSanitizer and
#     UndefinedBehaviorSanitizer;
#  3. the tests that use threads under ThreadSanitizer;
#  4. short libFuzzer runs over the parsers of untrusted input (volume
#     structures on disk, session documents uploaded to the CAS, evidence,
#     hardware quotes and reports).
source "$(dirname "$0")/deps.sh"
cd "$CLOISTER_ROOT"

cloister_install "${CLOISTER_BUILD_DEPS[@]}" "${CLOISTER_TEST_DEPS[@]}"
start=$(date +%s)
phase_start=$start
# Prints how long the phase that just ended took, for keeping CI short.
phase_done() {
  local now
  now=$(date +%s)
  echo "== ($1 took $((now - phase_start)) s)"
  phase_start=$now
}

echo "== build and test (RelWithDebInfo)"
# The sanitizer builds below compile at -O1 with line tables only: the
# sanitizers' reports keep their file:line frames and these builds take half
# the time they take at -O2 -g (most of the test command's time is spent
# compiling).
SANITIZER_FLAGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG")
cloister_build build -DCLOISTER_TESTS=ON
(cd build && ctest --output-on-failure -j 2)
phase_done "build and test"

echo "== unit tests under ASan + UBSan"
# Only what these tests run: the unit test executables (the unit_tests
# target) and, for the CAS API test, the CAS; the test drives it with the
# CLI of the normal build.
cmake -S "$CLOISTER_ROOT" -B build-asan "${SANITIZER_FLAGS[@]}" -DCLOISTER_TESTS=ON \
  -DCLOISTER_SANITIZE=address,undefined -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=undefined" \
  -DCLOISTER_TEST_CLI="$CLOISTER_ROOT/build/cloister" >/dev/null
cmake --build build-asan -j "$(nproc)" --target unit_tests cloister-cas
# With them, the CAS serving real TLS requests, bad input and slow clients
# (the cas_test script, label cas_api). The model test runs half of its
# seeds here (model_test); the normal build above ran all of them.
(cd build-asan && ctest --output-on-failure -j 2 -L '^(unit|cas_api)$' -E '^model_test_2$')
phase_done "ASan + UBSan"

echo "== threaded tests under ThreadSanitizer"
cmake -S "$CLOISTER_ROOT" -B build-tsan "${SANITIZER_FLAGS[@]}" -DCLOISTER_TESTS=ON \
  -DCLOISTER_SANITIZE=thread >/dev/null
# Each of these tests runs the executable of its own name.
tsan_tests=(base_test crypto_test os_test volume_test service_test store_test las_test)
cmake --build build-tsan -j "$(nproc)" --target "${tsan_tests[@]}"
(cd build-tsan && ctest --output-on-failure -R "^($(IFS='|'; echo "${tsan_tests[*]}"))\$")
phase_done "ThreadSanitizer"

echo "== fuzz smoke run (libFuzzer, ${CLOISTER_FUZZ_SECONDS:-20} s)"
# The libraries are instrumented for coverage too (fuzzer-no-link), so the
# fuzzer sees the branches of the parsers, not only of the harness.
cmake -S "$CLOISTER_ROOT" -B build-fuzz "${SANITIZER_FLAGS[@]}" -DCMAKE_CXX_COMPILER=clang++ \
  -DCLOISTER_FUZZ=ON -DCLOISTER_TESTS=OFF -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target volume_format_fuzz policy_fuzz evidence_fuzz las_wire_fuzz \
  dcap_fuzz snp_fuzz tpm_quote_fuzz
corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
CLOISTER_FUZZ_SEEDS="$corpus" ./build-fuzz/volume_format_fuzz "$corpus" -max_len=65536 \
  -max_total_time="${CLOISTER_FUZZ_SECONDS:-20}" -print_final_stats=1 2>&1 | tail -3
echo "== policy fuzz smoke run (libFuzzer, ${CLOISTER_POLICY_FUZZ_SECONDS:-12} s, seeded from tests/policy)"
mkdir "$corpus/policy"
./build-fuzz/policy_fuzz "$corpus/policy" tests/policy -dict=tests/policy/policy_fuzz.dict -max_len=65536 \
  -max_total_time="${CLOISTER_POLICY_FUZZ_SECONDS:-12}" -print_final_stats=1 2>&1 | tail -3

echo "== evidence fuzz smoke run (libFuzzer, ${CLOISTER_EVIDENCE_FUZZ_SECONDS:-10} s, seeded with a signed evidence)"
mkdir "$corpus/evidence"
CLOISTER_FUZZ_SEEDS="$corpus/evidence" ./build-fuzz/evidence_fuzz "$corpus/evidence" -max_len=8192 \
  -max_total_time="${CLOISTER_EVIDENCE_FUZZ_SECONDS:-10}" -print_final_stats=1 2>&1 | tail -3

echo "== LAS socket and base64 fuzz smoke run (libFuzzer, ${CLOISTER_WIRE_FUZZ_SECONDS:-10} s)"
mkdir "$corpus/wire"
./build-fuzz/las_wire_fuzz "$corpus/wire" -max_len=4096 -max_total_time="${CLOISTER_WIRE_FUZZ_SECONDS:-10}" \
  -print_final_stats=1 2>&1 | tail -3

# Hardware evidence, seeded with the public vectors (real quotes and
# reports) when they sit next to the source tree, and with well-formed
# examples the targets write themselves.
hw_seconds="${CLOISTER_HW_FUZZ_SECONDS:-5}"
echo "== hardware evidence fuzz smoke runs (libFuzzer, $hw_seconds s each)"
vectors="${CLOISTER_TESTDATA:-$CLOISTER_ROOT/../shared/testdata}"
mkdir "$corpus/dcap" "$corpus/snp" "$corpus/tpm"
if [[ -f "$vectors/attestation/MANIFEST.md" ]]; then
  export CLOISTER_TESTDATA="$vectors"
  cp "$vectors"/attestation/dcap-qvl/{sgx,tdx}_quote "$vectors"/attestation/trustee/tdx_quote_5.dat "$corpus/dcap/"
  cp "$vectors"/attestation/tpm/quote.msg "$vectors"/attestation/tpm/quote.sig.tss "$corpus/tpm/"
else
  echo "(attestation vectors not found: seeds are the targets' own examples only)"
fi
./build-fuzz/dcap_fuzz "$corpus/dcap" -max_len=16384 -max_total_time="$hw_seconds" -print_final_stats=1 2>&1 | tail -3
CLOISTER_FUZZ_SEEDS="$corpus/snp" ./build-fuzz/snp_fuzz "$corpus/snp" -max_len=2048 -max_total_time="$hw_seconds" \
  -print_final_stats=1 2>&1 | tail -3
CLOISTER_FUZZ_SEEDS="$corpus/tpm" ./build-fuzz/tpm_quote_fuzz "$corpus/tpm" -max_len=4096 \
  -max_total_time="$hw_seconds" -print_final_stats=1 2>&1 | tail -3

phase_done "fuzzing"
echo "== all tests passed in $(( $(date +%s) - start )) s"
