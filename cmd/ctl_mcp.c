/* ctl_mcp.c: `lossctl mcp`, a Model Context Protocol server over stdio (JSON-RPC 2.0, one
 * message per line) whose tools call the daemon through the client (api/client.c): list jobs,
 * read a leaderboard with its statistics, show a candidate with lineage and curves, export a
 * loss as PyTorch/NumPy, and, with --allow-write, submit jobs and propose candidates. The MCP
 * methods are a method table run by the daemon's own request checks (rpc_handle_line), so
 * envelopes, ids and errors behave as on lossd's socket (docs/mcp.md). */
#include "ctl_mcp.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../api/rpc.h"

#define MCP_ARGS_MAX 8 /* arguments of one tool */

/* Protocol revisions whose tools messages this server speaks; an unknown one gets the last. */
static const char *const mcp_versions[] = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25",
                                           NULL};
#define MCP_VERSION_DEFAULT "2025-06-18"

typedef struct Mcp {
    Ctl *ctl;        /* the connection (ctl->client, opened on the first tool call) */
    int allow_write; /* --allow-write: submit_job and propose_candidates run */
    cJSON *methods;  /* server.hello's method names, once asked (owned); NULL before */
} Mcp;

/* One argument of a tool: its JSON Schema property and the check rpc_check_params makes. */
typedef struct McpArg {
    const char *name; /* NULL ends a list */
    RpcType type;
    int required;
    const char *desc;
    const char *const *choices; /* NULL, or the allowed strings (NULL-ended): the schema's enum */
    int local;                  /* read by the tool itself, not sent to the daemon */
} McpArg;

enum {
    MCP_WRITE = 1, /* changes the daemon's state: refused unless --allow-write */
    MCP_NEEDS = 2, /* listed only when the daemon answers the tool's method (server.hello) */
};

typedef struct McpTool {
    const char *name;
    const char *method; /* the daemon method the tool calls */
    int flags;
    const char *title;
    const char *desc;
    const McpArg *args;
    /* Optional: completes the daemon's params from the arguments (borrows args; params owned by
     * the caller). Returns LD_OK, or LD_EINVAL with err saying which argument is wrong. */
    int (*prepare)(const cJSON *args, cJSON *params, char *err);
    /* Optional: thins the daemon's result before it is returned (borrows args). */
    void (*trim)(const cJSON *args, cJSON *result);
    const char *text_member; /* the result's string member shown as the text; NULL: the JSON */
} McpTool;

/* ---- the tools ------------------------------------------------------------------------------ */

static const char *const states[] = {"queued", "running",   "paused",  "done",
                                     "failed", "cancelled", "expired", NULL};
static const char *const formats[] = {"pytorch", "numpy", "latex", "expr", NULL};

