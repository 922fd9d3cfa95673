# Fails if a header under DIR includes a header of a module above it
# (FORBIDDEN: a regex alternation of module names, e.g. "channels|net").
file(GLOB_RECURSE headers ${DIR}/*.hpp)
foreach(h ${headers})
  file(STRINGS ${h} lines REGEX "#include <taiga/(${FORBIDDEN})[/.]")
  if(lines)
    message(FATAL_ERROR "${h} includes a higher module: ${lines}")
  endif()
endforeach()
