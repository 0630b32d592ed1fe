"""CNAS run folders read as they are: ``msunas select DIR`` and ``--warm-start DIR/iter_K.stats``.

The folder is rebuilt in tmp from CNAS's real records: its ``iter_30.stats`` and, per net, the row of
``cnas_msunas_c10_r192-256_noconstraints.csv`` (the same run: its 340 configs, errors and params equal the archive's,
in order; 100 DOE nets at iteration 0, then 8 per iteration), written in either CNAS layout.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from search.io import cnas_net_stats, read_stats, records_from_stats
from tests.conftest import run_cli


def _cnas_folder(shared: Path, root: Path, layout: str) -> Path:
    """``msunas``: iter_K/net_i.{subnet,stats}, top1 = accuracy; ``cnas``: iter_K/net_i/net_i.*, top1 = error."""
    src = shared / "cnas_cifar10"
    root.mkdir(parents=True)
    shutil.copy(src / "iter_30.stats", root / "iter_30.stats")
    with (src / "cnas_msunas_c10_r192-256_noconstraints.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for j, row in enumerate(rows):
        it, i = (0, j) if j < 100 else (1 + (j - 100) // 8, (j - 100) % 8)
        stats = {
            "top1": round(float(row["top1"]), 2) if layout == "msunas" else float(row["obj1_top1_err"]),
            "params": float(row["params_M"]),
            "flops": float(row["macs_or_flops_M"]),
            "activations": float(row["activations"]),
        }
        d = root / f"iter_{it}" if layout == "msunas" else root / f"iter_{it}" / f"net_{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"net_{i}.subnet").write_text(row["config_json"])
        (d / f"net_{i}.stats").write_text(json.dumps(stats))
    return root


@pytest.mark.parametrize("layout", ["msunas", "cnas"])
def test_records_take_the_nets_own_stats(tmp_path: Path, shared_data: Path, layout: str) -> None:
    folder = _cnas_folder(shared_data, tmp_path / layout, layout)
    recs = records_from_stats(read_stats(folder))
    assert len(recs) == 340
    first, largest = recs[0], recs[1]
    # the archive's error stays; params/flops/activations come from the nets' stats (millions -> counts)
    assert first["metrics"]["top1"] == pytest.approx(100 - 11.38)
    assert first["metrics"]["params"] == pytest.approx(2.14e6)
    assert first["metrics"]["macs"] == pytest.approx(89.42e6)
    assert largest["metrics"]["macs"] == pytest.approx(741.78e6)
    assert largest["metrics"]["activations"] == pytest.approx(24.54e6)
    assert [r["iteration"] for r in recs[98:102]] == [0, 0, 1, 1]
    assert recs[-1]["iteration"] == 30
    # the meaning of top1 (accuracy in MSuNAS's layout, error in CNAS@HEAD's) is read right for every net
    errs = {r["key"]: 100 - r["metrics"]["top1"] for r in recs}
    nets = cnas_net_stats(folder, 30, errs)
    assert len(nets) == 340
    assert all(abs(nets[k]["metrics"]["top1"] - (100 - e)) < 0.2 for k, e in errs.items())
    assert cnas_net_stats(folder, 0, errs).keys() < nets.keys()  # up to iteration K only


def test_select_a_cnas_folder_from_the_cli(tmp_path: Path, shared_data: Path) -> None:
    folder = _cnas_folder(shared_data, tmp_path / "run", "cnas")
    out = tmp_path / "sel.csv"
    assert run_cli(["select", str(folder), "-n", "2", "--prefer", "macs", "--csv", str(out)]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    # the most accurate, then the smallest-MACs net of the front, with the MACs the run recorded (CNAS's own
    # counter, 10-class head), not our exact count of the same config
    from search.objectives import exact_costs

    recs = records_from_stats(read_stats(folder))
    assert float(rows[0]["top1_pct"]) == pytest.approx(max(r["metrics"]["top1"] for r in recs))
    assert float(rows[1]["macs_M"]) == pytest.approx(89.42)
    exact = exact_costs([json.loads(rows[1]["config"])], 1.0, 10)["macs"][0] / 1e6
    assert abs(exact - 89.42) > 0.1


def test_warm_start_from_a_cnas_folder(tmp_path: Path, shared_data: Path, oracle_path: Path) -> None:
    from search.runner import load_engine
    from search.spec import JobSpec
    from tests.search.conftest import small_spec

    folder = _cnas_folder(shared_data, tmp_path / "run", "msunas")
    spec = JobSpec.model_validate(small_spec(oracle_path, width_mult=1.0, resolution=[192, 256],
                                             objectives=["top1_err", "params"], iterations=31))
    eng = load_engine(spec, warm_start=folder / "iter_30.stats")
    assert len(eng.archive) == 340 and eng.iteration == 31
    assert eng.archive[0]["objectives"][0] == pytest.approx(11.38)
