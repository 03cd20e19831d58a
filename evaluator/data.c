/* data.c: data sets: the CSV and .npy readers, class-id mapping, the seeded split, the
 * training-split transforms (imbalance, label noise, outliers, subsample) and standardisation. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    free(d->mean);
    free(d->sd);
    memset(d, 0, sizeof *d);
}

/* ---- CSV ---------------------------------------------------------------------------------- */

/* A CSV scanner over a buffer it decodes in place (RFC 4180: fields in double quotes may hold
 * commas, newlines and doubled quotes). Decoded text is never longer than its source, so each
 * field is written over its own bytes and NUL-terminated where its separator was. */
typedef struct CsvScan {
    const char *path;
    char *p, *end; /* next byte to read; end of the data (end[0] is writable: the buffer's NUL) */
    int line;      /* line of p, 1-based */
} CsvScan;

/* Reads one record into *fields (grown as needed, *cap entries): returns its number of fields,
 * 0 at the end of the input, or a negative code with err. *blank: the record is an empty or
 * all-blank line. *start: the line it starts on. Unquoted fields lose surrounding blanks. */
static int csv_record(CsvScan *s, char ***fields, int *cap, int *blank, int *start, char *err) {
    int nf = 0, quoted_any = 0;
    if (s->p >= s->end) return 0;
    *start = s->line;
    for (;;) {
        char *r = s->p, *w = s->p, *f = s->p;
        while (r < s->end && (*r == ' ' || *r == '\t')) r++;
        if (r < s->end && *r == '"') {
            int qline = s->line;
            quoted_any = 1;
            for (r++;; r++) {
                if (r >= s->end)
                    return ld_err(err, LD_EINVAL, "%s:%d: column %d: a quoted field is never closed",
                                  s->path, qline, nf + 1);
                if (*r == '"') {
                    if (r + 1 < s->end && r[1] == '"') {
                        *w++ = '"';
                        r++;
                        continue;
                    }
                    r++;
                    break;
                }
                if (*r == '\0') break; /* refused below */
                if (*r == '\n') s->line++;
                *w++ = *r;
            }
            while (r < s->end && (*r == ' ' || *r == '\t' || (*r == '\r' && (r + 1 == s->end || r[1] == '\n'))))
                r++;
            if (r < s->end && *r != ',' && *r != '\n' && *r != '\0')
                return ld_err(err, LD_EINVAL,
                              "%s:%d: column %d: text after a closing quote (a quote inside a quoted "
                              "field is written twice: \"\")", s->path, s->line, nf + 1);
        } else {
            while (r < s->end && *r != ',' && *r != '\n' && *r != '\0') *w++ = *r++;
            while (w > f && (w[-1] == ' ' || w[-1] == '\t' || w[-1] == '\r')) w--;
        }
        if (r < s->end && *r == '\0')
            return ld_err(err, LD_EINVAL, "%s:%d: a NUL byte: this is not a text CSV file", s->path, s->line);
        char c = r < s->end ? *r : '\n';
        *w = '\0';
        if (nf == *cap) {
            int ncap = *cap ? *cap * 2 : 16;
            char **nfields = realloc(*fields, sizeof **fields * (size_t)ncap);
            if (!nfields) return ld_err(err, LD_ENOMEM, "%s: out of memory", s->path);
            *fields = nfields;
            *cap = ncap;
        }
        (*fields)[nf++] = f;
        s->p = r < s->end ? r + 1 : s->end;
        if (c == '\n') {
            if (r < s->end) s->line++;
            break;
        }
    }
    *blank = nf == 1 && !quoted_any && (*fields)[0][0] == '\0';
    return nf;
}

/* A missing value: an empty field, NA, N/A, NaN or NULL (any case). */
static int is_missing(const char *s) {
    static const char *const na[] = {"", "na", "n/a", "nan", "null", NULL};
    for (int i = 0; na[i]; i++)
        if (strcasecmp(s, na[i]) == 0) return 1;
    return 0;
}

