/* ctl_schedule.h: `lossctl schedule ...`, the command group for cron schedules of jobs
 * (docs/schedules.md). lossctl.c adds it to its command table when this header exists. */
#ifndef CTL_SCHEDULE_H
#define CTL_SCHEDULE_H

#include "../api/client.h"

#define CTL_SCHEDULE_USAGE                                                                    \
    "add --cron EXPR [--tz ZONE] [--until HH:MM] [--catch-up once|skip] "                      \
    "[--concurrency forbid|allow] [--name NAME] JOB.json | list | show ID | rm ID | pause ID | " \
    "resume ID | run ID | help"

/* argv[0] is "schedule"; returns the exit status (0 ok, 1 daemon or connection error, 2 bad
 * usage). */
int ctl_schedule_main(Ctl *ctl, int argc, char **argv);

#endif
