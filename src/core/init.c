/* Parameter initialisation: PyTorch's torch.nn.init rules on Philox streams.
 *
 * Which random numbers an element gets (the CUDA backend, or anyone checking
 * parity, must reproduce exactly this; every draw uses offset 0):
 *   uniform-type rules: element i takes draw i of (seed, stream), i.e.
 *       u = ct_philox_uniform(seed, stream, 0, i), value = low + (high-low)*u;
 *   normal-type rules: element i takes draws 2i and 2i+1 and Box-Muller's
 *       cosine branch: z = sqrt(-2 ln(1 - u_2i)) * cos(2 pi u_2i+1),
 *       value = mean + std * z. Using 1 - u (in (0, 1]) keeps log finite; the
 *       sine branch is not used, so each element stays independent of its
 *       neighbours' indices.
 * Arithmetic is in double, rounded once to the output dtype. Philox blocks
 * are generated four words at a time, which gives the same words as calling
 * ct_philox_u32 per element at a quarter of the cost.
 */
#include <math.h>

#include "core/error.h"
#include "ctrain/init.h"
#include "ctrain/rng.h"

ct_init ct_init_zeros(void) { return (ct_init){.kind = CT_INIT_ZEROS}; }

ct_init ct_init_ones(void) { return (ct_init){.kind = CT_INIT_ONES}; }

ct_init ct_init_constant(double value) {
    return (ct_init){.kind = CT_INIT_CONSTANT, .value = value};
}

ct_init ct_init_uniform(double low, double high) {
    return (ct_init){.kind = CT_INIT_UNIFORM, .low = low, .high = high};
}

ct_init ct_init_normal(double mean, double std) {
    return (ct_init){.kind = CT_INIT_NORMAL, .mean = mean, .std = std};
}

ct_init ct_init_xavier_uniform(double gain) {
    return (ct_init){.kind = CT_INIT_XAVIER_UNIFORM, .gain = gain};
}

ct_init ct_init_xavier_normal(double gain) {
    return (ct_init){.kind = CT_INIT_XAVIER_NORMAL, .gain = gain};
}

ct_init ct_init_kaiming_uniform(double a, ct_fan_mode mode, ct_nonlinearity nl) {
    return (ct_init){.kind = CT_INIT_KAIMING_UNIFORM, .a = a, .mode = mode, .nonlinearity = nl};
}

ct_init ct_init_kaiming_normal(double a, ct_fan_mode mode, ct_nonlinearity nl) {
    return (ct_init){.kind = CT_INIT_KAIMING_NORMAL, .a = a, .mode = mode, .nonlinearity = nl};
}

double ct_init_gain(ct_nonlinearity nl, double a) {
    switch (nl) {
    case CT_NONLIN_LINEAR:
    case CT_NONLIN_SIGMOID: return 1.0;
    case CT_NONLIN_TANH: return 5.0 / 3.0;
    case CT_NONLIN_RELU: return sqrt(2.0);
    case CT_NONLIN_LEAKY_RELU: return sqrt(2.0 / (1.0 + a * a));
    case CT_NONLIN_SELU: return 0.75;
    }
    /* PyTorch raises for an unknown nonlinearity; a double cannot carry a
     * status, so NaN it is, and ct_init_fill turns that into an error. */
    return NAN;
}

static const char *kind_name(ct_init_kind k) {
    switch (k) {
    case CT_INIT_ZEROS: return "zeros";
    case CT_INIT_ONES: return "ones";
    case CT_INIT_CONSTANT: return "constant";
    case CT_INIT_UNIFORM: return "uniform";
    case CT_INIT_NORMAL: return "normal";
    case CT_INIT_XAVIER_UNIFORM: return "xavier_uniform";
    case CT_INIT_XAVIER_NORMAL: return "xavier_normal";
    case CT_INIT_KAIMING_UNIFORM: return "kaiming_uniform";
    case CT_INIT_KAIMING_NORMAL: return "kaiming_normal";
    }
    return "?";
}

/* PyTorch's _calculate_fan_in_and_fan_out: a weight is [out, in, k...], so
 * fan_in = in * prod(k) and fan_out = out * prod(k). Like PyTorch, a tensor of
 * fewer than 2 dims has no fans (a bias is initialised from its weight's fan
 * by the layer that owns both). */
static ct_status fans(const ct_init *rule, ct_shape s, double *fan_in, double *fan_out) {
    if (s.ndim < 2) {
        char buf[96];
        return ct_error(CT_ERR_INVALID_ARG,
                        "init %s: fan in and fan out need a tensor of at least 2 dims, got %s",
                        kind_name(rule->kind), ct_shape_str(s, buf, sizeof buf));
    }
    /* double: a product of sizes can pass 2^53 only for tensors no one can
     * allocate, and the fans are only ever used in floating point. */
    double receptive = 1.0;
    for (int d = 2; d < s.ndim; d++) receptive *= (double)s.dim[d];
    *fan_in = (double)s.dim[1] * receptive;
    *fan_out = (double)s.dim[0] * receptive;
    return CT_OK;
}

