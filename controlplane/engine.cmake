# controlplane/engine.cmake: the engine's test (owned by the engine part of
# issue 6).  Included from controlplane/CMakeLists.txt with
#   include(${CMAKE_CURRENT_SOURCE_DIR}/engine.cmake)
# after koreo_cp_db and koreo_pgtest are defined.  test_cp_engine runs the
# engine (controlplane/engine*.c) against a private PostgreSQL (tests/pg)
# over real mutual TLS, with agent/session.c as the agent.
if(KOREO_TESTS AND TARGET koreo_pgtest AND TARGET koreo_agent_session
   AND EXISTS ${CMAKE_SOURCE_DIR}/tests/controlplane/test_cp_engine.c)
  file(GLOB CP_ENGINE_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/engine*.c)
  add_executable(test_cp_engine ${CMAKE_SOURCE_DIR}/tests/controlplane/test_cp_engine.c
                                ${CP_ENGINE_TEST_SOURCES})
  target_include_directories(test_cp_engine PRIVATE ${CMAKE_SOURCE_DIR}/core
                                                    ${CMAKE_SOURCE_DIR}/agent)
  target_link_libraries(test_cp_engine PRIVATE koreo_cp_db koreo_pgtest koreo_agent_session
                                               PkgConfig::CP_CMOCKA)
  add_test(NAME cp/test_cp_engine COMMAND test_cp_engine)
  set_tests_properties(cp/test_cp_engine PROPERTIES TIMEOUT 300
                       ENVIRONMENT "KOREO_SHARED_DIR=${KOREO_SHARED_DIR}")
endif()

# End to end: the engine in-process, the real koreo-agent (control-plane
# mode) registered with a database token, koreo-kubesim (tests/kubesim,
# configured after this directory, hence the generator expression) and kubectl.
if(KOREO_TESTS AND TARGET koreo_pgtest AND TARGET koreo-agent
   AND EXISTS ${CMAKE_SOURCE_DIR}/tests/controlplane/test_cp_engine_e2e.c)
  add_executable(test_cp_engine_e2e ${CMAKE_SOURCE_DIR}/tests/controlplane/test_cp_engine_e2e.c
                                    ${CP_ENGINE_TEST_SOURCES})
  target_include_directories(test_cp_engine_e2e PRIVATE ${CMAKE_SOURCE_DIR}/core
                             ${CMAKE_SOURCE_DIR}/agent ${CMAKE_SOURCE_DIR}/tests/agent
                             ${CMAKE_SOURCE_DIR}/tests/kube)
  target_link_libraries(test_cp_engine_e2e PRIVATE koreo_cp_db koreo_pgtest PkgConfig::CP_CMOCKA)
  add_test(NAME cp/test_cp_engine_e2e
           COMMAND test_cp_engine_e2e
                   "$<$<TARGET_EXISTS:koreo-kubesim>:$<TARGET_FILE:koreo-kubesim>>"
                   $<TARGET_FILE:koreo-agent>)
  set_tests_properties(cp/test_cp_engine_e2e PROPERTIES TIMEOUT 300
                       ENVIRONMENT "KOREO_SHARED_DIR=${KOREO_SHARED_DIR}")
endif()
