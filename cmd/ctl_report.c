/* ctl_report.c: `lossctl report JOB [-o FILE]`: one self-contained HTML page of a job (inline
 * SVG and CSS, no script, nothing fetched): the best fitness over evaluations, the Pareto front
 * of fitness against size, the learning curves of the top entries against the baseline, the
 * leaderboard and the final paired test of the re-evaluated leaders against the baseline. */
#include "ctl_report.h"

#include "../storage/store.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_TOP 20    /* leaderboard rows in the table */
#define REPORT_CURVES 5  /* learning curves drawn besides the baseline's */
#define REPORT_DETAIL 40 /* candidates whose evaluations are fetched (curves, final test) */
#define PARETO_FLOOR -0.2 /* the Pareto plot's lowest fitness shown (20% worse than the baseline) */

/* ---- small output helpers ------------------------------------------------------------------ */

/* Writes s with &, <, >, " escaped. */
static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A number for people: 4 significant digits, "-" for NaN. */
static const char *num(char *buf, size_t n, double v) {
    if (isnan(v)) snprintf(buf, n, "-");
    else snprintf(buf, n, "%.4g", v);
    return buf;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* ---- SVG plots ----------------------------------------------------------------------------- */

typedef struct Plot {
    FILE *f;
    double x0, x1, y0, y1; /* data ranges */
    int w, h, l, r, t, b;  /* size and margins, pixels */
} Plot;

static double px(const Plot *p, double x) {
    return p->l + (x - p->x0) / (p->x1 - p->x0) * (p->w - p->l - p->r);
}
static double py(const Plot *p, double y) {
    return p->h - p->b - (y - p->y0) / (p->y1 - p->y0) * (p->h - p->t - p->b);
}

/* A "nice" tick step for a range: 1, 2 or 5 times a power of ten, about n ticks. */
static double tick_step(double span, int n) {
    double raw = span / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* Widens [lo, hi] a little (and a degenerate range to a unit one). */
static void pad_range(double *lo, double *hi, double frac) {
    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = 0;
        *hi = 1;
    }
    if (*hi - *lo < 1e-12) {
        double c = *lo;
        *lo = c - (fabs(c) > 0 ? fabs(c) * 0.1 : 0.5);
        *hi = c + (fabs(c) > 0 ? fabs(c) * 0.1 : 0.5);
    }
    double d = (*hi - *lo) * frac;
    *lo -= d;
    *hi += d;
}

/* Opens an SVG with axes, ticks, grid and axis titles. cls names the plot for tests and CSS. */
static void plot_begin(Plot *p, const char *cls, const char *title, const char *xlabel,
                       const char *ylabel) {
    FILE *f = p->f;
    char b[32];
    fprintf(f, "<figure><figcaption>");
    esc(f, title);
    fprintf(f, "</figcaption>\n<svg class=\"plot %s\" xmlns=\"http://www.w3.org/2000/svg\" "
               "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
            cls, p->w, p->h, p->w, p->h);
    double xs = tick_step(p->x1 - p->x0, 6), ys = tick_step(p->y1 - p->y0, 5);
    for (double x = ceil(p->x0 / xs) * xs; x <= p->x1 + 1e-9 * xs; x += xs) {
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", px(p, x), p->t,
                px(p, x), p->h - p->b);
        fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", px(p, x),
                p->h - p->b + 14, num(b, sizeof b, fabs(x) < xs * 1e-6 ? 0 : x));
    }
    for (double y = ceil(p->y0 / ys) * ys; y <= p->y1 + 1e-9 * ys; y += ys) {
        fprintf(f, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", p->l, py(p, y),
                p->w - p->r, py(p, y));
        fprintf(f, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", p->l - 4,
                py(p, y) + 4, num(b, sizeof b, fabs(y) < ys * 1e-6 ? 0 : y));
    }
    fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", p->l, p->t,
            p->w - p->l - p->r, p->h - p->t - p->b);
    fprintf(f, "<text class=\"axis\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (p->l + p->w - p->r) / 2,
            p->h - 4);
    esc(f, xlabel);
    fprintf(f, "</text><text class=\"axis\" transform=\"translate(12,%d) rotate(-90)\" "
               "text-anchor=\"middle\">", (p->t + p->h - p->b) / 2);
    esc(f, ylabel);
    fprintf(f, "</text>\n");
}

static void plot_end(Plot *p) { fprintf(p->f, "</svg></figure>\n"); }

