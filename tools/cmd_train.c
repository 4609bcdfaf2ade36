/* `ctrain train`: train a classifier on MNIST, Fashion-MNIST or a CSV file.
 *
 * With no options it trains the MLP 784-512-256-10 on MNIST with AdamW and
 * a cosine schedule to about 98% test accuracy. Every option has a long
 * form only, named as PyTorch names the same thing where it can be, and can
 * also come from a JSON --config file (flags win). The work itself is the
 * library's trainer (ctrain/train.h); this file turns options into its
 * settings and its results into one summary line.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train_dist.h"
#include "train_opts.h"

#define CMD "train"

void cmd_train_usage(FILE *out) {
    fprintf(out,
        "usage: ctrain train [options]\n"
        "\n"
        "Trains a classifier and reports its test accuracy. With no options: an MLP\n"
        "784-512-256-10 (relu) on MNIST, AdamW (lr %g, weight decay %g), cosine\n"
        "schedule, batch %d, %d epochs, on the first GPU if there is one, else the CPU.\n"
        "Options may also come from a JSON file (--config) whose keys are the option\n"
        "names without dashes; flags win.\n"
        "\n"
        "data:\n"
        "  --data mnist|fashion-mnist|cifar10|csv   dataset (default mnist)\n"
        "  --data-dir DIR          MNIST or CIFAR-10 files (default: ../shared/data/<data>,\n"
        "                          from here or from the checkout holding this program)\n"
        "  --train-file FILE       CSV training data: numbers, one sample per line, a\n"
        "                          header line optional; features are standardised with\n"
        "                          the training part's mean and std\n"
        "  --test-file FILE        CSV test data (optional)\n"
        "  --label-column N        CSV field holding the label, 1-based, -1 the last (default)\n"
        "  --val-split F           hold out this fraction of the training set for\n"
        "                          validation (default %g: none)\n"
        "  --train-limit N         use only the first N training samples\n"
        "  --test-limit N          use only the first N test samples\n"
        "augmentation (training batches only, drawn per sample from --data-seed, epoch, index):\n"
        "  --augment LIST          comma list of crop, flip, rotate, translate, noise, cutout\n"
        "                          (or none); no flip for digits. docs/data.md has the details\n"
        "  --crop-pad N            crop: pad by N and crop back at random (default %d)\n"
        "  --rotate-deg X          rotate: by up to +-X degrees, bilinear (default %g)\n"
        "  --translate-px N        translate: by up to +-N pixels each way (default %d)\n"
        "  --noise-std X           noise: Gaussian, std X in [0, 1] pixel units (default %g)\n"
        "  --cutout-size N         cutout: blank an N x N square (default %d)\n"
        "model:\n"
        "  --model mlp|cnn|resnet  the model (default mlp); cnn: two conv5x5 blocks\n"
        "                          (--width, 2x --width channels, relu, max pool 2) and\n"
        "                          a classifier (--hidden, default 128); resnet: a\n"
        "                          CIFAR-style ResNet with batch norm (docs/conv.md)\n"
        "  --width N               cnn, resnet: base channels (default 32 cnn, 16 resnet)\n"
        "  --depth N               resnet: residual blocks per stage, 3 stages (default 1)\n"
        "  --hidden N,N,...        hidden layer sizes (default 512,256)\n"
        "  --activation NAME       relu, leaky_relu, gelu, gelu_tanh, tanh, sigmoid, silu,\n"
        "                          identity (default relu)\n"
        "  --dropout P             dropout after each hidden layer (default %g)\n"
        "  --batchnorm             batch norm after each hidden linear layer (cnn: after\n"
        "                          each conv)\n"
        "  --init default|xavier|kaiming   weight initialisation (default: PyTorch's)\n"
        "training:\n"
        "  --epochs N              epochs (default %d)\n"
        "  --steps N               stop after N optimizer steps (alone: no epoch limit)\n"
        "  --batch-size N          (default %d)\n"
        "  --eval-batch-size N     (default %d)\n"
        "  --accum N               accumulate gradients over N batches per step\n"
        "  --drop-last             drop a last training batch shorter than --batch-size\n"
        "  --no-shuffle            keep the training set's order\n"
        "  --label-smoothing E     as nn.CrossEntropyLoss (default 0)\n"
        "  --clip-norm X           clip the gradients' total L2 norm to X\n"
        "  --clip-value X          clip every gradient to [-X, X]\n"
        "optimizer:\n"
        "  --optim sgd|adagrad|rmsprop|adam|adamw   (default adamw)\n"
        "  --lr X                  learning rate (default %g)\n"
        "  --momentum X            sgd, rmsprop\n"
        "  --dampening X           sgd\n"
        "  --nesterov              sgd\n"
        "  --betas B1,B2           adam, adamw (default 0.9,0.999)\n"
        "  --eps X                 (default: PyTorch's)\n"
        "  --alpha X               rmsprop smoothing (default 0.99)\n"
        "  --amsgrad               adam, adamw\n"
        "  --centered              rmsprop\n"
        "  --weight-decay X        (default %g for adamw, else 0); biases and norm\n"
        "                          weights are not decayed\n"
        "  --l1 X                  L1 penalty\n"
        "learning-rate schedule:\n"
        "  --schedule constant|step|multistep|exponential|cosine|cyclic|onecycle|plateau\n"
        "                          (default cosine)\n"
        "  --schedule-unit step|epoch   what the schedule counts (default: epoch for\n"
        "                          step, multistep, exponential; step otherwise)\n"
        "  --step-size N           step: period; --gamma X: factor (default 0.1)\n"
        "  --milestones N,N,...    multistep\n"
        "  --t-max N               cosine: half-period (default: the whole run)\n"
        "  --eta-min X             cosine: floor (default 0)\n"
        "  --max-lr X              cyclic: upper bound; onecycle: peak (default --lr)\n"
        "  --step-size-up N, --step-size-down N, --cyclic-mode triangular|triangular2|exp_range\n"
        "  --total-steps N, --pct-start F, --div-factor X, --final-div-factor X,\n"
        "  --anneal cos|linear     onecycle (total-steps default: the whole run)\n"
        "  --factor X, --patience N, --threshold X, --cooldown N, --min-lr X   plateau\n"
        "                          (on the validation loss, else the training loss)\n"
        "  --warmup N              linear warmup over the first N optimizer steps\n"
        "  --warmup-start-factor F warmup starts at F * lr (default 0)\n"
        "evaluation:\n"
        "  --eval-every N          validate every N steps (default: every epoch)\n"
        "  --early-stop P          stop after P validations without improvement of the\n"
        "                          validation loss, keeping the best weights (needs\n"
        "                          --val-split)\n"
        "  --min-delta X           smallest improvement that counts (default 0)\n"
        "  --metrics FILE          append one JSON line per epoch/validation and at the end\n"
        "checkpoints:\n"
        "  --save FILE             write a checkpoint (safetensors) at the end\n"
        "  --save-every N          ... and every N epochs\n"
        "  --resume FILE           continue the run a checkpoint holds, with the options\n"
        "                          it was started with (options given here win; model,\n"
        "                          batch size, data and optimizer must stay), saving\n"
        "                          back to FILE unless --save says otherwise\n"
        "  --init-from FILE        start from the weights in FILE (by name, e.g. a PyTorch\n"
        "                          state_dict saved as safetensors)\n"
        "run:\n"
        "  --device cpu|cuda|cuda:N|auto   (default auto: the first GPU when this build\n"
        "                          and machine can use one, else the CPU)\n"
        "  --tf32                  let F32 matrix products use TF32 tensor cores (GPU)\n"
        "  --no-cuda-graph         GPU: launch every kernel of a step, no CUDA Graph replay\n"
        "  --seed N                initial weights, dropout, shuffling (default %d)\n"
        "  --data-seed N           shuffling and --val-split only (default: --seed)\n"
        "  --no-prefetch           do not prepare batches on a second thread\n"
        "  --quiet                 print only the final line\n"
        "mixed precision (docs/mixed_precision.md):\n"
        "  --precision fp32|fp16|bf16   products and convolutions on FP16/BF16 operands\n"
        "                          with FP32 accumulation; FP32 weights (default fp32)\n"
        "  --loss-scale dynamic|none|N  loss scaling (default: dynamic for fp16, else none)\n"
        "  --tf32                  allow TF32 in FP32 matrix products (GPU only)\n"
        "  --config FILE           options from a JSON object, e.g. {\"lr\": 0.01}\n"
        "data parallel (under mpirun or srun, docs/distributed.md):\n"
        "  --dist auto|off|mpi|nccl   auto (default): one rank per process a launcher\n"
        "                          started, MPI on the CPU, NCCL on GPUs; --batch-size is\n"
        "                          the global batch, split across the ranks\n"
        "  --bucket-kb N           all-reduce gradients in buckets of N KiB (default 4096)\n"
        "  --no-overlap            one all-reduce after backward, not buckets during it\n"
        "  --dist-timeout S        seconds a rank waits for the others (default 600)\n"
        "\n"
        "Prints progress, then one line: test accuracy, loss, epochs and seconds per\n"
        "epoch. Exits 0 on success, 1 when training fails (data, device, checkpoint),\n"
        "2 for a bad command line.\n",
        TRAIN_DEFAULT_LR, TRAIN_DEFAULT_WEIGHT_DECAY, TRAIN_DEFAULT_BATCH, TRAIN_DEFAULT_EPOCHS,
        TRAIN_DEFAULT_VAL_SPLIT, AUG_DEFAULT_CROP_PAD, AUG_DEFAULT_ROTATE_DEG, AUG_DEFAULT_TRANSLATE_PX,
        AUG_DEFAULT_NOISE_STD, AUG_DEFAULT_CUTOUT_SIZE, TRAIN_DEFAULT_DROPOUT, TRAIN_DEFAULT_EPOCHS, TRAIN_DEFAULT_BATCH,
        TRAIN_DEFAULT_EVAL_BATCH, TRAIN_DEFAULT_LR, TRAIN_DEFAULT_WEIGHT_DECAY, TRAIN_DEFAULT_SEED);
}

/* Returns CLI_EXIT_OK to go on; otherwise the exit code, with *done set. */
static int parse_args(int argc, char **argv, train_cfg *c, bool *done) {
    *done = true;
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            cmd_train_usage(stdout);
            return CLI_EXIT_OK;
        }
    /* A resumed run's own options first, then the config file, wherever
     * --resume and --config stand, so that the flags given win. */
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m = cli_option(CMD, argc, argv, &i, "--resume", &v);
        if (m < 0) return CLI_EXIT_USAGE;
        if (m > 0) {
            int rc = train_apply_checkpoint_options(c, v);
            if (rc != CLI_EXIT_OK) return rc;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m = cli_option(CMD, argc, argv, &i, "--config", &v);
        if (m < 0) return CLI_EXIT_USAGE;
        if (m > 0) {
            int rc = train_apply_config(c, v);
            if (rc != CLI_EXIT_OK) return rc;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == 0)
            return arg[0] == '-' ? cli_usage_error(CMD, "unknown option '%s'", arg)
                                 : cli_usage_error(CMD, "unexpected argument '%s'", arg);
        char name[64];
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (len >= sizeof name) return cli_usage_error(CMD, "unknown option '%.80s'", arg);
        memcpy(name, arg + 2, len);
        name[len] = 0;
        char opt[72];
        snprintf(opt, sizeof opt, "--%s", name);
        const char *v = NULL;
        if (train_option_is_flag(name)) {
            if (eq) return cli_usage_error(CMD, "%s takes no value", opt);
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            /* Unknown options first: "--bogus" at the end is a typo, not a
             * missing value. */
            if (!train_option_known(name)) return cli_usage_error(CMD, "unknown option '%s'", opt);
            return cli_usage_error(CMD, "option '%s' needs a value", opt);
        }
        int r = train_set_option(c, name, v, opt);
        if (r == -1) return cli_usage_error(CMD, "unknown option '%s'", opt);
        if (r == 0) return CLI_EXIT_USAGE;
        if (!train_note_option(c, name, v)) {
            fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
            return CLI_EXIT_FAIL;
        }
    }
    if (c->resume && c->init_from)
        return cli_usage_error(CMD, "--resume and --init-from exclude each other (a resumed run has its weights)");
    if (c->early_stop && c->data.val_split <= 0)
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
    /* Combinations the library would refuse too, said in terms of flags. */
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
    if (s->kind == CT_SCHED_CYCLIC && !(s->max_lr > 0)) return cli_usage_error(CMD, "--schedule cyclic needs --max-lr X");
    int arc = train_check_augment(c);
    if (arc != CLI_EXIT_OK) return arc;
    train_augment_defaults(c);
    *done = false;
    return CLI_EXIT_OK;
}

