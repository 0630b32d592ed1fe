"""One search in-process: the engine, the evaluator and the run folder (what ``msunas search`` does, and the
Python API)::

    from search import run_search
    result = run_search("spec.yaml", "runs/c10")            # or a JobSpec / dict
    result.front, result.hv, result.n_feasible, result.warnings

The run folder is seed-compatible (``search.io``): ``spec.json``, ``artefact.json`` (what the architectures are),
``iter_K.stats`` per iteration, ``iter_K/net_i.subnet`` + ``net_i.stats``, ``failed/``. ``--out`` is never
overwritten silently: a non-empty folder is refused unless it is resumed (``resume``, this spec's run) or
cleared (``overwrite``, and only when it holds nothing but a run's files).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from search.engine import Engine, make_engine
from search.evaluator import EvalResult, Evaluator, get_evaluator
from search.io import iteration_of, read_stats, records_from_stats, run_files, write_iteration
from search.provenance import describe
from search.spec import JobSpec, load_spec
from search.threads import configure_threads
from supernets.errors import InputError


class Progress(Protocol):
    """What a search reports while it runs (the CLI renders it; the Python API may pass ``None``)."""

    def start(self, total: int, done: int) -> None:
        """Before the first iteration: the candidates in all, those already evaluated (resume)."""

    def phase(self, iteration: int, iterations: int, what: str) -> None:
        """An iteration enters a phase: ``proposing`` or ``evaluating``."""

    def evaluated(self, result: EvalResult) -> None:
        """One candidate was evaluated."""

    def iteration_done(self, stats: Mapping[str, Any], front: Sequence[Mapping[str, Any]]) -> None:
        """An iteration was told to the engine and written."""


@dataclass
class SearchResult:
    """The outcome of :func:`run_search`."""

    out: Path
    archive: list[dict[str, Any]]
    front: list[dict[str, Any]]
    hv: float
    history: list[dict[str, Any]]
    n_feasible: int
    stop_reason: str | None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (what ``msunas search`` prints)."""
        return {"out": str(self.out), "n_archive": len(self.archive), "n_front": len(self.front), "hv": self.hv,
                "n_feasible": self.n_feasible, "stop_reason": self.stop_reason, "warnings": self.warnings}


def _as_spec(spec: JobSpec | Mapping[str, Any] | str | Path) -> JobSpec:
    return spec if isinstance(spec, JobSpec) else load_spec(dict(spec) if isinstance(spec, Mapping) else spec)


