"""Storage: migrations, schema check, transactions, claims with leases and fencing, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import text

from service import repository as repo
from service.db import Database, SchemaOutdatedError, StorageError, check_schema, head_revision, table_names, upgrade
from service.models import EvalTask, Job
from tests.service.conftest import create_job

SPEC = {"iterations": 2, "evaluator": {"kind": "oracle", "path": "/x.npz"}}


def _job_with_tasks(db: Database, n: int, owner: int | None = None) -> int:
    if owner is None:
        owner, _ = repo.create_token(db, "t")
    with db.transaction() as s:
        job, _ = create_job(s, owner, SPEC)
        job.state = "running"
        job.cur_iteration = 0
        for i in range(n):
            s.add(EvalTask(job_id=job.id, iteration=0, idx=i, key=f"k{i}", config={"i": i}))
        return job.id


def test_upgrade_and_schema_check(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    with pytest.raises(SchemaOutdatedError, match="msunas db upgrade --db"):
        check_schema(db)
    assert upgrade(empty_db_url) == head_revision()
    check_schema(db)
    assert {"jobs", "iterations", "architectures", "eval_tasks", "api_tokens", "idempotency_keys"} <= set(
        table_names(db)
    )
    assert upgrade(empty_db_url) == head_revision()  # idempotent
    db.dispose()


def test_schema_outdated_names_the_command(db_url: str) -> None:
    db = Database(db_url)
    with db.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = 'old0'"))
    with pytest.raises(SchemaOutdatedError, match="at revision old0.*msunas db upgrade"):
        check_schema(db)
    db.dispose()


def test_sqlite_pragmas(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    db = Database(url)
    with db.transaction() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    db.dispose()


def test_transaction_rolls_back_and_wraps_errors(db_url: str) -> None:
    db = Database(db_url)
    owner, _ = repo.create_token(db, "a")
    with pytest.raises(RuntimeError):
        with db.transaction() as s:
            create_job(s, owner, SPEC)
            raise RuntimeError("boom")
    with db.transaction() as s:
        assert repo.list_jobs(s, owner)[0] == []
    with pytest.raises(StorageError, match="database error"):
        with db.transaction() as s:
            s.execute(text("SELECT * FROM no_such_table"))
    db.dispose()


def test_tokens_store_only_hashes(db_url: str) -> None:
    db = Database(db_url)
    tid, secret = repo.create_token(db, "alice")
    with db.transaction() as s:
        assert repo.authenticate(s, secret) == tid
        assert repo.authenticate(s, secret + "x") is None
        stored = str(s.execute(text("SELECT token_hash FROM api_tokens")).scalar())
    assert secret not in stored and stored == repo.hash_token(secret)
    db.dispose()


def test_idempotency_and_pagination(db_url: str) -> None:
    db = Database(db_url)
    owner, _ = repo.create_token(db, "a")
    other, _ = repo.create_token(db, "b")
    with db.transaction() as s:
        j1, c1 = create_job(s, owner, SPEC, idempotency_key="k1")
        j2, c2 = create_job(s, owner, SPEC, idempotency_key="k1")
        assert c1 and not c2 and j1.id == j2.id
        with pytest.raises(repo.ConflictError, match="Idempotency-Key"):
            create_job(s, owner, {**SPEC, "iterations": 3}, idempotency_key="k1")
        j3, c3 = create_job(s, other, SPEC, idempotency_key="k1")  # keys are per token
        assert c3 and j3.id != j1.id
        for _ in range(4):
            create_job(s, owner, SPEC)
    seen: list[int] = []
    cursor = None
    with db.transaction() as s:
        while True:
            page, cursor = repo.list_jobs(s, owner, cursor=cursor, limit=2)
            seen += [j.id for j in page]
            if cursor is None:
                break
        assert len(seen) == 5 and seen == sorted(seen, reverse=True)
        with pytest.raises(repo.NotFoundError):
            repo.get_job(s, other, j1.id)
        with pytest.raises(ValueError, match="cursor"):
            repo.list_jobs(s, owner, cursor="!!")
        with pytest.raises(ValueError, match="state"):
            repo.list_jobs(s, owner, state="bogus")
    db.dispose()


def test_task_lease_expiry_and_fencing(db_url: str) -> None:
    db = Database(db_url)
    _job_with_tasks(db, 1)
    a = repo.claim_task(db, "A", 0.3, max_attempts=3)
    assert a is not None and a.attempt == 1
    assert repo.claim_task(db, "B", 0.3, max_attempts=3) is None  # leased
    assert repo.heartbeat_task(db, a, 0.3)
    time.sleep(0.4)  # A stops heartbeating (crashed): the lease lapses
    b = repo.claim_task(db, "B", 30, max_attempts=3)
    assert b is not None and b.task_id == a.task_id and b.attempt == 2
    assert not repo.heartbeat_task(db, a, 30)  # A is fenced off
    assert not repo.complete_task(db, a, {"status": "ok", "who": "A"})
    assert repo.complete_task(db, b, {"status": "ok", "who": "B"})
    assert not repo.complete_task(db, b, {"status": "ok", "who": "B2"})  # no double completion
    with db.transaction() as s:
        t = s.get(EvalTask, b.task_id)
        assert t is not None and t.result == {"status": "ok", "who": "B"} and t.n_completions == 1 and t.n_lost == 1
    db.dispose()


def test_task_fails_after_max_lost_leases(db_url: str) -> None:
    db = Database(db_url)
    _job_with_tasks(db, 1)
    for _ in range(2):
        assert repo.claim_task(db, "X", 0.05, max_attempts=2) is not None
        time.sleep(0.1)
    assert repo.claim_task(db, "X", 0.05, max_attempts=2) is None
    with db.transaction() as s:
        t = s.execute(text("SELECT state FROM eval_tasks")).scalar()
        assert t == "done"
        (res,) = [r.result for r in s.query(EvalTask)]
        assert res is not None and res["status"] == "failed" and "lease" in res["error"]
    db.dispose()


def test_concurrent_claims_never_share_a_task(db_url: str) -> None:
    db = Database(db_url)
    n = 40
    _job_with_tasks(db, n)
    claimed: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        mydb = Database(db_url)
        try:
            while True:
                c = repo.claim_task(mydb, name, 60, max_attempts=3)
                if c is None:
                    return
                with lock:
                    claimed.append(c.task_id)
                assert repo.complete_task(mydb, c, {"status": "ok"})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            mydb.dispose()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == n
    db.dispose()


def test_step_claim_is_exclusive_and_waits_for_tasks(db_url: str) -> None:
    db = Database(db_url)
    owner, _ = repo.create_token(db, "a")
    with db.transaction() as s:
        job, _ = create_job(s, owner, SPEC)
        jid = job.id
    st = repo.claim_step(db, "A", 30)
    assert st is not None and st.job_id == jid
    assert repo.claim_step(db, "B", 30) is None  # one step per job at a time
    assert repo.commit_step(db, st, told_iteration=None, stats=None, engine_state=None, records=[],
                            next_iteration=0, candidates=[("k0", {"a": 0}), ("k1", {"a": 1})], finished=False)
    assert repo.claim_step(db, "B", 30) is None  # tasks of iteration 0 are open
    for _ in range(2):
        c = repo.claim_task(db, "W", 30, 3)
        assert c is not None
        assert repo.claim_step(db, "B", 30) is None
        repo.complete_task(db, c, {"config": c.config, "status": "ok", "metrics": {"top1": 1.0}})
    st2 = repo.claim_step(db, "B", 30)
    assert st2 is not None and st2.token == st.token + 1
    # the stale holder A can no longer write
    assert not repo.commit_step(db, st, told_iteration=None, stats=None, engine_state=None, records=[],
                                next_iteration=None, candidates=[], finished=True)
    with db.transaction() as s:
        assert s.get(Job, jid).state == "running"  # type: ignore[union-attr]
    db.dispose()


def test_results_with_nul_and_nan_are_stored(db_url: str) -> None:
    db = Database(db_url)
    _job_with_tasks(db, 1)
    c = repo.claim_task(db, "A", 30, 3)
    assert c is not None
    assert repo.complete_task(db, c, {"status": "failed", "error": "bad\x00byte", "metrics": {"x": float("nan")}})
    with db.transaction() as s:
        t = s.get(EvalTask, c.task_id)
        assert t is not None and t.result == {"status": "failed", "error": "bad\\0byte", "metrics": {"x": None}}
    db.dispose()


def test_every_query_uses_an_index(tmp_path) -> None:
    """EXPLAIN QUERY PLAN of every statement the workers and the API make: no full table scan."""
    from sqlalchemy import event

    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade(url)
    db = Database(url)
    owner, secret = repo.create_token(db, "a")
    jid = _job_with_tasks(db, 3, owner)
    stmts: list[tuple[str, Any]] = []

    def capture(conn, cur, st, params, ctx, many) -> None:  # noqa: ANN001
        if st.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            stmts.append((st, params))

    event.listen(db.engine, "before_cursor_execute", capture)
    repo.claim_step(db, "w", 10)
    c = repo.claim_task(db, "w", 10, 3)
    assert c is not None
    repo.heartbeat_task(db, c, 10)
    repo.complete_task(db, c, {})
    with db.transaction() as s:
        repo.authenticate(s, secret)
        repo.list_jobs(s, owner)
        repo.list_jobs(s, owner, state="running", cursor=repo.encode_cursor(10**6))
        repo.job_summary(s, repo.get_job(s, owner, jid))
        repo.list_archive(s, jid, cursor=repo.encode_cursor(1))
        repo.list_iterations(s, jid)
    with db.transaction() as s:
        repo.cancel_job(s, owner, jid)
    event.remove(db.engine, "before_cursor_execute", capture)
    assert len(stmts) >= 15
    raw = db.engine.raw_connection()
    try:
        for st, params in stmts:
            plan = [r[-1] for r in raw.cursor().execute("EXPLAIN QUERY PLAN " + st, params).fetchall()]
            scans = [p for p in plan if p.startswith("SCAN") and "INDEX" not in p]
            assert not scans, (st, plan)
    finally:
        raw.close()
    db.dispose()


def test_a_poisoned_step_fails_its_job_after_max_attempts_and_others_run(db_url: str) -> None:
    """A step whose workers keep dying (the lease lapses each time) is claimed max_attempts times, then its job
    fails with the reason; the next claim goes to another job. A committed step resets the count."""
    db = Database(db_url)
    owner, _ = repo.create_token(db, "a")
    with db.transaction() as s:
        bad, _ = create_job(s, owner, SPEC)
        good, _ = create_job(s, owner, {**SPEC, "seed": 1})
        bad_id, good_id = bad.id, good.id
    for _ in range(3):  # three workers claim the bad job's step and die (their lease of 0.01 s lapses)
        c = repo.claim_step(db, "W", 0.01, max_attempts=3)
        assert c is not None and c.job_id == bad_id
        time.sleep(0.03)
    c = repo.claim_step(db, "W", 30, max_attempts=3)
    with db.transaction() as s:
        job = s.get(Job, bad_id)
        assert job is not None and job.state == "failed" and "engine step lost 3 times" in (job.error or "")
    c = c or repo.claim_step(db, "W", 30, max_attempts=3)
    assert c is not None and c.job_id == good_id  # the other job keeps running
    assert repo.commit_step(db, c, told_iteration=None, stats=None, engine_state=None, records=[],
                            next_iteration=0, candidates=[("k0", {"a": 0})], finished=False)
    with db.transaction() as s:
        assert s.get(Job, good_id).step_attempts == 0  # type: ignore[union-attr]
    db.dispose()


def test_heartbeat_gives_up_after_the_step_time_limit() -> None:
    from service.worker import _Heartbeat

    renewals: list[float] = []
    with _Heartbeat(lambda: renewals.append(time.monotonic()) or True, lease_seconds=0.15, max_seconds=0.3) as hb:
        time.sleep(0.8)
    assert hb.lost and 1 <= len(renewals) <= 6  # renewed until the limit, then left to lapse


def test_tasks_take_turns_across_users(db_url: str) -> None:
    """One user's many queued evaluations do not starve another's: the next claim goes to the owner with the fewest
    running, ties to the one served least recently (here with one worker: strictly alternating)."""
    db = Database(db_url)
    alice, _ = repo.create_token(db, "alice")
    bob, _ = repo.create_token(db, "bob")
    many = [_job_with_tasks(db, 20, owner=alice) for _ in range(3)]
    one = _job_with_tasks(db, 3, owner=bob)
    owners = []
    for _ in range(6):  # one worker: claim, finish, claim ...
        c = repo.claim_task(db, "W", 30, 3)
        assert c is not None
        owners.append("bob" if c.job_id == one else "alice")
        time.sleep(0.002)  # lease stamps of successive claims differ
        repo.complete_task(db, c, {"config": c.config, "status": "ok", "metrics": {"top1": 1.0}})
    assert owners.count("bob") == 3 and owners.count("alice") == 3, owners
    held = [repo.claim_task(db, f"W{i}", 30, 3) for i in range(2)]  # two workers at once: one each... then alice
    assert {c.job_id for c in held if c} <= set(many)  # bob has nothing left; alice's work goes on
    db.dispose()
