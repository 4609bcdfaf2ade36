/* Pruning (ctrain/prune.h, docs/compression.md): the cubic schedule, the
 * option checks, the mask pass of the CPU backend, and pruning in the
 * trainer - exact sparsity per scope and structure, pruned weights and
 * optimizer state exactly zero, biases untouched, masks in checkpoints and
 * a resumed run bit-identical to the uninterrupted one, and the models
 * with nothing to prune refused.
 *
 * Runs train a small MLP (8 -> 16 -> 12 -> 4) on Philox Gaussian blobs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ctrain/ctrain.h>
#include <ctrain/nn.h>

#include "core/backend.h"

#define FEAT 8
#define CLASSES 4

static int n_hidden = 2; /* 0: a single linear layer */

static ct_node build_mlp(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    ct_node h = x;
    if (n_hidden >= 1) h = ct_activation(g, ct_linear(g, "fc1", h, 16, true, NULL), "relu");
    if (n_hidden >= 2) h = ct_activation(g, ct_linear(g, "fc2", h, 12, true, NULL), "relu");
    return ct_linear(g, "out", h, CLASSES, true, NULL);
}

/* A small CNN: the 8 features as [2, 2, 2], a 1x1 conv to 6 channels,
 * then a linear classifier. */
static ct_node build_cnn(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    int64_t n = ct_node_shape(g, x).dim[0];
    ct_node h = ct_reshape(g, x, (ct_shape){4, {n, 2, 2, 2}});
    h = ct_activation(g, ct_conv2d_layer(g, "conv1", h, 6, 1, 1, CT_CONV2D_DEFAULT, true, NULL), "relu");
    return ct_linear(g, "out", ct_flatten(g, h, 1), CLASSES, true, NULL);
}

static ct_dataset *blobs(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n * FEAT) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    cr_assert(x && y);
    for (int64_t i = 0; i < n; i++) {
        int32_t c = (int32_t)(ct_philox_u32(seed, 1, 0, (uint64_t)i) % CLASSES);
        y[i] = c;
        for (int f = 0; f < FEAT; f++) {
            double u = ct_philox_uniform(seed, 2, 0, (uint64_t)(i * FEAT + f));
            x[i * FEAT + f] = (float)((f % CLASSES == c ? 2.0 : 0.0) + (u - 0.5) * 2.0);
        }
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(n, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds), CT_OK, "%s",
                 ct_last_error());
    free(x);
    free(y);
    return ds;
}

static ct_train_opts base_opts(const ct_prune_opts *po) {
    return (ct_train_opts){.model = build_mlp,
                           .seed = 3,
                           .batch_size = 32,
                           .epochs = 4,
                           .quiet = true,
                           .optim = {.kind = CT_OPTIM_ADAMW, .lr = 1e-2, .weight_decay = 0.01},
                           .prune = po};
}

/* Host copy of parameter `name`. */
static float *param(ct_trainer *t, const char *name, int64_t *n) {
    ct_graph *g = ct_trainer_graph(t);
    for (int i = 0; i < ct_graph_num_params(g); i++) {
        ct_node p = ct_graph_param(g, i);
        if (strcmp(ct_node_name(g, p), name) != 0) continue;
        *n = ct_shape_numel(ct_node_shape(g, p));
        float *v = malloc((size_t)*n * sizeof *v);
        cr_assert_eq(ct_program_get_param(ct_trainer_program(t), name, v, (size_t)*n * sizeof *v), CT_OK);
        return v;
    }
    cr_assert_fail("no parameter %s", name);
    return NULL;
}

static int64_t zeros_of(ct_trainer *t, const char *name, int64_t *n) {
    float *v = param(t, name, n);
    int64_t z = 0;
    for (int64_t i = 0; i < *n; i++) z += v[i] == 0.0f;
    free(v);
    return z;
}

