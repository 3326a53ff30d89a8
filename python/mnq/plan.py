"""Per-layer method plans (SPEC §6, §7): which integer method each mixable non-linear layer uses.

A plan is a YAML mapping, the same format the C++ side reads:

    all: ivit                    # default for every mixable layer
    softmax: ibert               # default per op type (softmax, gelu, layernorm); overrides `all`
    blocks.3.mlp.gelu: ibert     # one layer by name; overrides both

Layer names: ``blocks.{i}.norm1``, ``blocks.{i}.attn.softmax``, ``blocks.{i}.norm2``, ``blocks.{i}.mlp.gelu``,
``norm``; Swin: ``layers.{s}.blocks.{i}.<same>`` and ``layers.{s}.downsample.norm``. Methods: ivit, ibert, fqvit
(``fqvit`` GELU is the float GELU of SPEC §3.3; a plan that names it asks for it explicitly).

Which keys are layers depends on the model, so unknown keys are reported by :meth:`Plan.resolve`, which gets the
model's layers; everything else (key and value types, method names) is checked when the plan is built.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, Mapping, Union

from . import _mnq

# One parser, one writer: this module wraps csrc/models/plan.h (bound as mnq._mnq.Plan), the one the trainer and
# the analyzer read, so a plan file means the same to both sides by construction.
METHODS = tuple(_mnq.plan_methods())


def op_type_of(name: str) -> str:
    """Op type of a mixable layer from its name (SPEC §6)."""
    op_type = _mnq.plan_layer_op_type(name)
    if op_type is None:
        raise ValueError(f"plan: {name!r} is not a mixable layer name (expected blocks.{{i}}.norm1, .attn.softmax, "
                         ".norm2, .mlp.gelu, norm; Swin layers.{s}.blocks.{i}.<same> or layers.{s}.downsample.norm)")
    return op_type


class Plan:
    """A validated plan. Build it with :meth:`from_dict`, :meth:`uniform` or :meth:`load`; :meth:`resolve` maps a
    model's layers to methods. Keys are checked when the plan is built (a default or a well-formed layer name,
    a known method); whether a layer key belongs to a model is checked by :meth:`resolve`."""

    def __init__(self, entries: Mapping[str, str] = None, *, _cpp=None):
        self._cpp = _cpp if _cpp is not None else _mnq.Plan()
        for key, method in (entries or {}).items():
            if not isinstance(key, str):
                raise ValueError(f"plan: key {key!r} must be a string (a default or a layer name)")
            if not isinstance(method, str):
                raise ValueError(f"plan: key '{key}': the value must be one method name ({', '.join(METHODS)}); "
                                 f"got {method!r}")
            self._cpp.set(key, method)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Plan":
        if not isinstance(d, Mapping):
            raise ValueError(f"plan: expected a mapping of keys to methods, got {type(d).__name__}")
        return cls(d)

    @classmethod
    def uniform(cls, method: str) -> "Plan":
        """The single-method baseline: ``{all: method}``."""
        return cls({"all": method})

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Plan":
        """Reads a plan file; every error names the file."""
        return cls(_cpp=_mnq.Plan.load(os.fspath(path)))

    @classmethod
    def parse(cls, text: str, origin: str = "<string>") -> "Plan":
        return cls(_cpp=_mnq.Plan.parse(text, origin))

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the canonical YAML atomically (temporary file beside it, fsync, rename): a reader never sees a
        half-written plan. An OSError (mnq._mnq.FileError) when it cannot be written."""
        self._cpp.save(os.fspath(path))

    def to_yaml(self) -> str:
        return self._cpp.to_yaml()

    def to_dict(self) -> Dict[str, str]:
        return dict(self._cpp.entries())

    def resolve(self, layers: Union[Mapping[str, str], Iterable[str]]) -> Dict[str, str]:
        """Method of each of a model's mixable layers (names, or {name: op_type}): its own key, else its op
        type's default, else ``all``. Every layer key of the plan must be one of ``layers``."""
        names = list(layers)
        if isinstance(layers, Mapping):
            for name, op_type in layers.items():
                actual = op_type_of(name)
                if actual != op_type:
                    raise ValueError(f"plan: layer {name!r} is a {actual} layer, not {op_type!r}")
        return dict(self._cpp.resolve(names))

    def __eq__(self, other) -> bool:
        return isinstance(other, Plan) and self._cpp == other._cpp

    def __repr__(self) -> str:
        return f"Plan({self.to_dict()!r})"


PlanLike = Union[Plan, Mapping, str, os.PathLike]


def as_plan(plan: PlanLike) -> Plan:
    """A Plan from a Plan, a mapping, a method name (``"ivit"``, ``"ibert"``, ``"fqvit"``: every layer uses it) or
    the path of a YAML file. The same reading everywhere: ``mnq.quantize``, ``mnq.models.create``, the analyzer."""
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, Mapping):
        return Plan.from_dict(plan)
    if isinstance(plan, str) and plan in METHODS:
        return Plan.uniform(plan)
    if isinstance(plan, (str, os.PathLike)):
        return Plan.load(plan)
    raise TypeError(f"plan must be a Plan, a mapping, a method name or a YAML path, got {type(plan).__name__}")
