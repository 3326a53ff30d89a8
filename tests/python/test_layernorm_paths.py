"""The CPU paths of I-LayerNorm and I-BERT LayerNorm's QAT forms at the bounds of their shorter forms
(csrc/cpu/layernorm_simd.h): the float64 output pass, taken when every |bias_int| ≤ 2^50, at and beyond that bound;
I-BERT's 22-bit float codes at the ends of the declared range, near ties, and values without a code; PTF
LayerNorm's float32 stores and its constants kept across calls. Each against the reference bit for bit, on every CPU
path (test_cpu_paths.py's `isa` fixture)."""
import pytest
import torch

from mnq import ops, reference
from cpu_paths_util import codes, dequant, isa, near_ties, same_bits  # noqa: F401 (isa: the fixture)
from test_cpu_paths import check_layernorm

LIM = {"ilayernorm": 2**15, "ibert_layernorm": 2**21}


@pytest.mark.parametrize("name", ["ilayernorm", "ibert_layernorm"])
@pytest.mark.parametrize("beta", [2.0**22, -(2.0**22), 2.0**22 + 1, 2.0**23 - 1, -(2.0**23 - 1), 2.0**23, 2.0**24])
def test_qat_output_at_the_bias_bound(isa, name, beta):
    """C = 16, γ = 1: Sy = 2^−28, so bias_int = β·2^28 for channel 3: 2^50 (the float64 output form's bound), just
    above it, 2^51 − 2^28 (where yn ≈ ±2^30 would carry K + v past 2^53 if the bound let it through) and beyond.
    Rows: spikes (|yn| near 2^30 on one element), both signs, a constant row, random codes; odd and even f."""
    lim, cols = LIM[name], 16
    g = torch.Generator().manual_seed(11)
    q = codes(8, cols, -lim, lim - 1, lim / 8, g)
    q[2], q[2, 3] = -lim, lim - 1  # a spike up in the large-bias channel
    q[3], q[3, 3] = lim - 1, -lim  # and down
    q[4, ::2], q[4, 1::2] = lim - 1, -lim  # the largest variance
    q[5] = -lim  # constant: out = bias_int
    w = torch.rand(cols, generator=g) + 0.5
    w[3] = 1.0
    b = torch.randn(cols, generator=g) * 0.1
    b[3] = beta
    check_layernorm(name, q, 6.0 / lim, w, b)
    bias_int = reference._ln_bias_and_scale(w, b, cols)[0]
    assert int(bias_int[3]) == int(beta * 2**28)  # the crafted bound


def test_ibert_qat_wide_codes(isa):
    """22-bit codes from float32 values (rounded in float64, one conversion): near ties up to the range's ends."""
    g = torch.Generator().manual_seed(12)
    scale = 6.0 / 2**21
    for cols in (1, 7, 16, 17, 197, 385):
        x, qx = near_ties(4, cols, scale, 2**21 - 1, g)
        x[1, 0] = (-(2**21) * scale)  # the ends of the declared range
        x[2, -1] = ((2**21 - 1) * scale)
        qx = torch.round(x.double() * (1.0 / scale)).to(torch.int32)
        assert int(qx.min()) >= -(2**21) and int(qx.max()) <= 2**21 - 1
        w = torch.rand(cols, generator=g) + 0.5
        b = torch.randn(cols, generator=g) * 0.1
        want, s_out = reference.ibert_layernorm(qx, scale, w, b)
        value, _ = ops.ibert_layernorm_qat(x, scale, w, b)
        assert torch.equal(value, dequant(want, s_out))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 2.0**21, -(2.0**21) - 1, 1e30, -3e9])
