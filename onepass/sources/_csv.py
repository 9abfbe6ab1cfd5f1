"""CSV/TSV reader: large byte blocks, parsed by pyarrow, sliced into batches.

How it reads
------------
The file is read in blocks of :data:`~onepass.sources._text.BLOCK_BYTES` (16 MB) cut
at the last newline. Each block is parsed at once by ``pyarrow.csv.read_csv`` with
explicit float column types, multithreaded; line ends come from
``np.flatnonzero(block == b"\\n")``, so every row knows the byte offset of the next
line and cursors resume with one seek. Rows holding NaN, inf or an empty field are found
vectorized and only those lines are re-parsed carefully to say why. When pyarrow
rejects the block (wrong column count, text in a number column...), that block alone is
parsed line by line to find the exact line and column and to apply ``on_bad_record``.

Quoted fields holding newlines are not supported (a block is cut at any newline).
Floats parsed by pyarrow go straight to float32; the careful path parses float64 then
rounds, which can differ in the last bit for decimal strings a hair from a float32
rounding boundary.

Measured speed
--------------
A 208 MB file, 400,000 rows x 50 columns like ``-12.345678``, page-cached, 2 cores,
end to end into float32 batches of 4096 rows (``/tmp/bench/cand.py`` and
``python -m onepass.sources._csv FILE``, see the final report of the sources work):

=====================================================  ========
candidate                                              MB/s
=====================================================  ========
pandas ``read_csv(engine="c", dtype=float32)``, 100k    ~205
pyarrow streaming ``open_csv``                          ~245
16 MB blocks + pandas C parser                          ~225
16 MB blocks + pyarrow ``read_csv``, 1 thread           ~235
8 / 32 / 64 MB blocks + pyarrow ``read_csv``, threads   ~250 / ~165 / ~145
16 MB blocks + pyarrow ``read_csv``, threads (chosen)   ~300
=====================================================  ========
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from onepass.errors import BadRecordError, InvalidParameterError
from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk, Options, Reader
from onepass.sources._columns import feature_indices, resolve_column, select_features
from onepass.sources._compression import strip_codec
from onepass.sources._numbers import parse_float
from onepass.sources._text import close_unless_stdin, numbered_blocks, open_at, split_lines
from onepass.sources._transport import Entry

__all__ = ["CsvReader", "delimiter_of"]


class _Bad(Exception):
    def __init__(self, reason: str, column: int | None = None) -> None:
        self.reason, self.column = reason, column


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _nonfinite(v: float) -> str:
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


class _Layout:
    """The columns of one file: which is the label, the weight, the features."""

    def __init__(self, n_cols: int, names: list[str] | None, label: int | None,
                 weight: int | None, wanted: list[str] | None = None, where: str = "") -> None:
        self.n_cols, self.names, self.label, self.weight = n_cols, names, label, weight
        self.features = select_features(names, feature_indices(n_cols, label, weight), wanted, where)
        self.role = {j: "unused column" for j in range(n_cols)}
        self.role.update({j: "feature" for j in self.features})
        if label is not None:
            self.role[label] = "label"
        if weight is not None:
            self.role[weight] = "weight"

    def column(self, j: int | None) -> str | int | None:
        if j is None or self.names is None:
            return j
        return self.names[j]


def delimiter_of(entry: Entry, delimiter: str | None) -> bytes:
    """The field separator of ``entry``: ``delimiter``, else tab for ``.tsv``, else comma."""
    if delimiter is not None:
        if len(delimiter) != 1:
            raise InvalidParameterError(f"delimiter={delimiter!r} must be a single character")
        return delimiter.encode()
    return b"\t" if strip_codec(entry.name).lower().endswith(".tsv") else b","


class CsvReader(Reader):
    name = "csv"
    can_stream = True

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.delimiter = options.delimiter
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise InvalidParameterError(
                f"delimiter={self.delimiter!r} must be a single character")

    # -- per file -----------------------------------------------------------------
    def _delimiter(self, entry: Entry) -> bytes:
        return delimiter_of(entry, self.delimiter)

    def _layout(self, entry: Entry, first: bytes, delim: bytes) -> tuple[_Layout, bool]:
        text = first.decode("utf-8", errors="replace").rstrip("\r\n")
        fields = [s.strip() for s in text.split(delim.decode())]
        has_header = self.options.header
        if has_header is None:
            has_header = any(f and not _is_number(f) for f in fields)
        names = [f.strip('"') for f in fields] if has_header else None
        o = self.options
        label = resolve_column(o.label_column, names, len(fields), "label_column", entry.name)
        weight = resolve_column(o.weight_column, names, len(fields), "weight_column",
                                entry.name)
        layout = _Layout(len(fields), names, label, weight, o.feature_columns, entry.name)
        if names is not None:
            self.columns = names
            self.feature_columns = [names[j] for j in layout.features]
            self.unused_columns = [names[j] for j, role in layout.role.items() if role == "unused column"]
        return layout, has_header

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        f, first, offset, line = open_at(entry, start)
        try:
            if not first.strip():
                if first == b"":
                    return
            delim = self._delimiter(entry)
            layout, has_header = self._layout(entry, first, delim)
            prefix = b""
            if start is None and not has_header:
                prefix, offset, line = first, 0, 0
            for block, at, at_line, starts, ends in numbered_blocks(f, prefix, offset, line):
                yield self._parse_block(block, at, at_line, layout, delim, starts, ends)
        finally:
            close_unless_stdin(entry, f)

    # -- one block ------------------------------------------------------------------
    def _parse_block(self, block: memoryview, offset: int, line: int, layout: _Layout,
                     delim: bytes, starts: np.ndarray, ends: np.ndarray) -> Chunk:
        lengths = ends - starts
        blank = lengths == 0
        short = np.flatnonzero(lengths <= 2)
        for i in short:  # "\r" or whitespace-only lines are blank too
            if not bytes(block[starts[i]:ends[i]]).strip():
                blank[i] = True
        rows = np.flatnonzero(~blank)
        dt = self.options.dtype
        try:
            table = pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(block)),
                read_options=pacsv.ReadOptions(
                    column_names=[str(j) for j in range(layout.n_cols)], use_threads=True),
                parse_options=pacsv.ParseOptions(delimiter=delim.decode()),
                convert_options=pacsv.ConvertOptions(
                    column_types={str(j): pa.from_numpy_dtype(dt)
                                  for j in range(layout.n_cols)},
                    null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False))
        except (pa.ArrowException, ValueError):
            return self._careful_block(block, offset, line, layout, delim, starts, ends, rows)
        if table.num_rows != len(rows):
            return self._careful_block(block, offset, line, layout, delim, starts, ends, rows)
        n = len(rows)
        # filling rows of a transposed buffer then one transpose copy is 2x faster than
        # strided column writes
        XT = np.empty((len(layout.features), n), dtype=dt)
        nulls = np.zeros(n, dtype=bool)
        for k, j in enumerate(layout.features):
            col = table.column(j)
            if col.null_count:
                nulls |= col.is_null().to_numpy(zero_copy_only=False)
            XT[k] = col.to_numpy()
        X = np.ascontiguousarray(XT.T)
        y = w = None
        bad_mask = nulls
        if layout.label is not None:
            col = table.column(layout.label)
            if col.null_count:
                bad_mask |= col.is_null().to_numpy(zero_copy_only=False)
            y = col.to_numpy().astype(dt, copy=False)
            bad_mask |= ~np.isfinite(y)
        if layout.weight is not None:
            col = table.column(layout.weight)
            if col.null_count:
                bad_mask |= col.is_null().to_numpy(zero_copy_only=False)
            w = col.to_numpy().astype(dt, copy=False)
            bad_mask |= ~np.isfinite(w)
        finite = np.isfinite(X)
        if not finite.all():
            bad_mask |= ~finite.all(axis=1)
        ends_abs = offset + np.minimum(ends[rows] + 1, len(block))
        lines_abs = line + 1 + rows
        bad: list[BadRecord] = []
        if bad_mask.any():
            for i in np.flatnonzero(bad_mask):
                raw = bytes(block[starts[rows[i]]:ends[rows[i]]])
                try:
                    self._check_finite(self._parse_line(raw, layout, delim), layout)
                    reason, column = "could not be parsed", None
                except _Bad as e:
                    reason, column = e.reason, layout.column(e.column)
                bad.append(BadRecord(int(ends_abs[i]), int(lines_abs[i]), reason, column,
                                     raw.decode("utf-8", errors="replace").rstrip("\r")))
            good = ~bad_mask
            X, ends_abs, lines_abs = X[good], ends_abs[good], lines_abs[good]
            y = None if y is None else y[good]
            w = None if w is None else w[good]
        return Chunk(X, y, w, ends_abs, lines_abs, bad)

    def _parse_line(self, raw: bytes, layout: _Layout, delim: bytes) -> list[float]:
        fields = raw.rstrip(b"\r").split(delim)
        if len(fields) != layout.n_cols:
            raise _Bad(f"expected {layout.n_cols} columns, got {len(fields)}")
        try:
            return [parse_float(x) for x in fields]
        except ValueError:
            pass
        values = []
        for j, x in enumerate(fields):
            try:
                values.append(parse_float(x))
            except ValueError:
                text = x.decode("utf-8", errors="replace").strip()
                role = layout.role.get(j)
                if not text:
                    raise _Bad(f"{role} missing" if role in ("label", "weight")
                               else "missing value (empty field)", j) from None
                raise _Bad(f"{text!r} is not a number", j) from None
        return values

    def _check_finite(self, values: list[float], layout: _Layout) -> None:
        for j, v in enumerate(values):
            if not math.isfinite(v):
                raise _Bad(f"{_nonfinite(v)} is not allowed in a {layout.role.get(j)} "
                           "(NaN and inf are not allowed)", j)

    def _careful_block(self, block: bytes, offset: int, line: int, layout: _Layout,
                       delim: bytes, starts: np.ndarray, ends: np.ndarray,
                       rows: np.ndarray) -> Chunk:
        good_vals: list[list[float]] = []
        good_ends: list[int] = []
        good_lines: list[int] = []
        bad: list[BadRecord] = []
        lines = split_lines(bytes(block))
        nonblank = set(rows.tolist())
        for i, raw in enumerate(lines):
            if i not in nonblank:
                continue
            end = offset + min(int(ends[i]) + 1, len(block))
            try:
                values = self._parse_line(raw, layout, delim)
                if not all(map(math.isfinite, values)):
                    self._check_finite(values, layout)
            except _Bad as e:
                bad.append(BadRecord(end, line + 1 + i, e.reason, layout.column(e.column),
                                     raw.decode("utf-8", errors="replace").rstrip("\r")))
                continue
            good_vals.append(values)
            good_ends.append(end)
            good_lines.append(line + 1 + i)
        dt = self.options.dtype
        arr = np.array(good_vals, dtype=np.float64).reshape(len(good_vals), layout.n_cols)
        X = arr[:, layout.features].astype(dt)
        y = None if layout.label is None else arr[:, layout.label].astype(dt)
        w = None if layout.weight is None else arr[:, layout.weight].astype(dt)
        return Chunk(X, y, w, np.array(good_ends, dtype=np.int64),
                     np.array(good_lines, dtype=np.int64), bad)


def _main() -> None:  # pragma: no cover - measurement helper
    import sys
    import time

    from onepass.sources import open_source

    path = sys.argv[1]
    import os

    t = time.perf_counter()
    n = 0
    with open_source(path, batch_size=4096) as src:
        for b in src:
            n += b.n_rows
    dt = time.perf_counter() - t
    print(f"{n} rows, {os.path.getsize(path) / dt / 1e6:.0f} MB/s")


if __name__ == "__main__":  # pragma: no cover
    _main()

_ = BadRecordError
