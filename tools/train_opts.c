/* The options of `ctrain train`: defaults, one setter per option shared by
 * the command line and the --config file, and the config file reader.
 *
 * A config file is a JSON object whose keys are the long options without
 * their dashes ({"lr": 0.01, "hidden": [512, 256], "nesterov": true}); it is
 * applied first and the command line after it, so flags win. Both go
 * through set_option(), so a value means the same, and is checked the same,
 * wherever it comes from; only the name in the message differs ("--lr" or
 * "'lr' in cfg.json").
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
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
}

/* ---------------------------------------------------------------- values */

static bool bad(const char *opt, const char *want, const char *text) {
    cli_usage_error(CMD, "%s wants %s, not '%s'", opt, want, text);
    return false;
}

static bool get_i64(const char *opt, const char *text, long min, long max, int64_t *out) {
    long v;
    if (!cli_parse_long(CMD, opt, text, min, max, &v)) return false;
    *out = v;
    return true;
}

static bool get_int(const char *opt, const char *text, long min, long max, int *out) {
    long v;
    if (!cli_parse_long(CMD, opt, text, min, max, &v)) return false;
    *out = (int)v;
    return true;
}

/* A finite number in [min, max], or (min, max] when open_min. */
static bool get_double(const char *opt, const char *text, double min, double max, bool open_min, double *out) {
    char want[96];
    if (isinf(max))
        snprintf(want, sizeof want, "a number %s %g", open_min ? ">" : ">=", min);
    else
        snprintf(want, sizeof want, "a number in %s%g, %g]", open_min ? "(" : "[", min, max);
    if (!text[0] || isspace((unsigned char)text[0])) return bad(opt, want, text);
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (*end || errno == ERANGE || !isfinite(v) || v < min || v > max || (open_min && v == min))
        return bad(opt, want, text);
    *out = v;
    return true;
}

/* A number in [0, 1): a probability or fraction that cannot be whole. */
static bool get_fraction(const char *opt, const char *text, double *out) {
    double v;
    if (!get_double(opt, text, 0, INFINITY, false, &v)) return false;
    if (v >= 1) return bad(opt, "a number in [0, 1)", text);
    *out = v;
    return true;
}

/* "0.9,0.999" */
static bool get_betas(const char *opt, const char *text, double out[2]) {
    char *end;
    errno = 0;
    double a = strtod(text, &end);
    if (end == text || *end != ',') return bad(opt, "two numbers in [0, 1) as B1,B2", text);
    const char *p = end + 1;
    double b = strtod(p, &end);
    if (end == p || *end || errno == ERANGE || !(a >= 0 && a < 1) || !(b >= 0 && b < 1))
        return bad(opt, "two numbers in [0, 1) as B1,B2", text);
    out[0] = a;
    out[1] = b;
    return true;
}

/* "30,80" */
static bool get_milestones(const char *opt, const char *text, ct_schedule *s) {
    s->n_milestones = 0;
    const char *p = text;
    for (;;) {
        if (!isdigit((unsigned char)*p)) break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno == ERANGE || s->n_milestones == CT_SCHED_MAX_MILESTONES) break;
        s->milestones[s->n_milestones++] = v;
        if (*end == '\0') return true;
        if (*end != ',') break;
        p = end + 1;
    }
    char want[64];
    snprintf(want, sizeof want, "up to %d non-negative integers separated by commas", CT_SCHED_MAX_MILESTONES);
    return bad(opt, want, text);
}

static bool one_of(const char *opt, const char *text, const char *const *names, int n, int *out) {
    for (int i = 0; i < n; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return true;
        }
    char want[256];
    size_t len = (size_t)snprintf(want, sizeof want, "one of ");
    for (int i = 0; i < n && len < sizeof want; i++)
        len += (size_t)snprintf(want + len, sizeof want - len, "%s%s", i ? ", " : "", names[i]);
    return bad(opt, want, text);
}

