/* The F32 and BF16 convolutions through oneDNN's direct kernels
 * (conv_onednn.h). The two differ only in the dtypes of the descriptors
 * (ct_conv_shape's src_dt and dst_dt); with BF16 inputs oneDNN picks its
 * AVX512-BF16 kernels (products of BF16 pairs summed in F32).
 *
 * Forward and input gradient: one entry per geometry holds the convolution
 * primitive, chosen by oneDNN for the CPU at hand with the layouts it
 * prefers (format "any": nChw16c activations and blocked weights on
 * AVX-512), and the reorders between those and ctrain's row-major NCHW.
 * A run reorders the weight and the input into scratch, convolves, and
 * reorders the output back: the copies are a few megabytes against
 * hundreds of megaflops. Every output element is reduced over its input
 * channels and taps by one thread in a fixed order, whatever the number of
 * threads, so the results do not depend on it (tests/test_conv_fast.c
 * checks 1, 2 and 3 threads).
 *
 * Weight gradient: oneDNN splits the batch between its threads and adds
 * their partials, in an order that depends on their number. So the
 * primitive here is made for one chunk of the batch and one thread, and
 * k_conv.c runs whole chunks on its threads and adds their partials in
 * chunk order (see the second half of this file). */
#include "cpu/conv_onednn.h"

#ifdef CTRAIN_HAVE_DNNL
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/node.h"
#include "cpu/cpu_simd.h"

#define MAX_ENTRIES 256 /* geometries cached; past that the reference path runs */
#define ALIGN 64

/* The three tensors a primitive touches, in ctrain's layout (user) and in
 * the primitive's (prim, NULL reorder when they agree). For the forward
 * in = x, out = y; for the input gradient in = dy, out = dx. */
typedef struct side {
    dnnl_memory_t user, prim;
    dnnl_primitive_t reorder;
    size_t off; /* of the primitive's copy in scratch */
} side;

typedef struct entry {
    ct_conv_shape key;
    pthread_mutex_t lock; /* one run at a time: the memories' data handles are per entry */
    int nthr;             /* omp_get_max_threads() when built */
    bool ok;
    size_t bytes;         /* scratch, as first declared; a rebuild must not need more */
    dnnl_primitive_t conv;
    dnnl_memory_t bias, pad; /* pad: the scratchpad, NULL when none */
    size_t pad_off;
    side in, w, out;
    bool out16;           /* the forward's y is F32 nChw16c (a fused relu can come with its unblocking) */
} entry;

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static bool usable;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static entry *table[MAX_ENTRIES];
static int n_table;

static void start(void) {
    usable = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success &&
             dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success;
}

