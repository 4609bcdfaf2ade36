/* Initialisation rules: PyTorch's fan and gain rules, the statistics of
 * what they draw, which Philox counters they use, and their errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctrain/init.h"
#include "ctrain/rng.h"
#include "ctrain/status.h"

static const ct_shape BIG = {2, {512, 1024}};    /* fan_in 1024, fan_out 512 */
static const ct_shape CONV = {4, {64, 32, 3, 3}}; /* fan_in 288, fan_out 576 */

typedef struct stats {
    double mean, std, min, max;
    int64_t n;
} stats;

static stats stats_of(const double *v, int64_t n) {
    stats s = {0, 0, INFINITY, -INFINITY, n};
    double sum = 0, sum2 = 0;
    for (int64_t i = 0; i < n; i++) {
        sum += v[i];
        if (v[i] < s.min) s.min = v[i];
        if (v[i] > s.max) s.max = v[i];
    }
    s.mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++) sum2 += (v[i] - s.mean) * (v[i] - s.mean);
    s.std = sqrt(sum2 / (double)n);
    return s;
}

/* Fills in f64 (or f32, widened) and asserts success. Caller frees. */
static double *fill(ct_init rule, ct_shape shape, ct_dtype dt, uint64_t seed, uint32_t stream) {
    int64_t n = ct_shape_numel(shape);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    cr_assert_not_null(v);
    if (dt == CT_F64) {
        cr_assert_eq(ct_init_fill(&rule, shape, dt, seed, stream, v), CT_OK, "%s",
                     ct_last_error());
    } else {
        float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
        cr_assert_not_null(f);
        cr_assert_eq(ct_init_fill(&rule, shape, dt, seed, stream, f), CT_OK, "%s",
                     ct_last_error());
        for (int64_t i = 0; i < n; i++) v[i] = f[i];
        free(f);
    }
    return v;
}

/* Tolerance for the sample mean: 5 standard errors. */
static double mean_tol(double sd, int64_t n) { return 5.0 * sd / sqrt((double)n); }

/* Sample std of n draws has relative standard error ~ sqrt(k/n) with k = 1/2
 * for a normal and 1/5 for a uniform; 5 errors, rounded up to 1 part in 100
 * for the big tensor. */
static double std_rel_tol(int64_t n) { return 5.0 * sqrt(0.5 / (double)n) + 1e-3; }

static void expect_uniform(const double *v, int64_t n, double low, double high) {
    stats s = stats_of(v, n);
    double sd = (high - low) / sqrt(12.0);
    cr_expect(s.min >= low && s.max < high, "range [%.9g, %.9g] outside [%.9g, %.9g)", s.min,
              s.max, low, high);
    /* With this many draws the extremes come within 0.1% of the bounds. */
    cr_expect(s.min < low + 1e-3 * (high - low) && s.max > high - 1e-3 * (high - low),
              "range [%g, %g] does not fill [%g, %g)", s.min, s.max, low, high);
    cr_expect(fabs(s.mean - (low + high) / 2) < mean_tol(sd, n), "mean %g", s.mean);
    cr_expect(fabs(s.std / sd - 1) < std_rel_tol(n), "std %g want %g", s.std, sd);
}

static void expect_normal(const double *v, int64_t n, double mean, double sd) {
    stats s = stats_of(v, n);
    cr_expect(fabs(s.mean - mean) < mean_tol(sd, n), "mean %g want %g", s.mean, mean);
    cr_expect(fabs(s.std / sd - 1) < std_rel_tol(n), "std %g want %g", s.std, sd);
    /* Shape, not just moments: about 68.27% within one sd, 95.45% within 2,
     * and tails that actually reach past 4 sd on half a million draws. */
    int64_t in1 = 0, in2 = 0;
    double m3 = 0, m4 = 0;
    for (int64_t i = 0; i < n; i++) {
        double z = (v[i] - mean) / sd;
        in1 += fabs(z) < 1;
        in2 += fabs(z) < 2;
        m3 += z * z * z;
        m4 += z * z * z * z;
    }
    double p1 = (double)in1 / n, p2 = (double)in2 / n;
    cr_expect(fabs(p1 - 0.682689) < 5 * sqrt(0.2166 / n), "P(|z|<1) = %g", p1);
    cr_expect(fabs(p2 - 0.954500) < 5 * sqrt(0.0434 / n), "P(|z|<2) = %g", p2);
    cr_expect(fabs(m3 / n) < 5 * sqrt(15.0 / n), "skewness %g", m3 / n);
    cr_expect(fabs(m4 / n - 3) < 5 * sqrt(96.0 / n), "kurtosis %g", m4 / n);
    if (n > 100000) cr_expect(s.max > mean + 4 * sd && s.min < mean - 4 * sd, "tails");
}