static bool copy_word(const char *opt, const char *text, char *dst, size_t cap) {
    if (strlen(text) >= cap) return bad(opt, "a shorter name", text);
    snprintf(dst, cap, "%s", text);
    return true;
}

/* "crop,flip,noise": the AUG_* bits; "none" (or "") for none, so that a
 * resumed run or a config file's list can be switched off. */
static const char *const augment_names[] = {"crop", "flip", "rotate", "translate", "noise", "cutout"};
#define N_AUGMENT (int)(sizeof augment_names / sizeof augment_names[0])

static bool get_augment(const char *opt, const char *text, unsigned *out) {
    unsigned bits = 0;
    if (strcmp(text, "none") != 0 && text[0]) {
        const char *p = text;
        for (;;) {
            size_t len = strcspn(p, ",");
            int k = 0;
            while (k < N_AUGMENT && !(strlen(augment_names[k]) == len && strncmp(p, augment_names[k], len) == 0)) k++;
            if (k == N_AUGMENT)
                return bad(opt, "a comma list of crop, flip, rotate, translate, noise, cutout (or none)", text);
            bits |= 1u << k;
            if (!p[len]) break;
            p += len + 1;
        }
    }
    *out = bits;
    return true;
}

int train_check_augment(const train_cfg *c) {
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
            return cli_usage_error(CMD, "%s needs %s in --augment", params[i].flag, augment_names[k]);
        }
    return CLI_EXIT_OK;
}

void train_augment_defaults(train_cfg *c) {
    data_cfg *d = &c->data;
    if (!d->crop_pad) d->crop_pad = AUG_DEFAULT_CROP_PAD;
    if (!d->rotate_deg) d->rotate_deg = AUG_DEFAULT_ROTATE_DEG;
    if (!d->translate_px) d->translate_px = AUG_DEFAULT_TRANSLATE_PX;
    if (!d->noise_std) d->noise_std = AUG_DEFAULT_NOISE_STD;
    if (!d->cutout_size) d->cutout_size = AUG_DEFAULT_CUTOUT_SIZE;
}

/* ---------------------------------------------------------------- options */

/* Options that take no value on the command line. */
static const char *const flag_names[] = {"nesterov", "amsgrad",   "centered",   "batchnorm", "quiet",
                                         "prefetch", "no-prefetch", "drop-last", "no-shuffle",
                                         "tf32", "no-overlap", "no-cuda-graph"};

/* Options that take a value. Every name here and above has its case in
 * train_set_option(); one missing there would show as "unknown option". */
static const char *const value_names[] = {
    "data", "data-dir", "train-file", "test-file", "label-column", "train-limit", "test-limit", "val-split",
    "model", "hidden", "activation", "dropout", "init", "epochs", "steps", "batch-size", "eval-batch-size",
    "width", "depth",
    "accum", "optim", "lr", "momentum", "dampening", "betas", "eps", "alpha", "weight-decay", "l1", "schedule",
    "schedule-unit", "step-size", "gamma", "milestones", "t-max", "eta-min", "max-lr", "step-size-up",
    "step-size-down", "cyclic-mode", "total-steps", "pct-start", "div-factor", "final-div-factor", "anneal",
    "factor", "patience", "threshold", "cooldown", "min-lr", "warmup", "warmup-start-factor", "clip-norm",
    "clip-value", "label-smoothing", "eval-every", "early-stop", "min-delta", "device", "seed", "data-seed",
    "save", "save-every", "resume", "init-from", "metrics", "config",
    "augment", "crop-pad", "rotate-deg", "translate-px", "noise-std", "cutout-size",
    "precision", "loss-scale",
    "dist", "bucket-kb", "dist-timeout"};

static bool in(const char *name, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0) return true;
    return false;
}

bool train_option_is_flag(const char *name) {
    return in(name, flag_names, sizeof flag_names / sizeof flag_names[0]);
}

bool train_option_known(const char *name) {
    return train_option_is_flag(name) || in(name, value_names, sizeof value_names / sizeof value_names[0]);
}

