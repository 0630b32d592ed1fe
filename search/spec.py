"""The job spec (YAML or JSON; the same for ``msunas search``, ``msunas submit`` and ``POST /jobs``).

Validated with pydantic; unknown fields are rejected, so a typo is an error naming the field, not a silently
ignored option. Units: params, MACs and activations are counts (``2.0e6`` = 2 M); ``latency_ms`` is in
milliseconds.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robustness.spec import RobustnessSpec
from supernets.codec import check_width, resolution_grid
from supernets.errors import InputError

SECOND_OBJECTIVES = (
    "params",
    "macs",
    "activations",
    "peak_activation",
    "latency",
    "tiny_ml",
    "avg_macs",
    "top1_robust",
)
FIRST_OBJECTIVES = ("top1_err", "top1_robust")
"""``top1_robust`` first: FlatNAS as CNAS runs it (``cnas.py --first_obj top1_robust --sec_obj tiny_ml``)."""
CONSTRAINT_KEYS = ("params", "macs", "activations", "latency_ms", "avg_macs")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    """Where the data is. ``digits`` is built in (scikit-learn's 8x8 digits) and needs no ``root``."""

    name: Literal["cifar10", "cifar100", "svhn", "cinic10", "imagenet", "digits", "imagefolder"] = Field(
        default="digits", description="a named dataset, or imagefolder: your own images in ROOT/train/<class>/ "
        "(and optionally ROOT/val/<class>/)"
    )
    root: str | None = None
    vld_size: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="validation images carved from the training set (fixed seed); default 5000, or a fifth of the"
        " training set when it has fewer than 25,000 images (digits: 300)",
    )
    n_classes: int | None = Field(default=None, ge=2, le=100_000, description="default: the dataset's own")

    @model_validator(mode="after")
    def _root_needed(self) -> DatasetSpec:
        if self.name != "digits" and not self.root:
            raise InputError("root", f"dataset {self.name!r} needs a local root folder")
        return self


class SupernetSpec(_Strict):
    """The once-for-all supernet the candidates inherit their weights from: a local checkpoint; for ``digits``
    without a path the built-in one (``msunas supernet train --builtin digits`` caches it); a random
    initialisation only when asked for (``random_init: true``: a search over untrained weights measures little).
    """

    path: str | None = Field(default=None, max_length=4096, description="local OFA/msunas checkpoint")
    random_init: bool = Field(default=False, description="use a randomly initialised supernet when no path is given")


class SupernetEvaluatorSpec(_Strict):
    """True evaluation: inherit weights from the supernet, recalibrate BN, fine-tune, validate.

    ``train_images`` caps the images seen per fine-tuning epoch (a fresh seeded draw each epoch; None: the
    whole training split); ``channels_last`` runs the subnet in channels-last memory format (faster on CPU:
    see docs/evaluation.md).
    """

    kind: Literal["supernet"] = "supernet"
    n_epochs: int = Field(default=5, ge=0, le=1000)
    batch_size: int = Field(default=128, ge=1, le=4096)
    lr: float = Field(default=0.01, gt=0, le=10)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=4e-5, ge=0, le=1)
    bn_calib_images: int = Field(default=2000, ge=0, le=1_000_000)
    device: str = "cpu"
    num_workers: int = Field(default=0, ge=0, le=64)
    train_images: int | None = Field(default=None, ge=1, le=10_000_000)
    num_threads: int | None = Field(default=None, ge=1, le=256, description="torch CPU threads (None: leave as is)")
    channels_last: bool = True
    optimizer: Literal["sgd", "sam"] = Field(
        default="sgd", description="fine-tuning: sgd, or sam (sharpness-aware, as FlatNAS trains: CNAS --optim SAM)"
    )
    sam_rho: float = Field(
        default=2.0, gt=0, le=100, description="SAM's neighbourhood radius (CNAS's --rho default 2.0)"
    )
    sam_adaptive: bool = Field(default=True, description="ASAM (CNAS's --adaptive default True)")


class OracleEvaluatorSpec(_Strict):
    """Benchmark evaluation with a predictor file (e.g. once-for-all's ImageNet accuracy predictor)."""

    kind: Literal["oracle"] = "oracle"
    name: str = "ofa_mbv3_imagenet"
    path: str


