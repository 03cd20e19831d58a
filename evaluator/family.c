/* family.c: the table of task families, one line each. A new family is its own file (an
 * EvalFamily, family.h) plus one line here. */
#include "family.h"

static const EvalFamily *const families[FAM_COUNT] = {
    [FAM_CLASSIFICATION] = &family_classification,
    [FAM_REGRESSION] = &family_regression,
    [FAM_PHYSICS] = &family_physics,
    [FAM_CONTRASTIVE] = &family_contrastive,
};

const EvalFamily *eval_family(int fam) { return fam >= 0 && fam < FAM_COUNT ? families[fam] : NULL; }
