"""Administration on the database itself: ``msunas db upgrade`` and ``msunas token create|list|revoke``."""

from __future__ import annotations

from typing import Annotated

import typer

from service import repository as repo
from service.cli.app import app
from service.cli.common import DbOpt, JsonOpt, echo_json, print_table, settings, stderr
from service.db import Database, SchemaOutdatedError, check_schema, upgrade

db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (administration, on the database).", no_args_is_help=True)
app.add_typer(db_app, name="db", rich_help_panel="Service")
app.add_typer(token_app, name="token", rich_help_panel="Service")


def _database(db: str | None) -> Database:
    d = Database(settings(db_url=db).db_url)
    try:
        check_schema(d)
    except SchemaOutdatedError as e:
        d.dispose()
        raise ValueError(str(e)) from None
    return d


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = None) -> None:
    """Create or migrate the database schema to this version's head revision."""
    url = settings(db_url=db).db_url
    typer.echo(f"database {url} is at revision {upgrade(url)}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="who or what the token is for")] = "default",
    db: DbOpt = None,
) -> None:
    """Create an API token and print it (shown once; only its hash is stored)."""
    d = _database(db)
    try:
        tid, secret = repo.create_token(d, name)
    finally:
        d.dispose()
    typer.echo(secret)
    stderr.print(f"token {tid} ({name}) created; use it as `Authorization: Bearer <token>` or MSUNAS_TOKEN")


@token_app.command("list")
def token_list(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List the tokens (id, name, created, revoked, jobs); secrets are never shown."""
    d = _database(db)
    try:
        rows = repo.list_tokens(d)
    finally:
        d.dispose()
    if as_json:
        echo_json(rows)
    else:
        print_table(rows, ["id", "name", "created_at", "revoked", "n_jobs"], title="tokens")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(min=1, help="token id (from `msunas token list`)")],
    db: DbOpt = None,
) -> None:
    """Revoke a token: requests with it get 401 within a second; its jobs stay."""
    d = _database(db)
    try:
        with d.transaction() as s:
            repo.revoke_token(s, token_id)
    finally:
        d.dispose()
    typer.echo(f"token {token_id} revoked")
