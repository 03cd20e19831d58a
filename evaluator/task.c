/* task.c: task specs (docs/tasks.md): parsing and validation with defaults, loading the data
 * set, the normalised spec and its hash, and the accessors of eval.h. */
#include <ctype.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "internal.h"
#include "quant.h"

static const char *const builtin_tables[] = {"digits", "wine", "breast_cancer", "diabetes"};

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Joins a relative path to base_dir into buf. */
static void resolve_path(char *buf, size_t n, const char *base_dir, const char *path) {
    if (path[0] == '/' || !base_dir || !*base_dir) snprintf(buf, n, "%s", path);
    else snprintf(buf, n, "%s/%s", base_dir, path);
}

/* Contracts: internal.h. */
int task_get_num(const cJSON *obj, const char *where, const char *key, double lo, double hi, double *v,
                   char *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return LD_OK;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return ld_err(err, LD_EINVAL, "task: %s%s: expected a number", where, key);
    if (it->valuedouble < lo || it->valuedouble > hi)
        return ld_err(err, LD_EINVAL, "task: %s%s: %g is out of range [%g, %g]", where, key,
                      it->valuedouble, lo, hi);
    *v = it->valuedouble;
    return LD_OK;
}

int task_get_int(const cJSON *obj, const char *where, const char *key, int lo, int hi, int *v, char *err) {
    double d = *v;
    int rc = task_get_num(obj, where, key, lo, hi, &d, err);
    if (rc) return rc;
    if (d != floor(d)) return ld_err(err, LD_EINVAL, "task: %s%s: expected an integer, found %g", where, key, d);
    *v = (int)d;
    return LD_OK;
}

static int get_str(const cJSON *obj, const char *where, const char *key, const char **v, char *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return LD_OK;
    if (!cJSON_IsString(it) || !it->valuestring[0])
        return ld_err(err, LD_EINVAL, "task: %s%s: expected a non-empty string", where, key);
    *v = it->valuestring;
    return LD_OK;
}

static int get_obj(const cJSON *spec, const char *key, const cJSON **out, char *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(spec, key);
    *out = NULL;
    if (!it || cJSON_IsNull(it)) return LD_OK;
    if (!cJSON_IsObject(it)) return ld_err(err, LD_EINVAL, "task: %s: expected an object", key);
    *out = it;
    return LD_OK;
}

/* A float setting as the shortest decimal that reads back to it: 0.003, not 0.0030000000260770321. */
static double fnum(float v) {
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)v);
    return strtod(b, NULL);
}

static const char *const act_names[] = {"relu", "tanh", "gelu"};
static const char *const opt_names[] = {"adam", "sgd"};

int task_read_model(Task *t, const cJSON *m, char *err) {
    int rc;
    if (!m) return LD_OK;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(m, "hidden");
    if (h) {
        int n = cJSON_IsArray(h) ? cJSON_GetArraySize(h) : -1;
        if (n < 0 || n > MODEL_MAX_HIDDEN)
            return ld_err(err, LD_EINVAL, "task: model.hidden: expected an array of 0..%d layer sizes",
                          MODEL_MAX_HIDDEN);
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(h, i);
            if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 4096 ||
                e->valuedouble != floor(e->valuedouble))
                return ld_err(err, LD_EINVAL, "task: model.hidden[%d]: expected an integer in 1..4096", i);
            t->model.hidden[i] = (int)e->valuedouble;
        }
        t->model.nhidden = n;
    }
    const char *act = NULL;
    if ((rc = get_str(m, "model.", "activation", &act, err)) || (rc = get_str(m, "model.", "act", &act, err)))
        return rc;
    if (act) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(act, act_names[i])) k = i;
        if (k < 0)
            return ld_err(err, LD_EINVAL, "task: model.activation: '%s' is not relu, tanh or gelu", act);
        t->model.act = k;
    }
    return task_get_int(m, "model.", "embed_dim", 1, 4096, &t->model.embed_dim, err);
}

