/* The history of a fit: a CSV file (epoch and every logged value) and an SVG plot with a
 * loss panel and an accuracy panel, each with axes, ticks, labels and a legend. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The command's files are printed into memory, then written whole by tg_write_file
 * (atomically): a failure leaves the old file as it was. */
typedef struct mem_file {
    FILE *f;
    char *buf;
    size_t n;
} mem_file;

static bool mem_open(mem_file *m)
{
    *m = (mem_file){0};
    m->f = open_memstream(&m->buf, &m->n);
    if (!m->f)
        fprintf(stderr, "tapegrad: out of memory: %s\n", strerror(errno));
    return m->f != NULL;
}

static int mem_save(mem_file *m, const char *path)
{
    int rc = EXIT_OK;
    if (fclose(m->f) != 0) {
        fprintf(stderr, "tapegrad: cannot write %s: out of memory\n", path);
        rc = EXIT_DATA;
    } else if (tg_write_file(path, m->buf, m->n) != 0) {
        rc = cli_library_error();
    }
    free(m->buf);
    return rc;
}

int history_from_fit(const tg_history *h, int initial_epoch, cli_history *out)
{
    *out = (cli_history){0};
    int keys = tg_history_n_keys(h), n = tg_history_epochs(h);
    if (keys > HISTORY_MAX_KEYS)
        keys = HISTORY_MAX_KEYS;
    out->epoch = malloc(sizeof(int) * (size_t)(n + 1));
    out->v = malloc(sizeof(double) * (size_t)(n * keys + 1));
    if (!out->epoch || !out->v) {
        history_free(out);
        fprintf(stderr, "tapegrad: out of memory for the history of %d epochs\n", n);
        return EXIT_DATA;
    }
    out->n_keys = keys;
    out->n_epochs = n;
    for (int k = 0; k < keys; k++)
        snprintf(out->keys[k], sizeof out->keys[k], "%s", tg_history_key(h, k));
    for (int e = 0; e < n; e++) {
        out->epoch[e] = initial_epoch + e + 1;
        for (int k = 0; k < keys; k++)
            out->v[e * keys + k] = tg_history_get(h, out->keys[k], NULL)[e];
    }
    return EXIT_OK;
}

void history_free(cli_history *h)
{
    free(h->epoch);
    free(h->v);
    *h = (cli_history){0};
}

/* The values of `key` as one array per epoch (malloc'd), or NULL. */
static double *series_of(const cli_history *h, const char *key)
{
    for (int k = 0; k < h->n_keys; k++)
        if (strcmp(h->keys[k], key) == 0) {
            double *v = malloc(sizeof(double) * (size_t)(h->n_epochs + 1));
            for (int e = 0; v && e < h->n_epochs; e++)
                v[e] = h->v[e * h->n_keys + k];
            return v;
        }
    return NULL;
}

/* Splits a CSV line in place at commas; returns the number of fields (at most max). */
static int split_fields(char *line, char **field, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line; n < max;) {
        field[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            break;
        *comma = 0;
        p = comma + 1;
    }
    return n;
}