static const McpArg list_jobs_args[] = {
    {"state", RPC_T_STRING, 0, "only jobs in this state (default: every job)", states, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};
static const McpArg get_job_args[] = {
    {"job_id", RPC_T_INT, 1, "the job's id", NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};
static const McpArg leaderboard_args[] = {
    {"job_id", RPC_T_INT, 0, "a job's leaderboard (give job_id or family, not both)", NULL, 0},
    {"family", RPC_T_STRING, 0,
     "the cross-job leaderboard of every job of this family, e.g. classification, regression",
     NULL, 0},
    {"k", RPC_T_INT, 0, "how many entries, 1..1000 (default 10)", NULL, 0},
    {"metric", RPC_T_STRING, 0,
     "rank by this metric's mean over seeds, e.g. accuracy, balanced_accuracy, mse (default: "
     "fitness)",
     NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};
static const McpArg show_args[] = {
    {"job_id", RPC_T_INT, 1, "the job's id", NULL, 0},
    {"cand", RPC_T_INT, 1, "the candidate's id within the job (0 is the baseline)", NULL, 0},
    {"curves", RPC_T_BOOL, 0,
     "include each evaluation's learning curve [step, training loss, validation metric] "
     "(default true)",
     NULL, 1},
    {NULL, 0, 0, NULL, NULL, 0},
};
static const McpArg export_args[] = {
    {"job_id", RPC_T_INT, 0, "a stored candidate's job (with cand)", NULL, 0},
    {"cand", RPC_T_INT, 0, "a stored candidate's id (with job_id)", NULL, 0},
    {"expr", RPC_T_STRING, 0,
     "or any loss expression (with family), e.g. \"0.7*ce + 0.3*focal(2)\"", NULL, 0},
    {"family", RPC_T_STRING, 0, "the expression's family (with expr), e.g. classification", NULL,
     0},
    {"format", RPC_T_STRING, 0, "pytorch (default), numpy, latex or expr", formats, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};
static const McpArg submit_args[] = {
    {"job", RPC_T_OBJECT, 1,
     "the job as in lossd's docs/jobs.md, e.g. {\"name\": \"q\", \"tasks\": [\"builtin:digits\"], "
     "\"budget\": {\"evaluations\": 40}}",
     NULL, 0},
    {"client_token", RPC_T_STRING, 0,
     "makes the submit idempotent: the same token again returns the first job", NULL, 0},
    {"priority", RPC_T_INT, 0, "1..100 (default 1): the job's share of the workers", NULL, 0},
    {"base_dir", RPC_T_STRING, 0,
     "folder that relative data paths in the job are read from (default: this server's working "
     "directory)",
     NULL, 1},
    {NULL, 0, 0, NULL, NULL, 0},
};
static const McpArg propose_args[] = {
    {"job_id", RPC_T_INT, 1, "a queued, running or paused job", NULL, 0},
    {"exprs", RPC_T_ARRAY, 1,
     "loss expressions in lossd's loss language, e.g. [\"ce + 0.1*entropy\"]", NULL, 0},
    {"source", RPC_T_STRING, 0, "who proposes them: the entries' origin reads proposed:SOURCE",
     NULL, 0},
    {"note", RPC_T_STRING, 0, "free text stored with the proposals", NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

/* export_loss: the format defaults to PyTorch. */
static int prepare_export(const cJSON *args, cJSON *params, char *err) {
    if (!cJSON_GetObjectItemCaseSensitive(params, "format"))
        cJSON_AddStringToObject(params, "format", "pytorch");
    return LD_OK;
}

/* submit_job: relative data paths become absolute against base_dir (default: the working
 * directory), as `lossctl submit` does against the job file's folder; the daemon gets base_dir
 * for the paths that name no existing file, so its message names where it looked. */
static int prepare_submit(const cJSON *args, cJSON *params, char *err) {
    char dir[PATH_MAX];
    const char *base = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "base_dir"));
    if (base) {
        if (!realpath(base, dir))
            return ld_err(err, LD_EINVAL, "arguments.base_dir: %s: no such folder", base);
    } else if (!getcwd(dir, sizeof dir)) {
        return ld_err(err, LD_EIO, "submit_job: cannot read the working directory");
    }
    ctl_resolve_paths(cJSON_GetObjectItemCaseSensitive(params, "job"), dir);
    cJSON_AddStringToObject(params, "base_dir", dir);
    return LD_OK;
}

/* show_candidate: each evaluation's `result` repeats its flat fields (candidate.get keeps both
 * for older readers), so it goes; the curves go too when curves is false. */
static void trim_show(const cJSON *args, cJSON *result) {
    const cJSON *curves = cJSON_GetObjectItemCaseSensitive(args, "curves");
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(result, "evaluations")) {
        cJSON_DeleteItemFromObjectCaseSensitive(e, "result");
        if (cJSON_IsFalse(curves))
            cJSON_DeleteItemFromObjectCaseSensitive(e, "curve");
    }
}

static const McpTool tools[] = {
    {"list_jobs", "job.list", 0, "List lossd jobs",
     "Lists lossd's loss-function search jobs, newest first: id, name, state, progress "
     "(evaluations of the budget, best fitness and expression so far) and why a failed job failed.",
     list_jobs_args, NULL, NULL, NULL},
    {"get_job", "job.get", 0, "Show a job",
     "One job: its state and progress, the normalised job spec (every default filled in), the "
     "search engine's counters and the job's tasks.",
     get_job_args, NULL, NULL, NULL},
    {"leaderboard", "leaderboard.query", 0, "Read a leaderboard",
     "A job's candidate losses ranked best first, with their statistics: fitness (relative gain "
     "over the job's baseline, 0 = as good), per task the metric's mean, spread (sample standard "
     "deviation over seeds) and test-split mean, the number of runs, and the baseline's row. With "
     "family instead of job_id: distinct expressions over every job of that family.",
     leaderboard_args, NULL, NULL, NULL},
    {"show_candidate", "candidate.get", 0, "Show a candidate",
     "One candidate loss of a job: its expression, how it was made (operation and parents), its "
     "lineage (ancestors, nearest first) and every training run (task, seed, steps, status, "
     "validation and test metric, every metric, the learning curve).",
     show_args, NULL, trim_show, NULL},
    {"export_loss", "candidate.export", 0, "Export a loss as code",
     "A stored candidate (job_id and cand) or any expression (expr and family) as source code to "
     "paste into training code: a differentiable PyTorch function, a NumPy function, LaTeX or the "
     "canonical expression. The text is the code itself.",
     export_args, prepare_export, NULL, "text"},
    {"submit_job", "job.submit", MCP_WRITE, "Submit a search job",
     "Submits a loss-function search job to the daemon and returns its id (state queued or "
     "running). An invalid job is refused with every problem named. Needs the server started "
     "with --allow-write.",
     submit_args, prepare_submit, NULL, NULL},
    {"propose_candidates", "candidate.propose", MCP_WRITE | MCP_NEEDS, "Propose candidate losses",
     "Sends loss expressions into a running job: each is parsed, type-checked, canonicalised and "
     "deduplicated against the job's candidates, then trained through the same fidelity ladder. "
     "The reply says per expression: accepted as candidate N, a duplicate of candidate M (and "
     "why), or refused (with the parser's message). Needs --allow-write.",
     propose_args, NULL, NULL, NULL},
};
#define NTOOLS ((int)(sizeof tools / sizeof tools[0]))

/* ---- talking to the daemon ------------------------------------------------------------------- */

/* Calls the daemon, connecting first when needed; a broken connection is dropped so the next
 * call connects again (the daemon restarted). Takes params. LD_OK with *res owned, or a status
 * with err holding the daemon's or the connection's message. */
static int daemon_call(Mcp *m, const char *method, cJSON *params, cJSON **res, char *err) {
    *res = NULL;
    if (!m->ctl->client) {
        int rc = client_connect(m->ctl->socket_path, &m->ctl->client, err);
        if (rc != LD_OK) {
            cJSON_Delete(params);
            return rc;
        }
    }
    int rc = client_call(m->ctl->client, method, params, res, NULL, err);
    if (rc == LD_EIO) {
        client_close(m->ctl->client);
        m->ctl->client = NULL;
    }
    return rc;
}

/* 1 when the daemon answers method (its server.hello, asked once per connection). */
static int daemon_has(Mcp *m, const char *method) {
    char err[LD_ERR_MAX];
    if (!m->methods || !m->ctl->client) {
        cJSON *hello = NULL;
        cJSON_Delete(m->methods);
        m->methods = NULL;
        if (daemon_call(m, "server.hello", NULL, &hello, err) != LD_OK)
            return 0;
        m->methods = cJSON_DetachItemFromObjectCaseSensitive(hello, "methods");
        cJSON_Delete(hello);
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, m->methods) if (cJSON_IsString(s) &&
                                          strcmp(s->valuestring, method) == 0) return 1;
    return 0;
}

/* ---- tools/list ---------------------------------------------------------------------------- */

static const char *schema_type(RpcType t) {
    switch (t) {
    case RPC_T_INT: return "integer";
    case RPC_T_NUMBER: return "number";
    case RPC_T_STRING: return "string";
    case RPC_T_BOOL: return "boolean";
    case RPC_T_OBJECT: return "object";
    case RPC_T_ARRAY: return "array";
    }
    return "string";
}

/* The tool's JSON Schema for its arguments (owned). */
static cJSON *input_schema(const McpTool *t) {
    cJSON *s = cJSON_CreateObject(), *props = cJSON_CreateObject(), *req = cJSON_CreateArray();
    cJSON_AddStringToObject(s, "type", "object");
    for (const McpArg *a = t->args; a->name; a++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "type", schema_type(a->type));
        if (a->type == RPC_T_ARRAY)
            cJSON_AddStringToObject(cJSON_AddObjectToObject(p, "items"), "type", "string");
        cJSON_AddStringToObject(p, "description", a->desc);
        if (a->choices) {
            cJSON *e = cJSON_AddArrayToObject(p, "enum");
            for (const char *const *c = a->choices; *c; c++)
                cJSON_AddItemToArray(e, cJSON_CreateString(*c));
        }
        cJSON_AddItemToObject(props, a->name, p);
        if (a->required)
            cJSON_AddItemToArray(req, cJSON_CreateString(a->name));
    }
    cJSON_AddItemToObject(s, "properties", props);
    cJSON_AddItemToObject(s, "required", req);
    cJSON_AddFalseToObject(s, "additionalProperties");
    return s;
}

/* 1 when tools/list shows t: write tools only with --allow-write, a tool whose method is new
 * only when the daemon has it. */
static int listed(Mcp *m, const McpTool *t) {
    if ((t->flags & MCP_WRITE) && !m->allow_write)
        return 0;
    if ((t->flags & MCP_NEEDS) && !daemon_has(m, t->method))
        return 0;
    return 1;
}

static int m_tools_list(RpcCall *call, cJSON **result, char *err) {
    Mcp *m = call->daemon;
    cJSON *r = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(r, "tools");
    for (int i = 0; i < NTOOLS; i++) {
        const McpTool *t = &tools[i];
        if (!listed(m, t))
            continue;
        cJSON *o = cJSON_CreateObject(), *ann;
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "title", t->title);
        cJSON_AddStringToObject(o, "description", t->desc);
        cJSON_AddItemToObject(o, "inputSchema", input_schema(t));
        ann = cJSON_AddObjectToObject(o, "annotations");
        cJSON_AddBoolToObject(ann, "readOnlyHint", !(t->flags & MCP_WRITE));
        cJSON_AddBoolToObject(ann, "destructiveHint", 0);
        cJSON_AddBoolToObject(ann, "openWorldHint", 0);
        cJSON_AddItemToArray(list, o);
    }
    *result = r;
    return RPC_OK;
}

/* ---- tools/call ---------------------------------------------------------------------------- */

/* A tool's answer: one text block, structuredContent when the result is an object, isError. */
static cJSON *tool_result(const char *text, cJSON *structured, int is_error) {
    cJSON *r = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(r, "content");
    cJSON *block = cJSON_CreateObject();
    cJSON_AddStringToObject(block, "type", "text");
    cJSON_AddStringToObject(block, "text", text);
    cJSON_AddItemToArray(content, block);
    if (structured)
        cJSON_AddItemToObject(r, "structuredContent", structured);
    cJSON_AddBoolToObject(r, "isError", is_error);
    return r;
}

/* Checks the arguments against the tool's schema (types and required ones by rpc_check_params,
 * then unknown names and enums) and copies the daemon's params. LD_OK with *params owned, or
 * LD_EINVAL with err "arguments.job_id: expected an integer, got string". */
static int check_args(const McpTool *t, const cJSON *args, cJSON **params, char *err) {
    RpcParam rp[MCP_ARGS_MAX + 1] = {{0}};
    RpcMethod rm = {t->name, NULL, rp, 0, NULL};
    char msg[LD_ERR_MAX];
    int n = 0;
    *params = NULL;
    for (const McpArg *a = t->args; a->name && n < MCP_ARGS_MAX; a++, n++)
        rp[n] = (RpcParam){a->name, a->type, a->required};
    if (rpc_check_params(&rm, args, msg) != RPC_OK) /* "params.X: ..." */
        return ld_err(err, LD_EINVAL, "arguments.%s", strncmp(msg, "params.", 7) ? msg : msg + 7);
    const cJSON *v;
    cJSON_ArrayForEach(v, args) {
        const McpArg *a = t->args;
        while (a->name && strcmp(a->name, v->string))
            a++;
        if (!a->name) {
            char names[160] = "";
            for (const McpArg *b = t->args; b->name; b++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         b == t->args ? "" : ", ", b->name);
            return ld_err(err, LD_EINVAL, "arguments.%.60s: unknown (%s takes %s)", v->string,
                          t->name, names);
        }
        int ok = !a->choices;
        for (const char *const *c = a->choices; c && *c; c++)
            ok |= !strcmp(*c, v->valuestring);
        if (!ok)
            return ld_err(err, LD_EINVAL, "arguments.%s: \"%.60s\" is not one of the schema's enum",
                          a->name, v->valuestring);
    }
    *params = cJSON_CreateObject();
    for (const McpArg *a = t->args; a->name; a++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(args, a->name);
        if (x && !a->local)
            cJSON_AddItemToObject(*params, a->name, cJSON_Duplicate(x, 1));
    }
    return LD_OK;
}

/* Runs tool t with args. A failure of the tool (bad arguments, the daemon's error, no daemon) is
 * a result with isError, so the model reads it; RPC errors are for the protocol itself. */
static cJSON *run_tool(Mcp *m, const McpTool *t, const cJSON *args) {
    char err[LD_ERR_MAX];
    cJSON *params = NULL, *res = NULL, *out = NULL;
    if ((t->flags & MCP_WRITE) && !m->allow_write) {
        snprintf(err, sizeof err,
                 "%s: refused: this lossctl mcp server is read-only (start it with "
                 "`lossctl mcp --allow-write` to submit jobs and propose candidates)",
                 t->name);
        return tool_result(err, NULL, 1);
    }
    if ((t->flags & MCP_NEEDS) && !daemon_has(m, t->method)) {
        snprintf(err, sizeof err, "%s: this daemon has no %s method (an older lossd?)", t->name,
                 t->method);
        return tool_result(err, NULL, 1);
    }
    if (check_args(t, args, &params, err) != LD_OK ||
        (t->prepare && t->prepare(args, params, err) != LD_OK)) {
        cJSON_Delete(params);
        return tool_result(err, NULL, 1);
    }
    if (daemon_call(m, t->method, params, &res, err) != LD_OK)
        return tool_result(err, NULL, 1);
    if (t->trim)
        t->trim(args, res);
    const char *member =
        t->text_member ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, t->text_member))
                       : NULL;
    if (member) { /* the code once, as the text; the rest (format, expr, family) structured */
        char *text = strdup(member);
        cJSON_DeleteItemFromObjectCaseSensitive(res, t->text_member);
        out = tool_result(text ? text : "", res, 0);
        free(text);
    } else {
        char *text = rpc_print_exact(res);
        out = tool_result(text ? text : "null", cJSON_IsObject(res) ? res : NULL, 0);
        free(text);
    }
    if (!cJSON_IsObject(res))
        cJSON_Delete(res);
    return out;
}