int task_read_train(Task *t, const cJSON *tr, char *err) {
    int rc;
    if (!tr) return LD_OK;
    TrainSpec *ts = &t->train_spec;
    const char *opt = NULL;
    if ((rc = get_str(tr, "train.", "optimizer", &opt, err))) return rc;
    if (opt) {
        if (!strcmp(opt, "adam")) ts->optimizer = OPT_ADAM;
        else if (!strcmp(opt, "sgd")) ts->optimizer = OPT_SGD;
        else return ld_err(err, LD_EINVAL, "task: train.optimizer: '%s' is not adam or sgd", opt);
    }
    double lr = ts->lr, mom = ts->momentum, b1 = ts->beta1, b2 = ts->beta2, eps = ts->adam_eps;
    if ((rc = task_get_num(tr, "train.", "lr", 1e-8, 10, &lr, err)) ||
        (rc = task_get_num(tr, "train.", "momentum", 0, 0.9999, &mom, err)) ||
        (rc = task_get_num(tr, "train.", "beta1", 0, 0.9999, &b1, err)) ||
        (rc = task_get_num(tr, "train.", "beta2", 0, 0.999999, &b2, err)) ||
        (rc = task_get_num(tr, "train.", "eps", 1e-12, 1, &eps, err)) ||
        (rc = task_get_int(tr, "train.", "batch", 1, 65536, &ts->batch, err)) ||
        (rc = task_get_int(tr, "train.", "steps", 1, 10000000, &ts->steps, err)))
        return rc;
    ts->lr = (float)lr;
    ts->momentum = (float)mom;
    ts->beta1 = (float)b1;
    ts->beta2 = (float)b2;
    ts->adam_eps = (float)eps;
    return LD_OK;
}

/* deploy: {"precision": "fp32" | "fp16" | "bf16" | "int8", "qat": false | true} (docs/rl.md,
 * "Deployment precision"); qat needs int8. */
static int parse_deploy(Task *t, const cJSON *d, char *err) {
    t->deploy = QUANT_FP32;
    if (!cJSON_IsObject(d)) return LD_OK;
    const cJSON *qat = cJSON_GetObjectItemCaseSensitive(d, "qat");
    if (qat && !cJSON_IsBool(qat)) return ld_err(err, LD_EINVAL, "task: deploy.qat: expected true or false");
    const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "precision"));
    char why[LD_ERR_MAX];
    if (p && quant_precision_parse(p, &t->deploy, why)) return ld_err(err, LD_EINVAL, "task: deploy.%s", why);
    t->deploy_qat = cJSON_IsTrue(qat);
    if (t->deploy_qat && t->deploy != QUANT_INT8)
        return ld_err(err, LD_EINVAL, "task: deploy.qat: quantisation-aware training simulates int8; it needs "
                                      "deploy.precision \"int8\", not \"%s\"", quant_precision_name(t->deploy));
    const EvalFamily *f = eval_family(t->family);
    const char *reason = f->deploy_why ? f->deploy_why : "its setup registers no model with the precision hook";
    if (t->deploy != QUANT_FP32 && !(f->deploy & FAMILY_DEPLOY_PTQ))
        return ld_err(err, LD_EINVAL, "task: deploy.precision \"%s\": the %s family does not deploy its models (%s); "
                                      "use \"fp32\"", quant_precision_name(t->deploy), f->name, reason);
    if (t->deploy_qat && !(f->deploy & FAMILY_DEPLOY_QAT))
        return ld_err(err, LD_EINVAL, "task: deploy.qat: the %s family has no quantisation-aware training (%s); "
                                      "drop qat to score post-training int8", f->name, reason);
    if (t->deploy != QUANT_FP32 && f->check_deploy) return f->check_deploy(t, err);
    return LD_OK;
}

