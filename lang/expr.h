/* expr.h: the loss language: expression trees, their parser and printer, canonical form and
 * hash. Every operator, variable and named term is listed once below (X-macros); the parser,
 * printer, interpreter (lang/lossprog.c) and exporters (lang/export.c) expand these
 * lists, so they cannot disagree. See docs/loss-language.md. */
#ifndef EXPR_H
#define EXPR_H

#include <stddef.h>
#include <stdint.h>

/* What a task family provides to the loss language, as bits: the variables and terms it may use
 * follow from them, since every variable and term row below says which inputs it reads. */
#define LIN_CLASS 1u /* logits z (B, C) and class labels: z p pt, y per class */
#define LIN_PRED 2u  /* a prediction and a target per sample: f r, y per sample */
#define LIN_EMB 4u   /* embeddings of two views (2B, D) and labels */
#define LIN_PHYS 8u  /* the family's own batch terms: physics residual and boundary losses */
#define LIN_RL 16u   /* per-sample rollout quantities a family computes and feeds as data (LossIn.var):
                        a policy's logp and ent, a critic's v, and ret, adv, td */
#define LIN_GAN 32u  /* a GAN's discriminator logits on a real sample (dx) and a generated one (dgz), fed
                        per sample (LossIn.var); the adversarial terms read LossIn.side */
#define LIN_AE 64u  /* an autoencoder's input x (B, C) and its reconstruction xh (B, C), C features; the
                       family computes perc (per sample) and feeds it (LossIn.sterm) */
#define LIN_ANY 0u   /* read by every family: t; l2 comes from the trainer */

/* The built-in task families: X(ID, name, inputs provided). A built-in family is its own file,
 * which defines `const EvalFamily family_<name>` (evaluator/family.h: metrics, spec keys, loader,
 * training hooks), plus this one row: the row gives the loss language the family's id (FAM_ID),
 * name and inputs at compile time, and evaluator/family.c's table and family.h's declarations
 * are expanded from it, so nothing else lists the family. lang/ itself never reads the
 * family_<name> objects (it only knows the name); a family added at run time has no row
 * (lang_family_add below). */
#define LANG_FAMILIES(X)                                                                         \
    X(CLASSIFICATION, classification, LIN_CLASS)                                                 \
    X(REGRESSION, regression, LIN_PRED)                                                          \
    X(PHYSICS, physics, LIN_PRED | LIN_PHYS)                                                     \
    X(CONTRASTIVE, contrastive, LIN_EMB)                                                         \
    X(RL, rl, LIN_RL)                                                                            \
    X(GENERATIVE, generative, LIN_AE | LIN_GAN)

#define LANG_FAM_ENUM_(id, ...) FAM_##id,
enum { LANG_FAMILIES(LANG_FAM_ENUM_) FAM_COUNT };
#undef LANG_FAM_ENUM_
/* Sets of families (spec tables use them). */
#define FAMBIT(f) (1u << (f))
#define FB_CLS FAMBIT(FAM_CLASSIFICATION)
#define FB_REG FAMBIT(FAM_REGRESSION)
#define FB_PHY FAMBIT(FAM_PHYSICS)
#define FB_CON FAMBIT(FAM_CONTRASTIVE)
#define FB_RL FAMBIT(FAM_RL)
#define FB_GEN FAMBIT(FAM_GENERATIVE)
#define FB_ALL (~0u) /* every family, also those added at run time */

/* A family added at run time (a test's or an out-of-tree family; evaluator/family.h's
 * eval_family_add calls this): its name and the inputs it provides (LIN_*). Returns its id
 * (FAM_COUNT and up), or -1 when the name is taken or LANG_FAMILIES_MAX were added. Call at
 * start-up, before other threads use lang/: the table is written once, then only read. */
#define LANG_FAMILIES_MAX 16
int lang_family_add(const char *name, unsigned inputs);
int lang_family_count(void); /* FAM_COUNT plus the families added */

const char *family_name(int fam);      /* "classification", ... */
int family_parse(const char *name);    /* FAM_* or -1 */

/* A family's vocabulary: what search/ (grammar, job checks) and the checker, compiler and
 * exporters know of a family. vars and terms are bit masks (bit VAR_*, bit TERM_*) of what it may
 * use, derived from inputs. name is NULL for an unknown family. */
