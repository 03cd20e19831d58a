/* family.c: the table of task families, one line each. A new built-in family is its own file
 * (an EvalFamily, family.h) plus one line here (and its LANG_FAMILIES row); a family outside the
 * tree is its own file plus one eval_family_add call. */
#include "family.h"

static const EvalFamily *const families[FAM_COUNT] = {
    [FAM_CLASSIFICATION] = &family_classification,
    [FAM_REGRESSION] = &family_regression,
    [FAM_PHYSICS] = &family_physics,
    [FAM_CONTRASTIVE] = &family_contrastive,
    [FAM_RL] = &family_rl,
};

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
