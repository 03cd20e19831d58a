/* cli.h: the subcommands of bin/lossd. Each takes the arguments after its name (argv[0] is the
 * subcommand) and returns the process exit status: 0 success, 1 failure, 2 bad input. */
#ifndef CLI_H
#define CLI_H

int eval_main(int argc, char **argv);   /* cmd/eval.c: lossd eval */
int bench_main(int argc, char **argv);  /* cmd/bench.c: lossd bench */
int search_main(int argc, char **argv); /* cmd/search.c: lossd search */
int serve_main(int argc, char **argv);  /* cmd/serve.c: lossd serve */
int worker_main(int argc, char **argv); /* cmd/worker.c: lossd worker */
int workers_main(int argc, char **argv); /* cmd/worker.c: lossd workers */

#endif
