/* Shared by `ctrain train` and `ctrain eval`: the built-in models, finding
 * and loading the datasets, and the record of both that checkpoints carry
 * so that `ctrain eval` can rebuild the model and normalise the data the way
 * training did.
 */
#ifndef CTRAIN_TOOLS_TRAIN_CLI_H
#define CTRAIN_TOOLS_TRAIN_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include <ctrain/ctrain.h>

/* ---------------------------------------------------------------- models */

#define MLP_MAX_HIDDEN 16

/* The MLP: flatten, then for each hidden size a linear layer "fcK", batch
 * norm "bnK" (optional), the activation and dropout; a last linear layer to
 * the classes. The names are those of a torch.nn module with attributes
 * fc1, bn1, fc2, ... so that weights move between the two. */
typedef struct model_cfg {
    char model[16];        /* "mlp", "cnn", "resnet", "gpt", "lstm", "gru", "rnn" */
    int64_t hidden[MLP_MAX_HIDDEN];
    int n_hidden;
    char activation[16];
    double dropout;
    bool batchnorm;
    char init[16];         /* "default", "xavier", "kaiming" */
    int64_t classes;       /* set from the data */
    int width;             /* cnn, resnet: base channels (0: the model's default) */
    int depth;             /* resnet: residual blocks per stage (0: the default) */
    bool hidden_given;     /* --hidden was given (else cnn takes its own default) */
    bool model_given;      /* --model was given (else text and tokens take gpt) */
    bool qat;              /* mlp: quantization-aware training (ct_linear_qat); not in the record */
    /* gpt (model_gpt.c): nanoGPT's GPTConfig; vocab_size is set from the
     * data, block_size is also the training windows' length. */
    int64_t n_layer, n_head, n_embd, block_size, vocab_size;
    /* lstm, gru, rnn (model_rnn.c): the recurrent stack; block_size and
     * vocab_size as for gpt. */
    int64_t hidden_size, num_layers;
    bool bidirectional;
    /* --stateful: the training graph takes the initial states as inputs
     * and names its final states (MODEL_RNN_STATES), which the trainer
     * carries from window to window. A training option, not the model's
     * shape: not in the JSON record, so eval and generate see the plain
     * model (zero initial states). */
    bool stateful;
} model_cfg;

/* The GPT's defaults: a small model that trains on tinyshakespeare on a
 * CPU in minutes (nanoGPT's "baby GPT" is 6 / 6 / 384 with block 256). */
#define GPT_DEFAULT_N_LAYER 4
#define GPT_DEFAULT_N_HEAD 4
#define GPT_DEFAULT_N_EMBD 128
#define GPT_DEFAULT_BLOCK 64
#define GPT_MAX_SIZE (1 << 20)
/* The ct_gpt_config of a gpt model_cfg. */
ct_gpt_config model_gpt_config(const model_cfg *m);
/* model_describe and the JSON record's fields for gpt. */
void model_describe_gpt(const model_cfg *m, char *buf, size_t cap);
bool model_gpt_to_json(const model_cfg *m, void *cjson_object);
bool model_gpt_from_json(const void *cjson_object, model_cfg *m, const char **why);
/* The recurrent language models (model_rnn.c): embedding -> nn.LSTM /
 * GRU / RNN (tanh) -> linear head. Their defaults: */
#define RNN_DEFAULT_HIDDEN 128
#define RNN_DEFAULT_LAYERS 1
/* lstm, gru or rnn. */
bool model_is_recurrent(const model_cfg *m);
/* gpt or a recurrent model: the models of --data text and tokens. */
bool model_is_lm(const model_cfg *m);
ct_rnn_config model_rnn_config(const model_cfg *m);
/* Checks the shape (ct_rnn_config_check); false with ct_last_error set. */
bool model_rnn_check(const model_cfg *m);
void model_describe_rnn(const model_cfg *m, char *buf, size_t cap);
bool model_rnn_to_json(const model_cfg *m, void *cjson_object);
bool model_rnn_from_json(const void *cjson_object, const char *kind, model_cfg *m, const char **why);
/* x I32 [B, T] -> logits [B, T, V]. With m->stateful, a training graph
 * (training true) starts from inputs "rnn.h0" (and "rnn.c0" for an LSTM)
 * [L, B, H] and names its final states "rnn.h_n" ("rnn.c_n"). */
