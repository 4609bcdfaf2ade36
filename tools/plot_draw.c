/* `ctrain plot`'s drawing, with cairo (plot.h).
 *
 * cairo because it is one library, in every distribution, that draws
 * antialiased lines and text onto both a PNG image and an SVG document from
 * the same calls; PLplot would have brought its own driver plugins and
 * device names for the same two formats (docs/tooling.md).
 *
 * Layout: panels in a grid (up to three in a row), each with its title,
 * ticks at 1-2-5 multiples (decades with --log-y), a light grid, axis
 * labels and a legend in the corner its curves leave emptiest. Colour tells
 * the runs apart (the metrics when there is one run), the dash the metric:
 * training solid, validation dashed, test points only. */
#ifdef CTRAIN_HAVE_CAIRO
#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plot.h"

#define PLOT_PI 3.14159265358979323846

typedef struct box {
    double x, y, w, h;
} box;

typedef struct axis {
    double lo, hi;  /* data range shown (log10 of it with log) */
    bool log;
} axis;

/* Tableau's ten colours: distinct, and readable on white. */
static const double palette[10][3] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
                                      {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                                      {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
                                      {0.090, 0.745, 0.812}};

static double tick_step(double range, int want) {
    double raw = range / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static double map(const axis *a, double v, double from, double to) {
    double t = a->log ? log10(v) : v;
    return from + (t - a->lo) / (a->hi - a->lo) * (to - from);
}

/* The range of the panel's points on one axis, padded; log: in decades. */
static axis range_of(const plot_data *d, const plot_panel *p, bool y) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < p->n; i++) {
        const plot_series *s = &d->series[p->series[i]];
        for (int k = 0; k < s->n; k++) {
            double v = y ? s->y[k] : s->x[k];
            if (y && d->log_y) v = log10(v);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * (fabs(hi) + 1)) {
        double pad = fabs(hi) > 0 ? fabs(hi) * 0.1 : 1;
        lo -= pad, hi += pad;
    } else {
        /* room for the markers at the ends */
        double pad = (y ? 0.05 : 0.025) * (hi - lo);
        lo -= pad, hi += pad;
    }
    return (axis){lo, hi, y && d->log_y};
}

static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.width - e.x_bearing, y - ay * e.height - e.y_bearing);
    cairo_show_text(cr, s);
}

static void tick_label(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) >= 1e5 || (v != 0 && fabs(v) < 1e-4)) snprintf(buf, cap, "%g", v);
    else snprintf(buf, cap, "%.*f", dec, v);
}

/* A grid line at t (an axis coordinate: log10 of the value on a log axis)
 * with its label (none if label is NULL). */
static void tick(cairo_t *cr, double t, const axis *a, box plot, bool vertical, double fs, const char *label) {
    axis lin = {a->lo, a->hi, false};
    double pos = vertical ? map(&lin, t, plot.y + plot.h, plot.y) : map(&lin, t, plot.x, plot.x + plot.w);
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    cairo_set_line_width(cr, 1);
    if (vertical) cairo_move_to(cr, plot.x, pos), cairo_line_to(cr, plot.x + plot.w, pos);
    else cairo_move_to(cr, pos, plot.y), cairo_line_to(cr, pos, plot.y + plot.h);
    cairo_stroke(cr);
    if (!label) return;
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    if (vertical) text_at(cr, label, plot.x - 0.5 * fs, pos, 1, 0.5);
    else text_at(cr, label, pos, plot.y + plot.h + 0.5 * fs, 0.5, 0);
}

/* A log axis: every 1..9 x 10^k within a decade or so (1, 2, 3, 5
 * labelled when all would crowd), 1, 2, 5 within a few decades, else whole
 * decades. */
static void log_ticks(cairo_t *cr, const axis *a, box plot, bool vertical, double fs) {
    double range = a->hi - a->lo;
    int step = range > 8 ? (int)ceil(range / 6) : 1;
    char buf[32];
    for (int e = (int)floor(a->lo); e <= (int)ceil(a->hi); e++) {
        if (e % step) continue;
        for (int m = 1; m <= 9; m++) {
            bool main = m == 1 || m == 2 || m == 5;
            if ((range > 3.5 && m > 1) || (range > 1.3 && !main)) continue;
            double t = log10(m) + e;
            if (t < a->lo || t > a->hi) continue;
            snprintf(buf, sizeof buf, "%g", m * pow(10, e));
            bool labelled = main || range < 0.6 || (m == 3 && range <= 1.3);
            tick(cr, t, a, plot, vertical, fs, labelled ? buf : NULL);
        }
    }
}

