"""Zero-shot (training-free) proxies of an architecture's accuracy, computed on once-for-all MobileNetV3 subnets.

Every proxy maps a canonical config to one float, larger = predicted better; all are seeded (same seed, same
config -> the same number) and use one mini-batch per network (``batch_size`` images, one forward/backward).

==========  ==========================================================================  =====================
name        definition                                                                  weights
==========  ==========================================================================  =====================
zen         Zen-NAS (Lin et al. 2021): Gaussian N(0,1) weights, Gaussian input x and    Gaussian re-init,
            x' = x + 0.01 eps; log E_batch ||f(x) - f(x')||_1 of the *pre-GAP* feature   always (the score is
            map (output of the final 1x1 expand layer, before global pooling and the     defined at that init)
            classifier) + sum over BN layers of log sqrt(mean_channel(batch var)) (the
            BN-variance rescaling); train-mode BN, no gradients.
naswot      Mellor et al. 2021: binary activation codes c_i (input > 0) of every ReLU /  random init (OFA's
            h-swish unit for each image i of a batch; K = c c^T + (1-c)(1-c)^T           he_fout), or inherited
            (= N_A - Hamming distance); score = log|det K| (slogdet).                   from ``supernet``
synflow     Tanaka et al. 2020: all parameters replaced by their absolute value, BN in   same as naswot
            eval mode (an affine map, identity at init, as the paper prunes in eval
            mode), all-ones input (1 image), float64; score = sum_theta theta * dR/dtheta
            with R = sum of the logits; reported as log(score) so it stays finite.
gradnorm    Abdelfattah et al. 2021: sum over conv/linear weights of ||dL/dW||_2 for the  same as naswot
            cross-entropy of a batch (Gaussian images, random labels, or ``data``),
            train-mode BN; reported as log(sum).
params      parameter count (exact cost model), baseline                                n/a
macs        multiply-accumulates at the config's resolution (exact cost model), baseline n/a
==========  ==========================================================================  =====================

Why these weights: zen, naswot, synflow and gradnorm are defined (and validated in their papers) on
freshly initialised networks, so random init is the default; the weight tensor is a function of the seed
only. NASWOT, SynFlow and GradNorm can also be read on *inherited* weights (``supernet=`` an
``OFAMobileNetV3`` whose active subnet is extracted with its trained weights), which is how a trained
supernet's knowledge enters; Zen-score re-initialises by definition (its BN-rescaling term assumes
N(0,1) weights), so it ignores ``supernet``.

Inputs are Gaussian images at the config's resolution (or ``resolution=``), drawn from a generator seeded
with ``seed``; NASWOT and GradNorm may instead be given a real mini-batch ``data=(images, labels)``.
Early-exit configs (``t``/``b`` genes) are scored on their backbone: exits do not change these proxies.

Variants (``variant=``) and repeats (``repeat=``)
-------------------------------------------------
``variant="ours"`` (default) is the table above. ``variant="zennas"`` computes zen, naswot, synflow and gradnorm
as the Zen-NAS code does (github.com/idstcv/ZenNAS, ``ZeroShotProxy/compute_{zen,NASWOT,syncflow,gradnorm}_score.py``),
on the same once-for-all subnet:

- every proxy re-initialises the weights with ``network_weight_gaussian_init`` (conv/linear N(0,1), bias 0; BN
  weight 1, bias 0) -- no inherited weights -- and runs BN in train mode (a freshly built ``nn.Module``);
- **zen**: input ``x`` and ``x + gamma * x2`` (``x2`` an independent Gaussian batch); the BN term reads each BN's
  ``running_var`` after both passes (momentum 0.1 from fresh statistics, so ``0.81 + 0.09 var_1 + 0.1 var_2``),
  not the batch variance; with ``repeat`` the same network is re-initialised each time and its running
  statistics carry over, as ``compute_nas_score(..., repeat)`` does; the score is the mean;
- **naswot**: codes of the inputs of the ``nn.ReLU`` modules only (ZenNAS hooks ``basic_blocks.RELU``; an OFA
  MobileNetV3 also has h_swish, which ours counts), ``log|det K|`` by ``slogdet`` (sign ignored);
- **synflow**: BN in *train* mode (ours: eval), ``abs`` of every tensor of the state dict, float64, one all-ones
  image, ``sum(logits)`` backpropagated; score = sum over conv/linear layers of the mean over output channels of
  ``sum |w * dR/dw|`` (ours: the sum over all parameters, logged). ZenNAS returns ``-score``, which makes its
  search prefer *smaller* SynFlow; msunas keeps larger = better and reports ``+score`` (documented difference).
  Train-mode BN on one image fails on a 1x1 final map (r < 36): ``ValueError`` naming ``resolution``;
- **gradnorm**: the global L2 norm of the gradients of *all* parameters (``sqrt(sum ||g||^2)``; ours: the sum of
  the conv/linear weights' norms, logged), cross-entropy of a Gaussian batch with random labels.

``repeat=N`` scores ``N`` times with fresh draws (seeds ``seed``, ``seed + 1``, ...: new weights and inputs) and
returns the mean, as Zen-NAS averages its Zen-score over ``repeat_times`` (its search itself uses 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
from ofa.imagenet_classification.networks import MobileNetV3
from ofa.utils.my_modules import init_models
from ofa.utils.pytorch_modules import Hswish
from torch import nn

from supernets import codec
from supernets.cost import cost_metrics
from supernets.errors import InputError

ProxyFn = Callable[..., float]
_REGISTRY: dict[str, ProxyFn] = {}

# what each proxy's weights are (reported by the evaluator and the docs)
WEIGHTS = {
    "zen": "gaussian",
    "naswot": "init_or_inherited",
    "synflow": "init_or_inherited",
    "gradnorm": "init_or_inherited",
    "params": "none",
    "macs": "none",
}
ZEN_MIXUP = 0.01
VARIANTS: tuple[str, ...] = ("ours", "zennas")
MAX_REPEAT = 64


def register_proxy(name: str) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator registering a proxy function ``fn(net, config, ctx) -> float`` under ``name``."""

    def deco(fn: ProxyFn) -> ProxyFn:
        _REGISTRY[name] = fn
        return fn

    return deco


