"""The Source: files -> reader chunks -> batches with exact cursors."""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from onepass.batch import Batch
from onepass.errors import DataError, EmptySourceError, FeatureCountError, InvalidParameterError, OnePassError
from onepass.sources._bad import BadRecordPolicy
from onepass.sources._base import BatchStream, Chunk, Options, Reader, concat_chunks, reading_cursor
from onepass.sources._compression import strip_codec
from onepass.sources._transport import Entry, resolve

__all__ = ["Source", "open_source", "FORMATS", "format_of"]

CURSOR_VERSION = 1

#: extension -> format name
EXTENSIONS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".svm": "libsvm", ".libsvm": "libsvm", ".svmlight": "libsvm",
    ".npy": "npy",
    ".rec": "recordio-protobuf", ".pbr": "recordio-protobuf",
}


_READERS = {"csv": "_csv.CsvReader", "jsonl": "_jsonl.JsonlReader",
            "libsvm": "_libsvm.LibsvmReader", "npy": "_npy.NpyReader",
            "parquet": "_parquet.ParquetReader", "text": "_documents.TextReader",
            "recordio-protobuf": "_recordio.RecordioReader", "series": "_series.SeriesReader"}


def _reader_class(fmt: str) -> type[Reader]:
    import importlib

    module, cls = _READERS[fmt].split(".")
    return getattr(importlib.import_module(f"onepass.sources.{module}"), cls)


FORMATS = ("csv", "jsonl", "libsvm", "npy", "parquet", "recordio-protobuf", "series", "text")


def format_of(name: str) -> str | None:
    """Format inferred from a file name's extension (a compression ending, ``.gz .bz2 .xz
    .zst``, looked through), or None."""
    return EXTENSIONS.get(os.path.splitext(strip_codec(name).lower())[1])


