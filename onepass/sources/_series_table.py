"""Time series in from a long table: one row per series and time step, CSV or Parquet.

Format ``"series"`` reads ``.csv``/``.tsv``/``.parquet``/``.pq`` files (any file, stdin
too, as CSV, when a column option below is given) as the table most people have::

    item_id,timestamp,value,price,store
    a,2026-03-01 00:00:00,12.5,3.10,0
    b,2026-03-01 00:00:00,7,2.95,1
    a,2026-03-01 01:00:00,,3.10,0

Columns, by name or 0-based index: ``series_id_column`` (default ``id`` or ``item_id``),
``timestamp_column`` (``timestamp``, ``time`` or ``date``; ISO 8601 text, or a Parquet
timestamp or date), ``target_column`` (``target`` or ``value``; an empty cell or null is a
missing value), ``dynamic_feat_columns`` (covariates, known at every row) and
``cat_columns`` (the series' categories, whole numbers >= 0, read from its first row).
Other columns are not read. A CSV file has a header unless ``header=False`` (then every
column is given by index).

How rows become records
-----------------------
The reader cuts each file into batches of ``batch_size`` rows (the file's last one
shorter) and each batch into one :class:`~onepass.sources._series.SeriesRows` record per
series id in it: the series' rows of the batch in table order, with each row's time
(``SeriesRows.times``, placed on the series' frequency by ``SeriesRows.on_grid``; a step
with no row is a missing value). A table sorted by id makes long records; rows of many
series interleaved by time (every series at t, then every one at t+1) make records of
``batch_size / n_series`` points, which a state extends series by series (by id) as later
batches bring the next ones. A record's ``where`` is its first row (``file:line``, or
``file:row N`` for Parquet); records are in the order of their last row, and each one's
``Chunk.ends`` is the position after its last row.

Records gather rows from all over their batch, so a position between two of them would
not be a place in the file to resume from: the reader cuts the batches itself
(``Reader.chunks_are_batches``) and a cursor always falls after a batch's last row. A
resumed read (with the same ``batch_size``) cuts the same batches as an unbroken one.

Bad rows (a missing id, an unparseable or missing timestamp, a value that is not a number
or is infinite, a missing or non-finite covariate, a category that is not a whole number
>= 0, a CSV line with the wrong number of fields) are bad records named by file, line (or
row) and column, failed, skipped or quarantined like every format's.

How it reads
------------
CSV goes through the CSV reader's machinery: 16 MB blocks of whole lines
(:func:`~onepass.sources._text.numbered_blocks`), each parsed by ``pyarrow.csv`` with
typed columns. A block pyarrow cannot convert is read again as text and cast column by
column (a failing cast is halved until the values at fault are found; time zone offsets
are read as UTC); a block with a line of the wrong number of fields is split line by line
with :mod:`csv`. Parquet goes through the Parquet reader's record batches (only the
columns used, row-group resume). Grouping a batch by id is one ``dictionary_encode`` and
one stable argsort.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from onepass.errors import InvalidParameterError
from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk, Options, Reader, concat_chunks
from onepass.sources._columns import resolve_column
from onepass.sources._compression import strip_codec
from onepass.sources._csv import delimiter_of
from onepass.sources._parquet import ParquetReader
from onepass.sources._series import SeriesRows
from onepass.sources._text import close_unless_stdin, numbered_blocks, open_at
from onepass.sources._transport import Entry

__all__ = ["SeriesTableReader", "check_table_options", "is_table"]

#: the column names looked for when an option is not given
_DEFAULT_NAMES = {"series_id_column": ("id", "item_id"), "timestamp_column": ("timestamp", "time", "date"),
                  "target_column": ("target", "value")}
_WHAT = {"series_id_column": "series id", "timestamp_column": "timestamp", "target_column": "target"}

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".tsv")
#: what pyarrow reads as null by default ("", "NA", "nan", "null"...): a missing value
_NULLS = pa.array(pacsv.ConvertOptions().null_values, pa.string())
_F64 = pa.float64()
_ZONED = r"(Z|[+-]\d\d:?\d\d)$"
_TIME_HELP = "ISO 8601, e.g. 2026-03-01 00:00:00"


def is_table(name: str) -> bool:
    """Whether a file of format ``"series"`` is a long table (by its extension)."""
    return strip_codec(name).lower().endswith(_PARQUET + _CSV)


def _is_parquet(name: str) -> bool:
    return name.lower().endswith(_PARQUET)


# -- the table's columns ------------------------------------------------------------------


def _as_list(spec: Any, what: str) -> list[str | int]:
    if spec is None:
        return []
    items = [spec] if isinstance(spec, (str, int)) else spec
    if not isinstance(items, (list, tuple)) or not all(
            isinstance(s, (str, int)) and not isinstance(s, bool) for s in items):
        raise InvalidParameterError(f"{what}={spec!r} must be a list of column names or 0-based indices")
    return list(items)


def check_table_options(table: dict[str, Any]) -> dict[str, Any]:
    """open_source's long-table options, checked: a name or index each, lists for the
    covariates and categories (a single one becomes a list of one)."""
    out = dict(table)
    for what in ("series_id_column", "timestamp_column", "target_column"):
        spec = table[what]
        if spec is not None and (isinstance(spec, bool) or not isinstance(spec, (str, int))):
            raise InvalidParameterError(f"{what}={spec!r} must be a column name or a 0-based index")
    for what in ("dynamic_feat_columns", "cat_columns"):
        if table[what] is not None:
            out[what] = _as_list(table[what], what)
    return out


@dataclass
class _Columns:
    """Where the id, timestamp, target, covariates and categories are (0-based)."""

    id: int
    time: int
    target: int
    dyn: list[int]
    cat: list[int]
    names: list[str] | None

    @property
    def used(self) -> list[int]:
        return [self.id, self.time, self.target, *self.dyn, *self.cat]

    def label(self, j: int) -> str | int:
        return j if self.names is None else self.names[j]


def resolve_columns(o: Options, names: list[str] | None, n_cols: int, where: str) -> _Columns:
    """The columns ``o`` names in a table with these ``names`` (None: no header), with
    the default names for the three required ones; an InvalidParameterError says what is
    missing or used twice."""
    found: dict[str, int] = {}
    missing = []
    for what in ("series_id_column", "timestamp_column", "target_column"):
        spec = getattr(o, what)
        if spec is None:
            hit = [d for d in _DEFAULT_NAMES[what] if names is not None and d in names]
            if hit:
                found[what] = names.index(hit[0])  # type: ignore[union-attr]
            else:
                missing.append(what)
        else:
            found[what] = resolve_column(spec, names, n_cols, what, where)  # type: ignore[assignment]
    if missing:
        flags = ", ".join(f"{m}= (--{m.replace('_', '-')})" for m in missing)
        if names is None:
            raise InvalidParameterError(
                f"{where} has no header, so its {', '.join(_WHAT[m] for m in missing)} column cannot be found by "
                f"name: give {flags} as 0-based indices")
        looked = "; ".join(f"no {' or '.join(map(repr, _DEFAULT_NAMES[m]))} for the {_WHAT[m]}" for m in missing)
        shown = ", ".join(map(repr, names[:20])) + (" ..." if len(names) > 20 else "")
        raise InvalidParameterError(f"the long table {where} has {looked}: name the column with {flags}; its "
                                    f"columns are {shown}")
    dyn = [resolve_column(s, names, n_cols, "dynamic_feat_columns", where)
           for s in _as_list(o.dynamic_feat_columns, "dynamic_feat_columns")]
    cat = [resolve_column(s, names, n_cols, "cat_columns", where) for s in _as_list(o.cat_columns, "cat_columns")]
    cols = _Columns(found["series_id_column"], found["timestamp_column"], found["target_column"],
                    dyn, cat, names)  # type: ignore[arg-type]
    roles = [("series_id_column", cols.id), ("timestamp_column", cols.time), ("target_column", cols.target)]
    roles += [("dynamic_feat_columns", j) for j in dyn] + [("cat_columns", j) for j in cat]
    seen: dict[int, str] = {}
    for what, j in roles:
        if j in seen:
            raise InvalidParameterError(f"column {cols.label(j)!r} of {where} is given twice (as {seen[j]} and "
                                        f"{what}): each column plays one part")
        seen[j] = what
    return cols


# -- rows of the table, before grouping ------------------------------------------------------


@dataclass
class _Rows:
    """Good rows of a stretch of the table, in table order: what a Chunk holds before a
    batch of them is grouped into records."""

    ids: pa.Array  # strings
    times: np.ndarray  # datetime64[s]
    target: np.ndarray  # float32, NaN where missing
    dyn: np.ndarray  # float32 (n_dynamic, n)
    cat: np.ndarray  # int64 (n, n_cat)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.target), 0)

    def __getitem__(self, index: slice) -> _Rows:
        a, b, _ = index.indices(len(self.target))
        return _Rows(self.ids.slice(a, b - a), self.times[a:b], self.target[a:b], self.dyn[:, a:b], self.cat[a:b])

    @classmethod
    def concat(cls, parts: Sequence[_Rows]) -> _Rows:
        return cls(pa.concat_arrays([p.ids for p in parts]), np.concatenate([p.times for p in parts]),
                   np.concatenate([p.target for p in parts]), np.concatenate([p.dyn for p in parts], axis=1),
                   np.concatenate([p.cat for p in parts]))


class _Faults:
    """The first fault of each row: its column and why."""

    def __init__(self, n: int) -> None:
        self.column = np.full(n, -1, np.int64)
        self.reason: dict[int, str] = {}

    def add(self, mask: np.ndarray, column: int, why: Any) -> None:
        """Rows of ``mask`` are at fault in ``column``; ``why(i)`` says why (or a str)."""
        for i in np.flatnonzero(mask & (self.column < 0)):
            self.column[i] = column
            self.reason[int(i)] = why if isinstance(why, str) else why(int(i))

    @property
    def good(self) -> np.ndarray:
        return self.column < 0


def _cast(arr: pa.Array, typ: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Text ``arr`` cast to ``typ``, and which values would not cast (null in the result):
    a failing cast is halved until the values at fault are found."""
    try:
        return arr.cast(typ), np.zeros(len(arr), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if len(arr) <= 8:
        parts, failed = [], np.zeros(len(arr), bool)
        for i in range(len(arr)):
            try:
                parts.append(arr.slice(i, 1).cast(typ))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                parts.append(pa.nulls(1, typ))
                failed[i] = True
        return pa.concat_arrays(parts), failed
    h = len(arr) // 2
    a, fa = _cast(arr.slice(0, h), typ)
    b, fb = _cast(arr.slice(h), typ)
    return pa.concat_arrays([a, b]), np.concatenate([fa, fb])


def _text_values(arr: pa.Array) -> pa.Array:
    """Text cells with the blanks around them cut, and pyarrow's null words ("", NA, nan...) null."""
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.is_in(arr, value_set=_NULLS), pa.scalar(None, pa.string()), arr)


