"""Latency LUTs: block enumeration vs ofa subnets, measured tables (sums, resume, correction), YAML imports, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from supernets import codec, get_search_space
from supernets.latency import (
    Block,
    LatencyTable,
    Runtime,
    build_table,
    config_blocks,
    enumerate_blocks,
    measure_configs,
)

ROOT = Path(__file__).resolve().parents[2]


def _ofa_blocks(config: dict, width: float) -> list[tuple]:
    """(kind-ish tuple) of every block of the ofa-extracted subnet, with input sizes seen by forward hooks."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    net = OFAMobileNetV3(width_mult=width, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    net.set_active_subnet(ks=config["ks"], e=config["e"], d=config["d"])
    sub = net.get_active_subnet(preserve_weight=False).eval()
    sizes: dict[int, tuple[int, int]] = {}
    mods = [sub.first_conv, *sub.blocks, sub.final_expand_layer, sub.global_avg_pool, sub.feature_mix_layer]
    hooks = [
        m.register_forward_hook(lambda m, i, o, j=j: sizes.__setitem__(j, (i[0].shape[-1], o.shape[-1])))
        for j, m in enumerate(mods)
    ]
    with torch.no_grad():
        sub(torch.zeros(1, 3, config["r"], config["r"]))
    for h in hooks:
        h.remove()
    out = [("stem", sizes[0][0], 3, sizes[0][1], sub.first_conv.out_channels)]
    for j, blk in enumerate(sub.blocks, start=1):
        mb = blk.conv
        mid = mb.depth_conv.conv.in_channels
        out.append(
            ("mbconv", sizes[j][0], mb.in_channels, sizes[j][1], mb.out_channels, mb.kernel_size, mb.stride,
             mid, mb.use_se, mb.act_func == "h_swish", blk.shortcut is not None)
        )  # fmt: skip
    n = len(sub.blocks) + 1
    fe, fm = sub.final_expand_layer, sub.feature_mix_layer
    out.append(("final_expand", sizes[n][0], fe.in_channels, sizes[n][1], fe.out_channels))
    out.append(("pool", sizes[n + 1][0], fe.out_channels, sizes[n + 1][1], fe.out_channels))
    out.append(("feature_mix", 1, fm.in_channels, 1, fm.out_channels))
    out.append(("classifier", 1, sub.classifier.in_features, 1, sub.classifier.out_features))
    return out


def _as_tuple(b: Block) -> tuple:
    if b.kind == "mbconv":
        return (b.kind, b.h_in, b.c_in, b.h_out, b.c_out, b.k, b.stride, b.mid, b.se, b.hs, b.idskip)
    return (b.kind, b.h_in, b.c_in, b.h_out, b.c_out)


@pytest.mark.parametrize("width,r,seed", [(1.0, 33, 0), (1.2, 64, 1), (1.0, 224, 2), (1.2, 170, 3)])
def test_config_blocks_are_the_ofa_subnet_blocks(width, r, seed) -> None:
    config = get_search_space("mobilenetv3", lr=32, ur=32, width_mult=width).sample(1, np.random.default_rng(seed))[0]
    config["r"] = r
    assert [_as_tuple(b) for b in config_blocks(config, width)] == _ofa_blocks(config, width)


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_enumeration_covers_every_block_of_random_subnets(width) -> None:
    blocks = enumerate_blocks(width, range(160, 225, 4))
    assert len(blocks) == len(set(blocks)) == len({b.key() for b in blocks})
    have = set(blocks)
    configs = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=width).sample(300, np.random.default_rng(5))
    used: set[Block] = set()
    for c in configs:
        bl = config_blocks(c, width)
        assert set(bl) <= have
        used.update(bl)
    assert len(used) > 0.6 * len(blocks)  # random subnets reach most of the enumerated blocks
    # a resolution outside the range needs blocks the enumeration does not have
    assert not set(config_blocks(dict(configs[0], r=228), width)) <= have


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory) -> tuple[LatencyTable, Path]:
    """A real table measured with torch on CPU at r=32 (small maps: seconds), with a 3-subnet correction."""
    path = tmp_path_factory.mktemp("lut") / "tiny.json"
    table = build_table(
        path, device="torch-cpu", width_mult=1.0, resolutions=[32], repeat=3, warmup=1, calibrate=3, progress=False
    )
    return table, path


