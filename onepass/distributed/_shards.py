"""Shards: a source cut into pieces that workers read independently, none read twice.

A shard is one stretch of one file: a whole file (jsonl, libsvm, gzip), a run of
Parquet row groups, a byte range of a CSV aligned to line starts, or a row range of a
``.npy``. Planning reads only metadata (file sizes, Parquet footers, ``.npy`` headers)
and, for a CSV cut, the few bytes up to the next newline after each cut point. Shards are
JSON-able dicts, so the driver's checkpoint can hold the plan.

A shard is read by :func:`open_shard`, which builds an ordinary
:class:`~onepass.sources.Source` on the shard's one file, started at the shard's start
cursor (or at a later cursor the shard recorded) and stopped at the shard's end: the
same readers, cursors and bad-record policy as a single-process run. Line numbers in a
CSV shard that starts mid-file count from the shard's first line (a shard cannot know
how many lines lie before it without reading them).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from onepass.batch import Batch
from onepass.errors import InvalidParameterError
from onepass.sources._bad import BadRecordPolicy
from onepass.sources._base import Chunk, Options, Reader
from onepass.sources._source import CURSOR_VERSION, Source, _reader_class, format_of
from onepass.sources._transport import Entry, resolve
from onepass.sources.transports import is_record_uri

__all__ = ["acknowledge_shards", "iter_shard", "open_shard", "plan_shards", "start_cursor"]

#: Default size of a shard: small enough that two workers share a file, large enough
#: that opening a shard costs nothing against reading it.
SHARD_BYTES = 64 << 20
_NEWLINE_PROBE = 64 << 10


class _LimitedFile(io.RawIOBase):
    """A read-only view of ``raw`` that ends at byte ``limit`` (seeking allowed)."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw, self._limit = raw, limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            return self._raw.seek(self._limit + offset)
        return self._raw.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        room = self._limit - self._raw.tell()
        if room <= 0:
            return 0
        view = memoryview(buffer)[:room]
        return self._raw.readinto(view) or 0

    def readline(self, size: int | None = -1) -> bytes:
        room = self._limit - self._raw.tell()
        if room <= 0:
            return b""
        size = room if size is None or size < 0 else min(size, room)
        return self._raw.readline(size)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _ByteRangeEntry(Entry):
    """A file whose reads end at ``stop`` bytes: the reader sees the shard end as EOF."""

    def __init__(self, entry: Entry, stop: int) -> None:
        super().__init__(entry.name, entry.path, entry.fs, entry.is_stdin)
        self.stop = stop

    def open(self) -> IO[bytes]:
        raw = super().open()
        return io.BufferedReader(_LimitedFile(raw, self.stop), buffer_size=1 << 16)  # type: ignore[return-value]

    def size(self) -> int | None:
        return self.stop


class _StoppingReader(Reader):
    """``inner``'s chunks up to the row that ends at ``stop`` (rows or bytes)."""

    def __init__(self, inner: Reader, stop: int) -> None:
        self.options = inner.options
        self._inner, self._stop = inner, stop
        self.name = inner.name

    @property
    def n_features(self) -> int | None:  # type: ignore[override]
        return self._inner.n_features

    @n_features.setter
    def n_features(self, value: int | None) -> None:
        self._inner.n_features = value

    def position(self, end: int, line: int) -> dict:
        return self._inner.position(end, line)

    def start_of(self, cursor: dict) -> dict:
        return self._inner.start_of(cursor)

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        for chunk in self._inner.read(entry, start):
            n = int(np.searchsorted(chunk.ends, self._stop, side="right"))
            if n == len(chunk):
                yield chunk
                if n and chunk.ends[-1] >= self._stop:
                    return
                continue
            part = chunk.rows(0, n)
            part.bad = [b for b in chunk.bad if b.end <= self._stop]
            yield part
            return


def _options(source: dict[str, Any]) -> Options:
    return Options(
        batch_size=int(source.get("batch_size", 8192)), label_column=source.get("label_column"),
        weight_column=source.get("weight_column"), header=source.get("header"),
        n_features=source.get("n_features"), dtype=np.dtype(source.get("dtype", "float32")),
        zero_based=bool(source.get("zero_based", False)), delimiter=source.get("delimiter"),
    )


