"""``output_layout: cnas``: the run folder CNAS's own code reads (``cnas.py`` ``_resume_from_dir``, post-search)."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest

from search.io import read_stats, records_from_stats
from search.runner import run_search
from tests.search.conftest import small_spec


def _cnas_resume(resume: str, first_obj: str, sec_obj: str) -> list[tuple[dict, float, float]]:
    """CNAS@HEAD ``cnas.py`` ``MSuNAS._resume_from_dir``'s reading, written out: every
    ``iter_*/net_*/net_*.subnet`` up to the iteration, with ``stats[first_obj]`` and ``stats[sec_obj]``."""
    path, maxiter = resume.rsplit("_", 1)
    archive = []
    for file in sorted(glob.glob(os.path.join(path + "_*", "net_*/net_*.subnet"))):
        niter = int(Path(file).parent.parent.name.rsplit("_", 1)[1])
        if niter <= int(maxiter):
            stats = json.load(open(os.path.splitext(file)[0] + ".stats"))
            archive.append((json.load(open(file)), stats[first_obj], stats.get(sec_obj)))
    return archive


def test_cnas_layout_is_read_by_cnas_resume(tmp_path: Path, oracle_path: Path) -> None:
    spec = small_spec(oracle_path, iterations=2, output_layout="cnas")
    out = tmp_path / "run"
    res = run_search(spec, out)
    ours = {r["key"]: r for r in res.archive if r["status"] == "ok"}
    theirs = _cnas_resume(str(out / "iter_2"), "top1", "macs")
    assert len(theirs) == len(ours) == 12 + 2 * 3
    from supernets import codec

    for cfg, err, macs in theirs:
        assert len(cfg["ks"]) == sum(cfg["d"])  # compact, as CNAS writes its configs
        r = ours[codec.config_key(codec.normalize_backbone(cfg))]
        assert err == pytest.approx(r["objectives"][0], abs=0.005)  # top1 is the error, 2 decimals
        assert macs == pytest.approx(r["objectives"][1], abs=0.005)  # millions, 2 decimals
    doc = json.loads((out / "iter_2.stats").read_text())
    assert doc["hv"] == pytest.approx(doc["stats"]["hv_cnas"])  # CNAS's hypervolume under CNAS's key
    assert all(len(row[0]["ks"]) == sum(row[0]["d"]) for row in doc["archive"])
    # our own readers still read it: select from the engine state, an exact resume
    assert len(records_from_stats(read_stats(out))) == len(res.archive)
    part = tmp_path / "part"
    run_search(small_spec(oracle_path, iterations=1, output_layout="cnas"), part)
    cont = run_search(small_spec(oracle_path, iterations=2, output_layout="cnas"), part,
                      resume=part / "iter_1.stats")
    assert [r["key"] for r in cont.archive] == [r["key"] for r in res.archive]
