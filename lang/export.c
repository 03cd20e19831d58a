/* export.c: a loss expression as source a user can paste: a PyTorch function (value and autograd
 * gradient with the interpreter's guarded numerics), a NumPy function (value), a LaTeX formula,
 * or the canonical text. Names come from the X-macro lists in expr.h, and so does each term's text
 * in Python and LaTeX (the python and latex columns of EXPR_TERMS, expanded by term_text); this
 * file supplies each operator's spelling, the preludes' helpers and the function around the loss. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/lossd.h"
#include "expr.h"

#define X_TDEF(id, name, fams, hp, def, ...) def,
#define X_TPY(id, name, fams, hp, def, batch, py, tex) py,
#define X_TTEX(id, name, fams, hp, def, batch, py, tex) tex,
static const double term_def[TERM_COUNT] = {EXPR_TERMS(X_TDEF)};
static const char *const term_py[TERM_COUNT] = {EXPR_TERMS(X_TPY)};
static const char *const term_tex[TERM_COUNT] = {EXPR_TERMS(X_TTEX)};
#define X_VNAME(id, name, fams, pc) name,
static const char *const var_name[VAR_COUNT] = {EXPR_VARS(X_VNAME)};
#define X_ONAME(id, name, arity) name,
static const char *const op_name[EOP_COUNT] = {EXPR_OPS(X_ONAME)};

/* ---- a growing string ---- */

typedef struct Sb {
    char *s;
    size_t len, cap;
    int oom;
} Sb;

