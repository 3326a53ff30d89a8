"""The fake-quant (QAT) ops' device-side contract (csrc/ops/qat.h): tensor scales that are never read back, the
output scale returned by the op (each S_out formula once, in C++), and the NaN policy (no error-flag read).
"""
import pytest
import torch

from mnq import ops
from mnq.profiling import count_host_reads
from helpers import requires_cuda
from layernorm_inputs import ln_params

C = 33  # odd row length


def _codes(rows, lo, hi, gen):
    return torch.randint(lo, hi + 1, (rows, C), generator=gen)


def _case(name, device="cpu"):
    """(qat(x, scale) -> (y, s_out), x, bad_value, rowwise, reference S_out) for one op; the op's own tensors
    (LayerNorm weight, bias, α, S_next) on `device`, x and the reference on the CPU."""
    g = torch.Generator().manual_seed(7)
    w, b = (t.to(device) for t in ln_params(C))
    if name == "shiftmax":
        q, s = _codes(9, -100, 100, g), 0.06
        return (lambda x, sc: ops.shiftmax_qat(x, sc), q * s, 1e9, True, torch.tensor(2.0**-15, dtype=torch.float64))
    if name == "ibert_softmax":
        q, s = _codes(9, -100, 100, g), 0.06
        return (lambda x, sc: ops.ibert_softmax_qat(x, sc), q * s, 1e9, True,
                torch.tensor(2.0**-16, dtype=torch.float64))
    if name == "log_int_softmax":
        q, s = _codes(9, -100, 100, g), 0.06
        return (lambda x, sc: ops.log_int_softmax_qat(x, sc, 4), q * s, 1e9, True,
                torch.tensor(2.0**-15, dtype=torch.float64))
    if name == "shift_gelu":
        q, s = _codes(9, -127, 127, g), 0.05
        ref = torch.tensor(ops.shift_gelu(q.int(), s)[1], dtype=torch.float64)
        return (lambda x, sc: ops.shift_gelu_qat(x, sc), q * s, 4000.0, True, ref)
    if name == "ibert_gelu":
        q, s = _codes(9, -(2**20), 2**20, g), 1e-4
        ref = ops.ibert_gelu(q.int(), torch.tensor(s, dtype=torch.float64))[1]
        return (lambda x, sc: ops.ibert_gelu_qat(x, sc), q * s, 1e6, False, ref)
    if name == "ilayernorm":
        q, s = _codes(9, -30000, 30000, g), 0.01
        ref = ops.ilayernorm(q.int(), s, w, b)[1]
        return (lambda x, sc: ops.ilayernorm_qat(x, sc, w, b), q * s, 400.0, True, ref)
    if name == "ibert_layernorm":
        q, s = _codes(9, -(2**20), 2**20, g), 0.01
        ref = ops.ibert_layernorm(q.int(), s, w, b)[1]
        return (lambda x, sc: ops.ibert_layernorm_qat(x, sc, w, b), q * s, 1e5, True, ref)
    assert name == "ptf_layernorm"
    alpha = torch.randint(0, 4, (C,), generator=g)
    q, s_base = _codes(9, -30000, 30000, g), 0.01
    x = q * (s_base * 2.0 ** alpha.double())
    a, s_next = alpha.to(device), torch.tensor(0.05, dtype=torch.float64, device=device)
    return (lambda x, sc: ops.ptf_layernorm_qat(x, a, sc, w, b, s_next), x, 1e4, True,
            torch.tensor(0.05, dtype=torch.float64))


SCALES = {"shiftmax": 0.06, "ibert_softmax": 0.06, "log_int_softmax": 0.06, "shift_gelu": 0.05, "ibert_gelu": 1e-4,
          "ilayernorm": 0.01, "ibert_layernorm": 0.01, "ptf_layernorm": 0.01}
NAMES = list(SCALES)


@pytest.mark.parametrize("name", NAMES)
def test_returns_the_integer_ops_output_scale(name):
    fn, x, _, _, ref = _case(name)
    y, s_out = fn(x.float(), torch.tensor(SCALES[name], dtype=torch.float64))
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert s_out.dtype == torch.float64 and s_out.device == y.device
    assert torch.equal(s_out, ref)
    assert not s_out.requires_grad


