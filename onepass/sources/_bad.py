"""The on_bad_record policy, shared by every format: one code path.

Readers never act on a bad record themselves. They describe it with a
:class:`BadRecord` (where it ends, where it is, why) and hand it to the
:class:`~onepass.sources.Source`, which commits it through :class:`BadRecordPolicy`
exactly when the batch after it is yielded. That keeps the counts and the quarantine
file size in every cursor equal to what lies before the cursor, so resume is exact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from onepass.errors import BadRecordError, InvalidParameterError

__all__ = ["BAD_RECORD_MODES", "BadRecord", "BadRecordPolicy"]

BAD_RECORD_MODES = ("fail", "skip", "quarantine")


@dataclass
class BadRecord:
    """One malformed record found by a reader.

    Parameters
    ----------
    end : int
        Position right after the record (byte offset of the next line, or row index + 1).
    line : int
        1-based line (text formats) or row number (parquet, npy) within the file.
    reason : str
        What is wrong, e.g. ``expected 3 columns, got 2``.
    column : str or int or None
        Column name (with a header) or 0-based index, when one column is at fault.
    raw : str
        The raw line, or a JSON rendering of the row.
    """

    end: int
    line: int
    reason: str
    column: str | int | None = None
    raw: str = ""


class BadRecordPolicy:
    """Apply ``on_bad_record`` to bad records: raise, count and drop, or quarantine.

    Parameters
    ----------
    mode : {"fail", "skip", "quarantine"}
    quarantine_file : str or PathLike or None
        Local file the quarantined records are appended to, as JSON lines
        ``{"source", "line", "column", "reason", "raw"}``. Required in quarantine mode.
    n_skipped, n_quarantined : int
        Running totals to start from (restored from a cursor).
    quarantine_bytes : int or None
        When resuming, the quarantine file is truncated back to this size, so records
        written after the checkpoint are not written twice.
    """

    def __init__(self, mode: str, quarantine_file: Any = None, *, n_skipped: int = 0,
                 n_quarantined: int = 0, quarantine_bytes: int | None = None) -> None:
        if mode not in BAD_RECORD_MODES:
            raise InvalidParameterError(
                f"on_bad_record={mode!r} is not one of {', '.join(map(repr, BAD_RECORD_MODES))}")
        if mode == "quarantine" and quarantine_file is None:
            raise InvalidParameterError(
                "on_bad_record='quarantine' needs quarantine_file (--quarantine-file PATH)")
        self.mode = mode
        self.n_skipped = int(n_skipped)
        self.n_quarantined = int(n_quarantined)
        self._file = None
        if mode == "quarantine":
            path = os.fspath(quarantine_file)
            self._file = open(path, "ab")
            if quarantine_bytes is not None:
                size = self._file.seek(0, os.SEEK_END)
                if quarantine_bytes > size:
                    self._file.close()
                    raise InvalidParameterError(
                        f"the cursor records {quarantine_bytes} bytes of quarantine file "
                        f"{path}, but it holds {size}; pass the quarantine file of the run "
                        "that wrote the cursor")
                self._file.truncate(quarantine_bytes)
            self._file.seek(0, os.SEEK_END)

    @property
    def quarantine_bytes(self) -> int | None:
        """Size of the quarantine file after the last record committed (None if unused)."""
        return None if self._file is None else self._file.tell()

    def commit(self, record: BadRecord, source: str) -> None:
        """Raise, count or quarantine ``record`` found in ``source``."""
        if self.mode == "fail":
            raise BadRecordError(record.reason, source=source, line=record.line,
                                 column=record.column)
        if self.mode == "skip":
            self.n_skipped += 1
            return
        entry = {"source": source, "line": record.line, "column": record.column,
                 "reason": record.reason, "raw": record.raw}
        assert self._file is not None
        self._file.write(json.dumps(entry).encode() + b"\n")
        self._file.flush()
        self.n_quarantined += 1

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
