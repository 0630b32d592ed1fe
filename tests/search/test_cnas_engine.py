"""CNAS's engine steps: ``engine.doe`` (ours = MSuNAS's ``initialize``: smallest, largest, then samples; ``cnas`` =
CNAS@HEAD's ``search_space.sample(n_doe)`` after ``initialize_seed(seed)``) and ``engine.candidate_selection: cnas``
(its subset GA)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search.engine import Engine
from search.spec import load_spec
from supernets import codec
from tests.search.conftest import small_spec


def _cnas_sample(seed: int, n: int, lr: int, ur: int) -> list[dict[str, object]]:
    """CNAS@HEAD ``search_space.py`` ``OFASearchSpace.sample`` (mobilenetv3, rstep 4) after ``np.random.seed``,
    written out independently of the engine: depths, then ks and e of the active layers, then r."""
    np.random.seed(seed)
    out = []
    for _ in range(n):
        depth = np.random.choice([2, 3, 4], 5, replace=True).tolist()
        ks = np.random.choice([3, 5, 7], size=int(np.sum(depth)), replace=True).tolist()
        e = np.random.choice([3, 4, 6], size=int(np.sum(depth)), replace=True).tolist()
        cfg = {"ks": ks, "e": e, "d": depth}
        if lr != ur:
            cfg["r"] = int(np.random.choice(list(range(lr, ur + 1, 4))))
        out.append(cfg)
    return out


def _key(cfg: dict[str, object], r: int | None = None) -> str:
    c = dict(cfg)
    if r is not None:
        c.setdefault("r", r)
    return codec.config_key(codec.normalize_backbone(c))


@pytest.mark.parametrize("resolution", [[160, 224], [192, 192]])
def test_cnas_doe_draws_what_cnas_draws_for_the_seed(oracle_path: Path, resolution: list[int]) -> None:
    spec = load_spec(small_spec(oracle_path, resolution=resolution, seed=7, engine={"doe": "cnas"}))
    doe = Engine(spec).ask()
    want = _cnas_sample(7, 12, *resolution)
    assert [codec.config_key(c) for c in doe] == [_key(c, resolution[0]) for c in want]
    ours = Engine(load_spec(small_spec(oracle_path, resolution=resolution, seed=7))).ask()
    assert [codec.config_key(c) for c in ours] != [codec.config_key(c) for c in doe]


def test_our_doe_starts_as_msunas_initialize_did_in_the_real_run(oracle_path: Path, shared_data: Path) -> None:
    """The real CNAS/MSuNAS run's archive starts with the smallest and the largest net: so does ours."""
    rows = json.loads((shared_data / "cnas_cifar10" / "iter_30.stats").read_text())["archive"]
    spec = load_spec(small_spec(oracle_path, width_mult=1.0, resolution=[192, 256]))
    doe = Engine(spec).ask()
    assert [codec.config_key(c) for c in doe[:2]] == [_key(rows[0][0]), _key(rows[1][0])]


def test_cnas_doe_is_for_mobilenetv3(oracle_path: Path) -> None:
    with pytest.raises(Exception, match="doe"):
        load_spec(small_spec(oracle_path, search_space="eemobilenetv3", engine={"doe": "cnas"}))


def test_subset_spread_by_hand() -> None:
    from search.engine import subset_spread

    assert subset_spread(np.array([5.0]), np.array([0.0, 10.0])) == pytest.approx(0.0)  # gaps 5, 5
    assert subset_spread(np.array([2.0]), np.array([0.0, 10.0])) == pytest.approx(3.0)  # gaps 2, 8


def test_cnas_subset_finds_the_best_spread() -> None:
    """CNAS's subset GA reaches the exhaustive optimum of its objective on small pools."""
    from itertools import combinations

    from search.engine import cnas_subset, subset_spread

    rng = np.random.default_rng(0)
    for trial in range(5):
        f2 = rng.random(12) * 10
        front = np.sort(rng.random(4) * 10)
        best = min(subset_spread(f2[list(c)], front) for c in combinations(range(12), 3))
        got = cnas_subset(f2, front, 3, np.random.default_rng(trial))
        assert len(set(got)) == 3
        assert subset_spread(f2[got], front) == pytest.approx(best)
    assert cnas_subset(np.array([1.0, 2.0]), np.zeros(0), 3, rng) == [0, 1]  # fewer than k: all of them


def test_engine_runs_with_cnas_candidate_selection(oracle_path: Path) -> None:
    from search.evaluator import get_evaluator

    spec = load_spec(small_spec(oracle_path, iterations=2, engine={"candidate_selection": "cnas", "doe": "cnas"}))
    eng, ev = Engine(spec), get_evaluator(spec)
    while eng.has_next():
        eng.tell([ev.evaluate(c) for c in eng.ask()])
    its = [r["iteration"] for r in eng.archive]
    assert its.count(0) == 12 and its.count(1) == 3 and its.count(2) == 3
    assert len({r["key"] for r in eng.archive}) == len(eng.archive)
