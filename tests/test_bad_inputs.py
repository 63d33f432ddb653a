"""The bad-input drill (bench/bad_inputs.py) as a test: 20 bad files and 5 good ones, one `scanforms run`.

Every bad file is reported with its own reason (and page, where it has one), the good
ones are written, the exit status is non-zero and no traceback reaches the user.
OCR comes from a copy of tests/ocr_cache (the run may be as `nobody`, who must write it).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import new_cache_entries

pytestmark = pytest.mark.slow  # the CLI in subprocesses, some as `nobody`

REPO = Path(__file__).resolve().parents[1]

EXPECTED = {  # file -> (page, words its reason must contain)
    "empty.pdf": (None, "empty file"),
    "notes.pdf": (None, "a text file, not a PDF"),
    "download.pdf": (None, "HTML/XML page"),
    "letter.pdf": (None, "ZIP archive"),
    "scan.png": (None, "GIF image: format not supported"),
    "garbage.pdf": (None, "corrupt or unreadable PDF"),
    "truncated.pdf": (None, "truncated PDF"),
    "zero_pages.pdf": (None, "PDF has no pages"),
    "encrypted.pdf": (None, "encrypted PDF"),
    "truncated.png": (1, "cannot decode PNG"),
    "bad_crc.png": (1, "cannot decode PNG"),
    "bomb.png": (None, "decompression-bomb guard"),
    "huge_page.pdf": (1, "page too large"),
    "tiny_page.pdf": (1, "page has no area"),
    "cover_letter.png": (None, "no form found (no ruled table"),
    "price_list.png": (None, "no form found (1 table(s) written"),
    "two_pages.tif": (2, "cannot decode TIFF"),
    "truncated.jpg": (1, "cannot decode JPEG"),
    "locked.pdf": (None, "permission denied"),
    "moved.pdf": (None, "broken symbolic link"),
}


def test_twenty_bad_five_good() -> None:
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    try:
        import bad_inputs
    finally:
        sys.path.remove(str(REPO / "bench"))
    if bad_inputs.unprivileged_prefix() is None:
        pytest.skip("root, and `nobody` cannot run scanforms here: no file can be made unreadable")
    # not under tmp_path: pytest's folders are private to root, and the run may be as nobody
    work = Path(tempfile.mkdtemp(prefix="scanforms-bad-"))
    try:
        cache = work / "ocr_cache"
        shutil.copytree(REPO / "tests" / "ocr_cache", cache)
        o = bad_inputs.run(work, cache)
        miss = new_cache_entries(cache)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert not o.traceback, o.stderr
    assert miss is None, miss
    assert o.rc == 3, o.stderr  # the worst failure: a file held no form
    assert sorted(o.good) == ["d025.json", "d025_page1.json", "d026.json", "d028.json", "d030.json"]
    assert all(n == 1 for n in o.good.values())
    got = {Path(f["file"]).name: (f["page"], f["reason"]) for f in o.failures}
    assert set(got) == set(EXPECTED)
    for name, (page, words) in EXPECTED.items():
        assert got[name][0] == page and words in got[name][1], (name, got[name])
    reasons = [r for _, r in got.values()]
    assert len(set(reasons)) == 20  # distinct reasons, not one catch-all
    for name in EXPECTED:
        assert f"ERROR {name}" in o.stderr  # and each said on stderr as it happened
    assert o.ok
