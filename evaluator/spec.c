/* spec.c: the one spec reader's table: every key of every family's task spec with its type,
 * range and the families that read it. spec_check validates a whole spec against it once,
 * before any family reads a value, and refuses unknown keys everywhere with a "did you mean"
 * hint. The families' loaders then only read (their ranges are these). docs/tasks.md. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define FB_SUP (FB_CLS | FB_REG | FB_CON | FB_GEN) /* families trained on a data set's rows */

/* One key: its section ("" for the top level), name, type, range (numbers), the families that
 * read it, and, where a family's range differs from the others', why. A key may have one row
 * per range; the first row whose families include the task's applies. */
typedef struct SpecKey {
    const char *sect, *key;
    int type;
    double lo, hi;
    unsigned fams;
    const char *why; /* reason for a family-specific range, shown with the range */
} SpecKey;

#define SEED_MAX 9007199254740991.0 /* 2^53 - 1: seeds are exact in a JSON number */

static const SpecKey spec_keys[] = {
    {"", "name", SK_STR, 0, 0, FB_ALL, NULL},
    {"", "description", SK_STR, 0, 0, FB_ALL, NULL},
    {"", "data", SK_STR, 0, 0, FB_ALL, NULL},
    {"", "family", SK_STR, 0, 0, FB_ALL, NULL},
    {"", "metric", SK_STR, 0, 0, FB_ALL, NULL},
    {"", "labels", SK_STR, 0, 0, FB_SUP, NULL},
    {"", "label", SK_STR, 0, 0, FB_SUP, NULL},
    {"", "missing", SK_STR, 0, 0, FB_SUP, NULL},
    {"", "data_info", SK_ANY, 0, 0, FB_SUP, NULL}, /* written by lossd, ignored when read back */
    {"", "split", SK_OBJ, 0, 0, FB_ALL, NULL},
    /* transform and split appear in every family's normalised spec (physics: transform {} and
     * the default split), which must parse again: they are keys of every family. */
    {"", "transform", SK_OBJ, 0, 0, FB_ALL, NULL},
    {"", "model", SK_OBJ, 0, 0, FB_ALL, NULL},
    {"", "train", SK_OBJ, 0, 0, FB_ALL, NULL},
    {"", "deploy", SK_OBJ, 0, 0, FB_ALL, NULL},
    {"", "rl", SK_OBJ, 0, 0, FB_RL, NULL},

    /* split.val > 0: a task without validation rows has no fitness (checked below). */
    {"split", "val", SK_NUM, 0, 0.9, FB_ALL, NULL},
    {"split", "test", SK_NUM, 0, 0.9, FB_ALL, NULL},
    {"split", "seed", SK_NUM, 0, SEED_MAX, FB_ALL, NULL},
    /* cross-validation over train+validation rows (docs/tasks.md "Small data"): only the
     * families trained on a table's rows with no loader of their own */
    {"split", "folds", SK_INT, 1, TASK_MAX_FOLDS, FB_CLS | FB_REG, NULL},
    {"split", "repeats", SK_INT, 1, TASK_MAX_FOLDS, FB_CLS | FB_REG, NULL},

    /* which transform fits which family (class labels or targets) is parse_transform's check */
    {"transform", "imbalance", SK_NUM, 0.001, 1, FB_ALL, NULL},
    {"transform", "label_noise", SK_NUM, 0, 0.9, FB_ALL, NULL},
    {"transform", "outliers", SK_NUM, 0, 0.5, FB_ALL, NULL},
    {"transform", "subsample", SK_NUM, 0.001, 1, FB_ALL, NULL},
    /* salt and pepper on the training split's features: the generative family's pixels */
    {"transform", "pixel_noise", SK_NUM, 0, 0.9, FB_GEN, NULL},

    {"model", "hidden", SK_ARR, 0, 0, FB_ALL, NULL},
    {"model", "activation", SK_STR, 0, 0, FB_ALL, NULL},
    {"model", "act", SK_STR, 0, 0, FB_ALL, NULL},

    {"train", "optimizer", SK_STR, 0, 0, FB_ALL, NULL},
    {"train", "lr", SK_NUM, 1e-8, 10, FB_ALL, NULL},
    {"train", "momentum", SK_NUM, 0, 0.9999, FB_ALL, NULL},
    {"train", "beta1", SK_NUM, 0, 0.9999, FB_ALL, NULL},
    {"train", "beta2", SK_NUM, 0, 0.999999, FB_ALL, NULL},
    {"train", "eps", SK_NUM, 1e-12, 1, FB_ALL, NULL},
    {"train", "batch", SK_INT, 2, 4096, FB_CON,
     "a contrastive batch needs a second sample for negatives, and its 2B x 2B similarity matrix "
     "bounds it at 4096"},
    /* rl: a batch is the rollout, rl.envs x rl.rollout transitions */
    {"train", "batch", SK_INT, 1, 65536, FB_ALL & ~FB_RL, NULL},
    {"train", "steps", SK_INT, 1, 10000000, FB_ALL, NULL},

    /* deploy.precision: fp32 fp16 bf16 int8 (quant_precision_parse); qat is refused in task.c */
    {"deploy", "precision", SK_STR, 0, 0, FB_ALL, NULL},
    {"deploy", "qat", SK_ANY, 0, 0, FB_ALL, NULL},

    {"rl", "gamma", SK_NUM, 0, 1, FB_RL, NULL},
    {"rl", "lambda", SK_NUM, 0, 1, FB_RL, NULL},
    {"rl", "envs", SK_INT, 1, 64, FB_RL, NULL},
    {"rl", "rollout", SK_INT, 1, 1024, FB_RL, NULL},
    {"rl", "val_episodes", SK_INT, 1, 1000, FB_RL, NULL},
    {"rl", "test_episodes", SK_INT, 1, 1000, FB_RL, NULL},
    {"rl", "threshold", SK_NUM, -1e6, 1e6, FB_RL, NULL},
};
#define NKEYS (sizeof spec_keys / sizeof spec_keys[0])

