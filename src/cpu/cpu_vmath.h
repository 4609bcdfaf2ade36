/* Internal: float math over arrays for the CPU backend's F32 fast paths.
 *
 * The reference kernels compute every element in double with libm's scalar
 * exp, tanh, erf..., which is where softmax, cross-entropy, GELU, the
 * sigmoid, tanh, the recurrent cells and attention spend their time. The
 * CUDA kernels compute the same ops in float for F32 tensors (core/ew_math.h
 * instantiated on float), and so does PyTorch. The F32 fast paths that call
 * these functions do too: they are not bit-identical to the reference, they
 * are float arithmetic with SLEEF's vector functions (Debian: libsleef-dev;
 * 1.0-ULP bounds, erfc 1.5), checked against the reference with a stated
 * tolerance (tests/test_cpu_vmath.c) - the same contract as the CUDA
 * kernels' parity cases. Each element is computed alone, so results do not
 * depend on the number of threads or the position of an element in its
 * array (tails go through the same vector function, padded); they may
 * differ in the last bit between CPUs with different vector units (AVX-512,
 * AVX2 + FMA, SSE2), as OpenBLAS's products do.
 *
 * Without SLEEF (ct_cpu_float_math() false) these functions still work,
 * with scalar libm float functions, but the fast paths that use them stay
 * off: the reference loops run.
 *
 * x may equal y (in place); otherwise they must not overlap.
 */
#ifndef CT_CPU_VMATH_H
#define CT_CPU_VMATH_H

#include <stdbool.h>
#include <stdint.h>

/* Whether the float-math fast paths run: SLEEF is built in and the fast
 * paths are on (not CTRAIN_CPU_REFERENCE=1, not ct_cpu_set_fast_paths(false)). */
bool ct_cpu_float_math(void);
/* The vector functions in use, for `ctrain info`: "AVX-512", "AVX2",
 * "SSE2" or "none (no SLEEF)". */
const char *ct_cpu_vmath_isa(void);

void ct_vexpf(const float *x, float *y, int64_t n);
void ct_vexpm1f(const float *x, float *y, int64_t n);
void ct_vlogf(const float *x, float *y, int64_t n);
void ct_vlog1pf(const float *x, float *y, int64_t n);
void ct_vtanhf(const float *x, float *y, int64_t n);
void ct_verff(const float *x, float *y, int64_t n);
void ct_verfcf(const float *x, float *y, int64_t n);
/* y = 1 / (1 + exp(-x)), PyTorch's sigmoid formula in float. */
void ct_vsigmoidf(const float *x, float *y, int64_t n);

#endif
