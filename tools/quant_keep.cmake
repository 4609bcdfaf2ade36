# Runs PROGRAM ARGS, which must fail, and checks that the file KEEP, written
# with known bytes first, still holds them: a failed command overwrites
# nothing. Run as: cmake -DPROGRAM=... -DARGS=... -DKEEP=... -P quant_keep.cmake
file(WRITE ${KEEP} "the user's file, not to be replaced\n")
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${PROGRAM} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc STREQUAL "0" OR NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "wanted a clean failure, got exit '${rc}':\n${out}\n${err}")
endif()
file(READ ${KEEP} kept)
if(NOT kept STREQUAL "the user's file, not to be replaced\n")
  message(FATAL_ERROR "${KEEP} was changed by a failed command:\n${err}")
endif()
message(STATUS "exit ${rc}, ${KEEP} kept: ${err}")
