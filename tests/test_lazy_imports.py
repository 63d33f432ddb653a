"""`scanforms --help` must stay instant: the heavy stages are imported inside the commands.

Checked by what is imported (a test that can fail), not by a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["prefect", "cv2", "rapidocr", "onnxruntime", "pandas", "pyarrow", "spacy", "fastapi", "dask", "camelot"]

SCRIPT = """
import json, sys
from pipeline import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
heavy = set(json.loads({heavy!r}))
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))
"""


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["review", "--help"]])
def test_help_imports_no_heavy_module(argv: list[str]) -> None:
    code = SCRIPT.format(heavy=json.dumps(HEAVY))
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == [], f"scanforms {' '.join(argv)} imported {loaded}"
