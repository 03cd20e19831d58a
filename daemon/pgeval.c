/* pgeval.c: one leased item's evaluation (pgeval.h): tasks by the hash items carry, their data
 * files by content, eval_work, and the outcome as the queue's result. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/work.h"
#include "../evaluator/eval.h"
#include "pgeval.h"
#include "pgworker.h"

/* The spec keys that may name a data file (task.c's load_table reads these two). */
static const char *const file_keys[] = {"data", "labels", NULL};

typedef struct CachedTask {
    uint64_t hash;
    Task *task; /* NULL when it could not be loaded: err says why */
    char err[LD_ERR_MAX];
} CachedTask;

struct PgeTasks {
    pthread_mutex_t mu;
    Pgq *q; /* its own connection: a worker loop's belongs to its I/O thread */
    char *conninfo;
    PgqOpts qo;
    char schema[64];
    char dir[1024]; /* fetched files, by SHA-256 */
    int own_dir;    /* dir is this process's temporary directory: removed at the end */
    CachedTask *e;
    int n, cap;
};

static int is_file_ref(const char *s) { return s && strncmp(s, "builtin:", 8) != 0; }

static const char *file_ext(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && !strcmp(path + n - 4, ".npy") ? ".npy" : ".csv";
}

int pge_open(const char *conninfo, const PgqOpts *qopts, const char *data_dir, PgeTasks **out,
             char *err)
{
    *out = NULL;
    PgeTasks *ts = calloc(1, sizeof *ts);
    if (!ts || !(ts->conninfo = strdup(conninfo ? conninfo : ""))) {
        free(ts);
        return ld_err(err, LD_ENOMEM, "worker: out of memory");
    }
    ts->qo = qopts ? *qopts : (PgqOpts){0};
    ts->qo.flags = (ts->qo.flags & ~PGQ_MIGRATE) | PGQ_WORKER;
    if (ts->qo.schema) { /* our own copy: the caller's may go */
        snprintf(ts->schema, sizeof ts->schema, "%s", ts->qo.schema);
        ts->qo.schema = ts->schema;
    }
    int rc = LD_OK;
    if (data_dir) {
        snprintf(ts->dir, sizeof ts->dir, "%s", data_dir);
        if (mkdir(ts->dir, 0700) != 0 && errno != EEXIST)
            rc = ld_err(err, LD_EIO, "worker: data directory %s: %s", ts->dir, strerror(errno));
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(ts->dir, sizeof ts->dir, "%s/lossd-data.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(ts->dir))
            rc = ld_err(err, LD_EIO, "worker: temporary data directory %s: %s", ts->dir,
                        strerror(errno));
        ts->own_dir = rc == LD_OK;
    }
    if (rc != LD_OK) {
        free(ts->conninfo);
        free(ts);
        return rc;
    }
    pthread_mutex_init(&ts->mu, NULL);
    *out = ts;
    return LD_OK;
}

void pge_free(PgeTasks *ts)
{
    if (!ts)
        return;
    for (int i = 0; i < ts->n; i++)
        task_free(ts->e[i].task);
    free(ts->e);
    pgq_close(ts->q);
    if (ts->own_dir) { /* only files this process wrote live there */
        DIR *dh = opendir(ts->dir);
        struct dirent *de;
        char path[1400];
        while (dh && (de = readdir(dh)))
            if (de->d_name[0] != '.') {
                snprintf(path, sizeof path, "%s/%s", ts->dir, de->d_name);
                unlink(path);
            }
        if (dh)
            closedir(dh);
        rmdir(ts->dir);
    }
    pthread_mutex_destroy(&ts->mu);
    free(ts->conninfo);
    free(ts);
}

/* The local copy of the bytes stored under hex, fetched when absent or not matching its hash,
 * written whole under a temporary name and renamed. Its path goes to path. Caller holds mu. */
static int fetch_file(PgeTasks *ts, const char *hex, const char *ext, char *path, size_t cap,
                      char *err)
{
    snprintf(path, cap, "%s/%s%s", ts->dir, hex, ext);
    size_t n = 0;
    char got[65], e2[LD_ERR_MAX];
    char *have = ld_read_file(path, &n, e2);
    if (have) {
        pgq_sha256_hex(have, n, got);
        free(have);
        if (!strcmp(got, hex))
            return LD_OK;
    }
    void *bytes = NULL;
    int rc = pgq_data_get(ts->q, hex, &bytes, &n, err);
    if (rc != LD_OK)
        return rc;
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(bytes, 1, n, f) == n;
    ok = f && fclose(f) == 0 && ok;
    free(bytes);
    if (!ok || rename(tmp, path) != 0) {
        rc = ld_err(err, LD_EIO, "%s: cannot write: %s", tmp, strerror(errno));
        unlink(tmp);
    }
    return rc;
}

/* Reads the spec stored under hex and loads it: files listed in its "data_sha256" are fetched
 * by content and read from the local copies; the task must then hash as the item says (its
 * spec with the daemon's paths put back). Returns LD_OK and the task (owned) in *out, or a code
 * (LD_EIO: the queue's connection) with err. Caller holds mu; ts->q is open. */
static int load_task(PgeTasks *ts, uint64_t hash, const char *hex, Task **out, char *err)
{
    char *text = NULL;
    Task *t = NULL;
    cJSON *spec = NULL, *norm = NULL, *orig = NULL;
    char *ntext = NULL;
    int rc = pgq_task_get(ts->q, hex, &text, err);
    if (rc != LD_OK)
        goto done;
    spec = cJSON_Parse(text);
    if (!cJSON_IsObject(spec)) {
        rc = ld_err(err, LD_EINVAL, "its spec is not a JSON object");
        goto done;
    }
    cJSON *files = cJSON_DetachItemFromObjectCaseSensitive(spec, "data_sha256");
    orig = cJSON_CreateObject(); /* key -> the daemon's path, put back for the hash */
    for (int k = 0; file_keys[k] && files; k++) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(files, file_keys[k]);
        cJSON *p = cJSON_GetObjectItemCaseSensitive(spec, file_keys[k]);
        if (!h)
            continue;
        if (!cJSON_IsString(h) || !cJSON_IsString(p) || strlen(h->valuestring) != 64) {
            rc = ld_err(err, LD_EINVAL, "data_sha256.%s: expected a SHA-256 of the spec's file",
                        file_keys[k]);
            break;
        }
        char path[1100];
        rc = fetch_file(ts, h->valuestring, file_ext(p->valuestring), path, sizeof path, err);
        if (rc != LD_OK)
            break;
        cJSON_AddStringToObject(orig, file_keys[k], p->valuestring);
        cJSON_ReplaceItemInObjectCaseSensitive(spec, file_keys[k], cJSON_CreateString(path));
    }
    cJSON_Delete(files);
    if (rc == LD_OK)
        rc = task_load(spec, NULL, &t, err);
    if (rc != LD_OK)
        goto done;
    uint64_t got = task_hash(t);
    if (orig->child) { /* loaded from local copies: hash it with the daemon's paths */
        norm = task_spec(t);
        cJSON_DeleteItemFromObjectCaseSensitive(norm, "name");
        cJSON_DeleteItemFromObjectCaseSensitive(norm, "data_info");
        const cJSON *o;
        cJSON_ArrayForEach(o, orig)
        cJSON_ReplaceItemInObjectCaseSensitive(norm, o->string, cJSON_CreateString(o->valuestring));
        ntext = norm ? cJSON_PrintUnformatted(norm) : NULL;
        got = ntext ? ld_hash64(ntext, strlen(ntext)) : 0;
    }
    if (got != hash)
        rc = ld_err(err, LD_ESTATE,
                    "its spec loads here as task %016llx (another lossd version, or data files "
                    "that differ on this host)",
                    (unsigned long long)got);
done:
    if (rc != LD_OK) {
        task_free(t);
        t = NULL;
    }
    free(ntext);
    cJSON_Delete(norm);
    cJSON_Delete(orig);
    cJSON_Delete(spec);
    free(text);
    *out = t;
    return rc;
}