static void sb_printf(Sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(Sb *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* Shortest text that reads back as the same double (at least %.6g's digits). */
static void fmt_num(double v, char *buf, size_t n) {
    if (v == 0) v = 0;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            if (prec < 6) snprintf(buf, n, "%.6g", v);
            return;
        }
    }
}

/* ---- shapes: lang/expr.c's one rule ---- */

static int shape(const Expr *e, int fam) { return expr_shape(e, fam); }

/* Whether e reads the term (an autoencoder loss with perc gets a default feature network). */
static int uses_var(const Expr *e, int var) {
    if (!e) return 0;
    return (e->op == EOP_VAR && e->id == var) || uses_var(e->a, var) || uses_var(e->b, var);
}

static int uses_term(const Expr *e, int term) {
    if (!e) return 0;
    return (e->op == EOP_TERM && e->id == term) || uses_term(e->a, term) || uses_term(e->b, term);
}

/* ---- Python (torch and numpy share the expression syntax; helpers differ) ---- */

enum { PY_TORCH, PY_NUMPY, TEX };

static void py_expr(Sb *b, const Expr *e, int fam, int lang);

/* Operand of an elementwise op whose result is per-class: a per-sample value gets a class axis. */
static void py_operand(Sb *b, const Expr *e, int fam, int lang, int out_shape) {
    int s = shape(e, fam);
    if (out_shape == SH_CLASS && s == SH_SAMPLE) {
        sb_printf(b, "(");
        py_expr(b, e, fam, lang);
        sb_printf(b, ")[:, None]");
    } else {
        py_expr(b, e, fam, lang);
    }
}

/* Prints the parameter of term node e: its expression, or the term's default. */
static void param_text(Sb *b, const Expr *e, int fam, int lang);

/* Prints term node e from its row's template tpl (the python or latex column of EXPR_TERMS; the
 * escapes are listed there): "A$|B" reads A where the family provides class logits, B elsewhere;
 * $p the parameter, $d the per-class difference (p - y, or r), $s the class-axis sum with class
 * logits, $S the class-axis sum. lang is PY_TORCH, PY_NUMPY or TEX. */
static void term_text(Sb *b, const Expr *e, int fam, int lang, const char *tpl) {
    int cls = (lang_vocab(fam).inputs & LIN_CLASS) != 0;
    const char *sum = lang == PY_TORCH ? ".sum(dim=1)" : ".sum(axis=1)";
    const char *alt = strstr(tpl, "$|"), *end = alt ? alt : tpl + strlen(tpl);
    if (alt && !cls) {
        tpl = alt + 2;
        end = tpl + strlen(tpl);
    }
    for (const char *p = tpl; p < end;) {
        const char *q = p;
        while (q < end && *q != '$') q++;
        sb_printf(b, "%.*s", (int)(q - p), p);
        if (q + 1 >= end) break;
        switch (q[1]) {
        case 'p': param_text(b, e, fam, lang); break;
        case 'd': sb_printf(b, "%s", cls ? "(p - y)" : "r"); break;
        case 's': sb_printf(b, "%s", cls ? sum : ""); break;
        case 'S': sb_printf(b, "%s", sum); break;
        default: sb_printf(b, "%.2s", q); break;
        }
        p = q + 2;
    }
}

static void py_expr(Sb *b, const Expr *e, int fam, int lang) {
    char num[40];
    int out = shape(e, fam);
    switch (e->op) {
    case EOP_NUM:
        fmt_num(e->num, num, sizeof num);
        sb_printf(b, e->num < 0 ? "(%s)" : "%s", num);
        return;
    case EOP_VAR: sb_printf(b, "%s", var_name[e->id]); return;
    case EOP_TERM: term_text(b, e, fam, lang, term_py[e->id]); return;
    case EOP_ADD:
    case EOP_SUB:
    case EOP_MUL:
        sb_printf(b, "(");
        py_operand(b, e->a, fam, lang, out);
        sb_printf(b, " %s ", op_name[e->op]);
        py_operand(b, e->b, fam, lang, out);
        sb_printf(b, ")");
        return;
    case EOP_NEG:
        sb_printf(b, "(-");
        py_expr(b, e->a, fam, lang);
        sb_printf(b, ")");
        return;
    case EOP_SUM:
        sb_printf(b, "(");
        py_expr(b, e->a, fam, lang);
        sb_printf(b, ")%s", lang == PY_TORCH ? ".sum(dim=1)" : ".sum(axis=1)");
        return;
    default: break;
    }
    /* functions: a helper of the same name with a leading underscore, guarded where needed */
    static const char *const helper[EOP_COUNT] = {
        [EOP_DIV] = "_gdiv", [EOP_POW] = "_gpow", [EOP_LOG] = "_glog", [EOP_EXP] = "_gexp",
        [EOP_SQRT] = "_gsqrt", [EOP_MIN] = "_min", [EOP_MAX] = "_max",
    };
    if (helper[e->op])
        sb_printf(b, "%s(", helper[e->op]);
    else
        sb_printf(b, "_%s(", op_name[e->op]);
    py_operand(b, e->a, fam, lang, out);
    if (e->b) {
        sb_printf(b, ", ");
        py_operand(b, e->b, fam, lang, out);
    }
    sb_printf(b, ")");
}

static const char torch_prelude[] =
    "import math\n"
    "\n"
    "import torch\n"
    "import torch.nn.functional as F\n"
    "\n"
    "# Guarded numerics, as in lossd's interpreter (docs/loss-language.md).\n"
    "TINY = 1e-12\n"
    "EXP_MAX = 80.0\n"
    "\n"
    "\n"
    "def _tt(*xs):\n"
    "    ref = next((x for x in xs if torch.is_tensor(x)), None)\n"
    "    dt = ref.dtype if ref is not None else torch.get_default_dtype()\n"
    "    return [x if torch.is_tensor(x) else torch.tensor(float(x), dtype=dt) for x in xs]\n"
    "\n"
    "\n"
    "def _glog(x):\n"
    "    (x,) = _tt(x)\n"
    "    return torch.log(torch.clamp(x, min=TINY))\n"
    "\n"
    "\n"
    "def _gexp(x):\n"
    "    (x,) = _tt(x)\n"
    "    return torch.exp(torch.clamp(x, max=EXP_MAX))\n"
    "\n"
    "\n"
    "def _gden(b):\n"
    "    (b,) = _tt(b)\n"
    "    return torch.where(b.abs() < TINY, torch.copysign(torch.full_like(b, TINY), b), b)\n"
    "\n"
    "\n"
    "def _gdiv(a, b):\n"
    "    a, b = _tt(a, b)\n"
    "    return a / _gden(b)\n"
    "\n"
    "\n"
    "def _gsqrt(x):\n"
    "    # sqrt(max(x, 0)) with slope 1/(2 sqrt(max(x, TINY))) for x >= 0\n"
    "    (x,) = _tt(x)\n"
    "    xs = torch.clamp(x, min=0.0)\n"
    "    slope = 0.5 / torch.sqrt(torch.clamp(x.detach(), min=TINY))\n"
    "    return torch.sqrt(xs.detach()) + (xs - xs.detach()) * slope\n"
    "\n"
    "\n"
    "def _gpow(a, b):\n"
    "    # sign * max(|a|, TINY)^b, negative only for a < 0 and b not an even integer\n"
    "    a, b = _tt(a, b)\n"
    "    m = torch.clamp(a.abs(), min=TINY)\n"
    "    v = torch.exp(torch.clamp(b * torch.log(m), max=EXP_MAX))\n"
    "    even = (b == torch.floor(b)) & (torch.remainder(b, 2.0) == 0)\n"
    "    return torch.where((a < 0) & ~even, -v, v)\n"
    "\n"
    "\n"
    "def _min(a, b):\n"
    "    a, b = _tt(a, b)\n"
    "    return torch.where(a <= b, a, b)\n"
    "\n"
    "\n"
    "def _max(a, b):\n"
    "    a, b = _tt(a, b)\n"
    "    return torch.where(a >= b, a, b)\n"
    "\n"
    "\n"
    "def _abs(x):\n"
    "    return torch.abs(_tt(x)[0])\n"
    "\n"
    "\n"
    "def _tanh(x):\n"
    "    return torch.tanh(_tt(x)[0])\n"
    "\n"
    "\n"
    "def _sigmoid(x):\n"
    "    return torch.sigmoid(_tt(x)[0])\n"
    "\n"
    "\n"
    "def _softplus(x):\n"
    "    return F.softplus(_tt(x)[0])\n"
    "\n"
    "\n"
    "def _huber(d, delta):\n"
    "    delta = abs(float(delta))\n"
    "    return torch.where(d.abs() <= delta, 0.5 * d * d, delta * (d.abs() - 0.5 * delta))\n"
    "\n"
    "\n"
    "def _logcosh(d):\n"
    "    return d.abs() + F.softplus(-2.0 * d.abs()) - math.log(2.0)\n"
    "\n"
    "\n"
    "def _focal(logpt, gamma):\n"
    "    gamma = float(gamma)\n"
    "    q = torch.clamp(-torch.expm1(logpt), min=0.0)\n"
    "    if gamma == math.floor(gamma) and 0 <= gamma <= 8:\n"
    "        qg = q ** int(gamma)\n"
    "    else:\n"
    "        qg = torch.clamp(q, min=TINY) ** gamma\n"
    "    return -qg * logpt\n"
    "\n"
    "\n"
    "def _hinge(z, target):\n"
    "    zy = z.gather(1, target[:, None])[:, 0]\n"
    "    mask = F.one_hot(target, z.shape[1]).bool()\n"
    "    zo = z.masked_fill(mask, float(\"-inf\")).max(dim=1).values\n"
    "    return torch.clamp(1.0 + zo - zy, min=0.0)\n"
    "\n"
    "\n"
    "def _smooth(logp, logpt, eps):\n"
    "    return -(1 - eps) * logpt - eps / logp.shape[1] * logp.sum(dim=1)\n"
    "\n"
    "\n"
    "def _nce(emb, tau, labels=None):\n"
    "    # NT-Xent (labels None) or supervised contrastive over 2B rows; rows i and B+i pair\n"
    "    n = emb.shape[0]\n"
    "    u = emb / torch.clamp(emb.norm(dim=1, keepdim=True), min=TINY)\n"
    "    s = (u @ u.T) / _gden(tau)\n"
    "    eye = torch.eye(n, dtype=torch.bool, device=emb.device)\n"
    "    s = s.masked_fill(eye, float(\"-inf\"))\n"
    "    logprob = s - torch.logsumexp(s, dim=1, keepdim=True)\n"
    "    if labels is None:\n"
    "        idx = torch.arange(n, device=emb.device)\n"
    "        return -logprob[idx, (idx + n // 2) % n].mean()\n"
    "    lab = torch.cat([labels, labels])\n"
    "    pos = (lab[:, None] == lab[None, :]) & ~eye\n"
    "    return -(logprob.masked_fill(~pos, 0.0).sum(dim=1) / pos.sum(dim=1)).mean()\n"
    "\n"
    "\n";

static const char numpy_prelude[] =
    "import math\n"
    "\n"
    "import numpy as np\n"
    "\n"
    "# Guarded numerics, as in lossd's interpreter (docs/loss-language.md).\n"
    "TINY = 1e-12\n"
    "EXP_MAX = 80.0\n"
    "\n"
    "\n"
    "def _glog(x):\n"
    "    return np.log(np.maximum(x, TINY))\n"
    "\n"
    "\n"
    "def _gexp(x):\n"
    "    return np.exp(np.minimum(x, EXP_MAX))\n"
    "\n"
    "\n"
    "def _gden(b):\n"
    "    b = np.asarray(b, dtype=np.float64)\n"
    "    return np.where(np.abs(b) < TINY, np.copysign(TINY, b), b)\n"
    "\n"
    "\n"
    "def _gdiv(a, b):\n"
    "    return a / _gden(b)\n"
    "\n"
    "\n"
    "def _gsqrt(x):\n"
    "    return np.sqrt(np.maximum(x, 0.0))\n"
    "\n"
    "\n"
    "def _gpow(a, b):\n"
    "    a = np.asarray(a, dtype=np.float64)\n"
    "    b = np.asarray(b, dtype=np.float64)\n"
    "    v = np.exp(np.minimum(b * np.log(np.maximum(np.abs(a), TINY)), EXP_MAX))\n"
    "    even = (b == np.floor(b)) & (np.mod(b, 2.0) == 0)\n"
    "    return np.where((a < 0) & ~even, -v, v)\n"
    "\n"
    "\n"
    "def _min(a, b):\n"
    "    return np.where(a <= b, a, b)\n"
    "\n"
    "\n"
    "def _max(a, b):\n"
    "    return np.where(a >= b, a, b)\n"
    "\n"
    "\n"
    "def _abs(x):\n"
    "    return np.abs(x)\n"
    "\n"
    "\n"
    "def _tanh(x):\n"
    "    return np.tanh(x)\n"
    "\n"
    "\n"
    "def _sigmoid(x):\n"
    "    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))\n"
    "\n"
    "\n"
    "def _softplus(x):\n"
    "    return np.logaddexp(0.0, x)\n"
    "\n"
    "\n"
    "def _huber(d, delta):\n"
    "    delta = abs(float(delta))\n"
    "    return np.where(np.abs(d) <= delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta))\n"
    "\n"
    "\n"
    "def _logcosh(d):\n"
    "    return np.abs(d) + np.logaddexp(0.0, -2.0 * np.abs(d)) - math.log(2.0)\n"
    "\n"
    "\n"
    "def _focal(logpt, gamma):\n"
    "    gamma = float(gamma)\n"
    "    q = np.maximum(-np.expm1(logpt), 0.0)\n"
    "    if not (gamma == math.floor(gamma) and 0 <= gamma <= 8):\n"
    "        q = np.maximum(q, TINY)\n"
    "    return -(q ** gamma) * logpt\n"
    "\n"
    "\n"
    "def _hinge(z, target):\n"
    "    rows = np.arange(z.shape[0])\n"
    "    zy = z[rows, target]\n"
    "    zo = z.copy()\n"
    "    zo[rows, target] = -np.inf\n"
    "    return np.maximum(1.0 + zo.max(axis=1) - zy, 0.0)\n"
    "\n"
    "\n"
    "def _smooth(logp, logpt, eps):\n"
    "    return -(1 - eps) * logpt - eps / logp.shape[1] * logp.sum(axis=1)\n"
    "\n"
    "\n"
    "def _nce(emb, tau, labels=None):\n"
    "    n = emb.shape[0]\n"
    "    u = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), TINY)\n"
    "    s = (u @ u.T) / _gden(tau)\n"
    "    np.fill_diagonal(s, -np.inf)\n"
    "    m = s.max(axis=1, keepdims=True)\n"
    "    logprob = s - (m + np.log(np.exp(s - m).sum(axis=1, keepdims=True)))\n"
    "    if labels is None:\n"
    "        idx = np.arange(n)\n"
    "        return -logprob[idx, (idx + n // 2) % n].mean()\n"
    "    lab = np.concatenate([labels, labels])\n"
    "    pos = (lab[:, None] == lab[None, :]) & ~np.eye(n, dtype=bool)\n"
    "    return -(np.where(pos, logprob, 0.0).sum(axis=1) / pos.sum(axis=1)).mean()\n"
    "\n"
    "\n";

/* The generative family's helpers of both preludes, written once: the library's spellings are
 * substituted (gen_helpers_args). %1$s softplus( ... ), %2$s and %3$s around max(., 0), %4$s and
 * %5$s around an array from a list, %6$s the module of tanh, %7$s after w0 and b0 in the lambda. */
static const char gen_helpers[] =
    "def _adv(name, dx, dgz, side):\n"
    "    # an adversarial term: the textbook loss of the side (network) the loss trains\n"
    "    if side == \"generator\":\n"
    "        return {\"gan\": -%1$sdgz), \"nsgan\": %1$s-dgz)}.get(name, -dgz)\n"
    "    if side != \"discriminator\":\n"
    "        raise ValueError(\"side must be 'generator' or 'discriminator', not %%r\" %% (side,))\n"
    "    if name == \"wgan\":\n"
    "        return dgz - dx\n"
    "    if name == \"hinge_gan\":\n"
    "        return %2$s1.0 - dx%3$s + %2$s1.0 + dgz%3$s\n"
    "    return %1$s-dx) + %1$sdgz)\n"
    "\n"
    "\n"
    "def _digits_feat(path=None):\n"
    "    # lossd's fixed digits feature network (perc): 64 pixels in [0, 1] -> 32 tanh features,\n"
    "    # from data/digits_fixednet.json (LOSSD_DATADIR)\n"
    "    import json, os\n"
    "    path = path or os.path.join(os.environ.get(\"LOSSD_DATADIR\", \"data\"), \"digits_fixednet.json\")\n"
    "    with open(path) as f:\n"
    "        n = json.load(f)\n"
    "    w0 = %4$sn[\"w0\"]%5$s.reshape(n[\"inputs\"], n[\"hidden\"])\n"
    "    b0 = %4$sn[\"b0\"]%5$s\n"
    "    return lambda v: %6$s.tanh(v @ w0%7$s + b0%7$s)\n";

/* The spellings gen_helpers takes, per library (PY_TORCH, PY_NUMPY). */
static const char *const gen_helpers_args[2][7] = {
    {"F.softplus(", "torch.clamp(", ", min=0.0)", "torch.tensor(", ")", "torch", ".to(v.dtype)"},
    {"np.logaddexp(0.0, ", "np.maximum(", ", 0.0)", "np.array(", ", dtype=np.float64)", "np", ""},
};

/* 1 if text calls the function named by the def at name (up to its '('): "NAME(" with no
 * identifier character before it. */
static int py_calls(const char *text, size_t len, const char *name, size_t nlen) {
    for (const char *p = text; p + nlen < text + len; p++) {
        if (memcmp(p, name, nlen) || p[nlen] != '(') continue;
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) continue;
        return 1;
    }
    return 0;
}

