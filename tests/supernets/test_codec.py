"""Codec round trips (property tests), canonicalisation and the errors malformed configs raise."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernets import codec, get_search_space
from supernets.spaces import search_space_names

SPACES = [
    dict(lr=192, ur=256, width_mult=1.0),
    dict(lr=160, ur=224, width_mult=1.2),
    dict(lr=224, ur=224, width_mult=1.0),
    dict(lr=32, ur=32, width_mult=1.2),
]


@st.composite
def space_and_config(draw: st.DrawFn) -> tuple[dict, dict]:
    kw = draw(st.sampled_from(SPACES))
    ss = get_search_space("mobilenetv3", **kw)
    genome = [draw(st.integers(int(lo), int(hi))) for lo, hi in zip(ss.xl, ss.xu, strict=True)]
    return kw, ss.decode(genome)


@settings(max_examples=300, deadline=None)
@given(space_and_config())
def test_genome_config_round_trip(sc: tuple[dict, dict]) -> None:
    kw, config = sc
    ss = get_search_space("mobilenetv3", **kw)
    x = ss.encode(config)
    assert len(x) == ss.n_var == 45 + int(kw["lr"] != kw["ur"])
    assert np.all(x >= ss.xl) and np.all(x <= ss.xu)
    assert ss.decode(x) == config
    assert ss.validate(config) == config


@settings(max_examples=300, deadline=None)
@given(space_and_config())
def test_block_strings_and_compact_round_trip(sc: tuple[dict, dict]) -> None:
    kw, config = sc
    ss = get_search_space("mobilenetv3", **kw)
    blocks = ss.to_block_strings(config)
    assert [len(s) for s in blocks[1:-1]] == config["d"]
    assert ss.from_block_strings(blocks, config["r"]) == config
    compact = codec.to_compact(config)
    assert len(compact["ks"]) == sum(config["d"])
    assert ss.validate(compact) == config
    assert ss.key(compact) == ss.key(config)


@settings(max_examples=200, deadline=None)
@given(space_and_config(), st.data())
def test_inactive_slots_do_not_change_the_key(sc: tuple[dict, dict], data: st.DataObject) -> None:
    kw, config = sc
    ss = get_search_space("mobilenetv3", **kw)
    noisy = json.loads(json.dumps(config))
    for s, d in enumerate(config["d"]):
        for j in range(d, codec.MAX_DEPTH):
            noisy["ks"][4 * s + j] = data.draw(st.sampled_from(codec.KERNELS))
            noisy["e"][4 * s + j] = data.draw(st.sampled_from(codec.EXPANDS))
    assert ss.validate(noisy) == config
    assert ss.key(noisy) == ss.key(config)


def test_repeated_block_strings_expand() -> None:
    ss = get_search_space("mobilenetv3", lr=224, ur=224)
    cfg = ss.sample(1, np.random.default_rng(3))[0]
    blocks = ss.to_block_strings(cfg)
    # merge stage 5 into one repeated string when its layers are identical
    cfg2 = dict(cfg, ks=list(cfg["ks"]), e=list(cfg["e"]))
    for j in range(cfg["d"][4]):
        cfg2["ks"][16 + j], cfg2["e"][16 + j] = 5, 6
    blocks = ss.to_block_strings(cfg2)
    first = blocks[5][0]
    blocks[5] = [first.replace("_r1_", f"_r{cfg['d'][4]}_")]
    assert ss.from_block_strings(blocks, 224) == ss.validate(cfg2)


def test_sampling_is_seeded() -> None:
    ss = get_search_space("mobilenetv3")
    a = ss.sample(20, np.random.default_rng(7))
    b = ss.sample(20, np.random.default_rng(7))
    c = ss.sample(20, np.random.default_rng(8))
    assert a == b and a != c


GOOD = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 192}


@pytest.mark.parametrize(
    ("patch", "field", "hint"),
    [
        ({"ks": [3] * 19}, "ks", "20"),
        ({"e": [3] * 21}, "e", "20"),
        ({"d": [2] * 4}, "d", "5"),
        ({"ks": [4] + [3] * 19}, "ks[0]", "[3, 5, 7]"),
        ({"e": [3] * 19 + [5]}, "e[19]", "[3, 4, 6]"),
        ({"d": [2, 2, 5, 2, 2]}, "d[2]", "[2, 3, 4]"),
        ({"r": 194}, "r", "192..256"),
        ({"r": 300}, "r", "192..256"),
        ({"r": "192"}, "r", "integer"),
        ({"r": 192.0}, "r", "integer"),
        ({"ks": [3.0] * 20}, "ks[0]", "integer"),
        ({"ks": [True] * 20}, "ks[0]", "integer"),
        ({"ks": "3"}, "ks", "list"),
        ({"d": None}, "d", "list"),
        ({"x": 1}, "x", "unknown"),
    ],
)
def test_malformed_configs_name_the_field(patch: dict, field: str, hint: str) -> None:
    ss = get_search_space("mobilenetv3", lr=192, ur=256)
    with pytest.raises(ValueError) as err:
        ss.validate({**GOOD, **patch})
    msg = str(err.value)
    assert msg.startswith(field + ":") and hint in msg, msg


def test_missing_field_and_non_mapping() -> None:
    ss = get_search_space("mobilenetv3")
    with pytest.raises(ValueError, match="^r: missing"):
        ss.validate({k: v for k, v in GOOD.items() if k != "r"})
    with pytest.raises(ValueError, match="^config:"):
        ss.validate([1, 2, 3])  # type: ignore[arg-type]


def test_bad_space_parameters_and_genomes() -> None:
    with pytest.raises(ValueError, match="width_mult"):
        get_search_space("mobilenetv3", width_mult=1.1)
    with pytest.raises(ValueError, match="resolution"):
        get_search_space("mobilenetv3", lr=192, ur=250)
    with pytest.raises(ValueError, match="search_space"):
        get_search_space("resnet")
    ss = get_search_space("mobilenetv3")
    with pytest.raises(ValueError, match="genome: expected 46"):
        ss.decode([0] * 45)
    with pytest.raises(ValueError, match=r"genome\[0\]"):
        ss.decode([3] + [0] * 45)


def test_bad_block_strings() -> None:
    ss = get_search_space("mobilenetv3", lr=224, ur=224)
    blocks = ss.to_block_strings(GOOD | {"r": 224})
    bad = [list(s) for s in blocks]
    bad[1][0] = bad[1][0].replace("_k3_", "_k9_")
    with pytest.raises(ValueError, match=r"blocks\[1\]\[0\]: kernel 9"):
        ss.from_block_strings(bad, 224)
    bad = [list(s) for s in blocks]
    bad[2][0] = "ir_r1_k3"
    with pytest.raises(ValueError, match=r"blocks\[2\]\[0\]"):
        ss.from_block_strings(bad, 224)
    with pytest.raises(ValueError, match="width 1.0"):
        get_search_space("mobilenetv3", lr=224, ur=224, width_mult=1.2).from_block_strings(blocks, 224)


def test_registry_lists_mobilenetv3() -> None:
    assert "mobilenetv3" in search_space_names()


def test_reads_real_cnas_and_dynast_configs(shared_data) -> None:
    ss = get_search_space("mobilenetv3", lr=192, ur=256)
    stats = json.loads((shared_data / "cnas_cifar10" / "iter_30.stats").read_text())
    keys = {ss.key(row[0]) for row in stats["archive"]}
    assert len(keys) == len(stats["archive"])  # MSuNAS archives hold distinct architectures
    ss224 = get_search_space("mobilenetv3", lr=224, ur=224)
    with open(shared_data / "dynast_imagenet" / "mbnv3w10_evoga_acc.csv") as f:
        for row in csv.DictReader(f):
            cfg = eval(row["Sub-network"], {"__builtins__": {}})  # a Python dict literal
            cfg.pop("wid")
            canon = ss224.validate(cfg)
            assert ss224.decode(ss224.encode(canon)) == canon
