/* CPU kernel cases for thread-count independence (test_cpu_parallel.c).
 *
 * Each case is one kernel call (or one fused optimizer update) on inputs
 * drawn from a fixed generator, with sizes on both sides of the kernels'
 * parallel thresholds and odd lengths that do not split evenly. cpc_run()
 * runs a case with a given number of OpenMP threads and returns its output
 * bytes: the CPU backend is the reference, so these must not depend on the
 * number of threads, down to the last bit. The same inputs come out on
 * every run, so the bytes can also be compared across builds of the library.
 */
#ifndef CT_TEST_CPU_PAR_CASES_H
#define CT_TEST_CPU_PAR_CASES_H

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/attention.h"
#include "core/rnn.h"
#include "core/backend.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"
#include "ctrain/ops.h"
#include "ctrain/optim.h"

enum { CPC_RANDOM, CPC_SPECIAL, CPC_POSITIVE, CPC_LABELS, CPC_SCALAR };

typedef struct cpc_in {
    ct_dtype dt;
    ct_shape shape;
    int kind; /* CPC_*: values in [-3, 3), the same with NaN/inf/-0 sprinkled, (0.1, 3), labels, 1.3 */
} cpc_in;

typedef struct cpc_case {
    const char *name;
    ct_op op;
    ct_attrs attr;
    int n_in;
    cpc_in in[5];
    ct_dtype out_dt;
    ct_shape out;
} cpc_case;

#define S1(a) ((ct_shape){1, {a}})
#define S2(a, b) ((ct_shape){2, {a, b}})
#define S3(a, b, c) ((ct_shape){3, {a, b, c}})
#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})
#define S5(a, b, c, d, e) ((ct_shape){5, {a, b, c, d, e}})
#define IN(dt, s, kind) {dt, s, kind}
#define WIN(k, s, p) {.kernel = {k, k}, .stride = {s, s}, .pad = {p, p}, .dilation = {1, 1}, .groups = 1}
#define UG(f) {.fwd_op = f, .alpha = 0.5}