def test_ibert_qat_values_without_a_code(isa, bad):
    """A value whose code is outside [−2^21, 2^21 − 1] (beyond int32 too: the conversion's "integer indefinite"
    must fail the range test), NaN or ±inf: its row is NaN, every other row exact."""
    g = torch.Generator().manual_seed(13)
    scale, cols = 6.0 / 2**21, 33
    q = codes(4, cols, -(2**21), 2**21 - 1, 2**19, g)
    w = torch.rand(cols, generator=g) + 0.5
    b = torch.randn(cols, generator=g) * 0.1
    x = (q.double() * scale).float()
    for col in (0, 16, cols - 1):
        xb = x.clone()
        xb[2, col] = bad * scale if abs(bad) < float("inf") else bad
        value, s_out = ops.ibert_layernorm_qat(xb, scale, w, b)
        assert torch.isnan(value[2]).all()
        keep = torch.tensor([0, 1, 3])
        assert torch.equal(value[keep], dequant(reference.ibert_layernorm(q[keep], scale, w, b)[0], s_out))


@pytest.mark.parametrize("rows", [1, 7, 8, 9, 16, 17, 23])
def test_ibert_rows_in_groups(isa, rows):
    """I-BERT LayerNorm's rows in groups of 8 (csrc/cpu/ibert_layernorm.cpp rows_simd: the group's load passes,
    then its shift searches, then its output passes): group tails, and in every group rows of every kind side by
    side — shift 0 (V(0) < 2^32), the usual shift, the widest codes, a constant row — so that a row given another
    row's mean, var or factor fails."""
    g = torch.Generator().manual_seed(14)
    for cols in (5, 16, 33, 197):
        q = codes(rows + 1, cols, -(2**21), 2**21 - 1, 2**18, g)[-rows:]
        for r in range(rows):
            kind = r % 4
            if kind == 1:
                q[r] = torch.randint(-300, 300, (cols,), generator=g, dtype=torch.int32) + 1000 * r  # shift 0
            elif kind == 2:
                q[r, ::2], q[r, 1::2] = 2**21 - 1, -(2**21)
            elif kind == 3 and r > 4:
                q[r] = -7 * r
        check_layernorm("ibert_layernorm", q, 6.0 / 2**21, torch.rand(cols, generator=g) + 0.5,
                        torch.randn(cols, generator=g) * 0.1)


@pytest.mark.parametrize("bad_row", [0, 9, 18])
def test_ibert_qat_bad_row_in_a_later_group(isa, bad_row):
    """A value without a code in the first, the second or the last (partial) group of 19 rows: its row is NaN,
    every other row exact (the rejected group stops the pass; the NaN policy recomputes the rest)."""
    g = torch.Generator().manual_seed(15)
    scale, cols, rows = 6.0 / 2**21, 40, 19
    q = codes(rows, cols, -(2**21), 2**21 - 1, 2**19, g)
    w = torch.rand(cols, generator=g) + 0.5
    b = torch.randn(cols, generator=g) * 0.1
    x = (q.double() * scale).float()
    x[bad_row, 3] = float("nan")
    want, s_out = reference.ibert_layernorm(q, scale, w, b)
    value, _ = ops.ibert_layernorm_qat(x, scale, w, b)
    keep = torch.arange(rows) != bad_row
    assert torch.equal(value[keep], dequant(want, s_out)[keep])
    assert bool(value[bad_row].isnan().all())


