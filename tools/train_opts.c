/* The options of `ctrain train` beyond what each one means alone (that is
 * in its row, train_table.c): the defaults, the combinations refused, and
 * the options a checkpoint recorded.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train_opts.h"

#define CMD "train"

void train_cfg_defaults(train_cfg *c) {
    memset(c, 0, sizeof *c);
    c->data.kind = "mnist";
    snprintf(c->model.model, sizeof c->model.model, "mlp");
    c->model.hidden[0] = 512;
    c->model.hidden[1] = 256;
    c->model.n_hidden = 2;
    snprintf(c->model.activation, sizeof c->model.activation, "relu");
    snprintf(c->model.init, sizeof c->model.init, "default");
    c->model.dropout = TRAIN_DEFAULT_DROPOUT;
    c->model.n_layer = GPT_DEFAULT_N_LAYER;
    c->model.n_head = GPT_DEFAULT_N_HEAD;
    c->model.n_embd = GPT_DEFAULT_N_EMBD;
    c->model.block_size = GPT_DEFAULT_BLOCK;
    c->model.hidden_size = RNN_DEFAULT_HIDDEN;
    c->model.num_layers = RNN_DEFAULT_LAYERS;
    c->eval_batches = TRAIN_DEFAULT_EVAL_BATCHES;
    c->epochs = TRAIN_DEFAULT_EPOCHS;
    c->batch_size = TRAIN_DEFAULT_BATCH;
    c->eval_batch_size = TRAIN_DEFAULT_EVAL_BATCH;
    c->optim.kind = CT_OPTIM_ADAMW;
    c->optim.lr = TRAIN_DEFAULT_LR;
    c->sched.kind = TRAIN_DEFAULT_SCHEDULE;
    c->unit = -1;
    c->seed = TRAIN_DEFAULT_SEED;
    c->prefetch = true;
    c->data.val_split = TRAIN_DEFAULT_VAL_SPLIT;
    /* A GPU when there is one, else the CPU (ct_device_parse's "auto"). */
    c->device_text = "auto";
    ct_device_parse("auto", &c->device);
    c->bucket_kb = CT_DDP_DEFAULT_BUCKET / 1024;
    compress_defaults(&c->compress);
}

/* ---------------------------------------------------------------- augmentation */

static int check_augment(const train_cfg *c) {
    const data_cfg *d = &c->data;
    if (d->augment && strcmp(d->kind, "csv") == 0)
        return cli_usage_error(CMD, "--augment needs images (--data mnist, fashion-mnist or cifar10), not csv");
    const struct { unsigned bit; bool set; const char *flag; } params[] = {
        {AUG_CROP, d->crop_pad != 0, "--crop-pad"},
        {AUG_ROTATE, d->rotate_deg != 0, "--rotate-deg"},
        {AUG_TRANSLATE, d->translate_px != 0, "--translate-px"},
        {AUG_NOISE, d->noise_std != 0, "--noise-std"},
        {AUG_CUTOUT, d->cutout_size != 0, "--cutout-size"},
    };
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        if (params[i].set && !(d->augment & params[i].bit)) {
            int k = 0;
            while (!(params[i].bit >> k & 1u)) k++;
            return cli_usage_error(CMD, "%s needs %s in --augment", params[i].flag, train_augment_names[k]);
        }
    return CLI_EXIT_OK;
}

static void augment_defaults(train_cfg *c) {
    data_cfg *d = &c->data;
    if (!d->crop_pad) d->crop_pad = AUG_DEFAULT_CROP_PAD;
    if (!d->rotate_deg) d->rotate_deg = AUG_DEFAULT_ROTATE_DEG;
    if (!d->translate_px) d->translate_px = AUG_DEFAULT_TRANSLATE_PX;
    if (!d->noise_std) d->noise_std = AUG_DEFAULT_NOISE_STD;
    if (!d->cutout_size) d->cutout_size = AUG_DEFAULT_CUTOUT_SIZE;
}

/* ---------------------------------------------------------------- checks */