#define IS(s) (strcmp(name, s) == 0)

int train_set_option(train_cfg *c, const char *name, const char *v, const char *opt) {
    static const char *const datas[] = {"mnist", "fashion-mnist", "csv", "cifar10"};
    static const char *const optims[] = {"sgd", "adagrad", "rmsprop", "adam", "adamw"};
    static const char *const scheds[] = {"constant", "step", "multistep", "exponential",
                                         "cosine", "cyclic", "onecycle", "plateau"};
    static const ct_schedule_kind sched_kinds[] = {CT_SCHED_CONSTANT, CT_SCHED_STEP, CT_SCHED_MULTISTEP,
                                                   CT_SCHED_EXPONENTIAL, CT_SCHED_COSINE, CT_SCHED_CYCLIC,
                                                   CT_SCHED_ONE_CYCLE, CT_SCHED_PLATEAU};
    static const char *const inits[] = {"default", "xavier", "kaiming"};
    static const char *const units[] = {"step", "epoch"};
    static const char *const cyc[] = {"triangular", "triangular2", "exp_range"};
    static const char *const anneal[] = {"cos", "linear"};
    const double inf = INFINITY;
    int k;
    const long LMAX = 1L << 40;
    if (!train_option_known(name)) return -1;

    /* ---- flags */
    if (IS("nesterov")) c->optim.nesterov = true;
    else if (IS("amsgrad")) c->optim.amsgrad = true;
    else if (IS("centered")) c->optim.centered = true;
    else if (IS("batchnorm")) c->model.batchnorm = true;
    else if (IS("quiet")) c->quiet = true;
    else if (IS("prefetch")) c->prefetch = true;
    else if (IS("no-prefetch")) c->prefetch = false;
    else if (IS("drop-last")) c->drop_last = true;
    else if (IS("no-shuffle")) c->no_shuffle = true;
    else if (IS("tf32")) c->tf32 = true;
    else if (IS("no-overlap")) c->no_overlap = true;
    else if (IS("no-cuda-graph")) c->no_cuda_graph = true;
    /* ---- data */
    else if (IS("data")) {
        if (!one_of(opt, v, datas, 4, &k)) return 0;
        c->data.kind = datas[k];
    } else if (IS("data-dir")) c->data.dir = v;
    else if (IS("train-file")) c->data.train_file = v;
    else if (IS("test-file")) c->data.test_file = v;
    else if (IS("label-column")) return get_int(opt, v, -1000000, 1000000, &c->data.label_column);
    else if (IS("train-limit")) return get_i64(opt, v, 1, LMAX, &c->data.train_limit);
    else if (IS("test-limit")) return get_i64(opt, v, 1, LMAX, &c->data.test_limit);
    else if (IS("val-split")) return get_fraction(opt, v, &c->data.val_split);
    /* ---- model */
    else if (IS("model")) {
        static const char *const models[] = {"mlp", "cnn", "resnet"};
        if (!one_of(opt, v, models, 3, &k)) return 0;
        snprintf(c->model.model, sizeof c->model.model, "%s", models[k]);
        /* Each model's own classifier unless --hidden says otherwise (in
         * whichever order the two come). */
        if (!c->model.hidden_given && k == 1) {
            c->model.hidden[0] = CNN_DEFAULT_HIDDEN;
            c->model.n_hidden = 1;
        } else if (!c->model.hidden_given) {
            c->model.hidden[0] = 512;
            c->model.hidden[1] = 256;
            c->model.n_hidden = 2;
        }
    } else if (IS("hidden")) {
        if (!model_parse_hidden(v, &c->model))
            return bad(opt, "layer sizes (positive integers) separated by commas, e.g. 512,256", v);
        c->model.hidden_given = true;
    } else if (IS("width")) return get_int(opt, v, 1, MODEL_MAX_WIDTH, &c->model.width);
    else if (IS("depth")) return get_int(opt, v, 1, MODEL_MAX_DEPTH, &c->model.depth); else if (IS("activation")) {
        if (!ct_activation_valid(v))
            return bad(opt, "one of relu, leaky_relu, gelu, gelu_tanh, tanh, sigmoid, silu, identity", v);
        return copy_word(opt, v, c->model.activation, sizeof c->model.activation);
    } else if (IS("dropout")) return get_fraction(opt, v, &c->model.dropout);
    else if (IS("init")) {
        if (!one_of(opt, v, inits, 3, &k)) return 0;
        return copy_word(opt, v, c->model.init, sizeof c->model.init);
    }
    /* ---- length and batches */
    else if (IS("epochs")) {
        c->epochs_set = true;
        return get_i64(opt, v, 1, LMAX, &c->epochs);
    } else if (IS("steps")) return get_i64(opt, v, 1, LMAX, &c->steps);
    else if (IS("batch-size")) return get_i64(opt, v, 1, LMAX, &c->batch_size);
    else if (IS("eval-batch-size")) return get_i64(opt, v, 1, LMAX, &c->eval_batch_size);
    else if (IS("accum")) return get_int(opt, v, 1, 1 << 20, &c->accum);
    /* ---- optimizer */
    else if (IS("optim")) {
        if (!one_of(opt, v, optims, 5, &k)) return 0;
        c->optim.kind = (ct_optim_kind)k;
    } else if (IS("lr")) return get_double(opt, v, 0, inf, true, &c->optim.lr);
    else if (IS("momentum")) return get_double(opt, v, 0, 1, false, &c->optim.momentum);
    else if (IS("dampening")) return get_double(opt, v, 0, 1, false, &c->optim.dampening);
    else if (IS("betas")) return get_betas(opt, v, c->optim.betas);
    else if (IS("eps")) return get_double(opt, v, 0, inf, true, &c->optim.eps);
    else if (IS("alpha")) return get_double(opt, v, 0, 1, false, &c->optim.alpha);
    else if (IS("weight-decay")) {
        c->wd_set = true;
        return get_double(opt, v, 0, inf, false, &c->optim.weight_decay);
    } else if (IS("l1")) return get_double(opt, v, 0, inf, false, &c->optim.l1);
    /* ---- schedule */
    else if (IS("schedule")) {
        if (!one_of(opt, v, scheds, 8, &k)) return 0;
        c->sched.kind = sched_kinds[k];
    } else if (IS("schedule-unit")) {
        if (!one_of(opt, v, units, 2, &k)) return 0;
        c->unit = k == 0 ? CT_SCHED_PER_STEP : CT_SCHED_PER_EPOCH;
    } else if (IS("step-size")) return get_i64(opt, v, 1, LMAX, &c->sched.step_size);
    else if (IS("gamma")) return get_double(opt, v, 0, inf, true, &c->sched.gamma);
    else if (IS("milestones")) return get_milestones(opt, v, &c->sched);
    else if (IS("t-max")) return get_i64(opt, v, 1, LMAX, &c->sched.T_max);
    else if (IS("eta-min")) return get_double(opt, v, 0, inf, false, &c->sched.eta_min);
    else if (IS("max-lr")) return get_double(opt, v, 0, inf, true, &c->sched.max_lr);
    else if (IS("step-size-up")) return get_i64(opt, v, 1, LMAX, &c->sched.step_size_up);
    else if (IS("step-size-down")) return get_i64(opt, v, 1, LMAX, &c->sched.step_size_down);
    else if (IS("cyclic-mode")) {
        if (!one_of(opt, v, cyc, 3, &k)) return 0;
        c->sched.mode = (ct_cyclic_mode)k;
    } else if (IS("total-steps")) return get_i64(opt, v, 1, LMAX, &c->sched.total_steps);
    else if (IS("pct-start")) {
        if (!get_double(opt, v, 0, 1, true, &c->sched.pct_start)) return 0;
        if (c->sched.pct_start >= 1) return bad(opt, "a fraction in (0, 1)", v);
    } else if (IS("div-factor")) return get_double(opt, v, 0, inf, true, &c->sched.div_factor);
    else if (IS("final-div-factor")) return get_double(opt, v, 0, inf, true, &c->sched.final_div_factor);
    else if (IS("anneal")) {
        if (!one_of(opt, v, anneal, 2, &k)) return 0;
        c->sched.anneal = (ct_anneal)k;
    } else if (IS("factor")) {
        if (!get_double(opt, v, 0, 1, true, &c->sched.factor)) return 0;
        if (c->sched.factor >= 1) return bad(opt, "a factor in (0, 1)", v);
    } else if (IS("patience")) return get_int(opt, v, 0, 1 << 30, &c->sched.patience);
    else if (IS("threshold")) return get_double(opt, v, 0, inf, false, &c->sched.threshold);
    else if (IS("cooldown")) return get_int(opt, v, 0, 1 << 30, &c->sched.cooldown);
    else if (IS("min-lr")) return get_double(opt, v, 0, inf, false, &c->sched.min_lr);
    else if (IS("warmup")) return get_i64(opt, v, 0, LMAX, &c->sched.warmup_steps);
    else if (IS("warmup-start-factor")) return get_double(opt, v, 0, 1, false, &c->sched.warmup_start_factor);
    /* ---- regularisation, evaluation */
    else if (IS("clip-norm")) return get_double(opt, v, 0, inf, true, &c->clip_norm);
    else if (IS("clip-value")) return get_double(opt, v, 0, inf, true, &c->clip_value);
    else if (IS("label-smoothing")) return get_fraction(opt, v, &c->label_smoothing);
    else if (IS("eval-every")) return get_i64(opt, v, 1, LMAX, &c->eval_every);
    else if (IS("early-stop")) return get_int(opt, v, 1, 1 << 30, &c->early_stop);
    else if (IS("min-delta")) return get_double(opt, v, 0, inf, false, &c->min_delta);
    /* ---- run */
    else if (IS("device")) {
        ct_device d;
        if (ct_device_parse(v, &d) != CT_OK) return bad(opt, "cpu, cuda, cuda:N or auto", v);
        c->device = d;
        c->device_text = v;
    } else if (IS("seed")) return cli_parse_u64(CMD, opt, v, &c->seed);
    else if (IS("data-seed")) {
        c->data_seed_set = true;
        return cli_parse_u64(CMD, opt, v, &c->data_seed);
    } else if (IS("save")) c->save = v;
    else if (IS("save-every")) return get_i64(opt, v, 1, LMAX, &c->save_every);
    else if (IS("resume")) c->resume = v;
    else if (IS("init-from")) c->init_from = v;
    else if (IS("metrics")) c->metrics = v;
    else if (IS("config")) c->config = v;
    /* ---- augmentation */
    else if (IS("augment")) return get_augment(opt, v, &c->data.augment);
    else if (IS("crop-pad")) return get_int(opt, v, 1, 1 << 20, &c->data.crop_pad);
    else if (IS("rotate-deg")) return get_double(opt, v, 0, 180, true, &c->data.rotate_deg);
    else if (IS("translate-px")) return get_int(opt, v, 1, 1 << 20, &c->data.translate_px);
    else if (IS("noise-std")) return get_double(opt, v, 0, inf, true, &c->data.noise_std);
    else if (IS("cutout-size")) return get_int(opt, v, 1, 1 << 20, &c->data.cutout_size);
    /* ---- mixed precision */
    else if (IS("precision")) {
        static const char *const precs[] = {"fp32", "fp16", "bf16"};
        if (!one_of(opt, v, precs, 3, &k)) return 0;
        c->precision = (ct_precision)k;
    } else if (IS("loss-scale")) {
        /* A number is a static scale; the words pick the mode. */
        if (strcmp(v, "dynamic") == 0) c->loss_scale.mode = CT_LOSS_SCALE_DYNAMIC;
        else if (strcmp(v, "none") == 0) c->loss_scale.mode = CT_LOSS_SCALE_NONE;
        else if (!isdigit((unsigned char)v[0]) && v[0] != '.') return bad(opt, "dynamic, none or a scale > 0", v);
        else if (!get_double(opt, v, 0, 3.0e38, true, &c->loss_scale.init_scale)) return 0;
        else c->loss_scale.mode = CT_LOSS_SCALE_STATIC;
    }
    /* ---- data parallel */
    else if (IS("dist")) {
        static const char *const dists[] = {"auto", "off", "mpi", "nccl"};
        if (!one_of(opt, v, dists, 4, &k)) return 0;
        c->dist = dists[k];
    } else if (IS("bucket-kb")) {
        int64_t kb;
        if (!get_i64(opt, v, 1, 1L << 30, &kb)) return 0;
        c->bucket_kb = (size_t)kb;
    } else if (IS("dist-timeout")) return get_double(opt, v, 0, inf, true, &c->dist_timeout);
    else return -1;
    return 1;
}

