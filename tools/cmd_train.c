/* `ctrain train`: train a classifier on MNIST, Fashion-MNIST or a CSV file.
 *
 * With no options it trains the MLP 784-512-256-10 on MNIST with AdamW and
 * a cosine schedule to about 98% test accuracy. Every option has a long
 * form only, named as PyTorch names the same thing where it can be, and can
 * also come from a JSON --config file (flags win). The work itself is the
 * library's trainer (ctrain/train.h); this file turns options (their
 * table is train_table.c) into its settings and its results into one
 * summary line.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lm_cli.h"
#include "train_dist.h"
#include "quant_cli.h"
#include "train_opts.h"

#define CMD "train"

void cmd_train_usage(FILE *out) {
    cli_print_help(out, &train_table);
}

/* Returns CLI_EXIT_OK to go on; otherwise the exit code, with *done set. */
static int parse_args(int argc, char **argv, cli_parser *p, bool *done) {
    *done = true;
    if (cli_help_asked(argc, argv)) {
        cmd_train_usage(stdout);
        return CLI_EXIT_OK;
    }
    /* A resumed run's own options first, then the config file, wherever
     * --resume and --config stand, so that the flags given win. */
    int rc = cli_scan(p, argc, argv, "resume", train_apply_checkpoint_options);
    if (rc == CLI_EXIT_OK) rc = cli_scan(p, argc, argv, "config", cli_apply_config_file);
    if (rc == CLI_EXIT_OK) rc = cli_parse_argv(p, argc, argv);
    if (rc == CLI_EXIT_OK) rc = train_check_options(p->cfg);
    if (rc == CLI_EXIT_OK) rc = quant_check_train(CMD, p->cfg);
    *done = rc != CLI_EXIT_OK;
    return rc;
}

void train_trainer_opts(const train_cfg *c, ct_train_opts *o) {
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
    o->tensorboard_dir = c->tensorboard;
    o->tensorboard_histograms = c->tensorboard_histograms;
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
    printf(" %s", ct_schedule_kind_name(o->schedule.kind));
    if (o->schedule.warmup_steps) printf(" warmup %lld", (long long)o->schedule.warmup_steps);
    printf(" | batch %lld", (long long)o->batch_size);
    if (o->accum_steps > 1) printf(" x %d", o->accum_steps);
    if (o->augment) print_augment(o->augment);
    if (o->precision != CT_PRECISION_FP32) printf(" | %s", ct_precision_name(o->precision));
    compress_describe(&c->compress);
    char dev[32];
    printf(" | %s | %s\n", length, ct_device_str(c->device, dev, sizeof dev));
    fflush(stdout);
}

/* The checkpoint records how to rebuild the model and prepare the data
 * (for `ctrain eval`), and the options given (for --resume). */
