/* `ctrain train --data text|tokens`: a GPT or a recurrent model (lstm,
 * gru, rnn) trained by the library's
 * language-model trainer (ct_trainer_new_lm). The options are train's (the
 * same table); here the data become token sequences, the model's vocabulary
 * comes from them, and the checkpoint records the model's shape ("cli.model",
 * also the fingerprint), the data kind and, for text, the vocabulary
 * (LM_VOCAB_KEY), so that eval, generate and --resume need only the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lm_cli.h"
#include "train_opts.h"

#define CMD "train"

/* A resumed run keeps its model: a --block-size (or other shape) given
 * against the checkpoint's is said in terms of the flag. */
static bool check_resume_shape(const train_cfg *c) {
    if (!c->resume) return true;
    ct_st_file *f = ct_st_open(c->resume);
    if (!f) return true; /* --resume reports it */
    lm_record r;
    bool ok = true;
    if (lm_is_checkpoint(f) && lm_record_read(CMD, f, c->resume, &r)) {
        if (r.model.block_size != c->model.block_size) {
            fprintf(stderr, "ctrain: %s: --block-size %lld: '%s' holds a model of block size %lld; a resumed run "
                            "keeps its model\n",
                    CMD, (long long)c->model.block_size, c->resume, (long long)r.model.block_size);
            ok = false;
        }
        lm_record_free(&r);
    }
    ct_st_close(f);
    return ok;
}

static void print_header(const train_cfg *c, const ct_train_opts *o, const lm_data *d) {
    char model[256];
    model_describe(&c->model, 0, model, sizeof model);
    printf("%s (%s): %lld train, %lld val tokens | %s | %s lr %g", c->data.kind, c->data.train_file,
           (long long)ct_tokens_size(d->train), (long long)ct_tokens_size(d->val), model,
           ct_optim_kind_name(o->optim.kind), o->optim.lr);
    if (o->optim.weight_decay > 0) printf(" wd %g", o->optim.weight_decay);
    printf(" %s", ct_schedule_kind_name(o->schedule.kind));
    if (o->schedule.warmup_steps) printf(" warmup %lld", (long long)o->schedule.warmup_steps);
    printf(" | batch %lld x %lld tokens", (long long)o->batch_size, (long long)c->model.block_size);
    if (o->accum_steps > 1) printf(" x %d", o->accum_steps);
    if (c->model.stateful) printf(" | stateful");
    if (o->precision != CT_PRECISION_FP32) printf(" | %s", ct_precision_name(o->precision));
    char dev[32];
    if (o->max_steps > 0) printf(" | %lld steps", (long long)o->max_steps);
    else printf(" | %lld epochs", (long long)o->epochs);
    printf(" | %s\n", ct_device_str(c->device, dev, sizeof dev));
    fflush(stdout);
}

static void print_summary(const ct_train_result *r) {
    printf("val_loss %.4f  train_loss %.4f  after %lld step%s", r->val_loss, r->train_loss, (long long)r->steps,
           r->steps == 1 ? "" : "s");
    if (!isnan(r->tokens_per_s)) printf(", %.0f tokens/s", r->tokens_per_s);
    printf("%s\n", r->restored_best ? " (best validation weights)" : "");
}

/* Makes the trainer and runs it; the exit code. json[0..1] are freed by
 * the caller. */
static int run(train_cfg *c, const cli_parser *p, const lm_data *d, char *json[2]) {
    ct_train_opts o;
    train_trainer_opts(c, &o);
    o.prefetch = false; /* token batches are copied from memory: nothing to prefetch */
    o.eval_batch_size = c->eval_batch_set ? c->eval_batch_size : 0;
    json[0] = model_to_json(&c->model);
    json[1] = cli_given_json(p);
    if (!json[0] || !json[1]) {
        fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
        return CLI_EXIT_FAIL;
    }
    ct_train_meta meta[4] = {{"cli.model", json[0]}, {"cli.data", c->data.kind}, {"cli.options", json[1]}};
    int n_meta = 3;
    if (d->vocab) meta[n_meta++] = (ct_train_meta){LM_VOCAB_KEY, ct_text_vocab_json(d->vocab)};
    o.meta = meta;
    o.n_meta = n_meta;
    o.model_fingerprint = json[0];
    ct_lm_data ld = {.train = d->train, .val = d->val, .block_size = c->model.block_size,
                     .eval_batches = c->eval_batches};
    ct_lm_state states[2];
    if (c->model.stateful) {
        ld.states = states;
        ld.n_states = model_rnn_states(&c->model, states);
    }
    ct_trainer *t = ct_trainer_new_lm(&o, &ld);
    if (!t) return cli_fail(CMD);
    int rc = CLI_EXIT_FAIL;
    ct_train_result r = {0};
    if (train_start_from(t, c)) {
        if (!c->quiet) print_header(c, &o, d);
        if (ct_trainer_run(t, &r) == CT_OK) {
            rc = CLI_EXIT_OK;
            print_summary(&r);
        } else {
            /* Trained, but the last save failed: the results are real
             * (and the error says where the state was rescued to). */
            if (r.finished) print_summary(&r);
            cli_fail(CMD);
        }
    }
    ct_trainer_free(t);
    return rc;
}

int train_lm(train_cfg *c, const cli_parser *p) {
    if (ct_device_check(c->device) != CT_OK) return cli_fail(CMD);
    if (!check_resume_shape(c)) return CLI_EXIT_FAIL;
    lm_data d;
    c->data.vocab_size = c->data.vocab_size ? c->data.vocab_size : CT_TOKENS_GPT2_VOCAB;
    if (!lm_data_load(CMD, &c->data, NULL, &d)) return CLI_EXIT_FAIL;
    c->model.vocab_size = c->model.classes = d.vocab_size;
    ct_gpt_config gc = model_gpt_config(&c->model);
    bool ok = model_is_recurrent(&c->model) ? model_rnn_check(&c->model) : ct_gpt_config_check(&gc) == CT_OK;
    int rc;
    if (!ok) {
        rc = cli_fail(CMD);
    } else {
        char *json[2] = {NULL, NULL};
        rc = run(c, p, &d, json);
        free(json[0]);
        free(json[1]);
    }
    lm_data_free(&d);
    return rc;
}
