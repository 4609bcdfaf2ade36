/* CSV: the input's first byte picks the options (header mode, delimiter,
 * label column, a num_classes bound), the rest is the file. */
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    unsigned o = fuzz_take_u8(&data, &n);
    static const int label_columns[4] = {0, 1, -2, 3};
    ct_csv_opts opts = {
        .label_column = label_columns[o & 3],
        .header = (ct_csv_header)((o >> 2) % 3),
        .delimiter = (o & 16) ? '\t' : (o & 32) ? ';' : 0,
        .num_classes = (o & 64) ? 3 : 0,
    };
    const char *path = fuzz_write(0, ".csv", data, n);
    ct_dataset *ds = NULL;
    ct_status s = ct_dataset_load_csv(path, &opts, &ds);
    FUZZ_PROMISE((s == CT_OK) == (ds != NULL), "a dataset exactly when CT_OK");
    if (s == CT_OK) {
        ct_shape sh = ct_dataset_sample_shape(ds);
        FUZZ_PROMISE(sh.ndim == 1, "CSV samples are [F]");
        if (opts.num_classes) FUZZ_PROMISE(ct_dataset_num_classes(ds) == 3, "the given num_classes is kept");
        fuzz_check_dataset(ds, 1.0f, 0.0f);
    }
    ct_dataset_free(ds);
    return 0;
}
