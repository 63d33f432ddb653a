"""OCR: one engine interface, an adapter per engine, and text-to-cell assignment.

The pipeline talks to `OcrEngine` only; `RapidOcrEngine` adapts RapidOCR
(PP-OCRv6 det/rec ONNX models shipped inside the rapidocr wheel, so nothing
is downloaded). Engines are created through `get_engine()`.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Protocol

import numpy as np

from .types import Cell, Grid, TextLine

Quad = np.ndarray  # (4, 2) float32 corner points, clockwise from top-left


class OcrEngine(Protocol):
    """What the pipeline needs from an OCR engine."""

    name: str

    def detect(self, image: np.ndarray) -> list[Quad]:
        """Text-line quadrilaterals on a page image (grey or BGR)."""
        ...

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float, list[float] | None]]:
        """(text, score, per-character scores or None) for each single-line crop, batched."""
        ...


def crop_quad(image: np.ndarray, quad: Quad) -> np.ndarray:
    """Perspective-crop a text-line quad to an upright strip (tall strips turned)."""
    import cv2

    pts = np.asarray(quad, dtype=np.float32)
    w = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    h = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    w, h = max(w, 1), max(h, 1)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(pts, dst)
    out = cv2.warpPerspective(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if h > 1.5 * w:
        out = np.rot90(out)
    return out


class RapidOcrEngine:
    """RapidOCR on ONNX Runtime with the PP-OCRv6 small det/rec models from its wheel."""

    name = "rapidocr-ppocrv6"

    def __init__(self, threads: int | None = None) -> None:
        from rapidocr import RapidOCR

        n = threads or int(os.environ.get("SCANFORMS_OCR_THREADS", 0)) or max(1, min(os.cpu_count() or 1, 4))
        params = {
            "Global.log_level": "error",
            "Global.use_cls": False,
            "EngineConfig.onnxruntime.intra_op_num_threads": n,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            "Rec.rec_batch_num": 16,
        }
        self._engine = RapidOCR(params=params)
        self._det = self._engine._load_det_model()
        self._rec = self._engine._load_rec_model()
        self._lock = threading.Lock()  # ONNX sessions are shared; keep calls serial

    def detect(self, image: np.ndarray) -> list[Quad]:
        img = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
        with self._lock:
            out = self._det(img)
        if out.boxes is None:
            return []
        return [np.asarray(b, dtype=np.float32) for b in out.boxes]

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float, list[float] | None]]:
        from rapidocr.ch_ppocr_rec import TextRecInput

        if not crops:
            return []
        imgs = [c if c.ndim == 3 else np.repeat(c[:, :, None], 3, axis=2) for c in crops]
        with self._lock:
            out = self._rec(TextRecInput(img=copy.copy(imgs), return_word_box=True))
        results: list[tuple[str, float, list[float] | None]] = []
        words = out.word_results or ()
        for i, (txt, score) in enumerate(zip(out.txts or (), out.scores, strict=False)):
            char_scores: list[float] | None = None
            if i < len(words) and words[i] is not None:
                confs = getattr(words[i], "confs", None)  # WordInfo: one score per character
                if confs is not None and len(confs) == len(txt):
                    char_scores = [float(c) for c in confs]
            results.append((str(txt), float(score), char_scores))
        return results


_ENGINES: dict[str, OcrEngine] = {}
_ENGINES_LOCK = threading.Lock()  # threads (-j N) reach their first OCR page together: make one engine


def get_engine(name: str = "rapidocr") -> OcrEngine:
    """The process-wide engine of that name, created on first use (model load ≈ 1 s)."""
    if name in _ENGINES:
        return _ENGINES[name]
    with _ENGINES_LOCK:
        return _make_engine(name)


def _make_engine(name: str) -> OcrEngine:
    if name not in _ENGINES:
        if name != "rapidocr":
            raise ValueError(f"unknown OCR engine {name!r}")
        engine: OcrEngine = RapidOcrEngine()
        cache = os.environ.get("SCANFORMS_OCR_CACHE")
        if cache:  # tests and benchmarks: re-reading the same images costs nothing
            engine = CachedEngine(engine, cache)
        _ENGINES[name] = engine
    return _ENGINES[name]


class LazyEngine:
    """`get_engine(name)` made on first use, so that a file of born-digital pages (read from the
    text layer) never pays for the ONNX sessions (≈ 1 s and a few hundred MB)."""

    def __init__(self, name: str = "rapidocr") -> None:
        if name != "rapidocr":
            raise ValueError(f"unknown OCR engine {name!r}")
        self._name = name

    @property
    def loaded(self) -> bool:
        return self._name in _ENGINES

    @property
    def name(self) -> str:
        return get_engine(self._name).name

    def detect(self, image: np.ndarray) -> list[Quad]:
        return get_engine(self._name).detect(image)

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float, list[float] | None]]:
        return get_engine(self._name).recognize(crops)


class CachedEngine:
    """Wraps an engine with an on-disk cache keyed by image hash.

    Tests and benchmarks re-read the same page images; the cache keeps them
    fast while the real engine still runs whenever the cache is cold (a
    changed image changes the key).
    """

    def __init__(self, engine: OcrEngine, cache_dir: os.PathLike[str] | str) -> None:
        from pathlib import Path

        self.engine = engine
        self.name = f"{engine.name}+cache"
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(prefix: str, arrays: list[np.ndarray]) -> str:
        import hashlib

        h = hashlib.sha1(prefix.encode())
        for a in arrays:
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def _load(self, key: str) -> object | None:
        import json

        f = self.dir / key[:2] / f"{key}.json"
        if f.exists():
            self.hits += 1
            return json.loads(f.read_text(encoding="utf-8"))
        self.misses += 1
        return None

    def _save(self, key: str, data: object) -> None:
        import json

        d = self.dir / key[:2]
        d.mkdir(exist_ok=True)
        tmp = d / f".{key}.tmp"
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, d / f"{key}.json")

    def detect(self, image: np.ndarray) -> list[Quad]:
        key = self._key("det:" + self.engine.name, [image])
        hit = self._load(key)
        if hit is not None:
            return [np.asarray(q, dtype=np.float32) for q in hit]  # type: ignore[union-attr]
        quads = self.engine.detect(image)
        self._save(key, [q.tolist() for q in quads])
        return quads

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float, list[float] | None]]:
        if not crops:
            return []
        key = self._key("rec:" + self.engine.name, crops)
        hit = self._load(key)
        if hit is not None:
            return [(t, float(s), cs) for t, s, cs in hit]  # type: ignore[union-attr]
        out = self.engine.recognize(crops)
        self._save(key, [list(r) for r in out])
        return out


# --- reading a page: detection once, lines split at cell borders, batched recognition ---

DET_LONG_SIDE = 1280  # detection on a downscaled page finds the same lines at a fraction of the cost
CELL_INSET = 1  # px kept off the ruling lines so rules are not read as 1 / | / 一
PAD_BEFORE = 0.175  # line boxes are widened by these fractions of their height (left / right)
PAD_AFTER = 0.35


def _quad_bbox(q: Quad) -> tuple[int, int, int, int]:
    xs, ys = q[:, 0], q[:, 1]
    return int(xs.min()), int(ys.min()), int(np.ceil(xs.max())), int(np.ceil(ys.max()))


def detect_lines(image: np.ndarray, engine: OcrEngine) -> list[tuple[int, int, int, int]]:
    """Axis-aligned text-line boxes on the (deskewed) page at full resolution."""
    import cv2

    h, w = image.shape[:2]
    s = min(1.0, DET_LONG_SIDE / max(h, w))
    small = cv2.resize(image, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else image
    boxes = []
    for q in engine.detect(small):
        x0, y0, x1, y1 = _quad_bbox(q / s)
        # detection boxes hug the glyphs and drop small trailing marks (，。、): pad sideways
        x0, x1 = int(x0 - PAD_BEFORE * (y1 - y0)), int(x1 + PAD_AFTER * (y1 - y0))
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            boxes.append((x0, y0, x1, y1))
    return boxes


def _margin(crop: np.ndarray) -> np.ndarray:
    """White margins around a line crop: without room after it the recognizer drops a
    trailing 。 or 、 (measured on heavy scans: '…实现程度' vs '…实现程度。')."""
    import cv2

    h = crop.shape[0]
    fill = 255 if crop.ndim == 2 else (255, 255, 255)
    return cv2.copyMakeBorder(crop, 2, 2, h // 2, h, cv2.BORDER_CONSTANT, value=fill)


def _split_at_cells(
    box: tuple[int, int, int, int], cells: list[tuple[int, tuple[int, int, int, int]]]
) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Pieces of a line box inside each cell it overlaps: (cell id, clipped box)."""
    x0, y0, x1, y1 = box
    area = max(1, (x1 - x0) * (y1 - y0))
    pieces = []
    for cid, (cx0, cy0, cx1, cy1) in cells:
        ix0, iy0, ix1, iy1 = max(x0, cx0 + CELL_INSET), max(y0, cy0 + CELL_INSET), min(x1, cx1 - CELL_INSET), min(y1, cy1 - CELL_INSET)
        if ix1 - ix0 < max(3, 0.6 * (y1 - y0)) or iy1 - iy0 < 3:
            continue  # a sliver over a border holds no whole character
        # a piece must hold a real share of the line's height (not a descender grazing the next row)
        if (iy1 - iy0) < 0.45 * (y1 - y0):
            continue
        pieces.append((cid, (ix0, iy0, ix1, iy1)))
    if not pieces:
        return []
    covered = sum((b[2] - b[0]) * (b[3] - b[1]) for _, b in pieces)
    if covered < 0.2 * area:
        return []
    return pieces