typedef struct LangVocab {
    const char *name;
    unsigned inputs; /* LIN_* */
    uint32_t vars, terms;
} LangVocab;
LangVocab lang_vocab(int fam);
/* The variables and terms usable with the inputs in (LIN_*), for a part of a family (a model kind
 * of the generative family provides a subset of the family's inputs); name is NULL. */
LangVocab lang_vocab_inputs(unsigned inputs);

/* Operators: X(ID, spelling, arity). Unary functions are written name(x); binary operators
 * infix, except min and max which are written min(a, b). NEG is unary minus. SUM is the
 * class-axis sum (a per-class vector to a per-sample scalar). */
#define EXPR_OPS(X)                                                                              \
    X(NUM, "num", 0)                                                                             \
    X(VAR, "var", 0)                                                                             \
    X(TERM, "term", 1)                                                                           \
    X(ADD, "+", 2)                                                                               \
    X(SUB, "-", 2)                                                                               \
    X(MUL, "*", 2)                                                                               \
    X(DIV, "/", 2)                                                                               \
    X(POW, "^", 2)                                                                               \
    X(NEG, "-", 1)                                                                               \
    X(LOG, "log", 1)                                                                             \
    X(EXP, "exp", 1)                                                                             \
    X(SQRT, "sqrt", 1)                                                                           \
    X(ABS, "abs", 1)                                                                             \
    X(TANH, "tanh", 1)                                                                           \
    X(SIGMOID, "sigmoid", 1)                                                                     \
    X(SOFTPLUS, "softplus", 1)                                                                   \
    X(SUM, "sum", 1)                                                                             \
    X(MIN, "min", 2)                                                                             \
    X(MAX, "max", 2)

/* Variables: X(ID, spelling, inputs read, per_class). per_class variables are vectors over the
 * class axis (B x C) in a family that provides class logits (or over the C features of an
 * autoencoder's x and xh); the others are one number per sample (B). y is per-class (one-hot) with class logits and per-sample with predictions. t is
 * training progress in [0, 1]. */
#define EXPR_VARS(X)                                                                             \
    X(Z, "z", LIN_CLASS, 1)                                                                      \
    X(P, "p", LIN_CLASS, 1)                                                                      \
    X(Y, "y", LIN_CLASS | LIN_PRED, 1)                                                           \
    X(PT, "pt", LIN_CLASS, 0)                                                                    \
    X(F, "f", LIN_PRED, 0)                                                                       \
    X(R, "r", LIN_PRED, 0)                                                                       \
    X(T, "t", LIN_ANY, 0)                                                                        \
    X(LOGP, "logp", LIN_RL, 0)                                                                   \
    X(RET, "ret", LIN_RL, 0)                                                                     \
    X(ADV, "adv", LIN_RL, 0)                                                                     \
    X(V, "v", LIN_RL, 0)                                                                         \
    X(TD, "td", LIN_RL, 0)                                                                       \
    X(ENT, "ent", LIN_RL, 0)                                                                     \
    X(ADVN, "advn", LIN_RL, 0)                                                                   \
    X(DX, "dx", LIN_GAN, 0)                                                                      \
    X(DGZ, "dgz", LIN_GAN, 0)                                                                    \
    X(XIN, "x", LIN_AE, 1)                                                                       \
    X(XH, "xh", LIN_AE, 1)

/* Named terms: X(ID, spelling, inputs read, has_param, default_param, batch, python, latex).
 * One row is everything the language knows of a term; every table of terms is expanded from here:
 * - batch: 1 if the term's value is one number per batch (contrastive, physics, weight decay; the
 *   shape rule and the grammar read it as TERM_IS_BATCH), 0 if it is one number per sample.
 * - python: the term in an exported PyTorch or NumPy function (lang/export.c), the same text for
 *   both: where the two differ, the text calls a helper that each prelude defines its own way
 *   (_focal, _nce, ...). In it $p is the parameter (its expression, or the default), $d the
 *   difference the regression-style terms apply to ("(p - y)" with class logits, "r" with
 *   predictions), $s the class-axis sum with class logits (nothing otherwise), $S the class-axis
 *   sum always (".sum(dim=1)" / ".sum(axis=1)"), and "A$|B" reads A in a family with class logits
 *   and B in any other. The exported function's arguments and locals (z target logp logpt p pt y,
 *   f r, emb, logp ret adv v td ent, x xh feat, t l2 phys bc) follow the family's inputs.
 * - latex: the term in an exported LaTeX formula; $p is the parameter there too.
 * Each row's interpreter kernels are lang/lossprog.c's term_k_ID (forward, backward, and the shared
 * quantities it reads); the dispatch table is expanded from this list, so a row without its kernels
 * does not compile. Adding a term is one row here plus its kernel pair there (and a prelude helper
 * when its export text calls a new one). A term's parameter may be an expression of t and numbers. */
