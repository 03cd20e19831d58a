/* serve.c: `lossd serve`: the composition root of the daemon. It registers the method tables
 * (the core ones and the schedules'), makes the wire (api/server.h) and hands it to the daemon,
 * opens the daemon, starts the schedules and runs the loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../api/rpc.h"
#include "../api/server.h"
#include "../daemon/daemon.h"
#include "../daemon/pgexec.h"
#include "cli.h"

/* ---- lossd serve ------------------------------------------------------------------------ */

static void serve_usage(FILE *f) {
    fprintf(f, "usage: lossd serve [--socket PATH] [--db FILE] [--workers N] [--queue CONNINFO\n"
               "                   [--schema NAME] [--lease SECONDS]] [--commit-ms MS]\n"
               "                   [--result-cache]\n"
               "  --socket PATH  default $LOSSD_SOCKET, else $XDG_RUNTIME_DIR/lossd.sock, else /tmp/lossd-$UID.sock\n"
               "  --db FILE      default $XDG_DATA_HOME/lossd/lossd.db, else ~/.local/share/lossd/lossd.db\n"
               "  --workers N    evaluation threads (default: the number of cores); with --queue\n"
               "                 they lease from the queue beside the remote workers (0: none)\n"
               "  --queue CONNINFO  evaluate through a PostgreSQL queue (libpq conninfo or\n"
               "                 postgresql:// URI) by `lossd worker` processes\n"
               "                 on any host (docs/scale-out.md); keep passwords in ~/.pgpass,\n"
               "                 $PGPASSFILE or a $PGSERVICE entry, never here\n"
               "  --commit-ms MS finished evaluations are stored in one transaction (one fsync) per\n"
               "                 batch: at most 64 or what finished within MS (default 50; 0: one\n"
               "                 transaction each); none counts or is reported before it is stored\n"
               "  --schema NAME  the queue's PostgreSQL schema (default lossd): one per daemon\n"
               "                 when several daemons share a database; workers name it too\n"
               "  --lease SECONDS  how long the daemon's own threads hold an evaluation without a\n"
               "                 heartbeat (default 30): after a kill -9 others take it then\n"
               "  --result-cache a work that a stored run of the same loss, task, seed and steps\n"
               "                 answers is not trained again (default: every work is trained)\n");
}

int serve_main(int argc, char **argv) {
    DaemonConfig cfg = {0};
    int workers_given = 0;
    char err[LD_ERR_MAX];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--result-cache")) {
            cfg.result_cache = 1;
            continue;
        }
        if (strcmp(a, "--socket") && strcmp(a, "--db") && strcmp(a, "--workers") &&
            strcmp(a, "--queue") && strcmp(a, "--commit-ms") && strcmp(a, "--schema") &&
            strcmp(a, "--lease")) {
            fprintf(stderr, "lossd serve: unknown option '%s' (lossd serve --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "lossd serve: %s: missing value\n", a);
            serve_usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--socket")) cfg.socket_path = argv[++i];
        else if (!strcmp(a, "--db")) cfg.db_path = argv[++i];
        else if (!strcmp(a, "--queue")) cfg.queue = argv[++i];
        else if (!strcmp(a, "--schema")) cfg.queue_schema = argv[++i];
        else if (!strcmp(a, "--lease")) {
            char *end;
            cfg.queue_lease = strtod(argv[++i], &end);
            if (*end || !(cfg.queue_lease >= 1 && cfg.queue_lease <= 86400)) {
                fprintf(stderr, "lossd serve: --lease: expected seconds in 1..86400, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--workers")) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 0 || n > 256) {
                fprintf(stderr, "lossd serve: --workers: expected 1..256 (0 with --queue), got '%s'\n",
                        argv[i]);
                return 2;
            }
            cfg.workers = (int)n;
            workers_given = 1;
        } else if (!strcmp(a, "--commit-ms")) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || n < 0 || n > 10000) {
                fprintf(stderr, "lossd serve: --commit-ms: expected 0..10000, got '%s'\n", argv[i]);
                return 2;
            }
            cfg.commit_ms = n == 0 ? -1 : (int)n; /* 0: one transaction per evaluation */
        } else {
            fprintf(stderr, "lossd serve: unknown option '%s'\n", a);
            serve_usage(stderr);
            return 2;
        }
    }
    if (cfg.queue && !*cfg.queue) {
        fprintf(stderr, "lossd serve: --queue: empty conninfo\n");
        return 2;
    }
    const char *why = cfg.queue ? pgq_conninfo_problem(cfg.queue) : NULL;
    if (why) {
        fprintf(stderr, "lossd serve: --queue: %s\n", why);
        return 2;
    }
    if ((cfg.queue_schema || cfg.queue_lease > 0) && !cfg.queue) {
        fprintf(stderr, "lossd serve: --schema and --lease are the queue's: they need --queue\n");
        return 2;
    }
    if (workers_given && cfg.workers == 0 && !cfg.queue) {
        fprintf(stderr, "lossd serve: --workers 0: only with --queue (remote workers evaluate)\n");
        return 2;
    }
    if (cfg.queue) {
        cfg.executor = &exec_queue;
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.queue_local = workers_given ? cfg.workers : online > 0 && online <= 256 ? (int)online : 1;
    }
    const char *nosync = getenv("LOSSD_NOSYNC");
    if (nosync && *nosync == '1') cfg.store_flags |= STORE_NOSYNC;
    signal(SIGPIPE, SIG_IGN);
    /* hundreds of clients: take the hard limit of file descriptors */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* the method tables the wire dispatches on, in order: registered here, explicitly */
    static const RpcMethod *const tables[] = {rpc_core_methods, schedule_methods, NULL};
    rpc_set_tables(tables);
    /* the wire: the daemon reports events and asks for its clients through it */
    RpcServer *srv = NULL;
    int rc = rpc_server_new(&srv, err);
    if (rc != LD_OK) {
        fprintf(stderr, "lossd serve: %s\n", err);
        return 1;
    }
    cfg.wire = rpc_server_wire(srv);
    Daemon *d = NULL;
    rc = daemon_open(&cfg, &d, err);
    if (rc != LD_OK) {
        fprintf(stderr, "lossd serve: %s\n", err);
        rpc_server_free(srv);
        return 1;
    }
    /* after job recovery, before the loop runs: the schedules register their tick */
    rc = schedule_start(d, err);
    if (rc != LD_OK) daemon_log("schedules: %s", err);
    daemon_run(d);
    daemon_log("stopped");
    daemon_free(d);
    rpc_server_free(srv);
    return 0;
}
