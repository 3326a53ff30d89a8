"""The C++ models (mnq.models.create) are the Python ones (mnq.quantize): same state_dict keys, and with the same
timm weights, plan, bits and calibration batches, bit-identical eval outputs and calibrated buffers; a Python
checkpoint runs in C++ and a C++ checkpoint reloads exactly. Also the binding itself: optimizers train the C++
parameters, state_dict shares storage, errors are ValueErrors naming the key."""
import json
import re
import struct

import pytest
import torch
from timm.models.deit import VisionTransformerDistilled
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

import mnq
from mnq.models.swin import swin_layer_names
from mnq.models.vit import vit_layer_names

# The shapes of the C++ presets vit_mnist_tiny (and deit_mnist_tiny_distilled) and swin_mnist_tiny
# (csrc/models/presets.cpp, swin.cpp).
VIT_KW = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4, num_heads=4)
SWIN_KW = dict(img_size=28, patch_size=2, in_chans=1, num_classes=10, embed_dim=32, depths=(2, 2), num_heads=(2, 4),
               window_size=7)
MIXED = {
    "vit_mnist_tiny": {"all": "ivit", "blocks.0.norm1": "fqvit", "blocks.0.attn.softmax": "ibert",
                       "blocks.1.norm2": "ibert", "blocks.1.mlp.gelu": "ibert", "blocks.2.attn.softmax": "fqvit",
                       "blocks.3.mlp.gelu": "fqvit", "norm": "fqvit"},
    "swin_mnist_tiny": {"all": "ivit", "layers.0.blocks.0.attn.softmax": "fqvit", "layers.0.blocks.1.norm2": "fqvit",
                        "layers.1.downsample.norm": "ibert", "layers.1.blocks.0.attn.softmax": "ibert",
                        "layers.1.blocks.1.mlp.gelu": "ibert", "norm": "fqvit"},
}
MIXED["deit_mnist_tiny_distilled"] = MIXED["vit_mnist_tiny"]
# every uniform plan and the mixed one at both bit widths; DeiT's distillation token and head once
CASES = [(preset, plan, bits) for preset in ("vit_mnist_tiny", "swin_mnist_tiny")
         for plan in ("ivit", "ibert", "fqvit", "mixed") for bits in (8, 6)]
CASES.append(("deit_mnist_tiny_distilled", "mixed", 8))


def _timm(preset: str, seed: int = 0, drop_path: float = 0.0) -> torch.nn.Module:
    """Random timm model with unit-scale activations (linear weights N(0, 1/fan_in)) and LayerNorm γ, β away
    from 1, 0, so every quantizer and per-channel scale is exercised."""
    torch.manual_seed(seed)
    kw = dict(drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=drop_path)
    if preset.startswith("swin"):
        model = SwinTransformer(**SWIN_KW, **kw)
    elif "distilled" in preset:
        model = VisionTransformerDistilled(**VIT_KW, **kw)
        with torch.no_grad():
            model.dist_token.normal_(0.0, 0.02)
    else:
        model = VisionTransformer(**VIT_KW, **kw)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0.0, m.in_features ** -0.5)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1)
            elif isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return model.eval()


def _batches(n: int = 3, size: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(size, 1, 28, 28, generator=g) for _ in range(n)]


def _plan(preset: str, name: str):
    return MIXED[preset] if name == "mixed" else {"all": name}


@torch.no_grad()
def _calibrate_cpp(model, batches):
    """What mnq.calibrate does: training-mode forwards, then freeze the PtfAct α search and switch to eval."""
    model.train()
    for x in batches:
        model(x)
    model.freeze_alpha()
    return model.eval()


