/* Internal: where a save goes, checked before anything is written.
 *
 * Every file ctrain writes (weights, checkpoints) goes to "<target>.tmp.<pid>"
 * beside the target and is renamed over it. The target is what the path
 * names after following symbolic links (the link stays, the file it points
 * to is replaced), and it must be a regular file or nothing: a device node,
 * a FIFO or a directory at the path is refused rather than replaced.
 * Temporary files of processes that no longer run (killed mid-write) are
 * removed at the next save to the same target.
 */
#ifndef CT_IO_ST_TARGET_H
#define CT_IO_ST_TARGET_H

#include <sys/types.h>

#include "ctrain/status.h"

/* "a directory", "a FIFO", "a character device", ... for messages. */
const char *ct_file_kind(mode_t mode);

/* The path a save to `path` replaces (malloc'ed into *real): symbolic
 * links followed, the result a regular file or not there. Errors
 * (CT_ERR_IO, naming path): something else is there, a loop of links. */
ct_status ct_st_target_resolve(const char *path, char **real);

/* The temporary file name for a save to the resolved target (malloc'ed;
 * NULL on OOM). */
char *ct_st_temp_name(const char *real);

/* Removes "<real>.tmp.<pid>" files beside real whose process is gone. */
void ct_st_clean_stale_temps(const char *real);

/* That a save to path can succeed as far as can be known in advance: the
 * target resolves, and its temporary file can be created (and is removed
 * again). Stale temporary files are cleaned on the way. Errors: CT_ERR_IO
 * naming path and the system's reason. */
ct_status ct_st_target_check(const char *path);

#endif