static const cpc_case cpc_cases[] = {
    /* binary: same shapes (flat rows and a tail), a bias row, a scalar, the generic broadcast */
    {"add f32 100003", CT_OP_ADD, {.alpha = 0}, 2, {IN(CT_F32, S1(100003), CPC_SPECIAL), IN(CT_F32, S1(100003), CPC_RANDOM)}, CT_F32, S1(100003)},
    {"sub f32 1001", CT_OP_SUB, {.alpha = 0}, 2, {IN(CT_F32, S1(1001), CPC_RANDOM), IN(CT_F32, S1(1001), CPC_SPECIAL)}, CT_F32, S1(1001)},
    {"mul f32 row", CT_OP_MUL, {.alpha = 0}, 2, {IN(CT_F32, S2(257, 1023), CPC_SPECIAL), IN(CT_F32, S1(1023), CPC_RANDOM)}, CT_F32, S2(257, 1023)},
    {"div f32 row first", CT_OP_DIV, {.alpha = 0}, 2, {IN(CT_F32, S2(1, 1023), CPC_RANDOM), IN(CT_F32, S2(257, 1023), CPC_RANDOM)}, CT_F32, S2(257, 1023)},
    {"add f32 scalar", CT_OP_ADD, {.alpha = 0}, 2, {IN(CT_F32, S2(301, 211), CPC_RANDOM), IN(CT_F32, S1(1), CPC_RANDOM)}, CT_F32, S2(301, 211)},
    {"sub f32 generic", CT_OP_SUB, {.alpha = 0}, 2, {IN(CT_F32, S3(33, 1, 517), CPC_RANDOM), IN(CT_F32, S2(129, 517), CPC_RANDOM)}, CT_F32, S3(33, 129, 517)},
    {"mul f64 100003", CT_OP_MUL, {.alpha = 0}, 2, {IN(CT_F64, S1(100003), CPC_SPECIAL), IN(CT_F64, S1(100003), CPC_RANDOM)}, CT_F64, S1(100003)},
    {"add bf16 row", CT_OP_ADD, {.alpha = 0}, 2, {IN(CT_BF16, S2(257, 1023), CPC_RANDOM), IN(CT_BF16, S1(1023), CPC_RANDOM)}, CT_BF16, S2(257, 1023)},
    /* unary ops and their gradients */
    {"relu f32 70001", CT_OP_RELU, {.alpha = 0}, 1, {IN(CT_F32, S1(70001), CPC_SPECIAL)}, CT_F32, S1(70001)},
    {"relu f32 999", CT_OP_RELU, {.alpha = 0}, 1, {IN(CT_F32, S1(999), CPC_SPECIAL)}, CT_F32, S1(999)},
    {"relu f64 70001", CT_OP_RELU, {.alpha = 0}, 1, {IN(CT_F64, S1(70001), CPC_SPECIAL)}, CT_F64, S1(70001)},
    {"exp f32", CT_OP_EXP, {.alpha = 0}, 1, {IN(CT_F32, S1(70001), CPC_SPECIAL)}, CT_F32, S1(70001)},
    {"log f32", CT_OP_LOG, {.alpha = 0}, 1, {IN(CT_F32, S1(70001), CPC_POSITIVE)}, CT_F32, S1(70001)},
    {"pow f32", CT_OP_POW, {.alpha = 1.7}, 1, {IN(CT_F32, S1(70001), CPC_POSITIVE)}, CT_F32, S1(70001)},
    {"gelu tanh f32", CT_OP_GELU, {.approx = CT_GELU_TANH}, 1, {IN(CT_F32, S1(70001), CPC_RANDOM)}, CT_F32, S1(70001)},
    {"silu bf16", CT_OP_SILU, {.alpha = 0}, 1, {IN(CT_BF16, S1(70001), CPC_RANDOM)}, CT_BF16, S1(70001)},
    {"leaky_relu f32", CT_OP_LEAKY_RELU, {.alpha = 0.01}, 1, {IN(CT_F32, S1(70001), CPC_SPECIAL)}, CT_F32, S1(70001)},
    {"relu grad f32", CT_OP_UNARY_GRAD, UG(CT_OP_RELU), 2, {IN(CT_F32, S1(70001), CPC_SPECIAL), IN(CT_F32, S1(70001), CPC_SPECIAL)}, CT_F32, S1(70001)},
    {"relu grad f32 small", CT_OP_UNARY_GRAD, UG(CT_OP_RELU), 2, {IN(CT_F32, S1(1001), CPC_RANDOM), IN(CT_F32, S1(1001), CPC_SPECIAL)}, CT_F32, S1(1001)},
    {"tanh grad f32", CT_OP_UNARY_GRAD, UG(CT_OP_TANH), 2, {IN(CT_F32, S1(70001), CPC_RANDOM), IN(CT_F32, S1(70001), CPC_RANDOM)}, CT_F32, S1(70001)},
    {"sigmoid grad f64", CT_OP_UNARY_GRAD, UG(CT_OP_SIGMOID), 2, {IN(CT_F64, S1(70001), CPC_RANDOM), IN(CT_F64, S1(70001), CPC_RANDOM)}, CT_F64, S1(70001)},
    {"cast f32 to bf16", CT_OP_CAST, {.dtype = CT_BF16}, 1, {IN(CT_F32, S1(70001), CPC_SPECIAL)}, CT_BF16, S1(70001)},
    {"cast bf16 to f32", CT_OP_CAST, {.dtype = CT_F32}, 1, {IN(CT_BF16, S1(70001), CPC_SPECIAL)}, CT_F32, S1(70001)},
    {"cast f32 to f16", CT_OP_CAST, {.dtype = CT_F16}, 1, {IN(CT_F32, S1(70001), CPC_SPECIAL)}, CT_F16, S1(70001)},
    {"cast f16 to f32", CT_OP_CAST, {.dtype = CT_F32}, 1, {IN(CT_F16, S1(70001), CPC_SPECIAL)}, CT_F32, S1(70001)},
    /* broadcasting's pair */
    {"broadcast_to", CT_OP_BROADCAST_TO, {.alpha = 0}, 1, {IN(CT_F32, S1(517), CPC_RANDOM)}, CT_F32, S2(129, 517)},
    {"sum_to rows", CT_OP_SUM_TO, {.alpha = 0}, 1, {IN(CT_F32, S2(129, 517), CPC_RANDOM)}, CT_F32, S1(517)},
    {"sum_to middle", CT_OP_SUM_TO, {.alpha = 0}, 1, {IN(CT_F64, S3(33, 129, 17), CPC_RANDOM)}, CT_F64, S3(33, 1, 17)},
    /* reductions and softmax, along the last axis and a middle one */
    {"sum axis 1", CT_OP_SUM, {.axis = 1}, 1, {IN(CT_F32, S3(65, 1031, 3), CPC_RANDOM)}, CT_F32, S2(65, 3)},
    {"sum axis 0 (bias gradient)", CT_OP_SUM, {.axis = 0}, 1, {IN(CT_F32, S2(129, 1031), CPC_SPECIAL)}, CT_F32, S1(1031)},
    /* copies of a recurrent record's h columns and back */
    {"permute heads", CT_OP_PERMUTE, {.perm = {2, 0, 3, 1, 4}}, 1, {IN(CT_F32, S5(9, 17, 3, 4, 33), CPC_RANDOM)}, CT_F32, S5(3, 9, 4, 17, 33)},
    {"permute transpose", CT_OP_PERMUTE, {.perm = {1, 0}}, 1, {IN(CT_F32, S2(257, 131), CPC_SPECIAL)}, CT_F32, S2(131, 257)},
    {"permute bf16 middle", CT_OP_PERMUTE, {.perm = {0, 2, 1, 3}}, 1, {IN(CT_BF16, S4(15, 65, 5, 17), CPC_RANDOM)}, CT_BF16, S4(15, 5, 65, 17)},
    {"concat gates", CT_OP_CONCAT, {.axis = 2}, 2, {IN(CT_F32, S3(33, 65, 512), CPC_RANDOM), IN(CT_F32, S3(33, 65, 256), CPC_SPECIAL)}, CT_F32, S3(33, 65, 768)},
    {"slice record h", CT_OP_SLICE, {.axis = 2, .start = 300, .end = 556}, 1, {IN(CT_F32, S3(9, 65, 1536), CPC_RANDOM)}, CT_F32, S3(9, 65, 256)},
    {"slice_grad record h", CT_OP_SLICE_GRAD, {.axis = 2, .start = 0}, 1, {IN(CT_F32, S3(9, 65, 256), CPC_RANDOM)}, CT_F32, S3(9, 65, 1536)},
    {"sum axis 0 small", CT_OP_SUM, {.axis = 0}, 1, {IN(CT_F32, S2(7, 33), CPC_RANDOM)}, CT_F32, S1(33)},
    {"mean all", CT_OP_MEAN, {.axis = CT_AXIS_ALL}, 1, {IN(CT_F32, S2(257, 1023), CPC_RANDOM)}, CT_F32, S1(1)},
    {"max axis 1", CT_OP_MAX, {.axis = 1}, 1, {IN(CT_F32, S3(65, 1031, 3), CPC_SPECIAL)}, CT_F32, S2(65, 3)},
    {"max_grad axis 1", CT_OP_MAX_GRAD, {.axis = 1}, 2, {IN(CT_F32, S3(65, 1031, 3), CPC_RANDOM), IN(CT_F32, S2(65, 3), CPC_RANDOM)}, CT_F32, S3(65, 1031, 3)},
    {"softmax last", CT_OP_SOFTMAX, {.axis = 1}, 1, {IN(CT_F32, S2(1024, 1000), CPC_RANDOM)}, CT_F32, S2(1024, 1000)},
    {"log_softmax middle", CT_OP_LOG_SOFTMAX, {.axis = 1}, 1, {IN(CT_F32, S3(65, 1031, 3), CPC_RANDOM)}, CT_F32, S3(65, 1031, 3)},
    {"softmax small", CT_OP_SOFTMAX, {.axis = 1}, 1, {IN(CT_F64, S2(7, 13), CPC_RANDOM)}, CT_F64, S2(7, 13)},
    {"softmax_grad", CT_OP_SOFTMAX_GRAD, {.axis = 1}, 2, {IN(CT_F32, S2(1024, 1000), CPC_RANDOM), IN(CT_F32, S2(1024, 1000), CPC_RANDOM)}, CT_F32, S2(1024, 1000)},
    {"log_softmax_grad", CT_OP_LOG_SOFTMAX_GRAD, {.axis = 0}, 2, {IN(CT_F32, S2(1031, 65), CPC_RANDOM), IN(CT_F32, S2(1031, 65), CPC_RANDOM)}, CT_F32, S2(1031, 65)},
    /* cross-entropy: more rows than one block of the loss, smoothing, a small batch */
    {"cross_entropy", CT_OP_CROSS_ENTROPY, {.alpha = 0}, 2, {IN(CT_F32, S2(1031, 1000), CPC_RANDOM), IN(CT_I32, S1(1031), CPC_LABELS)}, CT_F32, S1(1)},
    {"cross_entropy smooth", CT_OP_CROSS_ENTROPY, {.alpha = 0.1}, 2, {IN(CT_F32, S2(1031, 1000), CPC_RANDOM), IN(CT_I32, S1(1031), CPC_LABELS)}, CT_F32, S1(1)},
    {"cross_entropy small", CT_OP_CROSS_ENTROPY, {.alpha = 0}, 2, {IN(CT_F64, S2(9, 10), CPC_RANDOM), IN(CT_I32, S1(9), CPC_LABELS)}, CT_F64, S1(1)},
    {"cross_entropy_grad", CT_OP_CROSS_ENTROPY_GRAD, {.alpha = 0.1}, 3, {IN(CT_F32, S2(1031, 1000), CPC_RANDOM), IN(CT_I32, S1(1031), CPC_LABELS), IN(CT_F32, S1(1), CPC_SCALAR)}, CT_F32, S2(1031, 1000)},
    {"dropout f32", CT_OP_DROPOUT, {.alpha = 0.3, .stream = 7}, 1, {IN(CT_F32, S1(70001), CPC_RANDOM)}, CT_F32, S1(70001)},
    /* layer norm: with and without weight and bias, every gradient, rows above and below the threshold */
#define LN(...) {.eps = 1e-5, __VA_ARGS__}
    {"layer_norm w b", CT_OP_LAYER_NORM, LN(.has_weight = true, .has_bias = true), 3, {IN(CT_F32, S2(257, 129), CPC_SPECIAL), IN(CT_F32, S1(129), CPC_RANDOM), IN(CT_F32, S1(129), CPC_RANDOM)}, CT_F32, S2(257, 129)},
    {"layer_norm w", CT_OP_LAYER_NORM, LN(.has_weight = true), 2, {IN(CT_F32, S2(9, 1031), CPC_RANDOM), IN(CT_F32, S1(1031), CPC_RANDOM)}, CT_F32, S2(9, 1031)},
    {"layer_norm b", CT_OP_LAYER_NORM, LN(.has_bias = true), 2, {IN(CT_F32, S2(3, 17), CPC_RANDOM), IN(CT_F32, S1(17), CPC_RANDOM)}, CT_F32, S2(3, 17)},
    {"layer_norm plain", CT_OP_LAYER_NORM, {.eps = 1e-3}, 1, {IN(CT_F32, S2(131, 65), CPC_RANDOM)}, CT_F32, S2(131, 65)},
    {"layer_norm f64", CT_OP_LAYER_NORM, LN(.has_weight = true, .has_bias = true), 3, {IN(CT_F64, S2(33, 65), CPC_RANDOM), IN(CT_F64, S1(65), CPC_RANDOM), IN(CT_F64, S1(65), CPC_RANDOM)}, CT_F64, S2(33, 65)},
    {"layer_norm_grad x w", CT_OP_LAYER_NORM_GRAD, LN(.which = CT_NORM_GRAD_X, .has_weight = true), 3, {IN(CT_F32, S2(257, 129), CPC_RANDOM), IN(CT_F32, S2(257, 129), CPC_SPECIAL), IN(CT_F32, S1(129), CPC_RANDOM)}, CT_F32, S2(257, 129)},
    {"layer_norm_grad x", CT_OP_LAYER_NORM_GRAD, LN(.which = CT_NORM_GRAD_X), 2, {IN(CT_F32, S2(129, 67), CPC_RANDOM), IN(CT_F32, S2(129, 67), CPC_RANDOM)}, CT_F32, S2(129, 67)},
    {"layer_norm_grad weight", CT_OP_LAYER_NORM_GRAD, LN(.which = CT_NORM_GRAD_WEIGHT, .has_weight = true), 2, {IN(CT_F32, S2(257, 129), CPC_RANDOM), IN(CT_F32, S2(257, 129), CPC_RANDOM)}, CT_F32, S1(129)},
    {"layer_norm_grad bias", CT_OP_LAYER_NORM_GRAD, LN(.which = CT_NORM_GRAD_BIAS, .has_bias = true), 2, {IN(CT_F32, S2(257, 131), CPC_RANDOM), IN(CT_F32, S2(257, 131), CPC_SPECIAL)}, CT_F32, S1(131)},
    {"layer_norm_grad bias wide", CT_OP_LAYER_NORM_GRAD, LN(.which = CT_NORM_GRAD_BIAS), 2, {IN(CT_F32, S2(3, 2101), CPC_RANDOM), IN(CT_F32, S2(3, 2101), CPC_RANDOM)}, CT_F32, S1(2101)},
#undef LN
    /* pooling: non-overlapping (the models' 2x2) and overlapping windows */
    {"max_pool 2x2", CT_OP_MAX_POOL2D, {.win = WIN(2, 2, 0)}, 1, {IN(CT_F32, S4(9, 31, 28, 28), CPC_RANDOM)}, CT_F32, S4(9, 31, 14, 14)},
    {"max_pool 3x3 s2 p1", CT_OP_MAX_POOL2D, {.win = WIN(3, 2, 1)}, 1, {IN(CT_F32, S4(5, 17, 15, 15), CPC_SPECIAL)}, CT_F32, S4(5, 17, 8, 8)},
    {"max_pool_grad 2x2", CT_OP_MAX_POOL2D_GRAD, {.win = WIN(2, 2, 0)}, 2, {IN(CT_F32, S4(9, 31, 28, 28), CPC_RANDOM), IN(CT_F32, S4(9, 31, 14, 14), CPC_SPECIAL)}, CT_F32, S4(9, 31, 28, 28)},
    {"max_pool_grad 3x3 s2 p1", CT_OP_MAX_POOL2D_GRAD, {.win = WIN(3, 2, 1)}, 2, {IN(CT_F32, S4(5, 17, 15, 15), CPC_RANDOM), IN(CT_F32, S4(5, 17, 8, 8), CPC_RANDOM)}, CT_F32, S4(5, 17, 15, 15)},
    /* the bias gradient: channels in blocks of 8 and a tail */
    {"conv2d_grad_bias 13 special", CT_OP_CONV2D_GRAD_BIAS, {.win = WIN(3, 1, 1)}, 1, {IN(CT_F32, S4(5, 13, 7, 9), CPC_SPECIAL)}, CT_F32, S1(13)},
    {"conv2d_grad_bias 64", CT_OP_CONV2D_GRAD_BIAS, {.win = WIN(5, 1, 0)}, 1, {IN(CT_F32, S4(9, 64, 8, 8), CPC_RANDOM)}, CT_F32, S1(64)},
    /* unpadded windows (the F32 fast path) with NaN, infinities and signed zeros, odd tails */
    {"max_pool 2x2 special", CT_OP_MAX_POOL2D, {.win = WIN(2, 2, 0)}, 1, {IN(CT_F32, S4(3, 5, 13, 11), CPC_SPECIAL)}, CT_F32, S4(3, 5, 6, 5)},
    {"max_pool 3x3 s2 special", CT_OP_MAX_POOL2D, {.win = WIN(3, 2, 0)}, 1, {IN(CT_F32, S4(2, 7, 15, 12), CPC_SPECIAL)}, CT_F32, S4(2, 7, 7, 5)},
    {"max_pool_grad 2x2 special", CT_OP_MAX_POOL2D_GRAD, {.win = WIN(2, 2, 0)}, 2, {IN(CT_F32, S4(3, 5, 13, 11), CPC_SPECIAL), IN(CT_F32, S4(3, 5, 6, 5), CPC_SPECIAL)}, CT_F32, S4(3, 5, 13, 11)},
    {"max_pool_grad 3x3 s3 special", CT_OP_MAX_POOL2D_GRAD, {.win = WIN(3, 3, 0)}, 2, {IN(CT_F32, S4(2, 6, 11, 10), CPC_SPECIAL), IN(CT_F32, S4(2, 6, 3, 3), CPC_SPECIAL)}, CT_F32, S4(2, 6, 11, 10)},
    {"max_pool_grad f64 2x2", CT_OP_MAX_POOL2D_GRAD, {.win = WIN(2, 2, 0)}, 2, {IN(CT_F64, S4(3, 5, 9, 9), CPC_RANDOM), IN(CT_F64, S4(3, 5, 4, 4), CPC_RANDOM)}, CT_F64, S4(3, 5, 9, 9)},
    /* convolution, stride 1 (unfolding copies rows) and 2 */
    {"conv2d 5x5 p2", CT_OP_CONV2D, {.win = WIN(5, 1, 2), .has_bias = true}, 3, {IN(CT_F32, S4(11, 3, 28, 28), CPC_RANDOM), IN(CT_F32, S4(8, 3, 5, 5), CPC_RANDOM), IN(CT_F32, S1(8), CPC_RANDOM)}, CT_F32, S4(11, 8, 28, 28)},
    {"conv2d 3x3 s2", CT_OP_CONV2D, {.win = WIN(3, 2, 1)}, 2, {IN(CT_F32, S4(7, 4, 17, 17), CPC_RANDOM), IN(CT_F32, S4(6, 4, 3, 3), CPC_RANDOM)}, CT_F32, S4(7, 6, 9, 9)},
    {"conv2d_grad_input 5x5 p2", CT_OP_CONV2D_GRAD_INPUT, {.win = WIN(5, 1, 2)}, 2, {IN(CT_F32, S4(11, 8, 28, 28), CPC_RANDOM), IN(CT_F32, S4(8, 3, 5, 5), CPC_RANDOM)}, CT_F32, S4(11, 3, 28, 28)},
    {"conv2d_grad_input 3x3 s2", CT_OP_CONV2D_GRAD_INPUT, {.win = WIN(3, 2, 1)}, 2, {IN(CT_F32, S4(7, 6, 9, 9), CPC_RANDOM), IN(CT_F32, S4(6, 4, 3, 3), CPC_RANDOM)}, CT_F32, S4(7, 4, 17, 17)},
    {"conv2d_grad_weight 5x5 p2", CT_OP_CONV2D_GRAD_WEIGHT, {.win = WIN(5, 1, 2)}, 2, {IN(CT_F32, S4(11, 3, 28, 28), CPC_RANDOM), IN(CT_F32, S4(11, 8, 28, 28), CPC_RANDOM)}, CT_F32, S4(8, 3, 5, 5)},
    {"conv2d f64 3x3 p1", CT_OP_CONV2D, {.win = WIN(3, 1, 1)}, 2, {IN(CT_F64, S4(3, 2, 9, 9), CPC_RANDOM), IN(CT_F64, S4(4, 2, 3, 3), CPC_RANDOM)}, CT_F64, S4(3, 4, 9, 9)},
    /* attention: (b, h) pairs split across threads (6 and 9 of them: odd splits), causal and not */
#define QKV(dt, s) IN(dt, s, CPC_RANDOM), IN(dt, s, CPC_RANDOM), IN(dt, s, CPC_RANDOM)
    {"attention causal", CT_OP_ATTENTION, {.alpha = 0.3, .causal = true}, 3, {QKV(CT_F32, S4(2, 3, 17, 8))}, CT_F32, S4(2, 3, 17, 8)},
    {"attention bf16", CT_OP_ATTENTION, {.alpha = 0.4}, 3, {QKV(CT_BF16, S4(3, 3, 13, 5))}, CT_BF16, S4(3, 3, 13, 5)},
    {"attention_grad dq causal", CT_OP_ATTENTION_GRAD, {.alpha = 0.3, .causal = true, .which = CT_ATTN_GRAD_Q}, 4, {QKV(CT_F32, S4(2, 3, 17, 8)), IN(CT_F32, S4(2, 3, 17, 8), CPC_RANDOM)}, CT_F32, S4(2, 3, 17, 8)},
    {"attention_grad dk f64", CT_OP_ATTENTION_GRAD, {.alpha = 0.3, .which = CT_ATTN_GRAD_K}, 4, {QKV(CT_F64, S4(3, 3, 13, 5)), IN(CT_F64, S4(3, 3, 13, 5), CPC_RANDOM)}, CT_F64, S4(3, 3, 13, 5)},
    {"attention_grad dv causal", CT_OP_ATTENTION_GRAD, {.alpha = 0.3, .causal = true, .which = CT_ATTN_GRAD_V}, 4, {QKV(CT_F32, S4(2, 3, 17, 8)), IN(CT_F32, S4(2, 3, 17, 8), CPC_RANDOM)}, CT_F32, S4(2, 3, 17, 8)},
#undef QKV
    /* the recurrent op: batch rows of each step split across threads (7: odd splits) */
    {"rnn gru", CT_OP_RNN, {.cell = CT_GRU}, 4, {IN(CT_F32, S3(7, 5, 900), CPC_RANDOM), IN(CT_F32, S2(900, 300), CPC_RANDOM), IN(CT_F32, S1(900), CPC_RANDOM), IN(CT_F32, S2(7, 300), CPC_RANDOM)}, CT_F32, S3(7, 5, 1500)},
    {"rnn lstm reverse", CT_OP_RNN, {.cell = CT_LSTM, .reverse = true}, 5, {IN(CT_F32, S3(7, 4, 800), CPC_RANDOM), IN(CT_F32, S2(800, 200), CPC_RANDOM), IN(CT_F32, S1(800), CPC_RANDOM), IN(CT_F32, S2(7, 200), CPC_RANDOM), IN(CT_F32, S2(7, 200), CPC_RANDOM)}, CT_F32, S3(7, 4, 1200)},
    {"rnn_grad gru gates", CT_OP_RNN_GRAD, {.cell = CT_GRU, .which = CT_RNN_GRAD_GATES}, 4, {IN(CT_F32, S3(7, 5, 1500), CPC_RANDOM), IN(CT_F32, S3(7, 5, 1500), CPC_RANDOM), IN(CT_F32, S2(900, 300), CPC_RANDOM), IN(CT_F32, S2(7, 300), CPC_RANDOM)}, CT_F32, S3(7, 5, 900)},
    {"rnn_grad lstm dc0 f64", CT_OP_RNN_GRAD, {.cell = CT_LSTM, .which = CT_RNN_GRAD_C0}, 5, {IN(CT_F64, S3(7, 4, 1200), CPC_RANDOM), IN(CT_F64, S3(7, 4, 1200), CPC_RANDOM), IN(CT_F64, S2(800, 200), CPC_RANDOM), IN(CT_F64, S2(7, 200), CPC_RANDOM), IN(CT_F64, S2(7, 200), CPC_RANDOM)}, CT_F64, S2(7, 200)},
};

