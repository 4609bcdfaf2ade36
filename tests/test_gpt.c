/* The GPT (ctrain/gpt.h): nanoGPT's parameter names, shapes and
 * initialisation; bad configurations; and the model against PyTorch - the
 * logits, loss and every gradient of a small GPT in float64, and its weights
 * after three AdamW steps with nanoGPT's parameter groups, from
 * tests/ref/gpt_ref.safetensors (written by tests/ref/gpt_reference.py). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "expect_msg.h"


static const ct_gpt_config baby = {.vocab_size = 65, .block_size = 64, .n_layer = 4, .n_head = 4, .n_embd = 128};

Test(gpt, names_shapes_and_count_are_nanogpts) {
    ct_graph *g = ct_graph_new();
    ct_node idx = ct_input(g, "idx", CT_I32, (ct_shape){2, {2, 64}});
    ct_node y = ct_gpt(g, &baby, idx);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    ct_shape ys = ct_node_shape(g, y);
    cr_assert(ys.ndim == 3 && ys.dim[0] == 2 && ys.dim[1] == 64 && ys.dim[2] == 65);
    cr_assert_eq(ct_node_dtype(g, y), CT_F32);
    const char *first[] = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                           "transformer.h.0.ln_1.bias", "transformer.h.0.attn.c_attn.weight",
                           "transformer.h.0.attn.c_attn.bias", "transformer.h.0.attn.c_proj.weight",
                           "transformer.h.0.attn.c_proj.bias", "transformer.h.0.ln_2.weight",
                           "transformer.h.0.ln_2.bias", "transformer.h.0.mlp.c_fc.weight",
                           "transformer.h.0.mlp.c_fc.bias", "transformer.h.0.mlp.c_proj.weight",
                           "transformer.h.0.mlp.c_proj.bias"};
    for (int i = 0; i < 14; i++) cr_assert_str_eq(ct_node_name(g, ct_graph_param(g, i)), first[i]);
    int n = ct_graph_num_params(g);
    cr_assert_eq(n, 2 + 4 * 12 + 2);
    cr_assert_str_eq(ct_node_name(g, ct_graph_param(g, n - 1)), "transformer.ln_f.bias");
    cr_assert_eq(ct_find(g, "lm_head.weight"), CT_NO_NODE, "tied: no lm_head parameter");
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += ct_shape_numel(ct_node_shape(g, ct_graph_param(g, i)));
    /* 12 C^2 + 13 C per block, V C + T C embeddings, 2 C for ln_f:
     * 4 * 198272 + 8320 + 8192 + 256 (nanoGPT prints 0.80M without wpe). */
    cr_assert_eq(total, 809856);
    cr_assert_eq(ct_gpt_num_params(&baby), 809856);
    ct_shape cattn = ct_node_shape(g, ct_find(g, "transformer.h.3.attn.c_attn.weight"));
    cr_assert(cattn.ndim == 2 && cattn.dim[0] == 384 && cattn.dim[1] == 128);
    ct_shape fc2 = ct_node_shape(g, ct_find(g, "transformer.h.3.mlp.c_proj.weight"));
    cr_assert(fc2.dim[0] == 128 && fc2.dim[1] == 512);
    ct_graph_free(g);
}

static double std_of(const float *v, int64_t n, double *mean) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    return sqrt(ss / (double)n);
}

