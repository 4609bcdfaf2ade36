/* The CPU-vs-GPU parity harness: one kernel of each backend on the same
 * inputs, compared element by element.
 *
 * A case names an op (forward or an internal backward op), its attributes,
 * its inputs (dtype, shape, value range) and its output. cp_run
 *   - fills the inputs with fresh random values from a Philox stream (a new
 *     stream for every case; floats never within 0.05 of zero unless the
 *     case asks for a range that holds zero, I32 in [ilo, ihi)),
 *   - uploads them to the GPU before the CPU runs (batch norm updates its
 *     running statistics in place),
 *   - poisons both outputs with all-one bytes (NaN in every float dtype),
 *   - runs the CPU reference kernel and the CUDA kernel with scratch of the
 *     size each backend asks for, synchronises, downloads,
 *   - compares: |gpu - cpu| <= atol + rtol * |cpu| for floats (NaN only
 *     where the CPU has NaN), equality for integers, and, when the case
 *     says so, the inputs too (in-place updates).
 * A failure names the case, the worst element, both values and the
 * tolerance. Every test calls CP_NEED_GPU() first, which skips it, saying
 * why, in a build without CUDA or on a machine without a usable GPU.
 *
 * Header-only (static functions) because the test build compiles only
 * tests/test_*.c; internal headers come from src/ (tests/CMakeLists.txt). */
#ifndef CTRAIN_TESTS_CUDA_PARITY_H
#define CTRAIN_TESTS_CUDA_PARITY_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ctrain/ctrain.h>

#include "core/backend.h"
#include "cpu/cpu_util.h"

#define CP_MAX_IN 6

/* CTRAIN_PARITY_SELFTEST=1 runs every case with the CPU backend on both
 * sides: no GPU needed, it checks that the cases themselves are valid
 * (shapes, attributes, ranges) so that a GPU session only meets GPU bugs. */
static inline bool cp_selftest(void) {
    const char *e = getenv("CTRAIN_PARITY_SELFTEST");
    return e && *e && strcmp(e, "0") != 0;
}

#define CP_NEED_GPU()                                                         \
    do {                                                                      \
        char cp_why_[512];                                                    \
        if (!cp_selftest() && ct_cuda_device_count(cp_why_, sizeof cp_why_) == 0) \
            cr_skip_test("GPU parity test skipped: %s", cp_why_);             \
    } while (0)

/* The backend and device under test: cuda:0, or the CPU in a self-test. */
static inline const ct_backend *cp_gpu(void) { return cp_selftest() ? ct_cpu_backend() : ct_cuda_backend(0); }
static inline ct_device cp_gpu_device(void) {
    return cp_selftest() ? (ct_device){CT_DEVICE_CPU, 0} : (ct_device){CT_DEVICE_CUDA, 0};
}

typedef struct cp_in {
    ct_dtype dtype;
    ct_shape shape;
    double lo, hi;      /* float range; both 0: [-2, 2] away from zero */
    int32_t ilo, ihi;   /* I32 range [ilo, ihi) */
    bool check;         /* compare this input after the run (updated in place) */
    int nan_every;      /* > 0: element i is NaN when i % nan_every == nan_every - 1 */
} cp_in;

typedef struct cp_case {
    const char *name;
    ct_op op;
    ct_attrs attr;
    int n_in;
    cp_in in[CP_MAX_IN];
    ct_dtype out_dtype;
    ct_shape out_shape;
    double rtol, atol;  /* both 0: the output dtype's default */
    bool exact;         /* bit-for-bit equal values (rtol = atol = 0) */
    bool eval;          /* run in evaluation mode (training is the default) */
    uint32_t step;
    bool tf32;
} cp_case;

static uint32_t cp_stream_counter = 1;

static inline size_t cp_bytes(ct_dtype dt, ct_shape s) { return (size_t)ct_shape_numel(s) * ct_dtype_size(dt); }

static inline void cp_fill(const cp_in *in, void *buf, uint32_t stream) {
    int64_t n = ct_shape_numel(in->shape);
    for (int64_t i = 0; i < n; i++) {
        double u = ct_philox_uniform(0xC0FFEEu, stream, 0, (uint64_t)i);
        if (in->dtype == CT_I32 || in->dtype == CT_U8) {
            int32_t lo = in->ilo, hi = in->ihi > in->ilo ? in->ihi : in->ilo + 1;
            int32_t v = lo + (int32_t)floor(u * (double)(hi - lo));
            if (v >= hi) v = hi - 1;
            ct_st(buf, in->dtype, i, (double)v);
            continue;
        }
        double v;
        if (in->lo == 0 && in->hi == 0) {
            v = -2.0 + 4.0 * u;
            if (fabs(v) < 0.05) v = v < 0 ? -0.05 - u : 0.05 + u; /* never (near) zero */
        } else {
            v = in->lo + (in->hi - in->lo) * u;
        }
        if (in->nan_every > 0 && i % in->nan_every == in->nan_every - 1) v = NAN;
        ct_st(buf, in->dtype, i, v);
    }
}