static int parse_transform(const cJSON *tf, int family, DataPrep *p, char *err) {
    int rc;
    if (!tf) return LD_OK;
    if ((rc = task_get_num(tf, "transform.", "imbalance", 0.001, 1, &p->imbalance, err)) ||
        (rc = task_get_num(tf, "transform.", "label_noise", 0, 0.9, &p->label_noise, err)) ||
        (rc = task_get_num(tf, "transform.", "outliers", 0, 0.5, &p->outliers, err)) ||
        (rc = task_get_num(tf, "transform.", "subsample", 0.001, 1, &p->subsample, err)) ||
        (rc = task_get_num(tf, "transform.", "pixel_noise", 0, 0.9, &p->pixel_noise, err)))
        return rc;
    int cls = eval_family(family)->classify;
    if (!cls && (p->imbalance < 1 || p->label_noise > 0))
        return ld_err(err, LD_EINVAL, "task: transform: imbalance and label_noise need class labels; "
                                      "this is a %s task", family_name(family));
    if (cls && p->outliers > 0)
        return ld_err(err, LD_EINVAL, "task: transform.outliers: corrupts regression targets; this is "
                                      "a %s task (use label_noise)", family_name(family));
    return LD_OK;
}

/* Loads the table named by data (and labels) for a classification/regression-style task. */
static int load_table(const char *data, const char *labels, const char *label_col, const char *base_dir,
                      int classify, int missing, Table *tab, char *err) {
    char path[1024];
    int rc;
    if (!strncmp(data, "builtin:", 8)) {
        snprintf(path, sizeof path, "%s/%s.csv", ld_data_dir(), data + 8);
        return data_read_csv(path, label_col, classify, missing, tab, err);
    }
    resolve_path(path, sizeof path, base_dir, data);
    if (ends_with(data, ".csv")) return data_read_csv(path, label_col, classify, missing, tab, err);
    if (!ends_with(data, ".npy"))
        return ld_err(err, LD_EINVAL, "task: data: '%s' is not builtin:NAME, a .csv or a .npy path", data);
    if (!labels)
        return ld_err(err, LD_EINVAL, "task: data '%s' is a .npy feature matrix: \"labels\" must name a "
                                      "1-D .npy of labels or targets", data);
    memset(tab, 0, sizeof *tab);
    int rows = 0, cols = 0, lrows = 0, lcols = 0;
    if ((rc = data_read_npy(path, 2, &tab->x, &rows, &cols, err))) return rc;
    char lpath[1024];
    resolve_path(lpath, sizeof lpath, base_dir, labels);
    if ((rc = data_read_npy(lpath, 1, &tab->y, &lrows, &lcols, err))) goto fail;
    if (lrows != rows) {
        rc = ld_err(err, LD_EINVAL, "%s: %d labels for %d rows of %s", lpath, lrows, rows, path);
        goto fail;
    }
    tab->n = rows;
    tab->d = cols;
    if (classify) {
        if ((rc = data_class_ids(lpath, tab->y, rows, &tab->nclass, err))) goto fail;
        if (tab->nclass < 2) {
            rc = ld_err(err, LD_EINVAL, "%s: %d class(es); classification needs at least 2", lpath, tab->nclass);
            goto fail;
        }
    }
    return LD_OK;
fail:
    table_free(tab);
    return rc;
}

/* The task's data report: {rows, rows_dropped, values_filled, missing, features, categorical}.
 * Returns owned JSON (NULL when out of memory). */
static cJSON *data_info_json(const Table *tab, int missing) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "rows", tab->n);
    cJSON_AddNumberToObject(o, "features", tab->d);
    cJSON_AddStringToObject(o, "missing", data_missing_name(missing));
    cJSON_AddNumberToObject(o, "rows_dropped", tab->rows_dropped);
    cJSON_AddNumberToObject(o, "values_filled", tab->values_filled);
    if (tab->ncategorical) cJSON_AddStringToObject(o, "categorical", tab->categorical);
    return o;
}

