/* eval_batch.c: `lossd eval --batch`: many losses and seeds on one task, read as JSON lines and
 * answered as JSON lines in the input's order, with the task loaded once and worker threads
 * shared by every line. Lines are read as they arrive and each answer is flushed as soon as the
 * lines before it are answered, so a caller may write a few lines, read their answers and go on
 * (an ask-and-tell tuner does). docs/cli.md has the line format. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../evaluator/eval.h"
#include "eval_batch.h"

#define BATCH_MAX_WORKERS 64

typedef struct BatchItem {
    char *line; /* owned until answered */
    long lineno;
    char *out;  /* owned answer (one JSON line), NULL until done */
} BatchItem;

typedef struct Batch {
    const Task *task;
    long steps, every; /* command-line defaults for lines that do not set them */
    BatchItem *items;
    long n, cap, next, printed;
    int eof;
    int nbad;          /* lines answered with status failed or error */
    FILE *out;
    pthread_mutex_t mu;
    pthread_cond_t more;
} Batch;

/* The answer to a line that could not be run: {"line", "id"?, "status": "error", "error"}. */
static char *error_line(long lineno, const cJSON *id, const char *why) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "line", (double)lineno);
    if (id) cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, 1));
    cJSON_AddStringToObject(o, "status", "error");
    cJSON_AddStringToObject(o, "error", why);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

/* An integer field of a line: absent leaves *v alone; returns -1 with why when not an integer
 * in lo..hi. */
static int line_int(const cJSON *o, const char *key, double lo, double hi, long *v, char *why) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x) return 0;
    if (!cJSON_IsNumber(x) || x->valuedouble != (double)(long)x->valuedouble ||
        x->valuedouble < lo || x->valuedouble > hi) {
        snprintf(why, LD_ERR_MAX + 16, "%s: expected an integer in %.0f..%.0f", key, lo, hi);
        return -1;
    }
    *v = (long)x->valuedouble;
    return 0;
}

/* Runs one line; returns the owned answer and sets *bad when it is not a finished run. */
static char *run_line(const Batch *b, const char *line, long lineno, int *bad) {
    char why[LD_ERR_MAX + 16], err[LD_ERR_MAX];
    char *txt = NULL;
    Expr *e = NULL;
    cJSON *o = cJSON_Parse(line);
    const cJSON *id = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "id") : NULL;
    const cJSON *loss = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "loss") : NULL;
    long seed = 0, steps = b->steps, every = b->every;
    *bad = 1;
    if (!cJSON_IsObject(o)) {
        snprintf(why, sizeof why, "not a JSON object");
        goto fail;
    }
    if (!cJSON_IsString(loss)) {
        snprintf(why, sizeof why, "loss: %s", loss ? "expected a string" : "missing");
        goto fail;
    }
    if (line_int(o, "seed", 0, 9007199254740991.0, &seed, why) ||
        line_int(o, "steps", 1, 10000000, &steps, why) ||
        line_int(o, "curve_every", 1, 10000000, &every, why))
        goto fail;
    e = expr_parse(loss->valuestring, err);
    if (!e || expr_check(e, task_family(b->task), err)) {
        snprintf(why, sizeof why, "loss: %s", err);
        goto fail;
    }
    EvalOpts opt = {.seed = (uint64_t)seed, .steps = (int)steps, .curve_every = (int)every};
    EvalResult res;
    if (eval_run(b->task, e, &opt, &res, err)) {
        snprintf(why, sizeof why, "loss: %s", err);
        goto fail;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "line", (double)lineno);
    if (id) cJSON_AddItemToObject(r, "id", cJSON_Duplicate(id, 1));
    cJSON_AddStringToObject(r, "loss", loss->valuestring);
    cJSON_AddNumberToObject(r, "seed", (double)seed);
    cJSON *j = eval_result_json(&res);
    /* the result's fields follow the line's own: move them over in their order */
    while (j && j->child) {
        cJSON *f = cJSON_DetachItemViaPointer(j, j->child);
        cJSON_AddItemToObject(r, f->string, f);
    }
    cJSON_Delete(j);
    txt = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    *bad = !res.ok;
    goto done;
