/* fuzz.h: what the fuzz harnesses share: libFuzzer's entry points (declared, for the strict
 * prototype warnings) and a NUL-terminated copy of an input. Each harness is one file,
 * tests/fuzz/fuzz_NAME.c, with its seed corpus in tests/fuzz/corpus/NAME/; `make fuzz` links it
 * with libFuzzer, `make test` with driver.c. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An owned copy of data with a NUL after it (NULL when out of memory). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return NULL;
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
