/* The library's own version, compiled in here so that a program built
 * against other headers can notice it runs with a different libctrain.so. */
#include "ctrain/version.h"

const char *ct_version(void) { return CTRAIN_VERSION_STRING; }
