"""``msunas plot`` / ``search.plot.plot_search`` write a real PNG of a search's archive and front."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.io import read_stats, records_from_stats
from search.plot import _front_points, plot_search
from service.cli import main


def test_front_points_are_non_dominated() -> None:
    import numpy as np

    F = np.array([[5.0, 1.0], [4.0, 2.0], [4.5, 3.0], [3.0, 3.0], [6.0, 0.5]])
    front = _front_points(F)
    assert front.tolist() == [[6.0, 0.5], [5.0, 1.0], [4.0, 2.0], [3.0, 3.0]]


def test_plot_cnas_archive(shared_data: Path, tmp_path: Path) -> None:
    doc = read_stats(shared_data / "cnas_cifar10" / "iter_30.stats")
    recs = records_from_stats(doc)
    png = plot_search(recs, tmp_path / "f.png", objectives=["top1_err", "params"], selected=recs[:2])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plot_cli_and_errors(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "front.png"
    main(["plot", str(shared_data / "cnas_cifar10" / "iter_30.stats"), "--out", str(out)])
    assert out.is_file()
    with pytest.raises(SystemExit) as e:
        main(["plot", str(tmp_path / "missing"), "--out", str(out)])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(ValueError, match="two-objective"):
        plot_search([], tmp_path / "x.png")


def test_plot_of_a_search_folder_draws_its_constraint(tmp_path: Path, oracle_path: Path) -> None:
    """``msunas plot DIR`` takes the second objective's bound from the run's spec (as ``plot ID`` does)."""
    import yaml

    from service.cli.search import _local_plot_data
    from tests.search.conftest import small_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(small_spec(oracle_path, iterations=1, objectives=["top1_err", "params"],
                                              constraints={"params": 7.0e6})))
    out = tmp_path / "run"
    main(["search", str(spec), "--out", str(out), "--quiet"])
    data = _local_plot_data(str(out))
    assert data["constraint"] == 7.0 and data["objectives"] == ["top1_err", "params"]
    assert [h["iteration"] for h in data["history"]] == [0, 1] and len(data["records"]) == 15
    main(["plot", str(out), "--out", str(tmp_path / "front.png")])
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
