/* Optimizers over the flat parameter buffer.
 *
 * The object holds the resolved options, the state buffers (only those the
 * algorithm needs) and one flag byte per element of the flat layout. A step
 * is one call of the backend's optim_update over the whole buffer; the
 * per-parameter choices (frozen, decayed) travel in the flags, so the update
 * itself never needs to know where one parameter ends and the next begins.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/program_internal.h"
#include "ctrain/optim.h"
#include "optim/optim_internal.h"

#define MAX_STATES 3

struct ct_optimizer {
    ct_graph *g;
    ct_program *p;
    const ct_backend *be;
    ct_optim_opts o;        /* resolved: defaults filled in */
    ct_dtype dtype;
    size_t n;               /* elements of the flat buffer */
    int64_t t;
    int n_params;
    ct_node *param;         /* per parameter: node, offset, length, frozen */
    size_t *off, *numel;
    bool *frozen;
    uint8_t *host_flags;    /* host mirror of flags, edited by freeze */
    uint8_t *flags;         /* on the device */
    void *slot[MAX_STATES]; /* state0..2 of ct_optim_args; NULL if unused */
    const char *slot_name[MAX_STATES];
    int n_states;
    int state_slot[MAX_STATES]; /* i-th public state -> slot */
};

static const char *const kind_names[CT_OPTIM_KIND_COUNT] = {"sgd", "adagrad", "rmsprop", "adam", "adamw"};

const char *ct_optim_kind_name(ct_optim_kind kind) {
    return kind >= 0 && kind < CT_OPTIM_KIND_COUNT ? kind_names[kind] : "?";
}

ct_status ct_optim_kind_parse(const char *text, ct_optim_kind *out) {
    for (int k = 0; text && k < CT_OPTIM_KIND_COUNT; k++)
        if (strcmp(text, kind_names[k]) == 0) {
            if (out) *out = (ct_optim_kind)k;
            return CT_OK;
        }
    return ct_error(CT_ERR_NOT_FOUND, "unknown optimizer '%s' (sgd, adagrad, rmsprop, adam, adamw)",
                    text ? text : "(null)");
}

/* `!(x >= 0)` rather than `x < 0` so that NaN is rejected too. */
static ct_status nonneg(double x, const char *field) {
    if (!(x >= 0) || isinf(x))
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_new: %s must be finite and >= 0, got %g", field, x);
    return CT_OK;
}

/* Checks the options and fills in PyTorch's defaults for zero fields. */
static ct_status resolve(const ct_optim_opts *in, ct_optim_opts *o) {
    *o = *in;
    if (o->kind < 0 || o->kind >= CT_OPTIM_KIND_COUNT)
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_new: unknown optimizer kind %d", (int)o->kind);
    const char *name = kind_names[o->kind];
    ct_status st;
    if ((st = nonneg(o->lr, "lr")) || (st = nonneg(o->momentum, "momentum")) || (st = nonneg(o->eps, "eps")) ||
        (st = nonneg(o->weight_decay, "weight_decay")) || (st = nonneg(o->l1, "l1")) ||
        (st = nonneg(o->lr_decay, "lr_decay")) ||
        (st = nonneg(o->initial_accumulator_value, "initial_accumulator_value")))
        return st;
    if (!isfinite(o->dampening))
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_new: dampening must be finite, got %g", o->dampening);
    for (int i = 0; i < 2; i++)
        if (!(o->betas[i] >= 0 && o->betas[i] < 1))
            return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_new: betas[%d] must be in [0, 1), got %g", i,
                            o->betas[i]);
    if (!(o->alpha >= 0 && o->alpha <= 1))
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_new: alpha must be in [0, 1], got %g", o->alpha);
    if (o->nesterov) {
        if (o->kind != CT_OPTIM_SGD)
            return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_new: nesterov is an SGD option, not %s's", name);
        if (o->momentum <= 0 || o->dampening != 0)
            return ct_error(CT_ERR_INVALID_ARG,
                            "ct_optimizer_new: nesterov momentum requires a momentum > 0 and zero dampening "
                            "(momentum %g, dampening %g)", o->momentum, o->dampening);
    }
    if (o->amsgrad && o->kind != CT_OPTIM_ADAM && o->kind != CT_OPTIM_ADAMW)
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_new: amsgrad is an Adam/AdamW option, not %s's", name);
    if (o->centered && o->kind != CT_OPTIM_RMSPROP)
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_new: centered is an RMSprop option, not %s's", name);

    if (o->lr == 0) o->lr = o->kind == CT_OPTIM_ADAGRAD || o->kind == CT_OPTIM_RMSPROP ? 1e-2 : 1e-3;
    if (o->eps == 0) o->eps = o->kind == CT_OPTIM_ADAGRAD ? 1e-10 : 1e-8;
    if (o->betas[0] == 0 && o->betas[1] == 0) {
        o->betas[0] = 0.9;
        o->betas[1] = 0.999;
    }
    if (o->alpha == 0) o->alpha = 0.99;
    return CT_OK;
}

