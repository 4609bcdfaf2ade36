/* Weight files: the safetensors writer's atomic saves (a failure keeps the
 * old file), and a program's weights saved and loaded by name. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctrain/ctrain.h"
#include "ctrain/safetensors.h"

#include "st_files.h"

TestSuite(st_save, .init = make_dir, .fini = cleanup_dir);
TestSuite(weights, .init = make_dir, .fini = cleanup_dir);

/* ------------------------------------------------------------ writer and saving */

Test(st_save, writer_refuses_bad_input) {
    ct_st_writer *w = ct_st_writer_new();
    float x[4] = {0};
    cr_assert_eq(ct_st_writer_add(w, "a", CT_F32, (ct_shape){1, {4}}, x), CT_OK);
    cr_expect_eq(ct_st_writer_add(w, "a", CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect(strstr(ct_last_error(), "'a'") != NULL, "%s", ct_last_error());
    cr_expect_eq(ct_st_writer_add(w, "__metadata__", CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "", CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, NULL, CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "bad\xff", CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "neg", CT_F32, (ct_shape){1, {-4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "nodata", CT_F32, (ct_shape){1, {4}}, NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "dt", CT_DTYPE_COUNT, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "nd", CT_F32, (ct_shape){9, {1}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "big", CT_F32, (ct_shape){3, {1 << 30, 1 << 30, 1 << 30}}, x),
                 CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_meta(w, "k", NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_meta(w, "k\xc0\x80", "v"), CT_ERR_INVALID_ARG); /* overlong NUL */
    cr_expect_eq(ct_st_writer_save(w, ""), CT_ERR_INVALID_ARG);
    /* After all the refusals the writer still holds just "a". */
    cr_assert_eq(ct_st_writer_save(w, in_dir("ok.safetensors")), CT_OK);
    ct_st_file *f = ct_st_open(in_dir("ok.safetensors"));
    cr_assert_not_null(f);
    cr_expect_eq(ct_st_count(f), 1);
    ct_st_close(f);
    ct_st_writer_free(w);
    ct_st_writer_free(NULL);
}

Test(st_save, empty_writer_gives_a_valid_file) {
    ct_st_writer *w = ct_st_writer_new();
    cr_assert_eq(ct_st_writer_save(w, in_dir("e.safetensors")), CT_OK);
    ct_st_writer_free(w);
    size_t n;
    unsigned char *b = read_bytes(in_dir("e.safetensors"), &n);
    cr_assert_eq(n, 16);
    cr_expect_eq(memcmp(b + 8, "{}      ", 8), 0);
    free(b);
    ct_st_file *f = ct_st_open(in_dir("e.safetensors"));
    cr_assert_not_null(f);
    cr_expect_eq(ct_st_count(f), 0);
    ct_st_close(f);
}

static ct_st_writer *writer_of(float value, int64_t n) {
    ct_st_writer *w = ct_st_writer_new();
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = value;
    cr_assert_eq(ct_st_writer_add(w, "x", CT_F32, (ct_shape){1, {n}}, x), CT_OK);
    free(x);
    return w;
}

static float first_value(const char *path) {
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    float v;
    memcpy(&v, ct_st_data(f, 0), sizeof v);
    ct_st_close(f);
    return v;
}

Test(st_save, replaces_an_existing_file) {
    const char *path = in_dir("w.safetensors");
    ct_st_writer *w1 = writer_of(1, 4), *w2 = writer_of(2, 1000);
    cr_assert_eq(ct_st_writer_save(w1, path), CT_OK);
    cr_expect_eq(first_value(path), 1.0f);
    cr_assert_eq(ct_st_writer_save(w2, path), CT_OK, "%s", ct_last_error());
    cr_expect_eq(first_value(path), 2.0f);
    cr_assert_eq(ct_st_writer_save(w1, path), CT_OK); /* shorter than the file it replaces */
    cr_expect_eq(first_value(path), 1.0f);
    cr_expect_eq(dir_entries(g_dir), 1, "a temporary file was left behind");
    ct_st_writer_free(w1);
    ct_st_writer_free(w2);
}

Test(st_save, missing_directory_fails_and_leaves_nothing) {
    ct_st_writer *w = writer_of(1, 4);
    const char *path = in_dir("no/such/dir/w.safetensors");
    cr_expect_eq(ct_st_writer_save(w, path), CT_ERR_IO);
    cr_expect(strstr(ct_last_error(), "no/such/dir") != NULL, "%s", ct_last_error());
    cr_expect_eq(dir_entries(g_dir), 0);
    ct_st_writer_free(w);
}

Test(st_save, path_that_is_a_directory_fails_and_keeps_it) {
    const char *path = in_dir("taken");
    cr_assert_eq(mkdir(path, 0755), 0);
    const char *inside = in_dir("taken/old.safetensors");
    ct_st_writer *old = writer_of(7, 4);
    cr_assert_eq(ct_st_writer_save(old, inside), CT_OK);
    ct_st_writer *w = writer_of(1, 4);
    cr_expect_eq(ct_st_writer_save(w, path), CT_ERR_IO);
    cr_expect(strstr(ct_last_error(), "taken") != NULL, "%s", ct_last_error());
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect(S_ISDIR(st.st_mode));
    cr_expect_eq(first_value(inside), 7.0f);
    cr_expect_eq(dir_entries(g_dir), 1, "a temporary file was left behind");
    cr_expect_eq(dir_entries(path), 1);
    ct_st_writer_free(w);
    ct_st_writer_free(old);
}

/* A write that fails half-way (the file size limit stands in for a full
 * disk): the old file must survive intact and the temporary go away. The
 * limit holds in this test's own process only. */
Test(st_save, failure_mid_write_keeps_the_old_file) {
    const char *path = in_dir("w.safetensors");
    ct_st_writer *old = writer_of(5, 16);
    cr_assert_eq(ct_st_writer_save(old, path), CT_OK);
    size_t n_before;
    unsigned char *before = read_bytes(path, &n_before);

    signal(SIGXFSZ, SIG_IGN); /* get EFBIG from write() instead of dying */
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    struct rlimit small = {.rlim_cur = 64 * 1024, .rlim_max = rl.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    ct_st_writer *big = writer_of(9, 1 << 20); /* 4 MiB */
    ct_status st = ct_st_writer_save(big, path);
    setrlimit(RLIMIT_FSIZE, &rl);
    cr_expect_eq(st, CT_ERR_IO);
    cr_expect(strstr(ct_last_error(), path) != NULL, "%s", ct_last_error());

    size_t n_after;
    unsigned char *after = read_bytes(path, &n_after);
    cr_assert_not_null(after);
    cr_expect_eq(n_after, n_before);
    cr_expect_eq(memcmp(before, after, n_before), 0, "the old file was modified");
    cr_expect_eq(dir_entries(g_dir), 1, "a temporary file was left behind");
    free(before);
    free(after);
    ct_st_writer_free(old);
    ct_st_writer_free(big);
}

/* ------------------------------------------------------------ weights by name */

typedef struct model {
    ct_graph *g;
    ct_program *p;
} model;

static const char *k_names[3] = {"fc.weight", "fc.bias", "emb"};
static const ct_shape k_shapes[3] = {{2, {3, 4}}, {1, {3}}, {2, {5, 2}}};

static ct_graph *three_params(ct_dtype dt) {
    ct_graph *g = ct_graph_new();
    ct_param(g, k_names[0], dt, k_shapes[0], ct_init_xavier_uniform(1.0));
    ct_param(g, k_names[1], dt, k_shapes[1], ct_init_uniform(-1, 1));
    ct_param(g, k_names[2], dt, k_shapes[2], ct_init_normal(0, 1));
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    return g;
}

static ct_program *compile_seed(ct_graph *g, uint64_t seed) {
    ct_graph_set_seed(g, seed);
    ct_program *p = ct_compile(g, NULL);
    cr_assert_not_null(p, "%s", ct_last_error());
    return p;
}

/* A host copy of all parameters, to check that a failed load changed none. */
static void *snapshot(const ct_program *p, size_t *bytes) {
    *bytes = ct_program_param_numel(p) * ct_dtype_size(ct_program_param_dtype(p));
    void *buf = malloc(*bytes ? *bytes : 1);
    cr_assert_eq(ct_program_read_params(p, buf, *bytes), CT_OK);
    return buf;
}

static void expect_same_params(const ct_program *a, const ct_program *b) {
    size_t na, nb;
    void *x = snapshot(a, &na), *y = snapshot(b, &nb);
    cr_assert_eq(na, nb);
    cr_expect_eq(memcmp(x, y, na), 0, "parameters differ");
    free(x);
    free(y);
}

static void expect_unchanged(const ct_program *p, const void *before, size_t bytes) {
    size_t n;
    void *now = snapshot(p, &n);
    cr_assert_eq(n, bytes);
    cr_expect_eq(memcmp(now, before, bytes), 0, "a failed load modified the program");
    free(now);
}

/* A file of the first program's parameters, under prefix + name, with
 * parameter `skip` left out (-1: none), `bad_shape` given a wrong shape,
 * optional extra tensors, and the values converted to `dt`. */
static void write_params(const ct_program *p, const char *path, const char *prefix, int skip, int bad_shape,
                         bool extras, ct_dtype dt) {
    ct_st_writer *w = ct_st_writer_new();
    for (int i = 0; i < 3; i++) {
        if (i == skip) continue;
        int64_t n = ct_shape_numel(k_shapes[i]);
        float v[32];
        cr_assert_eq(ct_program_get_param(p, k_names[i], v, (size_t)n * 4), CT_OK);
        unsigned char out[32 * 8];
        for (int64_t k = 0; k < n; k++) {
            if (dt == CT_F32) memcpy(out + k * 4, &v[k], 4);
            else if (dt == CT_F64) { double d = v[k]; memcpy(out + k * 8, &d, 8); }
            else if (dt == CT_F16) { uint16_t h = ct_f32_to_f16(v[k]); memcpy(out + k * 2, &h, 2); }
            else if (dt == CT_BF16) { uint16_t h = ct_f32_to_bf16(v[k]); memcpy(out + k * 2, &h, 2); }
            else { int32_t q = (int32_t)k; memcpy(out + k * 4, &q, 4); }
        }
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, k_names[i]);
        ct_shape sh = k_shapes[i];
        if (i == bad_shape) sh = (ct_shape){2, {n, 1}};
        cr_assert_eq(ct_st_writer_add(w, name, dt, sh, out), CT_OK, "%s", ct_last_error());
    }
    if (extras) {
        float rm[3] = {0, 0, 0};
        cr_assert_eq(ct_st_writer_add(w, "bn.running_mean", CT_F32, (ct_shape){1, {3}}, rm), CT_OK);
    }
    cr_assert_eq(ct_st_writer_save(w, path), CT_OK);
    ct_st_writer_free(w);
}

Test(weights, save_and_load_round_trip) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1), *p2 = compile_seed(g, 2);
    size_t n;
    void *a = snapshot(p1, &n), *b = snapshot(p2, &n);
    cr_assert_neq(memcmp(a, b, n), 0, "two seeds gave the same weights; the test would prove nothing");
    free(a);
    free(b);

    const char *path = in_dir("w.safetensors");
    cr_assert_eq(ct_save_weights(g, p1, path), CT_OK, "%s", ct_last_error());
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f);
    cr_expect_eq(ct_st_count(f), 3);
    cr_expect_str_eq(ct_st_meta(f, "format"), "ctrain");
    ct_shape sh;
    ct_dtype dt;
    cr_assert_eq(ct_st_info(f, ct_st_find(f, "fc.weight"), &dt, &sh), CT_OK);
    cr_expect(ct_shape_equal(sh, k_shapes[0]) && dt == CT_F32);
    ct_st_close(f);

    int loaded = -1;
    ct_load_opts o = {.loaded = &loaded};
    cr_assert_eq(ct_load_weights(g, p2, path, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 3);
    expect_same_params(p1, p2);
    cr_assert_eq(ct_load_weights(g, p2, path, NULL), CT_OK); /* NULL opts: strict */
    ct_program_free(p1);
    ct_program_free(p2);
    ct_graph_free(g);
}

Test(weights, f64_parameters) {
    ct_graph *g = three_params(CT_F64);
    ct_program *p1 = compile_seed(g, 3), *p2 = compile_seed(g, 4);
    const char *path = in_dir("w64.safetensors");
    cr_assert_eq(ct_save_weights(g, p1, path), CT_OK, "%s", ct_last_error());
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f);
    ct_dtype dt;
    cr_assert_eq(ct_st_info(f, 0, &dt, NULL), CT_OK);
    cr_expect_eq(dt, CT_F64);
    ct_st_close(f);
    cr_assert_eq(ct_load_weights(g, p2, path, NULL), CT_OK, "%s", ct_last_error());
    expect_same_params(p1, p2);
    ct_program_free(p1);
    ct_program_free(p2);
    ct_graph_free(g);
}

Test(weights, strict_errors_change_nothing) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1), *p2 = compile_seed(g, 2);
    size_t n;
    void *before = snapshot(p2, &n);
    int loaded = -1;
    ct_load_opts o = {.loaded = &loaded};

    const char *extra = in_dir("extra.safetensors");
    write_params(p1, extra, "", -1, -1, true, CT_F32);
    cr_expect_eq(ct_load_weights(g, p2, extra, &o), CT_ERR_NOT_FOUND);
    cr_expect(strstr(ct_last_error(), "bn.running_mean") != NULL, "%s", ct_last_error());
    cr_expect_eq(loaded, 0);
    expect_unchanged(p2, before, n);

    const char *missing = in_dir("missing.safetensors");
    write_params(p1, missing, "", 1, -1, false, CT_F32);
    cr_expect_eq(ct_load_weights(g, p2, missing, &o), CT_ERR_NOT_FOUND);
    cr_expect(strstr(ct_last_error(), "fc.bias") != NULL, "%s", ct_last_error());
    expect_unchanged(p2, before, n);

    /* The wrong shape is on the last parameter, after two good ones. */
    const char *shape = in_dir("shape.safetensors");
    write_params(p1, shape, "", -1, 2, false, CT_F32);
    cr_expect_eq(ct_load_weights(g, p2, shape, &o), CT_ERR_SHAPE);
    cr_expect(strstr(ct_last_error(), "emb") && strstr(ct_last_error(), "[10, 1]") &&
                  strstr(ct_last_error(), "[5, 2]"),
              "%s", ct_last_error());
    expect_unchanged(p2, before, n);
    /* A wrong shape is an error even when not strict. */
    o.non_strict = true;
    cr_expect_eq(ct_load_weights(g, p2, shape, &o), CT_ERR_SHAPE);
    expect_unchanged(p2, before, n);
    o.non_strict = false;

    const char *ints = in_dir("ints.safetensors");
    write_params(p1, ints, "", -1, -1, false, CT_I32);
    cr_expect_eq(ct_load_weights(g, p2, ints, &o), CT_ERR_DTYPE);
    cr_expect(strstr(ct_last_error(), "I32") != NULL, "%s", ct_last_error());
    expect_unchanged(p2, before, n);

    const char *bad = in_dir("bad.safetensors");
    write_bytes(bad, "garbage!garbage!", 16);
    cr_expect_eq(ct_load_weights(g, p2, bad, &o), CT_ERR_FORMAT);
    cr_expect_eq(ct_load_weights(g, p2, in_dir("absent"), &o), CT_ERR_IO);
    expect_unchanged(p2, before, n);

    free(before);
    ct_program_free(p1);
    ct_program_free(p2);
    ct_graph_free(g);
}

Test(weights, non_strict_skips_extras_and_missing) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1), *p2 = compile_seed(g, 2);
    int loaded = -1;
    ct_load_opts o = {.non_strict = true, .loaded = &loaded};

    const char *extra = in_dir("extra.safetensors");
    write_params(p1, extra, "", -1, -1, true, CT_F32);
    cr_assert_eq(ct_load_weights(g, p2, extra, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 3);
    expect_same_params(p1, p2);

    /* Missing fc.bias: the other two load, fc.bias keeps p3's own value. */
    ct_program *p3 = compile_seed(g, 3);
    float bias_before[3], bias_after[3];
    cr_assert_eq(ct_program_get_param(p3, "fc.bias", bias_before, sizeof bias_before), CT_OK);
    const char *missing = in_dir("missing.safetensors");
    write_params(p1, missing, "", 1, -1, true, CT_F32);
    cr_assert_eq(ct_load_weights(g, p3, missing, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 2);
    cr_assert_eq(ct_program_get_param(p3, "fc.bias", bias_after, sizeof bias_after), CT_OK);
    cr_expect_eq(memcmp(bias_before, bias_after, sizeof bias_after), 0);
    float w1[12], w3[12];
    cr_assert_eq(ct_program_get_param(p1, "fc.weight", w1, sizeof w1), CT_OK);
    cr_assert_eq(ct_program_get_param(p3, "fc.weight", w3, sizeof w3), CT_OK);
    cr_expect_eq(memcmp(w1, w3, sizeof w1), 0);

    /* A PyTorch state_dict with an I64 counter that is not a parameter. */
    const char *sd = in_dir("sd.safetensors");
    write_st(sd, k_ref_sd_header, k_ref_sd_data, sizeof k_ref_sd_data);
    cr_assert_eq(ct_load_weights(g, p3, sd, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 0);
    ct_program_free(p1);
    ct_program_free(p2);
    ct_program_free(p3);
    ct_graph_free(g);
}

Test(weights, prefix_stripping) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1), *p2 = compile_seed(g, 2);
    size_t n;
    void *before = snapshot(p2, &n);
    const char *path = in_dir("prefixed.safetensors");
    write_params(p1, path, "model.", -1, -1, false, CT_F32);

    cr_expect_eq(ct_load_weights(g, p2, path, NULL), CT_ERR_NOT_FOUND);
    cr_expect(strstr(ct_last_error(), "model.fc.weight") != NULL, "%s", ct_last_error());
    expect_unchanged(p2, before, n);

    int loaded = -1;
    ct_load_opts o = {.strip_prefix = "model.", .loaded = &loaded};
    cr_assert_eq(ct_load_weights(g, p2, path, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 3);
    expect_same_params(p1, p2);

    /* "model.fc.bias" and "fc.bias" would both land on fc.bias. */
    ct_st_writer *w = ct_st_writer_new();
    float b[3] = {1, 2, 3};
    cr_assert_eq(ct_st_writer_add(w, "model.fc.bias", CT_F32, k_shapes[1], b), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "fc.bias", CT_F32, k_shapes[1], b), CT_OK);
    cr_assert_eq(ct_st_writer_save(w, in_dir("twice.safetensors")), CT_OK);
    ct_st_writer_free(w);
    o.non_strict = true;
    free(before);
    before = snapshot(p2, &n);
    cr_expect_eq(ct_load_weights(g, p2, in_dir("twice.safetensors"), &o), CT_ERR_INVALID_ARG);
    cr_expect_eq(loaded, 0);
    expect_unchanged(p2, before, n);
    free(before);
    ct_program_free(p1);
    ct_program_free(p2);
    ct_graph_free(g);
}

