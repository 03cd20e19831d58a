/* fuzz_npy.c: the .npy reader (data_parse_npy, in memory). The first byte chooses the expected
 * dimensions (1 or 2); an accepted array must have the shape it reports, every value finite. */
#include <math.h>
#include <stdio.h>

#include "../../evaluator/internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[LD_ERR_MAX];
    if (size < 1) return 0;
    int ndim = 1 + (data[0] & 1);
    float *v = NULL;
    int rows = 0, cols = 0;
    char *buf = fuzz_cstr(data + 1, size - 1);
    if (!buf) return 0;
    if (data_parse_npy("fuzz.npy", buf, size - 1, ndim, &v, &rows, &cols, err) == LD_OK) {
        if (rows <= 0 || cols <= 0 || (ndim == 1 && cols != 1)) {
            fprintf(stderr, "accepted shape %d x %d for %d-D\n", rows, cols, ndim);
            abort();
        }
        for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
            if (!isfinite(v[i])) abort();
        free(v);
    }
    free(buf);
    return 0;
}
