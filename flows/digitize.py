"""The Prefect layer: one flow over an input folder, one task per document.

The work itself is `pipeline.process.run_one` (one file through every stage,
errors returned as data) and `pipeline.batch` (manifest, incremental plan,
end-of-run tables and report); this module only adds orchestration:

- retries for transient errors (I/O, memory), a per-document time limit (checked by the
  pipeline between pages and stages; Prefect's task timeout only as a backstop),
  bounded concurrency (threads locally, or a Dask cluster via prefect-dask);
- with no `PREFECT_API_URL` Prefect runs in its local ephemeral mode (a
  temporary server, nothing to start); with it set, runs report to that server;
- `python -m flows.digitize serve` keeps a deployment polling data/raw on an interval.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import queue
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline import batch, ingest, process
from pipeline.options import Options


class _DropThreadTimeoutWarning(logging.Filter):
    """Prefect warns on every task with a timeout in a worker thread that the timeout waits for a
    blocking call to return. Ours are short C calls (one OCR batch, one OpenCV op) between
    Python steps, so the timeout does land within a second or so: the warning is noise per document."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout of %s seconds configured for this task")


logging.getLogger("prefect.task_runs").addFilter(_DropThreadTimeoutWarning())

DEFAULT_TIMEOUT_S = 900.0  # a heavy 10-page scan takes ~40 s here; 15 min means stuck, not slow


def backstop_s(limit_s: float) -> float:
    """Prefect's own task timeout, for a stage that never returns to a deadline check. Well past
    the limit: its injected exception can land anywhere, Prefect's task start-up included (where
    at --timeout 0.001 it hung a CI run), so it must never be the usual way a document times out."""
    return 2 * limit_s + 60.0


DEFAULT_RETRIES = 2

# Progress hooks for the CLI's bar. A module global rather than a flow parameter: parameters
# are recorded by the Prefect server and must be JSON, a listener object is not. Dask workers
# live in other processes and never see it; the flow reports their pages when a document ends.
_LISTENER: batch.RunListener | None = None


class TransientDocumentError(Exception):
    """Raised inside the task so Prefect retries it; every other failure comes back as data."""


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass on a second try: a timed-out or broken document would fail again."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, TransientDocumentError)


def _listener() -> batch.RunListener | None:
    """The flow and the task reach the listener only through this function. Dask pickles the
    task's and the flow's functions by value (the module's names hold Prefect objects, not the
    functions), with every global they name; a live progress bar does not pickle, while a
    module-level function is pickled by reference."""
    return _LISTENER


def _page_hook(path: Path) -> Callable[[int], None] | None:
    """The listener's per-page callback, in the flow's process only (None in Dask workers)."""
    listener = _listener()
    return (lambda n: listener.page_done(path, n)) if listener is not None else None


@task(
    name="digitize-document",
    task_run_name="{path.name}",
    retries=DEFAULT_RETRIES,
    retry_delay_seconds=2,
    retry_condition_fn=_retry_transient,
    timeout_seconds=backstop_s(DEFAULT_TIMEOUT_S),
    # our manifest is the cache (keyed by content hash + pipeline version); Prefect's own
    # input-hash cache would need persisted results and would hash the options object
    cache_policy=NO_CACHE,
)
def digitize_document(
    path: Path, sha256: str, out_dir: Path, opts: Options, version: str, output_key: str, limit_s: float
) -> dict[str, Any]:
    """One document: process + export (pipeline.process.run_one) under its output key within
    `limit_s` seconds from its start (time queued for a worker does not count); returns its
    manifest entry."""
    deadline = process.Deadline.after(limit_s)
    if opts.ocr_threads:
        process.init_worker(opts.ocr_threads)  # OpenCV threads: this worker's share of the cores
    outcome = process.run_one(
        path, out_dir, opts, on_page=_page_hook(path), output_key=output_key, deadline=deadline
    )
    if outcome.error is not None and batch.is_transient(outcome.error):
        raise TransientDocumentError(str(outcome.error))
    return batch.entry_for(path, sha256, version, outcome, out_dir, output_key)