/* One line saying what loading changed, for logs; empty when it changed nothing. */
static void data_note(Task *t, const Table *tab, const char *data) {
    char *p = t->data_note;
    size_t n = sizeof t->data_note, k = 0;
    p[0] = '\0';
    if (tab->rows_dropped)
        k += (size_t)snprintf(p + k, n - k, "; %d of %d rows dropped (missing values)", tab->rows_dropped,
                              tab->rows_read);
    if (tab->values_filled && k < n)
        k += (size_t)snprintf(p + k, n - k, "; %d missing values filled with the training mean",
                              tab->values_filled);
    if (tab->ncategorical && k < n)
        k += (size_t)snprintf(p + k, n - k, "; one-hot encoded: %s", tab->categorical);
    if (k) {
        char tmp[sizeof t->data_note];
        snprintf(tmp, sizeof tmp, "%s: %s", data, p + 2);
        snprintf(p, n, "%s", tmp);
    }
}

static int is_physics_data(const char *data) {
    return !strcmp(data, "builtin:oscillator") || !strcmp(data, "builtin:poisson");
}

/* The other splits of a cross-validated task: copies of t (sharing its spec and hooks) that own
 * their Datasets, split i being fold i % folds of shuffle i / folds. t holds split 0. */
static int make_folds(Task *t, const Table *tab, const DataPrep *prep, int repeats, char *err) {
    int nf = prep->folds * repeats;
    t->folds = calloc((size_t)nf - 1, sizeof *t->folds);
    if (!t->folds) return ld_err(err, LD_ENOMEM, "task: out of memory for %d folds", nf);
    for (int i = 1; i < nf; i++) {
        Task *v = &t->folds[i - 1];
        *v = *t;
        v->folds = NULL;
        v->nfold = 0;
        memset(&v->train, 0, sizeof v->train);
        memset(&v->val, 0, sizeof v->val);
        memset(&v->test, 0, sizeof v->test);
        DataPrep p = *prep;
        p.fold = i % prep->folds;
        p.repeat = i / prep->folds;
        t->nfold = i + 1; /* task_free frees the splits made so far */
        int rc = data_prepare(tab, eval_family(t->family)->classify, &p, v, err);
        if (rc) return rc;
    }
    return LD_OK;
}

const Task *task_fold(const Task *t, uint64_t seed) {
    if (t->nfold < 2) return t;
    int i = (int)(seed % (uint64_t)t->nfold);
    return i == 0 ? t : &t->folds[i - 1];
}

int task_nfold(const Task *t) { return t->nfold > 1 ? t->nfold : 1; }

static int is_env_data(const char *data) { return env_find(data) != NULL; }

