# Fails if a runtime header includes a header of a module above it.
file(GLOB_RECURSE headers ${DIR}/*.hpp)
foreach(h ${headers})
  file(STRINGS ${h} lines REGEX "#include <taiga/(channels|net)")
  if(lines)
    message(FATAL_ERROR "${h} includes a higher module: ${lines}")
  endif()
endforeach()
