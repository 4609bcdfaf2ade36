/* The parity harness judged (tests/cuda_parity.h): it must fail when the
 * GPU's result is wrong, so that a GPU session cannot pass vacuously.
 * These run on any machine: the "GPU" is a copy of the CPU backend whose
 * kernel for one op is wrapped to damage its result in one way (one
 * element off by more than the tolerance, one ulp off in an exact case,
 * an element left unwritten, a NaN or an inf where the CPU has a number,
 * a number or the poison where the CPU has a NaN). Each damage must make
 * cp_check report a difference; the undamaged wrapper and a change within
 * the tolerance must not. */
#include "cuda_parity.h"

typedef enum fault {
    F_NONE,           /* the CPU's result, unchanged */
    F_NUDGE,          /* one element times (1 + g_amount) */
    F_ULP,            /* the first non-zero element moved by one ulp (F32) */
    F_UNWRITTEN,      /* one element left as the output was before the run */
    F_NAN,            /* one element NaN */
    F_INF,            /* one element +inf */
    F_NAN_TO_NUMBER,  /* the first NaN replaced by 0 */
    F_NAN_UNWRITTEN,  /* the first NaN left as the output was before the run */
} fault;

static fault g_fault;
static double g_amount;
static ct_kernel_fn g_real;

static int64_t first_where(const ct_tview *v, bool nan, double value) {
    for (int64_t i = 0; i < v->numel; i++) {
        double x = ct_ld(v->data, v->dtype, i);
        if (nan ? isnan(x) : x == value) return i;
    }
    cr_assert_fail("the case has no element to damage");
    return -1;
}

static int64_t first_nonzero(const ct_tview *v) {
    for (int64_t i = 0; i < v->numel; i++)
        if (ct_ld(v->data, v->dtype, i) != 0) return i;
    cr_assert_fail("the case has no non-zero element to damage");
    return -1;
}

/* The real kernel into a buffer of its own, then its result copied into
 * the output with the damage of g_fault. */
static ct_status damaged(const ct_kargs *k) {
    size_t es = ct_dtype_size(k->out.dtype), ob = (size_t)k->out.numel * es;
    ct_kargs real = *k;
    real.out.data = malloc(ob ? ob : 1);
    cr_assert(real.out.data);
    ct_status st = g_real(&real);
    if (st != CT_OK) return st;
    int64_t at = k->out.numel / 2, skip = -1;
    switch (g_fault) {
    case F_UNWRITTEN: skip = k->out.dtype == CT_I32 ? first_where(&real.out, false, -1) : k->out.numel - 1; break;
    case F_NAN_UNWRITTEN: skip = first_where(&real.out, true, 0); break;
    default: break;
    }
    unsigned char *out = k->out.data, *src = real.out.data;
    for (int64_t i = 0; i < k->out.numel; i++)
        if (i != skip) memcpy(out + (size_t)i * es, src + (size_t)i * es, es);
    switch (g_fault) {
    case F_NUDGE: ct_st(out, k->out.dtype, at, ct_ld(out, k->out.dtype, at) * (1 + g_amount)); break;
    case F_ULP: {
        float *f = (float *)out + first_nonzero(&real.out);
        *f = nextafterf(*f, INFINITY);
        break;
    }
    case F_NAN: ct_st(out, k->out.dtype, at, NAN); break;
    case F_INF: ct_st(out, k->out.dtype, at, INFINITY); break;
    case F_NAN_TO_NUMBER: ct_st(out, k->out.dtype, first_where(&real.out, true, 0), 0.0); break;
    default: break;
    }
    free(real.out.data);
    return CT_OK;
}

/* The CPU backend with op's kernel damaged by f. */
static const ct_backend *damaged_backend(ct_op op, fault f, double amount) {
    static ct_backend be;
    be = *ct_cpu_backend();
    g_real = be.kernels[op];
    be.kernels[op] = damaged;
    g_fault = f;
    g_amount = amount;
    return &be;
}

static bool check(const cp_case *c, fault f, double amount) {
    cp_expect_mismatch = true;
    return cp_check(c, ct_cpu_backend(), damaged_backend(c->op, f, amount));
}

static cp_case add_case(void) {
    static const ct_shape s = {2, {7, 13}};
    return (cp_case){.name = "add", .op = CT_OP_ADD, .n_in = 2, .in = {cp_f(CT_F32, s), cp_f(CT_F32, s)},
                     .out_dtype = CT_F32, .out_shape = s};
}

