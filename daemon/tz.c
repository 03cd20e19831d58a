/* tz.c: IANA time zones from TZif files (RFC 8536) and their POSIX TZ footers, read with our
 * own parser because setenv("TZ") + localtime is process-global and not thread-safe. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cron.h"

/* One end of a POSIX TZ rule: a day in the year and a local time on it. */
typedef struct TzRuleDate {
    char kind;     /* 'J' (1-365, no Feb 29), 'N' (0-365), 'M' (month.week.day) */
    int n, m, w, d;
    int32_t time;  /* seconds after local midnight, may be negative or > 24h */
} TzRuleDate;

typedef struct TzRule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    int has_dst;
    TzRuleDate start, end;
} TzRule;

struct TzZone {
    char name[TZ_NAME_MAX];
    int n_trans;
    int64_t *trans;        /* transition instants, ascending */
    uint8_t *trans_type;   /* index into off[] for each transition */
    int n_types;
    int32_t off[256];      /* offset of each local time type */
    int has_rule;
    TzRule rule;           /* for instants after the last transition */
    /* sufmin[i] / sufmax[i]: smallest / largest offset in effect at or after transition i
     * (i = n_trans: after the last one; index -1 is handled by pre_min/pre_max) */
    int32_t *sufmin, *sufmax;
    int32_t pre_min, pre_max;
};

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t tz_days_from_civil(int year, int month, int mday) {
    int64_t y = (int64_t)year - (month <= 2);
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t mp = (month + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + mday - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tz_civil(int64_t local, TzCivil *out) {
    int64_t days = floor_div(local, 86400);
    int64_t secs = local - days * 86400;
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    out->year = (int)(yoe + era * 400 + (m <= 2));
    out->month = (int)m;
    out->mday = (int)d;
    out->hour = (int)(secs / 3600);
    out->min = (int)(secs / 60 % 60);
    out->sec = (int)(secs % 60);
    out->wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
}

static int is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m) {
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

/* ---- POSIX TZ strings ------------------------------------------------------------------- */

static int posix_name(const char **sp) {
    const char *s = *sp;
    if (*s == '<') {
        const char *e = strchr(s, '>');
        if (!e || e - s < 4)
            return -1;
        *sp = e + 1;
        return 0;
    }
    int n = 0;
    while ((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z'))
        n++;
    if (n < 3)
        return -1;
    *sp = s + n;
    return 0;
}

/* [+-]hh[:mm[:ss]] with hours up to max_h; returns seconds (sign as written). */
static int posix_time(const char **sp, int max_h, int32_t *out) {
    const char *s = *sp;
    int sign = 1;
    if (*s == '+' || *s == '-') {
        sign = *s == '-' ? -1 : 1;
        s++;
    }
    if (*s < '0' || *s > '9')
        return -1;
    long h = 0, m = 0, sec = 0;
    while (*s >= '0' && *s <= '9' && h <= max_h)
        h = h * 10 + (*s++ - '0');
    if (h > max_h)
        return -1;
    if (*s == ':') {
        s++;
        if (s[0] < '0' || s[0] > '5' || s[1] < '0' || s[1] > '9')
            return -1;
        m = (s[0] - '0') * 10 + (s[1] - '0');
        s += 2;
        if (*s == ':') {
            s++;
            if (s[0] < '0' || s[0] > '5' || s[1] < '0' || s[1] > '9')
                return -1;
            sec = (s[0] - '0') * 10 + (s[1] - '0');
            s += 2;
        }
    }
    *out = (int32_t)(sign * (h * 3600 + m * 60 + sec));
    *sp = s;
    return 0;
}

static int posix_num(const char **sp, int lo, int hi, int *out) {
    const char *s = *sp;
    int v = 0, n = 0;
    while (*s >= '0' && *s <= '9' && n < 4) {
        v = v * 10 + (*s++ - '0');
        n++;
    }
    if (n == 0 || v < lo || v > hi)
        return -1;
    *out = v;
    *sp = s;
    return 0;
}

static int posix_date(const char **sp, TzRuleDate *d) {
    const char *s = *sp;
    memset(d, 0, sizeof *d);
    if (*s == 'J') {
        s++;
        d->kind = 'J';
        if (posix_num(&s, 1, 365, &d->n))
            return -1;
    } else if (*s == 'M') {
        s++;
        d->kind = 'M';
        if (posix_num(&s, 1, 12, &d->m) || *s++ != '.' || posix_num(&s, 1, 5, &d->w) ||
            *s++ != '.' || posix_num(&s, 0, 6, &d->d))
            return -1;
    } else {
        d->kind = 'N';
        if (posix_num(&s, 0, 365, &d->n))
            return -1;
    }
    d->time = 7200;
    if (*s == '/') {
        s++;
        if (posix_time(&s, 167, &d->time))
            return -1;
    }
    *sp = s;
    return 0;
}

/* Parses a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3". Returns 0 or -1. */
static int posix_parse(const char *s, TzRule *r) {
    memset(r, 0, sizeof *r);
    int32_t t;
    if (posix_name(&s) || posix_time(&s, 24, &t))
        return -1;
    r->std_off = -t;
    r->dst_off = r->std_off;
    if (*s == 0)
        return 0;
    if (posix_name(&s))
        return -1;
    r->has_dst = 1;
    r->dst_off = r->std_off + 3600;
    if (*s && *s != ',') {
        if (posix_time(&s, 24, &t))
            return -1;
        r->dst_off = -t;
    }
    if (*s == 0) { /* no rule: POSIX leaves it to the implementation; glibc uses US rules */
        const char *us = "M3.2.0,M11.1.0";
        if (posix_date(&us, &r->start) || *us++ != ',' || posix_date(&us, &r->end))
            return -1;
        return 0;
    }
    if (*s++ != ',' || posix_date(&s, &r->start) || *s++ != ',' || posix_date(&s, &r->end))
        return -1;
    return *s == 0 ? 0 : -1;
}

/* Local seconds of the rule date's midnight in year y. */
static int64_t rule_day(const TzRuleDate *d, int y) {
    int64_t jan1 = tz_days_from_civil(y, 1, 1);
    if (d->kind == 'J')
        return jan1 + d->n - 1 + (is_leap(y) && d->n >= 60 ? 1 : 0);
    if (d->kind == 'N')
        return jan1 + d->n;
    int64_t first = tz_days_from_civil(y, d->m, 1);
    int wday_first = (int)(((first % 7) + 11) % 7);
    int day = 1 + (d->d - wday_first + 7) % 7 + (d->w - 1) * 7;
    while (day > month_days(y, d->m))
        day -= 7;
    return first + day - 1;
}

static int32_t rule_offset(const TzRule *r, int64_t utc) {
    if (!r->has_dst)
        return r->std_off;
    TzCivil c;
    tz_civil(utc + r->std_off, &c);
    /* Transitions of the neighbouring years too, so rules with times past midnight or
     * southern-hemisphere rules (DST across New Year) need no special case. */
    int64_t when[6];
    int dst[6], n = 0;
    for (int y = c.year - 1; y <= c.year + 1; y++) {
        when[n] = (rule_day(&r->end, y) * 86400 + r->end.time) - r->dst_off;
        dst[n++] = 0;
        when[n] = (rule_day(&r->start, y) * 86400 + r->start.time) - r->std_off;
        dst[n++] = 1;
    }
    int64_t best_when = INT64_MIN;
    int best_dst = 0;
    for (int i = 0; i < n; i++) {
        /* ties: a start at the same instant as an end wins (DST all year) */
        if (when[i] <= utc && (when[i] > best_when || (when[i] == best_when && dst[i]))) {
            best_when = when[i];
            best_dst = dst[i];
        }
    }
    return best_dst ? r->dst_off : r->std_off;
}

/* ---- TZif ------------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p) {
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* Parses a TZif image into z (name already set). Returns 0 or -1 (not a usable TZif). */
static int tzif_parse(const unsigned char *b, size_t len, TzZone *z) {
    if (len < 44 || memcmp(b, "TZif", 4) != 0)
        return -1;
    int version = b[4];
    size_t p = 0;
    int tsize = 4;
    for (int pass = 0; pass < 2; pass++) {
        if (p + 44 > len || memcmp(b + p, "TZif", 4) != 0)
            return -1;
        uint32_t isutcnt = be32(b + p + 20), isstdcnt = be32(b + p + 24),
                 leapcnt = be32(b + p + 28), timecnt = be32(b + p + 32),
                 typecnt = be32(b + p + 36), charcnt = be32(b + p + 40);
        if (timecnt > 100000 || typecnt > 256 || charcnt > 100000 || leapcnt > 100000 ||
            isutcnt > 256 || isstdcnt > 256)
            return -1;
        size_t body = (size_t)timecnt * (tsize + 1) + (size_t)typecnt * 6 + charcnt +
                      (size_t)leapcnt * (tsize + 4) + isstdcnt + isutcnt;
        size_t d = p + 44;
        if (d + body > len)
            return -1;
        if (pass == 0 && version >= '2') { /* skip the 32-bit section, read the 64-bit one */
            p = d + body;
            tsize = 8;
            continue;
        }
        if (typecnt == 0)
            return -1;
        z->n_trans = (int)timecnt;
        z->trans = malloc(sizeof(int64_t) * (timecnt + 1));
        z->trans_type = malloc(timecnt + 1);
        if (!z->trans || !z->trans_type)
            return -1;
        for (uint32_t i = 0; i < timecnt; i++) {
            z->trans[i] = tsize == 8 ? be64(b + d + 8 * i) : (int32_t)be32(b + d + 4 * i);
            if (i > 0 && z->trans[i] <= z->trans[i - 1])
                return -1;
        }
        const unsigned char *idx = b + d + (size_t)timecnt * tsize;
        for (uint32_t i = 0; i < timecnt; i++) {
            if (idx[i] >= typecnt)
                return -1;
            z->trans_type[i] = idx[i];
        }
        const unsigned char *types = idx + timecnt;
        z->n_types = (int)typecnt;
        for (uint32_t i = 0; i < typecnt; i++) {
            int32_t off = (int32_t)be32(types + 6 * i);
            if (off < -25 * 3600 || off > 26 * 3600)
                return -1;
            z->off[i] = off;
        }
        z->has_rule = 0;
        if (tsize == 8) { /* footer: "\n<POSIX TZ>\n" */
            size_t f = d + body;
            if (f < len && b[f] == '\n') {
                const unsigned char *nl = memchr(b + f + 1, '\n', len - f - 1);
                if (nl && nl > b + f + 1) {
                    char tzs[128];
                    size_t n = (size_t)(nl - (b + f + 1));
                    if (n >= sizeof tzs)
                        return -1;
                    memcpy(tzs, b + f + 1, n);
                    tzs[n] = 0;
                    if (posix_parse(tzs, &z->rule) != 0)
                        return -1;
                    z->has_rule = 1;
                }
            }
        }
        return 0;
    }
    return -1;
}

/* Fills the suffix minimum / maximum offsets cron_next uses to bound its scan. */
static int zone_finish(TzZone *z) {
    int n = z->n_trans;
    z->sufmin = malloc(sizeof(int32_t) * (n + 1));
    z->sufmax = malloc(sizeof(int32_t) * (n + 1));
    if (!z->sufmin || !z->sufmax)
        return -1;
    int32_t lo, hi;
    if (z->has_rule) {
        lo = z->rule.std_off < z->rule.dst_off ? z->rule.std_off : z->rule.dst_off;
        hi = z->rule.std_off > z->rule.dst_off ? z->rule.std_off : z->rule.dst_off;
    } else {
        lo = hi = z->off[n > 0 ? z->trans_type[n - 1] : 0];
    }
    z->sufmin[n] = lo;
    z->sufmax[n] = hi;
    for (int i = n - 1; i >= 0; i--) {
        int32_t o = z->off[z->trans_type[i]];
        z->sufmin[i] = lo = o < lo ? o : lo;
        z->sufmax[i] = hi = o > hi ? o : hi;
    }
    z->pre_min = z->off[0] < lo ? z->off[0] : lo;
    z->pre_max = z->off[0] > hi ? z->off[0] : hi;
    return 0;
}

/* Index of the last transition at or before utc, -1 when before the first. */
static int trans_index(const TzZone *z, int64_t utc) {
    int lo = 0, hi = z->n_trans; /* first transition > utc is in [lo, hi] */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= utc)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

int tz_offset(const TzZone *z, int64_t utc) {
    int i = trans_index(z, utc);
    if (z->n_trans == 0 && z->has_rule)
        return rule_offset(&z->rule, utc); /* no transitions: the footer covers all time */
    if (i < 0)
        return z->off[0]; /* RFC 8536: before the first transition, type 0 */
    if (i == z->n_trans - 1 && z->has_rule)
        return rule_offset(&z->rule, utc);
    return z->off[z->trans_type[i]];
}

void tz_offset_range(const TzZone *z, int64_t utc, int32_t *lo, int32_t *hi) {
    int i = trans_index(z, utc);
    if (i < 0) {
        *lo = z->pre_min;
        *hi = z->pre_max;
    } else {
        *lo = z->sufmin[i];
        *hi = z->sufmax[i];
    }
}

int64_t tz_local(const TzZone *z, int64_t utc) {
    return utc + tz_offset(z, utc);
}

int tz_local_to_utc(const TzZone *z, int64_t local, int64_t out[2]) {
    /* Every solution t = local - o for an offset o in effect near local; offsets on both sides
     * of a transition are found by probing a day either way (transitions are far apart). */
    int32_t cand[4];
    cand[0] = tz_offset(z, local - 86400);
    cand[1] = tz_offset(z, local + 86400);
    cand[2] = tz_offset(z, local - cand[0]);
    cand[3] = tz_offset(z, local - cand[1]);
    int n = 0;
    for (int i = 0; i < 4; i++) {
        int64_t t = local - cand[i];
        if (tz_offset(z, t) != cand[i])
            continue;
        int dup = 0;
        for (int k = 0; k < n; k++)
            dup |= out[k] == t;
        if (dup)
            continue;
        if (n < 2) {
            out[n++] = t;
        } else if (t < out[1]) { /* keep the two earliest (cannot happen in real zones) */
            out[1] = t;
        }
        if (n == 2 && out[1] < out[0]) {
            int64_t x = out[0];
            out[0] = out[1];
            out[1] = x;
        }
    }
    return n;
}

int64_t tz_gap_end(const TzZone *z, int64_t local) {
    int64_t inst[2];
    if (tz_local_to_utc(z, local, inst) > 0)
        return inst[0];
    /* In a gap, local(t) < local before the jump and > local after it: bisect the jump. */
    int64_t lo = local - 27 * 3600, hi = local + 27 * 3600;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (tz_local(z, mid) > local)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

void tz_format_iso(const TzZone *z, int64_t utc, char *buf) {
    int off = tz_offset(z, utc);
    TzCivil c;
    tz_civil(utc + off, &c);
    char sign = off < 0 ? '-' : '+';
    int a = off < 0 ? -off : off;
    char tmp[128]; /* years beyond 9999 would not fit TZ_ISO_MAX: truncated, never overrun */
    int n = snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", c.year,
                     c.month, c.mday, c.hour, c.min, c.sec, sign, a / 3600, a / 60 % 60);
    if (a % 60 && n > 0 && (size_t)n + 3 < sizeof tmp)
        snprintf(tmp + n, sizeof tmp - (size_t)n, ":%02d", a % 60);
    size_t len = strlen(tmp);
    if (len >= TZ_ISO_MAX)
        len = TZ_ISO_MAX - 1;
    memcpy(buf, tmp, len);
    buf[len] = 0;
}

/* ---- loading ---------------------------------------------------------------------------- */

void tz_free(TzZone *z) {
    if (!z)
        return;
    free(z->trans);
    free(z->trans_type);
    free(z->sufmin);
    free(z->sufmax);
    free(z);
}

const char *tz_name(const TzZone *z) {
    return z->name;
}

/* A zone name a user may give: letters, digits, "/_+-." and no "..", no leading '/'. */
static int name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n >= TZ_NAME_MAX || name[0] == '/' || name[0] == '.' || strstr(name, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '/' || ch == '_' || ch == '+' || ch == '-' || ch == '.'))
            return 0;
    }
    return 1;
}

static TzZone *zone_new(const char *name) {
    TzZone *z = calloc(1, sizeof *z);
    if (z)
        snprintf(z->name, sizeof z->name, "%s", name);
    return z;
}

/* Loads the TZif file at path under the given name; -1 when it is missing or not TZif,
 * LD_ENOMEM. */
/* Reads a zone file: a regular file of at most 1 MiB (a name such as "Europe" is a directory,
 * which fopen accepts and ftell sizes as huge). Returns owned bytes or NULL. */
static unsigned char *read_zone_file(const char *path, size_t *len) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > (1 << 20))
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = malloc((size_t)st.st_size);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buf || n == 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int load_file(const char *path, const char *name, TzZone **out) {
    size_t len = 0;
    unsigned char *buf = read_zone_file(path, &len);
    if (!buf)
        return -1;
    TzZone *z = zone_new(name);
    int rc = -1;
    if (!z) {
        rc = LD_ENOMEM;
        goto done;
    }
    if (tzif_parse(buf, len, z) != 0)
        goto done;
    if (zone_finish(z) != 0) {
        rc = LD_ENOMEM;
        goto done;
    }
    *out = z;
    z = NULL;
    rc = 0;
done:
    tz_free(z);
    free(buf);
    return rc;
}

