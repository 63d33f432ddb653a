"""Atomic output: a failed or interrupted write leaves the old file whole, and no temp file behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline import export
from pipeline.errors import OutputError


class _Boom(Exception):
    pass


def test_old_file_survives_a_crash_mid_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "a.json"
    export.atomic_write_text(f, '{"old": true}')
    real_fsync = os.fsync

    def crash(fd: int) -> None:  # the data is in the temp file, the rename has not happened
        real_fsync(fd)
        raise _Boom()

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(_Boom):
        export.atomic_write_text(f, '{"new": true, "half": "written"}')
    assert f.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # the temp file is gone


def test_write_is_complete_or_absent(tmp_path: Path) -> None:
    f = tmp_path / "b.json"
    export.atomic_write_bytes(f, b"x" * 100_000)
    assert f.stat().st_size == 100_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]


def test_target_that_cannot_be_replaced_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "c.json").mkdir()  # a folder where the file should go
    with pytest.raises(OutputError) as ei:
        export.atomic_write_text(tmp_path / "c.json", "{}")
    assert "cannot write" in ei.value.reason and ei.value.path == tmp_path / "c.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_folder_under_a_file_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError) as ei:
        export.atomic_write_text(tmp_path / "file" / "out" / "d.json", "{}")
    assert "not writable" in ei.value.reason
    with pytest.raises(OSError):
        export.ensure_writable_dir(tmp_path / "file" / "out")
    export.ensure_writable_dir(tmp_path / "fine")  # a new folder is created and probed
    assert list((tmp_path / "fine").iterdir()) == []
