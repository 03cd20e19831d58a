/* rpc.h: lossd's JSON-RPC 2.0 wire: newline framing, the method table with its parameter
 * schemas, request validation, replies and error codes (docs/protocol.md). Nothing here knows
 * about sockets: the daemon feeds bytes in and writes the returned lines out. */
#ifndef RPC_H
#define RPC_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/lossd.h"

/* JSON-RPC error codes: the standard ones, then the project's own. */
enum {
    RPC_OK = 0,
    RPC_PARSE_ERROR = -32700,
    RPC_INVALID_REQUEST = -32600,
    RPC_METHOD_NOT_FOUND = -32601,
    RPC_INVALID_PARAMS = -32602,
    RPC_INTERNAL = -32603,
    RPC_NOT_FOUND = -32001,
    RPC_INVALID_STATE = -32002,
    RPC_BUSY = -32003,
    RPC_PERMISSION = -32004,
};

#define RPC_LINE_MAX (1u << 20)   /* longest request line, without its newline */
#define RPC_OUTBUF_MAX (8u << 20) /* pending output after which a client is dropped */
#define RPC_PROTOCOL_VERSION 1

/* Maps an LD_* status to the JSON-RPC code a handler should return for it. */
int rpc_code_from_ld(int ld);

/* ---- framing ---------------------------------------------------------------------------- */

/* Splits a byte stream into lines. Bytes may arrive in any pieces. */
typedef struct RpcFramer {
    char *buf;
    size_t len, cap;
    int held; /* buf holds lines not yet delivered (a pause), not only an unfinished one */
} RpcFramer;

/* Called once per complete line (without '\n'; a trailing '\r' removed; NUL-terminated, so
 * line[len] == 0). Returning RPC_FRAMER_PAUSE keeps the lines after this one in the framer
 * (backpressure: the caller stops reading and calls rpc_framer_resume later); any other
 * non-zero value stops feeding (the connection is going away). */
typedef int (*RpcLineFn)(void *ud, char *line, size_t len);
#define RPC_FRAMER_PAUSE 1

/* Feeds n bytes. Returns LD_OK, RPC_FRAMER_PAUSE (lines are held), the non-zero value a
 * callback returned, or LD_EINVAL with err when a line grows past RPC_LINE_MAX (a CR before the
 * newline not counted; the caller replies with rpc_error_line and closes). Blank lines (only
 * spaces, tabs, CR) are skipped. Bytes fed while lines are held queue behind them. */
int rpc_framer_feed(RpcFramer *f, const char *data, size_t n, RpcLineFn fn, void *ud, char *err);
/* Delivers the lines a pause held, as rpc_framer_feed does (it may pause again). */
int rpc_framer_resume(RpcFramer *f, RpcLineFn fn, void *ud, char *err);
int rpc_framer_held(const RpcFramer *f); /* 1 while paused lines wait */
size_t rpc_framer_pending(const RpcFramer *f); /* bytes of an unfinished line */
void rpc_framer_free(RpcFramer *f);

/* ---- the method table ------------------------------------------------------------------- */

typedef enum RpcType {
    RPC_T_INT,    /* a JSON number with no fraction, within int64 */
    RPC_T_NUMBER,
    RPC_T_STRING,
    RPC_T_BOOL,
    RPC_T_OBJECT,
    RPC_T_ARRAY,
} RpcType;

typedef struct RpcParam {
    const char *name;
    RpcType type;
    int required;
} RpcParam;

/* What a handler gets: the daemon and the connection (opaque here), the request's params
 * (always an object, possibly empty) and id (NULL for a notification). */
typedef struct RpcCall {
    void *daemon;       /* Daemon * (daemon/daemon.h) */
    void *client;       /* RpcClient * (server.h: the connection), NULL in unit tests */
    const cJSON *params;
    const cJSON *id;
} RpcCall;

/* A handler returns RPC_OK and an owned result in *result (NULL means `null`), or a negative
 * RPC_* code with err saying what was wrong ("job 42: not found"). It runs on the loop thread.
 * RPC_DEFERRED: nothing is sent now; the handler has arranged to answer later on the same
 * connection (rpc_client_defer, api/server.h: job.submit while the job's data loads). */
