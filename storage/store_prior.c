/* store_prior.c: what the learned pre-screen reads of earlier jobs (store_prior_read): their
 * candidates' first-level results with their tasks, for search_set_prior. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int store_prior_read(Store *s, const char *family, uint64_t task_hash, int limit, cJSON **out,
                     char *err)
{
    const char *what = "pre-screen prior";
    int64_t *tid = NULL;
    int nt = 0, rc = LD_OK, src;
    *out = NULL;
    if (!family || !*family)
        return ld_err(err, LD_EINVAL, "store: %s: family is required", what);
    cJSON *o = cJSON_CreateObject();
    cJSON *tasks = cJSON_AddArrayToObject(o, "tasks"), *rows = cJSON_AddArrayToObject(o, "rows");
    if (!o || !tasks || !rows) {
        cJSON_Delete(o);
        return ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
    }
    sqlite3_stmt *st = store_stmt_(s, ST_PRIOR_ROWS, what, err);
    if (!st) {
        cJSON_Delete(o);
        return LD_EIO;
    }
    sqlite3_bind_text(st, 1, family, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : 1);
    if (task_hash)
        sqlite3_bind_int64(st, 3, (int64_t)task_hash);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t t = sqlite3_column_int64(st, 1);
        int ti = 0;
        while (ti < nt && tid[ti] != t)
            ti++;
        if (ti == nt) { /* a task met for the first time: its hash, direction and spec */
            int64_t *nv = realloc(tid, (size_t)(nt + 1) * sizeof *tid);
            cJSON *tj = cJSON_CreateObject();
            if (!nv || !tj) {
                free(nv ? nv : tid);
                tid = NULL;
                cJSON_Delete(tj);
                rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
                goto done;
            }
            tid = nv;
            tid[nt++] = t;
            char h[24];
            snprintf(h, sizeof h, "%016llx", (unsigned long long)sqlite3_column_int64(st, 2));
            cJSON_AddStringToObject(tj, "hash", h);
            cJSON_AddNumberToObject(tj, "higher_better", sqlite3_column_int(st, 3) != 0);
            const char *spec = (const char *)sqlite3_column_text(st, 4);
            cJSON *sj = spec ? cJSON_Parse(spec) : NULL;
            cJSON_AddItemToObject(tj, "spec", sj ? sj : cJSON_CreateNull());
            cJSON_AddItemToArray(tasks, tj);
        }
        cJSON *r = cJSON_CreateArray();
        const char *expr = (const char *)sqlite3_column_text(st, 8);
        cJSON_AddItemToArray(r, cJSON_CreateNumber((double)sqlite3_column_int64(st, 0)));
        cJSON_AddItemToArray(r, cJSON_CreateNumber(ti));
        cJSON_AddItemToArray(r, cJSON_CreateNumber(sqlite3_column_int(st, 5)));
        cJSON_AddItemToArray(r, cJSON_CreateNumber(sqlite3_column_int(st, 7)));
        cJSON_AddItemToArray(r, cJSON_CreateNumber(sqlite3_column_int(st, 9)));
        cJSON_AddItemToArray(r, cJSON_CreateNumber(sqlite3_column_int(st, 10)));
        cJSON_AddItemToArray(r, sqlite3_column_type(st, 11) == SQLITE_NULL
                                    ? cJSON_CreateNull()
                                    : cJSON_CreateNumber(sqlite3_column_double(st, 11)));
        cJSON_AddItemToArray(r, cJSON_CreateString(expr ? expr : ""));
        if (cJSON_GetArraySize(r) != 8) {
            cJSON_Delete(r);
            rc = ld_err(err, LD_ENOMEM, "store: %s: out of memory", what);
            goto done;
        }
        cJSON_AddItemToArray(rows, r);
    }
    if (src != SQLITE_DONE)
        rc = store_sqlerr_(s, src, what, err);
done:
    sqlite3_reset(st);
    free(tid);
    if (rc != LD_OK) {
        cJSON_Delete(o);
        return rc;
    }
    *out = o;
    return LD_OK;
}
