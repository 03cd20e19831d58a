/* test_cron.c: the cron parser (valid and invalid expressions with their exact messages), the
 * TZif zone reader and next-fire computation, including DST nights, against tables whose
 * expected values were computed independently with /usr/bin/python3 and zoneinfo (a brute-force
 * minute-by-minute reference, not this code). No test waits for real time. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../common/lossd.h"
#include "../daemon/cron.h"

/* "2026-11-28T10:07:00Z" -> seconds since the epoch (test helper; only this exact form). */
static int64_t utc(const char *s) {
    int y, mo, d, h, mi, se;
    if (sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &se) != 6)
        fail_msg("bad time literal %s", s);
    return tz_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
}

static TzZone *zone(const char *name) {
    char err[LD_ERR_MAX];
    TzZone *z = NULL;
    if (tz_load(name, &z, err) != LD_OK)
        fail_msg("tz_load(%s): %s", name, err);
    return z;
}

/* ---- parser --------------------------------------------------------------------------------- */

/* Expected bit sets computed by the Python reference parser (tools: ref.py, same semantics:
 * 7 = Sunday, a/n = a-max/n; flags: 1 dom starts with '*', 2 dow starts with '*', 4 minute or
 * hour starts with '*'). */
static const struct {
    const char *expr;
    uint64_t minutes;
    uint32_t hours, mdays, months, wdays;
    int flags;
} valid_cases[] = {
    {"* * * * *", 0xfffffffffffffffull, 0xffffff, 0xfffffffe, 0x1ffe, 0x7f, 7},
    {"*/15 * * * *", 0x200040008001ull, 0xffffff, 0xfffffffe, 0x1ffe, 0x7f, 7},
    {"0 1 * * *", 0x1ull, 0x2, 0xfffffffe, 0x1ffe, 0x7f, 3},
    {"10-50/10 2 * * *", 0x4010040100400ull, 0x4, 0xfffffffe, 0x1ffe, 0x7f, 3},
    {"5/20 * * * *", 0x200002000020ull, 0xffffff, 0xfffffffe, 0x1ffe, 0x7f, 7},
    {"0 0 13 * FRI", 0x1ull, 0x1, 0x2000, 0x1ffe, 0x20, 0},
    {"0 9 * jun-Aug MON", 0x1ull, 0x200, 0xfffffffe, 0x1c0, 0x2, 1},
    {"0 0 * * 7", 0x1ull, 0x1, 0xfffffffe, 0x1ffe, 0x1, 1},
    {"0 0 * * 5-7", 0x1ull, 0x1, 0xfffffffe, 0x1ffe, 0x61, 1},
    {"0 0 1,15 * sun,wed", 0x1ull, 0x1, 0x8002, 0x1ffe, 0x9, 0},
    {"@hourly", 0x1ull, 0xffffff, 0xfffffffe, 0x1ffe, 0x7f, 7},
    {"@daily", 0x1ull, 0x1, 0xfffffffe, 0x1ffe, 0x7f, 3},
    {"@midnight", 0x1ull, 0x1, 0xfffffffe, 0x1ffe, 0x7f, 3},
    {"@weekly", 0x1ull, 0x1, 0xfffffffe, 0x1ffe, 0x1, 1},
    {"@monthly", 0x1ull, 0x1, 0x2, 0x1ffe, 0x7f, 2},
    {"@yearly", 0x1ull, 0x1, 0x2, 0x2, 0x7f, 2},
    {"@annually", 0x1ull, 0x1, 0x2, 0x2, 0x7f, 2},
    {"  30   2\t* * *  ", 0x40000000ull, 0x4, 0xfffffffe, 0x1ffe, 0x7f, 3},
    {"0 0 */2 * MON", 0x1ull, 0x1, 0xaaaaaaaa, 0x1ffe, 0x2, 1},
    {"59 23 31 12 6", 0x800000000000000ull, 0x800000, 0x80000000, 0x1000, 0x40, 0},
    {"0 0 29 2 *", 0x1ull, 0x1, 0x20000000, 0x4, 0x7f, 2},
    {"*/7 */5 */9 */4 */3", 0x102040810204081ull, 0x108421, 0x10080402, 0x222, 0x49, 7},
    {"@Daily", 0x1ull, 0x1, 0xfffffffe, 0x1ffe, 0x7f, 3},
};

