/* cron.h: 5-field cron expressions and IANA time zones (our own TZif reader), pure and
 * thread-safe: the clock is always a parameter (docs/schedules.md). */
#ifndef CRON_H
#define CRON_H

#include <stdint.h>

#include "../common/lossd.h"

/* ---- time zones ------------------------------------------------------------------------- */

/* A loaded zone: immutable after tz_load, so any number of threads may read one at once. */
typedef struct TzZone TzZone;

#define TZ_NAME_MAX 64 /* longest zone name, with its NUL */
#define TZ_ISO_MAX 32  /* buffer for tz_format_iso */

/* Loads the zone called name ("Europe/Berlin", "UTC") from $TZDIR or /usr/share/zoneinfo (TZif
 * v1-v4, the v2+ 64-bit section and its POSIX TZ footer for times after the last transition).
 * A POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3") is accepted too. name NULL or "": the
 * daemon's local zone ($TZ, else /etc/localtime, else UTC); tz_name then says which zone that
 * resolved to, and tz_load(tz_name(z)) loads the same zone again. Errors: LD_EINVAL "unknown time zone 'Europe/Berln'" (also
 * for names with "..", a leading '/', or files that are not TZif), LD_ENOMEM.
 * Returns an owned zone in *out (tz_free). */
int tz_load(const char *name, TzZone **out, char *err);
void tz_free(TzZone *z); /* NULL is fine */
const char *tz_name(const TzZone *z);

/* Seconds east of UTC in effect at the instant utc (e.g. 3600 for CET, 7200 for CEST). */
int tz_offset(const TzZone *z, int64_t utc);
/* Local wall-clock time of utc, as seconds since 1970-01-01T00:00 local ("local seconds"). */
int64_t tz_local(const TzZone *z, int64_t utc);
/* The instants whose local wall-clock time is `local` (local seconds), earliest first, in
 * out[0..1]: returns 1 normally, 2 in a fall-back overlap, 0 in a spring-forward gap. */
int tz_local_to_utc(const TzZone *z, int64_t local, int64_t out[2]);
/* The first instant whose wall-clock time is later than `local`, for a `local` inside a
 * spring-forward gap (the instant the clock jumps over it); else the same as the first instant
 * tz_local_to_utc gives. */
int64_t tz_gap_end(const TzZone *z, int64_t local);
/* The smallest and largest offsets in effect at any instant at or after utc. */
void tz_offset_range(const TzZone *z, int64_t utc, int32_t *lo, int32_t *hi);
/* Writes "2026-11-29T01:00:00+01:00" (the offset as +hh:mm, +hh:mm:ss when it has seconds)
 * into buf (TZ_ISO_MAX bytes). */
void tz_format_iso(const TzZone *z, int64_t utc, char *buf);

/* Civil calendar on local seconds (proleptic Gregorian). */
typedef struct TzCivil {
    int year, month, mday; /* month 1-12, mday 1-31 */
    int hour, min, sec;
    int wday;              /* 0 = Sunday */
} TzCivil;
void tz_civil(int64_t local, TzCivil *out);
int64_t tz_days_from_civil(int year, int month, int mday); /* days since 1970-01-01 */

/* ---- cron expressions ------------------------------------------------------------------- */

enum {
    CRON_DOM_STAR = 1, /* the day-of-month field began with '*' (Vixie: then dom AND dow) */
    CRON_DOW_STAR = 2, /* the day-of-week field began with '*' */
    CRON_WILD = 4,     /* minute or hour began with '*': fires in both passes of a fall-back */
};

typedef struct Cron {
    uint64_t minutes; /* bit m: minute m, 0-59 */
    uint32_t hours;   /* bit h: 0-23 */
    uint32_t mdays;   /* bit d: 1-31 */
    uint16_t months;  /* bit m: 1-12 */
    uint8_t wdays;    /* bit d: 0-6, Sunday 0 (7 is folded into 0) */
    uint8_t flags;    /* CRON_* */
} Cron;

/* Parses "m h dom mon dow" (`*`, `a,b`, `a-b`, `*\/n`, `a-b/n`, `a/n` = a-max/n, names JAN-DEC
 * and SUN-SAT in any case, day-of-week 0-7 with 7 = Sunday) or @hourly @daily @midnight @weekly
 * @monthly @yearly @annually. Errors (LD_EINVAL), e.g.: "expected 5 fields, got 4",
 * "cron field 2 (hour): 25 is out of range 0-23", "cron field 4 (month): unknown name 'JUNE'",
 * "cron field 3 (day-of-month): no selected day exists in a selected month (31 APR)". */
int cron_parse(const char *expr, Cron *out, char *err);

/* The instants cron_next accepts: 0001-01-01 to 9999-12-31 (UTC). */
#define CRON_TIME_MIN ((int64_t)-62135596800)
#define CRON_TIME_MAX ((int64_t)253402300799)

/* The first fire instant strictly after after_utc, in zone z. Matching is on local wall-clock
 * time: a local time inside a spring-forward gap does not fire; a local time that occurs twice
 * fires at its first occurrence only, unless the expression is CRON_WILD (then at both).
 * Returns -1 when nothing fires within ~9 years (cannot happen for a parsed expression) or
 * after_utc is outside [CRON_TIME_MIN, CRON_TIME_MAX]. */
int64_t cron_next(const Cron *c, const TzZone *z, int64_t after_utc);
/* The next n fire instants after after_utc into out[0..n-1]; returns how many were found. */
int cron_next_n(const Cron *c, const TzZone *z, int64_t after_utc, int n, int64_t *out);
/* 1 if the cron fires at local hh:mm on some day (used to refuse an `until` equal to a fire). */
int cron_fires_at_time(const Cron *c, int hour, int min);

#endif
