/* methods_schedule.c: the schedule.* methods (docs/schedules.md): parameters checked by the
 * table, the work done by the daemon's schedules (daemon_schedule_* in daemon/daemon.h). */
#include <stdint.h>
#include <stdlib.h>

#include "../daemon/daemon.h"
#include "rpc.h"
#include "server.h"

#define D(call) ((Daemon *)(call)->daemon)

/* RPC_OK, or the RPC code of the daemon's LD_* status (its message is already in err). */
static int code(int rc) { return rc == LD_OK ? RPC_OK : rpc_code_from_ld(rc); }

static int no_daemon(char *err) { return ld_err(err, RPC_INTERNAL, "no daemon behind this call"); }

static int64_t id_of(const RpcCall *call) { return rpc_param_int(call->params, "schedule_id", 0); }

static int m_create(RpcCall *call, cJSON **result, char *err) {
    if (!call->daemon) return no_daemon(err);
    return code(daemon_schedule_create(D(call), call->params, result, err));
}

static int m_list(RpcCall *call, cJSON **result, char *err) {
    if (!call->daemon) return no_daemon(err);
    return code(daemon_schedule_list(D(call), result, err));
}

static int m_get(RpcCall *call, cJSON **result, char *err) {
    if (!call->daemon) return no_daemon(err);
    return code(daemon_schedule_get(D(call), id_of(call), result, err));
}

static int m_delete(RpcCall *call, cJSON **result, char *err) {
    if (!call->daemon) return no_daemon(err);
    int rc = daemon_schedule_delete(D(call), id_of(call), err);
    if (rc != LD_OK) return code(rc);
    *result = cJSON_CreateObject();
    cJSON_AddBoolToObject(*result, "deleted", 1);
    return RPC_OK;
}

static int m_pause(RpcCall *call, cJSON **result, char *err) {
    if (!call->daemon) return no_daemon(err);
    return code(daemon_schedule_set_paused(D(call), id_of(call), 1, result, err));
}

static int m_resume(RpcCall *call, cJSON **result, char *err) {
    if (!call->daemon) return no_daemon(err);
    return code(daemon_schedule_set_paused(D(call), id_of(call), 0, result, err));
}

/* A schedule.trigger answered once its run's job is submitted (its data is loaded off the
 * loop). */
typedef struct TriggerReply {
    cJSON *id;        /* the request's id, raw text kept (owned) */
    RpcDeferred wait; /* the connection the reply goes to */
} TriggerReply;

static void trigger_done(void *ud, int rc, int64_t job_id, int existed, const char *e2) {
    TriggerReply *r = ud;
    char err[LD_ERR_MAX];
    size_t n = 0;
    char *line = NULL;
    (void)existed;
    if (rc == LD_OK) {
        cJSON *res = cJSON_CreateObject();
        cJSON_AddNumberToObject(res, "job_id", (double)job_id);
        line = rpc_result_line(r->id, res, &n);
    } else {
        line = rpc_error_line(r->id, ld_err(err, code(rc), "%s", e2), err, &n);
    }
    rpc_deferred_answer(r->wait, line, n);
    free(line);
    cJSON_Delete(r->id);
    free(r);
}

static int m_trigger(RpcCall *call, cJSON **result, char *err) {
    (void)result;
    if (!call->daemon) return no_daemon(err);
    if (!call->client || !call->id)
        return ld_err(err, RPC_INVALID_REQUEST, "schedule.trigger: needs a connection to answer on");
    TriggerReply *r = calloc(1, sizeof *r);
    if (!r || !(r->id = cJSON_Duplicate(call->id, 1))) {
        free(r);
        return ld_err(err, RPC_INTERNAL, "schedule.trigger: out of memory");
    }
    int rc = daemon_schedule_trigger(D(call), id_of(call), trigger_done, r, err);
    if (rc != LD_OK) {
        cJSON_Delete(r->id);
        free(r);
        return code(rc);
    }
    r->wait = rpc_client_defer(call->client);
    return RPC_DEFERRED;
}

static const RpcParam p_create[] = {
    {"cron", RPC_T_STRING, 1},        {"tz", RPC_T_STRING, 0},   {"catch_up", RPC_T_STRING, 0},
    {"concurrency", RPC_T_STRING, 0}, {"name", RPC_T_STRING, 0}, {"job", RPC_T_OBJECT, 1},
    {NULL, 0, 0}};
static const RpcParam p_id[] = {{"schedule_id", RPC_T_INT, 1}, {NULL, 0, 0}};

const RpcMethod schedule_methods[] = {
    {"schedule.create", m_create, p_create, 0, "a cron schedule of a job template"},
    {"schedule.list", m_list, NULL, RPC_READONLY, "every schedule"},
    {"schedule.get", m_get, p_id, RPC_READONLY, "a schedule, its next fires and its runs"},
    {"schedule.delete", m_delete, p_id, 0, "remove a schedule (its jobs stay)"},
    {"schedule.pause", m_pause, p_id, 0, "stop firing"},
    {"schedule.resume", m_resume, p_id, 0, "fire again, from now on"},
    {"schedule.trigger", m_trigger, p_id, 0, "fire now; returns the job id"},
    {NULL, NULL, NULL, 0, NULL},
};
