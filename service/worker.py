"""Workers: claim job steps and evaluation tasks from the database under leases, with heartbeats.

A worker loops: lease a job's engine step if one is due (tell the finished iteration, store the iteration row
with its engine state, propose the next candidates as tasks), else lease an evaluation task (evaluate, store
the result if the lease still holds), else sleep. Any number of workers on any number of machines share one
database; nothing a worker keeps in memory is needed by another (the engine object is cached per job only to
save re-running ``ask()``; a worker without it rebuilds it from the stored engine state).

SIGTERM/SIGINT: the worker finishes the unit it holds, then exits; a second signal releases it (the task goes
back to pending) and exits at once.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from search.engine import make_engine
from search.evaluator import EvalResult, Evaluator, get_evaluator
from search.provenance import check_artefact
from search.threads import configure_threads
from service import repository as repo
from service import trainings as tr
from service.db import Database, StorageError, check_schema
from service.settings import Settings
from service.train_runner import train_claimed
from supernets import get_search_space
from supernets.errors import InputError
from supernets.interrupt import Interrupted, interruptible

log = logging.getLogger("msunas.worker")
TASK_CHECK_SECONDS = 5.0  # how often a running task checks that it still holds its lease (and is not cancelled)


@dataclass
class _CachedEngine:
    engine: Any
    asked_iteration: int
    asked_keys: list[str]


class _Heartbeat:
    """Background thread renewing one lease every ``lease/3`` seconds; ``lost`` turns true when fenced off."""

    def __init__(self, renew: Callable[[], bool], lease_seconds: float, max_seconds: float | None = None) -> None:
        self._renew = renew
        self._period = max(lease_seconds / 3.0, 0.05)
        self._deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self._stop = threading.Event()
        self.lost = False
        self.lost_event = threading.Event()  # set with ``lost``: the running evaluation stops at its next batch
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            if self._deadline is not None and time.monotonic() > self._deadline:
                log.warning("heartbeat: past the time limit; the lease is left to lapse")
                self.lost = True  # the lease lapses: another worker may claim (an attempt is counted)
                self.lost_event.set()
                return
            try:
                if not self._renew():
                    self.lost = True
                    self.lost_event.set()
                    return
            except StorageError as e:  # database briefly away: keep trying until the lease would lapse
                log.warning("heartbeat failed: %s", e)

    def __enter__(self) -> _Heartbeat:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(timeout=5)


class Worker:
    """One worker process's loop (single-threaded; run several processes for concurrency)."""

    def __init__(self, settings: Settings, *, worker_id: str | None = None, check: bool = True) -> None:
        self.settings = settings
        for mod in settings.worker_plugins:  # user modules registering evaluators etc.
            try:
                importlib.import_module(mod)
            except ImportError as e:
                raise InputError("MSUNAS_WORKER_PLUGINS", f"cannot import {mod!r}: {e}") from None
        self.db = Database(settings.db_url)
        if check:
            check_schema(self.db)
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_requested = threading.Event()
        self.abort_requested = threading.Event()
        self._engines: dict[int, _CachedEngine] = {}
        self._evaluators: dict[int, Any] = {}
        self.n_steps = 0
        self.n_tasks = 0

    # --------------------------------------------------------------------------------------------- signals
    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the current unit and exit; a second one: release it and exit."""

        def handler(signum: int, _frame: Any) -> None:
            if self.stop_requested.is_set():
                self.abort_requested.set()
            self.stop_requested.set()
            log.info("worker %s: signal %d, stopping after the current unit", self.id, signum)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # ------------------------------------------------------------------------------------------------ loop
    def run(self, *, max_idle_seconds: float | None = None, max_units: int | None = None) -> None:
        """Work until stopped (or idle for ``max_idle_seconds``, or after ``max_units`` steps+tasks)."""
        idle_since = time.monotonic()
        backoff = self.settings.poll_seconds
        while not self.stop_requested.is_set():
            try:
                did = self.run_once()
                backoff = self.settings.poll_seconds
            except StorageError as e:
                if not e.retryable:
                    raise
                log.warning("worker %s: database unavailable (%s); retrying in %.1fs", self.id, e, backoff)
                self.db.dispose()
                self.stop_requested.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if did:
                idle_since = time.monotonic()
                if max_units is not None and self.n_steps + self.n_tasks >= max_units:
                    return
                continue
            if max_idle_seconds is not None and time.monotonic() - idle_since > max_idle_seconds:
                return
            self.stop_requested.wait(self.settings.poll_seconds)

    def run_once(self) -> bool:
        """Do one unit of work (a step, else a task); ``False`` when there was none."""
        lease = self.settings.lease_seconds
        step = repo.claim_step(self.db, self.id, lease, self.settings.max_attempts)
        if step is not None:
            self.run_step(step)
            self.n_steps += 1
            return True
        task = repo.claim_task(self.db, self.id, lease, self.settings.max_attempts)
        if task is not None:
            self.run_task(task)
            self.n_tasks += 1
            return True
        training = tr.claim_training(self.db, self.id, lease, self.settings.max_attempts)
        if training is not None:
            self.run_training(training)
            self.n_tasks += 1
            return True
        return False

    # -------------------------------------------------------------------------------------------- training
    def run_training(self, claim: tr.TrainingClaim) -> None:
        """Train a leased archived architecture to convergence (epoch checkpoints stored as it goes); a cancelled
        training or a lost lease stops at the next batch, a stopping worker hands it back at the next epoch's end,
        an error fails the training with its reason."""
        lease = self.settings.lease_seconds
        with _Heartbeat(lambda: tr.heartbeat_training(self.db, claim, lease),
                        min(lease, 3 * TASK_CHECK_SECONDS)) as hb:
            try:
                with interruptible(hb.lost_event):
                    done = train_claimed(self.db, claim, stop=self.stop_requested)
            except Interrupted:
                log.info("worker %s: training %d stopped (cancelled or its lease lost)", self.id, claim.training_id)
                return
            except StorageError:
                raise
            except Exception as e:  # noqa: BLE001 - a training that cannot run fails with its reason
                log.error("worker %s: training %d failed\n%s", self.id, claim.training_id,
                          traceback.format_exc(limit=5))
                tr.fail_training(self.db, claim, f"{type(e).__name__}: {e}")
                return
        if done is None:  # stopped at an epoch's end: a stopping worker hands it back (it continues from there)
            if self.stop_requested.is_set() and not hb.lost:
                tr.release_training(self.db, claim)
            return
        if hb.lost or not tr.complete_training(self.db, claim, *done):
            log.warning("worker %s: training %d finished after its lease was lost; result dropped",
                        self.id, claim.training_id)

    # ------------------------------------------------------------------------------------------------ task
    def _evaluator(self, claim: repo.TaskClaim) -> Evaluator:
        ev = self._evaluators.get(claim.job_id)
        if ev is None:
            check_artefact(claim.spec, claim.artefact)
            ev = get_evaluator(claim.spec)
            self._evaluators[claim.job_id] = ev
        return ev

    def run_task(self, claim: repo.TaskClaim) -> None:
        """Evaluate one leased candidate and store the result if the lease still holds."""
        lease = self.settings.lease_seconds
        # renewed at least every TASK_CHECK_SECONDS: a cancelled task's evaluation stops within that (+ one batch)
        with _Heartbeat(lambda: repo.heartbeat_task(self.db, claim, lease), min(lease, 3 * TASK_CHECK_SECONDS)) as hb:
            try:
                with interruptible(hb.lost_event):
                    result = self._evaluator(claim).evaluate(claim.config).to_dict()
            except Interrupted:
                log.info("worker %s: task %d stopped (cancelled or its lease lost)", self.id, claim.task_id)
                return
            except Exception as e:  # noqa: BLE001 - the evaluator could not even be built: a failed candidate
                result = {
                    "config": claim.config,
                    "status": "failed",
                    "metrics": {},
                    "error": f"evaluator: {type(e).__name__}: {e}",
                    "seconds": 0.0,
                }
        if self.abort_requested.is_set():
            repo.release_task(self.db, claim)
            return
        try:
            stored = not hb.lost and repo.complete_task(self.db, claim, result)
        except StorageError as e:
            if e.retryable:
                raise
            # the result itself cannot be stored (e.g. a value the database rejects): record the failure instead
            fail = {"config": claim.config, "status": "failed", "metrics": {},
                    "error": f"result could not be stored: {e}", "seconds": result.get("seconds", 0.0)}
            stored = repo.complete_task(self.db, claim, fail)
        if not stored:
            log.warning("worker %s: lease of task %d (attempt %d) was lost; result dropped",
                        self.id, claim.task_id, claim.attempt)

    # ------------------------------------------------------------------------------------------------ step
    def run_step(self, claim: repo.StepClaim) -> None:
        """Tell the finished iteration to the engine, store it, and propose the next one (one worker per job)."""
        lease = self.settings.lease_seconds
        timeout = self.settings.step_timeout_seconds
        with _Heartbeat(lambda: repo.heartbeat_step(self.db, claim, lease), lease, timeout) as hb:
            try:
                written = self._step(claim)
            except repo.ConflictError as e:
                log.warning("worker %s: step of job %d abandoned: %s", self.id, claim.job_id, e)
                self._engines.pop(claim.job_id, None)
                return
            except StorageError as e:
                self._engines.pop(claim.job_id, None)
                if e.retryable:
                    raise
                # the step's writes are rejected by the database (not a lost connection): retrying would loop
                msg = f"engine step could not be stored: {e}"
                log.error("worker %s: job %d: %s", self.id, claim.job_id, msg)
                repo.fail_job(self.db, claim, msg)
                return
            except Exception as e:  # noqa: BLE001 - an engine error fails the job, with its reason
                self._engines.pop(claim.job_id, None)
                msg = f"engine step failed: {type(e).__name__}: {e}"
                log.error("worker %s: job %d: %s\n%s", self.id, claim.job_id, msg, traceback.format_exc(limit=5))
                repo.fail_job(self.db, claim, msg)  # stored without traceback or server paths (public_error)
                return
        if not written or hb.lost:
            self._engines.pop(claim.job_id, None)

    def _step(self, claim: repo.StepClaim) -> bool:
        inp = repo.load_step_input(self.db, claim)
        spec = inp.spec
        space = get_search_space(spec.search_space, **spec.search_space_kwargs())
        latest = -1 if inp.latest_k is None else inp.latest_k
        need_tell = inp.cur_iteration > latest
        task_keys = [t.key for t in inp.tasks]

        cached = self._engines.pop(claim.job_id, None)
        if need_tell:
            if cached is not None and cached.asked_iteration == inp.cur_iteration and cached.asked_keys == task_keys:
                eng = cached.engine
            else:  # rebuild from the stored state right after the ask (or the last told iteration, and ask again)
                eng = make_engine(spec)
                state = inp.pending_state if inp.pending_state is not None else inp.latest_state
                if state is not None:
                    eng.load_state_dict(state)
                keys = [space.key(c) for c in eng.ask()]  # the pending candidates: no new proposal
                if keys != task_keys:
                    raise RuntimeError(
                        f"iteration {inp.cur_iteration}: the engine rebuilt from iteration {latest} proposes "
                        "other candidates than the stored tasks (non-deterministic engine state)"
                    )
            results = [EvalResult.from_dict(t.result or {"config": t.config, "status": "failed",
                                                         "error": "no result stored"}) for t in inp.tasks]
            stats = dict(eng.tell(results))
            state = eng.state_dict()
            told = inp.cur_iteration
            told_keys = set(task_keys)
            records = [r for r in eng.result()["archive"] if r.get("key") in told_keys]
            if len(records) != len(told_keys):  # the engine keys configs its own way: match by config
                by_key = {space.key(r["config"]): r for r in eng.result()["archive"]}
                records = [dict(by_key[k], key=k) for k in task_keys if k in by_key]
        else:
            eng = make_engine(spec)
            if inp.latest_state is not None:
                eng.load_state_dict(inp.latest_state)
            stats, state, told, records = None, None, None, []

        finished = not eng.has_next()
        candidates: list[tuple[str, dict[str, Any]]] = []
        pending_state = None
        if not finished:
            configs = eng.ask()
            candidates = [(space.key(c), c) for c in configs]
            pending_state = eng.state_dict()
        nxt = inp.cur_iteration + 1
        ok = repo.commit_step(
            self.db,
            claim,
            told_iteration=told,
            stats=stats,
            engine_state=state,
            records=records,
            next_iteration=None if finished else nxt,
            candidates=candidates,
            finished=finished,
            pending_state=pending_state,
        )
        if ok and not finished:
            self._engines[claim.job_id] = _CachedEngine(eng, nxt, [k for k, _ in candidates])
        if ok and finished:
            self._evaluators.pop(claim.job_id, None)
        return ok


def run_worker(settings: Settings, *, worker_id: str | None = None, max_idle_seconds: float | None = None,
               install_signals: bool = True) -> Worker:
    """Entry point of one worker process (``msunas worker``): one evaluation at a time with
    ``settings.worker_threads`` torch threads and single-threaded BLAS (no oversubscription)."""
    configure_threads(settings.worker_threads)
    w = Worker(settings, worker_id=worker_id)
    if install_signals:
        w.install_signal_handlers()
    log.info("worker %s: started on %s", w.id, settings.db_url)
    w.run(max_idle_seconds=max_idle_seconds)
    log.info("worker %s: stopped after %d steps and %d tasks", w.id, w.n_steps, w.n_tasks)
    return w


def _child(settings: Settings, idx: int, max_idle_seconds: float | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_worker(settings, worker_id=f"{socket.gethostname()}:{os.getpid()}:w{idx}", max_idle_seconds=max_idle_seconds)


def run_workers(settings: Settings, concurrency: int, *, max_idle_seconds: float | None = None) -> int:
    """Run ``concurrency`` worker processes and forward SIGTERM/SIGINT to them; returns the worst exit code."""
    if concurrency < 1:
        raise InputError("concurrency", "must be >= 1")
    if concurrency == 1:
        run_worker(settings, max_idle_seconds=max_idle_seconds)
        return 0
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_child, args=(settings, i, max_idle_seconds), daemon=False)
             for i in range(concurrency)]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = 0
    for p in procs:
        p.join()
        rc = max(rc, abs(p.exitcode or 0))
    return rc
