# Sets CTRAIN_GIT_COMMIT to the commit the source tree is checked out at
# ("unknown" outside a git checkout or without git), for ct_build_commit():
# benchmark records and bug reports name the exact code they ran.
#
# It is read at configure time, so the files git rewrites on a commit or a
# checkout (HEAD and the current branch's ref) are made configure
# dependencies: the next build after a commit re-runs CMake and picks up
# the new commit. Uncommitted changes are not tracked.
set(CTRAIN_GIT_COMMIT "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse HEAD
                  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
                  OUTPUT_VARIABLE _ct_commit OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _ct_git_rc ERROR_QUIET)
  if(_ct_git_rc EQUAL 0 AND _ct_commit MATCHES "^[0-9a-f]+$")
    set(CTRAIN_GIT_COMMIT "${_ct_commit}")
    # In a worktree HEAD lives in the worktree's git directory and the
    # branch's ref in the common one; --git-path answers both cases.
    execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --symbolic-full-name HEAD
                    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
                    OUTPUT_VARIABLE _ct_ref OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    foreach(_ct_path HEAD ${_ct_ref} packed-refs)
      execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --git-path "${_ct_path}"
                      WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
                      OUTPUT_VARIABLE _ct_file OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(_ct_file AND NOT IS_ABSOLUTE "${_ct_file}")
        set(_ct_file "${PROJECT_SOURCE_DIR}/${_ct_file}")
      endif()
      if(_ct_file AND EXISTS "${_ct_file}")
        set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_ct_file}")
      endif()
    endforeach()
  endif()
endif()
