/* faultvfs.c: a test hook in the style of SQLite's own fault-injection tests: an SQLite VFS shim
 * over the default one that makes the Nth write, fsync or truncate of the store's files (or the
 * Nth SQLite allocation) fail, once or from then on, or every write while a flag file exists
 * (a full disk that a test can fill and empty). Inactive unless LOSSD_FAULT or
 * LOSSD_FAULT_FILE is set (docs/reliability.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

typedef struct FaultFile {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, right after this struct */
} FaultFile;

static struct {
    int active;
    long long at;      /* the operation that fails first (1-based); 0: none */
    int persist;       /* 1: every later one fails too; 0: only that one */
    int alloc;         /* count SQLite allocations instead of I/O operations */
    int full;          /* fail writes with SQLITE_FULL instead of an I/O error */
    const char *flag;  /* while this file exists, writes, syncs and truncates fail: disk full */
    long long ops, fired;
    sqlite3_vfs vfs;
    sqlite3_vfs *real;
    sqlite3_io_methods io;
    sqlite3_mem_methods mem;
} F;

/* SQLITE_OK, or the code the operation fails with. */
static int fault_hit(int ioerr) {
    if (F.alloc) return SQLITE_OK;
    F.ops++;
    if (F.flag && access(F.flag, F_OK) == 0) {
        F.fired++;
        return SQLITE_FULL;
    }
    if (F.at > 0 && (F.ops == F.at || (F.persist && F.ops > F.at))) {
        F.fired++;
        return F.full ? SQLITE_FULL : ioerr;
    }
    return SQLITE_OK;
}

#define REAL(f) (((FaultFile *)(f))->real)

static int f_close(sqlite3_file *f) {
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    return rc;
}
static int f_read(sqlite3_file *f, void *b, int n, sqlite3_int64 off) {
    return REAL(f)->pMethods->xRead(REAL(f), b, n, off);
}
static int f_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off) {
    int rc = fault_hit(SQLITE_IOERR_WRITE);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xWrite(REAL(f), b, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size) {
    int rc = fault_hit(SQLITE_IOERR_TRUNCATE);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags) {
    int rc = fault_hit(SQLITE_IOERR_FSYNC);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size) { return REAL(f)->pMethods->xFileSize(REAL(f), size); }
static int f_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_check(sqlite3_file *f, int *out) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out); }
static int f_fcntl(sqlite3_file *f, int op, void *arg) { return REAL(f)->pMethods->xFileControl(REAL(f), op, arg); }
static int f_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_devchar(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int f_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **p) {
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, p);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags) {
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shmunmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p) {
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, p);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out) {
    FaultFile *ff = (FaultFile *)file;
    ff->real = (sqlite3_file *)(ff + 1);
    ff->real->pMethods = NULL;
    int rc = F.real->xOpen(F.real, name, ff->real, flags, out);
    if (rc != SQLITE_OK || !ff->real->pMethods) {
        file->pMethods = NULL;
        return rc;
    }
    if (!F.io.xClose) {
        const sqlite3_io_methods *m = ff->real->pMethods;
        F.io = (sqlite3_io_methods){
            .iVersion = m->iVersion < 3 ? m->iVersion : 3,
            .xClose = f_close, .xRead = f_read, .xWrite = f_write, .xTruncate = f_truncate,
            .xSync = f_sync, .xFileSize = f_size, .xLock = f_lock, .xUnlock = f_unlock,
            .xCheckReservedLock = f_check, .xFileControl = f_fcntl, .xSectorSize = f_sector,
            .xDeviceCharacteristics = f_devchar, .xShmMap = f_shmmap, .xShmLock = f_shmlock,
            .xShmBarrier = f_shmbarrier, .xShmUnmap = f_shmunmap, .xFetch = f_fetch,
            .xUnfetch = f_unfetch,
        };
    }
    file->pMethods = &F.io;
    return SQLITE_OK;
}

