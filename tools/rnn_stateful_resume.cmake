# A stateful run (--stateful) cut in two and resumed ends as the straight
# run (a schedule that does not depend on the run's length): the same
# val_loss and train_loss, printed to 4 decimals and compared
# as text (the bit-exact comparison of weights and states is
# tests/test_train_lm_stateful.c). The resumed run is given no --stateful:
# the checkpoint's record of options keeps it (without it the carried
# states would not match and the resume would be refused).
# Run as: cmake -DPROGRAM= -DARGS= -DDIR= -DFIRST= -DSTEPS= -P rnn_stateful_resume.cmake
separate_arguments(args UNIX_COMMAND "${ARGS}")
file(REMOVE "${DIR}/sf_straight.safetensors" "${DIR}/sf_part.safetensors")
function(train out)
  execute_process(COMMAND ${PROGRAM} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "exit ${rc}: ${ARGN}\n${o}\n${e}")
  endif()
  if(NOT o MATCHES "val_loss [0-9.]+  train_loss [0-9.]+  after [0-9]+ steps")
    message(FATAL_ERROR "no summary line:\n${o}")
  endif()
  set(${out} "${CMAKE_MATCH_0}" PARENT_SCOPE)
endfunction()
train(straight ${args} --steps ${STEPS} --save ${DIR}/sf_straight.safetensors --quiet)
train(part ${args} --steps ${FIRST} --save ${DIR}/sf_part.safetensors --quiet)
train(resumed train --resume ${DIR}/sf_part.safetensors --steps ${STEPS} --quiet)
if(NOT straight STREQUAL resumed)
  message(FATAL_ERROR "straight: ${straight}\nresumed:  ${resumed}")
endif()
message(STATUS "straight and resumed: ${resumed}")