ct_node model_build_rnn(ct_graph *g, ct_node x, bool training, const model_cfg *m);
/* The pairs a stateful model's trainer carries (ct_lm_data.states): how
 * many for m (2 for an LSTM, else 1), into out[0..2). */
int model_rnn_states(const model_cfg *m, ct_lm_state out[2]);
/* Field key of a model record (a cJSON object) as a count: an integral
 * number in lo .. hi; else false with *why naming the field and its value
 * (static storage, valid until the next call). _item: the value itself. */
bool model_json_count(const void *cjson_object, const char *key, int64_t lo, int64_t hi, int64_t *out,
                      const char **why);
bool model_json_count_item(const void *cjson_item, const char *key, int64_t lo, int64_t hi, int64_t *out,
                           const char **why);

/* The image models (model_cnn.c, model_resnet.c) and their defaults. */
#define CNN_DEFAULT_WIDTH 32
#define CNN_DEFAULT_HIDDEN 128
#define RESNET_DEFAULT_WIDTH 16
#define RESNET_DEFAULT_DEPTH 1
#define MODEL_MAX_WIDTH 4096
#define MODEL_MAX_DEPTH 64
ct_node model_build_cnn(ct_graph *g, ct_node x, const model_cfg *m);
/* The CNN with the input node of each product (conv1, conv2, fc1, ...) in
 * taps (NULL, or n_hidden + 3 entries), as model_build_mlp's. */
ct_node model_build_cnn_taps(ct_graph *g, ct_node x, const model_cfg *m, ct_node *taps);
ct_node model_build_resnet(ct_graph *g, ct_node x, const model_cfg *m);
/* The width and depth a cfg means (its own, or the model's default). */
int model_width(const model_cfg *m);
int model_depth(const model_cfg *m);
/* model_describe for the image models. */
void model_describe_image(const model_cfg *cfg, int64_t inputs, char *buf, size_t cap);
/* True for a model that takes images [C, H, W]. */
bool model_is_image(const model_cfg *m);
/* An image model's input as [N, C, H, W]: x as it is if it has 4 axes,
 * [N, 1, H, W] from [N, H, W], [N, 1, S, S] from [N, S * S]. CT_NO_NODE
 * (nothing added) for anything else. */
ct_node model_image_input(ct_graph *g, ct_node x);
/* For an error message before building: false (with *why set) when the
 * samples of this shape are not images the model takes. */
bool model_input_ok(const model_cfg *m, ct_shape sample, const char **why);
/* The weight initialisation the --init option names; false for
 * "default" (each layer's PyTorch default). */
bool model_init_rule(const char *init, ct_init *out);

/* The ct_model_fn for a model_cfg (user = the cfg). */
ct_node model_build(ct_graph *g, ct_node x, bool training, void *user);
/* The MLP of model_build; taps (NULL, or n_hidden + 1 entries) receives the
 * input node of each linear layer fc1, fc2, ... (the activations that
 * `ctrain quantize` calibrates). */
ct_node model_build_mlp(ct_graph *g, ct_node x, const model_cfg *m, ct_node *taps);

/* Parses "512,256" (or "" / "none" for no hidden layer) into cfg. Returns
 * false on a bad list (an entry not a positive integer, too many). */
bool model_parse_hidden(const char *text, model_cfg *cfg);
/* "784-512-256-10" for the summary line. */
void model_describe(const model_cfg *cfg, int64_t inputs, char *buf, size_t cap);
/* The JSON record of a model (its architecture, not its initialisation),
 * malloc'ed; also the fingerprint a resumed run must match. */
char *model_to_json(const model_cfg *cfg);
/* The inverse; false with *why naming the field at fault (static storage)
 * on a malformed record: every count integral and in range, nothing after
 * the JSON object. */
bool model_from_json(const char *json, model_cfg *cfg, const char **why);

/* ---------------------------------------------------------------- data */

