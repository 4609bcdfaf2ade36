# The int8 end-to-end check for CTest: quantizes CHECKPOINT into OUT,
# requires the file to be at most MAX_RATIO of the F32 weights, evaluates
# it (which evaluates the F32 checkpoint in the same run) and requires the
# int8 accuracy within MAX_PP percentage points of the F32 accuracy.
#
# Run as: cmake -DPROGRAM=ctrain -DCHECKPOINT=... -DOUT=... -DQARGS="..."
#         -DEARGS="..." -DMAX_RATIO=0.3 -DMAX_PP=0.3 -P quant_check.cmake
separate_arguments(qargs UNIX_COMMAND "${QARGS}")
separate_arguments(eargs UNIX_COMMAND "${EARGS}")
execute_process(COMMAND ${PROGRAM} quantize --checkpoint ${CHECKPOINT} --out ${OUT} ${qargs}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "quantize exited ${rc}:\n${out}\n${err}")
endif()
if(NOT out MATCHES "F32 weights ([0-9]+) bytes, int8 file ([0-9]+) bytes")
  message(FATAL_ERROR "quantize printed no sizes:\n${out}")
endif()
set(f32 ${CMAKE_MATCH_1})
set(i8 ${CMAKE_MATCH_2})
file(SIZE ${OUT} real)
if(NOT real EQUAL i8)
  message(FATAL_ERROR "quantize says ${i8} bytes, the file has ${real}")
endif()
# math() is integer-only: compare i8 * 1000 with f32 * (the ratio in thousandths).
math(EXPR have "${i8} * 1000")
string(REGEX REPLACE "^0?\\.([0-9])([0-9]?)([0-9]?).*" "\\1\\2\\3" frac "${MAX_RATIO}0000")
math(EXPR allowed "${f32} * ${frac}")
if(have GREATER allowed)
  message(FATAL_ERROR "int8 file ${i8} bytes is more than ${MAX_RATIO} x the F32 weights' ${f32}")
endif()

execute_process(COMMAND ${PROGRAM} eval --checkpoint ${OUT} ${eargs}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "eval exited ${rc}:\n${out}\n${err}")
endif()
if(NOT out MATCHES "int8 +accuracy [0-9.]+% \\(([0-9]+)/([0-9]+)\\)")
  message(FATAL_ERROR "no int8 accuracy in:\n${out}")
endif()
set(ci ${CMAKE_MATCH_1})
set(n ${CMAKE_MATCH_2})
if(NOT out MATCHES "f32 +accuracy [0-9.]+% \\(([0-9]+)/([0-9]+)\\)")
  message(FATAL_ERROR "no f32 accuracy in:\n${out}")
endif()
set(cf ${CMAKE_MATCH_1})
# |ci - cf| / n <= MAX_PP / 100, in integers: |ci - cf| * 10000 <= MAX_PP*100 * n
math(EXPR d "${ci} - ${cf}")
if(d LESS 0)
  math(EXPR d "-${d}")
endif()
string(REGEX REPLACE "^0?\\.([0-9])([0-9]?).*" "\\1\\2" pp100 "${MAX_PP}00")
math(EXPR lhs "${d} * 10000")
math(EXPR rhs "${pp100} * ${n}")
if(lhs GREATER rhs)
  message(FATAL_ERROR "int8 accuracy ${ci}/${n} is more than ${MAX_PP} pp from F32 ${cf}/${n}:\n${out}")
endif()
if(ci LESS 1 OR cf LESS 1)
  message(FATAL_ERROR "no sample right: not a real check\n${out}")
endif()
message(STATUS "${out}")
