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
 *   - requires every output element to be written (a float still holding
 *     the poison's bytes fails, on the GPU even where the CPU has a NaN;
 *     integer outputs run a second time with 0x00 poison), and an all-zero
 *     GPU result to fail (from 8 elements, unless the case says so: some
 *     CPU value must exceed its tolerance),
 *   - compares: |gpu - cpu| <= atol + rtol * |cpu| for floats (NaN only
 *     where the CPU has NaN, inf only of the same sign), equality for
 *     integers, and, when the case says so, the inputs too (in-place
 *     updates).
 * A failure names the case, the worst element, both values and the
 * tolerance. Every test calls CP_NEED_GPU() first, which skips it, saying
 * why, in a build without CUDA or on a machine without a GPU, and fails it
 * where the GPU is there but the runtime cannot use it.
 * tests/test_cuda_parity_harness.c checks that a wrong, partial or
 * unwritten result fails these checks.
 *
 * The tests of an op are OP_TESTs declaring it (op_tests.h), and a case
 * run by cp_run counts for its op; tests/test_op_coverage.c reads the
 * declarations of every parity file and fails when an op has none.
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
#include "op_tests.h"

#define CP_MAX_IN 6

/* CTRAIN_PARITY_SELFTEST=1 runs every case with the CPU backend on both
 * sides: no GPU needed, it checks that the cases themselves are valid
 * (shapes, attributes, ranges) so that a GPU session only meets GPU bugs. */
static inline bool cp_selftest(void) {
    const char *e = getenv("CTRAIN_PARITY_SELFTEST");
    return e && *e && strcmp(e, "0") != 0;
}

/* NULL when a GPU can be used (the self-test aside); else why not, for a
 * skip. A GPU that is there but fails (the runtime's device query returns
 * an error other than "no device" or "driver too old") is a failure, not a
 * skip: that is what this suite exists to catch. CTRAIN_REQUIRE_GPU=1 (for
 * a GPU session, where CTest counts a skipped test as passed) turns every
 * "no GPU" into a failure too. */
static inline bool cp_gpu_required(void) {
    const char *e = getenv("CTRAIN_REQUIRE_GPU");
    return e && *e && strcmp(e, "0") != 0;
}

static inline const char *cp_no_gpu(void) {
    static char why[512];
    if (ct_cuda_device_count(why, sizeof why) > 0) return NULL;
    cr_assert(!strstr(why, "cudaGetDeviceCount failed"), "the GPU is unusable: %s", why);
    cr_assert(!cp_gpu_required(), "CTRAIN_REQUIRE_GPU is set, but %s", why);
    return why;
}

#define CP_NEED_GPU()                                                         \
    do {                                                                      \
        const char *cp_why_ = cp_selftest() ? NULL : cp_no_gpu();             \
        if (cp_why_) cr_skip_test("GPU parity test skipped: %s", cp_why_);    \
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
    bool zeros_ok;      /* an all-zero output may pass (else, from 8 elements: a degenerate or vacuous case) */
    uint32_t step;
} cp_case;

static uint32_t cp_stream_counter = 1;

/* Differences are reported with cr_log_error, which also makes Criterion's
 * exit status non-zero; tests/test_cuda_parity_harness.c, which provokes
 * them on purpose, sets this to report them as information. */
static bool cp_expect_mismatch = false;
#define CP_MISMATCH(...)                                                      \
    do {                                                                      \
        if (cp_expect_mismatch)                                               \
            cr_log_info(__VA_ARGS__);                                         \
        else                                                                  \
            cr_log_error(__VA_ARGS__);                                        \
    } while (0)

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

/* The output dtype's default rtol (one rounding of the result) with an
 * absolute bound of the case's own. Setting atol alone would leave rtol
 * at 0, and a value whose ulp exceeds atol would then fail on a
 * one-rounding difference. */
static inline void cp_set_atol(cp_case *c, double atol) {
    double r, a;
    cp_default_tol(c->out_dtype, &r, &a);
    c->rtol = r, c->atol = atol;
}

/* Compares n elements; returns false (after a CP_MISMATCH report) on mismatch. */
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
    int digits = dt == CT_F64 ? 17 : 9;
    CP_MISMATCH("%s: %s element %lld: gpu %.*g, cpu %.*g (tolerance %.3g + %.3g * |cpu|, %s)", name, what,
                 (long long)worst, digits, ct_ld(gpu, dt, worst), digits, ct_ld(cpu, dt, worst), atol, rtol,
                 ct_dtype_name(dt));
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

/* Poison: all-one bytes, NaN in every float dtype (and never a NaN that
 * either backend computes: the CPU's are 0x7FC00000-like or the x86
 * default 0xFFC00000, CUDA's canonical NaN is 0x7FFFFFFF), -1 in I32 and
 * 255 in U8, which are ordinary values. */
