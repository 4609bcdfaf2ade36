/* One training step of a small GPT (2 layers of 64, 2 heads, block 8,
 * vocab 11, batch 3) on a device: its loss and every gradient. Shared by
 * test_views.c (planned against private buffers) and
 * test_cuda_parity_graph.c (CPU against GPU): its q, k and v are views of
 * one [3, B, H, T, D] value (core/program.c). Static inline: each test
 * executable gets its own copy. */
#ifndef CTRAIN_TESTS_GPT_STEP_H
#define CTRAIN_TESTS_GPT_STEP_H

#include <criterion/criterion.h>
#include <stdlib.h>

#include <ctrain/ctrain.h>

enum { GS_B = 3, GS_T = 8, GS_V = 11 };

static const ct_gpt_config gs_cfg = {.vocab_size = GS_V, .block_size = GS_T, .n_layer = 2, .n_head = 2, .n_embd = 64};

/* The compiled step, its inputs set; *loss is the loss node. */
static inline ct_program *gs_compile(ct_graph *g, ct_device dev, bool no_plan, ct_node *loss) {
    ct_graph_set_seed(g, 5);
    ct_node idx = ct_input(g, "idx", CT_I32, (ct_shape){2, {GS_B, GS_T}});
    ct_node tgt = ct_input(g, "targets", CT_I32, (ct_shape){1, {GS_B * GS_T}});
    ct_node logits = ct_reshape(g, ct_gpt(g, &gs_cfg, idx), (ct_shape){2, {GS_B * GS_T, GS_V}});
    *loss = ct_cross_entropy(g, logits, tgt, 0);
    cr_assert_eq(ct_graph_backward(g, *loss), CT_OK, "%s", ct_last_error());
    ct_program *p = ct_compile(g, &(ct_compile_opts){.device = dev, .outputs = loss, .n_outputs = 1, .grads = true,
                                                     .no_plan = no_plan});
    cr_assert_not_null(p, "%s", ct_last_error());
    int32_t ids[GS_B * GS_T], next[GS_B * GS_T];
    for (int i = 0; i < GS_B * GS_T; i++) ids[i] = (i * 7 + 3) % GS_V, next[i] = (i * 5 + 1) % GS_V;
    cr_assert(ct_program_set_input(p, "idx", ids, sizeof ids) == CT_OK &&
                  ct_program_set_input(p, "targets", next, sizeof next) == CT_OK,
              "%s", ct_last_error());
    return p;
}

/* After a run: the loss, and the gradients in *grads (malloc'd, *n floats). */
static inline float gs_results(ct_program *p, ct_node loss, float **grads, size_t *n) {
    float l;
    cr_assert_eq(ct_program_read(p, loss, &l, sizeof l), CT_OK, "%s", ct_last_error());
    *n = ct_program_param_numel(p);
    *grads = malloc(*n * sizeof **grads);
    cr_assert_eq(ct_program_read_grads(p, *grads, *n * sizeof **grads), CT_OK, "%s", ct_last_error());
    return l;
}

#endif
