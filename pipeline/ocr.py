"""OCR: one engine interface, an adapter per engine, and text-to-cell assignment.

The pipeline talks to `OcrEngine` only; `RapidOcrEngine` adapts RapidOCR
(PP-OCRv6 det/rec ONNX models shipped inside the rapidocr wheel, so nothing
is downloaded). Engines are created through `get_engine()`.
"""

from __future__ import annotations

import copy
import os
import threading
import time
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
    # recognition settings that change what is read (cache keys must follow them)
    rec_setup = "batch1"

    def __init__(self, threads: int | None = None) -> None:
        from rapidocr import RapidOCR

        n = threads or max(1, min(os.cpu_count() or 1, 4))
        params = {
            "Global.log_level": "error",
            "Global.use_cls": False,
            "EngineConfig.onnxruntime.intra_op_num_threads": n,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            # One crop per run. A batch is padded to its widest crop, and on CPU that padding
            # costs more than batching saves: 991 crops of 9 scan pages took 38.6 s at batch 16
            # and 31.1 s one by one (same process, interleaved). Alone, each crop is read as in
            # training (padded to 320 px, no more), whatever else is on the page. Strips of
            # short crops side by side were faster still (24.1 s) but read worse in context
            # (dev accuracy 0.9621 against 0.9650).
            "Rec.rec_batch_num": 1,
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


# one engine per (name, cache folder, threads) and process: Options give the same triple to every
# document of a run
EngineKey = tuple[str, str | None, int | None]
_ENGINES: dict[EngineKey, OcrEngine] = {}
_ENGINES_LOCK = threading.Lock()  # threads (-j N) reach their first OCR page together: make one engine


def _engine_key(name: str, cache_dir: os.PathLike[str] | str | None, threads: int | None) -> EngineKey:
    if name != "rapidocr":
        raise ValueError(f"unknown OCR engine {name!r}")
    return name, (os.fspath(cache_dir) if cache_dir else None), threads


def get_engine(
    name: str = "rapidocr", cache_dir: os.PathLike[str] | str | None = None, threads: int | None = None
) -> OcrEngine:
    """The process-wide engine of that name, created on first use (model load ≈ 1 s).

    `cache_dir`: results cached by image hash there (tests and benchmarks: re-reading the same
    images costs nothing); `threads`: ONNX Runtime threads (None: min(cores, 4)).
    """
    key = _engine_key(name, cache_dir, threads)
    if key in _ENGINES:
        return _ENGINES[key]
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            engine: OcrEngine = RapidOcrEngine(threads)
            if key[1]:
                engine = CachedEngine(engine, key[1])
            _ENGINES[key] = engine
        return _ENGINES[key]


class LazyEngine:
    """`get_engine(...)` made on first use, so that a file of born-digital pages (read from the
    text layer) never pays for the ONNX sessions (≈ 1 s and a few hundred MB)."""

    def __init__(
        self, name: str = "rapidocr", cache_dir: os.PathLike[str] | str | None = None, threads: int | None = None
    ) -> None:
        self._key = _engine_key(name, cache_dir, threads)

    def _engine(self) -> OcrEngine:
        return get_engine(*self._key)

    @property
    def loaded(self) -> bool:
        return self._key in _ENGINES

    @property
    def name(self) -> str:
        return self._engine().name

    def detect(self, image: np.ndarray) -> list[Quad]:
        return self._engine().detect(image)

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float, list[float] | None]]:
        return self._engine().recognize(crops)


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
        key = self._key(f"rec:{self.engine.name}:{getattr(self.engine, 'rec_setup', '')}", crops)
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


def _lone_number(text: str, score: float, box: tuple[int, int, int, int], glyph: float) -> bool:
    """A blurred lone digit scores low (a faded '5' at 0.54) but so do dust specks read as
    '+', '$' or '.': the digit is told apart by its size, as tall as the page's print."""
    ink_h = (box[3] - box[1]) - 8  # _ink_box pads 4 px each side
    return score >= 0.45 and text.strip().isdigit() and ink_h >= 0.6 * glyph


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
    from .grid import glyph_size

    glyph = glyph_size(binary)
    for (c, b), (text, score, cs) in zip(todo, results, strict=True):
        if text.strip() and (score >= 0.6 or _lone_number(text, score, b, glyph)):
            c.lines.append(TextLine(text=text.strip(), bbox=b, score=score, char_scores=cs))
            finish_cell(c)
    return len(todo)


OCR_MODES = ("cells", "page")


