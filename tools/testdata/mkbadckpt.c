/* Broken copies of a good checkpoint, for the CLI tests of
 * tools/bad_input_ckpt.cmake: each copy changes one thing (a tensor's
 * dtype or a value, a metadata field), so that each test's refusal is
 * down to that one thing. Also a FIFO (or, where FIFOs cannot be made, a
 * directory) to be given as a checkpoint.
 *
 *   ctrain_badckpt GOOD.safetensors OUTDIR
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ctrain/safetensors.h>

typedef struct change {
    const char *out;
    const char *meta_key, *meta_val; /* meta_val NULL: append meta_tail to the value */
    const char *meta_tail;
    const char *tensor;
    bool relabel_i32, set_nan, drop;
} change;

static bool copy_tensors(ct_st_file *f, ct_st_writer *w, const change *c) {
    for (int i = 0; i < ct_st_count(f); i++) {
        const char *name = ct_st_name(f, i);
        bool hit = c->tensor && strcmp(name, c->tensor) == 0;
        if (hit && c->drop) continue;
        ct_dtype dt;
        ct_shape s;
        if (ct_st_info(f, i, &dt, &s) != CT_OK) return false;
        size_t n = ct_st_nbytes(f, i);
        unsigned char *buf = malloc(n ? n : 1);
        if (!buf) return false;
        memcpy(buf, ct_st_data(f, i), n);
        if (hit && c->relabel_i32) dt = CT_I32; /* the same bytes: only the dtype tells */
        if (hit && c->set_nan && n >= sizeof(float)) {
            float v = NAN;
            memcpy(buf, &v, sizeof v);
        }
        bool ok = ct_st_writer_add(w, name, dt, s, buf) == CT_OK;
        free(buf);
        if (!ok) return false;
    }
    return true;
}

static bool copy_meta(ct_st_file *f, ct_st_writer *w, const change *c) {
    for (int i = 0; i < ct_st_meta_count(f); i++) {
        const char *k = ct_st_meta_key(f, i), *v = ct_st_meta(f, k);
        char tailed[4096];
        if (c->meta_key && strcmp(k, c->meta_key) == 0) {
            if (c->meta_val) {
                v = c->meta_val;
            } else {
                snprintf(tailed, sizeof tailed, "%s%s", v, c->meta_tail);
                v = tailed;
            }
        }
        if (ct_st_writer_meta(w, k, v) != CT_OK) return false;
    }
    return true;
}

static bool write_copy(const char *good, const char *dir, const change *c) {
    ct_st_file *f = ct_st_open(good);
    ct_st_writer *w = ct_st_writer_new();
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, c->out);
    bool ok = f && w && copy_tensors(f, w, c) && copy_meta(f, w, c) && ct_st_writer_save(w, path) == CT_OK;
    if (!ok) fprintf(stderr, "ctrain_badckpt: %s: %s\n", path, ct_last_error());
    ct_st_writer_free(w);
    ct_st_close(f);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ctrain_badckpt GOOD.safetensors OUTDIR\n");
        return 2;
    }
    const char *classes =
        "{\"model\":\"mlp\",\"hidden\":[32],\"activation\":\"relu\",\"dropout\":0,\"batchnorm\":false,\"classes\":1e30}";
    const char *hidden =
        "{\"model\":\"mlp\",\"hidden\":[32.7],\"activation\":\"relu\",\"dropout\":0,\"batchnorm\":false,\"classes\":4}";
    const char *gpt = "{\"model\":\"gpt\",\"vocab_size\":40,\"block_size\":16,\"n_layer\":1.5,\"n_head\":2,"
                      "\"n_embd\":16,\"dropout\":0}";
    const change changes[] = {
        {.out = "i32.safetensors", .tensor = "fc1.weight", .relabel_i32 = true},
        {.out = "i32state.safetensors", .tensor = "optim.exp_avg.fc2.bias", .relabel_i32 = true},
        {.out = "nan.safetensors", .tensor = "fc2.bias", .set_nan = true},
        {.out = "partial.safetensors", .tensor = "fc2.bias", .drop = true},
        {.out = "classes.safetensors", .meta_key = "cli.model", .meta_val = classes},
        {.out = "hidden.safetensors", .meta_key = "cli.model", .meta_val = hidden},
        {.out = "gptlayers.safetensors", .meta_key = "cli.model", .meta_val = gpt},
        {.out = "modeltail.safetensors", .meta_key = "cli.model", .meta_tail = " {}"},
        {.out = "optionstail.safetensors", .meta_key = "cli.options", .meta_tail = "]"},
        {.out = "epoch.safetensors", .meta_key = "ctrain.epoch", .meta_val = "4294967297"},
        {.out = "step.safetensors", .meta_key = "ctrain.step", .meta_val = "999"},
        {.out = "lr.safetensors", .meta_key = "ctrain.lr", .meta_val = "inf"},
        {.out = "epochfrac.safetensors", .meta_key = "ctrain.epoch", .meta_val = "2.5"},
    };
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++)
        if (!write_copy(argv[1], argv[2], &changes[i])) return 1;
    /* Something that is not a regular file, to be given as a checkpoint. */
    char fifo[4096];
    snprintf(fifo, sizeof fifo, "%s/fifo.safetensors", argv[2]);
    remove(fifo);
    if (mkfifo(fifo, 0600) != 0 && mkdir(fifo, 0700) != 0) {
        perror(fifo);
        return 1;
    }
    return 0;
}