Test(init, constants) {
    ct_shape sh = {2, {3, 5}};
    ct_init zero = {0}; /* a zeroed rule is zeros */
    const struct {
        ct_init r;
        double want;
    } c[] = {{ct_init_zeros(), 0}, {zero, 0}, {ct_init_ones(), 1}, {ct_init_constant(-2.5), -2.5}};
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        for (int d = 0; d < 2; d++) {
            double *v = fill(c[k].r, sh, d ? CT_F64 : CT_F32, 1, 0);
            for (int i = 0; i < 15; i++) cr_expect_eq(v[i], c[k].want, "rule %zu elt %d", k, i);
            free(v);
        }
    }
    /* A scalar is one element. */
    double s = 7;
    ct_init one = ct_init_ones();
    cr_expect_eq(ct_init_fill(&one, (ct_shape){0, {0}}, CT_F64, 0, 0, &s), CT_OK);
    cr_expect_eq(s, 1.0);
}

Test(init, shorthands_store_their_arguments) {
    ct_init r = ct_init_xavier_uniform(2.0);
    cr_expect(r.kind == CT_INIT_XAVIER_UNIFORM && r.gain == 2.0);
    r = ct_init_xavier_normal(0.0);
    cr_expect(r.kind == CT_INIT_XAVIER_NORMAL && r.gain == 0.0);
    r = ct_init_kaiming_normal(0.2, CT_FAN_OUT, CT_NONLIN_LEAKY_RELU);
    cr_expect(r.kind == CT_INIT_KAIMING_NORMAL && r.a == 0.2 && r.mode == CT_FAN_OUT &&
              r.nonlinearity == CT_NONLIN_LEAKY_RELU);
    r = ct_init_uniform(-1, 2);
    cr_expect(r.kind == CT_INIT_UNIFORM && r.low == -1 && r.high == 2);
    r = ct_init_normal(3, 4);
    cr_expect(r.kind == CT_INIT_NORMAL && r.mean == 3 && r.std == 4);
    r = ct_init_constant(9);
    cr_expect(r.kind == CT_INIT_CONSTANT && r.value == 9);
}

Test(init, gains_match_pytorch) {
    cr_expect_eq(ct_init_gain(CT_NONLIN_LINEAR, 0), 1.0);
    cr_expect_eq(ct_init_gain(CT_NONLIN_SIGMOID, 0), 1.0);
    cr_expect_float_eq(ct_init_gain(CT_NONLIN_TANH, 0), 5.0 / 3.0, 1e-15);
    cr_expect_float_eq(ct_init_gain(CT_NONLIN_RELU, 0.3), sqrt(2.0), 1e-15);
    cr_expect_float_eq(ct_init_gain(CT_NONLIN_LEAKY_RELU, 0), sqrt(2.0), 1e-15);
    cr_expect_float_eq(ct_init_gain(CT_NONLIN_LEAKY_RELU, 0.01), sqrt(2.0 / 1.0001), 1e-15);
    cr_expect_float_eq(ct_init_gain(CT_NONLIN_LEAKY_RELU, -0.2), sqrt(2.0 / 1.04), 1e-15);
    cr_expect_eq(ct_init_gain(CT_NONLIN_SELU, 0), 0.75);
    cr_expect(isnan(ct_init_gain((ct_nonlinearity)42, 0)));
}