static int parse_float(const char *s, float *out) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != 0 || !isfinite(v) || fabs(v) > FLT_MAX) return -1;
    *out = (float)v;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted distinct strings of v[0..n) (v is sorted in place); returns their number, at most
 * n, written to the front of v. */
static int distinct(char **v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || strcmp(v[k - 1], v[i]) != 0) v[k++] = v[i];
    return k;
}

const char *data_missing_name(int missing) {
    static const char *const names[] = {"error", "drop_rows", "mean"};
    return missing >= 0 && missing < 3 ? names[missing] : "?";
}

/* Per feature column while reading: numbers, or text one-hot encoded over its levels. */
typedef struct CsvCol {
    int text;       /* 1: categorical (no value of the column is a number) */
    int nlevel;     /* categorical: distinct values of the kept rows */
    char **level;   /* categorical: sorted distinct values (pointers into the buffer), owned array */
    int off;        /* first feature of this column in Table.x */
} CsvCol;

int data_parse_csv(const char *path, char *buf, size_t len, const char *label, int classify, int missing,
                   Table *out, char *err) {
    int rc = LD_OK, nf = 0, cap = 0, blank = 0, start = 0, ncol = 0, nrow = 0, rowcap = 0;
    char **fields = NULL, **names = NULL, **cells = NULL, **tmp = NULL;
    int *rowline = NULL;
    CsvCol *col = NULL;
    memset(out, 0, sizeof *out);
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 byte-order mark */
        buf += 3;
        len -= 3;
    }
    CsvScan s = {path, buf, buf + len, 1};
    /* Header: the first non-blank record. */
    do {
        nf = csv_record(&s, &fields, &cap, &blank, &start, err);
    } while (nf > 0 && blank);
    if (nf < 0) {
        rc = nf;
        goto done;
    }
    if (nf == 0) {
        rc = ld_err(err, LD_EINVAL, "%s: empty file: expected a header row and data rows", path);
        goto done;
    }
    ncol = nf;
    int hline = start;
    if (ncol < 2) {
        rc = ld_err(err, LD_EINVAL, "%s:%d: expected at least 2 columns (features and a label), found %d",
                    path, hline, ncol);
        goto done;
    }
    names = malloc(sizeof *names * (size_t)ncol);
    col = calloc((size_t)ncol, sizeof *col);
    if (!names || !col) goto oom;
    memcpy(names, fields, sizeof *names * (size_t)ncol);
    int lab = ncol - 1;
    if (label && *label) {
        lab = -1;
        for (int j = 0; j < ncol; j++)
            if (strcmp(names[j], label) == 0) lab = j;
        if (lab < 0) {
            rc = ld_err(err, LD_EINVAL, "%s:%d: no column named '%s' in the header", path, hline, label);
            goto done;
        }
    }
    /* Every data record's fields, row-major, pointing into buf. */
    for (;;) {
        nf = csv_record(&s, &fields, &cap, &blank, &start, err);
        if (nf < 0) {
            rc = nf;
            goto done;
        }
        if (nf == 0) break;
        if (blank) continue;
        if (nf != ncol) {
            rc = ld_err(err, LD_EINVAL, "%s:%d: expected %d fields, found %d", path, start, ncol, nf);
            goto done;
        }
        if (nrow == rowcap) {
            rowcap = rowcap ? rowcap * 2 : 256;
            char **nc = realloc(cells, sizeof *cells * (size_t)rowcap * (size_t)ncol);
            int *nl = realloc(rowline, sizeof *rowline * (size_t)rowcap);
            if (nc) cells = nc;
            if (nl) rowline = nl;
            if (!nc || !nl) goto oom;
        }
        memcpy(cells + (size_t)nrow * ncol, fields, sizeof *cells * (size_t)ncol);
        rowline[nrow++] = start;
    }
    if (nrow == 0) {
        rc = ld_err(err, LD_EINVAL, "%s: no data rows after the header", path);
        goto done;
    }
    out->rows_read = nrow;
    /* Column kinds: a feature column none of whose values is a number is categorical; one that
     * mixes numbers and text is an error (a typo in a number column, most likely). */
    for (int j = 0; j < ncol; j++) {
        int num = -1, txt = -1;
        float v;
        if (j == lab) continue;
        for (int i = 0; i < nrow && (num < 0 || txt < 0); i++) {
            const char *c = cells[(size_t)i * ncol + j];
            if (is_missing(c)) continue;
            if (parse_float(c, &v) == 0) {
                if (num < 0) num = i;
            } else if (txt < 0) {
                txt = i;
            }
        }
        if (txt >= 0 && num >= 0) {
            rc = ld_err(err, LD_EINVAL,
                        "%s:%d: column %d (\"%s\"): \"%s\" is not a number (line %d has the number \"%s\"; "
                        "a column holds numbers or text categories, not both)",
                        path, rowline[txt], j + 1, names[j], cells[(size_t)txt * ncol + j], rowline[num],
                        cells[(size_t)num * ncol + j]);
            goto done;
        }
        col[j].text = txt >= 0;
    }
    /* Missing values: refused, or their rows dropped, or (features only) left as NaN for
     * data_prepare to fill with the training split's mean. A missing label drops its row
     * under "mean" too: a label is never invented. */
    int kept = 0, filled = 0;
    for (int i = 0; i < nrow; i++) {
        int drop = 0, nmiss = 0;
        for (int j = 0; j < ncol; j++) {
            const char *c = cells[(size_t)i * ncol + j];
            if (!is_missing(c)) continue;
            if (missing == DATA_MISSING_ERROR) {
                rc = ld_err(err, LD_EINVAL,
                            "%s:%d: column %d (\"%s\"): missing value \"%s\" (the task key \"missing\": "
                            "\"drop_rows\" or \"mean\" accepts missing values)",
                            path, rowline[i], j + 1, names[j], c);
                goto done;
            }
            if (missing == DATA_MISSING_DROP_ROWS || j == lab) drop = 1;
            nmiss++;
        }
        if (drop) continue;
        filled += nmiss;
        memmove(cells + (size_t)kept * ncol, cells + (size_t)i * ncol, sizeof *cells * (size_t)ncol);
        rowline[kept++] = rowline[i];
    }
    out->rows_dropped = nrow - kept;
    out->values_filled = filled;
    nrow = kept;
    if (nrow == 0) {
        rc = ld_err(err, LD_EINVAL, "%s: no data rows left after dropping %d with missing values", path,
                    out->rows_dropped);
        goto done;
    }
    /* Categorical levels over the kept rows; feature offsets. */
    tmp = malloc(sizeof *tmp * (size_t)nrow);
    if (!tmp) goto oom;
    int d = 0;
    for (int j = 0; j < ncol; j++) {
        if (j == lab) continue;
        col[j].off = d;
        if (!col[j].text) {
            d++;
            continue;
        }
        int k = 0;
        for (int i = 0; i < nrow; i++) {
            char *c = cells[(size_t)i * ncol + j];
            if (!is_missing(c)) tmp[k++] = c;
        }
        k = distinct(tmp, k);
        if (k > DATA_MAX_LEVELS) {
            rc = ld_err(err, LD_EINVAL,
                        "%s: column %d (\"%s\"): %d distinct text values; a categorical column is one-hot "
                        "encoded with at most %d levels (drop the column, or encode it as numbers)",
                        path, j + 1, names[j], k, DATA_MAX_LEVELS);
            goto done;
        }
        col[j].nlevel = k;
        col[j].level = malloc(sizeof(char *) * (size_t)(k ? k : 1));
        if (!col[j].level) goto oom;
        memcpy(col[j].level, tmp, sizeof(char *) * (size_t)k);
        d += k;
        out->ncategorical++;
        int used = (int)strlen(out->categorical);
        if (used < (int)sizeof out->categorical - 1)
            snprintf(out->categorical + used, sizeof out->categorical - (size_t)used, "%s%s (%d levels)",
                     used ? ", " : "", names[j], k);
    }
    if (d == 0) {
        rc = ld_err(err, LD_EINVAL, "%s: no feature columns (every column but the label has no levels)", path);
        goto done;
    }
    out->d = d;
    out->x = malloc(sizeof(float) * (size_t)nrow * (size_t)d);
    out->y = malloc(sizeof(float) * (size_t)nrow);
    if (!out->x || !out->y) goto oom;
    for (int i = 0; i < nrow; i++) {
        float *x = out->x + (size_t)i * d;
        for (int j = 0; j < ncol; j++) {
            char *c = cells[(size_t)i * ncol + j];
            if (j == lab) continue;
            if (!col[j].text) {
                if (is_missing(c)) x[col[j].off] = NAN;
                else parse_float(c, &x[col[j].off]);
                continue;
            }
            char **hit = is_missing(c) ? NULL : bsearch(&c, col[j].level, (size_t)col[j].nlevel, sizeof(char *), cmp_str);
            for (int k = 0; k < col[j].nlevel; k++)
                x[col[j].off + k] = hit ? (float)(hit - col[j].level == k) : NAN;
        }
    }
    /* Labels: numbers, or (classification) text turned into class ids by sorted order. */
    int numeric_labels = 1;
    for (int i = 0; i < nrow; i++) {
        const char *c = cells[(size_t)i * ncol + lab];
        if (parse_float(c, &out->y[i]) == 0) continue;
        if (!classify) {
            rc = ld_err(err, LD_EINVAL, "%s:%d: column %d (\"%s\"): \"%s\" is not a number", path, rowline[i],
                        lab + 1, names[lab], c);
            goto done;
        }
        numeric_labels = 0;
    }
    out->n = nrow;
    if (classify && numeric_labels) {
        int mx = -1;
        for (int i = 0; i < nrow; i++) {
            float v = out->y[i];
            if (!(v >= 0) || v != floorf(v) || v >= MAX_CLASSES) {
                rc = ld_err(err, LD_EINVAL,
                            "%s:%d: column %d (\"%s\"): label %s is out of range (class labels are "
                            "integers 0..%d, or strings)", path, rowline[i], lab + 1, names[lab],
                            cells[(size_t)i * ncol + lab], MAX_CLASSES - 1);
                goto done;
            }
            if ((int)v > mx) mx = (int)v;
        }
        out->nclass = mx + 1;
    } else if (classify) {
        for (int i = 0; i < nrow; i++) tmp[i] = cells[(size_t)i * ncol + lab];
        int k = distinct(tmp, nrow);
        if (k > MAX_CLASSES) {
            rc = ld_err(err, LD_EINVAL, "%s: column \"%s\" has %d distinct labels (at most %d)", path,
                        names[lab], k, MAX_CLASSES);
            goto done;
        }
        for (int i = 0; i < nrow; i++) {
            char *c = cells[(size_t)i * ncol + lab];
            char **hit = bsearch(&c, tmp, (size_t)k, sizeof *tmp, cmp_str);
            out->y[i] = (float)(hit - tmp);
        }
        out->nclass = k;
    }
    if (classify && out->nclass < 2) {
        rc = ld_err(err, LD_EINVAL, "%s: column \"%s\" has %d class(es); classification needs at least 2",
                    path, names[lab], out->nclass);
        goto done;
    }
    goto done;
