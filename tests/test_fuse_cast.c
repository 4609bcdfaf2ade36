/* A cast to F16 or BF16 fused into the op that makes its only input
 * (core/program_fuse.c; the CPU's casts_output: layer norm and the unary
 * ops).
 *
 * Kernels: layer norm and every unary op with an F32 input and a half
 * output, against the same kernel with an F32 output and then CAST, byte
 * for byte, on the fast paths and on the reference loops (where a NaN
 * only has to be a NaN), for rows longer
 * than the fused layer norm's stack block, on values with NaNs, infinities
 * and signed zeros, into poisoned outputs.
 *
 * Programs: a GPT's BF16 training step compiled fused and with
 * CTRAIN_NO_FUSE=1 gives the same loss and gradients to the bit, and the
 * profile shows its layer norms and GELUs writing their casts' outputs; a
 * value asked for as an output, or read by another op besides the cast,
 * keeps its F32 step. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "core/backend.h"
#include "core/ew_math.h"
#include "core/node.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "gpt_step.h"

static void fini(void) { ct_cpu_set_fast_paths(true); }

TestSuite(fuse_cast, .timeout = 300, .fini = fini);

static uint64_t rng = 0x2545f4914f6cdd1dull;

/* Values in +-[0.05, 4), both signs; with specials, one in 40 is a NaN, an
 * infinity or a signed zero. */
static float next_value(bool specials) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(rng >> 11) * 0x1p-53, s = (rng >> 7) & 1 ? 1.0 : -1.0;
    if (specials && (rng >> 20) % 40 == 0) {
        static const float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
        return sp[(rng >> 30) % 5];
    }
    return (float)((0.05 + 3.95 * u) * s);
}

static ct_tview make(ct_shape s, bool specials, bool positive) {
    int64_t n = ct_shape_numel(s);
    ct_tview v = {malloc((size_t)(n ? n : 1) * sizeof(float)), CT_F32, s, n};
    cr_assert_not_null(v.data);
    for (int64_t i = 0; i < n; i++) {
        float x = next_value(specials);
        ((float *)v.data)[i] = positive ? fabsf(x) : x;
    }
    return v;
}

/* An output of dt, every byte 0xA5: a kernel that skips an element shows. */
static ct_tview poisoned(ct_dtype dt, ct_shape s) {
    int64_t n = ct_shape_numel(s);
    size_t bytes = (size_t)(n ? n : 1) * ct_dtype_size(dt);
    ct_tview v = {malloc(bytes), dt, s, n};
    cr_assert_not_null(v.data);
    memset(v.data, 0xA5, bytes);
    return v;
}

static void run(ct_op op, const ct_attrs *attr, ct_tview *in, int n_in, ct_tview out) {
    const ct_backend *be = ct_cpu_backend();
    ct_kargs k = {.op = op, .attr = attr, .n_in = n_in, .in = in, .out = out, .seed = 1, .training = true};
    cr_assert_eq(be->kernels[op](&k), CT_OK, "%s: %s", ct_op_name(op), ct_last_error());
}

