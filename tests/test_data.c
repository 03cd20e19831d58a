/* test_data.c: the CSV and .npy readers (on small files this test writes, including every error
 * message), the split (sizes, determinism), the training-split transforms (imbalance counts,
 * label-noise fraction, outliers), standardisation, and task specs (defaults, errors, hash). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../evaluator/internal.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static const char *write_file(const char *name, const void *data, size_t n) {
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    return p;
}

static const char *write_text(const char *name, const char *text) { return write_file(name, text, strlen(text)); }

/* err must contain want; prints both when it does not. */
static void expect_err(const char *err, const char *want) {
    if (!strstr(err, want)) print_error("error '%s' does not contain '%s'\n", err, want);
    assert_non_null(strstr(err, want));
}

static void test_csv_ok(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Table t;
    const char *p = write_text("ok.csv", "a,b,kind\n1,2,dog\n3, 4.5,cat\r\n\n5,6,dog\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), 0);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.d, 2);
    assert_int_equal(t.nclass, 2);
    /* Sorted unique strings: cat = 0, dog = 1. */
    assert_float_equal(t.y[0], 1, 0);
    assert_float_equal(t.y[1], 0, 0);
    assert_float_equal(t.x[3], 4.5, 0);
    table_free(&t);
    /* Label column chosen by name; numeric labels. */
    p = write_text("ok2.csv", "y,a,b\n0,1,2\n2,3,4\n1,5,6\n");
    assert_int_equal(data_read_csv(p, "y", 1, DATA_MISSING_ERROR, &t, err), 0);
    assert_int_equal(t.nclass, 3);
    assert_float_equal(t.x[0], 1, 0);
    assert_float_equal(t.y[1], 2, 0);
    table_free(&t);
    assert_int_equal(data_read_csv(p, "y", 0, DATA_MISSING_ERROR, &t, err), 0);
    table_free(&t);
}

static void test_csv_errors(void **state) {
    (void)state;
    char err[LD_ERR_MAX], want[512];
    Table t;
    const char *p = write_text("ragged.csv", "a,b,c\n1,2,0\n1,2\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    snprintf(want, sizeof want, "%s:3: expected 3 fields, found 2", p);
    expect_err(err, want);
    p = write_text("nan.csv", "a,p02,c\n1,2,0\n1,abc,1\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    snprintf(want, sizeof want, "%s:3: column 2 (\"p02\"): \"abc\" is not a number", p);
    expect_err(err, want);
    p = write_text("neg.csv", "a,c\n1,0\n2,-1\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    snprintf(want, sizeof want, "%s:3: column 2 (\"c\"): label -1 is out of range", p);
    expect_err(err, want);
    p = write_text("frac.csv", "a,c\n1,0\n2,1.5\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "frac.csv:3: column 2 (\"c\"): label 1.5 is out of range");
    p = write_text("empty.csv", "");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "empty file");
    p = write_text("hdr.csv", "a,b\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "no data rows");
    assert_int_equal(data_read_csv(tmp_path("missing.csv"), NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EIO);
    expect_err(err, "missing.csv: cannot open");
    p = write_text("nolab.csv", "a,b\n1,2\n");
    assert_int_equal(data_read_csv(p, "zz", 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "no column named 'zz'");
    p = write_text("one.csv", "a,b\n1,0\n2,0\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "needs at least 2");
    /* Regression targets must be numbers. */
    p = write_text("regstr.csv", "a,y\n1,2\n1,x\n");
    assert_int_equal(data_read_csv(p, NULL, 0, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, ":3: column 2 (\"y\"): \"x\" is not a number");
}

/* RFC 4180 as real exports write it: quoted fields holding commas, doubled quotes and newlines;
 * CRLF line ends; a UTF-8 byte-order mark before the header. */
static void test_csv_quoting(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Table t;
    const char *p = write_text("q.csv", "\xEF\xBB\xBF\"size\",\"note, with comma\",kind\r\n"
                                        "1,\"2\",\"a, \"\"quoted\"\" cat\"\r\n"
                                        "3,\"4\",\"a dog\nover two lines\"\r\n"
                                        "\"5\" , 6 ,\"a, \"\"quoted\"\" cat\"\r\n");
    int rc = data_read_csv(p, "kind", 1, DATA_MISSING_ERROR, &t, err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.d, 2);
    assert_int_equal(t.nclass, 2); /* sorted: "a dog\nover two lines" = 0, "a, \"quoted\" cat" = 1 */
    assert_float_equal(t.y[0], 1, 0);
    assert_float_equal(t.y[1], 0, 0);
    assert_float_equal(t.y[2], 1, 0);
    assert_float_equal(t.x[0], 1, 0);
    assert_float_equal(t.x[4], 5, 0);
    assert_float_equal(t.x[5], 6, 0);
    table_free(&t);
    /* The BOM no longer hides the first column's name. */
    p = write_text("bom.csv", "\xEF\xBB\xBFlabel,a\n0,1\n1,2\n");
    rc = data_read_csv(p, "label", 1, DATA_MISSING_ERROR, &t, err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(t.nclass, 2);
    table_free(&t);
    /* Line numbers count the lines inside quoted fields. */
    p = write_text("qline.csv", "a,b,c\n1,\"x\ny\",0\n1,2\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "qline.csv:4: expected 3 fields, found 2");
    p = write_text("open.csv", "a,b\n1,\"2\n3,4\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "open.csv:2: column 2: a quoted field is never closed");
    p = write_text("after.csv", "a,b\n1,\"2\"x,0\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "after.csv:2: column 2: text after a closing quote");
    p = write_file("nul.csv", "a,b\n1,\0\n", 8);
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "nul.csv:2: a NUL byte");
    /* Numbers beyond float range are not numbers (they were infinities). */
    p = write_text("big.csv", "a,b\n1e39,0\n1,1\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "\"1e39\" is not a number");
}

/* Missing values: refused by default naming line and column, rows dropped, or features filled
 * with the training mean (labels are never filled); the counts are reported. */
static void test_csv_missing(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Table t;
    const char *text = "a,b,y\n1,2,0\n,3,1\n4,NA,0\n5,nan,1\n6,7,\n8,\"\",1\n9,10,0\n11,12,1\n";
    const char *p = write_text("miss.csv", text);
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "miss.csv:3: column 1 (\"a\"): missing value \"\" (the task key \"missing\"");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_DROP_ROWS, &t, err), 0);
    printf("drop_rows: %d of %d rows kept, %d dropped\n", t.n, t.rows_read, t.rows_dropped);
    assert_int_equal(t.rows_read, 8);
    assert_int_equal(t.rows_dropped, 5);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.values_filled, 0);
    assert_float_equal(t.x[2], 9, 0);
    table_free(&t);
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_MEAN, &t, err), 0);
    printf("mean: %d rows, %d dropped (missing label), %d values filled\n", t.n, t.rows_dropped,
           t.values_filled);
    assert_int_equal(t.n, 7);
    assert_int_equal(t.rows_dropped, 1); /* 6,7,<no label> */
    assert_int_equal(t.values_filled, 4);
    assert_true(isnan(t.x[2]));  /* row ",3,1": a */
    assert_true(isnan(t.x[5]));  /* row "4,NA,0": b */
    assert_float_equal(t.x[4], 4, 0);
    table_free(&t);
    p = write_text("allmiss.csv", "a,y\nNA,0\n,1\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_DROP_ROWS, &t, err), LD_EINVAL);
    expect_err(err, "no data rows left after dropping 2 with missing values");
}

/* Text feature columns are one-hot encoded over their sorted levels, up to DATA_MAX_LEVELS;
 * a column mixing numbers and text names both. */
static void test_csv_categorical(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Table t;
    const char *p = write_text("cat.csv", "x,color,y\n1,red,0\n2,blue,1\n3,\"green\",0\n4,red,1\n5,NA,0\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_MEAN, &t, err), 0);
    printf("categorical: d %d, %s\n", t.d, t.categorical);
    assert_int_equal(t.d, 4); /* x, color=blue, color=green, color=red */
    assert_int_equal(t.ncategorical, 1);
    assert_string_equal(t.categorical, "color (3 levels)");
    float want[] = {1, 0, 0, 1, 2, 1, 0, 0, 3, 0, 1, 0, 4, 0, 0, 1};
    for (int i = 0; i < 16; i++) assert_float_equal(t.x[i], want[i], 0);
    for (int k = 1; k < 4; k++) assert_true(isnan(t.x[16 + k])); /* a missing level */
    assert_int_equal(t.values_filled, 1);
    table_free(&t);
    /* 33 levels: over the cap. */
    char big[4096];
    int k = snprintf(big, sizeof big, "c,y\n");
    for (int i = 0; i < DATA_MAX_LEVELS + 1; i++) k += snprintf(big + k, sizeof big - (size_t)k, "v%02d,%d\n", i, i % 2);
    p = write_text("many.csv", big);
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "column 1 (\"c\"): 33 distinct text values; a categorical column is one-hot encoded "
                    "with at most 32 levels");
    p = write_text("mixed.csv", "a,y\n1,0\n2,1\nthree,0\n");
    assert_int_equal(data_read_csv(p, NULL, 1, DATA_MISSING_ERROR, &t, err), LD_EINVAL);
    expect_err(err, "mixed.csv:4: column 1 (\"a\"): \"three\" is not a number (line 2 has the number \"1\"");
}

/* Writes a .npy with the given header dict and raw data. */
static const char *write_npy(const char *name, int version, const char *dict, const void *data, size_t n) {
    char buf[4096];
    size_t hoff = version == 1 ? 10 : 12;
    size_t dl = strlen(dict);
    size_t total = hoff + dl + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = dl + pad + 1;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (char)version;
    buf[7] = 0;
    if (version == 1) {
        buf[8] = (char)(hlen & 0xff);
        buf[9] = (char)(hlen >> 8);
    } else {
        buf[8] = (char)(hlen & 0xff);
        buf[9] = (char)(hlen >> 8);
        buf[10] = buf[11] = 0;
    }
    memcpy(buf + hoff, dict, dl);
    memset(buf + hoff + dl, ' ', pad);
    buf[hoff + dl + pad] = '\n';
    memcpy(buf + hoff + hlen, data, n);
    return write_file(name, buf, hoff + hlen + n);
}

static void test_npy(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    float *v;
    int r, c;
    double d[6] = {1, 2, 3, 4, 5, 6};
    const char *p = write_npy("f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", d, sizeof d);
    assert_int_equal(data_read_npy(p, 2, &v, &r, &c, err), 0);
    assert_int_equal(r, 2);
    assert_int_equal(c, 3);
    assert_float_equal(v[5], 6, 0);
    free(v);
    float f[4] = {1.5f, 2, 3, 4};
    p = write_npy("f4.npy", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 1), }", f, sizeof f);
    assert_int_equal(data_read_npy(p, 2, &v, &r, &c, err), 0);
    assert_float_equal(v[0], 1.5, 0);
    free(v);
    int64_t l8[3] = {0, 2, 1};
    p = write_npy("i8.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", l8, sizeof l8);
    assert_int_equal(data_read_npy(p, 1, &v, &r, &c, err), 0);
    assert_int_equal(r, 3);
    assert_float_equal(v[1], 2, 0);
    free(v);
    int32_t l4[2] = {7, -1};
    p = write_npy("i4.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", l4, sizeof l4);
    assert_int_equal(data_read_npy(p, 1, &v, &r, &c, err), 0);
    int nclass;
    assert_int_equal(data_class_ids(p, v, r, &nclass, err), LD_EINVAL);
    expect_err(err, "row 2: label -1 is out of range");
    free(v);
    unsigned char u[2] = {3, 255};
    p = write_npy("u1.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", u, sizeof u);
    assert_int_equal(data_read_npy(p, 1, &v, &r, &c, err), 0);
    assert_float_equal(v[1], 255, 0);
    free(v);
    /* Errors. */
    p = write_npy("fo.npy", 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", d, sizeof d);
    assert_int_equal(data_read_npy(p, 2, &v, &r, &c, err), LD_EINVAL);
    expect_err(err, "fortran_order arrays are not supported");
    p = write_npy("dim.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", d, sizeof d);
    assert_int_equal(data_read_npy(p, 2, &v, &r, &c, err), LD_EINVAL);
    expect_err(err, "dim.npy: expected a 2-D array");
    p = write_npy("dt.npy", 1, "{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", d, 16);
    assert_int_equal(data_read_npy(p, 1, &v, &r, &c, err), LD_EINVAL);
    expect_err(err, "dtype '<c16' not supported");
    p = write_npy("short.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (9, 3), }", d, sizeof d);
    assert_int_equal(data_read_npy(p, 2, &v, &r, &c, err), LD_EINVAL);
    expect_err(err, "truncated");
    p = write_text("bad.npy", "hello world, not numpy");
    assert_int_equal(data_read_npy(p, 2, &v, &r, &c, err), LD_EINVAL);
    expect_err(err, "bad.npy: not a .npy file");
}

/* A synthetic table: n rows, d features, 10 balanced classes (or regression targets). */
static void make_table(Table *t, int n, int d, int classify) {
    t->n = n;
    t->d = d;
    t->x = malloc(sizeof(float) * n * d);
    t->y = malloc(sizeof(float) * n);
    t->nclass = classify ? 10 : 0;
    LdRng r;
    rng_seed(&r, 9);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) t->x[i * d + j] = j == d - 1 ? 3.0f : 5.0f + 2.0f * rng_normal(&r);
        t->y[i] = classify ? (float)(i % 10) : 100.0f + 10.0f * rng_normal(&r);
    }
}

static void free_splits(Task *t) {
    dataset_free(&t->train);
    dataset_free(&t->val);
    dataset_free(&t->test);
}

static void test_split(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Table tab;
    make_table(&tab, 1000, 4, 1);
    DataPrep p = {.val = 0.2, .test = 0.1, .seed = 3, .imbalance = 1, .subsample = 1};
    Task a = {0}, b = {0}, c = {0};
    assert_int_equal(data_prepare(&tab, 1, &p, &a, err), 0);
    assert_int_equal(a.train.n, 700);
    assert_int_equal(a.val.n, 200);
    assert_int_equal(a.test.n, 100);
    assert_int_equal(data_prepare(&tab, 1, &p, &b, err), 0);
    assert_memory_equal(a.train.x, b.train.x, sizeof(float) * 700 * 4);
    assert_memory_equal(a.test.label, b.test.label, sizeof(int) * 100);
    p.seed = 4;
    assert_int_equal(data_prepare(&tab, 1, &p, &c, err), 0);
    assert_true(memcmp(a.train.x, c.train.x, sizeof(float) * 700 * 4) != 0);
    /* Standardised with training statistics: mean 0, std 1; the constant column is 0. */
    for (int j = 0; j < 4; j++) {
        double m = 0, v = 0;
        for (int i = 0; i < 700; i++) m += a.train.x[i * 4 + j];
        m /= 700;
        for (int i = 0; i < 700; i++) v += (a.train.x[i * 4 + j] - m) * (a.train.x[i * 4 + j] - m);
        v /= 700;
        assert_float_equal(m, 0, 1e-4);
        assert_float_equal(v, j == 3 ? 0 : 1, 1e-3);
    }
    assert_float_equal(a.val.x[3], 0, 0);
    free_splits(&a);
    free_splits(&b);
    free_splits(&c);
    p.val = 0.6;
    p.test = 0.399;
    assert_int_equal(data_prepare(&tab, 1, &p, &a, err), LD_EINVAL);
    expect_err(err, "every split needs rows");
    table_free(&tab);
}

static void test_transforms(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Table tab;
    make_table(&tab, 2000, 3, 1);
    DataPrep p = {.val = 0.2, .test = 0.2, .seed = 1, .imbalance = 1, .subsample = 1};
    Task clean = {0}, imb = {0}, noisy = {0}, sub = {0};
    assert_int_equal(data_prepare(&tab, 1, &p, &clean, err), 0);
    int cnt[10] = {0}, cnt2[10] = {0};
    for (int i = 0; i < clean.train.n; i++) cnt[clean.train.label[i]]++;
    p.imbalance = 0.1;
    assert_int_equal(data_prepare(&tab, 1, &p, &imb, err), 0);
    for (int i = 0; i < imb.train.n; i++) cnt2[imb.train.label[i]]++;
    int maj = 0, maj0 = 0, mino = 0, mino0 = 0;
    for (int c = 0; c < 5; c++) maj += cnt2[c], maj0 += cnt[c];
    for (int c = 5; c < 10; c++) mino += cnt2[c], mino0 += cnt[c];
    printf("imbalance 0.1: classes 0-4 keep %d of %d, classes 5-9 keep %d of %d\n", maj, maj0, mino, mino0);
    assert_int_equal(maj, maj0);
    assert_float_equal((double)mino / mino0, 0.1, 0.03);
    /* Validation and test stay clean: the same rows as without the transform (their features
     * differ only through the training statistics used to standardise them). */
    assert_memory_equal(imb.val.label, clean.val.label, sizeof(int) * clean.val.n);
    assert_memory_equal(imb.test.label, clean.test.label, sizeof(int) * clean.test.n);
    p.imbalance = 1;
    p.label_noise = 0.3;
    assert_int_equal(data_prepare(&tab, 1, &p, &noisy, err), 0);
    assert_int_equal(noisy.train.n, clean.train.n);
    int flipped = 0;
    for (int i = 0; i < clean.train.n; i++) flipped += noisy.train.label[i] != clean.train.label[i];
    printf("label_noise 0.3: %d of %d labels flipped\n", flipped, clean.train.n);
    assert_int_equal(flipped, (int)lround(clean.train.n * 0.3));
    p.label_noise = 0;
    p.subsample = 0.25;
    assert_int_equal(data_prepare(&tab, 1, &p, &sub, err), 0);
    printf("subsample 0.25: %d of %d training rows\n", sub.train.n, clean.train.n);
    assert_float_equal((double)sub.train.n / clean.train.n, 0.25, 0.04);
    free_splits(&clean);
    free_splits(&imb);
    free_splits(&noisy);
    free_splits(&sub);
    table_free(&tab);

    /* Outliers: regression targets standardised with clean statistics; a fraction moved by
     * 5..10 standard deviations. */
    make_table(&tab, 1000, 3, 0);
    DataPrep q = {.val = 0.2, .test = 0.2, .seed = 1, .imbalance = 1, .subsample = 1};
    Task rc = {0}, ro = {0};
    assert_int_equal(data_prepare(&tab, 0, &q, &rc, err), 0);
    q.outliers = 0.1;
    assert_int_equal(data_prepare(&tab, 0, &q, &ro, err), 0);
    assert_float_equal(rc.y_std, ro.y_std, 0);
    assert_float_equal(rc.y_std, 10, 1.5);
    int moved = 0;
    for (int i = 0; i < rc.train.n; i++) {
        double dlt = fabs(ro.train.y[i] - rc.train.y[i]);
        if (dlt > 1e-6) {
            moved++;
            assert_true(dlt >= 4.99 && dlt <= 10.01);
        }
    }
    printf("outliers 0.1: %d of %d targets moved\n", moved, rc.train.n);
    assert_int_equal(moved, (int)lround(rc.train.n * 0.1));
    assert_memory_equal(rc.val.y, ro.val.y, sizeof(float) * rc.val.n);
    free_splits(&rc);
    free_splits(&ro);
    table_free(&tab);
}

static Task *load_json(const char *json, char *err) {
    cJSON *s = cJSON_Parse(json);
    assert_non_null(s);
    Task *t = NULL;
    int rc = task_load(s, tmpdir, &t, err);
    cJSON_Delete(s);
    return rc ? NULL : t;
}

static void test_task_specs(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = NULL;
    assert_int_equal(task_load_arg("builtin:digits", &t, err), 0);
    assert_int_equal(task_family(t), FAM_CLASSIFICATION);
    assert_int_equal(task_outputs(t), 10);
    assert_int_equal(t->train.d, 64);
    assert_int_equal(t->train.n + t->val.n + t->test.n, 1797);
    assert_int_equal(t->test.n, 359);
    assert_int_equal(t->model.nhidden, 1);
    assert_int_equal(t->model.hidden[0], 64);
    assert_int_equal(task_steps(t), 200);
    assert_string_equal(task_metric(t), "accuracy");
    assert_true(task_higher_better(t));
    uint64_t h = task_hash(t);
    Task *t2 = load_json("{\"data\":\"builtin:digits\",\"model\":{\"hidden\":[64]},\"train\":{\"lr\":0.003}}", err);
    assert_non_null(t2);
    assert_true(task_hash(t2) == h); /* same normalised spec */
    task_free(t2);
    t2 = load_json("{\"data\":\"builtin:digits\",\"train\":{\"lr\":0.01}}", err);
    assert_true(task_hash(t2) != h);
    task_free(t2);
    task_free(t);
    assert_int_equal(task_load_arg("builtin:diabetes", &t, err), 0);
    assert_int_equal(task_family(t), FAM_REGRESSION);
    assert_string_equal(task_metric(t), "mse");
    assert_false(task_higher_better(t));
    task_free(t);

    /* A task file with a relative CSV path, a label column, a metric and transforms. */
    write_text("sm.csv", "f1,f2,cls\n1,2,a\n2,3,b\n3,1,a\n4,4,b\n5,2,a\n6,3,b\n7,1,a\n8,4,b\n9,2,a\n10,3,b\n");
    write_text("sm.task.json", "{\"data\":\"sm.csv\",\"label\":\"cls\",\"metric\":\"macro_f1\","
                               "\"transform\":{\"label_noise\":0.1},\"split\":{\"val\":0.2,\"test\":0.2}}");
    assert_int_equal(task_load_arg(tmp_path("sm.task.json"), &t, err), 0);
    assert_int_equal(task_outputs(t), 2);
    assert_string_equal(task_name(t), "sm");
    assert_string_equal(task_metric(t), "macro_f1");
    cJSON *spec = task_spec(t);
    char *txt = cJSON_PrintUnformatted(spec);
    printf("normalised spec: %s\n", txt);
    assert_non_null(strstr(txt, "\"label_noise\":0.1"));
    cJSON_free(txt);
    cJSON_Delete(spec);
    task_free(t);

    struct {
        const char *json, *want;
    } bad[] = {
        {"{}", "missing \"data\""},
        {"{\"data\":\"builtin:nope\"}", "unknown built-in 'builtin:nope'"},
        {"{\"data\":\"builtin:digits\",\"bogus\":1}", "unknown key 'bogus'"},
        {"{\"data\":\"builtin:digits\",\"model\":{\"activation\":\"swish\"}}", "'swish' is not relu, tanh or gelu"},
        {"{\"data\":\"builtin:digits\",\"train\":{\"lr\":-1}}", "train.lr: -1 is out of range"},
        {"{\"data\":\"builtin:digits\",\"train\":{\"optimizer\":\"lbfgs\"}}", "'lbfgs' is not adam or sgd"},
        {"{\"data\":\"builtin:digits\",\"metric\":\"mse\"}", "'mse' is not a classification metric"},
        {"{\"data\":\"builtin:diabetes\",\"transform\":{\"label_noise\":0.1}}", "need class labels"},
        {"{\"data\":\"builtin:digits\",\"transform\":{\"outliers\":0.1}}", "corrupts regression targets"},
        {"{\"data\":\"builtin:digits\",\"family\":\"poetry\"}", "'poetry' is not classification"},
        {"{\"data\":\"x.npy\"}", "\"labels\" must name"},
        {"{\"data\":\"nothere.csv\"}", "nothere.csv: cannot open"},
        {"{\"data\":\"sm.csv\",\"label\":\"cls\",\"split\":{\"val\":0.5,\"test\":0.5}}", "leaves too little"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        t = load_json(bad[i].json, err);
        if (t) print_error("spec %s loaded\n", bad[i].json);
        assert_null(t);
        expect_err(err, bad[i].want);
    }
    /* A task file that is not JSON names the file, line and column. */
    write_text("broken.task.json", "{\n  \"data\": \n}");
    assert_int_equal(task_load_arg(tmp_path("broken.task.json"), &t, err), LD_EINVAL);
    expect_err(err, "broken.task.json:3:");
}

static void test_npy_task(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    float x[40 * 2];
    int64_t y[40];
    for (int i = 0; i < 40; i++) {
        x[2 * i] = (float)i;
        x[2 * i + 1] = (float)(i % 3);
        y[i] = i % 2;
    }
    write_npy("fx.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (40, 2), }", x, sizeof x);
    write_npy("fy.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (40,), }", y, sizeof y);
    write_npy("fy3.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (39,), }", y, 39 * 8);
    Task *t = load_json("{\"data\":\"fx.npy\",\"labels\":\"fy.npy\"}", err);
    if (!t) print_error("%s\n", err);
    assert_non_null(t);
    assert_int_equal(task_outputs(t), 2);
    assert_int_equal(t->train.n + t->val.n + t->test.n, 40);
    task_free(t);
    t = load_json("{\"data\":\"fx.npy\",\"labels\":\"fy3.npy\"}", err);
    assert_null(t);
    expect_err(err, "39 labels for 40 rows");
}

/* The task key "missing" end to end: the report in the normalised spec (outside the hash), the
 * log line, and mean filling with the training split's statistics (a filled value standardises
 * to 0). */
static void test_task_missing(void **state) {
    (void)state;
    char err[LD_ERR_MAX], text[8192];
    int k = snprintf(text, sizeof text, "a,b,color,y\n");
    for (int i = 0; i < 60; i++) {
        if (i % 10 == 3) k += snprintf(text + k, sizeof text - (size_t)k, "NA,%d,red,%d\n", i, i % 2);
        else if (i % 10 == 7) k += snprintf(text + k, sizeof text - (size_t)k, "%d,%d,blue,\n", i, i);
        else k += snprintf(text + k, sizeof text - (size_t)k, "%d,%d,%s,%d\n", i, i % 7, i % 3 ? "red" : "blue", i % 2);
    }
    write_text("tm.csv", text);
    Task *t = load_json("{\"data\":\"tm.csv\"}", err);
    assert_null(t);
    expect_err(err, "tm.csv:5: column 1 (\"a\"): missing value \"NA\"");
    t = load_json("{\"data\":\"tm.csv\",\"missing\":\"sometimes\"}", err);
    assert_null(t);
    expect_err(err, "missing: 'sometimes' is not error, drop_rows or mean");
    Task *drop = load_json("{\"data\":\"tm.csv\",\"missing\":\"drop_rows\"}", err);
    if (!drop) print_error("%s\n", err);
    assert_non_null(drop);
    assert_int_equal(drop->train.n + drop->val.n + drop->test.n, 48);
    printf("drop_rows note: %s\n", task_data_note(drop));
    assert_string_equal(task_data_note(drop) + strlen(task_data_note(drop)) - strlen(
                            "12 of 60 rows dropped (missing values); one-hot encoded: color (2 levels)"),
                        "12 of 60 rows dropped (missing values); one-hot encoded: color (2 levels)");
    Task *mean = load_json("{\"data\":\"tm.csv\",\"missing\":\"mean\"}", err);
    if (!mean) print_error("%s\n", err);
    assert_non_null(mean);
    assert_int_equal(mean->train.n + mean->val.n + mean->test.n, 54); /* 6 missing labels dropped */
    assert_int_equal(mean->train.d, 4);
    assert_true(task_hash(mean) != task_hash(drop));
    cJSON *info = task_data_json(mean);
    char *txt = cJSON_PrintUnformatted(info);
    printf("data_info: %s\nnote: %s\n", txt, task_data_note(mean));
    assert_string_equal(txt, "{\"rows\":54,\"features\":4,\"missing\":\"mean\",\"rows_dropped\":6,"
                             "\"values_filled\":6,\"categorical\":\"color (2 levels)\"}");
    cJSON_free(txt);
    cJSON_Delete(info);
    /* Every split is finite; a filled value is exactly 0 after standardisation. */
    const Dataset *sp[3] = {&mean->train, &mean->val, &mean->test};
    int zeros = 0;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < sp[s]->n * sp[s]->d; i++) {
            assert_true(isfinite(sp[s]->x[i]));
            zeros += sp[s]->x[i] == 0.0f && i % sp[s]->d == 0;
        }
    assert_true(zeros >= 6);
    /* The spec carries data_info outside the hash: reloading the normalised spec (as a restart
     * does) accepts it and gives the same hash. */
    cJSON *spec = task_spec(mean);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(spec, "data_info"));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(spec, "missing")), "mean");
    Task *again = NULL;
    assert_int_equal(task_load(spec, NULL, &again, err), 0);
    assert_true(task_hash(again) == task_hash(mean));
    cJSON_Delete(spec);
    task_free(again);
    /* A default task's spec has no "missing" key: hashes of existing tasks do not move. */
    Task *dig = NULL;
    assert_int_equal(task_load_arg("builtin:wine", &dig, err), 0);
    spec = task_spec(dig);
    assert_null(cJSON_GetObjectItemCaseSensitive(spec, "missing"));
    assert_string_equal(task_data_note(dig), "");
    cJSON_Delete(spec);
    task_free(dig);
    task_free(mean);
    task_free(drop);
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lossd_test_data_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* split.folds / split.repeats: every split keeps the same test rows, the validation folds of one
 * shuffle partition the other rows, and a task without folds keeps its hash. */
static void test_folds(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Task *t = load_json("{\"data\": \"builtin:wine\", \"split\": {\"folds\": 5, \"repeats\": 2}}", err);
    if (!t) fail_msg("folds task: %s", err);
    assert_int_equal(task_nfold(t), 10);
    const Task *f0 = task_fold(t, 0);
    assert_ptr_equal(f0, t);
    int nrest = t->train.n + t->val.n, vsum = 0;
    for (uint64_t i = 0; i < 10; i++) {
        const Task *f = task_fold(t, 1000 + i); /* seed s trains on split s % 10 */
        assert_ptr_equal(f, task_fold(t, i));
        assert_int_equal(f->test.n, t->test.n);
        assert_memory_equal(f->test.label, t->test.label, sizeof(int) * (size_t)t->test.n);
        assert_int_equal(f->train.n + f->val.n, nrest);
        if (i < 5) vsum += f->val.n;
        if (i > 0 && f->val.n == t->val.n &&
            !memcmp(f->val.label, t->val.label, sizeof(int) * (size_t)t->val.n) &&
            !memcmp(f->val.x, t->val.x, sizeof(float) * (size_t)t->val.n * (size_t)t->val.d))
            fail_msg("split %d validates on the same rows as split 0", (int)i);
    }
    assert_int_equal(vsum, nrest); /* the five folds of a shuffle cover the non-test rows */
    cJSON *spec = task_spec(t);
    cJSON *sp = cJSON_GetObjectItemCaseSensitive(spec, "split");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(sp, "folds")->valueint, 5);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(sp, "repeats")->valueint, 2);
    Task *again = NULL;
    assert_int_equal(task_load(spec, NULL, &again, err), 0);
    assert_int_equal(task_hash(again), task_hash(t));
    cJSON_Delete(spec);
    task_free(again);
    task_free(t);
    /* without folds: no new keys in the normalised spec, one split */
    t = load_json("{\"data\": \"builtin:wine\"}", err);
    assert_non_null(t);
    assert_int_equal(task_nfold(t), 1);
    assert_ptr_equal(task_fold(t, 7), t);
    spec = task_spec(t);
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "split"), "folds"));
    cJSON_Delete(spec);
    task_free(t);
    assert_null(load_json("{\"data\": \"builtin:wine\", \"split\": {\"repeats\": 2}}", err));
    expect_err(err, "needs split.folds");
    assert_null(load_json("{\"data\": \"builtin:wine\", \"split\": {\"folds\": 10, \"repeats\": 4}}", err));
    expect_err(err, "above 32");
    assert_null(load_json("{\"data\": \"builtin:poisson\", \"family\": \"physics\", \"split\": {\"folds\": 3}}", err));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_ok),    cmocka_unit_test(test_csv_errors), cmocka_unit_test(test_npy),
        cmocka_unit_test(test_split),     cmocka_unit_test(test_transforms), cmocka_unit_test(test_task_specs),
        cmocka_unit_test(test_npy_task),  cmocka_unit_test(test_csv_quoting), cmocka_unit_test(test_csv_missing),
        cmocka_unit_test(test_csv_categorical), cmocka_unit_test(test_task_missing), cmocka_unit_test(test_folds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