static const char *sched_name(ct_schedule_kind k) {
    return k == CT_SCHED_ONE_CYCLE ? "onecycle" : ct_schedule_kind_name(k);
}

/* The run's settings from the options. */
static void trainer_opts(const train_cfg *c, ct_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = model_build;
    o->model_user = (void *)&c->model;
    o->device = c->device;
    o->seed = c->seed;
    o->data_seed = c->data_seed_set ? c->data_seed : c->seed;
    o->batch_size = c->batch_size;
    o->eval_batch_size = c->eval_batch_size;
    o->no_shuffle = c->no_shuffle;
    o->drop_last = c->drop_last;
    o->prefetch = c->prefetch;
    o->epochs = c->steps > 0 && !c->epochs_set ? 0 : c->epochs;
    o->max_steps = c->steps;
    o->optim = c->optim;
    if (!c->wd_set && c->optim.kind == CT_OPTIM_ADAMW) o->optim.weight_decay = TRAIN_DEFAULT_WEIGHT_DECAY;
    o->schedule = c->sched;
    if (c->unit >= 0)
        o->schedule_unit = (ct_sched_unit)c->unit;
    else
        o->schedule_unit = c->sched.kind == CT_SCHED_STEP || c->sched.kind == CT_SCHED_MULTISTEP ||
                                   c->sched.kind == CT_SCHED_EXPONENTIAL
                               ? CT_SCHED_PER_EPOCH
                               : CT_SCHED_PER_STEP;
    o->clip_norm = c->clip_norm;
    o->clip_value = c->clip_value;
    o->accum_steps = c->accum;
    o->label_smoothing = c->label_smoothing;
    o->eval_every = c->eval_every;
    o->early_stop_patience = c->early_stop;
    o->early_stop_min_delta = c->min_delta;
    o->metrics_path = c->metrics;
    o->save_path = c->save ? c->save : c->resume;
    o->save_every = c->save_every;
    o->quiet = c->quiet;
    o->precision = c->precision;
    o->tf32 = c->tf32;
    o->loss_scale = c->loss_scale;
    o->dist_bucket_bytes = c->bucket_kb * 1024;
    o->dist_no_overlap = c->no_overlap;
    o->no_cuda_graph = c->no_cuda_graph;
}