/* A polyline through n points; style is a class name. A step line when step is set. */
static void plot_line(Plot *p, const double *x, const double *y, int n, const char *cls, int step,
                      const char *title) {
    if (n <= 0) return;
    fprintf(p->f, "<polyline class=\"%s\" points=\"", cls);
    for (int i = 0; i < n; i++) {
        if (step && i > 0) fprintf(p->f, "%.1f,%.1f ", px(p, x[i]), py(p, y[i - 1]));
        fprintf(p->f, "%.1f,%.1f ", px(p, x[i]), py(p, y[i]));
    }
    fprintf(p->f, "\"><title>");
    esc(p->f, title);
    fprintf(p->f, "</title></polyline>\n");
}

static void plot_dot(Plot *p, double x, double y, const char *cls, const char *title) {
    fprintf(p->f, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"><title>", cls, px(p, x), py(p, y));
    esc(p->f, title);
    fprintf(p->f, "</title></circle>\n");
}

/* ---- data ---------------------------------------------------------------------------------- */

typedef struct Report {
    Ctl *ctl;
    int64_t job;
    cJSON *info;    /* job.get result, owned */
    cJSON *board;   /* leaderboard.query k=1000, owned */
    cJSON *detail;  /* array of candidate.get results (top entries and the baseline), owned */
    cJSON *rounds;  /* array of job.round event data, owned */
    const char *metric; /* the first selection task's metric */
    const char *task;   /* its name */
} Report;

/* Whether lower values of task's metric are better, as the leaderboard reply says (each
 * entry's tasks carry their metric's direction: store_leaderboard); higher when it does not. */
static int lower_better(const Report *r, const char *task) {
    const cJSON *e, *t;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r->board, "entries")) {
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(e, "tasks")) {
            const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "task"));
            const cJSON *hb = cJSON_GetObjectItemCaseSensitive(t, "higher_better");
            if (nm && task && !strcmp(nm, task) && cJSON_IsBool(hb)) return cJSON_IsFalse(hb);
        }
    }
    return 0;
}

/* candidate.get of cand, or NULL (quietly: a report without one curve is still a report). */
static cJSON *get_candidate(Report *r, int64_t cand) {
    cJSON *p = cJSON_CreateObject(), *res = NULL;
    cJSON_AddNumberToObject(p, "job_id", (double)r->job);
    cJSON_AddNumberToObject(p, "cand", (double)cand);
    char err[LD_ERR_MAX];
    if (client_call(r->ctl->client, "candidate.get", p, &res, NULL, err) != LD_OK) return NULL;
    return res;
}

/* The job's job.round events from the stored backlog, in order (data objects). Reads the
 * backlog on a connection of its own, up to the last seq the subscription reports. */
static cJSON *get_rounds(Report *r) {
    cJSON *out = cJSON_CreateArray(), *res = NULL, *p = cJSON_CreateObject();
    Client *c = NULL;
    char err[LD_ERR_MAX];
    if (!out || !p) goto done;
    if (client_connect(r->ctl->socket_path, &c, err) != LD_OK) goto done;
    cJSON_AddNumberToObject(p, "since", 0);
    if (client_call(c, "events.subscribe", p, &res, NULL, err) != LD_OK) {
        p = NULL;
        goto done;
    }
    p = NULL;
    double last = jnum(res, "last_seq");
    for (;;) {
        cJSON *msg = NULL;
        if (isnan(last) || client_next(c, 5000, &msg, err) != LD_OK || !msg) break;
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(msg, "params");
        double seq = jnum(ev, "seq");
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "kind"));
        if (kind && strcmp(kind, "job.round") == 0 && jnum(ev, "job_id") == (double)r->job) {
            cJSON *d = cJSON_GetObjectItemCaseSensitive(ev, "data");
            if (d) cJSON_AddItemToArray(out, cJSON_Duplicate(d, 1));
        }
        cJSON_Delete(msg);
        if (!(seq < last)) break;
    }
done:
    cJSON_Delete(p);
    cJSON_Delete(res);
    client_close(c);
    return out;
}

/* The evaluation of cand's detail with the most steps on the report's task (lowest seq among
 * them): the run whose curve is drawn. Borrows cand. */