Test(weights, half_and_double_files_convert) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1);
    const ct_dtype dts[3] = {CT_F64, CT_F16, CT_BF16};
    for (int k = 0; k < 3; k++) {
        ct_program *p2 = compile_seed(g, 10 + (uint64_t)k);
        const char *path = in_dir("conv.safetensors");
        write_params(p1, path, "", -1, -1, false, dts[k]);
        cr_assert_eq(ct_load_weights(g, p2, path, NULL), CT_OK, "%s: %s", ct_dtype_name(dts[k]), ct_last_error());
        float a[12], b[12];
        cr_assert_eq(ct_program_get_param(p1, "fc.weight", a, sizeof a), CT_OK);
        cr_assert_eq(ct_program_get_param(p2, "fc.weight", b, sizeof b), CT_OK);
        for (int i = 0; i < 12; i++) {
            float want = dts[k] == CT_F64   ? a[i]
                         : dts[k] == CT_F16 ? ct_f16_to_f32(ct_f32_to_f16(a[i]))
                                            : ct_bf16_to_f32(ct_f32_to_bf16(a[i]));
            cr_expect_eq(b[i], want, "%s element %d: %g vs %g", ct_dtype_name(dts[k]), i, b[i], want);
        }
        ct_program_free(p2);
    }
    ct_program_free(p1);
    ct_graph_free(g);
}

Test(weights, bad_arguments) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p = compile_seed(g, 1);
    cr_expect_eq(ct_save_weights(NULL, p, in_dir("x")), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_save_weights(g, p, NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_load_weights(g, NULL, in_dir("x"), NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_save_weights(g, p, in_dir("no/dir/x")), CT_ERR_IO);
    cr_expect(strstr(ct_last_error(), "ct_save_weights") != NULL, "%s", ct_last_error());
    ct_program_free(p);
    ct_graph_free(g);
}
