/* fuzz_job.c: the job and task parsers: a JSON document through job_parse (every problem
 * collected, defaults filled in, tasks loaded), and, when it is an object with "data", through
 * task_load on its own. The built-in data sets are replaced by 40-row samples of the shipped
 * ones ($LOSSD_DATA points at a temporary folder), so loading costs microseconds; relative paths
 * resolve inside that folder. */
#include <stdio.h>
#include <unistd.h>

#include "../../evaluator/eval.h"
#include "../../daemon/engine.h"
#include "../../search/search.h"
#include "fuzz.h"

static char dir[256];

/* Writes the header and about 40 evenly spaced rows of LOSSD_DATADIR/name.csv into dir. */
static void sample(const char *name) {
    char src[512], dst[512], err[LD_ERR_MAX];
    snprintf(src, sizeof src, "%s/%s.csv", LOSSD_DATADIR, name);
    snprintf(dst, sizeof dst, "%s/%s.csv", dir, name);
    size_t len = 0;
    char *text = ld_read_file(src, &len, err);
    if (!text) {
        fprintf(stderr, "fuzz_job: %s\n", err);
        abort();
    }
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    int step = lines / 40 > 1 ? lines / 40 : 1, k = 0;
    FILE *f = fopen(dst, "w");
    if (!f) abort();
    for (char *p = text, *nl; p < text + len; p = nl + 1, k++) {
        nl = strchr(p, '\n');
        if (!nl) nl = text + len;
        if (k == 0 || k % step == 0) fprintf(f, "%.*s\n", (int)(nl - p), p);
    }
    fclose(f);
    free(text);
}

static const char *const names[] = {"digits", "wine", "breast_cancer", "diabetes"};

static void cleanup(void) {
    char p[512];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s.csv", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/lossd-fuzz-job.XXXXXX");
    if (!mkdtemp(dir)) abort();
    for (int i = 0; i < 4; i++) sample(names[i]);
    atexit(cleanup);
    setenv("LOSSD_DATA", dir, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[LD_ERR_MAX];
    if (size > 1 << 16) return 0;
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j) return 0;
    SearchJob *job = NULL;
    if (job_parse(j, dir, engine_env(), &job, err) == LD_OK) {
        cJSON *n = job_json(job);
        /* the normalised job parses again (a restart reloads it) */
        SearchJob *again = NULL;
        if (n && job_parse(n, dir, engine_env(), &again, err) != LD_OK) {
            char *t = cJSON_PrintUnformatted(n);
            fprintf(stderr, "normalised job does not parse again: %s\n%s\n", err, t ? t : "");
            abort();
        }
        job_free(again);
        cJSON_Delete(n);
        job_free(job);
    }
    if (cJSON_IsObject(j) && cJSON_GetObjectItemCaseSensitive(j, "data")) {
        Task *t = NULL;
        if (task_load(j, dir, &t, err) == LD_OK) {
            cJSON *spec = task_spec(t);
            cJSON_Delete(spec);
            task_free(t);
        }
    }
    cJSON_Delete(j);
    return 0;
}