#define PY_MAX_HELPERS 32

/* Writes the prelude's header (imports, constants) and only the helper functions the loss
 * needs, directly or through other helpers, then body. The prelude is split at its "def"s, so
 * the helper list stays written once, as Python: every helper must be a "def" preceded by two
 * blank lines (a one-line alias such as "_abs = np.abs" would ride along with the def above
 * it and be missing whenever that def is not needed). */
static void py_emit(Sb *b, const char *prelude, const Sb *body) {
    static const char sep[] = "\n\n\ndef ";
    const char *start[PY_MAX_HELPERS + 1], *end[PY_MAX_HELPERS + 1];
    int n = 0, need[PY_MAX_HELPERS + 1] = {0};
    const char *p = prelude, *q;
    while (n < PY_MAX_HELPERS && (q = strstr(p, sep))) {
        start[n] = p;
        end[n++] = q;
        p = q + 3; /* the next chunk starts at its "def " */
    }
    start[n] = p;
    end[n++] = p + strlen(p);
    need[0] = 1;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 1; i < n; i++) {
            if (need[i]) continue;
            const char *name = start[i] + 4, *paren = strchr(name, '(');
            size_t nlen = (size_t)(paren - name);
            int used = py_calls(body->s ? body->s : "", body->len, name, nlen);
            for (int k = 1; k < n && !used; k++)
                if (need[k]) used = py_calls(start[k], (size_t)(end[k] - start[k]), name, nlen);
            if (used) need[i] = changed = 1;
        }
    }
    for (int i = 0; i < n; i++)
        if (need[i]) sb_printf(b, "%.*s\n\n\n", (int)(end[i] - start[i]), start[i]);
    sb_printf(b, "%s", body->s ? body->s : "");
}

