"""quantize and requant on every CPU path (csrc/cpu/isa.h: AVX-512, AVX2 and scalar) against the reference, bit for
bit, integer and fake-quant (QAT) forms: row lengths around the vector widths, per-tensor and per-channel scales
(last dim and earlier axes), residuals, near-ties, multipliers small and full, flat views of per-tensor sides."""
import pytest
import torch

from mnq import ops, reference

from cpu_paths_util import dequant, isa, near_ties, same_bits  # noqa: F401 (isa: the fixture)


@pytest.mark.parametrize("cols", [7, 16, 33, 384])
def test_requant_dyadic_full_multiplier(isa, cols):
    """requant_dyadic accepts |m| = 2^31, beyond the vector paths' signed 32-bit multiply: every path must give
    round(q·m / 2^k) (exact in float64 here: |q·m| < 2^53), with and without the residual."""
    g = torch.Generator().manual_seed(7)
    q = torch.randint(-2**20, 2**20, (5, cols), generator=g, dtype=torch.int32)
    for m, k in [(2**31, 40), (-2**31, 33), (2**31 - 1, 40)]:
        want = torch.clamp(torch.round(q.double() * m / 2.0**k), -2**31, 2**31 - 1).to(torch.int32)
        got = ops.requant_dyadic(q, torch.tensor(m), torch.tensor(k), 32)
        assert torch.equal(got, want), (m, k)
        both = torch.clamp(torch.round(q.double() * m / 2.0**k) * 2, -2**31, 2**31 - 1).to(torch.int32)
        got = ops.requant_dyadic(q, torch.tensor(m), torch.tensor(k), 32, q, torch.tensor(m), torch.tensor(k))
        assert torch.equal(got, both), (m, k)


@pytest.mark.parametrize("cols", [7, 16, 33, 384])
def test_quantize_and_requant_qat_forms(isa, cols):
    """quantize / requant and their fake-quant forms on QAT-like input (values fl32(q·S), some near-ties, a NaN-free
    spread of codes past the 8-bit clamp) through the ops, per-tensor and per-column scales, with and without the
    residual, 4- and 8-bit outputs: the float32 stores (csrc/cpu/fake_store_simd.h) and requant's float32 form
    (requant_f32_simd.h) must give the reference's values bit for bit."""
    g = torch.Generator().manual_seed(cols)
    s16 = 6.0 / 32767
    for per_column in (False, True):
        s_in = torch.full((cols,), s16, dtype=torch.float64)
        if per_column:
            s_in = s_in * (1 + 0.01 * torch.arange(cols, dtype=torch.float64))
        q = torch.clamp(torch.round(torch.randn(24, cols, generator=g) * 6000), -32768, 32767).to(torch.int32)
        qb = torch.clamp(torch.round(torch.randn(24, cols, generator=g) * 3000), -32768, 32767).to(torch.int32)
        x = (q.double() * s_in).float()
        xb = (qb.double() * s_in).float()
        x[3] = near_ties(1, cols, s16, 3000, g)[0][0]  # a row of near-ties
        qx = torch.round(x.double() / s_in).to(torch.int32)
        sin = s_in if per_column else s_in[:1].reshape(())
        for s_out, bits in ((0.05, 8), (6.0 / 127, 8), (0.064913024504979336, 8), (0.4, 4)):
            for residual in (False, True):
                ident = (qb, sin) if residual else (None, None)
                want = reference.requant_act(q, sin, s_out, bits, qb if residual else None, sin if residual else None)
                assert torch.equal(ops.requant(q, sin, s_out, bits, *ident).long(), want)
                identf = (xb, sin) if residual else (None, None)
                want_f = reference.requant_act(qx, sin, s_out, bits, qb if residual else None,
                                               sin if residual else None)
                assert torch.equal(ops.requant_qat(x, sin, s_out, bits, *identf), dequant(want_f, s_out))
            want_q = reference.quantize(x, s_out, bits)
            assert torch.equal(ops.quantize(x, s_out, bits).long(), want_q)
            assert torch.equal(ops.quantize_qat(x, s_out, bits), dequant(want_q, s_out))


