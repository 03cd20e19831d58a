/* cron.c: parses 5-field cron expressions and computes fire times on local wall-clock time
 * (docs/schedules.md: Vixie day-of-month/day-of-week rule, DST gaps and overlaps). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cron.h"

typedef struct CronField {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is value lo + i; NULL: numbers only */
} CronField;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const CronField fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, day_names},
};

static const struct {
    const char *name, *expr;
} macros[] = {
    {"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

#define FIELD_ERR(i, ...)                                                                      \
    do {                                                                                       \
        char msg_[LD_ERR_MAX];                                                                 \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                              \
        return ld_err(err, LD_EINVAL, "cron field %d (%s): %s", (i) + 1, fields[i].name, msg_); \
    } while (0)

/* Reads a number or a name of field i from s[0..n). */
static int parse_value(int i, const char *s, size_t n, int *out, char *err) {
    const CronField *f = &fields[i];
    if (n == 0)
        FIELD_ERR(i, "a value is missing");
    if (isdigit((unsigned char)s[0])) {
        long v = 0;
        for (size_t k = 0; k < n; k++) {
            if (!isdigit((unsigned char)s[k]))
                FIELD_ERR(i, "'%.*s' is not a number", (int)(n > 20 ? 20 : n), s);
            if (v < 100000)
                v = v * 10 + (s[k] - '0');
        }
        /* quoted as written: a saturated v would say 999999 for 99999999999999999999 */
        if (v < f->lo || v > f->hi)
            FIELD_ERR(i, "%.*s%s is out of range %d-%d", (int)(n > 40 ? 40 : n), s,
                      n > 40 ? "..." : "", f->lo, f->hi);
        *out = (int)v;
        return LD_OK;
    }
    if (f->names && n == 3) {
        for (int k = 0; f->names[k]; k++) {
            if (strncasecmp(s, f->names[k], 3) == 0) {
                *out = f->lo + k; /* months start at 1 = lo, weekdays at 0 */
                return LD_OK;
            }
        }
    }
    if (f->names && isalpha((unsigned char)s[0]))
        FIELD_ERR(i, "unknown name '%.*s' (expected %s)", (int)(n > 20 ? 20 : n), s,
                  i == 3 ? "JAN-DEC" : "SUN-SAT");
    FIELD_ERR(i, "'%.*s' is not a number", (int)(n > 20 ? 20 : n), s);
}

/* Parses one list item of field i ("*", "a", "a-b", each optionally "/step") into *bits. */
static int parse_item(int i, const char *s, size_t n, uint64_t *bits, char *err) {
    const CronField *f = &fields[i];
    const char *slash = memchr(s, '/', n);
    size_t rn = slash ? (size_t)(slash - s) : n;
    int a, b, step = 1, rc;
    if (rn == 1 && s[0] == '*') {
        a = f->lo;
        b = f->hi;
    } else {
        const char *dash = memchr(s, '-', rn);
        size_t an = dash ? (size_t)(dash - s) : rn;
        rc = parse_value(i, s, an, &a, err);
        if (rc)
            return rc;
        if (dash) {
            rc = parse_value(i, dash + 1, rn - an - 1, &b, err);
            if (rc)
                return rc;
            if (b < a)
                FIELD_ERR(i, "range %.*s goes backwards", (int)(rn > 20 ? 20 : rn), s);
        } else {
            b = slash ? f->hi : a; /* "a/n" means a-max/n, as cronie */
        }
    }
    if (slash) {
        size_t sn = n - rn - 1;
        if (sn == 0)
            FIELD_ERR(i, "a step is missing after '/'");
        long v = 0;
        for (size_t k = 0; k < sn; k++) {
            if (!isdigit((unsigned char)slash[1 + k]))
                FIELD_ERR(i, "step '%.*s' is not a number", (int)(sn > 20 ? 20 : sn), slash + 1);
            if (v < 100000)
                v = v * 10 + (slash[1 + k] - '0');
        }
        int max_step = f->hi - f->lo + (i == 4 ? 0 : 1);
        if (v < 1 || v > max_step)
            FIELD_ERR(i, "step %.*s%s is out of range 1-%d", (int)(sn > 40 ? 40 : sn), slash + 1,
                      sn > 40 ? "..." : "", max_step);
        step = (int)v;
    }
    for (int v = a; v <= b; v += step)
        *bits |= (uint64_t)1 << v;
    return LD_OK;
}

static int parse_field(int i, const char *s, size_t n, uint64_t *bits, char *err) {
    *bits = 0;
    size_t start = 0;
    for (size_t k = 0; k <= n; k++) {
        if (k < n && s[k] != ',')
            continue;
        if (k == start)
            FIELD_ERR(i, "empty item in the list '%.*s'", (int)(n > 40 ? 40 : n), s);
        int rc = parse_item(i, s + start, k - start, bits, err);
        if (rc)
            return rc;
        start = k + 1;
    }
    return LD_OK;
}

static int month_max_days(int m) {
    static const int md[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return md[m - 1];
}

static int parse_fields(const char *expr, Cron *out, char *err) {
    const char *tok[5];
    size_t len[5];
    int n = 0;
    const char *p = expr;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (n < 5) {
            tok[n] = s;
            len[n] = (size_t)(p - s);
        }
        n++;
    }
    if (n != 5)
        return ld_err(err, LD_EINVAL, "expected 5 fields, got %d", n);
    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        int rc = parse_field(i, tok[i], len[i], &bits[i], err);
        if (rc)
            return rc;
    }
    memset(out, 0, sizeof *out);
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->mdays = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    out->wdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday */
    if (tok[2][0] == '*')
        out->flags |= CRON_DOM_STAR;
    if (tok[4][0] == '*')
        out->flags |= CRON_DOW_STAR;
    if (tok[0][0] == '*' || tok[1][0] == '*')
        out->flags |= CRON_WILD;
    /* With the day-of-week unrestricted, the day-of-month alone decides: refuse an expression
     * that can never fire, such as "0 0 31 4 *" or "0 0 30 FEB *". */
    if (out->flags & CRON_DOW_STAR) {
        int exists = 0, ex_day = 0, ex_month = 0;
        for (int m = 1; m <= 12; m++) {
            if (!(out->months >> m & 1))
                continue;
            for (int d = 1; d <= 31; d++) {
                if (!(out->mdays >> d & 1))
                    continue;
                if (d <= month_max_days(m))
                    exists = 1;
                else if (!ex_day) {
                    ex_day = d;
                    ex_month = m;
                }
            }
        }
        if (!exists)
            return ld_err(err, LD_EINVAL,
                          "cron field 3 (day-of-month): no selected day exists in a selected "
                          "month (%d %s)",
                          ex_day, month_names[ex_month - 1]);
    }
    return LD_OK;
}

int cron_parse(const char *expr, Cron *out, char *err) {
    if (!expr)
        return ld_err(err, LD_EINVAL, "expected 5 fields, got 0");
    const char *p = expr;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '@')
        return parse_fields(expr, out, err);
    size_t n = strcspn(p, " \t");
    const char *rest = p + n;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
        if (strlen(macros[i].name) == n && strncasecmp(p, macros[i].name, n) == 0) {
            if (*rest)
                return ld_err(err, LD_EINVAL, "%s takes no fields after it", macros[i].name);
            return parse_fields(macros[i].expr, out, err);
        }
    }
    return ld_err(err, LD_EINVAL,
                  "unknown shortcut '%.*s' (expected @hourly, @daily, @midnight, @weekly, "
                  "@monthly, @yearly or @annually)",
                  (int)(n > 20 ? 20 : n), p);
}