static void py_function(Sb *out, const Expr *e, int fam, int lang, const char *canon) {
    int torch = lang == PY_TORCH;
    Sb body = {0}, *b = &body;
    const char *fn = torch ? "" : "_value";
    unsigned in = lang_vocab(fam).inputs; /* the function's arguments follow the family's inputs */
    int phys = (in & LIN_PHYS) != 0;
    /* a GAN's loss: over the discriminator's logits, for one side (the family may provide other
     * inputs for its other model kinds: the loss's own variables and terms decide) */
    int gan = (in & LIN_GAN) && (!(in & ~LIN_GAN) || (expr_inputs(e) & LIN_GAN));
    /* a GAN loss that also reads the reconstruction inputs (nsgan + 10*rec): x and xh follow */
    int mix = gan && (in & LIN_AE) && (expr_inputs(e) & LIN_AE);
    if (gan) {
        sb_printf(b, "def lossd_loss%s(dx, dgz, %st=0.0, l2=0.0, side=\"generator\"%s):\n", fn,
                  mix ? "x=None, xh=None, " : "", mix ? ", feat=None" : "");
        sb_printf(b, "    \"\"\"%s\n\n    GAN: dx the discriminator's logits on real samples (B), dgz on "
                     "generated samples G(z) (B);\n    side \"generator\" or \"discriminator\": the network "
                     "this loss trains (gan, nsgan, wgan and hinge_gan\n    are that side's loss).%s Returns the "
                     "batch mean%s.\"\"\"\n",
                  canon,
                  mix ? "\n    x real rows (B, C) and xh their reconstructions G(E(x)) (B, C), paired row by row "
                        "with\n    dx and dgz; feat the fixed feature network of perc (default: _digits_feat)."
                      : "",
                  torch ? " (differentiable)" : "");
        if (torch)
            sb_printf(b, "    t = torch.as_tensor(t, dtype=dgz.dtype)\n"
                         "    l2 = torch.as_tensor(l2, dtype=dgz.dtype)\n");
        else
            sb_printf(b, "    dx, dgz = (np.asarray(a, dtype=np.float64) for a in (dx, dgz))\n");
        if (mix && torch) sb_printf(b, "    x = torch.as_tensor(x, dtype=xh.dtype)\n");
        else if (mix)
            sb_printf(b, "    x = np.asarray(x, dtype=np.float64)\n"
                         "    xh = np.asarray(xh, dtype=np.float64)\n");
        if (mix && uses_term(e, TERM_PERC)) sb_printf(b, "    feat = feat if feat is not None else _digits_feat()\n");
    } else if (in & LIN_CLASS) {
        sb_printf(b, "def lossd_loss%s(z, target, t=0.0, l2=0.0):\n", fn);
        sb_printf(b, "    \"\"\"%s\n\n    classification: z logits (B, C), target class indices (B); "
                     "returns the batch mean%s.\"\"\"\n",
                  canon, torch ? " (differentiable)" : "");
        if (torch) {
            sb_printf(b, "    t = torch.as_tensor(t, dtype=z.dtype)\n"
                         "    l2 = torch.as_tensor(l2, dtype=z.dtype)\n"
                         "    target = target.long()\n"
                         "    logp = F.log_softmax(z, dim=1)\n"
                         "    p = logp.exp()\n"
                         "    y = F.one_hot(target, z.shape[1]).to(z.dtype)\n"
                         "    logpt = logp.gather(1, target[:, None])[:, 0]\n"
                         "    pt = logpt.exp()\n");
        } else {
            sb_printf(b, "    z = np.asarray(z, dtype=np.float64)\n"
                         "    target = np.asarray(target).astype(np.int64)\n"
                         "    m = z.max(axis=1, keepdims=True)\n"
                         "    logp = z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))\n"
                         "    p = np.exp(logp)\n"
                         "    y = np.eye(z.shape[1])[target]\n"
                         "    logpt = logp[np.arange(z.shape[0]), target]\n"
                         "    pt = np.exp(logpt)\n");
        }
    } else if (in & LIN_PRED) {
        sb_printf(b, "def lossd_loss%s(f, target, t=0.0, l2=0.0%s):\n", fn,
                  phys ? ", phys=0.0, bc=0.0" : "");
        sb_printf(b, "    \"\"\"%s\n\n    %s: f predictions (B) or (B, 1), target (B)%s; returns the "
                     "batch mean%s.\"\"\"\n",
                  canon, family_name(fam),
                  phys ? ", phys and bc the residual and boundary losses" : "",
                  torch ? " (differentiable)" : "");
        if (torch) {
            sb_printf(b, "    f = f.reshape(-1)\n"
                         "    y = torch.as_tensor(target, dtype=f.dtype).reshape(-1)\n"
                         "    t = torch.as_tensor(t, dtype=f.dtype)\n"
                         "    l2 = torch.as_tensor(l2, dtype=f.dtype)\n");
            if (phys)
                sb_printf(b, "    phys = torch.as_tensor(phys, dtype=f.dtype)\n"
                             "    bc = torch.as_tensor(bc, dtype=f.dtype)\n");
        } else {
            sb_printf(b, "    f = np.asarray(f, dtype=np.float64).reshape(-1)\n"
                         "    y = np.asarray(target, dtype=np.float64).reshape(-1)\n");
        }
        sb_printf(b, "    r = f - y\n");
    } else if (in & LIN_RL) {
        sb_printf(b, "def lossd_loss%s(logp, ret, adv, v, td, ent, t=0.0, l2=0.0):\n", fn);
        sb_printf(b, "    \"\"\"%s\n\n    rl: per-transition tensors (B): logp log-probability of the taken "
                     "action, ret discounted return, adv advantage, v value estimate, td TD error "
                     "r + gamma V(s') - V(s) (V(s') held fixed), ent policy entropy; ret and adv are "
                     "targets (no gradient flows through them). Returns the batch mean%s.\"\"\"\n",
                  canon, torch ? " (differentiable)" : "");
        if (torch)
            sb_printf(b, "    ret = torch.as_tensor(ret).detach()\n"
                         "    adv = torch.as_tensor(adv).detach()\n"
                         "    t = torch.as_tensor(t, dtype=logp.dtype)\n"
                         "    l2 = torch.as_tensor(l2, dtype=logp.dtype)\n");
        else
            sb_printf(b, "    logp, ret, adv, v, td, ent = (np.asarray(a, dtype=np.float64) for a in "
                         "(logp, ret, adv, v, td, ent))\n");
        if (uses_var(e, VAR_ADVN)) /* the batch's advantages normalised, as the rl family feeds advn */
            sb_printf(b, "    advn = (adv - adv.mean()) / (adv.std(%s) + %g)\n", torch ? "" : "ddof=1",
                      EXPR_ADVN_EPS);
    } else if (in & LIN_AE) {
        sb_printf(b, "def lossd_loss%s(x, xh, t=0.0, l2=0.0, feat=None):\n", fn);
        sb_printf(b, "    \"\"\"%s\n\n    generative (autoencoder): x inputs (B, C), xh reconstructions (B, C) "
                     "(the decoder's sigmoid outputs on data in [0, 1]; bce_rec reads them as Bernoulli "
                     "probabilities); feat the fixed feature network of perc, a function (B, C) -> (B, H) "
                     "(default: lossd's digits network, _digits_feat). Returns the batch mean%s.\"\"\"\n",
                  canon, torch ? " (differentiable)" : "");
        if (torch)
            sb_printf(b, "    t = torch.as_tensor(t, dtype=xh.dtype)\n"
                         "    l2 = torch.as_tensor(l2, dtype=xh.dtype)\n"
                         "    x = torch.as_tensor(x, dtype=xh.dtype)\n");
        else
            sb_printf(b, "    x = np.asarray(x, dtype=np.float64)\n"
                         "    xh = np.asarray(xh, dtype=np.float64)\n");
        if (uses_term(e, TERM_PERC)) sb_printf(b, "    feat = feat if feat is not None else _digits_feat()\n");
    } else {
        sb_printf(b, "def lossd_loss%s(emb, target=None, t=0.0, l2=0.0):\n", fn);
        sb_printf(b, "    \"\"\"%s\n\n    contrastive: emb (2B, D) embeddings of two views (rows i "
                     "and B+i pair), target (B) labels for supcon.\"\"\"\n",
                  canon);
        if (torch)
            sb_printf(b, "    t = torch.as_tensor(t, dtype=emb.dtype)\n"
                         "    l2 = torch.as_tensor(l2, dtype=emb.dtype)\n");
        else
            sb_printf(b, "    emb = np.asarray(emb, dtype=np.float64)\n");
    }
    int s = shape(e, fam);
    sb_printf(b, "    loss = ");
    py_expr(b, e, fam, lang);
    sb_printf(b, "\n    return %s\n", s == SH_SAMPLE ? "loss.mean()" : "loss");
    if (!torch && gan) {
        sb_printf(b, "\n\n"
                     "def lossd_grad(dx, dgz, h=1e-6, **kwargs):\n"
                     "    \"\"\"(2, B): d loss / d dx, dgz by central differences of lossd_loss_value "
                     "(float64).\"\"\"\n"
                     "    x = np.array([dx, dgz], dtype=np.float64)\n"
                     "    g = np.zeros_like(x)\n"
                     "    for i in np.ndindex(x.shape):\n"
                     "        old = x[i]\n"
                     "        x[i] = old + h\n"
                     "        up = lossd_loss_value(*x, **kwargs)\n"
                     "        x[i] = old - h\n"
                     "        down = lossd_loss_value(*x, **kwargs)\n"
                     "        x[i] = old\n"
                     "        g[i] = (up - down) / (2 * h)\n"
                     "    return g\n");
    } else if (!torch && (in & LIN_RL)) {
        sb_printf(b, "\n\n"
                     "def lossd_grad(logp, ret, adv, v, td, ent, h=1e-6, **kwargs):\n"
                     "    \"\"\"(6, B): d loss / d logp, ret, adv, v, td, ent by central differences of "
                     "lossd_loss_value\n    (float64); the rows of ret and adv are 0: they are targets, "
                     "held fixed.\"\"\"\n"
                     "    x = np.array([logp, ret, adv, v, td, ent], dtype=np.float64)\n"
                     "    g = np.zeros_like(x)\n"
                     "    for i in np.ndindex(x.shape):\n"
                     "        if i[0] in (1, 2):\n"
                     "            continue\n"
                     "        old = x[i]\n"
                     "        x[i] = old + h\n"
                     "        up = lossd_loss_value(*x, **kwargs)\n"
                     "        x[i] = old - h\n"
                     "        down = lossd_loss_value(*x, **kwargs)\n"
                     "        x[i] = old\n"
                     "        g[i] = (up - down) / (2 * h)\n"
                     "    return g\n");
    } else if (!torch) {
        /* d loss / d the model's output: z, f or emb as the first argument, or an
         * autoencoder's xh after its input x (the differentiated array is then named xh) */
        int ae = (in & LIN_AE) != 0;
        const char *x = (in & LIN_CLASS) ? "z" : (in & LIN_EMB) ? "emb" : ae ? "xh" : "f";
        const char *v = ae ? "xh" : "x", *lead = ae ? "x, " : "";
        sb_printf(b,
                  "\n\n"
                  "def lossd_grad(%s%s, *args, h=1e-6, **kwargs):\n"
                  "    \"\"\"d loss / d %s by central differences of lossd_loss_value (float64).\"\"\"\n"
                  "    %s = np.array(%s, dtype=np.float64)\n"
                  "    g = np.zeros_like(%s)\n"
                  "    for i in np.ndindex(%s.shape):\n"
                  "        old = %s[i]\n"
                  "        %s[i] = old + h\n"
                  "        up = lossd_loss_value(%s%s, *args, **kwargs)\n"
                  "        %s[i] = old - h\n"
                  "        down = lossd_loss_value(%s%s, *args, **kwargs)\n"
                  "        %s[i] = old\n"
                  "        g[i] = (up - down) / (2 * h)\n"
                  "    return g\n",
                  lead, x, x, v, x, v, v, v, v, lead, v, v, lead, v, v);
    }
    Sb prelude = {0}; /* the library's prelude, then the generative helpers in its spelling */
    const char *const *ga = gen_helpers_args[torch ? 0 : 1];
    sb_printf(&prelude, "%s", torch ? torch_prelude : numpy_prelude);
    sb_printf(&prelude, gen_helpers, ga[0], ga[1], ga[2], ga[3], ga[4], ga[5], ga[6]);
    py_emit(out, prelude.s ? prelude.s : "", &body);
    if (body.oom || prelude.oom) out->oom = 1;
    free(prelude.s);
    free(body.s);
}

