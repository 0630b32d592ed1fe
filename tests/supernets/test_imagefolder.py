"""``imagefolder``: a user's own images in torchvision's ImageFolder layout, as a dataset and in a search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from search.spec import load_spec
from supernets.datasets import class_names, dataset_classes, load_dataset
from supernets.errors import InputError
from tests.conftest import run_cli, write_image_folder


def test_loads_with_its_classes_and_test_split(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs")
    data = load_dataset("imagefolder", root, vld_size=9)
    assert data.n_classes == 3 == dataset_classes("imagefolder", root)
    assert len(data.train) == 3 * 24 - 9 and len(data.valid) == 9 and len(data.test) == 3 * 8
    x, y = next(iter(data.valid.batches(32, 9)))
    assert x.shape == (9, 3, 32, 32) and set(y.tolist()) <= {0, 1, 2}
    assert class_names("imagefolder", root) == ["digit_0", "digit_1", "digit_2"]


def test_bad_folders_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no train/ folder") as e:
        dataset_classes("imagefolder", tmp_path)
    assert e.value.field == "dataset.root" and "expected layout: ROOT/train/<class>/" in str(e.value)
    with pytest.raises(ValueError, match="dataset.root: dataset 'imagefolder' needs a local root folder"):
        load_spec({"dataset": {"name": "imagefolder"}})


def test_a_search_on_your_own_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_image_folder(tmp_path / "imgs")
    spec = {"dataset": {"name": "imagefolder", "root": str(root), "vld_size": 12}, "resolution": [32, 32],
            "supernet": {"random_init": True}, "objectives": ["top1_err", "macs"], "predictor": "rbf",
            "evaluator": {"kind": "supernet", "n_epochs": 0, "bn_calib_images": 24, "batch_size": 16},
            "n_doe": 4, "n_iter": 2, "iterations": 1, "engine": {"pop_size": 8, "n_gen": 2, "cv_folds": 2}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert run_cli(["search", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["n_archive"] == 6
    art = json.loads((tmp_path / "run" / "artefact.json").read_text())
    assert art["n_classes"] == 3 and art["dataset"] == {"name": "imagefolder", "root": str(root)}
