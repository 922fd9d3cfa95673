# Runs the trace reader's fuzzer for SECONDS on a fresh corpus seeded with
# the tests' traces (taiga-trace-demo corpus).
#   cmake -DFUZZER=... -DDEMO=... -DWORK=... -DSECONDS=15 -P fuzz_run.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/seed ${WORK}/corpus)
execute_process(COMMAND ${DEMO} corpus ${WORK}/seed RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "taiga-trace-demo corpus failed (${rc})")
endif()
execute_process(COMMAND ${FUZZER} ${WORK}/corpus ${WORK}/seed -max_total_time=${SECONDS}
                        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
                        -artifact_prefix=${WORK}/
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" runs "${out}")
message(STATUS "${runs}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the fuzzer found a crash (${rc}); the input is in ${WORK}:\n${out}")
endif()
