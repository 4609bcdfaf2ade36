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

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version as "MAJOR.MINOR.PATCH". Static string, never NULL. */
const char *ct_version(void);

#ifdef __cplusplus
}
#endif
#endif
