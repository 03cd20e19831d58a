#!/usr/bin/python3
"""gen_quant_ref.py: writes tests/quant_ref.h, the NumPy reference tests/test_quant.c checks
evaluator/quant.c against: fp16 and bf16 rounding, int8 symmetric per-channel weights, affine
per-tensor activation parameters and codes, fake quantisation and its straight-through gradient,
and the deployed MLP's outputs at fp32, fp16, bf16 and int8, all on fixed tensors generated here.

The reference is written in NumPy float32 (int64 for the integer accumulation), operation by
operation as docs/rl.md describes the scheme. Where PyTorch is importable (Debian's
python3-torch), independent PyTorch implementations are checked against it first: .half() and
.to(torch.bfloat16) for the rounding, PerChannelMinMaxObserver / MinMaxObserver for the
parameters, fake_quantize_per_channel_affine / fake_quantize_per_tensor_affine and autograd for
the fake quantisation and its gradient. The header says whether that check ran.

Run: /usr/bin/python3 tests/gen_quant_ref.py > tests/quant_ref.h
"""
import numpy as np

F = np.float32
EPS = F(np.finfo(np.float32).eps)
try:
    import torch
except ImportError:  # the NumPy reference stands alone
    torch = None


def rne(x):
    return np.rint(x)  # round half to even, element-wise, keeps float32


def fp16(x):
    with np.errstate(over="ignore"):  # overflow to inf is the point of some inputs
        return np.asarray(x, F).astype(np.float16).astype(F)


def bf16(x):
    """Round-to-nearest-even to bfloat16 on the bits (NaN kept)."""
    x = np.asarray(x, F)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(F)
    return np.where(np.isnan(x), x, r)


def weights_int8(w):
    """Symmetric per output channel (columns of w (C, OC)), [-127, 127]."""
    amax = np.max(np.abs(w), axis=0).astype(F)
    scale = np.maximum(amax / F(127), EPS).astype(F)
    inv = (F(1) / scale).astype(F)
    q = np.clip(rne((w * inv).astype(F)), -127, 127).astype(np.int8)
    return q, scale


def affine_params(lo, hi):
    lo, hi = min(F(lo), F(0)), max(F(hi), F(0))
    scale = max(F(F(hi - lo) / F(255)), EPS)
    zero = int(np.clip(F(0) - rne(F(lo / scale)), 0, 255))
    return F(scale), zero


def codes(x, scale, zero, qmin, qmax):
    inv = F(F(1) / F(scale))
    return (F(zero) + rne((x * inv).astype(F))).astype(F)  # unclamped


def fake(x, scale, zero, qmin, qmax):
    c = np.clip(codes(x, scale, zero, qmin, qmax), qmin, qmax)
    return ((c - F(zero)) * F(scale)).astype(F)


def fake_grad(dout, x, scale, zero, qmin, qmax):
    c = codes(x, scale, zero, qmin, qmax)
    return np.where((c >= qmin) & (c <= qmax), dout, F(0)).astype(F)


def act(z, kind):
    return np.maximum(z, F(0)) if kind == "relu" else np.tanh(z).astype(F)


def forward_fp32(ws, bs, x, kind):
    h = x
    for l, (w, b) in enumerate(zip(ws, bs)):
        z = (h @ w + b).astype(F)
        h = act(z, kind) if l < len(ws) - 1 else z
    return h


def forward_half(ws, bs, x, kind, rnd):
    h = rnd(x)
    for l, (w, b) in enumerate(zip(ws, bs)):
        z = rnd((h @ rnd(w) + rnd(b)).astype(F))
        h = rnd(act(z, kind)) if l < len(ws) - 1 else z
    return h


def calib_ranges(ws, bs, x, kind):
    lo, hi, h = [], [], x
    for l, (w, b) in enumerate(zip(ws, bs)):
        lo.append(F(h.min()))
        hi.append(F(h.max()))
        z = (h @ w + b).astype(F)
        h = act(z, kind) if l < len(ws) - 1 else z
    return lo, hi


def forward_int8(ws, bs, x, kind, lo, hi):
    h = x
    for l, (w, b) in enumerate(zip(ws, bs)):
        sx, zx = affine_params(lo[l], hi[l])
        c = np.clip(codes(h, sx, zx, 0, 255), 0, 255).astype(np.int64)
        wq, ws_ = weights_int8(w)
        s = (sx * ws_).astype(F)
        bq = np.clip(rne((b / s).astype(F)), -(2.0**30), 2.0**30).astype(np.int64)
        acc = bq + (c - zx) @ wq.astype(np.int64)
        z = (acc.astype(F) * s).astype(F)
        h = act(z, kind) if l < len(ws) - 1 else z
    return h


