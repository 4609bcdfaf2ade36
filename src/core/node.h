/* Internal: graph nodes, op attributes and the op enum.
 *
 * The graph is append-only and a node's inputs always precede it, so creation
 * order is a topological order; compilation relies on that.
 */
#ifndef CT_CORE_NODE_H
#define CT_CORE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrain/graph.h"

typedef enum ct_op {
#define X(e, name, cls, arity) CT_OP_##e,
#include "core/op_list.h"
#undef X
    CT_OP_COUNT
} ct_op;

/* The CLASS column of core/op_list.h (what each class means is said there). */
typedef enum ct_op_class {
    CT_OPC_SOURCE, CT_OPC_UNARY, CT_OPC_BINARY, CT_OPC_LINALG, CT_OPC_REDUCE, CT_OPC_SHAPE, CT_OPC_NN,
    CT_OPC_INTERNAL, CT_OPC_COUNT
} ct_op_class;

/* The ARITY column's VAR (ct_op_arity, graph.h): the number of inputs
 * depends on the attributes or on the call. */
#define CT_ARITY_VAR (-1)

/* The op's class; CT_OPC_COUNT outside 0 .. CT_OP_COUNT - 1. */
ct_op_class ct_op_class_of(int op);
/* CT_ERR_INTERNAL with "<who> <op>: expected N inputs, got n_in" when op
 * has a fixed arity other than n_in (VAR ops are the caller's to check). Every
 * node is checked when it is added (ct_graph_add); kernels, which tests also
 * call directly, check their arguments with it too. */
ct_status ct_op_check_inputs(const char *who, int op, int n_in);

/* The window of a 2-d convolution or pooling over [N, C, H, W]: index 0 is
 * the height axis, 1 the width axis. Pools have no dilation (always 1) nor
 * groups (1); a convolution's kernel size is its weight's, repeated here so
 * the backward ops need not look at the weight. */
typedef struct ct_window2d {
    int kernel[2], stride[2], pad[2], dilation[2];
    int groups;
} ct_window2d;

/* Every op's parameters in one struct; each op reads the fields it names. */
typedef struct ct_attrs {
    double alpha;     /* SCALE: factor; POW: exponent; LEAKY_RELU: slope;
                         SOFTPLUS: beta; DROPOUT: p;
                         CROSS_ENTROPY(_GRAD): label smoothing;
                         UNARY_GRAD: the forward op's alpha */
    double threshold; /* SOFTPLUS (and its UNARY_GRAD): beta * x above it passes x through */
    int axis;         /* SOFTMAX*, SUM/MEAN/MAX (or CT_AXIS_ALL), MAX_GRAD,
                         CONCAT, SLICE, SLICE_GRAD (always non-negative) */
    bool keepdim;     /* SUM/MEAN/MAX, MAX_GRAD */
    bool trans_a;     /* MATMUL */
    bool trans_b;     /* MATMUL */
    int approx;       /* GELU, and UNARY_GRAD of GELU: ct_gelu_approx */
    int perm[CT_MAX_DIMS]; /* PERMUTE */
    int64_t start;    /* SLICE, SLICE_GRAD: first index along axis (resolved, >= 0) */
    int64_t end;      /* SLICE: one past the last index (resolved) */
    ct_dtype dtype;   /* CAST: target dtype */
    int fwd_op;       /* UNARY_GRAD: the forward op (a ct_op) */
    uint32_t stream;  /* DROPOUT: Philox stream (shared by its backward) */
    double eps;       /* BATCH_NORM(_GRAD), LAYER_NORM(_GRAD): added to the variance
                         (BATCH_NORM's momentum is alpha) */
    bool has_weight;  /* BATCH_NORM(_GRAD), LAYER_NORM(_GRAD): a weight input is present */
    bool has_bias;    /* BATCH_NORM, LAYER_NORM: a bias input is present */
    int which;        /* BATCH_NORM_GRAD, LAYER_NORM_GRAD: the gradient produced (ct_norm_grad);
                         ATTENTION_GRAD: ct_attn_grad (core/attention.h) */
    bool tf32;        /* MATMUL: F32 operands may be rounded to TF32 (GPU tensor cores; no-op on the CPU) */
    ct_window2d win;  /* CONV2D*, MAX_POOL2D*, AVG_POOL2D* (CONV2D: has_bias too);
                         DROPOUT2D uses alpha (p) and stream as DROPOUT */
    bool causal;      /* ATTENTION(_GRAD): key j > query i is masked (alpha is the scale) */
    int cell;         /* RNN(_GRAD): a ct_rnn_cell (core/rnn.h); `which` picks RNN_GRAD's output */
    bool reverse;     /* RNN(_GRAD): the steps run from T-1 down to 0 */
    ct_dtype half;    /* RNN(_GRAD): F16 or BF16 for an F32 recurrence built under that autocast policy
                         (its dW_hh is then a product of half operands with an F32 result), else F32 */
    int64_t quant_min, quant_max; /* FAKE_QUANT(_GRAD): the integer range (axis: the channel
                                     axis, -1 for one scale for the whole tensor) */
    bool fused_relu;  /* Set by ct_compile's fusion only (core/program_fuse.c), never on a graph
                         node. CONV2D, ADD: the output goes through relu (core/ew_math.h's).
                         MAX_POOL2D_GRAD: the output is the gradient through a relu whose output
                         is x: dx * (x > 0 ? 1 : 0), as relu's UNARY_GRAD computes it. */
    bool fused_cast;  /* Set by ct_compile's fusion only: the F32 op writes its output in the
                         F16/BF16 of the CAST that was its only reader, rounded as CAST rounds
                         (ct_backend.casts_output says for which ops a backend does this). */
} ct_attrs;

