"""The short rows of the table softmaxes (I-BERT softmax, Shiftmax) on every CPU path, bit for bit against the
reference: the AVX-512 rows look e up in registers (row_codes_simd.h row_table16_exps) where every d = m − q of
the row is ≤ 255 or the table's clamp lim is, and gather it otherwise. Rows of every kind side by side (8-bit
codes, spans of exactly 255, 256 and more, constant rows, int32 extremes), the max and min in any column (tails
of 1..15 lanes of a 16- and a 32-lane step), row lengths 1..70, tables with lim below and above 255 and with
entries below and above 2^16."""
import pytest
import torch

from mnq import ops, reference

from cpu_paths_util import dequant, isa  # noqa: F401 (isa: the fixture)


def span_rows(rows, cols, g, extremes=True):
    """int32 codes, row r of kind r % 7: random 8-bit codes; spans of exactly 255, 256, 257 and 300..1000 (the max
    and the min at columns that move with r); a constant row; codes across all of int32 (extremes) or of ±2^20."""
    q = torch.randint(-128, 128, (rows, cols), generator=g, dtype=torch.int64)
    for r in range(rows):
        kind = r % 7
        hi = int(torch.randint(-1000, 1000, (1,), generator=g))
        if kind in (1, 2, 3, 4):
            span = (255, 256, 257, int(torch.randint(300, 1000, (1,), generator=g)))[kind - 1]
            q[r] = hi - torch.randint(0, span + 1, (cols,), generator=g)
            q[r, (r // 7) % cols] = hi
            if cols > 1:
                q[r, (r // 7 + 1 + r % 5) % cols] = hi - span
        elif kind == 5:
            q[r] = hi
        elif kind == 6:
            b = 2**31 if extremes else 2**20
            q[r] = torch.randint(-b, b, (cols,), generator=g)
            if extremes and cols > 1:
                q[r, 0], q[r, -1] = 2**31 - 1, -(2**31)
    return q.to(torch.int32)


def check(op, q, scale, *args):
    """The integer op and its QAT form on q·S (exact codes) against the reference."""
    got, s_out = getattr(ops, op)(q, scale, *args)
    want, _ = getattr(reference, op)(q, scale, *args)
    assert torch.equal(got.long(), want.long()), (op, q.shape, scale, args)
    if q.abs().max() < 2**22:  # float32 holds q·S closely enough that rint(x/S) = q
        value, _ = getattr(ops, op + "_qat")((q.double() * scale).float(), scale, *args)
        assert torch.equal(value, dequant(want, s_out)), (op, q.shape, scale, args)


def rows_for(cols, lim):
    """Enough rows that the call's table pays off (iexp_table.h use_table: 4·(lim + 1) elements) and every kind
    meets every other."""
    return max(35, -(-4 * (lim + 2) // cols))


@pytest.mark.parametrize("cols", range(1, 71))
def test_ibert_softmax_rows(isa, cols):
    g = torch.Generator().manual_seed(cols)
    for scale in (8.0 / 127, 0.1):  # lim = 30·|x0| = 330 (rows of span ≤ 255 in registers), 210 (every row)
        q = span_rows(rows_for(cols, 330), cols, g)
        check("ibert_softmax", q, scale, 16)
        check("ibert_softmax", q[:, : max(1, cols // 2)].contiguous(), scale, 8)


@pytest.mark.parametrize("cols", [1, 17, 50, 197])
def test_ibert_softmax_rows_large_lim(isa, cols):
    """S = 1e-3: lim = 30·694, far above 255 (only rows of span ≤ 255 in registers)."""
    g = torch.Generator().manual_seed(100 + cols)
    check("ibert_softmax", span_rows(rows_for(cols, 20820), cols, g), 1e-3, 16)


@pytest.mark.parametrize("cols", range(1, 71))
def test_shiftmax_rows(isa, cols):
    g = torch.Generator().manual_seed(200 + cols)
    q = span_rows(rows_for(cols, 0), cols, g)
    # (S, n): lim ≈ 170 with entries up to 2^19 (the analyzer's), lim ≈ 360 wide, lim ≈ 280 with entries below
    # 2^16 (one register table), lim ≈ 14 narrow.
    for scale, n in ((8.0 / 127, 15), (0.03, 15), (0.02, 8), (8.0 / 127, 1)):
        check("shiftmax", q, scale, 16, n)


@pytest.mark.parametrize("cols", [63, 64, 65, 197, 1100])
def test_shiftmax_rows_large_sums(isa, cols):
    """Row sums past 2^32 (e up to 2^30 at n = 26): the register rows sum in uint32 lanes only when cols·max(e) <
    2^32 (SoftmaxTable16.sum32), else in uint64 lanes; constant and near-constant rows put ~cols/16 maxima in a
    lane."""
    g = torch.Generator().manual_seed(300 + cols)
    q = span_rows(rows_for(cols, 0), cols, g, extremes=False)
    q[::3] = 5
    q[1::3, ::2] = -3
    for scale, n in ((8.0 / 127, 26), (8.0 / 127, 22)):
        check("shiftmax", q, scale, 16, n)


@pytest.mark.parametrize("cols", [1, 16, 50, 197])
def test_qat_rows_with_bad_codes(isa, cols):
    """A NaN, an inf or a code beyond int32 in any row of a call (the vector rows stop at the first such row; the
    op then reruns without them): NaN in that row's outputs, every other row as without it (SPEC §5)."""
    g = torch.Generator().manual_seed(400 + cols)
    scale = 8.0 / 127
    q = span_rows(rows_for(cols, 330), cols, g, extremes=False)
    x = (q.double() * scale).float()
    ops_ = (("shiftmax_qat", ()), ("ibert_softmax_qat", ()), ("log_int_softmax_qat", (4,)))
    clean = {name: getattr(ops, name)(x, scale, *a)[0] for name, a in ops_}
    for bad_row in (0, 1, 2, 3, q.shape[0] - 1):
        xb = x.clone()
        xb[bad_row, (bad_row * 7) % cols] = (float("nan"), float("inf"), 1e10 * scale, -float("inf"))[bad_row % 4]
        for name, a in ops_:
            got = getattr(ops, name)(xb, scale, *a)[0]
            assert torch.isnan(got[bad_row]).all(), (name, bad_row)
            keep = torch.arange(q.shape[0]) != bad_row
            assert torch.equal(got[keep], clean[name][keep]), (name, bad_row)


def check_lis(q, scale, bits):
    code, mask = ops.log_int_softmax(q, scale, bits)
    want_code, want_mask = reference.log_int_softmax(q, scale, bits)
    assert torch.equal(code.long(), want_code.long()) and torch.equal(mask, want_mask), (q.shape, scale, bits)
    if q.abs().max() < 2**22:
        value, _ = ops.log_int_softmax_qat((q.double() * scale).float(), scale, bits)
        assert torch.equal(value, reference.log_int_softmax_value(want_code, want_mask).float()), (q.shape, scale)


@pytest.mark.parametrize("cols", [1, 2, 15, 16, 17, 33, 49, 50, 95, 96, 97, 197])
def test_log_int_softmax_rows(isa, cols):
    """Log-Int-Softmax's short rows (under 96 columns every half computes the first two threshold tests) and i-exp's
    register form with p in two registers (|x0| = 11) and in four (|x0| = 33..64: the analyzer's score scales
    ~0.013, |x0| = 64 at S = ln2/63.5); |x0| = 65 gathers."""
    g = torch.Generator().manual_seed(500 + cols)
    for scale in (8.0 / 127, 0.0133, 0.6931471805599453 / 63.5, 0.6931471805599453 / 64.5):
        q = span_rows(rows_for(cols, 30 * 65), cols, g)
        for bits in (4, 8):
            check_lis(q, scale, bits)
