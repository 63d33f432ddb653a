"""`scanforms review`: serve the review app, or run the Label Studio export / import.

Kept free of heavy imports: the CLI builds its parser from here on every start.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path

DEFAULT_PORT = 8765


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "reviewer"


def add_parser(sub: argparse._SubParsersAction, default_out: Path) -> None:
    r = sub.add_parser(
        "review",
        help="review low-confidence cells in a local web app",
        description="Serve the review queue of an output folder (keyboard-first web app), "
        "or export it to / import it from Label Studio.",
    )
    r.add_argument("--out", type=Path, default=default_out, help=f"output folder (default: {default_out})")
    r.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    r.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    r.add_argument("--token", help="access token; required (generated if not given) when not on loopback")
    r.add_argument("--reviewer", default=_default_reviewer(), help="name recorded with each decision")
    r.add_argument("--export-labelstudio", type=Path, metavar="TASKS.json",
                   help="write the open queue as Label Studio tasks (and TASKS.xml, the labeling config), then exit")
    r.add_argument("--import-labelstudio", type=Path, metavar="EXPORT.json",
                   help="apply Label Studio's JSON export of those tasks as decisions, then exit")
    r.add_argument("--export-terms", type=Path, metavar="FILE.yaml",
                   help="write the 一级/二级指标 terms reviewers set that models/indicator_terms.yaml lacks, "
                   "in that file's format (a lexicon addition), then exit")
    r.add_argument("--image-prefix", default=None,
                   help="URL prefix of the crops in exported tasks (default: Label Studio local files, "
                   "/data/local-files/?d=, with LOCAL_FILES_DOCUMENT_ROOT = the output folder)")
    r.set_defaults(func=cmd_review)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_review(args: argparse.Namespace) -> int:
    from ..errors import ExitCode
    from .session import ReviewError, ReviewSession

    out: Path = args.out
    if not out.is_dir():
        _say(f"scanforms review: no output folder {out}: run `scanforms run --out {out}` first")
        return ExitCode.bad_args
    if args.export_terms:
        from .terms import write_terms

        try:
            n = write_terms(out, args.export_terms)
        except OSError as e:
            _say(f"scanforms review: {e}")
            return ExitCode.output_file
        _say(f"{n} new term(s) -> {args.export_terms}")
        return ExitCode.ok
    if args.export_labelstudio or args.import_labelstudio:
        from . import labelstudio

        session = ReviewSession(out, args.reviewer)
        try:
            if args.export_labelstudio:
                prefix = args.image_prefix if args.image_prefix is not None else labelstudio.DEFAULT_IMAGE_PREFIX
                n = labelstudio.write_export(session, args.export_labelstudio, prefix)
                _say(f"{n} task(s) -> {args.export_labelstudio} (config {args.export_labelstudio.with_suffix('.xml')})")
            if args.import_labelstudio:
                done, problems = labelstudio.import_results(session, args.import_labelstudio)
                for p in problems:
                    _say(f"  skipped {p}")
                _say(f"{done} decision(s) imported from {args.import_labelstudio}")
                if problems:
                    return ExitCode.input_file
        except (OSError, ValueError, ReviewError) as e:
            _say(f"scanforms review: {e}")
            return ExitCode.input_file
        finally:
            session.close()
        return ExitCode.ok

    import uvicorn

    from .app import create_app, is_loopback

    loopback = is_loopback(args.host)
    token = args.token
    if token is None and not loopback:
        token = secrets.token_urlsafe(18)  # never serve writes to a network without one
    app = create_app(out, reviewer=args.reviewer, token=token, loopback_only=loopback)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/" + (f"?token={token}" if token else "")
    _say(f"scanforms review: {out} -> {url}  (Ctrl+C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return ExitCode.ok
