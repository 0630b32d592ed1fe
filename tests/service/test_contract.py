"""The OpenAPI document is a contract: schemathesis generates requests from it (valid and invalid) and runs
every check it has against the ASGI app with a real token, on SQLite (and PostgreSQL when
``MSUNAS_TEST_POSTGRES_URL`` is set): no failure. Also: docs/openapi.json is the document the app serves."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode

from service import repository as repo
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import create_job

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("MSUNAS_CONTRACT_EXAMPLES", "12"))  # per operation and generation mode


@pytest.fixture
def api_schema(db_url: str, tmp_path: Path, predictor_file: Path):
    app = create_app(Settings(db_url=db_url, data_roots=[tmp_path], max_body_bytes=50_000))
    db = app.state.db
    _, secret = repo.create_token(db, "contract")
    with db.transaction() as s:
        owner = repo.authenticate(s, secret)
        assert owner is not None
        for seed in range(2):  # real jobs so that job ids 1 and 2 exist for the path parameters
            create_job(s, owner, {"evaluator": {"kind": "oracle", "path": str(predictor_file)}, "seed": seed})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.headers = {"Authorization": f"Bearer {secret}"}
    yield schema
    db.dispose()


def test_contract_all_checks(api_schema) -> None:
    load_all_checks()
    checks = list(CHECKS.get_all())
    failures: dict[str, str] = {}
    by_check: Counter[str] = Counter()
    codes: Counter[int] = Counter()
    n_cases = 0
    for result in api_schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def run(case) -> None:
                nonlocal n_cases
                n_cases += 1
                try:
                    response = case.call_and_validate(checks=checks)
                    codes[response.status_code] += 1
                except FailureGroup as group:
                    for f in group.exceptions:
                        name = ",".join(getattr(f, "checks", ()) or (f.title,))
                        key = f"{op.label} [{mode.value}] {name}: {f.title}"
                        if key not in failures:
                            by_check[name] += 1
                            failures[key] = f"{key}\n  {case.method} {case.formatted_path} " \
                                            f"query={case.query} body={str(case.body)[:200]}\n  {f.message[:300]}"

            try:
                run()
            except Unsatisfiable:  # nothing invalid to generate (an operation without parameters or body)
                assert mode is GenerationMode.NEGATIVE, op.label
    print(f"contract: {n_cases} cases, status codes {dict(codes)}, distinct failures by check {dict(by_check)}")
    assert n_cases > 100 and sum(v for k, v in codes.items() if k < 300) > 10  # authenticated calls got through
    assert not failures, f"{len(failures)} distinct failures:\n" + "\n".join(failures.values())
