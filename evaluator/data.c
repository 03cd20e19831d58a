/* data.c: data sets: the CSV and .npy readers, class-id mapping, the seeded split, the
 * training-split transforms (imbalance, label noise, outliers, subsample) and standardisation. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_CLASSES 1000

void table_free(Table *t) {
    if (!t) return;
    free(t->x);
    free(t->y);
    memset(t, 0, sizeof *t);
}

void dataset_free(Dataset *d) {
    if (!d) return;
    free(d->x);
    free(d->label);
    free(d->y);
    memset(d, 0, sizeof *d);
}

/* ---- CSV ---------------------------------------------------------------------------------- */

/* Splits line (modified in place) at commas into fields; strips spaces and one pair of double
 * quotes. Returns the number of fields, or more than max when the row is longer. */
static int split_fields(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *end = strchr(p, ',');
        if (end) *end = 0;
        while (*p == ' ' || *p == '\t') p++;
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r')) p[--len] = 0;
        if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
            p[len - 1] = 0;
            p++;
        }
        if (n < max) fields[n] = p;
        n++;
        if (!end) break;
        p = end + 1;
    }
    return n;
}

static char *next_line(char **cur, int *lineno) {
    char *p = *cur;
    if (!p) return NULL;
    char *nl = strchr(p, '\n');
    if (nl) {
        *nl = 0;
        *cur = nl + 1;
    } else {
        *cur = NULL;
        if (!*p) return NULL;
    }
    (*lineno)++;
    return p;
}

static int is_blank(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    return *s == 0;
}