static int m_tools_call(RpcCall *call, cJSON **result, char *err) {
    Mcp *m = call->daemon;
    const char *name = rpc_param_str(call->params, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(call->params, "arguments");
    cJSON *empty = NULL;
    const McpTool *t = NULL;
    for (int i = 0; i < NTOOLS && !t; i++)
        if (strcmp(tools[i].name, name) == 0)
            t = &tools[i];
    if (!t)
        return ld_err(err, RPC_INVALID_PARAMS,
                      "params.name: unknown tool \"%.80s\" (tools/list names them)", name);
    if (!args)
        args = empty = cJSON_CreateObject();
    *result = run_tool(m, t, args);
    cJSON_Delete(empty);
    return RPC_OK;
}

/* ---- initialize, ping, notifications --------------------------------------------------------- */

static int m_initialize(RpcCall *call, cJSON **result, char *err) {
    const char *want = rpc_param_str(call->params, "protocolVersion");
    const char *version = MCP_VERSION_DEFAULT;
    for (int i = 0; want && mcp_versions[i]; i++)
        if (strcmp(mcp_versions[i], want) == 0)
            version = mcp_versions[i];
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "protocolVersion", version);
    cJSON *caps = cJSON_AddObjectToObject(r, "capabilities");
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(caps, "tools"), "listChanged", 0);
    cJSON *info = cJSON_AddObjectToObject(r, "serverInfo");
    cJSON_AddStringToObject(info, "name", "lossd");
    cJSON_AddStringToObject(info, "title", "lossd loss-function search");
    cJSON_AddStringToObject(info, "version", LOSSD_VERSION);
    cJSON_AddStringToObject(r, "instructions",
                            "lossd searches for loss functions: a job trains candidate losses on "
                            "small tasks and ranks them by their gain over a baseline loss. Read "
                            "results with list_jobs, leaderboard and show_candidate; export_loss "
                            "gives a loss as PyTorch or NumPy code.");
    *result = r;
    return RPC_OK;
}