void history_prepend_csv(cli_history *h, const char *path)
{
    int first = h->n_epochs ? h->epoch[0] : 1;
    FILE *f = fopen(path, "r");
    if (!f || first <= 1) {
        if (f)
            fclose(f);
        return;
    }
    char *line = NULL, *field[HISTORY_MAX_KEYS + 2];
    size_t cap = 0;
    bool same = getline(&line, &cap, f) > 0 && split_fields(line, field, HISTORY_MAX_KEYS + 2) == h->n_keys + 1 &&
                strcmp(field[0], "epoch") == 0;
    for (int k = 0; same && k < h->n_keys; k++)
        same = strcmp(field[k + 1], h->keys[k]) == 0;
    int n_old = 0, *epoch = malloc(sizeof(int) * (size_t)first);
    double *v = malloc(sizeof(double) * (size_t)(first * h->n_keys + 1));
    while (same && epoch && v && n_old < first - 1 && getline(&line, &cap, f) > 0) {
        char *end;
        if (split_fields(line, field, HISTORY_MAX_KEYS + 2) != h->n_keys + 1)
            break;
        long e = strtol(field[0], &end, 10);
        if (*end || e < 1 || e >= first || (n_old && e <= epoch[n_old - 1]))
            break;
        epoch[n_old] = (int)e;
        for (int k = 0; k < h->n_keys; k++)
            v[n_old * h->n_keys + k] = strtod(field[k + 1], NULL);
        n_old++;
    }
    if (!same)
        fprintf(stderr,
                "tapegrad: note: %s has other columns than this fit logs: it now holds only the epochs from "
                "%d\n",
                path, first);
    int n = h->n_epochs + n_old;
    int *e2 = n_old ? malloc(sizeof(int) * (size_t)n) : NULL;
    double *v2 = n_old ? malloc(sizeof(double) * (size_t)(n * h->n_keys + 1)) : NULL;
    if (e2 && v2) {
        memcpy(e2, epoch, sizeof(int) * (size_t)n_old);
        memcpy(e2 + n_old, h->epoch, sizeof(int) * (size_t)h->n_epochs);
        memcpy(v2, v, sizeof(double) * (size_t)(n_old * h->n_keys));
        memcpy(v2 + n_old * h->n_keys, h->v, sizeof(double) * (size_t)(h->n_epochs * h->n_keys));
        free(h->epoch);
        free(h->v);
        h->epoch = e2;
        h->v = v2;
        h->n_epochs = n;
    } else {
        free(e2);
        free(v2);
    }
    free(epoch);
    free(v);
    free(line);
    fclose(f);
}

int history_write_csv(const cli_history *h, const char *path)
{
    mem_file m;
    if (!mem_open(&m))
        return EXIT_DATA;
    FILE *f = m.f;
    fprintf(f, "epoch");
    for (int k = 0; k < h->n_keys; k++)
        fprintf(f, ",%s", h->keys[k]);
    fputc('\n', f);
    for (int e = 0; e < h->n_epochs; e++) {
        fprintf(f, "%d", h->epoch[e]);
        for (int k = 0; k < h->n_keys; k++)
            fprintf(f, ",%.8g", h->v[e * h->n_keys + k]);
        fputc('\n', f);
    }
    return mem_save(&m, path);
}

#define W      460 /* one panel */
#define H      340
#define LEFT   62
#define RIGHT  16
#define TOP    40
#define BOTTOM 50

typedef struct panel {
    double x0;          /* the panel's left edge in the figure */
    double lo, hi;      /* the y range */
    double first, last; /* the x range, in epochs */
    int epochs;         /* points */
    const int *epoch;   /* their epoch numbers */
} panel;

#define MARKERS_UP_TO 30 /* epochs: longer runs are drawn as lines only */
#define LEGEND_W      112

static double px(const panel *p, double epoch)
{
    return p->x0 + LEFT + (epoch - p->first) / (p->last - p->first) * (W - LEFT - RIGHT);
}

static double py(const panel *p, double v) { return TOP + (p->hi - v) / (p->hi - p->lo) * (H - TOP - BOTTOM); }

/* The smallest step of 1, 2 or 5 times a power of ten that covers `span` in at most
 * `ticks` steps. */
static double nice_step(double span, int ticks)
{
    double raw = span / ticks, power = pow(10, floor(log10(raw)));
    static const double m[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++)
        if (m[i] * power >= raw * (1 - 1e-9))
            return m[i] * power;
    return 10 * power;
}

/* The y range: the values of both series with some room, widened to whole steps of a
 * 1-2-5 tick size (*step); within [0, 1] when `unit` and the values lie there. */
static void range(const double *a, const double *b, int n, bool unit, double *lo, double *hi, double *step)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int s = 0; s < 2; s++) {
            const double *v = s ? b : a;
            if (v && isfinite(v[i])) {
                *lo = fmin(*lo, v[i]);
                *hi = fmax(*hi, v[i]);
            }
        }
    if (!isfinite(*lo)) {
        *lo = 0;
        *hi = 1;
    }
    unit = unit && *lo >= 0 && *hi <= 1;
    bool positive = *lo >= 0; /* a loss: its axis stops at 0 */
    double pad = (*hi - *lo) * 0.05;
    if (pad <= 0) /* one value (one epoch, or a flat curve): a readable range around it */
        pad = fabs(*hi) > 1e-12 ? fabs(*hi) * 0.05 : 0.05;
    *lo -= pad;
    *hi += pad;
    if (positive)
        *lo = fmax(*lo, 0);
    if (unit)
        *hi = fmin(*hi, 1);
    *step = nice_step(*hi - *lo, 5);
    *lo = floor(*lo / *step + 1e-9) * *step;
    *hi = ceil(*hi / *step - 1e-9) * *step;
    if (unit) {
        *lo = fmax(*lo, 0);
        *hi = fmin(*hi, 1);
    }
}

