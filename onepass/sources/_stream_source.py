"""The StreamSource: a record transport's chunks -> batches with exact cursors.

What :class:`~onepass.sources._source.Source` is to files, this is to a
:class:`~onepass.sources.transports.RecordTransport` (a broker's stream, a query's rows):
the same batches, bad-record policy and attributes, with cursors that hold the
transport's position (the last entry ID or key a batch covers) instead of a file and an
offset, and :meth:`StreamSource.acknowledge` for the training loop to call once a
checkpoint holding a cursor is committed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from onepass.batch import Batch
from onepass.errors import EmptySourceError, FeatureCountError, InvalidParameterError
from onepass.sources._bad import BadRecordPolicy
from onepass.sources._base import BatchStream, Chunk, Options, concat_chunks, reading_cursor
from onepass.sources.transports import RecordTransport

__all__ = ["StreamSource"]

CURSOR_VERSION = 1


class StreamSource(BatchStream):
    """A stream of :class:`~onepass.batch.Batch` from a record transport.

    Create one with :func:`onepass.open_source` on a ``redis://`` or ``postgresql://``
    URI. Iterator and context manager, with :class:`~onepass.sources.Source`'s counts.

    Attributes
    ----------
    n_rows_read, n_skipped, n_quarantined, n_features, feature_names
        As for :class:`~onepass.sources.Source`.
    is_rewindable : bool
        Whether another epoch can read the same records again (a query: yes; a stream
        read by a consumer group: no, its entries are delivered once).
    follows : bool
        Whether it keeps reading as records arrive, until :meth:`stop`.
    files : list of str
        The transport's name (a one-item list, for messages).
    """

    def __init__(self, transport: RecordTransport, fmt: str, options: Options, policy: BadRecordPolicy,
                 cursor: dict | None) -> None:
        self._transport = transport
        self.format = fmt
        self._options = options
        self._policy = policy
        self.n_rows_read = 0
        self.n_features = options.n_features
        self._start: dict | None = None
        if cursor is not None:
            self._restore(cursor)
        self._gen: Iterator[Batch] | None = None

    # -- public -----------------------------------------------------------------
    @property
    def feature_names(self) -> list[str] | None:
        return self._transport.feature_names

    @property
    def is_rewindable(self) -> bool:
        return self._transport.is_rewindable and not self._transport.stream.follow

    @property
    def follows(self) -> bool:
        return self._transport.stream.follow

    @property
    def files(self) -> list[str]:
        return [self._transport.name]

    @property
    def transport(self) -> RecordTransport:
        return self._transport

    def acknowledge(self, cursor: dict | None) -> None:
        """A checkpoint holding ``cursor`` (one of this source's batches' cursors) is
        committed: the transport may forget every record up to it."""
        if cursor is not None and cursor.get("transport") == self._transport.kind:
            self._transport.acknowledge(cursor)

    def stop(self) -> None:
        """End at the next record boundary: the batch in hand is yielded, then the stream
        ends (safe from a signal handler or another thread)."""
        self._transport.stop()

    def close(self) -> None:
        super().close()
        self._transport.close()

    def __repr__(self) -> str:
        return f"StreamSource({self._transport.name!r}, n_rows_read={self.n_rows_read})"

    # -- internals --------------------------------------------------------------
    def _restore(self, cursor: dict) -> None:
        with reading_cursor(cursor):
            if cursor.get("transport") != self._transport.kind:
                raise InvalidParameterError(
                    f"the cursor is for {cursor.get('transport') or cursor.get('path') or 'files'}, this source "
                    f"reads {self._transport.name}")
            self._start = self._transport.start_of(cursor)
            self._take_counts(cursor, self._transport)

    def _where(self, end: Any) -> str:
        return f"{self._transport.name} ({self._transport.where(end)})"

    def _cursor(self, end: Any) -> dict:
        cur: dict[str, Any] = {"version": CURSOR_VERSION, "format": self.format, "transport": self._transport.kind,
                               "path": self._transport.name}
        cur.update(self._transport.position(end))
        cur.update(self._counts())
        return cur

    def _commit_bad(self, pending: deque, upto: int | None) -> None:
        """Commit the bad records found before record number ``upto`` (all when None)."""
        while pending and (upto is None or pending[0].line <= upto):
            record = pending.popleft()
            self._policy.commit(record, self._where(record.end))

    def _emit(self, parts: list[Chunk], pending: deque) -> Batch:
        chunk = concat_chunks(parts)
        self._commit_bad(pending, int(chunk.lines[-1]))
        width = int(chunk.X.shape[1])
        if self.n_features is None:
            self.n_features = width
        elif width != self.n_features:
            raise FeatureCountError(
                f"{self._where(chunk.ends[0])} has {width} feature columns, expected {self.n_features} "
                "(as in the first batch or declared with n_features)")
        self.n_rows_read += len(chunk)
        return Batch(chunk.X, chunk.y, chunk.w, self._cursor(chunk.ends[-1]))

    def _batches(self) -> Iterator[Batch]:
        size = self._options.batch_size
        parts: list[Chunk] = []
        n_parts = 0
        pending: deque = deque()
        for chunk in self._transport.read(self._start):
            pending.extend(chunk.bad)
            if not len(chunk) and parts:  # caught up with a followed stream: train on what came
                yield self._emit(parts, pending)
                parts, n_parts = [], 0
            i, n = 0, len(chunk)
            while i < n:
                take = min(size - n_parts, n - i)
                parts.append(chunk if (i == 0 and take == n) else chunk.rows(i, i + take))
                n_parts += take
                i += take
                if n_parts == size:
                    yield self._emit(parts, pending)
                    parts, n_parts = [], 0
        if parts:
            yield self._emit(parts, pending)
        self._commit_bad(pending, None)
        if self.n_rows_read == 0 and not self._transport.stopped and not self.follows:
            bad = self._policy.n_skipped + self._policy.n_quarantined
            extra = f" ({bad} bad records set aside)" if bad else ""
            raise EmptySourceError(f"{self._transport.name} yielded no rows{extra}")