#define EXPR_TERMS(X)                                                                            \
    X(CE, "ce", LIN_CLASS, 0, 0.0, 0,                                                            \
      "(-logpt)", "\\mathrm{CE}")                                                                \
    X(FOCAL, "focal", LIN_CLASS, 1, 2.0, 0,                                                      \
      "_focal(logpt, $p)", "\\mathrm{focal}_{\\gamma=$p}")                                       \
    X(HINGE, "hinge", LIN_CLASS, 0, 0.0, 0,                                                      \
      "_hinge(z, target)", "\\mathrm{hinge}")                                                    \
    X(POLY1, "poly1", LIN_CLASS, 1, 1.0, 0,                                                      \
      "(-logpt + ($p) * (1 - pt))", "\\mathrm{poly1}_{\\epsilon=$p}")                            \
    X(SMOOTH, "smooth", LIN_CLASS, 1, 0.1, 0,                                                    \
      "_smooth(logp, logpt, $p)", "\\mathrm{smooth}_{\\epsilon=$p}")                             \
    X(MSE, "mse", LIN_CLASS | LIN_PRED, 0, 0.0, 0,                                               \
      "($d ** 2)$s", "\\mathrm{MSE}")                                                            \
    X(MAE, "mae", LIN_CLASS | LIN_PRED, 0, 0.0, 0,                                               \
      "_abs($d)$s", "\\mathrm{MAE}")                                                             \
    X(HUBER, "huber", LIN_CLASS | LIN_PRED, 1, 1.0, 0,                                           \
      "_huber($d, $p)$s", "\\mathrm{huber}_{\\delta=$p}")                                        \
    X(LOGCOSH, "logcosh", LIN_CLASS | LIN_PRED, 0, 0.0, 0,                                       \
      "_logcosh($d)$s", "\\mathrm{logcosh}")                                                     \
    X(INFONCE, "infonce", LIN_EMB, 1, 0.1, 1,                                                    \
      "_nce(emb, $p)", "\\mathrm{infonce}_{\\tau=$p}")                                           \
    X(SUPCON, "supcon", LIN_EMB, 1, 0.1, 1,                                                      \
      "_nce(emb, $p, target)", "\\mathrm{supcon}_{\\tau=$p}")                                    \
    X(PHYS, "phys", LIN_PHYS, 0, 0.0, 1,                                                         \
      "phys", "\\mathrm{phys}")                                                                  \
    X(BC, "bc", LIN_PHYS, 0, 0.0, 1,                                                             \
      "bc", "\\mathrm{bc}")                                                                      \
    X(L2, "l2", LIN_ANY, 0, 0.0, 1,                                                              \
      "l2", "\\mathrm{l2}")                                                                      \
    X(ENTROPY, "entropy", LIN_CLASS | LIN_RL, 0, 0.0, 0,                                         \
      "(-(p * logp)$S)$|ent", "\\mathrm{entropy}")                                               \
    X(REINFORCE, "reinforce", LIN_RL, 0, 0.0, 0,                                                 \
      "(-logp * ret)", "\\mathrm{reinforce}")                                                    \
    X(A2C, "a2c", LIN_RL, 0, 0.0, 0,                                                             \
      "(-logp * adv)", "\\mathrm{a2c}")                                                          \
    X(TD2, "td2", LIN_RL, 0, 0.0, 0,                                                             \
      "(td ** 2)", "\\mathrm{td2}")                                                              \
    X(GAN, "gan", LIN_GAN, 0, 0.0, 0,                                                            \
      "_adv('gan', dx, dgz, side)", "\\mathrm{gan}")                                             \
    X(NSGAN, "nsgan", LIN_GAN, 0, 0.0, 0,                                                        \
      "_adv('nsgan', dx, dgz, side)", "\\mathrm{nsgan}")                                         \
    X(WGAN, "wgan", LIN_GAN, 0, 0.0, 0,                                                          \
      "_adv('wgan', dx, dgz, side)", "\\mathrm{wgan}")                                           \
    X(HINGE_GAN, "hinge_gan", LIN_GAN, 0, 0.0, 0,                                                \
      "_adv('hinge_gan', dx, dgz, side)", "\\mathrm{hinge\\_gan}")                               \
    X(REC, "rec", LIN_AE, 0, 0.0, 0,                                                             \
      "((xh - x) ** 2)$S", "\\mathrm{rec}")                                                      \
    X(BCE_REC, "bce_rec", LIN_AE, 0, 0.0, 0,                                                     \
      "(-(x * _glog(xh) + (1 - x) * _glog(1 - xh)))$S", "\\mathrm{bce\\_rec}")                   \
    X(PERC, "perc", LIN_AE, 0, 0.0, 0,                                                           \
      "((feat(xh) - feat(x)) ** 2)$S", "\\mathrm{perc}")

