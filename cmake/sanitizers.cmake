# Sanitizer and fuzzing builds (scripts/sanitize.sh, scripts/fuzz.sh).
#   -DRWKV_EMB_SANITIZE=address,undefined   every target with ASan + UBSan
#   -DRWKV_EMB_SANITIZE=thread              every target with TSan
#   -DRWKV_EMB_FUZZ=ON                      the tests/fuzz targets and the engine's
#                                           coverage for libFuzzer (clang only)
# Included before any target is defined, so the flags reach all of them.
set(RWKV_EMB_SANITIZE "" CACHE STRING
    "Sanitizers for every target (-fsanitize=...), e.g. address,undefined or thread")
option(RWKV_EMB_FUZZ "Build the libFuzzer targets of tests/fuzz (clang only)" OFF)

if(RWKV_EMB_SANITIZE)
  # A sanitizer report must fail the run: UBSan would otherwise print and go on.
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${RWKV_EMB_SANITIZE}>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=all>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>)
  # Instrumented loops cannot honour `#pragma omp simd`: clang warns that it
  # did not vectorize them, a missed optimization in a test build, not a defect.
  add_compile_options($<$<CXX_COMPILER_ID:Clang>:-Wno-pass-failed>)
  add_link_options(-fsanitize=${RWKV_EMB_SANITIZE})
  message(STATUS "Sanitizers: ${RWKV_EMB_SANITIZE}")
endif()

if(RWKV_EMB_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "RWKV_EMB_FUZZ needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  message(STATUS "Fuzz targets: ON")
endif()