/* " | augment crop 4, flip": what the training batches get. */
static void print_augment(const ct_augment_opts *a) {
    char buf[160];
    int n = 0;
    const int cap = (int)sizeof buf;
    buf[0] = 0;
    if (a->crop_pad) n += snprintf(buf + n, (size_t)(cap - n), ", crop %d", a->crop_pad);
    if (a->flip && n < cap) n += snprintf(buf + n, (size_t)(cap - n), ", flip");
    if (a->rotate_deg > 0 && n < cap) n += snprintf(buf + n, (size_t)(cap - n), ", rotate %g", a->rotate_deg);
    if (a->translate_px && n < cap) n += snprintf(buf + n, (size_t)(cap - n), ", translate %d", a->translate_px);
    if (a->noise_std > 0 && n < cap) n += snprintf(buf + n, (size_t)(cap - n), ", noise %g", a->noise_std);
    if (a->cutout_size && n < cap) snprintf(buf + n, (size_t)(cap - n), ", cutout %d", a->cutout_size);
    if (buf[0]) printf(" | augment %s", buf + 2);
}

static void print_header(const train_cfg *c, const ct_train_opts *o, const data_sets *d) {
    char model[256], sizes[160];
    model_describe(&c->model, ct_dataset_sample_numel(d->train), model, sizeof model);
    int n = snprintf(sizes, sizeof sizes, "%lld train", (long long)ct_dataset_size(d->train));
    if (d->val) n += snprintf(sizes + n, sizeof sizes - (size_t)n, ", %lld val", (long long)ct_dataset_size(d->val));
    if (d->test) snprintf(sizes + n, sizeof sizes - (size_t)n, ", %lld test", (long long)ct_dataset_size(d->test));
    char length[64];
    if (o->epochs > 0 && o->max_steps > 0)
        snprintf(length, sizeof length, "%lld epochs or %lld steps", (long long)o->epochs, (long long)o->max_steps);
    else if (o->epochs > 0)
        snprintf(length, sizeof length, "%lld epoch%s", (long long)o->epochs, o->epochs == 1 ? "" : "s");
    else
        snprintf(length, sizeof length, "%lld steps", (long long)o->max_steps);
    printf("%s (%s): %s | %s | %s lr %g", c->data.kind, d->where, sizes, model, ct_optim_kind_name(o->optim.kind),
           o->optim.lr);
    if (o->optim.weight_decay > 0) printf(" wd %g", o->optim.weight_decay);
    printf(" %s", sched_name(o->schedule.kind));
    if (o->schedule.warmup_steps) printf(" warmup %lld", (long long)o->schedule.warmup_steps);
    printf(" | batch %lld", (long long)o->batch_size);
    if (o->accum_steps > 1) printf(" x %d", o->accum_steps);
    if (o->augment) print_augment(o->augment);
    if (o->precision != CT_PRECISION_FP32) printf(" | %s", ct_precision_name(o->precision));
    char dev[32];
    printf(" | %s | %s\n", length, ct_device_str(c->device, dev, sizeof dev));
    fflush(stdout);
}

