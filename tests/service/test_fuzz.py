"""The API fuzzed from its own OpenAPI schema (schemathesis): no input gives a 5xx; every error is problem+json."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from service import repository as repo
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import create_job

pytestmark = pytest.mark.slow


@pytest.fixture
def api_schema(db_url: str, tmp_path: Path, predictor_file: Path):
    app = create_app(Settings(db_url=db_url, data_roots=[tmp_path], max_body_bytes=50_000))
    db = app.state.db
    _, secret = repo.create_token(db, "fuzz")
    with db.transaction() as s:
        owner = repo.authenticate(s, secret)
        assert owner is not None
        for seed in range(2):  # real jobs so that job ids 1 and 2 exist for the path parameters
            create_job(s, owner, {"evaluator": {"kind": "oracle", "path": str(predictor_file)}, "seed": seed})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.headers = {"Authorization": f"Bearer {secret}"}
    yield schema
    db.dispose()


def test_no_server_errors(api_schema) -> None:
    failures: list[str] = []
    n_calls = 0
    codes: dict[int, int] = {}
    for result in api_schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case) -> None:
            nonlocal n_calls
            response = case.call()
            n_calls += 1
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")
            elif response.status_code >= 400:
                ctype = response.headers.get("content-type")
                ctype = ctype[0] if isinstance(ctype, list) else ctype
                if not str(ctype).startswith("application/problem+json"):
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} as {ctype}")

        run()
    print(codes)
    assert n_calls > 100 and sum(v for k, v in codes.items() if k < 300) > 5  # authenticated calls got through
    assert not failures, "\n".join(failures[:10])
