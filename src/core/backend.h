/* Internal: the backend interface.
 *
 * A backend provides memory (on its device) and one kernel per op kind,
 * plus optional groups: timing events, the flat-buffer updates of
 * optimizers and clipping, mixed precision, and graph capture (struct
 * ct_backend below says which member is required and what callers do
 * without an optional one). Kernels see dense row-major tensors (ct_tview);
 * the program passes the node's attributes, a scratch area whose size the
 * backend asked for at compile time, and the per-run scalars (seed, step,
 * training). Nothing above this interface knows which device it talks to.
 */
#ifndef CT_CORE_BACKEND_H
#define CT_CORE_BACKEND_H

#include "core/node.h"
#include "ctrain/device.h"

typedef struct ct_tview {
    void *data;
    ct_dtype dtype;
    ct_shape shape;
    int64_t numel;
} ct_tview;

/* What a kernel gets: the same on every backend. What only one device
 * needs (a stream, a step counter in device memory) the backend keeps
 * itself (see set_step_source below). */
typedef struct ct_kargs {
    ct_op op;
    const ct_attrs *attr; /* the node's attributes (MATMUL: attr->tf32 allows TF32 products) */
    int n_in;
    const ct_tview *in;   /* n_in views */
    ct_tview out;
    void *scratch;        /* scratch_bytes(k) bytes, or NULL if it asked for none */
    uint64_t seed;        /* the graph's seed */
    uint32_t step;        /* the program's step counter (dropout masks; see set_step_source) */
    bool training;
} ct_kargs;

typedef ct_status (*ct_kernel_fn)(const ct_kargs *k);

/* The optimizer's fused update over the flat buffers (one call per step).
 * All pointers are device buffers of n elements of dtype (F32 or F64);
 * state buffers a caller does not need are NULL. `flags` has one byte per
 * element: CT_PFLAG_FROZEN (no update, state untouched) and CT_PFLAG_DECAY
 * (weight decay and L1 apply). The meaning of every field is the one of
 * PyTorch's documented algorithm for that optimizer. */
#define CT_PFLAG_FROZEN 1u
#define CT_PFLAG_DECAY 2u

/* The loss scaler's state (include/ctrain/amp.h), in device memory. The
 * backward seed reads `scale` directly (the program binds its loss-scale
 * input here); amp_unscale writes found_inf, optim_update and amp_update
 * read it, so skipping a step needs no copy to the host. */
typedef struct ct_amp_state {
    float scale;             /* the loss scale (first: the seed input points here) */
    int32_t found_inf;       /* 1 when the last unscale met an inf or NaN */
    int32_t growth_tracker;  /* consecutive finite steps since the scale changed */
    int32_t pad_;
    int64_t skipped;         /* steps skipped so far */
} ct_amp_state;

typedef struct ct_optim_args {
    int kind;            /* a ct_optim_kind (include/ctrain/optim.h) */
    ct_dtype dtype;
    size_t n;
    void *params;
    const void *grads;
    void *state0, *state1, *state2; /* per-optimizer moment buffers */
    const uint8_t *flags;
    int64_t t;           /* 1-based step count, after increment */
    double lr, momentum, dampening, beta1, beta2, eps, alpha, weight_decay, l1, lr_decay;
    bool nesterov, amsgrad, centered, decoupled, maximize;
    /* NULL, or the loss scaler's state: when amp->found_inf is set nothing
     * is written, and the algorithms use the step t - amp->skipped. */
    const ct_amp_state *amp;
    /* NULL, or the step's t and lr in device memory (ct_step_dev below),
     * which the update then reads instead of the host's t and lr: what a
     * replayed CUDA Graph needs. Backends that never replay ignore it. */
    const struct ct_step_dev *dev;
} ct_optim_args;

/* The per-step scalars of a fused training step (src/train/step_graph.c)
 * in device memory. The host writes step, t and lr before each step (one
 * small asynchronous upload of the first CT_STEP_DEV_HOST_BYTES bytes);
 * the device writes the rest, which reaches the host only when asked. */
typedef struct ct_step_dev {
    uint32_t step;       /* the program's dropout step counter */
    int32_t pad_;
    int64_t t;           /* the optimizer's step, 1-based, this one included */
    double lr;
    double norm;         /* clip_norm: the total norm (NaN if an element is not finite) */
    double coef;         /* clip_norm: the factor applied (1: none) */
    double loss_last;    /* loss_acc: the last step's loss times its weight */
    double loss_sum;     /* loss_acc: the sum of those since the host last cleared it */
} ct_step_dev;
#define CT_STEP_DEV_HOST_BYTES 24 /* step, pad_, t, lr */