# ---- the tensors
rng = np.random.default_rng(20261206)


def rounding_inputs():
    special = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.996, 65520.0, -65520.0, 70000.0, 1e-8, -1e-8,
               2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-14, 2.0**-14 - 2.0**-25, 3.4e38, -3.4e38,
               1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1e-40, -1e-42,
               np.inf, -np.inf]
    halves = rng.integers(0, 0x7BFF, 200).astype(np.uint16).view(np.float16).astype(F)
    nxt = (halves.astype(np.float16).view(np.uint16) + 1).view(np.float16).astype(F)
    mids = ((halves.astype(np.float64) + nxt.astype(np.float64)) / 2).astype(F)  # exact ties
    normal = (rng.standard_normal(300) * np.exp(rng.uniform(-12, 12, 300))).astype(F)
    return np.concatenate([np.array(special, F), mids, normal]).astype(F)


def main():
    out = []
    w = out.append

    def arr(name, ctype, a, fmt):
        a = np.asarray(a).ravel()
        w("static const %s %s[%d] = {" % (ctype, name, len(a)))
        for i in range(0, len(a), 6):
            w("    " + ", ".join(fmt(v) for v in a[i:i + 6]) + ",")
        w("};")

    def ff(v):
        v = float(v)
        if np.isnan(v):
            return "NAN"
        if np.isinf(v):
            return "INFINITY" if v > 0 else "-INFINITY"
        return float(np.float32(v)).hex() + "f"

    def fi(v):
        return str(int(v))

    checked = []
    # rounding
    x = rounding_inputs()
    x = np.concatenate([x, np.array([np.nan], F)])
    r16, rb16 = fp16(x), bf16(x)
    if torch is not None:
        t = torch.from_numpy(x.copy())
        assert np.array_equal(t.half().float().numpy(), r16, equal_nan=True)
        assert np.array_equal(t.to(torch.bfloat16).float().numpy(), rb16, equal_nan=True)
        checked.append("fp16/bf16 rounding equal to torch .half() and .to(torch.bfloat16)")
    arr("ref_round_x", "float", x, ff)
    arr("ref_round_fp16", "float", r16, ff)
    arr("ref_round_bf16", "float", rb16, ff)

    # int8 weights (C=9, OC=5): a zero column and an outlier column
    W = (rng.standard_normal((9, 5)) * 0.3).astype(F)
    W[:, 3] = 0
    W[4, 1] = 2.5
    q, s = weights_int8(W)
    if torch is not None:
        obs = torch.ao.quantization.PerChannelMinMaxObserver(
            ch_axis=1, dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127)
        obs(torch.from_numpy(W))
        ts, tz = obs.calculate_qparams()
        assert np.array_equal(ts.numpy().astype(F), s) and not tz.any(), (ts, s)
        fq = torch.fake_quantize_per_channel_affine(torch.from_numpy(W), ts.float(), tz.int(), 1, -127, 127)
        assert np.array_equal(fq.numpy(), (q.astype(F) * s).astype(F))
        checked.append("int8 weight scales equal to PerChannelMinMaxObserver(per_channel_symmetric, -127..127), "
                       "dequantised weights to fake_quantize_per_channel_affine")
    arr("ref_w", "float", W, ff)
    arr("ref_wq", "int8_t", q, fi)
    arr("ref_wscale", "float", s, ff)

    # affine activation parameters for four observed ranges, codes and fake quantisation of xa
    ranges = [(-1.3, 2.7), (0.0, 5.1), (-3.0, -1.0), (0.0, 0.0)]
    xa = np.concatenate([rng.uniform(-4, 6, 120), [0, -1.3, 2.7, 5.1, -3, 1e-9]]).astype(F)
    dout = rng.standard_normal(len(xa)).astype(F)
    sc, zp, cod, fq, gr = [], [], [], [], []
    for lo, hi in ranges:
        a_s, a_z = affine_params(lo, hi)
        sc.append(a_s)
        zp.append(a_z)
        cod.append(np.clip(codes(xa, a_s, a_z, 0, 255), 0, 255))
        fq.append(fake(xa, a_s, a_z, 0, 255))
        gr.append(fake_grad(dout, xa, a_s, a_z, 0, 255))
        if torch is not None:
            obs = torch.ao.quantization.MinMaxObserver(dtype=torch.quint8)
            obs(torch.tensor([lo, hi], dtype=torch.float32))
            ts, tz = obs.calculate_qparams()
            assert F(ts.item()) == a_s and int(tz.item()) == a_z, (lo, hi, ts, tz, a_s, a_z)
            tx = torch.from_numpy(xa.copy()).requires_grad_(True)
            ty = torch.fake_quantize_per_tensor_affine(tx, float(a_s), int(a_z), 0, 255)
            ty.backward(torch.from_numpy(dout))
            assert np.array_equal(ty.detach().numpy(), fq[-1])
            assert np.array_equal(tx.grad.numpy(), gr[-1])
    if torch is not None:
        checked.append("affine parameters equal to MinMaxObserver(quint8), fake quantisation and its gradient "
                       "to fake_quantize_per_tensor_affine with autograd")
    arr("ref_ranges", "float", np.array(ranges, F), ff)
    arr("ref_aff_scale", "float", np.array(sc, F), ff)
    arr("ref_aff_zero", "int", np.array(zp), fi)
    arr("ref_xa", "float", xa, ff)
    arr("ref_dout", "float", dout, ff)
    arr("ref_codes", "int", np.array(cod), fi)
    arr("ref_fake", "float", np.array(fq), ff)
    arr("ref_fake_grad", "float", np.array(gr), ff)

    # per-channel fake quantisation's gradient on W pushed past its own scale (clamped entries)
    Wbig = (W * F(1.5)).astype(F)
    Wbig[0, :] = F(-2) * s * F(127)  # below -127 codes: clamped, zero gradient
    dW = rng.standard_normal(W.shape).astype(F)
    fq_w = np.clip(codes(Wbig, s, 0, -127, 127), -127, 127) * s
    gr_w = fake_grad(dW, Wbig, s, 0, -127, 127)
    if torch is not None:
        tw = torch.from_numpy(Wbig.copy()).requires_grad_(True)
        ty = torch.fake_quantize_per_channel_affine(tw, torch.from_numpy(s), torch.zeros(5, dtype=torch.int32),
                                                    1, -127, 127)
        ty.backward(torch.from_numpy(dW))
        assert np.array_equal(ty.detach().numpy(), fq_w.astype(F))
        assert np.array_equal(tw.grad.numpy(), gr_w)
        checked.append("per-channel fake quantisation and gradient equal to fake_quantize_per_channel_affine")
    arr("ref_wbig", "float", Wbig, ff)
    arr("ref_dw", "float", dW, ff)
    arr("ref_wbig_fake", "float", fq_w.astype(F), ff)
    arr("ref_wbig_grad", "float", gr_w, ff)

    # MLPs 5 -> 8 -> 6 -> 3, relu and tanh; calibration rows and evaluation rows (some beyond the
    # calibrated range, so codes clamp)
    dims = [5, 8, 6, 3]
    xc = rng.standard_normal((40, 5)).astype(F)
    xe = np.concatenate([rng.standard_normal((12, 5)), 3 * rng.standard_normal((4, 5))]).astype(F)
    arr("ref_xcal", "float", xc, ff)
    arr("ref_xeval", "float", xe, ff)
    for kind in ["relu", "tanh"]:
        ws = [(rng.standard_normal((dims[l], dims[l + 1])) * np.sqrt(2.0 / dims[l])).astype(F) for l in range(3)]
        bs = [(rng.standard_normal(dims[l + 1]) * 0.1).astype(F) for l in range(3)]
        params = np.concatenate([np.concatenate([w_.ravel(), b_]) for w_, b_ in zip(ws, bs)])
        lo, hi = calib_ranges(ws, bs, xc, kind)
        arr("ref_%s_params" % kind, "float", params, ff)
        arr("ref_%s_lo" % kind, "float", np.array(lo, F), ff)
        arr("ref_%s_hi" % kind, "float", np.array(hi, F), ff)
        arr("ref_%s_fp32" % kind, "float", forward_fp32(ws, bs, xe, kind), ff)
        arr("ref_%s_fp16" % kind, "float", forward_half(ws, bs, xe, kind, fp16), ff)
        arr("ref_%s_bf16" % kind, "float", forward_half(ws, bs, xe, kind, bf16), ff)
        arr("ref_%s_int8" % kind, "float", forward_int8(ws, bs, xe, kind, lo, hi), ff)

    head = ["/* quant_ref.h: GENERATED by tests/gen_quant_ref.py (a NumPy reference of evaluator/quant.c's",
            " * scheme); do not edit. Regenerate with /usr/bin/python3 tests/gen_quant_ref.py > tests/quant_ref.h",
            " * Checked against PyTorch %s when generated:" % (torch.__version__ if torch else "(not importable)")]
    head += [" *   " + c for c in checked] or [" *   (nothing: PyTorch was not importable)"]
    head += [" */", "#include <math.h>", "#include <stdint.h>", ""]
    print("\n".join(head + out))


if __name__ == "__main__":
    main()