Test(cuda_parity_harness, undamaged_and_within_tolerance_pass) {
    cp_case c = add_case();
    cr_expect(check(&c, F_NONE, 0));
    cr_expect(check(&c, F_NUDGE, 1e-6), "a change of 1e-6 relative is within F32's 1e-5");
}

Test(cuda_parity_harness, a_wrong_element_fails) {
    cp_case c = add_case();
    cr_expect_not(check(&c, F_NUDGE, 1e-4), "an element 1e-4 off passed the F32 tolerance");
    c.out_dtype = c.in[0].dtype = c.in[1].dtype = CT_F64;
    cr_expect_not(check(&c, F_NUDGE, 1e-10), "an element 1e-10 off passed the F64 tolerance");
    c.out_dtype = c.in[0].dtype = c.in[1].dtype = CT_BF16;
    cr_expect_not(check(&c, F_NUDGE, 0.1), "an element 10%% off passed the BF16 tolerance");
}

Test(cuda_parity_harness, one_ulp_fails_an_exact_case) {
    ct_shape s = {2, {16, 33}};
    cp_case c = {.name = "dropout", .op = CT_OP_DROPOUT, .attr = {.alpha = 0.5, .stream = 3}, .n_in = 1,
                 .in = {cp_f(CT_F32, s)}, .out_dtype = CT_F32, .out_shape = s, .exact = true, .step = 9};
    cr_expect(check(&c, F_NONE, 0));
    cr_expect_not(check(&c, F_ULP, 0), "one ulp passed an exact comparison");
}

Test(cuda_parity_harness, an_unwritten_element_fails) {
    cp_case c = add_case();
    cr_expect_not(check(&c, F_UNWRITTEN, 0), "an unwritten float element passed");
    /* I32: the element left alone is one whose right value is -1, the
     * first poison's bytes, so only the second run (0x00) can see it */
    ct_shape s = {1, {101}};
    cp_case i = {.name = "cast to i32", .op = CT_OP_CAST, .attr = {.dtype = CT_I32}, .n_in = 1,
                 .in = {cp_range(CT_F32, s, -1.45, -1.05)}, .out_dtype = CT_I32, .out_shape = s};
    cr_expect(check(&i, F_NONE, 0));
    cr_expect_not(check(&i, F_UNWRITTEN, 0), "an unwritten I32 element that should be -1 passed");
}

Test(cuda_parity_harness, nan_and_inf_mismatches_fail) {
    cp_case c = add_case();
    cr_expect_not(check(&c, F_NAN, 0), "a NaN where the CPU has a number passed");
    cr_expect_not(check(&c, F_INF, 0), "an inf where the CPU has a number passed");
    ct_shape s = {2, {5, 37}};
    cp_in x = cp_f(CT_F32, s);
    x.nan_every = 7;
    cp_case n = {.name = "neg with NaNs", .op = CT_OP_NEG, .n_in = 1, .in = {x}, .out_dtype = CT_F32, .out_shape = s};
    cr_expect(check(&n, F_NONE, 0));
    cr_expect_not(check(&n, F_NAN_TO_NUMBER, 0), "a number where the CPU has a NaN passed");
    cr_expect_not(check(&n, F_NAN_UNWRITTEN, 0), "an unwritten element where the CPU has a NaN passed");
}

/* The comparison itself, on hand-made buffers. */
Test(cuda_parity_harness, compare_rules) {
    cp_expect_mismatch = true;
    const float cpu[4] = {1.0f, -2.0f, INFINITY, NAN};
    float gpu[4];
    memcpy(gpu, cpu, sizeof gpu);
    cr_expect(cp_compare("same", "x", CT_F32, cpu, gpu, 4, 0, 0));
    gpu[2] = -INFINITY;
    cr_expect_not(cp_compare("inf sign", "x", CT_F32, cpu, gpu, 4, 1, 1));
    gpu[2] = INFINITY, gpu[3] = 3.0f;
    cr_expect_not(cp_compare("nan lost", "x", CT_F32, cpu, gpu, 4, 1, 1));
    gpu[3] = NAN, gpu[1] = -2.0f - 1e-3f;
    cr_expect_not(cp_compare("off", "x", CT_F32, cpu, gpu, 4, 1e-4, 1e-4));
    cr_expect(cp_compare("within", "x", CT_F32, cpu, gpu, 4, 1e-3, 0));
    const int32_t ci[2] = {5, -1}, gi[2] = {5, 0};
    cr_expect_not(cp_compare("i32", "x", CT_I32, ci, gi, 2, 0, 0));
}