static inline bool cp_is_float(ct_dtype dt) { return dt == CT_F32 || dt == CT_F64 || dt == CT_F16 || dt == CT_BF16; }

/* The first element of buf (n elements of dt) whose bytes are all 0xFF,
 * or -1. */
static inline int64_t cp_first_poisoned(const void *buf, ct_dtype dt, int64_t n) {
    size_t es = ct_dtype_size(dt);
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *e = (const unsigned char *)buf + (size_t)i * es;
        size_t k = 0;
        while (k < es && e[k] == 0xFF) k++;
        if (k == es) return i;
    }
    return -1;
}

/* Runs the case's kernel once on `be` into `out` (poisoned with `poison`
 * bytes first), with scratch of the size `be` asks for; on a device
 * backend the result is downloaded into `host_out`. */
static inline void cp_exec(const cp_case *c, const ct_backend *be, ct_tview *in, void *out, void *host_out,
                           unsigned char poison, const char *side) {
    size_t ob = cp_bytes(c->out_dtype, c->out_shape);
    ct_tview ov = {out, c->out_dtype, c->out_shape, ct_shape_numel(c->out_shape)};
    void *p = malloc(ob ? ob : 1);
    cr_assert(p);
    memset(p, poison, ob);
    cr_assert_eq(be->upload(out, p, ob), CT_OK, "%s: %s: %s", c->name, side, ct_last_error());
    free(p);
    size_t sb = cp_scratch(be, c, in, &ov);
    void *scratch = sb ? be->alloc(sb) : NULL;
    cr_assert(!sb || scratch, "%s: %s: %s", c->name, side, ct_last_error());
    ct_kargs k = cp_kargs(c, in, &ov);
    k.scratch = scratch;
    ct_status st = be->kernels[c->op](&k);
    cr_assert_eq(st, CT_OK, "%s: %s: %s", c->name, side, ct_last_error());
    cr_assert_eq(be->sync(), CT_OK, "%s: %s: %s", c->name, side, ct_last_error());
    cr_assert_eq(be->download(host_out, out, ob), CT_OK, "%s: %s: %s", c->name, side, ct_last_error());
    if (scratch) be->free(scratch);
}

/* Runs one case on the reference backend `ref` (the CPU) and on `test`
 * (the GPU) and compares; false (after CP_MISMATCH reports) when they differ.
 * Errors of either backend, and a case the reference itself does not fill
 * (an element left unwritten), fail the test at once.
 *
 * Every output element must be written by the kernel: a float element
 * still holding the poison's bytes after the run is a failure even where
 * the reference holds a NaN; an integer output (where the poison is a
 * possible value) is run twice on each side, poisoned with 0xFF and with
 * 0x00 bytes, and both runs must match the reference (a case with inputs
 * updated in place runs once). */
