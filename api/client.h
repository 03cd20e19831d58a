/* client.h: the client side of lossd's wire protocol (newline-delimited JSON-RPC 2.0 over a Unix
 * socket, docs/protocol.md), and the small toolkit lossctl's command groups share. */
#ifndef CLIENT_H
#define CLIENT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "../common/lossd.h"

/* ---- transport ---------------------------------------------------------------------------- */

typedef struct Client Client;

/* The socket lossctl uses when none is given: $LOSSD_SOCKET, else $XDG_RUNTIME_DIR/lossd.sock,
 * else /tmp/lossd-$UID.sock. Writes into buf (n bytes) and returns buf. */
const char *client_default_socket(char *buf, size_t n);

/* Connects to the daemon at path. Returns LD_OK and an owned client, or LD_EIO with err such as
 * "cannot connect to /run/user/0/lossd.sock: no such file (is lossd serve running?)". */
int client_connect(const char *path, Client **out, char *err);
void client_close(Client *c);

/* Sends one request and waits for its reply; notifications that arrive first are queued for
 * client_next. Takes params (may be NULL: no params member). Returns:
 *   LD_OK: *result is the reply's result (owned; JSON null when the reply had none);
 *   a daemon error: the code mapped to LD_* (-32001 LD_ENOTFOUND, -32002 LD_ESTATE,
 *     -32003 LD_EBUSY, -32004 LD_EPERM, anything else LD_EINVAL), err holds the daemon's
 *     message, and *rpc_error (when rpc_error is not NULL) the error object (owned);
 *   LD_EIO: the connection failed or closed (err says which). */
int client_call(Client *c, const char *method, cJSON *params, cJSON **result, cJSON **rpc_error,
                char *err);

/* Waits up to timeout_ms (-1: forever) for the next notification (queued ones first).
 * Returns LD_OK with *msg owned (the whole {"method","params"} object) or NULL on timeout;
 * LD_EIO when the connection closed. */
int client_next(Client *c, int timeout_ms, cJSON **msg, char *err);

/* Maps a JSON-RPC error code to an LD_* status. */
int client_status_of(int rpc_code);

/* ---- lossctl's command toolkit ------------------------------------------------------------- */

/* What every command handler gets: global options and a lazily opened connection. */
typedef struct Ctl {
    const char *socket_path; /* --socket, or client_default_socket */
    int json;                /* --json: print the daemon's result as JSON instead of text */
    Client *client;          /* opened by the first ctl_call */
} Ctl;

/* One option of a lossctl command: a row of the command's option table, which ends in a row
 * whose name is NULL. The one parser (ctl_parse) and the command's help (its "options:"
 * section, ctl_print_opts) both read the table. */
typedef struct CtlOpt {
    const char *name;  /* "--top" */
    const char *alias; /* another spelling ("--output"), or NULL; the help names it */
    const char *arg;   /* the value's name ("N"); NULL: a flag, which takes no value */
    const char *help;  /* what it does and its default; lines joined by "\n" */
} CtlOpt;

#define CTL_MAX_OPTS 8 /* rows of one option table */
#define CTL_MAX_POS 8  /* positional arguments ctl_parse keeps */

/* What ctl_parse found: the positional arguments in order (borrowed from argv) and, per row of
 * the table, the last value given ("" for a flag; NULL: not given). */
typedef struct CtlArgs {
    const CtlOpt *opts;
    int npos;
    char *pos[CTL_MAX_POS];
    const char *val[CTL_MAX_OPTS];
} CtlArgs;

/* Sees each argument ctl_parse reads, in the order given: an option (opt: its row, val: its
 * value or "") or a positional argument (opt: -1). Returns 0 to go on, or an exit status that
 * ctl_parse stops with. */
typedef int (*CtlEach)(void *ctx, int opt, const char *val);

/* Parses argv[first..argc) of command cmd (named in errors) against opts (NULL: no options):
 * "--name VALUE", "--name=VALUE", "ALIAS VALUE", a flag alone; "--" ends the options; every
 * other argument is positional, including those starting with a single '-' ("-" for stdin, an
 * expression such as "-log(pt)"). An unknown "--x", an option without its value, a value given
 * to a flag, or more than CTL_MAX_POS positional arguments (without each) prints
 * "lossctl: CMD: why" and returns 2. each (may be NULL) sees every argument in order. Returns
 * 0 with *a filled, or the exit status. Borrows argv and opts (a keeps pointers into both). */
int ctl_parse(const char *cmd, const CtlOpt *opts, int argc, char **argv, int first, CtlEach each,
              void *ctx, CtlArgs *a);

/* The value ctl_parse found for option name (NULL: not given, or no such row). */
const char *ctl_opt(const CtlArgs *a, const char *name);

