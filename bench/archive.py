"""What the archive outputs (--pdf, --xlsx) cost against reading the file, and how big the PDF is.

    python bench/archive.py [FILE ...] [--out DIR] [--json OUT]

Per file, in one process: `process.run_one` without the flags (the real OCR unless
SCANFORMS_OCR_CACHE is set: leave it unset for honest per-page times), then
`archive.write_outputs` for the PDF and the xlsx separately, each timed; prints
the writers' seconds against the file's processing seconds and the PDF's size
against the input's. Also runs `qpdf --check` and counts pdftotext's characters.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEV = REPO.parent / "shared" / "corpus" / "dev"
DEFAULT = ["d001.pdf", "d025.pdf", "d034.pdf", "d035.pdf", "d038.png", "d053.tif"]


def main(argv: list[str] | None = None) -> int:
    from pipeline import archive, process

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    files = args.files or [DEV / f for f in DEFAULT]
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-archive-"))
    # one-off per process (imports, the font program): paid once a run, not per file
    import img2pdf  # noqa: F401
    import openpyxl  # noqa: F401
    import pikepdf  # noqa: F401

    from pipeline import archive_pdf
    from pipeline.naming import output_keys

    t_warm = time.perf_counter()
    archive_pdf.glyphless_font()
    print(f"font program built in {time.perf_counter() - t_warm:.3f} s")
    rows = []
    for f in files:
        outcome = process.run_one(f, out, process.Options())
        if outcome.error is not None:
            print(f"{f.name}: {outcome.error}")
            continue
        key = output_keys([f])[f]  # what run_one named it by, alone
        t0 = time.perf_counter()
        (pdf,) = archive.write_outputs(out, f, key, pdf=True, xlsx=False)
        t1 = time.perf_counter()
        archive.write_outputs(out, f, key, pdf=False, xlsx=True)
        t2 = time.perf_counter()
        check = subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, text=True).returncode \
            if shutil.which("qpdf") else None
        chars = len(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout) \
            if shutil.which("pdftotext") else None
        row = {
            "file": f.name, "pages": outcome.n_pages, "process_s": round(outcome.seconds, 3),
            "pdf_s": round(t1 - t0, 3), "xlsx_s": round(t2 - t1, 3),
            "overhead": round((t2 - t0) / outcome.seconds, 4),
            "input_bytes": f.stat().st_size, "pdf_bytes": pdf.stat().st_size,
            "size_ratio": round(pdf.stat().st_size / f.stat().st_size, 3), "qpdf_rc": check, "text_chars": chars,
        }
        rows.append(row)
        print(f"{f.name:10} {row['pages']} p  process {row['process_s']:7.2f} s  pdf {row['pdf_s']:.3f} s  "
              f"xlsx {row['xlsx_s']:.3f} s  (+{100 * row['overhead']:.1f} %)  size {row['size_ratio']:.3f}x  "
              f"qpdf rc {check}  text {chars} chars")
    total_p = sum(r["process_s"] for r in rows)
    total_w = sum(r["pdf_s"] + r["xlsx_s"] for r in rows)
    summary = {"files": len(rows), "process_s": round(total_p, 2), "writers_s": round(total_w, 2),
               "overhead": round(total_w / total_p, 4) if total_p else None,
               "max_size_ratio": max((r["size_ratio"] for r in rows), default=None)}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1) + "\n", encoding="utf-8")
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