static const char *const type_name[] = {"an object", "a number", "an integer", "a non-empty string",
                                        "an array", "anything"};

/* Edit distance (insertions, deletions, substitutions, adjacent swaps) of two short keys. */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 31 || lb > 31) return 99;
    int d[32][32];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* The row for sect.key in family, from the table or the family's own keys, into *out; 0 when
 * there is none. */
static int find_key(const char *sect, const char *key, int family, SpecKey *out) {
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(spec_keys[i].sect, sect) && !strcmp(spec_keys[i].key, key) &&
            (spec_keys[i].fams & FAMBIT(family))) {
            *out = spec_keys[i];
            return 1;
        }
    const EvalFamily *f = eval_family(family);
    for (const EvalSpecKey *k = f ? f->keys : NULL; k && k->key; k++)
        if (!strcmp(k->sect, sect) && !strcmp(k->key, key)) {
            *out = (SpecKey){k->sect, k->key, k->type, k->lo, k->hi, FAMBIT(family), NULL};
            return 1;
        }
    return 0;
}

/* "task: transform: unknown key 'flip'", with the closest key of the section for this family
 * (edit distance at most 2, or a third of the key) or the families that do read the key. */
static int unknown_key(const char *sect, const char *key, int family, char *err) {
    const char *best = NULL;
    int bd = 99;
    unsigned others = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const SpecKey *k = &spec_keys[i];
        if (strcmp(k->sect, sect) != 0) continue;
        if (!(k->fams & FAMBIT(family))) {
            if (!strcmp(k->key, key)) others |= k->fams;
            continue;
        }
        int d = edit_distance(key, k->key);
        if (d < bd) bd = d, best = k->key;
    }
    for (int fi = 0; fi < lang_family_count(); fi++) {
        const EvalFamily *f = eval_family(fi);
        for (const EvalSpecKey *k = f ? f->keys : NULL; k && k->key; k++) {
            if (strcmp(k->sect, sect) != 0) continue;
            if (fi != family) {
                if (!strcmp(k->key, key)) others |= FAMBIT(fi);
                continue;
            }
            int d = edit_distance(key, k->key);
            if (d < bd) bd = d, best = k->key;
        }
    }
    char where[48] = "";
    if (*sect) snprintf(where, sizeof where, "%s: ", sect);
    int limit = (int)strlen(key) / 3 > 2 ? (int)strlen(key) / 3 : 2;
    if (others) {
        char fams[96] = "";
        for (int fi = 0; fi < lang_family_count(); fi++)
            if (others & FAMBIT(fi))
                snprintf(fams + strlen(fams), sizeof fams - strlen(fams), "%s%s", fams[0] ? ", " : "",
                         family_name(fi));
        return ld_err(err, LD_EINVAL, "task: %sunknown key '%.64s' for a %s task (only %s tasks read it)",
                      where, key, family_name(family), fams);
    }
    if (best && bd <= limit)
        return ld_err(err, LD_EINVAL, "task: %sunknown key '%.64s' (did you mean '%s'?)", where, key, best);
    return ld_err(err, LD_EINVAL, "task: %sunknown key '%.64s'", where, key);
}

