/* driver.c: runs a fuzz harness's LLVMFuzzerTestOneInput over files, without libFuzzer: each
 * argument is a file or a folder of files (a seed corpus), fed once each. `make test` builds
 * every harness with this driver, with the regular compiler and the sanitizers, and runs it over
 * tests/fuzz/corpus/NAME (tests/test_fuzz_corpus.sh). Prints one line per input it ran and a
 * closing "N inputs" line; a crash or a sanitizer report ends it with a non-zero status. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "driver: %s: cannot open\n", path);
        return -1;
    }
    size_t cap = 4096, len = 0, r;
    uint8_t *buf = malloc(cap);
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "driver: %s: out of memory\n", path);
        return -1;
    }
    /* an exact-size copy, so a read past the input is caught as libFuzzer would catch it */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    printf("run %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int n = 0, bad = 0;
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "driver: %s: no such file or folder\n", argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += run_file(argv[i]) != 0;
            n++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            bad++;
            continue;
        }
        char **names = NULL;
        size_t nn = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            if (nn == cap) {
                cap = cap ? cap * 2 : 64;
                char **nb = realloc(names, cap * sizeof *names);
                if (!nb) break;
                names = nb;
            }
            size_t l = strlen(argv[i]) + strlen(e->d_name) + 2;
            names[nn] = malloc(l);
            if (!names[nn]) break;
            snprintf(names[nn], l, "%s/%s", argv[i], e->d_name);
            nn++;
        }
        closedir(d);
        qsort(names, nn, sizeof *names, cmp);
        for (size_t k = 0; k < nn; k++) {
            bad += run_file(names[k]) != 0;
            n++;
            free(names[k]);
        }
        free(names);
    }
    printf("%d inputs, %d unreadable\n", n, bad);
    return bad ? 1 : 0;
}
