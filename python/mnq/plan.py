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
import tempfile
from pathlib import Path
from typing import Dict, Mapping, Union

import yaml

METHODS = ("ivit", "ibert", "fqvit")
OP_TYPES = ("softmax", "gelu", "layernorm")
DEFAULT_KEYS = ("all",) + OP_TYPES

# Suffix of a layer name -> its op type; `norm` alone is the final LayerNorm, `downsample.norm` Swin's merging norm.
_SUFFIX_OP_TYPES = (
    ("attn.softmax", "softmax"),
    ("mlp.gelu", "gelu"),
    ("norm1", "layernorm"),
    ("norm2", "layernorm"),
    ("norm", "layernorm"),
)


def op_type_of(name: str) -> str:
    """Op type of a mixable layer from its name's suffix (SPEC §6)."""
    for suffix, op_type in _SUFFIX_OP_TYPES:
        if name == suffix or name.endswith("." + suffix):
            return op_type
    raise ValueError(f"plan: {name!r} is not a mixable layer name (expected a name ending in norm1, norm2, norm, "
                     "attn.softmax or mlp.gelu)")


class Plan:
    """A validated plan. Build it with :meth:`from_dict` or :meth:`load`; :meth:`resolve` maps a model's layers
    to methods."""

    def __init__(self, entries: Mapping[str, str]):
        self._entries: Dict[str, str] = {}
        for key, method in entries.items():
            if not isinstance(key, str):
                raise ValueError(f"plan: key {key!r} must be a string (a default or a layer name)")
            if method not in METHODS:
                raise ValueError(f"plan: {key}: method must be one of {', '.join(METHODS)}; got {method!r}")
            self._entries[key] = method

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
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ValueError(f"plan: cannot read {os.fspath(path)}: {e.strerror or e}") from e
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"plan: {os.fspath(path)} is not valid YAML: {e}") from e
        if not isinstance(data, Mapping):
            raise ValueError(f"plan: {os.fspath(path)} must hold a YAML mapping of keys to methods, "
                             f"got {type(data).__name__}")
        try:
            return cls(data)
        except ValueError as e:
            raise ValueError(f"{e} (in {os.fspath(path)})") from e

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the plan as YAML atomically: a temporary file in the same folder, then os.replace, so a reader
        never sees a half-written plan."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(self._entries, f, sort_keys=False, default_flow_style=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def to_dict(self) -> Dict[str, str]:
        return dict(self._entries)

    def resolve(self, layers: Mapping[str, str]) -> Dict[str, str]:
        """Method of each layer in ``layers`` ({name: op_type}): its own key, else its op type's default, else
        ``all``. Every key must be a default or one of ``layers``."""
        for key in self._entries:
            if key not in DEFAULT_KEYS and key not in layers:
                raise ValueError(f"plan: unknown key {key!r}: not a default ({', '.join(DEFAULT_KEYS)}) and not a "
                                 "mixable layer of this model")
        resolved = {}
        for name, op_type in layers.items():
            if op_type not in OP_TYPES:
                raise ValueError(f"plan: layer {name!r} has op type {op_type!r}, expected one of {OP_TYPES}")
            for key in (name, op_type, "all"):
                if key in self._entries:
                    resolved[name] = self._entries[key]
                    break
            else:
                raise ValueError(f"plan: layer {name!r} ({op_type}) has no method: name it, or set "
                                 f"{op_type!r} or 'all'")
        return resolved

    def __eq__(self, other) -> bool:
        return isinstance(other, Plan) and self._entries == other._entries

    def __repr__(self) -> str:
        return f"Plan({self._entries!r})"


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
