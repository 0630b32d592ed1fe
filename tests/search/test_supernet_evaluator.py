"""The ``supernet`` evaluator on digits with tiny budgets: determinism, metrics, failure capture, registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from search.evaluator import get_evaluator
from search.evaluators.supernet import SupernetEvaluator
from search.spec import load_spec
from supernets import get_search_space
from supernets.datasets import load_dataset
from supernets.ofa_supernet import build_supernet

torch.set_num_threads(1)

TINY = {"kind": "supernet", "n_epochs": 1, "batch_size": 32, "bn_calib_images": 64, "train_images": 64, "lr": 0.02}


def _job(**ev: object):  # type: ignore[no-untyped-def]
    return load_spec(
        {"dataset": {"name": "digits", "vld_size": 64}, "resolution": [32, 40], "evaluator": {**TINY, **ev}, "seed": 3}
    )


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_dataset("digits", vld_size=64)


@pytest.fixture(scope="module")
def supernet() -> torch.nn.Module:
    return build_supernet(1.0, 10, seed=0)


def _config(seed: int = 0) -> dict:
    return get_search_space("mobilenetv3", lr=32, ur=40).sample(1, np.random.default_rng(seed))[0]


def test_same_seed_gives_identical_metrics(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    cfg = _config(0)
    a = SupernetEvaluator(_job(), supernet=supernet, data=digits).evaluate(cfg)
    b = SupernetEvaluator(_job(), supernet=supernet, data=digits).evaluate(cfg)
    assert a.status == "ok", a.error
    for k in ("top1", "top5", "loss", "train_loss", "params"):
        assert a.metrics[k] == b.metrics[k], k
    assert 0 <= a.metrics["top1"] <= a.metrics["top5"] <= 100 and a.metrics["n_valid"] == 64
    assert a.metrics["train_images"] == 64 and a.metrics["train_steps"] == 2
    for k in ("time_extract", "time_bn", "time_train", "time_valid"):
        assert a.metrics[k] > 0
    # exact costs from the cost model: the parameter count equals the extracted subnet's own
    from supernets.ofa_supernet import extract_subnet

    sub = extract_subnet(supernet, SupernetEvaluator(_job(), supernet=supernet, data=digits).space.validate(cfg))
    assert a.metrics["params"] == sum(p.numel() for p in sub.parameters())
    assert a.metrics["macs"] > 0 and a.metrics["activations"] > 0 and a.metrics["peak_activation"] > 0
    # evaluation never changes the supernet's weights
    assert all(torch.equal(v, supernet.state_dict()[k]) for k, v in before.items())


def test_seed_changes_fine_tuning(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    cfg = _config(1)
    a = SupernetEvaluator(_job(), supernet=supernet, data=digits).evaluate(cfg)
    job = _job()
    job.seed = 4
    b = SupernetEvaluator(job, supernet=supernet, data=digits).evaluate(cfg)
    assert a.status == b.status == "ok"
    assert a.metrics["train_loss"] != b.metrics["train_loss"]


def test_sam_fine_tuning_is_selected_by_the_spec(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    """``evaluator.optimizer: sam`` (FlatNAS): a different, still reproducible fine-tuning than SGD's."""
    cfg = _config(1)
    sgd = SupernetEvaluator(_job(), supernet=supernet, data=digits).evaluate(cfg)
    sam = SupernetEvaluator(_job(optimizer="sam", sam_rho=0.05), supernet=supernet, data=digits).evaluate(cfg)
    again = SupernetEvaluator(_job(optimizer="sam", sam_rho=0.05), supernet=supernet, data=digits).evaluate(cfg)
    assert sgd.status == sam.status == "ok", sam.error
    assert sam.metrics["loss"] != sgd.metrics["loss"]
    assert sam.metrics["loss"] == again.metrics["loss"]