class Source(BatchStream):
    """A stream of :class:`~onepass.batch.Batch` read once from files, a URL or stdin.

    Create one with :func:`open_source`. A Source is an iterator and a context manager.

    Attributes
    ----------
    n_rows_read : int
        Rows yielded so far (continuing the cursor's count on resume).
    n_skipped : int
        Bad records dropped under ``on_bad_record="skip"``.
    n_quarantined : int
        Bad records written to the quarantine file.
    n_features : int or None
        Width of X, known after the first batch (or declared, or the vocabulary's length).
    feature_names : list of str or None
        The name of each column of X: the vocabulary given with ``vocab`` (the words
        counted by format ``"text"``, the columns of any other format), else None.
    is_rewindable : bool
        False for stdin: it cannot be read a second time.
    files : list of str
        The files read, in order.
    """

    def __init__(self, entries: list[Entry], fmt: str, reader: Reader, options: Options,
                 policy: BadRecordPolicy, cursor: dict | None, uri: Any) -> None:
        self._entries = entries
        self.format = fmt
        self._reader = reader
        self._options = options
        self._policy = policy
        self._uri = uri
        self.n_rows_read = 0
        self.n_features = options.n_features
        self.feature_names = None if options.vocabulary is None else list(options.vocabulary)
        self._vocabulary_id = None if options.vocabulary is None else _fingerprint(options.vocabulary)
        self._start_file = 0
        self._start: dict | None = None
        self._fraction: Any = None
        if cursor is not None:
            self._restore(cursor)
        self._gen: Iterator[Batch] | None = None

    # -- public -----------------------------------------------------------------
    @property
    def is_rewindable(self) -> bool:
        return not any(e.is_stdin for e in self._entries)

    @property
    def files(self) -> list[str]:
        return [e.name for e in self._entries]

    def fraction_read(self, cursor: dict) -> float | None:
        """The share of the source's files read up to ``cursor`` (a batch's), or None
        when it cannot be known (stdin, compressed files): for a progress bar's total."""
        if self._fraction is None:
            from onepass.sources._progress import ReadFraction

            self._fraction = ReadFraction(self._entries, self.format)
        return self._fraction(cursor)

    @property
    def feature_columns(self) -> list[str] | None:
        """The names of X's columns, from the header of the file being read (None without
        one): what a model remembers of its input, to match columns by name later."""
        return self._reader.feature_columns

    @property
    def columns(self) -> list[str] | None:
        """Every column of the file being read by name, in order (None without a header)."""
        return self._reader.columns

    @property
    def unused_columns(self) -> list[str]:
        """Columns of the file being read left out of X, neither label nor weight (with
        ``feature_columns``, those a model was not trained on)."""
        return self._reader.unused_columns

    def __repr__(self) -> str:
        return (f"Source({self._uri!r}, format={self.format!r}, files={len(self._entries)}, "
                f"n_rows_read={self.n_rows_read})")

    # -- internals --------------------------------------------------------------
    def _restore(self, cursor: dict) -> None:
        if any(e.is_stdin for e in self._entries):
            raise InvalidParameterError(
                "stdin cannot resume at a cursor: it cannot seek; save the stream to a file "
                "to resume")
        with reading_cursor(cursor):
            if cursor.get("format") != self.format:
                raise InvalidParameterError(
                    f"the cursor is for format {cursor.get('format')!r}, this source is "
                    f"{self.format!r}")
            i = int(cursor["file"])
            if not 0 <= i < len(self._entries) or self._entries[i].name != cursor["path"]:
                raise InvalidParameterError(
                    f"the cursor points at file {i} {cursor['path']!r}, but the source's files "
                    f"are now {self.files[:5]}{' ...' if len(self._entries) > 5 else ''}; "
                    "the file list changed since the cursor was saved")
            if cursor.get("vocabulary") != self._vocabulary_id:
                raise InvalidParameterError(
                    "the cursor was saved with " + ("another vocabulary" if cursor.get("vocabulary") else
                                                    "no vocabulary") + ", this source has "
                    + ("another one" if self._vocabulary_id else "none") + "; resume with the same vocab")
            self._start_file = i
            self._start = self._reader.start_of(cursor)
            self._take_counts(cursor, self._reader)

    def _cursor(self, index: int, end: int, line: int) -> dict:
        entry = self._entries[index]
        cur = {"version": CURSOR_VERSION, "format": self.format, "file": index,
               "path": entry.name}
        cur.update(self._reader.position(end, line))
        cur.update(self._counts())
        if self._vocabulary_id is not None:
            cur["vocabulary"] = self._vocabulary_id
        return cur

    def _emit(self, index: int, parts: list[Chunk], pending_bad: deque) -> Batch:
        """The batch of ``parts``, whose last row is in file ``index``; commits the bad
        records before that row (``pending_bad`` holds ``(file index, record)``)."""
        chunk = concat_chunks(parts)
        end, line = int(chunk.ends[-1]), int(chunk.lines[-1])
        name = self._entries[index].name
        while pending_bad and (pending_bad[0][0], pending_bad[0][1].end) <= (index, end):
            i, record = pending_bad.popleft()
            self._policy.commit(record, self._entries[i].name)
        width = int(chunk.X.shape[1])
        if self.n_features is None:
            self.n_features = width
        elif width != self.n_features:
            if self.feature_names is not None:
                raise FeatureCountError(
                    f"{name} has {width} feature columns, but the vocabulary names "
                    f"{len(self.feature_names)}; give the vocab of this data (one word per column)")
            raise FeatureCountError(
                f"{name} has {width} feature columns, expected {self.n_features} "
                "(as in the first batch or declared with n_features)")
        self.n_rows_read += len(chunk)
        # the rows' lines name a row whose label is refused (a batch of rows of several files
        # has none; rows without labels need none: predict holds no more than the rows)
        lines = None if self._reader.spans_files or chunk.y is None else _own(chunk.lines)
        return Batch(chunk.X, chunk.y, chunk.w, self._cursor(index, end, line), lines=lines)

    def _batches(self) -> Iterator[Batch]:
        size = self._options.batch_size
        spans = self._reader.spans_files  # else a batch never holds rows of two files
        parts: list[Chunk] = []
        n_parts = 0
        last = self._start_file  # the file of the last row in parts
        pending_bad: deque = deque()
        chunks = (self._reader.read_files(self._entries, self._start_file, self._start) if spans
                  else self._chunks_by_file())
        for index, chunk in chunks:
            if chunk is None:  # the end of file index (readers whose batches never span files)
                if parts:
                    yield self._emit(index, parts, pending_bad)
                    parts, n_parts = [], 0
                self._commit_all(pending_bad)
                continue
            pending_bad.extend((index, record) for record in chunk.bad)
            if self._reader.chunks_are_batches:
                if len(chunk):
                    yield self._emit(index, [chunk], pending_bad)
                continue
            i, n = 0, len(chunk)
            if n:
                last = index
            while i < n:
                take = min(size - n_parts, n - i)
                parts.append(chunk if (i == 0 and take == n) else chunk.rows(i, i + take))
                n_parts += take
                i += take
                if n_parts == size:
                    yield self._emit(index, parts, pending_bad)
                    parts, n_parts = [], 0
        if parts:
            yield self._emit(last, parts, pending_bad)
        self._commit_all(pending_bad)
        if self.n_rows_read == 0:
            bad = self._policy.n_skipped + self._policy.n_quarantined
            extra = f" ({bad} bad records set aside)" if bad else ""
            raise EmptySourceError(f"{self._describe()} yielded no rows{extra}")

    def _chunks_by_file(self) -> Iterator[tuple[int, Chunk | None]]:
        """``(file index, chunk)``, and ``(file index, None)`` at the end of each file."""
        for index in range(self._start_file, len(self._entries)):
            start = self._start if index == self._start_file else None
            for chunk in self._reader.read(self._entries[index], start):
                yield index, chunk
            yield index, None

    def _commit_all(self, pending_bad: deque) -> None:
        while pending_bad:
            i, record = pending_bad.popleft()
            self._policy.commit(record, self._entries[i].name)

    def _describe(self) -> str:
        if len(self._entries) == 1:
            return self._entries[0].name
        return f"{self._uri!r} ({len(self._entries)} files)"


