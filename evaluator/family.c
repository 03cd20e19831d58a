/* family.c: the table of task families. A built-in family is its own file (an EvalFamily,
 * family.h) plus its one row in LANG_FAMILIES (lang/expr.h), from which this table is expanded; a
 * family outside the tree is its own file plus one eval_family_add call. */
#include "family.h"

#define X_FAMILY(id, name, inputs) [FAM_##id] = &family_##name,
static const EvalFamily *const families[FAM_COUNT] = {LANG_FAMILIES(X_FAMILY)};
#undef X_FAMILY

/* Families added at run time (eval_family_add), by id - FAM_COUNT. */
static const EvalFamily *added[LANG_FAMILIES_MAX];

const EvalFamily *eval_family(int fam) {
    if (fam >= 0 && fam < FAM_COUNT) return families[fam];
    if (fam >= FAM_COUNT && fam < lang_family_count()) return added[fam - FAM_COUNT];
    return NULL;
}

int eval_family_add(const EvalFamily *f) {
    if (!f || !f->setup || !f->step || !f->score || !f->run_bytes || !f->loss_shape || !f->curve_val) return -1;
    int id = lang_family_add(f->name, f->inputs);
    if (id < 0) return -1;
    added[id - FAM_COUNT] = f;
    return id;
}