static int parse_float(const char *s, float *out) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != 0 || !isfinite(v)) return -1;
    *out = (float)v;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int data_read_csv(const char *path, const char *label, int classify, Table *out, char *err) {
    int rc = LD_OK;
    size_t len = 0;
    char *buf = NULL, **fields = NULL, **names = NULL, **labstr = NULL, **uniq = NULL;
    int *rowline = NULL;
    char *hdr_copy = NULL;
    memset(out, 0, sizeof *out);
    buf = ld_read_file(path, &len, err);
    if (!buf) return LD_EIO;

    /* Count lines (upper bound on rows) and find the header. */
    int nlines = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\n') nlines++;
    nlines++;
    /* Lines are cut in place; next_line returns NULL at the end and counts line numbers. */
    char *cur = buf;
    int lineno = 0;
    char *line = next_line(&cur, &lineno);
    while (line && is_blank(line)) line = next_line(&cur, &lineno);
    if (!line) {
        rc = ld_err(err, LD_EINVAL, "%s: empty file: expected a header row and data rows", path);
        goto done;
    }
    /* Header. */
    int ncol = 1;
    for (const char *c = line; *c; c++)
        if (*c == ',') ncol++;
    fields = calloc((size_t)ncol + 1, sizeof *fields);
    names = calloc((size_t)ncol, sizeof *names);
    hdr_copy = strdup(line);
    if (!fields || !names || !hdr_copy) {
        rc = ld_err(err, LD_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    split_fields(hdr_copy, names, ncol);
    if (ncol < 2) {
        rc = ld_err(err, LD_EINVAL, "%s:%d: expected at least 2 columns (features and a label), found %d",
                    path, lineno, ncol);
        goto done;
    }
    int lab = ncol - 1;
    if (label && *label) {
        lab = -1;
        for (int j = 0; j < ncol; j++)
            if (strcmp(names[j], label) == 0) lab = j;
        if (lab < 0) {
            rc = ld_err(err, LD_EINVAL, "%s:%d: no column named '%s' in the header", path, lineno, label);
            goto done;
        }
    }
    int d = ncol - 1;
    out->d = d;
    out->x = malloc(sizeof(float) * (size_t)nlines * (size_t)d);
    out->y = malloc(sizeof(float) * (size_t)nlines);
    labstr = calloc((size_t)nlines, sizeof *labstr);
    rowline = calloc((size_t)nlines, sizeof *rowline);
    if (!out->x || !out->y || !labstr || !rowline) {
        rc = ld_err(err, LD_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    int n = 0, numeric_labels = 1;
    for (line = next_line(&cur, &lineno); line; line = next_line(&cur, &lineno)) {
        if (is_blank(line)) continue;
        int nf = split_fields(line, fields, ncol);
        if (nf != ncol) {
            rc = ld_err(err, LD_EINVAL, "%s:%d: expected %d fields, found %d", path, lineno, ncol, nf);
            goto done;
        }
        int k = 0;
        for (int j = 0; j < ncol; j++) {
            if (j == lab) continue;
            if (parse_float(fields[j], &out->x[(size_t)n * d + k]) != 0) {
                rc = ld_err(err, LD_EINVAL, "%s:%d: column %d (\"%s\"): \"%s\" is not a number", path,
                            lineno, j + 1, names[j], fields[j]);
                goto done;
            }
            k++;
        }
        labstr[n] = fields[lab];
        rowline[n] = lineno;
        if (parse_float(fields[lab], &out->y[n]) != 0) {
            if (!classify) {
                rc = ld_err(err, LD_EINVAL, "%s:%d: column %d (\"%s\"): \"%s\" is not a number", path,
                            lineno, lab + 1, names[lab], fields[lab]);
                goto done;
            }
            if (!fields[lab][0]) {
                rc = ld_err(err, LD_EINVAL, "%s:%d: column %d (\"%s\"): empty label", path, lineno,
                            lab + 1, names[lab]);
                goto done;
            }
            numeric_labels = 0;
        }
        n++;
    }
    if (n == 0) {
        rc = ld_err(err, LD_EINVAL, "%s: no data rows after the header", path);
        goto done;
    }
    out->n = n;
    if (classify && numeric_labels) {
        int mx = -1;
        for (int i = 0; i < n; i++) {
            float v = out->y[i];
            if (!(v >= 0) || v != floorf(v) || v >= MAX_CLASSES) {
                rc = ld_err(err, LD_EINVAL,
                            "%s:%d: column %d (\"%s\"): label %s is out of range (class labels are "
                            "integers 0..%d, or strings)", path, rowline[i], lab + 1, names[lab], labstr[i],
                            MAX_CLASSES - 1);
                goto done;
            }
            if ((int)v > mx) mx = (int)v;
        }
        out->nclass = mx + 1;
    } else if (classify) {
        /* String labels: sorted unique strings become class ids 0..K-1. */
        uniq = malloc(sizeof *uniq * (size_t)n);
        if (!uniq) {
            rc = ld_err(err, LD_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        memcpy(uniq, labstr, sizeof *uniq * (size_t)n);
        qsort(uniq, (size_t)n, sizeof *uniq, cmp_str);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (k == 0 || strcmp(uniq[k - 1], uniq[i]) != 0) uniq[k++] = uniq[i];
        if (k > MAX_CLASSES) {
            rc = ld_err(err, LD_EINVAL, "%s: column \"%s\" has %d distinct labels (at most %d)", path,
                        names[lab], k, MAX_CLASSES);
            goto done;
        }
        for (int i = 0; i < n; i++) {
            char **hit = bsearch(&labstr[i], uniq, (size_t)k, sizeof *uniq, cmp_str);
            out->y[i] = (float)(hit - uniq);
        }
        out->nclass = k;
    }
    if (classify && out->nclass < 2) {
        rc = ld_err(err, LD_EINVAL, "%s: column \"%s\" has %d class(es); classification needs at least 2",
                    path, names[lab], out->nclass);
        goto done;
    }
done:
    if (rc) table_free(out);
    free(buf);
    free(fields);
    free(names);
    free(hdr_copy);
    free(labstr);
    free(rowline);
    free(uniq);
    return rc;
}

int data_class_ids(const char *src, const float *y, int n, int *nclass, char *err) {
    int mx = -1;
    for (int i = 0; i < n; i++) {
        float v = y[i];
        if (!(v >= 0) || v != floorf(v) || v >= MAX_CLASSES)
            return ld_err(err, LD_EINVAL,
                          "%s: row %d: label %g is out of range (class labels are integers 0..%d)", src,
                          i + 1, (double)v, MAX_CLASSES - 1);
        if ((int)v > mx) mx = (int)v;
    }
    *nclass = mx + 1;
    return LD_OK;
}

/* ---- .npy --------------------------------------------------------------------------------- */

int data_read_npy(const char *path, int want_ndim, float **out, int *rows, int *cols, char *err) {
    int rc = LD_OK;
    size_t len = 0;
    char *buf = ld_read_file(path, &len, err);
    *out = NULL;
    if (!buf) return LD_EIO;
    unsigned char *u = (unsigned char *)buf;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        rc = ld_err(err, LD_EINVAL, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    size_t hlen, hoff;
    if (u[6] == 1) {
        hlen = u[8] | (size_t)u[9] << 8;
        hoff = 10;
    } else if (u[6] == 2 || u[6] == 3) {
        if (len < 12) {
            rc = ld_err(err, LD_EINVAL, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = u[8] | (size_t)u[9] << 8 | (size_t)u[10] << 16 | (size_t)u[11] << 24;
        hoff = 12;
    } else {
        rc = ld_err(err, LD_EINVAL, "%s: unsupported .npy version %d", path, u[6]);
        goto done;
    }
    if (hoff + hlen > len) {
        rc = ld_err(err, LD_EINVAL, "%s: truncated .npy header", path);
        goto done;
    }
    char hdr[1024];
    size_t hn = hlen < sizeof hdr - 1 ? hlen : sizeof hdr - 1;
    memcpy(hdr, buf + hoff, hn);
    hdr[hn] = 0;
    char *descr = strstr(hdr, "'descr'");
    char *fo = strstr(hdr, "'fortran_order'");
    char *shape = strstr(hdr, "'shape'");
    if (!descr || !fo || !shape) {
        rc = ld_err(err, LD_EINVAL, "%s: .npy header lacks descr, fortran_order or shape", path);
        goto done;
    }
    char dt[16] = {0};
    char *q = strchr(descr + 7, '\'');
    if (!q || sscanf(q + 1, "%15[^']", dt) != 1) {
        rc = ld_err(err, LD_EINVAL, "%s: cannot read the .npy dtype", path);
        goto done;
    }
    if (strstr(fo, "True") && strstr(fo, "True") < fo + 24) {
        rc = ld_err(err, LD_EINVAL,
                    "%s: fortran_order arrays are not supported; save a C-order array "
                    "(numpy.ascontiguousarray)", path);
        goto done;
    }
    long dims[4] = {0, 0, 0, 0};
    int ndim = 0;
    char *p = strchr(shape, '(');
    char *pe = p ? strchr(p, ')') : NULL;
    if (!p || !pe) {
        rc = ld_err(err, LD_EINVAL, "%s: cannot read the .npy shape", path);
        goto done;
    }
    for (p++; p < pe;) {
        while (p < pe && (*p == ' ' || *p == ',')) p++;
        if (p >= pe) break;
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p || ndim == 4) {
            rc = ld_err(err, LD_EINVAL, "%s: cannot read the .npy shape", path);
            goto done;
        }
        dims[ndim++] = v;
        p = e;
    }
    if (ndim != want_ndim) {
        rc = ld_err(err, LD_EINVAL, "%s: expected a %d-D array (%s), found %d-D", path, want_ndim,
                    want_ndim == 2 ? "rows x features" : "one label or target per row", ndim);
        goto done;
    }
    long r = dims[0], c = ndim == 2 ? dims[1] : 1;
    if (r <= 0 || c <= 0) {
        rc = ld_err(err, LD_EINVAL, "%s: empty array", path);
        goto done;
    }
    int esz;
    if (!strcmp(dt, "<f4") || !strcmp(dt, "<i4")) esz = 4;
    else if (!strcmp(dt, "<f8") || !strcmp(dt, "<i8")) esz = 8;
    else if (!strcmp(dt, "|u1")) esz = 1;
    else {
        rc = ld_err(err, LD_EINVAL, "%s: dtype '%s' not supported (use <f4, <f8, <i4, <i8 or |u1)", path, dt);
        goto done;
    }
    size_t cnt = (size_t)r * (size_t)c;
    const char *data = buf + hoff + hlen;
    if (len - hoff - hlen < cnt * (size_t)esz) {
        rc = ld_err(err, LD_EINVAL, "%s: data is truncated: expected %zu bytes, found %zu", path,
                    cnt * (size_t)esz, len - hoff - hlen);
        goto done;
    }
    float *f = malloc(sizeof(float) * cnt);
    if (!f) {
        rc = ld_err(err, LD_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *s = data + i * (size_t)esz;
        float v;
        if (dt[1] == 'f' && esz == 4) memcpy(&v, s, 4);
        else if (dt[1] == 'f') {
            double dv;
            memcpy(&dv, s, 8);
            v = (float)dv;
        } else if (esz == 4) {
            int32_t iv;
            memcpy(&iv, s, 4);
            v = (float)iv;
        } else if (esz == 8) {
            int64_t iv;
            memcpy(&iv, s, 8);
            v = (float)iv;
        } else v = (float)(unsigned char)s[0];
        if (!isfinite(v)) {
            free(f);
            rc = ld_err(err, LD_EINVAL, "%s: element %zu is not finite", path, i);
            goto done;
        }
        f[i] = v;
    }
    *out = f;
    *rows = (int)r;
    *cols = (int)c;
done:
    free(buf);
    return rc;
}

/* ---- split, transforms, standardisation --------------------------------------------------- */

static void shuffle(int *idx, int n, LdRng *r) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint32_t)(i + 1));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

static int make_split(const Table *tab, const int *rows, int n, int classify, Dataset *ds) {
    int d = tab->d;
    ds->n = n;
    ds->d = d;
    ds->x = malloc(sizeof(float) * ((size_t)n * d + 1));
    if (classify) ds->label = malloc(sizeof(int) * ((size_t)n + 1));
    else ds->y = malloc(sizeof(float) * ((size_t)n + 1));
    if (!ds->x || (classify ? !ds->label : !ds->y)) return LD_ENOMEM;
    for (int i = 0; i < n; i++) {
        memcpy(ds->x + (size_t)i * d, tab->x + (size_t)rows[i] * d, sizeof(float) * d);
        if (classify) ds->label[i] = (int)tab->y[rows[i]];
        else ds->y[i] = tab->y[rows[i]];
    }
    return LD_OK;
}

int data_prepare(const Table *tab, int classify, const DataPrep *p, Task *t, char *err) {
    int rc = LD_OK, n = tab->n, d = tab->d;
    int *idx = malloc(sizeof(int) * (size_t)n), *keep = malloc(sizeof(int) * (size_t)n);
    double *mean = calloc((size_t)d, sizeof(double)), *sd = calloc((size_t)d, sizeof(double));
    if (!idx || !keep || !mean || !sd) {
        rc = ld_err(err, LD_ENOMEM, "out of memory splitting %d rows", n);
        goto done;
    }
    LdRng rng;
    rng_seed(&rng, ld_mix64(p->seed, 0x5b1e));
    for (int i = 0; i < n; i++) idx[i] = i;
    shuffle(idx, n, &rng);
    int ntest = (int)lround(n * p->test), nval = (int)lround(n * p->val);
    int ntrain = n - ntest - nval;
    if (ntrain < 2 || (p->test > 0 && ntest < 1) || (p->val > 0 && nval < 1)) {
        rc = ld_err(err, LD_EINVAL,
                    "split: %d rows give %d train, %d validation, %d test rows; every split needs rows",
                    n, ntrain, nval, ntest);
        goto done;
    }
    /* Order: test rows first, validation next, the rest trains. */
    if ((rc = make_split(tab, idx, ntest, classify, &t->test)) ||
        (rc = make_split(tab, idx + ntest, nval, classify, &t->val)))
        goto oom;
    /* Transforms of the training split, each from its own seeded stream. */
    const int *tr = idx + ntest + nval;
    int nk = 0;
    LdRng tr_rng;
    rng_seed(&tr_rng, ld_mix64(p->seed, 0x7a5f));
    for (int i = 0; i < ntrain; i++) {
        int row = tr[i];
        if (p->subsample < 1 && rng_uniform(&tr_rng) >= p->subsample) continue;
        if (classify && p->imbalance < 1) {
            int c = (int)tab->y[row];
            if (c >= (tab->nclass + 1) / 2 && rng_uniform(&tr_rng) >= p->imbalance)
                continue;
        }
        keep[nk++] = row;
    }
    if (nk < 2) {
        rc = ld_err(err, LD_EINVAL, "transform: only %d training rows remain after subsample/imbalance", nk);
        goto done;
    }
    if ((rc = make_split(tab, keep, nk, classify, &t->train))) goto oom;
    Dataset *trn = &t->train;
    if (classify && p->label_noise > 0) {
        int nflip = (int)lround(nk * p->label_noise);
        /* Flip a seeded random subset of distinct rows to a different random class. */
        for (int i = 0; i < nk; i++) idx[i] = i;
        for (int i = 0; i < nflip; i++) {
            int j = i + (int)rng_below(&tr_rng, (uint32_t)(nk - i));
            int tmp = idx[i];
            idx[i] = idx[j];
            idx[j] = tmp;
            int r = idx[i];
            int nc = (int)rng_below(&tr_rng, (uint32_t)(tab->nclass - 1));
            trn->label[r] = nc >= trn->label[r] ? nc + 1 : nc;
        }
    }
    if (!classify) {
        /* Target statistics from the clean training targets: the scale reflects the problem,
         * not the corruption. */
        double m = 0, v = 0;
        for (int i = 0; i < nk; i++) m += trn->y[i];
        m /= nk;
        for (int i = 0; i < nk; i++) v += (trn->y[i] - m) * (trn->y[i] - m);
        v = sqrt(v / nk);
        if (!(v > 1e-12)) v = 1;
        t->y_mean = (float)m;
        t->y_std = (float)v;
        if (p->outliers > 0) {
            int nout = (int)lround(nk * p->outliers);
            for (int i = 0; i < nk; i++) idx[i] = i;
            for (int i = 0; i < nout; i++) {
                int j = i + (int)rng_below(&tr_rng, (uint32_t)(nk - i));
                int tmp = idx[i];
                idx[i] = idx[j];
                idx[j] = tmp;
                double mag = 5 + 5 * rng_uniform(&tr_rng);
                double sgn = (rng_next(&tr_rng) & 1) ? 1 : -1;
                trn->y[idx[i]] += (float)(sgn * mag * v);
            }
        }
        Dataset *all[3] = {&t->train, &t->val, &t->test};
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < all[s]->n; i++) all[s]->y[i] = (float)((all[s]->y[i] - m) / v);
    } else {
        t->y_mean = 0;
        t->y_std = 1;
    }
    /* Feature standardisation with training statistics; constant columns get std 1. */
    for (int i = 0; i < nk; i++)
        for (int j = 0; j < d; j++) mean[j] += trn->x[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mean[j] /= nk;
    for (int i = 0; i < nk; i++)
        for (int j = 0; j < d; j++) {
            double e = trn->x[(size_t)i * d + j] - mean[j];
            sd[j] += e * e;
        }
    for (int j = 0; j < d; j++) {
        sd[j] = sqrt(sd[j] / nk);
        if (!(sd[j] > 1e-8)) sd[j] = 1;
    }
    {
        Dataset *all[3] = {&t->train, &t->val, &t->test};
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < all[s]->n; i++)
                for (int j = 0; j < d; j++) {
                    float *v = &all[s]->x[(size_t)i * d + j];
                    *v = (float)((*v - mean[j]) / sd[j]);
                }
    }
    goto done;
oom:
    rc = ld_err(err, LD_ENOMEM, "out of memory splitting %d rows", n);
done:
    if (rc) {
        dataset_free(&t->train);
        dataset_free(&t->val);
        dataset_free(&t->test);
    }
    free(idx);
    free(keep);
    free(mean);
    free(sd);
    return rc;
}