static bool is_nan(uint16_t h, ct_dtype dt) {
    return dt == CT_BF16 ? (h & 0x7f80) == 0x7f80 && (h & 0x7f) : (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
}

/* op's kernel into a half output, fused, against op into F32 and then
 * CAST, on the fast paths (fast) or the reference loops. */
static void check_fused(const char *what, ct_op op, const ct_attrs *attr, ct_tview *in, int n_in, ct_dtype half,
                        bool fast) {
    ct_cpu_set_fast_paths(fast);
    ct_shape s = in[0].shape;
    ct_tview f32 = poisoned(CT_F32, s), cast = poisoned(half, s), fused = poisoned(half, s);
    run(op, attr, in, n_in, f32);
    ct_attrs to = {.dtype = half};
    run(CT_OP_CAST, &to, &f32, 1, cast);
    ct_attrs fa = *attr;
    fa.fused_cast = true;
    run(op, &fa, in, n_in, fused);
    ct_cpu_set_fast_paths(true);
    for (int64_t i = 0; i < f32.numel; i++) {
        uint16_t a = ((uint16_t *)fused.data)[i], b = ((uint16_t *)cast.data)[i];
        /* on the reference loops a NaN only has to be a NaN: its sign is
         * the compiler's choice of operand order, which differs between the
         * typed F32 loop and the loop over any dtype */
        if (!fast && is_nan(a, half) && is_nan(b, half)) continue;
        cr_assert_eq(a, b, "%s -> %s (%s paths), element %lld of %lld: fused 0x%04x, cast 0x%04x (F32 %.9g)", what,
                     ct_dtype_name(half), fast ? "fast" : "reference", (long long)i, (long long)f32.numel, a, b,
                     ((float *)f32.data)[i]);
    }
    free(f32.data), free(cast.data), free(fused.data);
}

Test(fuse_cast, layer_norm_writes_the_bits_of_layer_norm_then_cast) {
    /* 2100: rows longer than the fused kernel's stack block (2048) */
    static const int64_t dims[] = {1, 7, 129, 2100};
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++)
        for (int form = 0; form < 3; form++) { /* weight and bias, weight, neither */
            int64_t dim = dims[d], rows = dim > 1000 ? 5 : 67;
            ct_tview in[3] = {make((ct_shape){2, {rows, dim}}, true, false), make((ct_shape){1, {dim}}, false, false),
                              make((ct_shape){1, {dim}}, false, false)};
            ct_attrs a = {.eps = 1e-5, .has_weight = form < 2, .has_bias = form == 0};
            char what[64];
            snprintf(what, sizeof what, "layer_norm [%lld, %lld] form %d", (long long)rows, (long long)dim, form);
            for (int h = 0; h < 2; h++)
                for (int fast = 0; fast < 2; fast++)
                    check_fused(what, CT_OP_LAYER_NORM, &a, in, 1 + (form < 2) + (form == 0), h ? CT_F16 : CT_BF16,
                                fast);
            for (int j = 0; j < 3; j++) free(in[j].data);
        }
}

Test(fuse_cast, unary_ops_write_the_bits_of_the_op_then_cast) {
    int n = 0;
    for (int op = 0; op < CT_OP_COUNT; op++) {
        if (ct_op_class_of(op) != CT_OPC_UNARY) continue;
        /* positive inputs where the op is real only there (log, sqrt, pow) */
        bool positive = op == CT_OP_LOG || op == CT_OP_SQRT || op == CT_OP_POW;
        for (int v = 0; v < (op == CT_OP_GELU ? 2 : 1); v++) {
            ct_attrs a = {.alpha = op == CT_OP_SOFTPLUS ? 1.0 : 1.5, .threshold = 20.0,
                          .approx = v ? CT_GELU_TANH : CT_GELU_EXACT};
            /* 3001: a tail after the blocks of 256, and two threads' ranges */
            ct_tview x = make((ct_shape){2, {3, 1001}}, true, positive);
            for (int h = 0; h < 2; h++)
                for (int fast = 0; fast < 2; fast++) check_fused(ct_op_name(op), op, &a, &x, 1, h ? CT_F16 : CT_BF16, fast);
            free(x.data);
            n++;
        }
    }
    cr_assert_geq(n, 14, "every unary op: %d", n);
}

/* ---- programs ------------------------------------------------------------ */

/* One run of p with the op profile on: the profile's text (malloc'd),
 * which names each fused step (layer_norm+cast). */
static char *run_profiled(ct_program *p) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    ct_op_profile_reset();
    ct_op_profile_enable(true);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    ct_op_profile_enable(false);
    ct_op_profile_report(f, 1);
    fclose(f);
    return text;
}

/* A BF16 GPT step, compiled fused or with CTRAIN_NO_FUSE=1: loss,
 * gradients and the profile of its run (malloc'd text). */
static float gpt_step(bool fuse, float **grads, size_t *n, char **profile) {
    ct_graph *g = ct_graph_new();
    cr_assert_eq(ct_graph_set_precision(g, CT_PRECISION_BF16), CT_OK, "%s", ct_last_error());
    if (!fuse) setenv("CTRAIN_NO_FUSE", "1", 1);
    ct_node loss;
    ct_program *p = gs_compile(g, (ct_device){CT_DEVICE_CPU, 0}, false, &loss);
    unsetenv("CTRAIN_NO_FUSE");
    *profile = run_profiled(p);
    float l = gs_results(p, loss, grads, n);
    ct_program_free(p);
    ct_graph_free(g);
    return l;
}

