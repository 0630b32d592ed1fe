"""Reliability with real worker processes on real databases (SQLite always, PostgreSQL when configured), on
jobs of one iteration (the initial design) so that the time goes into claims, leases and evaluations:
kill -9 in the middle of an evaluation, 4 workers x 3 concurrent jobs, graceful SIGTERM, PostgreSQL restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service import repository as repo
from service.db import Database
from service.models import EvalTask, Job
from tests.conftest import ROOT
from tests.service.test_worker import check_exactly_once, oracle_spec, submit

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def start_worker(url: str, *, delay: float, lease: float = 1.5, concurrency: int = 1) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        MSUNAS_LEASE_SECONDS=str(lease),
        MSUNAS_POLL_SECONDS="0.05",
        MSUNAS_WORKER_PLUGINS="tests.service.slow_oracle",
        MSUNAS_TEST_EVAL_DELAY=str(delay),
    )
    return subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--db", url,
                             "--concurrency", str(concurrency)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_jobs(db: Database, ids: list[int], timeout: float) -> dict[int, str]:
    end = time.monotonic() + timeout
    while True:
        with db.transaction() as s:
            states = dict(s.execute(select(Job.id, Job.state).where(Job.id.in_(ids))).all())
        if all(st in ("succeeded", "failed", "cancelled") for st in states.values()) or time.monotonic() > end:
            return states
        time.sleep(0.2)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_kill_9_mid_evaluation(db_url: str, predictor_file: Path) -> None:
    db = Database(db_url)
    jid = submit(db, oracle_spec(predictor_file, n_doe=8, iterations=0))
    victim = start_worker(db_url, delay=0.5)
    other: subprocess.Popen[bytes] | None = None
    try:
        end = time.monotonic() + 60
        task_id = None
        while task_id is None and time.monotonic() < end:  # wait until the victim is inside an evaluation
            with db.transaction() as s:
                task_id = s.execute(select(EvalTask.id).where(
                    EvalTask.state == "running", EvalTask.lease_owner.like(f"%:{victim.pid}:%"))).scalar()
            time.sleep(0.05)
        assert task_id is not None, "the worker never started an evaluation"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        other = start_worker(db_url, delay=0.05)
        states = wait_jobs(db, [jid], 120)
        assert states[jid] == "succeeded"
        check_exactly_once(db, jid, 8)
        with db.transaction() as s:
            t = s.get(EvalTask, task_id)
            assert t is not None and t.n_lost == 1 and t.attempt == 2 and t.n_completions == 1
            assert t.result is not None and t.result["status"] == "ok"
    finally:
        stop([p for p in (victim, other) if p is not None])
        db.dispose()


def test_sigterm_finishes_the_current_evaluation(db_url: str, predictor_file: Path) -> None:
    db = Database(db_url)
    jid = submit(db, oracle_spec(predictor_file, n_doe=4, iterations=0))
    w = start_worker(db_url, delay=1.0)
    try:
        end = time.monotonic() + 60
        task_id = None
        while task_id is None and time.monotonic() < end:
            with db.transaction() as s:
                task_id = s.execute(select(EvalTask.id).where(EvalTask.state == "running")).scalar()
            time.sleep(0.05)
        assert task_id is not None
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=30) == 0
        with db.transaction() as s:
            t = s.get(EvalTask, task_id)
            assert t is not None and t.state == "done" and t.n_completions == 1 and t.n_lost == 0
            assert s.execute(select(func.count()).where(EvalTask.job_id == jid, EvalTask.state == "running")
                             ).scalar_one() == 0
    finally:
        stop([w])
        db.dispose()


def test_heartbeats_keep_a_long_evaluation(db_url: str, predictor_file: Path) -> None:
    db = Database(db_url)
    jid = submit(db, oracle_spec(predictor_file, n_doe=3, iterations=0))
    w = start_worker(db_url, delay=1.2, lease=0.4)  # each evaluation lasts 3 leases: only heartbeats keep it
    try:
        assert wait_jobs(db, [jid], 90)[jid] == "succeeded"
        with db.transaction() as s:
            rows = s.execute(select(EvalTask.n_lost, EvalTask.attempt, EvalTask.n_completions)
                             .where(EvalTask.job_id == jid)).all()
        assert rows and all(r == (0, 1, 1) for r in rows), rows
    finally:
        stop([w])
        db.dispose()


def test_four_workers_three_jobs(db_url: str, predictor_file: Path) -> None:
    db = Database(db_url)
    owner, _ = repo.create_token(db, "t")
    ids = [submit(db, oracle_spec(predictor_file, seed=i, n_doe=16, iterations=0), owner) for i in range(3)]
    procs = [start_worker(db_url, delay=0.02, lease=5.0) for _ in range(4)]
    try:
        states = wait_jobs(db, ids, 180)
        assert all(st == "succeeded" for st in states.values()), states
        for jid in ids:
            check_exactly_once(db, jid, 16)
        with db.transaction() as s:
            owners = s.execute(select(func.count(func.distinct(EvalTask.lease_owner)))).scalar_one()
            lost = s.execute(select(func.sum(EvalTask.n_lost))).scalar_one()
        assert lost == 0  # nobody died, so no lease expired: no evaluation ran twice
    finally:
        stop(procs)
        errs = b"".join(p.stderr.read() for p in procs if p.stderr)
        db.dispose()
    assert b"Traceback" not in errs, errs.decode()[-3000:]
    del owners


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_connections_killed_mid_job(db_url: str, predictor_file: Path) -> None:
    """Every connection of the workers is terminated by the server, three times (what a restart does to clients,
    without disturbing other users of the shared server): the workers reconnect and the job finishes."""
    import psycopg

    db = Database(db_url)
    jid = submit(db, oracle_spec(predictor_file, n_doe=16, iterations=0))
    procs = [start_worker(db_url, delay=0.2, lease=3.0) for _ in range(2)]
    dbname = db_url.rsplit("/", 1)[1]
    admin = os.environ["MSUNAS_TEST_POSTGRES_URL"].replace("+psycopg", "")
    try:
        killed = 0
        for _ in range(3):
            end = time.monotonic() + 60
            while time.monotonic() < end:  # wait until workers are connected and working
                with db.transaction() as s:
                    if s.execute(select(func.count()).where(EvalTask.state == "running")).scalar_one() >= 1:
                        break
                time.sleep(0.05)
            with psycopg.connect(admin, autocommit=True) as conn:
                killed += len(conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()", (dbname,)).fetchall())
            time.sleep(0.5)
        assert killed >= 3
        db.dispose()
        states = wait_jobs_retrying(db, [jid], 150)
        assert states[jid] == "succeeded"
        check_exactly_once(db, jid, 16)
        assert all(p.poll() is None for p in procs), "a worker died when its connections were killed"
    finally:
        stop(procs)
        db.dispose()
    log = b"".join(p.stderr.read() for p in procs if p.stderr).decode(errors="replace")
    if os.environ.get("MSUNAS_TEST_SHOW_LOGS"):
        print(log)
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("MSUNAS_TEST_PG_RESTART_CMD"),
                    reason="set MSUNAS_TEST_PG_RESTART_CMD (e.g. 'pg_ctlcluster --skip-systemctl-redirect 15 main "
                    "restart') to restart the shared PostgreSQL server mid-job")
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_restart_mid_job(db_url: str, predictor_file: Path) -> None:
    db = Database(db_url)
    jid = submit(db, oracle_spec(predictor_file, n_doe=10, n_iter=4, iterations=3))
    procs = [start_worker(db_url, delay=0.3, lease=5.0) for _ in range(2)]
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with db.transaction() as s:
                if s.execute(select(func.count()).where(EvalTask.state == "done")).scalar_one() >= 3:
                    break
            time.sleep(0.1)
        subprocess.run(os.environ["MSUNAS_TEST_PG_RESTART_CMD"], shell=True, check=True, timeout=120)
        db.dispose()
        states = wait_jobs_retrying(db, [jid], 150)
        assert states[jid] == "succeeded"
        check_exactly_once(db, jid, 10 + 3 * 4)
        assert all(p.poll() is None for p in procs), "a worker died with the database restart"
    finally:
        stop(procs)
        db.dispose()


def wait_jobs_retrying(db: Database, ids: list[int], timeout: float) -> dict[int, str]:
    """:func:`wait_jobs` that tolerates the database coming back."""
    from service.db import StorageError

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            return wait_jobs(db, ids, max(1.0, end - time.monotonic()))
        except StorageError:
            time.sleep(0.5)
    return wait_jobs(db, ids, 1)