static const cJSON *curve_eval(const Report *r, const cJSON *cand) {
    const cJSON *best = NULL, *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(cand, "evaluations")) {
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "task_name"));
        const cJSON *curve = cJSON_GetObjectItemCaseSensitive(e, "curve");
        if (!t || strcmp(t, r->task) != 0 || cJSON_GetArraySize(curve) < 2) continue;
        if (!best || jnum(e, "steps") > jnum(best, "steps")) best = e;
    }
    return best;
}

/* ---- sections ------------------------------------------------------------------------------ */

static void section_fitness(Report *r, FILE *f) {
    int n = cJSON_GetArraySize(r->rounds), k = 0;
    double *x = calloc((size_t)n + 1, sizeof *x), *y = calloc((size_t)n + 1, sizeof *y);
    const cJSON *d;
    if (!x || !y) goto done;
    cJSON_ArrayForEach(d, r->rounds) {
        double ev = jnum(d, "evaluations"), bf = jnum(d, "best_fitness");
        if (isfinite(ev) && isfinite(bf)) {
            x[k] = ev;
            y[k++] = bf;
        }
    }
    fprintf(f, "<h2>Fitness over evaluations</h2>\n");
    if (k == 0) {
        fprintf(f, "<p class=\"note\">No round events are stored for this job (they may have been "
                   "trimmed); the leaderboard below has every candidate's fitness.</p>\n");
        goto done;
    }
    double y0 = y[0], y1 = y[0];
    for (int i = 0; i < k; i++) {
        y0 = fmin(y0, y[i]);
        y1 = fmax(y1, y[i]);
    }
    /* The baseline's fitness is 0 by definition: keep it in view as the reference. */
    y0 = fmin(y0, 0);
    y1 = fmax(y1, 0);
    pad_range(&y0, &y1, 0.08);
    double x1 = x[k - 1] > 0 ? x[k - 1] : 1;
    Plot p = {f, 0, x1, y0, y1, 640, 300, 64, 16, 12, 40};
    plot_begin(&p, "fitness", "The best fitness after each round (0 is the baseline)",
               "evaluations", "best fitness");
    double bx[2] = {0, x1}, by[2] = {0, 0};
    plot_line(&p, bx, by, 2, "baseline", 0, "the baseline (fitness 0)");
    plot_line(&p, x, y, k, "best", 1, "best fitness so far");
    char t[96], b1[32], b2[32];
    for (int i = 0; i < k; i++) {
        snprintf(t, sizeof t, "after %s evaluations: %s", num(b1, sizeof b1, x[i]), num(b2, sizeof b2, y[i]));
        plot_dot(&p, x[i], y[i], "round", t);
    }
    plot_end(&p);
done:
    free(x);
    free(y);
}

