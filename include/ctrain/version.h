/* ctrain version.
 *
 * The macros give the version the program was compiled against; ct_version()
 * gives the one of the library it runs with, so a program can detect a
 * mismatched shared library.
 */
#ifndef CTRAIN_VERSION_H
#define CTRAIN_VERSION_H

#define CTRAIN_VERSION_MAJOR 0
#define CTRAIN_VERSION_MINOR 1
#define CTRAIN_VERSION_PATCH 0
#define CTRAIN_VERSION_STRING "0.1.0"
/* One number for preprocessor tests, MAJOR * 10000 + MINOR * 100 + PATCH:
 * #if CTRAIN_VERSION_NUMBER >= 200 (0.2.0 or newer). */
#define CTRAIN_VERSION_NUMBER \
    (CTRAIN_VERSION_MAJOR * 10000 + CTRAIN_VERSION_MINOR * 100 + CTRAIN_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version as "MAJOR.MINOR.PATCH". Static string, never NULL. */
const char *ct_version(void);

#ifdef __cplusplus
}
#endif
#endif