/* A backend's table, member groups in this order: identity; memory;
 * events (timing); kernels and scratch; flat-buffer and optimizer updates;
 * mixed precision; graph capture. Each member says whether it is required
 * or optional; an optional member is NULL where the backend lacks it, and
 * every caller checks before the call and does what the member's comment
 * says. Members marked "as a group" are all set or all NULL. The rules are
 * checked once per backend, when its table is first asked for
 * (ct_backend_valid), so a broken table is an error, never a crash. */
typedef struct ct_backend {
    /* ---------------------------------------------------------- identity */
    const char *name;     /* required: "cpu", "cuda"; named in error messages */
    ct_device_kind kind;  /* required */

    /* ---------------------------------------------------------- memory
     * Buffers in the device's memory, and the backend's queue: every call
     * below is ordered after the work queued before it. */
    /* required: NULL on failure (with the error set); a 0-byte request still
     * gets a pointer. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);  /* required; NULL is ignored */
    ct_status (*zero)(void *p, size_t bytes);  /* required */
    /* required: host -> device; the host buffer may be reused on return. */
    ct_status (*upload)(void *dst, const void *src, size_t bytes);
    /* required: device -> host; waits for the copy, so it reports errors
     * from earlier queued work as sync does. */
    ct_status (*download)(void *dst, const void *src, size_t bytes);
    /* optional: device -> same device. NULL: ct_device_copy reports
     * CT_ERR_UNSUPPORTED (nothing else copies on the device). */
    ct_status (*copy)(void *dst, const void *src, size_t bytes);
    ct_status (*sync)(void);  /* required: wait for queued work (a backend that queues nothing returns CT_OK) */

    /* ---------------------------------------------------------- events (timing)
     * optional, as a group (event_method included): timing events on the
     * backend's queue, behind ct_device_timer. NULL: timers use the host's
     * monotonic clock after sync. event_elapsed waits for `stop` (reporting
     * errors as sync does), then gives the seconds from `start` to it;
     * event_method names the method ("cuda events"). */
    ct_status (*event_new)(void **ev);
    ct_status (*event_record)(void *ev);
    ct_status (*event_elapsed)(void *start, void *stop, double *seconds);
    void (*event_free)(void *ev);
    const char *event_method;

    /* ---------------------------------------------------------- kernels and scratch */
    /* optional: bytes of scratch a kernel needs for these views; data
     * pointers in k are NULL when this is asked (at compile time). NULL: no
     * kernel needs scratch, and ct_kargs.scratch is NULL. */
    size_t (*scratch_bytes)(const ct_kargs *k);
    /* each optional: NULL means the op is not implemented here;
     * ct_device_implements says false and ct_compile refuses a graph that
     * uses it, naming the op. */
    ct_kernel_fn kernels[CT_OP_COUNT];
    /* optional: true when the CONV2D, ADD and MAX_POOL2D_GRAD kernels
     * honour ct_attrs.fused_relu (core/node.h). false: ct_compile fuses
     * nothing (core/program_fuse.c). */
    bool fuses_relu;
    /* optional: whether op's kernel, given F32 inputs and an F16 or BF16
     * output, writes exactly what CAST would make of its F32 output: then
     * ct_compile runs a cast that is the only reader of such an op's value
     * as that op writing the half output (ct_attrs.fused_cast). NULL: no
     * cast is fused. */
    bool (*casts_output)(ct_op op);

    /* ---------------------------------------------------------- flat-buffer and optimizer updates
     * Over device buffers of n elements (the flat parameters, gradients
     * and optimizer state). optim_update, sumsq, scale_clamp and axpby are
     * each optional; NULL: what needs it fails with CT_ERR_UNSUPPORTED
     * naming the backend - ct_optimizer_new (optim_update), ct_clip_grad_norm
     * and the step graph's clipping on a backend without clip_norm (sumsq,
     * scale_clamp), ct_clip_grad_value, ct_scale_grads and DDP's rank
     * weights (scale_clamp), ct_grad_accum_new (axpby). */
    ct_status (*optim_update)(const ct_optim_args *a);
    /* *out = sum of x[i]^2 in double, and whether every x[i] is finite. */
    ct_status (*sumsq)(const void *x, ct_dtype dtype, size_t n, double *out, bool *finite);
    /* x[i] = clamp(x[i] * scale, -clamp, clamp); clamp <= 0 means none. */
    ct_status (*scale_clamp)(void *x, ct_dtype dtype, size_t n, double scale, double clamp);
    /* y[i] = a * x[i] + b * y[i], computed in double. When b is 0, y is not
     * read (as BLAS's beta = 0), so y may hold garbage or NaN: that is how a
     * gradient accumulator starts without a separate zeroing pass. */
    ct_status (*axpby)(double a, const void *x, double b, void *y, ct_dtype dtype, size_t n);
    /* optional: x[i] = +0 wherever mask[i] == 0 (F32 or F64 x, one byte of
     * mask per element), the rest untouched: the mask pass of pruning
     * (src/train/prune.c). NULL: a trainer asked to prune fails with
     * CT_ERR_UNSUPPORTED naming the backend. */
    ct_status (*mask_apply)(void *x, const uint8_t *mask, ct_dtype dtype, size_t n);
    /* The fused step's helpers (src/train/step_graph.c), each optional,
     * required with graph capture (host work cannot be captured). NULL: the
     * step graph does the same on the host, through sumsq / scale_clamp
     * and small downloads and uploads of *sd. clip_norm: PyTorch's
     * clip_grad_norm_ with nothing reaching the host: sd->norm = the norm
     * of g (NaN when an element is not finite), sd->coef = min(1, max_norm
     * / (norm + 1e-6)), 1 when the norm is not finite (g is then left as it
     * is), and g *= sd->coef, the factor read from device memory.
     * loss_acc: sd->loss_last = weight * *loss (a scalar of dtype),
     * sd->loss_sum += it. */
    ct_status (*clip_norm)(void *g, ct_dtype dtype, size_t n, double max_norm, ct_step_dev *sd);
    ct_status (*loss_acc)(const void *loss, ct_dtype dtype, double weight, ct_step_dev *sd);

    /* ---------------------------------------------------------- mixed precision
     * optional, as a group. NULL: ct_scaler_new (and so a trainer asked
     * for loss scaling) fails with CT_ERR_UNSUPPORTED. */
    /* One fused pass: g[i] /= st->scale (in double) over the flat gradients
     * (F32 or F64), and st->found_inf = 1 if any g[i] was inf or NaN, else 0. */
    ct_status (*amp_unscale)(void *g, ct_dtype dtype, size_t n, ct_amp_state *st);
    /* GradScaler's update from st->found_inf: on inf, scale *= backoff,
     * growth_tracker = 0, skipped += 1; otherwise growth_tracker += 1 and at
     * growth_interval scale *= growth (kept when the product is not a finite
     * float) and growth_tracker = 0. */
    ct_status (*amp_update)(ct_amp_state *st, double growth, double backoff, int32_t growth_interval);

    /* ---------------------------------------------------------- graph capture
     * optional, as a group (CUDA Graphs). NULL: the backend cannot capture;
     * ct_step_graph then issues each step's calls one by one, and the
     * trainer does not take its fused path. A backend that captures also
     * has clip_norm and loss_acc, and its optim_update honours
     * ct_optim_args.dev. graph_begin starts capturing the backend's queue;
     * graph_end stops, and with keep instantiates the graph into *exec,
     * else discards it (after an error in between); graph_launch replays
     * one; graph_free destroys one (NULL is ignored). */
    ct_status (*graph_begin)(void);
    ct_status (*graph_end)(bool keep, void **exec);
    ct_status (*graph_launch)(void *exec);
    void (*graph_free)(void *exec);
    /* While step_dev is set (not NULL), the dropout kernels launched from
     * the calling thread key their masks by the uint32 at step_dev (device
     * memory), read when they run, instead of ct_kargs.step: captured work
     * holds the pointer and replays with the counter's new value. NULL
     * returns to ct_kargs.step. ct_program_run_dev sets it for one run and
     * resets it after. */
    void (*set_step_source)(const uint32_t *step_dev);
} ct_backend;

/* Whether be keeps the rules above: every required member set, and each
 * group marked "as a group" all set or all NULL (graph capture with
 * clip_norm and loss_acc). If not, `why` (cap bytes) names the first
 * broken rule. Sets no error. */
bool ct_backend_valid(const ct_backend *be, char *why, size_t cap);

/* NULL with the error set if the table breaks the rules above (which the
 * tests rule out). */
const ct_backend *ct_cpu_backend(void);
/* NULL with the error set when CUDA is not built in, no such device, or the
 * table breaks the rules above. */
const ct_backend *ct_cuda_backend(int device_index);

#endif
