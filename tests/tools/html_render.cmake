# The HTML page renders: writes a trace, runs `taiga-trace html`, loads the
# page in headless Chromium, and checks the screenshot's timeline band is not
# blank (tests/tools/png_check.py). Run twice: a small trace (each slice
# drawn) and a big one (the level-of-detail path).
#   cmake -DDEMO=... -DTOOL=... -DCHROMIUM=... -DPYTHON=... -DCHECK=... -DWORK=... -P html_render.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
macro(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out
                  TIMEOUT 120)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
endmacro()
foreach(kind demo big)
  if(kind STREQUAL "big")
    run(${DEMO} big ${WORK}/${kind}.trace 200000)
  else()
    run(${DEMO} demo ${WORK}/${kind}.trace)
  endif()
  run(${TOOL} html ${WORK}/${kind}.trace -o ${WORK}/${kind}.html)
  # Chromium refuses to run as root without --no-sandbox; its own profile dir
  # keeps runs apart. It prints D-Bus complaints on a bare machine: harmless.
  run(${CHROMIUM} --headless --no-sandbox --disable-gpu --hide-scrollbars
      --user-data-dir=${WORK}/profile-${kind} --window-size=1200,700
      --screenshot=${WORK}/${kind}.png file://${WORK}/${kind}.html)
  if(NOT EXISTS ${WORK}/${kind}.png)
    message(FATAL_ERROR "chromium wrote no screenshot:\n${out}")
  endif()
  # The timeline's rows sit between y=86 and y=140 for two or more workers.
  run(${PYTHON} ${CHECK} ${WORK}/${kind}.png 86 140 0.2 8)
  message(STATUS "${out}")
endforeach()
# Panning cost and a click: the page's "#bench" draws 60 frames while
# zooming and panning, prints the mean, then clicks near the start of worker
# 0's row and copies the detail panel. The level of detail keeps a frame near
# the canvas's width per row whatever the slice count; 100 ms is far above
# what it takes (about 5 ms at 2 million slices here) and still fails a draw
# loop that walks every slice. A script error fails the test too.
foreach(kind demo big)
  execute_process(COMMAND ${CHROMIUM} --headless --no-sandbox --disable-gpu
                          --user-data-dir=${WORK}/profile-bench-${kind} --window-size=1200,700
                          --enable-logging=stderr --v=0
                          --dump-dom "file://${WORK}/${kind}.html#bench"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE dom ERROR_VARIABLE err TIMEOUT 120)
  if(err MATCHES "Uncaught")
    string(REGEX MATCH "[^\n]*Uncaught[^\n]*" line "${err}")
    message(FATAL_ERROR "the ${kind} page threw: ${line}")
  endif()
  string(REGEX MATCH "frame-ms ([0-9.]+) click: ([^<]*)" found "${dom}")
  if(NOT found)
    message(FATAL_ERROR "the ${kind} page's #bench wrote nothing (rc ${rc}):\n${err}")
  endif()
  set(ms ${CMAKE_MATCH_1})
  set(clicked "${CMAKE_MATCH_2}")
  message(STATUS "${kind}: ${ms} ms per frame; click: ${clicked}")
  if(ms GREATER 100)
    message(FATAL_ERROR "panning the ${kind} trace takes ${ms} ms per frame")
  endif()
  if(NOT clicked MATCHES "^worker 0: run .*tasklet [0-9]+")
    message(FATAL_ERROR "a click on worker 0's row showed no tasklet: ${clicked}")
  endif()
  if(kind STREQUAL "demo" AND NOT clicked MATCHES "tasklet 1 \"main\": done")
    message(FATAL_ERROR "a click on main's long run showed: ${clicked}")
  endif()
endforeach()
