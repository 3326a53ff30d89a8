"""Every CPU path of the non-linear ops (csrc/cpu/isa.h: the explicit AVX-512 rows, and the loops the AVX2 and
scalar caps select) against the reference, bit for bit, for the integer op and its fake-quant (QAT) form: row
lengths around the vector widths (tails of 1..17 lanes), 197 and 385, constant rows, both ends of the declared
input range, zero and negative weights, several scales. A path the CPU lacks runs its best one."""
import pytest
import torch

from mnq import ops, reference

from cpu_paths_util import codes, dequant, isa, near_ties, same_bits  # noqa: F401 (isa: the fixture)

COLS = [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 197, 385]


def test_log_int_softmax(isa):
    g = torch.Generator().manual_seed(1)
    for cols in COLS:
        for scale in (8.0 / 127, 0.3, 3e-5):  # 3e-5: row sums past 2^61 (the 128-bit path)
            q = codes(4, cols, -128, 127, 40, g)
            for bits in (2, 4, 8):
                code, mask = ops.log_int_softmax(q, scale, bits)
                want_code, want_mask = reference.log_int_softmax(q, scale, bits)
                assert torch.equal(code.long(), want_code.long()) and torch.equal(mask, want_mask)
                value, _ = ops.log_int_softmax_qat((q.double() * scale).float(), scale, bits)
                assert torch.equal(value, reference.log_int_softmax_value(want_code, want_mask).float())
                x, qx = near_ties(3, cols, scale, 120, g)
                value, _ = ops.log_int_softmax_qat(x, scale, bits)
                assert torch.equal(value, reference.log_int_softmax_value(*reference.log_int_softmax(qx, scale, bits)).float())


def test_log_int_softmax_int32_extremes(isa):
    """Rows spanning all of int32 (differences past 2^31, the clamp at n·x0) and rows near either end, on the
    exponentials' register form (|x0| = 12, 3) and on the table of a scale past it (|x0| = 35; 24 rows, so that
    the table pays off)."""
    g = torch.Generator().manual_seed(7)
    q = torch.randint(-(2**31), 2**31, (24, 197), generator=g, dtype=torch.int64)
    q[0, :4] = torch.tensor([-(2**31), 2**31 - 1, 0, -(2**31)])
    q[1] = 2**31 - 1 - torch.randint(0, 400, (197,), generator=g)
    q[2] = -(2**31) + torch.randint(0, 400, (197,), generator=g)
    q = q.to(torch.int32)
    for scale in (8.0 / 127, 0.3, 0.0202):
        for bits in (4, 8):
            code, mask = ops.log_int_softmax(q, scale, bits)
            want_code, want_mask = reference.log_int_softmax(q, scale, bits)
            assert torch.equal(code.long(), want_code.long()) and torch.equal(mask, want_mask)


def test_shiftmax(isa):
    g = torch.Generator().manual_seed(10)
    for cols in COLS:
        # (out_bits, n): the defaults; 8- and 2-bit outputs; n = 22, where row 1 (constant) saturates the sum at
        # 2^31 − 1 from 32 columns on (f = 1); n = 1, the smallest table.
        for scale, out_bits, n in ((8.0 / 127, 16, 15), (0.3, 16, 15), (8.0 / 127, 8, 22), (0.3, 2, 1),
                                   (0.01, 16, 15)):
            q = codes(4, cols, -128, 127, 40, g)
            got, s_out = ops.shiftmax(q, scale, out_bits, n)
            want, _ = reference.shiftmax(q, scale, out_bits, n)
            assert torch.equal(got.long(), want.long())
            value, _ = ops.shiftmax_qat((q.double() * scale).float(), scale, out_bits, n)
            assert torch.equal(value, dequant(want, s_out))
            x, qx = near_ties(3, cols, scale, 120, g)
            value, _ = ops.shiftmax_qat(x, scale, out_bits, n)
            assert torch.equal(value, dequant(reference.shiftmax(qx, scale, out_bits, n)[0], s_out))
        # int32 extremes: m − q up to 2^32 − 1, far past the table's clamp.
        q = codes(3, cols, -(2**31), 2**31 - 1, 2**28, g)
        got, _ = ops.shiftmax(q, 8.0 / 127)
        assert torch.equal(got.long(), reference.shiftmax(q, 8.0 / 127)[0].long())


