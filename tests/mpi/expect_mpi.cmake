# Runs COMMAND (a ;-list: the launcher and the program) and checks how the
# job ended: the exit code must match RC (a regex) and stdout followed by
# stderr must match REGEX (when not empty), exactly once when ONCE is set.
# Unlike tools/expect.cmake, the
# error output may span lines: the launcher adds its own report of an
# aborted job to the rank's one-line message.
#
# Run as: cmake -DCOMMAND=... -DRC=... -DREGEX=... -P expect_mpi.cmake
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc MATCHES "^(${RC})$")
  message(FATAL_ERROR "exit: '${rc}', wanted ${RC}\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT REGEX STREQUAL "" AND NOT "${out}${err}" MATCHES "${REGEX}")
  message(FATAL_ERROR "output does not match '${REGEX}':\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(ONCE)
  string(REGEX MATCHALL "${REGEX}" found "${out}${err}")
  list(LENGTH found n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "'${REGEX}' occurs ${n} times, wanted once:\nstdout:\n${out}\nstderr:\n${err}")
  endif()
endif()
message(STATUS "exit ${rc}\nstdout:\n${out}\nstderr:\n${err}")
