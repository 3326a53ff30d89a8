"""mnq.analyze: the C++ analyzer from Python on a C++ full-precision model and Python batches (sequence or
re-iterable), the assignment rule checked independently on the returned scores, and argument errors."""
import json
import math

import pytest
import torch

import mnq

TIE_ORDER = ("ivit", "ibert", "fqvit")


@pytest.fixture(scope="module")
def fp():
    torch.manual_seed(0)
    return mnq.models.create("vit_mnist_tiny").eval()


def batches(n=3, b=8):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(b, 1, 28, 28, generator=g) for _ in range(n)]


class Reiterable:
    """A DataLoader-like re-iterable of (images, labels) pairs without random access."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter([(x, torch.zeros(len(x), dtype=torch.long)) for x in self.items])


def test_report_covers_every_layer_and_follows_the_argmax_rule(fp):
    report = mnq.analyze(fp, batches(), bits=8, calib_batches=2, progress=False)
    layers = mnq.models.mixable_layers("vit_mnist_tiny")
    assert list(report.plan) == list(layers) or set(report.plan) == set(layers)
    assert report.batches == 2 and report.images == 16 and report.bits == 8
    assert [layer["name"] for layer in report.layers] == list(layers)
    for layer in report.layers:
        candidates = [s["method"] for s in layer["scores"]]
        expected = ["ivit", "ibert"] if layer["op"] == "gelu" else list(TIE_ORDER)
        assert candidates == expected
        for s in layer["scores"]:  # ΔSQNR = SQNR_out − SQNR_in (SPEC §7), both finite for random weights
            assert math.isfinite(s["sqnr_in"]) and math.isfinite(s["sqnr_out"])
            assert s["delta"] == pytest.approx(s["sqnr_out"] - s["sqnr_in"], abs=1e-9)
        deltas = [s["delta"] for s in layer["scores"]]
        best = candidates[deltas.index(max(deltas))]  # first maximum = SPEC's tie order
        assert layer["chosen"] == best == report.plan[layer["name"]] == report.plan_paper[layer["name"]]
    assert "softmax" in report.summary()


def test_reiterable_batches_give_the_same_report_as_a_list(fp):
    items = batches()
    a = mnq.analyze(fp, items, calib_batches=3, progress=False)
    b = mnq.analyze(fp, Reiterable(items), calib_batches=3, progress=False)
    assert a.plan == b.plan
    assert [[s["delta"] for s in la["scores"]] for la in a.layers] == \
           [[s["delta"] for s in lb["scores"]] for lb in b.layers]


def test_isolated_mode_and_candidates(fp):
    report = mnq.analyze(fp, batches(2), calib_batches=2, mode="isolated", softmax=["ivit", "fqvit"],
                         layernorm="ivit", progress=False)
    assert report.mode == "isolated"
    assert report.plan == report.plan_isolated
    for name, method in report.plan.items():
        op = mnq.models.mixable_layers("vit_mnist_tiny")[name]
        assert method in {"softmax": ("ivit", "fqvit"), "layernorm": ("ivit",), "gelu": ("ivit", "ibert")}[op]


def test_paper_scores_only(fp, tmp_path):
    """Without the isolated scores (the default in mode paper, or isolated=False): the paper-mode scores and plan of
    the full analysis (isolated=True), bit for bit; no isolated values. Mode isolated scores them by default."""
    items = batches()
    full = mnq.analyze(fp, items, bits=6, calib_batches=3, progress=False, isolated=True)
    paper = mnq.analyze(fp, items, bits=6, calib_batches=3, progress=False)
    assert full.isolated and not paper.isolated
    off = mnq.analyze(fp, items, bits=6, calib_batches=3, progress=False, isolated=False)
    assert not off.isolated and json.dumps(off.layers) == json.dumps(paper.layers) and off.plan == paper.plan
    iso = mnq.analyze(fp, items, bits=6, calib_batches=3, progress=False, mode="isolated")
    assert iso.isolated and iso.plan == iso.plan_isolated == full.plan_isolated
    assert paper.plan == full.plan == full.plan_paper == paper.plan_paper
    assert paper.plan_isolated == {} and paper.disagreements() == []
    assert "scores only" in paper.summary() and "disagree" not in paper.summary() and "disagree on" in full.summary()
    assert full.plan_isolated and set(full.plan_isolated) == set(full.plan)
    for la, lb in zip(paper.layers, full.layers):
        assert la["chosen"] == lb["chosen"] and la["margin"] == lb["margin"]
        assert la["chosen_isolated"] == "" and math.isnan(la["margin_isolated"])
        for sa, sb in zip(la["scores"], lb["scores"]):
            assert (sa["sqnr_in"], sa["sqnr_out"], sa["delta"]) == (sb["sqnr_in"], sb["sqnr_out"], sb["delta"])
            assert math.isnan(sa["isolated_in"]) and math.isnan(sa["isolated_out"])
            assert math.isfinite(sb["isolated_out"])
    paper.write_json(str(tmp_path / "r.json"))
    j = json.loads((tmp_path / "r.json").read_text())
    assert j["isolated"] is False and j["layers"][0]["methods"]["ivit"]["isolated_sqnr_out"] == "nan"
    with pytest.raises(ValueError, match="analyze.isolated.*needs mode paper"):
        mnq.analyze(fp, items, calib_batches=3, mode="isolated", isolated=False, progress=False)
    with pytest.raises(ValueError, match="isolated must be None, True or False"):
        mnq.analyze(fp, items, calib_batches=3, isolated="no", progress=False)


def test_errors_name_the_argument(fp):
    with pytest.raises(ValueError, match="re-iterable"):
        mnq.analyze(fp, (x for x in batches()), calib_batches=2, progress=False)
    with pytest.raises(ValueError, match="analyze.mode"):
        mnq.analyze(fp, batches(), mode="best", progress=False)
    with pytest.raises(ValueError, match="calib_batches"):
        mnq.analyze(fp, batches(), calib_batches=0)
    with pytest.raises(ValueError, match="no calibration batches"):
        mnq.analyze(fp, [], progress=False)
    with pytest.raises(ValueError, match="mnq.models.create"):
        mnq.analyze(torch.nn.Linear(2, 2), batches(), progress=False)
    with pytest.raises(ValueError, match="tensor of images"):
        mnq.analyze(fp, [[1, 2]], progress=False)


def test_search_plan_never_loses_to_its_start_plans_and_reuses_a_report(fp):
    calib, held = batches(2), batches(2, b=6)[::-1]
    report = mnq.analyze(fp, calib, bits=6, calib_batches=2, progress=False, isolated=True)
    found = mnq.search_plan(fp, calib, held, bits=6, report=report, calib_batches=2, holdout_batches=2,
                            evaluations=7, progress=False)
    assert isinstance(found, mnq.SearchResult) and found.objective == "kl_fp"
    assert set(found.plan) == set(mnq.models.mixable_layers("vit_mnist_tiny"))
    assert found.holdout_images == 12 and 1 <= found.evaluations <= 7
    starts = dict(found.starts)
    assert {"uniform ivit", "uniform ibert", "uniform fqvit"} <= set(starts) and found.start in starts
    assert found.score <= min(starts.values())  # the best plan evaluated: never worse than a start plan
    assert len(found.trajectory) == found.evaluations
    assert found.trajectory[-1]["best"] == found.score
    assert all(b["best"] <= a["best"] for a, b in zip(found.trajectory, found.trajectory[1:]))
    # The analyzer run inside (no report) starts from the same plans: the same search, score for score.
    again = mnq.search_plan(fp, calib, held, bits=6, calib_batches=2, holdout_batches=2, evaluations=7,
                            progress=False)
    assert again.plan == found.plan and again.score == found.score and again.starts == found.starts


def test_search_plan_errors_name_the_argument(fp):
    calib = batches(2)
    with pytest.raises(ValueError, match="held-out"):
        mnq.search_plan(fp, calib, [], bits=8, calib_batches=2, progress=False)
    with pytest.raises(ValueError, match="evaluations"):
        mnq.search_plan(fp, calib, calib, bits=8, evaluations=0, progress=False)
    with pytest.raises(ValueError, match="report"):
        mnq.search_plan(fp, calib, calib, bits=8, report="plan.yaml", progress=False)
    w8 = mnq.analyze(fp, calib, bits=8, calib_batches=2, progress=False, isolated=True)
    with pytest.raises(ValueError, match="report"):  # a report of other bits cannot order this search
        mnq.search_plan(fp, calib, calib, bits=6, report=w8, calib_batches=2, progress=False)
    paper = mnq.analyze(fp, calib, bits=8, calib_batches=2, progress=False)  # its isolated plan is a start plan
    with pytest.raises(ValueError, match="no isolated scores.*isolated=True"):
        mnq.search_plan(fp, calib, calib, bits=8, report=paper, calib_batches=2, progress=False)
    with pytest.raises(ValueError, match="search_plan"):
        mnq.analyze(fp, calib, calib_batches=2, mode="searched", progress=False)


def test_cpu_buffer_cache_reuses_blocks_and_empties_at_exit():
    stats = mnq._mnq.cpu_buffer_cache_stats
    model = mnq.models.create("vit_mnist_tiny").eval()
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model(x)
        with mnq.cpu_buffer_cache():
            hits = stats()["hits"]
            first = model(x)
            again = model(x)  # the same buffers again: served from the cache
            assert stats()["hits"] > hits
            assert stats()["cached_bytes"] > 0
    assert stats()["cached_bytes"] == 0  # emptied when the scope ends
    assert torch.equal(first, plain) and torch.equal(again, plain)


def test_cpu_buffer_cache_refuses_a_second_enter_of_one_scope():
    scope = mnq.cpu_buffer_cache()
    with scope:
        with pytest.raises(RuntimeError, match="already entered"):
            scope.__enter__()
    assert mnq._mnq.cpu_buffer_cache_stats()["cached_bytes"] == 0