def test_ibert_softmax(isa):
    g = torch.Generator().manual_seed(6)
    for cols in COLS:
        for scale in (8.0 / 127, 0.3, 1e-3):
            q = codes(4, cols, -128, 127, 40, g)
            for out_bits in (16, 8, 2):  # the QAT values in float32 lanes at every output width (the ends)
                got, s_out = ops.ibert_softmax(q, scale, out_bits)
                want, _ = reference.ibert_softmax(q, scale, out_bits)
                assert torch.equal(got.long(), want.long())
                value, _ = ops.ibert_softmax_qat((q.double() * scale).float(), scale, out_bits)
                assert torch.equal(value, dequant(want, s_out))
                x, qx = near_ties(3, cols, scale, 120, g)
                value, _ = ops.ibert_softmax_qat(x, scale, out_bits)
                assert torch.equal(value, dequant(reference.ibert_softmax(qx, scale, out_bits)[0], s_out))


@pytest.mark.parametrize("zero_weight", [True, False])  # False: rows the AVX-512 short pass 2 may take
def test_ptf_layernorm(isa, zero_weight):
    g = torch.Generator().manual_seed(2)
    for cols in COLS:
        alpha = torch.randint(0, 4, (cols,), generator=g)
        w = torch.rand(cols, generator=g) + 0.5
        w[0] = -w[0]
        if cols > 2 and zero_weight:
            w[2] = 0.0
        b = torch.randn(cols, generator=g) * 0.1
        for s_base, s_next in ((6.0 / 127 / 8, 4.0 / 127), (1e-3, 1e-2), (1e-4, 3.0), (1e-2, 1e-6)):
            q = codes(4, cols, -(2**15), 2**15 - 1, 60, g)
            got, _ = ops.ptf_layernorm(q, alpha, s_base, w, b, s_next)
            want, _ = reference.ptf_layernorm(q, alpha, s_base, w, b, s_next)
            assert torch.equal(got, want)
            x = (q.double() * s_base * 2.0 ** alpha.double()).float()
            value, _ = ops.ptf_layernorm_qat(x, alpha, s_base, w, b, s_next)
            assert torch.equal(value, dequant(want, s_next))
            # near-ties on the per-channel scales (the float32 codes must fall back to float64 there)
            s_c = s_base * 2.0 ** alpha.double()
            x, _ = near_ties(3, cols, 1.0, 100, g)
            x = (x.double() * s_c).float()
            for _ in range(2):  # nudge by ulps after the scaling too
                x = torch.where(torch.rand(x.shape, generator=g) < 0.3, torch.nextafter(x, x * 2), x)
            qx = torch.round(x.double() * (1.0 / s_c)).to(torch.int32)
            value, _ = ops.ptf_layernorm_qat(x, alpha, s_base, w, b, s_next)
            assert torch.equal(value, dequant(reference.ptf_layernorm(qx, alpha, s_base, w, b, s_next)[0], s_next))


