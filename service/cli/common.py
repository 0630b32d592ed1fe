"""What the command modules share: options, the settings, the REST client and the output formats.

Output: a command that prints a table prints JSON instead with ``--json``; ``--csv FILE`` writes CSV (``-`` is
stdout). Progress and notes go to stderr, so stdout stays parseable.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from service.settings import Settings
from supernets.errors import InputError

DbOpt = Annotated[str | None, typer.Option("--db", help="database URL (default: $MSUNAS_DB_URL or sqlite:///msunas.db)")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="server URL (default: $MSUNAS_URL or http://127.0.0.1:8000)")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="bearer token (default: $MSUNAS_TOKEN)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
CsvOpt = Annotated[str | None, typer.Option("--csv", help="also write the rows as CSV to this file (- : stdout)")]
stderr = Console(stderr=True)


class ServiceError(RuntimeError):
    """The server cannot be reached or failed (exit code 1, not an input error)."""


class ApiError(InputError):
    """The server refused the request (4xx): the problem's field and detail (exit code 2)."""


def settings(**overrides: Any) -> Settings:
    """Settings from the environment with the command's options (non-None) on top."""
    return Settings.from_env(**overrides)


class Client:
    """The REST client of the client commands: bearer token, problem+json errors raised as one line."""

    def __init__(self, url: str | None, token: str | None) -> None:
        s = settings(url=url, token=token)
        if not s.token:
            raise InputError("--token", "no token given", hint="pass --token or set MSUNAS_TOKEN (create one with "
                             "`msunas token create`)")
        self.http = httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {s.token}"}, timeout=60.0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; a problem answer becomes :class:`ApiError` (4xx) or :class:`ServiceError` (5xx)."""
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise ServiceError(f"cannot reach the server at {self.http.base_url}: {e}") from None
        if r.status_code < 400:
            return r
        try:
            body = r.json()
            detail, field = str(body.get("detail") or body.get("title")), body.get("field")
        except ValueError:
            detail, field = r.text.strip()[:300], None
        if r.status_code >= 500 or r.status_code == 429:
            raise ServiceError(f"HTTP {r.status_code}: {detail}")
        if field and detail.startswith(f"{field}: "):
            detail = detail[len(field) + 2:]
        raise ApiError(str(field or f"HTTP {r.status_code}"), f"{detail} (HTTP {r.status_code})" if field else detail)

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON body of one request."""
        return self.call(method, path, **kw).json()

    def archive(self, job_id: int, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every archived architecture of a job, following ``next_cursor`` through the pages."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size, **({"cursor": cursor} if cursor else {})}
            page = self.json("GET", f"/jobs/{job_id}/archive", params=params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


def is_job_id(target: str) -> bool:
    """A CLI target that names a job (digits, and no such local path)."""
    return target.isdigit() and not Path(target).exists()


def echo_json(obj: Any) -> None:
    """Print JSON on stdout."""
    typer.echo(json.dumps(obj, indent=2, default=str))


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v) if not isinstance(v, list | dict) else json.dumps(v)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    """Print ``rows`` as a table of ``columns`` on stdout."""
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console().print(table)


def write_csv(rows: Sequence[Mapping[str, Any]], dest: str) -> None:
    """Write ``rows`` as CSV to the file ``dest`` (``-``: stdout)."""
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    if dest == "-":
        w = csv.DictWriter(sys.stdout, fieldnames=cols or ["rank"])
        w.writeheader()
        w.writerows(rows)
        return
    p = Path(dest)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols or ["rank"])
        w.writeheader()
        w.writerows(rows)