def prepare_out(out: Path, spec: JobSpec, *, resume: str | Path | None, overwrite: bool) -> None:
    """Refuse to write into a folder that holds something else (see the module docstring); with ``overwrite``,
    clear a run folder; with ``resume``, drop nothing silently: later iterations need ``overwrite``."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError("--out", f"{out} exists and is not a folder")
    entries = list(out.iterdir())
    if not entries:
        return
    ours, foreign = run_files(out)
    same_spec = (out / "spec.json").is_file() and _same_spec(out / "spec.json", spec)
    if resume is not None:
        k = iteration_of(resume)
        later = sorted(iteration_of(p) for p in out.glob("iter_*.stats") if iteration_of(p) > k)
        if later and Path(resume).resolve().parent == out.resolve():
            if not overwrite:
                raise InputError("--resume", f"{out} holds iterations after {k} (up to {later[-1]})",
                                 hint=f"pass --overwrite to replace them, or resume from iter_{later[-1]}.stats")
            for j in later:
                _remove(out / f"iter_{j}.stats")
                _remove(out / f"iter_{j}")
        return
    if overwrite:
        if foreign:
            raise InputError("--out", f"{out} holds files that are not part of a run (e.g. {foreign[0].name}); "
                             "--overwrite clears run folders only", hint="choose another folder")
        for p in ours:
            _remove(p)
        return
    if same_spec:
        last = max((iteration_of(p) for p in out.glob("iter_*.stats")), default=None)
        hint = (f"pass --resume {out / f'iter_{last}.stats'} to continue it" if last is not None else "") + \
            (" or " if last is not None else "") + "--overwrite to clear it"
        raise InputError("--out", f"{out} already holds a run of this spec", hint=hint)
    raise InputError("--out", f"{out} is not empty and does not hold a run of this spec",
                     hint="choose another folder, or pass --overwrite to clear a run folder")


def _same_spec(path: Path, spec: JobSpec) -> bool:
    try:
        return load_spec(json.loads(path.read_text())) == spec
    except (ValueError, OSError):
        return False


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def load_engine(spec: JobSpec, resume: str | Path | None = None, warm_start: str | Path | None = None) -> Engine:
    """The job's engine, fresh, resumed exactly from one of our ``iter_K.stats`` (``resume``), or started from a
    foreign archive such as a CNAS ``iter_K.stats`` (``warm_start``: its configs re-scored for this spec)."""
    eng = make_engine(spec)
    if resume is not None:
        doc = read_stats(resume)
        if not isinstance(doc.get("engine"), dict):
            raise InputError("--resume", f"{doc['_path']} holds no engine state (not an msunas run)",
                             hint="start from a foreign archive with --warm-start instead")
        eng.load_state_dict(doc["engine"])
    elif warm_start is not None:
        doc = read_stats(warm_start)
        rows = [{"config": r["config"], "metrics": r["metrics"]} for r in records_from_stats(doc)]
        eng.load_archive(rows, iteration_of(doc["_path"]))
    return eng


def n_feasible(archive: Sequence[Mapping[str, Any]]) -> int:
    """Successful architectures that meet every constraint."""
    return sum(1 for r in archive if r.get("status") == "ok" and r.get("feasible") is not False)


def run_search(
    spec: JobSpec | Mapping[str, Any] | str | Path,
    out: str | Path,
    *,
    resume: str | Path | None = None,
    warm_start: str | Path | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    evaluator: Evaluator | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Run a whole search in-process and write its run folder; see the module docstring.

    ``threads``: torch and BLAS threads (None: :func:`search.threads.configure_threads` picks them);
    ``evaluator``: use this one instead of the spec's (tests, notebooks)."""
    job = _as_spec(spec)
    out = Path(out)
    if resume is not None and warm_start is not None:
        raise InputError("--warm-start", "give either --resume (our own run) or --warm-start (a foreign archive)")
    prepare_out(out, job, resume=resume, overwrite=overwrite)
    eng = load_engine(job, resume, warm_start)
    artefact = describe(job)
    configure_threads(threads, job)
    ev = evaluator if evaluator is not None else get_evaluator(job)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(job.model_dump(mode="json"), indent=1))
    (out / "artefact.json").write_text(json.dumps(artefact, indent=1))
    if progress is not None:
        progress.start(job.n_doe + job.iterations * job.n_iter, len(eng.archive))
    while eng.has_next():
        k = eng.iteration
        if progress is not None:
            progress.phase(k, job.iterations, "proposing")
        cands = eng.ask()
        if progress is not None:
            progress.phase(k, job.iterations, "evaluating")
        results = []
        for c in cands:
            results.append(ev.evaluate(c))
            if progress is not None:
                progress.evaluated(results[-1])
        stats = eng.tell(results)
        write_iteration(out, eng, stats, results, artefact)
        if progress is not None:
            progress.iteration_done(stats, eng.front())
    res = eng.result()
    feasible = n_feasible(res["archive"])
    warnings = []
    if res["archive"] and not feasible:
        if job.constraints:
            limits = ", ".join(f"{k} <= {v:g}" for k, v in job.constraints.items())
            warnings.append(f"no feasible architecture: none of the {len(res['archive'])} evaluated meets the "
                            f"constraints ({limits})")
        else:
            warnings.append(f"no architecture was evaluated successfully (all {len(res['archive'])} failed)")
    return SearchResult(out, res["archive"], res["front"], float(res["hv"]), res["history"], feasible,
                        res.get("stop_reason"), warnings)
