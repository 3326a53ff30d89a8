"""The model-level parts of a sync-free GPU step (STYLE rule 16): drop-path masks drawn on the CPU generator
without a host read and copied to a GPU without waiting (the same masks on any device); Swin's window tensors are
non-persistent buffers created once, which move with the model (no per-forward copy)."""
import torch
from timm.models.swin_transformer import SwinTransformer

import mnq
from mnq.models.blocks import drop_path
from mnq.profiling import count_host_reads

from helpers import requires_cuda


def test_drop_path_draws_without_host_reads():
    x = torch.rand(32, 5, 4) + 0.5
    torch.manual_seed(3)
    assert count_host_reads(drop_path, x, 0.4, True) == 0
    torch.manual_seed(3)
    a = drop_path(x, 0.4, True)
    torch.manual_seed(3)
    assert torch.equal(a, drop_path(x, 0.4, True))  # the CPU generator's draws
    assert not torch.equal(a, x)


@requires_cuda
def test_drop_path_on_cuda_has_the_cpu_masks():
    x = torch.rand(64, 7, 5) + 0.5
    torch.manual_seed(9)
    want = drop_path(x, 0.3, True)
    torch.manual_seed(9)
    got = drop_path(x.cuda(), 0.3, True)
    assert torch.equal(got.cpu(), want)
    assert count_host_reads(drop_path, x.cuda(), 0.3, True) == 0


def test_swin_window_tensors_are_buffers_that_move_with_the_model():
    kw = dict(img_size=32, patch_size=2, window_size=4, embed_dim=32, depths=(2, 2), num_heads=(2, 4),
              num_classes=10, drop_path_rate=0.0)
    torch.manual_seed(0)
    q = mnq.quantize(SwinTransformer(**kw), {"all": "ivit"}, 8)
    attn = [b.attn for stage in q.layers for b in stage.blocks]
    assert any(a.attn_mask is not None for a in attn)
    keys = q.state_dict().keys()
    assert not any(k.endswith(("relative_position_index", "attn_mask")) for k in keys)  # derived, not state
    before = {id(a): (a.relative_position_index, a.attn_mask) for a in attn}
    x = torch.randn(2, 3, 32, 32)
    q(x)
    q.eval()(x)
    for a in attn:  # a forward neither replaces nor rebuilds them
        assert a.relative_position_index is before[id(a)][0] and a.attn_mask is before[id(a)][1]
    q.to("meta")  # stands in for a GPU: the window tensors go with the model
    for a in attn:
        assert a.relative_position_index.device.type == "meta"
        assert a.attn_mask is None or a.attn_mask.device.type == "meta"
