# ---- cloister-las: the local attestation service (src/las) ----
# Included from the top-level CMakeLists.txt after the libraries it uses
# (cloister_attest, cloister_net, cloister_secret_file) are defined.
# CLI11 and nlohmann/json are header-only, found on the system include path
# as in src/cas. The TPM is reached through tpm2-tss (ESAPI, the TCTI loader,
# marshalling, error texts), found with pkg-config.
pkg_check_modules(TSS2 REQUIRED IMPORTED_TARGET tss2-esys tss2-tctildr tss2-mu tss2-rc)

# The socket codec on its own, for the fuzz target: it needs no more than
# cloister_attest's types and the relayed reply's parser.
add_library(cloister_las_wire STATIC src/las/wire.cc)
target_link_libraries(cloister_las_wire PUBLIC cloister_attest)

add_library(cloister_las STATIC
  src/las/proc_maps.cc
  src/las/measure_cache.cc
  src/las/process_measurer.cc
  src/las/node_certificate.cc
  src/las/node_state.cc
  src/las/node_evidence.cc
  src/las/cas_node_client.cc
  src/las/evidence_service.cc
  src/las/relay_batcher.cc
  src/las/socket_server.cc
  src/las/renewer.cc
  src/las/las_main.cc)
target_link_libraries(cloister_las PUBLIC cloister_las_wire cloister_attest cloister_net cloister_secret_file
  cloister_crypto cloister_os PkgConfig::TSS2 Threads::Threads)

add_executable(cloister-las apps/cloister-las/main.cc)
target_link_libraries(cloister-las PRIVATE cloister_las)

if(CLOISTER_TESTS)
  add_executable(las_test
    src/las/wire_test.cc
    src/las/proc_maps_test.cc
    src/las/measure_cache_test.cc
    src/las/node_certificate_test.cc
    src/las/cas_node_client_test.cc
    src/las/node_evidence_test.cc
    src/las/socket_server_test.cc
    src/las/relay_batcher_test.cc)
  # node_evidence_test acts as the CAS (credential, quote verification) and
  # replays the attestation vectors through a fake configfs-tsm tree.
  target_link_libraries(las_test PRIVATE cloister_las cloister_attest_hw GTest::gtest GTest::gtest_main)
  target_compile_definitions(las_test PRIVATE CLOISTER_TESTDATA_DIR="${CMAKE_SOURCE_DIR}/../shared/testdata")
  add_test(NAME las_test COMMAND las_test)
  set_tests_properties(las_test PROPERTIES LABELS unit)
endif()