class ProxyEvaluatorSpec(_Strict):
    """Training-free evaluation with a zero-shot proxy (``search.proxies``): seconds per architecture on CPU.

    The evaluator reports ``proxy_score`` (the raw proxy, larger = better) and ``top1`` := a fixed strictly
    monotone map of it into (0, 100): ``50 + 50 z / (1 + |z|)``, ``z = (score - center) / scale``, so the
    engine's ``top1_err`` objective ranks exactly as the proxy does. ``top1`` is then NOT an accuracy.
    ``center``/``scale`` default to about the median/IQR of each proxy on random OFA subnets (docs/proxies.md).
    """

    kind: Literal["proxy"] = "proxy"
    name: Literal["zen", "naswot", "synflow", "gradnorm", "params", "macs"] = "zen"
    batch_size: int = Field(default=16, ge=2, le=1024)
    seed: int = Field(
        default=0, ge=0, le=2**32 - 1, description="fixed per search so a config always gets the same score"
    )
    resolution: int | None = Field(default=None, ge=32, le=512, description="score at this resolution (default: r)")
    center: float | None = Field(default=None, ge=-1e12, le=1e12)
    scale: float | None = Field(default=None, gt=0, le=1e12)
    inherit: bool = Field(default=False, description="naswot/synflow/gradnorm on the supernet's weights")
    variant: Literal["ours", "zennas"] = Field(
        default="ours",
        description="ours, or zennas: the proxies as the Zen-NAS code computes them (docs/proxies.md)",
    )
    repeat: int = Field(default=1, ge=1, le=64, description="mean over this many seeded draws (Zen-NAS repeats)")
    num_threads: int | None = Field(default=None, ge=1, le=256, description="torch CPU threads (None: leave as is)")


class PythonEvaluatorSpec(_Strict):
    """Your own evaluator, in-process: ``callable`` names ``package.module:function``; it is called with each
    candidate's canonical config (a dict: ks, e, d, r, and t/b for early exits) and ``options`` as keyword
    arguments, and returns a dict of metrics with at least ``top1`` (%). The exact costs (params, MACs,
    activations) are added. A server runs it only when its operator allows it (MSUNAS_ALLOW_PYTHON_EVALUATOR):
    it runs code the spec names."""

    kind: Literal["python"] = "python"
    callable: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$", max_length=200,
                          description="package.module:function")
    options: dict[str, Any] = Field(default_factory=dict, max_length=64,
                                    description="keyword arguments passed to the callable")


EvaluatorSpec = Annotated[
    SupernetEvaluatorSpec | OracleEvaluatorSpec | ProxyEvaluatorSpec | PythonEvaluatorSpec, Field(discriminator="kind")
]