def _ink_box(binary: np.ndarray, bbox: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """Tight box around the real ink inside a cell (speckles and border remnants ignored)."""
    import cv2

    x0, y0, x1, y1 = bbox
    m = max(4, CELL_INSET + 3)
    x0, y0, x1, y1 = x0 + m, y0 + m, x1 - m, y1 - m
    if x1 - x0 < 6 or y1 - y0 < 6:
        return None
    roi = binary[y0:y1, x0:x1]
    n, labels, stats, _ = cv2.connectedComponentsWithStats((roi > 0).astype(np.uint8), connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 25 and stats[i, cv2.CC_STAT_HEIGHT] >= 8]
    if not keep:
        return None
    # strokes of one text block lie close together; specks lie apart: keep the inkiest cluster
    mask = np.isin(labels, keep).astype(np.uint8)
    m2 = cv2.dilate(mask, np.ones((9, 15), np.uint8))
    k, lab2, st2, _ = cv2.connectedComponentsWithStats(m2, connectivity=8)
    if k <= 1:
        return None
    ink = [int(mask[lab2 == j].sum()) for j in range(1, k)]
    j = 1 + int(np.argmax(ink))
    ys, xs = np.nonzero(mask * (lab2 == j))
    xs0, xs1, ys0, ys1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    pad = 4
    return (
        max(bbox[0] + CELL_INSET, x0 + xs0 - pad),
        max(bbox[1] + CELL_INSET, y0 + ys0 - pad),
        min(bbox[2] - CELL_INSET, x0 + xs1 + pad),
        min(bbox[3] - CELL_INSET, y0 + ys1 + pad),
    )


def second_look(image: np.ndarray, binary: np.ndarray, cells: list[Cell], engine: OcrEngine) -> int:
    """Cells with ink but no detected line (a lone digit, faint text): recognize the ink box.

    Returns how many cells were looked at again (they are counted in the page's timings).
    """
    todo = []
    for c in cells:
        if c.lines:
            continue
        box = _ink_box(binary, c.bbox)
        if box is None:
            continue
        bh = box[3] - box[1]
        if bh > 80:  # several lines of text: not a lone mark; leave it to detection
            continue
        todo.append((c, box))
    if not todo:
        return 0
    results = engine.recognize([image[b[1] : b[3], b[0] : b[2]] for _, b in todo])
    for (c, b), (text, score, cs) in zip(todo, results, strict=True):
        if text.strip() and score >= 0.6:
            c.lines.append(TextLine(text=text.strip(), bbox=b, score=score, char_scores=cs))
            finish_cell(c)
    return len(todo)


def read_page(
    image: np.ndarray, grids: list[Grid], engine: OcrEngine, binary: np.ndarray | None = None
) -> tuple[list[Grid], list[TextLine]]:
    """OCR a prepared page once and fill each grid cell's text.

    Returns (grids, free_lines): cells get `lines`, `text`, `confidence`;
    lines outside every grid come back as free lines (titles, notes).
    """
    boxes = detect_lines(image, engine)
    cell_list = []  # (id, bbox) over all grids
    cell_ref = []
    for g in grids:
        for c in g.cells:
            cell_list.append((len(cell_ref), c.bbox))
            cell_ref.append(c)

    crops: list[np.ndarray] = []
    targets: list[tuple[int | None, tuple[int, int, int, int]]] = []
    all_pieces: list[tuple[int | None, tuple[int, int, int, int]]] = []
    for box in boxes:
        pieces = _split_at_cells(box, cell_list) if cell_list else []
        if not pieces:
            # outside the grids (or grazing them): read it whole as a free line
            inside = any(_contains(c.bbox, box) for c in cell_ref)
            if inside:
                continue
            pieces = [(None, box)]
        all_pieces += pieces
    for cid, b in all_pieces:
        x0, y0, x1, y1 = b
        crop = image[y0:y1, x0:x1]
        if crop.size == 0:
            continue
        crops.append(_margin(crop))
        targets.append((cid, b))

    results = engine.recognize(crops)
    free: list[TextLine] = []
    for (cid, b), (text, score, cs) in zip(targets, results, strict=False):
        text = text.strip()
        if not text:
            continue
        line = TextLine(text=text, bbox=b, score=score, char_scores=cs)
        if cid is None:
            free.append(line)
        else:
            cell_ref[cid].lines.append(line)
    for c in cell_ref:
        finish_cell(c)
    for g in grids:
        split_by_text(g)
    if binary is not None:
        second_look(image, binary, [c for g in grids for c in g.cells], engine)
    free.sort(key=lambda t: (t.bbox[1], t.bbox[0]))
    return grids, free


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    return outer[0] <= inner[0] + 2 and outer[1] <= inner[1] + 2 and outer[2] >= inner[2] - 2 and outer[3] >= inner[3] - 2


def group_visual_lines(lines: list[TextLine]) -> list[list[TextLine]]:
    """Lines of one cell grouped into visual rows (top to bottom), each left to right."""
    rows: list[list] = []
    for ln in sorted(lines, key=lambda t: (t.bbox[1] + t.bbox[3]) / 2):
        cy = (ln.bbox[1] + ln.bbox[3]) / 2
        h = ln.bbox[3] - ln.bbox[1]
        if rows:
            last = rows[-1]
            ly0 = min(t.bbox[1] for t in last)
            ly1 = max(t.bbox[3] for t in last)
            lcy = (ly0 + ly1) / 2
            if abs(cy - lcy) < 0.5 * max(h, ly1 - ly0):
                last.append(ln)
                continue
        rows.append([ln])
    return [sorted(r, key=lambda t: t.bbox[0]) for r in rows]


def finish_cell(cell: Cell) -> None:
    """Set a cell's text (spec rule for joining lines) and its OCR confidence."""
    from .values import join_lines

    c = cell
    if not c.lines:
        c.text, c.confidence = "", 1.0
        return
    rows = group_visual_lines(c.lines)
    texts = [join_lines([t.text for t in r]) for r in rows]
    c.text = join_lines(texts)
    scores = []
    for t in c.lines:
        scores += t.char_scores if t.char_scores else [t.score] * max(1, len(t.text))
    c.confidence = float(min(scores)) if scores else 0.0


def _split_groups(lines: list[TextLine], cuts: list[int], axis: int) -> dict[int, list[TextLine]]:
    """Lines by the lattice band they fall in along one axis; {-1: ...} for lines crossing a cut."""
    out: dict[int, list[TextLine]] = {}
    for ln in lines:
        a, b = (ln.bbox[0], ln.bbox[2]) if axis == 0 else (ln.bbox[1], ln.bbox[3])
        tol = 0.6 * (ln.bbox[3] - ln.bbox[1])  # line boxes are padded sideways; a real crossing is deeper
        band = sum(1 for c in cuts if c <= (a + b) / 2)
        crosses = any(a + tol < c < b - tol for c in cuts)
        out.setdefault(-1 if crosses else band, []).append(ln)
    return out


def split_by_text(grid: Grid) -> int:
    """Split merged cells whose text sits in separate lattice bands with wide gaps between.

    A rule erased along its whole length (heavy scans) reads as a merged cell;
    when its text falls apart into blocks that each sit inside one lattice band,
    far apart compared with the line height, the cell is really several cells.
    Returns how many cells were split.
    """
    g = grid
    new_cells: list[Cell] = []
    n_split = 0
    for c in g.cells:
        parts = None
        if len(c.lines) >= 2 and (c.col_span > 1 or c.row_span > 1):
            h = float(np.median([ln.bbox[3] - ln.bbox[1] for ln in c.lines]))
            for axis, span in ((0, c.col_span), (1, c.row_span)):
                if span <= 1:
                    continue
                base = c.col if axis == 0 else c.row
                lines_pos = g.col_lines if axis == 0 else g.row_lines
                cuts = [lines_pos[base + k] for k in range(1, span)]
                # lattice lines that a text line runs across are no lost rule here (a stray
                # line from another row may fall inside a label); the others may be
                kept = [k for k in range(1, span) if not any(-1 in _split_groups([ln], [cuts[k - 1]], axis)
                                                               for ln in c.lines)]
                if not kept:
                    continue
                by_kept = _split_groups(c.lines, [cuts[k - 1] for k in kept], axis)
                # band j (j kept cuts to the left) starts at lattice offset 0 or kept[j - 1]
                groups = {(0 if j == 0 else kept[j - 1]): lns for j, lns in by_kept.items()}
                if len(groups) < 2:
                    continue
                bands = sorted(groups)
                ok = True
                for b0, b1 in zip(bands, bands[1:], strict=False):
                    end = max(ln.bbox[2 + axis] for ln in groups[b0])
                    start = min(ln.bbox[axis] for ln in groups[b1])
                    if axis == 0:  # the gap between the glyphs: without the boxes' side padding
                        end -= PAD_AFTER * h
                        start += PAD_BEFORE * h
                    if start - end < (0.9 if axis == 0 else 0.5) * h:
                        ok = False
                if ok:
                    parts = (axis, bands, groups, cuts)
                    break
        if parts is None:
            new_cells.append(c)
            continue
        axis, bands, groups, cuts = parts
        n_split += 1
        edges = [c.bbox[axis]] + cuts + [c.bbox[axis + 2]]
        base = c.col if axis == 0 else c.row
        span = c.col_span if axis == 0 else c.row_span
        band_bounds = bands + [span]
        for i, band in enumerate(band_bounds[:-1]):
            lo = 0 if i == 0 else band
            hi = band_bounds[i + 1]
            x0, y0, x1, y1 = c.bbox
            if axis == 0:
                box = (edges[lo], y0, edges[hi], y1)
                cell = Cell(c.row, base + lo, c.row_span, hi - lo, box)
            else:
                box = (x0, edges[lo], x1, edges[hi])
                cell = Cell(base + lo, c.col, hi - lo, c.col_span, box)
            cell.lines = list(groups.get(band, []))
            finish_cell(cell)
            new_cells.append(cell)
    g.cells = new_cells
    return n_split
