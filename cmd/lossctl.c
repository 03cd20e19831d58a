/* lossctl.c: the command-line client of lossd: submits jobs, watches them, reads leaderboards,
 * shows and exports candidates, and steers jobs and the daemon (docs/cli.md). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../api/client.h"
#include "../storage/store.h" /* the job states (JOB_STATE_LIST) */

#define EXPR_SHOW_MAX 4096 /* longest expression text shown in a table row */

/* The schedule command group lives in its own files (cmd/ctl_schedule.h declaring
 * `int ctl_schedule_main(Ctl *ctl, int argc, char **argv);` and CTL_SCHEDULE_USAGE, and its .c
 * in the library). It joins the table below when that header exists. */
#if defined(__has_include)
#if __has_include("ctl_schedule.h")
#include "ctl_schedule.h"
#define CTL_HAVE_SCHEDULE 1
#endif
#endif

#include "ctl_format.h" /* lossctl leaderboard --format csv|jsonl */
#include "ctl_report.h" /* lossctl report: the HTML report of a job */
#include "ctl_mcp.h"    /* lossctl mcp: a Model Context Protocol server on stdio */

static int cmd_help(Ctl *ctl, int argc, char **argv);
static void print_clipped(const char *s, int width);
static const CtlCommand *find_command(const char *name);

/* ---- small helpers ------------------------------------------------------------------------- */

/* Columns of the terminal on stdout, or 0 when stdout is not a terminal. */
static int term_cols(void) {
    struct winsize ws;
    if (!isatty(STDOUT_FILENO)) return 0;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

/* Formats a metric value (ctl_fmt_num): at most 9 columns; "-" for NaN. */
static const char *fmt_num(char *buf, size_t n, double v) { return ctl_fmt_num(buf, n, v); }

/* Formats seconds as h:mm:ss or m:ss. */
static const char *fmt_dur(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "-");
        return buf;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

/* A numeric member, or NaN when missing or null. Borrows o. */
static double num_or_nan(const cJSON *o, const char *name) {
    return ctl_num(o, name, NAN);
}

/* Parses a candidate number: 0 or more. */
static int parse_cand_id(const char *s, int64_t *out) {
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return ctl_parse_id(s, out);
}

/* Parses "JOB:CAND" or "JOB/CAND" (one argument) or "JOB" "CAND" (two). Returns the number of
 * arguments used (1 or 2), or 0 when they do not name a candidate. */
static int parse_cand(int argc, char **argv, int64_t *job, int64_t *cand) {
    if (argc >= 1) {
        const char *sep = strpbrk(argv[0], ":/");
        if (sep) {
            char head[32];
            size_t n = (size_t)(sep - argv[0]);
            if (n == 0 || n >= sizeof head) return 0;
            memcpy(head, argv[0], n);
            head[n] = '\0';
            if (ctl_parse_id(head, job) != 0 || parse_cand_id(sep + 1, cand) != 0) return 0;
            return 1;
        }
    }
    if (argc >= 2 && ctl_parse_id(argv[0], job) == 0 && parse_cand_id(argv[1], cand) == 0) return 2;
    return 0;
}

/* Bad usage that names what was wrong: prints "CMD: 'ARG' is not WHAT" and the command's usage
 * line; returns 2. */
static int bad_arg(const char *cmd, const char *arg, const char *what) {
    ctl_fail(2, "%s: '%s' is not %s", cmd, arg, what);
    return ctl_usage(find_command(cmd));
}

#define A_JOB "a job id (a positive integer such as 3)"
#define A_CAND "a candidate (JOB:CAND such as 3:17)"

/* The option tables of the commands (one row per option: name, alias, value, help), read by
 * the one parser (ctl_parse) and printed by `lossctl help COMMAND`. */
static const CtlOpt submit_opts[] = {
    {"--token", NULL, "TOKEN", "client_token: the same token again returns the first job, starts nothing"},
    {"--priority", NULL, "N", "1..100, the job's weight when jobs share the workers (default 1)"},
    {0}};
static const CtlOpt workers_opts[] = {{"--all", NULL, NULL, "also workers that stopped"}, {0}};
static const CtlOpt jobs_opts[] = {
    {"--state", NULL, "STATE",
     "only jobs in STATE: " JOB_STATE_NAMES "\n"
     "(default: every job; `lossctl jobs STATE` is the same)"},
    {0}};
static const CtlOpt watch_opts[] = {
    {"--interval", NULL, "SECONDS", "how often to ask the daemon, > 0 (default 0.5)"}, {0}};
static const CtlOpt leaderboard_opts[] = {
    {"--family", NULL, "F", "every job of family F (classification, regression, physics, contrastive)"},
    {"--top", NULL, "N", "how many rows (default 10)"},
    {"--metric", NULL, "M",
     "rank by metric M's mean over seeds, e.g. accuracy, balanced_accuracy\n(default: fitness)"},
    {"--format", NULL, "F", "csv or jsonl: every field, one row per line, for scripts (default: a table)"},
    {0}};
static const CtlOpt export_opts[] = {
    {"--as", "--format", "FORMAT", "pytorch, numpy, latex or expr (default pytorch; --format is the same)"},
    {"--expr", NULL, "EXPR", "export this expression instead of a stored candidate (needs --family)"},
    {"--family", NULL, "F", "the expression's family: classification, regression, physics,\ncontrastive"},
    {0}};
static const CtlOpt propose_opts[] = {
    {"--from", NULL, "FILE", "also one expression a line from FILE ('#' comments; '-' reads stdin)"},
    {"--source", NULL, "LABEL",
     "who proposes (A-Z a-z 0-9 _ . -, default user): the leaderboard's\norigin is proposed:LABEL"},
    {"--note", NULL, "TEXT", "stored with the proposals"},
    {0}};
static const CtlOpt failures_opts[] = {
    {"--examples", NULL, "N", "examples per reason, 0..100 (default 3)"}, {0}};

/* Parses a command's arguments (argv[0] is its name) against its option table. Returns 0, or
 * 2 after printing what was wrong and the command's usage line. */
static int parse_cmd(int argc, char **argv, CtlArgs *a) {
    const CtlCommand *c = find_command(argv[0]);
    return ctl_parse(argv[0], c->opts, argc, argv, 1, NULL, NULL, a) ? ctl_usage(c) : 0;
}

/* Runs a call whose only parameter is job_id. Takes nothing; returns an exit status. */
static int call_job(Ctl *ctl, const char *method, int64_t job, cJSON **result) {
    char what[48];
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "job_id", (double)job);
    snprintf(what, sizeof what, "job %lld", (long long)job);
    return ctl_call(ctl, method, p, what, result);
}

/* ---- submit ------------------------------------------------------------------------------- */

static int cmd_submit(Ctl *ctl, int argc, char **argv) {
    CtlArgs a;
    cJSON *job = NULL, *params = NULL, *res = NULL;
    int status = 0;
    int64_t prio = 0;
    if (parse_cmd(argc, argv, &a) != 0) return 2;
    if (a.npos != 1) return ctl_usage(find_command("submit"));
    if (ctl_opt(&a, "--priority") && (ctl_parse_id(ctl_opt(&a, "--priority"), &prio) != 0 || prio > 100))
        return ctl_fail(2, "submit: --priority must be an integer 1..100");

    const char *file = a.pos[0];
    status = ctl_read_job(file, "submit", &job);
    if (status != 0) return status;
    params = cJSON_CreateObject();
    cJSON_AddItemToObject(params, "job", job);
    job = NULL;
    if (ctl_opt(&a, "--token")) cJSON_AddStringToObject(params, "client_token", ctl_opt(&a, "--token"));
    if (prio) cJSON_AddNumberToObject(params, "priority", (double)prio);
    status = ctl_call(ctl, "job.submit", params, file, &res);
    params = NULL;
    if (status) goto done;
    if (ctl->json) {
        ctl_print_json(res);
    } else {
        printf("%.0f\n", ctl_num(res, "job_id", 0));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "existing")) && isatty(2))
            fprintf(stderr, "lossctl: token already used: job %.0f was submitted before\n",
                    ctl_num(res, "job_id", 0));
    }
done:
    cJSON_Delete(res);
    cJSON_Delete(params);
    cJSON_Delete(job);
    return status;
}

/* ---- status, jobs ------------------------------------------------------------------------- */

