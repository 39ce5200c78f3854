# Target helpers: one place for the boilerplate of libraries and tests.
#
# Module walls. Includes are spelled from src/ ("store/store.h"), but a library does not see
# src/: each gets its own include root in the build tree, ${CMAKE_BINARY_DIR}/include/<target>,
# holding symlinks to its own headers only, and publishes that root to whoever links it. A
# module therefore sees its own headers and those of the libraries it links (its PUBLIC ones
# passed on to its users), and an include of anything else fails to build: "No such file or
# directory". Link PRIVATE unless the library's own headers include the dependency's; a
# PRIVATE dependency is still linked into the final binaries, its headers are not passed on.
# cmake/walls/ holds the tests that prove the walls (docs/testing.md).
#
# Tests, fuzz targets and benchmarks keep the broad root src/: they may reach internals.

# Links each of HEADERS (paths relative to the current source folder) into the include root
# ROOT, at its path from src/, after emptying ROOT: a header removed or moved is gone there too.
function(redrive_include_root root)
  file(REMOVE_RECURSE ${root})
  file(MAKE_DIRECTORY ${root})
  foreach(header IN LISTS ARGN)
    set(source ${CMAKE_CURRENT_SOURCE_DIR}/${header})
    if(NOT EXISTS ${source})
      message(FATAL_ERROR "no header ${source}")
    endif()
    file(RELATIVE_PATH spelled ${PROJECT_SOURCE_DIR}/src ${source})
    get_filename_component(folder ${root}/${spelled} DIRECTORY)
    file(MAKE_DIRECTORY ${folder})
    file(CREATE_LINK ${source} ${root}/${spelled} SYMBOLIC)
  endforeach()
endfunction()

