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

        n = threads or max(1, min(os.cpu_count() or 1, 4))
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
        for i, (txt, score) in enumerate(zip(out.txts or (), out.scores)):
            char_scores: list[float] | None = None
            if i < len(words) and words[i] is not None:
                confs = getattr(words[i], "confs", None)  # WordInfo: one score per character
                if confs is not None and len(confs) == len(txt):
                    char_scores = [float(c) for c in confs]
            results.append((str(txt), float(score), char_scores))
        return results


_ENGINES: dict[str, OcrEngine] = {}


def get_engine(name: str = "rapidocr") -> OcrEngine:
    """The process-wide engine of that name, created on first use (model load ≈ 1 s)."""
    if name not in _ENGINES:
        if name == "rapidocr":
            _ENGINES[name] = RapidOcrEngine()
        else:
            raise ValueError(f"unknown OCR engine {name!r}")
    return _ENGINES[name]