@flow(name="digitize", task_runner=ThreadPoolTaskRunner(max_workers=1))
def digitize(
    inputs: list[str],
    out: str = "data/clean",
    opts: Options = Options(),  # frozen: a shared default is safe
    timeout_s: float = DEFAULT_TIMEOUT_S,
    force: bool = False,
    max_in_flight: int = 1,
    keep_going: bool = True,
) -> dict[str, Any]:
    """Digitize every pdf/png/jpg/tif under `inputs` into `out`, redoing only new or changed files."""
    log = get_run_logger()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ingest.find_inputs([Path(p) for p in inputs])
    plan = batch.plan_run(files, out_dir, opts, force=force)
    batch.record_plan(out_dir, plan)
    run = batch.RunInfo.of(plan)
    log.info(
        "%d input(s): %d to process, %d unchanged (skipped), %d removed since the last run, "
        "%d with the same bytes as another (not processed)",
        len(files), len(plan.todo), len(plan.skipped), len(plan.removed), len(plan.duplicates),
    )
    listener = _listener()
    if listener is not None:
        listener.started(len(files), len(plan.skipped) + len(plan.duplicates),
                         sum(ingest.count_pages(p) for p, _ in plan.todo))
    manifest = batch.Manifest(out_dir)
    doc_task = digitize_document.with_options(timeout_seconds=backstop_s(timeout_s))
    # A bounded window of submitted documents: memory stays flat on a 10,000-file archive,
    # and --no-keep-going can stop submitting after the first failure.
    done: queue.Queue[Any] = queue.Queue()
    todo = deque(plan.todo)
    in_flight: dict[Any, tuple[Path, str, float]] = {}
    stop = False

    def submit_next() -> None:
        path, sha = todo.popleft()
        # absolute paths: a Dask worker's working directory is not ours
        fut = doc_task.submit(
            path.resolve(), sha, out_dir.resolve(), opts, plan.version, plan.keys[path], timeout_s
        )
        in_flight[fut] = (path, sha, time.monotonic())
        fut.add_done_callback(done.put)

    while todo and len(in_flight) < max(1, max_in_flight):
        submit_next()
    while in_flight:
        fut = done.get()
        path, sha, t_submit = in_flight.pop(fut)
        try:
            fut.wait()  # the callback fires with the thread's result; wait() turns it into the final state
            result = fut.state.result(raise_on_failure=False)
        except Exception as e:
            # Prefect can fail a task whose backstop ran out while it was still starting ("generator
            # didn't yield"): that document failed, the run goes on to its report
            late = time.monotonic() - t_submit >= backstop_s(timeout_s)
            result = TimeoutError() if late else e
        if isinstance(result, BaseException):  # the backstop fired, or a transient error outlived its retries
            reason = f"timed out after {timeout_s:g} s" if isinstance(result, TimeoutError) else str(result)
            entry = batch.failed_entry(path, sha, plan.version, reason, plan.keys[path])
        else:
            entry = result
        manifest.record(entry)  # from here on this document survives a crash of the rest of the run
        run.processed += 1
        if entry["status"] != "ok":
            log.warning("%s failed: %s", path.name, (entry["error"] or {}).get("reason"))
            stop = stop or not keep_going
        if listener is not None:
            listener.doc_done(path, entry)
        if todo and not stop:
            submit_next()
    if stop and todo:
        log.warning("stopped after a failure (keep_going off): %d document(s) not started", len(todo))
    batch.write_derived(out_dir, plan, opts, manifest)
    report = batch.finish_run(out_dir, files, run)
    _publish_report(report)
    return report


def _publish_report(report: dict[str, Any]) -> None:
    """The run report as a Markdown artifact: readable in the Prefect UI next to the flow run."""
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=batch.report_markdown(report), key="run-report")
    except Exception as e:  # the report files are written; a UI nicety must not fail the run
        get_run_logger().warning("run report artifact not created: %s", e)


def _api_url() -> str | None:
    """The Prefect server runs report to (env or profile); None means ephemeral mode."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL") or None


def _share_ephemeral_server() -> None:
    """Dask workers are other processes: without an API URL each would start its own temporary
    Prefect server (~6 s each, 30 s for a small run). Start the ephemeral server here, once,
    and hand its URL to the workers through the environment they inherit."""
    if _api_url():
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the same singleton this process's client will use
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url


def run_digitize(
    inputs: list[Path],
    out: Path,
    opts: Options = Options(),
    *,
    jobs: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    force: bool = False,
    dask_address: str | None = None,
    workers: int | None = None,
    keep_going: bool = True,
    listener: batch.RunListener | None = None,
) -> dict[str, Any]:
    """Run the flow with the right task runner; what `scanforms run` calls with its Options."""
    global _LISTENER
    if not force and not _api_url():
        # Nothing new and no server to report to: the temporary server (6 s on an idle machine,
        # 25 s on a busy one) would only record a run that does nothing; combine and return.
        plan = batch.plan_run(inputs, out, opts)
        if not plan.todo:
            batch.write_derived(out, plan, opts, batch.Manifest(out))
            if listener is not None:
                listener.started(len(inputs), len(plan.skipped) + len(plan.duplicates), 0)
            batch.record_plan(out, plan)
            return batch.finish_run(out, inputs, batch.RunInfo.of(plan))
    window = max(1, jobs)
    if dask_address or workers:
        from prefect_dask import DaskTaskRunner

        _share_ephemeral_server()
        if dask_address:
            runner: Any = DaskTaskRunner(address=dask_address)
            window = max(window, 64)  # the scheduler spreads them; we don't know the cluster's size
        else:
            n = max(1, int(workers or 1))
            # one document per worker process; ONNX threads split the cores among them (the
            # workers' share of the same options, unless threads were asked for)
            if opts.ocr_threads is None:
                opts = dataclasses.replace(opts, ocr_threads=max(1, (os.cpu_count() or 1) // n))
            window = 2 * n  # one running and one queued per worker keeps them all busy
            runner = DaskTaskRunner(
                cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"}
            )
    else:
        # threads share one OCR engine (its calls are serialised, each using every core), so
        # `jobs` overlaps rendering/grid work with OCR without oversubscribing the cores
        runner = ThreadPoolTaskRunner(max_workers=max(1, jobs))
    _LISTENER = listener
    try:
        return digitize.with_options(task_runner=runner)(
            inputs=[str(p) for p in inputs],
            out=str(out),
            opts=opts,
            timeout_s=timeout_s,
            force=force,
            max_in_flight=window,
            keep_going=keep_going,
        )
    finally:
        _LISTENER = None


def serve(inputs: list[str], out: str, interval_s: int, name: str = "scan-inbox") -> None:
    """A deployment that re-runs the flow on an interval: each run picks up only new/changed scans."""
    digitize.serve(name=name, interval=interval_s, parameters={"inputs": inputs, "out": out})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flows.digitize", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve a deployment that digitizes new scans on an interval")
    s.add_argument("inputs", nargs="*", default=["data/raw"], help="folders to watch (default: data/raw)")
    s.add_argument("--out", default="data/clean", help="output folder (default: data/clean)")
    s.add_argument("--interval", type=int, default=300, help="seconds between runs (default: 300)")
    s.add_argument("--name", default="scan-inbox", help="deployment name (default: scan-inbox)")
    args = p.parse_args(argv)
    serve(args.inputs, args.out, args.interval, args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