/* The checkpoint records how to rebuild the model and prepare the data
 * (for `ctrain eval`), and the options given (for --resume). */
#define N_META 4
static bool checkpoint_meta(const train_cfg *c, const data_sets *d, ct_train_meta meta[N_META], char *json[3]) {
    json[0] = model_to_json(&c->model);
    json[1] = norm_to_json(d->mean, d->std, d->n_norm);
    json[2] = train_given_json(c);
    if (!json[0] || !json[1] || !json[2]) return false;
    meta[0] = (ct_train_meta){"cli.model", json[0]};
    meta[1] = (ct_train_meta){"cli.data", c->data.kind};
    meta[2] = (ct_train_meta){"cli.normalize", json[1]};
    meta[3] = (ct_train_meta){"cli.options", json[2]};
    return true;
}

static void print_summary(const ct_train_result *r) {
    char after[96];
    int n;
    if (r->steps == r->epochs * r->steps_per_epoch)
        n = snprintf(after, sizeof after, "after %lld epoch%s", (long long)r->epochs, r->epochs == 1 ? "" : "s");
    else
        n = snprintf(after, sizeof after, "after %lld step%s", (long long)r->steps, r->steps == 1 ? "" : "s");
    /* Seconds per epoch where this run had a whole one, else the pace; a
     * resumed run with nothing left to do has neither. */
    if (!isnan(r->s_per_epoch))
        snprintf(after + n, sizeof after - (size_t)n, ", %.1f s/epoch", r->s_per_epoch);
    else if (!isnan(r->samples_per_s))
        snprintf(after + n, sizeof after - (size_t)n, ", %.0f samples/s", r->samples_per_s);
    const char *best = r->restored_best ? " (best validation weights)" : "";
    if (!isnan(r->test_acc))
        printf("test accuracy %.2f%% (loss %.4f) %s%s\n", 100 * r->test_acc, r->test_loss, after, best);
    else if (!isnan(r->val_acc))
        printf("validation accuracy %.2f%% (loss %.4f) %s%s\n", 100 * r->val_acc, r->val_loss, after, best);
    else
        printf("training loss %.4f %s\n", r->train_loss, after);
}

