/* safetensors: the input is the file. The header promises "every accessor
 * after a successful ct_st_open is safe on any input": every accessor is
 * called on every tensor and metadata entry (and on indices just outside),
 * and ct_st_read converts each tensor to every dtype it takes, into a
 * buffer of exactly the size it asks for, so ASan sees any overrun. */
#include <string.h>

#include <ctrain/ctrain.h>

#include "fuzz_util.h"

static const ct_dtype targets[] = {CT_F32, CT_F64, CT_F16, CT_BF16, CT_I32, CT_U8};

static void check_tensor(const ct_st_file *f, int i) {
    const char *name = ct_st_name(f, i);
    FUZZ_PROMISE(name != NULL, "every tensor has a name");
    FUZZ_PROMISE(ct_st_find(f, name) == i, "names are unique: find gives the tensor back");
    FUZZ_PROMISE(ct_st_dtype_name(f, i) != NULL, "every tensor has a dtype name");
    size_t bytes = ct_st_nbytes(f, i);
    const uint8_t *raw = ct_st_data(f, i);
    FUZZ_PROMISE(raw != NULL, "every tensor has data (maybe of no bytes)");
    volatile uint8_t sink = 0;
    for (size_t b = 0; b < bytes; b++) sink ^= raw[b]; /* ASan: the range is inside the file */
    (void)sink;
    ct_dtype dt;
    ct_shape sh;
    if (ct_st_info(f, i, &dt, &sh) != CT_OK) return; /* more dims than CT_MAX_DIMS */
    int64_t numel = ct_shape_numel(sh);
    FUZZ_PROMISE(numel >= 0, "a shape's element count is >= 0");
    if (dt != CT_DTYPE_COUNT)
        FUZZ_PROMISE(bytes == (size_t)numel * ct_dtype_size(dt), "nbytes is numel * the dtype's size");
    if (numel > (1 << 22)) return; /* the file holds the bytes, so this only bounds the copy */
    for (size_t k = 0; k < sizeof targets / sizeof *targets; k++) {
        size_t want = (size_t)numel * ct_dtype_size(targets[k]);
        void *dst = malloc(want ? want : 1);
        FUZZ_PROMISE(dst != NULL, "memory for the copy");
        (void)ct_st_read(f, i, targets[k], dst, want);
        /* A wrong size is refused, never written past. */
        FUZZ_PROMISE(ct_st_read(f, i, targets[k], dst, want + 1) != CT_OK, "a wrong size is refused");
        free(dst);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write(0, ".safetensors", data, n);
    ct_st_file *f = ct_st_open(path);
    if (!f) {
        FUZZ_PROMISE(ct_last_error()[0] != 0, "a refused file has a message");
        return 0;
    }
    int count = ct_st_count(f);
    FUZZ_PROMISE(count >= 0, "a tensor count >= 0");
    for (int i = 0; i < count; i++) check_tensor(f, i);
    FUZZ_PROMISE(ct_st_name(f, count) == NULL && ct_st_name(f, -1) == NULL, "no tensor outside 0..count-1");
    FUZZ_PROMISE(ct_st_data(f, count) == NULL && ct_st_nbytes(f, -1) == 0, "no data outside 0..count-1");
    FUZZ_PROMISE(ct_st_info(f, count, NULL, NULL) != CT_OK, "info refuses an index outside");
    int metas = ct_st_meta_count(f);
    for (int i = 0; i < metas; i++) {
        const char *key = ct_st_meta_key(f, i);
        FUZZ_PROMISE(key != NULL, "every metadata entry has a key");
        const char *value = ct_st_meta(f, key);
        FUZZ_PROMISE(value != NULL, "every metadata key has a value");
        (void)strlen(value);
    }
    FUZZ_PROMISE(ct_st_meta_key(f, metas) == NULL, "no metadata key outside 0..count-1");
    ct_st_close(f);
    return 0;
}
