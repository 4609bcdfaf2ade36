/* Internal: the backend interface.
 *
 * A backend provides memory (on its device) and one kernel per op kind.
 * Kernels see dense row-major tensors (ct_tview); the program passes the
 * node's attributes, a scratch area whose size the backend asked for at
 * compile time, and the per-run scalars (seed, step, training). Nothing above
 * this interface knows which device it talks to.
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

typedef struct ct_kargs {
    ct_op op;
    const ct_attrs *attr;
    int n_in;
    const ct_tview *in;   /* n_in views */
    ct_tview out;
    void *scratch;        /* scratch_bytes(k) bytes, or NULL if it asked for none */
    uint64_t seed;        /* the graph's seed */
    uint32_t step;        /* the program's step counter (dropout) */
    bool training;
    void *stream;         /* the backend's stream, NULL on the CPU */
    bool allow_tf32;      /* MATMUL: F32 products may use TF32 (the node's attr.tf32, ct_graph_set_tf32) */
    /* NULL, or the step counter in device memory (uint32), which a kernel
     * then reads instead of `step`: a step captured once as a CUDA Graph is
     * replayed with the counter's new value. Only the CUDA kernels look. */
    const uint32_t *step_dev;
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

typedef struct ct_backend {
    const char *name;
    ct_device_kind kind;
    void *(*alloc)(size_t bytes);  /* NULL on failure (sets the error) */
    void (*free)(void *p);
    ct_status (*zero)(void *p, size_t bytes);
    ct_status (*upload)(void *dst, const void *src, size_t bytes);   /* host -> device */
    ct_status (*download)(void *dst, const void *src, size_t bytes); /* device -> host */
    ct_status (*sync)(void);       /* wait for queued work */
    ct_status (*copy)(void *dst, const void *src, size_t bytes);     /* device -> same device; NULL: none */
    /* Timing events on the backend's queue (ct_device_timer); all NULL: timers
     * use the host's monotonic clock after sync. event_elapsed waits for
     * `stop` (reporting errors as sync does), then gives the seconds from
     * `start` to it. event_method names the method ("cuda events"). */
    ct_status (*event_new)(void **ev);
    ct_status (*event_record)(void *ev);
    ct_status (*event_elapsed)(void *start, void *stop, double *seconds);
    void (*event_free)(void *ev);
    const char *event_method;
    /* Bytes of scratch a kernel needs for these views (NULL: none). Data
     * pointers in k are NULL when this is asked. */
    size_t (*scratch_bytes)(const ct_kargs *k);
    /* Flat-buffer helpers for optimizers and clipping (device-side data). */
    ct_status (*optim_update)(const ct_optim_args *a);
    /* *out = sum of x[i]^2 in double, and whether every x[i] is finite. */
    ct_status (*sumsq)(const void *x, ct_dtype dtype, size_t n, double *out, bool *finite);
    /* x[i] = clamp(x[i] * scale, -clamp, clamp); clamp <= 0 means none. */
    ct_status (*scale_clamp)(void *x, ct_dtype dtype, size_t n, double scale, double clamp);
    /* y[i] = a * x[i] + b * y[i], computed in double. When b is 0, y is not
     * read (as BLAS's beta = 0), so y may hold garbage or NaN: that is how a
     * gradient accumulator starts without a separate zeroing pass. */
    ct_status (*axpby)(double a, const void *x, double b, void *y, ct_dtype dtype, size_t n);
    /* Mixed precision, one fused pass: g[i] /= st->scale (in double) over
     * the flat gradients (F32 or F64), and st->found_inf = 1 if any g[i] was
     * inf or NaN, else 0. */
    ct_status (*amp_unscale)(void *g, ct_dtype dtype, size_t n, ct_amp_state *st);
    /* GradScaler's update from st->found_inf: on inf, scale *= backoff,
     * growth_tracker = 0, skipped += 1; otherwise growth_tracker += 1 and at
     * growth_interval scale *= growth (kept when the product is not a finite
     * float) and growth_tracker = 0. */
    ct_status (*amp_update)(ct_amp_state *st, double growth, double backoff, int32_t growth_interval);
    /* Fused-step helpers; NULL where the caller falls back to the hooks
     * above (the CPU). clip_norm: PyTorch's clip_grad_norm_ with nothing
     * reaching the host: sd->norm = the norm of g (NaN when an element is
     * not finite), sd->coef = min(1, max_norm / (norm + 1e-6)), 1 when the
     * norm is not finite (g is then left as it is), and g *= sd->coef, the
     * factor read from device memory. loss_acc: sd->loss_last = weight *
     * *loss (a scalar of dtype), sd->loss_sum += it. */
    ct_status (*clip_norm)(void *g, ct_dtype dtype, size_t n, double max_norm, ct_step_dev *sd);
    ct_status (*loss_acc)(const void *loss, ct_dtype dtype, double weight, ct_step_dev *sd);
    /* Stream capture (CUDA Graphs); NULL: the backend cannot capture.
     * graph_begin starts capturing the backend's stream; graph_end stops,
     * and with keep instantiates the graph into *exec, else discards it
     * (after an error in between); graph_launch replays one; graph_free
     * destroys one (NULL is ignored). */
    ct_status (*graph_begin)(void);
    ct_status (*graph_end)(bool keep, void **exec);
    ct_status (*graph_launch)(void *exec);
    void (*graph_free)(void *exec);
    ct_kernel_fn kernels[CT_OP_COUNT];  /* NULL: not implemented */
} ct_backend;

const ct_backend *ct_cpu_backend(void);
/* NULL with the error set when CUDA is not built in or no such device. */
const ct_backend *ct_cuda_backend(int device_index);

#endif
