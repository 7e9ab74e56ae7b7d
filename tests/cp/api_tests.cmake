# tests/cp/api_tests.cmake: registers koreoctl's remote-command test (issue 6,
# the api helper's): tests/cli/test_koreoctl_remote.sh runs koreoctl against a
# real koreo-controlplane on a private PostgreSQL (tests/pg/pg-start.sh).
# Include it from controlplane/CMakeLists.txt inside if(KOREO_TESTS):
#   include(${CMAKE_SOURCE_DIR}/tests/cp/api_tests.cmake)
# (tests/cp/test_cp_api.c, the in-process API test, is built by that file's
# tests/cp/test_*.c glob.)  Generator expressions, so koreoctl may be defined
# after this directory.
add_test(NAME cli/koreoctl-remote
         COMMAND ${CMAKE_SOURCE_DIR}/tests/cli/test_koreoctl_remote.sh $<TARGET_FILE:koreoctl>
                 $<TARGET_FILE:koreo-controlplane> ${KOREO_SHARED_DIR}/reference/koreo-examples)
set_tests_properties(cli/koreoctl-remote PROPERTIES TIMEOUT 300)
