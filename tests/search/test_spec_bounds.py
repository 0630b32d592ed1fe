"""Every input is bounded and every path confined: the spec's schema states a maximum for every number, every
path-like field is in ``PATH_FIELDS`` (which the server confines), and the README's bounds table is the schema's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from search.spec import PATH_FIELDS, JobSpec, bounds_table, load_spec, path_values, schema_fields
from service.admission import admit
from service.settings import Settings
from supernets.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
PATH_LIKE = re.compile(r"(path|root|dir|file|table)", re.I)


def test_every_number_in_the_schema_has_both_bounds() -> None:
    numeric = [(n, node) for n, node in schema_fields() if node.get("type") in ("integer", "number")]
    assert len(numeric) > 40
    unbounded = [n for n, node in numeric if "enum" not in node and (
        not ({"maximum", "exclusiveMaximum"} & node.keys()) or not ({"minimum", "exclusiveMinimum"} & node.keys()))]
    assert unbounded == []


def test_every_path_like_field_is_confined() -> None:
    strings = {n for n, node in schema_fields() if node.get("type") == "string"}
    path_like = {n for n in strings if PATH_LIKE.search(n.rsplit(".", 1)[-1])}
    assert path_like, "the walk found no path field: the schema walk is broken"
    assert path_like <= set(PATH_FIELDS), f"not in search.spec.PATH_FIELDS: {path_like - set(PATH_FIELDS)}"
    assert set(PATH_FIELDS) <= strings  # and the list names no field that does not exist


def test_readme_bounds_table_is_the_schemas() -> None:
    readme = (ROOT / "README.md").read_text()
    assert bounds_table() in readme, "README's bounds table is stale: paste search.spec.bounds_table()'s output"


@pytest.mark.parametrize("field,value", [
    ("n_doe", 200_000), ("iterations", 10**9), ("seed", 2**40), ("resolution", [160, 100_000]),
    ("engine", {"n_gen": 10**9}), ("evaluator", {"kind": "supernet", "batch_size": 10**6}),
    ("robustness", {"corruptions": {"severities": [9]}}),
])
def test_out_of_bounds_is_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises((ValidationError, InputError)) as e:
        load_spec({field: value})
    assert field in str(e.value)


def test_one_engine_step_is_bounded() -> None:
    """The bounds of the inner NSGA-II keep one step within 100,000 surrogate evaluations (minutes, not hours,
    on 2 cores), so no product of knobs needs a separate check."""
    fields = dict(schema_fields())
    assert fields["engine.pop_size"]["maximum"] * fields["engine.n_gen"]["maximum"] <= 100_000


def test_cifar_c_root_outside_the_data_roots_is_refused(tmp_path: Path) -> None:
    inside, outside = tmp_path / "data", tmp_path / "elsewhere"
    inside.mkdir()
    (outside / "CIFAR-10-C").mkdir(parents=True)
    spec = JobSpec(evaluator={"kind": "proxy", "name": "zen"}, supernet={"random_init": True},
                   robustness={"corruptions": {"cifar_c_root": str(outside / "CIFAR-10-C")}})
    assert ("robustness.corruptions.cifar_c_root", str(outside / "CIFAR-10-C")) in path_values(spec)
    with pytest.raises(InputError) as e:
        admit(spec, Settings(data_roots=[inside]))
    assert e.value.field == "robustness.corruptions.cifar_c_root"
    link = inside / "link"
    link.symlink_to(outside)  # a symlink inside a root that leads out of it is outside
    spec2 = spec.model_copy(update={"robustness": spec.robustness.model_copy(
        update={"corruptions": spec.robustness.corruptions.model_copy(update={"cifar_c_root": str(link)})})})
    with pytest.raises(InputError):
        admit(spec2, Settings(data_roots=[inside]))