def read_page(
    image: np.ndarray,
    grids: list[Grid],
    engine: OcrEngine,
    binary: np.ndarray | None = None,
    mode: str = "page",
    timings: dict[str, float] | None = None,
) -> tuple[list[Grid], list[TextLine]]:
    """OCR a prepared page once and fill each grid cell's text.

    Returns (grids, free_lines): cells get `lines`, `text`, `confidence`;
    lines outside every grid come back as free lines (titles, notes).
    `mode` "page": whole-page detection, lines split at cell borders; "cells":
    lines found inside each cell from its ink (see `read_page_cells`).
    `timings` (if given) gets ocr_detect / ocr_recognize / ocr_second_look
    seconds and n_second_look / n_detect_regions counts (keys starting n_ are counts).
    """
    if mode not in OCR_MODES:
        raise ValueError(f"unknown OCR mode {mode!r}")
    tm = timings if timings is not None else {}
    if mode == "cells" and grids and binary is not None:
        return read_page_cells(image, grids, engine, binary, tm)
    t = time.perf_counter()
    boxes = detect_lines(image, engine)
    t = _tick(tm, "ocr_detect", t)
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

    t = _tick(tm, "ocr_layout", t)
    results = engine.recognize(crops)
    _tick(tm, "ocr_recognize", t)
    return _finish_page(image, grids, cell_ref, targets, results, engine, binary, tm)


def _tick(timings: dict[str, float], key: str, t0: float) -> float:
    t1 = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + (t1 - t0)
    return t1


def _finish_page(
    image: np.ndarray,
    grids: list[Grid],
    cell_ref: list[Cell],
    targets: list[tuple[int | None, tuple[int, int, int, int]]],
    results: list[tuple[str, float, list[float] | None]],
    engine: OcrEngine,
    binary: np.ndarray | None,
    tm: dict[str, float],
) -> tuple[list[Grid], list[TextLine]]:
    """Recognized pieces into their cells (or free lines); cell text, splits, second looks."""
    t = time.perf_counter()
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
    t = _tick(tm, "ocr_assign", t)
    if binary is not None:
        n = second_look(image, binary, [c for g in grids for c in g.cells], engine)
        tm["n_second_look"] = tm.get("n_second_look", 0.0) + n
        _tick(tm, "ocr_second_look", t)
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


# --- the cell-crop road: the grid is known before OCR, so lines are found from each cell's ink ---

LINE_MERGE = 1.3  # glyph heights: ink runs that fit together in this height are one line (三, 二, 。)
TALL_RUN = 1.7  # glyph heights: a run taller than this holds touching lines
WORD_GAP = 1.5  # glyph heights of blank that split a line into pieces (as detection does)
VALLEY_MAX = 0.15  # a cut between touching lines: row ink at most this share of the run's median row
EDGE_INSET = 2  # px off the cell's inner box: anti-aliased rule edges
SPECK_MAX = 0.6  # glyph heights: a mark smaller than this either way may be a speck ...
SPECK_NEAR = 1.2  # ... and is one with no bigger ink this close beside it on its line (glyph heights):
# full-width punctuation (，。、) sits up to about a glyph from its neighbours


def _runs(on: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    d = np.diff(np.concatenate(([0], on.astype(np.int8), [0])))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist(), strict=True))


def _cell_ink(
    binary: np.ndarray, bbox: tuple[int, int, int, int], glyph: float, loose: bool = False
) -> np.ndarray | None:
    """Ink mask of a cell's interior (rule remnants along its edges and lone pixels dropped)."""
    import cv2

    x0, y0, x1, y1 = bbox
    roi = binary[y0 + EDGE_INSET : y1 - EDGE_INSET, x0 + EDGE_INSET : x1 - EDGE_INSET]
    if roi.size == 0 or roi.shape[0] < 4 or roi.shape[1] < 4 or not roi.any():
        return None
    n, lab, st, _ = cv2.connectedComponentsWithStats((roi > 0).astype(np.uint8), connectivity=8)
    hh, ww = roi.shape
    x, y, w, h, a = st[:, 0], st[:, 1], st[:, 2], st[:, 3], st[:, 4]
    thin = max(2.0, 0.2 * glyph)
    # a rule that leans into the cell: a thin stroke along an edge, longer than a glyph
    along_h = ((y == 0) | (y + h == hh)) & (h <= thin) & (w > 1.5 * glyph)
    along_v = ((x == 0) | (x + w == ww)) & (w <= thin) & (h > 1.5 * glyph)
    keep = ~(along_h | along_v) & (a >= 3)
    if loose:  # a page band, not a cell: underlines, rule stubs and pictures are no text line
        keep &= ~((w > 3 * glyph) & (h <= 0.3 * glyph)) & (h <= 3 * glyph)
    keep[0] = False
    # specks (dust, grain): small marks with no glyph beside them; punctuation and decimal
    # points sit on a line next to its text, so only isolated ones go
    small = keep & (np.maximum(w, h) < SPECK_MAX * glyph)
    if small.any():
        big = (keep & ~small)[lab].astype(np.uint8)
        rx, ry = max(2, int(SPECK_NEAR * glyph)), max(2, int(0.3 * glyph))
        near = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * rx + 1, 2 * ry + 1))) > 0
        touched = np.zeros(n, dtype=bool)
        touched[np.unique(lab[near])] = True
        keep &= ~small | touched
    if not keep[1:].any():
        return None
    return keep[lab]


