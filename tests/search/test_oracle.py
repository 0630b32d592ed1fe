"""The oracle evaluator: once-for-all's predictor format, its encoding, and clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search.evaluator import get_evaluator
from search.evaluators.oracle import OracleEvaluator, features
from search.spec import load_spec
from tests.conftest import write_random_oracle
from tests.search.conftest import small_spec


def test_features_follow_the_documented_encoding() -> None:
    cfg = {"ks": [3, 5, 7, 7] + [5] * 16, "e": [6, 4, 3, 3] + [4] * 16, "d": [2, 3, 4, 2, 2], "r": 176}
    from supernets import codec

    x = features([codec.normalize_backbone(cfg)])[0]
    assert x.shape == (128,) and x.sum() == 2 * 13 + 1  # 13 active layers, one k and one e bit each, + r
    assert x[0:3].tolist() == [1, 0, 0] and x[3:6].tolist() == [0, 1, 0]  # slot 0: k3, slot 1: k5
    assert x[6:12].tolist() == [0] * 6  # slots 2, 3 inactive (d[0] = 2)
    assert x[60:63].tolist() == [0, 0, 1] and x[63:66].tolist() == [0, 1, 0]  # e6, e4
    assert x[120:128].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]  # (176 - 112) // 16 = 4


def test_real_predictor_scores_in_range(shared_data: Path) -> None:
    path = shared_data / "ofa_imagenet_predictor" / "acc_predictor.npz"
    ev = OracleEvaluator(path)
    from supernets import get_search_space

    sp = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=1.2)
    top1 = ev.predict_top1([sp.decode(sp.xl), sp.decode(sp.xu)] + sp.sample(50, np.random.default_rng(0)))
    assert 74 < top1.min() and top1.max() < 85 and top1[1] > top1[0]
    r = ev.evaluate(sp.decode(sp.xu))
    assert r.status == "ok" and r.metrics["top1"] == pytest.approx(top1[1]) and r.metrics["macs"] > 1e8


def test_registered_kind_builds_from_the_spec(oracle_path: Path) -> None:
    ev = get_evaluator(load_spec(small_spec(oracle_path)))
    assert isinstance(ev, OracleEvaluator) and ev.width_mult == 1.2 and ev.n_classes == 1000


def test_missing_and_malformed_files_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "none.npz"
    with pytest.raises(ValueError, match=f"{missing}.*does not exist"):
        OracleEvaluator(missing)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=f"{junk}.*not a readable"):
        OracleEvaluator(junk)
    p = write_random_oracle(tmp_path / "ok.npz")
    arrays = dict(np.load(p))
    arrays["2.weight"] = arrays["2.weight"][:10]
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(ValueError, match="'2.weight' has shape"):
        OracleEvaluator(tmp_path / "shape.npz")
    arrays["2.weight"] = np.zeros((400, 400), dtype=np.float32)
    del arrays["6.bias"]
    np.savez(tmp_path / "miss.npz", **arrays)
    with pytest.raises(ValueError, match="no array '6.bias'"):
        OracleEvaluator(tmp_path / "miss.npz")
    with pytest.raises(ValueError, match="evaluator.path"):
        get_evaluator(load_spec(small_spec(missing)))