static int cmd_status(Ctl *ctl, int argc, char **argv) {
    cJSON *res = NULL;
    if (argc != 1) return ctl_usage(find_command("status"));
    int st = ctl_call(ctl, "server.status", NULL, NULL, &res);
    if (st) return st;
    if (ctl->json) {
        ctl_print_json(res);
    } else {
        const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(res, "jobs");
        char b1[32];
        printf("lossd %s  pid %.0f  up %s  socket %s\n", ctl_str(res, "version", "?"),
               ctl_num(res, "pid", 0), fmt_dur(b1, sizeof b1, ctl_num(res, "uptime_s", 0)),
               ctl->socket_path);
        printf("workers   %.0f busy of %.0f, %.0f evaluations queued, %.1f evals/s (last minute), "
               "%.0f evaluations in all\n",
               ctl_num(res, "workers_busy", 0), ctl_num(res, "workers", 0),
               ctl_num(res, "queue_length", 0), ctl_num(res, "evals_per_s", 0),
               ctl_num(res, "evaluations_total", 0));
        if (jobs)
            printf("jobs      %.0f running, %.0f queued, %.0f paused, %.0f done, %.0f failed, "
                   "%.0f cancelled, %.0f expired\n",
                   ctl_num(jobs, "running", 0), ctl_num(jobs, "queued", 0),
                   ctl_num(jobs, "paused", 0), ctl_num(jobs, "done", 0), ctl_num(jobs, "failed", 0),
                   ctl_num(jobs, "cancelled", 0), ctl_num(jobs, "expired", 0));
        printf("database  %s (%.1f MiB)\n", ctl_str(res, "db_path", "?"),
               ctl_num(res, "db_bytes", 0) / 1048576.0);
        printf("clients   %.0f%s\n", ctl_num(res, "clients", 0),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "shutting_down"))
                   ? "  (shutting down)"
                   : "");
    }
    cJSON_Delete(res);
    return 0;
}



static int cmd_workers(Ctl *ctl, int argc, char **argv) {
    cJSON *res = NULL;
    CtlArgs a;
    if (parse_cmd(argc, argv, &a) != 0) return 2;
    if (a.npos != 0) return ctl_usage(find_command("workers"));
    int all = ctl_opt(&a, "--all") != NULL;
    int st = ctl_call(ctl, "server.workers", NULL, NULL, &res);
    if (st) return st;
    if (ctl->json) {
        ctl_print_json(res);
        cJSON_Delete(res);
        return 0;
    }
    printf("%-24s %-8s %-7s %-8s %-8s %s\n", "HOST", "PID", "THREADS", "EVALS", "STATE", "LEASES");
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(res, "workers")) {
        const char *state = ctl_str(w, "state", "?");
        if (!all && !strcmp(state, "stopped")) continue;
        char leases[200] = "-";
        int k = 0, n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(w, "leases"));
        const cJSON *l;
        cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(w, "leases")) {
            if (k >= 3) break;
            int at = k ? (int)strlen(leases) : 0;
            snprintf(leases + at, sizeof leases - (size_t)at, "%sjob %.0f seq %.0f", k ? ", " : "",
                     ctl_num(l, "job_id", 0), ctl_num(l, "seq", 0));
            k++;
        }
        if (n > k) {
            int at = (int)strlen(leases);
            snprintf(leases + at, sizeof leases - (size_t)at, ", and %d more", n - k);
        }
        int local = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "local"));
        printf("%-24.24s %-8.0f %-7.0f %-8.0f %-8s %s%s\n", ctl_str(w, "host", "?"),
               ctl_num(w, "pid", 0), ctl_num(w, "threads", 0), ctl_num(w, "evals_done", 0), state,
               leases, local ? "  (the daemon's own threads)" : "");
    }
    cJSON_Delete(res);
    return 0;
}

static int cmd_jobs(Ctl *ctl, int argc, char **argv) {
    CtlArgs a;
    cJSON *res = NULL, *params = NULL;
    if (parse_cmd(argc, argv, &a) != 0) return 2;
    const char *state = ctl_opt(&a, "--state");
    if (a.npos == 1 && !state) state = a.pos[0];
    else if (a.npos != 0) return ctl_usage(find_command("jobs"));
    if (state && !store_state_valid(state))
        return bad_arg("jobs", state, "a state (" JOB_STATE_NAMES ")");
    if (state) {
        params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "state", state);
    }
    int st = ctl_call(ctl, "job.list", params, NULL, &res);
    if (st) return st;
    if (ctl->json) {
        ctl_print_json(res);
        cJSON_Delete(res);
        return 0;
    }
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(res, "jobs");
    if (cJSON_GetArraySize(jobs) == 0) {
        printf("no jobs%s%s\n", state ? " in state " : "", state ? state : "");
        cJSON_Delete(res);
        return 0;
    }
    /* the name column is as wide as the longest name; ERROR (why a job failed or is held)
     * comes last, cut to the terminal's width */
    int namew = 4, any_error = 0, cols = term_cols();
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs) {
        int w = (int)strlen(ctl_str(j, "name", ""));
        namew = w > namew ? (w > 40 ? 40 : w) : namew;
        any_error |= ctl_str(j, "error", NULL) != NULL;
    }
    printf("%5s  %-9s  %-20s  %-9s  %8s  %-*s%s\n", "JOB", "STATE", "EVALUATIONS", "BEST", "ELAPSED",
           any_error ? namew : 0, "NAME", any_error ? "  ERROR" : "");
    cJSON_ArrayForEach(j, jobs) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "progress");
        char ev[48], best[32], el[32];
        ctl_fmt_evals(ev, sizeof ev, pr, 0);
        const char *error = ctl_str(j, "error", NULL);
        int n = printf("%5.0f  %-9s  %-20s  %-9s  %8s  %-*s", ctl_num(j, "job_id", 0),
                       ctl_str(j, "state", "?"), ev, fmt_num(best, sizeof best, num_or_nan(pr, "best_fitness")),
                       fmt_dur(el, sizeof el, ctl_num(pr, "elapsed_s", 0)), error ? namew : 0,
                       ctl_str(j, "name", ""));
        if (error) {
            n += printf("  ");
            print_clipped(error, cols ? cols - n : 0);
        }
        putchar('\n');
    }
    cJSON_Delete(res);
    return 0;
}

/* ---- watch -------------------------------------------------------------------------------- */

static int terminal_state(const char *s) {
    JobState st;
    return job_state_parse(s, &st) == LD_OK && st >= JOB_DONE;
}

