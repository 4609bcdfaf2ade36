/* Internal: setting the thread's last error. */
#ifndef CT_CORE_ERROR_H
#define CT_CORE_ERROR_H

#include "ctrain/status.h"

/* Records status and message for ct_last_error(); returns s. */
ct_status ct_error(ct_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
