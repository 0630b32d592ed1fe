"""``msunas predictor contributions``: partial tables, --resume, refusal of an existing --out, what a table says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_cli_contributions_resume_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli import main

    out = tmp_path / "c.json"
    args = ["predictor", "contributions", "--random-init", "--out", str(out), "--resolution", "32", "32",
            "--bn-calib-images", "32", "--vld-size", "64", "--no-progress"]
    main([*args, "--limit", "2"])
    assert "2 of 171 measured, partial" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    main([*args, "--limit", "1", "--resume"])
    t = json.loads(out.read_text())
    assert len(t["measured"]) == 3 and t["artefact"]["supernet_id"] == "random-init(seed=0)"
    assert t["units"].startswith("top-1") and t["artefact"]["dataset"]["name"] == "digits"
    assert all(0.0 <= v <= 100.0 for v in t["measured"].values())