/* Draws (TTY) or prints (otherwise) one progress report of a job summary. Borrows job. */
static void show_progress(const cJSON *job, int tty, int utf8, double *shown) {
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(job, "progress");
    double done = ctl_num(pr, "evaluations", 0), budget = ctl_num(pr, "budget", 0);
    double rate = ctl_num(pr, "rate", 0), elapsed = ctl_num(pr, "elapsed_s", 0);
    char evs[48];
    ctl_fmt_evals(evs, sizeof evs, pr, *shown);
    double fin = ctl_num(pr, "final_evaluations", 0), search = fin > 0 && fin <= done ? done - fin : done;
    if (search > *shown) *shown = search;
    double budget_s = ctl_num(pr, "budget_s", 0);
    const char *state = ctl_str(job, "state", "?");
    char best[32], left[32], el[32], rt[32];
    double eta = NAN;
    if (rate > 0 && budget > done) eta = (budget - done) / rate;
    if (budget_s > 0 && (isnan(eta) || budget_s - elapsed < eta)) eta = fmax(0, budget_s - elapsed);
    if (budget > 0 && done >= budget) eta = 0;
    fmt_num(best, sizeof best, num_or_nan(pr, "best_fitness"));
    fmt_dur(left, sizeof left, eta);
    fmt_dur(el, sizeof el, elapsed);
    snprintf(rt, sizeof rt, "%.2f/s", rate);
    if (!tty) {
        printf("job %.0f %s: evaluations %s, %s, best %s, elapsed %s, left %s\n",
               ctl_num(job, "job_id", 0), state, evs, rt, best, el, left);
        fflush(stdout);
        return;
    }
    int cols = term_cols();
    int width = cols >= 100 ? 30 : cols >= 80 ? 20 : 10;
    double frac = budget > 0 ? fmin(1.0, done / budget) : 0;
    char bar[30 * 3 * 2 + 8];
    size_t k = 0;
    int eighths = (int)(frac * width * 8 + 0.5);
    static const char *const part[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    for (int i = 0; i < width; i++) {
        int fill = eighths - i * 8;
        const char *c;
        if (utf8)
            c = fill >= 8 ? "█" : fill > 0 ? part[fill] : "·";
        else
            c = fill >= 8 ? "#" : fill >= 4 ? "+" : fill > 0 ? "-" : ".";
        size_t n = strlen(c);
        memcpy(bar + k, c, n);
        k += n;
    }
    bar[k] = '\0';
    printf("\r\033[Kjob %.0f %s |%s| %3.0f%%  evals %s  %s  best %s  left %s",
           ctl_num(job, "job_id", 0), state, bar, frac * 100, evs, rt, best, left);
    fflush(stdout);
}

/* Set by SIGINT during watch: the bar line is finished before exiting, so the shell prompt
 * does not land on it. */
static volatile sig_atomic_t watch_interrupted;
static void on_sigint(int sig) {
    (void)sig;
    watch_interrupted = 1;
}

static int cmd_watch(Ctl *ctl, int argc, char **argv) {
    CtlArgs a;
    int64_t job;
    cJSON *res = NULL;
    if (parse_cmd(argc, argv, &a) != 0) return 2;
    if (a.npos != 1) return ctl_usage(find_command("watch"));
    if (ctl_parse_id(a.pos[0], &job) != 0) return bad_arg("watch", a.pos[0], A_JOB);
    double interval = ctl_opt(&a, "--interval") ? atof(ctl_opt(&a, "--interval")) : 0.5;
    if (!(interval > 0 && interval <= 3600)) return ctl_fail(2, "watch: --interval must be > 0");
    int tty = isatty(STDOUT_FILENO) && !ctl->json, utf8 = ctl_utf8();
    double last_evals = -1, shown = 0; /* shown: the largest search count printed */
    char last_state[16] = "";
    int status = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: the sleep below wakes up */
    sigaction(SIGINT, &sa, NULL);
    for (;;) {
        if (watch_interrupted) {
            if (tty) putchar('\n');
            fflush(stdout);
            return 130;
        }
        status = call_job(ctl, "job.get", job, &res);
        if (status) {
            if (tty) putchar('\n');
            return status;
        }
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(res, "progress");
        const char *state = ctl_str(res, "state", "?");
        double evals = ctl_num(pr, "evaluations", 0);
        int changed = evals != last_evals || strcmp(state, last_state) != 0;
        if (ctl->json) {
            if (changed) ctl_print_json(res);
            fflush(stdout);
        } else if (tty || changed) {
            show_progress(res, tty, utf8, &shown);
        }
        last_evals = evals;
        snprintf(last_state, sizeof last_state, "%s", state);
        if (terminal_state(state)) break;
        cJSON_Delete(res);
        res = NULL;
        struct timespec ts = {(time_t)interval, (long)((interval - (time_t)interval) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !watch_interrupted) {
        }
    }
    if (tty) putchar('\n');
    const char *state = ctl_str(res, "state", "?");
    if (!ctl->json) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(res, "progress");
        const char *best = ctl_str(pr, "best_expr", NULL);
        char b[32];
        if (best)
            printf("job %lld %s: best %s  %s\n", (long long)job, state,
                   fmt_num(b, sizeof b, num_or_nan(pr, "best_fitness")), best);
    }
    if (strcmp(state, "done") != 0) {
        const char *why = ctl_str(res, "error", NULL);
        status = why ? ctl_fail(1, "job %lld %s: %s", (long long)job, state, why)
                     : ctl_fail(1, "job %lld %s", (long long)job, state);
    }
    cJSON_Delete(res);
    return status;
}

/* ---- leaderboard -------------------------------------------------------------------------- */

/* The main metric's mean of one task in an entry's metrics ({task: {metric: {mean,...}}}), and
 * the metric's name. Borrows entry. */
static double task_metric(const cJSON *task_metrics, const char **name) {
    const cJSON *m = task_metrics ? task_metrics->child : NULL;
    *name = m && m->string ? m->string : "";
    if (!m) return NAN;
    if (cJSON_IsNumber(m)) return m->valuedouble;
    return num_or_nan(m, "mean");
}

/* Cuts s to at most width display columns (counting UTF-8 sequences as one), adding "…". */
static void print_clipped(const char *s, int width) {
    int cols = 0;
    const char *p = s;
    if (width <= 0) {
        fputs(s, stdout);
        return;
    }
    while (*p) {
        if (((unsigned char)*p & 0xC0) != 0x80) {
            if (cols == width - 1) {
                const char *q = p;
                int rest = 0;
                while (*q) rest += (((unsigned char)*q++ & 0xC0) != 0x80);
                if (rest > 1) {
                    fputs(ctl_utf8() ? "…" : ">", stdout);
                    return;
                }
            }
            cols++;
        }
        putchar(*p++);
    }
}

/* A leaderboard table: columns fixed by the first entry's tasks. */
typedef struct Table {
    int64_t job;        /* job of the query (entries of a family query carry their own) */
    int cols;           /* terminal width, 0: not a terminal (nothing clipped) */
    const cJSON *tasks; /* first entry's metrics: {task: {metric: {...}}} */
    int ntask;
    int width[6];
    int origin_w;       /* the ORIGIN column's width: the longest origin shown */
    const char *metric; /* first task's metric name */
} Table;

static void table_header(Table *tb) {
    const cJSON *t;
    tb->metric = "";
    printf("%4s  %-10s  %-9s  %-9s  %-9s  %4s", "RANK", "CANDIDATE", "FITNESS", "MEAN", "SPREAD", "RUNS");
    cJSON_ArrayForEach(t, tb->tasks) {
        const char *mname;
        if (tb->ntask >= 6) break;
        task_metric(t, &mname);
        if (tb->ntask == 0) tb->metric = mname;
        int w = t->string ? (int)strlen(t->string) : 1;
        w = w < 9 ? 9 : w > 16 ? 16 : w;
        tb->width[tb->ntask++] = w;
        printf("  %-*.*s", w, w, t->string ? t->string : "?");
    }
    printf("  %-*s  EXPRESSION\n", tb->origin_w, "ORIGIN");
}

static void table_row(const Table *tb, const cJSON *e) {
    char b1[32], b2[32], b3[32], id[48];
    const cJSON *t;
    snprintf(id, sizeof id, "%.0f:%.0f", ctl_num(e, "job_id", (double)tb->job), ctl_num(e, "cand", 0));
    double fit = num_or_nan(e, "fitness");
    if (!isnan(fit) && fabs(fit) < 1e4)
        snprintf(b1, sizeof b1, "%+.4f", fit);
    else
        fmt_num(b1, sizeof b1, fit);
    char rank[16] = "-";
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "rank")))
        snprintf(rank, sizeof rank, "%.0f", ctl_num(e, "rank", 0));
    char runs[16] = "-";
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "runs")))
        snprintf(runs, sizeof runs, "%.0f", ctl_num(e, "runs", 0));
    int n = printf("%4s  %-10s  %-9s  %-9s  %-9s  %4s", rank, id, b1,
                   fmt_num(b2, sizeof b2, num_or_nan(e, "mean")),
                   fmt_num(b3, sizeof b3, num_or_nan(e, "spread")), runs);
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(e, "metrics");
    int i = 0;
    cJSON_ArrayForEach(t, tb->tasks) {
        const char *mname;
        if (i >= tb->ntask) break;
        const cJSON *mine = cJSON_GetObjectItemCaseSensitive(tm, t->string);
        n += printf("  %-*s", tb->width[i++], fmt_num(b1, sizeof b1, task_metric(mine, &mname)));
    }
    n += printf("  %-*s  ", tb->origin_w, ctl_str(e, "origin", "-"));
    char expr[EXPR_SHOW_MAX];
    int base = strcmp(ctl_str(e, "op", ""), "baseline") == 0;
    snprintf(expr, sizeof expr, "%s%s", ctl_str(e, "expr", "?"), base ? "  (baseline)" : "");
    print_clipped(expr, tb->cols ? tb->cols - n : 0);
    putchar('\n');
}

/* The final checks of entries that have them (store_final_gains): each one's gain over the
 * baseline at the search's recipe and at the user's, side by side with their 95% intervals,
 * and what the horizon says of it. Borrows entries. */
