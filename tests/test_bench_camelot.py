"""The parked camelot route (bench/camelot_grid.py, the `bench` extra) still agrees with the scan route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("camelot", reason="camelot-py is the bench extra: pip install -e '.[bench]'")

from bench.camelot_grid import grids_from_pdf  # noqa: E402

SHARED_DEV_PDF = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dev" / "d001.pdf"


@pytest.mark.skipif(not SHARED_DEV_PDF.exists(), reason="shared dev corpus not present")
def test_camelot_lattice_matches_golden_structure() -> None:
    """The former born-digital route (camelot over the PDF's rules) and the scan route agree."""
    (gold,) = json.loads((Path(__file__).parent / "golden" / "grid" / "d001_p1.json").read_text(encoding="utf-8"))
    (g,) = grids_from_pdf(str(SHARED_DEV_PDF), 1, 200 / 72, 841.89)
    assert sorted([c.row, c.col, c.row_span, c.col_span] for c in g.cells) == sorted(gold["cells"])
    assert all(abs(a - b) <= 3 for a, b in zip(g.col_lines, gold["col_lines"], strict=True))
    assert all(abs(a - b) <= 3 for a, b in zip(g.row_lines, gold["row_lines"], strict=True))
