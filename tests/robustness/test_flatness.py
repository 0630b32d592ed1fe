"""Flatness R on a real (briefly trained) OFA subnet: sigma 0, exact restoration, seeding, BN handling."""

from __future__ import annotations

import pytest
import torch

from robustness.flatness import as_batches, evaluate_batches, flatness

from .conftest import to_tensor


@pytest.fixture(scope="module")
def val(digits_data: dict) -> tuple[torch.Tensor, torch.Tensor]:
    x = to_tensor(digits_data["val_images"][:192])
    y = torch.from_numpy(digits_data["val_labels"][:192])
    return x, y


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype
        and torch.equal(
            a[k].view(-1).view(torch.uint8) if a[k].dtype.is_floating_point else a[k],
            b[k].view(-1).view(torch.uint8) if b[k].dtype.is_floating_point else b[k],
        )
        for k in a
    )


def test_trained_net_is_better_than_chance(digits_net: torch.nn.Module, val) -> None:
    acc, loss = evaluate_batches(digits_net, as_batches(val, 64))
    assert acc > 40.0  # 10 classes: chance is 10 %
    assert 0 < loss < 2.3


def test_sigma_zero_gives_zero_and_restores_bits(digits_net: torch.nn.Module, val) -> None:
    before = _state(digits_net)
    res = flatness(digits_net, val, sigma=0.0, n_draws=3, seed=1)
    assert res.robustness == 0.0
    assert res.loss_increase == 0.0
    assert res.acc_draws == [res.acc_clean] * 3
    assert _bit_identical(before, _state(digits_net))


def test_perturbation_restores_weights_bit_identically(digits_net: torch.nn.Module, val) -> None:
    before = _state(digits_net)
    digits_net.train()  # mode must come back as it was
    res = flatness(digits_net, val, sigma=0.1, n_draws=3, seed=0, batch_size=64)
    assert digits_net.training
    digits_net.eval()
    assert res.robustness > 0.0  # a 10 % relative perturbation changes predictions of a real net
    assert res.n_samples == 192 and len(res.acc_draws) == 3
    assert _bit_identical(before, _state(digits_net))  # incl. BN running stats (buffers untouched)


def test_seeded_runs_repeat_exactly_and_seeds_differ(digits_net: torch.nn.Module, val) -> None:
    a = flatness(digits_net, val, sigma=0.1, n_draws=3, seed=7)
    torch.manual_seed(123)  # the global RNG must not matter
    b = flatness(digits_net, val, sigma=0.1, n_draws=3, seed=7)
    c = flatness(digits_net, val, sigma=0.1, n_draws=3, seed=8)
    assert (a.robustness, a.loss_increase, a.acc_draws, a.loss_draws) == (
        b.robustness,
        b.loss_increase,
        b.acc_draws,
        b.loss_draws,
    )
    assert a.loss_draws != c.loss_draws


def test_dataloader_and_tensors_agree(digits_net: torch.nn.Module, val) -> None:
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*val), batch_size=50, shuffle=False)
    a = flatness(digits_net, val, sigma=0.05, n_draws=2, seed=3, batch_size=50)
    b = flatness(digits_net, loader, sigma=0.05, n_draws=2, seed=3)
    assert a.acc_draws == b.acc_draws
    assert a.robustness == pytest.approx(b.robustness)


def test_more_noise_hurts_more(digits_net: torch.nn.Module, val) -> None:
    small = flatness(digits_net, val, sigma=0.01, n_draws=3, seed=0)
    large = flatness(digits_net, val, sigma=0.3, n_draws=3, seed=0)
    assert large.robustness > small.robustness
    assert large.loss_increase > small.loss_increase > -0.05


def test_weights_restored_even_when_evaluation_fails(digits_net: torch.nn.Module, val) -> None:
    before = _state(digits_net)
    bad = [(val[0][:10], val[1][:10]), (val[0][:10, :2], val[1][:10])]  # second batch: wrong channel count
    with pytest.raises(RuntimeError):
        flatness(digits_net, bad, sigma=0.1, n_draws=2)
    assert _bit_identical(before, _state(digits_net))


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"sigma": -0.1}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"n_draws": 0}, "n_draws"),
        ({"seed": -1}, "seed"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_name_the_field(digits_net: torch.nn.Module, val, kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        flatness(digits_net, val, **kw)


def test_empty_data_is_an_error(digits_net: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="empty"):
        flatness(digits_net, (torch.zeros(0, 3, 32, 32), torch.zeros(0, dtype=torch.long)), n_draws=1)
