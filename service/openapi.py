"""The OpenAPI document of the REST API, written to a file: ``python -m service.openapi [--out PATH] [--check]``
(also ``msunas openapi``). ``docs/openapi.json`` is this document, checked in; the suite fails when it is stale."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from service.app import create_app
from service.settings import Settings

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The document the app serves at ``/openapi.json`` (built without a database: nothing is opened)."""
    with tempfile.TemporaryDirectory(prefix="msunas-openapi-") as d:
        app = create_app(Settings(db_url=f"sqlite:///{Path(d) / 'unused.db'}"), require_schema=False)
        try:
            return app.openapi()
        finally:
            app.state.db.dispose()


def render() -> str:
    """The document as the checked-in file holds it (sorted keys, 2-space indent, final newline)."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(out: Path, *, check: bool = False) -> bool:
    """Write the document to ``out`` (``check``: only compare); True when ``out`` was already up to date."""
    text = render()
    current = out.read_text() if out.exists() else None
    if not check and current != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return current == text


def main(argv: list[str] | None = None) -> int:
    """``python -m service.openapi``: 0 when written (or, with --check, up to date), 1 when --check finds it stale."""
    ap = argparse.ArgumentParser(prog="python -m service.openapi", description=__doc__)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="file to write (default: docs/openapi.json)")
    ap.add_argument("--check", action="store_true", help="only check that the file is up to date")
    a = ap.parse_args(argv)
    same = write(a.out, check=a.check)
    if a.check and not same:
        print(f"{a.out} is stale: run `python -m service.openapi --out {a.out}`", file=sys.stderr)
        return 1
    print(f"{a.out}: {'up to date' if same else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
