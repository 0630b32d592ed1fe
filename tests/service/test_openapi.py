"""The OpenAPI document: typed 2xx responses, every error as application/problem+json with its headers, bounded
query parameters; and docs/openapi.json is the document the app serves (``python -m service.openapi``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service import openapi
from service.problems import PROBLEM_TYPES
from tests.conftest import run_cli

DOC = openapi.openapi_document()
OPS = [(m.upper(), p, o) for p, ops in DOC["paths"].items() for m, o in ops.items()]
PUBLIC = {("GET", "/healthz"), ("GET", "/problems")}
BINARY = {("GET", "/jobs/{job_id}/archs/{arch_id}/export"),
          ("GET", "/jobs/{job_id}/trainings/{training_id}/files/{name}")}


def _ref(schema: dict[str, Any]) -> str:
    return str(schema.get("$ref") or schema.get("items", {}).get("$ref") or "")


@pytest.mark.parametrize(("method", "path", "op"), OPS, ids=[f"{m} {p}" for m, p, _ in OPS])
def test_operation_is_typed_and_documents_its_problems(method: str, path: str, op: dict[str, Any]) -> None:
    responses = op["responses"]
    ok = [c for c in responses if c.startswith("2")]
    assert len(ok) == 1, responses.keys()
    content = responses[ok[0]].get("content", {})
    if ok[0] == "204":
        assert not content
    elif (method, path) in BINARY:
        assert all(c["schema"] == {"type": "string", "format": "binary"} for c in content.values())
    else:  # a named model (or a list of one), never a bare object
        assert list(content) == ["application/json"] and _ref(content["application/json"]["schema"])
    errors = {c: r for c, r in responses.items() if c[0] in "45"}
    assert ("503" in errors) == ((method, path) != ("GET", "/problems"))  # every other operation reads the database
    if (method, path) not in PUBLIC:
        assert "WWW-Authenticate" in errors["401"]["headers"]
    assert ("422" in errors) == bool(op.get("parameters") or "requestBody" in op)
    if "{job_id}" in path:
        assert "404" in errors
    if "requestBody" in op:
        assert "413" in errors and "422" in errors
    for code, r in errors.items():
        assert list(r["content"]) == ["application/problem+json"], (code, r["content"].keys())
        assert r["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/ProblemDetail"}
        assert ("Retry-After" in r.get("headers", {})) == (code in ("429", "503")), code
    for p in op.get("parameters", []):
        s = p["schema"].get("anyOf", [p["schema"]])[0]
        if s.get("type") == "integer":
            assert "maximum" in s and "minimum" in s, p["name"]
        if s.get("type") == "string" and p["in"] != "header":
            assert "maxLength" in s or "enum" in s, p["name"]


def test_list_parameters_are_enums_and_bounded() -> None:
    params = {p["name"]: p["schema"] for p in DOC["paths"]["/jobs"]["get"]["parameters"]}
    assert params["state"]["anyOf"][0]["enum"] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert params["limit"]["maximum"] == 500 and params["cursor"]["anyOf"][0]["pattern"] == "^[0-9]+$"
    assert DOC["paths"]["/jobs"]["post"]["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    problem_statuses = {int(c) for _, _, o in OPS for c in o["responses"] if c[0] in "45"}
    assert problem_statuses == {401, 404, 409, 413, 422, 429, 503}
    assert problem_statuses <= {p.status for p in PROBLEM_TYPES}


def test_checked_in_document_is_up_to_date() -> None:
    """docs/openapi.json is what the app serves (regenerate: `python -m service.openapi`)."""
    assert openapi.DEFAULT_OUT.exists()
    assert openapi.write(openapi.DEFAULT_OUT, check=True), "docs/openapi.json is stale: run `python -m service.openapi`"


def test_openapi_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "api.json"
    assert openapi.main(["--out", str(out), "--check"]) == 1 and not out.exists()  # absent: stale, not written
    assert openapi.main(["--out", str(out)]) == 0
    assert json.loads(out.read_text())["paths"].keys() == DOC["paths"].keys()
    assert openapi.main(["--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("ProblemDetail", "Other", 1))
    assert openapi.main(["--out", str(out), "--check"]) == 1
    assert "stale" in capsys.readouterr().err


def test_msunas_openapi_command(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    assert run_cli(["openapi", "--out", str(out), "--check"]) == 1
    assert run_cli(["openapi", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(openapi.render())
    assert run_cli(["openapi", "--out", str(out), "--check"]) == 0


def test_links_name_real_operations_and_parameters() -> None:
    """submit -> get/cancel/resume/iterations/archive/select, list -> job, archive/select -> arch/export."""
    by_id = {o["operationId"]: o for _, _, o in OPS}
    n = 0
    for _, _, op in OPS:
        for r in op["responses"].values():
            for link in r.get("links", {}).values():
                target = by_id[link["operationId"]]
                assert set(link["parameters"]) == {p["name"] for p in target["parameters"] if p["in"] == "path"}
                n += 1
    assert n >= 6 + 6 + 2 + 2 + 2
    assert set(DOC["paths"]["/jobs"]["post"]["responses"]["202"]["links"]) >= {"get_job", "archive", "select"}
