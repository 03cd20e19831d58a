/* pgworker.c: the worker loop (pgworker.h). Slots pass between the I/O thread (the caller's)
 * and the evaluator threads under one mutex: FREE -> READY (leased, by the I/O thread) ->
 * RUNNING (an evaluator took it) -> DONE (evaluated) -> FREE (its result written). Only the I/O
 * thread touches the queue, so one connection serves the whole process. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pgworker.h"

enum { SLOT_FREE, SLOT_READY, SLOT_RUNNING, SLOT_DONE };

typedef struct Slot {
    int state;
    PgqItem item;      /* item.item owned */
    char *result, *fp; /* the callback's, owned */
    int rc;
    volatile int cancel; /* raised (only) by the I/O thread while RUNNING: see PgwEvalFn */
    char reason[LD_ERR_MAX];
} Slot;

typedef struct Loop {
    pthread_mutex_t mu;
    pthread_cond_t work; /* evaluators: a slot is ready, or quit */
    pthread_cond_t io;   /* the I/O thread: a slot is done */
    Slot *slots;
    int nslots, quit, draining, nice;
    PgwEvalFn fn;
    void *ctx;
} Loop;

/* The ready slot holding the oldest item, or NULL (none, or draining). Caller holds mu. */
static Slot *next_ready(Loop *l)
{
    Slot *best = NULL;
    for (int i = 0; i < l->nslots && !l->draining; i++)
        if (l->slots[i].state == SLOT_READY && (!best || l->slots[i].item.id < best->item.id))
            best = &l->slots[i];
    return best;
}