static inline void cp_default_tol(ct_dtype dt, double *rtol, double *atol) {
    switch (dt) {
    case CT_F64: *rtol = 1e-12, *atol = 1e-12; break;
    case CT_F16: *rtol = 2e-3, *atol = 1e-3; break;
    case CT_BF16: *rtol = 1.6e-2, *atol = 1e-2; break;
    case CT_I32:
    case CT_U8: *rtol = 0, *atol = 0; break;
    default: *rtol = 1e-5, *atol = 1e-6; break;
    }
}

/* Compares n elements; returns false (after a cr_log_error) on mismatch. */
static inline bool cp_compare(const char *name, const char *what, ct_dtype dt, const void *cpu, const void *gpu, int64_t n,
                       double rtol, double atol) {
    int64_t worst = -1;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double c = ct_ld(cpu, dt, i), g = ct_ld(gpu, dt, i);
        if (isnan(c) || isnan(g)) {
            if (isnan(c) && isnan(g)) continue;
            worst = i;
            worst_excess = INFINITY;
            break;
        }
        if (isinf(c) || isinf(g)) {
            if (c == g) continue;
            worst = i;
            worst_excess = INFINITY;
            break;
        }
        double excess = fabs(g - c) - (atol + rtol * fabs(c));
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (worst < 0) return true;
    cr_log_error("%s: %s element %lld: gpu %.9g, cpu %.9g (tolerance %.3g + %.3g * |cpu|, %s)", name, what,
                 (long long)worst, ct_ld(gpu, dt, worst), ct_ld(cpu, dt, worst), atol, rtol, ct_dtype_name(dt));
    return false;
}

static inline ct_kargs cp_kargs(const cp_case *c, ct_tview *views, const ct_tview *out) {
    ct_kargs k = {0};
    k.op = c->op;
    k.attr = &c->attr;
    k.n_in = c->n_in;
    k.in = views;
    k.out = *out;
    k.seed = 0x5EEDull;
    k.step = c->step;
    k.training = !c->eval;
    k.allow_tf32 = c->tf32;
    return k;
}

static inline size_t cp_scratch(const ct_backend *be, const cp_case *c, const ct_tview *views, const ct_tview *out) {
    if (!be->scratch_bytes) return 0;
    ct_tview probe_in[CP_MAX_IN];
    for (int j = 0; j < c->n_in; j++) probe_in[j] = views[j], probe_in[j].data = NULL;
    ct_tview probe_out = *out;
    probe_out.data = NULL;
    ct_kargs k = cp_kargs(c, probe_in, &probe_out);
    return be->scratch_bytes(&k);
}