/* The fused optimizer updates: every algorithm in F32 (above and below the
 * threshold) and F64, with frozen and undecayed elements mixed in. */
typedef struct cpc_optim {
    const char *name;
    ct_optim_kind kind;
    ct_dtype dt;
    int64_t n;
    bool nesterov, amsgrad, centered, maximize;
    double weight_decay, l1;
} cpc_optim;

static const cpc_optim cpc_optims[] = {
    {"sgd nesterov f32", CT_OPTIM_SGD, CT_F32, 100003, true, false, false, false, 1e-2, 0},
    {"adagrad f32", CT_OPTIM_ADAGRAD, CT_F32, 100003, false, false, false, true, 1e-2, 1e-3},
    {"rmsprop centered f64", CT_OPTIM_RMSPROP, CT_F64, 70001, false, false, true, false, 1e-2, 0},
    {"adam f32", CT_OPTIM_ADAM, CT_F32, 100003, false, false, false, false, 1e-2, 0},
    {"adamw f32", CT_OPTIM_ADAMW, CT_F32, 100003, false, false, false, false, 1e-2, 0},
    {"adamw amsgrad f32 small", CT_OPTIM_ADAMW, CT_F32, 999, false, true, false, false, 1e-2, 0},
    {"adamw f64", CT_OPTIM_ADAMW, CT_F64, 70001, false, true, false, false, 1e-2, 0},
};