static void print_gains(const cJSON *entries, long long job) {
    const cJSON *e, *g;
    int any = 0;
    char b1[64], b2[64], recipe[160] = "";
    cJSON_ArrayForEach(e, entries) {
        g = cJSON_GetObjectItemCaseSensitive(e, "gains");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(g, "horizon");
        if (!cJSON_IsObject(h)) continue; /* no check at the user's recipe: the table says it all */
        if (!any++) {
            printf("\nfinal checks: relative test gain over the baseline, mean [95%% interval] over fresh seeds\n");
            printf("  %-10s  %-28s  %-28s  %s\n", "CANDIDATE", "SEARCH RECIPE", "YOUR RECIPE", "AT YOUR RECIPE");
        }
        char id[40];
        snprintf(id, sizeof id, "%lld:%.0f", job, ctl_num(e, "cand", 0));
        printf("  %-10s  %-28s  %-28s  %s\n", id,
               ctl_fmt_gain(b1, sizeof b1, cJSON_GetObjectItemCaseSensitive(g, "search")),
               ctl_fmt_gain(b2, sizeof b2, h), ctl_str(g, "label", "?"));
        if (!recipe[0]) ctl_fmt_recipe(recipe, sizeof recipe, h);
    }
    if (recipe[0]) printf("your recipe: %s (final.horizon)\n", recipe);
}

static int cmd_leaderboard(Ctl *ctl, int argc, char **argv) {
    CtlArgs a;
    int64_t job = 0, top = 10;
    cJSON *res = NULL;
    if (parse_cmd(argc, argv, &a) != 0) return 2;
    const char *family = ctl_opt(&a, "--family");
    if (ctl_opt(&a, "--top") && ctl_parse_id(ctl_opt(&a, "--top"), &top) != 0)
        return ctl_fail(2, "leaderboard: --top must be a positive integer");
    if (a.npos > 1 || (a.npos == 0 && !family) || (a.npos == 1 && family))
        return ctl_usage(find_command("leaderboard"));
    if (a.npos == 1 && ctl_parse_id(a.pos[0], &job) != 0) return bad_arg("leaderboard", a.pos[0], A_JOB);
    cJSON *p = cJSON_CreateObject();
    char what[48];
    if (family) {
        cJSON_AddStringToObject(p, "family", family);
        snprintf(what, sizeof what, "family %s", family);
    } else {
        cJSON_AddNumberToObject(p, "job_id", (double)job);
        snprintf(what, sizeof what, "job %lld", (long long)job);
    }
    cJSON_AddNumberToObject(p, "k", (double)top);
    if (ctl_opt(&a, "--metric")) cJSON_AddStringToObject(p, "metric", ctl_opt(&a, "--metric"));
    int st = ctl_call(ctl, "leaderboard.query", p, what, &res);
    if (st) return st;
    if (ctl->json) {
        ctl_print_json(res);
        cJSON_Delete(res);
        return 0;
    }
    if (ctl_opt(&a, "--format")) { /* csv or jsonl, for spreadsheets and scripts */
        st = ctl_format_entries(res, job, ctl_opt(&a, "--format"));
        cJSON_Delete(res);
        return st;
    }
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(res, "entries");
    if (cJSON_GetArraySize(entries) == 0) {
        printf("%s: no candidates scored yet\n", what);
        cJSON_Delete(res);
        return 0;
    }
    if (family) { /* expressions across jobs: no candidate id, fitness or per-task columns */
        int cols = term_cols();
        printf("%4s  %-6s  %-9s  %-9s  %5s  %4s  %5s  EXPRESSION\n", "RANK", "SCORE", "VAL", "TEST",
               "TASKS", "JOBS", "EVALS");
        const cJSON *fe;
        cJSON_ArrayForEach(fe, entries) {
            char b1[32], b2[32];
            int n = printf("%4.0f  %-6.3f  %-9s  %-9s  %5.0f  %4.0f  %5.0f  ", ctl_num(fe, "rank", 0),
                           ctl_num(fe, "score", NAN), fmt_num(b1, sizeof b1, num_or_nan(fe, "val_mean")),
                           fmt_num(b2, sizeof b2, num_or_nan(fe, "test_mean")), ctl_num(fe, "tasks", 0),
                           ctl_num(fe, "jobs", 0), ctl_num(fe, "evals", 0));
            print_clipped(ctl_str(fe, "expr", "?"), cols ? cols - n : 0);
            putchar('\n');
        }
        printf("score: mean over the tasks an expression was tried on of the share of that task's "
               "expressions it is at least as good as (1 = the best everywhere);\nVAL, TEST: mean "
               "%s over those tasks; ranked by %s\n",
               strcmp(ctl_str(res, "metric", "fitness"), "fitness") ? ctl_str(res, "metric", "") : "main metric",
               strcmp(ctl_str(res, "metric", "fitness"), "fitness") ? ctl_str(res, "metric", "") : "score");
        cJSON_Delete(res);
        return 0;
    }
    /* Task columns come from the first entry: one column per task, its main metric. */
    Table tb = {.job = job, .cols = term_cols(), .tasks = cJSON_GetObjectItemCaseSensitive(
                                                     cJSON_GetArrayItem(entries, 0), "metrics")};
    const cJSON *e, *base = cJSON_GetObjectItemCaseSensitive(res, "baseline");
    tb.origin_w = 6;
    cJSON_ArrayForEach(e, entries) {
        int w = (int)strlen(ctl_str(e, "origin", "-"));
        if (w > tb.origin_w) tb.origin_w = w > 24 ? 24 : w;
    }
    table_header(&tb);
    int have_baseline = 0;
    cJSON_ArrayForEach(e, entries) {
        table_row(&tb, e);
        have_baseline |= strcmp(ctl_str(e, "op", ""), "baseline") == 0;
    }
    /* The baseline is what every fitness is measured against: the reply carries its row when
     * it is not among the entries (with its rank when it has one, store_leaderboard). */
    if (!have_baseline && cJSON_IsObject(base)) {
        printf("%4s\n", ctl_utf8() ? "⋮" : "...");
        table_row(&tb, base);
    }
    const char *metric = ctl_str(res, "metric", "fitness");
    if (strcmp(metric, "fitness") == 0)
        printf("fitness: mean relative gain over the baseline's validation %s, less a size "
               "penalty (+0.02 = 2%% better)\n",
               tb.ntask ? tb.metric : "metric");
    if (tb.ntask > 0) /* fitness: search_tier's order (docs/jobs.md, "Final selection") */
        printf("task columns: mean validation %s over seeds; ranked by %s%s\n", tb.metric, metric,
               strcmp(metric, "fitness") ? "" : ", candidates re-checked on fresh seeds first");
    print_gains(entries, (long long)job);
    cJSON_Delete(res);
    return 0;
}

/* ---- show ----------------------------------------------------------------------------------- */

/* printf of whole lines (fmt ends in "\n") without the spaces that padding a last column or an
 * empty end of a chart row leaves before the newline. */
static void outf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void outf(const char *fmt, ...) {
    char small[1024], *buf = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof small) {
        if (!(buf = malloc((size_t)n + 1))) return;
        va_start(ap, fmt);
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    int end = n;
    while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == ' ')) end--;
    fwrite(buf, 1, (size_t)end, stdout);
    putchar('\n');
    if (buf != small) free(buf);
}

/* Draws ys[0..n) as a chart height rows tall, at most width columns, with the range labelled on
 * the left. Unicode eighth blocks when utf8, else ASCII. */
static void draw_chart(const double *ys, int n, int height, int width, int utf8, double x0,
                       double x1) {
    static const char *const blocks[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    static const char *const ascii[] = {" ", " ", ".", ".", ":", ":", "|", "|", "#"};
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(ys[i])) lo = fmin(lo, ys[i]), hi = fmax(hi, ys[i]);
    if (!isfinite(lo)) {
        outf("    (no finite points)\n");
        return;
    }
    if (hi - lo < 1e-12) hi = lo + 1e-12;
    /* few points are stretched to up to three columns each, many are sampled */
    int rep = n * 3 <= width ? 3 : n * 2 <= width ? 2 : 1;
    int cols = n * rep < width ? n * rep : width;
    double span = hi - lo;
    for (int r = height - 1; r >= 0; r--) {
        char label[32] = "";
        if (r == height - 1) fmt_num(label, sizeof label, hi);
        if (r == 0) fmt_num(label, sizeof label, lo);
        char row[64 * 3 * 4 + 64];
        size_t len = (size_t)snprintf(row, sizeof row, "  %9s %s", label, utf8 ? "┤" : "|");
        for (int c = 0; c < cols; c++) {
            /* column c shows the point nearest to its position on the step axis */
            int i = rep > 1 ? c / rep : cols == 1 ? 0 : (int)((double)c * (n - 1) / (cols - 1) + 0.5);
            double y = ys[i];
            int level = isfinite(y) ? (int)((y - lo) / span * height * 8 + 0.5) : 0;
            if (isfinite(y) && level == 0) level = 1; /* the minimum still shows */
            int fill = level - r * 8;
            fill = fill < 0 ? 0 : fill > 8 ? 8 : fill;
            const char *b = utf8 ? blocks[fill] : ascii[fill];
            size_t bl = strlen(b);
            if (len + bl < sizeof row) memcpy(row + len, b, bl + 1), len += bl;
        }
        outf("%s\n", row);
    }
    if (x1 > x0) { /* the step axis: first and last step under the ends of the plot */
        char a[32], b[32];
        snprintf(a, sizeof a, "%.0f", x0);
        snprintf(b, sizeof b, "%.0f", x1);
        int gap = cols - (int)strlen(a) - (int)strlen(b);
        outf("  %9s  %s%*s%s  step\n", "", a, gap > 1 ? gap : 1, "", b);
    }
}

