/* The options of `ctrain train`: one row each (cli_options.h), which
 * gives the command line, the --config keys, --help and docs/cli.md.
 *
 * Names follow PyTorch where it has the same thing (weight-decay, betas,
 * t-max, pct-start...). Enums the library names (optimizer, schedule,
 * precision, device) are parsed by the library's own functions, so the
 * CLI accepts exactly what the library does.
 */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "train_opts.h"

#define T train_cfg
#define BIG (double)(1LL << 40) /* "no limit" for counts */
#define INF INFINITY

/* ---------------------------------------------------------------- choices */

/* The library's enums: its names and parsers, as int. */
static const char *optim_name(int k) { return ct_optim_kind_name((ct_optim_kind)k); }
static bool optim_parse(const char *text, int *k) {
    ct_optim_kind v;
    if (ct_optim_kind_parse(text, &v) != CT_OK) return false;
    *k = (int)v;
    return true;
}
static const char *sched_name(int k) { return ct_schedule_kind_name((ct_schedule_kind)k); }
static bool sched_parse(const char *text, int *k) {
    ct_schedule_kind v;
    if (ct_schedule_kind_parse(text, &v) != CT_OK) return false;
    *k = (int)v;
    return true;
}
static const char *precision_name(int k) { return ct_precision_name((ct_precision)k); }
static bool precision_parse(const char *text, int *k) {
    ct_precision v;
    if (ct_precision_parse(text, &v) != CT_OK) return false;
    *k = (int)v;
    return true;
}

/* The library takes activations by name and says which it knows; the list
 * is for help and messages. */
static const char *const activation_names[] = {"relu", "leaky_relu", "gelu",     "gelu_tanh", "tanh",
                                               "sigmoid", "silu",     "identity", NULL};
static bool activation_parse(const char *text, int *k) {
    if (!ct_activation_valid(text)) return false;
    for (*k = 0; activation_names[*k]; ++*k)
        if (strcmp(text, activation_names[*k]) == 0) return true;
    return false;
}

/* "onecycle" was this tool's name for one_cycle before it took the
 * library's; kept so that older commands and checkpoints still work. */
static const char *const sched_aliases[][2] = {{"onecycle", "one_cycle"}, {NULL, NULL}};

static const cli_choices optims = {.name = optim_name, .count = CT_OPTIM_KIND_COUNT, .parse = optim_parse};
static const cli_choices scheds = {
    .name = sched_name, .count = CT_SCHED_KIND_COUNT, .parse = sched_parse, .aliases = sched_aliases};
static const cli_choices precisions = {
    .name = precision_name, .count = CT_PRECISION_COUNT, .parse = precision_parse};
static const cli_choices activations = {.names = activation_names, .parse = activation_parse};

const cli_choices train_data_choices = {
    .names = (const char *const[]){"mnist", "fashion-mnist", "cifar10", "csv", "text", "tokens", NULL}};
static const cli_choices models = {
    .names = (const char *const[]){"mlp", "cnn", "resnet", "gpt", "lstm", "gru", "rnn", NULL}};
static const cli_choices inits = {.names = (const char *const[]){"default", "xavier", "kaiming", NULL}};
/* In the order of ct_sched_unit, ct_cyclic_mode and ct_anneal. */
static const cli_choices units = {.names = (const char *const[]){"step", "epoch", NULL}};
static const cli_choices cyclic_modes = {
    .names = (const char *const[]){"triangular", "triangular2", "exp_range", NULL}};
static const cli_choices anneals = {.names = (const char *const[]){"cos", "linear", NULL}};
static const cli_choices dists = {.names = (const char *const[]){"auto", "off", "mpi", "nccl", NULL}};
/* In the order of the AUG_* bits. */
const char *const train_augment_names[] = {"crop", "flip", "rotate", "translate", "noise", "cutout", NULL};
static const cli_choices augments = {.names = train_augment_names};

/* ---------------------------------------------------------------- setters */

/* The model; each has its own classifier unless --hidden says otherwise
 * (in whichever order the two come). */