static void section_pareto(Report *r, FILE *f) {
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(r->board, "entries"), *e;
    int n = cJSON_GetArraySize(entries);
    fprintf(f, "<h2>Pareto front: fitness against size</h2>\n");
    if (n == 0) {
        fprintf(f, "<p class=\"note\">No candidate has been scored yet.</p>\n");
        return;
    }
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    cJSON_ArrayForEach(e, entries) {
        double s = jnum(e, "size"), fit = jnum(e, "fitness");
        if (!isfinite(s) || !isfinite(fit)) continue;
        x0 = fmin(x0, s);
        x1 = fmax(x1, s);
        y0 = fmin(y0, fit);
        y1 = fmax(y1, fit);
    }
    /* Candidates far below the baseline (a failed run scores -1) would squash the front into a
     * line: below PARETO_FLOOR they sit on the bottom edge, their true fitness in the tooltip. */
    int clip = y0 < PARETO_FLOOR && y1 > PARETO_FLOOR;
    if (clip) y0 = PARETO_FLOOR;
    pad_range(&x0, &x1, 0.05);
    pad_range(&y0, &y1, 0.08);
    if (x0 < 0) x0 = 0;
    Plot p = {f, x0, x1, y0, y1, 640, 320, 64, 16, 12, 40};
    plot_begin(&p, "pareto", "Every scored candidate; the front holds those no smaller one beats",
               "size (expression nodes)", "fitness");
    /* Front: sorted by size, the running best fitness strictly improving. */
    int *ord = malloc(sizeof *ord * (size_t)n);
    const cJSON **ent = malloc(sizeof *ent * (size_t)n);
    double *fx = malloc(sizeof *fx * (size_t)n), *fy = malloc(sizeof *fy * (size_t)n);
    int m = 0, nf = 0;
    if (ord && ent && fx && fy) {
        cJSON_ArrayForEach(e, entries) if (isfinite(jnum(e, "size")) && isfinite(jnum(e, "fitness"))) {
            ent[m] = e;
            ord[m] = m;
            m++;
        }
        /* insertion sort by (size, -fitness): n <= 1000 */
        for (int i = 1; i < m; i++) {
            int v = ord[i], j = i;
            while (j > 0 && (jnum(ent[ord[j - 1]], "size") > jnum(ent[v], "size") ||
                             (jnum(ent[ord[j - 1]], "size") == jnum(ent[v], "size") &&
                              jnum(ent[ord[j - 1]], "fitness") < jnum(ent[v], "fitness")))) {
                ord[j] = ord[j - 1];
                j--;
            }
            ord[j] = v;
        }
        double best = -INFINITY;
        for (int i = 0; i < m; i++) {
            double fit = jnum(ent[ord[i]], "fitness");
            if (fit > best) {
                best = fit;
                fx[nf] = jnum(ent[ord[i]], "size");
                fy[nf++] = fit;
            }
        }
        plot_line(&p, fx, fy, nf, "front", 1, "the Pareto front");
    }
    char t[600], b1[32];
    for (int i = 0; i < m; i++) {
        const cJSON *c = ent[i];
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "op"));
        int base = op && strcmp(op, "baseline") == 0;
        snprintf(t, sizeof t, "%.0f:%.0f %s  fitness %s  size %.0f", (double)r->job, jnum(c, "cand"),
                 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "expr")), num(b1, sizeof b1, jnum(c, "fitness")),
                 jnum(c, "size"));
        double fit = jnum(c, "fitness");
        plot_dot(&p, jnum(c, "size"), clip && fit < PARETO_FLOOR ? y0 : fit,
                 base ? "cand base" : clip && fit < PARETO_FLOOR ? "cand low" : "cand", t);
    }
    plot_end(&p);
    if (clip)
        fprintf(f, "<p class=\"note\">Candidates with fitness below %g sit on the bottom edge.</p>\n",
                PARETO_FLOOR);
    free(ord);
    free(ent);
    free(fx);
    free(fy);
}

static void section_curves(Report *r, FILE *f) {
    const cJSON *c;
    const cJSON *runs[REPORT_CURVES + 1];
    const cJSON *cands[REPORT_CURVES + 1];
    int n = 0, have_base = 0;
    fprintf(f, "<h2>Learning curves: the top entries against the baseline</h2>\n");
    /* The baseline first, then the best-ranked others (detail is in leaderboard order). */
    cJSON_ArrayForEach(c, r->detail) {
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "op"));
        if (op && strcmp(op, "baseline") == 0 && !have_base) {
            const cJSON *e = curve_eval(r, c);
            if (e) {
                memmove(runs + 1, runs, sizeof *runs * (size_t)n);
                memmove(cands + 1, cands, sizeof *cands * (size_t)n);
                runs[0] = e;
                cands[0] = c;
                n++;
                have_base = 1;
            }
        } else if (n - have_base < REPORT_CURVES) {
            const cJSON *e = curve_eval(r, c);
            if (e) {
                runs[n] = e;
                cands[n++] = c;
            }
        }
    }
    if (n == 0) {
        fprintf(f, "<p class=\"note\">No stored learning curve.</p>\n");
        return;
    }
    double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        const cJSON *pt;
        cJSON_ArrayForEach(pt, cJSON_GetObjectItemCaseSensitive(runs[i], "curve")) {
            double s = cJSON_GetArrayItem(pt, 0) ? cJSON_GetArrayItem(pt, 0)->valuedouble : NAN;
            double v = cJSON_GetArrayItem(pt, 2) ? cJSON_GetArrayItem(pt, 2)->valuedouble : NAN;
            if (!isfinite(s) || !isfinite(v)) continue;
            x1 = fmax(x1, s);
            y0 = fmin(y0, v);
            y1 = fmax(y1, v);
        }
    }
    pad_range(&y0, &y1, 0.05);
    char ylabel[96], title[160];
    snprintf(ylabel, sizeof ylabel, "validation %s", r->metric);
    snprintf(title, sizeof title, "Validation %s on %s during training (%s is better)", r->metric, r->task,
             lower_better(r, r->task) ? "lower" : "higher");
    Plot p = {f, x0, x1, y0, y1, 640, 320, 64, 16, 12, 40};
    plot_begin(&p, "curves", title, "training step", ylabel);
    for (int i = 0; i < n; i++) {
        const cJSON *curve = cJSON_GetObjectItemCaseSensitive(runs[i], "curve"), *pt;
        int m = cJSON_GetArraySize(curve), k = 0;
        double *xs = malloc(sizeof *xs * (size_t)(m + 1)), *ys = malloc(sizeof *ys * (size_t)(m + 1));
        if (xs && ys) {
            cJSON_ArrayForEach(pt, curve) {
                const cJSON *a = cJSON_GetArrayItem(pt, 0), *v = cJSON_GetArrayItem(pt, 2);
                if (cJSON_IsNumber(a) && cJSON_IsNumber(v)) {
                    xs[k] = a->valuedouble;
                    ys[k++] = v->valuedouble;
                }
            }
            const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cands[i], "op"));
            int base = op && strcmp(op, "baseline") == 0;
            char cls[32], t[600];
            snprintf(cls, sizeof cls, base ? "curve base" : "curve c%d", i - have_base);
            snprintf(t, sizeof t, "%.0f:%.0f %s (seed %s, %.0f steps)", (double)r->job, jnum(cands[i], "cand"),
                     cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cands[i], "expr")),
                     cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(runs[i], "seed"))
                         ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(runs[i], "seed"))
                         : "?",
                     jnum(runs[i], "steps"));
            plot_line(&p, xs, ys, k, cls, 0, t);
        }
        free(xs);
        free(ys);
    }
    plot_end(&p);
    fprintf(f, "<ul class=\"legend\">\n");
    for (int i = 0; i < n; i++) {
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cands[i], "op"));
        int base = op && strcmp(op, "baseline") == 0;
        fprintf(f, "<li><span class=\"swatch %s%d\"></span>%.0f:%.0f <code>", base ? "base" : "c",
                base ? 0 : i - have_base, (double)r->job, jnum(cands[i], "cand"));
        esc(f, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cands[i], "expr")));
        fprintf(f, "</code>%s</li>\n", base ? " (baseline)" : "");
    }
    fprintf(f, "</ul>\n");
}