Test(init, uniform_statistics) {
    double *v = fill(ct_init_uniform(-2, 3), BIG, CT_F64, 11, 0);
    expect_uniform(v, ct_shape_numel(BIG), -2, 3);
    free(v);
    v = fill(ct_init_uniform(-2, 3), BIG, CT_F32, 11, 1);
    expect_uniform(v, ct_shape_numel(BIG), -2, 3);
    free(v);
}

Test(init, normal_statistics) {
    double *v = fill(ct_init_normal(1.5, 0.5), BIG, CT_F64, 12, 0);
    expect_normal(v, ct_shape_numel(BIG), 1.5, 0.5);
    free(v);
    v = fill(ct_init_normal(0, 0.02), BIG, CT_F32, 12, 3);
    expect_normal(v, ct_shape_numel(BIG), 0, 0.02);
    free(v);
    /* std 0 is allowed (PyTorch's normal_ takes it): every value is the mean. */
    v = fill(ct_init_normal(4, 0), (ct_shape){1, {100}}, CT_F64, 1, 0);
    for (int i = 0; i < 100; i++) cr_expect_eq(v[i], 4.0);
    free(v);
}

Test(init, xavier_on_matrix) {
    int64_t n = ct_shape_numel(BIG);
    double b = 2.0 * sqrt(6.0 / (1024 + 512));
    double *v = fill(ct_init_xavier_uniform(2.0), BIG, CT_F32, 13, 0);
    expect_uniform(v, n, -b, b);
    free(v);
    /* gain 0 means 1. */
    v = fill(ct_init_xavier_normal(0.0), BIG, CT_F64, 13, 1);
    expect_normal(v, n, 0, sqrt(2.0 / (1024 + 512)));
    free(v);
}

Test(init, kaiming_on_matrix) {
    int64_t n = ct_shape_numel(BIG);
    /* PyTorch's default kaiming: a = 0, fan_in, leaky_relu -> gain sqrt(2). */
    double *v = fill(ct_init_kaiming_uniform(0, CT_FAN_IN, CT_NONLIN_LEAKY_RELU), BIG, CT_F64, 14,
                     0);
    expect_uniform(v, n, -sqrt(6.0 / 1024), sqrt(6.0 / 1024));
    free(v);
    v = fill(ct_init_kaiming_normal(0, CT_FAN_OUT, CT_NONLIN_RELU), BIG, CT_F32, 14, 1);
    expect_normal(v, n, 0, sqrt(2.0) / sqrt(512.0));
    free(v);
    /* tanh gain 5/3, fan_in; a is ignored for non-leaky nonlinearities. */
    v = fill(ct_init_kaiming_normal(0.7, CT_FAN_IN, CT_NONLIN_TANH), BIG, CT_F64, 14, 2);
    expect_normal(v, n, 0, (5.0 / 3.0) / sqrt(1024.0));
    free(v);
}

/* Conv weights [out, in, kh, kw]: the receptive field multiplies both fans.
 * Bounds are checked tightly: every value inside, and the extremes within
 * 1% of the bound (18432 draws miss that with probability ~ 0.99^18432). */
static void expect_bound(const double *v, int64_t n, double b) {
    stats s = stats_of(v, n);
    cr_expect(s.min >= -b && s.max < b, "[%.9g, %.9g] outside +-%.9g", s.min, s.max, b);
    cr_expect(s.max > 0.99 * b && s.min < -0.99 * b, "[%g, %g] short of +-%g", s.min, s.max, b);
    cr_expect(fabs(s.std / (b / sqrt(3.0)) - 1) < 0.03, "std %g", s.std);
}

