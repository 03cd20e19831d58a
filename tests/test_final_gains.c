/* test_final_gains.c: the final checks' gains side by side (storage/leaderboard.c,
 * store_final_gains): from the engine's final comparison of a candidate, the gain over the
 * baseline at the search's recipe and at the user's horizon, each with its 95% interval and
 * verdict, the panel's when there is one, and the label saying whether the gain holds at the
 * horizon: holds, vanishes, reverses or no gain. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../storage/store.h"

/* A search.c final comparison: {"vs_baseline": {mean_diff, n, ci95, verdict}, "horizon": {...}}. */
static cJSON *final_of(double sm, double slo, double shi, const char *sv, double hm, double hlo,
                       double hhi, const char *hv) {
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "{\"on\":\"holdout\",\"vs_baseline\":{\"n\":6,\"mean_diff\":%.17g,\"ci95\":[%.17g,%.17g],"
                     "\"verdict\":\"%s\"}",
                     sm, slo, shi, sv);
    if (hv)
        snprintf(text + n, sizeof text - (size_t)n,
                 ",\"horizon\":{\"steps\":[4000],\"model\":{\"hidden\":[256,256]},\"vs_baseline\":"
                 "{\"n\":5,\"mean_diff\":%.17g,\"ci95\":[%.17g,%.17g],\"verdict\":\"%s\"}}}",
                 hm, hlo, hhi, hv);
    else
        snprintf(text + n, sizeof text - (size_t)n, "}");
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    return j;
}

static const char *label_of(const cJSON *fin, cJSON **entry) {
    *entry = cJSON_CreateObject();
    store_final_gains(*entry, fin);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(*entry, "gains");
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(g, "label"));
}

static void test_labels(void **state) {
    (void)state;
    static const struct {
        const char *sv, *hv, *want;
    } cases[] = {
        {"better", "better", "holds"},
        {"better", "within noise", "vanishes"},
        {"better", "worse", "reverses"},
        {"within noise", "within noise", "no gain"},
        {"within noise", "better", "holds"},
        {"worse", "within noise", "no gain"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *e = NULL, *fin = final_of(0.02, 0.01, 0.03, cases[i].sv, 0.001, -0.01, 0.012, cases[i].hv);
        const char *got = label_of(fin, &e);
        if (!got || strcmp(got, cases[i].want))
            fail_msg("search %s, horizon %s: label %s (want %s)", cases[i].sv, cases[i].hv,
                     got ? got : "(none)", cases[i].want);
        cJSON_Delete(e);
        cJSON_Delete(fin);
    }
}

static void test_side_by_side(void **state) {
    (void)state;
    cJSON *e = NULL, *fin = final_of(0.0231, 0.0102, 0.036, "better", -0.004, -0.02, 0.012, "within noise");
    label_of(fin, &e);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(e, "gains");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(g, "search");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(g, "horizon");
    assert_non_null(s);
    assert_non_null(h);
    double sm = cJSON_GetObjectItemCaseSensitive(s, "mean")->valuedouble;
    double hm = cJSON_GetObjectItemCaseSensitive(h, "mean")->valuedouble;
    double lo = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(h, "ci95"), 0)->valuedouble;
    if (fabs(sm - 0.0231) > 1e-12 || fabs(hm + 0.004) > 1e-12 || fabs(lo + 0.02) > 1e-12)
        fail_msg("search mean %g (want 0.0231), horizon mean %g (want -0.004), its low %g (want -0.02)",
                 sm, hm, lo);
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(h, "steps");
    if (cJSON_GetArraySize(steps) != 1 || cJSON_GetArrayItem(steps, 0)->valuedouble != 4000 ||
        !cJSON_GetObjectItemCaseSensitive(h, "model"))
        fail_msg("the horizon gain does not carry its recipe (steps 4000, the model)");
    cJSON_Delete(e);
    cJSON_Delete(fin);

    /* no horizon check (final.horizon false): the search's gain alone, no label */
    fin = final_of(0.01, -0.002, 0.02, "within noise", 0, 0, 0, NULL);
    const char *lab = label_of(fin, &e);
    g = cJSON_GetObjectItemCaseSensitive(e, "gains");
    if (lab || cJSON_GetObjectItemCaseSensitive(g, "horizon") || !cJSON_GetObjectItemCaseSensitive(g, "search"))
        fail_msg("without a horizon: label %s, gains %s", lab ? lab : "(none)", cJSON_PrintUnformatted(g));
    cJSON_Delete(e);
    cJSON_Delete(fin);

    /* not a comparison at all: nothing added */
    fin = cJSON_Parse("{\"on\":\"holdout\"}");
    e = cJSON_CreateObject();
    store_final_gains(e, fin);
    if (cJSON_GetObjectItemCaseSensitive(e, "gains")) fail_msg("gains from a final without a comparison");
    cJSON_Delete(e);
    cJSON_Delete(fin);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_side_by_side),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