static void section_table(Report *r, FILE *f) {
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(r->board, "entries"), *e;
    char b1[32], b2[32], b3[32];
    int i = 0;
    fprintf(f, "<h2>Leaderboard</h2>\n<table class=\"leaderboard\">\n<tr><th>rank</th><th>candidate</th>"
               "<th>fitness</th><th>mean %s</th><th>spread</th><th>size</th><th>made by</th>"
               "<th>expression</th></tr>\n", r->metric);
    cJSON_ArrayForEach(e, entries) {
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "op"));
        int base = op && strcmp(op, "baseline") == 0;
        if (i++ >= REPORT_TOP && !base) continue;
        char rank[16] = "-"; /* the baseline's row apart has none when it is not ranked */
        if (isfinite(jnum(e, "rank"))) snprintf(rank, sizeof rank, "%.0f", jnum(e, "rank"));
        fprintf(f, "<tr%s><td>%s</td><td>%.0f:%.0f</td><td class=\"num\">%s</td><td class=\"num\">%s</td>"
                   "<td class=\"num\">%s</td><td class=\"num\">%.0f</td><td>",
                base ? " class=\"base\"" : "", rank, (double)r->job, jnum(e, "cand"),
                num(b1, sizeof b1, jnum(e, "fitness")), num(b2, sizeof b2, jnum(e, "mean")),
                num(b3, sizeof b3, jnum(e, "spread")), jnum(e, "size"));
        esc(f, op ? op : "");
        fprintf(f, "</td><td><code>");
        esc(f, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "expr")));
        fprintf(f, "</code></td></tr>\n");
    }
    fprintf(f, "</table>\n");
}

/* Which tasks the final test counts (the holdout ones when the job has them, else the
 * selection ones; never the runs at the user's horizon) and their metric's direction, for
 * store_paired_test. */
typedef struct PairCtx {
    Report *r;
    int holdout_only;
} PairCtx;

