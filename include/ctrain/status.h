/* Errors as values.
 *
 * Every public function that can fail returns a ct_status (or NULL / CT_NO_NODE)
 * and leaves a one-line message for ct_last_error() naming what failed and why.
 * The library never exits or aborts on bad input. The message is per thread.
 */
#ifndef CTRAIN_STATUS_H
#define CTRAIN_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_status {
    CT_OK = 0,
    CT_ERR_INVALID_ARG,  /* a bad value: NULL pointer, negative size, bad axis */
    CT_ERR_SHAPE,        /* shapes that do not fit together */
    CT_ERR_DTYPE,        /* a dtype the op does not take */
    CT_ERR_NOT_FOUND,    /* an unknown name */
    CT_ERR_OOM,          /* an allocation failed */
    CT_ERR_IO,           /* a file could not be read or written */
    CT_ERR_FORMAT,       /* a file's content is malformed */
    CT_ERR_UNSUPPORTED,  /* valid, but not available in this build or backend */
    CT_ERR_DEVICE,       /* the device or its runtime failed */
    CT_ERR_NUMERIC,      /* NaN or inf where a finite value is required */
    CT_ERR_STATE,        /* called at the wrong time (e.g. backward twice) */
    CT_ERR_INTERNAL      /* a bug in ctrain: please report it */
} ct_status;

/* The message of the last error on this thread ("" if none). Valid until the
 * next failing call on the same thread. */
const char *ct_last_error(void);

/* The status of the last error on this thread (CT_OK if none). */
ct_status ct_last_status(void);

/* Forget the last error. */
void ct_clear_error(void);

/* A short constant name for a status, e.g. "shape error". */
const char *ct_status_name(ct_status s);

#ifdef __cplusplus
}
#endif
#endif
