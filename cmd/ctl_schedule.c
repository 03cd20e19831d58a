/* ctl_schedule.c: `lossctl schedule add|list|show|rm|pause|resume|run`: cron schedules of search
 * jobs over the schedule.* methods (docs/schedules.md). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl_schedule.h"

static const char usage_text[] =
    "usage: lossctl schedule add --cron EXPR [--tz ZONE] [--until HH:MM] [--catch-up once|skip]\n"
    "                            [--concurrency forbid|allow] [--allow-overlap] [--name NAME]\n"
    "                            JOB.json        ('-' reads stdin)\n"
    "       lossctl schedule list\n"
    "       lossctl schedule show ID         the schedule, its next runs, its runs\n"
    "       lossctl schedule rm ID\n"
    "       lossctl schedule pause ID\n"
    "       lossctl schedule resume ID\n"
    "       lossctl schedule run ID          fire now; prints the job id\n"
    "EXPR is a 5-field cron expression (\"0 1 * * *\") or @hourly, @daily, @weekly, @monthly,\n"
    "@yearly. Times are the zone's wall clock (default: the daemon's zone).\n";

static int usage(void) {
    fputs(usage_text, stderr);
    return 2;
}

/* ---- small helpers ------------------------------------------------------------------------ */

/* Reads and parses the job template file (or stdin for "-"). Returns 0 and an owned object,
 * or the exit status after printing why. */
static int read_job(const char *file, cJSON **out) {
    return ctl_read_job(file, "schedule add", out);
}

/* Calls a method whose only parameter is schedule_id. */
static int call_id(Ctl *ctl, const char *method, const char *arg, cJSON **res) {
    int64_t id;
    char what[48];
    if (ctl_parse_id(arg, &id) != 0)
        return ctl_fail(2, "schedule: '%s' is not a schedule id", arg);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "schedule_id", (double)id);
    snprintf(what, sizeof what, "schedule %lld", (long long)id);
    return ctl_call(ctl, method, p, what, res);
}

static const char *str_or(const cJSON *o, const char *name, const char *dflt) {
    const char *s = ctl_str(o, name, NULL);
    return s ? s : dflt;
}

/* Formats a metric value as lossctl's tables do. */
static const char *fmt_num(char *buf, size_t n, double v) { return ctl_fmt_num(buf, n, v); }

/* Epoch seconds as local "YYYY-MM-DD HH:MM", "-" for none. */
static const char *fmt_time(char *buf, size_t n, double t) {
    if (!(t > 0) || !isfinite(t)) {
        snprintf(buf, n, "-");
        return buf;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M", &tm))
        snprintf(buf, n, "%.0f", t);
    return buf;
}

/* Column widths of the schedule list: cron expressions and zone names as long as the longest
 * listed (America/Argentina/Buenos_Aires is 30 columns), never narrower than their heading. */
typedef struct Widths {
    int cron, tz, next;
} Widths;

static Widths list_widths(const cJSON *arr) {
    Widths w = {16, 14, 25};
    const cJSON *s;
    cJSON_ArrayForEach(s, arr) {
        int c = (int)strlen(str_or(s, "cron", "?")), z = (int)strlen(str_or(s, "tz", "-")),
            nf = (int)strlen(str_or(s, "next_fire", "-"));
        w.cron = c > w.cron ? c : w.cron;
        w.tz = z > w.tz ? z : w.tz;
        w.next = nf > w.next ? nf : w.next;
    }
    return w;
}

/* The one-line description of a schedule used by list and show. */
static void print_line(const cJSON *s, Widths w) {
    const cJSON *until = cJSON_GetObjectItemCaseSensitive(s, "until");
    int paused = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "paused"));
    printf("%4.0f  %-*s  %-*s  %-6s  %-7s  %-7s  %-*s  %s\n", ctl_num(s, "schedule_id", 0), w.cron,
           str_or(s, "cron", "?"), w.tz, str_or(s, "tz", "-"),
           cJSON_IsString(until) ? until->valuestring : "-", str_or(s, "catch_up", "?"),
           paused ? "paused" : str_or(s, "concurrency", "?"), w.next,
           paused ? "-" : str_or(s, "next_fire", "-"), str_or(s, "name", ""));
}