static int pair_keep(void *ctx, const char *task, int *lower) {
    PairCtx *pc = ctx;
    int is_hold = 0;
    const cJSON *tk;
    size_t tl = strlen(task);
    if (tl > 8 && !strcmp(task + tl - 8, "@horizon")) return 0; /* the user's recipe: section_horizon */
    cJSON_ArrayForEach(tk, cJSON_GetObjectItemCaseSensitive(pc->r->info, "tasks")) {
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tk, "name"));
        if (nm && strcmp(nm, task) == 0) is_hold = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tk, "holdout"));
    }
    *lower = lower_better(pc->r, task);
    return pc->holdout_only == is_hold;
}

/* One row of the final paired test of cand against the baseline (store_paired_test's numbers:
 * the leaderboard's semantics, storage/leaderboard.c). Returns 1 when there was anything to
 * pair. */
static int paired_row(Report *r, FILE *f, const cJSON *cand, const cJSON *base, int holdout_only) {
    PairCtx pc = {r, holdout_only};
    StorePaired sp;
    if (!store_paired_test(cJSON_GetObjectItemCaseSensitive(cand, "evaluations"),
                           cJSON_GetObjectItemCaseSensitive(base, "evaluations"), pair_keep, &pc, &sp))
        return 0;
    char b1[32], b2[32], b3[32];
    fprintf(f, "<tr><td>%.0f:%.0f</td><td><code>", (double)r->job, jnum(cand, "cand"));
    esc(f, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cand, "expr")));
    fprintf(f, "</code></td><td class=\"num\">%d</td><td class=\"num diff\">%+.4g</td><td class=\"num\">%s</td>"
               "<td class=\"num\">%s</td><td class=\"num\">%d / %d / %d</td><td class=\"num\">%s</td></tr>\n",
            sp.n, sp.mean, num(b1, sizeof b1, sp.sd), sp.n > 1 ? num(b2, sizeof b2, sp.t) : "-", sp.wins,
            sp.losses, sp.ties, num(b3, sizeof b3, sp.p));
    return 1;
}

static void section_final(Report *r, FILE *f) {
    const cJSON *c, *base = NULL;
    int holdout = 0;
    const cJSON *tk;
    cJSON_ArrayForEach(tk, cJSON_GetObjectItemCaseSensitive(r->info, "tasks"))
        holdout |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tk, "holdout"));
    cJSON_ArrayForEach(c, r->detail) {
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "op"));
        if (op && strcmp(op, "baseline") == 0) base = c;
    }
    fprintf(f, "<h2>Final paired test against the baseline</h2>\n");
    if (!base) {
        fprintf(f, "<p class=\"note\">The baseline has no stored evaluation.</p>\n");
        return;
    }
    fprintf(f, "<p>Test-split %s of each re-evaluated leader minus the baseline's, paired by task, seed "
               "and steps (%s; positive: the candidate is better). t is the paired t statistic, p the "
               "exact two-sided sign test over wins and losses.</p>\n",
            r->metric, holdout ? "on the holdout tasks" : "on the selection tasks");
    fprintf(f, "<table class=\"final\">\n<tr><th>candidate</th><th>expression</th><th>pairs</th>"
               "<th>mean difference</th><th>sd</th><th>t</th><th>wins / losses / ties</th><th>p</th></tr>\n");
    int rows = 0, shown = 0;
    cJSON_ArrayForEach(c, r->detail) {
        if (c == base || shown >= REPORT_CURVES * 2) continue;
        /* Only leaders with more than one paired run were re-evaluated. */
        int k = paired_row(r, f, c, base, holdout);
        rows += k;
        shown += k;
    }
    fprintf(f, "</table>\n");
    if (!rows) fprintf(f, "<p class=\"note\">No candidate shares task, seed and steps with the baseline yet.</p>\n");
}

/* The final checks at the user's horizon (final.horizon): each re-evaluated leader's gain over
 * the baseline at the search's recipe and at the user's, side by side with their intervals and
 * the store's label (store_final_gains). */
