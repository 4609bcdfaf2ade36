/* Carried states: truncated backpropagation through time for stateful
 * language models (ct_lm_data.states).
 *
 * Each pair names an input of the training graph (an LSTM's h0) and a node
 * of the same dtype and shape (its h_n). The training program keeps the
 * output readable; after every micro-batch its value is read to a host copy
 * and fed into the input before the next micro-batch, whose window is the
 * next one of the same streams (the `streams` layout of ct_tokens_batch).
 * The copy through the host is small (the states, not the activations) and
 * keeps the mechanism the same on every backend; it is also what the
 * checkpoint saves. The value is zero at the start of every epoch, when
 * every stream starts again from its beginning. An input has no gradient,
 * so nothing flows back across windows: the states are detached there.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/st_param.h"
#include "train/train_internal.h"

#define FN "ct_trainer_new_lm"
#define META_KEY "ctrain.carried_states"
#define TENSOR_PREFIX "state."

typedef struct ct_carry {
    char *input, *output;
    ct_node in, out;
    ct_shape shape;
    ct_dtype dtype;
    size_t bytes;
    void *value;   /* what the next micro-batch starts from */
    void *staged;  /* ct_trainer_resume's copy until commit */
} ct_carry;

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

ct_status ct_train_state_init(ct_trainer *t, const ct_lm_data *d) {
    if (d->n_states == 0) return CT_OK;
    if (d->n_states < 0 || d->n_states > CT_TBUILD_MAX_KEEP || !d->states)
        return ct_error(CT_ERR_INVALID_ARG, FN ": n_states %d (0 .. %d) with %s states", d->n_states,
                        CT_TBUILD_MAX_KEEP, d->states ? "a list of" : "NULL");
    for (int i = 0; i < d->n_states; i++) {
        const ct_lm_state *s = &d->states[i];
        if (!s->input || !s->output || !s->input[0] || !s->output[0])
            return ct_error(CT_ERR_INVALID_ARG, FN ": states[%d] has a NULL or empty input or output name", i);
        for (int j = 0; j < i; j++)
            if (strcmp(d->states[j].input, s->input) == 0)
                return ct_error(CT_ERR_INVALID_ARG, FN ": states[%d] and states[%d] both feed the input '%s'", j, i,
                                s->input);
    }
    t->carry = calloc((size_t)d->n_states, sizeof *t->carry);
    t->carry_keep = calloc((size_t)d->n_states, sizeof *t->carry_keep);
    if (!t->carry || !t->carry_keep) return ct_error(CT_ERR_OOM, FN ": out of memory");
    t->n_carry = d->n_states;
    for (int i = 0; i < d->n_states; i++) {
        t->carry[i].input = dup_str(d->states[i].input);
        t->carry[i].output = dup_str(d->states[i].output);
        if (!t->carry[i].input || !t->carry[i].output) return ct_error(CT_ERR_OOM, FN ": out of memory");
        t->carry_keep[i] = t->carry[i].output;
    }
    t->b.keep = t->carry_keep;
    t->b.n_keep = t->n_carry;
    return CT_OK;
}

/* Pair c in the training graph: an input, and a node just like it. */
static ct_status find_pair(ct_trainer *t, ct_carry *c) {
    ct_graph *g = t->tr.g;
    c->in = ct_find(g, c->input);
    c->out = ct_find(g, c->output);
    if (c->in == CT_NO_NODE || strcmp(ct_node_op(g, c->in), "input") != 0)
        return ct_error(CT_ERR_NOT_FOUND, FN ": the model's training graph has no input named '%s' (a carried state)",
                        c->input);
    c->shape = ct_node_shape(g, c->in);
    c->dtype = ct_node_dtype(g, c->in);
    ct_shape os = ct_node_shape(g, c->out);
    if (!ct_shape_equal(os, c->shape) || ct_node_dtype(g, c->out) != c->dtype) {
        char a[96], b[96];
        return ct_error(CT_ERR_SHAPE, FN ": the carried state '%s' is %s %s, the input '%s' it feeds %s %s", c->output,
                        ct_dtype_name(ct_node_dtype(g, c->out)), ct_shape_str(os, a, sizeof a), c->input,
                        ct_dtype_name(c->dtype), ct_shape_str(c->shape, b, sizeof b));
    }
    c->bytes = (size_t)ct_shape_numel(c->shape) * ct_dtype_size(c->dtype);
    c->value = calloc(1, c->bytes ? c->bytes : 1);
    c->staged = calloc(1, c->bytes ? c->bytes : 1);
    if (!c->value || !c->staged) return ct_error(CT_ERR_OOM, FN ": out of memory for the state '%s'", c->input);
    return CT_OK;
}

