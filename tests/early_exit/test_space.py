"""eemobilenetv3: genome round trips with and without the resolution gene, canonical t/b, bad configs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from early_exit.space import EEMobileNetV3Space
from supernets import codec, get_search_space
from supernets.spaces import MobileNetV3Space, search_space_names
from tests.early_exit.conftest import ee_space

SPACES = [
    dict(lr=192, ur=256, width_mult=1.0),
    dict(lr=32, ur=32, width_mult=1.0),
    dict(lr=160, ur=224, width_mult=1.2),
    dict(lr=224, ur=224, width_mult=1.2),
]
MODES = [dict(exit_mode="t"), dict(exit_mode="b"), dict(exit_mode="t", t_values=(0.6, 0.8, 0.9, 1.0))]


@st.composite
def space_and_genome(draw: st.DrawFn) -> tuple[dict, list[int]]:
    kw = {**draw(st.sampled_from(SPACES)), **draw(st.sampled_from(MODES))}
    ss = ee_space(**kw)
    genome = [draw(st.integers(int(lo), int(hi))) for lo, hi in zip(ss.xl, ss.xu, strict=True)]
    return kw, genome


def test_registered() -> None:
    assert "eemobilenetv3" in search_space_names()
    ss = ee_space(lr=32, ur=32)
    assert isinstance(ss, EEMobileNetV3Space)
    assert ss.describe() == {
        "name": "eemobilenetv3",
        "lr": 32,
        "ur": 32,
        "width_mult": 1.0,
        "exit_mode": "t",
        "t_values": [0.1, 0.2, 1.0],
    }
    assert get_search_space(**ss.describe()).describe() == ss.describe()


@settings(max_examples=300, deadline=None)
@given(space_and_genome())
def test_genome_round_trip(kg: tuple[dict, list[int]]) -> None:
    kw, genome = kg
    ss = ee_space(**kw)
    has_res = kw["lr"] != kw["ur"]
    assert ss.n_var == 45 + int(has_res) + 4
    config = ss.decode(genome)
    field = kw["exit_mode"]
    assert set(config) == {"ks", "e", "d", "r", field}
    # the exit genes are the last 4 whatever the resolution gene does
    ex = genome[-4:]
    if field == "t":
        assert config["t"] == [ss.t_values[g] for g in ex]
    else:
        assert config["b"] == (ex if sum(ex) else [0, 0, 0, 1])
    # the backbone part decodes exactly as the plain MobileNetV3 space decodes it
    base = get_search_space("mobilenetv3", lr=kw["lr"], ur=kw["ur"], width_mult=kw["width_mult"])
    assert ss.backbone(config) == base.decode(genome[: base.n_var])
    if has_res:
        assert config["r"] == ss.resolutions[genome[45]]
    else:
        assert config["r"] == kw["lr"]
    x = ss.encode(config)
    assert np.all(x >= ss.xl) and np.all(x <= ss.xu)
    assert ss.decode(x) == config
    assert ss.validate(config) == config
    compact = codec.to_compact(config)
    assert ss.key(compact) == ss.key(config)
    assert list(x[-4:]) == (ex if field == "t" or sum(ex) else [0, 0, 0, 1])


def test_decode_without_resolution_gene_reads_the_right_genes() -> None:
    # CNAS bug: with lr == ur the exit genes were read one position too far. Here gene 45 is the first exit gene.
    ss = ee_space(lr=32, ur=32, exit_mode="t")
    genome = [0] * 45 + [0, 1, 2, 0]
    assert ss.decode(genome)["t"] == [0.1, 0.2, 1.0, 0.1]
    ss2 = ee_space(lr=32, ur=64, exit_mode="t")
    genome2 = [0] * 45 + [3] + [0, 1, 2, 0]
    c2 = ss2.decode(genome2)
    assert c2["t"] == [0.1, 0.2, 1.0, 0.1] and c2["r"] == 44


def test_canonicalises_exit_fields() -> None:
    ss = ee_space(lr=32, ur=32, exit_mode="t")
    c = ss.sample(1, np.random.default_rng(0))[0]
    c["t"] = [1, 0.1, np.float32(0.2), 1.0]  # EDANAS writes 1 for 1.0
    v = ss.validate(c)
    assert v["t"] == [1.0, 0.1, 0.2, 1.0] and all(type(t) is float for t in v["t"])
    assert ss.exits_present(v) == [False, True, True, False] and ss.n_exits(v) == 2
    ssb = ee_space(lr=32, ur=32, exit_mode="b")
    cb = {k: c[k] for k in ("ks", "e", "d", "r")} | {"b": [np.int64(1), 0, 1.0, 0]}
    assert ssb.validate(cb)["b"] == [1, 0, 1, 0]
    base = MobileNetV3Space(lr=32, ur=32)
    assert ssb.to_block_strings(cb) == base.to_block_strings({k: c[k] for k in ("ks", "e", "d", "r")})


def test_sample_b_mode_never_draws_no_exit() -> None:
    ss = ee_space(lr=32, ur=32, exit_mode="b")
    configs = ss.sample(200, np.random.default_rng(3))
    assert all(sum(c["b"]) >= 1 for c in configs)
    assert len({tuple(c["b"]) for c in configs}) == 15


@pytest.mark.parametrize(
    "mode,patch,msg",
    [
        ("t", {"t": [0.1, 0.2, 1.0]}, "t: expected 4 thresholds"),
        ("t", {"t": [0.1, 0.2, 1.0, 0.3]}, r"t\[3\]: 0.3 is not one of \[0.1, 0.2, 1.0\]"),
        ("t", {"t": [0.1, "0.2", 1.0, 0.1]}, r"t\[1\]: expected a number"),
        ("t", {"t": [0.1, True, 1.0, 0.1]}, r"t\[1\]: expected a number"),
        ("t", {"t": "0.1"}, "t: expected 4 thresholds"),
        ("t", {"b": [1, 0, 0, 0]}, "b: not a field of eemobilenetv3 with exit_mode='t'"),
        ("t", {}, "t: missing"),
        ("b", {"b": [0, 0, 0, 0]}, "b: at least one early exit"),
        ("b", {"b": [0, 2, 0, 0]}, r"b\[1\]: 2 is not one of \[0, 1\]"),
        ("b", {"b": [1, 0, 0]}, "b: expected 4 integers"),
        ("b", {"t": [0.1, 0.1, 0.1, 0.1]}, "t: not a field"),
        ("b", {"b": [1, 0, 0, 0], "x": 1}, "x: unknown field for eemobilenetv3"),
    ],
)
def test_bad_configs(mode: str, patch: dict, msg: str) -> None:
    ss = ee_space(lr=32, ur=32, exit_mode=mode)
    base = ss.backbone(ss.sample(1, np.random.default_rng(0))[0])
    with pytest.raises(ValueError, match=msg):
        ss.validate({**base, **patch})


def test_bad_space_options_and_genomes() -> None:
    with pytest.raises(ValueError, match="exit_mode: expected one of"):
        ee_space(exit_mode="x")
    with pytest.raises(ValueError, match=r"t_values\[1\]: 1.5 is outside"):
        ee_space(t_values=(0.1, 1.5))
    with pytest.raises(ValueError, match=r"t_values\[1\]: 0.1 is repeated"):
        ee_space(t_values=(0.1, 0.1))
    ss = ee_space(lr=32, ur=32)
    with pytest.raises(ValueError, match="genome: expected 49 genes"):
        ss.decode([0] * 46)
    with pytest.raises(ValueError, match=r"genome\[46\]: index 3 outside 0..2"):
        ss.decode([0] * 46 + [3, 0, 0])
