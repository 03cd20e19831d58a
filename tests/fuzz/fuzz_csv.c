/* fuzz_csv.c: the CSV reader (data_parse_csv, in memory) and, when a table comes out, the split
 * and standardisation (data_prepare), which must leave every feature finite. The first byte
 * chooses the options: bit 0 classification, bits 1-2 the missing-value mode, bit 3 the label
 * column by name ("y") instead of the last one. */
#include <math.h>
#include <stdio.h>

#include "../../evaluator/internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[LD_ERR_MAX];
    if (size < 1 || size > 1 << 18) return 0;
    int opt = data[0], classify = opt & 1, missing = (opt >> 1) % 3;
    const char *label = (opt & 8) ? "y" : NULL;
    char *buf = fuzz_cstr(data + 1, size - 1);
    if (!buf) return 0;
    Table tab;
    if (data_parse_csv("fuzz.csv", buf, size - 1, label, classify, missing, &tab, err) == LD_OK) {
        if (tab.n <= 0 || tab.d <= 0 || (classify && tab.nclass < 2)) {
            fprintf(stderr, "accepted a table of %d rows, %d features, %d classes\n", tab.n, tab.d, tab.nclass);
            abort();
        }
        Task *t = calloc(1, sizeof *t);
        DataPrep p = {.val = 0.2, .test = 0.2, .seed = 1, .imbalance = 1, .subsample = 1};
        if (t && data_prepare(&tab, classify, &p, t, err) == LD_OK) {
            const Dataset *sp[3] = {&t->train, &t->val, &t->test};
            for (int s = 0; s < 3; s++)
                for (size_t i = 0; i < (size_t)sp[s]->n * (size_t)sp[s]->d; i++)
                    if (!isfinite(sp[s]->x[i])) {
                        fprintf(stderr, "split %d: feature %zu is %g after standardisation\n", s, i,
                                (double)sp[s]->x[i]);
                        abort();
                    }
            dataset_free(&t->train);
            dataset_free(&t->val);
            dataset_free(&t->test);
        }
        free(t);
        table_free(&tab);
    }
    free(buf);
    return 0;
}