Test(gpt, initialisation_is_nanogpts) {
    ct_graph *g = ct_graph_new();
    ct_node idx = ct_input(g, "idx", CT_I32, (ct_shape){2, {1, 8}});
    ct_gpt(g, &baby, idx);
    ct_program *p = ct_compile(g, &(ct_compile_opts){0});
    cr_assert_not_null(p, "%s", ct_last_error());
    float *buf = malloc(512 * 128 * sizeof *buf);
    const struct {
        const char *name;
        int64_t n;
        double mean, std;
    } want[] = {{"transformer.wte.weight", 65 * 128, 0, 0.02},
                {"transformer.wpe.weight", 64 * 128, 0, 0.02},
                {"transformer.h.1.attn.c_attn.weight", 384 * 128, 0, 0.02},
                {"transformer.h.1.attn.c_proj.weight", 128 * 128, 0, 0.02 / sqrt(8.0)},
                {"transformer.h.2.mlp.c_fc.weight", 512 * 128, 0, 0.02},
                {"transformer.h.2.mlp.c_proj.weight", 128 * 512, 0, 0.02 / sqrt(8.0)},
                {"transformer.h.0.attn.c_attn.bias", 384, 0, 0},
                {"transformer.h.0.mlp.c_proj.bias", 128, 0, 0},
                {"transformer.h.0.ln_1.weight", 128, 1, 0},
                {"transformer.ln_f.bias", 128, 0, 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert_eq(ct_program_get_param(p, want[i].name, buf, (size_t)want[i].n * sizeof *buf), CT_OK, "%s",
                     ct_last_error());
        double mean, sd = std_of(buf, want[i].n, &mean);
        if (want[i].std == 0) {
            for (int64_t j = 0; j < want[i].n; j++) cr_assert_eq(buf[j], (float)want[i].mean, "%s", want[i].name);
        } else {
            cr_assert(fabs(mean) < 4 * want[i].std / sqrt((double)want[i].n), "%s mean %g", want[i].name, mean);
            cr_assert(fabs(sd / want[i].std - 1) < 0.05, "%s std %g want %g", want[i].name, sd, want[i].std);
        }
    }
    free(buf);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(gpt, bad_configurations_say_which_field) {
    struct {
        ct_gpt_config c;
        const char *msg;
    } bad[] = {{{65, 64, 4, 4, 130, 0}, "n_embd 130 is not divisible by n_head 4"},
               {{65, 64, 0, 4, 128, 0}, "n_layer = 0"},
               {{0, 64, 4, 4, 128, 0}, "vocab_size = 0"},
               {{65, 64, 4, 4, 128, 1.0}, "dropout 1 is outside [0, 1)"}};
    for (int i = 0; i < 4; i++) {
        ct_graph *g = ct_graph_new();
        ct_node idx = ct_input(g, "idx", CT_I32, (ct_shape){2, {2, 8}});
        cr_assert_eq(ct_gpt(g, &bad[i].c, idx), CT_NO_NODE);
        expect_msg_has(ct_graph_error(g), bad[i].msg);
        ct_graph_free(g);
    }
    ct_graph *g = ct_graph_new();
    ct_node idx = ct_input(g, "idx", CT_I32, (ct_shape){2, {2, 65}});
    cr_assert_eq(ct_gpt(g, &baby, idx), CT_NO_NODE);
    expect_msg_has(ct_graph_error(g), "sequence length 65 is longer than block_size 64");
    ct_graph_free(g);
    g = ct_graph_new();
    idx = ct_input(g, "idx", CT_F32, (ct_shape){2, {2, 8}});
    cr_assert_eq(ct_gpt(g, &baby, idx), CT_NO_NODE);
    expect_msg_has(ct_graph_error(g), "idx must be i32 [B, T]");
    ct_graph_free(g);
}

/* ------------------------------------------------ against PyTorch (F64) */

enum { RV = 11, RT = 7, RC = 8, RH = 2, RL = 2, RB = 3 };
static const ct_gpt_config ref_cfg = {.vocab_size = RV, .block_size = RT, .n_layer = RL, .n_head = RH, .n_embd = RC};

typedef struct ref_model {
    ct_graph *g;
    ct_program *p;
    ct_st_file *f;
    ct_node loss, logits;
} ref_model;

static double *ref_tensor(const ct_st_file *f, const char *name, int64_t *n) {
    int i = ct_st_find(f, name);
    cr_assert(i >= 0, "reference has no %s", name);
    ct_dtype dt;
    ct_shape s;
    cr_assert_eq(ct_st_info(f, i, &dt, &s), CT_OK);
    *n = ct_shape_numel(s);
    double *v = malloc((size_t)*n * sizeof *v);
    cr_assert_eq(ct_st_read(f, i, CT_F64, v, (size_t)*n * sizeof *v), CT_OK, "%s", ct_last_error());
    return v;
}

/* The reference GPT in F64: a first F64 parameter (the constant 1 the
 * logits are multiplied by, exactly) makes every parameter of the graph F64,
 * as every parameter of a graph shares one dtype. */
static void ref_build(ref_model *m) {
    m->f = ct_st_open(CTRAIN_TEST_SOURCE_DIR "/ref/gpt_ref.safetensors");
    cr_assert_not_null(m->f, "%s", ct_last_error());
    ct_graph *g = m->g = ct_graph_new();
    ct_node one = ct_param(g, "one", CT_F64, (ct_shape){1, {1}}, ct_init_ones());
    ct_node idx = ct_input(g, "idx", CT_I32, (ct_shape){2, {RB, RT}});
    ct_node tgt = ct_input(g, "targets", CT_I32, (ct_shape){1, {RB * RT}});
    m->logits = ct_mul(g, ct_gpt(g, &ref_cfg, idx), one);
    m->loss = ct_cross_entropy(g, ct_reshape(g, m->logits, (ct_shape){2, {RB * RT, RV}}), tgt, 0);
    cr_assert_eq(ct_graph_backward(g, m->loss), CT_OK, "%s", ct_last_error());
    ct_node outs[2] = {m->loss, m->logits};
    m->p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 2, .grads = true});
    cr_assert_not_null(m->p, "%s", ct_last_error());
    for (int i = 1; i < ct_graph_num_params(g); i++) {
        const char *name = ct_node_name(g, ct_graph_param(g, i));
        int64_t n;
        double *v = ref_tensor(m->f, name, &n);
        cr_assert_eq(ct_program_set_param(m->p, name, v, (size_t)n * sizeof *v), CT_OK, "%s", ct_last_error());
        free(v);
    }
    int64_t n;
    int32_t ids[RB * RT];
    double *v = ref_tensor(m->f, "idx", &n);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)v[i];
    cr_assert_eq(ct_program_set_input(m->p, "idx", ids, sizeof ids), CT_OK);
    free(v);
    v = ref_tensor(m->f, "targets", &n);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)v[i];
    cr_assert_eq(ct_program_set_input(m->p, "targets", ids, sizeof ids), CT_OK);
    free(v);
}