static int m_empty(RpcCall *call, cJSON **result, char *err) {
    *result = cJSON_CreateObject();
    return RPC_OK;
}

static const RpcParam initialize_params[] = {{"protocolVersion", RPC_T_STRING, 0},
                                             {"capabilities", RPC_T_OBJECT, 0},
                                             {"clientInfo", RPC_T_OBJECT, 0},
                                             {NULL, 0, 0}};
static const RpcParam list_params[] = {{"cursor", RPC_T_STRING, 0}, {NULL, 0, 0}};
static const RpcParam call_params[] = {
    {"name", RPC_T_STRING, 1}, {"arguments", RPC_T_OBJECT, 0}, {NULL, 0, 0}};

static const RpcMethod mcp_methods[] = {
    {"initialize", m_initialize, initialize_params, 0, "the MCP handshake"},
    {"notifications/initialized", m_empty, NULL, 0, "the client is ready (nothing to do)"},
    {"notifications/cancelled", m_empty, NULL, 0, "calls run one at a time: nothing to cancel"},
    {"ping", m_empty, NULL, 0, "liveness"},
    {"tools/list", m_tools_list, list_params, 0, "the tools with their input schemas"},
    {"tools/call", m_tools_call, call_params, 0, "runs a tool"},
    {NULL, NULL, NULL, 0, NULL},
};