# redrive_library(NAME SRCS <files> [HEADERS <files>] [INTERNAL_HEADERS <files>]
#                 [PUBLIC <deps>] [PRIVATE <deps>])
#   HEADERS           the headers NAME publishes, relative to this folder; by default every *.h
#                     in it (not in subfolders: store/ does not publish store/sqlite/). Each is
#                     reachable as its path from src/.
#   INTERNAL_HEADERS  headers only NAME's own sources include (a root of their own,
#                     include/NAME.internal, not passed on).
#   PUBLIC            libraries whose headers NAME's headers include; passed on to NAME's users.
#   PRIVATE           libraries only NAME's sources use.
function(redrive_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;HEADERS;INTERNAL_HEADERS;PUBLIC;PRIVATE;DEPS" ${ARGN})
  if(DEFINED ARG_DEPS OR "DEPS" IN_LIST ARG_KEYWORDS_MISSING_VALUES)
    message(FATAL_ERROR "redrive_library(${name}): DEPS is gone; list a dependency under PUBLIC "
                        "when ${name}'s headers include its headers, otherwise under PRIVATE "
                        "(cmake/redrive.cmake)")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "redrive_library(${name}): unexpected ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT DEFINED ARG_HEADERS)
    file(GLOB ARG_HEADERS CONFIGURE_DEPENDS RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}
         ${CMAKE_CURRENT_SOURCE_DIR}/*.h)
  endif()
  redrive_include_root(${CMAKE_BINARY_DIR}/include/${name} ${ARG_HEADERS})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${CMAKE_BINARY_DIR}/include/${name})
  if(ARG_INTERNAL_HEADERS)
    redrive_include_root(${CMAKE_BINARY_DIR}/include/${name}.internal ${ARG_INTERNAL_HEADERS})
    target_include_directories(${name} PRIVATE ${CMAKE_BINARY_DIR}/include/${name}.internal)
  endif()
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC} PRIVATE ${ARG_PRIVATE})
endfunction()

# redrive_test(NAME SRCS <files> DEPS <libraries> LABELS <labels>): a GoogleTest binary, each of
# its tests registered with ctest. With the label `tsan` it is also part of the target
# tsan_tests, what `make test-tsan` builds and runs under ThreadSanitizer (docs/testing.md).
#   POSTGRES_TOO  also registers every test a second time, prefixed `postgres/`, with
#                 REDRIVE_TEST_BACKEND=postgres (tests/harness.h: the servers it starts keep
#                 their state on the test cluster) and the labels `integration;pg-integration`
#                 (not `tsan`: the sanitizer runs skip these copies, docs/testing.md).
function(redrive_test name)
  cmake_parse_arguments(ARG "POSTGRES_TOO" "" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  include(GoogleTest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_LIST ${name}_TESTS
    PROPERTIES ENVIRONMENT "REDRIVE_BINARY=$<TARGET_FILE:redrive>")
  # The labels, the test cluster (the fixture `postgres`, CMakeLists.txt) and the environment
  # are set by a file ctest reads after the discovered tests, not through the PROPERTIES above:
  # gtest_discover_tests splits a list value there into separate arguments, and a second label
  # or variable would be read as a property name. A binary that was not built keeps its
  # labels on the NAME_NOT_BUILT test, so `ctest -L` over a partial build fails, not skips.
  set(labels_file ${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake)
  string(CONCAT labels_content
    "if(DEFINED ${name}_TESTS)\n"
    "  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS \"${ARG_LABELS}\")\n"
    "  set_tests_properties(\${${name}_TESTS} PROPERTIES FIXTURES_REQUIRED postgres\n"
    "    ENVIRONMENT \"REDRIVE_BINARY=$<TARGET_FILE:redrive>;REDRIVE_TEST_POSTGRES=${REDRIVE_TEST_POSTGRES}\")\n"
    "else()\n"
    "  set_tests_properties(${name}_NOT_BUILT PROPERTIES LABELS \"${ARG_LABELS}\")\n"
    "endif()\n")
  file(GENERATE OUTPUT ${labels_file} CONTENT "${labels_content}")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${labels_file})
  if(ARG_POSTGRES_TOO)
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_LIST ${name}_PG_TESTS
      TEST_PREFIX postgres/
      PROPERTIES ENVIRONMENT "REDRIVE_BINARY=$<TARGET_FILE:redrive>")
    set(pg_file ${CMAKE_CURRENT_BINARY_DIR}/${name}_pg_labels.cmake)
    string(CONCAT pg_content
      "if(DEFINED ${name}_PG_TESTS)\n"
      "  set_tests_properties(\${${name}_PG_TESTS} PROPERTIES LABELS \"integration;pg-integration\"\n"
      "    FIXTURES_REQUIRED postgres ENVIRONMENT\n"
      "    \"REDRIVE_BINARY=$<TARGET_FILE:redrive>;REDRIVE_TEST_POSTGRES=${REDRIVE_TEST_POSTGRES};REDRIVE_TEST_BACKEND=postgres\")\n"
      "endif()\n")
    file(GENERATE OUTPUT ${pg_file} CONTENT "${pg_content}")
    set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${pg_file})
  endif()
  if("tsan" IN_LIST ARG_LABELS)
    set_property(GLOBAL APPEND PROPERTY REDRIVE_TSAN_TESTS ${name})
  endif()
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

# redrive_wall(NAME SOURCE <file> LINK <libraries> (FORBIDS <header> | PERMITS)): the test
# wall_NAME builds SOURCE (from cmake/walls/) with exactly the include roots LINK gives, as a
# module that links LINK would be built. FORBIDS: the test passes only when the build fails
# because <header> is not found, so it fails both when the wall is gone and when the build
# broke for another reason. PERMITS: a control, the build must succeed, so a wall test cannot
# pass merely because the build command does not work.
function(redrive_wall name)
  cmake_parse_arguments(ARG "PERMITS" "SOURCE;FORBIDS" "LINK" ${ARGN})
  set(target wall_${name})
  add_library(${target} OBJECT EXCLUDE_FROM_ALL ${PROJECT_SOURCE_DIR}/cmake/walls/${ARG_SOURCE})
  target_link_libraries(${target} PRIVATE ${ARG_LINK})
  add_test(NAME ${target}
    COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${target})
  # One build of the tree at a time: two ninjas in one build folder race on its logs.
  set_tests_properties(${target} PROPERTIES LABELS unit RESOURCE_LOCK build_tree
                       ENVIRONMENT "LC_ALL=C")
  if(ARG_FORBIDS)
    string(REPLACE "." "\\." header "${ARG_FORBIDS}")
    # gcc: "<header>: No such file or directory"; clang: "'<header>' file not found".
    set_tests_properties(${target} PROPERTIES
      PASS_REGULAR_EXPRESSION "${header}'?:? (No such file or directory|file not found)")
  elseif(NOT ARG_PERMITS)
    message(FATAL_ERROR "redrive_wall(${name}): say FORBIDS <header> or PERMITS")
  endif()
endfunction()