#define CPC_N_KERNELS ((int)(sizeof cpc_cases / sizeof cpc_cases[0]))
#define CPC_N_OPTIMS ((int)(sizeof cpc_optims / sizeof cpc_optims[0]))
#define CPC_COUNT (CPC_N_KERNELS + CPC_N_OPTIMS)

/* Whether case i's work is a BLAS product (convolutions through im2col,
 * the recurrence's per-step product). OpenBLAS's OpenMP build runs on as
 * many threads as OpenMP offers, and its single-threaded path blocks the
 * inner dimension differently: such cases are compared from 2 threads up
 * (test_cpu_parallel.c says more). */
static inline bool cpc_blas_backed(int i) {
    if (i >= CPC_N_KERNELS) return false;
    ct_op op = cpc_cases[i].op;
    return op == CT_OP_CONV2D || op == CT_OP_CONV2D_GRAD_INPUT || op == CT_OP_CONV2D_GRAD_WEIGHT ||
           op == CT_OP_RNN || op == CT_OP_RNN_GRAD;
}

/* Whether case i runs a near-reference F32 path (float math with
 * cpu_vmath.h: the transcendental unary ops and their gradient, softmax
 * over the last axis, cross-entropy; attention, test_attention_fast.c; the
 * recurrent op, test_rnn_fast.c;
 * layer norm's row sums in lanes):
 * those are near the reference, not identical to it (test_ew_float.c
 * checks them with a tolerance); their bytes still do not
 * depend on the number of threads. */
