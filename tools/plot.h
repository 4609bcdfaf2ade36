/* `ctrain plot`: training curves from metrics files (cmd_plot.c).
 *
 * plot_data.c reads the JSON lines of `ctrain train --metrics` into series
 * (one per file and metric) and groups them into panels (losses together,
 * accuracies together, any other metric alone); plot_draw.c draws the
 * panels with cairo into a PNG or SVG stream. */
#ifndef CTRAIN_TOOLS_PLOT_H
#define CTRAIN_TOOLS_PLOT_H

#include <stdbool.h>
#include <stdio.h>

#define PLOT_MAX_RUNS 16
#define PLOT_MAX_KEYS 12
#define PLOT_MAX_PANELS 6

/* The metrics a plot can draw (the numeric keys of a metrics line), NULL-terminated. */
extern const char *const plot_keys[];

typedef struct plot_series {
    int run, key;        /* indices into the runs and plot_keys */
    double *x, *y;
    int n;
} plot_series;

typedef struct plot_panel {
    const char *title;   /* "loss", "accuracy" or the metric */
    int series[PLOT_MAX_RUNS * PLOT_MAX_KEYS];
    int n;
} plot_panel;

typedef struct plot_data {
    const char *run_name[PLOT_MAX_RUNS]; /* the file names without directory and .jsonl */
    char *name_store[PLOT_MAX_RUNS];
    int n_runs;
    plot_series series[PLOT_MAX_RUNS * PLOT_MAX_KEYS];
    int n_series;
    plot_panel panels[PLOT_MAX_PANELS];
    int n_panels;
    bool by_epoch;       /* x is the epoch (else the optimizer step) */
    bool log_y;
} plot_data;

/* Reads the files (n_files <= PLOT_MAX_RUNS) and builds the series of the
 * keys (indices into plot_keys; n_keys 0: every loss and accuracy any file
 * has). x: the step of every line, or with by_epoch the epoch of the epoch
 * lines; the final line gives the test metrics and a last point where the
 * run ended past its last epoch line; a point at the x of the one before is
 * left out, one at a smaller x (a resumed or appended run) replaces the
 * points from that x on. With log_y, values <= 0 are left out. False after
 * printing one line naming the file (and line) or metric at fault; the
 * caller then frees d. */
bool plot_load(plot_data *d, char **files, int n_files, const int *keys, int n_keys);
void plot_free(plot_data *d);

/* Draws d into a PNG (svg false) or SVG stream of width x height pixels
 * (points for SVG); false, with a message on stderr, if cairo fails. */
bool plot_draw(const plot_data *d, FILE *out, bool svg, int width, int height);

#endif
