# Runs PROGRAM with ARGS and checks how it ends, for the CLI tests.
#
#   ARGS           the arguments, separated by spaces (a ;-list would be split
#                  by add_test before it got here)
#   RC             regex of the accepted exit codes, e.g. "2" or "0|1"
#   STDOUT_IF_OK   regex stdout must match when the exit code is 0
#   STDERR_IF_OK   regex stderr must match when the exit code is 0 (what
#                  must be said even under --quiet)
#   STDERR         regex stderr must match when the exit code is not 0; the
#                  message must also be one line, as the CLI promises
#
# Run as: cmake -DPROGRAM=... -DARGS=... -DRC=... [-D...] -P expect.cmake

separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${PROGRAM} ${args}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)

# A crash gives a text such as "Segmentation fault" instead of a number.
if(NOT rc MATCHES "^(${RC})$")
  message(FATAL_ERROR "exit: '${rc}', wanted ${RC}\nstdout:\n${out}\nstderr:\n${err}")
endif()

if(rc STREQUAL "0")
  if(NOT STDOUT_IF_OK STREQUAL "" AND NOT out MATCHES "${STDOUT_IF_OK}")
    message(FATAL_ERROR "stdout does not match '${STDOUT_IF_OK}':\n${out}\nstderr:\n${err}")
  endif()
  if(NOT STDERR_IF_OK STREQUAL "" AND NOT err MATCHES "${STDERR_IF_OK}")
    message(FATAL_ERROR "stderr does not match '${STDERR_IF_OK}':\n${err}\nstdout:\n${out}")
  endif()
  message(STATUS "exit 0\n${out}")
else()
  string(STRIP "${err}" line)
  if(NOT STDERR STREQUAL "" AND NOT line MATCHES "${STDERR}")
    message(FATAL_ERROR "stderr does not match '${STDERR}':\n${err}")
  endif()
  if(line STREQUAL "" OR line MATCHES "\n")
    message(FATAL_ERROR "stderr should be one line:\n${err}")
  endif()
  message(STATUS "exit ${rc}: ${line}")
endif()