static inline bool cpc_float_math(int i) {
    if (i >= CPC_N_KERNELS || !ct_cpu_float_math()) return false;
    const cpc_case *c = &cpc_cases[i];
    if (c->out_dt != CT_F32 || c->in[0].dt != CT_F32) return false;
    bool grad = c->op == CT_OP_UNARY_GRAD;
    switch (grad ? c->attr.fwd_op : (int)c->op) {
    case CT_OP_EXP: case CT_OP_TANH: case CT_OP_SIGMOID: case CT_OP_SILU: case CT_OP_SOFTPLUS: case CT_OP_GELU:
    case CT_OP_CROSS_ENTROPY: case CT_OP_CROSS_ENTROPY_GRAD: return true;
    case CT_OP_RNN: case CT_OP_RNN_GRAD: /* k_rnn_fast.c, test_rnn_fast.c */
    case CT_OP_ATTENTION: case CT_OP_ATTENTION_GRAD:
        for (int j = 0; j < c->n_in; j++)
            if (c->in[j].dt != CT_F32) return false;
        return true;
    case CT_OP_LOG: return !grad;
    case CT_OP_SOFTMAX: case CT_OP_LOG_SOFTMAX: case CT_OP_SOFTMAX_GRAD: case CT_OP_LOG_SOFTMAX_GRAD:
        return c->attr.axis == c->in[0].shape.ndim - 1;
    /* row sums in fixed lanes (cpu_fast_norm.c); the bias gradient's are the reference's */
    case CT_OP_LAYER_NORM: return true;
    case CT_OP_LAYER_NORM_GRAD: return c->attr.which != CT_NORM_GRAD_BIAS;
    /* each channel's sum in fixed lanes (k_conv.c) */
    case CT_OP_CONV2D_GRAD_BIAS: return true;
    default: return false;
    }
}