static inline bool cp_check(const cp_case *c, const ct_backend *ref, const ct_backend *test) {
    cr_assert(test, "%s: no CUDA backend: %s", c->name, ct_last_error());
    cr_assert(test->kernels[c->op], "%s: the CUDA backend has no kernel for %s", c->name, ct_op_name(c->op));
    void *host[CP_MAX_IN], *dev[CP_MAX_IN], *dev_back[CP_MAX_IN];
    ct_tview hv[CP_MAX_IN], dv[CP_MAX_IN];
    bool in_place = false;
    for (int j = 0; j < c->n_in; j++) {
        const cp_in *in = &c->in[j];
        size_t b = cp_bytes(in->dtype, in->shape);
        host[j] = malloc(b ? b : 1);
        dev_back[j] = malloc(b ? b : 1);
        cr_assert(host[j] && dev_back[j]);
        cp_fill(in, host[j], cp_stream_counter++);
        /* uploaded before the reference runs: it may update inputs in place */
        dev[j] = test->alloc(b);
        cr_assert(dev[j], "%s: %s", c->name, ct_last_error());
        cr_assert_eq(test->upload(dev[j], host[j], b), CT_OK, "%s: %s", c->name, ct_last_error());
        hv[j] = (ct_tview){host[j], in->dtype, in->shape, ct_shape_numel(in->shape)};
        dv[j] = (ct_tview){dev[j], in->dtype, in->shape, ct_shape_numel(in->shape)};
        in_place = in_place || in->check;
    }
    size_t ob = cp_bytes(c->out_dtype, c->out_shape);
    int64_t n = ct_shape_numel(c->out_shape);
    void *hout = malloc(ob ? ob : 1), *hout2 = malloc(ob ? ob : 1), *gout = malloc(ob ? ob : 1);
    void *rout = ref->alloc(ob ? ob : 1), *dout = test->alloc(ob ? ob : 1);
    cr_assert(hout && hout2 && gout && rout && dout, "%s: %s", c->name, ct_last_error());

    double rtol = c->rtol, atol = c->atol;
    if (c->exact)
        rtol = atol = 0;
    else if (rtol == 0 && atol == 0)
        cp_default_tol(c->out_dtype, &rtol, &atol);
    bool flt = cp_is_float(c->out_dtype), ok = true;
    int passes = flt || in_place ? 1 : 2;
    for (int pass = 0; pass < passes; pass++) {
        unsigned char poison = pass == 0 ? 0xFF : 0x00;
        cp_exec(c, ref, hv, rout, pass == 0 ? hout : hout2, poison, "cpu");
        cp_exec(c, test, dv, dout, gout, poison, "cuda");
        if (flt) {
            int64_t u = cp_first_poisoned(hout, c->out_dtype, n);
            cr_assert(u < 0, "%s: the CPU reference left output element %lld unwritten: the case is wrong", c->name,
                      (long long)u);
            u = cp_first_poisoned(gout, c->out_dtype, n);
            if (u >= 0) {
                CP_MISMATCH("%s: the GPU left output element %lld unwritten (cpu %.9g)", c->name, (long long)u,
                             ct_ld(hout, c->out_dtype, u));
                ok = false;
            }
        } else if (pass == 1) {
            cr_assert(memcmp(hout, hout2, ob) == 0, "%s: the CPU reference does not write every output element: "
                      "the case is wrong", c->name);
        }
        char what[32];
        snprintf(what, sizeof what, pass ? "output (0x00 poison)" : "output");
        ok = cp_compare(c->name, what, c->out_dtype, hout, gout, n, rtol, atol) && ok;
    }
    /* An all-zero GPU result must fail: some element of the CPU's is
     * larger than its tolerance. Else the output is all zeros (a
     * degenerate case) or the tolerance exceeds every value (a vacuous
     * one). A few elements may well all be 0 (a relu of one negative
     * value): the check starts at 8. */
    if (n >= 8 && !c->zeros_ok) {
        int64_t i = 0;
        for (; i < n; i++) {
            double v = fabs(ct_ld(hout, c->out_dtype, i));
            if (isfinite(v) && v > atol + rtol * v) break;
        }
        cr_assert(i < n, "%s: no element of the CPU's output exceeds the tolerance (%.3g + %.3g * |cpu|): an all-zero "
                  "GPU result would pass (set zeros_ok if meant)", c->name, atol, rtol);
    }
    for (int j = 0; j < c->n_in; j++) {
        if (!c->in[j].check) continue;
        size_t b = cp_bytes(c->in[j].dtype, c->in[j].shape);
        cr_assert_eq(test->download(dev_back[j], dev[j], b), CT_OK, "%s: %s", c->name, ct_last_error());
        char what[32];
        snprintf(what, sizeof what, "input %d (in place)", j);
        ok = cp_compare(c->name, what, c->in[j].dtype, host[j], dev_back[j], hv[j].numel, rtol, atol) && ok;
    }
    for (int j = 0; j < c->n_in; j++) {
        free(host[j]);
        free(dev_back[j]);
        test->free(dev[j]);
    }
    ref->free(rout);
    free(hout);
    free(hout2);
    free(gout);
    test->free(dout);
    return ok;
}

/* Runs one case on both backends and asserts that they agree; the case
 * counts as a check of its op for the OP_TEST it runs in (op_tests.h). */
static inline void cp_run(const cp_case *c) {
    op_case_ran(c->op);
    cr_assert(cp_check(c, ct_cpu_backend(), cp_gpu()), "%s: the GPU differs from the CPU (see above)", c->name);
}

/* MNIST's training set for the end-to-end cases, or a skip (with the
 * reason) when CTRAIN_DATA_DIR does not hold it; a failure instead under
 * CTRAIN_REQUIRE_GPU, where every GPU test must run. The caller frees it. */
static inline ct_dataset *cp_mnist_train(void) {
    const char *root = getenv("CTRAIN_DATA_DIR");
    char dir[4096];
    struct stat sb;
    if (!root || !*root) {
        cr_assert(!cp_gpu_required(), "CTRAIN_REQUIRE_GPU is set, but CTRAIN_DATA_DIR is not (MNIST)");
        cr_skip_test("CTRAIN_DATA_DIR is not set; this test needs MNIST");
    }
    snprintf(dir, sizeof dir, "%s/mnist", root);
    if (stat(dir, &sb) != 0) {
        cr_assert(!cp_gpu_required(), "CTRAIN_REQUIRE_GPU is set, but %s does not exist (MNIST)", dir);
        cr_skip_test("%s does not exist; this test needs MNIST", dir);
    }
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