def _line_bands(mask: np.ndarray, glyph: float) -> tuple[list[tuple[int, int]], bool]:
    """Text-line bands [y0, y1) of a cell's ink by its horizontal projection; and whether
    the projection was ambiguous (touching lines without a clean valley)."""
    prof = mask.sum(axis=1)
    runs = _runs(prof > 0)
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and b - merged[-1][0] <= LINE_MERGE * glyph:
            merged[-1][1] = b  # parts of one line (strokes of 三, a full stop under the line)
        else:
            merged.append([a, b])
    bands: list[tuple[int, int]] = []
    ambiguous = False
    for a, b in merged:
        todo = [(a, b)]
        while todo:
            a, b = todo.pop()
            if b - a <= TALL_RUN * glyph:
                bands.append((a, b))
                continue
            # touching lines: cut at the emptiest row away from the ends
            lo, hi = a + int(0.6 * glyph), b - int(0.6 * glyph)
            if hi <= lo:
                bands.append((a, b))
                continue
            cut = lo + int(np.argmin(prof[lo:hi]))
            if prof[cut] > VALLEY_MAX * float(np.median(prof[a:b])):
                ambiguous = True
                bands.append((a, b))
                continue
            todo += [(cut + 1, b), (a, cut)]
    bands.sort()
    return bands, ambiguous


def _line_pieces(mask: np.ndarray, band: tuple[int, int], glyph: float) -> list[tuple[int, int, int, int]]:
    """Tight ink boxes (x0, y0, x1, y1) of one line band, split at wide blanks."""
    a, b = band
    cols = _runs(mask[a:b].any(axis=0))
    groups: list[list[int]] = []
    for c0, c1 in cols:
        if groups and c0 - groups[-1][1] < WORD_GAP * glyph:
            groups[-1][1] = c1
        else:
            groups.append([c0, c1])
    out = []
    for c0, c1 in groups:
        rows = np.nonzero(mask[a:b, c0:c1].any(axis=1))[0]
        out.append((c0, a + int(rows[0]), c1, a + int(rows[-1]) + 1))
    return out


def _outside_bands(binary: np.ndarray, grids: list[Grid], glyph: float) -> list[tuple[int, int]]:
    """Horizontal page bands [y0, y1) outside every grid's rows that hold ink (titles, notes)."""
    h = binary.shape[0]
    covered = np.zeros(h, dtype=bool)
    rule = max(4, int(0.3 * glyph))  # the outer rules (and a residual tilt) stay out of the bands
    for g in grids:
        _, y0, _, y1 = g.bbox
        covered[max(0, y0 - rule) : max(0, y1 + rule)] = True
    out = []
    for a, b in _runs(~covered):
        if b - a >= 0.5 * glyph and binary[a:b].any():
            out.append((a, b))
    return out