static void store(void *out, ct_dtype dt, int64_t i, double v) {
    if (dt == CT_F32)
        ((float *)out)[i] = (float)v;
    else
        ((double *)out)[i] = v;
}

static void fill_const(void *out, ct_dtype dt, int64_t n, double v) {
    for (int64_t i = 0; i < n; i++) store(out, dt, i, v);
}

/* The 24-bit uniform of ct_philox_uniform, from an already generated word. */
static inline double word_uniform(uint32_t w) { return (double)(w >> 8) * 0x1p-24; }

static void philox_block(uint64_t seed, uint32_t stream, uint64_t block, uint32_t w[4]) {
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    ct_philox4x32_10(ctr, key, w);
}

/* U[low, high). Rounding low + (high-low)*u to the output type can land on
 * high itself (or just under low when a bound is not representable), so the
 * result is clamped into the representable values of [low, high). When
 * low == high every element is low, as in PyTorch. */
static void fill_uniform(void *out, ct_dtype dt, int64_t n, uint64_t seed, uint32_t stream,
                         double low, double high) {
    double span = high - low;
    double lo_ok, hi_ok; /* smallest / largest representable values inside */
    if (dt == CT_F32) {
        float fl = (float)low, fh = (float)high;
        if ((double)fl < low) fl = nextafterf(fl, INFINITY);
        /* One step suffices: the nearest float is at most one away. */
        if ((double)fh >= high) fh = nextafterf(fh, -INFINITY);
        lo_ok = fl;
        hi_ok = fh;
    } else {
        lo_ok = low;
        hi_ok = nextafter(high, -INFINITY);
    }
    bool clamp = lo_ok <= hi_ok; /* false when no float lies in [low, high) */
    for (int64_t base = 0; base < n; base += 4) {
        uint32_t w[4];
        philox_block(seed, stream, (uint64_t)base >> 2, w);
        for (int k = 0; k < 4 && base + k < n; k++) {
            double v = low + span * word_uniform(w[k]);
            if (dt == CT_F32) v = (float)v;
            if (clamp && span > 0) {
                if (v > hi_ok) v = hi_ok;
                if (v < lo_ok) v = lo_ok;
            }
            store(out, dt, base + k, v);
        }
    }
}

static inline double box_muller(uint32_t w_radius, uint32_t w_angle) {
    const double two_pi = 6.283185307179586476925286766559;
    double r = sqrt(-2.0 * log(1.0 - word_uniform(w_radius)));
    return r * cos(two_pi * word_uniform(w_angle));
}

/* N(mean, std^2); element i uses draws 2i, 2i+1, so block j (draws 4j..4j+3)
 * serves elements 2j and 2j+1. */
static void fill_normal(void *out, ct_dtype dt, int64_t n, uint64_t seed, uint32_t stream,
                        double mean, double std) {
    for (int64_t base = 0; base < n; base += 2) {
        uint32_t w[4];
        philox_block(seed, stream, (uint64_t)base >> 1, w);
        store(out, dt, base, mean + std * box_muller(w[0], w[1]));
        if (base + 1 < n) store(out, dt, base + 1, mean + std * box_muller(w[2], w[3]));
    }
}

static ct_status check_gain(const ct_init *rule, double gain) {
    if (!(isfinite(gain) && gain >= 0))
        return ct_error(CT_ERR_INVALID_ARG, "init %s: gain must be finite and >= 0 (got %g)",
                        kind_name(rule->kind), gain);
    return CT_OK;
}

/* Xavier (Glorot): bound or std from fan_in + fan_out. */
static ct_status fill_xavier(const ct_init *rule, ct_shape shape, ct_dtype dtype, int64_t n,
                             uint64_t seed, uint32_t stream, void *out) {
    const char *name = kind_name(rule->kind);
    ct_status st;
    double fan_in = 0, fan_out = 0;
    /* 0 means "unset" so that a zeroed ct_init gets PyTorch's gain of 1. */
    double gain = rule->gain == 0 ? 1.0 : rule->gain;
    if ((st = check_gain(rule, gain)) != CT_OK) return st;
    if ((st = fans(rule, shape, &fan_in, &fan_out)) != CT_OK) return st;
    double fan_sum = fan_in + fan_out;
    if (fan_sum == 0) {
        char buf[96];
        return ct_error(CT_ERR_INVALID_ARG, "init %s: fan_in + fan_out is 0 for shape %s",
                        name, ct_shape_str(shape, buf, sizeof buf));
    }
    if (rule->kind == CT_INIT_XAVIER_UNIFORM) {
        double b = gain * sqrt(6.0 / fan_sum);
        fill_uniform(out, dtype, n, seed, stream, -b, b);
    } else {
        fill_normal(out, dtype, n, seed, stream, 0.0, gain * sqrt(2.0 / fan_sum));
    }
    return CT_OK;
}