/* Whether case i is an optimizer update that the fast paths compute in
 * float arithmetic (SGD, Adam and AdamW on F32, cpu_optim_fast.c): near the
 * reference, not its bits (test_cpu_fast.c states how near); its bytes
 * still do not depend on the number of threads. */
static inline bool cpc_optim_float(int i) {
    if (i < CPC_N_KERNELS || !ct_cpu_fast_paths_enabled()) return false;
    const cpc_optim *c = &cpc_optims[i - CPC_N_KERNELS];
    return c->dt == CT_F32 && (c->kind == CT_OPTIM_SGD || c->kind == CT_OPTIM_ADAM || c->kind == CT_OPTIM_ADAMW);
}

/* Whether case i has a fast path that sums in another order than the
 * reference (the F32 convolutions: oneDNN, the weight gradient's chunks),
 * so that the two agree within a tolerance (tests/test_conv_fast.c), not
 * to the bit; its fast path is still the same on every thread count. */
static inline bool cpc_fast_reorders(int i) {
    if (i >= CPC_N_KERNELS) return false;
    ct_op op = cpc_cases[i].op;
    return cpc_cases[i].out_dt == CT_F32 &&
           (op == CT_OP_CONV2D || op == CT_OP_CONV2D_GRAD_INPUT || op == CT_OP_CONV2D_GRAD_WEIGHT);
}