void ct_optimizer_free(ct_optimizer *opt) {
    if (!opt) return;
    if (opt->be) {
        for (int s = 0; s < MAX_STATES; s++) opt->be->free(opt->slot[s]);
        opt->be->free(opt->flags);
    }
    free(opt->param);
    free(opt->off);
    free(opt->numel);
    free(opt->frozen);
    free(opt->host_flags);
    free(opt);
}

/* The flat layout as the program laid it out, checked against g so that a
 * graph other than p's is caught before an update runs off a buffer. */
static ct_status read_layout(ct_optimizer *opt) {
    ct_graph *g = opt->g;
    int np = ct_graph_num_params(g);
    opt->n_params = np;
    opt->n = ct_program_param_numel(opt->p);
    opt->dtype = ct_program_param_dtype(opt->p);
    if (np > 0) {
        opt->param = malloc((size_t)np * sizeof *opt->param);
        opt->off = malloc((size_t)np * sizeof *opt->off);
        opt->numel = malloc((size_t)np * sizeof *opt->numel);
        opt->frozen = calloc((size_t)np, sizeof *opt->frozen);
        if (!opt->param || !opt->off || !opt->numel || !opt->frozen)
            return ct_error(CT_ERR_OOM, "ct_optimizer_new: out of memory");
    }
    size_t end = 0;
    for (int i = 0; i < np; i++) {
        ct_node nd = ct_graph_param(g, i);
        size_t off = ct_program_param_offset(opt->p, nd);
        int64_t numel = ct_shape_numel(ct_node_shape(g, nd));
        if (off == (size_t)-1 || off < end || numel < 0 || off + (size_t)numel > opt->n ||
            ct_node_dtype(g, nd) != opt->dtype)
            return ct_error(CT_ERR_INVALID_ARG,
                            "ct_optimizer_new: parameter '%s' of the graph does not match the program's layout; "
                            "pass the graph the program was compiled from", ct_node_name(g, nd));
        opt->param[i] = nd;
        opt->off[i] = off;
        opt->numel[i] = (size_t)numel;
        end = off + (size_t)numel;
    }
    if (np != 0 && opt->dtype != CT_F32 && opt->dtype != CT_F64)
        return ct_error(CT_ERR_DTYPE, "ct_optimizer_new: parameters are %s; optimizers take f32 or f64",
                        ct_dtype_name(opt->dtype));
    return CT_OK;
}

/* Decay unless 1-d (or 0-d) and not decay_bias_and_norm; the gaps between
 * parameters are marked frozen so that no state is ever written there. */