class EarlyExitSpec(_Strict):
    """Early-exit options (``search_space: eemobilenetv3``): exit genes, heads, joint training, calibration.

    ``exit_mode`` ``t`` (EDANAS: per-exit thresholds from ``t_values``, 1.0 = no exit) or ``b`` (NACHOS: exit
    presence, thresholds calibrated after training, under ``constraints.avg_macs`` when given).
    ``t_values`` are normalised confidences (0 = chance, 1 = certainty): an input leaves at an exit when its
    max-softmax probability reaches ``1/K + t (1 - 1/K)``. ``calib_grid`` is in max-softmax probability units.
    ``loss_weights``: exits after stages 1-4 and the final classifier.
    ``exit_rule`` / ``head``: ours by default; ``margin`` / ``edanas`` reproduce the CNAS code of the EDANAS runs
    (docs/early_exit.md, docs/fidelity.md).
    """

    exit_mode: Literal["t", "b"] = "t"
    t_values: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [0.1, 0.2, 1.0], min_length=1, max_length=64
    )
    exit_rule: Literal["confidence", "margin"] = Field(
        default="confidence",
        description="score an input leaves on: max-softmax (confidence; t normalised to 1/K + t(1 - 1/K)) or "
        "EDANAS's softmax margin p_top1 - p_top2 (margin; t and calib_grid in margin units)",
    )
    head: Literal["ours", "edanas"] = Field(
        default="ours",
        description="exit heads: ours (1x1 conv head_width + BN + h_swish, pool, linear) or EDANAS's "
        "(1x1 conv C->6C + BN + h_swish, pool, 1x1 conv 6C->8C + h_swish, linear; head_width unused)",
    )
    head_width: int = Field(default=128, ge=1, le=4096, description="channels of our exit heads (head: ours)")
    loss_weights: list[Annotated[float, Field(ge=0, le=1000)]] = Field(
        default_factory=lambda: [1.0] * 5, min_length=5, max_length=5
    )
    calib_grid: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0], min_length=1, max_length=256
    )
    tolerance: float = Field(default=0.5, ge=0, le=100, description="b-mode without a budget: accuracy points given up")
    calibration: Literal["exhaustive", "nachos"] = Field(
        default="exhaustive",
        description="b-mode thresholds: exhaustive over calib_grid (best accuracy within the avg_macs budget) or "
        "nachos (one common epsilon, then NACHOS's repair lowering thresholds exit by exit under top1_min)",
    )
    top1_min: float = Field(default=0.0, ge=0, le=100, description="calibration nachos: NACHOS's top1min (%)")
    training: Literal["joint", "nachos"] = Field(
        default="joint", description="exits' training: joint (weighted cross-entropy of every exit) or nachos "
        "(NACHOS's cost-aware training: plus a gate prior and the exits' expected MACs, with gradient; "
        "docs/fidelity.md)",
    )
    cost_weight: float = Field(default=1.0, ge=0, le=1000, description="training nachos: weight of the expected-MACs "
                               "term (NACHOS's w_beta)")
    gate_prior: float = Field(default=1e-3, ge=0, le=1000, description="training nachos: weight of the gates' BCE "
                              "prior (NACHOS's beta)")

    @field_validator("t_values", "calib_grid")
    @classmethod
    def _unit(cls, v: list[float]) -> list[float]:
        for x in v:
            if not 0 < x <= 1:
                raise ValueError(f"{x} is outside (0, 1]")
        return v

    @field_validator("loss_weights")
    @classmethod
    def _non_negative(cls, v: list[float]) -> list[float]:
        if any(w < 0 for w in v):
            raise ValueError(f"expected non-negative weights, got {v}")
        return v


class PenaltySpec(_Strict):
    """CNAS's weighted penalty ``tiny_ml = sum_k w_k * (c_k + factor * max(0, c_k - max_k))``, c_k in millions."""

    factor: float = Field(default=1.0e10, ge=0, le=1e15)
    weights: dict[str, Annotated[float, Field(ge=0, le=1e6)]] = Field(
        default_factory=lambda: {"params": 1.0, "macs": 0.025, "activations": 1.0},
        json_schema_extra={"propertyNames": {"enum": ["params", "macs", "activations"]}},
    )

    @field_validator("weights")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        for k in v:
            if k not in ("params", "macs", "activations"):
                raise InputError(k, "unknown cost (allowed: params, macs, activations)")
        return v


PREDICTORS = ("as", "rbf", "gp", "mlp", "carts", "bilinear")


class PredictorSpec(_Strict):
    """The surrogate, in its long form (``predictor: rbf`` is ``predictor: {name: rbf}``)."""

    name: Literal["as", "rbf", "gp", "mlp", "carts", "bilinear"] = "as"
    variant: Literal["ours", "cnas"] = Field(
        default="ours", description="ours, or cnas: CNAS's own definition of this predictor (docs/fidelity.md)"
    )
    fit: Literal["archive", "contributions"] = Field(
        default="archive", description="bilinear: fit on the evaluated archive, or on a table of measured "
        "accuracy contributions (`msunas predictor contributions`, BINAS)",
    )
    table: str | None = Field(default=None, max_length=4096, description="the contributions table (fit: contributions)")


class _EngineCommon(_Strict):
    """Knobs every engine kind shares: the initial design and the hypervolume it reports and stops on."""

    doe: Literal["ours", "cnas"] = Field(
        default="ours", description="initial design: ours (smallest, largest, then uniform samples; MSuNAS's "
        "initialize) or cnas (CNAS@HEAD's search_space.sample with numpy seeded by the job's seed)",
    )
    ref_point: list[Annotated[float, Field(ge=-1e15, le=1e15)]] | None = Field(
        default=None, description="HV reference point in objective units; default 100 % error, f2 of the largest net"
    )
    hv_tol: float = Field(default=1e-9, ge=0, le=1, description="HV gain below this counts as no gain (patience)")