static inline const char *cpc_name(int i) {
    return i < CPC_N_KERNELS ? cpc_cases[i].name : cpc_optims[i - CPC_N_KERNELS].name;
}

static inline uint64_t cpc_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static inline int64_t cpc_numel(ct_shape s) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return n;
}

/* Fills a buffer of n elements; seed picks the stream, classes bounds labels. */
static inline void *cpc_fill(ct_dtype dt, int64_t n, int kind, uint64_t seed, int64_t classes) {
    void *p = malloc((size_t)(n > 0 ? n : 1) * ct_dtype_size(dt));
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(cpc_next(&s) >> 11) / 9007199254740992.0;
        if (kind == CPC_LABELS) {
            ((int32_t *)p)[i] = (int32_t)(u * (double)classes);
            continue;
        }
        double v = kind == CPC_POSITIVE ? 0.1 + 2.9 * u : kind == CPC_SCALAR ? 1.3 : 6.0 * u - 3.0;
        if (kind == CPC_SPECIAL) {
            if (i % 997 == 5) v = NAN;
            else if (i % 991 == 7) v = -0.0;
            else if (i % 983 == 11) v = INFINITY;
            else if (i % 977 == 13) v = -INFINITY;
            else if (i % 7 == 3) v = 0.0;
        }
        ct_st(p, dt, i, v);
    }
    return p;
}