/* ---- LaTeX ---- */

static void tex(Sb *b, const Expr *e, int fam);

static int tex_prec(const Expr *e) {
    switch (e->op) {
    case EOP_ADD:
    case EOP_SUB: return 1;
    case EOP_MUL: return 2;
    case EOP_NEG: return 3;
    case EOP_NUM: return e->num < 0 ? 3 : 5;
    case EOP_POW: return 4;
    default: return 5; /* \frac and functions are atoms */
    }
}

static void tex_child(Sb *b, const Expr *c, int need, int fam) {
    int paren = tex_prec(c) < need;
    sb_printf(b, paren ? "\\left(" : "");
    tex(b, c, fam);
    sb_printf(b, paren ? "\\right)" : "");
}

static void tex(Sb *b, const Expr *e, int fam) {
    static const char *const tvar[VAR_COUNT] = {[VAR_PT] = "p_t"};
    static const char *const fn[EOP_COUNT] = {
        [EOP_LOG] = "\\log",       [EOP_EXP] = "\\exp",   [EOP_TANH] = "\\tanh",
        [EOP_SIGMOID] = "\\sigma", [EOP_MIN] = "\\min", [EOP_MAX] = "\\max",
        [EOP_SOFTPLUS] = "\\operatorname{softplus}",
    };
    char num[40];
    switch (e->op) {
    case EOP_NUM:
        fmt_num(e->num, num, sizeof num);
        sb_printf(b, "%s", num);
        return;
    case EOP_VAR: sb_printf(b, "%s", tvar[e->id] ? tvar[e->id] : var_name[e->id]); return;
    case EOP_TERM: term_text(b, e, fam, TEX, term_tex[e->id]); return;
    case EOP_ADD:
    case EOP_SUB:
        tex_child(b, e->a, 1, fam);
        sb_printf(b, " %s ", e->op == EOP_ADD ? "+" : "-");
        tex_child(b, e->b, 2, fam);
        return;
    case EOP_MUL:
        tex_child(b, e->a, 2, fam);
        sb_printf(b, " \\cdot ");
        tex_child(b, e->b, 3, fam);
        return;
    case EOP_DIV:
        sb_printf(b, "\\frac{");
        tex(b, e->a, fam);
        sb_printf(b, "}{");
        tex(b, e->b, fam);
        sb_printf(b, "}");
        return;
    case EOP_POW:
        if (e->a->op == EOP_TERM && strstr(term_tex[e->a->id], "$p")) { /* a subscript */
            sb_printf(b, "\\left(");
            tex(b, e->a, fam);
            sb_printf(b, "\\right)");
        } else {
            tex_child(b, e->a, 5, fam);
        }
        sb_printf(b, "^{");
        tex(b, e->b, fam);
        sb_printf(b, "}");
        return;
    case EOP_NEG:
        sb_printf(b, "-");
        tex_child(b, e->a, 3, fam);
        return;
    case EOP_SQRT:
        sb_printf(b, "\\sqrt{");
        tex(b, e->a, fam);
        sb_printf(b, "}");
        return;
    case EOP_ABS:
        sb_printf(b, "\\left|");
        tex(b, e->a, fam);
        sb_printf(b, "\\right|");
        return;
    case EOP_SUM:
        sb_printf(b, "\\sum_{j} ");
        tex_child(b, e->a, 2, fam);
        return;
    default:
        sb_printf(b, "%s\\left(", fn[e->op] ? fn[e->op] : op_name[e->op]);
        tex(b, e->a, fam);
        if (e->b) {
            sb_printf(b, ", ");
            tex(b, e->b, fam);
        }
        sb_printf(b, "\\right)");
        return;
    }
}

