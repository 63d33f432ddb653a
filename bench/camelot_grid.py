"""camelot's lattice as a grid finder for born-digital pages: the pipeline's former vector route.

Parked here for the benchmarks (bench/vector.py's `camelot` variant, and the test that it and
the scan route agree on a dev page): the pipeline reads a born-digital page's rules from its
vector graphics (pipeline/vector.py), ~100x cheaper. camelot-py is the `bench` extra
(`pip install -e ".[bench]"`), not a runtime dependency.
"""

from __future__ import annotations

from pipeline.types import Cell, Grid


def grids_from_pdf(path: str, page_no: int, scale: float, page_height_pt: float) -> list[Grid]:
    """Tables of a born-digital PDF page found by camelot (lattice), in render pixels.

    camelot reports each lattice cell with flags for the four edges it found;
    cells joined by a missing edge are one merged cell. Returns [] when camelot
    finds no table (the caller then reads the rendered page like a scan).
    """
    import warnings

    import camelot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no tables found" and font warnings are not errors here
        tables = camelot.read_pdf(str(path), pages=str(page_no), flavor="lattice", suppress_stdout=True)
    grids = []
    for t in tables:
        g = _grid_from_camelot(t, scale, page_height_pt)
        if g is not None:
            grids.append(g)
    grids.sort(key=lambda g: g.row_lines[0])
    return grids


def _grid_from_camelot(table: object, scale: float, h_pt: float) -> Grid | None:
    cols = table.cols  # type: ignore[attr-defined]  # [(x_left, x_right)] in PDF points
    rows = table.rows  # type: ignore[attr-defined]  # [(y_top, y_bottom)], top first, PDF y up
    cells = table.cells  # type: ignore[attr-defined]
    n_rows, n_cols = len(rows), len(cols)
    if n_rows < 1 or n_cols < 1:
        return None
    col_lines = [int(round(cols[0][0] * scale))] + [int(round(c[1] * scale)) for c in cols]
    row_lines = [int(round((h_pt - rows[0][0]) * scale))] + [int(round((h_pt - r[1]) * scale)) for r in rows]
    parent = list(range(n_rows * n_cols))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for r in range(n_rows):
        for c in range(n_cols):
            cell = cells[r][c]
            if c + 1 < n_cols and not cell.right:
                parent[find(r * n_cols + c + 1)] = find(r * n_cols + c)
            if r + 1 < n_rows and not cell.bottom:
                parent[find((r + 1) * n_cols + c)] = find(r * n_cols + c)
    groups: dict[int, list[tuple[int, int]]] = {}
    for r in range(n_rows):
        for c in range(n_cols):
            groups.setdefault(find(r * n_cols + c), []).append((r, c))
    out = []
    for members in groups.values():
        r0 = min(r for r, _ in members)
        r1 = max(r for r, _ in members) + 1
        c0 = min(c for _, c in members)
        c1 = max(c for _, c in members) + 1
        bbox = (col_lines[c0], row_lines[r0], col_lines[c1], row_lines[r1])
        out.append(Cell(r0, c0, r1 - r0, c1 - c0, bbox))
    out.sort(key=lambda c: (c.row, c.col))
    return Grid(row_lines=row_lines, col_lines=col_lines, cells=out)
