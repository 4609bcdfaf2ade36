/* IDX (MNIST) images and labels, as files written verbatim: the input's
 * first two bytes say where the image file ends and the label file
 * begins. A gzipped seed takes the zlib path (the loader tells gzip from
 * the first bytes); fuzz_idx_gz compresses every input to explore the
 * decompressed content through it. */
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    size_t cut = fuzz_take_u16(&data, &n);
    if (cut > n) cut = n;
    const char *images = fuzz_write(0, NULL, data, cut);
    const char *labels = fuzz_write(1, NULL, data + cut, n - cut);
    ct_dataset *ds = NULL;
    ct_status s = ct_dataset_load_idx(images, labels, &ds);
    FUZZ_PROMISE((s == CT_OK) == (ds != NULL), "a dataset exactly when CT_OK");
    if (s == CT_OK) {
        ct_shape sh = ct_dataset_sample_shape(ds);
        FUZZ_PROMISE(sh.ndim == 3 && sh.dim[0] == 1, "IDX samples are [1, rows, cols]");
        fuzz_check_dataset(ds, 0.0f, 1.0f);
    } else {
        FUZZ_PROMISE(ct_last_error()[0] != 0, "an error has a message");
    }
    ct_dataset_free(ds);
    return 0;
}