static size_t align_up(size_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

static void side_free(side *s) {
    if (s->reorder) dnnl_primitive_destroy(s->reorder);
    if (s->prim && s->prim != s->user) dnnl_memory_destroy(s->prim);
    if (s->user) dnnl_memory_destroy(s->user);
    *s = (side){0};
}

static void entry_clear(entry *e) {
    if (e->conv) dnnl_primitive_destroy(e->conv);
    if (e->bias) dnnl_memory_destroy(e->bias);
    if (e->pad) dnnl_memory_destroy(e->pad);
    side_free(&e->in), side_free(&e->w), side_free(&e->out);
    e->conv = NULL, e->bias = NULL, e->pad = NULL, e->ok = false;
}

static dnnl_data_type_t dt_of(int t) { return t == CT_BF16 ? dnnl_bf16 : dnnl_f32; }

/* The weight's descriptor ([G, O/G, C/G, KH, KW] when grouped, the same
 * bytes as ctrain's [O, C/G, KH, KW]); with any, the format is left to
 * the primitive. */
static bool wdesc(const ct_conv_shape *s, bool any, dnnl_data_type_t dt, dnnl_memory_desc_t *w) {
    dnnl_dims_t wd = {s->o, s->c / s->groups, s->kh, s->kw};
    dnnl_dims_t gd = {s->groups, s->o / s->groups, s->c / s->groups, s->kh, s->kw};
    bool g = s->groups > 1;
    dnnl_format_tag_t wt = any ? dnnl_format_tag_any : g ? dnnl_goihw : dnnl_oihw;
    return dnnl_memory_desc_init_by_tag(w, g ? 5 : 4, g ? gd : wd, dt, wt) == dnnl_success;
}

/* The row-major descriptors of x, the weight and y, in the op's dtypes:
 * the inputs' (src_dt) except for the output (dst_dt: y of the forward, x
 * of the input gradient, the weight of the weight gradient). */
static bool descs(const ct_conv_shape *s, bool any, dnnl_memory_desc_t *x, dnnl_memory_desc_t *w,
                  dnnl_memory_desc_t *y) {
    dnnl_dims_t xd = {s->n, s->c, s->h, s->w}, yd = {s->n, s->o, s->oh, s->ow};
    dnnl_data_type_t in = dt_of(s->src_dt), out = dt_of(s->dst_dt);
    dnnl_format_tag_t act = any ? dnnl_format_tag_any : dnnl_nchw;
    return dnnl_memory_desc_init_by_tag(x, 4, xd, s->op == CT_OP_CONV2D_GRAD_INPUT ? out : in, act) == dnnl_success &&
           dnnl_memory_desc_init_by_tag(y, 4, yd, s->op == CT_OP_CONV2D ? out : in, act) == dnnl_success &&
           wdesc(s, any, s->op == CT_OP_CONV2D_GRAD_WEIGHT ? out : in, w);
}

/* The convolution's primitive descriptor: the forward, or the input
 * gradient with the forward as its hint. Rejects oneDNN's reference
 * implementations (slower than ctrain's own) and its gemm-based ones
 * (im2col like the reference, with a scratchpad per thread). */
static dnnl_primitive_desc_t conv_pd(const ct_conv_shape *s, dnnl_primitive_attr_t attr) {
    dnnl_memory_desc_t x, w, y, b;
    dnnl_dims_t bd = {s->o}, st = {s->stride[0], s->stride[1]}, pad = {s->pad[0], s->pad[1]};
    dnnl_dims_t dil = {s->dil[0] - 1, s->dil[1] - 1}; /* oneDNN counts the gaps */
    dnnl_convolution_desc_t fd, bd_desc;
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    bool grad = s->op == CT_OP_CONV2D_GRAD_INPUT;
    /* oneDNN's input gradient over few channels (a first layer's: C = 1)
     * measured 3x slower than the reference (docs/cpu_backend.md) */
    if (grad && s->groups == 1 && s->c < 16) return NULL;
    bool ok = descs(s, true, &x, &w, &y) &&
              dnnl_memory_desc_init_by_tag(&b, 1, bd, dt_of(s->dst_dt), dnnl_x) == dnnl_success &&
              dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &x, &w,
                                                         s->bias ? &b : NULL, &y, st, dil, pad, pad) == dnnl_success &&
              dnnl_primitive_desc_create(&fwd, &fd, grad ? NULL : attr, engine, NULL) == dnnl_success;
    if (ok && grad)
        ok = dnnl_dilated_convolution_backward_data_desc_init(&bd_desc, dnnl_convolution_direct, &x, &w, &y, st, dil,
                                                             pad, pad) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &bd_desc, attr, engine, fwd) == dnnl_success;
    if (ok && !grad) pd = fwd, fwd = NULL;
    if (fwd) dnnl_primitive_desc_destroy(fwd);
    const char *impl = NULL;
    if (pd && (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl ||
               strncmp(impl, "ref", 3) == 0 || strstr(impl, "gemm"))) {
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
    }
    return pd;
}

static size_t scratchpad_of(const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *m = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return m ? dnnl_memory_desc_get_size(m) : 0;
}

/* One side: memories for ctrain's layout and the primitive's (data set at
 * run time), and the reorder between them, user to primitive (to_prim) or
 * back; *off advances past the primitive's copy in scratch. False when a
 * reorder would need a scratchpad. */
static bool side_make(side *sd, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *prim, bool to_prim,
                      dnnl_primitive_attr_t attr, size_t *off) {
    if (dnnl_memory_create(&sd->user, user, engine, DNNL_MEMORY_NONE) != dnnl_success) return false;
    if (dnnl_memory_desc_equal(user, prim)) {
        sd->prim = sd->user;
        return true;
    }
    dnnl_primitive_desc_t rpd = NULL;
    const dnnl_memory_desc_t *from = to_prim ? user : prim, *to = to_prim ? prim : user;
    bool ok = dnnl_memory_create(&sd->prim, prim, engine, DNNL_MEMORY_NONE) == dnnl_success &&
              dnnl_reorder_primitive_desc_create(&rpd, from, engine, to, engine, attr) == dnnl_success &&
              scratchpad_of(rpd) == 0 && dnnl_primitive_create(&sd->reorder, rpd) == dnnl_success;
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    sd->off = *off;
    *off = align_up(*off + dnnl_memory_desc_get_size(prim));
    return ok;
}

