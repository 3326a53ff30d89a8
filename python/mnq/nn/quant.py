"""Activation quantizers (SPEC §1), I-ViT calling style: ``forward(x, scale) -> (y, scale_out)``.

All state lives in buffers of fixed shape (running ranges, scale, PtfAct's α and calibration sums), so a
checkpoint reloads to identical outputs. Ranges follow an EMA (momentum 0.95; the first batch initialises them)
in training mode and are frozen in eval mode.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .. import distributed, ops


def _check_bits(bits: int, hi: int = 16) -> int:
    if not isinstance(bits, int) or not 2 <= bits <= hi:
        raise ValueError(f"bits must be an int in [2, {hi}], got {bits!r}")
    return bits


def _per_tensor_scale(scale: Tensor, who: str) -> Tensor:
    """A per-tensor scale as a 0-d float64 tensor where it is: checked by shape, never read (C++: nn::per_tensor_scale)."""
    s = torch.as_tensor(scale, dtype=torch.float64)
    if s.numel() != 1:
        raise ValueError(f"{who}: the input scale must be per tensor (one value), got shape {tuple(s.shape)}")
    return s.detach().reshape(())


class _RangeTracker(nn.Module):
    """Running symmetric range -> per-tensor scale S = max(|min|, |max|, 1e-8) / (2^(b-1) - 1)."""

    def __init__(self, bits: int, momentum: float = 0.95, max_bits: int = 32):
        super().__init__()
        self.bits = _check_bits(bits, max_bits)
        self.momentum = momentum
        self.register_buffer("min_val", torch.zeros((), dtype=torch.float32))
        self.register_buffer("max_val", torch.zeros((), dtype=torch.float32))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        # Host mirror of `initialized` (refreshed when a state_dict is loaded), so no forward reads the buffer
        # back from the device: on CUDA that is a synchronization, under torch.compile a graph break.
        self._calibrated = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._calibrated = bool(self.initialized)  # once per load

    def _observe(self, x: Tensor) -> None:
        lo, hi = torch.aminmax(x.detach().float())
        distributed.sync_min_max(lo, hi)  # data-parallel: the global batch's range on every rank (no-op alone)
        # The first batch initialises the range, later ones follow the EMA: selected on the device.
        m = self.momentum
        self.min_val.copy_(torch.where(self.initialized, torch.add(self.min_val * m, lo, alpha=1 - m), lo))
        self.max_val.copy_(torch.where(self.initialized, torch.add(self.max_val * m, hi, alpha=1 - m), hi))
        self.initialized.fill_(True)
        self._calibrated = True
        bound = torch.maximum(self.min_val.abs(), self.max_val.abs()).double().clamp(min=1e-8)
        self.scale.copy_(bound / (2 ** (self.bits - 1) - 1))

    @property
    def calibrated(self) -> bool:
        """Whether a training/calibration batch has set the range (the host mirror of ``initialized``)."""
        return self._calibrated

    def _check_calibrated(self) -> None:
        if not self._calibrated:
            raise RuntimeError(
                f"{type(self).__name__}: used in eval mode before any training/calibration batch set its range"
            )


class QuantAct(_RangeTracker):
    """Symmetric per-tensor activation quantizer (fake-quant, straight-through gradient).

    ``forward(x)`` quantizes a float tensor; ``forward(x, scale_in)`` requantizes an already-quantized tensor
    (x = q·scale_in, scale_in per tensor or per channel of the last dim) with SPEC's dyadic requant;
    ``identity``/``identity_scale`` fuse a residual add. Returns ``(y, scale)``.
    """

    def __init__(self, bits: int = 8, momentum: float = 0.95):
        super().__init__(bits, momentum, max_bits=32)

    def forward(self, x: Tensor, scale_in: Optional[Tensor] = None, identity: Optional[Tensor] = None,
                identity_scale: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        if (identity is None) != (identity_scale is None):
            raise ValueError("QuantAct: identity and identity_scale must be given together")
        if identity is not None and scale_in is None:
            raise ValueError("QuantAct: a residual (identity) needs scale_in for x")
        if self.training:
            self._observe(x if identity is None else x + identity)
        else:
            self._check_calibrated()
        if scale_in is None:
            return ops.quantize_qat(x, self.scale, self.bits), self.scale.clone()
        return ops.requant_qat(x, scale_in, self.scale, self.bits, identity, identity_scale), self.scale.clone()

    def extra_repr(self) -> str:
        return f"bits={self.bits}, momentum={self.momentum}"


class PtfAct(_RangeTracker):
    """FQ-ViT power-of-two-factor quantizer (symmetric variant, SPEC §1): channel c uses s·2^α_c, s = S/8.

    While training and not frozen, each batch adds its per-channel squared error for α = 0..3 to ``alpha_err``
    and α = argmin (ties -> smaller α). Call :meth:`freeze_alpha` after calibration. Returns
    ``(y, (s_base, alpha))`` where y has per-channel scale s_base·2^alpha.
    """

    def __init__(self, channels: int, bits: int = 8, momentum: float = 0.95):
        super().__init__(bits, momentum, max_bits=16)
        self.channels = channels
        self.register_buffer("alpha", torch.zeros(channels, dtype=torch.int64))
        self.register_buffer("alpha_err", torch.zeros(channels, 4, dtype=torch.float64))
        self.register_buffer("alpha_frozen", torch.zeros((), dtype=torch.bool))
        self._frozen = False  # host mirror of alpha_frozen, as _calibrated

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._frozen = bool(self.alpha_frozen)  # once per load

    @property
    def s_base(self) -> Tensor:
        """The base scale S/8, a 0-d float64 tensor on the buffers' device."""
        return self.scale / 8.0

    def freeze_alpha(self) -> None:
        self.alpha_frozen.fill_(True)
        self._frozen = True

    def reset_alpha(self) -> None:
        self.alpha_err.zero_()
        self.alpha_frozen.fill_(False)
        self._frozen = False

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        if x.shape[-1] != self.channels:
            raise ValueError(f"PtfAct: expected {self.channels} channels in the last dim, got shape {tuple(x.shape)}")
        if self.training:
            self._observe(x)
            if not self._frozen:
                err = ops.ptf_alpha_error(x.detach(), self.s_base, self.bits).to(self.alpha_err)
                distributed.sync_sum(err)  # data-parallel: the global batch's error sums (no-op alone)
                self.alpha_err.add_(err)
                self.alpha.copy_(self.alpha_err.argmin(-1))
        else:
            self._check_calibrated()
        s_base = self.s_base
        return ops.ptf_quantize_qat(x, self.alpha, s_base, self.bits), (s_base, self.alpha.clone())

    def extra_repr(self) -> str:
        return f"channels={self.channels}, bits={self.bits}"
