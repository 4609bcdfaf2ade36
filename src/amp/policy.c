/* The precision policy: names, and the per-graph settings that the autocast
 * rule (core/autocast.c) reads when a matrix product is built. */
#include <string.h>

#include "core/autodiff.h"
#include "core/error.h"
#include "ctrain/amp.h"

static const char *const precision_names[CT_PRECISION_COUNT] = {"fp32", "fp16", "bf16"};

const char *ct_precision_name(ct_precision p) {
    return p >= 0 && p < CT_PRECISION_COUNT ? precision_names[p] : "?";
}

ct_status ct_precision_parse(const char *text, ct_precision *out) {
    for (int p = 0; text && p < CT_PRECISION_COUNT; p++)
        if (strcmp(text, precision_names[p]) == 0) {
            if (out) *out = (ct_precision)p;
            return CT_OK;
        }
    return ct_error(CT_ERR_INVALID_ARG, "unknown precision '%s' (fp32, fp16, bf16)", text ? text : "(null)");
}

ct_dtype ct_precision_dtype(ct_precision p) {
    return p == CT_PRECISION_FP16 ? CT_F16 : p == CT_PRECISION_BF16 ? CT_BF16 : CT_F32;
}

ct_status ct_graph_set_precision(ct_graph *g, ct_precision p) {
    if (!g) return ct_error(CT_ERR_INVALID_ARG, "ct_graph_set_precision: graph is NULL");
    if (p < 0 || p >= CT_PRECISION_COUNT)
        return ct_error(CT_ERR_INVALID_ARG, "ct_graph_set_precision: unknown precision %d", (int)p);
    g->precision = (int)p;
    return CT_OK;
}

ct_precision ct_graph_precision(const ct_graph *g) { return g ? (ct_precision)g->precision : CT_PRECISION_FP32; }

ct_status ct_graph_set_tf32(ct_graph *g, bool allow) {
    if (!g) return ct_error(CT_ERR_INVALID_ARG, "ct_graph_set_tf32: graph is NULL");
    g->tf32 = allow;
    return CT_OK;
}

bool ct_graph_tf32(const ct_graph *g) { return g && g->tf32; }

ct_status ct_graph_backward_scaled(ct_graph *g, ct_node loss) { return ct_graph_backward_ex(g, loss, true); }

static const char *const mode_names[] = {"auto", "none", "static", "dynamic"};

const char *ct_loss_scale_mode_name(ct_loss_scale_mode m) {
    return m >= CT_LOSS_SCALE_AUTO && m <= CT_LOSS_SCALE_DYNAMIC ? mode_names[m] : "?";
}
