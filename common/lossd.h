/* lossd.h: what every module shares: status codes, error buffers, the seeded RNG,
 * the per-evaluation arena, hashing and the clock. Nothing here holds global state. */
#ifndef LOSSD_H
#define LOSSD_H

#include <stddef.h>
#include <stdint.h>

#define LOSSD_VERSION "0.1.0"

/* Status codes: 0 is success, failures are negative. One list for the whole project. */
enum {
    LD_OK = 0,
    LD_EINVAL = -1,    /* bad input: the error buffer says what, where and why */
    LD_ENOMEM = -2,    /* allocation failed */
    LD_EIO = -3,       /* a file or socket could not be read or written */
    LD_ENOTFOUND = -4, /* a named thing does not exist */
    LD_ESTATE = -5,    /* the operation does not fit the object's state */
    LD_EFAILED = -6,   /* a computation failed (diverged, non-finite) */
    LD_EBUSY = -7,     /* a resource is held by someone else */
    LD_EPERM = -8,     /* not allowed */
};

#define LD_ERR_MAX 256 /* size of every caller-provided error buffer */

/* Writes a formatted message into err (LD_ERR_MAX bytes; err may be NULL) and returns code,
 * so a failing path reads `return ld_err(err, LD_EINVAL, "...", ...);`. */
int ld_err(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Seeded xoshiro256** generator. Every random choice in the project comes from one of these,
 * owned by the caller, so two threads never share one and a seed fixes every result. */
typedef struct LdRng {
    uint64_t s[4];
} LdRng;

void rng_seed(LdRng *r, uint64_t seed);
uint64_t rng_next(LdRng *r);
double rng_uniform(LdRng *r);             /* [0, 1) */
float rng_normal(LdRng *r);               /* standard normal (Box-Muller) */
uint32_t rng_below(LdRng *r, uint32_t n); /* uniform in [0, n), n > 0 */

/* Mixes two 64-bit values into one seed: derive child seeds (per task, per evaluation). */
uint64_t ld_mix64(uint64_t a, uint64_t b);
/* 64-bit FNV-1a over bytes, then mixed: stable across runs and machines. */
uint64_t ld_hash64(const void *data, size_t n);

/* Monotonic milliseconds (for durations) and wall-clock seconds since the epoch. */
/* Mean and sample standard deviation (n - 1) of the finite values among x[0..n): NaN and NaN
 * when there are none, sd 0 for one. The one way reports and selection compute them. */
void ld_mean_sd(const double *x, int n, double *mean, double *sd);

double ld_now_ms(void);
double ld_wall_s(void);

/* A bump allocator: one malloc per evaluation, everything else points into it.
 * arena_alloc returns 64-byte aligned zeroed memory, or NULL when the arena is full. */
typedef struct LdArena {
    char *base;
    size_t cap, used;
} LdArena;

int arena_init(LdArena *a, size_t cap); /* LD_OK or LD_ENOMEM */
void *arena_alloc(LdArena *a, size_t n);
void arena_reset(LdArena *a);
void arena_free(LdArena *a);

/* Reads a whole regular file of at most LD_FILE_MAX bytes into a NUL-terminated malloc'd buffer
 * (returns owned; NULL and err set on failure: "x.csv: not a regular file", "x.csv: 1073741824
 * bytes, more than the 256 MiB a file may have"). Never blocks on a FIFO. *len receives the size
 * when len is not NULL. */
#define LD_FILE_MAX (256 << 20)
char *ld_read_file(const char *path, size_t *len, char *err);

/* Where and why text does not parse as JSON, for a message "FILE:" + out: "LINE:COL: not valid
 * JSON: WHY" (WHY e.g. "a comma before '}'", "the text ends inside an object"). at is where the
 * parser stopped (cJSON_GetErrorPtr, or the parse end); NULL means the start. Borrows both. */
void ld_json_error(const char *text, const char *at, char *out, size_t n);

/* Directory holding the shipped data sets: $LOSSD_DATA, else the compiled-in default. */
const char *ld_data_dir(void);

#endif
