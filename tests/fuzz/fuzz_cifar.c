/* CIFAR-10 binary files: the input's first two bytes say where the first
 * file ends; the rest is a second file (both loaded, in order, when it is
 * not empty). */
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    size_t cut = fuzz_take_u16(&data, &n);
    if (cut > n) cut = n;
    const char *paths[2] = {fuzz_write(0, ".bin", data, cut), fuzz_write(1, ".bin", data + cut, n - cut)};
    ct_dataset *ds = NULL;
    ct_status s = ct_dataset_load_cifar10_files(paths, n > cut ? 2 : 1, &ds);
    FUZZ_PROMISE((s == CT_OK) == (ds != NULL), "a dataset exactly when CT_OK");
    if (s == CT_OK) {
        ct_shape sh = ct_dataset_sample_shape(ds);
        FUZZ_PROMISE(sh.ndim == 3 && sh.dim[0] == 3 && sh.dim[1] == 32 && sh.dim[2] == 32,
                     "CIFAR samples are [3, 32, 32]");
        FUZZ_PROMISE(ct_dataset_num_classes(ds) == 10, "CIFAR-10 has 10 classes");
        /* Plain files (gzipped ones are told by their first two bytes). */
        int gz = (cut >= 2 && data[0] == 0x1f && data[1] == 0x8b) ||
                 (n - cut >= 2 && data[cut] == 0x1f && data[cut + 1] == 0x8b);
        if (!gz) FUZZ_PROMISE((size_t)ct_dataset_size(ds) * 3073 == n, "one sample per 3073-byte record");
        fuzz_check_dataset(ds, 0.0f, 1.0f);
    }
    ct_dataset_free(ds);
    return 0;
}
