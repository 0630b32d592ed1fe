"""Workers in-process on a real database with the real oracle evaluator and the real engine: a job runs to the
end, every candidate is stored exactly once, and resuming from a stored iteration reproduces the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from service import repository as repo
from service.db import Database
from service.models import Architecture, EvalTask, Iteration
from service.settings import Settings
from service.worker import Worker
from tests.service.conftest import create_job


def oracle_spec(pred: Path, **kw) -> dict:
    """A small real search: the oracle evaluator on a seeded predictor file, a small inner NSGA-II."""
    from search.spec import JobSpec

    spec = {"evaluator": {"kind": "oracle", "path": str(pred)}, "resolution": [160, 224], "objectives":
            ["top1_err", "params"], "predictor": "rbf", "n_doe": 8, "n_iter": 3, "iterations": 1, "seed": 1}
    if "engine" in JobSpec.model_fields:  # keep the engine's inner search small: these tests are about the service
        spec["engine"] = {"pop_size": 8, "n_gen": 3, "cv_folds": 2}
    return {**spec, **kw}


def submit(db: Database, spec: dict, owner: int | None = None) -> int:
    if owner is None:
        owner, _ = repo.create_token(db, "t")
    with db.transaction() as s:
        job, _ = create_job(s, owner, spec)
        return job.id


def check_exactly_once(db: Database, job_id: int, n_expected: int) -> list[tuple[str, object]]:
    with db.transaction() as s:
        rows = s.execute(select(Architecture.key, Architecture.metrics).where(Architecture.job_id == job_id)
                         .order_by(Architecture.id)).all()
        assert len(rows) == n_expected, (len(rows), n_expected)
        assert len({k for k, _ in rows}) == n_expected
        doubles = s.execute(select(func.count()).where(EvalTask.job_id == job_id, EvalTask.n_completions > 1))
        assert doubles.scalar_one() == 0
        open_ = s.execute(select(func.count()).where(EvalTask.job_id == job_id, EvalTask.state != "done"))
        assert open_.scalar_one() == 0
        return [(k, m) for k, m in rows]


def test_job_runs_to_completion(db_url: str, predictor_file: Path) -> None:
    db = Database(db_url)
    jid = submit(db, oracle_spec(predictor_file, iterations=2))
    w = Worker(Settings(db_url=db_url, poll_seconds=0.01))
    w.run(max_idle_seconds=0.5)
    with db.transaction() as s:
        job = repo.get_job(s, None, jid)
        assert job.state == "succeeded", job.error
        summary = repo.job_summary(s, job)
        ks = [it.k for it in repo.list_iterations(s, jid)]
    assert ks == [0, 1, 2]
    assert [h["iteration"] for h in summary["hv_history"]] == [0, 1, 2]
    assert summary["progress"]["n_evaluated"] == 8 + 2 * 3 and summary["best"]["min_f1"]["objectives"][0] > 0
    check_exactly_once(db, jid, 14)
    db.dispose()


def test_resume_from_iteration_reproduces_the_run(db_url: str, predictor_file: Path) -> None:
    db = Database(db_url)
    owner, _ = repo.create_token(db, "t")
    jid = submit(db, oracle_spec(predictor_file, iterations=2), owner)
    settings = Settings(db_url=db_url, poll_seconds=0.01)
    Worker(settings).run(max_idle_seconds=0.5)
    with db.transaction() as s:
        before = [(it.k, it.hv, it.n_archive) for it in repo.list_iterations(s, jid)]
    arch_before = check_exactly_once(db, jid, 8 + 2 * 3)
    with pytest.raises(repo.ConflictError, match="force") as e, db.transaction() as s:
        repo.resume_job(s, owner, jid, 0)  # later iterations are stored: discarding them needs force
    assert e.value.field == "force"
    with db.transaction() as s:
        assert [it.k for it in repo.list_iterations(s, jid)] == [0, 1, 2]  # nothing was lost
        job = repo.resume_job(s, owner, jid, 0, force=True)
        assert job.state == "queued" and job.cur_iteration == 0
    with db.transaction() as s:
        assert [it.k for it in repo.list_iterations(s, jid)] == [0]
        assert s.execute(select(func.count()).where(Architecture.job_id == jid)).scalar_one() == 8
    Worker(settings).run(max_idle_seconds=0.5)  # a fresh worker: nothing in memory, only the stored state
    with db.transaction() as s:
        after = [(it.k, it.hv, it.n_archive) for it in repo.list_iterations(s, jid)]
        assert repo.get_job(s, None, jid).state == "succeeded"
    assert after == before
    assert check_exactly_once(db, jid, 8 + 2 * 3) == arch_before
    db.dispose()


def test_cancel_stops_work(db_url: str, predictor_file: Path) -> None:
    db = Database(db_url)
    owner, _ = repo.create_token(db, "t")
    jid = submit(db, oracle_spec(predictor_file), owner)
    w = Worker(Settings(db_url=db_url, poll_seconds=0.01))
    assert w.run_once()  # the first step: iteration 0's tasks exist now
    with db.transaction() as s:
        repo.cancel_job(s, owner, jid)
    w.run(max_idle_seconds=0.3)
    assert w.n_tasks == 0
    with db.transaction() as s:
        assert repo.get_job(s, None, jid).state == "cancelled"
        assert s.execute(select(func.count()).where(Iteration.job_id == jid)).scalar_one() == 0
    db.dispose()


def test_broken_evaluator_records_failures(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url)
    jid = submit(db, oracle_spec(tmp_path / "missing.npz", iterations=0, n_doe=3))
    Worker(Settings(db_url=db_url, poll_seconds=0.01)).run(max_idle_seconds=0.5)
    with db.transaction() as s:
        job = repo.get_job(s, None, jid)
        archs = repo.all_archive(s, jid)
    # every candidate is in the archive with its failure reason, whatever the engine decides about the job
    assert job.state in ("succeeded", "failed")
    if job.state == "succeeded":
        assert len(archs) == 3 and all(a.status == "failed" and a.error for a in archs)
    else:
        assert job.error
    db.dispose()


def test_cancel_interrupts_the_running_evaluation(db_url: str) -> None:
    """A real supernet evaluation (fine-tuning on digits for many epochs) stops within seconds of the job's
    cancellation, checked between batches; its task stays cancelled and nothing is stored for it."""
    import threading
    import time

    db = Database(db_url)
    owner, _ = repo.create_token(db, "t")
    spec = {"dataset": {"name": "digits"}, "supernet": {"random_init": True}, "resolution": [128, 128],
            "evaluator": {"kind": "supernet", "n_epochs": 500, "batch_size": 16, "bn_calib_images": 32,
                          "num_threads": 1},
            "n_doe": 2, "n_iter": 1, "iterations": 0}
    jid = submit(db, spec, owner)
    w = Worker(Settings(db_url=db_url, poll_seconds=0.01, lease_seconds=3.0))
    assert w.run_once()  # the step: iteration 0's two tasks
    t = threading.Thread(target=w.run_once)  # one task: 500 epochs, minutes without the interruption
    t.start()
    time.sleep(4.0)
    assert t.is_alive()
    with db.transaction() as s:
        repo.cancel_job(s, owner, jid)
    t0 = time.monotonic()
    t.join(timeout=30)
    assert not t.is_alive() and time.monotonic() - t0 < 10.0
    with db.transaction() as s:
        states = s.execute(select(EvalTask.state).where(EvalTask.job_id == jid)).scalars().all()
        assert states and set(states) == {"cancelled"}
        assert s.execute(select(func.count()).where(Architecture.job_id == jid)).scalar_one() == 0
    db.dispose()