/* A tick value with as many decimals as its step needs ("0.25" never "0.250000001"). */
static void tick_label(char *buf, size_t size, double v, double step)
{
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-6)
        v = 0; /* never "-0" */
    if (fabs(v) >= 1e5 || (fabs(v) > 0 && fabs(v) < 1e-4))
        snprintf(buf, size, "%g", v);
    else
        snprintf(buf, size, "%.*f", decimals, v);
}

static void series(FILE *f, const panel *p, const double *v, const char *color, bool dashed)
{
    if (!v)
        return;
    fprintf(f, "<polyline class='%s' fill='none' stroke='%s' stroke-width='2'%s points='",
            dashed ? "validation" : "training", color, dashed ? " stroke-dasharray='6,4'" : "");
    for (int e = 0; e < p->epochs; e++)
        if (isfinite(v[e]))
            fprintf(f, "%.1f,%.1f ", px(p, p->epoch[e]), py(p, v[e]));
    fprintf(f, "'/>\n");
    for (int e = 0; p->epochs <= MARKERS_UP_TO && e < p->epochs; e++)
        if (isfinite(v[e]))
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n", px(p, p->epoch[e]), py(p, v[e]), color);
}

/* How much of the series passes through the box [x0, x1] x [y0, y1]: the points of each
 * segment, sampled finely, that fall inside. */
static int crossings(const panel *p, const double *v, double x0, double y0, double x1, double y1)
{
    int hits = 0;
    for (int e = 0; v && e < p->epochs; e++) {
        if (!isfinite(v[e]))
            continue;
        double ax = px(p, p->epoch[e]), ay = py(p, v[e]);
        int next = e + 1 < p->epochs && isfinite(v[e + 1]) ? e + 1 : e;
        double bx = px(p, p->epoch[next]), by = py(p, v[next]);
        for (int k = 0; k <= 32; k++) {
            double t = k / 32.0, x = ax + (bx - ax) * t, y = ay + (by - ay) * t;
            hits += x >= x0 - 4 && x <= x1 + 4 && y >= y0 - 4 && y <= y1 + 4;
        }
    }
    return hits;
}