/* Runs case i on nthreads threads with its outputs first set to the byte
 * `poison`; returns its output bytes (malloc'd, *size bytes) and the
 * kernel's status in *st. */
static inline unsigned char *cpc_run(int i, int nthreads, unsigned char poison, size_t *size, ct_status *st) {
    omp_set_num_threads(nthreads);
    if (i >= CPC_N_KERNELS) {
        const cpc_optim *c = &cpc_optims[i - CPC_N_KERNELS];
        size_t es = ct_dtype_size(c->dt), bytes = (size_t)c->n * es;
        uint8_t *flags = malloc((size_t)c->n);
        uint64_t s = 99;
        for (int64_t j = 0; j < c->n; j++) {
            uint64_t r = cpc_next(&s) % 8;
            flags[j] = r == 0 ? CT_PFLAG_FROZEN : r < 5 ? CT_PFLAG_DECAY : 0;
        }
        void *grads = cpc_fill(c->dt, c->n, CPC_RANDOM, 1000 + (uint64_t)i, 0);
        /* params and three state buffers, one allocation: the output */
        unsigned char *out = malloc(4 * bytes);
        for (int b = 0; b < 4; b++) {
            void *init = cpc_fill(c->dt, c->n, b == 0 ? CPC_RANDOM : CPC_POSITIVE, 2000 + (uint64_t)(i * 4 + b), 0);
            memcpy(out + b * bytes, init, bytes);
            free(init);
        }
        (void)poison; /* every element is written or deliberately left (frozen) */
        ct_optim_args a = {.kind = c->kind, .dtype = c->dt, .n = (size_t)c->n, .params = out, .grads = grads,
                           .state0 = out + bytes, .state1 = out + 2 * bytes, .state2 = out + 3 * bytes,
                           .flags = flags, .t = 3, .lr = 1e-2, .momentum = 0.9, .dampening = 0.1,
                           .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .alpha = 0.99,
                           .weight_decay = c->weight_decay, .l1 = c->l1, .lr_decay = 1e-3,
                           .nesterov = c->nesterov, .amsgrad = c->amsgrad, .centered = c->centered,
                           .decoupled = c->kind == CT_OPTIM_ADAMW, .maximize = c->maximize};
        *st = ct_cpu_backend()->optim_update(&a);
        free(grads);
        free(flags);
        *size = 4 * bytes;
        return out;
    }
    const cpc_case *c = &cpc_cases[i];
    ct_tview in[5];
    for (int j = 0; j < c->n_in; j++) {
        const cpc_in *d = &c->in[j];
        int64_t n = cpc_numel(d->shape);
        int64_t classes = c->in[0].shape.dim[c->in[0].shape.ndim - 1];
        in[j] = (ct_tview){cpc_fill(d->dt, n, d->kind, 100 * (uint64_t)i + (uint64_t)j, classes), d->dt, d->shape, n};
    }
    int64_t on = cpc_numel(c->out);
    *size = (size_t)on * ct_dtype_size(c->out_dt);
    unsigned char *out = malloc(*size ? *size : 1);
    memset(out, poison, *size);
    ct_kargs k = {.op = c->op, .attr = &c->attr, .n_in = c->n_in, .in = in,
                  .out = {out, c->out_dt, c->out, on}, .seed = 42, .step = 5, .training = true};
    const ct_backend *be = ct_cpu_backend();
    ct_kargs probe = k;
    probe.out.data = NULL;
    size_t sb = be->scratch_bytes(&probe);
    k.scratch = sb ? malloc(sb) : NULL;
    if (k.scratch) memset(k.scratch, poison, sb);
    *st = be->kernels[c->op](&k);
    free(k.scratch);
    for (int j = 0; j < c->n_in; j++) free(in[j].data);
    return out;
}

#endif