/* The task stored under hash, loaded once (a failure is remembered too, except a lost
 * connection). Writes the reason into why and returns NULL when it cannot be had. */
static const Task *task_get(PgeTasks *ts, uint64_t hash, char *why)
{
    pthread_mutex_lock(&ts->mu);
    for (int i = 0; i < ts->n; i++)
        if (ts->e[i].hash == hash) {
            const Task *found = ts->e[i].task;
            if (!found)
                snprintf(why, LD_ERR_MAX, "%s", ts->e[i].err);
            pthread_mutex_unlock(&ts->mu);
            return found;
        }
    char hex[17], err[LD_ERR_MAX] = "";
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hash);
    Task *t = NULL;
    int rc = ts->q ? LD_OK : pgq_open(ts->conninfo, &ts->qo, &ts->q, err);
    if (rc == LD_OK)
        rc = load_task(ts, hash, hex, &t, err);
    if (rc == LD_EIO || rc == LD_ENOTFOUND) {
        /* a lost connection (reopen next time), or a task not stored yet: remember nothing */
        pgq_close(ts->q);
        ts->q = NULL;
        snprintf(why, LD_ERR_MAX, "task %s: %.200s", hex, err);
        pthread_mutex_unlock(&ts->mu);
        return NULL;
    }
    if (ts->n == ts->cap) {
        int cap = ts->cap ? 2 * ts->cap : 8;
        CachedTask *p = realloc(ts->e, (size_t)cap * sizeof *p);
        if (p) {
            ts->e = p;
            ts->cap = cap;
        }
    }
    if (ts->n < ts->cap) {
        CachedTask *c = &ts->e[ts->n++];
        c->hash = hash;
        c->task = t;
        snprintf(c->err, sizeof c->err, "task %s: %.200s", hex, err);
    } else if (t) { /* out of memory: cannot keep it */
        task_free(t);
        t = NULL;
        snprintf(err, sizeof err, "out of memory");
    }
    if (!t)
        snprintf(why, LD_ERR_MAX, "task %s: %.200s", hex, err);
    pthread_mutex_unlock(&ts->mu);
    return t;
}

