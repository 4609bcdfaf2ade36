/* GPU vs CPU: the mask pass of pruning (backend.h's mask_apply,
 * docs/compression.md) over a flat buffer of 1000003 random values, F32
 * and F64, with a third of the mask bytes 0 in an irregular pattern. The
 * kernel only stores zeros or leaves bits alone, so the two backends must
 * agree bit for bit, and the kept entries must keep their exact bits. */
#include "cuda_parity.h"

Test(cuda_parity, mask_apply) {
    CP_NEED_GPU();
    const ct_backend *cpu = ct_cpu_backend(), *gpu = cp_gpu();
    cr_assert_not_null(gpu->mask_apply, "the %s backend has no mask_apply", gpu->name);
    const size_t n = 1000003;
    uint8_t *mask = malloc(n);
    for (size_t i = 0; i < n; i++) mask[i] = (uint8_t)((i * 2654435761u >> 7) % 3 != 0);
    const ct_dtype dts[2] = {CT_F32, CT_F64};
    for (int d = 0; d < 2; d++) {
        size_t bytes = n * ct_dtype_size(dts[d]);
        void *ref = malloc(bytes), *orig = malloc(bytes), *got = malloc(bytes);
        cp_in in = cp_f(dts[d], (ct_shape){1, {(int64_t)n}});
        cp_fill(&in, orig, 77 + (uint32_t)d);
        memcpy(ref, orig, bytes);
        cr_assert_eq(cpu->mask_apply(ref, mask, dts[d], n), CT_OK, "%s", ct_last_error());
        void *dx = gpu->alloc(bytes);
        uint8_t *dm = gpu->alloc(n);
        cr_assert(dx && dm, "%s", ct_last_error());
        cr_assert_eq(gpu->upload(dx, orig, bytes), CT_OK);
        cr_assert_eq(gpu->upload(dm, mask, n), CT_OK);
        cr_assert_eq(gpu->mask_apply(dx, dm, dts[d], n), CT_OK, "%s", ct_last_error());
        cr_assert_eq(gpu->download(got, dx, bytes), CT_OK, "%s", ct_last_error());
        cr_assert_eq(memcmp(got, ref, bytes), 0, "mask_apply %s: the GPU differs from the CPU", ct_dtype_name(dts[d]));
        size_t es = ct_dtype_size(dts[d]);
        int64_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (mask[i]) kept += memcmp((char *)got + i * es, (char *)orig + i * es, es) == 0;
            else cr_assert(dts[d] == CT_F32 ? ((float *)got)[i] == 0.0f : ((double *)got)[i] == 0.0, "element %zu", i);
        }
        int64_t ones = 0;
        for (size_t i = 0; i < n; i++) ones += mask[i];
        cr_assert_eq(kept, ones, "kept entries must keep their bits");
        gpu->free(dx);
        gpu->free(dm);
        free(ref);
        free(orig);
        free(got);
    }
    free(mask);
}
