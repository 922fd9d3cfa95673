# Configures and installs taiga (library only) into a scratch prefix, then
# builds and runs tests/install/consumer against it with find_package(taiga).
file(REMOVE_RECURSE ${WORK_DIR})
set(build ${WORK_DIR}/build)
set(prefix ${WORK_DIR}/prefix)
set(cbuild ${WORK_DIR}/consumer)
macro(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
endmacro()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${build} -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX}
    -DCMAKE_BUILD_TYPE=Release -DTAIGA_BUILD_TESTS=OFF -DTAIGA_BUILD_SAMPLES=OFF
    -DTAIGA_BUILD_BENCHMARKS=OFF -DTAIGA_INSTALL=ON -DCMAKE_INSTALL_PREFIX=${prefix})
run(${CMAKE_COMMAND} --build ${build})
run(${CMAKE_COMMAND} --install ${build})
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${cbuild} -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${cbuild})
run(${cbuild}/consumer)
message(STATUS "consumer output: ${out}")
run(${cbuild}/consumer_net)
message(STATUS "consumer_net output: ${out}")
run(${cbuild}/consumer_trace)
message(STATUS "consumer_trace output: ${out}")
run(${prefix}/bin/taiga-trace help)
