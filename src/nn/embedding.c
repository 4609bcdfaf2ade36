/* The embedding layer, torch.nn.Embedding: a table of rows looked up by
 * index. */
#include <stdio.h>

#include "ctrain/ops.h"
#include "nn/nn_internal.h"

ct_node ct_embedding_layer(ct_graph *g, const char *name, ct_node indices, int64_t num_embeddings,
                           int64_t dim) {
    const char *kind = "embedding";
    if (!ct_nn_begin(g, kind, name, indices, false)) return CT_NO_NODE;
    const ct_nodeinfo *ni = &g->nodes[indices];
    char s[CT_SHAPE_STR];
    if (ni->dtype != CT_I32)
        return ct_graph_fail(g, CT_ERR_DTYPE, "embedding '%s': indices %s are %s; they must be i32", name,
                             SHP(ni->shape, s), ct_dtype_name(ni->dtype));
    if (num_embeddings <= 0 || dim <= 0)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG,
                             "embedding '%s': num_embeddings = %lld and dim = %lld; both must be > 0", name,
                             (long long)num_embeddings, (long long)dim);
    char context[128];
    snprintf(context, sizeof context, "num_embeddings %lld, dim %lld", (long long)num_embeddings, (long long)dim);
    /* There is no float input to take a dtype from: F32 unless the graph's
     * parameters are already F64. */
    ct_dtype pdt = ct_nn_param_dtype(g, CT_F32);
    ct_node w = ct_nn_state(g, kind, name, "weight", false, (ct_shape){2, {num_embeddings, dim}}, pdt,
                            ct_init_normal(0.0, 1.0), context);
    if (w == CT_NO_NODE) return CT_NO_NODE;
    return ct_embedding(g, w, indices);
}
