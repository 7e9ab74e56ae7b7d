# agent/tls.cmake: build rules for the agent's TLS identity layer (agent/tls*,
# owned by the TLS part of issue 5).  Included from agent/CMakeLists.txt with
#   include(${CMAKE_CURRENT_SOURCE_DIR}/tls.cmake)
# It needs the koreo_proto target (proto/CMakeLists.txt) to exist first, so
# add_subdirectory(proto) must come before add_subdirectory(agent).
#
# koreo_agent_tls: CA, bootstrap tokens, registration, mutual TLS 1.3 client
# and server over libevent bufferevent_openssl (agent/tls.h).  The control
# plane (issue 6) links the same library for its agent listener.
pkg_check_modules(KTLS_SSL REQUIRED IMPORTED_TARGET openssl libevent_openssl libevent)
add_library(koreo_agent_tls STATIC
  ${CMAKE_CURRENT_LIST_DIR}/tls.c
  ${CMAKE_CURRENT_LIST_DIR}/tls_server.c)
target_include_directories(koreo_agent_tls PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(koreo_agent_tls PUBLIC koreo_proto PkgConfig::KTLS_SSL)

if(KOREO_TESTS)
  pkg_check_modules(KTLS_CMOCKA REQUIRED IMPORTED_TARGET cmocka)
  add_executable(test_agent_tls ${CMAKE_SOURCE_DIR}/tests/agent/test_agent_tls.c)
  target_link_libraries(test_agent_tls PRIVATE koreo_agent_tls PkgConfig::KTLS_CMOCKA)
  add_test(NAME agent/test_agent_tls COMMAND test_agent_tls)
endif()
