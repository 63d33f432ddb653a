"""PaddleOCR 3.x on page images, run inside bench/.venvs/paddle (never imported by the pipeline).

    python paddle_run.py IN.json OUT.json

IN.json: {"pngs": [paths], "models": dir with det/ and rec/ (bench/setup_peers.sh), "threads": 2}.
OUT.json: {"engine", "load_s", "pages": [{"png", "seconds", "lines": [{"text", "score", "box"}]}]}.
PaddleOCR returns text lines, not tables: the cell-text metric scores lines as units.
Models are loaded from local dirs: PaddleOCR's default loader downloads, which fails offline.
"""

from __future__ import annotations

import json
import os
import sys
import time

from runner_common import cpu_seconds, read_job, write_result  # the runners' folder is on sys.path


def main() -> int:
    job, dst = read_job()
    models = job["models"]
    with open(os.path.join(models, "names.json"), encoding="utf-8") as fh:
        names = json.load(fh)  # written by paddle_models.py: model dir -> Global.model_name
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")  # no hoster probe offline
    t0 = time.perf_counter()
    from paddleocr import PaddleOCR

    ocr = PaddleOCR(
        text_detection_model_name=names["det"],
        text_detection_model_dir=os.path.join(models, "det"),
        text_recognition_model_name=names["rec"],
        text_recognition_model_dir=os.path.join(models, "rec"),
        # our pipeline and the RapidOCR floor run det+rec only: no orientation / unwarping models
        use_doc_orientation_classify=False,
        use_doc_unwarping=False,
        use_textline_orientation=False,
        device="cpu",
        cpu_threads=int(job.get("threads", 2)),
    )
    load_s = time.perf_counter() - t0
    # First inference pays one-off costs (oneDNN kernels, lazy imports): paid on the top third of
    # the first page, reported apart, as every engine in bench/peers.py does.
    t = time.perf_counter()
    if job["pngs"]:
        import cv2

        img = cv2.imread(job["pngs"][0])
        list(ocr.predict(img[: img.shape[0] // 3]))
    warmup_s = time.perf_counter() - t
    pages = []
    for png in job["pngs"]:
        t, c = time.perf_counter(), cpu_seconds()
        results = list(ocr.predict(png))
        seconds, cpu = time.perf_counter() - t, cpu_seconds() - c
        lines = []
        for res in results:
            texts = res["rec_texts"]
            scores = res["rec_scores"]
            polys = res["rec_polys"]
            for text, score, poly in zip(texts, scores, polys, strict=False):
                lines.append(
                    {
                        "text": str(text),
                        "score": round(float(score), 4),
                        "box": [[int(x), int(y)] for x, y in poly],
                    }
                )
        pages.append({"png": png, "seconds": round(seconds, 4), "cpu_s": round(cpu, 4), "lines": lines})
        print(
            f"paddleocr {os.path.basename(png)} {seconds:.2f}s {len(lines)} lines",
            file=sys.stderr,
            flush=True,
        )
    write_result(dst, "paddleocr", load_s, warmup_s, pages, models=names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
