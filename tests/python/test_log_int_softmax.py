"""FQ-ViT Log-Int-Softmax (SPEC §2.3): bit-exact against the reference, CUDA == CPU, quality, QAT gradient, errors."""
import pytest
import torch

from helpers import INT_DTYPES, assert_ste_grad, attention_scores, opcheck_op_and_qat, requires_cuda, sqnr_db
from mnq import ops, reference

# Coarse 8-bit scales, a fine one, and both ends of the supported range, about (1.8029e-5, 1.67096].
SCALES = [1.67, 0.5, 0.08, 1 / 127, 3e-4, 1.9e-5]


def check_exact(q, scale, bits=4):
    code, mask = ops.log_int_softmax(q, scale, bits)
    want_code, want_mask = reference.log_int_softmax(q, scale, bits)
    assert code.dtype == torch.uint8 and mask.dtype == torch.bool
    assert torch.equal(code, want_code)
    assert torch.equal(mask, want_mask)
    return code, mask


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", [(3, 197), (2, 769), (1, 1), (5, 1), (2, 3, 17)])
def test_matches_reference(shape, scale):
    check_exact(torch.randint(-128, 128, shape, dtype=torch.int32), scale)


@pytest.mark.parametrize("scale", [1.67096, 1.8030e-5])
def test_scale_range_edges(scale):
    # c = floor(C/S²) = 1 at the top (the polynomial is its constant), e0 = c·2^30 just below 2^63 at the bottom.
    q = torch.randint(-(2**31), 2**31, (3, 50), dtype=torch.int64)
    q[0] = torch.randint(-3, 1, (50,))
    for bits in (2, 8):
        check_exact(q, scale, bits)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_dtypes_and_extremes(dtype):
    info = torch.iinfo(dtype)
    lo, hi = max(info.min, -(2**31)), min(info.max, 2**31 - 1)
    q = torch.randint(lo, hi, (4, 33), dtype=torch.int64)
    q[0, :3] = torch.tensor([lo, hi, 0])
    q[1] = lo  # constant row at the bottom of the range
    q[2, :] = hi
    q[2, ::2] = hi - 1  # a row of near-ties
    q = q.to(dtype)
    for scale in (0.05, 2e-5, 1.6):
        for bits in (2, 4, 8):
            check_exact(q, scale, bits)


def test_row_sums_beyond_64_bits():
    # At S = 1.9e-5, e0 = c·2^30 ≈ 2^62.9: a row of 769 near-maximal exponentials sums to ≈ 2^72.5.
    q = torch.zeros(3, 769, dtype=torch.int32)
    q[1, ::3] = -1
    q[2] = torch.randint(-40, 1, (769,))
    code, mask = check_exact(q, 1.9e-5, 8)
    assert int(code[0, 0]) == 10 and not bool(mask.any())  # v = 769 = 512 + 257: rounds up to 2^10


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_bits_and_mask(bits):
    q = torch.randint(-128, 128, (6, 197), dtype=torch.int32)
    code, mask = check_exact(q, 0.25, bits)
    assert int(code.max()) <= 2**bits - 1
    assert torch.all(code[mask] == 2**bits - 1)  # masked elements carry the top code
    if bits <= 3:
        assert bool(mask.any())  # 197 tokens at S = 0.25 reach t ≥ 2^b
    value = reference.log_int_softmax_value(code, mask)
    assert float(value.sum(-1).max()) < 2.0  # a distribution up to the power-of-two rounding


@pytest.mark.parametrize("scale", [0.08, 0.5])
def test_table_path_matches_direct_path(scale):
    # The CPU tabulates i-exp when its domain (30·|x0| + 1 values: 271 at S = 0.08, 61 at S = 0.5) is at most a
    # quarter of the elements: the whole tensor takes that path, each 197-element row alone the direct one.
    q = torch.randint(-128, 128, (64, 197), dtype=torch.int32)
    code, mask = ops.log_int_softmax(q, scale, 4)
    rows = [ops.log_int_softmax(q[i : i + 1], scale, 4) for i in range(q.shape[0])]
    assert torch.equal(code, torch.cat([r[0] for r in rows])) and torch.equal(mask, torch.cat([r[1] for r in rows]))
    x = q.float() * scale
    rows = torch.cat([ops.log_int_softmax_qat(x[i : i + 1], scale, 4)[0] for i in range(x.shape[0])])
    assert torch.equal(ops.log_int_softmax_qat(x, scale, 4)[0], rows)


def test_noncontiguous_and_empty():
    q = torch.randint(-128, 128, (197, 6), dtype=torch.int32).t()
    assert not q.is_contiguous()
    code, mask = ops.log_int_softmax(q, 0.05)
    want_code, want_mask = reference.log_int_softmax(q.contiguous(), 0.05)
    assert torch.equal(code, want_code) and torch.equal(mask, want_mask)
    for shape in [(0, 197), (3, 0), (0,)]:
        code, mask = ops.log_int_softmax(torch.zeros(shape, dtype=torch.int32), 0.05)
        assert code.shape == mask.shape == shape
        assert code.dtype == torch.uint8 and mask.dtype == torch.bool
        assert ops.log_int_softmax_qat(torch.zeros(shape), 0.05)[0].shape == shape