#define EXPR_ENUM_(id, ...) EOP_##id,
enum { EXPR_OPS(EXPR_ENUM_) EOP_COUNT };
#undef EXPR_ENUM_
#define EXPR_ENUM_(id, ...) VAR_##id,
enum { EXPR_VARS(EXPR_ENUM_) VAR_COUNT };
#undef EXPR_ENUM_
#define EXPR_ENUM_(id, ...) TERM_##id,
enum { EXPR_TERMS(EXPR_ENUM_) TERM_COUNT };
#undef EXPR_ENUM_

/* Variables that depend on the model's outputs (their adjoints flow back to it). The rl family's
 * logp and ent (policy), v and td (critic: td = r + gamma V(s') - V(s) with V(s') held fixed) do;
 * ret and adv are data: targets computed from the rollout, held fixed (detached). A GAN's dx and
 * dgz do (dgz through the generator too; the family uses the adjoints the side it trains needs). */
#define VAR_IS_OUTPUT(v)                                                                         \
    ((v) == VAR_Z || (v) == VAR_P || (v) == VAR_PT || (v) == VAR_F || (v) == VAR_R ||            \
     (v) == VAR_LOGP || (v) == VAR_V || (v) == VAR_TD || (v) == VAR_ENT || (v) == VAR_DX ||      \
     (v) == VAR_DGZ || (v) == VAR_XH)
/* advn = (adv - mean) / (sd + EXPR_ADVN_EPS) over one update's advantages, sd with n - 1 (the rl
 * family computes it, evaluator/rollout.c's rl_advn; the exporters write the same in Python). */
#define EXPR_ADVN_EPS 1e-8
/* Variables a family feeds as per-sample data (LossIn.var) rather than the program deriving them
 * from z, y or labels. */
#define VAR_IS_FED(v) (((v) >= VAR_LOGP && (v) <= VAR_ENT) || (v) == VAR_ADVN || (v) == VAR_DX || (v) == VAR_DGZ)
/* Terms whose meaning depends on the side a GAN's loss trains (LossIn.side): each is that side's
 * textbook loss (docs/loss-language.md, "Adversarial terms"). */
#define TERM_IS_ADVERSARIAL(id)                                                                  \
    ((id) == TERM_GAN || (id) == TERM_NSGAN || (id) == TERM_WGAN || (id) == TERM_HINGE_GAN)

/* Terms whose value is one number per batch: the rows' batch column, as a bit mask known at
 * compile time (a term mask is 32 bits: LangVocab.terms, the grammar's). */
_Static_assert(TERM_COUNT <= 32, "term masks are 32 bits");
#define EXPR_TERM_BATCHBIT_(id, name, reads, hp, def, batch, ...) | ((uint32_t)(batch) << TERM_##id)
#define TERM_BATCH_MASK (0u EXPR_TERMS(EXPR_TERM_BATCHBIT_))
#define TERM_IS_BATCH(id) ((int)((TERM_BATCH_MASK >> (id)) & 1u))