Test(prune, cubic_schedule_and_steps) {
    ct_prune_opts o = {.sparsity = 0.9, .initial_sparsity = 0.1, .start = 100, .end = 300, .every = 50};
    cr_assert_eq(ct_prune_check(&o), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_prune_target(&o, 99), 0.0);
    cr_assert_float_eq(ct_prune_target(&o, 100), 0.1, 1e-15);
    /* halfway: s_f + (s_i - s_f) * 0.5^3 = 0.9 - 0.8 / 8 */
    cr_assert_float_eq(ct_prune_target(&o, 200), 0.8, 1e-15);
    cr_assert_float_eq(ct_prune_target(&o, 250), 0.9 - 0.8 / 64, 1e-15);
    cr_assert_eq(ct_prune_target(&o, 300), 0.9);
    cr_assert_eq(ct_prune_target(&o, 5000), 0.9);
    cr_assert(!ct_prune_is_step(&o, 99) && ct_prune_is_step(&o, 100) && !ct_prune_is_step(&o, 120));
    cr_assert(ct_prune_is_step(&o, 150) && ct_prune_is_step(&o, 300) && !ct_prune_is_step(&o, 350));
    o.end = 310; /* the end is a pruning step even off the grid */
    cr_assert(ct_prune_is_step(&o, 310) && ct_prune_is_step(&o, 300));
}

Test(prune, option_checks_name_the_field) {
    ct_prune_opts o = {.sparsity = 1.0, .end = 10};
    cr_assert_eq(ct_prune_check(&o), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "sparsity 1 is outside [0, 1)"), "%s", ct_last_error());
    o = (ct_prune_opts){.sparsity = -0.5, .end = 10};
    cr_assert_eq(ct_prune_check(&o), CT_ERR_INVALID_ARG);
    o = (ct_prune_opts){.sparsity = 0.5, .start = 20, .end = 10};
    cr_assert_eq(ct_prune_check(&o), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "start step 20 is after end step 10"), "%s", ct_last_error());
    ct_prune_scope s;
    cr_assert_eq(ct_prune_scope_parse("global", &s), CT_OK);
    cr_assert_eq(s, CT_PRUNE_GLOBAL);
    cr_assert_eq(ct_prune_scope_parse("everywhere", &s), CT_ERR_NOT_FOUND);
    ct_prune_structure st;
    cr_assert_eq(ct_prune_structure_parse("neuron", &st), CT_OK);
    cr_assert_str_eq(ct_prune_structure_name(st), "neuron");
}

Test(prune, cpu_mask_apply_zeroes_only_masked) {
    const ct_backend *be = ct_cpu_backend();
    cr_assert_not_null(be->mask_apply);
    float f[5] = {1.5f, -2.0f, 3.25f, NAN, -0.0f};
    const uint8_t m[5] = {1, 0, 1, 0, 1};
    cr_assert_eq(be->mask_apply(f, m, CT_F32, 5), CT_OK);
    cr_assert(f[0] == 1.5f && f[1] == 0.0f && !signbit(f[1]) && f[2] == 3.25f && f[3] == 0.0f);
    cr_assert(f[4] == 0.0f && signbit(f[4]), "an unmasked entry keeps its bits");
    double d[3] = {7, 8, 9};
    const uint8_t md[3] = {0, 1, 0};
    cr_assert_eq(be->mask_apply(d, md, CT_F64, 3), CT_OK);
    cr_assert(d[0] == 0 && d[1] == 8 && d[2] == 0);
    int32_t i[1];
    cr_assert_eq(be->mask_apply(i, md, CT_I32, 1), CT_ERR_DTYPE);
}

/* One run to the end; the trainer is returned for inspection. */
static ct_trainer *run(const ct_prune_opts *po, const ct_dataset *ds) {
    ct_train_opts o = base_opts(po);
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    return t;
}