static void param_text(Sb *b, const Expr *e, int fam, int lang) {
    char num[40];
    if (e->a && lang == TEX) {
        tex(b, e->a, fam);
    } else if (e->a) {
        py_expr(b, e->a, fam, lang);
    } else {
        fmt_num(term_def[e->id], num, sizeof num);
        sb_printf(b, "%s", num);
    }
}

char *expr_export(const Expr *e, int family, const char *format, char *err) {
    Sb b = {0};
    char *canon_text = NULL;
    Expr *c = NULL;
    if (!e || !format) {
        ld_err(err, LD_EINVAL, "export: no expression or format");
        return NULL;
    }
    int rc = expr_check(e, family, err);
    if (rc) return NULL;
    c = expr_canonical(e);
    {
        /* canonical text, grown until it fits */
        size_t cap = 256;
        for (;;) {
            char *t = realloc(canon_text, cap);
            if (!t) goto oom;
            canon_text = t;
            if (!c || expr_print(c, canon_text, cap) >= 0) break;
            cap *= 2;
        }
        if (!c) goto oom;
    }
    if (strcmp(format, "pytorch") == 0 || strcmp(format, "torch") == 0) {
        py_function(&b, e, family, PY_TORCH, canon_text);
    } else if (strcmp(format, "numpy") == 0) {
        py_function(&b, e, family, PY_NUMPY, canon_text);
    } else if (strcmp(format, "latex") == 0) {
        tex(&b, e, family);
        sb_printf(&b, "\n");
    } else if (strcmp(format, "expr") == 0) {
        sb_printf(&b, "%s\n", canon_text);
    } else {
        ld_err(err, LD_EINVAL, "export: unknown format '%s' (pytorch, numpy, latex or expr)", format);
        goto fail;
    }
    if (b.oom) goto oom;
    free(canon_text);
    expr_free(c);
    return b.s;
oom:
    ld_err(err, LD_ENOMEM, "export: out of memory");
fail:
    free(b.s);
    free(canon_text);
    expr_free(c);
    return NULL;
}