def test_shift_gelu(isa):
    g = torch.Generator().manual_seed(3)
    for cols in COLS + [1536]:
        for scale in (4.0 / 127, 0.1):
            q = codes(4, cols, -128, 127, 60, g)
            q[2] = torch.randint(-(2**15), 2**15, (cols,), generator=g)  # a wide row: no table
            for out_bits in (8, 4):
                got, s_out = ops.shift_gelu(q, scale, out_bits)
                want, _ = reference.shift_gelu(q, scale, out_bits)
                assert torch.equal(got.long(), want.long())
                value, _ = ops.shift_gelu_qat((q.double() * scale).float(), scale, out_bits)
                assert torch.equal(value, dequant(want, s_out))
                x, qx = near_ties(3, cols, scale, 120, g)
                value, _ = ops.shift_gelu_qat(x, scale, out_bits)
                assert torch.equal(value, dequant(reference.shift_gelu(qx, scale, out_bits)[0], s_out))
    # Rows sharing their max with growing spans (the tables of sig and of the QAT values are extended, not rebuilt),
    # then another max (rebuilt), on the table path (span ≤ cols).
    q = torch.stack([torch.arange(m - span, m + 1).repeat(64)[:64] for m, span in
                     ((20, 0), (20, 5), (20, 3), (20, 25), (-7, 9), (-7, 30), (20, 31))]).to(torch.int32)
    for scale in (4.0 / 127, 0.1):
        got, s_out = ops.shift_gelu(q, scale)
        want, _ = reference.shift_gelu(q, scale)
        assert torch.equal(got.long(), want.long())
        value, _ = ops.shift_gelu_qat((q.double() * scale).float(), scale)
        assert torch.equal(value, dequant(want, s_out))



def test_shift_gelu_table_slots(isa):
    """csrc/cpu/shift_gelu.cpp keeps a row table per max: 64 slots by m mod 64 for rows spanning ≤ 256 codes, one
    slot for a wider row (span ≤ cols). Rows whose maxima share a slot (m, m ± 64, negative m), come back to an
    evicted max, or grow a slot's span; wide rows beside narrow rows of the same max; spans around the 256 bound and
    the 16-lane table steps. Every value against the reference (int and QAT)."""
    g = torch.Generator().manual_seed(11)

    def row(cols, m, span):
        r = m - torch.randint(0, span, (cols,), generator=g)
        r[0], r[-1] = m, m - span + 1  # the max and the span exactly
        return r

    for cols in (64, 300, 770):
        plan = [(20, 5), (84, 40), (20, 17), (-44, 33), (20, 40), (84, 41), (-108, 64), (127, 256), (127, 257),
                (127, 3), (-1, 1), (63, 16), (-1, 255), (127, 256)]
        if cols >= 300:
            plan += [(500, 300), (127, 257), (500, 299), (500, 10), (-500, 290), (500, 301), (2**15 - 1, cols)]
        q = torch.stack([row(cols, m, min(span, cols)) for m, span in plan]).to(torch.int32)
        for scale, out_bits in ((4.0 / 127, 8), (0.1, 4), (0.01, 16)):
            got, s_out = ops.shift_gelu(q, scale, out_bits)
            want, _ = reference.shift_gelu(q, scale, out_bits)
            assert torch.equal(got.long(), want.long()), (cols, scale)
            value, _ = ops.shift_gelu_qat((q.double() * scale).float(), scale, out_bits)
            assert torch.equal(value, dequant(want, s_out)), (cols, scale)

def test_shift_gelu_narrow_tables(isa):
    """The AVX-512 path keeps the tables of rows spanning ≤ 256 codes in 16-bit forms looked up from registers
    (csrc/cpu/shift_gelu_simd.cpp: four 64-entry VPERMI2W steps picked by bits 6 and 7 of t = m − q, 32 lanes a step,
    the QAT values as two 16-bit halves): maxima in adjacent slots, each revisited after the other was built (a slot
    overlapping its neighbour, or a half the other's), every t of [0, 256) in every row length's 32-lane steps and
    tails, and out_bits 16 (sig up to 2^15 − 1, zero-extended). Against the reference, int and QAT."""
    g = torch.Generator().manual_seed(12)
    for cols in (1, 16, 17, 32, 47, 256, 300, 1536):
        maxima = [100, 101, 99, 100, 101, -28, -27, 36, 37, 100, 101, -28, 36]
        rows = []
        for i, m in enumerate(maxima):
            span = min(cols, (64, 128, 200, 256)[i % 4])
            r = m - torch.randint(0, span, (cols,), generator=g)
            r[: min(cols, 256)] = m - torch.arange(min(cols, 256)) % span  # every t of the span, in order
            r[-1] = m - span + 1
            rows.append(r[torch.randperm(cols, generator=g)] if i % 2 else r)
        q = torch.stack(rows).to(torch.int32)
        for scale, out_bits in ((4.0 / 127, 8), (0.05, 16), (0.3, 2)):
            got, s_out = ops.shift_gelu(q, scale, out_bits)
            want, _ = reference.shift_gelu(q, scale, out_bits)
            assert torch.equal(got.long(), want.long()), (cols, scale)
            value, _ = ops.shift_gelu_qat((q.double() * scale).float(), scale, out_bits)
            assert same_bits(value, dequant(want, s_out)), (cols, scale)


