"""NumPy ``.npy`` reader: 2-D numeric arrays, sliced row by row range.

Every file, local or fsspec URL, is streamed: the header is parsed, then rows are read
as raw bytes in blocks of about 8 MB. (Memory-mapping would be no faster here and would
leave every page read resident, so RSS would grow with the file.) All columns are features unless
``label_column`` / ``weight_column`` give 0-based column indices. A row holding NaN or
inf is a bad record named by its 1-based row number and 0-based column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from onepass.errors import DataError, InvalidParameterError
from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk, Options, Reader
from onepass.sources._columns import feature_indices, resolve_column
from onepass.sources._transport import Entry

__all__ = ["NpyReader"]

_READ_BYTES = 8 << 20


class NpyReader(Reader):
    name = "npy"

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        for what in ("label_column", "weight_column"):
            v = getattr(options, what)
            if v is not None and (isinstance(v, (str, bool)) or not isinstance(v, int)):
                raise InvalidParameterError(
                    f"{what}={v!r}: .npy columns have no names, pass a 0-based index")

    def position(self, end: int, line: int) -> dict:
        return {"row": int(end), "line": int(line)}

    def start_of(self, cursor: dict) -> dict:
        return {"row": int(cursor["row"])}

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        f = None
        try:
            f = entry.open()
            try:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(f)
            except ValueError as e:
                raise DataError(f"{entry.name} is not a readable .npy file: {e}") from None
            if fortran and len(shape) > 1 and shape[1] > 1:
                raise DataError(f"{entry.name} is stored in Fortran order, which cannot be "
                                "streamed; save it with np.save(np.ascontiguousarray(a))")
            if len(shape) != 2:
                raise DataError(f"{entry.name} holds an array of shape {shape}; expected 2-D "
                                "(rows, columns)")
            if dtype.kind not in "fiub" or dtype.hasobject:
                raise DataError(f"{entry.name} holds dtype {dtype}; expected numbers")
            n_rows, n_cols = shape
            o = self.options
            li = resolve_column(o.label_column, None, n_cols, "label_column", entry.name)
            wi = resolve_column(o.weight_column, None, n_cols, "weight_column", entry.name)
            feats = feature_indices(n_cols, li, wi)
            first = 0 if start is None else int(start["row"])
            if not 0 <= first <= n_rows:
                raise DataError(f"the cursor's row {first} is beyond the end of {entry.name} "
                                f"({n_rows} rows); the file changed since the cursor was saved")
            step = max(o.batch_size, _READ_BYTES // max(1, n_cols * dtype.itemsize))
            f.seek(f.tell() + first * n_cols * dtype.itemsize)
            for a in range(first, n_rows, step):
                b = min(n_rows, a + step)
                need = (b - a) * n_cols * dtype.itemsize
                data = f.read(need)
                if len(data) != need:
                    raise DataError(f"{entry.name} is truncated: expected {n_rows} rows")
                block = np.frombuffer(data, dtype=dtype).reshape(b - a, n_cols)
                yield self._convert(block, a, feats, li, wi)
        finally:
            if f is not None:
                f.close()

    def _convert(self, block: np.ndarray, row0: int, feats: list[int], li: int | None,
                 wi: int | None) -> Chunk:
        dt = self.options.dtype
        n = len(block)
        ends = np.arange(row0 + 1, row0 + n + 1, dtype=np.int64)
        bad = []
        if block.dtype.kind == "f":
            finite = np.isfinite(block)
            rows_bad = np.flatnonzero(~finite.all(axis=1))
            for i in rows_bad:
                j = int(np.flatnonzero(~finite[i])[0])
                role = "label" if j == li else ("weight" if j == wi else "feature")
                bad.append(BadRecord(int(ends[i]), int(ends[i]),
                                     f"{block[i, j]} is not allowed in a {role} "
                                     "(NaN and inf are not allowed)", j,
                                     json.dumps([float(v) for v in block[i]])))
            if len(rows_bad):
                keep = np.ones(n, dtype=bool)
                keep[rows_bad] = False
                block, ends = block[keep], ends[keep]
        if li is None and wi is None:
            X = block.astype(dt)
        else:  # one copy, from a slice when the features are consecutive (not a gather, then a copy)
            X = np.ascontiguousarray(_columns(block, feats), dtype=dt)
        y = None if li is None else block[:, li].astype(dt)
        w = None if wi is None else block[:, wi].astype(dt)
        return Chunk(X, y, w, ends, ends, bad)


def _columns(block: np.ndarray, cols: list[int]) -> np.ndarray:
    """``block[:, cols]``, as a view when ``cols`` are consecutive (the label or weight is the
    first or last column)."""
    if cols and cols[-1] - cols[0] == len(cols) - 1:
        return block[:, cols[0]:cols[-1] + 1]
    return block[:, cols]