static void draw_panel(FILE *f, const cli_history *h, double x0, const char *title, const char *key)
{
    int n = h->n_epochs;
    char val_key[64], label[48];
    snprintf(val_key, sizeof val_key, "val_%s", key);
    double *train = series_of(h, key), *val = series_of(h, val_key), ystep;
    panel p = {.x0 = x0, .epochs = n, .epoch = h->epoch};
    range(train, val, n, strstr(key, "accuracy") != NULL, &p.lo, &p.hi, &ystep);
    int first = n ? h->epoch[0] : 1, last = n ? h->epoch[n - 1] : 1;
    p.first = first;
    p.last = last;
    if (last == first) { /* one epoch: its point in the middle */
        p.first = first - 1;
        p.last = last + 1;
    }
    double left = x0 + LEFT, right = x0 + W - RIGHT, bottom = H - BOTTOM;
    fprintf(f, "<g class='panel' data-key='%s'>\n", key);
    fprintf(f, "<text x='%.0f' y='24' font-size='16' font-weight='bold' text-anchor='middle'>%s</text>\n",
            x0 + (LEFT + W - RIGHT) / 2.0, title);
    fprintf(f, "<rect x='%.0f' y='%d' width='%.0f' height='%d' fill='none' stroke='#333'/>\n", left, TOP, right - left,
            H - TOP - BOTTOM);
    for (int i = 0; p.lo + i * ystep <= p.hi + ystep * 1e-6; i++) { /* y ticks and grid */
        double v = p.lo + i * ystep, y = py(&p, v);
        tick_label(label, sizeof label, v, ystep);
        fprintf(f, "<line x1='%.0f' y1='%.1f' x2='%.0f' y2='%.1f' stroke='#ddd'/>\n", left, y, right, y);
        fprintf(f, "<text class='ytick' x='%.0f' y='%.1f' font-size='11' text-anchor='end'>%s</text>\n", left - 6,
                y + 4, label);
    }
    /* x ticks: whole epochs on 1-2-5 steps, and the last epoch always, the tick before it
     * dropped when the two would touch */
    int xstep = last > first ? (int)nice_step(last - first, 8) : 1;
    xstep = xstep < 1 ? 1 : xstep;
    double min_gap = 28;
    for (int e = (first + xstep - 1) / xstep * xstep; e <= last; e += xstep) {
        if (e != last && px(&p, last) - px(&p, e) < min_gap)
            continue;
        fprintf(f, "<text class='xtick' x='%.1f' y='%.0f' font-size='11' text-anchor='middle'>%d</text>\n", px(&p, e),
                bottom + 16, e);
    }
    if (last % xstep != 0)
        fprintf(f, "<text class='xtick' x='%.1f' y='%.0f' font-size='11' text-anchor='middle'>%d</text>\n",
                px(&p, last), bottom + 16, last);
    fprintf(f, "<text x='%.0f' y='%d' font-size='13' text-anchor='middle'>epoch</text>\n", (left + right) / 2, H - 12);
    fprintf(f,
            "<text x='%.0f' y='%.0f' font-size='13' text-anchor='middle' transform='rotate(-90 %.0f %.0f)'>%s</text>\n",
            x0 + 16, (TOP + bottom) / 2.0, x0 + 16, (TOP + bottom) / 2.0, key);
    series(f, &p, train, "#1f77b4", false);
    series(f, &p, val, "#ff7f0e", true);
    /* the legend: in the corner (or edge middle) the curves pass least, none when one is clear */
    int lh = val ? 40 : 22;
    double cx[6] = {right - 8 - LEGEND_W, left + 8, right - 8 - LEGEND_W, left + 8, right - 8 - LEGEND_W, left + 8};
    double cy[6] = {
        TOP + 8, TOP + 8, bottom - 8 - lh, bottom - 8 - lh, (TOP + bottom - lh) / 2.0, (TOP + bottom - lh) / 2.0};
    int best = 0, best_hits = -1;
    for (int c = 0; c < 6 && best_hits != 0; c++) {
        int hits = crossings(&p, train, cx[c], cy[c], cx[c] + LEGEND_W, cy[c] + lh) +
                   crossings(&p, val, cx[c], cy[c], cx[c] + LEGEND_W, cy[c] + lh);
        if (best_hits < 0 || hits < best_hits)
            best = c, best_hits = hits;
    }
    double lx = cx[best] + 6, ly = cy[best] + 12;
    fprintf(f,
            "<rect class='legend' x='%.0f' y='%.0f' width='%d' height='%d' fill='white' fill-opacity='0.9' "
            "stroke='#999'/>\n",
            cx[best], cy[best], LEGEND_W, lh);
    fprintf(f,
            "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='#1f77b4' stroke-width='2'/>"
            "<text x='%.0f' y='%.0f' font-size='12'>training</text>\n",
            lx, ly - 4, lx + 24, ly - 4, lx + 30, ly);
    if (val)
        fprintf(f,
                "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='#ff7f0e' stroke-width='2' "
                "stroke-dasharray='6,4'/><text x='%.0f' y='%.0f' font-size='12'>validation</text>\n",
                lx, ly + 14, lx + 24, ly + 14, lx + 30, ly + 18);
    fprintf(f, "</g>\n");
    free(train);
    free(val);
}

int history_write_svg(const cli_history *h, const char *path, const char *title, const char *metric,
                      const char *metric_title)
{
    mem_file m;
    if (!mem_open(&m))
        return EXIT_DATA;
    FILE *f = m.f;
    fprintf(f,
            "<?xml version='1.0' encoding='UTF-8'?>\n"
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-family='sans-serif'>\n"
            "<rect width='100%%' height='100%%' fill='white'/>\n<title>%s</title>\n",
            2 * W, H, title);
    draw_panel(f, h, 0, "Loss", "loss");
    draw_panel(f, h, W, metric_title, metric);
    fprintf(f, "</svg>\n");
    return mem_save(&m, path);
}