def test_ibert_gelu(isa):
    g = torch.Generator().manual_seed(4)
    edge = (7.634526450707235e-05, 7.634293474114649e-05)
    assert [reference.ibert_gelu_consts(s)[0] for s in edge] == [-32769, -32770]
    for cols in COLS:
        # 5e-7: a factor past 2^31 (the 64-bit multiply); 7.6345…e-5: b = −32769 and −32770, the two sides of the
        # AVX-512 narrow form's bound (a per-tensor scale with b ≥ −32769: |t| ≤ 32768 for q ≠ 0, the ±1..3 of row 2)
        for sa in (2e-4, 1e-5, 5e-7, *edge):
            q = codes(3, cols, -(2**31), 2**31 - 1, 1.5 / sa, g)
            q[2, ::3] = 0  # out = 0 whatever the polynomial (the AVX-512 form relies on it)
            q[2, 1::3] = torch.randint(-3, 4, q[2, 1::3].shape, generator=g, dtype=torch.int32)
            for scale in (torch.tensor(sa, dtype=torch.float64), torch.rand(cols, generator=g).double() * sa + sa):
                got, s_out = ops.ibert_gelu(q, scale)
                assert torch.equal(got, reference.ibert_gelu(q, scale)[0])
                qx = q.clamp(-(2**22), 2**22)  # float32 x = q·S gives back its code exactly below 2^23
                value, _ = ops.ibert_gelu_qat((qx.double() * scale).float(), scale)
                assert same_bits(value, dequant(reference.ibert_gelu(qx, scale)[0], s_out))
                # NaN, inf and a code beyond int32 give NaN in their own element only (SPEC §5)
                xb = (qx.double() * scale).float()
                xb[0, 0], xb[1, -1], xb[2, cols // 2] = float("nan"), float("inf"), -1e10 * sa
                bad = torch.zeros_like(xb, dtype=torch.bool)
                bad[0, 0] = bad[1, -1] = bad[2, cols // 2] = True
                vb, _ = ops.ibert_gelu_qat(xb, scale)
                assert torch.isnan(vb[bad]).all() and same_bits(vb[~bad], value[~bad])
            x, qx = near_ties(3, cols, sa, 3000, g)  # the float32-certified codes of a per-tensor scale
            st = torch.tensor(sa, dtype=torch.float64)
            value, s_out = ops.ibert_gelu_qat(x, st)
            assert same_bits(value, dequant(reference.ibert_gelu(qx, st)[0], s_out))


def test_ibert_gelu_per_channel(isa):
    """Per-channel scales (the AVX-512 per-channel forms: 16-lane int32 with every channel's b ≥ −32769, else the
    int64 lanes; float64 lanes for QAT) with channels on both sides of each bound in one tensor: b = −32769 / −32770
    (the narrow form's), a factor past 2^31 (5e-7: the 64-bit multiply), realistic fc1 scales of both ranges."""
    g = torch.Generator().manual_seed(14)
    edge = (7.634526450707235e-05, 7.634293474114649e-05)  # b = −32769, −32770
    mixes = [
        (edge[0], 2e-4),  # narrow in every channel, some at the bound exactly
        (edge[0], edge[1]),  # channels past the bound: the whole call leaves the narrow form
        (edge[1], 2e-4),
        (5e-7, 2e-4),  # factor32 on both sides
        (2e-4, None),  # S_c = 2e-4·(0.5 + U): realistic fc1 scales (narrow)
        (2e-6, None),  # S_c = 2e-6·(0.5 + U): b ≈ −1.2e6, never narrow
    ]
    for cols in COLS + [1536 + 5]:
        for a, b in mixes:
            if b is None:
                scale = a * (0.5 + torch.rand(cols, generator=g).double())
            else:
                pick = torch.rand(cols, generator=g) < 0.5
                pick[-1], pick[0] = False, True  # both sides present (cols ≥ 2)
                scale = torch.where(pick, torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
            lo = float(scale.min())
            q = codes(7, cols, -(2**31), 2**31 - 1, 1.5 / lo, g)  # 7 rows: 4 per constant load, then 3
            q[2, ::3] = 0
            q[2, 1::3] = torch.randint(-3, 4, q[2, 1::3].shape, generator=g, dtype=torch.int32)  # |t| = −b − 1..3
            q[3] = torch.randint(-40000, 40001, (cols,), generator=g, dtype=torch.int32)  # around the clip at −b
            got, s_out = ops.ibert_gelu(q, scale)
            assert torch.equal(got, reference.ibert_gelu(q, scale)[0]), (cols, a, b)
            qx = q.clamp(-(2**22), 2**22)  # float32 x = q·S gives back its code exactly below 2^23
            x = (qx.double() * scale).float()
            value, _ = ops.ibert_gelu_qat(x, scale)
            assert same_bits(value, dequant(reference.ibert_gelu(qx, scale)[0], s_out)), (cols, a, b)
            xb = x.clone()  # NaN, inf and a code beyond int32 give NaN in their own element only (SPEC §5)
            xb[0, 0], xb[1, -1], xb[2, cols // 2] = float("nan"), -float("inf"), 1e10 * float(scale.max())
            bad = torch.zeros_like(xb, dtype=torch.bool)
            bad[0, 0] = bad[1, -1] = bad[2, cols // 2] = True
            vb, _ = ops.ibert_gelu_qat(xb, scale)
            assert torch.isnan(vb[bad]).all() and same_bits(vb[~bad], value[~bad]), (cols, a, b)
        xt, _ = near_ties(3, cols, 2e-4, 3000, g)  # rounding ties of x·(1/S[c]) in the float64 lanes
        st = torch.full((cols,), 2e-4, dtype=torch.float64)
        st[::2] = 2e-4 * (1 + 2**-40)  # not per tensor, so the per-channel form
        qt = torch.round(xt.double() * (1.0 / st)).to(torch.int32)
        value, s_out = ops.ibert_gelu_qat(xt, st)
        assert same_bits(value, dequant(reference.ibert_gelu(qt, st)[0], s_out)), cols

@pytest.mark.parametrize("name,lim", [("ilayernorm", 2**15), ("ibert_layernorm", 2**21)])
def test_integer_layernorms(isa, name, lim):
    g = torch.Generator().manual_seed(5)
    for cols in COLS + [768]:
        w = torch.rand(cols, generator=g) + 0.5
        w[0] = -w[0]
        b = torch.randn(cols, generator=g) * 0.1
        for spread in (lim / 4, lim / 64, 30.0):  # I-BERT: shifts from 0 up, mostly decided by the short pass
            check_layernorm(name, codes(4, cols, -lim, lim - 1, spread, g), 6.0 / lim, w, b)


def check_layernorm(name, q, scale, w, b):
    """The integer op and its QAT form against the reference on codes q."""
    op, qat, ref = getattr(ops, name), getattr(ops, name + "_qat"), getattr(reference, name)
    got, s_out = op(q, scale, w, b)
    want, _ = ref(q, scale, w, b)
    assert torch.equal(got, want)
    value, _ = qat((q.double() * scale).float(), scale, w, b)
    assert torch.equal(value, dequant(want, s_out))


def test_ibert_layernorm_shift_estimate_low(isa):
    """A row whose V(s) at I-BERT's first estimate s is still ≥ 2^32 (the floors of its negative centred codes add
    ~C·k to V(0)/4^s): the single-sum pass of the CPU's shift search must not accept s. 10 codes, half +A, half −A,
    A = 2^4·20724 + 1 (mean 0): V(0)/4^4 < 2^32 ≤ V(4), and accepting s = 4 would give f = 2048 instead of 2047."""
    a, cols = 16 * 20724 + 1, 10
    v0 = cols * a * a
    s = (v0.bit_length() - 31) // 2
    v = lambda sh: (cols // 2) * ((a >> sh) ** 2 + ((-a) >> sh) ** 2)
    assert s == 4 and v0 // 4**s < 2**32 <= v(s) and v(s + 1) < 2**32  # the crafted property
    g = torch.Generator().manual_seed(8)
    q = codes(3, cols, -(2**21), 2**21 - 1, 2**19, g)
    q[0, : cols // 2], q[0, cols // 2 :] = a, -a
    w = torch.rand(cols, generator=g) + 0.5
    check_layernorm("ibert_layernorm", q, 6.0 / 2**21, w, torch.randn(cols, generator=g) * 0.1)


@pytest.mark.parametrize("name,lim", [("ilayernorm", 2**15), ("ibert_layernorm", 2**21)])
@pytest.mark.parametrize("cols", [8192, 16400])
def test_integer_layernorm_long_rows(isa, name, lim, cols):
    """Rows at the end of the range: the AVX-512 load pass sums codes in int32 lanes up to 8192 columns (512 codes
    per lane) and in int64 lanes beyond, where 16400 codes of −2^21 would overflow an int32 lane."""
    g = torch.Generator().manual_seed(9)
    w = torch.rand(cols, generator=g) + 0.5
    b = torch.randn(cols, generator=g) * 0.1
    q = codes(4, cols, -lim, lim - 1, lim / 4, g)
    q[0], q[2] = -lim, lim - 1
    q[3, ::2] = -lim
    check_layernorm(name, q, 6.0 / lim, w, b)


def test_row_ops_long_rows(isa):
    """Rows longer than the row buffers' 4096 elements on the stack (row_buffer.h: they come from torch's allocator
    then): Shiftmax, Log-Int-Softmax and I-BERT softmax, and ShiftGELU on its table path (with the QAT value table)."""
    g = torch.Generator().manual_seed(12)
    cols = 5000
    q = codes(3, cols, -128, 127, 40, g)
    scale = 8.0 / 127
    x = (q.double() * scale).float()
    got, s_out = ops.shiftmax(q, scale)
    want, _ = reference.shiftmax(q, scale)
    assert torch.equal(got.long(), want.long())
    assert torch.equal(ops.shiftmax_qat(x, scale)[0], dequant(want, s_out))
    got, s_out = ops.ibert_softmax(q, scale)
    want, _ = reference.ibert_softmax(q, scale)
    assert torch.equal(got.long(), want.long())
    assert torch.equal(ops.ibert_softmax_qat(x, scale)[0], dequant(want, s_out))
    code, mask = ops.log_int_softmax(q, scale)
    want_code, want_mask = reference.log_int_softmax(q, scale)
    assert torch.equal(code.long(), want_code.long()) and torch.equal(mask, want_mask)
    value, _ = ops.log_int_softmax_qat(x, scale)
    assert torch.equal(value, reference.log_int_softmax_value(want_code, want_mask).float())
    scale = 4.0 / 127
    got, s_out = ops.shift_gelu(q, scale)
    want, _ = reference.shift_gelu(q, scale)
    assert torch.equal(got.long(), want.long())
    assert torch.equal(ops.shift_gelu_qat((q.double() * scale).float(), scale)[0], dequant(want, s_out))
