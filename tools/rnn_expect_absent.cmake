# expect.cmake, then: the file ABSENT must not exist (a refused run writes
# nothing). Run as: cmake -DPROGRAM= -DARGS= -DRC= -DSTDERR= -DABSENT= -P ...
file(REMOVE "${ABSENT}")
include(${CMAKE_CURRENT_LIST_DIR}/expect.cmake)
if(EXISTS "${ABSENT}")
  message(FATAL_ERROR "${ABSENT} was written by a run that failed")
endif()