int task_load(const cJSON *spec, const char *base_dir, Task **out, char *err) {
    int rc = LD_OK;
    Table tab = {0};
    Task *t = NULL;
    *out = NULL;
    if (!cJSON_IsObject(spec)) return ld_err(err, LD_EINVAL, "task: expected a JSON object");
    const char *data = NULL, *labels = NULL, *label_col = NULL, *fam_s = NULL, *metric = NULL, *name = NULL,
               *missing_s = NULL;
    if ((rc = get_str(spec, "", "data", &data, err)) || (rc = get_str(spec, "", "labels", &labels, err)) ||
        (rc = get_str(spec, "", "label", &label_col, err)) || (rc = get_str(spec, "", "family", &fam_s, err)) ||
        (rc = get_str(spec, "", "metric", &metric, err)) || (rc = get_str(spec, "", "name", &name, err)) ||
        (rc = get_str(spec, "", "missing", &missing_s, err)))
        return rc;
    int missing = DATA_MISSING_ERROR;
    if (missing_s) {
        missing = -1;
        for (int k = DATA_MISSING_ERROR; k <= DATA_MISSING_MEAN; k++)
            if (!strcmp(missing_s, data_missing_name(k))) missing = k;
        if (missing < 0)
            return ld_err(err, LD_EINVAL, "task: missing: '%s' is not error, drop_rows or mean", missing_s);
    }
    if (!data) return ld_err(err, LD_EINVAL, "task: missing \"data\" (builtin:NAME, a .csv or a .npy path)");
    if (!strncmp(data, "builtin:", 8) && !is_physics_data(data) && !is_env_data(data)) {
        int ok = 0;
        for (size_t i = 0; i < sizeof builtin_tables / sizeof builtin_tables[0]; i++)
            if (!strcmp(data + 8, builtin_tables[i])) ok = 1;
        if (!ok)
            return ld_err(err, LD_ENOTFOUND, "task: data: unknown built-in '%s' (digits, wine, breast_cancer, "
                                             "diabetes, oscillator, poisson, cartpole, acrobot)", data);
    }
    int family = !strcmp(data, "builtin:diabetes") ? FAM_REGRESSION
                 : is_physics_data(data)           ? FAM_PHYSICS
                 : is_env_data(data)               ? FAM_RL
                                                   : FAM_CLASSIFICATION;
    if (fam_s) {
        family = family_parse(fam_s);
        if (family < 0)
            return ld_err(err, LD_EINVAL, "task: family: '%s' is not classification, regression, physics, "
                                          "contrastive, rl or generative", fam_s);
    }
    if (is_physics_data(data) && family != FAM_PHYSICS)
        return ld_err(err, LD_EINVAL, "task: data '%s' is a physics problem; family must be physics", data);
    if (is_env_data(data) != (family == FAM_RL))
        return ld_err(err, LD_EINVAL, "task: data '%s' %s", data,
                      family == FAM_RL ? "is not an environment; rl tasks use builtin:cartpole or builtin:acrobot"
                                       : "is an environment; family must be rl");

    if ((rc = spec_check(spec, family, err))) return rc;

    t = calloc(1, sizeof *t);
    if (!t) return ld_err(err, LD_ENOMEM, "task: out of memory");
    t->family = family;
    t->y_std = 1;
    /* Name: given, else the built-in's name or the file's base name. */
    if (name) snprintf(t->name, sizeof t->name, "%s", name);
    else if (!strncmp(data, "builtin:", 8)) snprintf(t->name, sizeof t->name, "%s", data + 8);
    else {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", data);
        char *b = basename(tmp), *dot = strrchr(b, '.');
        if (dot && dot != b) *dot = 0;
        snprintf(t->name, sizeof t->name, "%s", b);
    }
    /* Generic defaults; a family hook may replace them, then the spec's explicit keys win. */
    t->model.nhidden = 1;
    t->model.hidden[0] = 64;
    t->model.act = ACT_RELU;
    t->train_spec = (TrainSpec){.optimizer = OPT_ADAM, .lr = 3e-3f, .momentum = 0.9f, .beta1 = 0.9f,
                                .beta2 = 0.999f, .adam_eps = 1e-8f, .batch = 64, .steps = 200};
    snprintf(t->metric, sizeof t->metric, "%s", eval_family(family)->metrics[0].name);
    t->higher_better = eval_family(family)->metrics[0].higher_better;

    const cJSON *split = NULL, *tf = NULL, *model = NULL, *train = NULL;
    if ((rc = get_obj(spec, "split", &split, err)) || (rc = get_obj(spec, "transform", &tf, err)) ||
        (rc = get_obj(spec, "model", &model, err)) || (rc = get_obj(spec, "train", &train, err)))
        goto done;
    DataPrep prep = {.val = 0.2, .test = 0.2, .seed = 0, .imbalance = 1, .label_noise = 0, .outliers = 0,
                     .subsample = 1};
    int repeats = 1;
    if (split) {
        double seed = 0;
        if ((rc = task_get_num(split, "split.", "val", 0, 0.9, &prep.val, err)) ||
            (rc = task_get_num(split, "split.", "test", 0, 0.9, &prep.test, err)) ||
            (rc = task_get_num(split, "split.", "seed", 0, 9007199254740991.0, &seed, err)) ||
            (rc = task_get_int(split, "split.", "folds", 1, TASK_MAX_FOLDS, &prep.folds, err)) ||
            (rc = task_get_int(split, "split.", "repeats", 1, TASK_MAX_FOLDS, &repeats, err)))
            goto done;
        if (prep.folds * repeats > 32) {
            rc = ld_err(err, LD_EINVAL, "task: split: folds x repeats = %d is above 32", prep.folds * repeats);
            goto done;
        }
        if (cJSON_GetObjectItemCaseSensitive(split, "repeats") && prep.folds < 2) {
            rc = ld_err(err, LD_EINVAL, "task: split.repeats: needs split.folds");
            goto done;
        }
        if (prep.val + prep.test > 0.95) {
            rc = ld_err(err, LD_EINVAL, "task: split: val + test = %g leaves too little training data",
                        prep.val + prep.test);
            goto done;
        }
        prep.seed = (uint64_t)seed;
    }
    if ((rc = parse_transform(tf, family, &prep, err))) goto done;

    const EvalFamily *fam = eval_family(family);
    if (fam->data_set) {
        if ((rc = load_table(data, labels, label_col, base_dir, fam->classify, missing, &tab, err))) goto done;
        t->nclass = fam->classify ? tab.nclass : 1;
        t->data_info = data_info_json(&tab, missing);
        data_note(t, &tab, data);
        prep.raw = fam->raw;
        if ((rc = data_prepare(&tab, fam->classify, &prep, t, err))) goto done;
    }
    if (fam->load && (rc = fam->load(t, spec, err))) goto done;
    if ((rc = task_read_model(t, model, err)) || (rc = task_read_train(t, train, err))) goto done;
    if ((rc = parse_deploy(t, cJSON_GetObjectItemCaseSensitive(spec, "deploy"), err))) goto done;
    if (metric) {
        if (!metric_known(family, metric, &t->higher_better)) {
            char names[160] = "";
            for (int i = 0; fam->metrics[i].name; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                         fam->metrics[i].name);
            rc = ld_err(err, LD_EINVAL, "task: metric: '%s' is not a %s metric (%s)", metric,
                        family_name(family), names);
            goto done;
        }
        snprintf(t->metric, sizeof t->metric, "%s", metric);
    }

    /* The normalised spec: every key resolved, in a fixed order; family-specific keys the hooks
     * read are copied in sorted order. The hash excludes the name. */
    cJSON *n = cJSON_CreateObject();
    if (!n) {
        rc = ld_err(err, LD_ENOMEM, "task: out of memory");
        goto done;
    }
    t->spec = n;
    char dpath[1024];
    if (!strncmp(data, "builtin:", 8)) snprintf(dpath, sizeof dpath, "%s", data);
    else resolve_path(dpath, sizeof dpath, base_dir, data);
    cJSON_AddStringToObject(n, "data", dpath);
    if (labels) {
        resolve_path(dpath, sizeof dpath, base_dir, labels);
        cJSON_AddStringToObject(n, "labels", dpath);
    }
    cJSON_AddStringToObject(n, "family", family_name(family));
    if (label_col) cJSON_AddStringToObject(n, "label", label_col);
    if (missing != DATA_MISSING_ERROR) cJSON_AddStringToObject(n, "missing", data_missing_name(missing));
    cJSON *jt = cJSON_AddObjectToObject(n, "transform");
    if (prep.imbalance < 1) cJSON_AddNumberToObject(jt, "imbalance", prep.imbalance);
    if (prep.label_noise > 0) cJSON_AddNumberToObject(jt, "label_noise", prep.label_noise);
    if (prep.outliers > 0) cJSON_AddNumberToObject(jt, "outliers", prep.outliers);
    if (prep.subsample < 1) cJSON_AddNumberToObject(jt, "subsample", prep.subsample);
    if (prep.pixel_noise > 0) cJSON_AddNumberToObject(jt, "pixel_noise", prep.pixel_noise);
    t->nfold = prep.folds > 1 ? prep.folds * repeats : 0; /* the other splits: make_folds */
    cJSON *js = cJSON_AddObjectToObject(n, "split");
    cJSON_AddNumberToObject(js, "val", prep.val);
    cJSON_AddNumberToObject(js, "test", prep.test);
    cJSON_AddNumberToObject(js, "seed", (double)prep.seed);
    if (prep.folds > 1) { /* absent otherwise: the hashes of existing tasks do not change */
        cJSON_AddNumberToObject(js, "folds", prep.folds);
        cJSON_AddNumberToObject(js, "repeats", repeats);
    } else if (prep.folds == 1) { /* one split asked for: a job's small-data rule leaves it */
        cJSON_AddNumberToObject(js, "folds", 1);
    }
    cJSON *jm = cJSON_AddObjectToObject(n, "model");
    cJSON *jh = cJSON_AddArrayToObject(jm, "hidden");
    for (int i = 0; i < t->model.nhidden; i++) cJSON_AddItemToArray(jh, cJSON_CreateNumber(t->model.hidden[i]));
    cJSON_AddStringToObject(jm, "activation", act_names[t->model.act]);
    if (t->model.embed_dim) cJSON_AddNumberToObject(jm, "embed_dim", t->model.embed_dim);
    cJSON *jr = cJSON_AddObjectToObject(n, "train");
    const TrainSpec *ts = &t->train_spec;
    cJSON_AddStringToObject(jr, "optimizer", opt_names[ts->optimizer]);
    cJSON_AddNumberToObject(jr, "lr", fnum(ts->lr));
    if (ts->optimizer == OPT_SGD) cJSON_AddNumberToObject(jr, "momentum", fnum(ts->momentum));
    else {
        cJSON_AddNumberToObject(jr, "beta1", fnum(ts->beta1));
        cJSON_AddNumberToObject(jr, "beta2", fnum(ts->beta2));
        cJSON_AddNumberToObject(jr, "eps", fnum(ts->adam_eps));
    }
    if (family != FAM_RL) cJSON_AddNumberToObject(jr, "batch", ts->batch); /* rl: rl.envs x rl.rollout */
    cJSON_AddNumberToObject(jr, "steps", ts->steps);
    cJSON_AddStringToObject(n, "metric", t->metric);
    if (t->deploy != QUANT_FP32) {
        cJSON *jd = cJSON_AddObjectToObject(n, "deploy");
        cJSON_AddStringToObject(jd, "precision", quant_precision_name(t->deploy));
        if (t->deploy_qat) cJSON_AddTrueToObject(jd, "qat");
    }
    for (const EvalSpecKey *k = fam->keys; k && k->key; k++) {
        /* The family's own keys inside a common section (model.kind, train.d_steps) as given. */
        cJSON *sect = *k->sect ? cJSON_GetObjectItemCaseSensitive(n, k->sect) : NULL;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, k->sect), k->key);
        if (sect && v && !cJSON_GetObjectItemCaseSensitive(sect, k->key))
            cJSON_AddItemToObject(sect, k->key, cJSON_Duplicate(v, 1));
    }
    if (fam->load) {
        /* Keys only the family's loader understands, sorted by name so the hash is stable. */
        const cJSON *it;
        const char *extra[64];
        int ne = 0;
        cJSON_ArrayForEach(it, spec) {
            if (cJSON_GetObjectItemCaseSensitive(n, it->string) || !strcmp(it->string, "name") ||
                !strcmp(it->string, "description") || !strcmp(it->string, "data_info") || ne == 64)
                continue;
            int k = ne++;
            while (k > 0 && strcmp(extra[k - 1], it->string) > 0) {
                extra[k] = extra[k - 1];
                k--;
            }
            extra[k] = it->string;
        }
        for (int i = 0; i < ne; i++)
            cJSON_AddItemToObject(n, extra[i],
                                  cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(spec, extra[i]), 1));
    }
    char *txt = cJSON_PrintUnformatted(n);
    if (!txt) {
        rc = ld_err(err, LD_ENOMEM, "task: out of memory");
        goto done;
    }
    t->hash = ld_hash64(txt, strlen(txt));
    cJSON_free(txt);
    cJSON_AddStringToObject(n, "name", t->name);
    /* What loading did; like the name, not part of the hash (it follows from the data). */
    if (t->data_info) cJSON_AddItemToObject(n, "data_info", cJSON_Duplicate(t->data_info, 1));
    if (prep.folds > 1 && (rc = make_folds(t, &tab, &prep, repeats, err))) goto done;
