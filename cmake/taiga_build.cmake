# Shared build flags (warnings, sanitizers) for every taiga target, and the
# helpers that declare modules, tests, samples and benchmarks.

add_library(taiga_build_flags INTERFACE)
add_library(taiga::build_flags ALIAS taiga_build_flags)
target_compile_options(taiga_build_flags INTERFACE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
if(TAIGA_WARNINGS_AS_ERRORS)
  target_compile_options(taiga_build_flags INTERFACE -Werror)
endif()

# Sanitizer builds: the flags go on every target (and on the consumer's link
# through the exported runtime target), and TAIGA_SANITIZER_* tells
# runtime/src/context.cpp which fiber-switch annotations to compile in.
set(TAIGA_SANITIZER_DEFINES "")
if(TAIGA_SANITIZE)
  string(REPLACE "," ";" _taiga_san_list "${TAIGA_SANITIZE}")
  set(_san_flags "-fsanitize=${TAIGA_SANITIZE}" -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_compile_options(${_san_flags})
  # GCC 12's -Wmaybe-uninitialized misfires on instrumented std::optional code
  # (GCC bug 105562 and kin); the release build keeps the warning.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-maybe-uninitialized)
  endif()
  add_link_options(-fsanitize=${TAIGA_SANITIZE})
  if("address" IN_LIST _taiga_san_list)
    list(APPEND TAIGA_SANITIZER_DEFINES TAIGA_SANITIZE_ADDRESS=1)
  endif()
  if("thread" IN_LIST _taiga_san_list)
    list(APPEND TAIGA_SANITIZER_DEFINES TAIGA_SANITIZE_THREAD=1)
  endif()
endif()

function(taiga_add_module name)
  cmake_parse_arguments(arg "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(taiga_${name} ${arg_SOURCES})
  add_library(taiga::${name} ALIAS taiga_${name})
  target_include_directories(taiga_${name}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(taiga_${name}
    PUBLIC ${arg_PUBLIC_DEPS}
    PRIVATE ${arg_PRIVATE_DEPS} $<BUILD_INTERFACE:taiga::build_flags>)
  target_compile_features(taiga_${name} PUBLIC cxx_std_20)
  target_compile_definitions(taiga_${name} PRIVATE ${TAIGA_SANITIZER_DEFINES})
  set_target_properties(taiga_${name} PROPERTIES EXPORT_NAME ${name})
  if(TAIGA_INSTALL)
    install(TARGETS taiga_${name} EXPORT taiga-targets
            ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
            LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
    install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  endif()
endfunction()

# Tests get a timeout scaled for sanitizer builds (libuv's multiplier idea).
set(TAIGA_TEST_TIMEOUT_SCALE 1)
if(TAIGA_SANITIZE)
  set(TAIGA_TEST_TIMEOUT_SCALE 4)
endif()

function(taiga_add_sample name)
  cmake_parse_arguments(arg "" "TIMEOUT" "ARGS;DEPS" ${ARGN})
  add_executable(${name} ${name}.cpp)
  target_link_libraries(${name} PRIVATE taiga::taiga ${arg_DEPS} taiga::build_flags)
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 60)
  endif()
  math(EXPR _t "${arg_TIMEOUT} * ${TAIGA_TEST_TIMEOUT_SCALE}")
  add_test(NAME sample.${name} COMMAND ${name} ${arg_ARGS})
  set_tests_properties(sample.${name} PROPERTIES LABELS sample TIMEOUT ${_t})
endfunction()