def test_lut_sum_equals_hand_sum(tiny_table) -> None:
    table, path = tiny_table
    stored = json.loads(path.read_text())
    assert stored["complete"] and stored["device"] == "torch-cpu" and stored["threads"] == 1
    assert stored["batch_size"] == 1 and "cpu" in stored["machine"] and stored["runtime"]["torch"]
    assert stored["n_entries"] == len(enumerate_blocks(1.0, [32])) == len(stored["entries"])
    configs = get_search_space("mobilenetv3", lr=32, ur=32).sample(6, np.random.default_rng(0))
    loaded = LatencyTable.load(path)
    hand = [sum(stored["entries"][b.key()]["ms"] for b in config_blocks(c, 1.0)) for c in configs]
    for t in (table, loaded):
        np.testing.assert_allclose(t.predict(configs, raw=True), hand, rtol=1e-12)
        np.testing.assert_allclose(t.predict(codec.backbone_arrays(configs), raw=True), hand, rtol=1e-12)
        corr = stored["correction"]
        np.testing.assert_allclose(t.predict(configs), corr["scale"] * np.array(hand) + corr["offset_ms"])
    assert all(v > 0 for v in hand)
    # the breakdown lists the same blocks
    assert sum(ms for _, ms in loaded.breakdown(configs[0])) == pytest.approx(hand[0])


def test_correction_is_fitted_from_end_to_end_measurements(tiny_table) -> None:
    table, _ = tiny_table
    c = table.correction
    assert c is not None and c["n"] == 3 and len(c["measured_ms"]) == 3 and len(c["configs"]) == 3
    assert all(v > 0 for v in c["measured_ms"])
    np.testing.assert_allclose(table.block_sum(c["configs"]), c["lut_ms"])
    x, y = np.array(c["lut_ms"]), np.array(c["measured_ms"])
    resid = y - (c["scale"] * x + c["offset_ms"])
    assert abs(resid.sum()) < 1e-6 * y.sum()  # least-squares residuals sum to zero
    with pytest.raises(ValueError, match="at least 2"):
        table.set_correction([1.0], [2.0])


def test_correction_with_a_cost_per_layer(tiny_table) -> None:
    """Measurements made of a block sum plus a per-layer overhead: the 3-term fit recovers it exactly and
    predict() applies it (the ranking a global scale cannot fix); a negative per-layer fit falls back."""
    table, _ = tiny_table
    configs = get_search_space("mobilenetv3", lr=32, ur=32).sample(8, np.random.default_rng(3))
    lut = table.block_sum(configs)
    layers = np.array([sum(codec.normalize_backbone(c)["d"]) for c in configs])
    measured = 1.5 * lut + 0.2 * layers + 0.7
    c = table.set_correction(lut, measured, layers=layers)
    assert c["scale"] == pytest.approx(1.5) and c["per_layer_ms"] == pytest.approx(0.2)
    assert c["offset_ms"] == pytest.approx(0.7, abs=1e-6) and c["mape_corrected_in_sample_pct"] < 1e-6
    np.testing.assert_allclose(table.predict(configs), measured, rtol=1e-9)
    c = table.set_correction(lut, 1.5 * lut - 0.2 * layers + 5.0, layers=layers)
    assert c["per_layer_ms"] == 0.0  # a negative overhead per layer is noise: plain scale + offset
    with pytest.raises(ValueError, match="layers"):
        table.set_correction(lut, measured, layers=layers[:3])


