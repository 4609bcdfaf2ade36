# How the tests start a program on 2 MPI ranks (tests/mpi, examples/):
# CT_MPIRUN, the launcher's command line, and CT_MPI_ENV, the environment.
#
# They run where CI runs: as root in a container on 2 cores. Open MPI needs
# its two run-as-root variables there, and --oversubscribe when it counts
# fewer free slots than ranks; each rank keeps to one thread so that two
# ranks share two cores without OpenMP and OpenBLAS fighting over them.

execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _ct_mpiexec_version ERROR_QUIET)
set(CT_MPIRUN ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2)
if(_ct_mpiexec_version MATCHES "Open MPI|OpenRTE")
  list(APPEND CT_MPIRUN --oversubscribe)
endif()
list(APPEND CT_MPIRUN ${MPIEXEC_PREFLAGS})
set(CT_MPI_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
    OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive)
if(CTRAIN_SANITIZE)
  # Open MPI keeps allocations alive until exit on purpose; those are not ours.
  list(APPEND CT_MPI_ENV ASAN_OPTIONS=detect_leaks=0:abort_on_error=1)
endif()
