"""NACHOS fidelity (issue 19, item 4): the phi-adaptive penalty (``constraint_mode: nachos``) and the threshold
tuning with the ``top1min`` repair (``early_exit.calibration: nachos``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from early_exit.metrics import evaluate_policy, nachos_thresholds
from search.objectives import Objectives
from search.spec import load_spec

torch.set_num_threads(1)


def test_phi_adaptive_penalty_on_a_population() -> None:
    spec = load_spec({"objectives": ["top1_err", "macs"], "constraints": {"macs": 2.0e6}, "constraint_mode": "nachos"})
    obj = Objectives(spec)
    costs = {k: np.array([1.0e6, 3.0e6, 1.5e6, 4.0e6]) for k in ("macs", "params", "activations")}
    top1 = np.array([70.0, 80.0, 75.0, 85.0])
    F, G = obj.evaluate(top1, costs, {}, population=True)
    phi = 0.5  # two of four meet macs <= 2 M
    pen = 1e10 * 0.025 * np.maximum(0.0, costs["macs"] / 1e6 - 2.0)  # the penalty's weights and factor
    np.testing.assert_allclose(F[:, 1], phi * costs["macs"] / 1e6 + (1 - phi) * pen)
    assert G.shape == (4, 0)
    # archived records (not a population): the penalty mode's f2
    Fa, _ = obj.evaluate(top1, costs, {})
    np.testing.assert_allclose(Fa[:, 1], costs["macs"] / 1e6 + pen)
    # an all-feasible population is f2 itself; an all-infeasible one only its violation
    ok = {k: np.array([1.0e6, 1.5e6]) for k in costs}
    np.testing.assert_allclose(obj.evaluate(top1[:2], ok, {}, population=True)[0][:, 1], [1.0, 1.5])
    bad = {k: np.array([3.0e6, 4.0e6]) for k in costs}
    np.testing.assert_allclose(
        obj.evaluate(top1[:2], bad, {}, population=True)[0][:, 1], 1e10 * 0.025 * np.array([1.0, 2.0])
    )
    with pytest.raises(ValueError, match="constraint_mode"):
        load_spec({"constraint_mode": "soft"})


def test_engine_runs_in_nachos_mode() -> None:
    from search.engine import Engine
    from search.evaluator import get_evaluator

    spec = load_spec(
        {
            "resolution": [32, 40],
            "evaluator": {"kind": "proxy", "name": "params"},
            "objectives": ["top1_err", "macs"],
            "constraints": {"macs": 6.0e6},
            "constraint_mode": "nachos",
            "predictor": "rbf",
            "n_doe": 8,
            "n_iter": 4,
            "iterations": 2,
        }
    )
    eng, ev = Engine(spec), get_evaluator(spec)
    while eng.has_next():
        eng.tell([ev.evaluate(c) for c in eng.ask()])
    recs = [r for r in eng.result()["archive"] if r["status"] == "ok"]
    assert len(recs) == 16
    for r in recs:  # archive objectives: the penalty mode's (feasible records: MACs in millions)
        if r["feasible"]:
            assert r["objectives"][1] == pytest.approx(r["metrics"]["macs"] / 1e6)
        else:
            assert r["objectives"][1] > 1e6


def _probs() -> tuple[np.ndarray, np.ndarray]:
    """Two early exits + final on 100 samples: exit 0 is sure and right on 40, exit 1 on 30 more (25 right)."""
    rng = np.random.default_rng(0)
    n, k = 100, 4
    y = rng.integers(0, k, n)
    p = np.full((3, n, k), 1.0 / k)
    for i in range(n):
        p[2, i] = 0.05
        p[2, i, y[i]] = 0.85  # final: always right
    for i in range(40):
        p[0, i] = 0.02
        p[0, i, y[i]] = 0.94
    for i in range(40, 70):
        cls = y[i] if i < 65 else (y[i] + 1) % k
        p[1, i] = 0.1
        p[1, i, cls] = 0.7 - 0.01 * (i - 40)  # 0.70 .. 0.41: leaves once the threshold is low enough
    return p, y


def test_nachos_thresholds_tune_then_repair() -> None:
    p, y = _probs()
    macs = [1.0, 2.0, 4.0]
    free = nachos_thresholds(p, y, macs)  # no budget: the best common epsilon (first exit at least 0.7)
    assert free["thresholds"][0] >= 0.7 and free["feasible"] and not free["repaired"]
    best_acc = max(
        evaluate_policy(p, y, [max(0.7, e), e], macs)["top1"] for e in (0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8)
    )
    assert free["top1"] == best_acc
    # a budget below the tuned avg_macs: the last early exit's threshold is lowered step by step until it fits
    budget = free["avg_macs"] - 0.1
    rep = nachos_thresholds(p, y, macs, max_avg_macs=budget, min_top1=90.0)
    assert rep["repaired"] and rep["feasible"] and rep["avg_macs"] <= budget and rep["top1"] >= 90.0
    assert rep["thresholds"][1] < free["thresholds"][1] and rep["thresholds"][0] == free["thresholds"][0]
    flags = {"feasible": True, "repaired": True, "top1_ok": True}
    assert rep == {**evaluate_policy(p, y, rep["thresholds"], macs), **flags}
    # an accuracy floor the repair may not cross: no returned threshold set breaks it (NACHOS's aliasing would)
    strict = nachos_thresholds(p, y, macs, max_avg_macs=1.0, min_top1=free["top1"] - 0.5)
    assert not strict["feasible"] and strict["top1"] >= free["top1"] - 0.5
    # an accuracy already below the floor: no repair at all
    none = nachos_thresholds(p, y, macs, max_avg_macs=1.0, min_top1=100.5)  # above what the tuning reaches
    assert not none["repaired"] and none["thresholds"] == free["thresholds"] and not none["top1_ok"]


def test_evaluator_calibrates_with_nachos() -> None:
    from search.evaluators.early_exit import EarlyExitEvaluator
    from supernets.datasets import load_dataset
    from supernets.ofa_supernet import build_supernet

    spec = load_spec(
        {
            "search_space": "eemobilenetv3",
            "resolution": [32, 32],
            "dataset": {"name": "digits", "vld_size": 200},
            "evaluator": {"kind": "supernet", "n_epochs": 1, "batch_size": 50, "bn_calib_images": 100,
                          "train_images": 200},
            "objectives": ["top1_err", "avg_macs"],
            "constraints": {"avg_macs": 3.0e6},
            "early_exit": {"exit_mode": "b", "calibration": "nachos", "top1_min": 5.0},
        }
    )
    ev = EarlyExitEvaluator(spec, supernet=build_supernet(1.0, 10, seed=0), data=load_dataset("digits", None, 200))
    cfg = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "b": [1, 1, 0, 0]}
    res = ev.evaluate(cfg)
    assert res.status == "ok", res.error
    m = res.metrics
    assert len(m["thresholds"]) == 2 and all(0.0 <= t <= 1.0 for t in m["thresholds"])
    assert m["feasible"] is (m["avg_macs"] <= 3.0e6) and m["top1_ok"] in (0.0, 1.0)
    with pytest.raises(ValueError, match="early_exit.calibration"):
        load_spec({"search_space": "eemobilenetv3", "early_exit": {"calibration": "greedy"}})


# -- cost-aware joint training (early_exit.training: nachos) -----------------------------------------------------
def _digits() -> tuple[list, list]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1).repeat(1, 3, 1, 1) / 16.0
    x = (torch.nn.functional.interpolate(x, size=32, mode="nearest") - 0.3) / 0.4
    y = torch.tensor(d.target)
    return [(x[i : i + 50], y[i : i + 50]) for i in range(0, 1000, 50)], [(x[1400:1797], y[1400:1797])]


def test_expected_macs_and_cost_term_by_hand() -> None:
    from early_exit.nachos import CostAware, cost_term, expected_macs, gate_prior, gates, leave_probs

    g = torch.tensor([[0.5, 0.5, 1.0], [1.0, 0.0, 1.0]], requires_grad=True)
    q = leave_probs(g)
    np.testing.assert_allclose(q.detach().numpy(), [[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    e = expected_macs(g, [1.0, 2.0, 4.0])
    assert float(e) == pytest.approx(((0.5 + 0.5 + 1.0) + 1.0) / 2)
    e.backward()
    assert g.grad is not None and float(g.grad[0, 0]) < 0  # a more confident first gate lowers the expected MACs
    g2 = g.detach()
    assert float(cost_term(g2, CostAware((1.0, 2.0, 4.0)))) == pytest.approx(1.5 / 4)
    assert float(cost_term(g2, CostAware((1.0, 2.0, 4.0), budget=1.0))) == pytest.approx(0.5 / 3)  # NACHOS's cv
    assert float(cost_term(g2, CostAware((1.0, 2.0, 4.0), budget=5.0))) == 0.0  # the whole net within budget
    logits = [torch.tensor([[4.0, 0.0], [0.0, 4.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])]
    gg = gates(logits)
    assert gg[:, -1].tolist() == [1.0, 1.0] and float(gg[0, 0]) == pytest.approx(torch.sigmoid(torch.tensor(4.0)))
    # exit 0 right on sample 0, wrong on sample 1: balanced halves -> BCE = mean(-log g0, -log(1 - g1'))
    bce = gate_prior(gg, logits, torch.tensor([0, 0]))
    p = float(torch.sigmoid(torch.tensor(4.0)))
    assert float(bce) == pytest.approx((-np.log(p) - np.log(1 - p)) / 2, rel=1e-5)


def test_cost_aware_training_lowers_expected_macs() -> None:
    """Same net, data and seed; plain joint training vs NACHOS's cost-aware loss (a small digits budget, what
    ``evaluate_early_exit`` runs, long enough that both nets are well above chance: at chance, accuracy
    differences are noise): the expected MACs under the exits' gates on held-out images fall, and so do the
    deployed policy's average MACs at the config's fixed thresholds, without losing accuracy."""
    from early_exit.evaluate import EarlyExitSettings, score_exits, training_loss
    from early_exit.nachos import expected_macs, gates
    from early_exit.network import build_early_exit_net, exit_macs, predict_exits, train_joint

    train, valid = _digits()
    cfg = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "t": [0.3, 0.3, 0.3, 1.0]}
    out = {}
    for training in ("joint", "nachos"):
        st = EarlyExitSettings(n_classes=10, epochs=2, lr=0.05, training=training, cost_weight=5.0)
        torch.manual_seed(0)
        net = build_early_exit_net(cfg, n_classes=10)
        train_joint(net, train, epochs=st.epochs, lr=st.lr, loss_fn=training_loss(cfg, st))
        probs, labels = predict_exits(net, valid)
        logits = [torch.log(torch.from_numpy(p).double().clamp_min(1e-30)) for p in probs]  # softmax(log p) = p
        e = float(expected_macs(gates(logits), exit_macs(cfg, n_classes=10)))
        out[training] = (e, score_exits(cfg, probs, labels, st))
    (e_joint, m_joint), (e_nachos, m_nachos) = out["joint"], out["nachos"]
    print(f"expected MACs joint {e_joint / 1e6:.3f} M, nachos {e_nachos / 1e6:.3f} M; policy avg_macs "
          f"{m_joint['avg_macs'] / 1e6:.3f} M vs {m_nachos['avg_macs'] / 1e6:.3f} M; top1 {m_joint['top1']:.1f} vs "
          f"{m_nachos['top1']:.1f}")
    assert m_joint["top1"] > 30 and e_nachos < 0.95 * e_joint
    assert m_nachos["avg_macs"] < m_joint["avg_macs"]
    assert m_nachos["top1"] >= m_joint["top1"] - 5


def test_spec_selects_cost_aware_training() -> None:
    from search.evaluators.early_exit import EarlyExitEvaluator
    from supernets.datasets import load_dataset
    from supernets.ofa_supernet import build_supernet

    spec = load_spec({"search_space": "eemobilenetv3", "resolution": [32, 32],
                      "dataset": {"name": "digits", "vld_size": 200},
                      "evaluator": {"kind": "supernet", "n_epochs": 1, "batch_size": 50, "bn_calib_images": 100,
                                    "train_images": 200},
                      "objectives": ["top1_err", "avg_macs"], "constraints": {"avg_macs": 3.0e6},
                      "early_exit": {"exit_mode": "b", "training": "nachos", "cost_weight": 5.0}})
    ev = EarlyExitEvaluator(spec, supernet=build_supernet(1.0, 10, seed=0), data=load_dataset("digits", None, 200))
    assert (ev.settings.training, ev.settings.cost_weight, ev.settings.max_avg_macs) == ("nachos", 5.0, 3.0e6)
    res = ev.evaluate({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "b": [1, 1, 0, 0]})
    assert res.status == "ok", res.error
    assert load_spec({"search_space": "eemobilenetv3"}).early_exit is None  # default: our joint training
    with pytest.raises(ValueError, match="early_exit.training"):
        load_spec({"search_space": "eemobilenetv3", "early_exit": {"training": "bernoulli"}})