bool train_is_lm(const train_cfg *c) {
    return strcmp(c->data.kind, "text") == 0 || strcmp(c->data.kind, "tokens") == 0;
}

/* Language models: gpt, lstm, gru or rnn on text or tokens, and none of
 * the options that only mean something for datasets of samples. */
static int check_lm(train_cfg *c) {
    const data_cfg *d = &c->data;
    bool lm = model_is_lm(&c->model);
    if (!train_is_lm(c)) {
        if (lm) return cli_usage_error(CMD, "--model %s needs --data text or tokens", c->model.model);
        if (c->model.stateful) return cli_usage_error(CMD, "--stateful is for --data text or tokens");
        if (d->val_file) return cli_usage_error(CMD, "--val-file is for --data text or tokens (csv: --val-split)");
        return CLI_EXIT_OK;
    }
    if (!c->model.model_given) snprintf(c->model.model, sizeof c->model.model, "gpt");
    else if (!lm)
        return cli_usage_error(CMD, "--data %s needs --model gpt, lstm, gru or rnn, not %s", d->kind, c->model.model);
    if (!d->train_file) return cli_usage_error(CMD, "--data %s needs --train-file FILE", d->kind);
    if (d->vocab_size && strcmp(d->kind, "tokens") != 0)
        return cli_usage_error(CMD, "--vocab-size is for --data tokens (text takes its characters)");
    if (c->model.stateful && !model_is_recurrent(&c->model))
        return cli_usage_error(CMD, "--stateful is for --model lstm, gru or rnn, not %s (a GPT has no state to carry)",
                               c->model.model);
    if (c->model.stateful && c->model.bidirectional)
        return cli_usage_error(CMD, "--stateful and --bidirectional exclude each other (the reverse direction's final "
                                    "state is that of the window's start)");
    if (c->model.n_embd % c->model.n_head != 0)
        return cli_usage_error(CMD, "--n-embd %lld is not divisible by --n-head %lld", (long long)c->model.n_embd,
                               (long long)c->model.n_head);
    const struct { bool set; const char *flag; } other[] = {
        {d->augment != 0, "--augment"},       {c->label_smoothing != 0, "--label-smoothing"},
        {d->val_split > 0, "--val-split"},    {d->test_file != NULL, "--test-file"},
        {c->drop_last, "--drop-last"},        {c->model.hidden_given, "--hidden"},
        {c->model.batchnorm, "--batchnorm"},  {c->model.width != 0, "--width"},
        {d->train_limit != 0, "--train-limit"}, {strcmp(c->model.init, "default") != 0, "--init"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (other[i].set)
            return cli_usage_error(CMD, "%s is not for --data %s%s", other[i].flag, d->kind,
                                   i == 2 ? " (give --val-file, or the last 10% of --train-file validates)" : "");
    return CLI_EXIT_OK;
}

static int check_model_data(const train_cfg *c) {
    if (c->resume && c->init_from)
        return cli_usage_error(CMD, "--resume and --init-from exclude each other (a resumed run has its weights)");
    if (c->strict && !c->init_from) return cli_usage_error(CMD, "--strict is for --init-from");
    if (c->reset_head && !c->init_from) return cli_usage_error(CMD, "--reset-head is for --init-from");
    if (c->reset_head && c->strict)
        return cli_usage_error(CMD, "--reset-head and --strict exclude each other (the head is not loaded)");
    if (c->reset_head && train_is_lm(c))
        return cli_usage_error(CMD, "--reset-head is for the classifiers, not --data %s", c->data.kind);
    if (c->freeze && !c->freeze[0]) return cli_usage_error(CMD, "--freeze wants PREFIX[,PREFIX...], not ''");
    /* Saving every N epochs to nowhere would be ignored silently. */
    if (c->save_every && !c->save && !c->resume)
        return cli_usage_error(CMD, "--save-every needs --save FILE (or --resume FILE, which saves back to FILE)");
    if (c->tensorboard_histograms && !c->tensorboard)
        return cli_usage_error(CMD, "--tensorboard-histograms needs --tensorboard DIR");
    if (c->early_stop && c->data.val_split <= 0 && !train_is_lm(c))
        return cli_usage_error(CMD, "--early-stop needs a validation set: add --val-split, e.g. 0.1");
    if (!model_is_image(&c->model) && c->model.width)
        return cli_usage_error(CMD, "--width is for --model cnn or resnet");
    if (strcmp(c->model.model, "resnet") != 0 && c->model.depth)
        return cli_usage_error(CMD, "--depth is for --model resnet");
    if (strcmp(c->model.model, "resnet") == 0 && c->model.hidden_given)
        return cli_usage_error(CMD, "--hidden is for --model mlp or cnn (resnet's head is one linear layer)");
    if (strcmp(c->model.model, "resnet") == 0 && c->model.batchnorm)
        return cli_usage_error(CMD, "--batchnorm: resnet always has batch norm");
    if (strcmp(c->data.kind, "csv") == 0 && !c->data.train_file)
        return cli_usage_error(CMD, "--data csv needs --train-file FILE");
    return CLI_EXIT_OK;
}

/* Combinations the library would refuse too, said in terms of flags. */
static int check_optim_schedule(const train_cfg *c) {
    ct_optim_kind k = c->optim.kind;
    if (c->optim.nesterov && (k != CT_OPTIM_SGD || !(c->optim.momentum > 0) || c->optim.dampening != 0))
        return cli_usage_error(CMD, "--nesterov needs --optim sgd, --momentum > 0 and no --dampening");
    if (c->optim.amsgrad && k != CT_OPTIM_ADAM && k != CT_OPTIM_ADAMW)
        return cli_usage_error(CMD, "--amsgrad is for --optim adam or adamw");
    if (c->optim.centered && k != CT_OPTIM_RMSPROP) return cli_usage_error(CMD, "--centered is for --optim rmsprop");
    const ct_schedule *s = &c->sched;
    if (s->kind == CT_SCHED_STEP && !s->step_size) return cli_usage_error(CMD, "--schedule step needs --step-size N");
    if (s->kind == CT_SCHED_MULTISTEP && !s->n_milestones)
        return cli_usage_error(CMD, "--schedule multistep needs --milestones N,N,...");
    if (s->kind == CT_SCHED_EXPONENTIAL && !(s->gamma > 0))
        return cli_usage_error(CMD, "--schedule exponential needs --gamma X");
    if (s->kind == CT_SCHED_CYCLIC && !(s->max_lr > 0))
        return cli_usage_error(CMD, "--schedule cyclic needs --max-lr X");
    return CLI_EXIT_OK;
}

int train_check_options(train_cfg *c) {
    int rc = check_lm(c);
    if (rc == CLI_EXIT_OK) rc = check_model_data(c);
    if (rc == CLI_EXIT_OK) rc = check_optim_schedule(c);
    if (rc == CLI_EXIT_OK) rc = check_augment(c);
    if (rc == CLI_EXIT_OK) rc = data_check_flags(CMD, &c->data);
    if (rc == CLI_EXIT_OK) rc = compress_check_options(&c->compress, train_is_lm(c));
    if (rc == CLI_EXIT_OK) augment_defaults(c);
    return rc;
}

/* ---------------------------------------------------------------- record */

int train_apply_checkpoint_options(cli_parser *p, const char *path) {
    ct_st_file *f = ct_st_open(path);
    if (!f) return CLI_EXIT_OK;
    const char *rec = ct_st_meta(f, "cli.options");
    int rc = CLI_EXIT_OK;
    if (rec) {
        cJSON *doc = cJSON_ParseWithOpts(rec, NULL, true); /* nothing after the object */
        char where[600];
        snprintf(where, sizeof where, "the checkpoint %s", path);
        if (!cJSON_IsObject(doc)) {
            fprintf(stderr,
                    "ctrain: %s: --resume '%s': its record of options (metadata cli.options) is not a JSON object\n",
                    CMD, path);
            rc = CLI_EXIT_FAIL;
        } else {
            rc = cli_apply_json(p, where, doc);
        }
        cJSON_Delete(doc);
    }
    ct_st_close(f);
    return rc;
}

