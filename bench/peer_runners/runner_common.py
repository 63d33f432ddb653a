"""What every peer runner shares (they run as scripts in their own venvs, next to this file)."""

from __future__ import annotations

import json
import resource
import sys
from typing import Any


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (tesseract runs as a child):
    steadier than wall time on a shared machine."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def read_job() -> tuple[dict[str, Any], str]:
    """(the job read from argv[1], the output path argv[2])."""
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as fh:
        return json.load(fh), dst


def write_result(
    dst: str, engine: str, load_s: float, warmup_s: float, pages: list[dict[str, Any]], **extra: Any
) -> None:
    """OUT.json as bench/peers.py reads it: engine, load and warm-up seconds, pages (and extras)."""
    out = {"engine": engine, "load_s": round(load_s, 3), "warmup_s": round(warmup_s, 3), **extra, "pages": pages}
    with open(dst, "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False)
