"""mnq.quantize on a small random timm Swin Transformer (SPEC §6): windows, shift mask, relative-position bias,
patch merging with its mixable downsample.norm; same properties as test_quantize.py checks for ViT."""
import io

import pytest
import torch
from timm.models.swin_transformer import SwinTransformer

import mnq
from mnq import nn as mnn
from mnq.models.swin import swin_layer_names

from helpers import sqnr_db
from test_quantize import _unit_scale_init

# 16x16 tokens in 4x4 windows, then 8x8 after merging; the second block of each stage is shifted
KW = dict(img_size=32, patch_size=2, window_size=4, embed_dim=32, depths=(2, 2), num_heads=(2, 4), num_classes=10,
          drop_path_rate=0.0)
MIXED = {"all": "ivit", "layers.1.downsample.norm": "ibert", "layers.0.blocks.1.attn.softmax": "fqvit",
         "layers.1.blocks.0.mlp.gelu": "ibert", "layers.1.blocks.1.norm2": "fqvit"}


def _swin(seed=0, **kw):
    torch.manual_seed(seed)
    return _unit_scale_init(SwinTransformer(**{**KW, **kw}))


def _images(n=16, seed=2):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _calibrated(model, plan, bits=8):
    return mnq.calibrate(mnq.quantize(model, plan, bits=bits), [_images(8, seed) for seed in (10, 11, 12)])


@pytest.fixture(scope="module")
def swin():
    return _swin()


def test_mixed_plan_and_swin_wiring(swin):
    q = mnq.quantize(swin, MIXED, bits=6)
    assert q.mixable_layers() == swin_layer_names([2, 2])
    assert "layers.1.downsample.norm" in q.mixable_layers() and "patch_embed.norm" not in q.mixable_layers()
    for name, method in q.plan.items():
        assert q.get_submodule(name).method == method, name
    assert q.layers[1].downsample.norm.method == "ibert"
    # the residual read by the ibert merging norm is the last block of stage 0's MLP residual: 22 bits
    assert q.layers[0].blocks[1].qact_res2.bits == 22 and q.layers[0].blocks[0].qact_res2.bits == 16
    assert q.layers[1].blocks[0].mlp.qact_fc1 is None  # ibert GELU reads the fc1 accumulator
    assert q.layers[0].blocks[0].attn.softmax.out_bits == 8  # I-ViT's Swin Shiftmax output
    assert q.layers[0].blocks[0].attn.attn_mask is None and q.layers[0].blocks[1].attn.attn_mask is not None
    assert {m.bits for m in q.modules() if isinstance(m, (mnn.QuantLinear, mnn.QuantConv2d))} == {6}
    assert {m.bits for m in q.modules() if isinstance(m, mnn.QuantAct)} == {6, 16, 22}


@pytest.mark.parametrize("method", ["ivit", "ibert", "fqvit"])
def test_uniform_plans_train(swin, method):
    q = _calibrated(swin, {"all": method})
    q.train()
    logits = q(_images())
    assert logits.shape == (16, 10) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.arange(16) % 10).backward()
    for name in ["patch_embed.proj.weight", "patch_embed.norm.weight", "layers.0.blocks.1.attn.relative_position_bias_table",
                 "layers.0.blocks.1.attn.qkv.weight", "layers.1.downsample.norm.weight",
                 "layers.1.downsample.reduction.weight", "layers.1.blocks.1.mlp.fc2.weight", "norm.bias",
                 "head.fc.weight"]:
        grad = q.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


# Logits SQNR measured on model seeds 0-5. 16 bits (I-LayerNorm, I-BERT softmax, float GELU, as in
# test_quantize.py): 34.4-60.3 dB; without the shift mask the model measures ~26 dB, so the 16-bit threshold also
# checks the mask. 8 bits: ivit 20.7-27.0, ibert 30.2-37.4, fqvit 23.2-28.7 dB. Thresholds: ~2 dB under the worst.
@pytest.mark.parametrize("bits,plan,threshold", [
    (16, {"all": "ibert", "layernorm": "ivit", "gelu": "fqvit"}, 32.0),
    (8, {"all": "ivit"}, 18.5),
    (8, {"all": "ibert"}, 28.0),
    (8, {"all": "fqvit"}, 21.0),
])
def test_logits_follow_float(swin, bits, plan, threshold):
    with torch.no_grad():
        ref = swin(_images())
        q = _calibrated(swin, plan, bits)
        assert sqnr_db(ref, q(_images())) >= threshold


def test_checkpoint_reload_is_bit_identical(swin):
    q = _calibrated(swin, MIXED)
    want = q(_images())
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    fresh = mnq.quantize(_swin(seed=7), MIXED)
    fresh.load_state_dict(torch.load(buf))
    fresh.eval()
    assert torch.equal(fresh(_images()), want)


def test_unsupported_swin_rejected(swin):
    with pytest.raises(ValueError, match="dropout"):
        mnq.quantize(_swin(drop_rate=0.1), {"all": "ivit"})
    q = mnq.quantize(_swin(drop_path_rate=0.1), {"all": "ivit"})  # drop-path is carried over
    assert max(b.drop_path for stage in q.layers for b in stage.blocks) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"plan key 'blocks\.0\.norm1' is not a layer of this model"):
        mnq.quantize(swin, {"all": "ivit", "blocks.0.norm1": "ibert"})
