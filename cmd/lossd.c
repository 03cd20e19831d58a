/* lossd.c: bin/lossd, the loss-function search daemon and its offline subcommands. */
#include <stdio.h>
#include <string.h>

#include "../common/lossd.h"
#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} commands[] = {
    {"serve", serve_main, "serve [--socket PATH] [--db FILE] [--workers N]   run the daemon"},
    {"search", search_main, "search JOB.json [--workers N] [--db FILE]        run one search, no daemon"},
    {"eval", eval_main, "eval --task TASK --loss EXPR [--seed N] [--steps K]  score one loss"},
    {"bench", bench_main, "bench [--evals N]                                 time the standard proxy"},
    {"worker", worker_main, "worker --queue CONNINFO [--threads N]             evaluate for a daemon through PostgreSQL"},
    {"workers", workers_main, "workers --queue CONNINFO [--json]                 list the queue's workers"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "lossd %s: searches for loss functions that beat the textbook one\n\nusage:\n",
            LOSSD_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  lossd %s\n", commands[i].usage);
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
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lossd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
