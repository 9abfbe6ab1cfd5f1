"""Transports: where a source's records come from. Formats say how they are parsed.

onepass reads from two kinds of transport, behind one boundary (:func:`onepass.open_source`
picks the kind from the URI):

*File transports* (``onepass.sources._transport``)
    A URI resolves into files (local paths, folders, globs, fsspec URLs, stdin) whose
    bytes a format's :class:`~onepass.sources._base.Reader` parses. A position is a file
    and a byte offset (or row number); the files are still there after the read, so
    resuming is seeking.

*Record transports* (this package: :class:`RecordTransport`)
    A broker or a database hands over records one by one, each with its own position (a
    stream entry's ID, a row's key), and they are gone once read: a Redis stream read by a
    consumer group (``redis://``, :mod:`.redis_streams`) and the rows of a PostgreSQL query
    (``postgresql://``, :mod:`.postgresql`). Such a transport parses its own records into
    :class:`~onepass.sources._base.Chunk` s, whose ``ends`` hold each record's position.
    :class:`~onepass.sources._stream_source.StreamSource` cuts them into batches with exact
    cursors, sends bad records through the one ``on_bad_record`` policy, and, once a
    checkpoint counting the rows up to a cursor is committed, tells the transport
    (:meth:`RecordTransport.acknowledge`): a broker forgets the entries then, and not before,
    so a consumer killed at any instant loses none and counts none twice.

Adding a transport (Kafka, Kinesis) is one module here: a :class:`RecordTransport`
subclass, named in :data:`SCHEMES` by its URI scheme.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from onepass.errors import InvalidParameterError
from onepass.sources._base import Chunk, Options

__all__ = ["SCHEMES", "RecordTransport", "StreamOptions", "caught_up", "is_record_uri", "transport_class"]

#: URI scheme -> "module.Class" of this package
SCHEMES = {
    "redis": "redis_streams.RedisStreams",
    "rediss": "redis_streams.RedisStreams",
    "postgresql": "postgresql.PostgresQuery",
    "postgres": "postgresql.PostgresQuery",
}

NULL_MODES = ("nan", "bad")


@dataclass(frozen=True)
class StreamOptions:
    """What a record transport is asked besides the format options.

    ``stream``, ``group``, ``consumer``: a Redis stream, its consumer group and this
    consumer's name (each may also be in the URI's query string). ``query`` and
    ``key_column``: a PostgreSQL query and the column ordering its rows for exact resume.
    ``follow``: keep reading as records arrive (new entries; rows past the last key)
    until stopped, instead of ending at the last record that existed when reading began.
    ``poll_seconds``: how long a follower waits for new records before looking again.
    ``null``: what a missing value (a NULL, an empty field) is: NaN, or a bad record.
    ``claim_idle_seconds``: a Redis consumer takes over the pending entries of another
    consumer of its group that have waited this long (a dead consumer's).
    ``retry_seconds``: how long a transport keeps retrying, with backoff, when its
    server goes away, before the run ends with an error (and its last checkpoint).
    """

    stream: str | None = None
    group: str | None = None
    consumer: str | None = None
    query: str | None = None
    key_column: str | None = None
    follow: bool = False
    poll_seconds: float = 1.0
    null: str = "nan"
    claim_idle_seconds: float = 60.0
    retry_seconds: float = 60.0

    def check(self) -> None:
        if self.null not in NULL_MODES:
            raise InvalidParameterError(f"null={self.null!r} is not one of {', '.join(map(repr, NULL_MODES))}")
        for name in ("poll_seconds", "claim_idle_seconds", "retry_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidParameterError(f"{name}={value!r} must be a number of seconds >= 0")


def caught_up() -> Chunk:
    """The empty chunk a follower yields when it has read every record there is for now:
    the StreamSource then hands over the rows it holds as a (short) batch."""
    import numpy as np

    return Chunk(np.zeros((0, 0), np.float32), None, None, np.zeros(0, object), np.zeros(0, np.int64))


def scheme_of(uri: Any) -> str | None:
    """The URI's scheme when a record transport reads it, else None."""
    if not isinstance(uri, str) or "://" not in uri:
        return None
    scheme = uri.split("://", 1)[0].lower()
    return scheme if scheme in SCHEMES else None


def is_record_uri(uri: Any) -> bool:
    """Whether ``uri`` names a record transport (``redis://``, ``postgresql://``)."""
    return scheme_of(uri) is not None


def transport_class(uri: str) -> type[RecordTransport]:
    scheme = scheme_of(uri)
    if scheme is None:
        raise InvalidParameterError(f"{uri!r} is not a record transport's URI ({', '.join(s + '://' for s in SCHEMES)})")
    module, cls = SCHEMES[scheme].split(".")
    return getattr(importlib.import_module(f"onepass.sources.transports.{module}"), cls)


class RecordTransport:
    """A source of records that are gone once read.

    A subclass sets :attr:`kind` and implements :meth:`read`, :meth:`position`,
    :meth:`start_of`; brokers also :meth:`acknowledge`. The
    :class:`~onepass.sources._stream_source.StreamSource` that owns it does the batching,
    the cursors and the bad-record policy.

    Parameters
    ----------
    uri : str
        The transport's URI (``redis://host:port/db?stream=...``).
    options : Options
        The format options (label column, dtype, batch size: a transport reads about a
        batch at a time, never more than a few batches ahead).
    stream : StreamOptions
    format : str or None
        How a record is parsed, when the transport offers several (a Redis entry: its
        fields as columns, or one field holding a ``csv`` or ``jsonl`` row); None for
        the transport's own default.
    """

    #: short name, stored in cursors ("redis", "postgresql")
    kind: ClassVar[str] = ""
    #: whether the same records can be read again from the start (another epoch)
    is_rewindable: ClassVar[bool] = False

    def __init__(self, uri: str, options: Options, stream: StreamOptions, format: str | None = None) -> None:
        self.uri, self.options, self.stream = uri, options, stream
        #: how the records are parsed, named in cursors ("fields" for a stream entry's fields)
        self.format = format or "fields"
        self.n_features: int | None = options.n_features
        #: column names of X once known (the fields or columns read), else None
        self.feature_names: list[str] | None = None

    @property
    def name(self) -> str:
        """How messages name this source (no password)."""
        return self.uri

    def read(self, start: dict | None) -> Iterator[Chunk]:  # pragma: no cover - abstract
        """Chunks of parsed records in order, from right after ``start`` (the fields of
        :meth:`start_of`) or from the beginning. ``chunk.ends[i]`` is record ``i``'s
        position (any value :meth:`position` takes), ``chunk.lines[i]`` its 1-based
        number in this read; a bad record is a :class:`~onepass.sources._bad.BadRecord`
        whose ``end`` is its position. Ends when the records end (at the last that
        existed when reading began, unless following) or after :meth:`stop`. A follower
        yields an empty chunk when it has caught up, so the rows held are trained on
        without waiting for a whole batch."""
        raise NotImplementedError

    def position(self, end: Any) -> dict:  # pragma: no cover - abstract
        """The cursor fields of the record at position ``end`` (JSON-serializable)."""
        raise NotImplementedError

    def where(self, end: Any) -> str:
        """Where the record at ``end`` is, for messages (default: its cursor fields; a
        transport whose cursors carry more than a place, such as a layout, says less)."""
        return ", ".join(f"{k} {v}" for k, v in self.position(end).items())

    def start_of(self, cursor: dict) -> dict:  # pragma: no cover - abstract
        """The fields of ``cursor`` this transport resumes after; raises
        InvalidParameterError when the cursor is not this transport's."""
        raise NotImplementedError

    @classmethod
    def plan_shards(cls, uri: str, stream: StreamOptions, format: str | None, workers: int) -> list[dict]:
        """How ``workers`` Ray workers split the records: one dict per shard, of
        :class:`StreamOptions` fields that make a transport read only its part (a
        consumer's name in one group; a key range of a query). Each part is read by an
        ordinary transport with those options, its cursors kept in the job's checkpoint."""
        raise InvalidParameterError(f"{cls.kind or cls.__name__} records cannot be split among workers yet; "
                                    "train without --workers")

    def acknowledge(self, cursor: dict) -> None:
        """A checkpoint counting every record up to ``cursor`` is committed: a broker may
        forget them now (and must not before)."""

    def stop(self) -> None:
        """End the read at the next record boundary (from another thread or a signal
        handler): :meth:`read` returns what it has and ends."""
        self._stopped = True

    @property
    def stopped(self) -> bool:
        return bool(getattr(self, "_stopped", False))

    def close(self) -> None:
        """Close connections."""
