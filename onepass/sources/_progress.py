"""How far through its data a source is: the share of its files read, from a cursor.

A progress bar turns it into a total, a percentage and the time left. The share is the
files before the cursor's, plus the part of the cursor's file read: bytes for the
formats whose cursor is a byte offset, rows for those counted in rows (Parquet, .npy).
It is unknown (None) for stdin, compressed files (their cursor counts bytes of the
decompressed text) and files whose size cannot be had.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReadFraction"]

_PACKED = (".gz", ".bz2", ".xz", ".zst")


class ReadFraction:
    """``fraction(cursor)``: the share of ``entries`` read when ``cursor`` was written."""

    def __init__(self, entries: list[Any], fmt: str) -> None:
        self._entries, self._format = entries, fmt
        self._sizes: list[int] | None = None
        self._before: list[int] = []  # bytes of the files before each one
        self._known: bool | None = None
        self._rows: dict[int, int | None] = {}

    def __call__(self, cursor: dict[str, Any]) -> float | None:
        if not self._sizes_known() or not isinstance(cursor.get("file"), int):
            return None
        sizes, i = self._sizes, cursor["file"]
        total = self._before[-1]
        if not 0 <= i < len(sizes) or total <= 0:  # type: ignore[arg-type]
            return None
        share = self._share_of_file(i, cursor)
        if share is None:
            return None
        return min(1.0, (self._before[i] + share * sizes[i]) / total)  # type: ignore[index]

    def _sizes_known(self) -> bool:
        """Every file's size, looked up once (and their running sums), or False."""
        if self._known is None:
            sizes = [_size(e) for e in self._entries]
            self._known = all(s is not None for s in sizes)
            if self._known:
                self._sizes = sizes  # type: ignore[assignment]
                self._before = [0]
                for s in sizes:
                    self._before.append(self._before[-1] + s)  # type: ignore[operator]
        return self._known

    def _share_of_file(self, i: int, cursor: dict[str, Any]) -> float | None:
        size = self._sizes[i]  # type: ignore[index]
        if "offset" in cursor:
            return min(1.0, int(cursor["offset"]) / size) if size else 1.0
        if "row" in cursor:
            if i not in self._rows:
                self._rows[i] = _rows_in(self._entries[i], self._format)
            rows = self._rows[i]
            return None if not rows else min(1.0, int(cursor["row"]) / rows)
        return None


def _size(entry: Any) -> int | None:
    """The bytes of ``entry``'s file; None for stdin, a compressed file, or no size."""
    if entry.name.lower().endswith(_PACKED):
        return None
    try:
        return entry.size()
    except (OSError, TypeError, ValueError):
        return None


def _rows_in(entry: Any, fmt: str) -> int | None:
    """The rows of a Parquet or .npy file, from its footer or header."""
    try:
        if fmt == "parquet" or (fmt == "series" and entry.name.lower().endswith((".parquet", ".pq"))):
            import pyarrow.parquet as pq

            if entry.fs is None:
                return int(pq.read_metadata(entry.path).num_rows)
            with entry.fs.open(entry.path, "rb") as fh:
                return int(pq.read_metadata(fh).num_rows)
        if fmt == "npy" and entry.fs is None:
            import numpy as np

            return int(np.load(entry.path, mmap_mode="r", allow_pickle=False).shape[0])
    except Exception:  # noqa: BLE001  (a bar without a total, never a failed run)
        return None
    return None