static int f_delete(sqlite3_vfs *v, const char *name, int sync) { return F.real->xDelete(F.real, name, sync); }
static int f_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
    return F.real->xAccess(F.real, name, flags, out);
}
static int f_fullpath(sqlite3_vfs *v, const char *name, int n, char *out) {
    return F.real->xFullPathname(F.real, name, n, out);
}
static void *f_dlopen(sqlite3_vfs *v, const char *name) { return F.real->xDlOpen(F.real, name); }
static void f_dlerror(sqlite3_vfs *v, int n, char *msg) { F.real->xDlError(F.real, n, msg); }
static void (*f_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void) { return F.real->xDlSym(F.real, h, sym); }
static void f_dlclose(sqlite3_vfs *v, void *h) { F.real->xDlClose(F.real, h); }
static int f_random(sqlite3_vfs *v, int n, char *out) { return F.real->xRandomness(F.real, n, out); }
static int f_sleep(sqlite3_vfs *v, int us) { return F.real->xSleep(F.real, us); }
static int f_time(sqlite3_vfs *v, double *t) { return F.real->xCurrentTime(F.real, t); }
static int f_lasterr(sqlite3_vfs *v, int n, char *msg) {
    return F.real->xGetLastError ? F.real->xGetLastError(F.real, n, msg) : 0;
}
static int f_time64(sqlite3_vfs *v, sqlite3_int64 *t) { return F.real->xCurrentTimeInt64(F.real, t); }

/* ---- allocations ------------------------------------------------------------------------ */

static int alloc_fails(void) {
    F.ops++;
    if (F.at > 0 && (F.ops == F.at || (F.persist && F.ops > F.at))) {
        F.fired++;
        return 1;
    }
    return 0;
}
static void *m_malloc(int n) { return alloc_fails() ? NULL : F.mem.xMalloc(n); }
static void *m_realloc(void *p, int n) { return alloc_fails() ? NULL : F.mem.xRealloc(p, n); }

/* ---- installing ------------------------------------------------------------------------- */

static void report(void) {
    if (F.active)
        fprintf(stderr, "lossd[%d]: fault injection: %lld %s counted, %lld failed\n", (int)getpid(),
                F.ops, F.alloc ? "allocations" : "writes, syncs and truncates", F.fired);
}

int store_fault_arm(long long n) {
    if (!F.active) return LD_ESTATE;
    F.at = n > 0 ? F.ops + n : 0;
    return LD_OK;
}

long long store_fault_fired(void) { return F.fired; }

const char *store_faultvfs_(void) {
    if (F.active) return "lossd-fault"; /* set up once; until then the environment is read */
    const char *spec = getenv("LOSSD_FAULT");
    F.flag = getenv("LOSSD_FAULT_FILE");
    if (F.flag && !*F.flag) F.flag = NULL;
    if ((!spec || !*spec) && !F.flag) return NULL;
    /* LOSSD_FAULT=N[,persist][,full|,alloc]  or  LOSSD_FAULT=count (count only) */
    if (spec && *spec) {
        F.at = strtoll(spec, NULL, 10);
        F.persist = strstr(spec, "persist") != NULL;
        F.full = strstr(spec, "full") != NULL;
        F.alloc = strstr(spec, "alloc") != NULL;
    }
    F.real = sqlite3_vfs_find(NULL);
    if (!F.real) return NULL;
    if (F.alloc) {
        sqlite3_shutdown(); /* allocators are set before SQLite initialises */
        if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &F.mem) == SQLITE_OK) {
            sqlite3_mem_methods m = F.mem;
            m.xMalloc = m_malloc;
            m.xRealloc = m_realloc;
            sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
        }
        sqlite3_initialize();
        F.real = sqlite3_vfs_find(NULL);
    }
    F.vfs = (sqlite3_vfs){
        .iVersion = 2, .szOsFile = (int)sizeof(FaultFile) + F.real->szOsFile,
        .mxPathname = F.real->mxPathname, .zName = "lossd-fault", .xOpen = f_open,
        .xDelete = f_delete, .xAccess = f_access, .xFullPathname = f_fullpath,
        .xDlOpen = f_dlopen, .xDlError = f_dlerror, .xDlSym = f_dlsym, .xDlClose = f_dlclose,
        .xRandomness = f_random, .xSleep = f_sleep, .xCurrentTime = f_time,
        .xGetLastError = f_lasterr, .xCurrentTimeInt64 = f_time64,
    };
    if (sqlite3_vfs_register(&F.vfs, 0) != SQLITE_OK) return NULL;
    F.active = 1;
    atexit(report);
    fprintf(stderr, "lossd[%d]: fault injection on: %s%s%s\n", (int)getpid(), spec ? spec : "",
            F.flag ? " file " : "", F.flag ? F.flag : "");
    return "lossd-fault";
}
