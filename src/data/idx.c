/* IDX files, the format of MNIST and Fashion-MNIST (LeCun et al.): a
 * big-endian magic whose third byte is the element type (0x08, unsigned
 * byte) and fourth the number of dimensions, one big-endian 32-bit size per
 * dimension, then the elements in row-major order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/data_internal.h"

#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAGIC_IMAGES 0x00000803u
/* MNIST's digits and Fashion-MNIST's ten kinds of clothing alike. */
#define MNIST_CLASSES 10

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Checks the header of an IDX file already in memory and finds its
 * elements. ndim is 1 for labels and 3 for images, and fixes the magic. */
static ct_status parse_header(const char *path, const unsigned char *d, size_t len, int ndim,
                              uint32_t dims[3], const unsigned char **payload) {
    const uint32_t want = ndim == 1 ? IDX_MAGIC_LABELS : IDX_MAGIC_IMAGES;
    const char *what = ndim == 1 ? "label" : "image";
    if (len < 4)
        return ct_error(CT_ERR_FORMAT, "%s: truncated: %zu bytes, too short for an IDX header",
                        path, len);
    uint32_t magic = be32(d);
    if (magic != want) {
        /* The common mistake is passing the two files the wrong way round. */
        const char *hint = magic == IDX_MAGIC_LABELS   ? " (this is an IDX label file)"
                           : magic == IDX_MAGIC_IMAGES ? " (this is an IDX image file)"
                                                       : "";
        return ct_error(CT_ERR_FORMAT,
                        "%s: wrong magic 0x%08x, expected 0x%08x for an IDX %s file%s", path,
                        (unsigned)magic, (unsigned)want, what, hint);
    }
    size_t head = 4 + 4 * (size_t)ndim;
    if (len < head)
        return ct_error(CT_ERR_FORMAT, "%s: truncated: %zu bytes, the IDX header alone is %zu",
                        path, len, head);
    uint64_t need = 1;
    for (int k = 0; k < ndim; k++) {
        dims[k] = be32(d + 4 + 4 * k);
        if (dims[k] == 0)
            return ct_error(CT_ERR_FORMAT, "%s: IDX dimension %d is 0, the file holds no %ss",
                            path, k, what);
        /* Checked before multiplying: three 32-bit sizes can reach 2^96,
         * and a product that wrapped would pass the size check below. */
        if (need > (uint64_t)SIZE_MAX / dims[k])
            return ct_error(CT_ERR_FORMAT,
                            "%s: IDX dimension %d (%u) makes the %s data larger than memory can address; "
                            "a corrupt header",
                            path, k, (unsigned)dims[k], what);
        need *= dims[k];
    }
    if (len - head < need) {
        if (ndim == 1)
            return ct_error(CT_ERR_FORMAT,
                            "%s: truncated: the header says %u labels but only %zu bytes follow it",
                            path, (unsigned)dims[0], len - head);
        return ct_error(CT_ERR_FORMAT,
                        "%s: truncated: the header says %u images of %ux%u (%llu bytes) "
                        "but only %zu bytes follow it",
                        path, (unsigned)dims[0], (unsigned)dims[1], (unsigned)dims[2],
                        (unsigned long long)need, len - head);
    }
    /* Bytes past the last element are tolerated: nothing in the format
     * forbids them, and they do not change what the header describes. */
    *payload = d + head;
    return CT_OK;
}

/* Every label below num_classes (0: any byte), else an error naming the
 * file and the record. */
static ct_status check_labels(const char *path, const unsigned char *lbl, uint32_t n, int num_classes) {
    if (num_classes <= 0) return CT_OK;
    for (uint32_t i = 0; i < n; i++)
        if (lbl[i] >= num_classes)
            return ct_error(CT_ERR_FORMAT, "%s: record %u (byte offset %u) has label %d; the labels are 0 to %d",
                            path, (unsigned)i, (unsigned)(8 + i), lbl[i], num_classes - 1);
    return CT_OK;
}

