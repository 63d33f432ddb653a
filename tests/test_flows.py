"""The Prefect flow, for real: `scanforms run` subprocesses on the sample scans.

No mocks: a real Prefect flow (its ephemeral mode, or a real `prefect server
start` for the multi-process cases), real OCR behind the on-disk cache (a copy of
tests/ocr_cache, so a miss never dirties the repo), a real SIGKILL, a real Dask
LocalCluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import new_cache_entries

from pipeline import batch, frames, ingest, process
from pipeline.errors import InputFileError, ScanformsError

pytestmark = pytest.mark.slow  # Prefect flows and servers, Dask clusters, CLI runs in subprocesses

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data" / "raw"
SAMPLES = ["d025.pdf", "d026.pdf", "d028.pdf", "d030.pdf"]  # 1 + 2 + 2 + 1 pages, one form each


@pytest.fixture(scope="session")
def ocr_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    dst = tmp_path_factory.mktemp("ocr") / "cache"
    shutil.copytree(REPO / "tests" / "ocr_cache", dst)
    yield dst
    why = new_cache_entries(dst)  # the runs went through the real engine: slow, and not what we test
    if why:
        pytest.fail(why, pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server (≈7 s to healthy): flows in other processes report to it in ≈1.5 s,
    where each would otherwise start its own temporary server."""
    port = _free_port()
    home = tmp_path_factory.mktemp("prefect-server")
    env = os.environ | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopped as a whole below
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prefect server did not start")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _env(ocr_cache: Path, api_url: str | None) -> dict[str, str]:
    env = os.environ | {"SCANFORMS_OCR_CACHE": str(ocr_cache), "PYTHONPATH": str(REPO)}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _scanforms(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def _inputs(tmp_path: Path, names: list[str]) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        shutil.copy(RAW / n, (src / "sub" if i % 2 else src) / n)  # recursion into subfolders
    return src


def _frame_key(df: pd.DataFrame) -> tuple[dict[str, str], str]:
    """Types and values of a frame, comparable with == (NaN != NaN in a plain dict of lists)."""
    return df.dtypes.astype(str).to_dict(), df.to_json(orient="split", force_ascii=False)


def _combined(out: Path) -> dict[str, object]:
    """Every output of a run except what describes the run itself (time, skipped counts)."""
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    md = (out / "run_report.md").read_text(encoding="utf-8")
    return {
        "per_file": {p.name: p.read_bytes() for p in sorted(out.glob("*.json")) if p.name != "run_report.json"},
        "records.jsonl": (out / "records.jsonl").read_bytes(),
        "csv": {n: (out / f"{n}.csv").read_bytes() for n in ("records", "indicators")},
        "parquet": {n: _frame_key(pd.read_parquet(out / f"{n}.parquet")) for n in ("records", "indicators")},
        "report": {k: v for k, v in report.items() if k not in (*batch.RUN_KEYS, "output_keys")},
        "output_keys": sorted(report["output_keys"].values()),  # by input path: the runs' folders differ
        "report.md": md.split(batch.RUN_SECTION)[0],
    }


@pytest.fixture(scope="module")
def three_files(tmp_path_factory: pytest.TempPathFactory, ocr_cache: Path) -> tuple[Path, Path, str]:
    """The real flow in Prefect's local ephemeral mode (no server configured), 2 documents at once."""
    tmp = tmp_path_factory.mktemp("three")
    src = _inputs(tmp, SAMPLES[:3])
    out = tmp / "out"
    p = _scanforms([str(src), "--out", str(out), "-j", "2"], _env(ocr_cache, None))
    assert p.returncode == 0, p.stderr
    return src, out, p.stderr


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory: pytest.TempPathFactory, ocr_cache: Path, prefect_server: str) -> tuple[Path, Path]:
    """An uninterrupted run over the four samples: what re-runs must end up equal to."""
    tmp = tmp_path_factory.mktemp("whole")
    src = _inputs(tmp, SAMPLES)
    out = tmp / "out"
    p = _scanforms([str(src), "--out", str(out), "-q"], _env(ocr_cache, prefect_server))
    assert p.returncode == 0, p.stderr
    return src, out