done:
    table_free(&tab);
    if (rc) {
        task_free(t);
        return rc;
    }
    *out = t;
    return LD_OK;
}

int task_load_arg(const char *arg, Task **out, char *err) {
    int rc;
    *out = NULL;
    if (!strncmp(arg, "builtin:", 8)) {
        cJSON *s = cJSON_CreateObject();
        if (!s) return ld_err(err, LD_ENOMEM, "task: out of memory");
        cJSON_AddStringToObject(s, "data", arg);
        rc = task_load(s, NULL, out, err);
        cJSON_Delete(s);
        return rc;
    }
    char e2[LD_ERR_MAX];
    char *txt = ld_read_file(arg, NULL, e2);
    if (!txt) return ld_err(err, LD_EIO, "%s", e2);
    const char *ep = NULL;
    cJSON *s = cJSON_ParseWithOpts(txt, &ep, 1);
    if (!s) {
        char why[160];
        ld_json_error(txt, cJSON_GetErrorPtr(), why, sizeof why);
        free(txt);
        return ld_err(err, LD_EINVAL, "%s:%s", arg, why);
    }
    free(txt);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", arg);
    char *d = dirname(dir);
    rc = task_load(s, d, out, e2);
    cJSON_Delete(s);
    if (rc) {
        /* Errors inside the data set already name their file; prefix the task file otherwise. */
        if (!strncmp(e2, "task: ", 6)) ld_err(err, rc, "%s: %s", arg, e2 + 6);
        else ld_err(err, rc, "%s", e2);
    }
    return rc;
}

