# The CLI is one client of the public API, with nothing more: every ct_*
# function its objects call must be one libctrain.so exports (the functions
# of include/ctrain/*.h, cmake/ctrain_exports.cmake), and every header it
# includes in quotes must be one of its own. The CLI links the static
# library, where internals are reachable, so the link alone would not tell.
#   cmake -DNM=nm -DLIB=libctrain.so -DTOOLS=tools/ "-DOBJECTS=a.o|b.o" -P cli_public_api.cmake

set(_bad "")
string(REPLACE "|" ";" OBJECTS "${OBJECTS}")  # joined with | to pass through add_test
execute_process(COMMAND ${NM} -D --defined-only ${LIB} OUTPUT_VARIABLE _exported RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D ${LIB} failed")
endif()
string(REGEX MATCHALL " ct_[a-z0-9_]+" _exported "${_exported}")
execute_process(COMMAND ${NM} -u ${OBJECTS} OUTPUT_VARIABLE _used RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -u on the CLI's objects failed")
endif()
string(REGEX MATCHALL " ct_[a-z0-9_]+" _used "${_used}")
list(REMOVE_DUPLICATES _used)
list(LENGTH _used _n_used)
foreach(sym IN LISTS _used)
  list(FIND _exported "${sym}" _i)
  if(_i EQUAL -1)
    string(STRIP "${sym}" sym)
    list(APPEND _bad "calls ${sym}, which is no public function")
  endif()
endforeach()

file(GLOB _sources "${TOOLS}/*.c" "${TOOLS}/*.h")
foreach(src IN LISTS _sources)
  file(STRINGS "${src}" _includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(inc IN LISTS _includes)
    string(REGEX REPLACE ".*\"(.*)\".*" "\\1" inc "${inc}")
    if(NOT EXISTS "${TOOLS}/${inc}" OR inc MATCHES "\\.\\.")
      get_filename_component(_name "${src}" NAME)
      list(APPEND _bad "${_name} includes \"${inc}\", which is not the CLI's own")
    endif()
  endforeach()
endforeach()

if(_bad)
  list(JOIN _bad "\n  " _msg)
  message(FATAL_ERROR "the CLI reaches past the public API:\n  ${_msg}")
endif()
message(STATUS "the CLI calls ${_n_used} library functions, all public")
