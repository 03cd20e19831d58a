/* ctl_format.c: leaderboard entries as CSV or JSON lines, for spreadsheets and scripts
 * (`lossctl leaderboard JOB --format csv|jsonl`). */
#include "ctl_format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A column: a scalar member of an entry, or a task metric ("digits.accuracy" the mean,
 * "digits.accuracy.test" the test mean). */
typedef struct Col {
    char name[160];
    char task[64], metric[48];
    int test; /* task metric column: 1 for the test mean */
} Col;

typedef struct Cols {
    Col *v;
    int n, cap;
} Cols;

static int cols_add(Cols *c, const char *name, const char *task, const char *metric, int test) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i].name, name) == 0) return 0;
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 32;
        Col *nv = realloc(c->v, sizeof *nv * (size_t)cap);
        if (!nv) return -1;
        c->v = nv;
        c->cap = cap;
    }
    Col *col = &c->v[c->n++];
    memset(col, 0, sizeof *col);
    snprintf(col->name, sizeof col->name, "%s", name);
    if (task) snprintf(col->task, sizeof col->task, "%s", task);
    if (metric) snprintf(col->metric, sizeof col->metric, "%s", metric);
    col->test = test;
    return 0;
}

/* One CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180). */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* A number as the shortest text that reads back the same; empty for a missing one. */
static void num_text(char *buf, size_t n, const cJSON *v) {
    buf[0] = '\0';
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return;
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v->valuedouble);
        if (strtod(buf, NULL) == v->valuedouble) return;
    }
}

static void cell(FILE *f, const Col *col, const cJSON *e) {
    char b[64];
    const cJSON *v;
    if (col->task[0]) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "metrics"), col->task),
            col->metric);
        v = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, col->test ? "test_mean" : "mean") : m;
    } else {
        v = cJSON_GetObjectItemCaseSensitive(e, col->name);
    }
    if (cJSON_IsString(v)) csv_field(f, v->valuestring);
    else if (cJSON_IsBool(v)) fputs(cJSON_IsTrue(v) ? "true" : "false", f);
    else if (cJSON_IsNumber(v)) {
        num_text(b, sizeof b, v);
        fputs(b, f);
    }
}

static int format_rows(const cJSON *entries, int64_t job, int csv);

int ctl_format_entries(const cJSON *res, int64_t job, const char *format) {
    int csv = strcmp(format, "csv") == 0;
    if (!csv && strcmp(format, "jsonl") != 0)
        return ctl_fail(2, "leaderboard: --format must be csv or jsonl, not '%s'", format);
    /* the entries, then the baseline's row when the reply carries it apart (store_leaderboard) */
    cJSON *rows = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(res, "entries"), 1);
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(res, "baseline");
    if (!rows) rows = cJSON_CreateArray();
    if (!rows) return ctl_fail(1, "out of memory");
    if (cJSON_IsObject(base)) cJSON_AddItemToArray(rows, cJSON_Duplicate(base, 1));
    int rc = format_rows(rows, job, csv);
    cJSON_Delete(rows);
    return rc;
}

static int format_rows(const cJSON *entries, int64_t job, int csv) {
    const cJSON *e, *it;
    if (!csv) {
        cJSON_ArrayForEach(e, entries) {
            cJSON *copy = cJSON_Duplicate(e, 1);
            if (!copy) return ctl_fail(1, "out of memory");
            if (job && !cJSON_GetObjectItemCaseSensitive(copy, "job_id"))
                cJSON_AddNumberToObject(copy, "job_id", (double)job);
            ctl_print_json(copy);
            cJSON_Delete(copy);
        }
        return 0;
    }
    /* Columns: job_id, then every scalar member in the order the entries show them, then
     * every task metric's mean and test mean. */
    Cols cols = {0};
    int rc = job ? cols_add(&cols, "job_id", NULL, NULL, 0) : 0;
    cJSON_ArrayForEach(e, entries) {
        cJSON_ArrayForEach(it, e) {
            if (!cJSON_IsArray(it) && !cJSON_IsObject(it) && it->string)
                rc |= cols_add(&cols, it->string, NULL, NULL, 0);
        }
    }
    cJSON_ArrayForEach(e, entries) {
        const cJSON *task;
        cJSON_ArrayForEach(task, cJSON_GetObjectItemCaseSensitive(e, "metrics")) {
            const cJSON *m;
            cJSON_ArrayForEach(m, task) {
                char name[160];
                snprintf(name, sizeof name, "%s.%s", task->string, m->string);
                rc |= cols_add(&cols, name, task->string, m->string, 0);
                if (cJSON_IsObject(m)) {
                    snprintf(name, sizeof name, "%s.%s.test", task->string, m->string);
                    rc |= cols_add(&cols, name, task->string, m->string, 1);
                }
            }
        }
    }
    if (rc) {
        free(cols.v);
        return ctl_fail(1, "out of memory");
    }
    for (int i = 0; i < cols.n; i++) {
        if (i) putchar(',');
        csv_field(stdout, cols.v[i].name);
    }
    putchar('\n');
    cJSON_ArrayForEach(e, entries) {
        for (int i = 0; i < cols.n; i++) {
            if (i) putchar(',');
            if (strcmp(cols.v[i].name, "job_id") == 0 && job &&
                !cJSON_GetObjectItemCaseSensitive(e, "job_id"))
                printf("%lld", (long long)job);
            else
                cell(stdout, &cols.v[i], e);
        }
        putchar('\n');
    }
    free(cols.v);
    return 0;
}
