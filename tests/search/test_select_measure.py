"""``msunas select --measure``: the picks of a real (oracle) search measured here beside the LUT's prediction."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from service.cli import main
from supernets.errors import InputError
from supernets.measure import kendall_tau, measure_picks, parse_device
from tests.conftest import run_cli
from tests.search.conftest import LUT_RESOLUTION, small_spec

R = [LUT_RESOLUTION, LUT_RESOLUTION]


@pytest.fixture(scope="module")
def lat_run(oracle_path: Path, ort_lut: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished oracle search whose records carry the LUT's latency_ms (w1.2, r160)."""
    tmp = tmp_path_factory.mktemp("measure")
    spec = small_spec(oracle_path, resolution=R, latency_table=str(ort_lut), objectives=["top1_err", "latency"],
                      iterations=0)
    p = tmp / "s.yaml"
    p.write_text(yaml.safe_dump(spec))
    main(["search", str(p), "--out", str(tmp / "run"), "--quiet"])
    return tmp / "run"


def test_select_measure_cpu_json_and_csv(lat_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ORT CPU: every pick gets min/median measured ms beside the predicted latency_ms; tau in [-1, 1]."""
    capsys.readouterr()
    out_csv = tmp_path / "m.csv"
    args = ["select", str(lat_run), "-n", "3", "--prefer", "latency_ms", "--measure", "cpu", "--repeat", "5",
            "--warmup", "1", "--json", "--csv", str(out_csv)]
    assert run_cli(args) == 0
    doc = json.loads(capsys.readouterr().out)
    items, m = doc["items"], doc["measured"]
    assert len(items) == 3 and len(m["rows"]) == 3
    assert m["device"] == "onnxruntime-cpu" and m["unit"] == "ms" and m["runtime"]["threads"] == 1
    assert m["tau"] is not None and -1.0 <= m["tau"] <= 1.0
    for it, row in zip(items, m["rows"], strict=True):
        assert it["latency_ms"] > 0 and row["predicted_ms"] == pytest.approx(it["latency_ms"])
        assert 0 < it["measured_min_ms"] <= it["measured_median_ms"] < 1000
        assert it["measured_device"] == "onnxruntime-cpu"
        assert row["error_pct"] == pytest.approx((row["median_ms"] - row["predicted_ms"]) / row["predicted_ms"] * 100)
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"latency_ms", "measured_min_ms", "measured_median_ms", "measured_device"} <= set(rows[0])
    # the table (columns as wide as the terminal allows) and the repeatability line on stderr
    assert run_cli(["select", str(lat_run), "-n", "2", "--measure", "torch-cpu", "--repeat", "2", "--warmup", "0"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "measured on torch-cpu" in err and "repeatability tau" in err and "LUT-vs-measured tau" in err


def test_bad_measure_device_is_named(lat_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run_cli(["select", str(lat_run), "-n", "1", "--measure", "tpu"]) == 2
    assert "--measure" in capsys.readouterr().err
    with pytest.raises(InputError) as e:
        parse_device("gpu")
    assert e.value.field == "measure"
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            parse_device("cuda:0")
    with pytest.raises(InputError) as e:
        measure_picks([{"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160}], "cpu", repeat=1)
    assert e.value.field == "repeat"


def test_kendall_tau() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([1.0], [2.0]) is None and kendall_tau([1, 1], [1, 2]) is None


def test_measure_picks_torch_cpu_orders_small_below_large() -> None:
    """A tiny and a large subnet: both passes and the median put the tiny one first (tau 1 with two nets)."""
    small = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}
    large = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}
    m = measure_picks([small, large], "torch-cpu", n_classes=10, repeat=3, warmup=1, predicted=[1.0, None])
    assert m["device"] == "torch-cpu" and m["tau_lut"] is None
    assert m["rows"][0]["median_ms"] < m["rows"][1]["median_ms"] and m["tau"] == pytest.approx(1.0)
    assert m["rows"][1]["error_pct"] is None


@pytest.mark.cuda
def test_measure_picks_cuda_events_and_graphs() -> None:
    """CUDA: event-timed graph replays; a large net measures above a tiny one and passes agree."""
    small = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}
    large = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}
    m = measure_picks([small, large], "cuda", n_classes=10, repeat=50, warmup=10, batch_size=8)
    assert m["device"] == "cuda:0" and "CUDA events" in m["runtime"]["timing"]
    assert 0 < m["rows"][0]["min_ms"] < m["rows"][1]["min_ms"] and m["tau"] == pytest.approx(1.0)


CFG = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 2], "r": 32}


def test_export_measure_records_latency_in_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ONNX + cpu: the exported file itself timed in ORT; torch + torch-cpu: the backbone in torch; both recorded
    in the file with unit and device."""
    import onnx

    from supernets.ofa_supernet import build_supernet

    sn = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"
    torch.save({"state_dict": build_supernet(1.0, 10, seed=0).state_dict()}, sn)
    base = ["export", "--config", json.dumps(CFG), "--supernet", str(sn), "--dataset", "digits", "--repeat", "5"]
    capsys.readouterr()
    out = tmp_path / "net.onnx"
    assert run_cli([*base, "--measure", "cpu", "--out", str(out)]) == 0
    assert "measured latency on onnxruntime-cpu" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    m = json.loads(meta["msunas.latency_measured"])
    assert m["unit"] == "ms" and m["device"] == "onnxruntime-cpu" and m["what"] == "the exported ONNX file"
    row = m["rows"][0]
    assert 0 < row["min_ms"] <= row["median_ms"] and row["pass_diff_pct"] is not None and m["tau"] is None
    pt = tmp_path / "net.pt"
    assert run_cli([*base, "--format", "torch", "--measure", "torch-cpu", "--out", str(pt)]) == 0
    ck = torch.load(pt, map_location="cpu", weights_only=True)
    assert json.loads(ck["latency_measured"])["device"] == "torch-cpu"
    from supernets.export import load_torch_export

    assert load_torch_export(pt)[1]["d"] == CFG["d"]  # the file still loads
    capsys.readouterr()
    assert run_cli([*base, "--measure", "npu", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "--measure" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