/* Which gradient a BATCH_NORM_GRAD / LAYER_NORM_GRAD node produces: nodes
 * have one output each, so a normalisation's backward is up to three nodes
 * of one op. */
typedef enum ct_norm_grad { CT_NORM_GRAD_X = 0, CT_NORM_GRAD_WEIGHT, CT_NORM_GRAD_BIAS } ct_norm_grad;

/* Inputs of each op, by position:
 *   binary ops: a, b                    MATMUL: a, b
 *   unary ops, SUM/MEAN/MAX, data movement, DROPOUT, CAST, COPY: x
 *   CONCAT: x0..xn-1                     EMBEDDING: weight, indices
 *   CROSS_ENTROPY: logits, labels        MSE, BCE_WITH_LOGITS: a, b
 *   KL_DIV: input (log-probabilities), target (probabilities)
 *   UNARY_GRAD: x, dy   (dx = dy * f'(x); for SQRT/EXP/TANH/SIGMOID x is the input;
 *     for RELU x is the forward's output, at which relu' is the same)
 *   SOFTMAX_GRAD, LOG_SOFTMAX_GRAD: y (the forward output), dy
 *   SUM_TO: x (reduces broadcast axes down to the output shape)
 *   BROADCAST_TO: x (expands to the output shape, NumPy rules)
 *   MAX_GRAD: x, dy (dy has the reduced shape, with or without keepdim)
 *   SLICE_GRAD: dy (the output is zero except dy at [start, start+len) along axis)
 *   EMBEDDING_GRAD: indices, dy (output [V, D], deterministic order)
 *   CROSS_ENTROPY_GRAD: logits, labels, dloss (scalar)
 *   BATCH_NORM: x, running_mean, running_var (BUFFER nodes, updated in place
 *     in training), then weight if has_weight, then bias if has_bias
 *   BATCH_NORM_GRAD: x, running_mean, running_var, dy, then weight when
 *     which is CT_NORM_GRAD_X and has_weight (statistics recomputed from x)
 *   LAYER_NORM: x, then weight if has_weight, then bias if has_bias
 *   LAYER_NORM_GRAD: x, dy, then weight when which is CT_NORM_GRAD_X and has_weight
 *   CONV2D: x [N, C, H, W], weight [O, C/groups, KH, KW], then bias [O] if has_bias
 *   CONV2D_GRAD_INPUT: dy, weight (output: x's shape)
 *   CONV2D_GRAD_WEIGHT: x, dy (output: the weight's shape)
 *   CONV2D_GRAD_BIAS: dy (output [O])
 *   FAKE_QUANT: x, scale, zero_point ([1], or [C] along attr.axis)
 *   FAKE_QUANT_GRAD: x, scale, zero_point, dy (dx = dy where x is inside the range)
 *   MAX_POOL2D, AVG_POOL2D, DROPOUT2D: x
 *   MAX_POOL2D_GRAD: x, dy (the argmax is recomputed from x)
 *   AVG_POOL2D_GRAD: dy (output: x's shape)
 *   ATTENTION: q, k, v (one shape [B, H, T, D])
 *   ATTENTION_GRAD: q, k, v, dy (output: the shape of q; softmax recomputed)
 *   RNN: xp [B, T, G*H], w_hh [G*H, H], b_hh [G*H], h0 [B, H], then c0 [B, H]
 *     for an LSTM (output: the record [B, T, W], core/rnn.h)
 *   RNN_GRAD: R, dR, w_hh, h0, then c0 for an LSTM
 */
typedef struct ct_nodeinfo {
    ct_op op;
    ct_dtype dtype;
    ct_shape shape;
    int n_in;
    ct_node *in;
    ct_attrs attr;
    char *name;          /* owned; NULL if unnamed */
    bool requires_grad;  /* INPUT marked by the user; PARAM always */
    ct_init init;        /* PARAM, BUFFER */
    int param_index;     /* PARAM: position among parameters; BUFFER: among buffers; else -1 */
    void *const_data;    /* CONST: owned host copy */
} ct_nodeinfo;

struct ct_graph {
    ct_nodeinfo *nodes;
    int n, cap;
    uint64_t seed;
    ct_status status;
    char error[512];
    ct_node *params;
    int n_params, cap_params;
    ct_node *buffers;    /* persistent non-trainable state (running statistics) */
    int n_buffers, cap_buffers;
    ct_node *grad_of;    /* [n at backward time]: gradient node of each node */
    int n_grad_of;
    bool backward_done;
    uint32_t next_stream; /* Philox streams for dropout nodes */
    int precision;        /* ct_precision (amp.h) for the ops built from now on */
    bool tf32;            /* allow TF32 in F32 matrix products built from now on */
};

/* Internal helpers shared by the op builders and autodiff. */
const ct_nodeinfo *ct_graph_node(const ct_graph *g, ct_node n);
/* Appends a node; copies `in`. Infers nothing: callers set shape and dtype.
 * Returns CT_NO_NODE on OOM, or (an internal error) when n_in is not the
 * op's arity. */
ct_node ct_graph_add(ct_graph *g, ct_op op, ct_dtype dtype, ct_shape shape,
                     const ct_node *in, int n_in, const ct_attrs *attr);
/* Records a build error (formatted) in the graph and ct_last_error. */
ct_node ct_graph_fail(ct_graph *g, ct_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* True when every input is a valid node of g (an error is recorded for an
 * out-of-range handle; CT_NO_NODE passes through silently). */
bool ct_graph_inputs_ok(ct_graph *g, const char *op, const ct_node *in, int n);

#endif
