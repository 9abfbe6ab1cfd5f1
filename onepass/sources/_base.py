"""What readers hand to the Source: chunks of parsed rows with their positions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from onepass.errors import InvalidParameterError, OnePassError
from onepass.sources._bad import BadRecord
from onepass.sources._transport import Entry

__all__ = ["BatchStream", "Chunk", "Options", "Reader", "concat_chunks", "reading_cursor"]


@dataclass
class Options:
    """Format options, validated once by :func:`onepass.sources.open_source`."""

    batch_size: int = 4096
    label_column: str | int | None = None
    weight_column: str | int | None = None
    header: bool | None = None
    n_features: int | None = None
    dtype: Any = np.float32
    zero_based: bool = False
    delimiter: str | None = None
    vocabulary: list[str] | None = None
    document: str = "line"
    # format "series" read from a long table (one row per series and time step)
    series_id_column: str | int | None = None
    timestamp_column: str | int | None = None
    target_column: str | int | None = None
    dynamic_feat_columns: list[str | int] | None = None
    cat_columns: list[str | int] | None = None
    # the columns of X by name, in order (a model's schema): others are left out
    feature_columns: list[str] | None = None


@dataclass
class Chunk:
    """Rows parsed from one stretch of one file, in file order.

    ``ends[i]`` is the position right after row ``i`` (byte offset of the next line, or
    row index + 1); ``lines[i]`` its 1-based line or row number. ``bad`` lists the bad
    records of the same stretch, in order.
    """

    X: Any
    y: np.ndarray | None
    w: np.ndarray | None
    ends: np.ndarray
    lines: np.ndarray
    bad: list[BadRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def rows(self, a: int, b: int) -> Chunk:
        return Chunk(self.X[a:b], None if self.y is None else self.y[a:b],
                     None if self.w is None else self.w[a:b], self.ends[a:b], self.lines[a:b])


def concat_chunks(parts: list[Chunk]) -> Chunk:
    if len(parts) == 1:
        return parts[0]
    X0 = parts[0].X
    if hasattr(X0, "concat"):  # series records (onepass.sources._series.SeriesRows)
        return Chunk(type(X0).concat([p.X for p in parts]), None, None, np.concatenate([p.ends for p in parts]),
                     np.concatenate([p.lines for p in parts]))
    X = sp.vstack([p.X for p in parts], format="csr") if sp.issparse(X0) else np.concatenate(
        [p.X for p in parts])
    y = None if parts[0].y is None else np.concatenate([p.y for p in parts])
    w = None if parts[0].w is None else np.concatenate([p.w for p in parts])
    return Chunk(X, y, w, np.concatenate([p.ends for p in parts]),
                 np.concatenate([p.lines for p in parts]))


class Reader:
    """A format: turns the bytes of one file into chunks.

    Subclasses set ``name`` and implement :meth:`read`; :meth:`position` turns a row's
    (end, line) into the format's cursor fields.
    """

    name = ""
    #: whether a file of this format can come from stdin
    can_stream = False
    #: whether a batch may gather rows of several files (each file is one row)
    spans_files = False
    #: whether each chunk is a whole batch, cut by the reader (whose records may gather
    #: rows from all over the chunk, so that a cursor inside it could not resume exactly)
    chunks_are_batches = False

    def __init__(self, options: Options) -> None:
        self.options = options
        self.n_features: int | None = options.n_features
        #: the names of X's columns, from the header of the last file laid out (None
        #: without a header, or for a format without column names)
        self.feature_columns: list[str] | None = None
        #: the columns of that file left out of X that are neither label nor weight
        self.unused_columns: list[str] = []
        #: every column of that file by name, in order
        self.columns: list[str] | None = None

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:  # pragma: no cover
        raise NotImplementedError

    def read_files(self, entries: list[Entry], first: int, start: dict | None) -> Iterator[tuple[int, Chunk]]:
        """``(file index, chunk)`` for every file from ``entries[first]`` (resumed at
        ``start``) on: what the Source reads when :attr:`spans_files` is set, so a reader
        may handle many small files at once."""
        for index in range(first, len(entries)):
            for chunk in self.read(entries[index], start if index == first else None):
                yield index, chunk

    def position(self, end: int, line: int) -> dict:
        return {"offset": int(end), "line": int(line)}

    def start_of(self, cursor: dict) -> dict:
        """The fields of ``cursor`` this reader resumes from."""
        return {"offset": int(cursor["offset"]), "line": int(cursor["line"])}


@contextlib.contextmanager
def reading_cursor(cursor: dict) -> Iterator[None]:
    """Turn a cursor's missing field or wrong type into InvalidParameterError naming it."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, OnePassError):
            raise
        raise InvalidParameterError(f"malformed cursor {cursor!r}: {e!r}") from None


class BatchStream:
    """What every source is: an iterator of batches made by its ``_batches()`` generator
    and a context manager that closes it, counting the bad records its policy set aside.
    :class:`~onepass.sources.Source` (files) and
    :class:`~onepass.sources._stream_source.StreamSource` (record transports) are two."""

    _gen: Iterator[Any] | None = None
    _policy: Any
    n_rows_read: int
    n_features: int | None

    @property
    def n_skipped(self) -> int:
        return self._policy.n_skipped

    @property
    def n_quarantined(self) -> int:
        return self._policy.n_quarantined

    def _batches(self) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _take_counts(self, cursor: dict, reader: Any) -> None:
        """Go on from ``cursor``'s row count and width (the width given to ``reader`` too,
        which parses the rows), refusing a width that contradicts the declared one."""
        self.n_rows_read = int(cursor["rows"])
        if cursor.get("n_features") is not None:
            if self.n_features is not None and self.n_features != cursor["n_features"]:
                raise InvalidParameterError(
                    f"n_features={self.n_features} but the cursor was saved with n_features={cursor['n_features']}")
            self.n_features = int(cursor["n_features"])
            reader.n_features = self.n_features

    def _counts(self) -> dict:
        """The cursor fields every source writes after its position: rows, bad records,
        quarantine size, width."""
        return {"rows": self.n_rows_read, "skipped": self._policy.n_skipped, "quarantined": self._policy.n_quarantined,
                "quarantine_bytes": self._policy.quarantine_bytes, "n_features": self.n_features}

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        if self._gen is None:
            self._gen = self._batches()
        return next(self._gen)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and close the quarantine file (and what the source holds open)."""
        if self._gen is not None:
            self._gen.close()
        self._policy.close()
