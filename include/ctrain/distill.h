/* Knowledge distillation (Hinton et al. 2015; docs/compression.md).
 *
 * A trainer given ct_train_opts.distill builds the teacher from its own
 * model function, loads its weights from a file (every parameter and
 * buffer required), and runs it forward only, in evaluation mode, on the
 * same batch in every training step; its parameters are in no optimizer
 * and get no gradient. The training loss is then
 *
 *     alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
 *       + (1 - alpha) * CE(student, labels)
 *
 * with the KL term PyTorch's F.kl_div(F.log_softmax(s / T, 1),
 * F.softmax(t / T, 1), reduction='batchmean') (ct_kl_div) and the CE term
 * the trainer's usual cross-entropy (with its label smoothing). Evaluation
 * and the reported validation and test losses stay the plain
 * cross-entropy; the metrics lines add the epoch's mean KL and CE terms
 * (distill_kl, distill_ce).
 */
#ifndef CTRAIN_DISTILL_H
#define CTRAIN_DISTILL_H

#include <stdbool.h>

#include "ctrain/graph.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The teacher's model function: the same contract as ct_model_fn
 * (ctrain/train.h), called with training false. */
typedef ct_node (*ct_teacher_fn)(ct_graph *g, ct_node x, bool training, void *user);

typedef struct ct_distill_opts {
    ct_teacher_fn teacher;     /* required */
    void *teacher_user;
    const char *teacher_path;  /* required: the teacher's weights (safetensors) */
    double temperature;        /* T > 0; 0: 4 */
    double alpha;              /* weight of the KL term, in [0, 1] */
} ct_distill_opts;

/* Adds the distillation loss of student logits s and teacher logits t
 * ([N, C] floats of one shape) and I32 labels y [N] to g: *loss the
 * combined loss above; kl and ce (may be NULL) get the two terms as they
 * are (before the weights). label_smoothing as ct_cross_entropy. Errors
 * (recorded in g, CT_NO_NODE in *loss): those of the builders, T <= 0 or
 * not finite, alpha outside [0, 1]. */
ct_status ct_distill_loss(ct_graph *g, ct_node s, ct_node t, ct_node y, double temperature, double alpha,
                          double label_smoothing, ct_node *loss, ct_node *kl, ct_node *ce);

#ifdef __cplusplus
}
#endif
#endif