@pytest.mark.parametrize("cols", [16, 33, 40, 384])
def test_requant_qat_small_multipliers(isa, cols):
    """requant's one-rounding float32 form (csrc/cpu/requant_fused_simd.h: small S_in/S_out) on arbitrary float input
    (not code multiples, so the code's own rounding moves q·md by up to |md|/2), a 16-bit residual onto 8 bits and
    an I-BERT-GELU-like accumulator (codes ~1e11 on tiny per-column scales) onto 8 and 4 bits, per-tensor and
    per-column, with NaN, ±inf and ±0 lanes: the reference's values bit for bit on every path."""
    g = torch.Generator().manual_seed(100 + cols)
    s16 = 6.0 / 32767
    cases = [(s16, 6.0, 0.05), (4.0e-11, 5.0, 0.047)]  # (S_in, value spread, S_out)
    for s0, spread, s_out in cases:
        for per_column in (False, True):
            s_in = torch.full((cols,), s0, dtype=torch.float64)
            if per_column:
                s_in = s_in * (1 + 0.013 * torch.arange(cols, dtype=torch.float64))
            x = (torch.randn(24, cols, generator=g, dtype=torch.float64) * spread / 3).float()
            xb = (torch.randn(24, cols, generator=g, dtype=torch.float64) * spread / 3).float()
            x[0, :4] = torch.tensor([float("nan"), float("inf"), -0.0, 0.0])
            x[1, 1::5] = -float("inf")
            sin = s_in if per_column else s_in[:1].reshape(())
            qx = torch.round(x.double() / s_in)
            qb = torch.round(xb.double() / s_in)
            bad = ~torch.isfinite(qx)
            for bits in (8, 4):
                for residual in (False, True):
                    want = reference.requant_act(torch.where(bad, 0.0, qx).long(), sin, s_out, bits,
                                                 qb.long() if residual else None, sin if residual else None)
                    want_f = dequant(want, s_out).masked_fill(bad, float("nan"))
                    identf = (xb, sin) if residual else (None, None)
                    got = ops.requant_qat(x, sin, s_out, bits, *identf)
                    assert torch.equal(got.view(torch.int32), want_f.view(torch.int32))  # NaN: its bits too


@pytest.mark.parametrize("shape,axis", [((192, 64), 0), ((64, 256), 0), ((6, 7, 5), 0), ((6, 7, 5), 1),
                                        ((3, 33, 17), 1), ((4, 2, 9), -2)])
def test_quantize_channels_before_the_last_dim(isa, shape, axis):
    """Per-channel scales on an axis before the last (a weight's output channels): runs of the trailing values share
    a scale and go through the per-tensor span paths (csrc/cpu/quant.cpp); run lengths around the vector widths,
    near-ties of each channel's scale, values past the clamp, 4..24 bits (the certified float32 form, and the exact
    float64 one beyond 19 bits), a NaN (NaN in the QAT form, an error in the integer one): the reference's codes."""
    g = torch.Generator().manual_seed(sum(shape) + axis)
    C = shape[axis]
    scale = torch.rand(C, generator=g, dtype=torch.float64) * 0.02 + 0.001
    view = [1] * len(shape)
    view[axis] = C
    sv = scale.reshape(view)
    k = torch.randint(-200, 200, shape, generator=g).double() + 0.5  # half-integers: ties, nudged below
    x = (k * sv).float()
    x = torch.where(torch.rand(shape, generator=g) < 0.5, torch.nextafter(x, torch.zeros(())), x)
    x.view(-1)[::7] = (torch.randn(x.numel(), generator=g)[::7] * 3).float()  # past the 8-bit clamp too
    for bits in (4, 8, 16, 24):
        want = reference.quantize(x, scale, bits, axis)
        assert torch.equal(ops.quantize(x, scale, bits, axis).long(), want), bits
        assert torch.equal(ops.quantize_qat(x, scale, bits, axis), (want.double() * sv).float()), bits
    xn = x.clone()
    xn.view(-1)[5] = float("nan")
    fake = ops.quantize_qat(xn, scale, 8, axis)
    assert torch.isnan(fake.view(-1)[5]) and torch.isnan(fake).sum() == 1
    with pytest.raises(ValueError, match="NaN"):
        ops.quantize(xn, scale, 8, axis)