def _entries(uris: Any, fmt: str | None) -> tuple[list[Entry], str]:
    def keep(base: str) -> bool:
        return format_of(base) is not None if fmt is None else True

    entries = resolve(uris, keep)
    if any(e.is_stdin for e in entries):
        raise InvalidParameterError(
            "stdin ('-') cannot be shared among workers: it can be read once, by one process; "
            "save the stream to files, or train without --workers")
    if fmt is None:
        fmt = format_of(entries[0].name)
        if fmt is None:
            raise InvalidParameterError(
                f"cannot tell the format of {entries[0].name!r} from its extension; pass format=")
        for entry in entries[1:]:
            if format_of(entry.name) != fmt:
                raise InvalidParameterError(
                    f"{entry.name} is not {fmt} like {entries[0].name}: one source reads one format")
    return entries, fmt


def _npy_rows(entry: Entry) -> tuple[int, int]:
    with entry.open() as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, _ = read_header(f)
    if len(shape) != 2:
        raise InvalidParameterError(f"{entry.name} holds an array of shape {shape}; expected 2-D")
    return int(shape[0]), int(shape[1]) * 4


def _next_line_start(entry: Entry, at: int, size: int) -> int:
    """The offset of the first line that starts at or after ``at`` (``size`` if none)."""
    with entry.open() as f:
        f.seek(at - 1)
        pos = at - 1
        while pos < size:
            block = f.read(_NEWLINE_PROBE)
            if not block:
                return size
            hit = block.find(b"\n")
            if hit >= 0:
                return pos + hit + 1
            pos += len(block)
    return size


def _shard(index: int, entry: Entry, fmt: str, kind: str, start: int, stop: int | None) -> dict[str, Any]:
    return {"file": index, "path": entry.name, "format": fmt, "unit": kind, "start": start, "stop": stop}


