"""EDANAS fidelity (issue 19, item 3): the exit rule (softmax margin), the exit heads, the reading of its configs
as the networks CNAS built, and the MACs it recorded -- checked against the real EDANAS records."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from early_exit.edanas import as_built, crosscheck, ee_params, load_records
from early_exit.evaluate import exit_thresholds
from early_exit.export import export_early_exit, onnx_outputs, run_onnx_policy
from early_exit.metrics import apply_policy, calibrate_thresholds, exit_scores, gene_threshold
from early_exit.network import (
    EdanasExitHead,
    build_early_exit_net,
    count_exit_macs_with_hooks,
    exit_macs,
    predict_exits,
)
from search.evaluators.early_exit import EarlyExitEvaluator
from search.spec import load_spec
from supernets.datasets import load_dataset
from supernets.ofa_supernet import build_supernet
from tests.conftest import run_cli
from tests.early_exit.conftest import ee_space

torch.set_num_threads(1)
EDANAS_CSV = ("edanas", "edanas_ee_c10_r32.csv")


# -- the reading of EDANAS configs ------------------------------------------------------------------------------
def test_as_built_fills_the_slots_in_order_and_keeps_the_supernet_defaults() -> None:
    compact = {"ks": [3, 5, 3, 5, 3, 5, 3, 5, 3, 5], "e": [3, 4] * 5, "d": [2, 2, 2, 2, 2], "r": 32, "t": [1.0] * 4}
    built = as_built(compact)
    # CNAS zips blocks[1:] with the compact list: slots 0..9 get the 10 values (stages 1-3), slots 10..19 keep k7/e6
    assert built["ks"] == compact["ks"] + [7] * 10 and built["e"] == compact["e"] + [6] * 10
    assert built["d"] == [2] * 5 and built["t"] == [1.0] * 4 and built["r"] == 32
    space = ee_space(lr=32, ur=32)
    net = space.validate(built)
    # stage 2 (slots 4, 5) is built from the compact values 4 and 5 -- not the per-stage reading's 2 and 3
    assert net["ks"][4:6] == [3, 5] and net["e"][4:6] == [3, 4]
    assert space.validate(built)["ks"][16:18] == [7, 7]  # stage 5 from the supernet defaults
    full = {"ks": [5] * 20, "e": [4] * 20, "d": [4] * 5, "r": 32}
    assert as_built(full)["ks"] == [5] * 20  # per-slot configs are built as given
    with pytest.raises(ValueError, match="config: expected 10 .compact. or 20 kernel sizes"):
        as_built({"ks": [3] * 9, "e": [3] * 9, "d": [2] * 5, "r": 32})


def test_records_params_match_only_the_built_reading(shared_data: Path) -> None:
    path = shared_data.joinpath(*EDANAS_CSV)
    built = crosscheck(path)
    stage = crosscheck(path, reading="stage")
    # every record with params: the built network (backbone + EDANAS heads) has exactly their count (0.01 M)
    assert built["params_checked"] == 219 and built["params_match"] == 219
    assert stage["params_match"] <= 1
    with pytest.raises(ValueError, match="reading: expected one of"):
        load_records(path, reading="padded")


# -- the crosscheck: avg MACs within 1 % (median) and 3 % (worst) -----------------------------------------------
def test_crosscheck_agrees_within_one_percent(shared_data: Path) -> None:
    cc = crosscheck(shared_data.joinpath(*EDANAS_CSV), head="edanas")
    assert cc["n"] == 316 and cc["pearson"] > 0.9999
    assert abs(cc["ratio_median"] - 1) < 0.01 and abs(cc["ratio_worst"] - 1) < 0.03
    # the residual is torchprofile's multiplies (theirs is larger, never smaller): counted, it vanishes
    assert 1.0 < cc["ratio_min"] and cc["ratio_max"] < 1.012
    tp = crosscheck(shared_data.joinpath(*EDANAS_CSV), head="edanas", count="torchprofile")
    assert abs(tp["ratio_worst"] - 1) < 2e-4 and abs(tp["ratio_median"] - 1) < 1e-5
    # our heads or the per-stage reading do not reproduce the records
    assert abs(crosscheck(shared_data.joinpath(*EDANAS_CSV), head="ours")["ratio_median"] - 1) > 0.1
    assert abs(crosscheck(shared_data.joinpath(*EDANAS_CSV), reading="stage")["ratio_worst"] - 1) > 0.2
    for bad, msg in (({"head": "big"}, "head: expected one of"), ({"count": "fvcore"}, "count: expected one of")):
        with pytest.raises(ValueError, match=msg):
            crosscheck(shared_data.joinpath(*EDANAS_CSV), **bad)


def _paths(net: Any) -> list[nn.Module]:
    """One module per exit path of ``net`` (backbone prefix + head; final: the whole subnet)."""

    class Path_(nn.Module):
        def __init__(self, stage: int | None) -> None:
            super().__init__()
            self.net, self.stage = net, stage

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = self.net
            x = n.blocks[0](n.first_conv(x))
            end = len(n.blocks) - 1 if self.stage is None else n.stage_end[self.stage]
            for i in range(1, end + 1):
                x = n.blocks[i](x)
            return n._final(x) if self.stage is None else n.heads[str(self.stage)](x)

    return [Path_(s) for s in net.exit_stages] + [Path_(None)]


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_torchprofile_count_is_torchprofile(width: float, monkeypatch: pytest.MonkeyPatch) -> None:
    tp = pytest.importorskip("torchprofile", reason="torchprofile (the test extra) is not installed")
    import torchprofile.handlers as handlers

    if hasattr(handlers, "HANDLER_MAP"):  # torchprofile >= 0.0.5 counts affine batch norm; 0.0.4 (EDANAS's) did not
        monkeypatch.setitem(handlers.HANDLER_MAP, "aten::batch_norm", None)
    space = ee_space(lr=32, ur=48, exit_mode="b", width_mult=width)
    for cfg in space.sample(2, np.random.default_rng(1)):
        for head in ("ours", "edanas"):
            net = build_early_exit_net(cfg, n_classes=10, width_mult=width, head=head, exits=[True] * 4).eval()
            x = torch.zeros(1, 3, cfg["r"], cfg["r"])
            with warnings.catch_warnings():  # torchprofile warns about operators it does not count (relu6, ...)
                warnings.simplefilter("ignore")
                got = [int(tp.profile_macs(p, x)) for p in _paths(net)]
            want = exit_macs(cfg, n_classes=10, width_mult=width, head=head, count="torchprofile", exits=[True] * 4)
            assert got == want, (head, cfg)


# -- the EDANAS head ---------------------------------------------------------------------------------------------
def test_edanas_head_shape_macs_and_params() -> None:
    head = EdanasExitHead(40, 10)
    assert (head.expand.in_channels, head.expand.out_channels, head.expand.bias) == (40, 240, None)
    assert (head.mix.in_channels, head.mix.out_channels, head.mix.bias) == (240, 320, None)
    assert (head.linear.in_features, head.linear.out_features) == (320, 10)
    assert head(torch.randn(2, 40, 4, 4)).shape == (2, 10)
    cfg = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 2, 2, 3], "r": 36, "b": [1, 1, 1, 1]}
    for width in (1.0, 1.2):
        net = build_early_exit_net(cfg, n_classes=10, width_mult=width, head="edanas")
        assert count_exit_macs_with_hooks(net, 36) == exit_macs(cfg, n_classes=10, width_mult=width, head="edanas")
    net = build_early_exit_net(cfg, n_classes=10, head="edanas")
    assert sum(p.numel() for p in net.parameters()) == ee_params(cfg, n_classes=10, head="edanas")
    assert sum(p.numel() for p in build_early_exit_net(cfg, n_classes=10).parameters()) == ee_params(
        cfg, n_classes=10, head="ours"
    )
    with pytest.raises(ValueError, match="head: expected one of"):
        build_early_exit_net(cfg, n_classes=10, head="wide")


# -- the margin rule ---------------------------------------------------------------------------------------------
def test_margin_rule_on_stored_outputs() -> None:
    p = np.array(
        [
            [[0.5, 0.4, 0.1], [0.7, 0.2, 0.1], [0.34, 0.33, 0.33]],  # exit 0: margins 0.1, 0.5, 0.01
            [[0.2, 0.2, 0.6], [0.1, 0.8, 0.1], [0.9, 0.05, 0.05]],  # final
        ]
    )
    np.testing.assert_allclose(exit_scores(p, "margin")[0], [0.1, 0.5, 0.01])
    np.testing.assert_allclose(exit_scores(p)[0], [0.5, 0.7, 0.34])
    where, pred = apply_policy(p, [0.3], "margin")
    assert where.tolist() == [1, 0, 1] and pred.tolist() == [2, 0, 0]
    where_c, _ = apply_policy(p, [0.3])  # max-softmax: every sample's max >= 0.3
    assert where_c.tolist() == [0, 0, 0]
    # genes: margin thresholds are t itself; 1.0 disables; confidence maps t to 1/K + t (1 - 1/K)
    assert gene_threshold(0.2, 10, "margin") == 0.2 and gene_threshold(1.0, 10, "margin") == 1.0
    assert gene_threshold(0.2, 10) == pytest.approx(0.28)
    cfg = {"t": [0.1, 1.0, 0.2, 1.0]}
    assert exit_thresholds(cfg, 10, "margin") == [0.1, 0.2]
    cal = calibrate_thresholds(p, [2, 0, 0], [1.0, 2.0], grid=[0.05, 0.3, 1.0], rule="margin")
    assert cal["top1"] == 100.0 and cal["thresholds"] == [0.3]
    with pytest.raises(ValueError, match="exit_rule: expected one of"):
        apply_policy(p, [0.3], "entropy")


def test_forward_early_exit_margin_equals_the_stored_policy() -> None:
    cfg = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "b": [1, 1, 0, 1]}
    torch.manual_seed(0)
    net = build_early_exit_net(cfg, n_classes=10, head="edanas").eval()
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    probs, _ = predict_exits(net, [(x, torch.zeros(64, dtype=torch.long))])
    margin = exit_scores(probs, "margin")
    thr = [float(np.median(margin[0])), float(np.median(margin[1])), 1.0]
    where, pred = apply_policy(probs, thr, "margin")
    pred_t, where_t = net.forward_early_exit(x, thr, "margin")
    assert (where_t.numpy() == where).mean() >= 62 / 64 and (pred_t.numpy() == pred).mean() >= 62 / 64
    assert {0, 1} <= set(where.tolist()) and 2 not in where


# -- spec, evaluator, export ---------------------------------------------------------------------------------------
SPEC: dict[str, Any] = {
    "search_space": "eemobilenetv3",
    "resolution": [32, 32],
    "dataset": {"name": "digits", "vld_size": 200},
    "evaluator": {"kind": "supernet", "n_epochs": 1, "batch_size": 50, "bn_calib_images": 100, "train_images": 200},
    "objectives": ["top1_err", "avg_macs"],
    "early_exit": {"exit_rule": "margin", "head": "edanas"},
}


def test_spec_fields_and_their_errors() -> None:
    plain = load_spec({"search_space": "eemobilenetv3"})
    assert plain.early_exit is None or (plain.early_exit.exit_rule, plain.early_exit.head) == ("confidence", "ours")
    spec = load_spec(SPEC)
    assert spec.early_exit is not None and (spec.early_exit.exit_rule, spec.early_exit.head) == ("margin", "edanas")
    for bad, msg in (({"exit_rule": "entropy"}, "early_exit.exit_rule"), ({"head": "big"}, "early_exit.head")):
        with pytest.raises(ValueError, match=msg):
            load_spec(SPEC | {"early_exit": bad})


def test_evaluator_trains_and_measures_with_edanas_heads_and_the_margin_rule(tmp_path: Path) -> None:
    sn, data = build_supernet(1.0, 10, seed=0), load_dataset("digits", None, 200)
    ev = EarlyExitEvaluator(load_spec(SPEC), supernet=sn, data=data)
    space = ee_space(lr=32, ur=32)
    config = space.backbone(space.sample(1, np.random.default_rng(0))[0]) | {"t": [0.2, 1.0, 0.1, 1.0]}
    net, _ = ev.prepare(config)
    assert all(isinstance(h, EdanasExitHead) for h in net.heads.values())
    m = ev.measure(net, config)
    assert m["thresholds"] == [0.2, 0.1]  # margin units: t itself
    assert m["exit_macs"] == [float(v) for v in exit_macs(config, n_classes=10, head="edanas")]
    assert m["avg_macs"] == pytest.approx(float(np.dot(m["exit_util"], m["exit_macs"])))
    # export: the ONNX file records the rule and the head, and its policy is the margin rule
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    info = export_early_exit(
        space.validate(config), sn, "onnx", tmp_path / "m.onnx", thresholds=m["thresholds"], net=net, x=x,
        exit_rule="margin",
    )
    assert info["exit_rule"] == "margin" and info["head"] == "edanas" and info["policy_checked"] == 32
    outs, meta = onnx_outputs(tmp_path / "m.onnx", x.numpy())
    assert meta["exit_rule"] == "margin" and meta["exit_head"] == "edanas" and meta["thresholds"] == [0.2, 0.1]
    pred, where = run_onnx_policy(tmp_path / "m.onnx", x.numpy())
    pred_t, where_t = net.forward_early_exit(x, [0.2, 0.1], "margin")
    assert (where == where_t.numpy()).mean() >= 0.95 and (pred == pred_t.numpy()).mean() >= 0.95
    # the torch checkpoint keeps both and rebuilds EDANAS heads
    from early_exit.export import load_torch_export

    export_early_exit(
        space.validate(config), sn, "torch", tmp_path / "m.pt", thresholds=[0.2, 0.1], net=net, exit_rule="margin"
    )
    back, ck = load_torch_export(tmp_path / "m.pt")
    assert ck["exit_rule"] == "margin" and ck["head"] == "edanas"
    assert all(isinstance(h, EdanasExitHead) for h in back.heads.values())


def test_cli_export_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from supernets.ofa_supernet import save_supernet

    path = save_supernet(build_supernet(1.0, 10, seed=0), tmp_path / "sn.pth")
    cfg = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "t": [0.2, 1.0, 0.1, 1.0]}
    base = ["export", "--config", json.dumps(cfg), "--supernet", str(path), "--dataset", "digits", "--format", "onnx"]
    out = tmp_path / "e.onnx"
    assert run_cli([*base, "--out", str(out), "--exit-rule", "margin", "--exit-head", "edanas"]) == 0
    _, meta = onnx_outputs(out, np.zeros((1, 3, 32, 32), np.float32))
    assert (meta["exit_rule"], meta["exit_head"], meta["thresholds"]) == ("margin", "edanas", [0.2, 0.1])
    capsys.readouterr()
    assert run_cli([*base, "--out", str(tmp_path / "f.onnx"), "--exit-rule", "entropy"]) == 2
    assert "early_exit.exit_rule: Input should be 'confidence' or 'margin'" in capsys.readouterr().err
