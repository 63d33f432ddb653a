"""Conditions the dev corpus does not have: how reading and confidence hold on them.

    .venv/bin/python bench/unseen.py [--forms d021,d022,...] [--conditions jpeg,dim,...]
        [--work DIR] [--json OUT] [-j 2]

The dev corpus's born-digital forms (manifest variant `clean`) are rendered and degraded in
ways the corpus never shows (below), written as image PDFs with their truth (the clean file's,
renamed) and a manifest, run through `scanforms run` and scored with `shared/eval/score.py`
by condition. The confidence model was fitted on the corpus alone, so its figures here are
held-out ones: whether a wrong cell is flagged (`errors_flagged`) and how often an accepted
cell is wrong (`accepted_error_rate`) on pages it has never seen the like of.

Conditions (`CONDITIONS`): JPEG at quality 12 on a 150-DPI render (block artefacts), a faded
copy (grey ink on grey paper, noise), yellowed paper lit from one corner, a sheet fed upside
down, a scanner that squeezes the page across, a red seal stamped over text, a 100-DPI copy,
a 1-bit copy whose strokes ran thick, a defocused copy, speckle. A script, not a test: it
takes minutes and its figures are for the closing note.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEV = SHARED / "corpus" / "dev"

Image = np.ndarray


def _gray(rgb: Image) -> Image:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _rotate(img: Image, deg: float, paper: int = 255) -> Image:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    border = (paper,) * 3 if img.ndim == 3 else paper
    return cv2.warpAffine(img, m, (w, h), borderValue=border)


def jpeg(rgb: Image, rng: np.random.Generator) -> Image:
    ok, buf = cv2.imencode(".jpg", _gray(rgb), [cv2.IMWRITE_JPEG_QUALITY, 12])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def dim(rgb: Image, rng: np.random.Generator) -> Image:
    g = _gray(rgb).astype(np.float32)
    g = 205 - (255 - g) * (70 / 255) + rng.normal(0, 7, g.shape)
    return np.clip(g, 0, 255).astype(np.uint8)


def cast(rgb: Image, rng: np.random.Generator) -> Image:
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    light = 1.0 - 0.45 * ((xx / w) ** 2 + (yy / h) ** 2) / 2
    img = rgb.astype(np.float32) * np.array([1.0, 0.93, 0.72]) * light[..., None]
    return _rotate(np.clip(img, 0, 255).astype(np.uint8), 1.0, 230)


def flip(rgb: Image, rng: np.random.Generator) -> Image:
    return _rotate(cv2.rotate(_gray(rgb), cv2.ROTATE_180), -1.5)


def narrow(rgb: Image, rng: np.random.Generator) -> Image:
    g = _gray(rgb)
    h, w = g.shape
    return cv2.GaussianBlur(cv2.resize(g, (int(w * 0.85), h), interpolation=cv2.INTER_AREA), (0, 0), 0.8)


def seal(rgb: Image, rng: np.random.Generator) -> Image:
    """A red ring with a star and a band of text-like strokes over the page's upper third."""
    img = rgb.copy()
    h, w = img.shape[:2]
    overlay = np.zeros((h, w), np.uint8)
    for _ in range(2):
        cx, cy, r = int(rng.uniform(0.3, 0.7) * w), int(rng.uniform(0.15, 0.6) * h), int(0.09 * w)
        cv2.circle(overlay, (cx, cy), r, 255, max(2, r // 18))
        star = np.array([[cx + r * 0.35 * np.cos(a), cy + r * 0.35 * np.sin(a)]
                         for a in np.linspace(-np.pi / 2, 3.5 * np.pi, 5, endpoint=False)], np.int32)
        cv2.fillPoly(overlay, [star[[0, 2, 4, 1, 3]]], 255)
        for k in range(8):  # the seal's lettering round the ring
            a = np.pi * (0.9 + 1.2 * k / 7)
            x, y = int(cx + 0.75 * r * np.cos(a)), int(cy + 0.75 * r * np.sin(a))
            cv2.rectangle(overlay, (x - r // 14, y - r // 14), (x + r // 14, y + r // 14), 255, max(1, r // 40))
    ink = (overlay > 0)[..., None] * np.array([200, 40, 50], np.float32)
    alpha = 0.75 * (overlay > 0)[..., None]
    return np.clip(img * (1 - alpha) + ink * alpha * (img / 255.0), 0, 255).astype(np.uint8)


def lowres(rgb: Image, rng: np.random.Generator) -> Image:
    return _gray(rgb)  # rendered at 100 DPI (CONDITIONS)


def thick(rgb: Image, rng: np.random.Generator) -> Image:
    g = cv2.erode(_gray(rgb), np.ones((3, 3), np.uint8))
    return np.where(g < 170, 0, 255).astype(np.uint8)


def defocus(rgb: Image, rng: np.random.Generator) -> Image:
    return cv2.GaussianBlur(_gray(rgb), (0, 0), 1.6)


def speckle(rgb: Image, rng: np.random.Generator) -> Image:
    g = _gray(rgb).copy()
    dots = rng.random(g.shape) < 0.004
    g[dots] = rng.integers(0, 90, int(dots.sum()))
    return cv2.GaussianBlur(g, (3, 3), 0)


# name -> (degradation of an RGB render, render DPI)
CONDITIONS: dict[str, tuple[Callable[[Image, np.random.Generator], Image], int]] = {
    "jpeg": (jpeg, 150), "dim": (dim, 200), "cast": (cast, 200), "flip": (flip, 200),
    "narrow": (narrow, 200), "seal": (seal, 200), "lowres": (lowres, 100), "thick": (thick, 200),
    "defocus": (defocus, 200), "speckle": (speckle, 200),
}


def clean_forms() -> list[str]:
    with (DEV / "manifest.csv").open(encoding="utf-8") as fh:
        return [Path(r["file"]).stem for r in csv.DictReader(fh) if r["variant"] == "clean"]


def make(work: Path, forms: list[str], conditions: list[str], seed: int = 7) -> Path:
    """Write work/in/g<condition>_<form>.pdf, work/truth/*.json and work/manifest.csv."""
    import pypdfium2 as pdfium
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    (work / "in").mkdir(parents=True, exist_ok=True)
    (work / "truth").mkdir(exist_ok=True)
    rows = []
    for stem in forms:
        doc = pdfium.PdfDocument(str(DEV / f"{stem}.pdf"))
        for name in conditions:
            fn, dpi = CONDITIONS[name]
            pages = [PILImage.fromarray(fn(np.asarray(p.render(scale=dpi / 72).to_pil().convert("RGB")), rng))
                     for p in doc]
            fname = f"g{name}_{stem}.pdf"
            pages[0].save(work / "in" / fname, save_all=True, append_images=pages[1:], resolution=dpi)
            truth = json.loads((DEV / "truth" / f"{stem}.json").read_text(encoding="utf-8"))
            for rec in truth:
                rec["source"]["file"] = fname
            (work / "truth" / f"g{name}_{stem}.json").write_text(json.dumps(truth, ensure_ascii=False), encoding="utf-8")
            rows.append(f"{fname},{name}")
        doc.close()
    (work / "manifest.csv").write_text("file,variant\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return work


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--forms", help="comma-separated dev stems (default: every clean one)")
    ap.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated, of: " + ",".join(CONDITIONS))
    ap.add_argument("--work", type=Path, default=REPO / "bench" / ".unseen", help="where pages and outputs go")
    ap.add_argument("--json", type=Path, help="write score.py's figures here")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--ocr-cache", type=Path, help="passed to scanforms run (re-runs of the same pages)")
    args = ap.parse_args(argv)
    forms = args.forms.split(",") if args.forms else clean_forms()
    conditions = args.conditions.split(",")
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        ap.error(f"unknown condition(s): {', '.join(unknown)}")
    work = make(args.work, forms, conditions)
    out = work / "out"
    scanforms = Path(sys.executable).with_name("scanforms")
    run = [str(scanforms), "run", str(work / "in"), "--out", str(out), "-j", str(args.jobs), "-q", "--force"]
    subprocess.run(run + (["--ocr-cache", str(args.ocr_cache)] if args.ocr_cache else []), check=True)
    cmd = [sys.executable, str(SHARED / "eval" / "score.py"), "--truth", str(work / "truth"), "--pred", str(out),
           "--manifest", str(work / "manifest.csv")]
    if args.json:
        cmd += ["--json", str(args.json)]
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
