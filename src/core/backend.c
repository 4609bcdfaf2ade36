/* The backend interface's rules (core/backend.h), checked once per backend
 * when its table is first asked for: required members set, and the
 * optional groups all set or all NULL, so that a caller which checks one
 * member of a group before using the group (has_events, graph_begin) never
 * reaches a NULL in the same group. */
#include <stdarg.h>
#include <stdio.h>

#include "core/backend.h"

static bool broken(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool broken(char *why, size_t cap, const char *fmt, ...) {
    if (why && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* How many of the n members are set. */
static int count_set(const bool *set, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += set[i];
    return k;
}

/* A group of n members: all set or all NULL; otherwise names the first
 * NULL one. */
static bool group_whole(const char *backend, const char *group, const char *const *names, const bool *set, int n,
                        char *why, size_t cap) {
    int k = count_set(set, n);
    if (k == 0 || k == n) return true;
    int i = 0;
    while (set[i]) i++;
    return broken(why, cap, "backend '%s': %s is NULL while other %s members are set (all or none)", backend,
                  names[i], group);
}

static bool required_set(const ct_backend *be, char *why, size_t cap) {
    const char *const names[] = {"name", "alloc", "free", "zero", "upload", "download", "sync"};
    const bool set[] = {be->name != NULL, be->alloc != NULL,    be->free != NULL, be->zero != NULL,
                        be->upload != NULL, be->download != NULL, be->sync != NULL};
    for (int i = 0; i < (int)(sizeof set / sizeof set[0]); i++)
        if (!set[i])
            return broken(why, cap, "backend '%s': the required member %s is NULL", be->name ? be->name : "(unnamed)",
                          names[i]);
    if (be->kind != CT_DEVICE_CPU && be->kind != CT_DEVICE_CUDA)
        return broken(why, cap, "backend '%s': kind %d is not a device kind", be->name, (int)be->kind);
    return true;
}

bool ct_backend_valid(const ct_backend *be, char *why, size_t cap) {
    if (why && cap > 0) why[0] = '\0';
    if (!be) return broken(why, cap, "no backend table");
    if (!required_set(be, why, cap)) return false;
    const char *const ev_names[] = {"event_new", "event_record", "event_elapsed", "event_free", "event_method"};
    const bool ev[] = {be->event_new != NULL, be->event_record != NULL, be->event_elapsed != NULL,
                       be->event_free != NULL, be->event_method != NULL};
    if (!group_whole(be->name, "event", ev_names, ev, 5, why, cap)) return false;
    const char *const amp_names[] = {"amp_unscale", "amp_update"};
    const bool amp[] = {be->amp_unscale != NULL, be->amp_update != NULL};
    if (!group_whole(be->name, "mixed-precision", amp_names, amp, 2, why, cap)) return false;
    const char *const gr_names[] = {"graph_begin", "graph_end", "graph_launch", "graph_free", "set_step_source"};
    const bool gr[] = {be->graph_begin != NULL, be->graph_end != NULL, be->graph_launch != NULL,
                       be->graph_free != NULL, be->set_step_source != NULL};
    if (!group_whole(be->name, "graph-capture", gr_names, gr, 5, why, cap)) return false;
    /* Capture needs the fused step's device-side helpers: their host
     * fallbacks download, which a capture cannot hold. */
    if (be->graph_begin && (!be->clip_norm || !be->loss_acc))
        return broken(why, cap, "backend '%s': it captures graphs but %s is NULL", be->name,
                      be->clip_norm ? "loss_acc" : "clip_norm");
    return true;
}