static void ref_free(ref_model *m) {
    ct_program_free(m->p);
    ct_graph_free(m->g);
    ct_st_close(m->f);
}

static void assert_close(const char *what, const double *got, const double *want, int64_t n, double tol) {
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])), "%s[%lld]: %.15g, PyTorch %.15g", what,
                  (long long)i, got[i], want[i]);
}

Test(gpt, forward_and_gradients_match_pytorch) {
    ref_model m;
    ref_build(&m);
    cr_assert_eq(ct_program_run(m.p), CT_OK, "%s", ct_last_error());
    int64_t n;
    double loss, *want = ref_tensor(m.f, "loss", &n);
    cr_assert_eq(ct_program_read(m.p, m.loss, &loss, sizeof loss), CT_OK);
    assert_close("loss", &loss, want, 1, 1e-12);
    free(want);
    want = ref_tensor(m.f, "logits", &n);
    double *got = malloc((size_t)n * sizeof *got);
    cr_assert_eq(ct_program_read(m.p, m.logits, got, (size_t)n * sizeof *got), CT_OK);
    assert_close("logits", got, want, n, 1e-12);
    free(got);
    free(want);
    /* every parameter's gradient, the tied wte's (two uses summed) included */
    for (int i = 1; i < ct_graph_num_params(m.g); i++) {
        ct_node prm = ct_graph_param(m.g, i);
        char key[160];
        snprintf(key, sizeof key, "grad.%s", ct_node_name(m.g, prm));
        want = ref_tensor(m.f, key, &n);
        got = malloc((size_t)n * sizeof *got);
        cr_assert_eq(ct_program_read(m.p, ct_grad(m.g, prm), got, (size_t)n * sizeof *got), CT_OK, "%s",
                     ct_last_error());
        assert_close(key, got, want, n, 1e-10);
        free(got);
        free(want);
    }
    ref_free(&m);
}

Test(gpt, three_adamw_steps_match_pytorch) {
    ref_model m;
    ref_build(&m);
    ct_optim_opts o = {.kind = CT_OPTIM_ADAMW, .lr = 1e-2, .betas = {0.9, 0.99}, .eps = 1e-8,
                       .weight_decay = 0.1};
    ct_optimizer *opt = ct_optimizer_new(m.g, m.p, &o);
    cr_assert_not_null(opt, "%s", ct_last_error());
    cr_assert_eq(ct_optimizer_freeze(opt, "one", true), CT_OK);
    int64_t n;
    double *losses = ref_tensor(m.f, "step_losses", &n);
    for (int s = 0; s < 3; s++) {
        cr_assert_eq(ct_program_run(m.p), CT_OK, "%s", ct_last_error());
        double loss;
        ct_program_read(m.p, m.loss, &loss, sizeof loss);
        assert_close("step loss", &loss, &losses[s], 1, 1e-11);
        cr_assert_eq(ct_optimizer_step(opt, 1e-2), CT_OK, "%s", ct_last_error());
    }
    free(losses);
    for (int i = 1; i < ct_graph_num_params(m.g); i++) {
        const char *name = ct_node_name(m.g, ct_graph_param(m.g, i));
        char key[160];
        snprintf(key, sizeof key, "after.%s", name);
        double *want = ref_tensor(m.f, key, &n), *got = malloc((size_t)n * sizeof *got);
        cr_assert_eq(ct_program_get_param(m.p, name, got, (size_t)n * sizeof *got), CT_OK);
        assert_close(key, got, want, n, 1e-10);
        free(got);
        free(want);
    }
    ct_optimizer_free(opt);
    ref_free(&m);
}
