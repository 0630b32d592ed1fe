"""Parsing of config-valued options (``--config JSON|FILE``) and resolution ranges (``LR:UR``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from supernets.codec import MAX_RESOLUTION, MIN_RESOLUTION, RES_STEP
from supernets.errors import InputError


def load_config_arg(text: str, option: str = "--config") -> Any:
    """Parse a config option: inline JSON, or the path of a JSON file (e.g. a ``net_i.subnet``)."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        source = "inline JSON"
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise InputError(option, f"neither inline JSON nor an existing JSON file: {text!r}")
        try:
            stripped, source = path.read_text(), str(path)
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(option, f"cannot read {path}: {e}") from None
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as e:
        raise InputError(option, f"invalid JSON in {source}: {e.msg} (line {e.lineno}, column {e.colno})") from None


def parse_resolution_range(text: str, option: str = "--resolution") -> tuple[int, int]:
    """``"LR:UR"`` (or one ``"R"``) -> ``(lr, ur)`` on the resolution grid; ``InputError`` naming ``option``."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            lo = hi = int(parts[0])
        elif len(parts) == 2:
            lo, hi = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise InputError(option, f"expected LR:UR (e.g. 192:256), got {text!r}") from None
    if lo < MIN_RESOLUTION or hi < lo or hi > MAX_RESOLUTION or (hi - lo) % RES_STEP:
        raise InputError(option, f"expected LR:UR with {MIN_RESOLUTION} <= LR <= UR <= {MAX_RESOLUTION} and UR - LR "
                         f"a multiple of {RES_STEP}, got {text!r}")
    return lo, hi
