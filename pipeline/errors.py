"""Typed exceptions, each mapped to a process exit code (as OCRmyPDF does)."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    ok = 0
    bad_args = 1
    input_file = 2  # at least one input could not be read
    no_form = 3  # inputs read, but some held no form
    output_file = 5  # output folder not writable
    other_error = 15


class ScanformsError(Exception):
    """Base class: an error about one input that the batch reports and skips."""

    exit_code = ExitCode.other_error

    def __init__(self, path: Path | str | None, reason: str, page: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        self.page = page
        super().__init__(str(self))

    def __reduce__(self) -> tuple[object, ...]:
        # -j N sends errors back from worker processes: rebuild from our fields, not from args
        return (type(self), (self.path, self.reason, self.page))

    def __str__(self) -> str:
        where = self.path.name if self.path else "<input>"
        if self.page is not None:
            where += f" page {self.page}"
        return f"{where}: {self.reason}"


class InputFileError(ScanformsError):
    """The file cannot be read as a PDF or image (corrupt, encrypted, unsupported)."""

    exit_code = ExitCode.input_file


class EncryptedPdfError(InputFileError):
    """The PDF needs a password we don't have."""


class NoFormFound(ScanformsError):
    """The file was read but holds no form this pipeline knows."""

    exit_code = ExitCode.no_form


class OutputError(ScanformsError):
    """The output folder or a file in it cannot be written."""

    exit_code = ExitCode.output_file


class DocumentTimeout(ScanformsError):
    """The document ran past its time limit (`--timeout`): not a fault of its bytes, so the
    next run tries it again."""


class ModelMissing(ScanformsError):
    """A model file the chosen settings need is not installed."""