class MsunasEngineSpec(_EngineCommon):
    """The MSuNAS engine: surrogate-assisted NSGA-II (defaults are the benchmarked choice, see docs/search.md)."""

    kind: Literal["msunas"] = "msunas"
    pop_size: int = Field(default=100, ge=4, le=500, description="inner NSGA-II population on the surrogate")
    n_gen: int = Field(default=40, ge=1, le=200, description="inner NSGA-II generations per iteration")
    encoding: Literal["auto", "int", "onehot", "both"] = Field(
        default="both", description="surrogate features (the predictor's encoding; auto = the predictor's default)"
    )
    operators: Literal["ux", "sbx"] = Field(
        default="ux", description="ux: uniform crossover + random-reset mutation; sbx: SBX/PM with rounding"
    )
    candidate_selection: Literal["hv", "spread", "cnas"] = Field(
        default="spread", description="spread: max-min spacing along the predicted front, best fronts first; hv: "
        "greedy predicted-HV gain; cnas: "
        "CNAS's subset GA over the inner search's final population (even spread of f2)"
    )
    cv_folds: int = Field(default=5, ge=2, le=20, description="folds of the held-out surrogate statistics")


class BotorchEngineSpec(_EngineCommon):
    """Bayesian multi-objective optimisation with BoTorch (``search/engine_botorch.py``; docs/search.md)."""

    kind: Literal["botorch"]
    acquisition: Literal["qnehvi", "qnparego"] = Field(
        default="qnehvi", description="qnehvi: batch noisy expected HV improvement; qnparego: random Chebyshev "
        "scalarisation per pick (noisy expected improvement)",
    )
    pool_size: int = Field(default=1000, ge=50, le=20_000, description="candidate designs the acquisition ranks")
    fit_maxiter: int = Field(default=100, ge=10, le=10_000, description="L-BFGS-B steps of the GP's marginal "
                             "likelihood fit")
    mc_samples: int = Field(default=32, ge=8, le=1024, description="quasi-MC samples of the acquisition")
    pop_size: int = Field(default=40, ge=4, le=500, description="NSGA-II population on the GP mean (the pool)")
    n_gen: int = Field(default=20, ge=1, le=200, description="NSGA-II generations on the GP mean (the pool)")


class SolverEngineSpec(_EngineCommon):
    """One-shot constrained optimisation of the bilinear predictor (``search/engine_solver.py``; docs/search.md)."""

    kind: Literal["solver"]
    method: Literal["milp", "bcfw", "evo"] = Field(
        default="milp", description="milp: exact integer program; bcfw: block coordinate Frank-Wolfe on the relaxed "
        "choice probabilities (HardCoRe/BINAS); evo: evolutionary search with the constraints as a hard filter",
    )
    n_picks: int = Field(default=4, ge=1, le=100, description="networks proposed: the optimum, then tighter bounds "
                         "on the second objective")
    bcfw_iters: int = Field(default=200, ge=2, le=10_000, description="Frank-Wolfe steps per resolution (bcfw)")
    evo_pop: int = Field(default=100, ge=4, le=5000, description="population of the evolutionary search (evo)")
    evo_gens: int = Field(default=50, ge=1, le=1000, description="generations of the evolutionary search (evo)")
    encoding: Literal["auto", "int", "onehot", "both"] = Field(
        default="auto", description="bilinear features of non-backbone genes (fit: archive)"
    )
    cv_folds: int = Field(default=5, ge=2, le=20, description="folds of the held-out surrogate statistics")


class GradientTargetSpec(_Strict):
    """``tfnas``'s target: the latency its elasticity term pulls the expected latency to."""

    latency_ms: float = Field(gt=0, le=1e6, description="target latency (ms, the job's latency table)")


