"""Parquet reader: streamed record batch by record batch, row group by row group.

Features are every numeric column (integer, floating, decimal) except the label and
weight columns; other columns are ignored. Only the columns used are read, and never
more than one record batch (at least 65,536 rows, or ``batch_size``) at a time. Cursors
hold the row within the file (plus its row group and row in the group); resume reopens
at that row group and drops the rows before the cursor. Nulls, NaN and inf are bad
records, named by their 1-based row number in the file and column name.
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
from onepass.sources._columns import resolve_column
from onepass.sources._transport import Entry

__all__ = ["ParquetReader"]

_MIN_READ_ROWS = 65536


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
        handle = entry.open() if entry.local_path is None else None
        try:
            try:
                pf = pq.ParquetFile(handle if handle is not None else entry.path)
            except (pa.ArrowException, OSError) as e:
                raise DataError(f"{entry.name} is not a readable parquet file: {e}") from None
            yield from self._read(pf, entry, start)
        finally:
            if handle is not None:
                handle.close()

    def _read(self, pf: pq.ParquetFile, entry: Entry, start: dict | None) -> Iterator[Chunk]:
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
        feats = [names[j] for j in range(len(names))
                 if j not in (li, wi) and _is_numeric(schema.field(j).type)]
        label = None if li is None else names[li]
        weight = None if wi is None else names[wi]
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
        columns = feats + [c for c in (label, weight) if c is not None]
        try:
            batches = pf.iter_batches(batch_size=max(o.batch_size, _MIN_READ_ROWS),
                                      row_groups=list(range(g0, pf.num_row_groups)),
                                      columns=columns, use_threads=True)
            for rb in batches:
                n = rb.num_rows
                a = min(n, max(0, first - pos))
                if a < n:
                    yield self._convert(rb.slice(a), pos + a, feats, label, weight)
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