static ct_status build_flags(ct_optimizer *opt) {
    if (opt->n == 0) return CT_OK;
    opt->host_flags = malloc(opt->n);
    opt->flags = opt->be->alloc(opt->n);
    if (!opt->host_flags || !opt->flags) return ct_error(CT_ERR_OOM, "ct_optimizer_new: out of memory for flags");
    memset(opt->host_flags, CT_PFLAG_FROZEN, opt->n);
    for (int i = 0; i < opt->n_params; i++) {
        bool decay = opt->o.decay_bias_and_norm || ct_node_shape(opt->g, opt->param[i]).ndim >= 2;
        memset(opt->host_flags + opt->off[i], decay ? CT_PFLAG_DECAY : 0, opt->numel[i]);
    }
    return opt->be->upload(opt->flags, opt->host_flags, opt->n);
}

static ct_status add_state(ct_optimizer *opt, int slot, const char *name, double init) {
    size_t es = ct_dtype_size(opt->dtype), bytes = opt->n * es;
    opt->slot_name[slot] = name;
    opt->state_slot[opt->n_states++] = slot;
    if (opt->n == 0) return CT_OK;
    opt->slot[slot] = opt->be->alloc(bytes);
    if (!opt->slot[slot])
        return ct_error(CT_ERR_OOM, "ct_optimizer_new: cannot allocate state '%s': %s", name, ct_last_error());
    if (init == 0) return opt->be->zero(opt->slot[slot], bytes);
    /* Only Adagrad's accumulator starts elsewhere than zero: fill on the
     * host once and upload. */
    void *host = malloc(bytes);
    if (!host) return ct_error(CT_ERR_OOM, "ct_optimizer_new: out of memory");
    for (size_t i = 0; i < opt->n; i++) {
        if (opt->dtype == CT_F64) ((double *)host)[i] = init;
        else ((float *)host)[i] = (float)init;
    }
    ct_status st = opt->be->upload(opt->slot[slot], host, bytes);
    free(host);
    return st;
}

static ct_status alloc_states(ct_optimizer *opt) {
    const ct_optim_opts *o = &opt->o;
    ct_status st = CT_OK;
    switch (o->kind) {
    case CT_OPTIM_SGD:
        if (o->momentum != 0) st = add_state(opt, 0, "momentum_buffer", 0);
        break;
    case CT_OPTIM_ADAGRAD: st = add_state(opt, 0, "sum", o->initial_accumulator_value); break;
    case CT_OPTIM_RMSPROP:
        st = add_state(opt, 0, "square_avg", 0);
        if (st == CT_OK && o->momentum > 0) st = add_state(opt, 1, "momentum_buffer", 0);
        if (st == CT_OK && o->centered) st = add_state(opt, 2, "grad_avg", 0);
        break;
    case CT_OPTIM_ADAM:
    case CT_OPTIM_ADAMW:
        st = add_state(opt, 0, "exp_avg", 0);
        if (st == CT_OK) st = add_state(opt, 1, "exp_avg_sq", 0);
        if (st == CT_OK && o->amsgrad) st = add_state(opt, 2, "max_exp_avg_sq", 0);
        break;
    default: st = ct_error(CT_ERR_INTERNAL, "ct_optimizer_new: unhandled kind %d", (int)o->kind);
    }
    return st;
}

ct_optimizer *ct_optimizer_new(ct_graph *g, ct_program *p, const ct_optim_opts *o) {
    if (!g || !p || !o)
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_new: %s is NULL", !g ? "graph" : !p ? "program" : "opts"),
               NULL;
    ct_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt) return ct_error(CT_ERR_OOM, "ct_optimizer_new: out of memory"), NULL;
    opt->g = g;
    opt->p = p;
    ct_status st = resolve(o, &opt->o);
    if (st == CT_OK) {
        opt->be = ct_program_backend(p);
        if (!opt->be || !opt->be->optim_update)
            st = ct_error(CT_ERR_UNSUPPORTED, "ct_optimizer_new: the %s backend has no optimizer update",
                          opt->be ? opt->be->name : "(none)");
    }
    if (st == CT_OK) st = read_layout(opt);
    if (st == CT_OK) st = build_flags(opt);
    if (st == CT_OK) st = alloc_states(opt);
    if (st != CT_OK) {
        ct_optimizer_free(opt);
        return NULL;
    }
    return opt;
}

