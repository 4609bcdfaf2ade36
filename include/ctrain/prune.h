/* Magnitude pruning during training (docs/compression.md).
 *
 * A trainer given ct_train_opts.prune keeps one mask byte per parameter
 * element. After optimizer step t (counted from 1) with start <= t <= end
 * and (t - start) a multiple of `every` (and at t = end), the masks are
 * recomputed for the target sparsity of Zhu & Gupta (2017),
 *
 *     s_t = s_f + (s_i - s_f) (1 - (t - start) / (end - start))^3,
 *
 * by removing the smallest-magnitude units still alive until a fraction
 * s_t of the units of each tensor (scope LAYER) or of all prunable tensors
 * together (scope GLOBAL) is pruned; units once pruned stay pruned. After
 * every update the parameters and the optimizer state (momentum, Adam
 * moments) are multiplied by the masks on the device (the backend's
 * mask_apply), so pruned weights are exactly zero at every step and in
 * every checkpoint, which also stores the masks ("prune.mask.<param>", U8,
 * the parameter's shape) so a resumed run goes on with them.
 *
 * What is pruned:
 *   UNSTRUCTURED  single elements of every weight: parameters of two or
 *                 more dimensions (biases and norm parameters are 1-d);
 *   NEURON        whole output neurons: rows of the 2-d weights, except
 *                 the last one (the classifier's outputs are the classes),
 *                 ranked by the L1 or L2 norm of the row;
 *   CHANNEL       whole output channels of the 4-d (convolution) weights,
 *                 ranked by the norm of the channel's filter.
 * A structured unit keeps its bias: its output is then a constant, which
 * ctrain prune folds into the next layer when it removes the neuron.
 */
#ifndef CTRAIN_PRUNE_H
#define CTRAIN_PRUNE_H

#include <stdint.h>

#include "ctrain/graph.h"
#include "ctrain/program.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_prune_scope {
    CT_PRUNE_LAYER = 0, /* the target fraction of every tensor */
    CT_PRUNE_GLOBAL     /* the target fraction of all prunable units together */
} ct_prune_scope;

typedef enum ct_prune_structure {
    CT_PRUNE_UNSTRUCTURED = 0,
    CT_PRUNE_NEURON,
    CT_PRUNE_CHANNEL
} ct_prune_structure;

typedef enum ct_prune_norm { CT_PRUNE_L1 = 0, CT_PRUNE_L2 } ct_prune_norm;

typedef struct ct_prune_opts {
    double sparsity;          /* s_f, the final fraction pruned, in [0, 1) */
    double initial_sparsity;  /* s_i, in [0, sparsity]; 0 by default */
    int64_t start;            /* the first pruning step (0: after step 0, i.e. the first update) */
    int64_t end;              /* the last pruning step, >= start; 0: the run's last step */
    int64_t every;            /* steps between pruning steps; 0: 100 */
    ct_prune_scope scope;
    ct_prune_structure structure;
    ct_prune_norm norm;       /* structured units' ranking (unstructured: |w|) */
} ct_prune_opts;

/* The names of the enums ("layer", "global"; "unstructured", "neuron",
 * "channel"; "l1", "l2") and their inverses (CT_ERR_NOT_FOUND for other
 * text). */
const char *ct_prune_scope_name(ct_prune_scope s);
ct_status ct_prune_scope_parse(const char *text, ct_prune_scope *out);
const char *ct_prune_structure_name(ct_prune_structure s);
ct_status ct_prune_structure_parse(const char *text, ct_prune_structure *out);
const char *ct_prune_norm_name(ct_prune_norm n);
ct_status ct_prune_norm_parse(const char *text, ct_prune_norm *out);

/* Checks the options on their own (end resolved: > 0), naming the field
 * at fault: sparsity outside [0, 1), initial_sparsity outside [0,
 * sparsity], start > end, every < 0, an unknown enum value. */
ct_status ct_prune_check(const ct_prune_opts *o);

/* The target sparsity after step t (end resolved): 0 before start (or
 * s_i), the cubic ramp between start and end, s_f after end. */
double ct_prune_target(const ct_prune_opts *o, int64_t t);

/* Whether the masks are recomputed after step t (end resolved). */
bool ct_prune_is_step(const ct_prune_opts *o, int64_t t);

/* Whether parameter `param` of g is pruned under this structure:
 * UNSTRUCTURED every parameter of two or more dimensions, NEURON every 2-d
 * one but the last 2-d parameter of the graph, CHANNEL every 4-d one. */
bool ct_prune_prunable(const ct_graph *g, ct_node param, ct_prune_structure s);

/* One tensor's share of exact zeros. */
typedef struct ct_sparsity {
    const char *name;     /* the parameter's name (valid while its graph lives) */
    int64_t zeros, total;
} ct_sparsity;

/* The exact zeros of every weight (parameter of two or more dimensions) of
 * program p, compiled from g: the first cap weights into out (may be NULL
 * with cap 0), *n (may be NULL) the number of weights, *overall (may be
 * NULL) the share of zeros over all of them (0 without weights). Reads the
 * parameters from the device. */
ct_status ct_weight_sparsity(const ct_graph *g, const ct_program *p, ct_sparsity *out, int cap, int *n,
                             double *overall);

#ifdef __cplusplus
}
#endif
#endif