/* Whether the forward's primitive writes y as F32 nChw16c. */
static bool is_f32_16c(const ct_conv_shape *s, const dnnl_memory_desc_t *prim) {
    dnnl_dims_t yd = {s->n, s->o, s->oh, s->ow};
    dnnl_memory_desc_t blk;
    return s->dst_dt == CT_F32 &&
           dnnl_memory_desc_init_by_tag(&blk, 4, yd, dnnl_f32, dnnl_nChw16c) == dnnl_success &&
           dnnl_memory_desc_equal(&blk, prim);
}

/* Builds e's primitive for the current thread count; sets e->ok and, on
 * the first build, e->bytes. */
static void build(entry *e) {
    const ct_conv_shape *s = &e->key;
    e->nthr = omp_get_max_threads();
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_t x, w, y, b;
    dnnl_dims_t bd = {s->o};
    bool grad = s->op == CT_OP_CONV2D_GRAD_INPUT;
    bool ok = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
              (pd = conv_pd(s, attr)) != NULL && descs(s, false, &x, &w, &y) &&
              dnnl_memory_desc_init_by_tag(&b, 1, bd, dt_of(s->dst_dt), dnnl_x) == dnnl_success &&
              dnnl_primitive_create(&e->conv, pd) == dnnl_success;
    size_t off = 0;
    if (ok) {
        const dnnl_memory_desc_t *pin = dnnl_primitive_desc_query_md(pd, grad ? dnnl_query_diff_dst_md : dnnl_query_src_md, 0);
        const dnnl_memory_desc_t *pw = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *pout = dnnl_primitive_desc_query_md(pd, grad ? dnnl_query_diff_src_md : dnnl_query_dst_md, 0);
        ok = pin && pw && pout && side_make(&e->in, grad ? &y : &x, pin, true, attr, &off) &&
             side_make(&e->w, &w, pw, true, attr, &off) && side_make(&e->out, grad ? &x : &y, pout, false, attr, &off) &&
             (!s->bias || dnnl_memory_create(&e->bias, &b, engine, DNNL_MEMORY_NONE) == dnnl_success);
        e->out16 = ok && !grad && e->out.prim != e->out.user && is_f32_16c(s, pout);
        /* the direct kernels' own scratchpad (a bias padded to the channel
         * block, say), after the copies */
        e->pad_off = off;
        const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (ok && scratchpad_of(pd) > 0) {
            ok = dnnl_memory_create(&e->pad, pmd, engine, DNNL_MEMORY_NONE) == dnnl_success;
            off = align_up(off + scratchpad_of(pd));
        }
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    if (ok && e->bytes == (size_t)-1) e->bytes = off; /* the declaration */
    e->ok = ok && off <= e->bytes;
    if (!e->ok) entry_clear(e);
}

/* The entry for s, created (and built) when create is set. */
static entry *find(const ct_conv_shape *s, bool create) {
    pthread_mutex_lock(&table_lock);
    entry *e = NULL;
    for (int i = 0; i < n_table && !e; i++)
        if (memcmp(&table[i]->key, s, sizeof *s) == 0) e = table[i];
    if (!e && create && n_table < MAX_ENTRIES && (e = calloc(1, sizeof *e))) {
        e->key = *s;
        e->bytes = (size_t)-1;
        pthread_mutex_init(&e->lock, NULL);
        build(e);
        table[n_table++] = e;
    }
    pthread_mutex_unlock(&table_lock);
    return e;
}

bool ct_conv_onednn_declare(const ct_conv_shape *s, size_t *bytes) {
    pthread_once(&once, start);
    if (!usable) return false;
    entry *e = find(s, true);
    if (!e || e->bytes == (size_t)-1) return false; /* oneDNN declined this geometry */
    *bytes = e->bytes;
    return true;
}

static void set(dnnl_memory_t m, const void *p) { dnnl_memory_set_data_handle(m, (void *)p); }

/* The side's primitive copy: its own memory in scratch, or the user's. */
static void side_bind(side *sd, const void *user, void *scratch) {
    set(sd->user, user);
    if (sd->prim != sd->user) set(sd->prim, (char *)scratch + sd->off);
}

static bool reorder(const side *sd) {
    if (!sd->reorder) return true;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, sd->user}, {DNNL_ARG_TO, sd->prim}};
    return dnnl_primitive_execute(sd->reorder, stream, 2, a) == dnnl_success;
}

