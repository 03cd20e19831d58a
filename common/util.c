/* util.c: the shared helpers declared in lossd.h. */
#include "lossd.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LOSSD_DATADIR
#define LOSSD_DATADIR "data"
#endif

int ld_err(char *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, LD_ERR_MAX, fmt, ap);
        va_end(ap);
    }
    return code;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(LdRng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(LdRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(LdRng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

float rng_normal(LdRng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t rng_below(LdRng *r, uint32_t n) {
    /* Lemire's multiply-shift; the tiny bias is irrelevant at our n. */
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

uint64_t ld_mix64(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
    return splitmix64(&x);
}

uint64_t ld_hash64(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return splitmix64(&h);
}

double ld_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double ld_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int arena_init(LdArena *a, size_t cap) {
    a->used = 0;
    a->cap = (cap + 63) & ~(size_t)63;
    a->base = aligned_alloc(64, a->cap ? a->cap : 64);
    if (!a->base) return LD_ENOMEM;
    memset(a->base, 0, a->cap);
    return LD_OK;
}

void *arena_alloc(LdArena *a, size_t n) {
    size_t need = (n + 63) & ~(size_t)63;
    if (need > a->cap - a->used) return NULL;
    void *p = a->base + a->used;
    a->used += need;
    return p;
}

void arena_reset(LdArena *a) {
    memset(a->base, 0, a->used);
    a->used = 0;
}

void arena_free(LdArena *a) {
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

char *ld_read_file(const char *path, size_t *len, char *err) {
    /* O_NONBLOCK: opening a FIFO named x.csv must not wait for a writer (the daemon's loop
     * calls this); the type is checked before anything is read */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    char *buf = NULL;
    if (!f) {
        ld_err(err, LD_EIO, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) goto fail;
    if (!S_ISREG(st.st_mode)) {
        ld_err(err, LD_EIO, "%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    if (st.st_size > LD_FILE_MAX) {
        ld_err(err, LD_EINVAL, "%s: %lld bytes, more than the %d MiB a file may have", path,
               (long long)st.st_size, LD_FILE_MAX >> 20);
        fclose(f);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0) goto fail;
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) goto fail;
    buf = malloc((size_t)n + 1);
    if (!buf) {
        ld_err(err, LD_ENOMEM, "%s: out of memory reading %ld bytes", path, n);
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) goto fail;
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
fail:
    ld_err(err, LD_EIO, "%s: cannot read: %s", path, strerror(errno));
    free(buf);
    fclose(f);
    return NULL;
}

const char *ld_data_dir(void) {
    const char *d = getenv("LOSSD_DATA");
    return (d && *d) ? d : LOSSD_DATADIR;
}

/* Line and column (1-based) of p in text. */
static void json_line_col(const char *text, const char *p, int *line, int *col) {
    *line = *col = 1;
    for (const char *q = text; *q && q < p; q++) {
        if (*q == '\n') (*line)++, *col = 1;
        else (*col)++;
    }
}

static int json_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void ld_json_error(const char *text, const char *at, char *out, size_t n) {
    int depth_obj = 0, depth_arr = 0, in_str = 0, line, col;
    const char *p, *last = NULL, *str_start = NULL; /* last non-blank before at */
    char why[112];
    if (!at || at < text) at = text;
    /* a trailing comma anywhere up to where the parser stopped is the likeliest culprit (cJSON
     * may stop after it) */
    for (p = text; *p && p <= at; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_str = 0;
            continue;
        }
        if (*p == '"') {
            in_str = 1;
            str_start = p;
        } else if (*p == ',') {
            const char *q = p + 1;
            while (json_blank(*q)) q++;
            if (*q == '}' || *q == ']') {
                json_line_col(text, p, &line, &col);
                snprintf(out, n, "%d:%d: not valid JSON: a comma before '%c' (JSON has no trailing "
                                 "commas)", line, col, *q);
                return;
            }
        }
    }
    in_str = 0;
    for (p = text; *p && p < at; p++) {
        if (in_str) {
            if (*p == '\\' && p[1] && p + 1 < at) p++;
            else if (*p == '"') in_str = 0;
            continue;
        }
        if (*p == '"') in_str = 1, str_start = p;
        else if (*p == '{') depth_obj++;
        else if (*p == '}') depth_obj--;
        else if (*p == '[') depth_arr++;
        else if (*p == ']') depth_arr--;
        if (!json_blank(*p)) last = p;
    }
    /* cJSON stops at the start of the value it could not read; step over blanks to the culprit */
    const char *c = at;
    while (json_blank(*c)) c++;
    if (in_str) {
        c = str_start;
        const char *q = str_start + 1;
        while (*q && *q != '"' && *q != '\n') q += (*q == '\\' && q[1]) ? 2 : 1;
        snprintf(why, sizeof why, *q == '"' ? "a string with a bad escape or control character"
                                            : "a string that never ends (a missing '\"')");
    } else if (!*c && (depth_obj > 0 || depth_arr > 0))
        snprintf(why, sizeof why, "the text ends inside %s (a missing '%c')",
                 depth_obj > 0 ? "an object" : "an array", depth_obj > 0 ? '}' : ']');
    else if (!*c)
        snprintf(why, sizeof why, "the text ends where a value should follow");
    else if (last && depth_obj == 0 && depth_arr == 0)
        snprintf(why, sizeof why, "more text after the end of the JSON value");
    else if (*c == '\'' || (c > text && c[-1] == '\'')) {
        c -= *c != '\'';
        snprintf(why, sizeof why, "strings and keys take double quotes, not '");
    } else if (*c == '/' || *c == '#')
        snprintf(why, sizeof why, "JSON has no comments");
    else if (*c == '}' && depth_arr > 0)
        snprintf(why, sizeof why, "'}' while an array is open (a missing ']')");
    else if (*c == ']' && depth_obj > 0 && depth_arr == 0)
        snprintf(why, sizeof why, "']' while an object is open (a missing '}')");
    else if (last && *last == ':' && !((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
        snprintf(why, sizeof why, "a value is missing after ':'");
    else if (last && (*last == '"' || *last == '}' || *last == ']' || (*last >= '0' && *last <= '9')) &&
             (*c == '"' || *c == '{' || *c == '['))
        snprintf(why, sizeof why, "a missing comma before '%c'", *c);
    else if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_') {
        int k = 0;
        while (k < 24 && ((c[k] >= 'a' && c[k] <= 'z') || (c[k] >= 'A' && c[k] <= 'Z') ||
                          (c[k] >= '0' && c[k] <= '9') || c[k] == '_'))
            k++;
        snprintf(why, sizeof why, "unexpected '%.*s' (keys and strings take double quotes; "
                                  "true, false, null are lowercase)", k, c);
    } else
        snprintf(why, sizeof why, "unexpected '%c'", *c);
    json_line_col(text, c, &line, &col);
    snprintf(out, n, "%d:%d: not valid JSON: %s", line, col, why);
}

void ld_mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) {
            s += x[i];
            m++;
        }
    *mean = m ? s / m : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = m > 1 ? sqrt(ss / (m - 1)) : (m == 1 ? 0 : NAN);
}