@pytest.mark.parametrize("shape", [(64, 50), (16, 197), (3, 7, 49), (1031, 1), (2048,), (3000,), (5, 1029)])
def test_requant_per_tensor_flat_rows(isa, shape):
    """A requant whose sides are all per-tensor runs on the tensor as rows of 1024 values and one remainder row
    whatever its last dim (csrc/cpu/requant.cpp, kFlatCols): attention-score widths (50, 197, a Swin window's 49),
    1 and 1029 columns, remainders of 0, < 16 and > 16 values; int32 codes and QAT float values (near-ties and small
    multipliers included), 8- and 16-bit outputs, with and without a per-tensor residual; and a per-tensor input
    beside a per-channel residual (which must keep the row form): every element the reference's value."""
    g = torch.Generator().manual_seed(sum(shape))
    cols = shape[-1]
    s_in, s_id = 6.0 / 32767, 9.0 / 32767
    q = torch.clamp(torch.round(torch.randn(shape, generator=g) * 6000), -32768, 32767).to(torch.int32)
    qb = torch.clamp(torch.round(torch.randn(shape, generator=g) * 3000), -32768, 32767).to(torch.int32)
    x = (q.double() * s_in).float()
    flat = x.view(-1)
    n = min(flat.numel(), 600)
    flat[:n] = near_ties(1, n, s_in, 3000, g)[0][0]  # near-ties across the first rows
    qx = torch.round(x.double() / s_in).to(torch.int32)
    xb = (qb.double() * s_id).float()
    s_id_col = torch.full((cols,), s_id, dtype=torch.float64) * (1 + 0.01 * torch.arange(cols, dtype=torch.float64))
    xb_col = (qb.double() * s_id_col).float()
    for s_out, bits in ((0.05, 8), (6.0 / 127, 8), (0.4, 4), (1.3 * s_in, 16), (6.0 / 32767, 16)):
        for ident in (None, "tensor", "column"):
            if ident is None:
                args_i, args_f, want_id = (None, None), (None, None), (None, None)
            elif ident == "tensor":
                args_i, args_f, want_id = (qb, s_id), (xb, s_id), (qb, s_id)
            else:
                args_i, args_f, want_id = (qb, s_id_col), (xb_col, s_id_col), (qb, s_id_col)
            want = reference.requant_act(q, s_in, s_out, bits, *want_id)
            assert torch.equal(ops.requant(q, s_in, s_out, bits, *args_i).long(), want), (s_out, bits, ident)
            want_f = reference.requant_act(qx, s_in, s_out, bits, *want_id)
            got = ops.requant_qat(x, s_in, s_out, bits, *args_f)
            assert same_bits(got, dequant(want_f, s_out)), (s_out, bits, ident)


def test_requant_per_tensor_sides_change_between_calls(isa):
    """Consecutive requant calls whose per-tensor sides share the multiplier S_in/S_out but not S_in, S_in but not
    S_out, S_out but not S_in, the row length or the code dtype (a thread keeps the last per-tensor (m, k) and vector
    side of each input: csrc/ops/quant.cpp, csrc/cpu/requant.cpp): each call must give its own reference values."""
    g = torch.Generator().manual_seed(7)
    configs = ((0.01, 0.5, 384), (0.02, 1.0, 384), (0.02, 1.0, 40), (0.01, 0.5, 384), (0.01, 0.5, 384),
               (0.01, 0.25, 384), (0.03, 0.25, 384))
    for fake in (True, False, True):
        for s_in, s_out, cols in configs:
            x = (torch.randn(6, cols, generator=g, dtype=torch.float64) * 2).float()
            q = torch.round(x.double() / s_in).to(torch.int32)
            want = reference.requant_act(q, s_in, s_out, 8, q, s_in)
            if fake:
                assert torch.equal(ops.requant_qat(x, s_in, s_out, 8, x, s_in), dequant(want, s_out))
            else:
                assert torch.equal(ops.requant(q, s_in, s_out, 8, q, s_in).long(), want)


