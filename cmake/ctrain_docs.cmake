# The API reference: `cmake --build BUILD --target docs` writes
# BUILD/docs/html/index.html from the public headers with Doxygen. Not part
# of the default build; without doxygen the target does not exist and a
# status line says so.
#
# The headers keep plain /* */ comments, the project's style; a filter
# (docs/doxygen_filter.awk) turns them into Doxygen comments as Doxygen
# reads them, so nothing in a header is written for the tool.
# CTRAIN_DOCS_WERROR (CI sets it) makes any Doxygen warning fail the target.

find_package(Doxygen QUIET)
option(CTRAIN_DOCS_WERROR "Fail the docs target on any Doxygen warning" OFF)
if(NOT DOXYGEN_FOUND)
  message(STATUS "ctrain: doxygen not found, no `docs` target (Debian: apt-get install doxygen)")
  return()
endif()
find_program(CTRAIN_AWK NAMES awk mawk gawk REQUIRED)
if(CTRAIN_DOCS_WERROR)
  # Reports every warning, then fails (YES would stop at the first).
  set(CTRAIN_DOXYGEN_WARN_AS_ERROR FAIL_ON_WARNINGS)
else()
  set(CTRAIN_DOXYGEN_WARN_AS_ERROR NO)
endif()
set(CTRAIN_DOCS_OUT "${PROJECT_BINARY_DIR}/docs")
configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in" "${CTRAIN_DOCS_OUT}/Doxyfile" @ONLY)
file(GLOB _ct_doc_headers CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/include/ctrain/*.h")
add_custom_command(OUTPUT "${CTRAIN_DOCS_OUT}/html/index.html"
  COMMAND ${DOXYGEN_EXECUTABLE} "${CTRAIN_DOCS_OUT}/Doxyfile"
  DEPENDS ${_ct_doc_headers} "${CTRAIN_DOCS_OUT}/Doxyfile" "${PROJECT_SOURCE_DIR}/docs/api.md"
          "${PROJECT_SOURCE_DIR}/docs/doxygen_filter.awk"
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
  COMMENT "Doxygen: the API reference in ${CTRAIN_DOCS_OUT}/html"
  VERBATIM)
add_custom_target(docs DEPENDS "${CTRAIN_DOCS_OUT}/html/index.html")
