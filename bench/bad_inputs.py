"""Bad-input drill: a folder of 20 bad files and 5 good ones through `scanforms run`.

    .venv/bin/python bench/bad_inputs.py [--keep DIR] [--cache DIR] [-j N]

Builds the folder (misnamed, truncated, corrupt, zero-page, encrypted, bomb-sized,
huge-page, formless, unreadable, dangling-link files, and the 4 sample scans of
data/raw plus a PNG rendered from one), runs the `scanforms` command on it as a
subprocess, and prints what came out: the good outputs, each failure with its
page and reason, warnings, the exit status, and whether a traceback reached the
user. Exits 0 when the outcome is the expected one (5 good, 20 failures with
distinct reasons, non-zero status, no traceback).

As root (permission bits don't stop root) the command runs as `nobody` through
setpriv, so the chmod-000 file really is unreadable.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data" / "raw"
NOBODY = (65534, 65534)


def minimal_pdf(media_box: str = "0 0 595 842", n_pages: int = 1) -> bytes:
    """A valid PDF of blank pages, written by hand (any page size, even zero pages)."""
    kids = " ".join(f"{3 + i} 0 R" for i in range(n_pages))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode()]
    objs += [f"<< /Type /Page /Parent 2 0 R /MediaBox [{media_box}] >>".encode()] * n_pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + o + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def encrypted_pdf(src: Path, user_password: str) -> bytes:
    """`src` encrypted (RC4-128: pypdf needs no crypto library for it); "" = opens without a password."""
    from pypdf import PdfWriter

    w = PdfWriter(clone_from=str(src))
    w.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def png_bytes(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A PNG whose header claims width x height 1-bit pixels, in a few hundred bytes (never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" + b"\xff" * (width // 8), 9)  # one row; the rest is missing
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def page_with_text(lines: list[str], grid: bool = False) -> Image.Image:
    """A white A4-ish page (1240 x 1754, 150 DPI) with typed lines, optionally in a ruled 3 x 3 table."""
    import cv2

    img = np.full((1754, 1240), 255, np.uint8)
    y = 200
    for t in lines:
        cv2.putText(img, t, (150, y), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 0, 2, cv2.LINE_AA)
        y += 70
    if grid:
        xs, ys = [150, 500, 800, 1090], [600, 700, 800, 900]
        for x in xs:
            cv2.line(img, (x, ys[0]), (x, ys[-1]), 0, 3)
        for yy in ys:
            cv2.line(img, (xs[0], yy), (xs[-1], yy), 0, 3)
        words = [["Item", "Qty", "Price"], ["Paper", "10", "25.00"], ["Toner", "2", "80.00"]]
        for r, row in enumerate(words):
            for c, w in enumerate(row):
                cv2.putText(img, w, (xs[c] + 20, ys[r] + 65), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 0, 2, cv2.LINE_AA)
    return Image.fromarray(img)


def two_page_tiff_bad_second() -> bytes:
    """A 2-page TIFF whose second page is cut short (page 1 reads, page 2 doesn't)."""
    frames = [page_with_text(["page one"]), page_with_text(["page two"])]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    return buf.getvalue()[:-5000]


def build_bad(folder: Path) -> dict[str, str]:
    """Write the 20 bad files; returns name -> what is wrong with it."""
    folder.mkdir(parents=True, exist_ok=True)
    good_pdf = (RAW / "d025.pdf").read_bytes()
    png = png_bytes(page_with_text(["x"]))
    jpg = io.BytesIO()
    page_with_text(["a photo of a page"]).convert("RGB").save(jpg, format="JPEG", quality=90)
    docx = io.BytesIO()
    with zipfile.ZipFile(docx, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    gif = io.BytesIO()
    page_with_text(["gif"]).save(gif, format="GIF")
    idat = png.index(b"IDAT") + 40
    bad_crc = png[:idat] + bytes(b ^ 0x5A for b in png[idat : idat + 64]) + png[idat + 64 :]
    files: dict[str, tuple[bytes, str]] = {
        "empty.pdf": (b"", "0 bytes"),
        "notes.pdf": ("会议纪要：请见附件。\nMinutes of the meeting.\n".encode() * 20, "a text file named .pdf"),
        "download.pdf": (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "an HTML error page"),
        "letter.pdf": (docx.getvalue(), "a .docx (ZIP) named .pdf"),
        "scan.png": (gif.getvalue(), "a GIF named .png"),
        "garbage.pdf": (b"%PDF-1.4\n" + os.urandom(4000) + b"\n%%EOF\n", "PDF header, random body"),
        "truncated.pdf": (good_pdf[: len(good_pdf) // 2], "half of a good PDF"),
        "zero_pages.pdf": (minimal_pdf(n_pages=0), "a valid PDF with no pages"),
        "encrypted.pdf": (encrypted_pdf(RAW / "d030.pdf", "secret"), "needs a user password"),
        "truncated.png": (png[: len(png) // 2], "half of a PNG"),
        "bad_crc.png": (bad_crc, "PNG with damaged compressed data"),
        "bomb.png": (bomb_png(), "header claims 40000 x 40000 px"),
        "huge_page.pdf": (minimal_pdf("0 0 14400 14400"), "a 200 x 200 inch page"),
        "tiny_page.pdf": (minimal_pdf("0 0 0.5 0.5"), "a page with no area"),
        "cover_letter.png": (
            png_bytes(page_with_text(["Dear Sir or Madam,", "please find the forms attached.", "Regards"])),
            "text, no table",
        ),
        "price_list.png": (png_bytes(page_with_text(["Price list"], grid=True)), "a table, not a form"),
        "two_pages.tif": (two_page_tiff_bad_second(), "page 2 cut short"),
        "truncated.jpg": (jpg.getvalue()[: len(jpg.getvalue()) // 3], "a third of a JPEG"),
        "locked.pdf": (good_pdf, "mode 000: unreadable"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    os.chmod(folder / "locked.pdf", 0)
    (folder / "moved.pdf").symlink_to(folder / "no-longer-here.pdf")
    what = {name: why for name, (_, why) in files.items()}
    what["moved.pdf"] = "symbolic link to a file that is gone"
    return what


def build_good(folder: Path) -> list[str]:
    """The 4 sample scans of data/raw, and a PNG rendered from one of them."""
    import pypdfium2 as pdfium

    names = []
    for src in sorted(RAW.glob("*.pdf")):
        shutil.copy(src, folder / src.name)
        names.append(src.name)
    doc = pdfium.PdfDocument(str(RAW / "d025.pdf"))
    try:
        doc[0].render(scale=220 / 72).to_pil().convert("L").save(folder / "d025_page1.png", dpi=(220, 220))
    finally:
        doc.close()
    return names + ["d025_page1.png"]


def unprivileged_prefix() -> list[str] | None:
    """Command prefix that runs `scanforms` without root's bypass of permission bits.

    [] when not root; setpriv-as-nobody when root and nobody can run it (the checkout may sit in
    a folder private to root); None when neither works.
    """
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", f"--reuid={NOBODY[0]}", f"--regid={NOBODY[1]}", "--clear-groups"]
    if not shutil.which("setpriv"):
        return None
    probe = subprocess.run(
        [*prefix, str(Path(sys.executable).parent / "scanforms"), "--help"],
        capture_output=True,
        cwd="/",
        env=dict(os.environ, HOME="/"),
    )
    # Prefect starts its temporary server as a child of sys.executable: a venv whose interpreter
    # links into root's home (pyenv under /root) runs for nobody only through a fallback Python,
    # and that child then fails. Nobody must be able to start the venv's interpreter itself.
    child = subprocess.run(
        [*prefix, sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', ''], check=True)"],
        capture_output=True,
        cwd="/",
        env=dict(os.environ, HOME="/"),
    )
    return prefix if probe.returncode == 0 and child.returncode == 0 else None


@dataclass
class Outcome:
    rc: int
    good: dict[str, int]  # output file -> number of records
    failures: list[dict]
    warnings: list[dict]
    traceback: bool
    stderr: str
    expected_bad: dict[str, str] = field(default_factory=dict)
    expected_good: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        reasons = [f["reason"] for f in self.failures]
        failed = {Path(f["file"]).name for f in self.failures}
        return (
            len(self.good) == len(self.expected_good)
            and failed == set(self.expected_bad)
            and len(set(reasons)) == len(reasons)
            and self.rc != 0
            and not self.traceback
        )


def run(work: Path, cache: Path | None = None, jobs: int = 1) -> Outcome:
    """Build the folder under `work`, run `scanforms run` on it, collect what came out."""
    src, out = work / "in", work / "out"
    bad = build_bad(src)
    good = build_good(src)
    out.mkdir()
    env = dict(os.environ, HOME=str(work), PYTHONUNBUFFERED="1")
    env.pop("SCANFORMS_OCR_CACHE", None)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        env["SCANFORMS_OCR_CACHE"] = str(cache)
    cmd = [str(Path(sys.executable).parent / "scanforms"), "run", str(src), "--out", str(out), "-j", str(jobs)]
    prefix = unprivileged_prefix()
    if prefix is None:
        raise SystemExit("running as root, and nobody cannot run scanforms here: no way to make a file unreadable")
    if prefix:
        # root reads anything: run as nobody, so the mode-000 file is unreadable as for any service user
        for p in [work, src, *src.iterdir()]:  # (work's parents must be open to others too)
            if not p.is_symlink() and p.name != "locked.pdf":
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
        prefect_home = work / "prefect"  # Prefect's database and profile, writable by nobody
        prefect_home.mkdir(exist_ok=True)
        env["PREFECT_HOME"] = str(prefect_home)
        for p in [out, prefect_home] + ([cache] if cache else []):
            for q in [p, *p.rglob("*")]:
                os.chown(q, *NOBODY)
        cmd = prefix + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    if not (out / "run_report.json").exists():
        raise SystemExit(f"no run_report.json (exit status {proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    good_out = {
        f.name: len(json.loads(f.read_text(encoding="utf-8")))
        for f in sorted(out.glob("*.json"))
        if f.name != "run_report.json"
    }
    return Outcome(
        rc=proc.returncode,
        good=good_out,
        failures=report["failures"],
        warnings=report.get("warnings", []),
        traceback="Traceback" in proc.stderr + proc.stdout,
        stderr=proc.stderr,
        expected_bad=bad,
        expected_good=good,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, help="build and keep the folders here (default: a temp folder)")
    ap.add_argument("--cache", type=Path, help="OCR cache folder (SCANFORMS_OCR_CACHE) for repeated runs")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    args = ap.parse_args()
    tmp = None
    if args.keep:
        args.keep.mkdir(parents=True)
        work = args.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="scanforms-bad-")
        work = Path(tmp.name)
    try:
        o = run(work, args.cache, args.jobs)
    finally:
        if tmp:
            tmp.cleanup()
    print(f"inputs: {len(o.expected_good)} good + {len(o.expected_bad)} bad")
    print(f"good outputs ({len(o.good)}):")
    for name, n in o.good.items():
        print(f"  {name}: {n} record(s)")
    print(f"failures ({len(o.failures)}, {len({f['reason'] for f in o.failures})} distinct reasons):")
    for f in sorted(o.failures, key=lambda f: Path(f["file"]).name):
        page = f" p{f['page']}" if f.get("page") else ""
        print(f"  {Path(f['file']).name}{page}: {f['reason']}")
    for w in o.warnings:
        print(f"warning: {Path(w['file']).name}: {w['reason']}")
    print(f"exit status: {o.rc}")
    print(f"traceback printed: {'yes' if o.traceback else 'no'}")
    print("outcome:", "as expected" if o.ok else "NOT as expected")
    if not o.ok:
        print(o.stderr[-3000:], file=sys.stderr)
    return 0 if o.ok else 1


if __name__ == "__main__":
    sys.exit(main())
