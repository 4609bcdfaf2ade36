# The PyTorch twins against ctrain, on the workloads in WORKLOADS: runs
# `ctrain bench` and benchmarks/torch_bench.py (eager only: torch.compile
# would take a minute) with the same tiny flags, then compare.py --from on
# the two records, and checks that every workload is paired (the same
# config in both engines, so a ratio and no "config differs") in UNIT.
# Where PyTorch is not installed it prints "SKIPPED" (the test's
# SKIP_REGULAR_EXPRESSION).
#
#   PROGRAM    the ctrain executable
#   PYTHON     python3
#   BENCH_DIR  benchmarks/ of the source tree
#   WORKLOADS  comma-separated names
#   UNIT       the unit compare.py must print, e.g. tokens/s
#   OUT        a directory for the records
#
# Run as: cmake -DPROGRAM=... -DPYTHON=... -DBENCH_DIR=... -DWORKLOADS=... -DUNIT=... -DOUT=... -P bench_torch_check.cmake

set(flags --quick --workload ${WORKLOADS} --device cpu --warmup 0 --steps 1 --reps 1)
file(MAKE_DIRECTORY "${OUT}")
file(REMOVE "${OUT}/ctrain.json" "${OUT}/torch.json")
# The wait policy as benchmarks/README.md says, for both engines; no
# bytecode written beside the sources.
set(ENV{OMP_WAIT_POLICY} passive)
set(ENV{PYTHONDONTWRITEBYTECODE} 1)
execute_process(COMMAND ${PROGRAM} bench ${flags} --json ${OUT}/ctrain.json
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "ctrain bench: exit '${rc}'\n${out}\n${err}")
endif()
execute_process(COMMAND ${PYTHON} ${BENCH_DIR}/torch_bench.py ${flags} --variants eager --json ${OUT}/torch.json
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc STREQUAL "3")
  message(STATUS "SKIPPED: ${err}")
  return()
endif()
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "torch_bench.py: exit '${rc}'\n${out}\n${err}")
endif()
execute_process(COMMAND ${PYTHON} ${BENCH_DIR}/compare.py --from ${OUT}/ctrain.json ${OUT}/torch.json
  RESULT_VARIABLE rc OUTPUT_VARIABLE table ERROR_VARIABLE err)
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "compare.py: exit '${rc}'\n${table}\n${err}")
endif()
message(STATUS "${table}")
if(table MATCHES "config differs")
  message(FATAL_ERROR "compare.py did not pair the two engines' rows")
endif()
string(REPLACE "," ";" names "${WORKLOADS}")
foreach(name IN LISTS names)
  # | name | config | unit | ctrain | torch eager | ctrain / eager |
  if(NOT table MATCHES "\n\\| ${name} \\| [^|\n]+ \\| ${UNIT} \\| [0-9.]+ \\| [0-9.]+ \\| [0-9.]+ \\|\n")
    message(FATAL_ERROR "no ratio in ${UNIT} for ${name}")
  endif()
endforeach()
