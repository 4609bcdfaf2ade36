/* Float64 gradient checks of fake quantization (harness: gradcheck.h).
 *
 * The op is a step function: its true derivative is 0 almost everywhere,
 * while its gradient rule is the straight-through estimator (dx = dy inside
 * the range, 0 outside; tests/test_cpu_fakequant.c checks that rule
 * directly against torch). Finite differences can check the rule only where
 * the two agree, which is where the function is smooth:
 *   - on a grid so fine (scale 2^-40, range +-2^50) that rounding moves a
 *     value by less than 1e-12: the op is the identity there, and so is
 *     the estimator (per tensor and per channel);
 *   - where every value is clamped (above quant_max, or below quant_min):
 *     the op is constant, and the estimator gives 0. */
#include <criterion/criterion.h>
#include <math.h>

#include <ctrain/ctrain.h>

#include "gradcheck.h"

TestSuite(gradcheck_fakequant, .timeout = 300);

typedef struct fq_ctx {
    int axis;        /* -1: per tensor */
    double scale;
    int64_t qmin, qmax;
    bool negate;     /* quantize -x (the lower clamp) */
} fq_ctx;

static ct_node b_fq(ct_graph *g, const ct_node *x, const void *ctx) {
    const fq_ctx *c = ctx;
    int64_t n = c->axis < 0 ? 1 : ct_node_shape(g, x[0]).dim[c->axis];
    ct_node s = ct_fill(g, CT_F64, (ct_shape){1, {n}}, c->scale);
    ct_node z = ct_fill(g, CT_F64, (ct_shape){1, {n}}, c->axis < 0 ? 3 : 0);
    ct_node in = c->negate ? ct_neg(g, x[0]) : x[0];
    return ct_fake_quantize(g, in, s, z, c->axis, c->qmin, c->qmax);
}

static void check(const char *name, const fq_ctx *ctx, double lo, double hi) {
    gc_case c = {.name = name, .op = "fake_quant", .n_in = 1, .build = b_fq, .ctx = ctx};
    c.in[0] = (gc_in){.shape = {2, {3, 5}}, .lo = lo, .hi = hi};
    gc_check(&c);
}

#define FINE (1.0 / 1099511627776.0) /* 2^-40: x * (1 / scale) is exact */
#define WIDE ((int64_t)1 << 50)

OP_TEST(gradcheck_fakequant, fine_grid_per_tensor, CT_OP_FAKE_QUANT) {
    fq_ctx c = {.axis = -1, .scale = FINE, .qmin = -WIDE, .qmax = WIDE};
    check("fake_quant per tensor, fine grid", &c, -1, 1);
}

OP_TEST(gradcheck_fakequant, fine_grid_per_channel, CT_OP_FAKE_QUANT) {
    fq_ctx c = {.axis = 1, .scale = FINE, .qmin = -WIDE, .qmax = WIDE};
    check("fake_quant per channel (axis 1), fine grid", &c, -1, 1);
}

OP_TEST(gradcheck_fakequant, clamped_above_and_below, CT_OP_FAKE_QUANT) {
    fq_ctx hi = {.axis = 0, .scale = 0.1, .qmin = -3, .qmax = 3};
    check("fake_quant per channel, all above quant_max", &hi, 0.5, 1.0);
    fq_ctx lo = {.axis = -1, .scale = 0.1, .qmin = 0, .qmax = 255, .negate = true};
    check("fake_quant per tensor, all below quant_min", &lo, 0.5, 1.0);
}