def _wide_inputs(rows, cols, s_in, spread, g, shift=0):
    """QAT-like values fl32(q·S_in) of 16-bit-and-wider codes (the block's residual stream): in row 0 the codes at
    and around ±2^15, ±2^16, ±2^21 and beyond, ±0, NaN and ±inf; a row of near-ties of x / S_in (off the grid), a row of
    arbitrary values, rows with one NaN, ±inf or −0.0 each (`shift` moves them), a row of arbitrary values up to 2^22
    and one of codes in [−2^18, −2^17), a row of near-ties of the smallest codes.
    Returns x and the definition's codes rint(x / S_in) (NaN, ±inf where x has none)."""
    s = torch.as_tensor(s_in, dtype=torch.float64)
    q = torch.round(torch.randn(rows, cols, generator=g, dtype=torch.float64) * spread)
    x = (q * s).float()
    edge = torch.tensor([32767, -32768, 32768, -32769, 65535, -65536, 2**21 - 1, 1 - 2**21, 2**21, -2**21, 2**21 + 1,
                         2**25, 0, 1, -1], dtype=torch.float64)
    n = min(cols, edge.numel())
    x[0, :n] = (edge[:n] * s.reshape(-1)[:n] if s.numel() > 1 else edge[:n] * s).float()
    specials = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0])
    if cols > n:
        m = min(cols - n, 4)
        x[0, n:n + m] = specials[:m]
    x[0] = x[0].roll(shift)
    for row, v in ((3, float("nan")), (4, float("inf")), (5, -0.0)):  # alone in their block (the others certified),
        if rows > row:                                                   # beside the other side's finite lanes
            x[row, (5 + shift) % cols] = v
    if rows > 2:
        base = s if s.numel() == 1 else s.mean()
        x[1] = near_ties(1, cols, float(base), 20000, g)[0][0] * (s / base).float()
        x[2] = (torch.randn(cols, generator=g, dtype=torch.float64) * spread * s).float()
    if rows > 6:  # arbitrary values whose codes reach beyond the form's 2^21 (float32 rounding there: ~2^−24·|x / S|)
        x[6] = ((torch.rand(cols, generator=g, dtype=torch.float64) - 0.5) * 2**23 * s).float()
    if rows > 7:  # codes in [−2^18, −2^17): within the code bound of multipliers up to 2, beyond that of 2^5
        x[7] = (torch.round(-(torch.rand(cols, generator=g, dtype=torch.float64) + 1) * 2**17) * s).float()
    if rows > 8:  # near-ties of the smallest codes (±1/2, ±3/2): the code test's constant margin
        base = s if s.numel() == 1 else s.mean()
        x[8] = near_ties(1, cols, float(base), 2, g)[0][0] * (s / base).float()
    return x, torch.round(x.double() / s)


def _wide_want(qx, sin, qb, sid, s_out, bits):
    bad = ~torch.isfinite(qx) | (~torch.isfinite(qb) if qb is not None else False)
    z = lambda v: torch.where(~torch.isfinite(v), 0.0, v).long()  # noqa: E731
    want = reference.requant_act(z(qx), sin, s_out, bits, z(qb) if qb is not None else None, sid)
    return dequant(want, s_out).masked_fill(bad, float("nan"))


@pytest.mark.parametrize("cols", [16, 17, 23, 31, 40, 47])
def test_requant_qat_wide_codes(isa, cols):
    """requant's float32 form for wide output ranges (csrc/cpu/requant_wide32_simd.h: 16-bit codes and the 16-bit
    residual onto 12, 16 or 24 bits, where fake_store32 cannot certify the store): multipliers near 1/2 and 1,
    exactly 1/2 and 3/4 (exact ties of the requant's rounding), tiny (large shifts), 2 and above (the code bound
    halves), 2^5 and above (the form's bound), output scales whose stores meet exact float32 ties (and the
    definition's double rounding), per-tensor and per-column sides, with and without the residual, every row length
    mod 16 over the parametrized widths, codes at ±2^15, ±2^16, the form's ±2^21 and beyond, NaN, ±inf, ±0 and
    values off the grid: the reference's values bit for bit (NaN where an input has no code, on one side or both) on
    every path."""
    g = torch.Generator().manual_seed(300 + cols)
    s16 = 6.0 / 32767
    # (S_in/S_out, S_id/S_out): near 1/2, near 1, exactly 1/2 and 3/4, tiny, at and above 2 (the code test's slope
    # doubles), near and above 2^5 (the form's bound)
    ratios = [(1 / 1.9 + 1e-7, 0.9 / 1.9 - 3e-8), (0.9999999, 0.03), (0.5, 0.75), (0.75, 0.5), (2.0**-30, 0.4),
              (2.0, 0.5), (2.25, 0.25), (31.7, 0.5), (32.5, 0.25)]
    for r_in, r_id in ratios:
        for per_column in (False, True):
            s_in = torch.full((cols,), s16, dtype=torch.float64)
            if per_column:
                s_in = s_in * (1 + 0.013 * torch.arange(cols, dtype=torch.float64))
            sin = s_in if per_column else s_in[:1].reshape(())
            for s_out_base in (s16 / r_in, 1 + 2.0**-24, 1 + 2.0**-24 + 2.0**-52, 2.0**-10 * (1 + 2.0**-24)):
                s_out = float(s_out_base)
                sin_x = sin * (s_out / (s16 / r_in))  # keeps S_in/S_out at r_in (per column: times the spread)
                sid = sin_x * (r_id / r_in)
                x, qx = _wide_inputs(9, cols, sin_x, 9000, g)
                xb, qb = _wide_inputs(9, cols, sid, 4000, g, shift=3)
                for bits in (16, 12, 24):
                    for residual in (False, True):
                        want = _wide_want(qx, sin_x, qb if residual else None, sid if residual else None, s_out, bits)
                        identf = (xb, sid) if residual else (None, None)
                        got = ops.requant_qat(x, sin_x, s_out, bits, *identf)
                        assert same_bits(got, want), (r_in, r_id, per_column, s_out, bits, residual)