/* Grid lines and labels of one axis; vertical: the y axis. */
static void draw_ticks(cairo_t *cr, const axis *a, box plot, bool vertical, double fs, bool whole) {
    if (a->log) {
        log_ticks(cr, a, plot, vertical, fs);
        return;
    }
    double step = tick_step(a->hi - a->lo, vertical ? 6 : 7);
    if (whole && step < 1) step = 1; /* epochs */
    char buf[32];
    for (double t = ceil(a->lo / step - 1e-9) * step; t <= a->hi + 1e-9 * step; t += step) {
        tick_label(buf, sizeof buf, t, step);
        tick(cr, t, a, plot, vertical, fs, buf);
    }
}

/* One run: the colour of the split (train, val, test), the same in every
 * panel, then one per other metric; several runs: the run's. */
static const double *colour_of(const plot_data *d, const plot_series *s) {
    if (d->n_runs > 1) return palette[s->run % 10];
    const char *k = plot_keys[s->key];
    int c = strncmp(k, "train_", 6) == 0 ? 0 : strncmp(k, "val_", 4) == 0 ? 1 : strncmp(k, "test_", 5) == 0 ? 2 : 3 + s->key;
    return palette[c % 10];
}

static bool is_test(const plot_series *s) { return strncmp(plot_keys[s->key], "test_", 5) == 0; }

/* Line style of a series at (x, y) for the legend or the curve. */
static void set_style(cairo_t *cr, const plot_data *d, const plot_series *s, double lw) {
    const double *c = colour_of(d, s);
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_set_line_width(cr, lw);
    double dash[2] = {3 * lw, 2 * lw};
    cairo_set_dash(cr, dash, strncmp(plot_keys[s->key], "val_", 4) == 0 ? 2 : 0, 0);
}

static void marker(cairo_t *cr, double x, double y, double r) {
    cairo_new_sub_path(cr);
    cairo_arc(cr, x, y, r, 0, 2 * PLOT_PI);
    cairo_fill(cr);
}

static void draw_series(cairo_t *cr, const plot_data *d, const plot_series *s, const axis *ax, const axis *ay,
                        box plot, double lw) {
    set_style(cr, d, s, lw);
    bool dots = is_test(s) || s->n <= 40;
    if (!is_test(s)) {
        for (int k = 0; k < s->n; k++) {
            double px = map(ax, s->x[k], plot.x, plot.x + plot.w), py = map(ay, s->y[k], plot.y + plot.h, plot.y);
            if (k == 0) cairo_move_to(cr, px, py);
            else cairo_line_to(cr, px, py);
        }
        cairo_stroke(cr);
    }
    cairo_set_dash(cr, NULL, 0, 0);
    for (int k = 0; dots && k < s->n; k++)
        marker(cr, map(ax, s->x[k], plot.x, plot.x + plot.w), map(ay, s->y[k], plot.y + plot.h, plot.y),
               (is_test(s) ? 2.2 : 1.4) * lw);
}

static void label_of(const plot_data *d, const plot_series *s, char *buf, size_t cap) {
    if (d->n_runs > 1) snprintf(buf, cap, "%s %s", d->run_name[s->run], plot_keys[s->key]);
    else snprintf(buf, cap, "%s", plot_keys[s->key]);
}

/* The corner (0 top-left .. 3 bottom-right) with the fewest points under a
 * legend of size w x h. */
static int emptiest_corner(const plot_data *d, const plot_panel *p, const axis *ax, const axis *ay, box plot,
                           double w, double h) {
    int best = 1, best_n = 1 << 30;
    static const int order[4] = {1, 0, 3, 2}; /* ties: top right first */
    for (int c = 0; c < 4; c++) {
        int corner = order[c], n = 0;
        double x0 = corner % 2 ? plot.x + plot.w - w : plot.x, y0 = corner / 2 ? plot.y + plot.h - h : plot.y;
        for (int i = 0; i < p->n; i++) {
            const plot_series *s = &d->series[p->series[i]];
            /* the points and the lines between them, sampled */
            for (int k = 0; k < s->n; k++)
                for (int j = 0; j < (k + 1 < s->n ? 16 : 1); j++) {
                    double f = j / 16.0, x = s->x[k], y = s->y[k];
                    if (j) x += f * (s->x[k + 1] - x), y = ay->log ? y * pow(s->y[k + 1] / y, f) : y + f * (s->y[k + 1] - y);
                    double px = map(ax, x, plot.x, plot.x + plot.w), py = map(ay, y, plot.y + plot.h, plot.y);
                    n += px >= x0 && px <= x0 + w && py >= y0 && py <= y0 + h;
                }
        }
        if (n < best_n) best = corner, best_n = n;
    }
    return best;
}