/* Prints an option table as help lines to f: "  --top N   how many rows (default 10)", the
 * descriptions aligned and their further lines indented to match. Nothing for NULL. */
void ctl_print_opts(FILE *f, const CtlOpt *opts);

/* One command (or command group) of lossctl: handler gets argv starting at the command's
 * name and returns the exit status: 0 success, 1 the daemon or connection failed, 2 bad usage.
 * `lossctl help NAME` and `NAME --help` print usage, summary, help, the options and the
 * example. */
typedef struct CtlCommand {
    const char *name;
    int (*run)(Ctl *ctl, int argc, char **argv);
    const char *usage;   /* arguments, e.g. "JOB [--top N]" */
    const char *summary; /* one line for `lossctl help` */
    const char *help;    /* what it does, lines indented by two spaces (NULL: usage and summary
                          * only, the group prints its own) */
    const CtlOpt *opts;  /* its options (NULL: none) */
    const char *example; /* example lines */
} CtlCommand;

/* Calls method on the daemon (connecting first if needed). Takes params. Returns 0 with
 * *result owned, or 1 after printing one line to stderr: "lossctl: <daemon message>", or with
 * --json the error object on stdout as well. what (may be NULL) prefixes the daemon's message
 * when the message does not already say where it applies (lossd's say "where: what", so only
 * messages without a colon get it), e.g. "job 7" and "not found" give "lossctl: job 7: not
 * found". */
int ctl_call(Ctl *ctl, const char *method, cJSON *params, const char *what, cJSON **result);

/* Prints one line of compact JSON to stdout (for --json). Borrows j. */
void ctl_print_json(const cJSON *j);

/* Prints "lossctl: " + message to stderr and returns status. */
int ctl_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "usage: lossctl NAME USAGE" to stderr and returns 2. */
int ctl_usage(const CtlCommand *cmd);

/* The daemon resolves relative paths against its own working directory, so a client makes
 * them absolute first: every relative string under node that ends like a data or task file
 * (.csv .npy .npz .json .tsv .txt) and names an existing file under base_dir is replaced by
 * its real path (object members keep their key). Modifies node in place (borrows it). */
void ctl_resolve_paths(cJSON *node, const char *base_dir);

/* Reads the job file a command names, or the whole of stdin for "-". Returns 0 with *text
 * owned and dir (PATH_MAX bytes) set to the directory its relative paths resolve against (the
 * file's real directory; the working directory for stdin), or 1 after printing why: the read
 * error, or "CMD: out of memory reading stdin". */
int ctl_read_job_text(const char *file, const char *cmd, char **text, char *dir);

/* Reads the job file (or stdin for "-") with ctl_read_job_text, parses it and resolves its
 * relative paths (ctl_resolve_paths). Returns 0 with *job owned (a JSON object), or the exit
 * status after printing why: "FILE:LINE:COL: not valid JSON: WHY" (ld_json_error), or "FILE: a
 * job must be a JSON object". */
int ctl_read_job(const char *file, const char *cmd, cJSON **job);

/* Parses a positive decimal id ("7"). Returns 0 or -1. */
int ctl_parse_id(const char *s, int64_t *out);

/* Small readers for result objects: a missing or mistyped member gives the default. Borrow o. */
double ctl_num(const cJSON *o, const char *name, double dflt);
const char *ctl_str(const cJSON *o, const char *name, const char *dflt);

/* A job's progress (borrows pr) as "done/budget": the search's own evaluations against its
 * budget, the final re-evaluations of the top candidates apart: "192/200 (+20 final)". The
 * search's count is at least floor (watch passes the largest it showed, so the count never
 * goes back when the final phase starts and reuses stored results). Returns buf. */
const char *ctl_fmt_evals(char *buf, size_t n, const cJSON *pr, double floor);

/* A metric value in at most 9 columns: 4 decimals below 100, fewer above (1234.6), exponent
 * form from 1e5 or below 1e-4; "-" for NaN. Returns buf. */
const char *ctl_fmt_num(char *buf, size_t n, double v);

/* One side of an entry's final gains (store_final_gains: {mean, ci95, verdict}, borrowed) as
 * "+1.23% [-0.40%, +2.86%]" (relative gain over the baseline, its 95% interval); "-" when g is
 * not a gain. Returns buf. */
const char *ctl_fmt_gain(char *buf, size_t n, const cJSON *g);

/* The recipe of a horizon gain (its steps and model) as "200 steps, hidden [128]". Returns buf. */
const char *ctl_fmt_recipe(char *buf, size_t n, const cJSON *g);

/* 1 when the locale speaks UTF-8 or is not set, 0 when it is set to something else or
 * LOSSCTL_ASCII is set: whether bars and curves may use Unicode blocks. */
int ctl_utf8(void);

#endif