/* ct_dataset_load_idx with the classes declared: num_classes > 0 is the
 * dataset's own range (MNIST's 10), which every label must fall in, so a
 * corrupt label byte is an error instead of a wider model. */
static ct_status load_idx(const char *images_path, const char *labels_path, int num_classes,
                          ct_dataset **out) {
    unsigned char *img = NULL, *lab = NULL;
    size_t img_len = 0, lab_len = 0;
    const unsigned char *pix = NULL, *lbl = NULL;
    uint32_t idim[3] = {0}, ldim[3] = {0};
    ct_dataset *ds = NULL;
    ct_status s = ct_data_read_file(images_path, &img, &img_len);
    if (s == CT_OK) s = parse_header(images_path, img, img_len, 3, idim, &pix);
    if (s == CT_OK && labels_path) s = ct_data_read_file(labels_path, &lab, &lab_len);
    if (s == CT_OK && labels_path) s = parse_header(labels_path, lab, lab_len, 1, ldim, &lbl);
    if (s == CT_OK && labels_path) s = check_labels(labels_path, lbl, ldim[0], num_classes);
    if (s == CT_OK && !labels_path) ldim[0] = idim[0]; /* images only: every label 0 */
    if (s == CT_OK && idim[0] != ldim[0])
        s = ct_error(CT_ERR_FORMAT, "%s holds %u images but %s holds %u labels", images_path,
                     (unsigned)idim[0], labels_path, (unsigned)ldim[0]);
    if (s == CT_OK && idim[0] > (uint32_t)CT_DATASET_MAX_SAMPLES)
        s = ct_error(CT_ERR_FORMAT, "%s: %u images, more than the %d a dataset holds",
                     images_path, (unsigned)idim[0], CT_DATASET_MAX_SAMPLES);
    if (s == CT_OK)
        s = ct_data_alloc(idim[0], (ct_shape){3, {1, idim[1], idim[2]}}, &ds);
    if (s == CT_OK) {
        /* A table gives exactly b / 255.0f for each byte value, as
         * torchvision's ToTensor does, at the cost of one lookup. */
        float scale[256];
        for (int b = 0; b < 256; b++) scale[b] = (float)b / 255.0f;
        const size_t total = (size_t)ds->n * (size_t)ds->numel;
        for (size_t i = 0; i < total; i++) ds->x[i] = scale[pix[i]];
        for (int64_t i = 0; i < ds->n; i++) ds->y[i] = lbl ? lbl[i] : 0;
        ds->num_classes = num_classes > 0 ? num_classes : ct_data_count_classes(ds->y, ds->n);
        *out = ds;
    }
    free(img);
    free(lab);
    return s;
}

ct_status ct_dataset_load_idx(const char *images_path, const char *labels_path,
                              ct_dataset **out) {
    if (out) *out = NULL;
    if (!images_path || !out)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_idx: NULL argument");
    return load_idx(images_path, labels_path, 0, out);
}

/* dir/name or dir/name.gz; NULL with the error set when neither exists.
 * The caller frees the result. */
static char *find_file(const char *dir, const char *name, ct_status *s) {
    char *p = NULL;
    *s = ct_data_find_file(dir, name, &p);
    if (*s == CT_OK && !p)
        *s = ct_error(CT_ERR_NOT_FOUND, "%s: no %s or %s.gz in this directory", dir, name, name);
    return p;
}

ct_status ct_dataset_load_mnist(const char *dir, bool train, ct_dataset **out) {
    if (out) *out = NULL;
    if (!dir || !out) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_mnist: NULL argument");
    ct_status s = ct_data_check_dir(dir);
    if (s != CT_OK) return s;
    char *images = find_file(dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", &s);
    char *labels = images ? find_file(dir, train ? "train-labels-idx1-ubyte"
                                                 : "t10k-labels-idx1-ubyte", &s)
                          : NULL;
    if (images && labels) s = load_idx(images, labels, MNIST_CLASSES, out);
    free(images);
    free(labels);
    return s;
}
