# A real trace, end to end: runs samples/echo_server --self-test with
# TAIGA_TRACE set (the recorder, runtime/src/trace.cpp), then every
# taiga-trace command on the file it wrote. `check` must find no state
# machine break, `lint` may only report findings (exit 0 or 1); the chrome export must parse as JSON.
#   cmake -DSAMPLE=... -DTOOL=... -DPYTHON=... -DWORK=dir -P real_trace.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(trace ${WORK}/echo.trace)
set(ENV{TAIGA_TRACE} ${trace})
execute_process(COMMAND ${SAMPLE} --self-test RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
unset(ENV{TAIGA_TRACE})
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "echo_server --self-test under TAIGA_TRACE failed (${rc}): ${out}${err}")
endif()
if(NOT EXISTS ${trace})
  message(FATAL_ERROR "TAIGA_TRACE=${trace} wrote no file")
endif()

function(run_tool expect_rc)
  execute_process(COMMAND ${TOOL} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc MATCHES "^(${expect_rc})$")
    message(FATAL_ERROR "taiga-trace ${ARGN}: exit ${rc}, want ${expect_rc}\n${out}${err}")
  endif()
  set(last_out "${out}" PARENT_SCOPE)
endfunction()

run_tool(0 summary ${trace})
if(NOT last_out MATCHES "tasklets: [0-9]+ spawned")
  message(FATAL_ERROR "summary lacks the tasklet counts:\n${last_out}")
endif()
if(NOT last_out MATCHES "read")
  message(FATAL_ERROR "summary lacks the echo's read parks:\n${last_out}")
endif()
run_tool(0 tasklets ${trace})
run_tool(0 tasklet ${trace} 1)
run_tool(0 tree ${trace})
run_tool(0 blocking ${trace})
run_tool(0 check ${trace})
# lint's findings depend on the host: a worker the OS preempts for 10 ms
# makes a long run slice. 1 (findings) is fine; a crash or a read error not.
run_tool("0|1" lint ${trace})
run_tool(0 export --format=chrome ${trace} -o ${WORK}/echo.json)
execute_process(COMMAND ${PYTHON} -c "import json,sys; d=json.load(open(sys.argv[1])); e=d['traceEvents'] if isinstance(d,dict) else d; assert len(e) > 100, len(e)" ${WORK}/echo.json
  RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the chrome export does not parse as a trace: ${err}")
endif()
run_tool(0 html ${trace} -o ${WORK}/echo.html)
file(SIZE ${WORK}/echo.html html_size)
if(html_size LESS 10000)
  message(FATAL_ERROR "the HTML page is ${html_size} bytes")
endif()
message(STATUS "real trace: every taiga-trace command ran on ${trace}")