/* Draws one evaluation's learning curve ([[step, loss, val], ...]): training loss and validation
 * metric. Borrows result. */
static void show_curve(const cJSON *result, int utf8) {
    const cJSON *curve = cJSON_GetObjectItemCaseSensitive(result, "curve");
    int n = cJSON_GetArraySize(curve);
    if (n <= 0) {
        outf("  (no learning curve)\n");
        return;
    }
    double *loss = calloc((size_t)n, sizeof *loss), *val = calloc((size_t)n, sizeof *val);
    double last_step = 0, first_step = 0;
    if (!loss || !val) goto done;
    for (int i = 0; i < n; i++) {
        const cJSON *pt = cJSON_GetArrayItem(curve, i);
        loss[i] = val[i] = NAN;
        if (cJSON_IsArray(pt)) {
            const cJSON *s = cJSON_GetArrayItem(pt, 0), *l = cJSON_GetArrayItem(pt, 1),
                        *v = cJSON_GetArrayItem(pt, 2);
            if (cJSON_IsNumber(s)) last_step = s->valuedouble;
            if (i == 0) first_step = last_step;
            if (cJSON_IsNumber(l)) loss[i] = l->valuedouble;
            if (cJSON_IsNumber(v)) val[i] = v->valuedouble;
        } else if (cJSON_IsObject(pt)) {
            last_step = ctl_num(pt, "step", last_step);
            if (i == 0) first_step = last_step;
            loss[i] = num_or_nan(pt, "loss");
            val[i] = num_or_nan(pt, "val");
        }
    }
    int width = term_cols() ? term_cols() - 16 : 64;
    if (width > 64) width = 64;
    if (width < 8) width = 8;
    outf("  validation %s over %.0f steps (%d points)\n", ctl_str(result, "metric", "metric"),
           last_step, n);
    draw_chart(val, n, 6, width, utf8, 0, 0);
    outf("  training loss\n");
    draw_chart(loss, n, 4, width, utf8, first_step, last_step);
done:
    free(loss);
    free(val);
}

static int cmd_show(Ctl *ctl, int argc, char **argv) {
    CtlArgs a;
    int64_t job, cand;
    cJSON *res = NULL;
    if (parse_cmd(argc, argv, &a) != 0) return 2;
    int used = parse_cand(a.npos, a.pos, &job, &cand);
    if (a.npos >= 1 && !used) return bad_arg("show", a.pos[0], A_CAND);
    if (!used || used != a.npos) return ctl_usage(find_command("show"));
    cJSON *p = cJSON_CreateObject();
    char what[64], b1[32], b2[32], b3[32];
    cJSON_AddNumberToObject(p, "job_id", (double)job);
    cJSON_AddNumberToObject(p, "cand", (double)cand);
    snprintf(what, sizeof what, "candidate %lld:%lld", (long long)job, (long long)cand);
    int st = ctl_call(ctl, "candidate.get", p, what, &res);
    if (st) return st;
    if (ctl->json) {
        ctl_print_json(res);
        cJSON_Delete(res);
        return 0;
    }
    int utf8 = ctl_utf8();
    outf("candidate  %lld:%lld\n", (long long)job, (long long)cand);
    outf("expression %s\n", ctl_str(res, "expr", "?"));
    outf("fitness    %s\n", fmt_num(b1, sizeof b1, num_or_nan(res, "fitness")));
    const cJSON *parents = cJSON_GetObjectItemCaseSensitive(res, "parents");
    const char *op = ctl_str(res, "op", NULL);
    printf("origin     %s\n", ctl_str(res, "origin", "-"));
    printf("lineage    %s", op ? op : (cJSON_GetArraySize(parents) ? "from" : "initial population"));
    const cJSON *par;
    int np = 0;
    cJSON_ArrayForEach(par, parents) {
        if (cJSON_IsNumber(par))
            printf("%s%lld:%.0f", np++ ? ", " : " of ", (long long)job, par->valuedouble);
    }
    putchar('\n');
    const cJSON *lin = cJSON_GetObjectItemCaseSensitive(res, "lineage");
    if (cJSON_IsArray(lin)) { /* ancestors, nearest first: one line each */
        const cJSON *anc;
        int shown = 0, nlin = cJSON_GetArraySize(lin);
        cJSON_ArrayForEach(anc, lin) {
            char id[40];
            if (shown++ == 8 && nlin > 9) { /* the nearest ones tell the story */
                outf("           %s (%d older ancestors: lossctl --json show %lld:%lld)\n",
                       utf8 ? "…" : "...", nlin - 8, (long long)job, (long long)cand);
                break;
            }
            snprintf(id, sizeof id, "%lld:%.0f", (long long)job, ctl_num(anc, "cand", 0));
            outf("           %s %-8s %-11s %-9s %s\n", utf8 ? "←" : "<-", id,
                   ctl_str(anc, "op", ""), fmt_num(b1, sizeof b1, num_or_nan(anc, "fitness")),
                   ctl_str(anc, "expr", ""));
        }
    }
    const cJSON *gains = cJSON_GetObjectItemCaseSensitive(res, "gains");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(gains, "horizon");
    if (cJSON_IsObject(h)) { /* the final checks: the search's recipe, then the user's */
        char g1[64], g2[160];
        printf("final      %s at the search's recipe (test, relative to the baseline, 95%% interval)\n",
               ctl_fmt_gain(g1, sizeof g1, cJSON_GetObjectItemCaseSensitive(gains, "search")));
        printf("           %s at your recipe (%s): %s\n", ctl_fmt_gain(g1, sizeof g1, h),
               ctl_fmt_recipe(g2, sizeof g2, h), ctl_str(gains, "label", "?"));
    }
    const cJSON *evals = cJSON_GetObjectItemCaseSensitive(res, "evaluations");
    int ne = cJSON_GetArraySize(evals);
    outf("\nevaluations (%d)\n", ne);
    if (ne > 0)
        outf("  %-14s  %-20s  %6s  %-12s  %-8s  %-8s  %8s\n", "TASK", "SEED", "STEPS", "METRIC",
               "VAL", "TEST", "WALL");
    const cJSON *ev, *best_curve = NULL;
    int best_steps = -1;
    cJSON_ArrayForEach(ev, evals) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(ev, "result");
        const cJSON *seed = cJSON_GetObjectItemCaseSensitive(ev, "seed");
        char seedtxt[32];
        if (cJSON_IsString(seed))
            snprintf(seedtxt, sizeof seedtxt, "%s", seed->valuestring);
        else
            snprintf(seedtxt, sizeof seedtxt, "%.0f", cJSON_IsNumber(seed) ? seed->valuedouble : 0);
        const char *status = ctl_str(r, "status", "?");
        char wall[32];
        snprintf(wall, sizeof wall, "%.0f ms", ctl_num(r, "wall_ms", 0));
        printf("  %-14s  %-20s  %6.0f  %-12s  %-8s  %-8s  %8s", ctl_str(ev, "task_name", "?"),
               seedtxt, ctl_num(ev, "steps", ctl_num(r, "steps", 0)), ctl_str(r, "metric", "?"),
               fmt_num(b2, sizeof b2, num_or_nan(r, "val")),
               fmt_num(b3, sizeof b3, num_or_nan(r, "test")), wall);
        if (strcmp(status, "ok") != 0)
            printf("  %s: %s", status, ctl_str(r, "error", ""));
        putchar('\n');
        /* the curve shown is the longest successful run's */
        int steps = (int)ctl_num(r, "steps", 0);
        if (strcmp(status, "ok") == 0 && steps > best_steps &&
            cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "curve")) > 0) {
            best_steps = steps;
            best_curve = r;
        }
    }
    const cJSON *m = best_curve ? cJSON_GetObjectItemCaseSensitive(best_curve, "metrics") : NULL;
    if ((cJSON_IsObject(m) || cJSON_IsArray(m)) && m->child) {
        /* {name: {val, test}} or [{name, val, test}] */
        outf("\nmetrics of the curve's run\n  %-20s %-8s  %-8s\n", "METRIC", "VAL", "TEST");
        const cJSON *mm;
        cJSON_ArrayForEach(mm, m) {
            const char *name = mm->string ? mm->string : ctl_str(mm, "name", "?");
            if (cJSON_IsNumber(mm))
                outf("  %-20s %-8s\n", name, fmt_num(b1, sizeof b1, mm->valuedouble));
            else if (cJSON_IsObject(mm))
                outf("  %-20s %-8s  %-8s\n", name, fmt_num(b1, sizeof b1, num_or_nan(mm, "val")),
                       fmt_num(b2, sizeof b2, num_or_nan(mm, "test")));
        }
    }
    if (best_curve) {
        outf("\nlearning curve\n");
        show_curve(best_curve, utf8);
    }
    cJSON_Delete(res);
    return 0;
}