static bool set_model(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    train_cfg *c = p->cfg;
    int k = cli_choice(o->choices, text);
    if (k < 0) return cli_bad_value(p, opt, "one of mlp, cnn, resnet, gpt, lstm, gru, rnn", text);
    snprintf(c->model.model, sizeof c->model.model, "%s", cli_choice_name(o->choices, k));
    if (!c->model.hidden_given && strcmp(c->model.model, "cnn") == 0) {
        c->model.hidden[0] = CNN_DEFAULT_HIDDEN;
        c->model.n_hidden = 1;
    } else if (!c->model.hidden_given) {
        c->model.hidden[0] = 512;
        c->model.hidden[1] = 256;
        c->model.n_hidden = 2;
    }
    return true;
}

/* The device, and its text: a GPU named by index pins each rank to it. */
static bool set_device(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    train_cfg *c = p->cfg;
    (void)o;
    if (ct_device_parse(text, &c->device) != CT_OK) return cli_bad_value(p, opt, "cpu, cuda, cuda:N or auto", text);
    c->device_text = text;
    return true;
}

/* A number is a static scale; the words pick the mode. */
static bool set_loss_scale(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    train_cfg *c = p->cfg;
    (void)o;
    if (strcmp(text, "dynamic") == 0) {
        c->loss_scale.mode = CT_LOSS_SCALE_DYNAMIC;
        return true;
    }
    if (strcmp(text, "none") == 0) {
        c->loss_scale.mode = CT_LOSS_SCALE_NONE;
        return true;
    }
    if (!isdigit((unsigned char)text[0]) && text[0] != '.')
        return cli_bad_value(p, opt, "dynamic, none or a scale > 0", text);
    const cli_row scale = {.name = "loss-scale", .kind = CLI_DOUBLE, CLI_FIELD(T, loss_scale.init_scale),
                              .min = 0, .max = 3.0e38, .bounds = CLI_OPEN_MIN};
    if (!cli_store(p, &scale, text, opt)) return false;
    c->loss_scale.mode = CT_LOSS_SCALE_STATIC;
    return true;
}

/* ---------------------------------------------------------------- the table */

static const cli_section sections[] = {
    {"data", "data"},
    {"augment", "augmentation (training batches only, drawn per sample from --data-seed, epoch, index)"},
    {"model", "model"},
    {"training", "training"},
    {"optim", "optimizer"},
    {"sched", "learning-rate schedule"},
    {"eval", "evaluation"},
    {"ckpt", "checkpoints"},
    {"run", "run"},
    {"amp", "mixed precision (docs/mixed_precision.md)"},
    {"dist", "data parallel (under mpirun or srun, docs/distributed.md)"},
    {"compress", "compression (docs/compression.md)"},
};

#define ROW(n, sec, k, member) .name = n, .section = sec, .kind = k, CLI_FIELD(T, member)
#define SWITCH(n, sec, member) ROW(n, sec, CLI_FLAG, member)
#define COUNT(n, sec, member, lo) ROW(n, sec, CLI_INT, member), .min = lo, .max = BIG
#define NUMBER(n, sec, member, lo, hi, b) ROW(n, sec, CLI_DOUBLE, member), .min = lo, .max = hi, .bounds = b
#define FILE_ROW(n, sec, member) ROW(n, sec, CLI_STRING, member), .meta = "FILE"