Test(fuse_cast, a_bf16_gpt_step_gives_the_same_bits_fused_or_not) {
    float *gf, *gu;
    size_t nf, nu;
    char *pf, *pu;
    float lf = gpt_step(true, &gf, &nf, &pf), lu = gpt_step(false, &gu, &nu, &pu);
    cr_assert(isfinite(lf) && lf > 1.0f, "loss %g", lf);
    cr_assert(memcmp(&lf, &lu, sizeof lf) == 0, "loss %.9g fused, %.9g not", lf, lu);
    cr_assert_eq(nf, nu);
    size_t nonzero = 0;
    for (size_t i = 0; i < nf; i++) {
        cr_assert(memcmp(&gf[i], &gu[i], sizeof *gf) == 0, "gradient %zu: %.9g fused, %.9g not", i, gf[i], gu[i]);
        nonzero += gf[i] != 0;
    }
    cr_assert_gt(nonzero, nf / 2, "the gradients are real values");
    /* what ran: ln_1, ln_2 (two layers) and ln_f, and both GELUs, write BF16 */
    cr_assert(strstr(pf, "layer_norm+cast") && strstr(pf, "gelu+cast"), "fused: %s", pf);
    cr_assert(!strstr(pf, "  gelu ") && !strstr(pf, "  layer_norm "), "fused: %s", pf);
    cr_assert(!strstr(pu, "+cast") && strstr(pu, "  gelu ") && strstr(pu, "  layer_norm "), "unfused: %s", pu);
    free(gf), free(gu), free(pf), free(pu);
}

/* ln(x) read by a cast (the product's operand) and asked for as an output;
 * gelu(x) read by a cast and by an add. Neither is fused; the cast of
 * tanh(x), its only reader, is. */
Test(fuse_cast, a_value_with_other_readers_keeps_its_f32_step) {
    ct_graph *g = ct_graph_new();
    cr_assert_eq(ct_graph_set_precision(g, CT_PRECISION_BF16), CT_OK);
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {4, 8}});
    ct_node w = ct_input(g, "w", CT_F32, (ct_shape){2, {8, 8}});
    ct_node ln = ct_layer_norm_op(g, x, CT_NO_NODE, CT_NO_NODE, 1e-5);
    ct_node ge = ct_gelu(g, x, CT_GELU_EXACT);
    ct_node th = ct_tanh(g, x);
    ct_node y = ct_add(g, ct_add(g, ct_matmul(g, ln, w, false, false), ct_matmul(g, ge, w, false, false)), ct_add(g, ge, ct_matmul(g, th, w, false, false)));
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    ct_node outs[2] = {y, ln};
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 2});
    cr_assert_not_null(p, "%s", ct_last_error());
    float xs[32], ws[64];
    for (int i = 0; i < 32; i++) xs[i] = next_value(false);
    for (int i = 0; i < 64; i++) ws[i] = next_value(false);
    cr_assert(ct_program_set_input(p, "x", xs, sizeof xs) == CT_OK && ct_program_set_input(p, "w", ws, sizeof ws) == CT_OK);
    char *prof = run_profiled(p);
    cr_assert(strstr(prof, "  layer_norm ") && strstr(prof, "  gelu ") && strstr(prof, "tanh+cast"), "%s", prof);
    cr_assert(!strstr(prof, "layer_norm+cast") && !strstr(prof, "gelu+cast"), "%s", prof);
    float got[32];
    cr_assert_eq(ct_program_read(p, ln, got, sizeof got), CT_OK, "%s", ct_last_error());
    for (int r = 0; r < 4; r++) { /* the F32 layer norm itself: each row's mean 0 */
        double m = 0;
        for (int j = 0; j < 8; j++) m += got[r * 8 + j];
        cr_assert(fabs(m) < 1e-5 && got[r * 8] != 0, "row %d: mean %g", r, m);
    }
    free(prof);
    ct_program_free(p);
    ct_graph_free(g);
}