/* Kaiming (He): bound or std from one fan and the nonlinearity's gain. */
static ct_status fill_kaiming(const ct_init *rule, ct_shape shape, ct_dtype dtype, int64_t n,
                              uint64_t seed, uint32_t stream, void *out) {
    const char *name = kind_name(rule->kind);
    ct_status st;
    double fan_in = 0, fan_out = 0;
    if (rule->mode != CT_FAN_IN && rule->mode != CT_FAN_OUT)
        return ct_error(CT_ERR_INVALID_ARG, "init %s: unknown fan mode %d", name,
                        (int)rule->mode);
    double gain = ct_init_gain(rule->nonlinearity, rule->a);
    if (isnan(gain))
        return ct_error(CT_ERR_INVALID_ARG, "init %s: unknown nonlinearity %d", name,
                        (int)rule->nonlinearity);
    if ((st = check_gain(rule, gain)) != CT_OK) return st; /* a = inf, say */
    if ((st = fans(rule, shape, &fan_in, &fan_out)) != CT_OK) return st;
    double fan = rule->mode == CT_FAN_IN ? fan_in : fan_out;
    if (fan == 0) {
        char buf[96];
        return ct_error(CT_ERR_INVALID_ARG, "init %s: %s is 0 for shape %s", name,
                        rule->mode == CT_FAN_IN ? "fan_in" : "fan_out",
                        ct_shape_str(shape, buf, sizeof buf));
    }
    if (rule->kind == CT_INIT_KAIMING_UNIFORM) {
        double b = gain * sqrt(3.0 / fan);
        fill_uniform(out, dtype, n, seed, stream, -b, b);
    } else {
        fill_normal(out, dtype, n, seed, stream, 0.0, gain / sqrt(fan));
    }
    return CT_OK;
}

ct_status ct_init_fill(const ct_init *rule, ct_shape shape, ct_dtype dtype, uint64_t seed,
                       uint32_t stream, void *out) {
    if (!rule) return ct_error(CT_ERR_INVALID_ARG, "ct_init_fill: rule is NULL");
    const char *name = kind_name(rule->kind);
    int64_t n = ct_shape_numel(shape);
    if (n < 0) {
        char buf[96];
        return ct_error(CT_ERR_INVALID_ARG, "init %s: invalid shape %s", name,
                        ct_shape_str(shape, buf, sizeof buf));
    }
    if (dtype != CT_F32 && dtype != CT_F64)
        return ct_error(CT_ERR_DTYPE, "init %s: output dtype must be f32 or f64, got %s", name,
                        ct_dtype_name(dtype));
    if (!out && n > 0) return ct_error(CT_ERR_INVALID_ARG, "init %s: out is NULL", name);

    switch (rule->kind) {
    case CT_INIT_ZEROS: fill_const(out, dtype, n, 0.0); return CT_OK;
    case CT_INIT_ONES: fill_const(out, dtype, n, 1.0); return CT_OK;
    case CT_INIT_CONSTANT: fill_const(out, dtype, n, rule->value); return CT_OK;

    case CT_INIT_UNIFORM:
        /* Written as !(a <= b) so NaN bounds fail too; an infinite span would
         * turn every value into inf or NaN. */
        if (!(rule->low <= rule->high) || !isfinite(rule->high - rule->low))
            return ct_error(CT_ERR_INVALID_ARG,
                            "init uniform: need finite low <= high (got low %g, high %g)",
                            rule->low, rule->high);
        fill_uniform(out, dtype, n, seed, stream, rule->low, rule->high);
        return CT_OK;

    case CT_INIT_NORMAL:
        if (!(rule->std >= 0) || !isfinite(rule->std) || !isfinite(rule->mean))
            return ct_error(CT_ERR_INVALID_ARG,
                            "init normal: need finite mean and std >= 0 (got mean %g, std %g)",
                            rule->mean, rule->std);
        fill_normal(out, dtype, n, seed, stream, rule->mean, rule->std);
        return CT_OK;

    case CT_INIT_XAVIER_UNIFORM:
    case CT_INIT_XAVIER_NORMAL: return fill_xavier(rule, shape, dtype, n, seed, stream, out);
    case CT_INIT_KAIMING_UNIFORM:
    case CT_INIT_KAIMING_NORMAL: return fill_kaiming(rule, shape, dtype, n, seed, stream, out);
    }
    return ct_error(CT_ERR_INVALID_ARG, "ct_init_fill: unknown rule kind %d", (int)rule->kind);
}