/* ---- export --------------------------------------------------------------------------------- */

static int cmd_export(Ctl *ctl, int argc, char **argv) {
    CtlArgs a;
    int64_t job = 0, cand = 0;
    cJSON *res = NULL;
    if (parse_cmd(argc, argv, &a) != 0) return 2;
    const char *fmt = ctl_opt(&a, "--as");
    const char *expr = ctl_opt(&a, "--expr"), *family = ctl_opt(&a, "--family");
    int used = expr ? 0 : parse_cand(a.npos, a.pos, &job, &cand);
    if (!expr && a.npos >= 1 && !used) return bad_arg("export", a.pos[0], A_CAND);
    if (expr ? (a.npos != 0 || !family) : (!used || used != a.npos || family))
        return ctl_usage(find_command("export"));
    if (!fmt) fmt = "pytorch";
    cJSON *p = cJSON_CreateObject();
    char what[64];
    if (expr) {
        cJSON_AddStringToObject(p, "expr", expr);
        cJSON_AddStringToObject(p, "family", family);
        snprintf(what, sizeof what, "expression");
    } else {
        cJSON_AddNumberToObject(p, "job_id", (double)job);
        cJSON_AddNumberToObject(p, "cand", (double)cand);
        snprintf(what, sizeof what, "candidate %lld:%lld", (long long)job, (long long)cand);
    }
    cJSON_AddStringToObject(p, "format", fmt);
    int st = ctl_call(ctl, "candidate.export", p, what, &res);
    if (st) return st;
    if (ctl->json) {
        ctl_print_json(res);
    } else {
        const char *text = ctl_str(res, "text", "");
        size_t n = strlen(text);
        fputs(text, stdout);
        if (n == 0 || text[n - 1] != '\n') putchar('\n');
    }
    cJSON_Delete(res);
    return 0;
}

/* ---- cancel, pause, resume, shutdown ------------------------------------------------------ */

static int job_transition(Ctl *ctl, int argc, char **argv, const char *method) {
    int64_t job;
    cJSON *res = NULL;
    if (argc != 2) return ctl_usage(find_command(argv[0]));
    if (ctl_parse_id(argv[1], &job) != 0) return bad_arg(argv[0], argv[1], A_JOB);
    int st = call_job(ctl, method, job, &res);
    if (st) return st;
    if (ctl->json)
        ctl_print_json(res);
    else
        printf("job %lld: %s\n", (long long)job, ctl_str(res, "state", "?"));
    cJSON_Delete(res);
    return 0;
}

static int cmd_cancel(Ctl *ctl, int argc, char **argv) {
    return job_transition(ctl, argc, argv, "job.cancel");
}
static int cmd_pause(Ctl *ctl, int argc, char **argv) {
    return job_transition(ctl, argc, argv, "job.pause");
}
static int cmd_resume(Ctl *ctl, int argc, char **argv) {
    return job_transition(ctl, argc, argv, "job.resume");
}
static int cmd_finish(Ctl *ctl, int argc, char **argv) {
    return job_transition(ctl, argc, argv, "job.finish");
}

/* ---- propose ------------------------------------------------------------------------------ */

/* Appends the expressions of a file (one a line; blank lines and lines starting with '#'
 * skipped; "-": stdin) to arr. Returns 0 or an exit status (message printed). */
static int read_exprs(const char *path, cJSON *arr) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return ctl_fail(2, "propose: --from %s: %s", path, strerror(errno));
    char line[EXPR_SHOW_MAX];
    int ln = 0, st = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            st = ctl_fail(2, "propose: %s:%d: longer than %zu bytes", path, ln, sizeof line - 2);
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
        const char *p = line + strspn(line, " \t");
        if (!*p || *p == '#') continue;
        cJSON_AddItemToArray(arr, cJSON_CreateString(p));
    }
    if (f != stdin) fclose(f);
    return st;
}

/* propose's arguments in order: the job, then expressions and --from files (their lines join
 * the expressions where the option stands). */
typedef struct ProposeArgs {
    int64_t job;
    int njob; /* 1 once the job was read */
    cJSON *exprs;
} ProposeArgs;

static int propose_arg(void *ctx, int opt, const char *val) {
    ProposeArgs *pa = ctx;
    if (opt < 0 && !pa->njob) {
        pa->njob = 1;
        return ctl_parse_id(val, &pa->job) != 0 ? bad_arg("propose", val, A_JOB) : 0;
    }
    if (opt < 0) cJSON_AddItemToArray(pa->exprs, cJSON_CreateString(val));
    else if (!strcmp(propose_opts[opt].name, "--from")) return read_exprs(val, pa->exprs);
    return 0;
}

static int cmd_propose(Ctl *ctl, int argc, char **argv) {
    ProposeArgs pa = {.exprs = cJSON_CreateArray()};
    cJSON *res = NULL;
    CtlArgs a;
    /* expressions may start with '-' (-log(pt)): only the options of the table are options */
    int st = ctl_parse("propose", propose_opts, argc, argv, 1, propose_arg, &pa, &a);
    if (!st && !pa.njob) st = ctl_usage(find_command("propose"));
    if (!st && cJSON_GetArraySize(pa.exprs) == 0) st = ctl_fail(2, "propose: no expressions given");
    if (st) {
        cJSON_Delete(pa.exprs);
        return st;
    }
    int64_t job = pa.job;
    cJSON *exprs = pa.exprs;
    const char *source = ctl_opt(&a, "--source"), *note = ctl_opt(&a, "--note");
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "job_id", (double)job);
    cJSON_AddItemToObject(p, "exprs", exprs);
    if (source) cJSON_AddStringToObject(p, "source", source);
    if (note) cJSON_AddStringToObject(p, "note", note);
    char what[48];
    snprintf(what, sizeof what, "job %lld", (long long)job);
    st = ctl_call(ctl, "candidate.propose", p, what, &res);
    if (st) return st;
    if (ctl->json) {
        ctl_print_json(res);
    } else {
        printf("job %lld, round %.0f: %.0f accepted, %.0f duplicates, %.0f refused\n",
               (long long)job, ctl_num(res, "round", 0), ctl_num(res, "accepted", 0),
               ctl_num(res, "duplicates", 0), ctl_num(res, "refused", 0));
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(res, "proposals")) {
            const char *status = ctl_str(x, "status", "?");
            char id[48] = "";
            if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(x, "cand")))
                snprintf(id, sizeof id, "%lld:%.0f", (long long)job, ctl_num(x, "cand", 0));
            printf("  %-9s  %-8s  %s", status, id, ctl_str(x, "expr", "?"));
            if (!strcmp(status, "duplicate"))
                printf("  (%s as %s)", ctl_str(x, "why", "?"), ctl_str(x, "of_expr", "?"));
            else if (!strcmp(status, "refused"))
                printf("  (%s: %s)", ctl_str(x, "stage", "?"), ctl_str(x, "error", "?"));
            putchar('\n');
        }
    }
    /* a refused proposal is the daemon saying no to part of the request */
    st = ctl_num(res, "refused", 0) > 0 ? 1 : 0;
    cJSON_Delete(res);
    return st;
}

/* job.delete, waiting up to 5 s while the daemon answers busy: a job just cancelled is still
 * finishing the evaluations in flight (they stop within a training step), so the documented
 * `lossctl cancel 2 && lossctl delete 2` would otherwise fail now and then with "try again". */