def _assert_same_state(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def timm_models():
    return {p: _timm(p) for p in MIXED}


@pytest.mark.parametrize("preset,plan,bits", CASES)
def test_cpp_model_is_the_python_model(timm_models, preset, plan, bits, tmp_path):
    fp = timm_models[preset]
    py = mnq.quantize(fp, _plan(preset, plan), bits)
    cpp = mnq.models.create(preset, bits, _plan(preset, plan))
    missing, unexpected = cpp.load_state_dict(fp.state_dict(), strict=False)
    params = dict(cpp.named_parameters())
    assert unexpected == [] and not any(k in params for k in missing)  # timm's file: every parameter, no buffer
    _assert_same_state(py.state_dict(), cpp.state_dict())  # (a) same keys in the same order, same initial values
    assert cpp.layer_methods() == py.plan

    batches = _batches()
    mnq.calibrate(py, batches)
    _calibrate_cpp(cpp, batches)
    _assert_same_state(py.state_dict(), cpp.state_dict())  # ranges, scales, PtfAct α
    x = _batches(1, 4, seed=7)[0]
    with torch.no_grad():
        want = py(x)
        assert torch.equal(cpp(x), want)  # (b)

        fresh = mnq.models.create(preset, bits, _plan(preset, plan))  # (c) Python checkpoint in C++
        fresh.load_state_dict(py.state_dict())
        assert torch.equal(fresh.eval()(x), want)

        cpp.save(str(tmp_path / "q.safetensors"))  # (d) C++ checkpoint round trip
        again = mnq.models.create(preset, bits, _plan(preset, plan))
        again.load(str(tmp_path / "q.safetensors"))
        _assert_same_state(cpp.state_dict(), again.state_dict())
        assert torch.equal(again.eval()(x), want)


@pytest.mark.parametrize("preset", ["vit_mnist_tiny", "swin_mnist_tiny"])
def test_drop_path_matches_cpp_in_training(preset):
    # A timm model built with drop_path_rate: mnq.quantize carries each block's rate; the C++ model gets the same
    # rate; both draw their per-sample masks from torch's CPU generator in the same order, so the same seed drops
    # the same samples: identical training-mode forward passes and gradients, and eval untouched.
    fp = _timm(preset, drop_path=0.3)
    py = mnq.quantize(fp, _plan(preset, "mixed"), 8)
    cpp = mnq.models.create(preset, 8, _plan(preset, "mixed"), drop_path=0.3)
    cpp.load_state_dict(fp.state_dict(), strict=False)
    batches = _batches(3, 8)
    torch.manual_seed(5)
    mnq.calibrate(py, batches)
    torch.manual_seed(5)
    _calibrate_cpp(cpp, batches)
    _assert_same_state(py.state_dict(), cpp.state_dict())
    x = _batches(1, 8, seed=7)[0]
    with torch.no_grad():
        assert torch.equal(cpp.eval()(x), py.eval()(x))
    py.train()
    cpp.train()
    outs = []
    for seed in (11, 12):
        torch.manual_seed(seed)
        want = py(x)
        torch.manual_seed(seed)
        got = cpp(x)
        assert torch.equal(got, want)
        outs.append(want)
    assert not torch.equal(outs[0], outs[1])  # the masks differ between seeds: drop-path is active
    torch.manual_seed(11)
    py(x).square().sum().backward()
    torch.manual_seed(11)
    cpp(x).square().sum().backward()
    for (name, a), b in zip(py.named_parameters(), cpp.parameters()):
        assert torch.equal(a.grad, b.grad), name


def test_drop_path_errors():
    with pytest.raises(ValueError, match="drop_path"):
        mnq.models.create("vit_mnist_tiny", 8, "ivit", drop_path=1.0)
    fp = _timm("vit_mnist_tiny")
    fp.blocks[0].attn.attn_drop.p = 0.1
    with pytest.raises(ValueError, match="dropout"):
        mnq.quantize(fp, "ivit", 8)


def test_presets_and_layers():
    assert {"vit_mnist_tiny", "deit_mnist_tiny_distilled", "swin_mnist_tiny"} <= set(mnq.models.presets())
    assert mnq.models.mixable_layers("vit_mnist_tiny") == vit_layer_names(4)
    assert mnq.models.mixable_layers("swin_mnist_tiny") == swin_layer_names([2, 2])
    m = mnq.models.create("vit_mnist_tiny", 6, "ibert", num_classes=3)
    assert (m.preset, m.bits, m.quantized) == ("vit_mnist_tiny", 6, True)
    assert set(m.layer_methods().values()) == {"ibert"}
    fp = mnq.models.create("swin_mnist_tiny")
    assert (fp.bits, fp.quantized, fp.layer_methods()) == (None, False, {})
    assert fp.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert m.to("cpu").train()(torch.randn(2, 1, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize("preset", ["vit_mnist_tiny", "swin_mnist_tiny"])
def test_full_precision_model_is_timm(timm_models, preset):
    fp = timm_models[preset]
    cpp = mnq.models.create(preset)
    assert cpp.load_state_dict(fp.state_dict()) == ([], [])  # strict: exactly timm's keys
    x = _batches(1, 4, seed=3)[0]
    with torch.no_grad():
        torch.testing.assert_close(cpp.eval()(x), fp(x), rtol=1e-4, atol=1e-5)


def test_plan_forms(tmp_path):
    plan = {"all": "ivit", "gelu": "ibert"}
    path = tmp_path / "plan.yaml"
    mnq.Plan(plan).save(path)
    for form in (plan, mnq.Plan(plan), str(path)):
        assert mnq.models.create("vit_mnist_tiny", 8, form).layer_methods()["blocks.2.mlp.gelu"] == "ibert"
    assert set(mnq.models.create("swin_mnist_tiny", 8, "fqvit").layer_methods().values()) == {"fqvit"}


def test_state_dict_shares_storage_and_optimizer_trains_the_model():
    torch.manual_seed(0)
    m = mnq.models.create("vit_mnist_tiny", 8, "ivit")
    sd = m.state_dict()
    params = dict(m.named_parameters())
    assert all(p.is_leaf and p.requires_grad for p in m.parameters())
    assert sd["head.weight"].data_ptr() == params["head.weight"].data_ptr()
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8)
    _calibrate_cpp(m, [x])
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    before = params["blocks.0.attn.qkv.weight"].detach().clone()
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert not torch.equal(before, m.state_dict()["blocks.0.attn.qkv.weight"])
    assert losses[-1] < losses[0]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown model preset 'nope'"):
        mnq.models.create("nope")
    with pytest.raises(ValueError, match="bits"):
        mnq.models.create("vit_mnist_tiny", 1)
    with pytest.raises(ValueError, match="blocks.9.norm1"):
        mnq.models.create("vit_mnist_tiny", 8, {"all": "ivit", "blocks.9.norm1": "ibert"})
    with pytest.raises(ValueError, match="plan needs bits"):
        mnq.models.create("vit_mnist_tiny", plan="ivit")
    m = mnq.models.create("vit_mnist_tiny", 8)
    sd = m.state_dict()
    with pytest.raises(ValueError, match=r"'head.weight' has shape \[3, 64\]"):
        m.load_state_dict({**sd, "head.weight": torch.zeros(3, 64)})
    with pytest.raises(ValueError, match="missing keys 'cls_token'"):
        m.load_state_dict({k: v for k, v in sd.items() if k != "cls_token"})
    with pytest.raises(ValueError, match="unexpected keys 'extra'"):
        m.load_state_dict({**sd, "extra": torch.zeros(1)})
    with pytest.raises(ValueError, match="'norm.bias' is a str"):
        m.load_state_dict({**sd, "norm.bias": "x"})
    with pytest.raises(RuntimeError, match="before any training/calibration"):
        m.eval()(torch.randn(1, 1, 28, 28))


def test_a_file_that_cannot_be_written_is_an_oserror_naming_it(tmp_path):
    # util::FileError, the one error of every file the C++ library publishes (csrc/util/atomic_file.h)
    m = mnq.models.create("vit_mnist_tiny")
    target = tmp_path / "missing" / "m.safetensors"
    with pytest.raises(OSError, match=re.escape(f"cannot write '{target}': No such file or directory")):
        m.save(str(target))
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError, match="cannot publish"):
        m.save(str(tmp_path / "taken"))
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no temporary file left


def _safetensors_bytes(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def test_model_load_of_a_hostile_file_is_one_clear_line_and_changes_nothing(tmp_path):
    model = mnq.models.create("vit_mnist_tiny")
    good = tmp_path / "good.safetensors"
    model.save(str(good))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = tmp_path / "bad.safetensors"
    cases = [
        # a header length off by one: every tensor would be read shifted
        (struct.pack("<Q", struct.unpack("<Q", good.read_bytes()[:8])[0] + 1) + good.read_bytes()[8:],
         "not valid (JSON|UTF-8)"),
        (_safetensors_bytes({"cls_token": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}}, bytes(16)),
         "non-negative integer"),
        (_safetensors_bytes({"a\xff": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
         "unexpected key"),
        (_safetensors_bytes({"k": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(5)), "trailing"),
    ]
    raw = bytearray(_safetensors_bytes({"k": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)))
    raw[10] = 0xFF  # invalid UTF-8 in the key: once a UnicodeDecodeError
    cases.append((bytes(raw), "not valid UTF-8"))
    # An int32 copy of the last weight: the right names and shapes, the wrong dtype (no silent cast), found after
    # every other tensor was checked: nothing may have been copied by then.
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(good))
    last = list(tensors)[-1]
    tensors = {k: (v.to(torch.int32) if k == last else v + 1) for k, v in tensors.items()}
    save_file(tensors, str(tmp_path / "ints.safetensors"))
    cases.append(((tmp_path / "ints.safetensors").read_bytes(), f"'{last}' has dtype I32 in the file but F32"))
    for content, match in cases:
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=match) as info:
            model.load(str(bad))
        msg = str(info.value)
        assert str(bad) in msg and "\n" not in msg and "frame #" not in msg
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