oom:
    rc = ld_err(err, LD_ENOMEM, "%s: out of memory", path);
done:
    if (rc) table_free(out);
    for (int j = 0; col && j < ncol; j++) free(col[j].level);
    free(col);
    free(fields);
    free(names);
    free(cells);
    free(rowline);
    free(tmp);
    return rc;
}

int data_read_csv(const char *path, const char *label, int classify, int missing, Table *out, char *err) {
    size_t len = 0;
    char *buf = ld_read_file(path, &len, err);
    memset(out, 0, sizeof *out);
    if (!buf) return LD_EIO;
    int rc = data_parse_csv(path, buf, len, label, classify, missing, out, err);
    free(buf);
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
    size_t len = 0;
    char *buf = ld_read_file(path, &len, err);
    *out = NULL;
    if (!buf) return LD_EIO;
    int rc = data_parse_npy(path, buf, len, want_ndim, out, rows, cols, err);
    free(buf);
    return rc;
}

int data_parse_npy(const char *path, const char *buf, size_t len, int want_ndim, float **out, int *rows,
                   int *cols, char *err) {
    int rc = LD_OK;
    *out = NULL;
    const unsigned char *u = (const unsigned char *)buf;
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
    if (p->folds > 1) {
        /* Cross-validation: the test rows stay; the rest is shuffled once per repeat and fold
         * `fold` of it validates. The fold's rows move to the front of the rest. */
        int nrest = n - ntest, *rest = idx + ntest;
        LdRng fr;
        rng_seed(&fr, ld_mix64(p->seed, 0xf01d0000ull + (uint64_t)p->repeat));
        shuffle(rest, nrest, &fr);
        int lo = (int)((long)nrest * p->fold / p->folds), hi = (int)((long)nrest * (p->fold + 1) / p->folds);
        nval = hi - lo;
        memcpy(keep, rest + lo, sizeof(int) * (size_t)nval);
        memmove(rest + nval, rest, sizeof(int) * (size_t)lo);
        memcpy(rest, keep, sizeof(int) * (size_t)nval);
    }
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
    if (p->pixel_noise > 0) {
        /* Salt and pepper: a seeded random subset of distinct training values, each set to its
         * column's training minimum or maximum (0 or 1 on pixels in [0, 1]). */
        size_t nv = (size_t)nk * d, ncor = (size_t)llround((double)nv * p->pixel_noise);
        float *lo = malloc(sizeof(float) * (size_t)d), *hi = malloc(sizeof(float) * (size_t)d);
        uint32_t *vi = malloc(sizeof(uint32_t) * nv);
        if (!lo || !hi || !vi) {
            free(lo);
            free(hi);
            free(vi);
            goto oom;
        }
        for (int j = 0; j < d; j++) lo[j] = hi[j] = trn->x[j];
        for (size_t k = 0; k < nv; k++) {
            float v = trn->x[k];
            int j = (int)(k % (size_t)d);
            if (v < lo[j]) lo[j] = v;
            if (v > hi[j]) hi[j] = v;
        }
        for (size_t k = 0; k < nv; k++) vi[k] = (uint32_t)k;
        for (size_t k = 0; k < ncor; k++) {
            size_t r = k + rng_below(&tr_rng, (uint32_t)(nv - k));
            uint32_t tmp = vi[k];
            vi[k] = vi[r];
            vi[r] = tmp;
            int j = (int)(vi[k] % (uint32_t)d);
            trn->x[vi[k]] = (rng_next(&tr_rng) & 1) ? hi[j] : lo[j];
        }
        free(lo);
        free(hi);
        free(vi);
    }
    if (p->raw) goto done;
    /* Feature standardisation with training statistics; constant columns get std 1. A missing
     * value (NaN, kept by the CSV reader under missing: "mean") is filled with its column's
     * training mean, so it standardises to 0; the statistics are those of the filled column. */
    for (int j = 0; j < d; j++) sd[j] = 0; /* sd counts a column's present values first */
    for (int i = 0; i < nk; i++)
        for (int j = 0; j < d; j++) {
            float v = trn->x[(size_t)i * d + j];
            if (isnan(v)) continue;
            mean[j] += v;
            sd[j] += 1;
        }
    for (int j = 0; j < d; j++) mean[j] = sd[j] > 0 ? mean[j] / sd[j] : 0;
    for (int j = 0; j < d; j++) sd[j] = 0;
    for (int i = 0; i < nk; i++)
        for (int j = 0; j < d; j++) {
            float v = trn->x[(size_t)i * d + j];
            double e = isnan(v) ? 0 : v - mean[j];
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
                    *v = isnan(*v) ? 0.0f : (float)((*v - mean[j]) / sd[j]);
                }
    }
    trn->mean = malloc(sizeof(float) * (size_t)d);
    trn->sd = malloc(sizeof(float) * (size_t)d);
    if (!trn->mean || !trn->sd) goto oom;
    for (int j = 0; j < d; j++) {
        trn->mean[j] = (float)mean[j];
        trn->sd[j] = (float)sd[j];
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
