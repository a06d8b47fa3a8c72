# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build-release/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(unit.backend_local "/work/main/build-release/tests/test_backend_local")
set_tests_properties(unit.backend_local PROPERTIES  LABELS "unit;backend_local" SKIP_RETURN_CODE "77" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;14;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(unit.scheduler "/work/main/build-release/tests/test_scheduler")
set_tests_properties(unit.scheduler PROPERTIES  LABELS "unit;scheduler" SKIP_RETURN_CODE "77" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;14;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(unit.spawn "/work/main/build-release/tests/test_spawn")
set_tests_properties(unit.spawn PROPERTIES  LABELS "unit;spawn" SKIP_RETURN_CODE "77" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;14;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(unit.store "/work/main/build-release/tests/test_store")
set_tests_properties(unit.store PROPERTIES  LABELS "unit;store" SKIP_RETURN_CODE "77" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;14;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(corpus.c_validator "/usr/bin/python3" "/work/main/tests/jobfiles/check_corpus.py" "--arl-batch" "/work/main/build-release/arl-batch" "--mode" "c")
set_tests_properties(corpus.c_validator PROPERTIES  LABELS "corpus" SKIP_RETURN_CODE "77" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;31;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(corpus.jsonschema "/usr/bin/python3" "/work/main/tests/jobfiles/check_corpus.py" "--mode" "schema")
set_tests_properties(corpus.jsonschema PROPERTIES  LABELS "corpus" SKIP_RETURN_CODE "77" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;34;add_test;/work/main/tests/CMakeLists.txt;0;")