def test_flow_on_three_files_ephemeral(three_files: tuple[Path, Path, str]) -> None:
    src, out, stderr = three_files
    assert "documents" in stderr and "pages" in stderr  # the rich progress bars
    lines = (out / "records.jsonl").read_text(encoding="utf-8").splitlines()
    recs = [json.loads(line) for line in lines]
    assert [r["source"]["file"] for r in recs] == SAMPLES[:3]
    assert all(len(r["source"]["sha256"]) == 64 for r in recs)

    df = pd.read_parquet(out / "records.parquet")
    assert len(df) == 3
    assert {"project_name", "project_name_confidence", "fiscal_year", "fiscal_year_confidence"} <= set(df.columns)
    assert df.loc[df.file == "d025.pdf", "project_name"].item() == "健康教育宣传专项"
    assert df.loc[df.file == "d025.pdf", "budget_current_year"].item() == 3209412.66
    ind = pd.read_parquet(out / "indicators.parquet")
    assert len(ind) == sum(len(r["indicators"]) for r in recs)
    assert (ind[ind.file == "d025.pdf"].project_name == "健康教育宣传专项").all()
    assert {"name", "name_confidence", "weight", "score"} <= set(ind.columns)
    assert pd.read_csv(out / "records.csv", encoding="utf-8-sig").shape == df.shape

    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    assert (report["inputs"], report["forms"], report["pages"]) == (3, 3, 5)
    assert report["page_kinds"] == {"image": 5}
    assert report["failures"] == [] and report["processed"] == 3 and report["skipped"] == 0
    assert "| image | 5 |" in (out / "run_report.md").read_text(encoding="utf-8")
    manifest = batch.Manifest(out)
    assert len(manifest.entries) == 3 and all(e["status"] == "ok" for e in manifest.entries.values())


def test_incremental_rerun(
    tmp_path: Path, ocr_cache: Path, prefect_server: str, whole_run: tuple[Path, Path]
) -> None:
    """Unchanged files skipped, new and changed ones processed, removed ones reported; the combined
    outputs equal those of a full run over the same final inputs."""
    env = _env(ocr_cache, prefect_server)
    src = _inputs(tmp_path, SAMPLES)
    out = tmp_path / "out"
    # before: d030.pdf holds other content, d028.pdf is not there yet, extra.pdf is
    d030 = src / "sub" / SAMPLES[3]
    shutil.copy(RAW / SAMPLES[0], d030)
    (src / SAMPLES[2]).rename(src / "extra.pdf")
    assert _scanforms([str(src), "--out", str(out), "-q"], env).returncode == 0
    first = batch.Manifest(out).entries

    shutil.copy(RAW / SAMPLES[3], d030)  # changed
    (src / "extra.pdf").rename(src / SAMPLES[2])  # extra.pdf removed, d028.pdf new
    p = _scanforms([str(src), "--out", str(out), "-q"], env)
    assert p.returncode == 0, p.stderr
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    assert (report["processed"], report["skipped"], report["new"], report["changed"]) == (2, 2, 1, 1)
    assert report["removed"] == [str((src / "extra.pdf").resolve())]
    assert "removed since the last run: 1" in (out / "run_report.md").read_text(encoding="utf-8")
    # the unchanged files were not touched: same manifest lines, same timings
    for name in (SAMPLES[0], "sub/" + SAMPLES[1]):
        kept = str((src / name).resolve())
        assert batch.Manifest(out).entries[kept] == first[kept]
    ours = _combined(out)
    assert ours["per_file"].pop("extra.json")  # kept: a removed input's output is not deleted...
    assert ours == _combined(whole_run[1])  # ...but it is in no combined output
    assert "extra.pdf" not in (out / "records.jsonl").read_text(encoding="utf-8")


def test_sigkill_mid_batch_then_rerun(
    tmp_path: Path, ocr_cache: Path, prefect_server: str, whole_run: tuple[Path, Path]
) -> None:
    """A run killed with SIGKILL after its first document keeps that document; the re-run does the
    rest and ends with outputs identical to an uninterrupted run's."""
    env = _env(ocr_cache, prefect_server)
    src = _inputs(tmp_path, SAMPLES)
    whole, killed = whole_run[1], tmp_path / "killed"

    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", str(src), "--out", str(killed), "-q"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    manifest = killed / batch.MANIFEST_NAME
    deadline = time.monotonic() + 240
    try:
        while not (manifest.exists() and manifest.read_text(encoding="utf-8").strip()):
            assert proc.poll() is None, "run ended before its first document was recorded"
            assert time.monotonic() < deadline, "no document finished in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and anything it started
        proc.wait()
    done_before = len(batch.Manifest(killed).entries)
    assert 1 <= done_before < len(SAMPLES), "the kill must land mid-batch"
    assert not (killed / "records.jsonl").exists()  # combined outputs come only at the end of a run

    p = _scanforms([str(src), "--out", str(killed), "-q"], env)
    assert p.returncode == 0, p.stderr
    report = json.loads((killed / "run_report.json").read_text(encoding="utf-8"))
    assert report["skipped"] == done_before and report["processed"] == len(SAMPLES) - done_before
    assert _combined(killed) == _combined(whole)
    assert len(batch.Manifest(killed).entries) == len(batch.Manifest(whole).entries)
    assert not list(killed.glob("**/*.tmp"))


