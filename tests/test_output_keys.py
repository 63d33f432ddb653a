"""naming.output_keys: one key per input, unique within a run, kept across runs.

Paths only (the files need not exist): the key depends on names and on what the
manifest recorded, never on content.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.naming import output_keys


def _keys(root: Path, names: list[str], recorded: dict[str, str] | None = None) -> dict[str, str]:
    paths = [root / n for n in names]
    rec = {str((root / n).resolve()): k for n, k in (recorded or {}).items()}
    return {str(p.relative_to(root)): k for p, k in output_keys(paths, rec).items()}


def test_unique_stems_keep_their_stem(tmp_path: Path) -> None:
    assert _keys(tmp_path, ["d025.pdf", "sub/d026.pdf", "自评表.tif"]) == {
        "d025.pdf": "d025", "sub/d026.pdf": "d026", "自评表.tif": "自评表"}


def test_same_name_in_two_folders_gets_the_folder(tmp_path: Path) -> None:
    keys = _keys(tmp_path, ["2019/自评表.pdf", "2020/自评表.pdf", "2020/other.pdf"])
    assert keys == {"2019/自评表.pdf": "2019__自评表", "2020/自评表.pdf": "2020__自评表", "2020/other.pdf": "other"}


def test_relative_to_the_folder_the_colliding_files_share(tmp_path: Path) -> None:
    keys = _keys(tmp_path, ["archive/office1/2019/scan0001.pdf", "archive/office2/2019/scan0001.pdf"])
    assert set(keys.values()) == {"office1__2019__scan0001", "office2__2019__scan0001"}


def test_names_that_differ_only_in_case_or_suffix_collide(tmp_path: Path) -> None:
    # a.json and A.json are one file on macOS and Windows; a.pdf and a.png would both be a.json
    keys = _keys(tmp_path, ["x/A.pdf", "y/a.pdf", "z/b.pdf", "z/b.png"])
    assert keys["x/A.pdf"] == "x__A" and keys["y/a.pdf"] == "y__a"
    assert {keys["z/b.pdf"], keys["z/b.png"]} == {"b", "b_png"}
    assert len({k.casefold() for k in keys.values()}) == 4


def test_recorded_keys_are_kept_and_a_newcomer_gets_the_longer_name(tmp_path: Path) -> None:
    """A file of the same name turning up later must not rename the outputs already written."""
    first = _keys(tmp_path, ["x/a.pdf"])
    assert first == {"x/a.pdf": "a"}
    second = _keys(tmp_path, ["x/a.pdf", "y/a.pdf"], recorded=first)
    assert second == {"x/a.pdf": "a", "y/a.pdf": "y__a"}
    assert _keys(tmp_path, ["x/a.pdf", "y/a.pdf"], recorded=second) == second  # stable from then on


def test_a_key_that_is_taken_gets_the_suffix_then_a_hash(tmp_path: Path) -> None:
    # a file really called x__a.pdf holds the name the collision would give x/a.pdf
    keys = _keys(tmp_path, ["x__a.pdf", "x/a.pdf", "y/a.pdf"])
    assert keys == {"x__a.pdf": "x__a", "x/a.pdf": "x__a_pdf", "y/a.pdf": "y__a"}
    keys = _keys(tmp_path, ["x__a.pdf", "x__a_pdf.pdf", "x/a.pdf", "y/a.pdf"])
    assert keys["x/a.pdf"].startswith("x__a~") and len(keys["x/a.pdf"]) == len("x__a~") + 8
    assert len(set(keys.values())) == 4


def test_the_run_report_name_is_reserved(tmp_path: Path) -> None:
    keys = _keys(tmp_path, ["run_report.pdf", "Run_Report.png"])
    assert "run_report" not in {k.casefold() for k in keys.values()}
    assert len(set(keys.values())) == 2