static void print_header(Widths w) {
    printf("%4s  %-*s  %-*s  %-6s  %-7s  %-7s  %-*s  %s\n", "ID", w.cron, "CRON", w.tz, "ZONE", "UNTIL",
           "CATCHUP", "OVERLAP", w.next, "NEXT FIRE", "NAME");
}

/* ---- commands ----------------------------------------------------------------------------- */

/* schedule add's options; row k's value is the schedule.create parameter params_of[k]. */
static const CtlOpt add_opts[] = {
    {"--cron", NULL, "EXPR", "when to fire (required)"},
    {"--tz", NULL, "ZONE", "IANA zone name, e.g. Europe/Berlin (default: the daemon's zone)"},
    {"--until", NULL, "HH:MM", "the wall-clock time by which each run must stop (default: none)"},
    {"--catch-up", NULL, "once|skip", "fires missed while the daemon was down (default skip)"},
    {"--concurrency", NULL, "forbid|allow", "may a fire start while a run still goes (default forbid)"},
    {"--name", NULL, "NAME", "a label for lists and logs"},
    {"--allow-overlap", NULL, NULL, "the same as --concurrency allow"},
    {0}};
static const char *const params_of[] = {"cron", "tz", "until", "catch_up", "concurrency", "name", NULL};

static int cmd_add(Ctl *ctl, int argc, char **argv) {
    const char *const *val;
    const char *file = NULL;
    int allow_overlap, status;
    cJSON *params = NULL, *job = NULL, *res = NULL;
    CtlArgs a;
    if (ctl_parse("schedule add", add_opts, argc, argv, 2, NULL, NULL, &a) != 0)
        return 2;
    if (a.npos > 1)
        return ctl_fail(2, "schedule add: one JOB.json only (got '%s' and '%s')", a.pos[0], a.pos[1]);
    file = a.npos ? a.pos[0] : NULL;
    if (file && file[0] == '-' && file[1] != '\0')
        return ctl_fail(2, "schedule add: unknown option %s", file);
    val = a.val;
    allow_overlap = val[6] != NULL;
    if (!val[0] || !file)
        return usage();
    if (allow_overlap && val[4] && strcmp(val[4], "allow"))
        return ctl_fail(2, "schedule add: --allow-overlap contradicts --concurrency %s", val[4]);
    status = read_job(file, &job);
    if (status)
        return status;
    params = cJSON_CreateObject();
    for (int k = 0; params_of[k]; k++)
        if (val[k])
            cJSON_AddStringToObject(params, params_of[k], val[k]);
    if (allow_overlap && !val[4])
        cJSON_AddStringToObject(params, "concurrency", "allow");
    cJSON_AddItemToObject(params, "job", job);
    status = ctl_call(ctl, "schedule.create", params, file, &res);
    if (status)
        return status;
    if (ctl->json) {
        ctl_print_json(res);
    } else {
        printf("%.0f\n", ctl_num(res, "schedule_id", 0));
        if (isatty(STDOUT_FILENO)) {
            const cJSON *r;
            printf("next runs:\n");
            cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(res, "next_runs"))
                printf("  %s\n", cJSON_IsString(r) ? r->valuestring : "?");
        }
    }
    cJSON_Delete(res);
    return 0;
}

static int cmd_list(Ctl *ctl, int argc, char **argv) {
    cJSON *res = NULL;
    if (argc != 2)
        return usage();
    int st = ctl_call(ctl, "schedule.list", NULL, NULL, &res);
    if (st)
        return st;
    if (ctl->json) {
        ctl_print_json(res);
    } else {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(res, "schedules"), *s;
        if (cJSON_GetArraySize(arr) == 0) {
            printf("no schedules\n");
        } else {
            Widths w = list_widths(arr);
            print_header(w);
            cJSON_ArrayForEach(s, arr) print_line(s, w);
        }
    }
    cJSON_Delete(res);
    return 0;
}