static void draw_legend(cairo_t *cr, const plot_data *d, const plot_panel *p, const axis *ax, const axis *ay, box plot,
                        double fs, double lw) {
    char buf[300];
    double tw = 0, row = 1.5 * fs, sample = 2.2 * fs;
    for (int i = 0; i < p->n; i++) {
        cairo_text_extents_t e;
        label_of(d, &d->series[p->series[i]], buf, sizeof buf);
        cairo_text_extents(cr, buf, &e);
        tw = e.x_advance > tw ? e.x_advance : tw;
    }
    double w = sample + tw + 1.6 * fs, h = row * p->n + 0.6 * fs, m = 0.6 * fs;
    int corner = emptiest_corner(d, p, ax, ay, plot, w + 2 * m, h + 2 * m);
    double x0 = corner % 2 ? plot.x + plot.w - w - m : plot.x + m;
    double y0 = corner / 2 ? plot.y + plot.h - h - m : plot.y + m;
    cairo_rectangle(cr, x0, y0, w, h);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int i = 0; i < p->n; i++) {
        const plot_series *s = &d->series[p->series[i]];
        double y = y0 + 0.3 * fs + row * (i + 0.5), x = x0 + 0.5 * fs;
        set_style(cr, d, s, lw);
        if (!is_test(s)) {
            cairo_move_to(cr, x, y);
            cairo_line_to(cr, x + sample, y);
            cairo_stroke(cr);
        }
        cairo_set_dash(cr, NULL, 0, 0);
        if (is_test(s) || s->n <= 40) marker(cr, x + sample / 2, y, (is_test(s) ? 2.2 : 1.4) * lw);
        label_of(d, s, buf, sizeof buf);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_at(cr, buf, x + sample + 0.5 * fs, y, 0, 0.5);
    }
}

static void draw_panel(cairo_t *cr, const plot_data *d, const plot_panel *p, box cell, double fs) {
    box plot = {cell.x + 5.2 * fs, cell.y + 2.4 * fs, cell.w - 7.2 * fs, cell.h - 5.6 * fs};
    axis ax = range_of(d, p, false), ay = range_of(d, p, true);
    double lw = fs / 6.5;
    cairo_set_font_size(cr, 0.85 * fs);
    draw_ticks(cr, &ax, plot, false, fs, d->by_epoch);
    draw_ticks(cr, &ay, plot, true, fs, false);
    cairo_save(cr);
    cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
    cairo_clip(cr);
    for (int i = 0; i < p->n; i++) draw_series(cr, d, &d->series[p->series[i]], &ax, &ay, plot, lw);
    cairo_restore(cr);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 0.9 * fs);
    draw_legend(cr, d, p, &ax, &ay, plot, 0.9 * fs, lw);
    char title[300];
    if (d->n_runs == 1) snprintf(title, sizeof title, "%s: %s", p->title, d->run_name[0]);
    else snprintf(title, sizeof title, "%s", p->title);
    cairo_set_font_size(cr, 1.1 * fs);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, title, plot.x + plot.w / 2, cell.y + 1.1 * fs, 0.5, 0.5);
    cairo_set_font_size(cr, fs);
    text_at(cr, d->by_epoch ? "epoch" : "step", plot.x + plot.w / 2, cell.y + cell.h - 0.9 * fs, 0.5, 0.5);
    cairo_save(cr);
    cairo_translate(cr, cell.x + 1.1 * fs, plot.y + plot.h / 2);
    cairo_rotate(cr, -PLOT_PI / 2);
    char ylabel[80];
    snprintf(ylabel, sizeof ylabel, "%s%s", p->title, d->log_y ? " (log scale)" : "");
    text_at(cr, ylabel, 0, 0, 0.5, 0.5);
    cairo_restore(cr);
}

static cairo_status_t to_file(void *closure, const unsigned char *data, unsigned int len) {
    return fwrite(data, 1, len, closure) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static void draw_all(cairo_t *cr, const plot_data *d, int width, int height) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    int n = d->n_panels, cols = n <= 3 ? n : (n + 1) / 2, rows = (n + cols - 1) / cols;
    double cw = (double)width / cols, ch = (double)height / rows;
    double fs = fmax(9, fmin(fmin(cw / 34, ch / 30), 15));
    for (int i = 0; i < n; i++)
        draw_panel(cr, d, &d->panels[i], (box){cw * (i % cols), ch * (i / cols), cw, ch}, fs);
}

bool plot_draw(const plot_data *d, FILE *out, bool svg, int width, int height) {
    cairo_surface_t *sf = svg ? cairo_svg_surface_create_for_stream(to_file, out, width, height)
                              : cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(sf);
    draw_all(cr, d, width, height);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS && !svg) st = cairo_surface_write_to_png_stream(sf, to_file, out);
    cairo_surface_finish(sf);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    /* cairo keeps its font caches (and fontconfig's patterns) for the
     * process; one plot per process: give them back, so leak checkers see
     * none. */
    cairo_debug_reset_static_data();
    FcFini();
    if (st != CAIRO_STATUS_SUCCESS) fprintf(stderr, "ctrain: plot: drawing failed: %s\n", cairo_status_to_string(st));
    return st == CAIRO_STATUS_SUCCESS;
}
#else
typedef int plot_draw_needs_cairo; /* ISO C wants a declaration in every file */
#endif
