"""Parquet reader: streamed record batch by record batch, row group by row group.

Features are every numeric column (integer, floating, decimal) except the label and
weight columns; other columns are ignored. Only the columns used are read. Cursors
hold the row within the file (plus its row group and row in the group); resume reopens
at that row group and drops the rows before the cursor. Nulls, NaN and inf are bad
records, named by their 1-based row number in the file and column name.

Memory does not grow with the file. pyarrow's pre-buffering (``ParquetFile(pre_buffer=True)``,
its default) keeps the bytes of every row group one ``iter_batches`` call covers until
the next call, so one call over a whole file ends up holding all of it (a 5M-row file of
1.5 GB peaked at 1.8 GB RSS). A local file is read without it, each column's pages
streamed through a ``_BUFFER_BYTES`` buffer (the OS page cache reads ahead): memory is
one record batch (at least 65,536 rows, or ``batch_size``) and a page per column,
whatever the size of the row groups. A handle (an fsspec file, where a read may be a
request) keeps pre-buffering for its coalesced reads, one call per window of consecutive
row groups of about ``_WINDOW_BYTES`` compressed bytes (a larger group is a window
alone): memory is one window and one record batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from onepass.errors import DataError, InvalidParameterError
from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk, Options, Reader
from onepass.sources._columns import resolve_column, select_features
from onepass.sources._transport import Entry

__all__ = ["ParquetReader"]

_MIN_READ_ROWS = 65536
#: bytes a local file's column reader buffers at a time (pages stream through it)
_BUFFER_BYTES = 1 << 16
#: compressed bytes of row groups pre-buffered at once from a remote file (at least one group)
_WINDOW_BYTES = 32 << 20


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


class ParquetReader(Reader):
    name = "parquet"

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self._group_starts = np.zeros(1, dtype=np.int64)

    def position(self, end: int, line: int) -> dict:
        g = int(np.searchsorted(self._group_starts, end, side="right")) - 1
        g = min(g, len(self._group_starts) - 1)
        return {"row": int(end), "row_group": g, "row_in_group": int(end - self._group_starts[g]),
                "line": int(line)}

    def start_of(self, cursor: dict) -> dict:
        return {"row": int(cursor["row"])}

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        if entry.compression is not None:
            raise DataError(f"{entry.name} is {entry.compression}-compressed, but a Parquet file is read by "
                            "seeking into it (and compresses its own columns): decompress it first")
        handle = entry.open() if entry.local_path is None else None
        try:
            try:
                if handle is None:
                    pf = pq.ParquetFile(entry.path, pre_buffer=False, buffer_size=_BUFFER_BYTES)
                else:
                    pf = pq.ParquetFile(handle, pre_buffer=True)
            except (pa.ArrowException, OSError) as e:
                raise DataError(f"{entry.name} is not a readable parquet file: {e}") from None
            yield from self._read(pf, entry, start, is_remote=handle is not None)
        finally:
            if handle is not None:
                handle.close()

    def _read(self, pf: pq.ParquetFile, entry: Entry, start: dict | None,
              is_remote: bool) -> Iterator[Chunk]:
        schema = pf.schema_arrow
        names = schema.names
        o = self.options
        li = resolve_column(o.label_column, names, len(names), "label_column", entry.name)
        wi = resolve_column(o.weight_column, names, len(names), "weight_column", entry.name)
        for what, j in (("label_column", li), ("weight_column", wi)):
            if j is not None and not _is_numeric(schema.field(j).type):
                raise InvalidParameterError(
                    f"{what}={names[j]!r} of {entry.name} has type {schema.field(j).type}, "
                    "not a number")
        if li is not None and li == wi:
            raise InvalidParameterError("label_column and weight_column are the same column")
        numeric = [j for j in range(len(names)) if j not in (li, wi) and _is_numeric(schema.field(j).type)]
        feats = [names[j] for j in select_features(names, numeric, o.feature_columns, entry.name)]
        self.feature_columns, self.columns = feats, list(names)
        self.unused_columns = [n for j, n in enumerate(names) if n not in feats and j not in (li, wi)]
        label = None if li is None else names[li]
        weight = None if wi is None else names[wi]
        columns = feats + [c for c in (label, weight) if c is not None]
        for rb, row0 in self._record_batches(pf, entry, start, columns, is_remote):
            yield self._convert(rb, row0, feats, label, weight)

    def _record_batches(self, pf: pq.ParquetFile, entry: Entry, start: dict | None, columns: list[str],
                        is_remote: bool) -> Iterator[tuple[pa.RecordBatch, int]]:
        """``(record batch, its first row in the file)`` of ``columns`` from ``start`` on
        (the rows before it dropped): what every reader of parquet files converts."""
        o = self.options
        sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
        self._group_starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        total = int(self._group_starts[-1])
        first = 0 if start is None else int(start["row"])
        if not 0 <= first <= total:
            raise DataError(f"the cursor's row {first} is beyond the end of {entry.name} "
                            f"({total} rows); the file changed since the cursor was saved")
        if first == total:
            return
        g0 = int(np.searchsorted(self._group_starts, first, side="right")) - 1
        pos = int(self._group_starts[g0])
        windows = _windows(pf, g0) if is_remote else [range(g0, pf.num_row_groups)]
        try:
            for groups in windows:
                # each call's pre-buffered bytes replace the last call's
                for rb in pf.iter_batches(batch_size=max(o.batch_size, _MIN_READ_ROWS),
                                          row_groups=list(groups), columns=columns,
                                          use_threads=True):
                    n = rb.num_rows
                    a = min(n, max(0, first - pos))
                    if a < n:
                        yield rb.slice(a), pos + a
                    pos += n
        except pa.ArrowException as e:
            raise DataError(f"{entry.name}: cannot read rows after row {pos}: {e}") from None

    def _convert(self, rb: pa.RecordBatch, row0: int, feats: list[str], label: str | None,
                 weight: str | None) -> Chunk:
        dt = self.options.dtype
        n = rb.num_rows
        bad_col = np.full(n, -1, dtype=np.int64)  # first column at fault, by position
        reasons = {}
        cols = feats + [c for c in (label, weight) if c is not None]
        out = []
        for k, name in enumerate(cols):
            arr = rb.column(name)
            values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64) \
                if arr.null_count or pa.types.is_decimal(arr.type) else arr.to_numpy()
            role = "label" if name == label else ("weight" if name == weight else "feature")
            if arr.null_count:
                nul = arr.is_null().to_numpy(zero_copy_only=False)
                hit = nul & (bad_col < 0)
                bad_col[hit] = k
                for i in np.flatnonzero(hit):
                    reasons[i] = f"{role} missing" if role != "feature" else \
                        "missing value (null)"
            if values.dtype.kind == "f":
                nf = ~np.isfinite(values) & (bad_col < 0)
                if nf.any():
                    bad_col[nf] = k
                    for i in np.flatnonzero(nf):
                        reasons[i] = (f"{values[i]} is not allowed in a {role} "
                                      "(NaN and inf are not allowed)")
            out.append(values)
        X = np.empty((len(feats), n), dtype=dt)
        for k in range(len(feats)):
            X[k] = out[k]
        X = np.ascontiguousarray(X.T)
        y = None if label is None else out[len(feats)].astype(dt)
        w = None if weight is None else out[-1].astype(dt)
        ends = np.arange(row0 + 1, row0 + n + 1, dtype=np.int64)
        bad = []
        if reasons:
            for i in sorted(reasons):
                raw = json.dumps(rb.slice(int(i), 1).to_pylist()[0], default=str)
                bad.append(BadRecord(int(ends[i]), int(ends[i]), reasons[i],
                                     cols[bad_col[i]], raw))
            good = bad_col < 0
            X, ends = X[good], ends[good]
            y = None if y is None else y[good]
            w = None if w is None else w[good]
        return Chunk(X, y, w, ends, ends, bad)


def _windows(pf: pq.ParquetFile, g0: int) -> Iterator[range]:
    """Runs of consecutive row groups from ``g0`` of about ``_WINDOW_BYTES`` compressed
    bytes each (a larger group is a window alone)."""
    meta = pf.metadata
    a, size = g0, 0
    for g in range(g0, meta.num_row_groups):
        rg = meta.row_group(g)
        nbytes = sum(rg.column(c).total_compressed_size for c in range(rg.num_columns))
        if g > a and size + nbytes > _WINDOW_BYTES:
            yield range(a, g)
            a, size = g, 0
        size += nbytes
    yield range(a, meta.num_row_groups)
