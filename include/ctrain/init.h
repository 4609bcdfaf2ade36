/* Parameter initialisation rules.
 *
 * A parameter is created with a rule; the values are drawn when a program is
 * compiled, from the Philox stream of the graph's seed and the parameter's
 * index, so the same seed gives bit-identical weights on every backend and
 * every rank. Fan-in, fan-out and gains follow PyTorch's torch.nn.init:
 * for a weight of shape [out, in, k...] fan_in = in * prod(k) and
 * fan_out = out * prod(k). Fan-based rules (Xavier, Kaiming) need at least
 * 2 dimensions, as in PyTorch; a bias takes its bound from its weight's
 * fan_in, which the layer builders compute.
 */
#ifndef CTRAIN_INIT_H
#define CTRAIN_INIT_H

#include "ctrain/dtype.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_init_kind {
    CT_INIT_ZEROS = 0,
    CT_INIT_ONES,
    CT_INIT_CONSTANT,        /* value */
    CT_INIT_UNIFORM,         /* U(low, high) */
    CT_INIT_NORMAL,          /* N(mean, std^2) */
    CT_INIT_XAVIER_UNIFORM,  /* U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)) */
    CT_INIT_XAVIER_NORMAL,   /* std = gain * sqrt(2 / (fan_in + fan_out)) */
    CT_INIT_KAIMING_UNIFORM, /* U(-b, b), b = gain * sqrt(3 / fan) */
    CT_INIT_KAIMING_NORMAL   /* std = gain / sqrt(fan) */
} ct_init_kind;

typedef enum ct_fan_mode { CT_FAN_IN = 0, CT_FAN_OUT } ct_fan_mode;

/* PyTorch's calculate_gain() nonlinearities. */
typedef enum ct_nonlinearity {
    CT_NONLIN_LEAKY_RELU = 0, /* PyTorch's default for kaiming_*: gain sqrt(2/(1+a^2)) */
    CT_NONLIN_RELU,           /* sqrt(2) */
    CT_NONLIN_LINEAR,         /* 1 */
    CT_NONLIN_TANH,           /* 5/3 */
    CT_NONLIN_SIGMOID,        /* 1 */
    CT_NONLIN_SELU            /* 3/4 */
} ct_nonlinearity;

typedef struct ct_init {
    ct_init_kind kind;
    double value;            /* CONSTANT */
    double low, high;        /* UNIFORM */
    double mean, std;        /* NORMAL */
    double gain;             /* XAVIER_*: 0 means 1 */
    double a;                /* KAIMING_*: negative slope for leaky_relu */
    ct_fan_mode mode;        /* KAIMING_* */
    ct_nonlinearity nonlinearity; /* KAIMING_* */
} ct_init;

/* Shorthands for the common rules: each returns the ct_init of that kind
 * with the given fields set and the others zero. They check nothing; a
 * rule's values are checked when it is used (ct_param, ct_init_fill). */
ct_init ct_init_zeros(void);
ct_init ct_init_ones(void);
ct_init ct_init_constant(double value);
ct_init ct_init_uniform(double low, double high);
ct_init ct_init_normal(double mean, double std);
ct_init ct_init_xavier_uniform(double gain);
ct_init ct_init_xavier_normal(double gain);
ct_init ct_init_kaiming_uniform(double a, ct_fan_mode mode, ct_nonlinearity nl);
ct_init ct_init_kaiming_normal(double a, ct_fan_mode mode, ct_nonlinearity nl);

/* PyTorch's calculate_gain(nonlinearity, a). */
double ct_init_gain(ct_nonlinearity nl, double a);

/* Fills out[0..numel) (dtype F32 or F64) with the rule's values for a tensor
 * of the given shape, drawn from Philox stream (seed, stream). Errors: an
 * invalid rule (std < 0, low > high, fan of 0) or dtype. */
ct_status ct_init_fill(const ct_init *rule, ct_shape shape, ct_dtype dtype,
                       uint64_t seed, uint32_t stream, void *out);

#ifdef __cplusplus
}
#endif
#endif
