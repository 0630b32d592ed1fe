"""One suite for every registered predictor: API contract, bad input, determinism, real-data ranking quality."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from acc_predictor import get_predictor, predictor_names
from acc_predictor.data import CNAS_RUNS, load_cnas_cifar10, load_dynast_imagenet
from supernets import get_search_space

torch.set_num_threads(1)

NAMES = predictor_names()
# smaller-than-default settings keep the suite fast; the defaults are what bench/predictors.py measures
FAST: dict[str, dict] = {
    "mlp": {"max_epochs": 150},
    "carts": {"n_trees": 30},
    "as": {"members": ("bilinear", "rbf", "quadratic"), "n_folds": 3},
}


def make(name: str, **kw: object):
    return get_predictor(name, **{**FAST.get(name, {}), **kw})


@pytest.fixture(scope="module")
def cifar(shared_data):
    configs, y, space = load_cnas_cifar10(shared_data / "cnas_cifar10" / CNAS_RUNS[0])
    return configs, y, space


@pytest.fixture(scope="module")
def synthetic():
    """Random MobileNetV3 genomes with a smooth, depth/width-driven target (no shared data needed)."""
    space = get_search_space("mobilenetv3", lr=192, ur=256)
    rng = np.random.default_rng(0)
    configs = space.sample(80, rng)
    G = space.encode_many(configs)
    y = np.array([sum(c["d"]) * 0.3 + np.mean(c["e"]) * 0.2 + c["r"] / 100 for c in configs]) + rng.normal(0, .05, 80)
    return G, y, space, configs


def test_registry_and_unknown_name():
    assert {"rbf", "gp", "mlp", "carts", "as", "bilinear", "quadratic"} <= set(NAMES)
    with pytest.raises(ValueError, match="predictor: 'svm' is not one of"):
        get_predictor("svm")
    with pytest.raises(ValueError, match="bad option"):
        get_predictor("rbf", no_such_option=1)


@pytest.mark.parametrize("name", NAMES)
def test_not_fitted(name, synthetic):
    G = synthetic[0]
    with pytest.raises(NotFittedError):
        make(name).predict(G)


@pytest.mark.parametrize("name", NAMES)
def test_params_stored_unchanged_and_clone(name):
    est = make(name, search_space=None)
    params = est.get_params()
    assert params["search_space"] is None
    for k, v in FAST.get(name, {}).items():
        assert params[k] == v
    assert clone(est).get_params().keys() == params.keys()


@pytest.mark.parametrize("name", NAMES)
def test_bad_targets_and_shapes(name, synthetic):
    G, y, space, _ = synthetic
    for bad in (np.nan, np.inf):
        yb = y.copy()
        yb[3] = bad
        with pytest.raises(ValueError, match="finite"):
            make(name).fit(G, yb)
    with pytest.raises(ValueError, match="same length"):
        make(name).fit(G, y[:-1])
    with pytest.raises(ValueError, match="requires y"):
        make(name).fit(G, None)
    est = make(name).fit(G, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(G[:, :-1])
    with pytest.raises(ValueError, match="n_samples"):
        make(name).fit(G[:1], y[:1])


@pytest.mark.parametrize("name", NAMES)
def test_search_space_inputs(name, synthetic):
    """With a search space: configs and genomes give the same model; bad genomes name the gene."""
    G, y, space, configs = synthetic
    a = make(name, search_space=space).fit(configs, y)
    b = make(name, search_space=space).fit(G, y)
    np.testing.assert_allclose(a.predict(configs[:10]), b.predict(G[:10]), rtol=1e-6, atol=1e-6)
    bad = G[:2].copy()
    bad[1, 0] = 5
    with pytest.raises(ValueError, match=r"X\[1, 0\]"):
        a.predict(bad)
    with pytest.raises(ValueError, match="search_space"):
        make(name).fit(configs, y)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_pickle(name, synthetic):
    G, y, _, _ = synthetic
    p1 = make(name).fit(G, y).predict(G[:20])
    est = make(name).fit(G, y)
    p2 = est.predict(G[:20])
    np.testing.assert_allclose(p1, p2, rtol=1e-9, atol=1e-9)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.predict(G[:20]), p2, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_duplicate_rows(name, synthetic):
    """Repeated genomes (re-measured networks) must not break interpolants or produce non-finite output."""
    G, y, _, _ = synthetic
    G2 = np.vstack([G, G[:30]])
    y2 = np.concatenate([y, y[:30] + 0.01])
    pred = make(name).fit(G2, y2).predict(G)
    assert np.all(np.isfinite(pred))


@pytest.mark.parametrize("name", NAMES)
def test_ranks_real_cifar10_heldout(name, cifar):
    """Fit on 100 real CIFAR-10 records, rank the other 240: far better than chance (a broken model fails)."""
    from acc_predictor.metrics import kendall_tau

    configs, y, space = cifar
    G = space.encode_many(configs)
    perm = np.random.default_rng(1).permutation(len(G))
    trn, tst = perm[:100], perm[100:]
    est = make(name).fit(G[trn], y[trn])
    tau = kendall_tau(y[tst], est.predict(G[tst]))
    assert tau > 0.65, f"{name}: held-out tau {tau:.3f}"


def test_gp_return_std(synthetic):
    G, y, _, _ = synthetic
    gp = make("gp").fit(G[:60], y[:60])
    mean, std = gp.predict(G, return_std=True)
    assert mean.shape == std.shape == (len(G),)
    assert np.all(std >= 0)
    # training points are known better than unseen ones
    assert std[:60].mean() < std[60:].mean()
    np.testing.assert_allclose(mean, gp.predict(G))


def test_as_winner_and_scores(synthetic):
    G, y, _, _ = synthetic
    est = make("as").fit(G, y)
    members = FAST["as"]["members"]
    assert set(members) <= set(est.cv_scores_)
    assert est.winner_ in set(members) | {"ensemble"}
    best = max(est.cv_scores_, key=est.cv_scores_.get)
    assert est.winner_ == best
    assert all(len(v) == 3 * est.n_repeats_ for v in est.cv_fold_scores_.values())
    with pytest.raises(ValueError, match="3-fold"):
        make("as").fit(G[:5], y[:5])
    with pytest.raises(ValueError, match="members"):
        get_predictor("as", members=("as",)).fit(G, y)


def test_as_prefers_gp_within_noise_and_ensemble_predict(synthetic):
    """Within ``margin`` of the top CV score the preferred member wins; the ensemble's shared-encoding predict
    equals the mean of its members' standardised predictions."""
    G, y, _, _ = synthetic
    kw = {"members": ("bilinear", "gp", "quadratic"), "n_folds": 3, "n_repeats": 2}
    est = get_predictor("as", margin=1.0, **kw).fit(G[:60], y[:60])
    assert est.winner_ == "gp" and est.n_repeats_ == 2
    free = get_predictor("as", margin=0.0, **kw).fit(G[:60], y[:60])
    assert free.winner_ == max(free.cv_scores_, key=free.cv_scores_.get)
    ens = get_predictor("as", force="ensemble", **kw).fit(G[:60], y[:60])
    assert ens.winner_ == "ensemble" and len(ens.ensemble_members_) == 3
    want = np.mean([(m.predict(G) - mu) / sd for m, (mu, sd) in zip(ens.models_, ens.ens_stats_, strict=True)],
                   axis=0) * ens.y_scale_ + ens.y_mean_
    np.testing.assert_allclose(ens.predict(G), want, rtol=1e-10, atol=1e-9)
    with pytest.raises(ValueError, match="force"):
        get_predictor("as", force="nope", **kw).fit(G[:60], y[:60])
    with pytest.raises(ValueError, match="margin"):
        get_predictor("as", margin=-1, **kw).fit(G[:60], y[:60])
    with pytest.raises(ValueError, match="n_folds"):
        get_predictor("as", members=("bilinear",), n_folds="many").fit(G[:60], y[:60])