static int delete_when_idle(Ctl *ctl, int64_t job, cJSON **result) {
    char err[LD_ERR_MAX];
    for (int i = 0; i < 100; i++) {
        if (!ctl->client && client_connect(ctl->socket_path, &ctl->client, err) != LD_OK) break;
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "job_id", (double)job);
        int rc = client_call(ctl->client, "job.delete", p, result, NULL, err);
        if (rc == LD_OK) return 0;
        if (rc != LD_EBUSY) break;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return call_job(ctl, "job.delete", job, result); /* reports the error as every command does */
}

static int cmd_delete(Ctl *ctl, int argc, char **argv) {
    int64_t job;
    cJSON *res = NULL;
    if (argc != 2) return ctl_usage(find_command("delete"));
    if (ctl_parse_id(argv[1], &job) != 0) return bad_arg("delete", argv[1], A_JOB);
    int st = delete_when_idle(ctl, job, &res);
    if (st) return st;
    if (ctl->json)
        ctl_print_json(res);
    else
        printf("job %lld: deleted\n", (long long)job);
    cJSON_Delete(res);
    return 0;
}

static int cmd_rename(Ctl *ctl, int argc, char **argv) {
    int64_t job;
    cJSON *res = NULL;
    if (argc != 3) return ctl_usage(find_command("rename"));
    if (ctl_parse_id(argv[1], &job) != 0) return bad_arg("rename", argv[1], A_JOB);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "job_id", (double)job);
    cJSON_AddStringToObject(p, "name", argv[2]);
    char what[48];
    snprintf(what, sizeof what, "job %lld", (long long)job);
    int st = ctl_call(ctl, "job.rename", p, what, &res);
    if (st) return st;
    if (ctl->json)
        ctl_print_json(res);
    else
        printf("job %lld: %s\n", (long long)job, ctl_str(res, "name", "(no name)"));
    cJSON_Delete(res);
    return 0;
}

static int cmd_failures(Ctl *ctl, int argc, char **argv) {
    CtlArgs a;
    int64_t job, nex = 3;
    cJSON *res = NULL;
    if (parse_cmd(argc, argv, &a) != 0) return 2;
    if (a.npos != 1) return ctl_usage(find_command("failures"));
    if (ctl_parse_id(a.pos[0], &job) != 0) return bad_arg("failures", a.pos[0], A_JOB);
    const char *ex = ctl_opt(&a, "--examples");
    if (ex && (strcmp(ex, "0") && (ctl_parse_id(ex, &nex) != 0 || nex > 100)))
        return bad_arg("failures", ex, "a number of examples (0..100)");
    if (ex && !strcmp(ex, "0")) nex = 0;
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "job_id", (double)job);
    cJSON_AddNumberToObject(p, "examples", (double)nex);
    char what[48];
    snprintf(what, sizeof what, "job %lld", (long long)job);
    int st = ctl_call(ctl, "job.failures", p, what, &res);
    if (st) return st;
    if (ctl->json) {
        ctl_print_json(res);
        cJSON_Delete(res);
        return 0;
    }
    int cols = term_cols();
    printf("job %lld: %.0f of %.0f stored evaluations failed or were rejected\n", (long long)job,
           ctl_num(res, "failed", 0), ctl_num(res, "evaluations", 0));
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(res, "reasons")) {
        printf("\n%6.0f  %s\n", ctl_num(r, "count", 0), ctl_str(r, "reason", "?"));
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "examples")) {
            char id[48];
            snprintf(id, sizeof id, "%lld:%.0f", (long long)job, ctl_num(e, "cand", 0));
            int n = printf("        %-9s %-14s ", id, ctl_str(e, "task", "?"));
            print_clipped(ctl_str(e, "expr", "?"), cols ? cols - n : 0);
            n = printf("\n%18s", "");
            print_clipped(ctl_str(e, "error", ""), cols ? cols - 18 : 0);
            putchar('\n');
        }
    }
    const cJSON *rr = cJSON_GetObjectItemCaseSensitive(res, "refused_candidates");
    if (rr && rr->child) {
        printf("\ncandidates refused before any evaluation, not stored (counts only)\n");
        cJSON_ArrayForEach(r, rr) printf("%6.0f  %s\n", cJSON_IsNumber(r) ? r->valuedouble : 0, r->string);
    }
    cJSON_Delete(res);
    return 0;
}

static int cmd_shutdown(Ctl *ctl, int argc, char **argv) {
    cJSON *res = NULL;
    if (argc != 1) return ctl_usage(find_command("shutdown"));
    int st = ctl_call(ctl, "server.shutdown", NULL, NULL, &res);
    if (st) return st;
    if (ctl->json)
        ctl_print_json(res);
    else
        printf("lossd is shutting down (running evaluations finish first)\n");
    cJSON_Delete(res);
    return 0;
}

/* `lossctl call METHOD [PARAMS_JSON]`: any method, raw JSON in and out (for scripts and for
 * methods lossctl has no command for). */
static int cmd_call(Ctl *ctl, int argc, char **argv) {
    cJSON *params = NULL, *res = NULL;
    if (argc < 2 || argc > 3) return ctl_usage(find_command("call"));
    if (argc == 3) {
        params = cJSON_Parse(argv[2]);
        if (!params) return ctl_fail(2, "call: PARAMS is not valid JSON");
    }
    int st = ctl_call(ctl, argv[1], params, NULL, &res);
    if (st) return st;
    ctl_print_json(res);
    cJSON_Delete(res);
    return 0;
}

/* ---- the command table ---------------------------------------------------------------------- */

/* Command groups from other files (e.g. `schedule`) are one line each in this table, with
 * their handler declared in client.h. */
