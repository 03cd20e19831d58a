/* engine.h: the search engine composed with the evaluator: the SearchEnv (search.h) whose tasks
 * are the evaluator's loaded tasks and whose probes are its gradient signatures and pre-checks.
 * The daemon, lossd search and the tests that train build their jobs with it. */
#ifndef DAEMON_ENGINE_H
#define DAEMON_ENGINE_H

#include "../evaluator/eval.h"
#include "../search/search.h"

/* The env: tasks load with task_load / task_load_arg (relative paths against job_parse's
 * base_dir), a family's lists come from its EvalFamily, probes are eval_signature and
 * eval_precheck. Static; thread-safe. */
const SearchEnv *engine_env(void);

/* Task i of a job parsed with engine_env() (borrowed, lives as long as the job), or NULL. */
const Task *engine_task(const SearchJob *j, int i);

#endif
