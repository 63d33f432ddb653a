"""The CLI on a mixed batch: bad files are reported with reasons, the good ones written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "dev"


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "tables" in out


@pytest.mark.skipif(not DEV.exists(), reason="shared dev corpus not present")
def test_batch_goes_on_past_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "notpdf.pdf").write_bytes(b"hello, not a pdf")
    (src / "empty.png").write_bytes(b"")
    (src / "trunc.pdf").write_bytes((DEV / "d001.pdf").read_bytes()[:5000])
    shutil.copy(DEV / "d021.pdf", src / "good.pdf")  # born-digital: read from its text layer
    out = tmp_path / "out"
    rc = main(["run", str(src), "--out", str(out), "-q"])
    assert rc != 0
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    reasons = {Path(f["file"]).name: f["reason"] for f in report["failures"]}
    assert set(reasons) == {"notpdf.pdf", "empty.png", "trunc.pdf"}
    assert len(set(reasons.values())) == 3  # distinct, specific reasons
    records = json.loads((out / "good.json").read_text(encoding="utf-8"))
    assert records[0]["source"]["page_kinds"] == {"1": "vector"}
    assert records[0]["fields"]["project_name"]["value"]
    lines = (out / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert not list(out.glob("**/*.tmp"))  # every file written by rename, nothing half-written
    assert "Traceback" not in capsys.readouterr().err