#define RPC_DEFERRED 2
typedef int (*RpcHandler)(RpcCall *call, cJSON **result, char *err);

enum {
    RPC_READONLY = 1, /* changes nothing: still served while the daemon shuts down */
};

typedef struct RpcMethod {
    const char *name;       /* NULL ends a table */
    RpcHandler handler;
    const RpcParam *params; /* NULL or ended by {NULL}: checked before the handler runs */
    int flags;
    const char *summary;
} RpcMethod;

/* The tables the server dispatches on. rpc_core_methods is api/methods.c's, schedule_methods
 * the cron schedules' (each ended by {NULL}). The composition root (cmd/serve.c) registers the
 * tables it serves with rpc_set_tables, explicitly: nothing registers itself. */
extern const RpcMethod rpc_core_methods[];
extern const RpcMethod schedule_methods[];

/* Sets the NULL-terminated list of tables, in dispatch order (borrowed: static storage). Until
 * it is called, rpc_tables() is {rpc_core_methods, NULL}. */
void rpc_set_tables(const RpcMethod *const *tables);
/* The tables in dispatch order, NULL-terminated (static storage). */
const RpcMethod *const *rpc_tables(void);
/* Finds a method in the NULL-terminated list of tables; NULL when absent. */
const RpcMethod *rpc_find(const RpcMethod *const *tables, const char *name);

/* Checks params (an object) against m's schema: every required one present, every present one
 * of its type. Returns RPC_OK or RPC_INVALID_PARAMS with err:
 * "params.job_id: expected an integer, got string", "params.job: missing". */
int rpc_check_params(const RpcMethod *m, const cJSON *params, char *err);

/* Handles one request line: parses it, validates the envelope, finds the method, checks params,
 * runs the handler. Returns an owned reply line ending in '\n' (*len its length), or NULL when
 * nothing is to be sent (a notification). refuse_writes: when not NULL, methods without
 * RPC_READONLY get RPC_BUSY "method: <refuse_writes>" (the daemon is shutting down, or its
 * database is gone). call->params and call->id are filled here.
 * Every string of the request, keys included, must be valid UTF-8 without NUL (\u0000):
 * otherwise "invalid request: params.job.name: a string holding a NUL character (\u0000) at
 * byte 57". The reply's id is the request's id text, byte for byte; numbers in replies
 * round-trip exactly (the shortest of 15 to 17 significant digits that reads back the same);
 * reply strings are valid UTF-8 (a message cut inside a character loses the partial one). */
char *rpc_handle_line(const RpcMethod *const *tables, const char *line, size_t n, RpcCall *call,
                      const char *refuse_writes, size_t *len);

/* Checks every string of a JSON text that cJSON parsed (a job file) as requests are checked: LD_OK,
 * or LD_EINVAL with "name: a string holding a NUL character (\u0000) at byte 10". */
int rpc_check_text(const char *text, size_t n, char *err);

/* obj printed on one line as replies are: numbers that round-trip exactly, valid UTF-8. Borrows
 * obj; returns an owned string (NULL when out of memory). */
char *rpc_print_exact(const cJSON *obj);

/* Bytes of s that fit in max without cutting a UTF-8 character: for "%.*s" in messages. */
size_t rpc_utf8_prefix(const char *s, size_t max);

/* Owned reply lines ending in '\n'. id may be NULL (sent as null). */
char *rpc_error_line(const cJSON *id, int code, const char *msg, size_t *len);
char *rpc_result_line(const cJSON *id, cJSON *result, size_t *len); /* takes result */
/* The text rpc_result_line prints for result (takes it; owned, NULL when out of memory): a
 * handler that keeps a reply returns it later as cJSON_CreateRaw(text), printed byte for byte. */
char *rpc_result_text(cJSON *result);
/* A server notification {"jsonrpc":"2.0","method":method,"params":params}. Takes params. */
char *rpc_notification_line(const char *method, cJSON *params, size_t *len);

/* "integer", "string", ... for a JSON value, as used in messages. */
const char *rpc_json_type_name(const cJSON *v);

/* Helpers for handlers: read a checked param. */
int64_t rpc_param_int(const cJSON *params, const char *name, int64_t dflt);
const char *rpc_param_str(const cJSON *params, const char *name); /* NULL when absent */

#endif
