/* test_work.c: work items and outcomes round-trip through JSON field for field (the form a
 * remote worker's queue carries), status names, and malformed input named by field. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../common/work.h"

static char *text_of(cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void test_item_round_trip(void **state) {
    (void)state;
    WorkItem w, back;
    memset(&w, 0, sizeof w);
    w.job_id = 42;
    w.seq = 9007199254740000LL;
    w.cand = 17;
    w.task = 3;
    w.task_hash = 0xfedcba9876543210ULL;
    w.seed = UINT64_MAX; /* not exact as a JSON number: travels as a string */
    w.steps = 2000000;
    w.precheck = 1;
    w.precheck_outputs = 10;
    snprintf(w.precision, sizeof w.precision, "bf16");
    snprintf(w.expr, sizeof w.expr, "0.7*ce + 0.3*focal(2)");
    w.nstop = 4; /* an early-stopping bar: NaN (no check) travels as null, floats exactly */
    w.stop_points = 2;
    w.stop_higher = 1;
    w.stop_bar[0] = w.stop_bar[3] = NAN;
    w.stop_bar[1] = 0.5f;
    w.stop_bar[2] = 1.0f / 3.0f;
    char *t = text_of(work_item_json(&w));
    cJSON *j = cJSON_Parse(t);
    char err[LD_ERR_MAX] = "";
    if (work_item_from_json(j, &back, err) != LD_OK) fail_msg("from_json: %s (%s)", err, t);
    cJSON_Delete(j);
    if (memcmp(&w, &back, sizeof w) != 0) fail_msg("round trip differs: %s", t);
    printf("# %s\n", t);
    free(t);

    /* a wrong field is named */
    j = cJSON_Parse("{\"job_id\":1,\"seq\":0,\"cand\":0,\"task\":0,\"task_hash\":\"zz\","
                    "\"seed\":\"1\",\"steps\":5,\"precheck\":false,\"precheck_outputs\":0,"
                    "\"precision\":\"\",\"expr\":\"ce\"}");
    assert_int_equal(work_item_from_json(j, &back, err), LD_EINVAL);
    assert_non_null(strstr(err, "task_hash"));
    cJSON_Delete(j);
    j = cJSON_Parse("{\"job_id\":1,\"seq\":0,\"cand\":0,\"task\":0,\"task_hash\":\"1\","
                    "\"seed\":\"18446744073709551616\",\"steps\":5,\"precheck\":false,"
                    "\"precheck_outputs\":0,\"precision\":\"\",\"expr\":\"ce\"}");
    assert_int_equal(work_item_from_json(j, &back, err), LD_EINVAL);
    assert_non_null(strstr(err, "seed"));
    cJSON_Delete(j);
}

static void test_outcome_round_trip(void **state) {
    (void)state;
    for (int s = WORK_OK; s <= WORK_CANCELLED; s++) {
        WorkOutcome o, back;
        memset(&o, 0, sizeof o);
        o.job_id = 7;
        o.seq = 123;
        o.status = (WorkStatus)s;
        EvalResult *r = &o.res;
        r->ok = s == WORK_OK;
        r->stopped = s == WORK_FAILED;
        snprintf(r->error, sizeof r->error, "%s", s == WORK_OK ? "" : "non-finite loss at step 37");
        snprintf(r->metric, sizeof r->metric, "accuracy");
        r->val = s == WORK_OK ? 0.1 + 0.2 : NAN; /* 0.30000000000000004 must survive */
        r->test = s == WORK_OK ? 1.0 / 3.0 : NAN;
        r->steps = 200;
        r->wall_ms = 12.5;
        r->final_loss = 0.123456789012345678;
        r->ncurve = 2;
        r->curve[0] = (EvalCurvePoint){10, 2.25f, 0.5f};
        r->curve[1] = (EvalCurvePoint){200, 0.1f, 0.9f};
        r->nextra = 1;
        snprintf(r->extra[0].name, sizeof r->extra[0].name, "macro_f1");
        r->extra[0].val = 0.8;
        r->extra[0].test = 0.7;
        char *t = text_of(work_outcome_json(&o));
        cJSON *j = cJSON_Parse(t);
        char err[LD_ERR_MAX] = "";
        if (work_outcome_from_json(j, &back, err) != LD_OK) fail_msg("from_json: %s (%s)", err, t);
        cJSON_Delete(j);
        assert_int_equal(back.status, o.status);
        assert_int_equal(back.res.ok, o.res.ok);
        assert_int_equal(back.res.stopped, o.res.stopped);
        assert_int_equal(back.seq, 123);
        assert_string_equal(back.res.error, o.res.error);
        if (s == WORK_OK) {
            assert_true(back.res.val == r->val);
            assert_true(back.res.test == r->test);
        } else {
            assert_true(isnan(back.res.val) && isnan(back.res.test));
        }
        assert_true(back.res.final_loss == r->final_loss);
        assert_int_equal(back.res.ncurve, 2);
        assert_true(back.res.curve[1].loss == 0.1f && back.res.curve[1].step == 200);
        assert_int_equal(back.res.nextra, 1);
        assert_string_equal(back.res.extra[0].name, "macro_f1");
        if (s == WORK_OK) printf("# %s\n", t);
        free(t);
    }
    WorkStatus st;
    assert_int_equal(work_status_parse("rejected", &st), LD_OK);
    assert_int_equal(st, WORK_REJECTED);
    assert_string_equal(work_status_name(WORK_CANCELLED), "cancelled");
    assert_int_equal(work_status_parse("rejected before training", &st), LD_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_item_round_trip),
        cmocka_unit_test(test_outcome_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
