/* The float vector math of the CPU fast paths (cpu/cpu_vmath.h) against
 * libm in double rounded to float: within SLEEF's stated error bounds
 * (1.0 ULP; erfc 1.5; sigmoid, two roundings after exp, 2.5), identical
 * whatever an element's position in its array (vector body or padded
 * tail), and with IEEE's answers at NaN, the infinities and signed zeros.
 * Where SLEEF is not built in the functions are libm's float ones (which
 * no fast path then uses): glibc's tanhf, for one, is not within 1 ULP, so
 * there the bounds are one ULP wider. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu/cpu_simd.h"
#include "cpu/cpu_vmath.h"

typedef void (*vfn)(const float *, float *, int64_t);

#ifdef CTRAIN_HAVE_SLEEF
#define SLACK 0.0
#else
#define SLACK 1.0
#endif

static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

typedef struct vcase {
    const char *name;
    vfn f;
    double (*ref)(double);
    double max_ulp;
    float lo, hi; /* the range of the random sweep */
} vcase;

static const vcase cases[] = {
    {"exp", ct_vexpf, exp, 1.0, -100.f, 90.f},       {"expm1", ct_vexpm1f, expm1, 1.0, -20.f, 20.f},
    {"log", ct_vlogf, log, 1.0, 1e-30f, 1e30f},        {"log1p", ct_vlog1pf, log1p, 1.0, -0.99f, 1e6f},
    {"tanh", ct_vtanhf, tanh, 1.0, -12.f, 12.f},       {"erf", ct_verff, erf, 1.0, -5.f, 5.f},
    {"erfc", ct_verfcf, erfc, 1.5, -5.f, 9.f},         {"sigmoid", ct_vsigmoidf, sigmoid_d, 2.5, -90.f, 30.f},
};

/* The distance in float ULPs (of the reference's magnitude) between a
 * result and the reference; subnormal results count in the smallest ULP. */
static double ulps(float got, double want) {
    if (isnan(want)) return isnan(got) ? 0 : INFINITY;
    float w = (float)want; /* beyond FLT_MAX: the float answer is infinite */
    if (isinf(w) || isinf(got)) return got == w ? 0 : INFINITY;
    double ulp = w == 0 ? 1.4e-45 : fabs((double)nextafterf(fabsf(w), INFINITY) - fabsf(w));
    if (ulp < 1.4e-45) ulp = 1.4e-45;
    return fabs((double)got - want) / ulp;
}

static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }

#define N 4099 /* not a multiple of any vector width */

Test(cpu_vmath, within_bounds_everywhere) {
    static float x[N], y[N], y1[N];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const vcase *k = &cases[c];
        uint32_t s = 12345u + (uint32_t)c;
        for (int i = 0; i < N; i++) {
            double u = (double)(lcg(&s) >> 8) / 16777216.0;
            x[i] = k->lo + (float)u * (k->hi - k->lo);
        }
        x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-7f, x[3] = -1e-7f; /* near zero, signed */
        k->f(x, y, N);
        double worst = 0;
        int at = 0;
        for (int i = 0; i < N; i++) {
            if (k->f == ct_vlogf && x[i] <= 0) continue;
            double e = ulps(y[i], k->ref((double)x[i]));
            if (e > worst) worst = e, at = i;
        }
        cr_expect(worst <= k->max_ulp + SLACK, "%s: %.2f ULP at x = %a (got %a, want %a)", k->name, worst, (double)x[at],
                  (double)y[at], k->ref((double)x[at]));
        /* each element alone: the same value at every offset and length */
        for (int off = 1; off < 20; off += 3) {
            k->f(x + off, y1, N - off - 5);
            cr_expect(memcmp(y1, y + off, (size_t)(N - off - 5) * sizeof(float)) == 0, "%s: offset %d differs",
                      k->name, off);
        }
        memcpy(y1, x, sizeof x);
        k->f(y1, y1, N); /* in place */
        cr_expect(memcmp(y1, y, sizeof y) == 0, "%s: in place differs", k->name);
    }
}

Test(cpu_vmath, ieee_special_values) {
    const float in[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
    float out[5];
    ct_vexpf(in, out, 5);
    cr_expect(isnan(out[0]) && out[1] == INFINITY && out[2] == 0.0f && out[3] == 1.0f && out[4] == 1.0f);
    ct_vtanhf(in, out, 5);
    cr_expect(isnan(out[0]) && out[1] == 1.0f && out[2] == -1.0f && out[3] == 0.0f && signbit(out[4]));
    ct_verff(in, out, 5);
    cr_expect(isnan(out[0]) && out[1] == 1.0f && out[2] == -1.0f && signbit(out[4]));
    ct_vsigmoidf(in, out, 5);
    cr_expect(isnan(out[0]) && out[1] == 1.0f && out[2] == 0.0f && out[3] == 0.5f);
    ct_vlogf(in, out, 5);
    cr_expect(isnan(out[0]) && out[1] == INFINITY && isnan(out[2]) && out[3] == -INFINITY);
}

/* The baseline (SSE2) functions meet the same bounds. */
Test(cpu_vmath, baseline_functions_within_bounds) {
    ct_cpu_set_baseline_only(true);
    static float x[N], y[N];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const vcase *k = &cases[c];
        for (int i = 0; i < N; i++) x[i] = k->lo + (k->hi - k->lo) * (float)i / (float)N;
        k->f(x, y, N);
        for (int i = 0; i < N; i++)
            if (!(k->f == ct_vlogf && x[i] <= 0))
                cr_expect(ulps(y[i], k->ref((double)x[i])) <= k->max_ulp + SLACK, "%s (SSE2) at %a", k->name, (double)x[i]);
    }
    ct_cpu_set_baseline_only(false);
}
