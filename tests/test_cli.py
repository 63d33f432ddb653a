"""The CLI on a mixed batch: bad files are reported with reasons, the good ones written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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


@pytest.mark.slow
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


# --- bad input at the command's level: exit status, run_report.json, stderr -------------------
# Run as a subprocess (`scanforms`, as a user runs it), so these hold however `run` is built inside.

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data" / "raw"
SCANFORMS = Path(sys.executable).parent / "scanforms"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _scanforms(*args: str, as_nobody: bool = False, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(SCANFORMS), *args]
    if as_nobody and os.geteuid() == 0:  # root ignores permission bits: drop to nobody for the run
        ok = shutil.which("setpriv") and subprocess.run([*NOBODY, *cmd[:1], "--help"], capture_output=True, cwd="/")
        if not ok or ok.returncode != 0:
            pytest.skip("root, and `nobody` cannot run scanforms here (setpriv missing or checkout private)")
        cmd = NOBODY + cmd
    env = dict(os.environ, HOME=str(home or "/tmp"))
    env.pop("SCANFORMS_OCR_CACHE", None)
    if as_nobody:  # the test session's Prefect home is root's: nobody gets a home of its own
        prefect_home = Path(tempfile.mkdtemp(prefix="scanforms-nobody-prefect-"))
        prefect_home.chmod(0o777)
        env["PREFECT_HOME"] = str(prefect_home)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def _report(out: Path) -> dict:
    return json.loads((out / "run_report.json").read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.skipif(not DEV.exists(), reason="shared dev corpus not present")
def test_encrypted_pdfs(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    src = tmp_path / "in"
    src.mkdir()
    for name, password in [("owner_only.pdf", ""), ("locked.pdf", "secret")]:
        w = PdfWriter(clone_from=str(DEV / "d021.pdf"))
        w.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
        w.write(str(src / name))
    out = tmp_path / "out"
    p = _scanforms("run", str(src), "--out", str(out), "-q")
    assert p.returncode == 2, p.stderr  # an input could not be read
    (fail,) = _report(out)["failures"]
    assert Path(fail["file"]).name == "locked.pdf" and fail["reason"].startswith("encrypted PDF")
    assert "ERROR locked.pdf: encrypted PDF" in p.stderr and "Traceback" not in p.stderr
    # an empty user password (owner password only) opens and is processed like the plain file
    (rec,) = json.loads((out / "owner_only.json").read_text(encoding="utf-8"))
    assert rec["fields"]["project_name"]["value"] == "办公设备购置"


@pytest.mark.slow
def test_output_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    p = _scanforms("run", str(RAW / "d030.pdf"), "--out", str(blocker / "out"), "-q")
    assert p.returncode == 5, p.stderr
    assert "not writable" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_output_folder_not_writable(tmp_path: Path) -> None:
    out = Path(tempfile.mkdtemp(prefix="scanforms-ro-"))
    try:
        out.chmod(0o555)  # for root this alone would not stop it: run as nobody then
        p = _scanforms("run", str(RAW / "d030.pdf"), "--out", str(out), "-q", as_nobody=True)
        assert p.returncode == 5, p.stderr
        assert f"output folder {out} is not writable" in p.stderr and "Traceback" not in p.stderr
        assert list(out.iterdir()) == []  # refused before any work: nothing half-written
    finally:
        out.chmod(0o755)
        shutil.rmtree(out)


@pytest.mark.slow
def test_no_keep_going_stops_at_first_failure(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.pdf").write_bytes(b"")
    (src / "b.pdf").write_bytes(b"<html>not found</html>")
    out = tmp_path / "out"
    p = _scanforms("run", str(src), "--out", str(out), "--no-keep-going", "-q")
    assert p.returncode == 2
    assert [Path(f["file"]).name for f in _report(out)["failures"]] == ["a.pdf"]  # b.pdf never tried


@pytest.mark.slow
@pytest.mark.skipif(not DEV.exists(), reason="shared dev corpus not present")
def test_capped_page_is_processed_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline import ingest

    monkeypatch.setattr(ingest, "MAX_PIXELS", 3_000_000)  # A4 at 300 DPI is 8.7 MP
    out = tmp_path / "out"
    rc = main(["run", str(DEV / "d021.pdf"), "--out", str(out), "--dpi", "300", "-q"])
    assert rc == 0
    (warning,) = _report(out)["warnings"]
    assert Path(warning["file"]).name == "d021.pdf" and warning["page"] == 1
    assert "instead of 300" in warning["reason"] and "capped at 3 MP" in warning["reason"]
    assert "WARNING d021.pdf: page 1" in capsys.readouterr().err
    (rec,) = json.loads((out / "d021.json").read_text(encoding="utf-8"))
    assert rec["fields"]["project_name"]["value"] == "办公设备购置"  # still read, at the lower DPI
    assert rec["source"]["warnings"] == [warning["reason"]]


@pytest.mark.slow
def test_parallel_batch_reports_failures(tmp_path: Path) -> None:
    """With -j 2 the errors come back from worker processes (they must survive pickling)."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.pdf").write_bytes(b"")
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (src / "c.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF\n")
    out = tmp_path / "out"
    p = _scanforms("run", str(src), "--out", str(out), "-j", "2", "-q")
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    got = {Path(f["file"]).name: f["reason"] for f in _report(out)["failures"]}
    assert got == {
        "a.pdf": "empty file (0 bytes)",
        "b.png": "not a readable image (damaged header)",
        "c.pdf": "corrupt or unreadable PDF (PDFium: Data format error)",
    }


def test_progress_counts_each_page_once_however_the_path_is_spelled(tmp_path: Path, monkeypatch) -> None:
    # the flow reports pages under the resolved path and the document's end under the path given
    from pipeline.cli import _ProgressBar

    monkeypatch.chdir(tmp_path)
    bar = _ProgressBar()
    bar.started(total_docs=1, skipped=0, pages_to_do=3)
    for n in (1, 2, 3):
        bar.page_done(Path("a.pdf").resolve(), n)
    bar.doc_done(Path("a.pdf"), {"status": "ok", "pages": 3})
    assert bar.progress.tasks[bar.pages].completed == 3
