/* The CPU reference backend: host memory and the kernel table. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_compress.h"
#include "cpu/cpu_util.h"

static void *cpu_alloc(size_t bytes) {
    /* 64-byte alignment suits vector loads and BLAS; aligned_alloc wants a
     * multiple of the alignment. */
    size_t n = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) ct_error(CT_ERR_OOM, "cpu: out of memory allocating %zu bytes", bytes);
    return p;
}

static void cpu_free(void *p) { free(p); }

static ct_status cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
    return CT_OK;
}

static ct_status cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
    return CT_OK;
}

static ct_status cpu_sync(void) { return CT_OK; }

static size_t cpu_scratch_bytes(const ct_kargs *k) {
    if (k->op == CT_OP_MATMUL) return ct_cpu_matmul_scratch(k);
    if (k->op == CT_OP_CONV2D || k->op == CT_OP_CONV2D_GRAD_INPUT || k->op == CT_OP_CONV2D_GRAD_WEIGHT)
        return ct_cpu_conv_scratch(k);
    if (k->op == CT_OP_MAX_POOL2D_GRAD) return ct_cpu_pool_scratch(k);
    if (k->op == CT_OP_ATTENTION || k->op == CT_OP_ATTENTION_GRAD) return ct_cpu_attention_scratch(k);
    if (k->op == CT_OP_RNN || k->op == CT_OP_RNN_GRAD) return ct_cpu_rnn_scratch(k);
    if (k->op == CT_OP_LAYER_NORM_GRAD) return ct_cpu_norm_scratch(k);
    return 0;
}

/* The kernels that write a fused cast's half output as CAST would round
 * their F32 one (core/program_fuse.c): layer norm's (cpu_fast_norm.c) and
 * the unary ops' (cpu_fast_unary.c; the reference loops store through
 * ct_st, which rounds to float first, as CAST's input was). */
static bool cpu_casts_output(ct_op op) { return op == CT_OP_LAYER_NORM || ct_op_class_of(op) == CT_OPC_UNARY; }

static ct_backend cpu_backend;
static bool cpu_valid;
static char cpu_fault[256]; /* why not, when !cpu_valid */
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

/* Filled once, by the first thread that asks (pthread_once), so programs
 * may be compiled from several threads at once; read-only afterwards. The
 * groups are core/backend.h's; the CPU has no timing events (timers use
 * the host clock), no device-side clip_norm / loss_acc (the step graph
 * does those on the host) and no graph capture. */
static void cpu_fill(void) {
    ct_backend b = {
        /* identity */
        .name = "cpu",
        .kind = CT_DEVICE_CPU,
        /* memory: "device" memory is host memory */
        .alloc = cpu_alloc,
        .free = cpu_free,
        .zero = cpu_zero,
        .upload = cpu_copy,
        .download = cpu_copy,
        .copy = cpu_copy,
        .sync = cpu_sync,
        /* kernels and scratch (the kernels are registered below) */
        .scratch_bytes = cpu_scratch_bytes,
        .fuses_relu = true,
        .casts_output = cpu_casts_output,
        /* flat-buffer and optimizer updates */
        .optim_update = ct_cpu_optim_update,
        .sumsq = ct_cpu_sumsq,
        .scale_clamp = ct_cpu_scale_clamp,
        .axpby = ct_cpu_axpby,
        .mask_apply = ct_cpu_mask_apply,
        /* mixed precision */
        .amp_unscale = ct_cpu_amp_unscale,
        .amp_update = ct_cpu_amp_update,
    };
    ct_cpu_register_elementwise(b.kernels);
    ct_cpu_register_reduce(b.kernels);
    ct_cpu_register_matmul(b.kernels);
    ct_cpu_register_shape(b.kernels);
    ct_cpu_register_nn(b.kernels);
    ct_cpu_register_norm(b.kernels);
    ct_cpu_register_conv(b.kernels);
    ct_cpu_register_pool(b.kernels);
    ct_cpu_register_attention(b.kernels);
    ct_cpu_register_kl(b.kernels);
    ct_cpu_register_rnn(b.kernels);
    ct_cpu_register_fakequant(b.kernels);
    cpu_backend = b;
    cpu_valid = ct_backend_valid(&b, cpu_fault, sizeof cpu_fault);
}

const ct_backend *ct_cpu_backend(void) {
    pthread_once(&cpu_once, cpu_fill);
    if (!cpu_valid) return ct_error(CT_ERR_INTERNAL, "%s", cpu_fault), NULL;
    return &cpu_backend;
}
