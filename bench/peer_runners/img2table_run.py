"""img2table on page images, run inside bench/.venvs/img2table (never imported by the pipeline).

    python img2table_run.py IN.json OUT.json

IN.json: {"pngs": [paths], "ocr": "rapidocr" | "tesseract", "threads": 2, "detect_rotation": true}.
OUT.json: {"engine", "load_s", "pages": [{"png", "seconds", "cells": [{"table", "row", "col",
"text", "bbox"}]}]}. The OCR engine is built once and timed apart (load_s); each page's
seconds cover reading the image, table detection and OCR.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from runner_common import cpu_seconds, read_job, write_result  # the runners' folder is on sys.path


def build_ocr(name: str, threads: int) -> Any:
    if name == "rapidocr":
        from img2table.ocr import RapidOCR
        from rapidocr import LangRec

        # Same models and thread count as our pipeline's engine (rapidocr wheel's PP-OCR det/rec,
        # Chinese rec): the adapter's default is English rec, which would need a download.
        return RapidOCR(
            params={
                "Rec.lang_type": LangRec.CH,
                "Global.log_level": "error",
                "Global.use_cls": False,
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )
    if name == "tesseract":
        from img2table.ocr import TesseractOCR

        os.environ.setdefault("OMP_THREAD_LIMIT", str(threads))
        return TesseractOCR(n_threads=1, lang="chi_sim", psm=int(os.environ.get("PEER_TESSERACT_PSM", "11")))
    raise SystemExit(f"unknown ocr {name!r}")


def main() -> int:
    job, dst = read_job()
    t0 = time.perf_counter()
    ocr = build_ocr(job["ocr"], int(job.get("threads", 2)))
    from img2table.document import Image

    load_s = time.perf_counter() - t0
    rotate = bool(job.get("detect_rotation", True))

    def extract(src: str | bytes) -> list:
        # img2table deskews itself when asked: scans come skewed by a few degrees
        return Image(src=src, detect_rotation=rotate).extract_tables(
            ocr=ocr, implicit_rows=False, implicit_columns=False, borderless_tables=False, min_confidence=50
        )

    # First inference pays one-off costs (session warm-up, lazy imports): paid on the top third of
    # the first page, reported apart, as every engine in bench/peers.py does.
    t = time.perf_counter()
    if job["pngs"]:
        import cv2

        img = cv2.imread(job["pngs"][0])
        extract(cv2.imencode(".png", img[: img.shape[0] // 3])[1].tobytes())
    warmup_s = time.perf_counter() - t
    pages = []
    for png in job["pngs"]:
        t, c = time.perf_counter(), cpu_seconds()
        tables = extract(png)
        seconds, cpu = time.perf_counter() - t, cpu_seconds() - c
        cells = []
        for ti, table in enumerate(tables):
            seen: set[tuple[int, int, int, int]] = set()
            for r, row in enumerate(table.content.values()):
                for c, cell in enumerate(row):
                    b = (cell.bbox.x1, cell.bbox.y1, cell.bbox.x2, cell.bbox.y2)
                    if b in seen:  # a merged cell is repeated at every position it spans
                        continue
                    seen.add(b)
                    cells.append({"table": ti, "row": r, "col": c, "text": cell.value or "", "bbox": list(b)})
        pages.append({"png": png, "seconds": round(seconds, 4), "cpu_s": round(cpu, 4), "cells": cells})
        print(
            f"{job['ocr']} {os.path.basename(png)} {seconds:.2f}s {len(cells)} cells",
            file=sys.stderr,
            flush=True,
        )
    write_result(dst, f"img2table-{job['ocr']}", load_s, warmup_s, pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