def test_no_finetuning_inherits_weights_only(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    r = SupernetEvaluator(_job(n_epochs=0), supernet=supernet, data=digits).evaluate(_config(2))
    assert r.status == "ok" and "train_loss" not in r.metrics and r.metrics["time_train"] < 0.05


def test_nan_loss_is_a_failed_result(digits) -> None:  # type: ignore[no-untyped-def]
    broken = build_supernet(1.0, 10, seed=0)
    with torch.no_grad():
        broken.classifier.linear.weight[0, 0] = float("nan")
    r = SupernetEvaluator(_job(), supernet=broken, data=digits).evaluate(_config(0))
    assert r.status == "failed" and "FloatingPointError: loss is nan" in (r.error or "") and not r.metrics


def test_diverging_lr_is_a_failed_result(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    job = _job(train_images=160)  # an lr far beyond the spec's bound (10), set past validation: the loss diverges
    job = job.model_copy(update={"evaluator": job.evaluator.model_copy(update={"lr": 1e30})})
    r = SupernetEvaluator(job, supernet=supernet, data=digits).evaluate(_config(0))
    assert r.status == "failed" and ("loss is" in (r.error or "") or "non-finite" in (r.error or "")), r.error


def test_broken_config_is_a_failed_result(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    ev = SupernetEvaluator(_job(), supernet=supernet, data=digits)
    r = ev.evaluate({"ks": [9] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32})
    assert r.status == "failed" and "ks[0]: 9 is not one of [3, 5, 7]" in (r.error or "")
    r = ev.evaluate(dict(_config(0), r=36 + 100))
    assert r.status == "failed" and "r" in (r.error or "")


def test_registered_and_built_from_job_spec(tmp_path: Path, supernet) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sn.pth"
    torch.save({"state_dict": supernet.state_dict()}, path)
    spec = _job().model_dump()
    spec["supernet"] = {"path": str(path)}
    ev = get_evaluator(load_spec(spec))
    assert isinstance(ev, SupernetEvaluator)
    r = ev.evaluate(_config(0))
    assert r.status == "ok", r.error
    spec["dataset"]["name"] = "cifar10"
    spec["dataset"]["root"] = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="root folder not found"):
        get_evaluator(load_spec(spec))


def test_wrong_head_or_width_is_a_clear_error(digits) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="head has 7 classes"):
        SupernetEvaluator(_job(), supernet=build_supernet(1.0, 7), data=digits)


def test_device_resident_data_gives_identical_results(digits, supernet) -> None:  # type: ignore[no-untyped-def]
    """The device-resident path (the default on CUDA), forced on the CPU: the held splits are read and batches are
    cut from them with the same draws, so every metric equals the default CPU path's exactly."""
    cfg = _config(1)
    plain = SupernetEvaluator(_job(), supernet=supernet, data=digits)
    held = SupernetEvaluator(_job(), supernet=supernet, data=digits, resident=True)
    assert plain.train_set is digits.train and plain.eval_batch == 32  # CPU default: unchanged behaviour
    assert held.train_set is not digits.train and held.valid_set is not digits.valid  # the held splits are read
    a, b = plain.evaluate(cfg), held.evaluate(cfg)
    assert a.status == b.status == "ok", (a.error, b.error)
    for k in ("top1", "top5", "loss", "train_loss", "params"):
        assert a.metrics[k] == b.metrics[k], k


@pytest.mark.cuda
def test_cuda_evaluator_holds_data_on_the_gpu(digits) -> None:  # type: ignore[no-untyped-def]
    """On CUDA the splits live on the GPU once, calibration/validation use large batches, and the figures agree
    with the CPU's within fine-tuning noise."""
    net = build_supernet(1.0, 10, seed=0)
    ev = SupernetEvaluator(_job(device="cuda"), supernet=net, data=digits)
    assert ev.train_set.images.is_cuda and ev.valid_set.labels.is_cuda and ev.eval_batch >= 512
    cfg = _config(1)
    a = ev.evaluate(cfg)
    assert a.status == "ok", a.error
    cpu = SupernetEvaluator(_job(), supernet=build_supernet(1.0, 10, seed=0), data=digits).evaluate(cfg)
    assert abs(a.metrics["top1"] - cpu.metrics["top1"]) < 15