void task_free(Task *t) {
    if (!t) return;
    for (int i = 0; t->folds && i < t->nfold - 1; i++) {
        dataset_free(&t->folds[i].train);
        dataset_free(&t->folds[i].val);
        dataset_free(&t->folds[i].test);
    }
    free(t->folds);
    const EvalFamily *f = eval_family(t->family);
    if (f && f->unload) f->unload(t);
    dataset_free(&t->train);
    dataset_free(&t->val);
    dataset_free(&t->test);
    cJSON_Delete(t->spec);
    cJSON_Delete(t->data_info);
    free(t);
}

int task_family(const Task *t) { return t->family; }

unsigned task_inputs(const Task *t) {
    const EvalFamily *f = eval_family(t->family);
    return f && f->task_inputs ? f->task_inputs(t) : lang_vocab(t->family).inputs;
}

const char *task_baseline(const Task *t) {
    const EvalFamily *f = eval_family(t->family);
    return f && f->task_baseline ? f->task_baseline(t) : NULL;
}

uint32_t task_refused_terms(const Task *t, const char **why) {
    const EvalFamily *f = eval_family(t->family);
    *why = NULL;
    return f && f->task_refused ? f->task_refused(t, why) : 0;
}
int task_outputs(const Task *t) {
    return (t->family == FAM_CLASSIFICATION || t->family == FAM_CONTRASTIVE) ? t->nclass : 1;
}
const char *task_name(const Task *t) { return t->name; }
const char *task_metric(const Task *t) { return t->metric; }
int task_higher_better(const Task *t) { return t->higher_better; }
int task_steps(const Task *t) { return t->train_spec.steps; }
uint64_t task_hash(const Task *t) { return t->hash; }
cJSON *task_spec(const Task *t) { return cJSON_Duplicate(t->spec, 1); }
cJSON *task_data_json(const Task *t) { return t->data_info ? cJSON_Duplicate(t->data_info, 1) : NULL; }
const char *task_data_note(const Task *t) { return t->data_note; }