static int cmd_show(Ctl *ctl, int argc, char **argv) {
    cJSON *res = NULL;
    if (argc != 3)
        return usage();
    int st = call_id(ctl, "schedule.get", argv[2], &res);
    if (st)
        return st;
    if (ctl->json) {
        ctl_print_json(res);
        cJSON_Delete(res);
        return 0;
    }
    const cJSON *until = cJSON_GetObjectItemCaseSensitive(res, "until");
    int paused = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "paused"));
    printf("schedule %.0f%s%s%s\n", ctl_num(res, "schedule_id", 0),
           ctl_str(res, "name", NULL) ? "  " : "", str_or(res, "name", ""),
           paused ? "  (paused)" : "");
    printf("  cron         %s  (%s)\n", str_or(res, "cron", "?"), str_or(res, "tz", "?"));
    printf("  until        %s\n", cJSON_IsString(until) ? until->valuestring : "-");
    printf("  catch-up     %s\n", str_or(res, "catch_up", "?"));
    printf("  concurrency  %s  (%.0f run(s) going)\n", str_or(res, "concurrency", "?"),
           ctl_num(res, "active_runs", 0));
    printf("  created      %s\n", str_or(res, "created", "-"));
    printf("  last fire    %s\n", str_or(res, "last_fire", "-"));
    const cJSON *nr = cJSON_GetObjectItemCaseSensitive(res, "next_runs"), *r;
    printf("  next runs    %s\n", cJSON_GetArraySize(nr) ? "" : "- (paused)");
    cJSON_ArrayForEach(r, nr) printf("               %s\n", cJSON_IsString(r) ? r->valuestring : "?");
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(res, "runs"), *j;
    if (cJSON_GetArraySize(runs) == 0) {
        printf("runs: none yet\n");
    } else {
        printf("runs (newest first):\n");
        printf("%6s  %-9s  %-16s  %-20s  %-9s  %s\n", "JOB", "STATE", "CREATED", "EVALUATIONS",
               "BEST", "BEST LOSS");
        cJSON_ArrayForEach(j, runs) {
            const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "progress");
            char ev[48], best[32], when[40];
            ctl_fmt_evals(ev, sizeof ev, pr, 0); /* "30/30 (+20 final)", as lossctl jobs */
            printf("%6.0f  %-9s  %-16s  %-20s  %-9s  %s\n", ctl_num(j, "job_id", 0),
                   str_or(j, "state", "?"), fmt_time(when, sizeof when, ctl_num(j, "created_s", 0)),
                   ev, fmt_num(best, sizeof best, ctl_num(pr, "best_fitness", NAN)),
                   str_or(pr, "best_expr", "-"));
        }
    }
    cJSON_Delete(res);
    return 0;
}

/* rm, pause, resume, run: one id in, a short confirmation out. */
static int cmd_simple(Ctl *ctl, int argc, char **argv, const char *method) {
    cJSON *res = NULL;
    if (argc != 3)
        return usage();
    int st = call_id(ctl, method, argv[2], &res);
    if (st)
        return st;
    if (ctl->json) {
        ctl_print_json(res);
    } else if (!strcmp(method, "schedule.trigger")) {
        printf("%.0f\n", ctl_num(res, "job_id", 0));
    } else if (!strcmp(method, "schedule.delete")) {
        printf("schedule %s deleted (its jobs stay)\n", argv[2]);
    } else {
        int paused = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "paused"));
        if (paused)
            printf("schedule %s paused\n", argv[2]);
        else
            printf("schedule %s active, next fire %s\n", argv[2], str_or(res, "next_fire", "-"));
    }
    cJSON_Delete(res);
    return 0;
}

int ctl_schedule_main(Ctl *ctl, int argc, char **argv) {
    if (argc < 2)
        return usage();
    const char *sub = argv[1];
    if (!strcmp(sub, "help") || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        fputs(usage_text, stdout);
        printf("add's ");
        ctl_print_opts(stdout, add_opts);
        return 0;
    }
    if (!strcmp(sub, "add"))
        return cmd_add(ctl, argc, argv);
    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        return cmd_list(ctl, argc, argv);
    if (!strcmp(sub, "show") || !strcmp(sub, "get"))
        return cmd_show(ctl, argc, argv);
    if (!strcmp(sub, "rm") || !strcmp(sub, "delete"))
        return cmd_simple(ctl, argc, argv, "schedule.delete");
    if (!strcmp(sub, "pause"))
        return cmd_simple(ctl, argc, argv, "schedule.pause");
    if (!strcmp(sub, "resume"))
        return cmd_simple(ctl, argc, argv, "schedule.resume");
    if (!strcmp(sub, "run") || !strcmp(sub, "trigger"))
        return cmd_simple(ctl, argc, argv, "schedule.trigger");
    ctl_fail(2, "schedule: unknown subcommand '%s'", sub);
    return usage();
}
