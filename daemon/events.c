/* events.c: what the daemon reports: events appended to the store and handed to the wire above
 * it (DaemonWire.event: subscribed clients) once they are committed, and log lines on stderr.
 * The bottom of the daemon's files: jobs.c, serve.c and schedule_daemon.c call it, it calls
 * none of them. Loop thread only. */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"

static cJSON *event_row(int64_t seq, int64_t job_id, const char *kind, cJSON *data) {
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "seq", (double)seq);
    cJSON_AddNumberToObject(ev, "time", ld_wall_s());
    cJSON_AddNumberToObject(ev, "job", (double)job_id);
    cJSON_AddStringToObject(ev, "kind", kind);
    cJSON_AddItemToObject(ev, "data", data ? data : cJSON_CreateObject());
    return ev;
}

static void broadcast(Daemon *d, const cJSON *ev) {
    if (d->wire.event) d->wire.event(d->wire.ud, ev);
}

/* Events appended inside a transaction wait in d->pending_events until it commits, so a client
 * never hears of something a rollback undid. */
int daemon_event(Daemon *d, int64_t job_id, const char *kind, cJSON *data, char *err) {
    int64_t seq = 0;
    int rc = store_event_append(d->store, job_id, kind, data, &seq, err);
    if (rc != LD_OK) {
        cJSON_Delete(data);
        return rc;
    }
    if (seq > d->last_event_seq) d->last_event_seq = seq;
    cJSON *ev = event_row(seq, job_id, kind, data);
    if (store_in_transaction(d->store)) {
        if (!d->pending_events) d->pending_events = cJSON_CreateArray();
        cJSON_AddItemToArray(d->pending_events, ev);
        return LD_OK;
    }
    broadcast(d, ev);
    cJSON_Delete(ev);
    return LD_OK;
}

int daemon_commit(Daemon *d, char *err) {
    int rc = store_commit(d->store, err);
    cJSON *pending = d->pending_events;
    d->pending_events = NULL;
    if (rc == LD_OK) {
        const cJSON *ev;
        cJSON_ArrayForEach(ev, pending) broadcast(d, ev);
    } else {
        store_rollback(d->store);
    }
    cJSON_Delete(pending);
    return rc;
}

void daemon_rollback(Daemon *d) {
    store_rollback(d->store);
    cJSON_Delete(d->pending_events);
    d->pending_events = NULL;
}

int64_t daemon_last_event_seq(const Daemon *d) { return d->last_event_seq; }

void daemon_log(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lossd[%d]: %s\n", (int)getpid(), buf);
}