/* A zone made from a POSIX TZ string alone (TZ="CET-1CEST,M3.5.0,M10.5.0/3", or UTC when no
 * zone files are installed). */
static int load_posix(const char *spec, const char *name, TzZone **out) {
    TzZone *z = zone_new(name);
    if (!z)
        return LD_ENOMEM;
    if (posix_parse(spec, &z->rule) != 0) {
        tz_free(z);
        return -1;
    }
    z->has_rule = 1;
    z->n_types = 1;
    z->off[0] = z->rule.std_off;
    if (zone_finish(z) != 0) {
        tz_free(z);
        return LD_ENOMEM;
    }
    *out = z;
    return 0;
}

static const char *zoneinfo_dir(void) {
    const char *d = getenv("TZDIR");
    return d && *d ? d : "/usr/share/zoneinfo";
}

static int load_named(const char *name, TzZone **out) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", zoneinfo_dir(), name);
    int rc = load_file(path, name, out);
    if (rc == -1 && (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0))
        rc = load_posix("UTC0", name, out);
    return rc;
}

/* The daemon's local zone: $TZ, else /etc/localtime (named after its symlink target),
 * else /etc/timezone, else UTC. */
static int load_local(TzZone **out) {
    const char *tz = getenv("TZ");
    int rc;
    if (tz) {
        if (*tz == ':')
            tz++;
        if (*tz == 0)
            return load_named("UTC", out);
        if (tz[0] == '/') {
            const char *zi = strstr(tz, "zoneinfo/");
            rc = load_file(tz, zi ? zi + 9 : tz, out);
        } else {
            rc = name_ok(tz) ? load_named(tz, out) : -1;
            if (rc == -1 && strlen(tz) < TZ_NAME_MAX)
                rc = load_posix(tz, tz, out);
        }
        if (rc != -1)
            return rc;
    }
    char link[512];
    ssize_t n = readlink("/etc/localtime", link, sizeof link - 1);
    if (n > 0) {
        link[n] = 0;
        const char *zi = strstr(link, "zoneinfo/");
        if (zi && name_ok(zi + 9)) {
            rc = load_named(zi + 9, out);
            if (rc != -1)
                return rc;
        }
    }
    char ebuf[LD_ERR_MAX];
    char *etc = ld_read_file("/etc/timezone", NULL, ebuf);
    if (etc) {
        etc[strcspn(etc, " \t\r\n")] = 0;
        rc = name_ok(etc) ? load_named(etc, out) : -1;
        free(etc);
        if (rc != -1)
            return rc;
    }
    return load_named("UTC", out);
}

int tz_load(const char *name, TzZone **out, char *err) {
    *out = NULL;
    int rc;
    if (!name || !*name) {
        rc = load_local(out);
        if (rc == -1)
            return ld_err(err, LD_EINVAL, "cannot load the local time zone");
    } else {
        rc = name_ok(name) ? load_named(name, out) : -1;
        /* a POSIX TZ rule such as "CET-1CEST,M3.5.0,M10.5.0/3" (what a default zone taken from
         * $TZ resolves to, so it must load again from the stored name) */
        if (rc == -1 && strlen(name) < TZ_NAME_MAX)
            rc = load_posix(name, name, out);
        if (rc == -1)
            return ld_err(err, LD_EINVAL, "unknown time zone '%.*s'", TZ_NAME_MAX, name);
    }
    if (rc == LD_ENOMEM)
        return ld_err(err, LD_ENOMEM, "time zone: out of memory");
    return LD_OK;
}
