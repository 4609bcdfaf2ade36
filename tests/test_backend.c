/* The backend interface's rules (src/core/backend.h): the CPU's and the
 * CUDA backend's tables keep them (the CUDA one checked without a GPU, in
 * a build with CUDA), and ct_backend_valid refuses a table that breaks one,
 * naming the member. */
#include <criterion/criterion.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "core/backend.h"
#include "core/cuda_query.h"

static ct_status stub_event_new(void **ev) {
    *ev = NULL;
    return CT_OK;
}
static ct_status stub_event_record(void *ev) {
    (void)ev;
    return CT_OK;
}
static ct_status stub_event_elapsed(void *start, void *stop, double *seconds) {
    (void)start, (void)stop;
    *seconds = 0;
    return CT_OK;
}
static void stub_event_free(void *ev) { (void)ev; }
static ct_status stub_graph_begin(void) { return CT_OK; }
static ct_status stub_graph_end(bool keep, void **exec) {
    (void)keep;
    *exec = NULL;
    return CT_OK;
}
static ct_status stub_graph_launch(void *exec) {
    (void)exec;
    return CT_OK;
}
static void stub_graph_free(void *exec) { (void)exec; }
static void stub_set_step_source(const uint32_t *step_dev) { (void)step_dev; }
static ct_status stub_clip_norm(void *g, ct_dtype dtype, size_t n, double max_norm, ct_step_dev *sd) {
    (void)g, (void)dtype, (void)n, (void)max_norm, (void)sd;
    return CT_OK;
}
static ct_status stub_loss_acc(const void *loss, ct_dtype dtype, double weight, ct_step_dev *sd) {
    (void)loss, (void)dtype, (void)weight, (void)sd;
    return CT_OK;
}

static ct_backend cpu_table(void) {
    const ct_backend *be = ct_cpu_backend();
    cr_assert(be, "%s", ct_last_error());
    return *be;
}

/* The CPU's table with a whole graph-capture group. */
static ct_backend capturing_table(void) {
    ct_backend b = cpu_table();
    b.graph_begin = stub_graph_begin;
    b.graph_end = stub_graph_end;
    b.graph_launch = stub_graph_launch;
    b.graph_free = stub_graph_free;
    b.set_step_source = stub_set_step_source;
    b.clip_norm = stub_clip_norm;
    b.loss_acc = stub_loss_acc;
    return b;
}

static void expect_refused(const ct_backend *b, const char *member) {
    char why[256];
    cr_expect_not(ct_backend_valid(b, why, sizeof why), "a table broken at %s was accepted", member);
    cr_expect(strstr(why, member), "the reason '%s' does not name %s", why, member);
}

#define EXPECT_REFUSED_WITHOUT(member)      \
    do {                                    \
        ct_backend b_ = cpu_table();        \
        b_.member = NULL;                   \
        expect_refused(&b_, #member);       \
    } while (0)

Test(backend, the_cpu_table_keeps_the_rules) {
    ct_backend b = cpu_table();
    char why[256] = "unset";
    cr_assert(ct_backend_valid(&b, why, sizeof why), "%s", why);
    cr_expect_str_empty(why);
    /* The optional groups the CPU has, and those whose fallbacks it uses. */
    cr_expect(b.copy && b.scratch_bytes);
    cr_expect(b.optim_update && b.sumsq && b.scale_clamp && b.axpby);
    cr_expect(b.amp_unscale && b.amp_update);
    cr_expect_null(b.event_new, "the CPU times with the host clock");
    cr_expect(!b.clip_norm && !b.loss_acc, "the step graph clips and sums the loss on the host");
    cr_expect(!b.graph_begin && !b.set_step_source, "the CPU does not capture");
}

Test(backend, the_cuda_table_keeps_the_rules) {
    ct_status st = ct_cuda_backend_check();
    if (st == CT_ERR_UNSUPPORTED) cr_skip_test("%s", ct_last_error());
    cr_assert_eq(st, CT_OK, "%s", ct_last_error());
    char why[512];
    if (ct_cuda_device_count(why, sizeof why) < 1) return; /* the table alone: no GPU here */
    const ct_backend *be = ct_cuda_backend(0);
    cr_assert(be, "%s", ct_last_error());
    /* Every optional group: events, device-side clipping and loss, mixed
     * precision, capture. */
    cr_expect(be->event_new && be->clip_norm && be->loss_acc && be->amp_unscale && be->graph_begin &&
              be->set_step_source);
}

Test(backend, a_missing_required_member_is_refused) {
    EXPECT_REFUSED_WITHOUT(name);
    EXPECT_REFUSED_WITHOUT(alloc);
    EXPECT_REFUSED_WITHOUT(free);
    EXPECT_REFUSED_WITHOUT(zero);
    EXPECT_REFUSED_WITHOUT(upload);
    EXPECT_REFUSED_WITHOUT(download);
    EXPECT_REFUSED_WITHOUT(sync);
    ct_backend b = cpu_table();
    b.kind = (ct_device_kind)7;
    expect_refused(&b, "kind");
    char why[64];
    cr_expect_not(ct_backend_valid(NULL, why, sizeof why));
    /* No room for the reason is no crash. */
    cr_expect_not(ct_backend_valid(NULL, NULL, 0));
}

Test(backend, optional_members_alone_may_be_null) {
    ct_backend b = cpu_table();
    b.copy = NULL;
    b.scratch_bytes = NULL;
    b.optim_update = NULL;
    b.sumsq = NULL;
    b.scale_clamp = NULL;
    b.axpby = NULL;
    b.amp_unscale = NULL;
    b.amp_update = NULL;
    memset(b.kernels, 0, sizeof b.kernels);
    char why[256];
    cr_expect(ct_backend_valid(&b, why, sizeof why), "%s", why);
}

Test(backend, a_group_is_whole_or_absent) {
    ct_backend b = cpu_table();
    b.event_new = stub_event_new;
    expect_refused(&b, "event_record");
    b.event_record = stub_event_record;
    b.event_elapsed = stub_event_elapsed;
    b.event_free = stub_event_free;
    expect_refused(&b, "event_method");
    b.event_method = "stub events";
    char why[256];
    cr_expect(ct_backend_valid(&b, why, sizeof why), "%s", why);

    EXPECT_REFUSED_WITHOUT(amp_update);
    EXPECT_REFUSED_WITHOUT(amp_unscale);

    b = capturing_table();
    cr_expect(ct_backend_valid(&b, why, sizeof why), "%s", why);
    b.set_step_source = NULL;
    expect_refused(&b, "set_step_source");
    b = capturing_table();
    b.graph_free = NULL;
    expect_refused(&b, "graph_free");
}

Test(backend, capture_needs_the_device_side_step_helpers) {
    ct_backend b = capturing_table();
    b.clip_norm = NULL;
    expect_refused(&b, "clip_norm");
    b = capturing_table();
    b.loss_acc = NULL;
    expect_refused(&b, "loss_acc");
}
