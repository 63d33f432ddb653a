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
