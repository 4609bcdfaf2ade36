/* Where a trainer's checkpoints go: checked before the first step, and
 * kept somewhere when a save fails anyway.
 *
 * A run that learns only at its end that --save points somewhere it cannot
 * write has cost every epoch it ran; so the target is tried (its temporary
 * file created and removed) before training starts. Should a save still
 * fail (a full disk, the directory removed meanwhile), the state goes to a
 * rescue file in the temporary directory instead, and the error says where:
 * the run's work can still be resumed or used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/st_target.h"
#include "train/train_internal.h"

ct_status ct_train_check_save_path(const ct_trainer *t) {
    if (!t->save_path || t->rank != 0) return CT_OK; /* only rank 0 writes */
    ct_status st = ct_st_target_check(t->save_path);
    if (st != CT_OK) return ct_error(st, "the checkpoint cannot be saved (checked before training): %s", ct_last_error());
    return CT_OK;
}

/* "<TMPDIR or /tmp>/ctrain-rescue-<pid>-<file name of path>". */
static void rescue_path(const char *path, char *out, size_t cap) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    snprintf(out, cap, "%s/ctrain-rescue-%ld-%.200s", dir, (long)getpid(), *base ? base : "checkpoint");
}

ct_status ct_train_save_or_rescue(ct_trainer *t, const char *path) {
    ct_status st = ct_trainer_save(t, path);
    if (st == CT_OK) return CT_OK;
    char why[1024], rescue[512];
    snprintf(why, sizeof why, "%s", ct_last_error());
    rescue_path(path, rescue, sizeof rescue);
    if (strcmp(rescue, path) != 0 && ct_trainer_save(t, rescue) == CT_OK)
        return ct_error(st, "%s; the trained state was saved to '%s' instead (give it to --resume or --init-from)",
                        why, rescue);
    return ct_error(st, "%s (and saving it to '%s' instead failed too: %s)", why, rescue, ct_last_error());
}