def test_dask_local_cluster_two_workers(
    tmp_path: Path, ocr_cache: Path, prefect_server: str, three_files: tuple[Path, Path, str]
) -> None:
    """The same flow on a Dask LocalCluster of 2 worker processes (prefect-dask's DaskTaskRunner)."""
    env = _env(ocr_cache, prefect_server)
    src, ref, _ = three_files
    out = tmp_path / "dask"
    p = _scanforms([str(src), "--out", str(out), "--workers", "2"], env)
    assert p.returncode == 0, p.stderr
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    assert (report["processed"], report["forms"], report["failures"]) == (3, 3, [])
    assert _combined(out) == _combined(ref)
    # the work ran in the workers, not in the CLI's process: their task runs are on the server
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{prefect_server}/task_runs/filter",
            data=json.dumps({"limit": 200}).encode(),
            headers={"Content-Type": "application/json"},
        ),
        timeout=10,
    ) as r:
        names = [t["name"] for t in json.loads(r.read())]
    assert {"d025.pdf", "d026.pdf", "d028.pdf"} <= set(names)


def test_timeout_and_failures_reported(tmp_path: Path, ocr_cache: Path, prefect_server: str) -> None:
    """A document over its time limit fails with that reason and is retried next run; a broken
    file fails with its own reason and exit code, and is not redone while unchanged."""
    env = _env(ocr_cache, prefect_server)
    src = _inputs(tmp_path, SAMPLES[:1])
    (src / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    out = tmp_path / "out"
    # 0.001 s: over before the first page is read (the deadline is checked after each page's render)
    p = _scanforms([str(src), "--out", str(out), "-q", "--timeout", "0.001"], env)
    assert p.returncode == 15, p.stderr  # other_error (timeout), the worst of the two
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    reasons = {Path(f["file"]).name: f["reason"] for f in report["failures"]}
    assert reasons["d025.pdf"] == "timed out after 0.001 s"
    assert set(reasons) == {"d025.pdf", "broken.pdf"} and "timed out" not in reasons["broken.pdf"]

    p = _scanforms([str(src), "--out", str(out), "-q"], env)
    assert p.returncode == 2, p.stderr  # input_file: the timeout is retried, the broken file fails for good
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    assert (report["processed"], report["skipped"], report["forms"]) == (1, 1, 1)
    ((failure),) = report["failures"]
    assert Path(failure["file"]).name == "broken.pdf" and "timed out" not in failure["reason"]
    # unchanged, it is not redone: a deterministic failure stands, as a finished file does
    plan = batch.plan_run(ingest.find_inputs([src]), out, process.Options())
    assert plan.todo == [] and len(plan.skipped) == 2


# --- the pieces without Prefect ---------------------------------------------------------------


def test_transient_errors_are_told_apart() -> None:
    err = ScanformsError("a.pdf", "internal error: OSError: [Errno 5] Input/output error")
    err.__cause__ = OSError(5, "Input/output error")
    assert batch.is_transient(err)
    err.__cause__ = PermissionError(13, "denied")
    assert not batch.is_transient(err)
    err.__cause__ = ValueError("a bug")
    assert not batch.is_transient(err)
    damaged = InputFileError("b.png", "not a readable image (damaged header)")
    damaged.__cause__ = OSError("cannot identify image file")  # Pillow's decoder error: the bytes are bad
    assert not batch.is_transient(damaged)


def test_manifest_survives_a_torn_line(tmp_path: Path) -> None:
    m = batch.Manifest(tmp_path)
    m.record({"path": "/x/a.pdf", "sha256": "1", "status": "ok"})
    with (tmp_path / batch.MANIFEST_NAME).open("a", encoding="utf-8") as fh:
        fh.write('{"path": "/x/b.pdf", "sha')  # a crash in mid-append
    assert list(batch.Manifest(tmp_path).entries) == ["/x/a.pdf"]


def test_mixed_type_columns_become_strings() -> None:
    recs = [
        {"source": {"file": f"{n}.pdf", "form_index": 0, "pages": [1]}, "fields": {"budget": {"value": v, "confidence": 0.9}}}
        for n, v in (("a", 12.5), ("b", "12,5?"), ("c", None))
    ]
    df = frames.records_frame(recs)
    assert list(df.budget[:2]) == ["12.5", "12,5?"] and pd.isna(df.budget[2])
    assert frames.records_frame(recs[:1]).budget.dtype == "float64"