/* Type and range of one value; path is "train.lr". */
static int check_value(const SpecKey *k, const cJSON *v, const char *path, int family, char *err) {
    int ok;
    switch (k->type) {
    case SK_OBJ: ok = cJSON_IsObject(v) || cJSON_IsNull(v); break;
    case SK_STR: ok = cJSON_IsString(v) && v->valuestring[0]; break;
    case SK_ARR: ok = cJSON_IsArray(v); break;
    case SK_ANY: return LD_OK;
    default: ok = cJSON_IsNumber(v) && isfinite(v->valuedouble); break;
    }
    if (!ok) return ld_err(err, LD_EINVAL, "task: %s: expected %s", path, type_name[k->type]);
    if (k->type != SK_NUM && k->type != SK_INT) return LD_OK;
    double x = v->valuedouble;
    if (x < k->lo || x > k->hi) {
        if (k->why)
            return ld_err(err, LD_EINVAL, "task: %s: %g is out of range [%g, %g] for a %s task: %s", path, x,
                          k->lo, k->hi, family_name(family), k->why);
        return ld_err(err, LD_EINVAL, "task: %s: %g is out of range [%g, %g]", path, x, k->lo, k->hi);
    }
    if (k->type == SK_INT && x != floor(x))
        return ld_err(err, LD_EINVAL, "task: %s: expected an integer, found %g", path, x);
    return LD_OK;
}

int spec_check(const cJSON *spec, int family, char *err) {
    const cJSON *it;
    cJSON_ArrayForEach(it, spec) {
        SpecKey k, s;
        if (!find_key("", it->string, family, &k)) return unknown_key("", it->string, family, err);
        int rc = check_value(&k, it, it->string, family, err);
        if (rc) return rc;
        if (k.type != SK_OBJ || !cJSON_IsObject(it)) continue;
        const cJSON *sub;
        cJSON_ArrayForEach(sub, it) {
            if (!find_key(it->string, sub->string, family, &s)) return unknown_key(it->string, sub->string, family, err);
            char path[160];
            snprintf(path, sizeof path, "%s.%.64s", it->string, sub->string);
            if ((rc = check_value(&s, sub, path, family, err))) return rc;
        }
    }
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "split"), "val");
    if (cJSON_IsNumber(val) && val->valuedouble == 0)
        return ld_err(err, LD_EINVAL, "task: split.val: 0 leaves no validation rows, so a loss's fitness "
                                      "would mean nothing; expected a number in (0, 0.9]");
    return LD_OK;
}
