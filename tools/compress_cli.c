/* `ctrain train`'s compression options: their defaults, their checks in
 * terms of flags, the teacher's model read from its checkpoint, and the
 * library's options made from them (docs/compression.md). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "compress_cli.h"

#define CMD "train"

const cli_choices compress_scope_choices = {.names = (const char *const[]){"layer", "global", NULL}};
const cli_choices compress_structure_choices = {
    .names = (const char *const[]){"unstructured", "neuron", "channel", NULL}};
const cli_choices compress_norm_choices = {.names = (const char *const[]){"l1", "l2", NULL}};

void compress_defaults(compress_cfg *c) {
    memset(c, 0, sizeof *c);
    c->prune_every = COMPRESS_DEFAULT_PRUNE_EVERY;
    c->prune_scope = CT_PRUNE_GLOBAL;
    c->temperature = COMPRESS_DEFAULT_TEMPERATURE;
    c->alpha = COMPRESS_DEFAULT_ALPHA;
}

int compress_check_options(const compress_cfg *c, bool lm) {
    if (c->prune_flag_set && !c->prune_set)
        return cli_usage_error(CMD, "the --prune-* options need --prune-sparsity S (the final sparsity)");
    if (c->prune_set && c->prune_end > 0 && c->prune_start > c->prune_end)
        return cli_usage_error(CMD, "--prune-start %lld is after --prune-end %lld", (long long)c->prune_start,
                               (long long)c->prune_end);
    if ((c->temperature_set || c->alpha_set) && !c->distill_from)
        return cli_usage_error(CMD, "--distill-temperature and --distill-alpha need --distill-from TEACHER");
    if (lm && (c->prune_set || c->distill_from))
        return cli_usage_error(CMD, "--prune-* and --distill-* are not for --data text or tokens");
    return CLI_EXIT_OK;
}

bool compress_prepare(compress_cfg *c, const char *cmd) {
    if (!c->distill_from) return true;
    ct_st_file *f = ct_st_open(c->distill_from);
    if (!f) {
        fprintf(stderr, "ctrain: %s: --distill-from: %s\n", cmd, ct_last_error());
        return false;
    }
    const char *rec = ct_st_meta(f, "cli.model");
    const char *why = "it has no model record (metadata cli.model): give a checkpoint of 'ctrain train'";
    bool ok = rec && model_from_json(rec, &c->teacher, &why);
    if (ok && strcmp(c->teacher.model, "gpt") == 0) ok = false, why = "it holds a language model";
    if (!ok) fprintf(stderr, "ctrain: %s: --distill-from '%s': %s\n", cmd, c->distill_from, why);
    ct_st_close(f);
    return ok;
}

void compress_trainer_opts(compress_cfg *c, ct_train_opts *o) {
    if (c->prune_set) {
        c->prune.start = c->prune_start;
        c->prune.end = c->prune_end;
        c->prune.every = c->prune_every;
        c->prune.scope = (ct_prune_scope)c->prune_scope;
        c->prune.structure = (ct_prune_structure)c->prune_structure;
        c->prune.norm = (ct_prune_norm)c->prune_norm;
        o->prune = &c->prune;
    }
    if (c->distill_from) {
        c->distill = (ct_distill_opts){.teacher = model_build,
                                       .teacher_user = &c->teacher,
                                       .teacher_path = c->distill_from,
                                       .temperature = c->temperature,
                                       .alpha = c->alpha};
        o->distill = &c->distill;
    }
}

void compress_describe(const compress_cfg *c) {
    if (c->prune_set) {
        printf(" | prune to %g %s %s", c->prune.sparsity, compress_scope_choices.names[c->prune_scope],
               compress_structure_choices.names[c->prune_structure]);
        if (c->prune_end > 0)
            printf(" steps %lld..%lld", (long long)c->prune_start, (long long)c->prune_end);
        else
            printf(" from step %lld", (long long)c->prune_start);
        printf(" every %lld", (long long)c->prune_every);
    }
    if (c->distill_from) printf(" | distil T %g alpha %g", c->temperature, c->alpha);
}
