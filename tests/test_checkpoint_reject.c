/* Checkpoints and weights files that must be refused, and saves that must
 * not cost a run: a tensor of the wrong dtype or holding NaN, a corrupt
 * position, a FIFO given as a file, a save target that is no regular file,
 * a stale temporary file, a save path that cannot be written.
 *
 * Each bad file is a good checkpoint rewritten with one thing changed, and
 * every refusal is checked to name the file and the field at fault.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctrain/ctrain.h>
#include <ctrain/nn.h>

#include "expect_msg.h"

#define FEAT 4
#define CLASSES 3

static ct_node build(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    ct_node h = ct_activation(g, ct_linear(g, "fc1", x, 8, true, NULL), "relu");
    return ct_linear(g, "fc2", h, CLASSES, true, NULL);
}

static ct_dataset *data(void) {
    enum { N = 60 };
    float x[N * FEAT];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % CLASSES;
        for (int f = 0; f < FEAT; f++) x[i * FEAT + f] = (float)(f == y[i]) + 0.1f * (float)((i * 7 + f) % 5);
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(N, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds), CT_OK, "%s",
                 ct_last_error());
    return ds;
}

static char tmpdir[64];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ctrain_test_ckpt_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) cr_log_warn("could not remove %s", tmpdir);
}

TestSuite(ckpt, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 60);

static const char *tmp(const char *name) {
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static ct_train_opts opts(void) {
    return (ct_train_opts){.model = build,
                           .model_fingerprint = "ckpt test mlp",
                           .seed = 3,
                           .batch_size = 16,
                           .epochs = 2,
                           .optim = {.kind = CT_OPTIM_ADAM, .lr = 0.01},
                           .quiet = true};
}

/* A checkpoint after two epochs at tmp("good.safetensors"). */
static void make_checkpoint(ct_dataset *ds) {
    ct_train_opts o = opts();
    o.save_path = tmp("good.safetensors");
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    ct_trainer_free(t);
}

/* One change to a copy of src: a metadata value, or a tensor's dtype
 * relabelled (same bytes) or one of its F32 values replaced. */
typedef struct change {
    const char *meta_key, *meta_val;
    const char *tensor;
    ct_dtype relabel; /* CT_DTYPE_COUNT: keep */
    float value;      /* set as element 0 when !isnan(set_value) is asked */
    bool set_value;
} change;

static void rewrite(const char *src, const char *dst, change c) {
    ct_st_file *f = ct_st_open(src);
    cr_assert_not_null(f, "%s", ct_last_error());
    ct_st_writer *w = ct_st_writer_new();
    for (int i = 0; i < ct_st_count(f); i++) {
        ct_dtype dt;
        ct_shape s;
        cr_assert_eq(ct_st_info(f, i, &dt, &s), CT_OK);
        size_t n = ct_st_nbytes(f, i);
        unsigned char *buf = malloc(n ? n : 1);
        memcpy(buf, ct_st_data(f, i), n);
        if (c.tensor && strcmp(ct_st_name(f, i), c.tensor) == 0) {
            if (c.relabel != CT_DTYPE_COUNT) dt = c.relabel;
            if (c.set_value) memcpy(buf, &c.value, sizeof c.value);
        }
        cr_assert_eq(ct_st_writer_add(w, ct_st_name(f, i), dt, s, buf), CT_OK, "%s", ct_last_error());
        free(buf);
    }
    for (int i = 0; i < ct_st_meta_count(f); i++) {
        const char *k = ct_st_meta_key(f, i);
        const char *v = c.meta_key && strcmp(k, c.meta_key) == 0 ? c.meta_val : ct_st_meta(f, k);
        cr_assert_eq(ct_st_writer_meta(w, k, v), CT_OK);
    }
    cr_assert_eq(ct_st_writer_save(w, dst), CT_OK, "%s", ct_last_error());
    ct_st_writer_free(w);
    ct_st_close(f);
}

static change keep(void) { return (change){.relabel = CT_DTYPE_COUNT}; }

/* A fresh trainer's resume from path fails with st, the message naming the
 * file and every needle, and the weights unchanged. */
