# libcloister-runtime.so, the runtime loaded with LD_PRELOAD into unmodified
# programs (see docs/runtime.md). Included from the top-level CMakeLists.txt
# after every other target.
#
# The library goes into foreign processes, so it is built from its own
# sources only: no other project target (those are not -fPIC and would pull
# in shared libcrypto and cpp-httplib), OpenSSL and libstdc++ linked
# statically and kept local (--exclude-libs, hidden visibility), and a
# version script that exports nothing but the interposed libc functions.

set(CLOISTER_RUNTIME_DIR ${CMAKE_CURRENT_LIST_DIR})
# A sanitizer build without tests has nothing of the runtime to build.
if(CLOISTER_SANITIZE AND NOT CLOISTER_TESTS)
  return()
endif()

# The parts that are pure or do their own I/O, shared by the library and
# its unit test. interpose.cc and start.cc define libc's own function names
# and live only in the library: linked into a test executable they would
# replace open() for the test itself.
add_library(cloister_runtime_core OBJECT
  ${CLOISTER_RUNTIME_DIR}/cas_client.cc
  ${CLOISTER_RUNTIME_DIR}/config.cc
  ${CLOISTER_RUNTIME_DIR}/encoding.cc
  ${CLOISTER_RUNTIME_DIR}/injected_files.cc
  ${CLOISTER_RUNTIME_DIR}/io.cc
  ${CLOISTER_RUNTIME_DIR}/las_client.cc
  ${CLOISTER_RUNTIME_DIR}/log.cc
  ${CLOISTER_RUNTIME_DIR}/paths.cc
  ${CLOISTER_RUNTIME_DIR}/relayed.cc
  ${CLOISTER_RUNTIME_DIR}/shield_client.cc
  ${CLOISTER_RUNTIME_DIR}/shield_exec.cc
  ${CLOISTER_RUNTIME_DIR}/shield_report.cc
  ${CLOISTER_RUNTIME_DIR}/shield_server.cc
  ${CLOISTER_RUNTIME_DIR}/shield_wire.cc
  ${CLOISTER_RUNTIME_DIR}/volumes.cc
  # The protected-volume library and what it needs, compiled again here as
  # position-independent code for the file shield's volume server.
  ${CLOISTER_RUNTIME_DIR}/../base/status.cc
  ${CLOISTER_RUNTIME_DIR}/../base/secret.cc
  ${CLOISTER_RUNTIME_DIR}/../base/bytes.cc
  ${CLOISTER_RUNTIME_DIR}/../base/parallel.cc
  ${CLOISTER_RUNTIME_DIR}/../base/clock.cc
  ${CLOISTER_RUNTIME_DIR}/../os/env.cc
  ${CLOISTER_RUNTIME_DIR}/../os/posix_env.cc
  ${CLOISTER_RUNTIME_DIR}/../crypto/crypto.cc
  ${CLOISTER_RUNTIME_DIR}/../volume/format.cc
  ${CLOISTER_RUNTIME_DIR}/../volume/journal.cc
  ${CLOISTER_RUNTIME_DIR}/../volume/volume.cc
  ${CLOISTER_RUNTIME_DIR}/../volume/sync_log.cc
  # Pure code shared with the CAS, which includes nothing but OpenSSL.
  ${CLOISTER_RUNTIME_DIR}/../attest/relay_reply.cc
  ${CLOISTER_RUNTIME_DIR}/../attest/volume_commit.cc
  ${CLOISTER_RUNTIME_DIR}/../crypto/hpke.cc)
target_include_directories(cloister_runtime_core PUBLIC ${CLOISTER_RUNTIME_DIR}/.. ${CLOISTER_RUNTIME_DIR}/../../include
  ${OPENSSL_INCLUDE_DIR})
set_target_properties(cloister_runtime_core PROPERTIES
  POSITION_INDEPENDENT_CODE ON
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
# Lets the linker drop what the library does not use (most of libcrypto).
# The shims check pointers that glibc's headers declare non-null: keep
# those checks, a program passing NULL gets EFAULT from libc, not a crash
# in the runtime.
target_compile_options(cloister_runtime_core PRIVATE -ffunction-sections -fdata-sections
  -fno-delete-null-pointer-checks)

# An ASan/TSan runtime cannot be preloaded into arbitrary programs, so
# sanitizer builds only build (and sanitize) the unit test.
if(NOT CLOISTER_SANITIZE)
  get_filename_component(_cloister_ossl_dir "${OPENSSL_CRYPTO_LIBRARY}" DIRECTORY)
  find_library(CLOISTER_LIBSSL_STATIC NAMES libssl.a HINTS ${_cloister_ossl_dir} NO_CACHE)
  find_library(CLOISTER_LIBCRYPTO_STATIC NAMES libcrypto.a HINTS ${_cloister_ossl_dir} NO_CACHE)
  if(NOT CLOISTER_LIBSSL_STATIC OR NOT CLOISTER_LIBCRYPTO_STATIC)
    message(WARNING "libssl.a/libcrypto.a not found (Debian: libssl-dev): libcloister-runtime.so is not built")
  else()
    add_library(cloister-runtime SHARED
      ${CLOISTER_RUNTIME_DIR}/exec_interpose.cc
      ${CLOISTER_RUNTIME_DIR}/interpose.cc
      ${CLOISTER_RUNTIME_DIR}/start.cc)
    set_target_properties(cloister-runtime PROPERTIES
      OUTPUT_NAME cloister-runtime
      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}
      CXX_VISIBILITY_PRESET hidden
      VISIBILITY_INLINES_HIDDEN ON
      LINK_DEPENDS ${CLOISTER_RUNTIME_DIR}/runtime.map)
    target_compile_options(cloister-runtime PRIVATE -ffunction-sections -fdata-sections
      -fno-delete-null-pointer-checks)
    target_link_libraries(cloister-runtime PRIVATE cloister_runtime_core
      ${CLOISTER_LIBSSL_STATIC} ${CLOISTER_LIBCRYPTO_STATIC} ${CMAKE_DL_LIBS} Threads::Threads)
    target_link_options(cloister-runtime PRIVATE
      -static-libstdc++ -static-libgcc
      -Wl,--exclude-libs,ALL
      -Wl,--version-script=${CLOISTER_RUNTIME_DIR}/runtime.map
      -Wl,--no-undefined
      -Wl,--gc-sections
      -Wl,-z,now -Wl,-z,relro)
  endif()
endif()

if(CLOISTER_TESTS)
  add_executable(runtime_test ${CLOISTER_RUNTIME_DIR}/runtime_test.cc ${CLOISTER_RUNTIME_DIR}/relayed_test.cc
    ${CLOISTER_RUNTIME_DIR}/shield_test.cc ${CLOISTER_RUNTIME_DIR}/shield_report_test.cc)
  target_link_libraries(runtime_test PRIVATE cloister_runtime_core OpenSSL::SSL OpenSSL::Crypto
    GTest::gtest GTest::gtest_main)
  add_test(NAME runtime_test COMMAND runtime_test)
  set_tests_properties(runtime_test PROPERTIES LABELS unit)
  if(TARGET cloister-runtime)
    # The built library itself: what it exports and links, and that it
    # fails closed before main when attestation cannot even begin.
    add_test(NAME runtime_library_test COMMAND ${CLOISTER_RUNTIME_DIR}/runtime_library_test.sh
      $<TARGET_FILE:cloister-runtime> ${CLOISTER_RUNTIME_DIR}/runtime.map)
    set_tests_properties(runtime_library_test PROPERTIES LABELS integration)
  endif()
endif()