def test_build_resumes_a_partial_table(tmp_path) -> None:
    path = tmp_path / "part.json"
    kw = dict(device="torch-cpu", width_mult=1.2, resolutions=[32], repeat=2, warmup=0, calibrate=0, progress=False)
    part = build_table(path, max_blocks=25, **kw)
    first = json.loads(path.read_text())
    assert not first["complete"] and len(first["entries"]) == 25 and part.meta["complete"] is False
    full = build_table(path, **kw)
    second = json.loads(path.read_text())
    assert second["complete"] and len(second["entries"]) == len(enumerate_blocks(1.2, [32]))
    for k, v in first["entries"].items():  # kept, not measured again
        assert second["entries"][k] == v
    assert full.predict([get_search_space("mobilenetv3", lr=32, ur=32).sample(1, np.random.default_rng(1))[0]],
                        raw=True)[0] > 0  # fmt: skip
    with pytest.raises(ValueError, match="threads"):
        build_table(path, **{**kw, "resolutions": [32]}, threads=2)
    with pytest.raises(ValueError, match="clock"):
        build_table(path, **kw, clock="cpu")
    with pytest.raises(ValueError, match="no entry for block"):
        full.predict([dict(codec.normalize_backbone({"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 64}))])


def test_onnxruntime_blocks_and_end_to_end(tmp_path) -> None:
    rt = Runtime("onnxruntime-cpu", threads=1, batch_size=1)
    assert rt.info()["onnxruntime"]
    for b in enumerate_blocks(1.0, [32])[:3] + enumerate_blocks(1.0, [32])[-4:]:
        stats = rt.measure(b.build(), b.input_shape(1), warmup=1, repeat=3)
        assert 0 < stats["min_ms"] <= stats["ms"] < 1000
    configs = get_search_space("mobilenetv3", lr=32, ur=36).sample(2, np.random.default_rng(0))
    ms = measure_configs(configs, device="onnxruntime-cpu", warmup=1, repeat=3)
    assert ms.shape == (2,) and (ms > 0).all()
    seen: list[int] = []  # interleaved passes: every config once per pass, progress over all passes
    ms2 = measure_configs(configs, device="onnxruntime-cpu", warmup=1, repeat=4, rounds=2, progress=seen.append)
    assert ms2.shape == (2,) and (ms2 > 0).all() and seen == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="rounds"):
        measure_configs(configs, repeat=3, rounds=4)
    b = enumerate_blocks(1.0, [32])[0]
    st = Runtime("onnxruntime-cpu", statistic="min").measure(b.build(), b.input_shape(1), warmup=0, repeat=3)
    assert st["ms"] == st["min_ms"]
    with pytest.raises(ValueError, match="statistic"):
        Runtime("onnxruntime-cpu", statistic="mean")
    path = tmp_path / "ort.json"
    build_table(path, device="onnxruntime-cpu", resolutions=[32], repeat=2, warmup=0, progress=False, max_blocks=6)
    stored = json.loads(path.read_text())
    assert len(stored["entries"]) == 6 and stored["runtime"]["onnxruntime"]
    assert stored["statistic"] == "median"
    with pytest.raises(ValueError, match="statistic: .* was built with statistic='median'"):  # resume keeps it
        build_table(path, device="onnxruntime-cpu", resolutions=[32], statistic="min", progress=False)


def test_cpu_clock() -> None:
    """Thread CPU time: for one thread, the compute of the calling thread, immune to preemption by other jobs."""
    rt = Runtime("onnxruntime-cpu", clock="cpu")
    assert rt.info()["clock"] == "cpu"
    b = [x for x in enumerate_blocks(1.0, [64]) if x.kind == "mbconv"][5]
    stats = rt.measure(b.build(), b.input_shape(1), warmup=1, repeat=3)
    assert 0 < stats["ms"] < 1000
    with pytest.raises(ValueError, match="clock"):
        Runtime("onnxruntime-cpu", threads=2, clock="cpu")
    with pytest.raises(ValueError, match="clock"):
        Runtime("torch-cpu", clock="gpu")


def test_bad_runtime_settings() -> None:
    with pytest.raises(ValueError, match="device"):
        Runtime("tpu")
    with pytest.raises(ValueError, match="threads"):
        Runtime("torch-cpu", threads=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Runtime("torch-cuda")


# ---------------------------------------------------------------------------------------------- YAML imports


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


# two configs with their blocks' keys written out by hand from the NSGANetV2 key format
I7_CASES = [
    (
        1.0,
        {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 224},
        [
            "first_conv-input:224x224x3-output:112x112x16",
            "MBConv-input:112x112x16-output:112x112x16-expand:1-kernel:3-stride:1-idskip:1-se:0",
            "MBConv-input:112x112x16-output:56x56x24-expand:3-kernel:3-stride:2-idskip:0-se:0",
            "MBConv-input:56x56x24-output:56x56x24-expand:3-kernel:3-stride:1-idskip:1-se:0",
            "MBConv-input:56x56x24-output:28x28x40-expand:3-kernel:3-stride:2-idskip:0-se:1",
            "MBConv-input:28x28x40-output:28x28x40-expand:3-kernel:3-stride:1-idskip:1-se:1",
            "MBConv-input:28x28x40-output:14x14x80-expand:3-kernel:3-stride:2-idskip:0-se:0",
            "MBConv-input:14x14x80-output:14x14x80-expand:3-kernel:3-stride:1-idskip:1-se:0",
            "MBConv-input:14x14x80-output:14x14x112-expand:3-kernel:3-stride:1-idskip:0-se:1",
            "MBConv-input:14x14x112-output:14x14x112-expand:3-kernel:3-stride:1-idskip:1-se:1",
            "MBConv-input:14x14x112-output:7x7x160-expand:3-kernel:3-stride:2-idskip:0-se:1",
            "MBConv-input:7x7x160-output:7x7x160-expand:3-kernel:3-stride:1-idskip:1-se:1",
            "final_expand_layer-input:7x7x160-output:7x7x960",
            "feature_mix_layer-input:1x1x960-output:1x1x1280",
            "classifier-input:1280-output:1000",
        ],
    ),
    (
        1.2,
        # compact form: stage depths 3, 2, 2, 2, 2
        {
            "ks": [7, 5, 3, 5, 7, 3, 5, 7, 3, 5, 7],
            "e": [6, 4, 3, 6, 4, 3, 3, 6, 4, 6, 3],
            "d": [3, 2, 2, 2, 2],
            "r": 160,
        },
        [
            "first_conv-input:160x160x3-output:80x80x24",
            "MBConv-input:80x80x24-output:80x80x24-expand:1-kernel:3-stride:1-idskip:1-se:0",
            "MBConv-input:80x80x24-output:40x40x32-expand:6-kernel:7-stride:2-idskip:0-se:0",
            "MBConv-input:40x40x32-output:40x40x32-expand:4-kernel:5-stride:1-idskip:1-se:0",
            "MBConv-input:40x40x32-output:40x40x32-expand:3-kernel:3-stride:1-idskip:1-se:0",
            "MBConv-input:40x40x32-output:20x20x48-expand:6-kernel:5-stride:2-idskip:0-se:1",
            "MBConv-input:20x20x48-output:20x20x48-expand:4-kernel:7-stride:1-idskip:1-se:1",
            "MBConv-input:20x20x48-output:10x10x96-expand:3-kernel:3-stride:2-idskip:0-se:0",
            "MBConv-input:10x10x96-output:10x10x96-expand:3-kernel:5-stride:1-idskip:1-se:0",
            "MBConv-input:10x10x96-output:10x10x136-expand:6-kernel:7-stride:1-idskip:0-se:1",
            "MBConv-input:10x10x136-output:10x10x136-expand:4-kernel:3-stride:1-idskip:1-se:1",
            "MBConv-input:10x10x136-output:5x5x192-expand:6-kernel:5-stride:2-idskip:0-se:1",
            "MBConv-input:5x5x192-output:5x5x192-expand:3-kernel:7-stride:1-idskip:1-se:1",
            "final_expand_layer-input:5x5x192-output:5x5x1152",
            "feature_mix_layer-input:1x1x1152-output:1x1x1536",
            "classifier-input:1536-output:1000",
        ],
    ),
]


@pytest.mark.parametrize("width,config,keys", I7_CASES)
def test_nsganetv2_yaml_reproduces_hand_sums(shared_data: Path, width, config, keys) -> None:
    path = shared_data / "latency_luts" / "i7-8700K_lut.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    raw = _yaml(path)
    hand = sum(raw[k]["mean"] for k in keys)
    table = LatencyTable.load(path, width_mult=width)
    assert table.style == "nsganetv2" and table.n_classes == 1000
    assert table.predict([config])[0] == pytest.approx(hand, rel=1e-12)
    assert [k for k, _ in table.breakdown(config) if k] == keys


NOTE10_KEYS_160 = [  # {"ks": [3]*20, "e": [3]*20, "d": [2]*5} at r=160, width 1.2, by hand
    "Conv-input:160x160x3-output:80x80x24",
    "expanded_conv-input:80x80x24-output:80x80x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0",
    "expanded_conv-input:80x80x24-output:40x40x32-expand:72-kernel:3-stride:2-idskip:0-se:0-hs:0",
    "expanded_conv-input:40x40x32-output:40x40x32-expand:96-kernel:3-stride:1-idskip:1-se:0-hs:0",
    "expanded_conv-input:40x40x32-output:20x20x48-expand:96-kernel:3-stride:2-idskip:0-se:1-hs:0",
    "expanded_conv-input:20x20x48-output:20x20x48-expand:144-kernel:3-stride:1-idskip:1-se:1-hs:0",
    "expanded_conv-input:20x20x48-output:10x10x96-expand:144-kernel:3-stride:2-idskip:0-se:0-hs:1",
    "expanded_conv-input:10x10x96-output:10x10x96-expand:288-kernel:3-stride:1-idskip:1-se:0-hs:1",
    "expanded_conv-input:10x10x96-output:10x10x136-expand:288-kernel:3-stride:1-idskip:0-se:1-hs:1",
    "expanded_conv-input:10x10x136-output:10x10x136-expand:408-kernel:3-stride:1-idskip:1-se:1-hs:1",
    "expanded_conv-input:10x10x136-output:5x5x192-expand:408-kernel:3-stride:2-idskip:0-se:1-hs:1",
    "expanded_conv-input:5x5x192-output:5x5x192-expand:576-kernel:3-stride:1-idskip:1-se:1-hs:1",
    "Conv_1-input:5x5x192-output:5x5x1152",
    "AvgPool2D-input:5x5x1152-output:1x1x1152",
    "Conv_2-input:1x1x1152-output:1x1x1536",
    "Logits-input:1x1x1536-output:1000",
]


def test_ofa_yaml_reproduces_hand_sums_and_ofa_estimator(shared_data: Path) -> None:
    folder = shared_data / "latency_luts" / "note10"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    raw160 = _yaml(folder / "160_lookup_table.yaml")
    config = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160}
    hand = sum(raw160[k]["mean"] for k in NOTE10_KEYS_160)
    for src in (folder, folder / "160_lookup_table.yaml"):
        table = LatencyTable.load(src)
        assert table.style == "ofa" and table.width_mult == 1.2
        assert table.predict([config])[0] == pytest.approx(hand, rel=1e-12)
    # against once-for-all's own estimator (ofa/tutorial/latency_table.py) on random configs, 3 resolutions
    import importlib.util

    import ofa

    # load ofa/tutorial/latency_table.py alone (the ofa.tutorial package imports gdown, not installed)
    spec = importlib.util.spec_from_file_location("ofa_latency_table", Path(ofa.__file__).parent / "tutorial" /
                                                  "latency_table.py")  # fmt: skip
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    LatencyEstimator = mod.LatencyEstimator
    table = LatencyTable.load(folder)
    rng = np.random.default_rng(0)
    for r in (160, 192, 224):
        est = LatencyEstimator.__new__(LatencyEstimator)
        est.lut = _yaml(folder / f"{r}_lookup_table.yaml")
        configs = get_search_space("mobilenetv3", lr=r, ur=r, width_mult=1.2).sample(20, rng)
        want = [est.predict_network_latency_given_spec(dict(c, r=[r])) for c in configs]
        np.testing.assert_allclose(table.predict(configs), want, rtol=1e-12)
    with pytest.raises(ValueError, match="r: 228"):
        table.predict([dict(config, r=228)])


def test_load_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        LatencyTable.load(tmp_path / "none.json")
    (tmp_path / "x.yaml").write_text("foo: {mean: 1}\n")
    with pytest.raises(ValueError, match="neither NSGANetV2"):
        LatencyTable.load(tmp_path / "x.yaml")
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not an msunas table"):
        LatencyTable.load(tmp_path / "x.json")
    with pytest.raises(ValueError, match="no once-for-all"):
        LatencyTable.load(tmp_path)


# ---------------------------------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "lut", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_lut_build_and_predict(tmp_path, tiny_table) -> None:
    out = tmp_path / "cli.json"
    res = _cli("build", "--device", "torch-cpu", "--resolutions", "32:32", "--repeat", "2", "--warmup", "0",
               "--calibrate", "2", "--quiet", "--out", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["complete"] and summary["correction"]["n"] == 2 and out.is_file()
    config = {"ks": [5] * 10, "e": [4] * 10, "d": [2] * 5, "r": 32}
    res = _cli("predict", "--lut", str(out), "--config", json.dumps(config))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    table = LatencyTable.load(out)
    assert got["latency_ms"] == pytest.approx(table.predict([config])[0])
    assert got["block_sum_ms"] == pytest.approx(table.predict([config], raw=True)[0]) and got["corrected"]
    res = _cli("predict", "--lut", str(out), "--config", json.dumps([config, config]), "--raw", "--breakdown")
    got = json.loads(res.stdout)
    assert len(got["latency_ms"]) == 2 and not got["corrected"] and len(got["blocks"][0]) == 16


def test_cli_lut_predict_foreign_yaml(shared_data: Path) -> None:
    path = shared_data / "latency_luts" / "i7-8700K_lut.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    width, config, keys = I7_CASES[1]
    res = _cli("predict", "--lut", str(path), "--width", str(width), "--config", json.dumps(config))
    assert res.returncode == 0, res.stderr
    raw = _yaml(path)
    assert json.loads(res.stdout)["latency_ms"] == pytest.approx(sum(raw[k]["mean"] for k in keys))


@pytest.mark.parametrize(
    "args,needle",
    [
        (["build", "--device", "tpu", "--out", "x.json"], "--device"),
        (["build", "--resolutions", "160:170", "--out", "x.json"], "--resolutions"),
        (["predict", "--lut", "/no/such.json", "--config", "{}"], "no such file"),
        (["predict", "--lut", "{lut}", "--config", '{"ks": [3]}'], "e: missing"),
        (["predict", "--lut", "{lut}", "--config", '{"ks": [3]*10, "e": [3]*10, "d": [2]*5, "r": 32}'], "invalid JSON"),
        (["predict", "--lut", "{lut}", "--config", '{"ks":[3,3,3,3,3,3,3,3,3,3],"e":[3,3,3,3,3,3,3,3,3,3],'
          '"d":[2,2,2,2,2],"r":64}'], "no entry for block"),
    ],
)  # fmt: skip
def test_cli_lut_bad_input_one_line_exit_2(tiny_table, args, needle) -> None:
    _, path = tiny_table
    res = _cli(*[a.replace("{lut}", str(path)) for a in args])
    assert res.returncode == 2, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("msunas: error:") and needle in lines[0], res.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present: the no-device error cannot be shown")
def test_cli_lut_build_torch_cuda_without_cuda(tmp_path) -> None:
    res = _cli("build", "--device", "torch-cuda", "--out", str(tmp_path / "c.json"))
    assert res.returncode == 2 and "CUDA is not available" in res.stderr
    assert not (tmp_path / "c.json").exists()