/* ---- the loop ------------------------------------------------------------------------------ */

const CtlOpt ctl_mcp_opts[] = {
    {"--allow-write", NULL, NULL, "also offer submit_job and propose_candidates (default: read-only)"},
    {0}};

int ctl_mcp_main(Ctl *ctl, int argc, char **argv) {
    static const RpcMethod *const tables[] = {mcp_methods, NULL};
    Mcp m = {ctl, 0, NULL};
    char *line = NULL;
    size_t cap = 0;
    int status = 0;
    CtlArgs a;
    int misuse = ctl_parse("mcp", ctl_mcp_opts, argc, argv, 1, NULL, NULL, &a) != 0;
    if (!misuse && a.npos > 0) misuse = ctl_fail(2, "mcp: unexpected argument %s", a.pos[0]);
    if (misuse) return ctl_fail(2, "usage: lossctl mcp %s", CTL_MCP_USAGE);
    m.allow_write = ctl_opt(&a, "--allow-write") != NULL;
    for (;;) {
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0)
            break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        RpcCall call = {&m, NULL, NULL, NULL};
        size_t len = 0;
        char *reply = rpc_handle_line(tables, line, (size_t)n, &call, NULL, &len);
        if (!reply)
            continue; /* a notification */
        int bad = fwrite(reply, 1, len, stdout) != len || fflush(stdout) != 0;
        free(reply);
        if (bad) {
            status = ctl_fail(1, "mcp: cannot write to stdout");
            break;
        }
    }
    free(line);
    cJSON_Delete(m.methods);
    return status;
}