static void section_horizon(Report *r, FILE *f) {
    const cJSON *c;
    int rows = 0;
    char b1[64], b2[64], recipe[160] = "";
    cJSON_ArrayForEach(c, r->detail) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(c, "gains");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(g, "horizon");
        if (!cJSON_IsObject(h)) continue;
        if (!rows++) {
            fprintf(f, "<h2>At your recipe</h2>\n<p>Relative test gain of each re-evaluated leader over the "
                       "baseline, mean and 95%% interval over fresh seeds paired with the baseline's: at the "
                       "search's recipe and at yours (<code>final.horizon</code>). <em>vanishes</em>: a gain at "
                       "the search's recipe that is within noise at yours; <em>reverses</em>: worse at yours.</p>\n"
                       "<table class=\"horizon\">\n<tr><th>candidate</th><th>expression</th><th>search recipe</th>"
                       "<th>your recipe</th><th>at your recipe</th></tr>\n");
        }
        if (!recipe[0]) ctl_fmt_recipe(recipe, sizeof recipe, h);
        fprintf(f, "<tr><td>%lld:%.0f</td><td><code>", (long long)r->job, jnum(c, "cand"));
        esc(f, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "expr")));
        const char *label = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(g, "label"));
        fprintf(f, "</code></td><td class=\"num\">%s</td><td class=\"num\">%s</td><td class=\"label\">",
                ctl_fmt_gain(b1, sizeof b1, cJSON_GetObjectItemCaseSensitive(g, "search")),
                ctl_fmt_gain(b2, sizeof b2, h));
        esc(f, label ? label : "?");
        fprintf(f, "</td></tr>\n");
    }
    if (!rows) return;
    fprintf(f, "</table>\n");
    if (recipe[0]) {
        fprintf(f, "<p class=\"note\">Your recipe: ");
        esc(f, recipe);
        fprintf(f, ".</p>\n");
    }
}

static const char *const css =
    "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222;padding:0 1em}"
    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #eee;"
    "text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.base{background:#f4f4f4}"
    "code{font-size:12px}figure{margin:0}figcaption{color:#555;font-size:12px}"
    ".grid{stroke:#eee}.frame{fill:none;stroke:#999}.tick{font-size:10px;fill:#555}.axis{font-size:11px;"
    "fill:#333}polyline{fill:none;stroke-width:2}.best{stroke:#1f77b4}.baseline{stroke:#999;"
    "stroke-dasharray:4 3;stroke-width:1}.round{fill:#1f77b4}.front{stroke:#d62728;stroke-width:1.5}"
    ".cand{fill:#1f77b4;fill-opacity:.55}.cand.low{fill:#aaa}.cand.base{fill:#222;fill-opacity:1}.curve.base{stroke:#222;"
    "stroke-dasharray:5 3}.c0{stroke:#1f77b4}.c1{stroke:#ff7f0e}.c2{stroke:#2ca02c}.c3{stroke:#d62728}"
    ".c4{stroke:#9467bd}.legend{list-style:none;padding:0}.swatch{display:inline-block;width:18px;"
    "height:3px;margin-right:6px;vertical-align:middle}.swatch.base0{background:#222}"
    ".swatch.c0{background:#1f77b4}.swatch.c1{background:#ff7f0e}.swatch.c2{background:#2ca02c}"
    ".swatch.c3{background:#d62728}.swatch.c4{background:#9467bd}.note{color:#777}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#555}dd{margin:0}";

static void write_html(Report *r, FILE *f) {
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(r->info, "progress");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r->info, "stats");
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->info, "name"));
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->info, "state"));
    const char *best = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pr, "best_expr"));
    const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->info, "error"));
    char b1[32];
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<meta name=\"generator\" content=\"lossctl report\">\n<title>lossd job %lld: ",
            (long long)r->job);
    esc(f, name ? name : "");
    fprintf(f, "</title>\n<style>%s</style></head><body>\n<h1>lossd job %lld: ", css, (long long)r->job);
    esc(f, name ? name : "");
    fprintf(f, "</h1>\n<dl class=\"summary\">\n<dt>state</dt><dd id=\"state\">");
    esc(f, state ? state : "?");
    if (err) {
        fprintf(f, ": ");
        esc(f, err);
    }
    fprintf(f, "</dd>\n<dt>evaluations</dt><dd id=\"evaluations\">%.0f of a budget of %.0f",
            jnum(pr, "evaluations"), jnum(pr, "budget"));
    if (jnum(st, "final_evaluations") > 0) fprintf(f, " (%.0f of them final re-evaluations)", jnum(st, "final_evaluations"));
    fprintf(f, "</dd>\n<dt>best</dt><dd id=\"best\">fitness %s <code>", num(b1, sizeof b1, jnum(pr, "best_fitness")));
    esc(f, best ? best : "-");
    fprintf(f, "</code></dd>\n<dt>task</dt><dd>");
    esc(f, r->task);
    fprintf(f, " (selection metric ");
    esc(f, r->metric);
    fprintf(f, ")</dd>\n<dt>elapsed</dt><dd>%s s</dd>\n", num(b1, sizeof b1, jnum(pr, "elapsed_s")));
    if (st)
        fprintf(f, "<dt>never trained</dt><dd>%.0f cache hits, %.0f gradient-signature hits, %.0f rejections, "
                   "%.0f candidates in all</dd>\n",
                jnum(st, "cache_hits"), jnum(st, "signature_hits"), jnum(st, "rejections"), jnum(st, "candidates"));
    fprintf(f, "</dl>\n");
    section_fitness(r, f);
    section_pareto(r, f);
    section_curves(r, f);
    section_table(r, f);
    section_final(r, f);
    section_horizon(r, f);
    fprintf(f, "<p class=\"note\">Written by lossctl report from the daemon's store; self-contained (no "
               "script, nothing fetched).</p>\n</body></html>\n");
}