/* The part of an outcome that two runs of the same item must agree on: not its wall time. */
static char *fingerprint(const WorkOutcome *o)
{
    char buf[LD_ERR_MAX + 160];
    if (o->status == WORK_OK)
        snprintf(buf, sizeof buf, "ok val=%.17g test=%.17g steps=%d loss=%.9g", o->res.val,
                 o->res.test, o->res.steps, o->res.final_loss);
    else
        snprintf(buf, sizeof buf, "%s steps=%d %s", work_status_name(o->status), o->res.steps,
                 o->res.error);
    return strdup(buf);
}

int pge_eval(void *ctx, const PgqItem *it, const volatile int *cancel, char **result, char **fp,
             char *reason)
{
    PgeTasks *ts = ctx;
    static WorkItem blank;
    WorkItem *w = malloc(sizeof *w);
    WorkOutcome *out = malloc(sizeof *out);
    char err[LD_ERR_MAX];
    int rc = w && out ? LD_OK : ld_err(reason, LD_ENOMEM, "out of memory");
    cJSON *j = rc == LD_OK ? cJSON_Parse(it->item) : NULL;
    if (rc == LD_OK) {
        *w = blank;
        rc = work_item_from_json(j, w, err);
        if (rc != LD_OK)
            ld_err(reason, rc, "work item: %.200s", err);
    }
    cJSON_Delete(j);
    char hex[17];
    if (rc == LD_OK) {
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)w->task_hash);
        if (w->job_id != it->job_id || w->seq != it->seq || strcmp(hex, it->task_hash))
            rc = ld_err(reason, LD_EINVAL,
                        "work item: it says job %lld seq %lld task %s, its queue row job %lld "
                        "seq %lld task %.20s",
                        (long long)w->job_id, (long long)w->seq, hex, (long long)it->job_id,
                        (long long)it->seq, it->task_hash);
    }
    const Task *t = rc == LD_OK ? task_get(ts, w->task_hash, reason) : NULL;
    if (rc == LD_OK && !t)
        rc = LD_ENOTFOUND;
    if (rc == LD_OK) {
        eval_work_cancel(t, w, cancel, out); /* parses and checks the expression like any input */
        if (out->status == WORK_CANCELLED) {
            rc = PGW_CANCELLED;
        } else {
            cJSON *oj = work_outcome_json(out);
            *result = oj ? cJSON_PrintUnformatted(oj) : NULL;
            cJSON_Delete(oj);
            *fp = fingerprint(out);
            if (!*result)
                rc = ld_err(reason, LD_ENOMEM, "out of memory");
        }
    }
    free(w);
    free(out);
    return rc;
}

int pge_spec_with_data(Pgq *q, const char *spec, char **out, char *err)
{
    *out = NULL;
    cJSON *j = cJSON_Parse(spec);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ld_err(err, LD_EINVAL, "task spec: not a JSON object");
    }
    int rc = LD_OK;
    cJSON *files = NULL;
    for (int k = 0; file_keys[k] && rc == LD_OK; k++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, file_keys[k]);
        if (!cJSON_IsString(p) || !is_file_ref(p->valuestring))
            continue;
        size_t n = 0;
        char e2[LD_ERR_MAX], hex[65];
        char *bytes = ld_read_file(p->valuestring, &n, e2);
        if (!bytes) { /* not the queue's fault: LD_ENOTFOUND, so no reconnect is tried */
            rc = ld_err(err, LD_ENOTFOUND, "task data: %.200s", e2);
            break;
        }
        rc = pgq_data_put(q, bytes, n, hex, err);
        free(bytes);
        if (rc == LD_OK && !files)
            files = cJSON_AddObjectToObject(j, "data_sha256");
        if (rc == LD_OK)
            cJSON_AddStringToObject(files, file_keys[k], hex);
    }
    if (rc == LD_OK) {
        *out = files ? cJSON_PrintUnformatted(j) : strdup(spec);
        if (!*out)
            rc = ld_err(err, LD_ENOMEM, "task spec: out of memory");
    }
    cJSON_Delete(j);
    return rc;
}