def _detect_region(
    image: np.ndarray, box: tuple[int, int, int, int], engine: OcrEngine, scale: float
) -> list[tuple[int, int, int, int]]:
    """Padded line boxes (page coordinates) detected inside one region of the page.

    The region is read at the scale whole-page detection uses, on a white canvas at
    least DET_MIN_SIDE px high so the detector does not blow a thin band up.
    """
    import cv2

    x0, y0, x1, y1 = box
    region = image[y0:y1, x0:x1]
    if region.size == 0:
        return []
    h, w = region.shape[:2]
    small = cv2.resize(region, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1 else region
    sh, sw = small.shape[:2]
    ch, cw = max(sh, DET_MIN_SIDE), max(sw, DET_MIN_SIDE)
    canvas = np.full((ch, cw) + small.shape[2:], 255, dtype=np.uint8)
    canvas[:sh, :sw] = small
    out = []
    ih, iw = image.shape[:2]
    for q in engine.detect(canvas):
        bx0, by0, bx1, by1 = _quad_bbox(q / min(1.0, scale))
        if bx0 >= w or by0 >= h:
            continue
        bx0, by0, bx1, by1 = bx0 + x0, by0 + y0, bx1 + x0, by1 + y0
        lh = by1 - by0
        bx0, bx1 = int(bx0 - PAD_BEFORE * lh), int(bx1 + PAD_AFTER * lh)
        bx0, by0, bx1, by1 = max(x0, bx0), max(y0, by0), min(x1, iw, bx1), min(y1, ih, by1)
        if bx1 - bx0 >= 4 and by1 - by0 >= 4:
            out.append((bx0, by0, bx1, by1))
    return out


DET_MIN_SIDE = 736  # RapidOCR's detector scales images up until their short side is this long


def _glyph_height(binary: np.ndarray) -> float:
    """Typical glyph height (px) of a page, robust to dust: the median height of the
    character-sized components at least half as tall as the tallest tenth of them."""
    import cv2

    from .grid import glyph_size

    _, _, st, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    h, w = st[1:, 3], st[1:, 2]
    lim = min(binary.shape[:2]) / 15.0
    h = h[(h >= 4) & (w >= 2) & (h < lim) & (w < lim)]
    if len(h) < 20:
        return glyph_size(binary)
    h = h[h >= 0.5 * np.percentile(h, 90)]
    return float(np.median(h))


def read_page_cells(
    image: np.ndarray, grids: list[Grid], engine: OcrEngine, binary: np.ndarray, tm: dict[str, float]
) -> tuple[list[Grid], list[TextLine]]:
    """OCR a page whose grids are known: each cell's lines from its own ink, one batch.

    Inside a cell, and in the page bands outside the grids (titles, notes), the lines
    come from the horizontal projection of the ink, each cut tight to its ink and split
    at wide blanks; detection runs only where that is ambiguous (touching lines
    without a clean valley).
    """
    t = time.perf_counter()
    bin8 = (binary > 0).astype(np.uint8)
    glyph = _glyph_height(bin8)
    h_img, w_img = image.shape[:2]
    scale = min(1.0, DET_LONG_SIDE / max(h_img, w_img))
    cell_ref = [c for g in grids for c in g.cells]
    # regions read by projection: every cell, and the page bands above, between and below the grids
    regions: list[tuple[int | None, tuple[int, int, int, int]]] = [(cid, c.bbox) for cid, c in enumerate(cell_ref)]
    regions += [(None, (0, a, w_img, b)) for a, b in _outside_bands(bin8, grids, glyph)]
    targets: list[tuple[int | None, tuple[int, int, int, int]]] = []
    to_detect: list[tuple[int | None, tuple[int, int, int, int]]] = []
    for cid, bbox in regions:
        mask = _cell_ink(bin8, bbox, glyph, loose=cid is None)
        if mask is None:
            continue
        bands, ambiguous = _line_bands(mask, glyph)
        if ambiguous:
            to_detect.append((cid, bbox))
            continue
        ox, oy = bbox[0] + EDGE_INSET, bbox[1] + EDGE_INSET
        cx0, cy0, cx1, cy1 = bbox[0] + CELL_INSET, bbox[1] + CELL_INSET, bbox[2] - CELL_INSET, bbox[3] - CELL_INSET
        for band in bands:
            for px0, py0, px1, py1 in _line_pieces(mask, band, glyph):
                lh = py1 - py0
                vpad = max(2, int(0.15 * lh))
                # the same sideways padding as detection boxes (split_by_text allows for it)
                box = (max(cx0, ox + px0 - int(PAD_BEFORE * lh)), max(cy0, oy + py0 - vpad),
                       min(cx1, ox + px1 + int(PAD_AFTER * lh)), min(cy1, oy + py1 + vpad))
                if box[2] - box[0] >= 3 and box[3] - box[1] >= 3:
                    targets.append((cid, box))
    t = _tick(tm, "ocr_layout", t)
    if len(to_detect) == 1 and to_detect[0][0] is not None:
        cid, (x0, y0, x1, y1) = to_detect[0]
        inner = (x0 + CELL_INSET, y0 + CELL_INSET, x1 - CELL_INSET, y1 - CELL_INSET)
        targets += [(cid, box) for box in _detect_region(image, inner, engine, scale)]
    elif to_detect:
        # several: one whole-page detection costs less than a detection per region
        boxes = detect_lines(image, engine)
        for cid, bbox in to_detect:
            for box in boxes:
                if cid is not None:
                    targets += _split_at_cells(box, [(cid, bbox)])
                elif _contains(bbox, box) and not any(_contains(c.bbox, box) for c in cell_ref):
                    targets.append((None, box))
    tm["n_detect_regions"] = tm.get("n_detect_regions", 0.0) + len(to_detect)
    t = _tick(tm, "ocr_detect", t)
    crops = [_margin(image[b[1] : b[3], b[0] : b[2]]) for _, b in targets]
    # one batch, widths alike side by side: the recognizer pads each batch to its widest crop
    order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / max(1, crops[i].shape[0]))
    res = engine.recognize([crops[i] for i in order])
    results: list[tuple[str, float, list[float] | None]] = [("", 0.0, None)] * len(crops)
    for i, r in zip(order, res, strict=True):
        results[i] = r
    _tick(tm, "ocr_recognize", t)
    return _finish_page(image, grids, cell_ref, targets, results, engine, binary, tm)
