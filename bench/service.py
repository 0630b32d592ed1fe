"""Service overhead benchmark: evaluations stored per second with 4 workers (SQLite and PostgreSQL), p50/p99 of
``GET /jobs/{id}`` with 50 concurrent pollers while the workers write, and Optuna's RDB storage on the same kind
of database doing the same number of trials of a trivial objective with 4 processes, in the same run.
Each poller waits 0.5 s between its requests (50 people watching; `msunas watch` polls every second).

The oracle evaluator (the once-for-all ImageNet accuracy predictor of ``../shared/data``, ~1 ms per call) keeps
the evaluation itself cheap, so what is measured is the service's per-evaluation overhead (claim, lease,
heartbeat, result write). Writes ``bench/results/service.json``.

Run: ``PYTHONPATH=. MSUNAS_SHARED_DATA=../shared/data python bench/service.py [--evals 1500] [--no-postgres]``
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_URL = os.environ.get("MSUNAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
N_WORKERS = 4
N_POLLERS = 50
WORKER_NICE = 10  # as `msunas serve --workers N` starts its local workers: the API on the same box keeps priority
POLL_INTERVAL = 0.5  # each poller waits this long between its requests (as `msunas watch` does, at 1 s)


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(sql)


def _fresh_db(backend: str, tmp: Path, tag: str) -> tuple[str, Any]:
    if backend == "sqlite":
        p = tmp / f"{tag}.db"
        p.unlink(missing_ok=True)
        return f"sqlite:///{p}", lambda: None
    name = f"msunas_bench_{tag}_{uuid.uuid4().hex[:6]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    return f"{PG_URL.rsplit('/', 1)[0]}/{name}", lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _poll(url: str, token: str, job_id: int, stop_at: list[float], lat: list[float],
                stop_when_done: bool = True) -> None:
    import gc

    import httpx

    # the load generator's own garbage-collector pauses would be counted as server latency: keep them out
    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 50, 100)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:

        async def one(offset: float) -> None:
            await asyncio.sleep(offset)  # pollers are not synchronised: each starts at a random phase
            while not stop_at or time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                r = await c.get(f"/jobs/{job_id}")
                lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(r.text)
                if stop_when_done and r.json()["state"] in ("succeeded", "failed"):
                    return
                await asyncio.sleep(POLL_INTERVAL)

        rng = random.Random(0)
        await asyncio.gather(*[one(rng.uniform(0, POLL_INTERVAL)) for _ in range(N_POLLERS)])


def bench_service(backend: str, tmp: Path, n_evals: int, predictor: Path, polls: bool) -> dict[str, Any]:
    """4 worker processes evaluate ``n_evals`` candidates of one job; 50 pollers read the job meanwhile."""
    import threading

    from sqlalchemy import func, select

    from search.provenance import describe
    from search.spec import load_spec
    from service import repository as repo
    from service.db import Database, upgrade
    from service.models import EvalTask

    url, drop = _fresh_db(backend, tmp, "svc")
    try:
        upgrade(url)
        db = Database(url)
        owner, token = repo.create_token(db, "bench")
        spec = {"evaluator": {"kind": "oracle", "path": str(predictor)}, "resolution": [160, 224],
                "objectives": ["top1_err", "params"], "n_doe": n_evals, "iterations": 0, "seed": 0}
        job_spec = load_spec(spec)
        with db.transaction() as s:
            job, _ = repo.create_job(s, owner, job_spec, artefact=describe(job_spec))
            jid = job.id
        env = dict(os.environ, PYTHONPATH=str(ROOT), MSUNAS_POLL_SECONDS="0.02", MSUNAS_DB_URL=url)
        port = _free_port()
        server = None
        if polls:
            server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                                      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers = subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--concurrency", str(N_WORKERS),
                                    "--nice", str(WORKER_NICE)],
                                   env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lat: list[float] = []
        idle_lat: list[float] = []
        stop_at: list[float] = []
        poller: threading.Thread | None = None
        try:
            if server is not None:
                import httpx

                for _ in range(300):
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                poller = threading.Thread(target=lambda: asyncio.run(
                    _poll(f"http://127.0.0.1:{port}", token, jid, stop_at, lat)), daemon=True)
                poller.start()
            end = time.monotonic() + 600
            while time.monotonic() < end:
                with db.transaction() as s:
                    st = repo.get_job(s, None, jid).state
                if st in ("succeeded", "failed"):
                    break
                time.sleep(0.2)
            if poller is not None:
                stop_at.append(time.perf_counter())
                poller.join(60)
            workers.terminate()
            workers.wait(60)
            if server is not None:  # baseline: the same pollers with no worker running (5 s)
                idle_stop = [time.perf_counter() + 5.0]
                asyncio.run(_poll(f"http://127.0.0.1:{port}", token, jid, idle_stop, idle_lat, stop_when_done=False))
        finally:
            for p in (workers, server):
                if p is not None and p.poll() is None:
                    p.terminate()
                    p.wait(60)
        with db.transaction() as s:
            first, last, n = s.execute(select(func.min(EvalTask.finished_at), func.max(EvalTask.finished_at),
                                              func.count()).where(EvalTask.job_id == jid,
                                                                  EvalTask.state == "done")).one()
            evals_s = [r.result["seconds"] for r in s.execute(select(EvalTask.result)).all() if r.result]
        db.dispose()
        span = (last - first).total_seconds() if first is not None and last is not None else 0.0
        out: dict[str, Any] = {
            "backend": backend, "evaluations": int(n), "job_state": st,
            "evaluations_per_s": (n - 1) / span if span > 0 else None,
            "mean_evaluator_seconds": sum(evals_s) / max(len(evals_s), 1),
            "overhead_ms_per_evaluation": (span / (n - 1) * N_WORKERS - sum(evals_s) / max(len(evals_s), 1)) * 1e3
            if span > 0 else None,
        }
        for name, xs in (("poll", lat), ("poll_no_workers", idle_lat)):
            if xs:
                xs.sort()
                out[name] = {"pollers": N_POLLERS, "interval_s": POLL_INTERVAL, "requests": len(xs),
                             "p50_ms": xs[len(xs) // 2] * 1e3,
                             "p99_ms": xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1e3}
        return out
    finally:
        drop()


def _optuna_proc(url: str, study: str, n: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.load_study(study_name=study, storage=url)
    st.optimize(lambda t: (t.suggest_float("x", -10, 10) - 2) ** 2, n_trials=n)


def bench_optuna(backend: str, tmp: Path, n_trials: int) -> dict[str, Any]:
    """Optuna RDB storage on the same database kind: 4 processes share ``n_trials`` trivial trials."""
    import optuna

    url, drop = _fresh_db(backend, tmp, "optuna")
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(url)
        optuna.create_study(study_name="bench", storage=storage)
        del storage
        ctx = mp.get_context("spawn")
        per = [n_trials // N_WORKERS + (1 if i < n_trials % N_WORKERS else 0) for i in range(N_WORKERS)]
        procs = [ctx.Process(target=_optuna_proc, args=(url, "bench", k)) for k in per]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        st = optuna.load_study(study_name="bench", storage=url)
        done = [t.datetime_complete for t in st.trials if t.datetime_complete is not None]
        trials = done
        first, last = min(done), max(done)
        span = (last - first).total_seconds()
        return {"backend": backend, "trials": len(trials), "trials_per_s": (len(trials) - 1) / span,
                "overhead_ms_per_trial": span / (len(trials) - 1) * N_WORKERS * 1e3}
    finally:
        drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=1500)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "service.json"))
    args = ap.parse_args()
    shared = Path(os.environ.get("MSUNAS_SHARED_DATA", ROOT.parent / "shared" / "data"))
    predictor = shared / "ofa_imagenet_predictor" / "acc_predictor.npz"
    if not predictor.is_file():
        sys.exit(f"bench/service.py: needs {predictor} (set MSUNAS_SHARED_DATA)")
    import tempfile

    backends = ["sqlite"] + ([] if args.no_postgres else ["postgres"])
    results: dict[str, Any] = {
        "machine": {"host": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "workers": N_WORKERS, "worker_nice": WORKER_NICE, "evaluations": args.evals, "runs": [],
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for b in backends:
            svc = bench_service(b, tmp, args.evals, predictor, polls=True)
            opt = bench_optuna(b, tmp, args.evals)
            run = {"backend": b, "service": svc, "optuna": opt}
            if svc.get("evaluations_per_s") and opt.get("trials_per_s"):
                run["service_over_optuna_throughput"] = svc["evaluations_per_s"] / opt["trials_per_s"]
            results["runs"].append(run)
            print(json.dumps(run, indent=2), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