int cmd_train(int argc, char **argv) {
    train_cfg c;
    train_cfg_defaults(&c);
    bool done;
    int rc = parse_args(argc, argv, &c, &done);
    if (done) {
        train_cfg_free(&c);
        return rc;
    }
    rc = CLI_EXIT_FAIL;
    data_sets d = {0};
    ct_trainer *t = NULL;
    char *json[3] = {NULL, NULL, NULL};
    /* Every rank runs this same command; only rank 0 speaks, and a rank
     * that fails takes the job down (below, at out) rather than leaving the
     * others waiting. */
    ct_comm *comm = NULL;
    char who[64] = CMD;
    if (!train_dist_open(&c, &comm)) goto out;
    if (ct_comm_size(comm) > 1)
        snprintf(who, sizeof who, "%s: rank %d of %d", CMD, ct_comm_rank(comm), ct_comm_size(comm));
    bool speaks = ct_comm_rank(comm) == 0;
    if (!speaks) c.quiet = true;
    if (ct_device_check(c.device) != CT_OK) {
        cli_fail(who);
        goto out;
    }
    c.data.split_seed = c.data_seed_set ? c.data_seed : c.seed;
    if (!data_load_train(CMD, &c.data, &d)) goto out;
    const char *why;
    if (!model_input_ok(&c.model, ct_dataset_sample_shape(d.train), &why)) {
        char s[96];
        fprintf(stderr, "ctrain: %s: --model %s: %s; %s has samples %s\n", CMD, c.model.model, why, d.where,
                ct_shape_str(ct_dataset_sample_shape(d.train), s, sizeof s));
        goto out;
    }
    c.model.classes = ct_dataset_num_classes(d.train);
    if (d.val && ct_dataset_num_classes(d.val) > c.model.classes) c.model.classes = ct_dataset_num_classes(d.val);
    if (d.test && ct_dataset_num_classes(d.test) > c.model.classes) c.model.classes = ct_dataset_num_classes(d.test);

    ct_train_opts o;
    trainer_opts(&c, &o);
    o.augment = data_augment(&d);
    ct_train_meta meta[N_META];
    if (!checkpoint_meta(&c, &d, meta, json)) {
        fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
        goto out;
    }
    o.meta = meta;
    o.n_meta = N_META;
    o.model_fingerprint = json[0];
    o.comm = comm;
    if (!(t = ct_trainer_new(&o, d.train, d.val, d.test))) {
        cli_fail(who);
        goto out;
    }
    if (c.resume) {
        if (ct_trainer_resume(t, c.resume) != CT_OK) {
            cli_fail("train: --resume");
            goto out;
        }
        int64_t epoch, batch, step;
        ct_trainer_position(t, &epoch, &batch, &step);
        if (!c.quiet && batch)
            printf("resuming %s: epoch %lld, after batch %lld (step %lld)\n", c.resume, (long long)epoch + 1,
                   (long long)batch, (long long)step);
        else if (!c.quiet)
            printf("resuming %s after epoch %lld (step %lld)\n", c.resume, (long long)epoch, (long long)step);
    } else if (c.init_from) {
        int loaded = 0;
        if (ct_trainer_init_from(t, c.init_from, NULL, &loaded) != CT_OK) {
            cli_fail("train: --init-from");
            goto out;
        }
        ct_graph *g = ct_trainer_graph(t);
        if (!c.quiet)
            printf("initialised %d of %d tensors from %s\n", loaded,
                   ct_graph_num_params(g) + ct_graph_num_buffers(g), c.init_from);
    }
    if (!c.quiet) print_header(&c, &o, &d);
    if (!c.quiet && comm) train_dist_describe(&c, comm);
    ct_train_result r;
    if (ct_trainer_run(t, &r) != CT_OK) {
        cli_fail(who);
        goto out;
    }
    if (speaks) print_summary(&r);
    rc = CLI_EXIT_OK;
out:
    if (rc != CLI_EXIT_OK && ct_comm_size(comm) > 1) {
        fflush(stdout);
        ct_comm_abort(comm, rc);
    }
    ct_trainer_free(t);
    ct_comm_free(comm);
    for (int i = 0; i < 3; i++) free(json[i]);
    data_sets_free(&d);
    train_cfg_free(&c);
    return rc;
}