Test(init, fan_rules_on_conv_weight) {
    int64_t n = ct_shape_numel(CONV);
    const double fan_in = 32 * 9, fan_out = 64 * 9;
    double *v;

    v = fill(ct_init_kaiming_uniform(0, CT_FAN_IN, CT_NONLIN_LEAKY_RELU), CONV, CT_F32, 5, 0);
    expect_bound(v, n, sqrt(2.0) * sqrt(3.0 / fan_in));
    free(v);

    v = fill(ct_init_kaiming_uniform(0, CT_FAN_OUT, CT_NONLIN_RELU), CONV, CT_F32, 5, 1);
    expect_bound(v, n, sqrt(2.0) * sqrt(3.0 / fan_out));
    free(v);

    /* PyTorch's nn.Conv2d default: kaiming_uniform_(a = sqrt(5)), gain
     * sqrt(2/6), so the bound is 1/sqrt(fan_in). */
    v = fill(ct_init_kaiming_uniform(sqrt(5.0), CT_FAN_IN, CT_NONLIN_LEAKY_RELU), CONV, CT_F64, 5,
             2);
    expect_bound(v, n, 1.0 / sqrt(fan_in));
    free(v);

    v = fill(ct_init_xavier_uniform(1.0), CONV, CT_F64, 5, 3);
    expect_bound(v, n, sqrt(6.0 / (fan_in + fan_out)));
    free(v);

    v = fill(ct_init_kaiming_normal(0, CT_FAN_OUT, CT_NONLIN_RELU), CONV, CT_F64, 5, 4);
    stats s = stats_of(v, n);
    cr_expect(fabs(s.std / (sqrt(2.0 / fan_out)) - 1) < 0.03, "std %g", s.std);
    free(v);

    v = fill(ct_init_xavier_normal(1.0), CONV, CT_F64, 5, 5);
    s = stats_of(v, n);
    cr_expect(fabs(s.std / sqrt(2.0 / (fan_in + fan_out)) - 1) < 0.03, "std %g", s.std);
    free(v);

    /* A 3-d [out, in, k] weight too. */
    ct_shape c1 = {3, {16, 8, 5}};
    v = fill(ct_init_kaiming_uniform(0, CT_FAN_IN, CT_NONLIN_RELU), c1, CT_F64, 5, 6);
    stats s1 = stats_of(v, 640);
    cr_expect(s1.max < sqrt(6.0 / 40) && s1.max > 0.9 * sqrt(6.0 / 40));
    free(v);
}

/* The counters are part of the contract (the GPU must draw the same):
 * uniform element i = draw i, normal element i = draws 2i and 2i+1. */
Test(init, uses_documented_counters) {
    const uint64_t seed = UINT64_C(0xfeedface12345678);
    const uint32_t stream = 9;
    ct_shape sh = {2, {7, 3}}; /* 21: not a multiple of 4, tests the tail */
    double *v = fill(ct_init_uniform(-1, 1), sh, CT_F64, seed, stream);
    for (int i = 0; i < 21; i++) {
        double u = ct_philox_uniform(seed, stream, 0, (uint64_t)i);
        cr_expect_eq(v[i], -1 + 2 * u, "elt %d", i);
    }
    free(v);
    v = fill(ct_init_normal(0, 1), sh, CT_F64, seed, stream);
    for (int i = 0; i < 21; i++) {
        double u1 = ct_philox_uniform(seed, stream, 0, 2 * (uint64_t)i);
        double u2 = ct_philox_uniform(seed, stream, 0, 2 * (uint64_t)i + 1);
        double z = sqrt(-2 * log(1 - u1)) * cos(6.283185307179586476925286766559 * u2);
        cr_expect_eq(v[i], z, "elt %d: %.17g vs %.17g", i, v[i], z);
    }
    free(v);
}

/* F32 output is the F64 value rounded once, and a prefix of a tensor does
 * not depend on its size. */
Test(init, dtypes_and_sizes_agree) {
    ct_init rules[] = {ct_init_uniform(-3, 1), ct_init_normal(0.5, 2),
                       ct_init_kaiming_normal(0, CT_FAN_IN, CT_NONLIN_RELU)};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        ct_shape a = {2, {10, 33}}, b = {2, {10, 35}};
        /* kaiming's std depends on fan_in: grow the tensor along dim 0 only */
        if (rules[r].kind == CT_INIT_KAIMING_NORMAL) b = (ct_shape){2, {20, 33}};
        double *d = fill(rules[r], a, CT_F64, 3, 1);
        double *f = fill(rules[r], a, CT_F32, 3, 1);
        double *big = fill(rules[r], b, CT_F64, 3, 1);
        for (int i = 0; i < 330; i++) {
            cr_expect_eq(f[i], (double)(float)d[i], "rule %zu elt %d", r, i);
            cr_expect_eq(big[i], d[i], "rule %zu elt %d", r, i);
        }
        free(d);
        free(f);
        free(big);
    }
}