/* Runs one case on both backends and asserts that they agree. */
static inline void cp_run(const cp_case *c) {
    const ct_backend *cpu = ct_cpu_backend(), *gpu = cp_gpu();
    cr_assert(gpu, "%s: no CUDA backend: %s", c->name, ct_last_error());
    cr_assert(gpu->kernels[c->op], "%s: the CUDA backend has no kernel for %s", c->name, ct_op_name(c->op));
    void *host[CP_MAX_IN], *dev[CP_MAX_IN], *dev_back[CP_MAX_IN];
    ct_tview hv[CP_MAX_IN], dv[CP_MAX_IN];
    for (int j = 0; j < c->n_in; j++) {
        const cp_in *in = &c->in[j];
        size_t b = cp_bytes(in->dtype, in->shape);
        host[j] = malloc(b ? b : 1);
        dev_back[j] = malloc(b ? b : 1);
        cr_assert(host[j] && dev_back[j]);
        cp_fill(in, host[j], cp_stream_counter++);
        dev[j] = gpu->alloc(b);
        cr_assert(dev[j], "%s: %s", c->name, ct_last_error());
        cr_assert_eq(gpu->upload(dev[j], host[j], b), CT_OK, "%s: %s", c->name, ct_last_error());
        hv[j] = (ct_tview){host[j], in->dtype, in->shape, ct_shape_numel(in->shape)};
        dv[j] = (ct_tview){dev[j], in->dtype, in->shape, ct_shape_numel(in->shape)};
    }
    size_t ob = cp_bytes(c->out_dtype, c->out_shape);
    void *hout = malloc(ob ? ob : 1), *gout = malloc(ob ? ob : 1), *dout = gpu->alloc(ob);
    cr_assert(hout && gout && dout, "%s: %s", c->name, ct_last_error());
    memset(hout, 0xFF, ob);
    cr_assert_eq(gpu->upload(dout, hout, ob), CT_OK, "%s: %s", c->name, ct_last_error()); /* poison */
    ct_tview hov = {hout, c->out_dtype, c->out_shape, ct_shape_numel(c->out_shape)};
    ct_tview dov = {dout, c->out_dtype, c->out_shape, ct_shape_numel(c->out_shape)};

    size_t hs = cp_scratch(cpu, c, hv, &hov), ds = cp_scratch(gpu, c, dv, &dov);
    void *hscratch = hs ? malloc(hs) : NULL, *dscratch = ds ? gpu->alloc(ds) : NULL;
    ct_kargs hk = cp_kargs(c, hv, &hov), dk = cp_kargs(c, dv, &dov);
    hk.scratch = hscratch;
    dk.scratch = dscratch;
    ct_status st = cpu->kernels[c->op](&hk);
    cr_assert_eq(st, CT_OK, "%s: cpu: %s", c->name, ct_last_error());
    st = gpu->kernels[c->op](&dk);
    cr_assert_eq(st, CT_OK, "%s: cuda: %s", c->name, ct_last_error());
    cr_assert_eq(gpu->sync(), CT_OK, "%s: cuda: %s", c->name, ct_last_error());
    cr_assert_eq(gpu->download(gout, dout, ob), CT_OK, "%s: %s", c->name, ct_last_error());

    double rtol = c->rtol, atol = c->atol;
    if (c->exact)
        rtol = atol = 0;
    else if (rtol == 0 && atol == 0)
        cp_default_tol(c->out_dtype, &rtol, &atol);
    bool ok = cp_compare(c->name, "output", c->out_dtype, hout, gout, hov.numel, rtol, atol);
    for (int j = 0; j < c->n_in; j++) {
        if (!c->in[j].check) continue;
        size_t b = cp_bytes(c->in[j].dtype, c->in[j].shape);
        cr_assert_eq(gpu->download(dev_back[j], dev[j], b), CT_OK, "%s: %s", c->name, ct_last_error());
        char what[32];
        snprintf(what, sizeof what, "input %d (in place)", j);
        ok = cp_compare(c->name, what, c->in[j].dtype, host[j], dev_back[j], hv[j].numel, rtol, atol) && ok;
    }
    for (int j = 0; j < c->n_in; j++) {
        free(host[j]);
        free(dev_back[j]);
        gpu->free(dev[j]);
    }
    free(hout);
    free(gout);
    gpu->free(dout);
    free(hscratch);
    gpu->free(dscratch);
    cr_assert(ok, "%s: the GPU differs from the CPU (see above)", c->name);
}

/* MNIST's training set for the end-to-end cases, or a skip (with the
 * reason) when CTRAIN_DATA_DIR does not hold it. The caller frees it. */
static inline ct_dataset *cp_mnist_train(void) {
    const char *root = getenv("CTRAIN_DATA_DIR");
    char dir[4096];
    struct stat sb;
    if (!root || !*root) cr_skip_test("CTRAIN_DATA_DIR is not set; this test needs MNIST");
    snprintf(dir, sizeof dir, "%s/mnist", root);
    if (stat(dir, &sb) != 0) cr_skip_test("%s does not exist; this test needs MNIST", dir);
    ct_dataset *ds = NULL;
    cr_assert_eq(ct_dataset_load_mnist(dir, true, &ds), CT_OK, "%s", ct_last_error());
    return ds;
}

/* Shorthands for building cases. */
#define CP_SHAPE(...) ((ct_shape){sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), {__VA_ARGS__}})
#define CP_SCALAR ((ct_shape){0, {0}})

static inline cp_in cp_f(ct_dtype dt, ct_shape s) { return (cp_in){.dtype = dt, .shape = s}; }
static inline cp_in cp_range(ct_dtype dt, ct_shape s, double lo, double hi) {
    return (cp_in){.dtype = dt, .shape = s, .lo = lo, .hi = hi};
}
static inline cp_in cp_i32(ct_shape s, int32_t lo, int32_t hi) {
    return (cp_in){.dtype = CT_I32, .shape = s, .ilo = lo, .ihi = hi};
}

/* The float dtypes every elementwise kernel is checked in: i < 4. */
#define CP_N_FLOAT_DTYPES 4
static inline ct_dtype cp_float_dtype(int i) {
    static const ct_dtype dts[CP_N_FLOAT_DTYPES] = {CT_F32, CT_F64, CT_F16, CT_BF16};
    return dts[i];
}

#endif
