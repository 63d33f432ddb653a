"""OCR engines: the interface the pipeline reads through, an adapter per engine, the registry and a cache.

The pipeline talks to `OcrEngine` only (as OCRmyPDF's engine plugins or img2table's
`OCRInstance`); `RapidOcrEngine` adapts RapidOCR (PP-OCRv6 det/rec ONNX models shipped
inside the rapidocr wheel, so nothing is downloaded). Engines are made through
`get_engine()` (or `LazyEngine`, which makes one on first use).
"""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

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


REC_H = 48  # the recogniser's input height (PP-OCRv6 rec: 3 x 48 x W)
REC_MIN_W = 320  # RapidOCR pads every crop to at least this width: what the model was trained on
REC_BATCHINGS = ("single", "width")


@dataclass(frozen=True)
class WidthBuckets:
    """Crops batched by their padded width, so that a batch pads little.

    A crop's padded width is max(REC_MIN_W, its width at REC_H px high), as when read alone.
    Crops are sorted by it and cut into batches whose widest is at most `tol` wider than their
    narrowest (and of at most `max_batch`). The short crops (most of a form's cells: 72% of
    2,795 crops of 7 dev files fit in 320 px) share one padded width, 320, so batching them
    changes nothing of their input. Measured on 1,655 of those crops against one crop a run:
    tol 0 read every text the same in 47.8 s; tol 0.15 (wide crops padded up to 15% past their
    width) changed 2.2% of the texts (a 、 or 。 lost or gained at the end of long lines).
    """

    tol: float = 0.0
    max_batch: int = 32

    def padded(self, crop: np.ndarray) -> int:
        h, w = crop.shape[:2]
        return max(REC_MIN_W, int(np.ceil(REC_H * w / max(1, h))))

    def groups(self, crops: list[np.ndarray]) -> list[list[int]]:
        """The crop indices of each batch."""
        pw = [self.padded(c) for c in crops]
        out: list[list[int]] = []
        cur: list[int] = []
        for i in sorted(range(len(crops)), key=lambda i: pw[i]):
            if cur and (pw[i] > pw[cur[0]] * (1 + self.tol) or len(cur) >= self.max_batch):
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
        return out


class RapidOcrEngine:
    """RapidOCR on ONNX Runtime with the PP-OCRv6 small det/rec models from its wheel.

    `batching`: "single" reads one crop per run; "width" batches crops of about the same padded
    width (`WidthBuckets`).
    """

    name = "rapidocr-ppocrv6"
    # recognition settings that change what is read (cache keys must follow them)
    rec_setup = "batch1"

    def __init__(self, threads: int | None = None, batching: str = "single") -> None:
        from rapidocr import RapidOCR

        if batching not in REC_BATCHINGS:
            raise ValueError(f"unknown recognition batching {batching!r}")
        n = threads or max(1, min(os.cpu_count() or 1, 4))
        params = {
            "Global.log_level": "error",
            "Global.use_cls": False,
            "EngineConfig.onnxruntime.intra_op_num_threads": n,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            # RapidOCR's own batching pads a batch to its widest crop, and on CPU that padding
            # costs more than batching saves: 991 crops of 9 scan pages took 38.6 s at batch 16
            # and 31.1 s one by one (same process, interleaved). Alone, each crop is read as in
            # training (padded to 320 px, no more), whatever else is on the page. Strips of
            # short crops side by side were faster still (24.1 s) but read worse in context
            # (dev accuracy 0.9621 against 0.9650). "width" makes the batches itself.
            "Rec.rec_batch_num": 1,
        }
        self._engine = RapidOCR(params=params)
        self._det = self._engine._load_det_model()
        self._rec = self._engine._load_rec_model()
        self._lock = threading.Lock()  # ONNX sessions are shared; keep calls serial
        self.batching = batching
        self._buckets = WidthBuckets() if batching == "width" else None
        if self._buckets is not None:  # batch scores may differ in the last digits: own cache entries
            self.rec_setup = f"width-tol{self._buckets.tol}-max{self._buckets.max_batch}"

    def detect(self, image: np.ndarray) -> list[Quad]:
        img = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
        with self._lock:
            out = self._det(img)
        if out.boxes is None:
            return []
        return [np.asarray(b, dtype=np.float32) for b in out.boxes]

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float, list[float] | None]]:
        if not crops:
            return []
        imgs = [c if c.ndim == 3 else np.repeat(c[:, :, None], 3, axis=2) for c in crops]
        if self._buckets is None:
            with self._lock:
                return self._run(imgs, 1)
        results: list[tuple[str, float, list[float] | None]] = [("", 0.0, None)] * len(imgs)
        with self._lock:
            for idx in self._buckets.groups(imgs):
                # RapidOCR pads a batch to max(320 px, its widest crop): a lone crop as when alone
                for i, r in zip(idx, self._run([imgs[i] for i in idx], len(idx)), strict=True):
                    results[i] = r
        return results

    def _run(self, imgs: list[np.ndarray], batch: int) -> list[tuple[str, float, list[float] | None]]:
        """RapidOCR's recogniser on `imgs`, `batch` crops a run (sorted by width)."""
        from rapidocr.ch_ppocr_rec import TextRecInput

        rec = self._rec
        rec.rec_batch_num = batch
        out = rec(TextRecInput(img=copy.copy(imgs), return_word_box=True))
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


# one engine per (name, cache folder, threads, batching) and process: Options give the same key to
# every document of a run
EngineKey = tuple[str, str | None, int | None, str]
_ENGINES: dict[EngineKey, OcrEngine] = {}
_ENGINES_LOCK = threading.Lock()  # threads (-j N) reach their first OCR page together: make one engine


def _engine_key(
    name: str, cache_dir: os.PathLike[str] | str | None, threads: int | None, batching: str = "single"
) -> EngineKey:
    if name != "rapidocr":
        raise ValueError(f"unknown OCR engine {name!r}")
    if batching not in REC_BATCHINGS:
        raise ValueError(f"unknown recognition batching {batching!r}")
    return name, (os.fspath(cache_dir) if cache_dir else None), threads, batching


def get_engine(
    name: str = "rapidocr",
    cache_dir: os.PathLike[str] | str | None = None,
    threads: int | None = None,
    batching: str = "single",
) -> OcrEngine:
    """The process-wide engine of that name, created on first use (model load ≈ 1 s).

    `cache_dir`: results cached by image hash there (tests and benchmarks: re-reading the same
    images costs nothing); `threads`: ONNX Runtime threads (None: min(cores, 4)); `batching`:
    recognition batching (`RapidOcrEngine`).
    """
    key = _engine_key(name, cache_dir, threads, batching)
    if key in _ENGINES:
        return _ENGINES[key]
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            engine: OcrEngine = RapidOcrEngine(threads, batching)
            if key[1]:
                engine = CachedEngine(engine, key[1])
            _ENGINES[key] = engine
        return _ENGINES[key]


class LazyEngine:
    """`get_engine(...)` made on first use, so that a file of born-digital pages (read from the
    text layer) never pays for the ONNX sessions (≈ 1 s and a few hundred MB)."""

    def __init__(
        self,
        name: str = "rapidocr",
        cache_dir: os.PathLike[str] | str | None = None,
        threads: int | None = None,
        batching: str = "single",
    ) -> None:
        self._key = _engine_key(name, cache_dir, threads, batching)

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

