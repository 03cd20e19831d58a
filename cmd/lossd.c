/* lossd.c: bin/lossd, the loss-function search daemon and its offline subcommands, and the help
 * text of each subcommand (`lossd help CMD`, `lossd CMD --help`, -h anywhere before a "--"). */
#include <stdio.h>
#include <string.h>

#include "../common/lossd.h"
#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
    const char *help; /* options with their defaults, then an example */
} commands[] = {
    {"serve", serve_main, "serve [--socket PATH] [--db FILE] [--workers N]   run the daemon",
     "usage: lossd serve [--socket PATH] [--db FILE] [--workers N] [--commit-ms MS]\n"
     "                   [--queue CONNINFO [--schema NAME] [--lease SECONDS]]\n"
     "  Runs the daemon: accepts jobs over a Unix socket (docs/protocol.md, lossctl), evaluates\n"
     "  them on worker threads and records everything in one SQLite file. Stops on SIGTERM or\n"
     "  SIGINT (or `lossctl shutdown`); a restart resumes the jobs that were running.\n"
     "options:\n"
     "  --socket PATH  the socket to listen on (default $LOSSD_SOCKET, else\n"
     "                 $XDG_RUNTIME_DIR/lossd.sock, else /tmp/lossd-$UID.sock). Its directory\n"
     "                 must exist, or be creatable in an existing one (it is made 0700)\n"
     "  --db FILE      the database (default $XDG_DATA_HOME/lossd/lossd.db, else\n"
     "                 ~/.local/share/lossd/lossd.db); missing folders are created\n"
     "  --workers N    evaluation threads, 1..256 (default: the number of cores)\n"
     "  --commit-ms MS group commits: finished evaluations are stored in one transaction (one\n"
     "                 fsync) per batch of at most 64 or of what finished within MS ms\n"
     "                 (default 50; 0: one transaction each); none is counted or reported to\n"
     "                 a client before it is stored, so a crash loses only unreported ones,\n"
     "                 which the restart runs again\n"
     "  --queue CONNINFO  evaluate through a PostgreSQL queue (libpq conninfo or postgresql://\n"
     "                 URI; passwords in ~/.pgpass, $PGPASSFILE or $PGSERVICE, never here):\n"
     "                 `lossd worker` processes on any host and the --workers threads here\n"
     "                 (0: none) lease from it (docs/scale-out.md)\n"
     "  --schema NAME  the queue's PostgreSQL schema (default lossd), one per daemon\n"
     "  --lease SECONDS  how long this daemon's threads hold an evaluation without a\n"
     "                 heartbeat (default 30)\n"
     "  --result-cache a work that a stored run (of any job) of the same loss, task, seed and\n"
     "                 steps answers is not trained again: that result is stored as the job's\n"
     "                 own evaluation (default: every work is trained)\n"
     "environment:\n"
     "  LOSSD_NOSYNC=1 do not fsync the database (tests only)\n"
     "example:\n"
     "  lossd serve --workers 2 &\n"
     "  lossctl submit examples/demo.job.json\n"},
    {"search", search_main, "search JOB.json [--workers N] [--db FILE]        run one search, no daemon",
     "usage: lossd search JOB.json [--workers N] [--db FILE] [--seed N] [--quiet]\n"
     "  Runs one loss search (a job file, docs/jobs.md) in this process, without a daemon, and\n"
     "  prints one JSON report on stdout (the leaderboard, the winner, the statistics).\n"
     "options:\n"
     "  --workers N  training threads, 1..256 (default: the number of cores)\n"
     "  --db FILE    record the job, candidates, evaluations and state in FILE and warm-start\n"
     "               from the best losses earlier searches stored there (default: nothing kept)\n"
     "  --seed N     override the job's seed (default: the job's \"seed\", else 1)\n"
     "  --quiet      no progress lines on stderr (default: one line per round)\n"
     "example:\n"
     "  lossd search examples/demo.job.json --workers 2 --quiet > report.json\n"},
    {"eval", eval_main, "eval --task TASK --loss EXPR [--seed N] [--steps K]  score one loss",
     "usage: lossd eval --task TASK.json|builtin:NAME --loss EXPR [--seed N] [--steps K]\n"
     "                  [--curve-every N] [--dump-trace FILE]\n"
     "       lossd eval --task TASK.json|builtin:NAME --batch FILE|- [--workers N] [--steps K]\n"
     "  Trains the task's model once with the loss and prints one JSON line: status, metric,\n"
     "  val and test values, steps, wall_ms, final_loss and the learning curve.\n"
     "options:\n"
     "  --task T          a task file (docs/tasks.md) or builtin:NAME: digits, wine,\n"
     "                    breast_cancer, diabetes, oscillator, poisson (required)\n"
     "  --loss EXPR       a loss in the loss language (docs/loss-language.md) (required)\n"
     "  --seed N          seed of the data split, initialisation and batches (default 0)\n"
     "  --steps K         training steps (default: the task's train.steps, 200 for builtins)\n"
     "  --curve-every N   a curve point every N steps (default: about 20 points)\n"
     "  --dump-trace FILE write what bench/parity.py needs to replay the run in PyTorch\n"
     "                    (classification and regression tasks only)\n"
     "  --batch FILE|-    instead of --loss: JSON lines {\"loss\", \"seed\", \"steps\", \"id\"}, one\n"
     "                    result line each, trained on --workers N threads (docs/tasks.md)\n"
     "example:\n"
     "  lossd eval --task builtin:digits --loss '0.7*ce + 0.3*focal(2)' --steps 200\n"},
    {"bench", bench_main, "bench [--evals N]                                 time the standard proxy",
     "usage: lossd bench [--evals N] [--rounds R]\n"
     "  Times the standard proxy evaluation (digits, MLP 64-64-10, Adam, batch 64, 200 steps,\n"
     "  0.7*ce + 0.3*focal(2)) on one and two threads next to this machine's sgemm peak, and\n"
     "  prints one JSON line.\n"
     "options:\n"
     "  --evals N   evaluations per thread and round (default 20)\n"
     "  --rounds R  timed rounds; the best is reported (default 15)\n"
     "example:\n"
     "  lossd bench --evals 5 --rounds 3\n"},
    /* the queue's subcommands print their own help (cmd/worker.c) */
    {"worker", worker_main, "worker --queue CONNINFO [--threads N]             evaluate for a daemon through PostgreSQL",
     NULL},
    {"workers", workers_main, "workers --queue CONNINFO [--json]                 list the queue's workers", NULL},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "lossd %s: searches for loss functions that beat the textbook one\n\nusage:\n",
            LOSSD_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  lossd %s\n", commands[i].usage);
    fprintf(f, "  lossd help [COMMAND]                              this list, or one command's help\n"
               "\n`lossd COMMAND --help` describes a command's options. Exit status: 0 success, 1\n"
               "failure, 2 bad usage.\n");
}

static int find(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(name, commands[i].name)) return (int)i;
    return -1;
}

/* 1 when -h or --help is among args[1..] before a "--". */
static int wants_help(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lossd %s\n", LOSSD_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "help")) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        int k = find(argv[2]);
        if (k < 0) {
            fprintf(stderr, "lossd help: no such command '%s' (lossd help lists them)\n", argv[2]);
            return 2;
        }
        if (!commands[k].help) {
            char *args[] = {argv[2], "--help", NULL};
            return commands[k].run(2, args);
        }
        fputs(commands[k].help, stdout);
        return 0;
    }
    int k = find(argv[1]);
    if (k < 0) {
        fprintf(stderr, "lossd: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    if (commands[k].help && wants_help(argc - 1, argv + 1)) {
        fputs(commands[k].help, stdout);
        return 0;
    }
    return commands[k].run(argc - 1, argv + 1);
}