Test(init, deterministic_and_stream_separated) {
    ct_init rules[] = {ct_init_uniform(0, 1), ct_init_normal(0, 1), ct_init_xavier_uniform(1),
                       ct_init_kaiming_normal(0, CT_FAN_IN, CT_NONLIN_RELU)};
    const int64_t n = ct_shape_numel(CONV);
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        float *c = malloc((size_t)n * sizeof *c), *d = malloc((size_t)n * sizeof *d);
        cr_assert(a && b && c && d);
        cr_assert_eq(ct_init_fill(&rules[r], CONV, CT_F32, 77, 4, a), CT_OK);
        cr_assert_eq(ct_init_fill(&rules[r], CONV, CT_F32, 77, 4, b), CT_OK);
        cr_assert_eq(ct_init_fill(&rules[r], CONV, CT_F32, 77, 5, c), CT_OK);
        cr_assert_eq(ct_init_fill(&rules[r], CONV, CT_F32, 78, 4, d), CT_OK);
        cr_expect_eq(memcmp(a, b, (size_t)n * sizeof *a), 0, "rule %zu not reproducible", r);
        int64_t same_stream = 0, same_seed = 0;
        for (int64_t i = 0; i < n; i++) {
            same_stream += a[i] == c[i];
            same_seed += a[i] == d[i];
        }
        /* Independent 24-bit draws coincide about n / 2^24 times. */
        cr_expect(same_stream < 5, "rule %zu: %lld equal across streams", r,
                  (long long)same_stream);
        cr_expect(same_seed < 5, "rule %zu: %lld equal across seeds", r, (long long)same_seed);
        free(a);
        free(b);
        free(c);
        free(d);
    }
}

/* Rounding low + span*u to float may land on high, or below a low that has
 * no exact float; values must still lie in [low, high). */
Test(init, uniform_half_open_after_rounding) {
    const double cases[][2] = {{1000.0, 1000.001}, {0.7, 0.70001}, {-1e-3, 1e-3}, {1.0, 1.0}};
    ct_shape sh = {1, {100000}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double lo = cases[k][0], hi = cases[k][1];
        double *v = fill(ct_init_uniform(lo, hi), sh, CT_F32, 8, (uint32_t)k);
        for (int i = 0; i < 100000; i++) {
            if (lo == hi)
                cr_assert_eq(v[i], (double)(float)lo);
            else
                cr_assert(v[i] >= lo && v[i] < hi, "case %zu elt %d: %.9g", k, i, v[i]);
        }
        free(v);
    }
}

static void expect_error(ct_init rule, ct_shape shape, ct_dtype dt, ct_status want,
                         const char *needle) {
    double buf[64];
    ct_clear_error();
    ct_status st = ct_init_fill(&rule, shape, dt, 1, 0, buf);
    cr_expect_eq(st, want, "got %d want %d (%s)", st, want, ct_last_error());
    cr_expect_eq(ct_last_status(), want);
    cr_expect(strstr(ct_last_error(), needle) != NULL, "message '%s' lacks '%s'", ct_last_error(),
              needle);
}

