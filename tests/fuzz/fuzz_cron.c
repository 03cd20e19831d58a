/* fuzz_cron.c: the cron parser; an accepted expression must fire in UTC (cron_parse refuses
 * those that never can), and its next fires, in UTC and in a zone with daylight saving, must be
 * strictly increasing. */
#include <stdio.h>

#include "../../daemon/cron.h"
#include "fuzz.h"

static TzZone *utc, *berlin;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char err[LD_ERR_MAX];
    (void)argc;
    (void)argv;
    if (tz_load("UTC", &utc, err) != LD_OK || tz_load("Europe/Berlin", &berlin, err) != LD_OK) {
        fprintf(stderr, "fuzz_cron: %s (tzdata installed?)\n", err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[LD_ERR_MAX];
    if (size > 4096) return 0;
    char *s = fuzz_cstr(data, size);
    if (!s) return 0;
    Cron c;
    if (cron_parse(s, &c, err) == LD_OK) {
        const TzZone *zones[2] = {utc, berlin};
        for (int z = 0; z < 2; z++) {
            int64_t at[4];
            /* 2026-03-29 00:30 UTC: Berlin springs forward that night */
            int n = cron_next_n(&c, zones[z], 1774744200, 4, at);
            /* In UTC every parsed expression fires; in a zone with daylight saving one may
             * name only times inside its gaps (02:02 on 31 March when a Sunday, in Berlin), which
             * schedule_validate refuses. */
            if (n < 1 && z == 0) {
                fprintf(stderr, "'%s' parses but never fires in UTC\n", s);
                abort();
            }
            for (int i = 1; i < n; i++)
                if (at[i] <= at[i - 1]) {
                    fprintf(stderr, "'%s': fire %d not after fire %d\n", s, i, i - 1);
                    abort();
                }
            (void)cron_fires_at_time(&c, 7, 0);
        }
    }
    free(s);
    return 0;
}