/* Shapes, the one rule (checker, grammar, compiler and exporters all use it): numbers and t
 * are constants; batch terms one number per batch; per-sample terms and variables one number per
 * sample; per-class variables (z p y with class logits) a vector over classes; sum() gives one
 * number per sample; any other operator has the larger shape of its operands. */
enum { SH_CONST = 0, SH_BATCH = 1, SH_SAMPLE = 2, SH_CLASS = 3 };

struct Expr;
/* Shape of node e for a family providing inputs (LIN_*), given its operands' shapes sa and sb
 * (SH_CONST where absent). */
int expr_node_shape(const struct Expr *e, unsigned inputs, int sa, int sb);
/* Shape of the whole tree e in family (walks expr_node_shape). */
int expr_shape(const struct Expr *e, int family);

/* One node. a and b are owned children (NULL when unused). For EOP_TERM, a is the parameter
 * expression or NULL for the default. */
typedef struct Expr {
    uint8_t op; /* EOP_* */
    uint8_t id; /* VAR_* for EOP_VAR, TERM_* for EOP_TERM */
    double num; /* value of EOP_NUM */
    struct Expr *a, *b;
} Expr;

#define EXPR_TEXT_MAX 4096 /* longest printed expression the project handles */
/* Limits on a parsed tree, so that every recursive walk (printer, checker, canonical form,
 * compiler, exporters) stays far from the C stack's end, also in 8 MB worker threads under
 * AddressSanitizer: expr_parse refuses larger or deeper trees with a clear error. A flat sum
 * of n terms is n levels deep, so at most EXPR_MAX_DEPTH terms; nesting (parentheses, calls,
 * unary minus, exponents) is limited to 200 levels. */
#define EXPR_MAX_NODES 10000
#define EXPR_MAX_DEPTH 1000

/* Constructors return owned nodes (NULL on out-of-memory); expr_op takes ownership of a, b. */
Expr *expr_num(double v);
Expr *expr_var(int var);
Expr *expr_term(int term, Expr *param);
Expr *expr_op(int op, Expr *a, Expr *b);

void expr_free(Expr *e);               /* frees the whole tree; NULL is fine */
Expr *expr_clone(const Expr *e);       /* returns owned deep copy */
int expr_size(const Expr *e);          /* node count */
int expr_depth(const Expr *e);         /* 1 for a leaf */

/* Parses src. Returns an owned tree, or NULL with err (LD_ERR_MAX) naming the column and the
 * problem: "column 7: unknown name 'foo'". */
Expr *expr_parse(const char *src, char *err);

/* Prints e with the fewest parentheses that parse back to the same tree: expr_parse of the
 * output gives an equal tree, and printing that gives the same text. Returns the length, or -1
 * when buf (size n) is too small. */
int expr_print(const Expr *e, char *buf, size_t n);

/* Checks e is a usable loss for family: every variable and term allowed, parameters are
 * functions of t only, the result is one number per sample or per batch (a per-class vector
 * at the top must be summed), and it depends on the model's output. LD_OK or LD_EINVAL with
 * err naming the offending part: "term 'phys' is not available for classification tasks". */
int expr_check(const Expr *e, int family, char *err);

/* The inputs e reads (LIN_* bits of its variables and terms; LIN_ANY ones add nothing): which of
 * a family's inputs a loss uses (a GAN loss reads LIN_GAN). */
unsigned expr_inputs(const Expr *e);

/* Canonical form: constants folded, commutative operands sorted, simple identities applied
 * (x*1, x+0, x-x, --x, ...). Returns an owned tree that means the same loss. */
Expr *expr_canonical(const Expr *e);
/* Hash of the canonical print: equal losses written differently hash the same. */
uint64_t expr_hash(const Expr *e);
int expr_equal(const Expr *a, const Expr *b); /* structural equality */

/* Export as source text a user can paste: format is "pytorch", "numpy", "latex" or "expr".
 * Returns owned malloc'd text, or NULL with err set. See lang/export.c. */
char *expr_export(const Expr *e, int family, const char *format, char *err);

#endif
