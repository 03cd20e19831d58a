/* ctl_format.h: leaderboard entries as CSV or JSON lines (`lossctl leaderboard --format`). */
#ifndef CTL_FORMAT_H
#define CTL_FORMAT_H

#include "../api/client.h"

/* Prints the entries of a leaderboard.query result (borrowed) to stdout. format "csv": a header
 * row, then one row per entry (RFC 4180 quoting): job_id (when job > 0), every scalar member
 * (rank, cand, expr, fitness, ...), and per task metric its mean ("digits.accuracy") and test
 * mean ("digits.accuracy.test"); "jsonl": each entry as one line of JSON, with its job_id.
 * Returns 0, or 2 after a message for another format. */
int ctl_format_entries(const cJSON *res, int64_t job, const char *format);

#endif