#define N_META 4
static bool checkpoint_meta(const train_cfg *c, const cli_parser *p, const data_sets *d, ct_train_meta meta[N_META],
                            char *json[3]) {
    json[0] = model_to_json(&c->model);
    json[1] = norm_to_json(d->mean, d->std, d->n_norm);
    json[2] = cli_given_json(p);
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

/* The datasets, checked against the model, which takes its number of
 * classes from them. False after reporting. */
static bool load_data(train_cfg *c, data_sets *d) {
    c->data.split_seed = c->data_seed_set ? c->data_seed : c->seed;
    if (!data_load_train(CMD, &c->data, d)) return false;
    const char *why;
    if (!model_input_ok(&c->model, ct_dataset_sample_shape(d->train), &why)) {
        char s[96];
        fprintf(stderr, "ctrain: %s: --model %s: %s; %s has samples %s\n", CMD, c->model.model, why, d->where,
                ct_shape_str(ct_dataset_sample_shape(d->train), s, sizeof s));
        return false;
    }
    c->model.classes = ct_dataset_num_classes(d->train);
    if (d->val && ct_dataset_num_classes(d->val) > c->model.classes) c->model.classes = ct_dataset_num_classes(d->val);
    if (d->test && ct_dataset_num_classes(d->test) > c->model.classes)
        c->model.classes = ct_dataset_num_classes(d->test);
    return true;
}

bool train_start_from(ct_trainer *t, const train_cfg *c) {
    if (c->resume) {
        if (ct_trainer_resume(t, c->resume) != CT_OK) {
            cli_fail("train: --resume");
            return false;
        }
        int64_t epoch, batch, step;
        ct_trainer_position(t, &epoch, &batch, &step);
        if (!c->quiet && batch)
            printf("resuming %s: epoch %lld, after batch %lld (step %lld)\n", c->resume, (long long)epoch + 1,
                   (long long)batch, (long long)step);
        else if (!c->quiet)
            printf("resuming %s after epoch %lld (step %lld)\n", c->resume, (long long)epoch, (long long)step);
    }
    return train_transfer(t, c);
}

/* Sets up the trainer (*t, for the caller to free) on the data and runs
 * it; who names this rank in messages. Returns the exit code. */
static int run(train_cfg *c, const cli_parser *p, ct_comm *comm, const char *who, const data_sets *d,
               ct_trainer **t_out) {
    int rc = CLI_EXIT_FAIL;
    char *json[3] = {NULL, NULL, NULL};
    ct_trainer *t = NULL;
    ct_train_opts o;
    train_trainer_opts(c, &o);
    o.augment = data_augment(d);
    if (!compress_prepare(&c->compress, CMD)) goto out; /* the teacher's model */
    compress_trainer_opts(&c->compress, &o);
    ct_train_meta meta[N_META];
    if (!checkpoint_meta(c, p, d, meta, json)) {
        fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
        goto out;
    }
    o.meta = meta;
    o.n_meta = N_META;
    o.model_fingerprint = json[0];
    o.comm = comm;
    if (!(*t_out = t = ct_trainer_new(&o, d->train, d->val, d->test))) {
        cli_fail(who);
        goto out;
    }
    if (!train_start_from(t, c)) goto out;
    if (!c->quiet) print_header(c, &o, d);
    if (!c->quiet && comm) train_dist_describe(c, comm);
    ct_train_result r;
    if (ct_trainer_run(t, &r) != CT_OK) {
        /* Trained, but the last save failed: the results are real (and the
         * error says where the state was rescued to). */
        if (r.finished && ct_comm_rank(comm) == 0) print_summary(&r);
        cli_fail(who);
        goto out;
    }
    if (ct_comm_rank(comm) == 0) print_summary(&r);
    rc = CLI_EXIT_OK;
out:
    for (int i = 0; i < 3; i++) free(json[i]);
    return rc;
}

int cmd_train(int argc, char **argv) {
    train_cfg c;
    train_cfg_defaults(&c);
    /* The parser holds the strings of config files and the record of the
     * options given: it lives as long as c. */
    cli_parser p;
    cli_parser_init(&p, &train_table, &c, true);
    bool done;
    int rc = parse_args(argc, argv, &p, &done);
    if (done) {
        cli_parser_free(&p);
        return rc;
    }
    /* --threads: OpenMP's and OpenBLAS's count for this run (range-checked
     * by the table, so this cannot fail) */
    if (c.threads > 0) (void)ct_cpu_set_threads(c.threads);
    if (train_is_lm(&c)) {
        /* Language models train in one process (the library refuses a
         * communicator for them). */
        rc = train_lm(&c, &p);
        cli_parser_free(&p);
        return rc;
    }
    rc = CLI_EXIT_FAIL;
    data_sets d = {0};
    /* Every rank runs this same command; only rank 0 speaks, and a rank
     * that fails takes the job down (below) rather than leaving the others
     * waiting. */
    ct_comm *comm = NULL;
    ct_trainer *t = NULL;
    char who[64] = CMD;
    if (train_dist_open(&c, &comm)) {
        if (ct_comm_size(comm) > 1)
            snprintf(who, sizeof who, "%s: rank %d of %d", CMD, ct_comm_rank(comm), ct_comm_size(comm));
        if (ct_comm_rank(comm) != 0) c.quiet = c.silent = true;
        if (ct_device_check(c.device) != CT_OK)
            cli_fail(who);
        else if (load_data(&c, &d))
            rc = run(&c, &p, comm, who, &d, &t);
    }
    if (rc != CLI_EXIT_OK && ct_comm_size(comm) > 1) {
        fflush(stdout);
        ct_comm_abort(comm, rc);
    }
    ct_trainer_free(t);
    ct_comm_free(comm);
    data_sets_free(&d);
    cli_parser_free(&p);
    return rc;
}