/* ---------------------------------------------------------------- config */

/* The JSON value as the text a flag would carry: numbers in full
 * precision, arrays joined by commas. */
static bool value_text(const cJSON *item, char *buf, size_t cap) {
    if (cJSON_IsString(item)) {
        snprintf(buf, cap, "%s", item->valuestring);
        return true;
    }
    if (cJSON_IsNumber(item)) {
        snprintf(buf, cap, "%.17g", item->valuedouble);
        return true;
    }
    if (cJSON_IsArray(item)) {
        size_t len = 0;
        buf[0] = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, item) {
            char one[64];
            if (cJSON_IsNumber(e))
                snprintf(one, sizeof one, "%.17g", e->valuedouble);
            else if (cJSON_IsString(e))
                snprintf(one, sizeof one, "%s", e->valuestring);
            else
                return false;
            len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s%s", len ? "," : "", one);
            if (len >= cap) return false;
        }
        return true;
    }
    return false;
}

/* Keeps a string alive as long as the options that point at it. */
static char *own(train_cfg *c, char *s) {
    if (!s) return NULL;
    char **more = realloc(c->owned, (size_t)(c->n_owned + 1) * sizeof *more);
    if (!more) {
        free(s);
        return NULL;
    }
    c->owned = more;
    c->owned[c->n_owned++] = s;
    return s;
}