ct_status ct_train_state_setup(ct_trainer *t) {
    for (int i = 0; i < t->n_carry; i++) {
        ct_status st = find_pair(t, &t->carry[i]);
        if (st != CT_OK) return st;
    }
    return CT_OK;
}

ct_status ct_train_state_feed(ct_trainer *t, const ct_tgraph *tg) {
    for (int i = 0; i < t->n_carry; i++) {
        ct_carry *c = &t->carry[i];
        /* Every stream starts again from its beginning: from zero states. */
        if (t->batch_in_epoch == 0) memset(c->value, 0, c->bytes);
        ct_status st = ct_program_set_input_node(tg->p, c->in, c->value, c->bytes);
        if (st != CT_OK) return st;
    }
    return CT_OK;
}

ct_status ct_train_state_take(ct_trainer *t, const ct_tgraph *tg) {
    for (int i = 0; i < t->n_carry; i++) {
        ct_carry *c = &t->carry[i];
        ct_status st = ct_program_read(tg->p, c->out, c->value, c->bytes);
        if (st != CT_OK) return ct_error(st, "reading the carried state '%s': %s", c->output, ct_last_error());
    }
    return CT_OK;
}

/* "in>out,in>out": what a checkpoint records, and a resumed run compares. */
static char *pairs_text(const ct_trainer *t) {
    size_t n = 1;
    for (int i = 0; i < t->n_carry; i++) n += strlen(t->carry[i].input) + strlen(t->carry[i].output) + 2;
    char *s = malloc(n);
    if (!s) return NULL;
    s[0] = '\0';
    for (int i = 0; i < t->n_carry; i++) {
        if (i) strcat(s, ",");
        strcat(s, t->carry[i].input);
        strcat(s, ">");
        strcat(s, t->carry[i].output);
    }
    return s;
}

ct_status ct_train_state_save(ct_trainer *t, ct_st_writer *w) {
    if (!t->n_carry) return CT_OK;
    char *pairs = pairs_text(t);
    if (!pairs) return ct_error(CT_ERR_OOM, "out of memory");
    ct_status st = ct_st_writer_meta(w, META_KEY, pairs);
    free(pairs);
    char name[512];
    for (int i = 0; i < t->n_carry && st == CT_OK; i++) {
        const ct_carry *c = &t->carry[i];
        snprintf(name, sizeof name, TENSOR_PREFIX "%s", c->input);
        st = ct_st_writer_add(w, name, c->dtype, c->shape, c->value);
    }
    return st;
}

ct_status ct_train_state_stage(ct_trainer *t, const ct_st_file *f, const char *path) {
    const char *had = ct_st_meta(f, META_KEY);
    char *want = pairs_text(t);
    if (!want) return ct_error(CT_ERR_OOM, "out of memory");
    ct_status st = CT_OK;
    /* A run without carried states writes no key. */
    if (strcmp(had ? had : "", want) != 0)
        st = ct_error(CT_ERR_INVALID_ARG,
                      "'%s' was written with carried states '%.200s', this run carries '%.200s' (stateful training "
                      "or not): they must match to resume",
                      path, had ? had : "", want);
    free(want);
    char name[512];
    for (int i = 0; i < t->n_carry && st == CT_OK; i++) {
        ct_carry *c = &t->carry[i];
        snprintf(name, sizeof name, TENSOR_PREFIX "%s", c->input);
        int k = ct_st_find(f, name);
        if (k < 0) return ct_error(CT_ERR_NOT_FOUND, "'%s' has no carried state '%s'", path, name);
        if ((st = ct_st_read_param(f, k, name, c->shape, c->dtype, c->staged, c->bytes)) != CT_OK)
            return ct_error(st, "'%s': %s", path, ct_last_error());
    }
    return st;
}

void ct_train_state_commit(ct_trainer *t) {
    for (int i = 0; i < t->n_carry; i++) memcpy(t->carry[i].value, t->carry[i].staged, t->carry[i].bytes);
}

void ct_train_state_free(ct_trainer *t) {
    for (int i = 0; t->carry && i < t->n_carry; i++) {
        free(t->carry[i].input);
        free(t->carry[i].output);
        free(t->carry[i].value);
        free(t->carry[i].staged);
    }
    free(t->carry);
    free(t->carry_keep);
    t->carry = NULL;
    t->carry_keep = NULL;
    t->n_carry = 0;
}