static void *eval_main(void *arg)
{
    Loop *l = arg;
    if (l->nice) { /* best effort: a nicer evaluator is slower to finish, not wrong */
        id_t tid = (id_t)syscall(SYS_gettid);
        errno = 0;
        int prio = getpriority(PRIO_PROCESS, tid);
        if (errno == 0)
            (void)setpriority(PRIO_PROCESS, tid, prio + l->nice);
    }
    pthread_mutex_lock(&l->mu);
    for (;;) {
        Slot *s = NULL;
        while (!l->quit && !(s = next_ready(l)))
            pthread_cond_wait(&l->work, &l->mu);
        if (!s)
            break;
        s->state = SLOT_RUNNING;
        pthread_mutex_unlock(&l->mu);
        s->reason[0] = 0;
        s->result = s->fp = NULL;
        s->rc = l->fn(l->ctx, &s->item, &s->cancel, &s->result, &s->fp, s->reason);
        pthread_mutex_lock(&l->mu);
        s->state = SLOT_DONE;
        pthread_cond_signal(&l->io);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void slot_clear(Slot *s)
{
    free(s->item.item);
    free(s->result);
    free(s->fp);
    memset(s, 0, sizeof *s); /* state SLOT_FREE */
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int stopped(const PgwOpts *o) { return o->stop && *o->stop; }

/* Reopens the queue after a lost connection, backing off from 0.5 s to 10 s between tries, for
 * as long as it takes or until a stop is asked for (then LD_EIO and *q stays NULL). */
static int reconnect(Pgq **q, const char *conninfo, const PgqOpts *qo, const PgwOpts *o, FILE *log,
                     PgwStats *st)
{
    char err[LD_ERR_MAX];
    pgq_close(*q);
    *q = NULL;
    for (double wait = 0.5; !stopped(o); wait = wait < 5 ? wait * 2 : 10) {
        sleep_s(wait);
        if (pgq_open(conninfo, qo, q, err) == LD_OK) {
            st->reconnects++;
            fprintf(log, "lossd worker: reconnected to the queue\n");
            return LD_OK;
        }
        fprintf(log, "lossd worker: %s (retrying in %.1f s)\n", err, wait);
    }
    return LD_EIO;
}

/* Writes slot s's result, or its failure. LD_OK once written (whatever the outcome), else the
 * queue's code (the slot stays DONE and is written again later). */
static int write_slot(Pgq *q, int64_t wid, Slot *s, PgwStats *st, FILE *log)
{
    PgqCompletion c;
    char err[LD_ERR_MAX];
    int rc = LD_OK, failed = s->rc != LD_OK;
    if (!failed) {
        rc = pgq_complete(q, wid, s->item.id, s->result, s->fp, &c, err);
        if (rc == LD_EINVAL) { /* the callback's result is not usable: that is its failure */
            snprintf(s->reason, sizeof s->reason, "the evaluation's result was refused: %.200s",
                     err);
            failed = 1;
        }
    }
    if (failed)
        rc = pgq_fail(q, wid, s->item.id, s->reason[0] ? s->reason : "the evaluation failed", &c,
                      err);
    if (rc != LD_OK) {
        fprintf(log, "lossd worker: job %lld seq %lld: %s\n", (long long)s->item.job_id,
                (long long)s->item.seq, err);
        return rc;
    }
    switch (c.outcome) {
    case PGQ_DONE:
        st->done++;
        st->failed += failed;
        break;
    case PGQ_DUPLICATE:
        st->duplicates++;
        break;
    case PGQ_MISMATCH:
        st->mismatches++;
        fprintf(log, "lossd worker: %s\n", c.detail);
        fflush(log);
        break;
    case PGQ_GONE:
        st->gone++;
        break;
    }
    return LD_OK;
}

/* Puts leased items into free slots (malformed ones are failed at once). Returns the queue's
 * code of a failing pgq_fail, else LD_OK. */
static int take_items(Loop *l, Pgq *q, int64_t wid, PgqItem *items, int n, PgwStats *st, FILE *log)
{
    int rc = LD_OK;
    for (int i = 0; i < n; i++) {
        if (items[i].bad[0]) {
            Slot bad = {.item = items[i], .rc = LD_EINVAL};
            snprintf(bad.reason, sizeof bad.reason, "%s", items[i].bad);
            int wrc = write_slot(q, wid, &bad, st, log);
            rc = rc == LD_OK ? wrc : rc;
            continue;
        }
        pthread_mutex_lock(&l->mu);
        for (int k = 0; k < l->nslots; k++)
            if (l->slots[k].state == SLOT_FREE) {
                l->slots[k].item = items[i];
                items[i].item = NULL; /* the slot owns it now */
                l->slots[k].state = SLOT_READY;
                break;
            }
        pthread_cond_signal(&l->work);
        pthread_mutex_unlock(&l->mu);
    }
    return rc;
}

/* Raises the cancel flag of a running slot; caller holds mu. */
static void slot_cancel(Slot *s) { __atomic_store_n(&s->cancel, 1, __ATOMIC_RELAXED); }

/* Heartbeat: extends the leases, frees ready slots whose item is no longer ours and tells
 * running ones to stop. */
static int beat(Loop *l, Pgq *q, int64_t wid, PgwStats *st, FILE *log)
{
    int64_t held[512];
    int n = 0;
    char err[LD_ERR_MAX];
    int rc = pgq_heartbeat(q, wid, held, 512, &n, err);
    if (rc != LD_OK)
        return rc;
    pthread_mutex_lock(&l->mu);
    for (int k = 0; k < l->nslots; k++) {
        Slot *s = &l->slots[k];
        int mine = 0;
        for (int i = 0; i < n && !mine; i++)
            mine = held[i] == s->item.id;
        if (s->state == SLOT_READY && !mine) {
            slot_clear(s);
            st->gone++;
        } else if (s->state == SLOT_RUNNING && !mine && !s->cancel) {
            slot_cancel(s);
            fprintf(log, "lossd worker: job %lld seq %lld is no longer ours (cancelled or re-leased): "
                         "stopping it\n", (long long)s->item.job_id, (long long)s->item.seq);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return LD_OK;
}

int pgw_run(const char *conninfo, const PgqOpts *qopts, const PgwOpts *o, PgwEvalFn fn, void *ctx,
            PgwStats *st_out, char *err)
{
    PgwStats st = {0};
    if (!o || !fn || o->threads < 1 || o->threads > 256)
        return ld_err(err, LD_EINVAL, "worker: threads %d: expected 1 to 256", o ? o->threads : 0);
    FILE *log = o->log ? o->log : stderr;
    PgqOpts qo = qopts ? *qopts : (PgqOpts){0};
    qo.flags |= PGQ_WORKER;
    Pgq *q = NULL;
    int rc = pgq_open(conninfo, &qo, &q, err);
    if (rc != LD_OK)
        return rc;
    char host[256] = "?";
    if (o->host)
        snprintf(host, sizeof host, "%s", o->host);
    else if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "?");
    rc = pgq_worker_register(q, host, (int)getpid(), o->threads, &st.worker_id, err);
    if (rc != LD_OK) {
        pgq_close(q);
        return rc;
    }

    Loop l = {.nslots = 2 * o->threads, .fn = fn, .ctx = ctx, .nice = o->nice};
    l.slots = calloc((size_t)l.nslots, sizeof *l.slots);
    pthread_t *th = calloc((size_t)o->threads, sizeof *th);
    int nth = 0;
    if (!l.slots || !th) {
        rc = ld_err(err, LD_ENOMEM, "worker: out of memory");
        goto done;
    }
    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.work, NULL);
    pthread_cond_init(&l.io, NULL);
    for (; nth < o->threads; nth++)
        if (pthread_create(&th[nth], NULL, eval_main, &l)) {
            rc = ld_err(err, LD_ENOMEM, "worker: cannot start evaluator thread %d", nth + 1);
            goto done; /* nothing leased yet */
        }

    double beat_every = pgq_lease_seconds(q) / 3, last_beat = ld_now_ms() / 1000;
    double last_busy = last_beat, empty_since = 0;
    long written = 0;
    for (int empty = 0;;) {
        /* 1. write what the evaluators finished */
        int ndone = 0, nready = 0, nrunning = 0;
        Slot *done[512];
        pthread_mutex_lock(&l.mu);
        for (int k = 0; k < l.nslots; k++) {
            if (l.slots[k].state == SLOT_DONE)
                done[ndone++] = &l.slots[k];
            nready += l.slots[k].state == SLOT_READY;
            nrunning += l.slots[k].state == SLOT_RUNNING;
        }
        pthread_mutex_unlock(&l.mu);
        int qrc = LD_OK;
        for (int i = 0; i < ndone && qrc == LD_OK; i++) {
            if (done[i]->rc == PGW_CANCELLED) { /* not a result: the item goes back */
                pthread_mutex_lock(&l.mu);
                slot_clear(done[i]);
                pthread_mutex_unlock(&l.mu);
                st.gone++;
                continue;
            }
            qrc = write_slot(q, st.worker_id, done[i], &st, log);
            if (qrc == LD_OK) {
                pthread_mutex_lock(&l.mu);
                slot_clear(done[i]);
                pthread_mutex_unlock(&l.mu);
                written++;
            }
        }
        int left = 0;
        pthread_mutex_lock(&l.mu);
        for (int k = 0; k < l.nslots; k++)
            left += l.slots[k].state == SLOT_DONE;
        pthread_mutex_unlock(&l.mu);

        /* 2. stop: no more leases; what runs finishes and is written, what is ready is handed
         * back; then out. max_evals only bounds the leases (below). */
        int stopping = stopped(o);
        if (stopping) {
            pthread_mutex_lock(&l.mu);
            l.draining = 1;
            for (int k = 0; k < l.nslots && o->cancel_on_stop; k++)
                if (l.slots[k].state == SLOT_RUNNING)
                    slot_cancel(&l.slots[k]);
            pthread_mutex_unlock(&l.mu);
        }
        if ((stopping && nrunning == 0 && left == 0) ||
            (o->max_evals > 0 && written >= o->max_evals))
            break;

        /* 3. lease: one item ready per evaluator */
        int want = o->threads - nready;
        if (o->max_evals > 0 && want > o->max_evals - (written + nready + nrunning + left))
            want = (int)(o->max_evals - (written + nready + nrunning + left));
        if (l.nslots - (nready + nrunning + left) < want)
            want = l.nslots - (nready + nrunning + left);
        if (qrc == LD_OK && !stopping && want > 0) {
            PgqItem *items = NULL;
            int n = 0;
            qrc = pgq_lease(q, st.worker_id, want, &items, &n, err);
            if (qrc == LD_OK) {
                if (n == 0 && !empty)
                    empty_since = ld_now_ms() / 1000;
                empty = n == 0;
                qrc = take_items(&l, q, st.worker_id, items, n, &st, log);
                if (n)
                    last_busy = ld_now_ms() / 1000;
            } else {
                fprintf(log, "lossd worker: %s\n", err);
            }
            pgq_items_free(items, n);
        }

        /* 4. heartbeat */
        double now = ld_now_ms() / 1000;
        if (qrc == LD_OK && now - last_beat >= beat_every) {
            qrc = beat(&l, q, st.worker_id, &st, log);
            last_beat = now;
        }
        if (nready + nrunning + left > 0)
            last_busy = now;
        if (qrc == LD_EIO) {
            if (reconnect(&q, conninfo, &qo, o, log, &st) != LD_OK)
                break; /* stopping while the server is away: the leases will run out */
            continue;
        }
        if (qrc != LD_OK)
            sleep_s(0.5); /* the server refused something (lock timeout, permissions): retry */
        if (o->idle_exit_s > 0 && now - last_busy > o->idle_exit_s)
            break;

        /* 5. wait for an evaluator to finish, or for the next poll of an empty queue: every
         * 20 ms for a second (a round's end, the next round comes soon), then every 250 ms */
        double poll = empty && now - empty_since > 1 ? 0.25 : 0.02;
        pthread_mutex_lock(&l.mu);
        int any_done = 0;
        for (int k = 0; k < l.nslots; k++)
            any_done |= l.slots[k].state == SLOT_DONE;
        if (!any_done && (empty || stopping || want <= 0)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)(poll * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&l.io, &l.mu, &ts);
        }
        pthread_mutex_unlock(&l.mu);
    }

done:
    if (l.slots) {
        pthread_mutex_lock(&l.mu);
        l.quit = l.draining = 1;
        pthread_cond_broadcast(&l.work);
        pthread_mutex_unlock(&l.mu);
    }
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    if (q) {
        char serr[LD_ERR_MAX];
        if (pgq_worker_stop(q, st.worker_id, serr) != LD_OK) /* hands back what never started */
            fprintf(log, "lossd worker: %s\n", serr);
    }
    if (l.slots) {
        for (int k = 0; k < l.nslots; k++)
            slot_clear(&l.slots[k]);
        pthread_cond_destroy(&l.io);
        pthread_cond_destroy(&l.work);
        pthread_mutex_destroy(&l.mu);
    }
    free(l.slots);
    free(th);
    pgq_close(q);
    if (st_out)
        *st_out = st;
    return rc;
}
