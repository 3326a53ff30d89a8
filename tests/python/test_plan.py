"""mnq.Plan: the per-layer method plan, a wrapper of the C++ parser (csrc/models/plan.h; format in SPEC §6)."""
import os

import pytest
import yaml

from mnq import Plan
from mnq.models import vit_layer_names
from mnq.plan import op_type_of

LAYERS = vit_layer_names(2)


def test_layer_names_and_op_types():
    assert list(LAYERS) == ["blocks.0.norm1", "blocks.0.attn.softmax", "blocks.0.norm2", "blocks.0.mlp.gelu",
                            "blocks.1.norm1", "blocks.1.attn.softmax", "blocks.1.norm2", "blocks.1.mlp.gelu", "norm"]
    assert all(op_type_of(name) == op for name, op in LAYERS.items())
    assert op_type_of("layers.2.downsample.norm") == "layernorm"
    assert op_type_of("layers.0.blocks.1.attn.softmax") == "softmax"
    with pytest.raises(ValueError, match="'blocks.0.attn.qkv' is not a mixable layer name"):
        op_type_of("blocks.0.attn.qkv")


def test_resolve_precedence_layer_over_op_type_over_all():
    plan = Plan.from_dict({"all": "ivit", "softmax": "ibert", "blocks.1.attn.softmax": "fqvit",
                           "norm": "ibert", "gelu": "fqvit"})
    got = plan.resolve(LAYERS)
    assert got == {"blocks.0.norm1": "ivit", "blocks.0.attn.softmax": "ibert", "blocks.0.norm2": "ivit",
                   "blocks.0.mlp.gelu": "fqvit", "blocks.1.norm1": "ivit", "blocks.1.attn.softmax": "fqvit",
                   "blocks.1.norm2": "ivit", "blocks.1.mlp.gelu": "fqvit", "norm": "ibert"}
    assert Plan.uniform("ibert").resolve(LAYERS) == {name: "ibert" for name in LAYERS}


def test_save_load_round_trip_is_atomic_yaml(tmp_path):
    plan = Plan.from_dict({"all": "ivit", "layernorm": "fqvit", "blocks.0.mlp.gelu": "ibert", "norm": "ibert"})
    path = tmp_path / "plan.yaml"
    plan.save(path)
    assert os.listdir(tmp_path) == ["plan.yaml"]  # the temporary file was renamed, nothing left behind
    assert yaml.safe_load(path.read_text()) == plan.to_dict()
    loaded = Plan.load(path)
    assert loaded == plan and loaded.resolve(LAYERS) == plan.resolve(LAYERS)
    plan2 = Plan.uniform("fqvit")
    plan2.save(path)  # overwrites in place
    assert Plan.load(str(path)) == plan2


def test_errors_name_the_key():
    with pytest.raises(ValueError, match=r"plan key 'blocks\.7\.norm1' is not a layer of this model \(it has 9"):
        Plan.from_dict({"all": "ivit", "blocks.7.norm1": "ibert"}).resolve(LAYERS)
    with pytest.raises(ValueError, match=r"unknown plan key 'attention'"):
        Plan.from_dict({"attention": "ivit"}).resolve(LAYERS)
    with pytest.raises(ValueError, match=r"key 'blocks\.0\.norm2': unknown method 'ptf' \(allowed: ivit, ibert, fqvit\)"):
        Plan.from_dict({"all": "ivit", "blocks.0.norm2": "ptf"})
    with pytest.raises(ValueError, match=r"key 'all': the value must be one method name \(ivit, ibert, fqvit\); got None"):
        Plan.from_dict({"all": None})
    with pytest.raises(ValueError, match=r"layer 'blocks\.0\.mlp\.gelu' has no method \(set it, 'gelu' or 'all'\)"):
        Plan.from_dict({"softmax": "ivit", "layernorm": "ibert"}).resolve(LAYERS)
    with pytest.raises(ValueError, match="key 3 must be a string"):
        Plan.from_dict({3: "ivit"})
    with pytest.raises(ValueError, match="expected a mapping"):
        Plan.from_dict(["ivit"])


def test_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "none.yaml"
    with pytest.raises(ValueError, match="cannot read plan file '.*none.yaml'"):
        Plan.load(missing)
    listing = tmp_path / "list.yaml"
    listing.write_text("- ivit\n- ibert\n")
    with pytest.raises(ValueError, match="list.yaml: a plan must be a YAML mapping"):
        Plan.load(listing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.yaml: a plan must be a YAML mapping"):
        Plan.load(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("all: [ivit\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        Plan.load(broken)
    bad = tmp_path / "bad.yaml"
    bad.write_text("all: ivit\nnorm: exact\n")
    with pytest.raises(ValueError, match=r"bad.yaml: key 'norm': unknown method 'exact'"):
        Plan.load(bad)


def test_a_method_name_is_a_uniform_plan_everywhere(tmp_path, monkeypatch):
    """`mnq.quantize(model, "ivit", 8)` and `mnq.models.create(..., plan="ivit")` read a method name the same way
    (not as a file name, even when a file of that name exists)."""
    from mnq.plan import as_plan

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ibert").write_text("all: fqvit\n")
    for m in ("ivit", "ibert", "fqvit"):
        assert as_plan(m) == Plan.uniform(m)
    with pytest.raises(ValueError, match="cannot read plan file 'ivit.yaml'"):  # anything else is still a path
        as_plan("ivit.yaml")


def test_one_parser_for_python_and_cpp(tmp_path):
    """The Python Plan is the C++ parser: a file saved from Python is the C++ canonical YAML, duplicate keys are an
    error on both sides, and a plan resolves the same for every preset layer the C++ models name."""
    from mnq import _mnq

    plan = Plan.from_dict({"blocks.1.mlp.gelu": "ibert", "softmax": "fqvit", "all": "ivit"})
    path = tmp_path / "p.yaml"
    plan.save(path)
    assert path.read_text() == "all: ivit\nsoftmax: fqvit\nblocks.1.mlp.gelu: ibert\n"  # canonical key order
    assert _mnq.Plan.load(str(path)) == plan._cpp
    dup = tmp_path / "dup.yaml"
    dup.write_text("all: ivit\nall: ibert\n")
    with pytest.raises(ValueError, match="dup.yaml"):
        Plan.load(dup)
    layers = _mnq.mixable_layers("swin_tiny_patch4_window7_224")
    resolved = Plan.from_dict({"all": "ibert", "layernorm": "fqvit"}).resolve(layers)
    assert resolved == {n: ("fqvit" if t == "layernorm" else "ibert") for n, t in layers.items()}
    with pytest.raises(ValueError, match="is a softmax layer, not 'gelu'"):
        plan.resolve({"blocks.0.attn.softmax": "gelu"})
