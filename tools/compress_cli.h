/* `ctrain train`'s compression options (docs/compression.md): magnitude
 * pruning during training and distillation from a teacher checkpoint; and
 * `ctrain prune`, which writes a physically smaller MLP. */
#ifndef CTRAIN_TOOLS_COMPRESS_CLI_H
#define CTRAIN_TOOLS_COMPRESS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <ctrain/ctrain.h>

#include "cli_options.h"
#include "train_cli.h"

typedef struct compress_cfg {
    /* --prune-*: the library's options (end 0: the run's last step) */
    ct_prune_opts prune;
    bool prune_set;          /* --prune-sparsity given */
    bool prune_flag_set;     /* any other --prune-* flag given */
    int prune_scope, prune_structure, prune_norm;
    int64_t prune_start, prune_end, prune_every;
    /* --distill-*: the teacher checkpoint, its model (from its record) */
    const char *distill_from;
    double temperature, alpha;
    bool temperature_set, alpha_set;
    model_cfg teacher;
    ct_distill_opts distill;
} compress_cfg;

#define COMPRESS_DEFAULT_TEMPERATURE 4.0
#define COMPRESS_DEFAULT_ALPHA 0.9
#define COMPRESS_DEFAULT_PRUNE_EVERY 100

/* The defaults of the fields above. */
void compress_defaults(compress_cfg *c);
/* Flags that need others or exclude something (a usage error and its exit
 * code, else CLI_EXIT_OK); lm: the run trains a language model. */
int compress_check_options(const compress_cfg *c, bool lm);
/* After the data: the teacher's model from its checkpoint's record. False
 * after reporting. */
bool compress_prepare(compress_cfg *c, const char *cmd);
/* The library's options into o (prune, distill), pointing into c. */
void compress_trainer_opts(compress_cfg *c, ct_train_opts *o);

/* " | prune to 0.9 global unstructured ..." for train's header line. */
void compress_describe(const compress_cfg *c);

/* The pruning choices for the option tables: scope, structure, norm. */
extern const cli_choices compress_scope_choices, compress_structure_choices, compress_norm_choices;

/* `ctrain eval`'s sparsity line (compress_report.c): the share of exact
 * zeros over the file's weights and per weight; nothing when none is 0. */
void compress_print_sparsity(const ct_st_file *f);

/* `ctrain prune` (cmd_prune.c). */
int cmd_prune(int argc, char **argv);
void cmd_prune_usage(FILE *out);
extern const cli_table prune_table;

#endif
