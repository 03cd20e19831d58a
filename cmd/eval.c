/* eval.c: `lossd eval`: scores one loss on one task and prints the result as one JSON
 * object. Exit status: 0 when the run trained to the end, 1 when it failed (non-finite or
 * diverging loss: the JSON still says status "failed" and why), 2 on bad input (one line on
 * stderr naming the option and the problem). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval_batch.h"
#include "../evaluator/eval.h"

static void usage(FILE *f) {
    fprintf(f, "usage: lossd eval --task TASK.json|builtin:NAME --loss EXPR [--seed N] [--steps K] "
               "[--curve-every N]\n"
               "       lossd eval --task TASK.json|builtin:NAME --batch FILE|- [--workers N] "
               "[--steps K] [--curve-every N]\n"
               "  --batch reads JSON lines {\"loss\": EXPR, \"seed\": N, \"steps\": K, \"id\": ANY}"
               " and prints one\n"
               "  JSON line per input line, in input order (docs/cli.md)\n");
}

static int parse_int_arg(const char *opt, const char *s, long lo, long hi, long *v) {
    char *end;
    long x = strtol(s, &end, 10);
    if (!*s || *end || x < lo || x > hi) {
        fprintf(stderr, "lossd eval: %s: '%s' is not an integer in %ld..%ld\n", opt, s, lo, hi);
        return -1;
    }
    *v = x;
    return 0;
}

/* The parity trace (eval_run_trace) written to path for bench/parity.py. */
static int write_trace(const char *path, const cJSON *trace) {
    char *txt = cJSON_PrintUnformatted(trace);
    FILE *f = txt ? fopen(path, "w") : NULL;
    int ok = f && fputs(txt, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    cJSON_free(txt);
    if (!ok) fprintf(stderr, "lossd eval: --dump-trace: cannot write %s\n", path);
    return ok ? 0 : -1;
}

/* lossd eval --batch: the task loaded once, every line of the input through eval_batch. */
static int batch_main(const char *task_arg, const char *loss_arg, const char *trace_path,
                      const char *path, int workers, long steps, long every) {
    char err[LD_ERR_MAX];
    if (!task_arg || loss_arg || trace_path) {
        fprintf(stderr, "lossd eval: --batch: %s\n",
                !task_arg ? "--task is required" : "the losses come from the batch: no --loss or --dump-trace");
        return 2;
    }
    Task *t = NULL;
    if (task_load_arg(task_arg, &t, err)) {
        fprintf(stderr, "lossd eval: --task: %s\n", strncmp(err, "task: ", 6) ? err : err + 6);
        return 2;
    }
    FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
    int status = 2;
    if (!in)
        fprintf(stderr, "lossd eval: --batch: %s: cannot open\n", path);
    else
        status = eval_batch(t, in, stdout, workers, steps, every);
    if (in && in != stdin) fclose(in);
    task_free(t);
    return status;
}

int eval_main(int argc, char **argv) {
    const char *task_arg = NULL, *loss_arg = NULL, *trace_path = NULL, *batch_path = NULL;
    long seed = 0, steps = 0, every = 0, workers = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "lossd eval: %s: %s\n", a,
                    a[0] == '-' ? "missing value" : "unexpected argument");
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--task")) task_arg = v;
        else if (!strcmp(a, "--loss")) loss_arg = v;
        else if (!strcmp(a, "--dump-trace")) trace_path = v;
        else if (!strcmp(a, "--batch")) batch_path = v;
        else if (!strcmp(a, "--workers")) {
            if (parse_int_arg(a, v, 1, 64, &workers)) return 2;
        }
        else if (!strcmp(a, "--seed")) {
            if (parse_int_arg(a, v, 0, 0x7fffffffffffffffL, &seed)) return 2;
        } else if (!strcmp(a, "--steps")) {
            if (parse_int_arg(a, v, 1, 10000000, &steps)) return 2;
        } else if (!strcmp(a, "--curve-every")) {
            if (parse_int_arg(a, v, 1, 10000000, &every)) return 2;
        } else {
            fprintf(stderr, "lossd eval: %s: unknown option (see lossd eval --help)\n", a);
            return 2;
        }
    }
    if (batch_path) return batch_main(task_arg, loss_arg, trace_path, batch_path, (int)workers, steps, every);
    if (!task_arg || !loss_arg) {
        fprintf(stderr, "lossd eval: %s is required (see lossd eval --help)\n", !task_arg ? "--task" : "--loss");
        return 2;
    }
    char err[LD_ERR_MAX];
    int status = 2;
    Task *t = NULL;
    Expr *e = expr_parse(loss_arg, err);
    cJSON *trace = NULL;
    if (!e) {
        fprintf(stderr, "lossd eval: --loss: %s\n", err);
        goto done;
    }
    if (task_load_arg(task_arg, &t, err)) {
        fprintf(stderr, "lossd eval: --task: %s\n", strncmp(err, "task: ", 6) ? err : err + 6);
        goto done;
    }
    if (expr_check(e, task_family(t), err)) {
        fprintf(stderr, "lossd eval: --loss: %s\n", err);
        goto done;
    }
    EvalOpts opt = {.seed = (uint64_t)seed, .steps = (int)steps, .curve_every = (int)every};
    EvalResult res;
    int rc;
    if (trace_path) {
        rc = eval_run_trace(t, e, &opt, &res, &trace, err);
    } else {
        rc = eval_run(t, e, &opt, &res, err);
    }
    if (rc) {
        fprintf(stderr, "lossd eval: %s%s\n", rc == LD_EINVAL ? "--loss: " : "", err);
        status = rc == LD_EINVAL ? 2 : 1;
        goto done;
    }
    cJSON *j = eval_result_json(&res);
    if (j && task_data_note(t)[0]) /* loading dropped rows, filled values or encoded categories */
        cJSON_AddItemToObject(j, "data", task_data_json(t));
    char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
    if (txt) printf("%s\n", txt);
    cJSON_free(txt);
    cJSON_Delete(j);
    status = res.ok ? 0 : 1;
    if (trace && write_trace(trace_path, trace)) status = 1;
done:
    cJSON_Delete(trace);
    expr_free(e);
    task_free(t);
    return status;
}
