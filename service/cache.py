"""In-memory caches of the API process: known tokens, and job summaries served stale-while-revalidate."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from service import repository as repo
from service.db import Database


class TokenCache:
    """Known tokens for ``ttl`` seconds (revocation takes effect within ``ttl``), one database check per token
    at a time (single-flight), so many concurrent requests with one token cost one lookup."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[int, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _hit(self, secret: str) -> int | None:
        hit = self._known.get(secret)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    async def owner(self, db: Database, secret: str) -> int | None:
        """Token id of ``secret`` (``None`` when unknown or revoked)."""
        tid = self._hit(secret)
        if tid is not None:
            return tid

        def check() -> int | None:
            with db.transaction() as s:
                return repo.authenticate(s, secret)

        async with self._locks.setdefault(secret, asyncio.Lock()):
            tid = self._hit(secret)
            if tid is None:
                tid = await run_in_threadpool(check)
                if tid is not None and self.ttl > 0:
                    if len(self._known) > 10_000:
                        self._known.clear()
                    self._known[secret] = (tid, time.monotonic() + self.ttl)
        if len(self._locks) > 10_000:
            self._locks.clear()
        return tid

    def forget(self, token_id: int) -> None:
        """Drop a token at once (it was revoked through this server)."""
        self._known = {k: v for k, v in self._known.items() if v[0] != token_id}


class SummaryCache:
    """``GET /jobs/{id}`` answers from memory: an entry older than ``fresh`` seconds is refreshed by one
    background database read while pollers keep getting the previous answer, so many pollers of one job cost
    one read per interval and never wait for the database (only a job's first request does, or any request
    once the answer is ``stale_max`` seconds past due, as when the database is down)."""

    def __init__(self, fresh: float = 0.25, stale_max: float = 1.0) -> None:
        self.fresh, self.stale_max = fresh, stale_max
        self._entries: dict[tuple[int, int], tuple[float, bytes]] = {}
        self._refreshing: dict[tuple[int, int], asyncio.Task[tuple[float, bytes]]] = {}

    async def get(self, owner: int, job_id: int, load: Callable[[int, int], bytes]) -> bytes:
        """The JSON body of the summary of ``job_id`` for ``owner``; ``load(owner, job_id)`` reads it."""
        key = (owner, job_id)
        hit, now = self._entries.get(key), time.monotonic()
        if hit is None or hit[0] + self.stale_max <= now:  # none, or too old to show: wait for it
            return (await self._refresh(key, load))[1]
        if hit[0] <= now and key not in self._refreshing:
            task = self._refreshing[key] = asyncio.create_task(self._refresh(key, load))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # errors surface to the next waiter
        return hit[1]

    async def _refresh(self, key: tuple[int, int], load: Callable[[int, int], bytes]) -> tuple[float, bytes]:
        try:
            body = await run_in_threadpool(load, *key)
        except repo.NotFoundError:
            self._entries.pop(key, None)  # the job is gone (or not the caller's): 404 from now on
            raise
        finally:
            self._refreshing.pop(key, None)
        if len(self._entries) > 10_000:
            self._entries.clear()
        entry = (time.monotonic() + self.fresh, body)
        self._entries[key] = entry
        return entry

    def invalidate(self, job_id: int) -> None:
        """Forget a job's entries (after a write through this server)."""
        for key in [k for k in self._entries if k[1] == job_id]:
            self._entries.pop(key, None)


def summary_loader(db: Database) -> Callable[[int, int], bytes]:
    """``load(owner, job_id)`` for :class:`SummaryCache`: the job summary as compact JSON bytes."""

    def load(owner: int, job_id: int) -> bytes:
        with db.transaction() as s:
            summary = repo.job_summary(s, repo.get_job(s, owner, job_id))
        return json.dumps(summary, separators=(",", ":")).encode()

    return load