static bool reorder_back(const side *sd) {
    if (!sd->reorder) return true;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, sd->prim}, {DNNL_ARG_TO, sd->user}};
    return dnnl_primitive_execute(sd->reorder, stream, 2, a) == dnnl_success;
}

/* y = relu of the forward's F32 output in nChw16c (src), in ctrain's NCHW:
 * the unblocking that oneDNN's reorder would do, with ct_ew_relu in float
 * on the way (the same bits as the reorder, then the relu pass). One task
 * per sample and block of 16 channels, 16 pixels at a time: the relu over
 * their contiguous kilobyte (vectorised, without branches: the signs are
 * random), then the transposing copy. */
static void unblock16_relu(const float *src, float *y, int64_t n, int64_t o, int64_t p) {
    const int64_t cbs = (o + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n * cbs; t++) {
        const int64_t cb = t % cbs, c_end = o - cb * 16 < 16 ? o - cb * 16 : 16;
        float *yb = y + ((t / cbs) * o + cb * 16) * p;
        float r[256];
        for (int64_t q0 = 0; q0 < p; q0 += 16) {
            const int64_t q_end = p - q0 < 16 ? p - q0 : 16;
            const float *tile = src + (t * p + q0) * 16;
            for (int64_t i = 0; i < q_end * 16; i++) r[i] = ct_relu_f32(tile[i]);
            for (int64_t c = 0; c < c_end; c++)
                for (int64_t q = 0; q < q_end; q++) yb[c * p + q0 + q] = r[q * 16 + c];
        }
    }
}

/* relu: the forward's output comes out of nChw16c through unblock16_relu. */
static bool execute(entry *e, const void *src, const void *w, const void *b, void *dst, void *scratch, bool relu) {
    bool grad = e->key.op == CT_OP_CONV2D_GRAD_INPUT;
    side_bind(&e->in, src, scratch), side_bind(&e->w, w, scratch), side_bind(&e->out, dst, scratch);
    dnnl_exec_arg_t a[5];
    int n = 0;
    if (e->pad) {
        set(e->pad, (char *)scratch + e->pad_off);
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->pad};
    }
    a[n++] = (dnnl_exec_arg_t){grad ? DNNL_ARG_DIFF_DST : DNNL_ARG_SRC, e->in.prim};
    a[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, e->w.prim};
    a[n++] = (dnnl_exec_arg_t){grad ? DNNL_ARG_DIFF_SRC : DNNL_ARG_DST, e->out.prim};
    if (e->bias) {
        set(e->bias, b);
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    }
    bool ok = reorder(&e->w) && reorder(&e->in) && dnnl_primitive_execute(e->conv, stream, n, a) == dnnl_success;
    if (!relu) return ok && reorder_back(&e->out) && dnnl_stream_wait(stream) == dnnl_success;
    ok = ok && dnnl_stream_wait(stream) == dnnl_success;
    const ct_conv_shape *s = &e->key;
    if (ok) unblock16_relu((const float *)((char *)scratch + e->out.off), dst, s->n, s->o, s->oh * s->ow);
    return ok;
}

bool ct_conv_onednn_run(const ct_conv_shape *s, const void *src, const void *w, const void *b, void *dst,
                        void *scratch, bool *relu, ct_status *st) {
    const bool want = *relu;
    *relu = false;
    pthread_once(&once, start);
    if (!usable) return false;
    entry *e = find(s, false);
    if (!e) return false;
    pthread_mutex_lock(&e->lock);
    if (e->bytes != (size_t)-1 && e->nthr != omp_get_max_threads()) { /* oneDNN plans for the thread count */
        entry_clear(e);
        build(e);
    }
    bool ran = e->ok;
    *relu = ran && want && e->out16;
    if (ran)
        *st = execute(e, src, w, b, dst, scratch, *relu)
                  ? CT_OK
                  : ct_error(CT_ERR_INTERNAL, "cpu %s: oneDNN's convolution failed", ct_op_name((ct_op)s->op));
    pthread_mutex_unlock(&e->lock);
    return ran;
}

