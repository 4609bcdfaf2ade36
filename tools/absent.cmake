# Fails when any of FILES (separated by |) exists: a refused command must
# not have written what it was asked to write.
string(REPLACE "|" ";" _files "${FILES}")
foreach(f IN LISTS _files)
  if(EXISTS "${f}")
    message(FATAL_ERROR "${f} exists: a refused command wrote it")
  endif()
endforeach()
