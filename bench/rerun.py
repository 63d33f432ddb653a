"""Time a first run and a re-run over unchanged inputs; print the ratio.

    python bench/rerun.py [INPUT ...] [--server] [--keep DIR]

Both runs are `scanforms run INPUT --out <temp> -q` subprocesses, timed wall to
wall (interpreter start, imports, Prefect, work, tables, report), with no OCR
cache: the first run does the real work. The re-run finds every file unchanged
in the manifest. In ephemeral mode (no server) it then combines the outputs
without starting Prefect's temporary server; with `--server` a real
`prefect server start` is started first and both runs report to it, so the
re-run is a full flow run that skips every document.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(inputs: list[str], out: Path, env: dict[str, str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", *inputs, "--out", str(out), "-q"],
        env=env, cwd=REPO, capture_output=True, text=True,
    )
    dt = time.perf_counter() - t0
    if p.returncode not in (0, 2, 3):
        sys.exit(f"scanforms run failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return dt, json.loads((out / "run_report.json").read_text(encoding="utf-8"))


def _start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    sys.exit("prefect server did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", default=[str(REPO / "data" / "raw")])
    ap.add_argument("--server", action="store_true", help="run against a real Prefect server")
    ap.add_argument("--keep", type=Path, help="write outputs here instead of a temp folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="scanforms-rerun-"))
    out = args.keep or tmp / "out"
    env = {k: v for k, v in os.environ.items() if k != "SCANFORMS_OCR_CACHE"}
    env |= {"PREFECT_HOME": str(tmp / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    server = None
    try:
        if args.server:
            server, env["PREFECT_API_URL"] = _start_server(env)
        else:
            # migrate the fresh PREFECT_HOME's database first: a one-off, not part of a run
            subprocess.run(
                [sys.executable, "-c", "from prefect import flow\nflow(lambda: None)()"],
                env=env, capture_output=True, check=True,
            )
        first, r1 = _run(args.inputs, out, env)
        again, r2 = _run(args.inputs, out, env)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    mode = "prefect server" if args.server else "ephemeral"
    print(f"inputs: {r1['inputs']} files, {r1['pages']} pages, {r1['forms']} forms ({mode})")
    print(f"first run : {first:7.1f} s wall ({r1['processed']} processed; flow body {r1['seconds']} s)")
    print(f"re-run    : {again:7.1f} s wall ({r2['processed']} processed, {r2['skipped']} skipped; "
          f"flow body {r2['seconds']} s)")
    print(f"ratio     : {again / first:.3f} (re-run / first run)")
    return 0 if r2["processed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