def open_source(uri: Any, *, format: str | None = None, batch_size: int = 4096,
                label_column: str | int | None = None, weight_column: str | int | None = None,
                header: bool | None = None, n_features: int | None = None,
                on_bad_record: str = "fail", quarantine_file: Any = None,
                cursor: dict | None = None, dtype: Any = np.float32,
                zero_based: bool = False, delimiter: str | None = None, vocab: Any = None,
                document: str = "line", series_id_column: str | int | None = None,
                timestamp_column: str | int | None = None, target_column: str | int | None = None,
                dynamic_feat_columns: Any = None, cat_columns: Any = None, stream: str | None = None,
                group: str | None = None, consumer: str | None = None, query: str | None = None,
                key_column: str | None = None, follow: bool = False, null: str = "nan",
                feature_columns: list[str] | None = None) -> Any:
    """Open files, a folder, a glob, a URL, stdin, a Redis stream or a PostgreSQL query as
    a stream of mini-batches.

    Parameters
    ----------
    uri : str or PathLike or list of them
        A local file, a folder (every data file inside, recursively, sorted), a glob
        (``data/*.csv``, sorted), ``"-"`` for stdin (csv or jsonl), or any fsspec URL
        (``memory://...``, ``file://...``, ``s3://...`` with s3fs installed). Or a record
        transport (:mod:`onepass.sources.transports`), read once: a Redis stream through a
        consumer group, ``redis://HOST:PORT/DB?stream=NAME&group=GROUP&consumer=NAME``,
        or a PostgreSQL query, ``postgresql://USER@HOST:PORT/DB`` with ``query``; these
        return a :class:`~onepass.sources._stream_source.StreamSource`.
    format : {"csv", "parquet", "jsonl", "libsvm", "npy", "recordio-protobuf", "series", "text"} or None, default None
        Inferred from the first file's extension when None (``.csv .tsv .txt``,
        ``.parquet .pq``, ``.jsonl .ndjson .json``, ``.svm .libsvm .svmlight``,
        ``.npy``, ``.rec .pbr``; a compressed file, ``.gz .bz2 .xz .zst`` or known by its
        first bytes, is decompressed as it is read); stdin defaults to csv. ``"text"``
        (raw documents in, word counts out) is never inferred: ask for it. ``"series"``
        (time series; a batch's X is a ``SeriesRows``) is asked for by a forecaster, or
        implied by a long table's column options below: SageMaker DeepAR's JSON lines
        (one series or stretch of one per line), or a long table (``.csv .tsv .parquet
        .pq``, or any file when a column option is given): one row per series and time
        step.
    batch_size : int, default 4096
        Rows per batch. Every batch holds exactly ``batch_size`` rows except the last
        of each file: a batch never spans two files. A long table's batch holds
        ``batch_size`` rows of the table, one record per series in them (its rows, in
        table order): a series spread over many batches arrives in stretches, joined
        by its id.
    label_column, weight_column : str or int or None, default None
        Column holding the label / per-row weight: a name (csv with a header, parquet,
        flat jsonl) or a 0-based index (csv, parquet, npy). Every other numeric column
        is a feature. RecordIO-protobuf records carry their label apart from the features
        (``label['values']``, read when present); a name picks another key of the label map.
    header : bool or None, default None
        CSV only. None detects it: the first line is a header if any field in it is
        not a number (a long table's: unless its ``timestamp_column``, given by index,
        holds a date and time).
    n_features : int or None, default None
        Declared width of X. Checked for dense formats; for libsvm it is the matrix
        width (otherwise inferred from the first batch's largest index).
    on_bad_record : {"fail", "skip", "quarantine"}, default "fail"
        "fail" raises BadRecordError naming file, line and column; "skip" counts and
        drops; "quarantine" appends ``{"source", "line", "column", "reason", "raw"}``
        JSON lines to ``quarantine_file`` and counts.
    quarantine_file : str or PathLike or None
        Required with ``on_bad_record="quarantine"``. Appended to; on resume it is
        truncated back to the size recorded in the cursor.
    cursor : dict or None
        A ``batch.cursor`` from an earlier run over the same uri: resume right after it.
    dtype : numpy dtype, default float32
        Of X, y and w.
    zero_based : bool, default False
        libsvm only: feature indices start at 0 instead of libsvm's 1.
    delimiter : str or None
        CSV only: field separator; default ``","`` (tab for ``.tsv``).
    vocab : str or PathLike or list of str or None, default None
        The vocabulary: a file of one word per line (UTF-8, as SageMaker NTM's
        ``vocab.txt``; any URI a source reads, compressed too) or a list of words. Required
        by ``"text"``, whose columns are its words; for any other format it names the
        columns, and its length must be the data's width. Exposed as
        ``Source.feature_names``.
    document : {"line", "file"}, default "line"
        ``"text"`` only: what one document (one row) is, a line or a whole file. Blank
        lines and files are not documents; a document without a word of the vocabulary
        is a bad record. See :func:`onepass.text.tokenize` for the words.
    series_id_column, timestamp_column, target_column : str or int or None, default None
        Format ``"series"`` from a long table: the column naming each row's series, its
        time (ISO 8601 text such as ``2026-03-01 00:00:00``, a zone read as UTC; or a
        Parquet timestamp or date) and its value (an empty cell or null is a missing
        value), by name or 0-based index. By default the columns named ``id`` or
        ``item_id``, ``timestamp``, ``time`` or ``date``, and ``target`` or ``value``.
        Each record carries its points' times (``SeriesRows.times``); a forecaster
        places them on its frequency, a step without a row being a missing value.
    dynamic_feat_columns, cat_columns : list of str or int, or None, default None
        A long table's covariate columns (``dynamic_feat``, a number at every row) and
        category columns (``cat``, whole numbers >= 0, taken from a series' first row in
        each batch). Other columns are not read. A row with a missing id, timestamp,
        covariate or category, or a value, covariate or category that does not parse,
        is a bad record (``on_bad_record``).

    stream, group, consumer : str or None
        Redis: the stream, the consumer group and this consumer's name (or in the URI's
        query string). The group is created at the stream's start when missing.
    query, key_column : str or None
        PostgreSQL: the query whose rows are read (streamed, never fetched whole) and the
        column that orders them for exact resume (keyset: a cursor keeps the last key).
    follow : bool, default False
        Record transports: keep reading as records arrive (new stream entries, rows past
        the last key) until stopped; else end at the last record that existed at the start.
    null : {"nan", "bad"}, default "nan"
        Record transports: a missing value (NULL, an absent field) is NaN, or makes its
        record a bad record.
    feature_columns : list of str or None, default None
        The columns of X by name, in this order (the columns a model was trained on, from
        its schema): a file with a header may hold them in any order and hold others, left
        out (see ``Source.unused_columns``); one that lacks any is an error naming them.
        Files without a header are read as they are.

    Returns
    -------
    Source, or StreamSource for a record transport

    Raises
    ------
    SourceNotFoundError
        The uri matches no file.
    InvalidParameterError
        An unknown format or option, or a cursor that does not fit the source.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("x1,x2,y\\n1,2,0\\n3,4,1\\n5,6,1\\n")
    >>> with open_source(path, batch_size=2, label_column="y") as src:
    ...     for batch in src:
    ...         print(batch.X.tolist(), batch.y.tolist(), batch.cursor["line"])
    [[1.0, 2.0], [3.0, 4.0]] [0.0, 1.0] 3
    [[5.0, 6.0]] [1.0] 4
    >>> src.n_rows_read, src.n_features
    (3, 2)

    A long table of series, rows of two stores interleaved by day, read 4 rows a batch:
    each batch holds a stretch of each store's series.

    >>> path = os.path.join(tempfile.mkdtemp(), "sales.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("store,day,sales\\n1,2026-03-01,5\\n2,2026-03-01,7\\n1,2026-03-02,\\n"
    ...                 "2,2026-03-02,8\\n1,2026-03-03,6\\n")
    >>> with open_source(path, batch_size=4, series_id_column="store", timestamp_column="day",
    ...                  target_column="sales") as src:
    ...     for batch in src:
    ...         print([(i, str(s)[:10], t.tolist()) for i, s, t in zip(batch.X.ids, batch.X.starts,
    ...                                                              batch.X.targets)])
    [('1', '2026-03-01', [5.0, nan]), ('2', '2026-03-01', [7.0, 8.0])]
    [('1', '2026-03-03', [6.0])]
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise InvalidParameterError(f"batch_size={batch_size!r} must be an integer >= 1")
    if n_features is not None and (not isinstance(n_features, (int, np.integer))
                                   or n_features < 1):
        raise InvalidParameterError(f"n_features={n_features!r} must be an integer >= 1")
    if header not in (None, True, False):
        raise InvalidParameterError(f"header={header!r} must be True, False or None")
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise InvalidParameterError(f"dtype={dtype!r} must be a floating point type")
    if format is not None and format not in FORMATS:
        raise InvalidParameterError(
            f"format={format!r} is not one of {', '.join(FORMATS)}")
    if cursor is not None and not isinstance(cursor, dict):
        raise InvalidParameterError(f"cursor must be a dict from batch.cursor, got {cursor!r}")
    table = {"series_id_column": series_id_column, "timestamp_column": timestamp_column,
             "target_column": target_column, "dynamic_feat_columns": dynamic_feat_columns,
             "cat_columns": cat_columns}
    is_long_table = any(v is not None for v in table.values())
    if is_long_table:
        from onepass.sources._series_table import check_table_options

        table = check_table_options(table)
        if format not in (None, "series"):
            given = next(k for k, v in table.items() if v is not None)
            raise InvalidParameterError(f"{given}= names a column of a long table of series, read with "
                                        f"format='series', not {format!r}")
        format = "series"
    from onepass.sources.transports import is_record_uri

    transport_kw = {"stream": stream, "group": group, "consumer": consumer, "query": query,
                    "key_column": key_column}
    if is_record_uri(uri):
        return _open_stream(uri, format, batch_size, label_column, weight_column, n_features, dt, on_bad_record,
                            quarantine_file, cursor, follow=bool(follow), null=null, **transport_kw)
    given = [k for k, v in transport_kw.items() if v is not None] + (["follow"] if follow else [])
    if given:
        raise InvalidParameterError(f"{given[0]}= is for a Redis stream or a PostgreSQL query (redis://, "
                                    f"postgresql://), not for files: {uri!r}")
    from onepass.sources._documents import DOCUMENT_UNITS

    if document not in DOCUMENT_UNITS:
        raise InvalidParameterError(f"document={document!r} is not one of {', '.join(map(repr, DOCUMENT_UNITS))}")
    if format != "text":
        if document != "line":
            raise InvalidParameterError(f"document={document!r} is for format='text' (raw documents)")
    elif vocab is None:
        raise InvalidParameterError(
            "format 'text' needs a vocabulary: vocab='vocab.txt' (--vocab), one word per line; "
            "build one with 'onepass vocab --data ... --out vocab.txt'")
    vocabulary = None
    if vocab is not None:
        from onepass.text._vocabulary import load_vocabulary

        vocabulary = load_vocabulary(vocab, for_text=format == "text")
        if n_features is not None and n_features != len(vocabulary):
            raise InvalidParameterError(
                f"n_features={n_features} but the vocabulary has {len(vocabulary)} words; "
                "they name the same columns: drop n_features or give the matching vocab")
        n_features = len(vocabulary)

    def keep(base: str) -> bool:
        return format_of(base) is not None if format is None else True

    entries = resolve(uri, keep)
    fmt = format
    if fmt is None:
        if entries[0].is_stdin:
            fmt = "csv"
        else:
            fmt = format_of(entries[0].name)
            if fmt is None:
                raise InvalidParameterError(
                    f"cannot tell the format of {entries[0].name!r} from its extension; pass "
                    f"format= one of {', '.join(FORMATS)}")
            for entry in entries[1:]:
                other = format_of(entry.name)
                if other != fmt:
                    raise InvalidParameterError(
                        f"{entry.name} looks like {other or 'an unknown format'} but "
                        f"{entries[0].name} like {fmt}: one source reads one format; "
                        "train or predict on each format separately, or convert them")
    reader_cls = _reader_class(fmt)
    if fmt == "series":
        reader_cls = _series_reader(entries, is_long_table)
    if entries[0].is_stdin and not reader_cls.can_stream:
        raise InvalidParameterError(f"format {fmt!r} cannot be read from stdin; use csv or jsonl")
    options = Options(batch_size=int(batch_size), label_column=label_column,
                      weight_column=weight_column, header=header,
                      n_features=None if n_features is None else int(n_features), dtype=dt,
                      zero_based=bool(zero_based), delimiter=delimiter, vocabulary=vocabulary,
                      document=document, feature_columns=None if feature_columns is None else list(feature_columns),
                      **table)
    reader = reader_cls(options)
    policy = _policy_of(on_bad_record, quarantine_file, cursor)
    try:
        return Source(entries, fmt, reader, options, policy, cursor, uri)
    except BaseException:
        policy.close()
        raise


def _policy_of(on_bad_record: str, quarantine_file: Any, cursor: dict | None) -> BadRecordPolicy:
    c = cursor or {}
    try:
        return BadRecordPolicy(on_bad_record, quarantine_file, n_skipped=int(c.get("skipped", 0)),
                               n_quarantined=int(c.get("quarantined", 0)), quarantine_bytes=c.get("quarantine_bytes"))
    except (TypeError, ValueError) as e:
        if isinstance(e, OnePassError):
            raise
        raise InvalidParameterError(f"malformed cursor {cursor!r}: {e!r}") from None


def _open_stream(uri: str, fmt: str | None, batch_size: int, label_column: Any, weight_column: Any,
                 n_features: int | None, dtype: Any, on_bad_record: str, quarantine_file: Any,
                 cursor: dict | None, **stream: Any) -> Any:
    """A StreamSource on the record transport ``uri`` names."""
    from onepass.sources._stream_source import StreamSource
    from onepass.sources.transports import StreamOptions, transport_class

    settings = StreamOptions(**stream)
    settings.check()
    cls = transport_class(uri)
    options = Options(batch_size=int(batch_size), label_column=label_column, weight_column=weight_column,
                      n_features=None if n_features is None else int(n_features), dtype=dtype)
    transport = cls(uri, options, settings, fmt)
    policy = None
    try:
        policy = _policy_of(on_bad_record, quarantine_file, cursor)
        return StreamSource(transport, transport.format, options, policy, cursor)
    except BaseException:
        transport.close()
        if policy is not None:
            policy.close()
        raise


def _series_reader(entries: list[Entry], is_long_table: bool) -> type[Reader]:
    """Format "series": SageMaker's JSON lines, or long tables (CSV, Parquet) when the files
    are ``.csv .tsv .parquet .pq`` or a column of a long table is named."""
    from onepass.sources._series_table import SeriesTableReader, is_table

    tables = [e.name for e in entries if not e.is_stdin and is_table(e.name)]
    others = [e.name for e in entries if e.is_stdin or not is_table(e.name)]
    if is_long_table:
        jsonl = [name for name in others if format_of(name) == "jsonl"]
        if jsonl:
            raise InvalidParameterError(
                f"{jsonl[0]} is SageMaker's JSON lines, but columns of a long table are named "
                "(series_id_column...): those are for CSV or Parquet tables; drop them to read the JSON lines")
        return SeriesTableReader
    if tables and others:
        raise InvalidParameterError(
            f"{tables[0]} is a long table (one row per series and time step) but {others[0]} SageMaker's JSON "
            "lines: one source reads one kind of series file; read them separately")
    return SeriesTableReader if tables else _reader_class("series")


def _fingerprint(words: list[str]) -> str:
    """A short digest of a vocabulary, kept in cursors: resuming with another one is refused."""
    return hashlib.sha256("\n".join(words).encode()).hexdigest()[:16]


# keep DataError importable from here for readers' convenience
_ = DataError


def _own(lines: np.ndarray) -> np.ndarray:
    """``lines`` in an array of its own: a slice of a reader's block would keep the whole
    block's line numbers alive for as long as the batch lives."""
    return lines if lines.base is None else lines.copy()
