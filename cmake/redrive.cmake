# Target helpers: one place for the boilerplate of libraries and tests.
# Includes are rooted at src/; a module links only the modules it may use, so a forbidden
# include fails to build.

function(redrive_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

function(redrive_test name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  include(GoogleTest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${ARG_LABELS}"
    ENVIRONMENT "REDRIVE_BINARY=$<TARGET_FILE:redrive>")
endfunction()

# A libFuzzer target NAME, seeded from the folder SEEDS (docs/testing.md). With REDRIVE_FUZZ it
# is the fuzzer (scripts/fuzz.sh NAME SECONDS). Otherwise it is linked with a plain main that
# runs every seed once, registered as the test NAME_seeds: the seeds and the crashers added to
# them are regression tests in every build, and the target keeps compiling.
function(redrive_fuzzer name)
  cmake_parse_arguments(ARG "" "SEEDS" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  if(REDRIVE_FUZZ)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/cmake/fuzz_replay_main.cc)
    add_test(NAME ${name}_seeds COMMAND ${name} ${ARG_SEEDS})
    set_tests_properties(${name}_seeds PROPERTIES LABELS unit)
  endif()
endfunction()