/* ---- the weight gradient of one chunk of the batch, on one thread ------
 *
 * oneDNN's weight gradient splits the batch between its threads and adds
 * their partial sums, so its bits depend on the thread count. Here the
 * primitive is made for a chunk of the batch (k_conv.c fixes its size from
 * the shapes) and for one thread, and ctrain's threads run whole chunks,
 * each slot (a thread's buffers) with its own memories and stream. */

typedef struct wslot {
    pthread_mutex_t lock; /* a slot's memories serve one chunk at a time */
    dnnl_stream_t stream;
    side x, dy, dw;
    dnnl_memory_t pad; /* the primitive's scratchpad, NULL when it needs none */
} wslot;

typedef struct wentry {
    ct_conv_shape key;
    bool ok;
    size_t slot_bytes, pad_off; /* a slot's scratch, and its scratchpad's place in it */
    dnnl_primitive_t conv;
    wslot *slots;
} wentry;

static wentry *wtable[MAX_ENTRIES];
static int n_wtable;

static dnnl_primitive_desc_t wgrad_pd(const ct_conv_shape *s, dnnl_primitive_attr_t attr) {
    dnnl_memory_desc_t x, w, y;
    dnnl_dims_t st = {s->stride[0], s->stride[1]}, pad = {s->pad[0], s->pad[1]};
    dnnl_dims_t dil = {s->dil[0] - 1, s->dil[1] - 1};
    dnnl_convolution_desc_t fd, wd;
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    dnnl_memory_desc_t wh; /* the hint's weight, in the inputs' dtype (the gradient's may be wider) */
    bool ok = descs(s, true, &x, &w, &y) && wdesc(s, true, dt_of(s->src_dt), &wh) &&
              dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &x, &wh,
                                                         NULL, &y, st, dil, pad, pad) == dnnl_success &&
              dnnl_primitive_desc_create(&fwd, &fd, NULL, engine, NULL) == dnnl_success &&
              dnnl_dilated_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &x, &w, NULL, &y, st,
                                                                  dil, pad, pad) == dnnl_success &&
              dnnl_primitive_desc_create(&pd, &wd, attr, engine, fwd) == dnnl_success;
    if (fwd) dnnl_primitive_desc_destroy(fwd);
    const char *impl = NULL;
    if (ok && (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl ||
               strncmp(impl, "jit", 3) != 0)) /* oneDNN's direct kernels only */
        ok = false;
    if (!ok && pd) dnnl_primitive_desc_destroy(pd);
    return ok ? pd : NULL;
}

/* A slot's memories, reorders and stream; *off ends past its copies. */
static bool wslot_make(wslot *sl, const ct_conv_shape *s, dnnl_primitive_desc_t pd, dnnl_primitive_attr_t attr,
                       size_t *off) {
    dnnl_memory_desc_t x, w, y;
    const dnnl_memory_desc_t *px = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *py = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
    const dnnl_memory_desc_t *pw = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    pthread_mutex_init(&sl->lock, NULL);
    return px && py && pw && descs(s, false, &x, &w, &y) &&
           dnnl_stream_create(&sl->stream, engine, dnnl_stream_default_flags) == dnnl_success &&
           side_make(&sl->x, &x, px, true, attr, off) && side_make(&sl->dy, &y, py, true, attr, off) &&
           side_make(&sl->dw, &w, pw, false, attr, off);
}

/* Builds we for one thread (oneDNN plans its work for the thread count of
 * the caller at creation). */
static void wbuild(wentry *we) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = dnnl_primitive_attr_create(&attr) == dnnl_success &&
              dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
              (pd = wgrad_pd(&we->key, attr)) != NULL && dnnl_primitive_create(&we->conv, pd) == dnnl_success &&
              (we->slots = calloc((size_t)we->key.slots, sizeof *we->slots)) != NULL;
    size_t off = 0;
    for (int i = 0; ok && i < we->key.slots; i++) {
        off = 0;
        ok = wslot_make(&we->slots[i], &we->key, pd, attr, &off);
    }
    if (ok) {
        we->pad_off = off;
        we->slot_bytes = align_up(off + scratchpad_of(pd));
        const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        for (int i = 0; ok && scratchpad_of(pd) > 0 && i < we->key.slots; i++)
            ok = dnnl_memory_create(&we->slots[i].pad, pmd, engine, DNNL_MEMORY_NONE) == dnnl_success;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    omp_set_num_threads(saved);
    we->ok = ok; /* on failure the entry stays, unused (declared once per geometry) */
}