static const CtlCommand commands[] = {
    {"submit", cmd_submit, "JOB.json [--token TOKEN] [--priority N]",
     "submit a search job; prints its id ('-' reads stdin)",
     "  Reads a job file (docs/jobs.md), makes its relative data paths absolute against the\n"
     "  file's folder, sends it with job.submit and prints the new job's id.\n",
     submit_opts, "  JOB=$(lossctl submit examples/demo.job.json)\n"},
    {"status", cmd_status, "", "the daemon's state: workers, queue, jobs",
     "  Workers busy, evaluations queued and per second, jobs per state, database and clients.\n",
     NULL, "  lossctl status\n"},
    {"workers", cmd_workers, "[--all]", "who evaluates: hosts, threads, evaluations, leases",
     "  One line per worker process: host, pid, threads, evaluations done, state and the\n"
     "  evaluations it holds now. The daemon's own threads are marked; with lossd serve --queue\n"
     "  every `lossd worker` process is listed too (docs/scale-out.md).\n",
     workers_opts, "  lossctl workers\n"},
    {"jobs", cmd_jobs, "[STATE]", "list jobs, newest first",
     "  Job id, state, evaluations done of the budget (final re-evaluations apart), best\n"
     "  fitness, elapsed time, name, and why a failed job failed.\n",
     jobs_opts, "  lossctl jobs running\n"},
    {"watch", cmd_watch, "JOB [--interval SECONDS]", "follow a job's progress until it ends",
     "  A progress line (a bar on a terminal, a line per change otherwise) until the job is\n"
     "  done, failed, cancelled or expired; exits 0 for done, 1 otherwise, 130 on Ctrl-C (the\n"
     "  job goes on).\n",
     watch_opts, "  lossctl watch 3 --interval 2\n"},
    {"leaderboard", cmd_leaderboard, "JOB | --family F  [--top N] [--metric M] [--format csv|jsonl]",
     "the best candidates of a job or of every job of a family",
     "  Rank, candidate (JOB:CAND), fitness, mean and spread of the selection metric over the\n"
     "  tasks, one column per task, the expression.\n",
     leaderboard_opts, "  lossctl leaderboard 1 --top 5 --metric accuracy\n"},
    {"show", cmd_show, "JOB:CAND | JOB CAND", "a candidate: expression, lineage, metrics, curve",
     "  The expression, its fitness, how it was made and its ancestors, every evaluation (task,\n"
     "  seed, steps, metric, val, test, wall time), every metric and the learning curve.\n",
     NULL, "  lossctl show 1:17\n"},
    {"export", cmd_export,
     "JOB:CAND | --expr EXPR --family F  [--as pytorch|numpy|latex|expr]",
     "a candidate (or any expression) as source code",
     "  Source a user can paste: a PyTorch function (differentiable), a NumPy function (value,\n"
     "  and a numerical gradient), a LaTeX formula or the canonical expression.\n",
     export_opts,
     "  lossctl export 1:17 --as numpy > loss.py\n"
     "  lossctl export --expr 'mae + tanh(r)' --family regression --as latex\n"},
    {"cancel", cmd_cancel, "JOB", "cancel a job",
     "  Stops a queued, running or paused job for good; its candidates stay readable.\n", NULL,
     "  lossctl cancel 3\n"},
    {"pause", cmd_pause, "JOB", "pause a job",
     "  Stops handing out the job's evaluations (running ones finish); resume goes on.\n", NULL,
     "  lossctl pause 3\n"},
    {"resume", cmd_resume, "JOB", "resume a paused job, or retry a failed one",
     "  A paused job goes on where it stopped. A failed job (say its data file was missing) is\n"
     "  loaded again from its last saved state once the cause is fixed; if it still cannot\n"
     "  run it stays failed with the new reason (lossctl jobs shows it).\n",
     NULL, "  lossctl resume 3\n"},
    {"finish", cmd_finish, "JOB", "end a job's search: final re-evaluation, then done",
     "  Ends the search phase of a queued, running or paused job: no more search rounds and no\n"
     "  more proposals; the leaders' final re-evaluation runs, then the job is done. The way\n"
     "  to end an evaluate-only job when your proposer has nothing more (docs/jobs.md).\n",
     NULL, "  lossctl finish 3\n"},
    {"propose", cmd_propose, "JOB EXPR... [--from FILE] [--source LABEL] [--note TEXT]",
     "hand loss expressions to a running job",
     "  Each expression is parsed, checked for the job's family, canonicalised and looked up\n"
     "  among the job's candidates; one line each says: accepted (the new candidate, trained\n"
     "  from the next round through the fidelity ladder, counted against the budget),\n"
     "  duplicate (of which candidate: same canonical form or same gradient signature) or\n"
     "  refused (the parser's or checker's message). Exit status 1 when any was refused.\n"
     "  An expression may start with '-' (-log(pt)); after \"--\" anything is one.\n",
     propose_opts,
     "  lossctl propose 3 '0.7*ce + 0.3*focal(2)' '-log(pt)' --source me\n"
     "  lossctl propose 3 --from ideas.txt --source llm\n"},
    {"delete", cmd_delete, "JOB", "delete a finished job with its evaluations",
     "  Deletes a done, failed, cancelled or expired job with its candidates, evaluations,\n"
     "  saved state and events (cancel a queued, running or paused job first). Its results no\n"
     "  longer count in family leaderboards or warm starts. Cannot be undone.\n",
     NULL, "  lossctl delete 3\n"},
    {"rename", cmd_rename, "JOB NAME", "set a job's name",
     "  The name lossctl jobs shows; an empty NAME removes it.\n",
     NULL, "  lossctl rename 3 digits-baseline-v2\n"},
    {"failures", cmd_failures, "JOB [--examples N]", "a job's failed and rejected evaluations by reason",
     "  Every stored evaluation that did not finish, grouped by reason (most frequent first),\n"
     "  with a few examples each: candidate, task, expression and the full message; then the\n"
     "  counts of candidates the engine refused without storing them (too large, say).\n",
     failures_opts, "  lossctl failures 3 --examples 1\n"},
    {"shutdown", cmd_shutdown, "", "stop the daemon (it finishes running evaluations)",
     "  Running jobs resume when the daemon starts again.\n", NULL, "  lossctl shutdown\n"},
#ifdef CTL_HAVE_SCHEDULE
    {"schedule", ctl_schedule_main, CTL_SCHEDULE_USAGE, "cron schedules of jobs (lossctl schedule help)",
     NULL, NULL, NULL},
#endif
    {"report", ctl_report_main, CTL_REPORT_USAGE, "a job's HTML report: plots, leaderboard, final test",
     "  One self-contained HTML page of a job: its plots, leaderboard and final test.\n",
     ctl_report_opts, "  lossctl report 3 -o report.html\n"},
    {"mcp", ctl_mcp_main, CTL_MCP_USAGE, "a Model Context Protocol server on stdin/stdout",
     "  Serves MCP (JSON-RPC 2.0, one message per line) so an assistant can list jobs, read\n"
     "  leaderboards, show candidates and export losses through this daemon (docs/mcp.md).\n",
     ctl_mcp_opts, "  lossctl mcp --allow-write\n"},
    {"call", cmd_call, "METHOD [PARAMS_JSON]", "call any method, print the raw result",
     "  Any JSON-RPC method of docs/protocol.md; the result is printed as one line of JSON.\n", NULL,
     "  lossctl call job.get '{\"job_id\": 1}'\n"},
    {"help", cmd_help, "[COMMAND]", "this list, or one command's usage",
     "  `lossctl help COMMAND` and `lossctl COMMAND --help` (or -h anywhere before a \"--\")\n"
     "  print a command's options, defaults and an example.\n",
     NULL, "  lossctl help leaderboard\n"},
};
#define NCOMMANDS ((int)(sizeof commands / sizeof commands[0]))

static const CtlCommand *find_command(const char *name) {
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static void print_help(FILE *f) {
    fprintf(f, "usage: lossctl [--socket PATH] [--json] COMMAND [ARGS]\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n`lossctl help COMMAND` (or COMMAND --help) shows a command's options and an example.\n"
            "Candidates are named JOB:CAND (e.g. 3:17). --json prints the daemon's result as "
            "one line of JSON.\nThe socket defaults to $LOSSD_SOCKET, $XDG_RUNTIME_DIR/lossd.sock "
            "or /tmp/lossd-$UID.sock.\nExit status: 0 ok, 1 the daemon reported an error or could "
            "not be reached, 2 bad usage.\n");
}

/* Prints one command's help on stdout: its usage, summary and long help. A command group
 * (schedule) prints its own. */
static int command_help(Ctl *ctl, const CtlCommand *c) {
#ifdef CTL_HAVE_SCHEDULE
    if (c->run == ctl_schedule_main) {
        char *argv[] = {"schedule", "help", NULL};
        return ctl_schedule_main(ctl, 2, argv);
    }
#endif
    printf("usage: lossctl %s %s\n  %s\n", c->name, c->usage, c->summary);
    if (c->help) printf("\n%s", c->help);
    ctl_print_opts(stdout, c->opts);
    if (c->example) printf("example:\n%s", c->example);
    return 0;
}

static int cmd_help(Ctl *ctl, int argc, char **argv) {
    if (argc > 2) return ctl_usage(find_command("help"));
    if (argc == 2) {
        const CtlCommand *c = find_command(argv[1]);
        if (!c) return ctl_fail(2, "help: no such command '%s' (lossctl help lists them)", argv[1]);
        return command_help(ctl, c);
    }
    print_help(stdout);
    return 0;
}

int main(int argc, char **argv) {
    char sockbuf[4096];
    Ctl ctl = {0};
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0, status;
    if (!rest) return ctl_fail(1, "out of memory");
    signal(SIGPIPE, SIG_IGN);
    /* Global options may appear anywhere before a "--". */
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--") == 0) {
            while (i < argc) rest[nrest++] = argv[i++];
            break;
        }
        if (strcmp(s, "--json") == 0) {
            ctl.json = 1;
        } else if (strcmp(s, "--socket") == 0 || strcmp(s, "-s") == 0) {
            if (i + 1 >= argc) {
                free(rest);
                return ctl_fail(2, "--socket needs a path");
            }
            ctl.socket_path = argv[++i];
        } else if (strncmp(s, "--socket=", 9) == 0) {
            ctl.socket_path = s + 9;
        } else if (nrest == 0 && (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0)) {
            print_help(stdout);
            free(rest);
            return 0;
        } else if (nrest == 0 && strcmp(s, "--version") == 0) {
            printf("lossctl %s\n", LOSSD_VERSION);
            free(rest);
            return 0;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    if (!ctl.socket_path) ctl.socket_path = client_default_socket(sockbuf, sizeof sockbuf);
    if (nrest == 0) {
        print_help(stderr);
        free(rest);
        return 2;
    }
    const CtlCommand *cmd = find_command(rest[0]);
    int help = 0;
    for (int i = 1; i < nrest && strcmp(rest[i], "--"); i++)
        help |= !strcmp(rest[i], "-h") || !strcmp(rest[i], "--help");
    if (!cmd) {
        status = ctl_fail(2, "unknown command '%s' (lossctl help lists them)", rest[0]);
    } else if (help) { /* before anything opens a file or connects */
        status = command_help(&ctl, cmd);
    } else {
        status = cmd->run(&ctl, nrest, rest);
    }
    client_close(ctl.client);
    free(rest);
    fflush(stdout);
    return status;
}