Test(init, errors) {
    ct_shape m = {2, {4, 8}}, vec = {1, {16}};
    expect_error(ct_init_normal(0, -1), m, CT_F32, CT_ERR_INVALID_ARG, "std");
    expect_error(ct_init_normal(0, NAN), m, CT_F32, CT_ERR_INVALID_ARG, "std");
    expect_error(ct_init_normal(INFINITY, 1), m, CT_F32, CT_ERR_INVALID_ARG, "mean");
    expect_error(ct_init_uniform(1, 0), m, CT_F32, CT_ERR_INVALID_ARG, "low");
    expect_error(ct_init_uniform(NAN, 0), m, CT_F64, CT_ERR_INVALID_ARG, "low");
    expect_error(ct_init_uniform(-INFINITY, 0), m, CT_F64, CT_ERR_INVALID_ARG, "low");
    expect_error(ct_init_uniform(0, 1), m, CT_F16, CT_ERR_DTYPE, "f16");
    expect_error(ct_init_zeros(), m, CT_I32, CT_ERR_DTYPE, "i32");
    expect_error(ct_init_zeros(), m, (ct_dtype)50, CT_ERR_DTYPE, "dtype");
    /* Fans need 2 dims, as in PyTorch; a bias gets its bound from its weight. */
    expect_error(ct_init_xavier_uniform(1), vec, CT_F32, CT_ERR_INVALID_ARG, "2 dims");
    expect_error(ct_init_xavier_normal(1), (ct_shape){0, {0}}, CT_F32, CT_ERR_INVALID_ARG,
                 "2 dims");
    expect_error(ct_init_kaiming_uniform(0, CT_FAN_IN, CT_NONLIN_RELU), vec, CT_F32,
                 CT_ERR_INVALID_ARG, "[16]");
    expect_error(ct_init_kaiming_normal(0, CT_FAN_IN, CT_NONLIN_RELU), vec, CT_F64,
                 CT_ERR_INVALID_ARG, "2 dims");
    /* A fan of 0 would divide by zero. */
    expect_error(ct_init_kaiming_uniform(0, CT_FAN_OUT, CT_NONLIN_RELU), (ct_shape){2, {0, 5}},
                 CT_F32, CT_ERR_INVALID_ARG, "fan_out");
    expect_error(ct_init_kaiming_normal(0, CT_FAN_IN, CT_NONLIN_RELU), (ct_shape){3, {4, 5, 0}},
                 CT_F32, CT_ERR_INVALID_ARG, "fan_in");
    expect_error(ct_init_xavier_uniform(1), (ct_shape){2, {0, 0}}, CT_F32, CT_ERR_INVALID_ARG,
                 "fan");
    expect_error(ct_init_xavier_uniform(-1), m, CT_F32, CT_ERR_INVALID_ARG, "gain");
    expect_error(ct_init_kaiming_uniform(0, (ct_fan_mode)7, CT_NONLIN_RELU), m, CT_F32,
                 CT_ERR_INVALID_ARG, "mode");
    expect_error(ct_init_kaiming_uniform(0, CT_FAN_IN, (ct_nonlinearity)99), m, CT_F32,
                 CT_ERR_INVALID_ARG, "nonlinearity");
    ct_init bad = {.kind = (ct_init_kind)123};
    expect_error(bad, m, CT_F32, CT_ERR_INVALID_ARG, "kind");
    expect_error(ct_init_zeros(), (ct_shape){2, {4, -2}}, CT_F32, CT_ERR_INVALID_ARG, "shape");

    cr_expect_eq(ct_init_fill(NULL, m, CT_F32, 0, 0, (float[32]){0}), CT_ERR_INVALID_ARG);
    ct_init z = ct_init_zeros();
    cr_expect_eq(ct_init_fill(&z, m, CT_F32, 0, 0, NULL), CT_ERR_INVALID_ARG);
    /* An empty tensor with a usable rule needs no buffer. */
    ct_init u = ct_init_uniform(0, 1);
    cr_expect_eq(ct_init_fill(&u, (ct_shape){2, {0, 5}}, CT_F32, 0, 0, NULL), CT_OK);
}

/* An error leaves the output untouched (nothing half-written). */
Test(init, error_writes_nothing) {
    float buf[32];
    for (int i = 0; i < 32; i++) buf[i] = 42;
    ct_init r = ct_init_kaiming_uniform(0, CT_FAN_IN, CT_NONLIN_RELU);
    cr_expect_neq(ct_init_fill(&r, (ct_shape){1, {32}}, CT_F32, 0, 0, buf), CT_OK);
    for (int i = 0; i < 32; i++) cr_expect_eq(buf[i], 42.0f);
}
