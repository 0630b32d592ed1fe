"""Early-exit networks on once-for-all MobileNetV3 subnets: exit heads, joint training, the confidence policy,
and exact analytic MACs per exit.

Design
------
The backbone is an OFA ``OFAMobileNetV3`` subnet extracted with ``set_active_subnet`` +
``get_active_subnet(preserve_weight=True)``, so it inherits the supernet's weights. An early exit after stage
``s`` (1..4) reads that stage's output (C_s channels, H_s x H_s) through an :class:`ExitHead`::

    Conv2d(C_s, head_width, 1, bias=False) -> BatchNorm2d -> h_swish -> global average pool -> Linear(head_width, K)

(the shape of MobileNetV3's own final part, with one 1x1 conv instead of two: cheap next to the backbone, and
its cost does not grow with K beyond the linear layer). The final exit is the subnet's own classifier
(final expand 1x1 conv -> pool -> feature-mix 1x1 conv -> linear).

``head="edanas"`` attaches EDANAS's exit instead (:class:`EdanasExitHead`, a copy of MobileNetV3's final part
scaled to the stage: for C channels ``Conv 1x1 C->6C + BN + h_swish -> pool -> Conv 1x1 6C->8C (no bias, no BN)
+ h_swish -> Linear(8C, K)``), as the CNAS repository's ``ExitBlock`` builds it
(``nsganetv2/ofa/elastic_nn/modules/dynamic_layers.py`` and ``EEMobileNetV3`` in
``nsganetv2/ofa/imagenet_codebase/networks/mobilenet_v3.py``, commit 012c164, the code of the EDANAS runs).

MACs follow once-for-all's ``count_net_flops`` conventions: a convolution costs
``in_channels * output_elements * k * k / groups``, a linear layer ``in * out``; batch norm, activations,
pooling, the SE multiply and residual additions cost nothing. The MACs of exit ``b`` are those of the backbone
up to the end of its stage plus those of its head; the final exit's MACs equal ``count_net_flops`` of the
plain subnet. :func:`exit_macs` computes them from the config alone (nothing is built).

Policy
------
At inference a sample leaves at the first exit whose score is ``>= threshold``. The score is the exit rule's
(:data:`early_exit.metrics.EXIT_RULES`): ``confidence`` (default) the max-softmax probability, ``margin``
EDANAS's softmax margin ``p_top1 - p_top2`` (``ExitBlock.confidence`` in the CNAS code above). A threshold of
``1.0`` (or more) disables an exit (a float32 softmax can round to exactly 1.0, so "no exit" is explicit, not a
confidence test); the final classifier takes whatever is left. :meth:`EarlyExitNet.forward_early_exit` runs the
policy for real (samples that left are not computed further); :func:`early_exit.metrics.apply_policy` applies
the same rule to stored per-exit outputs (one forward pass over the validation split, then any thresholds).
Thresholds here are max-softmax probabilities; the normalised ``t`` genes of ``eemobilenetv3`` map to them by
:func:`early_exit.metrics.confidence_threshold` (``1/K + t (1 - 1/K)``). :mod:`early_exit.export` writes a
network with every exit's logits and its thresholds (ONNX or a PyTorch checkpoint).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
from ofa.utils.layers import LinearLayer
from torch import nn

from early_exit.metrics import check_rule
from supernets import codec
from supernets.errors import InputError

N_EARLY_EXITS = 4
DEFAULT_HEAD_WIDTH = 128
HEADS: tuple[str, ...] = ("ours", "edanas")
COUNTS: tuple[str, ...] = ("ofa", "torchprofile")
EDANAS_EXPAND = 6  # EDANAS exit: C -> 6C (MobileNetV3's final expand ratio, 160 -> 960)
EDANAS_MIX = 8  # then 6C -> 8C (MobileNetV3's feature mix, 160 -> 1280)


def check_head(head: str) -> str:
    """``head`` if it names an exit head (:data:`HEADS`), else ``ValueError`` naming the field."""
    if head not in HEADS:
        raise InputError("head", f"expected one of {list(HEADS)}, got {head!r}")
    return head




# -- analytic MACs ---------------------------------------------------------------------------------------------
def _out_size(h: int, stride: int) -> int:
    """Output side of a same-padded convolution (odd kernel, padding k // 2)."""
    return (h - 1) // stride + 1


def stage_shapes(r: int, width_mult: float = 1.0) -> list[tuple[int, int]]:
    """(channels, spatial side) of the output of stages 1..5 at input resolution ``r``."""
    w = codec.stage_widths(width_mult)
    h = _out_size(_out_size(r, 2), 1)  # stem (stride 2) and first block (stride 1)
    out = []
    for s in range(codec.N_STAGES):
        h = _out_size(h, codec.STAGE_STRIDES[s])
        out.append((w[2 + s], h))
    return out


def backbone_stage_macs(config: Mapping[str, Any], width_mult: float = 1.0, count: str = "ofa") -> list[int]:
    """MACs of [stem + first block, stage 1, ..., stage 5, final part without the classifier] (7 numbers).

    ``count="torchprofile"`` adds what ``torchprofile.profile_macs`` (0.0.4, the version of the CNAS runs, which
    counts batch norm as free) counts beyond once-for-all's counter: one multiply per output element of every
    ``aten::mul`` (the h_swish activations, ``x * relu6(x + 3) / 6``, and the SE re-scaling ``x * y``) and one per
    output element of every ``aten::mean`` (the SE and global poolings, taken as two means, W then H).
    """
    if count not in COUNTS:
        raise InputError("count", f"expected one of {list(COUNTS)}, got {count!r}")
    tp = count == "torchprofile"
    w = codec.stage_widths(width_mult)
    r = int(config["r"])
    h = _out_size(r, 2)
    stem = 3 * w[0] * h * h * 9 + (w[0] * h * h if tp else 0)  # stem conv (+ its h_swish)
    first = w[0] * h * h * 9 + w[0] * w[1] * h * h  # depthwise 3x3 (expand 1) + pointwise (ReLU: free)
    parts = [stem + first]
    c_in = w[1]
    for s in range(codec.N_STAGES):
        c_out = w[2 + s]
        macs = 0
        for j in range(config["d"][s]):
            i = s * codec.MAX_DEPTH + j
            k, e = config["ks"][i], config["e"][i]
            stride = codec.STAGE_STRIDES[s] if j == 0 else 1
            mid = codec.make_divisible(round(c_in * e), 8)
            h_out = _out_size(h, stride)
            macs += c_in * mid * h * h  # inverted bottleneck 1x1
            macs += mid * h_out * h_out * k * k  # depthwise
            if tp and not codec.STAGE_RELU[s]:
                macs += mid * h * h + mid * h_out * h_out  # h_swish after the 1x1 and after the depthwise
            if codec.STAGE_SE[s]:
                se_mid = codec.make_divisible(mid // 4, 8)
                macs += 2 * mid * se_mid  # SE reduce + expand on the pooled 1x1 map
                if tp:
                    macs += mid * h_out + mid + mid * h_out * h_out  # two means, then x * y
            macs += mid * c_out * h_out * h_out  # point-linear 1x1
            c_in, h = c_out, h_out
        parts.append(macs)
    final = c_in * w[7] * h * h + w[7] * w[8]  # final expand 1x1 + feature mix on the pooled map
    if tp:
        final += w[7] * h * h + w[7] * h + w[7] + w[8]  # h_swish, two means, h_swish
    parts.append(final)
    return [int(p) for p in parts]


def head_macs(
    channels: int,
    side: int,
    n_classes: int,
    head_width: int = DEFAULT_HEAD_WIDTH,
    head: str = "ours",
    count: str = "ofa",
) -> int:
    """MACs of one exit head on a ``channels x side x side`` input: :class:`ExitHead` (``head="ours"``) or
    :class:`EdanasExitHead` (``head="edanas"``; ``head_width`` is then ignored). ``count``: as
    :func:`backbone_stage_macs` (torchprofile also counts the pooling and, for EDANAS's head, its h_swish)."""
    check_head(head)
    if count not in COUNTS:
        raise InputError("count", f"expected one of {list(COUNTS)}, got {count!r}")
    tp = count == "torchprofile"
    c, hw = int(channels), side * side
    if head == "edanas":
        e, f = EDANAS_EXPAND * c, EDANAS_MIX * c
        extra = e * hw + e * side + e + f if tp else 0  # h_swish, two means, h_swish
        return int(c * e * hw + e * f + f * n_classes + extra)
    extra = head_width if tp else 0  # adaptive average pool (nn.Hardswish is not counted by torchprofile)
    return int(c * head_width * hw + head_width * n_classes + extra)


def head_params(channels: int, n_classes: int, head_width: int = DEFAULT_HEAD_WIDTH, head: str = "ours") -> int:
    """Parameters of one exit head (weights, biases, BN scale and shift) on a stage with ``channels`` channels."""
    c = int(channels)
    if check_head(head) == "edanas":
        e, f = EDANAS_EXPAND * c, EDANAS_MIX * c
        return c * e + 2 * e + e * f + f * n_classes + n_classes
    return c * head_width + 2 * head_width + head_width * n_classes + n_classes


def exits_of(config: Mapping[str, Any]) -> list[bool]:
    """Which early exits (after stages 1..4) a config has: from ``t`` (< 1.0) or ``b`` (== 1)."""
    if "t" in config and "b" in config:
        raise InputError("config", "give either t (thresholds) or b (exit presence), not both")
    if "t" in config:
        return [float(t) < 1.0 for t in config["t"]]
    if "b" in config:
        return [int(b) == 1 for b in config["b"]]
    return [False] * N_EARLY_EXITS


def n_exits(config: Mapping[str, Any]) -> int:
    """Early exits of a config, the final classifier not counted (0 for a single-exit config), as CNAS counts them
    (``post_search.py --n_exits``: ``len(t) - t.count(1)`` for EDANAS's ``t``, ``b != 0`` for NACHOS's ``b``)."""
    return sum(exits_of(config))


def exit_macs(
    config: Mapping[str, Any],
    *,
    n_classes: int = 1000,
    width_mult: float = 1.0,
    head_width: int = DEFAULT_HEAD_WIDTH,
    exits: Sequence[bool] | None = None,
    head: str = "ours",
    count: str = "ofa",
) -> list[int]:
    """Exact MACs of each present exit, in order, final classifier last (backbone prefix + head).

    ``exits`` overrides which early exits are present (default: from the config's ``t``/``b``; none when the
    config has neither, which gives ``[backbone MACs]``). ``head``: the exit heads (:data:`HEADS`).
    ``count``: ``ofa`` (once-for-all's counter, the default everywhere) or ``torchprofile`` (what
    ``torchprofile.profile_macs`` 0.0.4 reports, :func:`backbone_stage_macs`; for comparing with records made
    with it, e.g. EDANAS's).
    """
    present = list(exits) if exits is not None else exits_of(config)
    if len(present) != N_EARLY_EXITS:
        raise InputError("exits", f"expected {N_EARLY_EXITS} booleans, got {len(present)}")
    parts = backbone_stage_macs(config, width_mult, count=count)
    shapes = stage_shapes(int(config["r"]), width_mult)
    prefix = np.cumsum(parts)  # prefix[s] = MACs up to the end of stage s (s = 1..5), prefix[6] = + final part
    out = []
    for s in range(N_EARLY_EXITS):
        if present[s]:
            c, h = shapes[s]
            out.append(int(prefix[s + 1]) + head_macs(c, h, n_classes, head_width, head=head, count=count))
    out.append(int(prefix[-1]) + codec.stage_widths(width_mult)[8] * n_classes)
    return out


def backbone_macs(config: Mapping[str, Any], *, n_classes: int = 1000, width_mult: float = 1.0) -> int:
    """MACs of the single-exit subnet (equals ``ofa.utils.count_net_flops`` of the extracted subnet)."""
    return exit_macs(config, n_classes=n_classes, width_mult=width_mult, exits=[False] * N_EARLY_EXITS)[-1]


# -- modules ---------------------------------------------------------------------------------------------------
class ExitHead(nn.Module):
    """1x1 conv + BN + h_swish + global average pool + linear: the classifier of one early exit."""

    def __init__(self, in_channels: int, n_classes: int, head_width: int = DEFAULT_HEAD_WIDTH) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, head_width, 1, bias=False)
        self.bn = nn.BatchNorm2d(head_width)
        self.act = nn.Hardswish()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(head_width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the exit for a stage output ``x``."""
        return self.linear(torch.flatten(self.pool(self.act(self.bn(self.conv(x)))), 1))


class _HSwish(nn.Module):
    """once-for-all's h_swish, ``x * relu6(x + 3) / 6`` (what EDANAS's exits use; one ``aten::mul``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * nn.functional.relu6(x + 3.0) / 6.0


class EdanasExitHead(nn.Module):
    """EDANAS's exit: MobileNetV3's final part scaled to the stage (module doc), as CNAS's ``ExitBlock`` builds it:
    ``Conv 1x1 C->6C + BN + h_swish``, global average pool (mean over W then H), ``Conv 1x1 6C->8C`` (no bias,
    no BN) ``+ h_swish``, ``Linear(8C, K)``."""

    def __init__(self, in_channels: int, n_classes: int) -> None:
        super().__init__()
        e, f = EDANAS_EXPAND * in_channels, EDANAS_MIX * in_channels
        self.expand = nn.Conv2d(in_channels, e, 1, bias=False)
        self.bn = nn.BatchNorm2d(e)
        self.act1 = _HSwish()
        self.mix = nn.Conv2d(e, f, 1, bias=False)
        self.act2 = _HSwish()
        self.linear = nn.Linear(f, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the exit for a stage output ``x``."""
        x = self.act1(self.bn(self.expand(x)))
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        return self.linear(torch.flatten(self.act2(self.mix(x)), 1))


def make_head(in_channels: int, n_classes: int, head_width: int = DEFAULT_HEAD_WIDTH, head: str = "ours") -> nn.Module:
    """One exit head of kind ``head`` (:data:`HEADS`) on a stage output with ``in_channels`` channels."""
    if check_head(head) == "edanas":
        return EdanasExitHead(in_channels, n_classes)
    return ExitHead(in_channels, n_classes, head_width)


def exit_score(prob: torch.Tensor, rule: str = "confidence") -> torch.Tensor:
    """Per-sample score of softmax outputs ``prob`` (N, K) under an exit rule: max-softmax (``confidence``) or
    ``p_top1 - p_top2`` (``margin``, EDANAS's ``ExitBlock.confidence``)."""
    if check_rule(rule) == "margin":
        top = prob.topk(2, dim=1).values
        return top[:, 0] - top[:, 1]
    return prob.max(dim=1).values


class EarlyExitNet(nn.Module):
    """An OFA MobileNetV3 subnet with exit heads after some of stages 1-4.

    ``forward(x)`` returns the logits of every exit (present early exits in stage order, final last), which is
    what joint training and the offline policy need; :meth:`forward_early_exit` is the deployed behaviour.
    """

    first_conv: nn.Module
    blocks: nn.ModuleList
    final_expand_layer: nn.Module
    feature_mix_layer: nn.Module
    classifier: nn.Module
    heads: nn.ModuleDict

    def __init__(
        self,
        subnet: Any,
        depths: Sequence[int],
        exits: Sequence[bool],
        n_classes: int,
        head_width: int = DEFAULT_HEAD_WIDTH,
        head: str = "ours",
    ) -> None:
        super().__init__()
        if len(exits) != N_EARLY_EXITS:
            raise InputError("exits", f"expected {N_EARLY_EXITS} booleans, got {len(exits)}")
        self.first_conv = subnet.first_conv
        self.blocks = subnet.blocks  # blocks[0] is the fixed first block, then sum(depths) stage layers
        self.final_expand_layer = subnet.final_expand_layer
        self.feature_mix_layer = subnet.feature_mix_layer
        self.classifier = subnet.classifier
        self.n_classes = int(n_classes)
        self.head_width = int(head_width)
        self.head = check_head(head)
        self.exit_stages = [s for s in range(N_EARLY_EXITS) if exits[s]]
        ends = np.cumsum(list(depths))  # index in blocks of the last layer of stage s is ends[s]
        self.stage_end = [int(v) for v in ends]
        widths = [int(blk.conv.out_channels) for blk in subnet.blocks]
        self.heads = nn.ModuleDict(
            {str(s): make_head(widths[self.stage_end[s]], n_classes, head_width, head) for s in self.exit_stages}
        )

    @property
    def n_exits(self) -> int:
        """Early exits (the final classifier not counted, as CNAS counts them)."""
        return len(self.exit_stages)

    @property
    def n_outputs(self) -> int:
        """Classifiers: the early exits plus the final one (the length of every per-exit list)."""
        return len(self.exit_stages) + 1

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand_layer(x)
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        x = self.feature_mix_layer(x)
        return self.classifier(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """Logits of all exits (early exits in stage order, final classifier last)."""
        outs = []
        x = self.first_conv(x)
        x = self.blocks[0](x)
        exit_at = {self.stage_end[s]: s for s in self.exit_stages}
        for i in range(1, len(self.blocks)):
            x = self.blocks[i](x)
            if i in exit_at:
                outs.append(self.heads[str(exit_at[i])](x))
        outs.append(self._final(x))
        return outs

    @torch.no_grad()
    def forward_early_exit(
        self, x: torch.Tensor, thresholds: Sequence[float], rule: str = "confidence"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Deployed inference: ``(predictions, exit index)`` per sample; samples that left are not computed on.

        ``thresholds`` has one value per early exit present (stage order), in the units of ``rule``
        (:func:`exit_score`); ``>= 1.0`` disables that exit.
        """
        check_rule(rule)
        if len(thresholds) != len(self.exit_stages):
            raise InputError("thresholds", f"expected {len(self.exit_stages)} values (one per early exit)")
        n = x.shape[0]
        pred = torch.full((n,), -1, dtype=torch.long, device=x.device)
        where = torch.full((n,), -1, dtype=torch.long, device=x.device)
        alive = torch.arange(n, device=x.device)
        h = self.blocks[0](self.first_conv(x))
        exit_at = {self.stage_end[s]: k for k, s in enumerate(self.exit_stages)}
        for i in range(1, len(self.blocks)):
            h = self.blocks[i](h)
            if i in exit_at and h.shape[0] > 0:
                k = exit_at[i]
                thr = float(thresholds[k])
                if thr >= 1.0:
                    continue
                prob = torch.softmax(self.heads[str(self.exit_stages[k])](h), dim=1)
                conf, p = exit_score(prob, rule), prob.argmax(dim=1)
                leave = conf >= thr
                pred[alive[leave]] = p[leave]
                where[alive[leave]] = k
                keep = ~leave
                alive, h = alive[keep], h[keep]
        if h.shape[0] > 0:
            pred[alive] = self._final(h).argmax(dim=1)
            where[alive] = len(self.exit_stages)
        return pred, where


def build_subnet(
    config: Mapping[str, Any],
    *,
    n_classes: int,
    width_mult: float = 1.0,
    supernet: Any = None,
) -> Any:
    """The OFA MobileNetV3 subnet of ``config`` with weights inherited from ``supernet``.

    ``supernet`` is an ``OFAMobileNetV3`` (d 2-4, e 3/4/6, k 3/5/7), e.g. loaded from pretrained weights; when
    omitted a randomly initialised one is built. Its classifier is replaced when its class count differs.
    """
    if supernet is None:
        supernet = OFAMobileNetV3(
            n_classes=n_classes,
            width_mult=width_mult,
            ks_list=list(codec.KERNELS),
            expand_ratio_list=list(codec.EXPANDS),
            depth_list=list(codec.DEPTHS),
            dropout_rate=0.0,
        )
    supernet.set_active_subnet(ks=list(config["ks"]), e=list(config["e"]), d=list(config["d"]))
    subnet = supernet.get_active_subnet(preserve_weight=True)
    if subnet.classifier.linear.out_features != n_classes:
        subnet.classifier = LinearLayer(subnet.classifier.in_features, n_classes, dropout_rate=0.0)
    return subnet


def build_early_exit_net(
    config: Mapping[str, Any],
    *,
    n_classes: int,
    width_mult: float = 1.0,
    head_width: int = DEFAULT_HEAD_WIDTH,
    supernet: Any = None,
    exits: Sequence[bool] | None = None,
    head: str = "ours",
) -> EarlyExitNet:
    """Extract the subnet of ``config`` from ``supernet`` (inherited weights) and attach its exit heads
    (``head``: :data:`HEADS`)."""
    present = list(exits) if exits is not None else exits_of(config)
    subnet = build_subnet(config, n_classes=n_classes, width_mult=width_mult, supernet=supernet)
    return EarlyExitNet(subnet, config["d"], present, n_classes, head_width, head)


# -- training and inference -------------------------------------------------------------------------------------
def joint_loss(
    logits: Sequence[torch.Tensor], target: torch.Tensor, weights: Sequence[float] | None = None
) -> torch.Tensor:
    """Weighted sum of the exits' cross-entropy losses (default weight 1 for every exit)."""
    w = [1.0] * len(logits) if weights is None else list(weights)
    if len(w) != len(logits):
        raise InputError("loss_weights", f"expected {len(logits)} weights (one per exit, final last), got {len(w)}")
    ce = nn.functional.cross_entropy
    return sum((wi * ce(lo, target) for wi, lo in zip(w, logits, strict=True)), torch.zeros((), device=target.device))


def train_joint(
    net: EarlyExitNet,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]] | Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    *,
    epochs: int = 1,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 4e-5,
    loss_weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
    steps_per_epoch: int | None = None,
    loss_fn: Callable[[Sequence[torch.Tensor], torch.Tensor, Sequence[float] | None], torch.Tensor] | None = None,
) -> list[float]:
    """Train backbone and exits together (SGD, Nesterov momentum, cosine LR per step); mean loss per epoch.

    ``loss_fn(logits, target, loss_weights)``: the loss (default :func:`joint_loss`; NACHOS's cost-aware one is
    :func:`early_exit.nachos.cost_aware_loss`).

    ``loader`` is a re-iterable of batches or a callable returning each epoch's batches (fresh shuffles);
    ``steps_per_epoch`` sizes the cosine schedule when ``len(loader)`` is unknown. ``loss_weights`` weighs the
    exits' losses (one per exit, final last); with ``max_steps`` training stops after that many batches in all.
    """
    if epochs < 1:
        raise InputError("epochs", f"expected >= 1, got {epochs}")
    net.to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    if steps_per_epoch is None:
        try:
            steps_per_epoch = len(loader)  # type: ignore[arg-type]
        except TypeError:
            steps_per_epoch = 1
    total = max(1, epochs * steps_per_epoch if max_steps is None else min(epochs * steps_per_epoch, max_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    history, step = [], 0
    for _ in range(epochs):
        losses = []
        batches = loader() if callable(loader) else loader
        for x, y in batches:
            if max_steps is not None and step >= max_steps:
                break
            x, y = x.to(device), y.to(device)
            loss = (loss_fn or joint_loss)(net(x), y, loss_weights)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"train_joint: non-finite loss {float(loss)} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            step += 1
        history.append(float(np.mean(losses)) if losses else float("nan"))
    return history


@torch.no_grad()
def predict_exits(
    net: EarlyExitNet,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs of every exit on a data split: ``(probs (E, N, K) float32, labels (N,) int64)``."""
    net.to(device).eval()
    probs: list[list[np.ndarray]] = [[] for _ in range(net.n_outputs)]
    labels = []
    for x, y in loader:
        outs = net(x.to(device))
        for b, o in enumerate(outs):
            probs[b].append(torch.softmax(o.float(), dim=1).cpu().numpy())
        labels.append(y.cpu().numpy())
    return (
        np.stack([np.concatenate(p) for p in probs]).astype(np.float32),
        np.concatenate(labels).astype(np.int64),
    )


def count_exit_macs_with_hooks(net: EarlyExitNet, r: int) -> list[int]:
    """MACs of each exit path measured with forward hooks (ofa's counting rules), for checking :func:`exit_macs`.

    For exit ``b`` the convolutions and linear layers that run for a sample leaving there are counted: the
    backbone up to the exit's stage and that exit's head (the final exit: the whole subnet, no heads).
    """
    net = copy.deepcopy(net).eval()
    records: list[tuple[str, int]] = []

    def hook(name: str) -> Any:
        def fn(m: Any, inp: Any, out: torch.Tensor) -> None:
            if isinstance(m, nn.Conv2d):
                ops = m.in_channels * out.nelement() * m.kernel_size[0] * m.kernel_size[1] // m.groups
            else:
                ops = m.in_features * m.out_features
            records.append((name, int(ops)))

        return fn

    handles = [
        m.register_forward_hook(hook(n)) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        net(torch.zeros(1, 3, r, r))
    for hd in handles:
        hd.remove()
    out = []
    stage_of_block = {}
    for si, end in enumerate(net.stage_end):
        start = net.stage_end[si - 1] + 1 if si else 1
        for i in range(start, end + 1):
            stage_of_block[i] = si
    stages: list[int | None] = [*net.exit_stages, None]
    for s in stages:
        total = 0
        for name, ops in records:
            parts = name.split(".")
            if parts[0] == "heads":
                total += ops if (s is not None and parts[1] == str(s)) else 0
            elif parts[0] == "blocks":
                blk = int(parts[1])
                total += ops if (s is None or blk == 0 or stage_of_block[blk] <= s) else 0
            elif parts[0] == "first_conv":
                total += ops
            else:  # final part
                total += ops if s is None else 0
        out.append(total)
    return out