class GradientEngineSpec(_EngineCommon):
    """Gradient search over the supernet (``search/engine_gradient.py``; docs/search.md): HardCoRe-NAS's block
    coordinate Frank-Wolfe under the hard limit ``constraints.latency_ms`` (``hardcore``) or TF-NAS's elasticity
    towards ``target.latency_ms`` (``tfnas``; default: ``constraints.latency_ms``)."""

    kind: Literal["gradient"]
    method: Literal["hardcore", "tfnas"] = Field(
        default="hardcore", description="hardcore: Frank-Wolfe steps keep the expected latency under the limit; "
        "tfnas: Adam on the logits with TF-NAS's |lat/target - 1| term"
    )
    steps: int = Field(default=200, ge=1, le=100_000, description="architecture steps (one validation batch each)")
    batch_size: int = Field(default=64, ge=1, le=4096, description="validation images per step")
    lr: float = Field(default=0.01, gt=0, le=10, description="tfnas: Adam's learning rate on the logits; hardcore:"
                      " the largest Frank-Wolfe step (step t: min(lr, 2/(t+2)))")
    temperature: float = Field(default=5.0, gt=0, le=100, description="Gumbel-softmax temperature at step 0")
    temperature_min: float = Field(default=0.5, gt=0, le=100, description="temperature at the last step "
                                   "(exponential decay)")
    lambda_lat: float = Field(default=0.1, ge=0, le=1000, description="tfnas: weight of |E[lat]/target - 1| "
                              "(TF-NAS --lambda_lat)")
    target: GradientTargetSpec | None = Field(default=None, description="tfnas: the target latency (default: "
                                              "constraints.latency_ms)")


#: ``engine``: one spec class per engine kind (``search.engine.ENGINE_KINDS`` maps the kind to its class).
#: A new kind adds its ``*EngineSpec(_EngineCommon)`` with ``kind: Literal[...]`` to this union.
EngineSpec = Annotated[
    MsunasEngineSpec | BotorchEngineSpec | SolverEngineSpec | GradientEngineSpec, Field(discriminator="kind")
]


#: Every spec field that names a file or folder on the machine that runs the search (dotted, as errors name
#: them). A server confines each to its data roots before queueing (``service.admission``);
#: tests/search/test_spec_bounds.py fails when a path-like field of the schema is missing here.
PATH_FIELDS: tuple[str, ...] = (
    "dataset.root", "supernet.path", "evaluator.path", "latency_table", "robustness.corruptions.cifar_c_root",
    "predictor.table",
)


def path_values(spec: JobSpec) -> list[tuple[str, str]]:
    """``(field, path)`` for every :data:`PATH_FIELDS` entry that this spec sets."""
    out = []
    for field in PATH_FIELDS:
        v: Any = spec
        for part in field.split("."):
            v = getattr(v, part, None)
            if v is None:
                break
        if isinstance(v, str):
            out.append((field, v))
    return out


