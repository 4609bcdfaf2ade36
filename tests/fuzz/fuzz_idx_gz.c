/* IDX through gzip: the input (split as in fuzz_idx) is gzip-compressed
 * before it is written, so the fuzzer explores the IDX content behind the
 * zlib path; a last byte with bit 0 set cuts the compressed image file
 * short, for truncated streams. */
#include <zlib.h>

#include "fuzz_dataset.h"

/* Writes the gzip of data[0..n) to the slot's file; cut_short drops the
 * stream's last 5 bytes (part of the trailer and maybe of the data). */
static const char *write_gz(int slot, const uint8_t *data, size_t n, int cut_short) {
    z_stream z = {0};
    FUZZ_PROMISE(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    uint8_t *out = malloc(cap);
    FUZZ_PROMISE(out != NULL, "memory for the gzip stream");
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    FUZZ_PROMISE(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    size_t len = z.total_out;
    deflateEnd(&z);
    if (cut_short && len > 5) len -= 5;
    const char *path = fuzz_write(slot, ".gz", out, len);
    free(out);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    int cut_short = n > 0 && (data[n - 1] & 1);
    size_t cut = fuzz_take_u16(&data, &n);
    if (cut > n) cut = n;
    const char *images = write_gz(0, data, cut, cut_short);
    const char *labels = write_gz(1, data + cut, n - cut, 0);
    ct_dataset *ds = NULL;
    ct_status s = ct_dataset_load_idx(images, labels, &ds);
    FUZZ_PROMISE((s == CT_OK) == (ds != NULL), "a dataset exactly when CT_OK");
    if (s == CT_OK) fuzz_check_dataset(ds, 0.0f, 1.0f);
    ct_dataset_free(ds);
    return 0;
}
