/* The op set, one line per op: X(ENUM, "name", differentiable, internal).
 *
 * Adding an op touches a predictable set of places: this list, its builder
 * and shape rule (src/core/ops_*.c), its backward rule (src/core/grad_*.c),
 * its CPU kernel (src/cpu/k_*.c), its CUDA kernel (src/cuda) and its tests
 * (tests/test_gradcheck.c, the parity suite).
 *
 * "internal" ops are created only by ct_graph_backward; they have kernels
 * like any other op, but no backward rule (no double backward).
 */
/* sources: no kernel, their buffers are bound by the program */
X(INPUT,              "input",              0, 0)
X(PARAM,              "param",              0, 0)
X(CONST,              "const",              0, 0)
X(BUFFER,             "buffer",             0, 0)
/* linear algebra */
X(MATMUL,             "matmul",             1, 0)
/* binary elementwise with broadcasting */
X(ADD,                "add",                1, 0)
X(SUB,                "sub",                1, 0)
X(MUL,                "mul",                1, 0)
X(DIV,                "div",                1, 0)
/* unary elementwise */
X(NEG,                "neg",                1, 0)
X(SCALE,              "scale",              1, 0)
X(EXP,                "exp",                1, 0)
X(LOG,                "log",                1, 0)
X(SQRT,               "sqrt",               1, 0)
X(POW,                "pow",                1, 0)
X(ABS,                "abs",                1, 0)
X(RELU,               "relu",               1, 0)
X(LEAKY_RELU,         "leaky_relu",         1, 0)
X(GELU,               "gelu",               1, 0)
X(TANH,               "tanh",               1, 0)
X(SIGMOID,            "sigmoid",            1, 0)
X(SILU,               "silu",               1, 0)
/* normalised exponentials */
X(SOFTMAX,            "softmax",            1, 0)
X(LOG_SOFTMAX,        "log_softmax",        1, 0)
/* reductions */
X(SUM,                "sum",                1, 0)
X(MEAN,               "mean",               1, 0)
X(MAX,                "max",                1, 0)
/* data movement */
X(RESHAPE,            "reshape",            1, 0)
X(PERMUTE,            "permute",            1, 0)
X(CONCAT,             "concat",             1, 0)
X(SLICE,              "slice",              1, 0)
/* neural-network ops */
X(EMBEDDING,          "embedding",          1, 0)
X(DROPOUT,            "dropout",            1, 0)
X(CROSS_ENTROPY,      "cross_entropy",      1, 0)
X(MSE,                "mse",                1, 0)
X(BCE_WITH_LOGITS,    "bce_with_logits",    1, 0)
X(CAST,               "cast",               1, 0)
/* normalisation (fused: one kernel each way; inputs in core/node.h) */
X(BATCH_NORM,         "batch_norm",         1, 0)
X(LAYER_NORM,         "layer_norm",         1, 0)
/* convolution and pooling, NCHW (geometry in attr.win; inputs in core/node.h) */
X(CONV2D,             "conv2d",             1, 0)
X(MAX_POOL2D,         "max_pool2d",         1, 0)
X(AVG_POOL2D,         "avg_pool2d",         1, 0)
X(DROPOUT2D,          "dropout2d",          1, 0)
/* fused scaled dot-product attention over [B, H, T, D] (inputs in core/node.h) */
X(ATTENTION,          "attention",          1, 0)
/* created by ct_graph_backward */
X(UNARY_GRAD,         "unary_grad",         0, 1)
X(SOFTMAX_GRAD,       "softmax_grad",       0, 1)
X(LOG_SOFTMAX_GRAD,   "log_softmax_grad",   0, 1)
X(SUM_TO,             "sum_to",             0, 1)
X(BROADCAST_TO,       "broadcast_to",       0, 1)
X(MAX_GRAD,           "max_grad",           0, 1)
X(SLICE_GRAD,         "slice_grad",         0, 1)
X(EMBEDDING_GRAD,     "embedding_grad",     0, 1)
X(CROSS_ENTROPY_GRAD, "cross_entropy_grad", 0, 1)
X(COPY,               "copy",               0, 1)
X(BATCH_NORM_GRAD,    "batch_norm_grad",    0, 1)
X(LAYER_NORM_GRAD,    "layer_norm_grad",    0, 1)
X(CONV2D_GRAD_INPUT,  "conv2d_grad_input",  0, 1)
X(CONV2D_GRAD_WEIGHT, "conv2d_grad_weight", 0, 1)
X(CONV2D_GRAD_BIAS,   "conv2d_grad_bias",   0, 1)
X(MAX_POOL2D_GRAD,    "max_pool2d_grad",    0, 1)
X(AVG_POOL2D_GRAD,    "avg_pool2d_grad",    0, 1)
X(ATTENTION_GRAD,     "attention_grad",     0, 1)