class JobSpec(_Strict):
    """One search: space, data, evaluator, objectives, constraints, surrogate and budget."""

    search_space: Literal["mobilenetv3", "eemobilenetv3"] = "mobilenetv3"
    width_mult: float = Field(default=1.0, ge=1.0, le=1.2, description="1.0 or 1.2")
    resolution: tuple[Annotated[int, Field(ge=32, le=512)], Annotated[int, Field(ge=32, le=512)]] = (192, 256)
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    supernet: SupernetSpec = Field(default_factory=SupernetSpec)
    evaluator: EvaluatorSpec = Field(default_factory=SupernetEvaluatorSpec)
    objectives: list[str] = Field(
        default_factory=lambda: ["top1_err", "macs"], min_length=1, max_length=2,
        json_schema_extra={"prefixItems": [{"type": "string", "enum": list(FIRST_OBJECTIVES)},
                                           {"type": "string", "enum": list(SECOND_OBJECTIVES)}],
                           "uniqueItems": True},
    )
    latency_table: str | None = None
    constraints: dict[str, Annotated[float, Field(gt=0, le=1e15)]] = Field(
        default_factory=dict, max_length=8, json_schema_extra={"propertyNames": {"enum": list(CONSTRAINT_KEYS)}}
    )
    constraint_mode: Literal["penalty", "hard", "nachos"] = Field(
        default="penalty",
        description="penalty (CNAS weighted penalty) | hard (feasible first) | nachos (NACHOS's phi-adaptive "
        "penalty phi*f2 + (1-phi)*penalty on the surrogate population, phi = its feasible share; archive: penalty)",
    )
    penalty: PenaltySpec = Field(default_factory=PenaltySpec)
    early_exit: EarlyExitSpec | None = None
    predictor: Literal["as", "rbf", "gp", "mlp", "carts", "bilinear"] | PredictorSpec = Field(
        default="as", description="the surrogate's name, or {name, variant, fit, table} (PredictorSpec)"
    )
    optimizer: Literal["nsga2", "milp"] = Field(
        default="nsga2",
        description="inner optimiser on the surrogate: NSGA-II, or the exact MILP (needs predictor bilinear and"
        " additive costs: params/macs/latency objective, params/macs/latency_ms constraints)",
    )
    n_doe: int = Field(default=100, ge=2, le=5000)
    n_iter: int = Field(default=8, ge=1, le=1000)
    iterations: int = Field(default=30, ge=0, le=10_000)
    robustness: RobustnessSpec = Field(default_factory=RobustnessSpec)
    hv_patience: int | None = Field(
        default=None, ge=1, le=10_000, description="stop after this many iterations without HV gain"
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    output_layout: Literal["msunas", "cnas"] = Field(
        default="msunas", description="run folder: msunas (ours) or cnas (also CNAS's iter_K/net_i/net_i.subnet|stats"
        " with top1 the error and millions at the top level, compact configs and CNAS's hv in iter_K.stats)",
    )
    engine: EngineSpec = Field(default_factory=MsunasEngineSpec)

    @model_validator(mode="before")
    @classmethod
    def _engine_kind(cls, data: Any) -> Any:
        """``engine`` without ``kind`` is the default kind (msunas), as before kinds existed."""
        if isinstance(data, dict) and isinstance(data.get("engine"), dict) and "kind" not in data["engine"]:
            data = {**data, "engine": {**data["engine"], "kind": "msunas"}}
        return data

    @field_validator("width_mult")
    @classmethod
    def _width(cls, v: float) -> float:
        return check_width(v)

    @field_validator("resolution")
    @classmethod
    def _grid(cls, v: tuple[int, int]) -> tuple[int, int]:
        resolution_grid(v[0], v[1])
        return v

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        if v[0] not in FIRST_OBJECTIVES:
            raise ValueError(f"first objective must be one of {list(FIRST_OBJECTIVES)}, got {v[0]!r}")
        if len(v) == 2 and v[1] not in SECOND_OBJECTIVES:
            raise ValueError(f"second objective {v[1]!r} is not one of {list(SECOND_OBJECTIVES)}")
        if len(v) == 2 and v[0] == v[1]:
            raise ValueError(f"the two objectives must differ, got {v[0]!r} twice")
        return v

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if k not in CONSTRAINT_KEYS:
                raise InputError(f"{k}", f"unknown constraint (allowed: {', '.join(CONSTRAINT_KEYS)})")
            if not x > 0:
                raise InputError(f"{k}", f"a constraint maximum must be > 0, got {x}")
        return v

    @model_validator(mode="after")
    def _cross_field(self) -> JobSpec:
        uses_latency = (len(self.objectives) == 2 and self.objectives[1] == "latency") or (
            "latency_ms" in self.constraints
        )
        if uses_latency and not self.latency_table:
            raise InputError("latency_table", "the latency objective/constraint needs a latency table path")
        if self.search_space != "eemobilenetv3" and (
            "avg_macs" in self.constraints or self.objectives[-1] == "avg_macs"
        ):
            raise InputError("search_space", "avg_macs needs the early-exit space eemobilenetv3")
        inherits = self.evaluator.kind == "supernet" or (self.evaluator.kind == "proxy" and self.evaluator.inherit)
        if inherits and self.dataset.name != "digits" and not self.supernet.path and not self.supernet.random_init:
            raise InputError(
                "supernet",
                f"dataset {self.dataset.name} needs supernet.path (train one with `msunas supernet train`"
                " or use an official once-for-all checkpoint), or supernet.random_init: true"
            )
        if self.supernet.path and self.supernet.random_init:
            raise InputError("supernet", "give either supernet.path or supernet.random_init, not both")
        if self.engine.doe == "cnas" and self.search_space != "mobilenetv3":
            raise InputError("engine.doe", "doe: cnas is CNAS's mobilenetv3 sampler (use ours for eemobilenetv3)")
        if self.engine.kind == "gradient":
            self._gradient_rules()
        if self.early_exit is not None and self.search_space != "eemobilenetv3":
            raise InputError("early_exit", "early-exit options need search_space eemobilenetv3")
        ps = self.predictor_spec()
        if ps.variant == "cnas" and ps.name == "bilinear":
            raise InputError("predictor.variant", "CNAS has no bilinear predictor (cnas: as, rbf, gp, mlp, carts)")
        if ps.variant == "cnas" and self.n_doe <= self._n_var():
            raise InputError("predictor.variant", f"CNAS fits its predictors on more points than genes (cnas.py "
                             f"_fit_first_predictor): n_doe must be > {self._n_var()} for this search space")
        if ps.fit == "contributions" and ps.name != "bilinear":
            raise InputError("predictor.fit", "fit: contributions is the bilinear predictor's (name: bilinear)")
        if (ps.fit == "contributions") != (ps.table is not None):
            raise InputError("predictor.table", "fit: contributions needs table: (a `msunas predictor contributions`"
                             " output), and table is only read by fit: contributions")
        if self.engine.kind == "solver":
            self._bilinear_rules("engine.method", "engine.kind: solver")
        if self.optimizer == "milp":
            self._bilinear_rules("optimizer", "optimizer: milp")
        return self

    def _bilinear_rules(self, field: str, who: str) -> None:
        """What optimising the bilinear predictor exactly needs (``optimizer: milp``, ``engine: {kind: solver}``):
        that predictor, the mobilenetv3 space, top1_err first and additive costs only."""
        if self.predictor_spec().name != "bilinear":
            raise InputError(field, f"with {who} the predictor must be bilinear (its accuracy model is linear in "
                             "choices): predictor: bilinear (or {name: bilinear, fit: contributions, table: ...})")
        if self.search_space != "mobilenetv3":
            raise InputError(field, f"with {who} the search space must be mobilenetv3")
        if self.objectives[0] != "top1_err":
            raise InputError(field, f"with {who} the first objective must be top1_err (the surrogate's accuracy is "
                             "what is maximised)")
        if len(self.objectives) == 2 and self.objectives[1] not in ("params", "macs", "latency"):
            raise InputError(field, f"with {who} the second objective must be additive (params, macs or latency)")
        extra = sorted(set(self.constraints) - {"params", "macs", "latency_ms"})
        if extra:
            raise InputError(field, f"with {who} the constraints must be additive (params, macs, latency_ms), "
                             f"not {extra[0]}")

    def _gradient_rules(self) -> None:
        """``engine: {kind: gradient}`` searches the mobilenetv3 supernet itself on the evaluator's data, against
        the latency table."""
        eng = self.engine
        assert isinstance(eng, GradientEngineSpec)
        if self.search_space != "mobilenetv3" or self.evaluator.kind != "supernet":
            raise InputError("engine.kind", "gradient needs search_space mobilenetv3 and evaluator kind supernet"
                             " (it trains architecture probabilities on the supernet's validation split)")
        if not self.latency_table:
            raise InputError("engine.kind", "gradient needs latency_table (its expected latency is the table's)")
        if eng.method == "hardcore" and "latency_ms" not in self.constraints:
            raise InputError("engine.method", "hardcore needs constraints.latency_ms (the hard limit T)")
        if eng.method == "tfnas" and eng.target is None and "latency_ms" not in self.constraints:
            raise InputError("engine.target", "tfnas needs target.latency_ms or constraints.latency_ms")
        if eng.temperature_min > eng.temperature:
            raise InputError("engine.temperature_min", "must not exceed engine.temperature")

    def _n_var(self) -> int:
        """Genes per genome of this job's search space."""
        import early_exit  # noqa: F401  (registers eemobilenetv3)
        from supernets import get_search_space

        return int(get_search_space(self.search_space, **self.search_space_kwargs()).n_var)

    def predictor_spec(self) -> PredictorSpec:
        """``predictor`` in its long form."""
        p = self.predictor
        return p if isinstance(p, PredictorSpec) else PredictorSpec(name=p)

    def search_space_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`supernets.get_search_space` for this job."""
        kw: dict[str, Any] = {"lr": self.resolution[0], "ur": self.resolution[1], "width_mult": self.width_mult}
        if self.search_space == "eemobilenetv3":
            ee = self.early_exit or EarlyExitSpec()
            kw.update({"exit_mode": ee.exit_mode, "t_values": tuple(ee.t_values)})
        return kw


@functools.cache
def union_tags() -> dict[str, frozenset[str]]:
    """Top-level spec fields that are discriminated unions -> their ``kind`` tags (pydantic puts the tag in
    error locations: ``evaluator.oracle.path``; error messages name ``evaluator.path``)."""
    out: dict[str, frozenset[str]] = {}
    for name, f in JobSpec.model_fields.items():
        tags = {
            typing.get_args(a.model_fields["kind"].annotation)[0]  # kind: Literal["tag"] (required or defaulted)
            for a in typing.get_args(f.annotation)
            if isinstance(a, type) and issubclass(a, BaseModel) and "kind" in a.model_fields
        }
        if len(tags) > 1:
            out[name] = frozenset(tags)
    return out


def error_field(loc: Sequence[Any]) -> str:
    """Dotted field name of a pydantic error location, without discriminated-union tags."""
    tags = union_tags()
    out: list[str] = []
    for p in (str(x) for x in loc):
        if len(out) == 1 and p in tags.get(out[0], ()):
            continue  # pydantic adds the tag ("evaluator.oracle.path"): users wrote "evaluator.path"
        out.append(p)
    return ".".join(out)


def error_parts(error: Mapping[str, Any]) -> tuple[str, str]:
    """``(field, message)`` of one pydantic error: the field dotted from the spec's root (union tags dropped); an
    ``InputError`` raised by a validator adds its own field to the location (``dataset`` + ``root``)."""
    loc = error_field(error.get("loc", ()))
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, InputError):
        parent, _, last = loc.rpartition(".")
        if cause.field.split(".")[0].split("[")[0] == last:  # a field validator naming its own field
            field = f"{parent}.{cause.field}" if parent else cause.field
        else:
            field = f"{loc}.{cause.field}" if loc else cause.field
        return field, str(cause)[len(cause.field) + 2:]
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    last = loc.rsplit(".", 1)[-1]
    if loc and msg.startswith(f"{last}: "):  # validators that name their field already
        msg = msg[len(last) + 2 :]
    return loc, msg


def validation_error_parts(err: ValidationError) -> tuple[str, str]:
    """``(field, message)`` of the first error of a validation failure."""
    return error_parts(err.errors()[0])


def format_validation_error(err: ValidationError) -> str:
    """One line naming the first failing field (``dataset.root: ...``)."""
    loc, msg = validation_error_parts(err)
    return f"{loc}: {msg}" if loc else msg


def load_spec(source: str | Path | dict[str, Any]) -> JobSpec:
    """Parse and validate a job spec from a YAML/JSON file path or a dict; ``ValueError`` on bad input."""
    if isinstance(source, dict):
        data: Any = source
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError("spec", f"no such file {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise InputError("spec", f"{path} is not valid YAML/JSON: {e}") from None
        if not isinstance(data, dict):
            raise InputError("spec", f"{path} must hold a mapping of job fields")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as e:
        field, msg = validation_error_parts(e)
        raise InputError(field or "spec", msg) from None


def schema_fields(schema: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(dotted field, its JSON-schema node)`` for every leaf of the spec's schema (list items as ``field[]``,
    union members merged under one name): what the bounds table and its tests walk."""
    schema = schema if schema is not None else JobSpec.model_json_schema()
    defs = schema.get("$defs", {})
    out: list[tuple[str, dict[str, Any]]] = []

    def walk(node: dict[str, Any], name: str) -> None:
        if "$ref" in node:
            walk(defs[node["$ref"].rsplit("/", 1)[1]], name)
            return
        subs = [*node.get("anyOf", []), *node.get("oneOf", []), *node.get("allOf", [])]
        for sub in subs:
            walk(sub, name)
        for k, v in node.get("properties", {}).items():
            walk(v, f"{name}.{k}" if name else k)
        items = node.get("items") if isinstance(node.get("items"), dict) else None
        for it in node.get("prefixItems", []) + ([items] if items else []):
            walk(it, f"{name}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{name}.*")
        if node.get("type") in ("integer", "number", "string") and name:
            out.append((name, node))

    walk(schema, "")
    return out


def bounds_table() -> str:
    """The markdown table of every numeric spec field's bounds (README/docs; checked by a test)."""
    rows: dict[str, tuple[Any, Any]] = {}
    for name, node in schema_fields():
        if node.get("type") in ("integer", "number"):
            lo = node.get("minimum", node.get("exclusiveMinimum", min(node.get("enum") or [None])))
            hi = node.get("maximum", node.get("exclusiveMaximum", max(node.get("enum") or [None])))
            rows.setdefault(name, (lo, hi))
    lines = ["| field | min | max |", "|---|---|---|"]
    lines += [f"| `{k}` | {_num(lo)} | {_num(hi)} |" for k, (lo, hi) in sorted(rows.items())]
    return "\n".join(lines)


def _num(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:g}" if isinstance(v, float) else f"{v:,}"