def proxy_names() -> list[str]:
    """Names of the registered proxies."""
    return sorted(_REGISTRY)


# ---------------------------------------------------------------------------------------------------------------
# subnet construction


@lru_cache(maxsize=2)
def _template(width_mult: float) -> Any:
    """A once-for-all MobileNetV3 supernet skeleton used only to derive subnet configs (cached, never run)."""
    with torch.random.fork_rng(devices=[]):
        return OFAMobileNetV3(
            n_classes=10,
            dropout_rate=0.0,
            width_mult=width_mult,
            ks_list=list(codec.KERNELS),
            expand_ratio_list=list(codec.EXPANDS),
            depth_list=list(codec.DEPTHS),
        )


def backbone_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical backbone (``ks``, ``e``, ``d``, ``r``) of a config; exit genes of early-exit configs dropped."""
    return codec.normalize_backbone({k: config[k] for k in ("ks", "e", "d", "r") if k in config})


def build_subnet(
    config: Mapping[str, Any],
    *,
    width_mult: float = 1.0,
    n_classes: int = 1000,
    seed: int = 0,
    supernet: Any = None,
) -> Any:
    """The subnet of ``config`` as a plain once-for-all ``MobileNetV3``.

    Without ``supernet`` it is built from its layer config and initialised with OFA's ``he_fout`` scheme
    under ``torch.manual_seed(seed)`` (global RNG state is restored afterwards); with ``supernet`` (an
    ``OFAMobileNetV3`` of the same width) its weights are inherited via ``get_active_subnet``.
    """
    c = backbone_config(config)
    width_mult = codec.check_width(width_mult)
    if supernet is not None:
        supernet.set_active_subnet(ks=c["ks"], e=c["e"], d=c["d"])
        return supernet.get_active_subnet(preserve_weight=True)

    tmpl = _template(width_mult)
    tmpl.set_active_subnet(ks=c["ks"], e=c["e"], d=c["d"])
    net_cfg = tmpl.get_active_net_config()
    net_cfg["classifier"]["out_features"] = int(n_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MobileNetV3.build_from_config(net_cfg)
        init_models(net, "he_fout")
    return net


def _gaussian(shape: Sequence[int], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(*shape, generator=g, dtype=dtype)


def _forward_pre_gap(net: Any, x: torch.Tensor) -> torch.Tensor:
    """Feature map of an OFA MobileNetV3 before global average pooling (output of the final expand layer)."""
    x = net.first_conv(x)
    for block in net.blocks:
        x = block(x)
    return net.final_expand_layer(x)


def _activation_modules(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, Hswish))]


# ---------------------------------------------------------------------------------------------------------------
# the proxies; each takes the built net, the canonical config and a context dict


@register_proxy("zen")
def _zen(net: nn.Module, config: dict[str, Any], ctx: dict[str, Any]) -> float:
    r, bs, seed = ctx["resolution"], ctx["batch_size"], ctx["seed"]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for m in net.modules():  # Zen-NAS' network_weight_gaussian_init
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    net.train()
    x = _gaussian((bs, 3, r, r), seed)
    x2 = x + ZEN_MIXUP * _gaussian((bs, 3, r, r), seed + 1_000_003)
    log_bn: list[float] = []

    def bn_hook(mod: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        v = inp[0].double().var(dim=(0, 2, 3), unbiased=True)
        log_bn.append(0.5 * math.log(float(v.mean())))

    hooks = [m.register_forward_pre_hook(bn_hook) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        f1 = _forward_pre_gap(net, x)
        for h in hooks:
            h.remove()
        f2 = _forward_pre_gap(net, x2)
        delta = (f1.double() - f2.double()).abs().sum(dim=(1, 2, 3)).mean()
    return float(math.log(float(delta)) + sum(log_bn))


@register_proxy("naswot")
def _naswot(net: nn.Module, config: dict[str, Any], ctx: dict[str, Any]) -> float:
    images = ctx["images"]
    n = images.shape[0]
    k = torch.zeros(n, n, dtype=torch.float64)

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        # c c^T + (1-c)(1-c)^T = 2 c c^T - s_i - s_j + N_A (s = active units per image): one product, not two.
        # float32 is exact while the counts stay below 2^24 (N_A per layer is ~10^6 at r 256); float64 above.
        a = inp[0].detach().reshape(n, -1)
        c = (a > 0).to(torch.float32 if a.shape[1] < 2**24 else torch.float64)
        s = c.sum(dim=1, dtype=torch.float64)
        k.add_(2.0 * (c @ c.t()).double() - s[:, None] - s[None, :] + float(c.shape[1]))

    hooks = [m.register_forward_pre_hook(hook) for m in _activation_modules(net)]
    net.train()
    try:
        with torch.no_grad():
            net(images)
    finally:
        for h in hooks:
            h.remove()
    sign, logdet = torch.linalg.slogdet(k)
    if float(sign) <= 0:  # identical codes for two images: singular kernel, the worst possible score
        return -1e6
    return float(logdet)


@register_proxy("synflow")
def _synflow(net: nn.Module, config: dict[str, Any], ctx: dict[str, Any]) -> float:
    r = ctx["resolution"]
    net = net.double()
    net.eval()  # BN becomes an affine map (identity at init), as SynFlow scores in eval mode
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
        for m in net.modules():  # inherited BN statistics: keep the affine map positive as well
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
                m.running_mean.zero_()
    net.zero_grad()
    out = net(torch.ones(1, 3, r, r, dtype=torch.float64))
    out.sum().backward()
    total = 0.0
    for p in net.parameters():
        if p.grad is not None:
            total += float((p.detach() * p.grad).sum())
    return float(math.log(total)) if total > 0 else float("-inf")


@register_proxy("gradnorm")
def _gradnorm(net: nn.Module, config: dict[str, Any], ctx: dict[str, Any]) -> float:
    images, labels = ctx["images"], ctx["labels"]
    net.train()
    net.zero_grad()
    loss = F.cross_entropy(net(images), labels)
    loss.backward()
    total = 0.0
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None:
            total += float(m.weight.grad.norm())
    return float(math.log(total)) if total > 0 else float("-inf")


# ---------------------------------------------------------------------------------------------------------------
# Zen-NAS's implementations (variant="zennas"); each takes the built net, the config and the context


def _zennas_gaussian_init(net: nn.Module) -> None:
    """Zen-NAS's ``network_weight_gaussian_init`` (every ``compute_*_score.py``), under the global torch RNG."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def _zennas_zen(net: nn.Module, config: dict[str, Any], ctx: dict[str, Any]) -> float:
    """``compute_zen_score.compute_nas_score`` (repeats on the same network, running statistics carried over)."""
    r, bs, seed = ctx["resolution"], ctx["batch_size"], ctx["seed"]
    for m in net.modules():  # a fresh nn.BatchNorm2d: running_var = 1, momentum 0.1
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = 0.1
    net.train()
    scores = []
    for k in range(ctx["repeat"]):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + k)
            _zennas_gaussian_init(net)
        x = _gaussian((bs, 3, r, r), seed + k)
        x2 = _gaussian((bs, 3, r, r), seed + k + 1_000_003)
        with torch.no_grad():
            out = _forward_pre_gap(net, x)
            out2 = _forward_pre_gap(net, x + ZEN_MIXUP * x2)
            score = torch.mean(torch.sum(torch.abs(out - out2), dim=[1, 2, 3]))
            log_bn = 0.0
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    log_bn += float(torch.log(torch.sqrt(torch.mean(m.running_var))))  # type: ignore[arg-type]
        scores.append(float(torch.log(score)) + log_bn)
    return float(np.mean(scores))