@pytest.mark.parametrize("bits,scale,threshold", [(4, 8.0 / 127, 11.5), (8, 8.0 / 127, 11.5), (4, 1.0 / 32, 12.8)])
def test_quality_on_attention_scores(bits, scale, threshold):
    # A power-of-two code is coarse: rounding p to the linearly nearest 2^−t leaves up to 1/3 relative error per
    # element (at p = 1.5·2^−t), about 14 dB for log-uniform p before any other error. On top come I-BERT's
    # i-exp with x0 = floor(−ln2/S) (|x0|·S = 0.756 at S = 8/127, see test_ibert_softmax) and the mask.
    # Measured (seeds 0–3): 12.3–12.8 dB at S = 8/127 and 13.6–13.7 dB at S = 1/32, the same at 4 and 8 bits:
    # the elements that 4 bits mask (p < 2^−15.5) carry no energy here. Thresholds ~0.8 dB below; always
    # rounding down to 2^−floor(log2 v) (dropping the linear midpoint rule) measures ~10 dB and fails.
    q = attention_scores((2, 6, 197, 197), scale)
    code, mask = ops.log_int_softmax(q, scale, bits)
    want = torch.softmax(q.double() * scale, -1)
    assert sqnr_db(want, reference.log_int_softmax_value(code, mask)) >= threshold


@pytest.mark.parametrize("bits", [4, 8])
def test_qat_forward_is_integer_op_and_gradient_is_softmax(bits):
    scale = 0.1
    q = torch.randint(-128, 128, (3, 4, 197), dtype=torch.int32)
    x = (q.float() * scale).requires_grad_(True)
    y = ops.log_int_softmax_qat(x, scale, bits)[0]
    code, mask = ops.log_int_softmax(q, scale, bits)
    assert y.dtype == torch.float32
    assert torch.equal(y.detach(), reference.log_int_softmax_value(code, mask).float())
    assert bool((y.detach() == 0).any()) == bool(mask.any())
    assert_ste_grad(y, x, lambda t: torch.softmax(t, -1))


def test_opcheck():
    q = torch.randint(-128, 128, (3, 7), dtype=torch.int32)
    opcheck_op_and_qat("log_int_softmax", q, 0.05, 4)


def test_errors():
    q = torch.zeros(2, 3, dtype=torch.int32)
    with pytest.raises(TypeError, match="q must be an integer tensor"):
        ops.log_int_softmax(q.float(), 0.1)
    with pytest.raises(ValueError, match="scale must be a finite positive scale"):
        ops.log_int_softmax(q, -0.1)
    for bad in (1.671, 1.8029e-5):
        with pytest.raises(ValueError, match="scale must lie in about \\(1.8029e-05, 1.67096\\]"):
            ops.log_int_softmax(q, bad)
    with pytest.raises(ValueError, match="scale must lie in"):
        ops.log_int_softmax_qat(q.float(), 1e-6)[0]
    with pytest.raises(ValueError, match="bits must be in \\[2, 8\\]"):
        ops.log_int_softmax(q, 0.1, bits=9)
    with pytest.raises(ValueError, match="bits must be in \\[2, 8\\]"):
        ops.log_int_softmax_qat(q.float(), 0.1, bits=1)[0]
    with pytest.raises(ValueError, match="at least 1 dimension"):
        ops.log_int_softmax(torch.tensor(3, dtype=torch.int32), 0.1)
    with pytest.raises(ValueError, match="outside the declared range"):
        ops.log_int_softmax(torch.tensor([[-(2**31) - 1, 0]]), 0.1)
    with pytest.raises(TypeError, match="x must be a float32 tensor"):
        ops.log_int_softmax_qat(q, 0.1)[0]


@requires_cuda
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_cuda_matches_cpu(dtype):
    q = attention_scores((2, 3, 197, 197), 0.06).to(dtype)
    for scale in SCALES:
        for bits in (2, 4, 8):
            cpu = ops.log_int_softmax(q, scale, bits)
            gpu = ops.log_int_softmax(q.cuda(), scale, bits)
            assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
    wide = torch.randint(-(2**31), 2**31, (5, 769), dtype=torch.int64)
    wide[0] = 0  # a 2^72-sized row sum
    for scale in (1.9e-5, 0.3):
        cpu = ops.log_int_softmax(wide, scale, 8)
        gpu = ops.log_int_softmax(wide.cuda(), scale, 8)
        assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
    x = q.float() * 0.06
    for bits in (4, 8):
        assert torch.equal(ops.log_int_softmax_qat(x.cuda(), 0.06, bits)[0].cpu(), ops.log_int_softmax_qat(x, 0.06, bits)[0])
    with pytest.raises(ValueError, match="outside the declared range"):
        ops.log_int_softmax(torch.tensor([[2**40, 0]], device="cuda"), 0.1)