def test_gp_init_warm_start(synthetic):
    G, y, _, _ = synthetic
    cold = make("gp").fit(G[:60], y[:60])
    warm = get_predictor("gp", init=cold.theta_).fit(G[:60], y[:60])
    assert warm.n_iter_ <= cold.n_iter_
    np.testing.assert_allclose(warm.predict(G[60:]), cold.predict(G[60:]), atol=0.05 * np.std(y))
    with pytest.raises(ValueError, match="init"):
        get_predictor("gp", init=[0.0]).fit(G[:60], y[:60])


def test_imagenet_loader_dedupes(shared_data):
    configs, y, space = load_dynast_imagenet(shared_data / "dynast_imagenet")
    keys = {space.key(c) for c in configs}
    assert len(keys) == len(configs) == 1203  # 1215 distinct raw dicts; 12 differ only in inactive slots
    assert 70 < y.min() < y.max() < 80


def test_generic_layout_for_foreign_genomes():
    """Genomes that are not MobileNetV3 ones still work (generic scaled/one-hot encoding)."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(60, 7))
    y = X @ rng.normal(size=7)
    est = get_predictor("gp").fit(X, y)
    assert est.layout_ == "generic"
    assert np.corrcoef(est.predict(X), y)[0, 1] > 0.9


def test_adaptive_switching_on_a_tiny_archive() -> None:
    """A short initial design (n_doe 4) leaves too few points to cross-validate: `as` fits its preferred
    member instead of failing the search."""
    from acc_predictor import get_predictor
    from supernets import get_search_space

    space = get_search_space("mobilenetv3", lr=160, ur=224, width_mult=1.0)
    rng = np.random.default_rng(0)
    X = np.array([space.encode(c) for c in space.sample(4, rng)])
    y = rng.normal(size=4)
    m = get_predictor("as", search_space=space).fit(X, y)
    assert m.winner_ == "gp" and m.cv_scores_ == {} and m.predict(X).shape == (4,)