static void expect_resume_refused(ct_dataset *ds, const char *path, ct_status st, const char *a, const char *b) {
    ct_train_opts o = opts();
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_not_null(t);
    float before[32], after[32];
    ct_program *p = ct_trainer_program(t);
    cr_assert_eq(ct_program_get_param(p, "fc1.weight", before, sizeof before), CT_OK);
    cr_expect_eq(ct_trainer_resume(t, path), st, "%s", ct_last_error());
    expect_msg_has(path, a, b);
    cr_assert_eq(ct_program_get_param(p, "fc1.weight", after, sizeof after), CT_OK);
    cr_expect(memcmp(before, after, sizeof before) == 0, "a refused resume changed the weights");
    ct_trainer_free(t);
}

/* ------------------------------------------------------------ tensors */

Test(ckpt, an_integer_tensor_for_a_float_weight_is_refused_everywhere) {
    ct_dataset *ds = data();
    make_checkpoint(ds);
    change c = keep();
    c.tensor = "fc1.weight";
    c.relabel = CT_I32; /* same byte count: only the dtype check can tell */
    rewrite(tmp("good.safetensors"), tmp("i32.safetensors"), c);
    expect_resume_refused(ds, tmp("i32.safetensors"), CT_ERR_DTYPE, "fc1.weight", "I32");

    c.tensor = "optim.exp_avg.fc2.bias";
    rewrite(tmp("good.safetensors"), tmp("i32state.safetensors"), c);
    expect_resume_refused(ds, tmp("i32state.safetensors"), CT_ERR_DTYPE, "optim.exp_avg.fc2.bias", "I32");

    ct_train_opts o = opts();
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_eq(ct_trainer_init_from(t, tmp("i32.safetensors"), NULL, NULL), CT_ERR_DTYPE);
    expect_msg_has(tmp("i32.safetensors"), "fc1.weight", "I32");
    ct_eval_result e;
    cr_assert_eq(ct_evaluate_file(&(ct_eval_opts){.model = build}, tmp("i32.safetensors"), ds, &e), CT_ERR_DTYPE);
    expect_msg_has("fc1.weight", "I32");
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

Test(ckpt, a_nan_weight_is_refused_naming_the_tensor) {
    ct_dataset *ds = data();
    make_checkpoint(ds);
    change c = keep();
    c.tensor = "fc2.bias";
    c.set_value = true;
    c.value = NAN;
    rewrite(tmp("good.safetensors"), tmp("nan.safetensors"), c);
    expect_resume_refused(ds, tmp("nan.safetensors"), CT_ERR_NUMERIC, "fc2.bias", "NaN");
    c.value = INFINITY;
    rewrite(tmp("good.safetensors"), tmp("inf.safetensors"), c);
    ct_train_opts o = opts();
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_eq(ct_trainer_init_from(t, tmp("inf.safetensors"), NULL, NULL), CT_ERR_NUMERIC);
    expect_msg_has(tmp("inf.safetensors"), "fc2.bias", "inf");
    cr_expect(strstr(ct_last_error(), "learning rate") == NULL, "%s", ct_last_error());
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

/* ------------------------------------------------------------ metadata */

Test(ckpt, a_corrupt_position_is_refused_naming_the_field) {
    ct_dataset *ds = data();
    make_checkpoint(ds);
    const struct {
        const char *key, *val, *needle;
    } cases[] = {
        {"ctrain.epoch", "4294967297", "ctrain.epoch"}, /* 2^32 + 1: not taken as a finished run */
        {"ctrain.epoch", "7", "ctrain.step"},           /* disagrees with the step count */
        {"ctrain.epoch", "1e3", "ctrain.epoch"},
        {"ctrain.step", "-1", "ctrain.step"},
        {"ctrain.optim_step", "99999", "ctrain.optim_step"},
        {"ctrain.lr", "inf", "ctrain.lr"},
        {"ctrain.lr", "nan", "ctrain.lr"},
        {"ctrain.elapsed_s", "-5", "ctrain.elapsed_s"},
        {"ctrain.loss_sum", "1e999", "ctrain.loss_sum"},
        {"ctrain.val_acc", "2", "ctrain.val_acc"},
        {"ctrain.best_step", "12345", "ctrain.best_step"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        change c = keep();
        c.meta_key = cases[i].key;
        c.meta_val = cases[i].val;
        char name[64];
        snprintf(name, sizeof name, "meta%zu.safetensors", i);
        rewrite(tmp("good.safetensors"), tmp(name), c);
        expect_resume_refused(ds, tmp(name), CT_ERR_FORMAT, cases[i].needle, "");
    }
    /* The unchanged copy still resumes: the checks refuse only what is wrong. */
    rewrite(tmp("good.safetensors"), tmp("same.safetensors"), keep());
    ct_train_opts o = opts();
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_expect_eq(ct_trainer_resume(t, tmp("same.safetensors")), CT_OK, "%s", ct_last_error());
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

/* ------------------------------------------------------------ files */

Test(ckpt, a_fifo_is_refused_at_once) {
    const char *path = tmp("fifo");
    if (mkfifo(path, 0600) != 0) cr_skip_test("mkfifo: %s", strerror(errno));
    cr_expect_null(ct_st_open(path)); /* would block forever in open() before */
    expect_msg_has(path, "FIFO");
    ct_dataset *ds = data();
    ct_train_opts o = opts();
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_expect_eq(ct_trainer_resume(t, path), CT_ERR_IO);
    expect_msg_has(path, "FIFO");
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

static ct_st_writer *small_writer(float v) {
    ct_st_writer *w = ct_st_writer_new();
    cr_assert_eq(ct_st_writer_add(w, "x", CT_F32, (ct_shape){1, {1}}, &v), CT_OK);
    return w;
}

static float first_value(const char *path) {
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    float v = NAN;
    cr_assert_eq(ct_st_read(f, 0, CT_F32, &v, sizeof v), CT_OK);
    ct_st_close(f);
    return v;
}

Test(ckpt, a_save_never_replaces_a_non_regular_file) {
    ct_st_writer *w = small_writer(1);
    const char *fifo = tmp("target.fifo");
    if (mkfifo(fifo, 0600) == 0) {
        cr_expect_eq(ct_st_writer_save(w, fifo), CT_ERR_IO);
        expect_msg_has(fifo, "FIFO", "refusing");
        struct stat st;
        cr_assert_eq(lstat(fifo, &st), 0);
        cr_expect(S_ISFIFO(st.st_mode), "the FIFO was replaced");
        /* Through a link, the target is what counts. */
        cr_assert_eq(symlink("target.fifo", tmp("link-to-fifo")), 0);
        cr_expect_eq(ct_st_writer_save(w, tmp("link-to-fifo")), CT_ERR_IO);
        expect_msg_has("link-to-fifo", "FIFO");
    }
    cr_assert_eq(mkdir(tmp("adir"), 0700), 0);
    cr_expect_eq(ct_st_writer_save(w, tmp("adir")), CT_ERR_IO);
    expect_msg_has("adir", "directory");
    ct_st_writer_free(w);
}

Test(ckpt, a_save_through_a_symlink_replaces_its_target) {
    ct_st_writer *a = small_writer(1), *b = small_writer(2);
    cr_assert_eq(ct_st_writer_save(a, tmp("real.safetensors")), CT_OK, "%s", ct_last_error());
    cr_assert_eq(symlink("real.safetensors", tmp("link.safetensors")), 0);
    cr_assert_eq(ct_st_writer_save(b, tmp("link.safetensors")), CT_OK, "%s", ct_last_error());
    struct stat st;
    cr_assert_eq(lstat(tmp("link.safetensors"), &st), 0);
    cr_expect(S_ISLNK(st.st_mode), "the link was replaced by a file");
    cr_expect_eq(first_value(tmp("real.safetensors")), 2.0f);
    /* A dangling link: the file is created where it points. */
    cr_assert_eq(symlink("new.safetensors", tmp("dangling")), 0);
    cr_assert_eq(ct_st_writer_save(a, tmp("dangling")), CT_OK, "%s", ct_last_error());
    cr_expect_eq(first_value(tmp("new.safetensors")), 1.0f);
    ct_st_writer_free(a);
    ct_st_writer_free(b);
}

static void touch(const char *path) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("partial", f);
    fclose(f);
}

Test(ckpt, temporary_files_of_dead_processes_are_removed_on_the_next_save) {
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) _exit(0);
    cr_assert_eq(waitpid(child, NULL, 0), child); /* a pid that no longer runs */
    char dead[256], alive[256], other[256];
    snprintf(dead, sizeof dead, "%s.tmp.%ld", tmp("w.safetensors"), (long)child);
    snprintf(alive, sizeof alive, "%s.tmp.%ld", tmp("w.safetensors"), (long)getppid());
    snprintf(other, sizeof other, "%s.tmp.%ld", tmp("v.safetensors"), (long)child);
    touch(dead);
    touch(alive);
    touch(other);
    ct_st_writer *w = small_writer(1);
    cr_assert_eq(ct_st_writer_save(w, tmp("w.safetensors")), CT_OK, "%s", ct_last_error());
    cr_expect_neq(access(dead, F_OK), 0, "the dead process's temporary file is still there");
    cr_expect_eq(access(alive, F_OK), 0, "a live process's temporary file was removed");
    cr_expect_eq(access(other, F_OK), 0, "another target's temporary file was removed");
    ct_st_writer_free(w);
}

/* ------------------------------------------------------------ the run */

Test(ckpt, an_unwritable_save_path_fails_before_the_first_step) {
    ct_dataset *ds = data();
    ct_train_opts o = opts();
    o.save_path = tmp("no/such/dir/x.safetensors");
    int steps = 0;
    o.progress = NULL;
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    ct_train_result r;
    cr_expect_eq(ct_trainer_run(t, &r), CT_ERR_IO);
    expect_msg_has("no/such/dir/x.safetensors", "before training");
    cr_expect_eq(r.steps, steps);
    cr_expect(!r.finished);
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

/* Removes the save directory once training is under way: the save at the
 * end then fails after the check at the start passed. */
static void pull_the_rug(const ct_train_progress *p, void *user) {
    if (p->event == CT_TRAIN_EPOCH && p->epoch == 2) cr_assert_eq(rmdir((const char *)user), 0, "%s", strerror(errno));
}

Test(ckpt, a_failed_final_save_keeps_the_results_and_rescues_the_state) {
    ct_dataset *ds = data();
    cr_assert_eq(mkdir(tmp("out"), 0700), 0);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp("out"));
    setenv("TMPDIR", tmpdir, 1);
    ct_train_opts o = opts();
    o.save_path = tmp("out/x.safetensors");
    o.progress = pull_the_rug;
    o.progress_user = dir;
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    ct_train_result r;
    cr_expect_eq(ct_trainer_run(t, &r), CT_ERR_IO);
    char rescue[256];
    snprintf(rescue, sizeof rescue, "%s/ctrain-rescue-%ld-x.safetensors", tmpdir, (long)getpid());
    expect_msg_has("out/x.safetensors", rescue);
    cr_expect(r.finished);
    cr_expect_eq(r.epochs, 2);
    cr_expect(isfinite(r.train_loss));
    ct_trainer_free(t);
    /* The rescued state resumes. */
    o.save_path = NULL;
    o.progress = NULL;
    t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_expect_eq(ct_trainer_resume(t, rescue), CT_OK, "%s", ct_last_error());
    int64_t epoch;
    ct_trainer_position(t, &epoch, NULL, NULL);
    cr_expect_eq(epoch, 2);
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

/* ------------------------------------------------------------ strict loads */

Test(ckpt, require_all_names_the_missing_parameters) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {2, FEAT}});
    ct_linear(g, "fc1", x, 8, true, NULL);
    ct_program *p = ct_compile(g, &(ct_compile_opts){0});
    cr_assert_not_null(p, "%s", ct_last_error());
    ct_st_writer *w = ct_st_writer_new();
    float wv[8 * FEAT] = {0};
    cr_assert_eq(ct_st_writer_add(w, "fc1.weight", CT_F32, (ct_shape){2, {8, FEAT}}, wv), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "extra", CT_F32, (ct_shape){1, {1}}, wv), CT_OK);
    cr_assert_eq(ct_st_writer_save(w, tmp("part.safetensors")), CT_OK);
    int n = -1;
    ct_load_opts lo = {.non_strict = true, .require_all = true, .loaded = &n};
    cr_expect_eq(ct_load_weights(g, p, tmp("part.safetensors"), &lo), CT_ERR_NOT_FOUND);
    expect_msg_has(tmp("part.safetensors"), "fc1.bias");
    cr_expect(strstr(ct_last_error(), "extra") == NULL, "%s", ct_last_error());
    lo.require_all = false;
    cr_expect_eq(ct_load_weights(g, p, tmp("part.safetensors"), &lo), CT_OK, "%s", ct_last_error());
    cr_expect_eq(n, 1);
    ct_st_writer_free(w);
    ct_program_free(p);
    ct_graph_free(g);
}