static wentry *wfind(const ct_conv_shape *s, bool create) {
    pthread_mutex_lock(&table_lock);
    wentry *we = NULL;
    for (int i = 0; i < n_wtable && !we; i++)
        if (memcmp(&wtable[i]->key, s, sizeof *s) == 0) we = wtable[i];
    if (!we && create && n_wtable < MAX_ENTRIES && (we = calloc(1, sizeof *we))) {
        we->key = *s;
        wbuild(we);
        wtable[n_wtable++] = we;
    }
    pthread_mutex_unlock(&table_lock);
    return we;
}

bool ct_conv_onednn_wgrad_declare(const ct_conv_shape *s, bool create, size_t *slot_bytes) {
    pthread_once(&once, start);
    if (!usable) return false;
    wentry *we = wfind(s, create);
    if (!we || !we->ok) return false;
    *slot_bytes = we->slot_bytes;
    return true;
}

static bool wexecute(const wentry *we, wslot *sl, const void *x, const void *dy, float *dw, void *scratch) {
    side_bind(&sl->x, x, scratch), side_bind(&sl->dy, dy, scratch), side_bind(&sl->dw, dw, scratch);
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, sl->x.prim}, {DNNL_ARG_DIFF_DST, sl->dy.prim},
                            {DNNL_ARG_DIFF_WEIGHTS, sl->dw.prim}, {DNNL_ARG_SCRATCHPAD, sl->pad}};
    int n = sl->pad ? 4 : 3;
    if (sl->pad) set(sl->pad, (char *)scratch + we->pad_off);
    bool ok = true;
    dnnl_exec_arg_t rx[2] = {{DNNL_ARG_FROM, sl->x.user}, {DNNL_ARG_TO, sl->x.prim}};
    dnnl_exec_arg_t ry[2] = {{DNNL_ARG_FROM, sl->dy.user}, {DNNL_ARG_TO, sl->dy.prim}};
    dnnl_exec_arg_t rw[2] = {{DNNL_ARG_FROM, sl->dw.prim}, {DNNL_ARG_TO, sl->dw.user}};
    if (sl->x.reorder) ok = ok && dnnl_primitive_execute(sl->x.reorder, sl->stream, 2, rx) == dnnl_success;
    if (sl->dy.reorder) ok = ok && dnnl_primitive_execute(sl->dy.reorder, sl->stream, 2, ry) == dnnl_success;
    ok = ok && dnnl_primitive_execute(we->conv, sl->stream, n, a) == dnnl_success;
    if (sl->dw.reorder) ok = ok && dnnl_primitive_execute(sl->dw.reorder, sl->stream, 2, rw) == dnnl_success;
    return ok && dnnl_stream_wait(sl->stream) == dnnl_success;
}

bool ct_conv_onednn_wgrad_chunk(const ct_conv_shape *s, int slot, const void *x, const void *dy, float *dw,
                                void *scratch, ct_status *st) {
    pthread_once(&once, start);
    wentry *we = usable ? wfind(s, false) : NULL;
    if (!we || !we->ok || slot >= s->slots) return false;
    wslot *sl = &we->slots[slot];
    pthread_mutex_lock(&sl->lock);
    bool ok = wexecute(we, sl, x, dy, dw, scratch);
    pthread_mutex_unlock(&sl->lock);
    *st = ok ? CT_OK : ct_error(CT_ERR_INTERNAL, "cpu conv2d_grad_weight: oneDNN's convolution failed");
    return true;
}

#else
bool ct_conv_onednn_declare(const ct_conv_shape *s, size_t *bytes) {
    (void)s, (void)bytes;
    return false;
}
bool ct_conv_onednn_wgrad_declare(const ct_conv_shape *s, bool create, size_t *slot_bytes) {
    (void)s, (void)create, (void)slot_bytes;
    return false;
}
bool ct_conv_onednn_wgrad_chunk(const ct_conv_shape *s, int slot, const void *x, const void *dy, float *dw,
                                void *scratch, ct_status *st) {
    (void)s, (void)slot, (void)x, (void)dy, (void)dw, (void)scratch, (void)st;
    return false;
}
bool ct_conv_onednn_run(const ct_conv_shape *s, const void *src, const void *w, const void *b, void *dst,
                        void *scratch, bool *relu, ct_status *st) {
    (void)s, (void)src, (void)w, (void)b, (void)dst, (void)scratch, (void)st;
    *relu = false;
    return false;
}
#endif
