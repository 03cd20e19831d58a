/* ctl_report.h: `lossctl report JOB [-o FILE]`, one self-contained HTML page of a job (inline
 * SVG plots, its leaderboard and the final paired test). lossctl.c lists it in its command
 * table. */
#ifndef CTL_REPORT_H
#define CTL_REPORT_H

#include "../api/client.h"

#define CTL_REPORT_USAGE "JOB [-o FILE.html]"
extern const CtlOpt ctl_report_opts[]; /* its options, for ctl_parse and lossctl help */

/* argv[0] is "report"; writes FILE (default lossd-report-JOB.html; "-" for stdout) and prints
 * its name. Returns the exit status (0 ok, 1 daemon, connection or file error, 2 bad usage). */
int ctl_report_main(Ctl *ctl, int argc, char **argv);

#endif