def _zennas_naswot(net: nn.Module, config: dict[str, Any], ctx: dict[str, Any]) -> float:
    """``compute_NASWOT_score.compute_nas_score``: ReLU modules' input codes, ``slogdet`` (sign ignored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx["seed"])
        _zennas_gaussian_init(net)
    images = ctx["images"]
    n = images.shape[0]
    kk = np.zeros((n, n))

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        x = (inp[0].detach().reshape(n, -1) > 0).double()
        kk[:] += (x @ x.t() + (1.0 - x) @ (1.0 - x.t())).numpy()

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    net.train()
    try:
        with torch.no_grad():
            net(images)
    finally:
        for h in hooks:
            h.remove()
    _, ld = np.linalg.slogdet(kk)
    return float(ld) if np.isfinite(ld) else -1e6  # singular: the worst score (ZenNAS would return -inf)


def _zennas_synflow(net: nn.Module, config: dict[str, Any], ctx: dict[str, Any]) -> float:
    """``compute_syncflow_score.do_compute_nas_score`` with the sign of SynFlow (ZenNAS returns its negative)."""
    r = ctx["resolution"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx["seed"])
        _zennas_gaussian_init(net)
    net.train()
    with torch.no_grad():
        for t in net.state_dict().values():  # linearize(): abs of every tensor, buffers included
            if t.is_floating_point():
                t.abs_()
    net.zero_grad()
    net = net.double()
    try:
        out = net(torch.ones(1, 3, r, r, dtype=torch.float64))
    except ValueError as e:  # train-mode BN on one image with a 1x1 map: "Expected more than 1 value per channel"
        raise InputError("resolution", f"the zennas synflow variant needs a final map larger than 1x1 ({e})") from None
    torch.sum(out).backward()
    score = 0.0
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                g = m.weight.grad
                a = torch.abs(m.weight * g) if g is not None else torch.zeros_like(m.weight)
                score += float(torch.mean(torch.sum(a, dim=list(range(1, a.ndim)))))
    return score


def _zennas_gradnorm(net: nn.Module, config: dict[str, Any], ctx: dict[str, Any]) -> float:
    """``compute_gradnorm_score.compute_nas_score``: global L2 norm of all parameters' gradients."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx["seed"])
        _zennas_gaussian_init(net)
    net.train()
    net.zero_grad()
    out = net(ctx["images"])
    one_hot = F.one_hot(ctx["labels"], out.shape[1]).float()
    loss = -(one_hot * F.log_softmax(out, dim=1)).sum(dim=1).mean()
    loss.backward()
    norm2 = 0.0
    with torch.no_grad():
        for p in net.parameters():
            if p.grad is not None:
                norm2 += float(torch.norm(p.grad)) ** 2
    return float(math.sqrt(norm2))