const ct_optim_opts *ct_optimizer_opts(const ct_optimizer *opt) { return opt ? &opt->o : NULL; }

ct_status ct_optimizer_freeze(ct_optimizer *opt, const char *name_prefix, bool frozen) {
    if (!opt || !name_prefix)
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_freeze: %s is NULL", opt ? "name_prefix" : "optimizer");
    size_t len = strlen(name_prefix);
    int matched = 0;
    for (int i = 0; i < opt->n_params; i++) {
        const char *name = ct_node_name(opt->g, opt->param[i]);
        if (!name || strncmp(name, name_prefix, len) != 0) continue;
        matched++;
        opt->frozen[i] = frozen;
        for (size_t k = opt->off[i]; k < opt->off[i] + opt->numel[i]; k++)
            opt->host_flags[k] = (uint8_t)(frozen ? opt->host_flags[k] | CT_PFLAG_FROZEN
                                                  : opt->host_flags[k] & ~CT_PFLAG_FROZEN);
    }
    if (!matched)
        return ct_error(CT_ERR_NOT_FOUND, "ct_optimizer_freeze: no parameter name starts with '%s'", name_prefix);
    return opt->be->upload(opt->flags, opt->host_flags, opt->n);
}

bool ct_optimizer_is_frozen(const ct_optimizer *opt, const char *name) {
    for (int i = 0; opt && name && i < opt->n_params; i++) {
        const char *pn = ct_node_name(opt->g, opt->param[i]);
        if (pn && strcmp(pn, name) == 0) return opt->frozen[i];
    }
    return false;
}

ct_status ct_optimizer_zero_frozen_grads(ct_optimizer *opt) {
    if (!opt) return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_zero_frozen_grads: optimizer is NULL");
    size_t es = ct_dtype_size(opt->dtype);
    char *grads = ct_program_grads(opt->p);
    for (int i = 0; i < opt->n_params; i++) {
        if (!opt->frozen[i] || opt->numel[i] == 0) continue;
        ct_status st = opt->be->zero(grads + opt->off[i] * es, opt->numel[i] * es);
        if (st != CT_OK) return st;
    }
    return CT_OK;
}

ct_status ct_optimizer_step(ct_optimizer *opt, double lr) { return ct_optimizer_step_gated(opt, lr, NULL, NULL); }

ct_status ct_optimizer_step_gated(ct_optimizer *opt, double lr, ct_program *p, const ct_amp_state *amp) {
    return ct_optimizer_step_dev(opt, lr, p, amp, NULL);
}

ct_status ct_optimizer_step_dev(ct_optimizer *opt, double lr, ct_program *p, const ct_amp_state *amp,
                                const ct_step_dev *dev) {
    if (!opt) return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_step: optimizer is NULL");
    if (amp && ct_program_grads(p) != ct_program_grads(opt->p))
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_step: the loss scaler belongs to another program's gradients");
    if (!(lr >= 0) || isinf(lr))
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_step: lr must be finite and >= 0, got %g", lr);
    if (opt->n == 0) {
        opt->t++;
        return CT_OK;
    }
    const ct_optim_opts *o = &opt->o;
    ct_optim_args a = {
        .kind = (int)o->kind,
        .dtype = opt->dtype,
        .n = opt->n,
        .params = ct_program_params(opt->p),
        .grads = ct_program_grads(opt->p),
        .state0 = opt->slot[0],
        .state1 = opt->slot[1],
        .state2 = opt->slot[2],
        .flags = opt->flags,
        .t = opt->t + 1,
        .lr = lr,
        .momentum = o->momentum,
        .dampening = o->dampening,
        .beta1 = o->betas[0],
        .beta2 = o->betas[1],
        .eps = o->eps,
        .alpha = o->alpha,
        .weight_decay = o->weight_decay,
        .l1 = o->l1,
        .lr_decay = o->lr_decay,
        .nesterov = o->nesterov,
        .amsgrad = o->amsgrad,
        .centered = o->centered,
        .decoupled = o->kind == CT_OPTIM_ADAMW,
        .maximize = o->maximize,
        .amp = amp,
        .dev = dev,
    };
    ct_status st = opt->be->optim_update(&a);
    if (st != CT_OK) return ct_error(st, "ct_optimizer_step (%s, step %lld): %s", kind_names[o->kind],
                                     (long long)a.t, ct_last_error());
    opt->t = a.t;
    return CT_OK;
}