@pytest.mark.parametrize("cols", [16, 17, 197, 385])
def test_ptf_qat_float32_stores(isa, cols):
    """PTF LayerNorm QAT with S_next = 4/127 and |γ| ≤ 1.5, where the AVX-512 float32 pass 2 stores its values
    through fake_store32's certified pair (codes in [−512, 511]): rows with a spike (codes far beyond 511 on one
    element, both signs), rows of small values (codes 0 from a negative num: +0.0, not −0.0), a constant row and a
    NaN row; each value bit for bit against the reference's float32(float64(code)·S_next)."""
    g = torch.Generator().manual_seed(21)
    alpha = torch.randint(0, 4, (cols,), generator=g)
    s_base, s_next = 6.0 / 127 / 8, 4.0 / 127
    w = torch.rand(cols, generator=g) + 0.5
    w[0] = -w[0]
    w[cols // 2], w[-1] = 1.9, -1.9  # the spikes' channels: max|γ/S_next|·8 + max|β/S_next| stays below 511
    b = torch.randn(cols, generator=g) * 0.1
    q = codes(10, cols, -(2**15), 2**15 - 1, 60, g)
    q[2], q[2, cols // 2] = 1, 2**15 - 1  # a spike up: |z| ≈ √C (codes beyond 511 need |z| > 8: C ≥ 66)
    q[3], q[3, -1] = -1, -(2**15)  # and down, in the tail
    q[4] = torch.randint(-2, 3, (cols,), generator=g)  # small codes: many outputs near 0
    q[5, ::2] = 2**15 - 1  # a bimodal row
    s_c = s_base * 2.0 ** alpha.double()
    x = (q.double() * s_c).float()
    x[7, cols // 3] = float("nan")
    value, _ = ops.ptf_layernorm_qat(x, alpha, s_base, w, b, s_next)
    want = dequant(reference.ptf_layernorm(q, alpha, s_base, w, b, s_next)[0], s_next)
    assert value[7].isnan().all()
    keep = torch.arange(q.shape[0]) != 7
    assert same_bits(value[keep], want[keep])
    assert (want[keep] == 0).any()
    assert cols < 66 or (want[keep].abs() > 511 * s_next).any()


def test_ptf_constants_kept_across_calls(isa):
    """The front end keeps a call's constants for the next call with the same α, γ, β, s_base and S_next (bit for
    bit, with their dtypes): changing any of them in place, or its dtype, must give the new parameters' result; a
    call whose parameters are invalid raises even right after a valid one with the same tensors."""
    g = torch.Generator().manual_seed(22)
    cols = 33
    alpha = torch.randint(0, 4, (cols,), generator=g)
    w = torch.rand(cols, generator=g) + 0.5
    b = torch.randn(cols, generator=g) * 0.1
    s_base, s_next = 6.0 / 127 / 8, 4.0 / 127
    q = codes(5, cols, -(2**15), 2**15 - 1, 60, g)

    def check(alpha, w, b, s_base, s_next):
        want = reference.ptf_layernorm(q, alpha, s_base, w, b, s_next)[0]
        for _ in range(2):
            got, _ = ops.ptf_layernorm(q, alpha, s_base, w, b, s_next)
            assert torch.equal(got, want)
            x = (q.double() * s_base * 2.0 ** alpha.double()).float()
            value, _ = ops.ptf_layernorm_qat(x, alpha, s_base, w, b, s_next)
            assert same_bits(value, dequant(want, s_next))

    check(alpha, w, b, s_base, s_next)
    b[5] = 0.25  # in place: same tensors, new values
    check(alpha, w, b, s_base, s_next)
    w[cols - 1] = -2.0
    check(alpha, w, b, s_base, s_next)
    alpha[0] = (alpha[0] + 1) % 4
    check(alpha, w, b, s_base, s_next)
    check(alpha, w, b, s_base, s_next * 1.5)
    check(alpha, w, b, s_base * 0.5, s_next)
    check(alpha, w.double(), b, s_base, s_next)
    check(alpha, w, b.double(), s_base, s_next)
    check(alpha.int(), w, b, s_base, s_next)
    check(alpha, w, b, s_base, s_next)
    b[3] = float("inf")
    with pytest.raises(ValueError, match=r"bias\[3\]"):
        ops.ptf_layernorm(q, alpha, s_base, w, b, s_next)
    b[3] = 0.0
    check(alpha, w, b, s_base, s_next)
    with pytest.raises(ValueError, match="scale_next"):
        ops.ptf_layernorm(q, alpha, s_base, w, b * 1e6, 1e-12)


# I-BERT QAT's offset codes (csrc/cpu/ibert_layernorm.cpp float_codes): r = fl64(x·inv) + (2^52 + 3·2^21) rounded
# to nearest, its code valid iff bits(r) lies in one 2^22 block. With S = 2^−20, x·inv = x·2^20 exactly, so these
# values put x·inv on the edges: the ties at both ends, a quarter inside and outside, and values whose sum r leaves
# the binade [2^52, 2^53) below (r small, 0 or negative) or above.
_EDGE_VALID = [-(2.0**21) - 0.5, -(2.0**21), -(2.0**21) + 0.5, 2.0**21 - 0.75, 2.0**21 - 1, 2.0**21 - 1.5, 0.5, -0.5,
               1.5, -2.5, 0.0, -0.0, -(2.0**-100), 2.0**-30]
_EDGE_BAD = [-(2.0**21) - 0.75, -(2.0**21) - 1, 2.0**21 - 0.5, 2.0**21, 2.0**22 + 2.0**21, -(2.0**22) - 2.0**21,
             -(2.0**52), -(2.0**52) - 2.0**30, -(2.0**53), 2.0**52, 2.0**53, -(2.0**60), 2.0**100]


@pytest.mark.parametrize("col", [0, 15, 16, 18])
def test_ibert_qat_code_edges(isa, col):
    """Each edge value in row 1 at a column of the first 16-step, the next and the tail (cols = 19): a valid one
    gives the reference's values (its code rint(x·inv), ties to even), a bad one a NaN row 1; rows 0 and 2 exact."""
    g = torch.Generator().manual_seed(16)
    scale, cols = 2.0**-20, 19
    q = codes(3, cols, -(2**21), 2**21 - 1, 2**19, g)
    w = torch.rand(cols, generator=g) + 0.5
    b = torch.randn(cols, generator=g) * 0.1
    for v in _EDGE_VALID + _EDGE_BAD:
        x = (q.double() * scale).float()
        x[1, col] = v * scale
        assert float(x[1, col]) * 2.0**20 == v  # exact in float32
        qx = torch.round(x.double() * 2.0**20)
        valid = v in _EDGE_VALID
        assert valid == bool((qx[1].abs() <= 2**21).all() and qx[1].max() < 2**21)
        value, s_out = ops.ibert_layernorm_qat(x, scale, w, b)
        keep = torch.tensor([0, 1, 2] if valid else [0, 2])
        want = reference.ibert_layernorm(qx[keep].to(torch.int32), scale, w, b)[0]
        assert torch.equal(value[keep], dequant(want, s_out)), v
        assert valid or bool(value[1].isnan().all()), v


@pytest.mark.parametrize("cols", [16, 19, 33])
def test_ibert_qat_rows_of_small_std_far_from_zero(isa, cols):
    """Constant and near-constant rows at both ends of the range: std 1 (f = 2^31), 2 (f = 2^30), 3, 4, with odd and
    even means — the output pass's −m'·f/2 (m' = mean + 3·2^21 up to 2^23) must stay exact, and y·f/2 with it."""
    g = torch.Generator().manual_seed(17)
    rows = []
    for base in (2**21 - 1, 2**21 - 2, 2**21 - 5, -(2**21), -(2**21) + 1, -(2**21) + 4, 3, -4):
        rows.append(torch.full((cols,), base, dtype=torch.int32))
        for spread in (1, 2, 3):
            d = torch.randint(-spread, spread + 1, (cols,), generator=g, dtype=torch.int32)
            rows.append(torch.clamp(base + d, -(2**21), 2**21 - 1).to(torch.int32))
    q = torch.stack(rows)
    std_one = (q - q.double().mean(1, keepdim=True).round().int()).square().sum(1) < 4  # isqrt(V(0)) = 1: f = 2^31
    assert bool(std_one.any()) and not bool(std_one.all())
    check_layernorm("ibert_layernorm", q, 6.0 / 2**21, torch.rand(cols, generator=g) + 0.5,
                    torch.randn(cols, generator=g) * 0.1)