Test(prune, global_unstructured_exact_count_and_state_zero) {
    ct_dataset *ds = blobs(256, 7);
    /* 4 epochs of 8 steps: pruning from step 2 to 24 every 2 steps */
    ct_prune_opts po = {.sparsity = 0.75, .start = 2, .end = 24, .every = 2, .scope = CT_PRUNE_GLOBAL};
    ct_trainer *t = run(&po, ds);
    int64_t n1, n2, n3, nb;
    int64_t z = zeros_of(t, "fc1.weight", &n1) + zeros_of(t, "fc2.weight", &n2) + zeros_of(t, "out.weight", &n3);
    int64_t total = n1 + n2 + n3;
    cr_assert_eq(z, (int64_t)floor(0.75 * (double)total), "%lld zeros of %lld", (long long)z, (long long)total);
    cr_assert_eq(zeros_of(t, "fc1.bias", &nb), 0, "biases are not pruned");
    double overall;
    ct_sparsity sp[4];
    int n;
    cr_assert_eq(ct_weight_sparsity(ct_trainer_graph(t), ct_trainer_program(t), sp, 4, &n, &overall), CT_OK);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(sp[0].name, "fc1.weight");
    cr_assert_float_eq(overall, (double)z / (double)total, 1e-12);
    /* Adam's moments are zero where the weights are pruned. */
    float *w = param(t, "fc1.weight", &n1);
    ct_graph *g = ct_trainer_graph(t);
    size_t off = ct_program_param_offset(ct_trainer_program(t), ct_graph_param(g, 0));
    size_t pn = ct_program_param_numel(ct_trainer_program(t));
    float *m = malloc(pn * sizeof *m);
    cr_assert_eq(ct_optimizer_read_state(ct_trainer_optimizer(t), "exp_avg", m, pn * sizeof *m), CT_OK);
    int64_t live_moments = 0;
    for (int64_t i = 0; i < n1; i++) {
        if (w[i] == 0.0f) cr_assert_eq(m[off + (size_t)i], 0.0f, "exp_avg of pruned fc1.weight[%lld]", (long long)i);
        else live_moments += m[off + (size_t)i] != 0.0f;
    }
    cr_assert_gt(live_moments, 0);
    free(m);
    free(w);
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

Test(prune, layer_scope_prunes_each_layer) {
    ct_dataset *ds = blobs(256, 8);
    ct_prune_opts po = {.sparsity = 0.5, .start = 0, .end = 16, .every = 4, .scope = CT_PRUNE_LAYER};
    ct_trainer *t = run(&po, ds);
    const char *names[] = {"fc1.weight", "fc2.weight", "out.weight"};
    for (int i = 0; i < 3; i++) {
        int64_t n, z = zeros_of(t, names[i], &n);
        cr_assert_eq(z, n / 2, "%s: %lld zeros of %lld", names[i], (long long)z, (long long)n);
    }
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

Test(prune, neuron_structure_removes_rows_not_the_classifier) {
    ct_dataset *ds = blobs(256, 9);
    ct_prune_opts po = {.sparsity = 0.5, .end = 16, .every = 4, .scope = CT_PRUNE_LAYER,
                        .structure = CT_PRUNE_NEURON, .norm = CT_PRUNE_L2};
    ct_trainer *t = run(&po, ds);
    int64_t n;
    float *w = param(t, "fc1.weight", &n); /* [16, 8] */
    int dead = 0;
    for (int r = 0; r < 16; r++) {
        int zeros = 0;
        for (int c = 0; c < FEAT; c++) zeros += w[r * FEAT + c] == 0.0f;
        cr_assert(zeros == 0 || zeros == FEAT, "row %d is partly pruned (%d zeros)", r, zeros);
        dead += zeros == FEAT;
    }
    cr_assert_eq(dead, 8);
    free(w);
    int64_t z = zeros_of(t, "fc2.weight", &n); /* [12, 16]: 6 rows, and the columns of fc1's dead rows stay */
    cr_assert_geq(z, 6 * 16);
    cr_assert_eq(zeros_of(t, "out.weight", &n), 0, "the classifier's rows are the classes");
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

Test(prune, resume_continues_bit_exactly_with_masks) {
    ct_dataset *ds = blobs(256, 10);
    ct_prune_opts po = {.sparsity = 0.6, .start = 4, .end = 28, .every = 3};
    ct_trainer *whole = run(&po, ds);
    char dir[] = "/tmp/ctrain_test_prune_XXXXXX", path[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/half.safetensors", dir);
    ct_train_opts o = base_opts(&po);
    o.epochs = 4;
    o.max_steps = 13; /* stops in the middle of pruning */
    o.save_path = path;
    ct_trainer *a = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_not_null(a, "%s", ct_last_error());
    cr_assert_eq(ct_trainer_run(a, NULL), CT_OK, "%s", ct_last_error());
    ct_trainer_free(a);
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f);
    int mi = ct_st_find(f, "prune.mask.fc2.weight");
    cr_assert_geq(mi, 0, "the checkpoint holds the masks");
    ct_dtype dt;
    ct_shape s;
    cr_assert_eq(ct_st_info(f, mi, &dt, &s), CT_OK);
    cr_assert(dt == CT_U8 && s.ndim == 2 && s.dim[0] == 12 && s.dim[1] == 16);
    cr_assert_lt(ct_st_find(f, "prune.mask.fc2.bias"), 0);
    ct_st_close(f);
    o = base_opts(&po);
    ct_trainer *b = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_eq(ct_trainer_resume(b, path), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_trainer_run(b, NULL), CT_OK, "%s", ct_last_error());
    size_t bytes = ct_program_param_numel(ct_trainer_program(b)) * sizeof(float);
    float *pa = malloc(bytes), *pb = malloc(bytes);
    cr_assert_eq(ct_program_read_params(ct_trainer_program(whole), pa, bytes), CT_OK);
    cr_assert_eq(ct_program_read_params(ct_trainer_program(b), pb, bytes), CT_OK);
    cr_assert_eq(memcmp(pa, pb, bytes), 0, "the resumed run's weights differ from the uninterrupted run's");
    free(pa);
    free(pb);
    ct_trainer_free(b);
    ct_trainer_free(whole);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    ct_dataset_free(ds);
}

Test(prune, nothing_to_prune_and_bad_options_refused) {
    ct_dataset *ds = blobs(64, 11);
    n_hidden = 0; /* one linear layer: no hidden neuron */
    ct_prune_opts po = {.sparsity = 0.5, .structure = CT_PRUNE_NEURON};
    ct_train_opts o = base_opts(&po);
    cr_assert_null(ct_trainer_new(&o, ds, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "nothing to prune: no hidden layer"), "%s", ct_last_error());
    po.structure = CT_PRUNE_CHANNEL;
    cr_assert_null(ct_trainer_new(&o, ds, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "no convolution weight"), "%s", ct_last_error());
    n_hidden = 2;
    po = (ct_prune_opts){.sparsity = 0.5, .start = 50, .end = 5};
    cr_assert_null(ct_trainer_new(&o, ds, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "start step 50 is after end step 5"), "%s", ct_last_error());
    po = (ct_prune_opts){.sparsity = 1.5};
    cr_assert_null(ct_trainer_new(&o, ds, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "sparsity 1.5 is outside [0, 1)"), "%s", ct_last_error());
    ct_dataset_free(ds);
}

Test(prune, channel_structure_removes_conv_filters) {
    ct_dataset *ds = blobs(256, 12);
    ct_prune_opts po = {.sparsity = 0.5, .end = 16, .every = 4, .scope = CT_PRUNE_LAYER,
                        .structure = CT_PRUNE_CHANNEL};
    ct_train_opts o = base_opts(&po);
    o.model = build_cnn;
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    cr_assert_eq(ct_trainer_run(t, NULL), CT_OK, "%s", ct_last_error());
    int64_t n;
    float *w = param(t, "conv1.weight", &n); /* [6, 2, 1, 1] */
    cr_assert_eq(n, 12);
    int dead = 0;
    for (int c = 0; c < 6; c++) {
        bool zero = w[2 * c] == 0.0f && w[2 * c + 1] == 0.0f;
        cr_assert(zero || (w[2 * c] != 0.0f && w[2 * c + 1] != 0.0f), "channel %d is partly pruned", c);
        dead += zero;
    }
    cr_assert_eq(dead, 3);
    free(w);
    cr_assert_eq(zeros_of(t, "out.weight", &n), 0, "linear weights are not channels");
    ct_trainer_free(t);
    ct_dataset_free(ds);
}