fail:
    txt = error_line(lineno, id, why);
done:
    expr_free(e);
    cJSON_Delete(o);
    return txt;
}

/* Prints every answer that is next in input order (caller holds mu). */
static void flush_ready(Batch *b) {
    while (b->printed < b->n && b->items[b->printed].out) {
        BatchItem *it = &b->items[b->printed++];
        fputs(it->out, b->out);
        fputc('\n', b->out);
        free(it->out);
        it->out = NULL;
    }
    fflush(b->out);
}

static void *batch_worker(void *arg) {
    Batch *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->next >= b->n && !b->eof) pthread_cond_wait(&b->more, &b->mu);
        if (b->next >= b->n) break;
        long i = b->next++;
        char *line = b->items[i].line;
        long lineno = b->items[i].lineno;
        b->items[i].line = NULL;
        if (!line) { /* answered when it was read (out of memory) */
            flush_ready(b);
            continue;
        }
        pthread_mutex_unlock(&b->mu);
        int bad = 0;
        char *out = run_line(b, line, lineno, &bad);
        free(line);
        pthread_mutex_lock(&b->mu);
        b->items[i].out = out ? out : error_line(lineno, NULL, "out of memory");
        b->nbad += bad;
        flush_ready(b);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static int blank(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return *s == 0;
}

/* Reads in (borrowed) to its end, runs every non-blank line on task with nworkers threads and
 * writes the answers to out. Returns 0 when every line trained to the end, 1 when any line
 * failed or was an error, 2 when the batch could not run at all (message on stderr). */
int eval_batch(const Task *task, FILE *in, FILE *out, int nworkers, long steps, long every) {
    Batch b = {.task = task, .steps = steps, .every = every, .out = out};
    pthread_t th[BATCH_MAX_WORKERS];
    int nt = 0, status = 2;
    if (nworkers < 1) nworkers = 1;
    if (nworkers > BATCH_MAX_WORKERS) nworkers = BATCH_MAX_WORKERS;
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.more, NULL);
    for (; nt < nworkers; nt++)
        if (pthread_create(&th[nt], NULL, batch_worker, &b) != 0) break;
    if (nt == 0) {
        fprintf(stderr, "lossd eval: --workers: cannot start a thread\n");
        goto done;
    }
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int oom = 0;
    while (getline(&line, &cap, in) >= 0) {
        lineno++;
        if (blank(line)) continue;
        pthread_mutex_lock(&b.mu);
        if (b.n == b.cap) {
            long nc = b.cap ? 2 * b.cap : 64;
            BatchItem *ni = realloc(b.items, (size_t)nc * sizeof *ni);
            if (!ni) {
                oom = 1;
                pthread_mutex_unlock(&b.mu);
                break;
            }
            b.items = ni;
            b.cap = nc;
        }
        b.items[b.n] = (BatchItem){.line = strdup(line), .lineno = lineno};
        if (!b.items[b.n].line) {
            b.items[b.n].out = error_line(lineno, NULL, "out of memory");
            b.nbad++;
        }
        b.n++;
        pthread_cond_signal(&b.more);
        pthread_mutex_unlock(&b.mu);
    }
    free(line);
    pthread_mutex_lock(&b.mu);
    b.eof = 1;
    pthread_cond_broadcast(&b.more);
    pthread_mutex_unlock(&b.mu);
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    pthread_mutex_lock(&b.mu);
    flush_ready(&b); /* lines that were errors from the start */
    pthread_mutex_unlock(&b.mu);
    if (oom) fprintf(stderr, "lossd eval: --batch: out of memory after line %ld\n", lineno);
    status = oom ? 2 : b.nbad ? 1 : 0;
done:
    for (long i = 0; i < b.n; i++) {
        free(b.items[i].line);
        free(b.items[i].out);
    }
    free(b.items);
    pthread_cond_destroy(&b.more);
    pthread_mutex_destroy(&b.mu);
    return status;
}
