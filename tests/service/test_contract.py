"""The OpenAPI document is a contract: schemathesis's engine (what ``schemathesis run --checks all`` runs: the
examples, coverage, fuzzing and stateful phases, with links inferred from the responses) against the ASGI app
with a real token, every check it has, on SQLite (and PostgreSQL when ``MSUNAS_TEST_POSTGRES_URL`` is set):
0 failures."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config._checks import PositiveDataAcceptanceConfig
from schemathesis.config._operations import OperationConfig
from schemathesis.engine import events, from_schema

from service import repository as repo
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import create_job

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("MSUNAS_CONTRACT_EXAMPLES", "60"))  # per operation and phase
# A valid spec can still name what this server does not have: a file outside its data roots, the built-in
# supernet it has not trained, or an evaluator kind it does not run (python). No schema can say that, so POST /jobs
# may refuse schema-valid data with 422 naming one of these fields, and only these (any other is counted in
# `refused`: see test_submit_accepts_every_schema_valid_spec).
SERVER_STATE_FIELDS = {"supernet.path", "dataset.root", "evaluator.path", "latency_table", "evaluator.kind",
                       "robustness.corruptions.cifar_c_root"}
REVOKE = {"method": "DELETE", "path": "/tokens/me"}  # revokes the run's token: tested on its own, last


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


@dataclass
class Tally:
    """What a run saw: test scenarios, HTTP calls, checks run, status codes, distinct failures (by check), and the
    schema-valid specs POST /jobs refused on a spec field (by field)."""

    scenarios: int = 0
    calls: int = 0
    checks: int = 0
    codes: Counter[int] = field(default_factory=Counter)
    by_check: Counter[str] = field(default_factory=Counter)
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def add(self, ev: events.ScenarioFinished) -> None:
        self.scenarios += 1
        rec = ev.recorder
        for interaction in rec.interactions.values():
            self.calls += 1
            if interaction.response is not None:
                self.codes[interaction.response.status_code] += 1
        for case_id, node in rec.cases.items():  # schema-valid specs POST /jobs refused (see SERVER_STATE_FIELDS)
            response = rec.interactions[case_id].response if case_id in rec.interactions else None
            meta = node.value.meta
            if (node.value.operation.label == "POST /jobs" and response is not None and response.status_code == 422
                    and meta is not None and meta.generation.mode.is_positive):
                problem = json.loads(response.content)
                if problem.get("field") not in SERVER_STATE_FIELDS:
                    self.refused.setdefault(str(problem.get("field")),
                                            f"{problem.get('field')}: {problem.get('detail', '')[:200]}")
        for nodes in rec.checks.values():
            for check in nodes:
                self.checks += 1
                if check.failure_info is None:
                    continue
                f = check.failure_info.failure
                key = (f.operation, check.name, f.title)
                if key not in self.failures:
                    self.by_check[check.name] += 1
                    self.failures[key] = f"{f.operation} {check.name}: {f.title}\n  {f.message[:400]}\n  " \
                                         f"{check.failure_info.code_sample[:400]}"


def _run(schema: Any, tally: Tally) -> None:
    schema.config.generation.update(max_examples=EXAMPLES)
    # POST /jobs: a valid spec may be refused with 422 (SERVER_STATE_FIELDS), so schemathesis goes on generating
    # specs instead of stopping at the first; Tally.add checks each such 422 instead
    statuses = [*PositiveDataAcceptanceConfig().expected_statuses, "422"]
    schema.config.operations.operations.append(OperationConfig.from_dict({
        "include-method": "POST", "include-path": "/jobs",
        "checks": {"positive_data_acceptance": {"expected-statuses": statuses}}}))
    for ev in from_schema(schema).execute():
        if isinstance(ev, events.ScenarioFinished):
            tally.add(ev)
        elif isinstance(ev, events.FatalError | events.NonFatalError):
            if type(getattr(ev, "value", None)).__name__ == "NoLinksFound":  # a run of one operation: no links
                continue
            raise AssertionError(f"schemathesis could not run: {ev}")


def test_contract_all_checks(api_schema: Any) -> None:
    """Every operation, every phase, every check: 0 failures. (POST /jobs refusing a valid spec on a spec field is
    counted by the next test: it is the job spec's schema, search/spec.py.)"""
    t = Tally()
    _run(api_schema.exclude(**REVOKE), t)
    _run(api_schema.include(**REVOKE), t)
    print(f"contract: {t.scenarios} scenarios, {t.calls} calls, {t.checks} checks, status codes {dict(t.codes)}, "
          f"distinct failures by check {dict(t.by_check)}; POST /jobs refused valid specs on {sorted(t.refused)}")
    assert t.calls > 500 and sum(v for k, v in t.codes.items() if k < 300) > 20  # authenticated calls got through
    assert {401, 404, 405, 422} <= set(t.codes) and t.codes[204] == 1  # the token revoked once, at the end
    assert not t.failures, f"{len(t.failures)} distinct failures:\n" + "\n".join(t.failures.values())


# Rules between fields that the schema does not state (JSON Schema could only with if/then chains): the
# evaluator's kind defaults to supernet (no discriminator tag), early-exit options and avg_macs need
# search_space eemobilenetv3, resolution is lr <= ur with ur - lr a multiple of 4, optimizer milp needs predictor
# bilinear, supernet takes path or random_init, engine.doe cnas is for mobilenetv3. And width_mult is 1.0 or 1.2:
# the schema says [1.0, 1.2] (a float enum breaks generated clients). Every other per-field limit (bounds, enums,
# key names) is in the schema.
CROSS_FIELD_RULES = {"evaluator", "early_exit", "search_space", "resolution", "optimizer", "supernet", "engine.doe",
                     "engine.kind", "engine.method", "engine.target", "engine.temperature_min",
                     "predictor.variant", "predictor.fit", "predictor.table",
                     "width_mult"}


def test_submit_accepts_every_schema_valid_spec(api_schema: Any) -> None:
    """POST /jobs accepts every spec its schema admits, except for what only the server knows (its files) and the
    documented rules between fields (CROSS_FIELD_RULES): a refusal on any other field is a schema gap."""
    t = Tally()
    _run(api_schema.include(method="POST", path="/jobs"), t)
    assert t.calls > 50
    gaps = {k: v for k, v in t.refused.items() if k not in CROSS_FIELD_RULES}
    assert not gaps, "schema-valid specs refused:\n" + "\n".join(gaps.values())