@pytest.mark.parametrize("name", NAMES)
def test_tensor_and_float_scales_agree(name):
    fn, x, _, _, _ = _case(name)
    y_t, s_t = fn(x.float(), torch.tensor(SCALES[name], dtype=torch.float64))
    y_f, s_f = fn(x.float(), SCALES[name])
    assert torch.equal(y_t, y_f) and torch.equal(s_t, s_f)
    if name != "ibert_gelu":  # (its scale is 0-d or per channel [C])
        y_1, _ = fn(x.float(), torch.tensor([SCALES[name]], dtype=torch.float64))  # one element, 1-d
        assert torch.equal(y_t, y_1)


@pytest.mark.parametrize("name", NAMES)
def test_bad_codes_give_nan_and_leave_other_rows_exact(name):
    fn, x, bad, rowwise, _ = _case(name)
    x = x.float()
    sc = torch.tensor(SCALES[name], dtype=torch.float64)
    clean, _ = fn(x, sc)
    xb = x.clone()
    xb[2, 5] = float("nan")
    xb[4, 0] = float("inf")
    xb[6, C - 1] = bad  # a finite value whose code is outside the declared range, in the last lane
    y, _ = fn(xb, sc)
    bad_mask = torch.zeros_like(x, dtype=torch.bool)
    for r, c in ((2, 5), (4, 0), (6, C - 1)):
        if rowwise:
            bad_mask[r] = True
        else:
            bad_mask[r, c] = True
    assert torch.isnan(y[bad_mask]).all()
    assert torch.equal(y[~bad_mask], clean[~bad_mask])


@pytest.mark.parametrize("name", NAMES)
def test_meta_kernels_take_tensor_scales(name):
    fn, x, _, _, ref = _case(name)
    if name in ("ilayernorm", "ibert_layernorm", "ptf_layernorm"):
        pytest.skip("weight and bias are CPU tensors in this case; covered by the torch.compile tests")
    y, s_out = fn(x.float().to("meta"), torch.tensor(SCALES[name], dtype=torch.float64, device="meta"))
    assert y.device.type == "meta" and y.shape == x.shape and s_out.shape == ref.shape


def test_scale_on_another_device_or_with_many_elements_is_an_error():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="scale must be a per-tensor scale"):
        ops.shiftmax_qat(x, torch.tensor([0.1, 0.2], dtype=torch.float64))
    with pytest.raises(TypeError, match="scale must be a floating-point tensor"):
        torch.ops.mnq.shiftmax_qat(x, torch.tensor(1))
    with pytest.raises(ValueError, match="scale must be a finite positive scale"):
        ops.shiftmax_qat(x, torch.tensor(-0.1, dtype=torch.float64))


def test_ptf_alpha_error_marks_a_nan_channel_without_raising():
    x = torch.randn(16, 5)
    x[3, 2] = float("nan")
    err = ops.ptf_alpha_error(x, torch.tensor(0.01, dtype=torch.float64), 8)
    assert torch.isnan(err[2]).all()
    keep = [0, 1, 3, 4]
    assert torch.equal(err[keep], ops.ptf_alpha_error(x[:, keep].contiguous(), 0.01, 8))


@requires_cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu_with_device_scales(name):
    fn, x, bad, _, _ = _case(name)
    fn_cuda = _case(name, "cuda")[0]
    x = x.float()
    x[3, 1] = bad
    sc = torch.tensor(SCALES[name], dtype=torch.float64)
    y, s = fn(x, sc)
    yg, sg = fn_cuda(x.cuda(), sc.cuda())
    assert sg.device.type == "cuda"
    assert torch.equal(yg.cpu().nan_to_num(7.0), y.nan_to_num(7.0)) and torch.equal(sg.cpu(), s)


@requires_cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_qat_ops_read_nothing_back(name):
    """Every fake-quant op on CUDA computes its constants on the device: no value is copied back (no sync)."""
    fn, x, bad, _, _ = _case(name, "cuda")
    x = x.float().cuda()
    x[3, 1] = bad  # the NaN policy needs no read either
    sc = torch.tensor(SCALES[name], dtype=torch.float64, device="cuda")
    fn(x, sc)  # warm-up (first-call allocations)
    assert count_host_reads(fn, x, sc) == 0


@requires_cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_scale_outside_the_range_gives_nan(name):
    """Where the CPU raises on a scale outside the op's range, CUDA (which cannot raise without a read) gives NaN."""
    fn, x, _, _, _ = _case(name, "cuda")
    with pytest.raises(ValueError):
        _case(name)[0](x.float(), torch.tensor(-1.0, dtype=torch.float64))
    y, _ = fn(x.float().cuda(), torch.tensor(-1.0, dtype=torch.float64, device="cuda"))
    assert torch.isnan(y).all()
