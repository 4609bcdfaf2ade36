/* The op set, one line per op: X(ENUM, "name", CLASS, ARITY).
 *
 * CLASS (ct_op_class in core/node.h) is what the rest of the engine reads
 * instead of keeping lists of its own:
 *   SOURCE    bound by the program: no kernel, no gradient rule
 *   UNARY     elementwise y = f(x): both backends run it through their one
 *             unary kernel, f and f' from core/ew_math.h; backward UNARY_GRAD
 *   BINARY    elementwise with NumPy broadcasting, math in core/ew_math.h
 *   LINALG    matrix products
 *   REDUCE    over one axis (or all): reductions, softmax and log-softmax
 *   SHAPE     data movement and dtype conversion
 *   NN        neural-network ops: losses, dropout, embedding, normalisation,
 *             convolution and pooling
 *   INTERNAL  created only by ct_graph_backward (no builder, and no gradient
 *             rule: no double backward)
 * ARITY is the number of inputs, or VAR where it depends on the attributes
 * (optional inputs) or the call (concat); core/node.h lists each op's inputs.
 * Whether an op is differentiable is not a column: it is whether the
 * gradient table (src/core/grad_rules.c) has a rule for it.
 *
 * Adding an op: docs/architecture.md, "Adding an op".
 */
X(INPUT,              "input",              SOURCE,   0)
X(PARAM,              "param",              SOURCE,   0)
X(CONST,              "const",              SOURCE,   0)
X(BUFFER,             "buffer",             SOURCE,   0)
X(MATMUL,             "matmul",             LINALG,   2)
X(ADD,                "add",                BINARY,   2)
X(SUB,                "sub",                BINARY,   2)
X(MUL,                "mul",                BINARY,   2)
X(DIV,                "div",                BINARY,   2)
X(NEG,                "neg",                UNARY,    1)
X(SCALE,              "scale",              UNARY,    1)
X(EXP,                "exp",                UNARY,    1)
X(LOG,                "log",                UNARY,    1)
X(SQRT,               "sqrt",               UNARY,    1)
X(POW,                "pow",                UNARY,    1)
X(ABS,                "abs",                UNARY,    1)
X(RELU,               "relu",               UNARY,    1)
X(LEAKY_RELU,         "leaky_relu",         UNARY,    1)
X(GELU,               "gelu",               UNARY,    1)
X(TANH,               "tanh",               UNARY,    1)
X(SIGMOID,            "sigmoid",            UNARY,    1)
X(SILU,               "silu",               UNARY,    1)
X(SOFTPLUS,           "softplus",           UNARY,    1)
X(SOFTMAX,            "softmax",            REDUCE,   1)
X(LOG_SOFTMAX,        "log_softmax",        REDUCE,   1)
X(SUM,                "sum",                REDUCE,   1)
X(MEAN,               "mean",               REDUCE,   1)
X(MAX,                "max",                REDUCE,   1)
X(RESHAPE,            "reshape",            SHAPE,    1)
X(PERMUTE,            "permute",            SHAPE,    1)
X(CONCAT,             "concat",             SHAPE,    VAR)
X(SLICE,              "slice",              SHAPE,    1)
X(EMBEDDING,          "embedding",          NN,       2)
X(DROPOUT,            "dropout",            NN,       1)
X(CROSS_ENTROPY,      "cross_entropy",      NN,       2)
X(MSE,                "mse",                NN,       2)
X(BCE_WITH_LOGITS,    "bce_with_logits",    NN,       2)
X(KL_DIV,             "kl_div",             NN,       2)
X(CAST,               "cast",               SHAPE,    1)
X(BATCH_NORM,         "batch_norm",         NN,       VAR)
X(LAYER_NORM,         "layer_norm",         NN,       VAR)
X(CONV2D,             "conv2d",             NN,       VAR)
X(MAX_POOL2D,         "max_pool2d",         NN,       1)
X(AVG_POOL2D,         "avg_pool2d",         NN,       1)
X(DROPOUT2D,          "dropout2d",          NN,       1)
X(ATTENTION,          "attention",          NN,       3)
X(RNN,                "rnn",                NN,       VAR)
X(FAKE_QUANT,         "fake_quant",         NN,       3)
X(UNARY_GRAD,         "unary_grad",         INTERNAL, 2)
X(SOFTMAX_GRAD,       "softmax_grad",       INTERNAL, 2)
X(LOG_SOFTMAX_GRAD,   "log_softmax_grad",   INTERNAL, 2)
X(SUM_TO,             "sum_to",             INTERNAL, 1)
X(BROADCAST_TO,       "broadcast_to",       INTERNAL, 1)
X(MAX_GRAD,           "max_grad",           INTERNAL, 2)
X(SLICE_GRAD,         "slice_grad",         INTERNAL, 1)
X(EMBEDDING_GRAD,     "embedding_grad",     INTERNAL, 2)
X(CROSS_ENTROPY_GRAD, "cross_entropy_grad", INTERNAL, 3)
X(COPY,               "copy",               INTERNAL, 1)
X(BATCH_NORM_GRAD,    "batch_norm_grad",    INTERNAL, VAR)
X(LAYER_NORM_GRAD,    "layer_norm_grad",    INTERNAL, VAR)
X(CONV2D_GRAD_INPUT,  "conv2d_grad_input",  INTERNAL, 2)
X(CONV2D_GRAD_WEIGHT, "conv2d_grad_weight", INTERNAL, 2)
X(CONV2D_GRAD_BIAS,   "conv2d_grad_bias",   INTERNAL, 1)
X(MAX_POOL2D_GRAD,    "max_pool2d_grad",    INTERNAL, 2)
X(AVG_POOL2D_GRAD,    "avg_pool2d_grad",    INTERNAL, 1)
X(ATTENTION_GRAD,     "attention_grad",     INTERNAL, 4)
X(RNN_GRAD,           "rnn_grad",           INTERNAL, VAR)
X(FAKE_QUANT_GRAD,    "fake_quant_grad",    INTERNAL, 4)
