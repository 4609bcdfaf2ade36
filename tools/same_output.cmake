# Runs PROGRAM with ARGS twice and checks that it exits 0 with the same
# stdout both times (determinism), and that stdout holds only the
# characters of the bracket expression ALLOWED and newlines.
#
# Run as: cmake -DPROGRAM=... -DARGS=... -DALLOWED=... -P same_output.cmake
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${PROGRAM} ${args} RESULT_VARIABLE rc1 OUTPUT_VARIABLE out1 ERROR_VARIABLE err1)
execute_process(COMMAND ${PROGRAM} ${args} RESULT_VARIABLE rc2 OUTPUT_VARIABLE out2 ERROR_VARIABLE err2)
if(NOT rc1 STREQUAL "0" OR NOT rc2 STREQUAL "0")
  message(FATAL_ERROR "exit ${rc1} and ${rc2}\n${err1}\n${err2}")
endif()
if(NOT out1 STREQUAL out2)
  message(FATAL_ERROR "two runs differ:\n${out1}\n---\n${out2}")
endif()
if(NOT out1 MATCHES "^[${ALLOWED}\n]+$")
  message(FATAL_ERROR "output has characters outside [${ALLOWED}]:\n${out1}")
endif()
message(STATUS "same output twice:\n${out1}")