/* ---- the command --------------------------------------------------------------------------- */

const CtlOpt ctl_report_opts[] = {
    {"-o", "--output", "FILE.html",
     "where to write it (default lossd-report-JOB.html; '-' for stdout;\n--output is the same)"},
    {0}};

int ctl_report_main(Ctl *ctl, int argc, char **argv) {
    Report r = {.ctl = ctl, .metric = "metric", .task = "?"};
    const char *out = NULL;
    char path[64];
    int status = 0;
    FILE *f = NULL;
    CtlArgs a;
    if (ctl_parse("report", ctl_report_opts, argc, argv, 1, NULL, NULL, &a) != 0) return 2;
    if (a.npos != 1 || ctl_parse_id(a.pos[0], &r.job) != 0)
        return ctl_fail(2, "usage: lossctl report %s", CTL_REPORT_USAGE);
    out = ctl_opt(&a, "-o");
    cJSON *p = cJSON_CreateObject();
    char what[48];
    snprintf(what, sizeof what, "job %lld", (long long)r.job);
    cJSON_AddNumberToObject(p, "job_id", (double)r.job);
    if ((status = ctl_call(ctl, "job.get", p, what, &r.info))) goto done;
    p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "job_id", (double)r.job);
    cJSON_AddNumberToObject(p, "k", 1000);
    if ((status = ctl_call(ctl, "leaderboard.query", p, what, &r.board))) goto done;
    /* the baseline's row, when it ranks below the first 1000 or not at all, joins the table */
    cJSON *brow = cJSON_DetachItemFromObjectCaseSensitive(r.board, "baseline");
    if (brow) cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(r.board, "entries"), brow);
    /* The first selection task names the metric and the curves' task. */
    const cJSON *tk;
    cJSON_ArrayForEach(tk, cJSON_GetObjectItemCaseSensitive(r.info, "tasks")) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tk, "holdout"))) continue;
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tk, "metric"));
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tk, "name"));
        if (m) r.metric = m;
        if (n) r.task = n;
        break;
    }
    /* Evaluations of the leaders (leaderboard order) and of the baseline. */
    r.detail = cJSON_CreateArray();
    int k = 0, have_base = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r.board, "entries")) {
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "op"));
        int base = op && strcmp(op, "baseline") == 0;
        if (k >= REPORT_DETAIL && !base) continue;
        cJSON *c = get_candidate(&r, (int64_t)jnum(e, "cand"));
        if (c) cJSON_AddItemToArray(r.detail, c);
        have_base |= base;
        k++;
    }
    if (!have_base) {
        cJSON *c = get_candidate(&r, 0); /* the baseline is candidate 0 */
        if (c) cJSON_AddItemToArray(r.detail, c);
    }
    r.rounds = get_rounds(&r);
    if (!out) {
        snprintf(path, sizeof path, "lossd-report-%lld.html", (long long)r.job);
        out = path;
    }
    f = strcmp(out, "-") == 0 ? stdout : fopen(out, "w");
    if (!f) {
        status = ctl_fail(1, "report: %s: %s", out, strerror(errno));
        goto done;
    }
    write_html(&r, f);
    if (f != stdout && fclose(f) != 0) status = ctl_fail(1, "report: %s: %s", out, strerror(errno));
    else if (f == stdout) fflush(stdout);
    if (!status && f != stdout) printf("%s\n", out);
done:
    cJSON_Delete(r.info);
    cJSON_Delete(r.board);
    cJSON_Delete(r.detail);
    cJSON_Delete(r.rounds);
    return status;
}