static const cli_row options[] = {
    /* data */
    {ROW("data", "data", CLI_STRING, data.kind), .choices = &train_data_choices, .def = "mnist",
     .help = "dataset; text: a UTF-8 file, one token per character (docs/language_models.md); tokens: an llm.c "
             "token file"},
    {ROW("data-dir", "data", CLI_STRING, data.dir), .meta = "DIR",
     .help = "MNIST or CIFAR-10 files (default: ../shared/data/<data>, from here or from the checkout holding this "
             "program)"},
    {FILE_ROW("train-file", "data", data.train_file),
     .help = "csv: training data, numbers, one sample per line, a header line optional; features are standardised "
             "with the training part's mean and std. text, tokens: the training text or token file (without "
             "--val-file its first 90% trains, the rest validates)"},
    {FILE_ROW("val-file", "data", data.val_file), .help = "text, tokens: the validation text or token file"},
    {COUNT("vocab-size", "data", data.vocab_size, 1), .def = CLI_STR(CT_TOKENS_GPT2_VOCAB),
     .help = "tokens: every id is below N (the model's vocabulary)"},
    {FILE_ROW("test-file", "data", data.test_file), .help = "CSV test data (optional)"},
    {ROW("label-column", "data", CLI_INT, data.label_column), .min = -1000000, .max = 1000000,
     CLI_MARK(T, data.label_column_set), .help = "CSV field holding the label, 1-based, -1 the last (default)"},
    {ROW("num-classes", "data", CLI_INT, data.num_classes), .min = 1, .max = (1 << 24),
     .def = "the largest training label + 1",
     .help = "csv: the number of classes; every label, training and test, must be below it"},
    {NUMBER("val-split", "data", data.val_split, 0, 1, CLI_OPEN_MAX), .meta = "F",
     .def = CLI_STR(TRAIN_DEFAULT_VAL_SPLIT) ": none",
     .help = "hold out this fraction of the training set for validation"},
    {COUNT("train-limit", "data", data.train_limit, 1), .help = "use only the first N training samples"},
    {COUNT("test-limit", "data", data.test_limit, 1), .help = "use only the first N test samples"},
    /* augmentation */
    {ROW("augment", "augment", CLI_BITS, data.augment), .choices = &augments, .meta = "LIST",
     .help = "comma list of crop, flip, rotate, translate, noise, cutout (or none); no flip for digits. "
             "docs/data.md has the details"},
    {ROW("crop-pad", "augment", CLI_INT, data.crop_pad), .min = 1, .max = 1 << 20,
     .def = CLI_STR(AUG_DEFAULT_CROP_PAD), .help = "crop: pad by N and crop back at random"},
    {NUMBER("rotate-deg", "augment", data.rotate_deg, 0, 180, CLI_OPEN_MIN), .def = CLI_STR(AUG_DEFAULT_ROTATE_DEG),
     .help = "rotate: by up to +-X degrees, bilinear"},
    {ROW("translate-px", "augment", CLI_INT, data.translate_px), .min = 1, .max = 1 << 20,
     .def = CLI_STR(AUG_DEFAULT_TRANSLATE_PX), .help = "translate: by up to +-N pixels each way"},
    {NUMBER("noise-std", "augment", data.noise_std, 0, INF, CLI_OPEN_MIN), .def = CLI_STR(AUG_DEFAULT_NOISE_STD),
     .help = "noise: Gaussian, std X in pixel units (1 is full brightness)"},
    {ROW("cutout-size", "augment", CLI_INT, data.cutout_size), .min = 1, .max = 1 << 20,
     .def = CLI_STR(AUG_DEFAULT_CUTOUT_SIZE), .help = "cutout: blank an N x N square"},
    /* model */
    {ROW("model", "model", CLI_CUSTOM, model.model), .set = set_model, .choices = &models, CLI_MARK(T, model.model_given),
     .def = "mlp; gpt for text and tokens",
     .help = "the model; cnn: two conv5x5 blocks (--width, 2x --width channels, relu, max pool 2) and a classifier "
             "(--hidden, default " CLI_STR(CNN_DEFAULT_HIDDEN) "); resnet: a CIFAR-style ResNet with batch norm "
             "(docs/conv.md); gpt: nanoGPT's GPT; lstm, gru, rnn (tanh): embedding, recurrent stack, linear "
             "head (docs/language_models.md)"},
    {ROW("width", "model", CLI_INT, model.width), .min = 1, .max = MODEL_MAX_WIDTH,
     .def = CLI_STR(CNN_DEFAULT_WIDTH) " cnn, " CLI_STR(RESNET_DEFAULT_WIDTH) " resnet",
     .help = "cnn, resnet: base channels"},
    {ROW("depth", "model", CLI_INT, model.depth), .min = 1, .max = MODEL_MAX_DEPTH,
     .def = CLI_STR(RESNET_DEFAULT_DEPTH), .help = "resnet: residual blocks per stage, 3 stages"},
    {ROW("hidden", "model", CLI_INTS, model.hidden), CLI_COUNT(T, model.n_hidden), CLI_MARK(T, model.hidden_given),
     .min = 1, .max = 1 << 24, .max_items = MLP_MAX_HIDDEN, .meta = "N,N,...", .def = "512,256",
     .want = "layer sizes (positive integers) separated by commas, e.g. 512,256",
     .help = "hidden layer sizes, or none"},
    {ROW("activation", "model", CLI_WORD, model.activation), .choices = &activations, .def = "relu",
     .help = "after each hidden layer"},
    {NUMBER("dropout", "model", model.dropout, 0, 1, CLI_OPEN_MAX), .meta = "P",
     .def = CLI_STR(TRAIN_DEFAULT_DROPOUT), .help = "dropout after each hidden layer (gpt: where nanoGPT drops)"},
    {ROW("n-layer", "model", CLI_INT, model.n_layer), .min = 1, .max = GPT_MAX_SIZE,
     .def = CLI_STR(GPT_DEFAULT_N_LAYER), .help = "gpt: transformer blocks"},
    {ROW("n-head", "model", CLI_INT, model.n_head), .min = 1, .max = GPT_MAX_SIZE,
     .def = CLI_STR(GPT_DEFAULT_N_HEAD), .help = "gpt: attention heads (must divide --n-embd)"},
    {ROW("n-embd", "model", CLI_INT, model.n_embd), .min = 1, .max = GPT_MAX_SIZE,
     .def = CLI_STR(GPT_DEFAULT_N_EMBD), .help = "gpt: width of the residual stream"},
    {ROW("block-size", "model", CLI_INT, model.block_size), .min = 1, .max = GPT_MAX_SIZE,
     .def = CLI_STR(GPT_DEFAULT_BLOCK), .help = "gpt: the context, and the length of the training windows"},
    {ROW("hidden-size", "model", CLI_INT, model.hidden_size), .min = 1, .max = GPT_MAX_SIZE,
     .def = CLI_STR(RNN_DEFAULT_HIDDEN), .help = "lstm, gru, rnn: hidden size (also the embedding's width)"},
    {ROW("num-layers", "model", CLI_INT, model.num_layers), .min = 1, .max = 1024,
     .def = CLI_STR(RNN_DEFAULT_LAYERS), .help = "lstm, gru, rnn: stacked recurrent layers (--dropout between them)"},
    {SWITCH("bidirectional", "model", model.bidirectional),
     .help = "lstm, gru, rnn: a reverse direction per layer (it sees the future: not for generation)"},
    {SWITCH("batchnorm", "model", model.batchnorm),
     .help = "batch norm after each hidden linear layer (cnn: after each conv)"},
    {SWITCH("qat", "model", model.qat),
     .help = "mlp: quantization-aware training, fake int8 on weights and layer inputs (ctrain quantize)"},
    {ROW("init", "model", CLI_WORD, model.init), .choices = &inits,
     .help = "weight initialisation (default: each layer's PyTorch default)"},
    /* training */
    {COUNT("epochs", "training", epochs, 1), CLI_MARK(T, epochs_set), .def = CLI_STR(TRAIN_DEFAULT_EPOCHS),
     .help = "epochs"},
    {COUNT("steps", "training", steps, 1), .help = "stop after N optimizer steps (alone: no epoch limit)"},
    {COUNT("batch-size", "training", batch_size, 1), .def = CLI_STR(TRAIN_DEFAULT_BATCH), .help = "training batch"},
    {COUNT("eval-batch-size", "training", eval_batch_size, 1), CLI_MARK(T, eval_batch_set),
     .def = CLI_STR(TRAIN_DEFAULT_EVAL_BATCH) "; text, tokens: --batch-size", .help = "evaluation batch"},
    {ROW("accum", "training", CLI_INT, accum), .min = 1, .max = 1 << 20,
     .help = "accumulate gradients over N batches per step"},
    {SWITCH("drop-last", "training", drop_last), .help = "drop a last training batch shorter than --batch-size"},
    {SWITCH("no-shuffle", "training", no_shuffle),
     .help = "keep the training set's order (text, tokens: consecutive windows instead of random ones)"},
    {SWITCH("stateful", "training", model.stateful),
     .help = "lstm, gru, rnn: truncated backpropagation through time; each window starts from the final states "
             "of the one before it in its stream (docs/language_models.md)"},
    {NUMBER("label-smoothing", "training", label_smoothing, 0, 1, CLI_OPEN_MAX), .meta = "E", .def = "0",
     .help = "as nn.CrossEntropyLoss"},
    {NUMBER("clip-norm", "training", clip_norm, 0, INF, CLI_OPEN_MIN),
     .help = "clip the gradients' total L2 norm to X"},
    {NUMBER("clip-value", "training", clip_value, 0, INF, CLI_OPEN_MIN), .help = "clip every gradient to [-X, X]"},
    /* optimizer */
    {ROW("optim", "optim", CLI_ENUM, optim.kind), .choices = &optims, .def = "adamw", .help = "the optimizer"},
    {NUMBER("lr", "optim", optim.lr, 0, INF, CLI_OPEN_MIN), .def = CLI_STR(TRAIN_DEFAULT_LR), .help = "learning rate"},
    {NUMBER("momentum", "optim", optim.momentum, 0, 1, 0), .help = "sgd, rmsprop"},
    {NUMBER("dampening", "optim", optim.dampening, 0, 1, 0), .help = "sgd"},
    {SWITCH("nesterov", "optim", optim.nesterov), .help = "sgd"},
    {ROW("betas", "optim", CLI_DOUBLES, optim.betas), .min = 0, .max = 1, .bounds = CLI_OPEN_MAX, .min_items = 2,
     .max_items = 2, .meta = "B1,B2", .def = "0.9,0.999", .want = "two numbers in [0, 1) as B1,B2",
     .help = "adam, adamw"},
    {NUMBER("eps", "optim", optim.eps, 0, INF, CLI_OPEN_MIN), .def = "PyTorch's",
     .help = "adagrad, rmsprop, adam, adamw: added to the denominator"},
    {NUMBER("alpha", "optim", optim.alpha, 0, 1, 0), .def = "0.99", .help = "rmsprop smoothing"},
    {SWITCH("amsgrad", "optim", optim.amsgrad), .help = "adam, adamw"},
    {SWITCH("centered", "optim", optim.centered), .help = "rmsprop"},
    {NUMBER("weight-decay", "optim", optim.weight_decay, 0, INF, 0), CLI_MARK(T, wd_set),
     .def = CLI_STR(TRAIN_DEFAULT_WEIGHT_DECAY) " for adamw, else 0",
     .help = "biases and norm weights are not decayed"},
    {NUMBER("l1", "optim", optim.l1, 0, INF, 0), .help = "L1 penalty"},
    /* schedule */
    {ROW("schedule", "sched", CLI_ENUM, sched.kind), .choices = &scheds, .def = "cosine",
     .help = "the learning-rate schedule, as PyTorch's StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, "
             "CyclicLR, OneCycleLR, ReduceLROnPlateau"},
    {ROW("schedule-unit", "sched", CLI_ENUM, unit), .choices = &units,
     .def = "epoch for step, multistep, exponential; step otherwise", .help = "what the schedule counts"},
    {COUNT("step-size", "sched", sched.step_size, 1), .help = "step: period"},
    {NUMBER("gamma", "sched", sched.gamma, 0, INF, CLI_OPEN_MIN),
     .help = "step, multistep: factor (default 0.1); exponential: factor; cyclic exp_range: factor (default 1)"},
    {ROW("milestones", "sched", CLI_INTS, sched.milestones), CLI_COUNT(T, sched.n_milestones), .min = 0,
     .max = (double)(1LL << 62), .min_items = 1, .max_items = CT_SCHED_MAX_MILESTONES,
     .want = "up to " CLI_STR(CT_SCHED_MAX_MILESTONES) " non-negative integers separated by commas",
     .help = "multistep: where the rate drops"},
    {COUNT("t-max", "sched", sched.T_max, 1), .def = "the whole run", .help = "cosine: half-period"},
    {NUMBER("eta-min", "sched", sched.eta_min, 0, INF, 0), .def = "0", .help = "cosine: floor"},
    {NUMBER("max-lr", "sched", sched.max_lr, 0, INF, CLI_OPEN_MIN), .def = "--lr",
     .help = "cyclic: upper bound; one_cycle: peak"},
    {COUNT("step-size-up", "sched", sched.step_size_up, 1), .def = "2000", .help = "cyclic: steps rising"},
    {COUNT("step-size-down", "sched", sched.step_size_down, 1), .def = "--step-size-up",
     .help = "cyclic: steps falling"},
    {ROW("cyclic-mode", "sched", CLI_ENUM, sched.mode), .choices = &cyclic_modes, .def = "triangular",
     .help = "cyclic: the amplitude's shape"},
    {COUNT("total-steps", "sched", sched.total_steps, 1), .def = "the whole run", .help = "one_cycle: length"},
    {NUMBER("pct-start", "sched", sched.pct_start, 0, 1, CLI_OPEN_MIN | CLI_OPEN_MAX), .meta = "F", .def = "0.3",
     .help = "one_cycle: fraction of it spent rising"},
    {NUMBER("div-factor", "sched", sched.div_factor, 0, INF, CLI_OPEN_MIN), .def = "25",
     .help = "one_cycle: initial rate = max-lr / X"},
    {NUMBER("final-div-factor", "sched", sched.final_div_factor, 0, INF, CLI_OPEN_MIN), .def = "1e4",
     .help = "one_cycle: final rate = initial / X"},
    {ROW("anneal", "sched", CLI_ENUM, sched.anneal), .choices = &anneals, .def = "cos",
     .help = "one_cycle: the shape of both phases (anneal_strategy)"},
    {NUMBER("factor", "sched", sched.factor, 0, 1, CLI_OPEN_MIN | CLI_OPEN_MAX), .def = "0.1",
     .help = "plateau (on the validation loss, else the training loss): reduce by this factor"},
    {ROW("patience", "sched", CLI_INT, sched.patience), .min = 0, .max = 1 << 30, .def = "0",
     .help = "plateau: checks (each epoch, or each --eval-every) without improvement tolerated"},
    {NUMBER("threshold", "sched", sched.threshold, 0, INF, 0), .def = "1e-4",
     .help = "plateau: relative improvement that counts"},
    {ROW("cooldown", "sched", CLI_INT, sched.cooldown), .min = 0, .max = 1 << 30, .def = "0",
     .help = "plateau: checks to wait after a reduction"},
    {NUMBER("min-lr", "sched", sched.min_lr, 0, INF, 0), .def = "0", .help = "plateau: lower bound"},
    {COUNT("warmup", "sched", sched.warmup_steps, 0), .help = "linear warmup over the first N optimizer steps"},
    {NUMBER("warmup-start-factor", "sched", sched.warmup_start_factor, 0, 1, 0), .meta = "F", .def = "0",
     .help = "warmup starts at F * lr"},
    /* evaluation */
    {COUNT("eval-every", "eval", eval_every, 1), .def = "every epoch", .help = "validate every N steps"},
    {COUNT("eval-batches", "eval", eval_batches, 1), .def = CLI_STR(TRAIN_DEFAULT_EVAL_BATCHES),
     .help = "text, tokens: the validation loss is the mean over N fixed batches of windows"},
    {ROW("early-stop", "eval", CLI_INT, early_stop), .min = 1, .max = 1 << 30, .meta = "P",
     .help = "stop after P validations without improvement of the validation loss, keeping the best weights "
             "(needs --val-split)"},
    {NUMBER("min-delta", "eval", min_delta, 0, INF, 0), .def = "0", .help = "smallest improvement that counts"},
    {FILE_ROW("metrics", "eval", metrics), .help = "append one JSON line per epoch/validation and at the end"},
    {ROW("tensorboard", "eval", CLI_STRING, tensorboard), .meta = "DIR",
     .help = "write the metrics lines' values to a TensorBoard event file in DIR (docs/tooling.md)"},
    {COUNT("tensorboard-histograms", "eval", tensorboard_histograms, 1), .meta = "N",
     .help = "--tensorboard: histograms of the weights every N epochs"},
    /* checkpoints */
    {FILE_ROW("save", "ckpt", save), .flags = CLI_NOT_RECORDED, .help = "write a checkpoint (safetensors) at the end"},
    {COUNT("save-every", "ckpt", save_every, 1), .help = "... and every N epochs"},
    {FILE_ROW("resume", "ckpt", resume), .flags = CLI_NOT_RECORDED,
     .help = "continue the run a checkpoint holds, with the options it was started with (options given here win; "
             "model, batch size, data and optimizer must stay), saving back to FILE unless --save says otherwise"},
    {FILE_ROW("init-from", "ckpt", init_from), .flags = CLI_NOT_RECORDED,
     .help = "start from the weights in FILE (by name, e.g. a PyTorch state_dict saved as safetensors)"},
    {SWITCH("strict", "ckpt", strict), .flags = CLI_NOT_RECORDED,
     .help = "--init-from: every parameter and buffer must be in FILE, else an error names the missing ones"},
    {SWITCH("reset-head", "ckpt", reset_head), .flags = CLI_NOT_RECORDED,
     .help = "--init-from: the last layer (classifier) is not loaded but freshly initialised, whatever its shape in "
             "FILE (a new class count or task)"},
    {ROW("freeze", "ckpt", CLI_STRING, freeze), .meta = "PREFIX[,PREFIX...]",
     .help = "do not train the parameters whose names start with a PREFIX (\"fc1.\" or \"fc1\": fc1.weight, "
             "fc1.bias); batch-norm running statistics still update"},
    /* run */
    {ROW("device", "run", CLI_CUSTOM, device), .set = set_device, .meta = "cpu|cuda|cuda:N|auto",
     .def = "auto: the first GPU when this build and machine can use one, else the CPU", .help = "where to train"},
    {SWITCH("no-cuda-graph", "run", no_cuda_graph),
     .help = "GPU: launch every kernel of a step, no CUDA Graph replay"},
    {ROW("seed", "run", CLI_U64, seed), .def = CLI_STR(TRAIN_DEFAULT_SEED),
     .help = "initial weights, dropout, shuffling"},
    {ROW("data-seed", "run", CLI_U64, data_seed), CLI_MARK(T, data_seed_set), .def = "--seed",
     .help = "shuffling and --val-split only"},
    {ROW("threads", "run", CLI_INT, threads), .min = 1, .max = 4096, .flags = CLI_NOT_RECORDED,
     .def = "OMP_NUM_THREADS, else every core",
     .help = "CPU threads of the kernels and of OpenBLAS (docs/cpu_backend.md)"},
    {ROW("no-prefetch", "run", CLI_FLAG_OFF, prefetch), .help = "do not prepare batches on a second thread"},
    {SWITCH("prefetch", "run", prefetch)}, /* the default; here so that a config file can say false */
    {SWITCH("quiet", "run", quiet), .flags = CLI_NOT_RECORDED, .help = "print only the final line"},
    {FILE_ROW("config", "run", config), .flags = CLI_NOT_RECORDED | CLI_CMDLINE_ONLY,
     .help = "options from a JSON object whose keys are the option names without dashes, e.g. {\"lr\": 0.01, "
             "\"nesterov\": true}; flags win"},
    /* mixed precision */
    {ROW("precision", "amp", CLI_ENUM, precision), .choices = &precisions, .def = "fp32",
     .help = "products and convolutions on FP16/BF16 operands with FP32 accumulation; FP32 weights"},
    {ROW("loss-scale", "amp", CLI_CUSTOM, loss_scale), .set = set_loss_scale, .meta = "dynamic|none|N",
     .def = "dynamic for fp16, else none", .help = "loss scaling"},
    {SWITCH("tf32", "amp", tf32), .help = "let FP32 matrix products use TF32 tensor cores (GPU only)"},
    /* data parallel */
    {ROW("dist", "dist", CLI_STRING, dist), .choices = &dists, .flags = CLI_NOT_RECORDED, .def = "auto",
     .help = "auto: one rank per process a launcher started, MPI on the CPU, NCCL on GPUs; --batch-size is the "
             "global batch, split across the ranks"},
    {ROW("bucket-kb", "dist", CLI_INT, bucket_kb), .min = 1, .max = 1 << 30, .flags = CLI_NOT_RECORDED,
     .def = "4096", .help = "all-reduce gradients in buckets of N KiB"},
    {SWITCH("no-overlap", "dist", no_overlap), .flags = CLI_NOT_RECORDED,
     .help = "one all-reduce after backward, not buckets during it"},
    {NUMBER("dist-timeout", "dist", dist_timeout, 0, INF, CLI_OPEN_MIN), .meta = "S", .flags = CLI_NOT_RECORDED,
     .def = "600", .help = "seconds a rank waits for the others"},
    /* compression (compress_cli.c) */
    {NUMBER("prune-sparsity", "compress", compress.prune.sparsity, 0, 1, CLI_OPEN_MAX), .meta = "S",
     CLI_MARK(T, compress.prune_set),
     .help = "magnitude pruning: the fraction of weights (or units) pruned by --prune-end (Zhu & Gupta's cubic "
             "schedule; pruned weights stay exactly zero)"},
    {COUNT("prune-start", "compress", compress.prune_start, 0), CLI_MARK(T, compress.prune_flag_set), .def = "0",
     .help = "the first optimizer step that prunes"},
    {COUNT("prune-end", "compress", compress.prune_end, 1), CLI_MARK(T, compress.prune_flag_set),
     .def = "the run's last step", .help = "the step by which --prune-sparsity is reached"},
    {COUNT("prune-every", "compress", compress.prune_every, 1), CLI_MARK(T, compress.prune_flag_set),
     .def = CLI_STR(COMPRESS_DEFAULT_PRUNE_EVERY), .help = "steps between pruning steps"},
    {ROW("prune-scope", "compress", CLI_ENUM, compress.prune_scope), .choices = &compress_scope_choices,
     CLI_MARK(T, compress.prune_flag_set), .def = "global",
     .help = "rank the weights of each layer apart, or of all layers together"},
    {ROW("prune-structure", "compress", CLI_ENUM, compress.prune_structure),
     .choices = &compress_structure_choices, CLI_MARK(T, compress.prune_flag_set), .def = "unstructured",
     .help = "single weights, whole hidden neurons (rows), or conv output channels"},
    {ROW("prune-norm", "compress", CLI_ENUM, compress.prune_norm), .choices = &compress_norm_choices,
     CLI_MARK(T, compress.prune_flag_set), .def = "l1", .help = "neuron, channel: how units are ranked"},
    {FILE_ROW("distill-from", "compress", compress.distill_from),
     .help = "distil from the teacher in this checkpoint of 'ctrain train' (forward only, frozen)"},
    {NUMBER("distill-temperature", "compress", compress.temperature, 0, INF, CLI_OPEN_MIN), .meta = "T",
     CLI_MARK(T, compress.temperature_set), .def = CLI_STR(COMPRESS_DEFAULT_TEMPERATURE),
     .help = "softmax temperature of both models' logits in the KL term"},
    {NUMBER("distill-alpha", "compress", compress.alpha, 0, 1, 0), .meta = "A", CLI_MARK(T, compress.alpha_set),
     .def = CLI_STR(COMPRESS_DEFAULT_ALPHA),
     .help = "loss = A * T^2 * KL(teacher || student) + (1 - A) * cross-entropy"},
};

const cli_table train_table = {
    .cmd = "train",
    .usage = "usage: ctrain train [options]\n",
    .about = "Trains a classifier and reports its test accuracy. With no options: an MLP\n"
             "784-512-256-10 (relu) on MNIST, AdamW (lr " CLI_STR(TRAIN_DEFAULT_LR) ", weight decay "
             CLI_STR(TRAIN_DEFAULT_WEIGHT_DECAY) "), cosine\n"
             "schedule, batch " CLI_STR(TRAIN_DEFAULT_BATCH) ", " CLI_STR(TRAIN_DEFAULT_EPOCHS)
             " epochs, on the first GPU if there is one, else the CPU.\n"
             "With --data text|tokens it trains a GPT language model instead and reports\n"
             "its validation loss per token (docs/language_models.md).\n"
             "Options may also come from a JSON file (--config) whose keys are the option\n"
             "names without dashes; flags win.\n",
    .footer = "Prints progress, then one line: test accuracy, loss, epochs and seconds per\n"
              "epoch. Exits 0 on success, 1 when training fails (data, device, checkpoint),\n"
              "2 for a bad command line.\n",
    .sections = sections,
    .n_sections = (int)(sizeof sections / sizeof sections[0]),
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
};
