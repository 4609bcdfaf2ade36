/* The per-thread last error behind ct_last_error().
 *
 * Thread-local, so that ranks' helper threads, data-loading threads and the
 * user's own threads never see (or overwrite) each other's messages, and no
 * lock is needed on the failure path.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

/* Long enough for a message that quotes a path, two shapes and a device error
 * string; longer messages are cut, never overflowed. */
#define CT_ERROR_CAP 1024

static _Thread_local char t_msg[CT_ERROR_CAP];
static _Thread_local ct_status t_status = CT_OK;

ct_status ct_error(ct_status s, const char *fmt, ...) {
    /* Format into a local buffer first: callers wrap a lower-level failure
     * with ct_error(s, "...: %s", ct_last_error()), and vsnprintf straight
     * into t_msg would then read and write the same bytes. */
    char tmp[CT_ERROR_CAP];
    tmp[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        if (n < 0) tmp[0] = '\0'; /* an encoding error: keep the status at least */
    }
    memcpy(t_msg, tmp, sizeof tmp);
    t_status = s;
    return s;
}

const char *ct_last_error(void) { return t_msg; }

ct_status ct_last_status(void) { return t_status; }

void ct_clear_error(void) {
    t_msg[0] = '\0';
    t_status = CT_OK;
}

const char *ct_status_name(ct_status s) {
    switch (s) {
    case CT_OK: return "ok";
    case CT_ERR_INVALID_ARG: return "invalid argument";
    case CT_ERR_SHAPE: return "shape error";
    case CT_ERR_DTYPE: return "dtype error";
    case CT_ERR_NOT_FOUND: return "not found";
    case CT_ERR_OOM: return "out of memory";
    case CT_ERR_IO: return "i/o error";
    case CT_ERR_FORMAT: return "format error";
    case CT_ERR_UNSUPPORTED: return "unsupported";
    case CT_ERR_DEVICE: return "device error";
    case CT_ERR_NUMERIC: return "numeric error";
    case CT_ERR_STATE: return "state error";
    case CT_ERR_INTERNAL: return "internal error";
    }
    /* Not a default label: -Wswitch then flags a status added to the enum
     * but not named here. Out-of-range values (a cast int) land here. */
    return "unknown status";
}
