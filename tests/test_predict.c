/* ct_predict_file (ctrain/predict.h) on a model with known weights: a
 * linear layer 3 -> 4 whose probabilities are computed here in double,
 * batches that do not divide the data, the argmax's first-maximum rule,
 * and errors that leave the result empty.
 */
#include <criterion/criterion.h>
#include <math.h>

#include <ctrain/ctrain.h>

#include "tmpfiles.h"

static ct_node linear_model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    return ct_linear(g, "fc", x, 4, true, NULL);
}

static const float W[4][3] = {{0.5f, -1.25f, 2.0f}, {-0.75f, 0.3f, 0.1f}, {1.5f, 0.2f, -0.6f}, {0.0f, 0.9f, 0.4f}};
static const float B[4] = {0.1f, -0.2f, 0.3f, 0.05f};

static void write_weights(const char *path) {
    ct_st_writer *w = ct_st_writer_new();
    cr_assert_not_null(w);
    cr_assert_eq(ct_st_writer_add(w, "fc.weight", CT_F32, (ct_shape){2, {4, 3}}, W), CT_OK, "%s",
                 ct_last_error());
    cr_assert_eq(ct_st_writer_add(w, "fc.bias", CT_F32, (ct_shape){1, {4}}, B), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_st_writer_save(w, path), CT_OK, "%s", ct_last_error());
    ct_st_writer_free(w);
}

Test(predict, probabilities_of_known_weights) {
    char *dir = make_tmpdir();
    const char *path = path_in(dir, "w.safetensors");
    write_weights(path);
    enum { N = 7 };
    float x[N][3];
    int32_t y[N] = {0};
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 3; k++) x[i][k] = (float)sin(1.7 * i + 0.9 * k) * (1.0f + (float)i / 3);
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(N, (ct_shape){1, {3}}, &x[0][0], y, 1, &ds), CT_OK);
    ct_prediction p;
    ct_eval_opts o = {.model = linear_model, .batch_size = 3}; /* 3 + 3 + a last batch of 1 */
    cr_assert_eq(ct_predict_file(&o, path, ds, &p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(p.count, N);
    cr_assert_eq(p.classes, 4);
    for (int i = 0; i < N; i++) {
        double z[4], mx = -INFINITY, sum = 0;
        int best = 0;
        for (int c = 0; c < 4; c++) {
            z[c] = B[c];
            for (int k = 0; k < 3; k++) z[c] += (double)W[c][k] * x[i][k];
            if (z[c] > mx) mx = z[c], best = c;
        }
        for (int c = 0; c < 4; c++) sum += exp(z[c] - mx);
        for (int c = 0; c < 4; c++)
            cr_assert_float_eq(p.probs[i * 4 + c], exp(z[c] - mx) / sum, 1e-6, "sample %d class %d", i, c);
        cr_assert_eq(p.label[i], best, "sample %d", i);
    }
    ct_prediction_free(&p);
    cr_assert_null(p.probs);
    ct_dataset_free(ds);
    rm_tmpdir(dir);
}

Test(predict, errors_leave_no_result) {
    char *dir = make_tmpdir();
    const char *path = path_in(dir, "w.safetensors");
    write_weights(path);
    float x[2][5] = {{1, 2, 3, 4, 5}, {5, 4, 3, 2, 1}};
    int32_t y[2] = {0, 0};
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(2, (ct_shape){1, {5}}, &x[0][0], y, 1, &ds), CT_OK);
    ct_prediction p = {.count = 99};
    ct_eval_opts o = {.model = linear_model};
    /* Samples of 5 values, weights for 3. */
    cr_assert_eq(ct_predict_file(&o, path, ds, &p), CT_ERR_SHAPE);
    cr_assert(strstr(ct_last_error(), "fc.weight"), "%s", ct_last_error());
    cr_assert_eq(p.count, 0);
    cr_assert_null(p.probs);
    cr_assert_neq(ct_predict_file(&o, path_in(dir, "none.safetensors"), ds, &p), CT_OK);
    cr_assert_null(p.label);
    cr_assert_eq(ct_predict_file(NULL, path, ds, &p), CT_ERR_INVALID_ARG);
    ct_dataset_free(ds);
    rm_tmpdir(dir);
}