def plan_shards(uris: Any, *, format: str | None = None, shard_bytes: int = SHARD_BYTES,
                shard_rows: int | None = None, stream: dict[str, Any] | None = None,
                workers: int = 1) -> list[dict[str, Any]]:
    """Cut the files of ``uris`` into shards, reading only metadata and line ends; or a
    record transport's records into the parts its own plan gives (``stream``: its
    :class:`~onepass.sources.transports.StreamOptions` fields; ``workers``: how many read).

    Parameters
    ----------
    uris : str, path or list of them
        What :func:`onepass.open_source` accepts, but stdin.
    format : str or None
        As in :func:`onepass.open_source` (default: from the extension).
    shard_bytes : int, default 64 MB
        About how much of a CSV or ``.npy`` file goes in one shard.
    shard_rows : int or None
        For ``.npy`` and Parquet: rows per shard (overrides ``shard_bytes`` for ``.npy``;
        a Parquet shard holds whole row groups, at least one).

    Returns
    -------
    list of dict
        JSON-able shards in file order: ``file`` (index), ``path``, ``format``, ``unit``
        (``"file"``, ``"bytes"``, ``"rows"``), ``start`` and ``stop`` (None: to the end).
    """
    if shard_bytes < 1 or (shard_rows is not None and shard_rows < 1):
        raise InvalidParameterError("shard_bytes and shard_rows must be >= 1")
    if is_record_uri(uris):
        return _plan_record_shards(uris, format, stream or {}, workers)
    entries, fmt = _entries(uris, format)
    shards: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        lines = fmt == "csv" or (fmt == "series" and format_of(entry.name) == "jsonl")  # JSON lines of series
        if lines and entry.compression is None:  # a shard starts at a line's start (compressed: one shard)
            size = int(entry.size() or 0)
            cuts = [0]
            at = shard_bytes
            while at < size:
                cut = _next_line_start(entry, at, size)
                if cut >= size:
                    break
                if cut > cuts[-1]:
                    cuts.append(cut)
                at = max(cut, at) + shard_bytes
            bounds = [*cuts, size]
            shards.extend(_shard(i, entry, fmt, "bytes", a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        elif fmt == "npy":
            n_rows, row_bytes = _npy_rows(entry)
            step = shard_rows or max(1, shard_bytes // max(1, row_bytes))
            shards.extend(_shard(i, entry, fmt, "rows", a, min(n_rows, a + step)) for a in range(0, n_rows, step))
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            with entry.open() as f:
                meta = pq.ParquetFile(f).metadata
                sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
                group_bytes = [meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)]
            a = rows = nbytes = 0
            for n, b in zip(sizes, group_bytes, strict=True):
                rows += n
                nbytes += b
                if (shard_rows is not None and rows - a >= shard_rows) or (shard_rows is None and nbytes >= shard_bytes):
                    shards.append(_shard(i, entry, fmt, "rows", a, rows))
                    a, nbytes = rows, 0
            if rows > a:
                shards.append(_shard(i, entry, fmt, "rows", a, rows))
        else:
            shards.append(_shard(i, entry, fmt, "file", 0, None))
    for n, shard in enumerate(shards):
        shard["id"] = n
    return shards


def _plan_record_shards(uri: str, fmt: str | None, stream: dict[str, Any], workers: int) -> list[dict[str, Any]]:
    """A record transport's parts: each shard reads the records its ``options`` (fields of
    StreamOptions: a consumer's name, a key range) select, through an ordinary StreamSource."""
    from onepass.sources.transports import StreamOptions, transport_class

    cls = transport_class(uri)
    parts = cls.plan_shards(uri, StreamOptions(**stream), fmt, workers)
    return [{"id": n, "file": 0, "path": uri, "format": fmt, "unit": "records", "start": 0, "stop": None,
             "transport": cls.kind, "options": dict(options)} for n, options in enumerate(parts)]


def acknowledge_shards(uri: str, fmt: str | None, stream: dict[str, Any], shards: list[dict[str, Any]],
                       cursors: list[dict[str, Any] | None]) -> None:
    """A checkpoint holding ``cursors`` (one per shard, None: nothing read) is committed: each
    shard's transport may forget its records up to its cursor (a stream's consumers ack)."""
    from onepass.sources._base import Options
    from onepass.sources.transports import StreamOptions, transport_class

    for shard, cursor in zip(shards, cursors, strict=True):
        if cursor is None or shard.get("transport") is None:
            continue
        cls = transport_class(uri)
        transport = cls(uri, Options(), StreamOptions(**{**stream, **shard["options"]}), fmt)
        try:
            transport.acknowledge(cursor)
        finally:
            transport.close()


def start_cursor(shard: dict[str, Any]) -> dict[str, Any] | None:
    """The cursor a shard starts at (None: the start of its file)."""
    if shard["start"] == 0:
        return None
    cur = {"version": CURSOR_VERSION, "format": shard["format"], "file": 0, "path": shard["path"],
           "rows": 0, "skipped": 0, "quarantined": 0, "quarantine_bytes": None, "n_features": None}
    if shard["unit"] == "bytes":
        cur.update(offset=int(shard["start"]), line=0)
    else:
        cur.update(row=int(shard["start"]), line=int(shard["start"]))
    return cur


def open_shard(uris: Any, shard: dict[str, Any], source: dict[str, Any],
               cursor: dict[str, Any] | None = None) -> Source:
    """Open ``shard`` of ``uris`` as a source, at ``cursor`` (a cursor of this shard) or its start.

    ``source`` holds the options of :func:`onepass.open_source` (``batch_size``,
    ``label_column``, ``on_bad_record``...). The cursors of the batches count rows,
    skipped and quarantined records from the shard's start.
    """
    if shard.get("transport") is not None:  # a record transport's part: its own StreamSource
        from onepass.sources import open_source

        keep = ("batch_size", "label_column", "weight_column", "n_features", "on_bad_record")
        return open_source(uris, format=shard["format"], cursor=cursor,
                           **{k: source[k] for k in keep if k in source},
                           **{**source.get("stream", {}), **shard["options"]})
    entries, fmt = _entries(uris, shard["format"])
    entry = entries[int(shard["file"])]
    if entry.name != shard["path"]:
        raise InvalidParameterError(
            f"shard {shard['id']} is of {shard['path']!r} but file {shard['file']} of the source is now "
            f"{entry.name!r}: the file list changed since the shards were planned")
    options = _options(source)
    reader: Reader = _reader_class(fmt)(options)
    stop = shard["stop"]
    if stop is not None:
        if shard["unit"] == "bytes":
            entry = _ByteRangeEntry(entry, int(stop))
        else:
            reader = _StoppingReader(reader, int(stop))
    if cursor is None:
        cursor = start_cursor(shard)
    c = cursor or {}
    mode = source.get("on_bad_record", "fail")
    if mode == "quarantine":
        raise InvalidParameterError(
            "on_bad_record='quarantine' is not supported with several workers yet (one quarantine "
            "file cannot be appended to by many processes and truncated on resume); use 'skip' or 'fail'")
    policy = BadRecordPolicy(mode, None, n_skipped=int(c.get("skipped", 0)),
                             n_quarantined=int(c.get("quarantined", 0)))
    return Source([entry], fmt, reader, options, policy, cursor, uris)


def iter_shard(uris: Any, shard: dict[str, Any], source: dict[str, Any],
               cursor: dict[str, Any] | None = None) -> Iterator[Batch]:
    """The batches of ``shard`` from ``cursor``; nothing (not an error) when it is already done."""
    src = open_shard(uris, shard, source, cursor)
    try:
        while True:
            try:
                yield next(src)
            except StopIteration:
                return
            except Exception as exc:
                from onepass.errors import EmptySourceError

                if isinstance(exc, EmptySourceError):
                    return
                raise
    finally:
        src.close()