void train_cfg_free(train_cfg *c) {
    cJSON_Delete(c->given);
    c->given = NULL;
    for (int i = 0; i < c->n_owned; i++) free(c->owned[i]);
    free(c->owned);
    c->owned = NULL;
    c->n_owned = 0;
}

static int config_item(train_cfg *c, const char *path, const cJSON *item) {
    const char *key = item->string;
    char opt[320];
    snprintf(opt, sizeof opt, "'%s' in %s", key, path);
    if (cJSON_IsNull(item)) return CLI_EXIT_OK;
    if (strcmp(key, "config") == 0 || strcmp(key, "help") == 0)
        return cli_usage_error(CMD, "%s: not allowed in a config file", opt);
    if (cJSON_IsBool(item)) {
        if (!train_option_is_flag(key))
            return cli_usage_error(CMD, "%s: true or false is only for switches such as nesterov", opt);
        const char *name = key;
        char no[64];
        snprintf(no, sizeof no, "no-%s", key);
        if (cJSON_IsFalse(item)) {
            /* false: the switch's opposite where it has one, else nothing
             * (every switch is off by default). */
            if (train_option_is_flag(no))
                name = no;
            else if (strncmp(key, "no-", 3) == 0 && train_option_is_flag(key + 3))
                name = key + 3;
            else
                return CLI_EXIT_OK;
        }
        if (train_set_option(c, name, NULL, opt) != 1) return CLI_EXIT_USAGE;
        return train_note_option(c, name, NULL) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
    if (train_option_is_flag(key)) return cli_usage_error(CMD, "%s: a switch takes true or false", opt);
    char *val = malloc(1024);
    if (!val || !value_text(item, val, 1024)) {
        free(val);
        return cli_usage_error(CMD, "%s: want a string, a number or an array of them", opt);
    }
    if (!own(c, val)) {
        fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
        return CLI_EXIT_FAIL;
    }
    int r = train_set_option(c, key, val, opt);
    if (r == -1) return cli_usage_error(CMD, "%s: unknown option '%s'", path, key);
    if (r != 1) return CLI_EXIT_USAGE;
    return train_note_option(c, key, val) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int apply_object(train_cfg *c, const char *where, const cJSON *doc) {
    const cJSON *item;
    cJSON_ArrayForEach(item, doc) {
        int rc = config_item(c, where, item);
        if (rc != CLI_EXIT_OK) return rc;
    }
    return CLI_EXIT_OK;
}

bool train_note_option(train_cfg *c, const char *name, const char *v) {
    if (strcmp(name, "resume") == 0 || strcmp(name, "save") == 0 || strcmp(name, "init-from") == 0 ||
        strcmp(name, "config") == 0 || strcmp(name, "quiet") == 0 || strcmp(name, "dist") == 0 ||
        strcmp(name, "bucket-kb") == 0 || strcmp(name, "no-overlap") == 0 || strcmp(name, "dist-timeout") == 0)
        return true;
    if (!c->given && !(c->given = cJSON_CreateObject())) return false;
    cJSON *item = v ? cJSON_CreateString(v) : cJSON_CreateTrue();
    if (!item) return false;
    /* A switch and its opposite are one setting: the later one stands. */
    char other[80];
    if (strncmp(name, "no-", 3) == 0)
        snprintf(other, sizeof other, "%s", name + 3);
    else
        snprintf(other, sizeof other, "no-%s", name);
    cJSON_DeleteItemFromObjectCaseSensitive(c->given, other);
    if (cJSON_GetObjectItemCaseSensitive(c->given, name))
        return cJSON_ReplaceItemInObjectCaseSensitive(c->given, name, item);
    return cJSON_AddItemToObject(c->given, name, item);
}

char *train_given_json(const train_cfg *c) {
    if (!c->given) return strdup("{}");
    return cJSON_PrintUnformatted(c->given);
}

int train_apply_checkpoint_options(train_cfg *c, const char *path) {
    ct_st_file *f = ct_st_open(path);
    if (!f) return CLI_EXIT_OK;
    const char *rec = ct_st_meta(f, "cli.options");
    int rc = CLI_EXIT_OK;
    if (rec) {
        cJSON *doc = cJSON_Parse(rec);
        char where[600];
        snprintf(where, sizeof where, "the checkpoint %s", path);
        if (!cJSON_IsObject(doc)) {
            fprintf(stderr, "ctrain: %s: --resume '%s': its record of options (metadata cli.options) is not a JSON object\n",
                    CMD, path);
            rc = CLI_EXIT_FAIL;
        } else {
            rc = apply_object(c, where, doc);
        }
        cJSON_Delete(doc);
    }
    ct_st_close(f);
    return rc;
}

int train_apply_config(train_cfg *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ctrain: %s: --config '%s': %s\n", CMD, path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    size_t got;
    while (text && (got = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *bigger = cap < (16u << 20) ? realloc(text, cap * 2) : NULL;
            if (!bigger) {
                free(text);
                text = NULL;
                break;
            }
            text = bigger;
            cap *= 2;
        }
    }
    bool read_error = ferror(f);
    fclose(f);
    if (!text || read_error) {
        free(text);
        fprintf(stderr, "ctrain: %s: --config '%s': %s\n", CMD, path,
                read_error ? "cannot read it" : "too large (or out of memory)");
        return CLI_EXIT_FAIL;
    }
    text[len] = 0;
    cJSON *doc = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return cli_usage_error(CMD, "--config '%s': not a JSON object of option names and values", path);
    }
    int rc = apply_object(c, path, doc);
    cJSON_Delete(doc);
    return rc;
}