/* ---- fire times ------------------------------------------------------------------------- */

static int64_t floor_to(int64_t a, int64_t unit) {
    int64_t q = a / unit;
    if (a % unit != 0 && a < 0)
        q--;
    return q * unit;
}

static int day_matches(const Cron *c, int mday, int wday) {
    int dom = (int)(c->mdays >> mday & 1);
    int dow = c->wdays >> wday & 1;
    if (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
        return dom && dow;
    return dom || dow; /* both restricted: either one (Vixie) */
}

/* The first local minute >= local (minute-aligned) whose wall-clock fields match, or
 * INT64_MIN when there is none up to limit. Skips whole months, days and hours. */
static int64_t next_local_match(const Cron *c, int64_t local, int64_t limit) {
    while (local <= limit) {
        TzCivil t;
        tz_civil(local, &t);
        if (!(c->months >> t.month & 1)) {
            int y = t.year + (t.month == 12), m = t.month == 12 ? 1 : t.month + 1;
            local = tz_days_from_civil(y, m, 1) * 86400;
            continue;
        }
        if (!day_matches(c, t.mday, t.wday)) {
            local = floor_to(local, 86400) + 86400;
            continue;
        }
        if (!(c->hours >> t.hour & 1)) {
            local = floor_to(local, 3600) + 3600;
            continue;
        }
        uint64_t rest = c->minutes >> t.min;
        if (!rest) {
            local = floor_to(local, 3600) + 3600;
            continue;
        }
        return local + 60 * (int64_t)__builtin_ctzll(rest);
    }
    return INT64_MIN;
}

#define CRON_HORIZON_S ((int64_t)50 * 366 * 86400) /* Feb 29 on a given weekday: < 50 years */

int64_t cron_next(const Cron *c, const TzZone *z, int64_t after_utc) {
    /* years 1 to 9999 only: beyond them the local-time arithmetic would overflow */
    if (after_utc < CRON_TIME_MIN || after_utc > CRON_TIME_MAX)
        return -1;
    /* Any instant t > after has local time t + off(t) with off within [lo, hi] (the offsets in
     * effect from `after` on), so scanning local minutes from after + lo finds every candidate,
     * and once a local minute reaches best + hi no earlier instant can follow. */
    int32_t lo, hi;
    tz_offset_range(z, after_utc, &lo, &hi);
    int64_t local = floor_to(after_utc + lo, 60);
    int64_t limit = after_utc + hi + CRON_HORIZON_S;
    int64_t best = INT64_MAX;
    for (;;) {
        local = next_local_match(c, local, limit);
        if (local == INT64_MIN)
            break;
        if (best != INT64_MAX && local >= best + hi)
            break;
        int64_t inst[2];
        int n = tz_local_to_utc(z, local, inst);
        for (int i = 0; i < n; i++) {
            if (i > 0 && !(c->flags & CRON_WILD))
                break; /* a fixed time fires at the first of two occurrences only */
            if (inst[i] > after_utc && inst[i] < best)
                best = inst[i];
        }
        local += 60;
    }
    return best == INT64_MAX ? -1 : best;
}

int cron_next_n(const Cron *c, const TzZone *z, int64_t after_utc, int n, int64_t *out) {
    int k = 0;
    while (k < n) {
        int64_t t = cron_next(c, z, after_utc);
        if (t < 0)
            break;
        out[k++] = t;
        after_utc = t;
    }
    return k;
}

int cron_fires_at_time(const Cron *c, int hour, int min) {
    return (c->hours >> hour & 1) && (c->minutes >> min & 1);
}