_ZENNAS: dict[str, ProxyFn] = {
    "zen": _zennas_zen,
    "naswot": _zennas_naswot,
    "synflow": _zennas_synflow,
    "gradnorm": _zennas_gradnorm,
}


def _cost(metric: str) -> ProxyFn:
    def fn(net: nn.Module | None, config: dict[str, Any], ctx: dict[str, Any]) -> float:
        m = cost_metrics([config], width_mult=ctx["width_mult"], n_classes=ctx["n_classes"])
        return float(m[metric][0])

    fn.__doc__ = f"{metric} of the subnet (exact cost model): a baseline every proxy should beat"
    return fn


register_proxy("params")(_cost("params"))
register_proxy("macs")(_cost("macs"))
_NEEDS_NET = {"zen", "naswot", "synflow", "gradnorm"}


# ---------------------------------------------------------------------------------------------------------------
# public API


def compute_proxy(
    name: str,
    config: Mapping[str, Any],
    *,
    width_mult: float = 1.0,
    n_classes: int = 1000,
    resolution: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    supernet: nn.Module | None = None,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    variant: str = "ours",
    repeat: int = 1,
) -> float:
    """Score one architecture with proxy ``name`` (larger = predicted more accurate).

    ``variant``: ``ours`` or ``zennas`` (Zen-NAS's implementations, module doc; Gaussian weights, so
    ``supernet`` and ``data`` are not used). ``repeat``: the mean over that many seeded draws (``seed``,
    ``seed + 1``, ...), as Zen-NAS averages its scores.
    ``resolution`` defaults to the config's ``r``; ``batch_size`` images are drawn from N(0,1) with ``seed``
    (ignored by synflow, which uses one all-ones image); ``data=(images, labels)`` replaces the Gaussian batch
    for naswot and gradnorm. ``supernet`` (an ``OFAMobileNetV3``) gives inherited weights (not for zen).
    Raises ``ValueError`` naming the argument on an unknown proxy or bad sizes.
    """
    if name not in _REGISTRY:
        raise InputError("name", f"unknown proxy {name!r} (one of {proxy_names()})")
    if variant not in VARIANTS:
        raise InputError("variant", f"expected one of {list(VARIANTS)}, got {variant!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        raise InputError("repeat", f"expected an integer in 1..{MAX_REPEAT}, got {repeat!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise InputError("batch_size", f"expected an integer >= 2, got {batch_size!r}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise InputError("n_classes", f"expected an integer >= 2, got {n_classes!r}")
    c = backbone_config(config)
    r = int(c["r"] if resolution is None else resolution)
    if r < codec.MIN_RESOLUTION:
        raise InputError("resolution", f"expected >= {codec.MIN_RESOLUTION}, got {r}")
    width_mult = codec.check_width(width_mult)
    ctx: dict[str, Any] = {
        "resolution": r,
        "batch_size": batch_size,
        "seed": int(seed),
        "width_mult": width_mult,
        "n_classes": n_classes,
    }
    if name not in _NEEDS_NET:
        return _REGISTRY[name](None, c, ctx)
    if variant == "zennas":
        return _zennas_score(name, c, ctx, width_mult, n_classes, repeat)
    if repeat > 1:
        draws = [
            compute_proxy(
                name, c, width_mult=width_mult, n_classes=n_classes, resolution=r, batch_size=batch_size,
                seed=int(seed) + k, supernet=supernet, data=data,
            )
            for k in range(repeat)
        ]
        return float(np.mean(draws))
    if data is not None:
        images, labels = data
        if images.ndim != 4 or images.shape[0] != labels.shape[0] or images.shape[0] < 2:
            raise InputError("data", "expected (images (N,3,H,W), labels (N,)) with N >= 2")
        ctx["images"], ctx["labels"] = images.float(), labels.long()
    else:
        ctx["images"] = _gaussian((batch_size, 3, r, r), seed)
        g = torch.Generator().manual_seed(int(seed) + 7)
        ctx["labels"] = torch.randint(0, n_classes, (batch_size,), generator=g)
    net = build_subnet(
        c, width_mult=width_mult, n_classes=n_classes, seed=seed, supernet=None if name == "zen" else supernet
    )
    return float(_REGISTRY[name](net, c, ctx))


def _zennas_score(
    name: str, c: dict[str, Any], ctx: dict[str, Any], width_mult: float, n_classes: int, repeat: int
) -> float:
    """Zen-NAS's implementation of ``name`` (module doc); zen repeats on one network, the others are re-drawn."""
    net = build_subnet(c, width_mult=width_mult, n_classes=n_classes, seed=ctx["seed"])
    if name == "zen":
        return _ZENNAS["zen"](net, c, ctx | {"repeat": repeat})
    scores = []
    r, bs, seed = ctx["resolution"], ctx["batch_size"], ctx["seed"]
    for k in range(repeat):
        g = torch.Generator().manual_seed(seed + k + 7)
        draw = ctx | {
            "seed": seed + k,
            "images": _gaussian((bs, 3, r, r), seed + k),
            "labels": torch.randint(0, n_classes, (bs,), generator=g),
        }
        fresh = net if k == 0 else build_subnet(c, width_mult=width_mult, n_classes=n_classes, seed=seed + k)
        scores.append(_ZENNAS[name](fresh, c, draw))
    return float(np.mean(scores))


def compute_proxies(name: str, configs: Sequence[Mapping[str, Any]], **kw: Any) -> np.ndarray:
    """:func:`compute_proxy` over many configs (same keyword arguments); float64 array."""
    if name in ("params", "macs"):
        from supernets.cost import cost_metrics

        cs = [backbone_config(c) for c in configs]
        m = cost_metrics(cs, width_mult=kw.get("width_mult", 1.0), n_classes=kw.get("n_classes", 1000))
        return np.asarray(m[name], dtype=np.float64)
    return np.array([compute_proxy(name, c, **kw) for c in configs], dtype=np.float64)


def warm_start(
    space: Any,
    n: int,
    *,
    name: str = "synflow",
    pool_factor: int = 3,
    rng: np.random.Generator,
    **kw: Any,
) -> list[dict[str, Any]]:
    """An initial design of ``n`` configs: the ``n`` best by proxy ``name`` of ``pool_factor * n`` random ones.

    ``space`` is a search space (``sample``/``key``); ``kw`` go to :func:`compute_proxy` (``width_mult``,
    ``n_classes``, ``batch_size``, ``seed``). Duplicates are removed before ranking. See docs/proxies.md for
    whether this helps the surrogate (measured on the once-for-all ImageNet oracle).
    """
    if isinstance(pool_factor, bool) or not isinstance(pool_factor, int) or pool_factor < 1:
        raise InputError("pool_factor", f"expected an integer >= 1, got {pool_factor!r}")
    pool: dict[str, dict[str, Any]] = {}
    for c in space.sample(pool_factor * n, rng):
        pool.setdefault(space.key(c), c)
    cands = list(pool.values())
    scores = compute_proxies(name, cands, **kw)
    order = np.argsort(-scores, kind="stable")[:n]
    return [cands[i] for i in order]