def test_requant_qat_wide_code_margin(isa):
    """The wide float32 form's code test near code 0 (csrc/cpu/requant_wide32_simd.h, test E's constant margin
    2^−22): for this S_in, x = fl32(S_in/2) has P = x·fl32(1/S_in) just below 1/2 (fl32(P) too) while x / S_in is above
    it, so its code is 1, not rint(P) = 0; whole blocks of such values (and their negatives, beside exact codes) must
    give the reference's."""
    s_in = 6.0 / 32767 * (1 + 11 * 1.3e-6)
    x0 = torch.tensor(s_in / 2, dtype=torch.float64).float()
    p = x0.double() * torch.tensor(1 / s_in).float().double()
    assert p.float() < 0.5 < x0.double() / s_in  # the premise: rint(P) = 0, |fl32(P)| < 1/2, the code is 1
    x = x0.repeat(4, 32)
    x[1] = -x0
    x[2, ::2] = (torch.arange(16, dtype=torch.float64) * s_in).float()
    qx = torch.round(x.double() / s_in)
    for s_out in (s_in * 1.9, s_in * 0.75):
        for residual in (False, True):
            want = _wide_want(qx, s_in, qx if residual else None, s_in if residual else None, s_out, 16)
            got = ops.requant_qat(x, s_in, s_out, 16, *((x, s_in) if residual else (None, None)))
            assert same_bits(got, want), (s_out, residual)


def _alpha_error_in_row_order(x, s_base, bits):
    """PtfAct's α errors as kernels/quant.h quant_sq_error defines each term, summed per channel over the rows in
    order (float64 adds elementwise across channels, one row at a time: the kernels' order), so equal bit for bit."""
    lo, hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    x64 = x.double().reshape(-1, x.shape[-1])
    acc = torch.zeros(x64.shape[1], 4, dtype=torch.float64)
    for row in x64:
        for a in range(4):
            s = s_base * float(1 << a)
            q = torch.clamp(torch.round(row / s), lo, hi)
            d = row - q * s
            acc[:, a] += torch.where(torch.isnan(q), row, d * d)
    return acc


@pytest.mark.parametrize("cols", [1, 7, 8, 9, 16, 17, 31, 64, 67])
def test_ptf_alpha_error_every_path_sums_the_definition_in_row_order(isa, cols):
    """The AVX-512 α error (one division per element, fl(x / s)·2^−α for x / (s·2^α); csrc/cpu/quant_simd.h) and
    the scalar loop equal the definition summed row by row: channel blocks of 16 / 8 and their tails, clamped codes
    (|x| far beyond the 8-bit range at α = 0), half-integer ties at each α, zeros of both signs, ±inf, NaN, and
    quotients x / s below 2^−1021 (code 0 on both forms)."""
    g = torch.Generator().manual_seed(cols)
    s_base = 0.01
    x = torch.randn(13, cols, generator=g) * torch.logspace(-2, 1, cols)
    x[1] = (torch.arange(cols) % 9 - 4 + 0.5).float() * s_base * (1 << (cols % 4))  # ties on one α's grid
    x[2, 0] = float("nan")
    x[3, -1] = float("inf")
    x[4, cols // 2] = -float("inf")
    x[5, 0], x[6, -1] = 0.0, -0.0
    x[7, cols // 3] = 1e-38  # / s_base stays normal; the tiny-quotient case below
    got = ops.ptf_alpha_error(x, s_base, 8)
    assert torch.equal(got.nan_to_num(7.5), _alpha_error_in_row_order(x, s_base, 8).nan_to_num(7.5))
    # quotients x / s below 2^-1021 (x ~ 2^-149, s = 2^900): subnormal in float64 on both forms, code 0
    xs = torch.tensor([[1e-45, -1e-45, 3e-45, 0.0] * 3], dtype=torch.float32)[:, :cols]
    assert torch.equal(ops.ptf_alpha_error(xs, 2.0 ** 900, 8), _alpha_error_in_row_order(xs, 2.0 ** 900, 8))