ct_program *ct_optimizer_program(const ct_optimizer *opt) { return opt ? opt->p : NULL; }

int64_t ct_optimizer_step_count(const ct_optimizer *opt) { return opt ? opt->t : 0; }

ct_status ct_optimizer_set_step_count(ct_optimizer *opt, int64_t t) {
    if (!opt) return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_set_step_count: optimizer is NULL");
    if (t < 0) return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_set_step_count: t must be >= 0, got %lld",
                               (long long)t);
    opt->t = t;
    return CT_OK;
}

int ct_optimizer_num_states(const ct_optimizer *opt) { return opt ? opt->n_states : 0; }

ct_status ct_optimizer_state(ct_optimizer *opt, int i, const char **name, void **device_ptr, size_t *numel) {
    if (!opt) return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_state: optimizer is NULL");
    if (i < 0 || i >= opt->n_states)
        return ct_error(CT_ERR_INVALID_ARG, "ct_optimizer_state: index %d out of range (%d states)", i,
                        opt->n_states);
    int s = opt->state_slot[i];
    if (name) *name = opt->slot_name[s];
    if (device_ptr) *device_ptr = opt->slot[s];
    if (numel) *numel = opt->n;
    return CT_OK;
}

/* The slot of a state by name, or -1 with the error set. */
static int find_state(const ct_optimizer *opt, const char *name, const char *fn) {
    if (!opt) return ct_error(CT_ERR_INVALID_ARG, "%s: optimizer is NULL", fn), -1;
    for (int i = 0; name && i < opt->n_states; i++)
        if (strcmp(opt->slot_name[opt->state_slot[i]], name) == 0) return opt->state_slot[i];
    ct_error(CT_ERR_NOT_FOUND, "%s: %s has no state named '%s'", fn, kind_names[opt->o.kind],
             name ? name : "(null)");
    return -1;
}

static ct_status check_bytes(const ct_optimizer *opt, const void *buf, size_t bytes, const char *fn) {
    size_t want = opt->n * ct_dtype_size(opt->dtype);
    if ((!buf && want) || bytes != want)
        return ct_error(CT_ERR_SHAPE, "%s: the state holds %zu bytes, got %zu%s", fn, want, bytes,
                        buf ? "" : " (NULL buffer)");
    return CT_OK;
}

ct_status ct_optimizer_read_state(const ct_optimizer *opt, const char *name, void *dst, size_t bytes) {
    int s = find_state(opt, name, "ct_optimizer_read_state");
    if (s < 0) return ct_last_status();
    ct_status st = check_bytes(opt, dst, bytes, "ct_optimizer_read_state");
    return st != CT_OK || bytes == 0 ? st : opt->be->download(dst, opt->slot[s], bytes);
}

ct_status ct_optimizer_write_state(ct_optimizer *opt, const char *name, const void *src, size_t bytes) {
    int s = find_state(opt, name, "ct_optimizer_write_state");
    if (s < 0) return ct_last_status();
    ct_status st = check_bytes(opt, src, bytes, "ct_optimizer_write_state");
    return st != CT_OK || bytes == 0 ? st : opt->be->upload(opt->slot[s], src, bytes);
}
