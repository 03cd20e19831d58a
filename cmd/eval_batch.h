/* eval_batch.h: the batch mode of `lossd eval` (eval_batch.c), called by the eval subcommand (eval.c). */
#ifndef EVAL_BATCH_H
#define EVAL_BATCH_H

#include <stdio.h>

#include "../evaluator/eval.h"

/* Reads JSON lines from in (borrowed) until its end: {"loss": EXPR, "seed": N, "steps": K,
 * "curve_every": N, "id": ANY}, only loss required; runs each on task (borrowed) with nworkers
 * threads shared by all lines, and writes one JSON line per non-blank input line to out, in
 * input order, flushed as soon as it is next: the line number, the id when given, loss, seed
 * and the fields of `lossd eval`'s result, or {"line", "id", "status": "error", "error"} for a
 * line that cannot run. steps and every are the defaults for lines without their own (0: the
 * task's). Returns 0 when every line trained to the end, 1 when any failed or was an error, 2
 * when the batch could not run (message on stderr). */
int eval_batch(const Task *task, FILE *in, FILE *out, int nworkers, long steps, long every);

#endif
