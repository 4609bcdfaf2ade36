/* The gradient norm that clipping computes, as the trainer reports it
 * (ct_train_progress.grad_norm, the metrics lines' "grad_norm", the
 * TensorBoard tag train/grad_norm): equal to ct_clip_grad_norm's norm of the
 * last step, whether that step ran plain or fused (on a GPU the fused
 * step's norm stays on the device until a metrics line reads it; the fused
 * path is forced onto the CPU here, as test_step_graph.c does), and absent
 * without clipping. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <ctrain/ctrain.h>

#include "tmpfiles.h"
#include "train/train_internal.h"

#define FEAT 6
#define CLASSES 3

static ct_node model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training, (void)user;
    ct_node h = ct_relu(g, ct_linear(g, "fc1", x, 16, true, NULL));
    return ct_linear(g, "fc2", h, CLASSES, true, NULL);
}

static ct_dataset *data(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)n * FEAT * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    cr_assert(x && y);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(ct_philox_u32(seed, 1, 0, (uint64_t)i) % CLASSES);
        for (int f = 0; f < FEAT; f++)
            x[i * FEAT + f] = (float)((f % CLASSES == y[i] ? 1.5 : 0) +
                                      ct_philox_uniform(seed, 2, 0, (uint64_t)(i * FEAT + f)));
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(n, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds), CT_OK, "%s", ct_last_error());
    free(x), free(y);
    return ds;
}

/* The grad_norm of each metrics line (NAN where null), and the count. */
static int read_norms(const char *path, double *norms, int cap, bool *has_key) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0;
    *has_key = true;
    while (fgets(line, sizeof line, f) && n < cap) {
        cJSON *o = cJSON_Parse(line);
        cr_assert_not_null(o);
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "grad_norm");
        *has_key &= g != NULL;
        norms[n++] = cJSON_IsNumber(g) ? g->valuedouble : NAN;
        cJSON_Delete(o);
    }
    fclose(f);
    return n;
}

typedef struct last_norm {
    double norm;   /* of the last STEP event */
    int steps;
} last_norm;

static void on_progress(const ct_train_progress *p, void *user) {
    last_norm *l = user;
    if (p->event == CT_TRAIN_STEP) l->norm = p->grad_norm, l->steps++;
}

static int run(const char *metrics, bool fused, int64_t batch, double clip, double *norms, bool *has_key,
               last_norm *seen) {
    ct_dataset *train = data(100, 3), *val = data(30, 4);
    ct_train_opts o = {.model = model, .seed = 4, .data_seed = 5, .batch_size = batch, .epochs = 3,
                       .optim = {.kind = CT_OPTIM_SGD, .lr = 0.2, .momentum = 0.9}, .clip_norm = clip,
                       .metrics_path = metrics, .quiet = true, .progress = seen ? on_progress : NULL,
                       .progress_user = seen};
    ct_trainer *t = ct_trainer_new(&o, train, val, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    t->fused = fused;
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    ct_trainer_free(t);
    ct_dataset_free(train), ct_dataset_free(val);
    return read_norms(metrics, norms, 8, has_key);
}

/* batch 20: every step fused; batch 16: the short last batch of each epoch
 * runs plain, so the last step's norm is the host's. */
static void same_norms(int64_t batch) {
    char *dir = make_tmpdir();
    double plain[8], fused[8];
    bool k1, k2;
    last_norm seen = {0};
    int n1 = run(path_in(dir, "plain.jsonl"), false, batch, 0.3, plain, &k1, &seen);
    int n2 = run(path_in(dir, "fused.jsonl"), true, batch, 0.3, fused, &k2, NULL);
    cr_assert_eq(n1, 4); /* three epochs and the end */
    cr_assert_eq(n2, n1);
    cr_assert(k1 && k2, "a line without grad_norm");
    for (int i = 0; i < n1; i++) {
        cr_assert(isfinite(plain[i]) && plain[i] > 0.01, "line %d: norm %g", i + 1, plain[i]);
        cr_assert(fabs(plain[i] - fused[i]) <= 1e-12 * plain[i], "line %d: plain %.17g, fused %.17g", i + 1, plain[i],
                  fused[i]);
    }
    /* The progress callback's last step saw the final line's norm. */
    cr_assert_eq(seen.steps, batch == 20 ? 15 : 21);
    cr_assert_eq(seen.norm, plain[n1 - 1]);
    rm_tmpdir(dir);
}

Test(grad_norm, fused_steps_report_the_plain_norm) { same_norms(20); }
Test(grad_norm, a_short_last_batch_reports_its_own_norm) { same_norms(16); }

Test(grad_norm, absent_without_clipping) {
    char *dir = make_tmpdir();
    double norms[8];
    bool has_key;
    last_norm seen = {0};
    int n = run(path_in(dir, "m.jsonl"), false, 20, 0, norms, &has_key, &seen);
    cr_assert_eq(n, 4);
    cr_assert(!has_key, "grad_norm written without clipping");
    for (int i = 0; i < n; i++) cr_assert(isnan(norms[i]));
    cr_assert_eq(seen.steps, 15);
    cr_assert(isnan(seen.norm));
    rm_tmpdir(dir);
}