def _seconds(arr: pa.Array) -> np.ndarray:
    """Timestamps or dates (nulls as 0) as datetime64[s], floored; zoned ones in UTC."""
    t = arr.type
    if pa.types.is_date32(t):
        return (arr.cast(pa.int32()).fill_null(0).to_numpy().astype(np.int64) * 86400).astype("datetime64[s]")
    if pa.types.is_date64(t):
        return (arr.cast(pa.int64()).fill_null(0).to_numpy() // 1000).astype("datetime64[s]")
    per_second = {"s": 1, "ms": 1000, "us": 10**6, "ns": 10**9}[t.unit]
    return (arr.cast(pa.int64()).fill_null(0).to_numpy() // per_second).astype("datetime64[s]")


def _floats(arr: pa.Array) -> np.ndarray:
    """Numbers as float64, null as NaN."""
    if arr.type != _F64:
        arr = arr.cast(_F64)
    return arr.to_numpy(zero_copy_only=False)


def _convert(columns: dict[int, pa.Array], cols: _Columns, as_text: bool, faults: _Faults) -> _Rows:
    """The table's used columns as arrays, each row's first fault noted. ``as_text``: the
    cells are text still to parse (CSV read again after pyarrow's typed read failed);
    otherwise they are typed (CSV's typed read, Parquet) and only a text timestamp column
    is parsed."""
    n = len(columns[cols.id])
    ids = columns[cols.id]
    if ids.type != pa.string():
        ids = ids.cast(pa.string())
    no_id = ids.is_null().to_numpy(zero_copy_only=False) | pc.equal(ids, "").fill_null(True).to_numpy(
        zero_copy_only=False)
    faults.add(no_id, cols.id, "series id missing")

    t = columns[cols.time]
    if pa.types.is_string(t.type) or pa.types.is_large_string(t.type):
        raw = t
        t = _text_values(t.cast(pa.string()))
        missing = t.is_null().to_numpy(zero_copy_only=False)
        zoned = pc.match_substring_regex(t, _ZONED).fill_null(False).to_numpy(zero_copy_only=False)
        parsed = np.zeros(n, "datetime64[s]")
        failed = np.zeros(n, bool)
        for mask, typ in ((~zoned, pa.timestamp("ns")), (zoned, pa.timestamp("ns", tz="UTC"))):
            if mask.any():
                idx = np.flatnonzero(mask)
                values, bad = _cast(t.take(pa.array(idx)), typ)
                parsed[idx] = _seconds(values)
                failed[idx] = bad
        faults.add(missing, cols.time, "timestamp missing")
        faults.add(failed, cols.time, lambda i: f"{raw[i].as_py().strip()!r} is not a date and time ({_TIME_HELP})")
        times = parsed
    else:
        faults.add(t.is_null().to_numpy(zero_copy_only=False), cols.time, "timestamp missing")
        times = _seconds(t)

    def numbers(j: int, typ: pa.DataType = _F64) -> tuple[pa.Array, np.ndarray]:
        """Column ``j`` as ``typ`` and where it is null (missing)."""
        arr = columns[j]
        if as_text:
            arr = _text_values(arr)
            missing = arr.is_null().to_numpy(zero_copy_only=False)
            arr, failed = _cast(arr, typ)
            what = "a number" if typ == _F64 else "a whole number >= 0 (a category)"
            faults.add(failed, j, lambda i, raw=columns[j], what=what: f"{raw[i].as_py().strip()!r} is not {what}")
            return arr, missing
        return arr, arr.is_null().to_numpy(zero_copy_only=False)

    arr, _ = numbers(cols.target)
    target = _floats(arr)
    faults.add(np.isinf(target), cols.target, lambda i: f"{target[i]} is not allowed in the target "
               "(an empty cell or NaN marks a missing value)")
    dyn = np.empty((len(cols.dyn), n), np.float32)
    for k, j in enumerate(cols.dyn):
        arr, missing = numbers(j)
        values = _floats(arr)
        faults.add(missing | np.isnan(values), j, "covariate missing: covariates must be known at every point")
        faults.add(np.isinf(values), j, lambda i, v=values: f"{v[i]} is not allowed in a covariate")
        dyn[k] = values
    cat = np.zeros((n, len(cols.cat)), np.int64)
    for k, j in enumerate(cols.cat):
        arr, missing = numbers(j, pa.int64())
        faults.add(missing, j, "category missing")
        if pa.types.is_floating(arr.type):
            values = arr.to_numpy(zero_copy_only=False)
            whole = np.isfinite(values) & (values == np.round(values))
            faults.add(~whole & ~missing, j, lambda i, v=values: f"{v[i]} is not a whole number >= 0 (a category)")
            values = np.where(whole, values, 0)
        else:
            values = arr.cast(pa.int64()).fill_null(0).to_numpy()
        faults.add(values < 0, j, lambda i, v=values: f"{int(v[i])} is not a whole number >= 0 (a category)")
        cat[:, k] = values
    return _Rows(ids, times, target.astype(np.float32), dyn, cat)


def _chunk(rows: _Rows, faults: _Faults, ends: np.ndarray, lines: np.ndarray, cols: _Columns,
           raw: Any) -> Chunk:
    """A Chunk of the good ``rows``; the bad ones are BadRecords (``raw(i)``: row i's text)."""
    bad = [BadRecord(int(ends[i]), int(lines[i]), faults.reason[i], cols.label(int(faults.column[i])), raw(i))
           for i in sorted(faults.reason)]
    if bad:
        keep = np.flatnonzero(faults.good)
        rows = _Rows(rows.ids.take(pa.array(keep)), rows.times[keep], rows.target[keep], rows.dyn[:, keep],
                     rows.cat[keep])
        ends, lines = ends[keep], lines[keep]
    return Chunk(rows, None, None, ends.astype(np.int64), lines.astype(np.int64), bad)


# -- batches of rows into records --------------------------------------------------------------


def _empty_records(cols: _Columns) -> SeriesRows:
    return SeriesRows([], np.zeros(0, "datetime64[s]"), [], np.zeros((0, len(cols.cat)), np.int64),
                      [] if cols.dyn else None, [], [])


def _records(chunk: Chunk, bad: list[BadRecord], where: Callable[[int], str], cols: _Columns) -> Chunk:
    """One record per series id of ``chunk``'s rows, in the order of their last row."""
    rows: _Rows = chunk.X
    n = len(rows.target)
    if n == 0:
        return Chunk(_empty_records(cols), None, None, np.zeros(0, np.int64), np.zeros(0, np.int64), bad)
    encoded = rows.ids.dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    n_ids = len(encoded.dictionary)
    last = np.full(n_ids, -1, np.int64)
    np.maximum.at(last, codes, np.arange(n))  # each id's last row
    by_last = np.argsort(last)
    rank = np.empty(n_ids, np.int64)
    rank[by_last] = np.arange(n_ids)
    order = np.argsort(rank[codes], kind="stable")
    cuts = np.cumsum(np.bincount(rank[codes], minlength=n_ids))[:-1]
    heads = np.r_[0, cuts]
    first = order[heads]
    spans = list(zip(heads.tolist(), np.r_[cuts, n].tolist(), strict=True))
    times, target = rows.times[order], rows.target[order]
    dyn = rows.dyn[:, order] if cols.dyn else None
    records = SeriesRows(
        encoded.dictionary.take(pa.array(by_last)).to_pylist(), times[heads], [target[a:b] for a, b in spans],
        rows.cat[first], None if dyn is None else [dyn[:, a:b] for a, b in spans],
        [where(int(line)) for line in chunk.lines[first]], [times[a:b] for a, b in spans])
    end_rows = last[by_last]
    return Chunk(records, None, None, chunk.ends[end_rows], chunk.lines[end_rows], bad)


def _batches(chunks: Iterator[Chunk], size: int, where: Callable[[int], str],
             cols: Callable[[], _Columns]) -> Iterator[Chunk]:
    """Chunks of table rows (any length) -> one Chunk of records per ``size`` good rows
    (the last shorter), each with the bad records before its end. ``where(line)`` names a
    record; ``cols()`` the columns of the file being read (known once it is opened)."""
    held: list[Chunk] = []
    n_held = 0
    bad: list[BadRecord] = []

    def cut(n: int) -> Chunk:
        nonlocal held, n_held
        take, rest, got = [], [], 0
        for c in held:
            if got == n:
                rest.append(c)
            elif got + len(c) <= n:
                take.append(c)
                got += len(c)
            else:
                k = n - got
                take.append(c.rows(0, k))
                rest.append(c.rows(k, len(c)))
                got = n
        held, n_held = rest, n_held - n
        return concat_chunks(take)

    for chunk in chunks:
        bad.extend(chunk.bad)
        if len(chunk):
            held.append(chunk)
            n_held += len(chunk)
        while n_held >= size:
            batch = cut(size)
            end = int(batch.ends[-1])
            k = next((i for i, r in enumerate(bad) if r.end > end), len(bad))
            yield _records(batch, bad[:k], where, cols())
            bad = bad[k:]
    if n_held or bad:
        batch = cut(n_held) if n_held else None
        yield _records(batch, bad, where, cols()) if batch is not None else Chunk(
            _empty_records(cols()), None, None, np.zeros(0, np.int64), np.zeros(0, np.int64), bad)


# -- the two kinds of file ---------------------------------------------------------------------


class _CsvTable:
    """The CSV side: header, typed block reads, and the careful ways round a bad block."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.columns: _Columns | None = None

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        f, first, offset, line = open_at(entry, start)
        try:
            if first == b"":
                return
            delim = delimiter_of(entry, self.options.delimiter)
            fields = next(csv.reader([first.decode("utf-8", errors="replace").rstrip("\r\n")],
                                     delimiter=delim.decode()))
            has_header = self.options.header
            if has_header is None:
                has_header = not self._is_data(fields)
            names = [s.strip() for s in fields] if has_header else None
            self.columns = cols = resolve_columns(self.options, names, len(fields), entry.name)
            prefix = b""
            if start is None and not has_header:
                prefix, offset, line = first, 0, 0
            for block, at, at_line, starts, ends in numbered_blocks(f, prefix, offset, line):
                yield self._parse_block(block, at, at_line, starts, ends, len(fields), cols, delim)
        finally:
            close_unless_stdin(entry, f)

    def _is_data(self, fields: list[str]) -> bool:
        """A first line is data (no header) when the timestamp column, given by index,
        holds a date and time."""
        spec = self.options.timestamp_column
        if isinstance(spec, bool) or not isinstance(spec, int) or not -len(fields) <= spec < len(fields):
            return False
        try:
            return not np.isnat(np.datetime64(fields[spec].strip().replace(" ", "T", 1), "s"))
        except ValueError:
            return False

    def _parse_block(self, block: memoryview, offset: int, line: int, starts: np.ndarray, ends: np.ndarray,
                     n_cols: int, cols: _Columns, delim: bytes) -> Chunk:
        blank = (ends - starts) == 0
        for i in np.flatnonzero((ends - starts) <= 2):  # "\r" or blank-only lines are blank too
            if not bytes(block[starts[i]:ends[i]]).strip():
                blank[i] = True
        rows = np.flatnonzero(~blank)
        ragged: list[BadRecord] = []
        names = [str(j) for j in range(n_cols)]
        used = [str(j) for j in cols.used]
        typed = {str(cols.id): pa.string(), str(cols.time): pa.timestamp("ns"), str(cols.target): pa.float64(),
                 **{str(j): pa.float64() for j in cols.dyn}, **{str(j): pa.int64() for j in cols.cat}}
        columns = None
        as_text = False
        for types in (typed, {c: pa.string() for c in used}):
            try:
                table = pacsv.read_csv(
                    pa.BufferReader(pa.py_buffer(block)),
                    read_options=pacsv.ReadOptions(column_names=names, use_threads=True),
                    parse_options=pacsv.ParseOptions(delimiter=delim.decode()),
                    convert_options=pacsv.ConvertOptions(column_types=types, include_columns=used,
                                                         strings_can_be_null=False,
                                                         quoted_strings_can_be_null=False))
            except (pa.ArrowException, ValueError):
                as_text = True
                continue
            if table.num_rows == len(rows):
                columns = {j: table.column(str(j)).combine_chunks() for j in cols.used}
                break
            as_text = True
        if columns is None:  # a line of the wrong number of fields, or worse: line by line
            columns, rows, ragged = self._split_lines(block, offset, line, starts, ends, rows, n_cols, cols, delim)
        ends_at = offset + np.minimum(ends[rows] + 1, len(block))
        lines_at = line + 1 + rows
        faults = _Faults(len(rows))
        table_rows = _convert(columns, cols, as_text, faults)
        chunk = _chunk(table_rows, faults, ends_at, lines_at, cols,
                       lambda i: bytes(block[starts[rows[i]]:ends[rows[i]]]).decode("utf-8", "replace").rstrip("\r"))
        if ragged:
            chunk.bad = sorted(ragged + chunk.bad, key=lambda r: r.end)
        return chunk

    def _split_lines(self, block: memoryview, offset: int, line: int, starts: np.ndarray, ends: np.ndarray,
                     rows: np.ndarray, n_cols: int, cols: _Columns, delim: bytes
                     ) -> tuple[dict[int, pa.Array], np.ndarray, list[BadRecord]]:
        good, cells, ragged = [], [], []
        for i in rows:
            text = bytes(block[starts[i]:ends[i]]).decode("utf-8", errors="replace").rstrip("\r")
            fields = next(csv.reader([text], delimiter=delim.decode()), [])
            if len(fields) != n_cols:
                ragged.append(BadRecord(int(offset + min(int(ends[i]) + 1, len(block))), int(line + 1 + i),
                                        f"expected {n_cols} columns, got {len(fields)}", None, text))
                continue
            good.append(i)
            cells.append([fields[j] for j in cols.used])
        columns = {j: pa.array([c[k] for c in cells], pa.string()) for k, j in enumerate(cols.used)}
        return columns, np.array(good, np.int64), ragged


class _ParquetTable(ParquetReader):
    """The Parquet side: the Parquet reader's files, record batches and cursors, each
    record batch's used columns converted into table rows."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.columns: _Columns | None = None

    def _read(self, pf: pq.ParquetFile, entry: Entry, start: dict | None, is_remote: bool) -> Iterator[Chunk]:
        schema = pf.schema_arrow
        names = schema.names
        self.columns = cols = resolve_columns(self.options, names, len(names), entry.name)
        kinds = [(cols.id, "series_id_column", _is_id), (cols.time, "timestamp_column", _is_time),
                 (cols.target, "target_column", _is_number)]
        kinds += [(j, "dynamic_feat_columns", _is_number) for j in cols.dyn]
        kinds += [(j, "cat_columns", _is_category) for j in cols.cat]
        for j, what, fits in kinds:
            t = schema.field(j).type
            if not fits(t):
                raise InvalidParameterError(f"{what}: column {names[j]!r} of {entry.name} has type {t}, which "
                                            f"cannot be a {_KIND_TEXT[what]}")
        used = [names[j] for j in cols.used]
        for rb, row0 in self._record_batches(pf, entry, start, used, is_remote):
            columns = {j: rb.column(names[j]) for j in cols.used}
            faults = _Faults(rb.num_rows)
            rows = _convert(columns, cols, False, faults)
            ends = np.arange(row0 + 1, row0 + rb.num_rows + 1, dtype=np.int64)
            yield _chunk(rows, faults, ends, ends, cols,
                         lambda i, rb=rb: json.dumps(rb.slice(int(i), 1).to_pylist()[0], default=str))


_KIND_TEXT = {"series_id_column": "series id (text or whole numbers)",
              "timestamp_column": "timestamp (a timestamp, a date, or ISO 8601 text)",
              "target_column": "target (numbers)", "dynamic_feat_columns": "covariate (numbers)",
              "cat_columns": "category (whole numbers)"}


def _is_id(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_id(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)


def _is_time(t: pa.DataType) -> bool:
    return (pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t))


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _is_category(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


class SeriesTableReader(Reader):
    """Format ``"series"`` from long tables: CSV (by the CSV machinery, offsets and lines in
    cursors) or Parquet (by the Parquet reader's, rows in cursors), by each file's
    extension; batches of ``batch_size`` rows grouped into series records."""

    name = "series"
    can_stream = True
    chunks_are_batches = True

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self._csv = _CsvTable(options)
        self._parquet = _ParquetTable(options)
        self._is_parquet = False  # the kind of the file read last: its cursors' fields

    def position(self, end: int, line: int) -> dict:
        return self._parquet.position(end, line) if self._is_parquet else super().position(end, line)

    def start_of(self, cursor: dict) -> dict:
        return self._parquet.start_of(cursor) if "row" in cursor else super().start_of(cursor)

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        self._is_parquet = _is_parquet(entry.name)
        side: Any = self._parquet if self._is_parquet else self._csv
        name = entry.name + (":row " if self._is_parquet else ":")
        yield from _batches(side.read(entry, start), self.options.batch_size, lambda line: f"{name}{line}",
                            lambda: side.columns)