typedef struct data_cfg {
    const char *kind;       /* "mnist", "fashion-mnist", "cifar10", "csv", "text", "tokens" */
    const char *dir;        /* --data-dir, or NULL to search */
    const char *train_file; /* csv */
    const char *test_file;  /* csv, optional */
    const char *val_file;   /* text, tokens: optional (else 90/10 split of train_file) */
    int64_t vocab_size;     /* tokens: ids must be below it (0: GPT-2's 50257) */
    int label_column;       /* csv, 0: the last */
    bool label_column_set;  /* --label-column given (refused for other data) */
    int32_t num_classes;    /* csv: --num-classes, 0: the training labels' largest + 1 */
    int64_t train_limit, test_limit; /* 0: all */
    double val_split;       /* 0: no validation set */
    uint64_t split_seed;
    /* --augment: the steps listed (AUG_* bits) and their parameters. With
     * any, the training set stays unnormalized and the loader normalizes
     * each sample after augmenting it (data_sets.augment). */
    unsigned augment;
    int crop_pad, translate_px, cutout_size;
    double rotate_deg, noise_std;
} data_cfg;

/* The steps of --augment, in the order of the help text. */
enum { AUG_CROP = 1, AUG_FLIP = 2, AUG_ROTATE = 4, AUG_TRANSLATE = 8, AUG_NOISE = 16, AUG_CUTOUT = 32 };
#define AUG_DEFAULT_CROP_PAD 4
#define AUG_DEFAULT_ROTATE_DEG 10.0
#define AUG_DEFAULT_TRANSLATE_PX 2
#define AUG_DEFAULT_NOISE_STD 0.05
#define AUG_DEFAULT_CUTOUT_SIZE 8

typedef struct data_sets {
    ct_dataset *train, *val, *test; /* test may be NULL (csv without --test-file) */
    char where[512];        /* the directory or file read, for messages */
    /* The normalisation applied: one value (images) or one per feature. */
    float *mean, *std;
    int64_t n_norm;
    /* The training loader's augmentation (its mean and std per channel in
     * aug_mean, aug_std); all zero without --augment. */
    ct_augment_opts augment;
    float *aug_mean, *aug_std;
} data_sets;

/* The training loader's augmentation, or NULL without --augment. */
const ct_augment_opts *data_augment(const data_sets *d);

/* Loads and prepares the datasets for `ctrain train`: finds MNIST, applies
 * the limits, splits off the validation set, normalises (MNIST's usual
 * constants; for CSV the training part's per-feature statistics). On error
 * prints "ctrain: <cmd>: ..." and returns false. */
bool data_load_train(const char *cmd, const data_cfg *cfg, data_sets *out);
/* Loads one split (train or test) for `ctrain eval`, normalised with the
 * given statistics (n_norm values, 1 or the number of features). */
bool data_load_eval(const char *cmd, const data_cfg *cfg, bool train_split, const float *mean,
                    const float *std, int64_t n_norm, ct_dataset **out, char *where, size_t where_cap);
void data_sets_free(data_sets *d);

/* The data options given for a dataset they mean nothing to (--label-column
 * with mnist, --data-dir with csv...): a usage error naming both, and its
 * exit code; else CLI_EXIT_OK. */
int data_check_flags(const char *cmd, const data_cfg *cfg);

/* The first non-finite feature of a normalised dataset, reported as the
 * normalisation statistic that made it ("ctrain: <cmd>: ... std[g] ... is
 * degenerate"); false after reporting. */
bool data_check_finite(const char *cmd, const ct_dataset *ds, const char *where, const float *mean,
                       const float *std, int64_t n_norm);

/* The record of the normalisation, as JSON {"mean": [...], "std": [...]},
 * malloc'ed, and its inverse (arrays malloc'ed). */
char *norm_to_json(const float *mean, const float *std, int64_t n);
bool norm_from_json(const char *json, float **mean, float **std, int64_t *n);

/* Where MNIST-like data lives when --data-dir is not given: the first of
 * ../shared/data/<name> from the current directory and from the repository
 * holding the executable that has the files. NULL if none does; then
 * `looked` lists the places tried. */
const char *data_find_dir(const char *name, char *buf, size_t cap, char *looked, size_t looked_cap);

#endif