static void test_parse_valid(void **state) {
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        char err[LD_ERR_MAX] = "";
        Cron c;
        int rc = cron_parse(valid_cases[i].expr, &c, err);
        if (rc != LD_OK) {
            print_error("'%s': unexpected error: %s\n", valid_cases[i].expr, err);
            bad++;
            continue;
        }
        if (c.minutes != valid_cases[i].minutes || c.hours != valid_cases[i].hours ||
            c.mdays != valid_cases[i].mdays || c.months != valid_cases[i].months ||
            c.wdays != valid_cases[i].wdays || c.flags != valid_cases[i].flags) {
            print_error("'%s': got min %llx h %x dom %x mon %x dow %x flags %d\n",
                        valid_cases[i].expr, (unsigned long long)c.minutes, c.hours, c.mdays,
                        c.months, c.wdays, c.flags);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static const struct {
    const char *expr, *msg;
} invalid_cases[] = {
    {"0 1 * *", "expected 5 fields, got 4"},
    {"0 1 * * * *", "expected 5 fields, got 6"},
    {"", "expected 5 fields, got 0"},
    {"   ", "expected 5 fields, got 0"},
    {"0 25 * * *", "cron field 2 (hour): 25 is out of range 0-23"},
    {"60 * * * *", "cron field 1 (minute): 60 is out of range 0-59"},
    {"0 0 0 * *", "cron field 3 (day-of-month): 0 is out of range 1-31"},
    {"0 0 32 * *", "cron field 3 (day-of-month): 32 is out of range 1-31"},
    {"0 0 * 13 *", "cron field 4 (month): 13 is out of range 1-12"},
    {"0 0 * * 8", "cron field 5 (day-of-week): 8 is out of range 0-7"},
    {"x * * * *", "cron field 1 (minute): 'x' is not a number"},
    {"5x * * * *", "cron field 1 (minute): '5x' is not a number"},
    {"0 0 * JANUARY *", "cron field 4 (month): unknown name 'JANUARY' (expected JAN-DEC)"},
    {"0 0 * * FRY", "cron field 5 (day-of-week): unknown name 'FRY' (expected SUN-SAT)"},
    {"0 MON * * *", "cron field 2 (hour): 'MON' is not a number"},
    {"*/0 * * * *", "cron field 1 (minute): step 0 is out of range 1-60"},
    {"*/61 * * * *", "cron field 1 (minute): step 61 is out of range 1-60"},
    /* quoted as written, not as a saturated 999999 */
    {"99999999999999999999 * * * *", "cron field 1 (minute): 99999999999999999999 is out of range 0-59"},
    {"*/99999999999999999999 * * * *", "cron field 1 (minute): step 99999999999999999999 is out of range 1-60"},
    {"*/ * * * *", "cron field 1 (minute): a step is missing after '/'"},
    {"*/x * * * *", "cron field 1 (minute): step 'x' is not a number"},
    {"0 5-1 * * *", "cron field 2 (hour): range 5-1 goes backwards"},
    {"0 1-* * * *", "cron field 2 (hour): '*' is not a number"},
    {"1,,2 * * * *", "cron field 1 (minute): empty item in the list '1,,2'"},
    {"1, * * * *", "cron field 1 (minute): empty item in the list '1,'"},
    {"-5 * * * *", "cron field 1 (minute): a value is missing"},
    {"0 0 31 4 *", "cron field 3 (day-of-month): no selected day exists in a selected month "
                   "(31 APR)"},
    {"0 0 30,31 FEB *", "cron field 3 (day-of-month): no selected day exists in a selected "
                        "month (30 FEB)"},
    {"@reboot", "unknown shortcut '@reboot' (expected @hourly, @daily, @midnight, @weekly, "
                "@monthly, @yearly or @annually)"},
    {"@daily 5", "@daily takes no fields after it"},
};

static void test_parse_invalid(void **state) {
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
        char err[LD_ERR_MAX] = "";
        Cron c;
        int rc = cron_parse(invalid_cases[i].expr, &c, err);
        if (rc != LD_EINVAL || strcmp(err, invalid_cases[i].msg) != 0) {
            print_error("'%s': rc %d, message\n  got:  %s\n  want: %s\n", invalid_cases[i].expr,
                        rc, err, invalid_cases[i].msg);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Never crash, always terminate and say something, on arbitrary bytes. */
static void test_parse_fuzz(void **state) {
    (void)state;
    LdRng r;
    rng_seed(&r, 42);
    const char alphabet[] = "0123456789*/-,@ \tJANFEBMONSUNxyz";
    for (int k = 0; k < 20000; k++) {
        char buf[40];
        int n = (int)rng_below(&r, sizeof buf - 1);
        for (int i = 0; i < n; i++)
            buf[i] = (rng_below(&r, 8) == 0) ? (char)(1 + rng_below(&r, 255))
                                             : alphabet[rng_below(&r, sizeof alphabet - 1)];
        buf[n] = 0;
        char err[LD_ERR_MAX] = "";
        Cron c;
        if (cron_parse(buf, &c, err) != LD_OK)
            assert_true(err[0] != 0);
        else
            assert_true(c.minutes && c.hours && c.mdays && c.months && c.wdays);
    }
}

/* ---- zones ----------------------------------------------------------------------------------- */

static void test_tz_basics(void **state) {
    (void)state;
    TzZone *b = zone("Europe/Berlin");
    assert_string_equal(tz_name(b), "Europe/Berlin");
    assert_int_equal(tz_offset(b, utc("2026-01-15T12:00:00Z")), 3600);
    assert_int_equal(tz_offset(b, utc("2026-07-15T12:00:00Z")), 7200);
    /* the switch instants (python: 2026-03-29T01:00Z and 2026-10-25T01:00Z) */
    assert_int_equal(tz_offset(b, utc("2026-03-29T00:59:59Z")), 3600);
    assert_int_equal(tz_offset(b, utc("2026-03-29T01:00:00Z")), 7200);
    assert_int_equal(tz_offset(b, utc("2026-10-25T00:59:59Z")), 7200);
    assert_int_equal(tz_offset(b, utc("2026-10-25T01:00:00Z")), 3600);
    /* far future: the POSIX footer rule (last Sunday of March 2099 is the 29th) */
    assert_int_equal(tz_offset(b, utc("2099-03-29T00:59:59Z")), 3600);
    assert_int_equal(tz_offset(b, utc("2099-03-29T01:00:00Z")), 7200);

    int64_t inst[2];
    /* 02:30 on 2026-03-29 does not exist; on 2026-10-25 it occurs twice */
    int64_t gap = tz_days_from_civil(2026, 3, 29) * 86400 + 2 * 3600 + 1800;
    assert_int_equal(tz_local_to_utc(b, gap, inst), 0);
    assert_int_equal(tz_gap_end(b, gap), utc("2026-03-29T01:00:00Z"));
    int64_t dup = tz_days_from_civil(2026, 10, 25) * 86400 + 2 * 3600 + 1800;
    assert_int_equal(tz_local_to_utc(b, dup, inst), 2);
    assert_int_equal(inst[0], utc("2026-10-25T00:30:00Z"));
    assert_int_equal(inst[1], utc("2026-10-25T01:30:00Z"));
    int64_t plain = tz_days_from_civil(2026, 11, 29) * 86400 + 3600;
    assert_int_equal(tz_local_to_utc(b, plain, inst), 1);
    assert_int_equal(inst[0], utc("2026-11-29T00:00:00Z"));

    char iso[TZ_ISO_MAX];
    tz_format_iso(b, utc("2026-11-29T00:00:00Z"), iso);
    assert_string_equal(iso, "2026-11-29T01:00:00+01:00");
    tz_format_iso(b, utc("2026-07-01T22:30:00Z"), iso);
    assert_string_equal(iso, "2026-07-02T00:30:00+02:00");
    tz_free(b);

    TzZone *ny = zone("America/New_York");
    tz_format_iso(ny, utc("2026-11-29T06:00:00Z"), iso);
    assert_string_equal(iso, "2026-11-29T01:00:00-05:00");
    tz_free(ny);
    TzZone *k = zone("Asia/Kolkata");
    tz_format_iso(k, utc("2026-11-28T18:30:00Z"), iso);
    assert_string_equal(iso, "2026-11-29T00:00:00+05:30");
    tz_free(k);
    TzZone *u = zone("UTC");
    tz_format_iso(u, 0, iso);
    assert_string_equal(iso, "1970-01-01T00:00:00+00:00");
    tz_free(u);
}

static void test_tz_errors(void **state) {
    (void)state;
    static const struct {
        const char *name, *msg;
    } cases[] = {
        {"Europe/Berln", "unknown time zone 'Europe/Berln'"},
        {"Europe", "unknown time zone 'Europe'"},            /* a directory */
        {"zone.tab", "unknown time zone 'zone.tab'"},        /* not a TZif file */
        {"../../../etc/passwd", "unknown time zone '../../../etc/passwd'"},
        {"/etc/localtime", "unknown time zone '/etc/localtime'"},
        {"Europe/Berlin;rm", "unknown time zone 'Europe/Berlin;rm'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[LD_ERR_MAX] = "";
        TzZone *z = (TzZone *)1;
        int rc = tz_load(cases[i].name, &z, err);
        if (rc != LD_EINVAL || strcmp(err, cases[i].msg) != 0)
            fail_msg("tz_load('%s'): rc %d '%s', want '%s'", cases[i].name, rc, err,
                     cases[i].msg);
        assert_null(z);
    }
}

/* The default zone comes from $TZ, else /etc/localtime; a POSIX TZ string works too. */
static void test_tz_default(void **state) {
    (void)state;
    char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    setenv("TZ", "Europe/Berlin", 1);
    TzZone *z = zone(NULL);
    assert_string_equal(tz_name(z), "Europe/Berlin");
    tz_free(z);
    setenv("TZ", ":America/New_York", 1);
    z = zone("");
    assert_string_equal(tz_name(z), "America/New_York");
    tz_free(z);
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    z = zone(NULL);
    TzZone *b = zone("Europe/Berlin");
    /* the rule alone gives Berlin's offsets for every hour of 2026-2028 */
    for (int64_t t = utc("2026-01-01T00:00:00Z"); t < utc("2029-01-01T00:00:00Z"); t += 3600)
        if (tz_offset(z, t) != tz_offset(b, t))
            fail_msg("POSIX rule differs from Europe/Berlin at %lld", (long long)t);
    /* the resolved name loads the same zone again (it is what a schedule stores) */
    TzZone *again = zone(tz_name(z));
    assert_string_equal(tz_name(again), "CET-1CEST,M3.5.0,M10.5.0/3");
    assert_int_equal(tz_offset(again, utc("2026-07-01T00:00:00Z")), 7200);
    tz_free(again);
    tz_free(b);
    tz_free(z);
    unsetenv("TZ");
    z = zone(NULL); /* /etc/localtime or UTC: some zone with a name */
    assert_true(strlen(tz_name(z)) > 0);
    tz_free(z);
    if (old) {
        setenv("TZ", old, 1);
        free(old);
    }
}


/* Mutated copies of a real TZif file (through $TZDIR) either load or are refused; a loaded one
 * answers offsets and next fires without crashing or hanging. */
static void test_tz_fuzz(void **state) {
    (void)state;
    FILE *f = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
    if (!f)
        skip();
    unsigned char orig[8192];
    size_t n = fread(orig, 1, sizeof orig, f);
    fclose(f);
    assert_true(n > 100);
    char dir[] = "/tmp/lossd_tzfuzz_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/Fuzz", dir);
    char *old = getenv("TZDIR") ? strdup(getenv("TZDIR")) : NULL;
    setenv("TZDIR", dir, 1);
    LdRng r;
    rng_seed(&r, 7);
    Cron c;
    char err[LD_ERR_MAX];
    assert_int_equal(cron_parse("*/30 1-3 * * *", &c, err), LD_OK);
    int loaded = 0;
    for (int k = 0; k < 400; k++) {
        unsigned char buf[8192];
        memcpy(buf, orig, n);
        size_t len = n;
        int edits = 1 + (int)rng_below(&r, 4);
        for (int e = 0; e < edits; e++) {
            switch (rng_below(&r, 3)) {
            case 0: buf[rng_below(&r, (uint32_t)len)] = (unsigned char)rng_below(&r, 256); break;
            case 1: len = 1 + rng_below(&r, (uint32_t)len); break; /* truncate */
            default: buf[len - 1 - rng_below(&r, (uint32_t)(len < 60 ? len : 60))] ^= 0x20; break;
            }
        }
        FILE *w = fopen(path, "wb");
        assert_non_null(w);
        fwrite(buf, 1, len, w);
        fclose(w);
        TzZone *z = NULL;
        if (tz_load("Fuzz", &z, err) != LD_OK) {
            assert_null(z);
            continue;
        }
        loaded++;
        for (int64_t t = 1700000000; t < 1900000000; t += 86400 * 37)
            (void)tz_offset(z, t);
        (void)cron_next(&c, z, 1790000000);
        tz_free(z);
    }
    unlink(path);
    rmdir(dir);
    if (old) {
        setenv("TZDIR", old, 1);
        free(old);
    } else {
        unsetenv("TZDIR");
    }
    assert_true(loaded > 0); /* some mutations (footer letters, late bytes) still load */
}

/* ---- next fire ----------------------------------------------------------------------------- */

/* Expected values from the Python reference (brute force over UTC minutes with zoneinfo; a
 * local time in a gap never appears, and with fold == 1 it fires only for expressions whose
 * minute or hour field starts with '*'). */
static const struct {
    const char *expr, *zone, *after, *want;
} next_cases[] = {
    {"*/15 * * * *", "UTC", "2026-11-28T10:07:00Z", "2026-11-28T10:15:00+00:00"}, /* every 15 minutes */
    {"*/15 * * * *", "UTC", "2026-11-28T10:15:00Z", "2026-11-28T10:30:00+00:00"}, /* strictly after a fire time */
    {"0 * * * *", "UTC", "2026-11-28T10:00:30Z", "2026-11-28T11:00:00+00:00"}, /* hourly */
    {"@hourly", "Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00+01:00"}, /* hourly: 02:00 CEST then 02:00 CET (both passes) */
    {"*/15 * * * *", "Europe/Berlin", "2026-10-25T00:50:00Z", "2026-10-25T02:00:00+01:00"}, /* every 15 minutes through the repeated hour */
    {"0 1 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00+01:00"}, /* daily 01:00 before spring-forward */
    {"0 1 * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-30T01:00:00+02:00"}, /* daily 01:00 after spring-forward (CEST) */
    {"0 1 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T01:00:00+02:00"}, /* daily 01:00 on fall-back night (CEST) */
    {"0 1 * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", "2026-10-26T01:00:00+01:00"}, /* daily 01:00 after fall-back (CET) */
    {"30 2 * * *", "Europe/Berlin", "2026-03-28T02:00:00Z", "2026-03-30T02:30:00+02:00"}, /* 02:30 does not exist on 2026-03-29: next is 03-30 */
    {"30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T02:30:00+02:00"}, /* 02:30 on fall-back night: first pass (CEST) */
    {"30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T02:30:00+01:00"}, /* 02:30 fired once: the CET pass does not fire */
    {"*/30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00+01:00"}, /* wildcard minute: fires in the second pass too */
    {"0 1 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T01:00:00-05:00"}, /* New York daily 01:00 (EST) */
    {"0 1 * * *", "America/New_York", "2026-03-08T06:00:00Z", "2026-03-09T01:00:00-04:00"}, /* New York after spring-forward (EDT) */
    {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-09T02:30:00-04:00"}, /* New York 02:30 gap on 03-08 */
    {"30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T01:30:00-05:00"}, /* New York 01:30 fired at EDT pass; not again at EST */
    {"0 1 * * *", "UTC", "2026-11-28T01:00:00Z", "2026-11-29T01:00:00+00:00"}, /* UTC daily */
    {"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00Z", "2026-10-05T02:15:00+11:00"}, /* Lord Howe: 02:15 in the 30-minute gap on 10-04 */
    {"45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00Z", "2026-04-05T01:45:00+11:00"}, /* Lord Howe: 01:45 twice on 04-05, first pass */
    {"45 1 * * *", "Australia/Lord_Howe", "2026-04-04T14:45:00Z", "2026-04-06T01:45:00+10:30"}, /* Lord Howe: the second 01:45 does not fire */
    {"0 0 13 * FRI", "UTC", "2026-11-28T00:00:00Z", "2026-12-04T00:00:00+00:00"}, /* dom OR dow: next Friday */
    {"0 0 13 * FRI", "UTC", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00+00:00"}, /* dom OR dow: the 13th (a Sunday) */
    {"0 0 */2 * MON", "UTC", "2026-11-28T00:00:00Z", "2026-12-07T00:00:00+00:00"}, /* dom starts with *: dom AND dow (odd-day Mondays) */
    {"0 0 29 2 *", "UTC", "2026-11-28T00:00:00Z", "2028-02-29T00:00:00+00:00"}, /* Feb 29: next leap year */
    {"0 0 29 2 *", "UTC", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00+00:00"}, /* Feb 29: then 2032 */
    {"@weekly", "Europe/Berlin", "2026-11-28T12:00:00Z", "2026-11-29T00:00:00+01:00"}, /* weekly: Sunday 00:00 local */
    {"@monthly", "America/New_York", "2026-11-28T12:00:00Z", "2026-12-01T00:00:00-05:00"}, /* monthly */
    {"@yearly", "Asia/Kolkata", "2026-11-28T12:00:00Z", "2027-01-01T00:00:00+05:30"}, /* yearly, +05:30 */
    {"0 9 * jun-Aug MON", "Europe/Berlin", "2026-11-28T12:00:00Z", "2027-06-07T09:00:00+02:00"}, /* month names and day names, mixed case */
    {"0 0 * * 7", "UTC", "2026-11-28T12:00:00Z", "2026-11-29T00:00:00+00:00"}, /* day-of-week 7 is Sunday */
    {"0 0 * * 5-7", "UTC", "2026-11-28T12:00:00Z", "2026-11-29T00:00:00+00:00"}, /* day-of-week range 5-7 includes Sunday */
    {"10-50/10 2 * * *", "UTC", "2026-11-28T02:35:00Z", "2026-11-28T02:40:00+00:00"}, /* range with step */
    {"0 1 * * *", "Europe/Berlin", "2026-12-02T10:00:00Z", "2026-12-03T01:00:00+01:00"}, /* wall clock jumped 3 days forward: next future fire, no backlog */
    {"0 0 * * *", "America/Santiago", "2026-09-05T12:00:00Z", "2026-09-07T00:00:00-03:00"}, /* Santiago: midnight does not exist on 09-06 */
    {"0 1 * * *", "Europe/Berlin", "2050-03-26T12:00:00Z", "2050-03-27T01:00:00+01:00"}, /* far future: POSIX footer rule (spring) */
    {"30 2 * * *", "Europe/Berlin", "2050-10-29T12:00:00Z", "2050-10-30T02:30:00+02:00"}, /* far future: footer rule, fall-back first pass */
    {"0 1 * * *", "Australia/Sydney", "2026-10-03T12:00:00Z", "2026-10-04T01:00:00+10:00"}, /* southern hemisphere */
    {"*/15 * * * *", "Pacific/Chatham", "2026-04-04T13:50:00Z", "2026-04-05T02:45:00+12:45"}, /* Chatham +13:45 -> +12:45: wildcard fires in the second pass */
};

static void test_next_table(void **state) {
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof next_cases / sizeof next_cases[0]; i++) {
        char err[LD_ERR_MAX];
        Cron c;
        if (cron_parse(next_cases[i].expr, &c, err) != LD_OK)
            fail_msg("'%s': %s", next_cases[i].expr, err);
        TzZone *z = zone(next_cases[i].zone);
        int64_t t = cron_next(&c, z, utc(next_cases[i].after));
        char iso[TZ_ISO_MAX] = "(none)";
        if (t >= 0)
            tz_format_iso(z, t, iso);
        if (strcmp(iso, next_cases[i].want) != 0) {
            print_error("'%s' in %s after %s: got %s, want %s\n", next_cases[i].expr,
                        next_cases[i].zone, next_cases[i].after, iso, next_cases[i].want);
            bad++;
        }
        tz_free(z);
    }
    assert_int_equal(bad, 0);
}

/* Random instants within six hours of the 2026-2028 DST changes of ten zones (Chatham's
 * 45-minute offsets, Lord Howe's 30-minute DST, Santiago's midnight changes, St Johns' -3:30),
 * answers from the same Python reference. */
static const struct {
    const char *expr, *zone;
    int64_t after, want;
} random_cases[] = {
    {"15 3 * * *", "Europe/Berlin", 1774761457, 1774833300},
    {"*/7 1-3 * * *", "Europe/Berlin", 1792909728, 1792972800},
    {"0 */2 * * *", "Europe/Berlin", 1806180385, 1806181200},
    {"0 0 * * 7", "Europe/Berlin", 1792900933, 1793487600},
    {"0 12 1 * *", "Europe/Berlin", 1792884397, 1793530800},
    {"0 * * * *", "America/New_York", 1830858001, 1830859200},
    {"30 2 * * *", "America/New_York", 1772951890, 1773037800},
    {"10-50/10 2 * * MON-FRI", "America/New_York", 1804986268, 1805091000},
    {"15 3 * * *", "UTC", 1849644544, 1849662900},
    {"*/7 1-3 * * *", "UTC", 1801083062, 1801098000},
    {"* 2 * * *", "UTC", 1831465149, 1831514400},
    {"* 2 * * *", "UTC", 1860111887, 1860112800},
    {"0 12 1 * *", "UTC", 1859844903, 1861963200},
    {"*/7 1-3 * * *", "Australia/Lord_Howe", 1775308066, 1775311200},
    {"*/20 0-3 * * 6,0", "Australia/Lord_Howe", 1822479790, 1822483800},
    {"*/20 0-3 * * 6,0", "Australia/Lord_Howe", 1828718926, 1829048400},
    {"0 * * * *", "Australia/Sydney", 1791056453, 1791057600},
    {"0 2 * * SUN", "Australia/Sydney", 1775325848, 1775923200},
    {"* 2 * * *", "Australia/Sydney", 1802067487, 1802098800},
    {"30 2 * * *", "America/Santiago", 1818811453, 1818829800},
    {"15 3 * * *", "Asia/Kolkata", 1813222636, 1813268700},
    {"0 0 13 * FRI", "Asia/Kolkata", 1821543206, 1821724200},
    {"0 0 * * 7", "Asia/Kolkata", 1799734869, 1800124200},
    {"10-50/10 2 * * MON-FRI", "Asia/Kolkata", 1773297273, 1773348000},
    {"0 12 1 * *", "Asia/Kolkata", 1827063166, 1827642600},
    {"0 0 * * *", "Asia/Kolkata", 1802557486, 1802629800},
    {"*/7 1-3 * * *", "Pacific/Chatham", 1819505615, 1819541700},
    {"* 2 * * *", "Pacific/Chatham", 1781307250, 1781356500},
    {"*/15 * * * *", "Europe/London", 1792873477, 1792873800},
    {"*/15 * * * *", "Europe/London", 1837633261, 1837633500},
    {"0 * * * *", "Europe/London", 1856392350, 1856394000},
    {"0 * * * *", "Europe/London", 1850595042, 1850598000},
    {"30 2 * * *", "Europe/London", 1774756015, 1774834200},
    {"0 0 1,15 * 3", "Europe/London", 1837628606, 1837897200},
    {"15 3 * * *", "America/St_Johns", 1825582299, 1825656300},
    {"*/7 1-3 * * *", "America/St_Johns", 1841059872, 1841110200},
    {"45 1,2,3 * * *", "America/St_Johns", 1805025183, 1805084100},
    {"0 2 * * SUN", "America/St_Johns", 1825584991, 1826170200},
    {"30 1 * * *", "America/St_Johns", 1803496578, 1803531600},
    {"0 0 1,15 * 3", "America/St_Johns", 1804990649, 1805077800},
};

static void test_next_random(void **state) {
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof random_cases / sizeof random_cases[0]; i++) {
        char err[LD_ERR_MAX];
        Cron c;
        if (cron_parse(random_cases[i].expr, &c, err) != LD_OK)
            fail_msg("'%s': %s", random_cases[i].expr, err);
        TzZone *z = zone(random_cases[i].zone);
        int64_t t = cron_next(&c, z, random_cases[i].after);
        if (t != random_cases[i].want) {
            print_error("'%s' in %s after %lld: got %lld, want %lld\n", random_cases[i].expr,
                        random_cases[i].zone, (long long)random_cases[i].after, (long long)t,
                        (long long)random_cases[i].want);
            bad++;
        }
        tz_free(z);
    }
    assert_int_equal(bad, 0);
}

/* The next five nightly runs across the October change: 01:00 local every night. */
static void test_next_n(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Cron c;
    assert_int_equal(cron_parse("0 1 * * *", &c, err), LD_OK);
    TzZone *z = zone("Europe/Berlin");
    int64_t t[5];
    assert_int_equal(cron_next_n(&c, z, utc("2026-10-23T12:00:00Z"), 5, t), 5);
    static const char *want[5] = {"2026-10-24T01:00:00+02:00", "2026-10-25T01:00:00+02:00",
                                  "2026-10-26T01:00:00+01:00", "2026-10-27T01:00:00+01:00",
                                  "2026-10-28T01:00:00+01:00"};
    for (int i = 0; i < 5; i++) {
        char iso[TZ_ISO_MAX];
        tz_format_iso(z, t[i], iso);
        assert_string_equal(iso, want[i]);
    }
    /* the night of the change is 25 hours long in real time */
    assert_int_equal(t[2] - t[1], 25 * 3600);
    tz_free(z);
}

/* The daemon computed the next fire, then the machine slept three days: asking again from the
 * new wall-clock time gives the next future fire, not the three missed ones. */
static void test_clock_jump(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Cron c;
    assert_int_equal(cron_parse("0 1 * * *", &c, err), LD_OK);
    TzZone *z = zone("Europe/Berlin");
    int64_t before = utc("2026-11-28T12:00:00Z");
    int64_t next = cron_next(&c, z, before);
    assert_int_equal(next, utc("2026-11-29T00:00:00Z"));
    int64_t woke = before + 3 * 86400;
    int64_t after = cron_next(&c, z, woke);
    assert_true(after > woke);
    assert_int_equal(after, utc("2026-12-02T00:00:00Z"));
    /* and a jump backwards by an hour after a fire does not make the same fire come again
     * when the caller keeps asking from the last fire (schedule.c does) */
    assert_int_equal(cron_next(&c, z, next), utc("2026-11-30T00:00:00Z"));
    tz_free(z);
}

/* Every fire cron_next_n returns matches the expression on the local clock, a year long. */
static void test_next_consistent(void **state) {
    (void)state;
    static const char *exprs[] = {"*/15 * * * *", "30 2 * * *", "0 0 13 * FRI", "5 4 * * SUN"};
    static const char *zones[] = {"Europe/Berlin", "Australia/Lord_Howe", "America/New_York"};
    for (size_t e = 0; e < 4; e++) {
        for (size_t k = 0; k < 3; k++) {
            char err[LD_ERR_MAX];
            Cron c;
            assert_int_equal(cron_parse(exprs[e], &c, err), LD_OK);
            TzZone *z = zone(zones[k]);
            int64_t t = utc("2026-01-01T00:00:00Z"), end = utc("2027-01-01T00:00:00Z");
            int n = 0;
            while (t < end && n < 40000) {
                int64_t nx = cron_next(&c, z, t);
                assert_true(nx > t);
                TzCivil lc;
                tz_civil(tz_local(z, nx), &lc);
                if (!(c.minutes >> lc.min & 1) || !(c.hours >> lc.hour & 1) || lc.sec != 0)
                    fail_msg("%s in %s: fire at %lld is not a match", exprs[e], zones[k],
                             (long long)nx);
                t = nx;
                n++;
            }
            assert_true(n > 10);
            tz_free(z);
        }
    }
}


/* Zones are immutable after tz_load: two threads computing fires in different zones at once
 * get what one thread gets (the reason for not using setenv("TZ") + localtime). */
typedef struct ThreadArg {
    const TzZone *z;
    const Cron *c;
    int64_t out[200];
} ThreadArg;

static void *fire_thread(void *p) {
    ThreadArg *a = p;
    cron_next_n(a->c, a->z, 1790000000, 200, a->out);
    return NULL;
}

/* Instants far outside years 1-9999 (a hostile fake clock) give -1, not signed overflow (the
 * sanitizer build runs this). */
static void test_next_extreme_times(void **state) {
    char err[LD_ERR_MAX];
    Cron c;
    assert_int_equal(cron_parse("*/5 * * * *", &c, err), LD_OK);
    TzZone *z = zone("Europe/Berlin");
    static const int64_t bad[] = {INT64_MAX, INT64_MAX - 1, INT64_MIN, CRON_TIME_MAX + 1,
                                  CRON_TIME_MIN - 1, (int64_t)9223372036854775000LL};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(cron_next(&c, z, bad[i]), -1);
    int64_t out[3];
    assert_int_equal(cron_next_n(&c, z, INT64_MAX, 3, out), 0);
    /* the edges themselves still work */
    assert_true(cron_next(&c, z, utc("9999-12-30T00:00:00Z")) > 0);
    tz_free(z);
}

static void test_threads(void **state) {
    (void)state;
    char err[LD_ERR_MAX];
    Cron c;
    assert_int_equal(cron_parse("*/20 0-3 * * *", &c, err), LD_OK);
    TzZone *b = zone("Europe/Berlin"), *ny = zone("America/New_York");
    static ThreadArg a[4];
    for (int i = 0; i < 4; i++) {
        a[i].z = i % 2 ? ny : b;
        a[i].c = &c;
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fire_thread, &a[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int64_t ref[200];
    for (int i = 0; i < 4; i++) {
        cron_next_n(&c, a[i].z, 1790000000, 200, ref);
        assert_memory_equal(ref, a[i].out, sizeof ref);
    }
    assert_true(memcmp(a[0].out, a[1].out, sizeof ref) != 0); /* the zones differ */
    tz_free(b);
    tz_free(ny);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),  cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_fuzz),   cmocka_unit_test(test_tz_basics),
        cmocka_unit_test(test_tz_errors),    cmocka_unit_test(test_tz_default),     cmocka_unit_test(test_tz_fuzz),
        cmocka_unit_test(test_next_table),   cmocka_unit_test(test_next_random),
        cmocka_unit_test(test_next_n),       cmocka_unit_test(test_clock_jump),
        cmocka_unit_test(test_next_consistent), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_next_extreme_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
