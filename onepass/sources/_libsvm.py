"""libsvm / svmlight reader: ``label idx:val idx:val ... [# comment]``, as CSR float32.

Indices are 1-based as in libsvm (``zero_based=True`` for 0-based files); an optional
``qid:N`` after the label is ignored. The width is ``n_features`` when declared;
otherwise it is inferred from the largest index among the first ``batch_size`` rows of
the first block read (and stored in every cursor, so a resumed run keeps it). Any later
index beyond the width is a bad record whose message says to pass ``n_features``.

An inferred width is at most :data:`MAX_INFERRED_FEATURES` (2**24, 16.7 million columns):
a state is O(width) per center, component or model, so a width inferred from one stray
index (``0 3000000000:1``) would ask for tens of GB before the first update. An index past
it without ``n_features`` is a bad record (``on_bad_record`` applies), named by file and
line, whose message says to pass ``--n-features N``; a declared width may be larger.

A clean block is parsed by one compiled pass over its bytes (``_libsvm_kernel``); if the
compiled parser declines it, with no Python loop over its lines: separators become newlines,
one multithreaded pyarrow parse reads every number, and the byte after each token tells
an index from a value (half the CPU time of the line-by-line path: 0.95 s against 1.83 s
for 83 MB, 200k rows of 30 pairs). A block with comments, ``qid``, blank lines or any
fault goes through the line-by-line path: tokens split with bytes operations, numbers
parsed in one pyarrow call, validation (integral, in range, finite) vectorized, and
only lines found at fault re-parsed one by one to say why.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import scipy.sparse as sp

from onepass.errors import InvalidParameterError
from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk, Options, Reader
from onepass.sources._numbers import parse_float, parse_int
from onepass.sources._text import data_blocks, split_lines
from onepass.sources._transport import Entry

__all__ = ["LibsvmReader", "MAX_INFERRED_FEATURES"]

#: the widest a libsvm source infers its width to without n_features (2**24 columns)
MAX_INFERRED_FEATURES = 1 << 24
#: the widest width at all: CSR column indices are int32
_MAX_FEATURES = np.iinfo(np.int32).max


def _parse_numbers(text: bytes) -> np.ndarray:
    """Parse one number per line with pyarrow's multithreaded CSV parser (4x np.fromstring)."""
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(text)),
            read_options=pacsv.ReadOptions(column_names=["v"], use_threads=True),
            convert_options=pacsv.ConvertOptions(column_types={"v": pa.float64()},
                                                 null_values=[]))
    except pa.ArrowException as e:
        raise ValueError(str(e)) from None
    return table.column(0).to_numpy()


class _Bad(Exception):
    def __init__(self, reason: str, column: int | None = None) -> None:
        self.reason, self.column = reason, column


def _tokens(raw: bytes) -> list[bytes]:
    h = raw.find(b"#")
    return (raw if h < 0 else raw[:h]).split()


class LibsvmReader(Reader):
    name = "libsvm"

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        for what in ("label_column", "weight_column"):
            if getattr(options, what) is not None:
                raise InvalidParameterError(
                    f"{what} does not apply to libsvm files: the label is the first field")
        if options.n_features is not None and options.n_features > _MAX_FEATURES:
            raise InvalidParameterError(
                f"n_features={options.n_features} is more than the {_MAX_FEATURES} columns a sparse batch "
                "indexes (int32)")
        self._base = 0 if options.zero_based else 1
        self._inferred = False

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        for block, at, at_line, _, ends in data_blocks(entry, start):
            # the compiled pass reads the reused buffer in place (its arrays are its own);
            # the other paths keep bytes
            fast = self._parse_block_compiled(block, at, at_line, ends)
            if fast is None:
                data = bytes(block)
                fast = self._parse_block_vectorized(data, at, at_line, ends)
                yield fast if fast is not None else self._parse_block(data, at, at_line, ends)
            else:
                yield fast

    def _range_reason(self, index: int) -> str:
        written = index + self._base
        if index < 0:
            return f"feature index {written} is below {self._base}" + (
                "" if self._base == 0 else "; indices are 1-based, pass zero_based=True "
                "for 0-based files")
        if self._inferred and index >= MAX_INFERRED_FEATURES:
            return (f"feature index {written} is past {MAX_INFERRED_FEATURES}, the widest a libsvm source infers "
                    "without a declared width (a state that wide may not fit in memory); pass --n-features N "
                    "(n_features=N) to declare the full width")
        msg = f"feature index {written} is out of range for n_features={self.n_features}"
        if self._inferred:
            msg += (" (inferred from the first batch); pass n_features (--n-features) to "
                    "declare the full width")
        return msg

    def _parse_line(self, raw: bytes) -> tuple[float, np.ndarray, np.ndarray]:
        toks = _tokens(raw)
        if b":" in toks[0]:
            raise _Bad("label missing (the line starts with idx:val)")
        try:
            label = parse_float(toks[0])
        except ValueError:
            raise _Bad(f"label {toks[0].decode(errors='replace')!r} is not a number") from None
        if not math.isfinite(label):
            raise _Bad(f"label {label} is not allowed (NaN and inf are not allowed)")
        pairs = toks[1:]
        if pairs and pairs[0].startswith(b"qid:"):
            pairs = pairs[1:]
        idx, val = [], []
        for t in pairs:
            text = t.decode(errors="replace")
            parts = t.split(b":")
            if len(parts) != 2:
                raise _Bad(f"{text!r} is not idx:value")
            try:
                i = parse_int(parts[0])
            except ValueError:
                raise _Bad(f"index in {text!r} is not an integer") from None
            try:
                v = parse_float(parts[1])
            except ValueError:
                raise _Bad(f"{parts[1].decode(errors='replace')!r} is not a number",
                           i) from None
            if not math.isfinite(v):
                raise _Bad(f"{v} is not allowed in a feature (NaN and inf are not allowed)", i)
            if i - self._base < 0 or (self.n_features is not None
                                       and i - self._base >= self.n_features):
                raise _Bad(self._range_reason(i - self._base), i)
            idx.append(i - self._base)
            val.append(v)
        return label, np.array(idx, dtype=np.int64), np.array(val, dtype=np.float64)

    def _fits(self, ind: np.ndarray, head: int) -> bool:
        """Whether every index of a clean block is inside the width, the width inferred
        first (from the ``head`` indices of the first batch's rows) when undeclared."""
        if self.n_features is None:
            inside = ind[:head][ind[:head] < MAX_INFERRED_FEATURES]
            self.n_features, self._inferred = (int(inside.max()) + 1 if len(inside) else 1), True
        return not (len(ind) and int(ind.max()) >= self.n_features)

    def _parse_block_compiled(self, data: bytes | memoryview, offset: int, line: int, ends: np.ndarray) -> Chunk | None:
        """A clean block in one compiled pass over its bytes (``_libsvm_kernel``), or None
        when it is not clean or an index is past the width (the other paths say where)."""
        if not data:
            return None
        from onepass.sources._libsvm_kernel import parse

        parsed = parse(data, self._base, len(ends))
        if parsed is None:
            return None
        y, indptr, ind, val = parsed
        n_lines = len(ends)
        if not self._fits(ind, int(indptr[min(n_lines, self.options.batch_size)])):
            return None
        dt = self.options.dtype
        X = sp.csr_matrix((val.astype(dt, copy=False), ind, indptr), shape=(n_lines, self.n_features))
        return Chunk(X, y.astype(dt), None, (offset + np.minimum(ends + 1, len(data))).astype(np.int64),
                     line + 1 + np.arange(n_lines), [])

    def _parse_block_vectorized(self, data: bytes, offset: int, line: int, ends: np.ndarray) -> Chunk | None:
        """A clean block parsed without a Python loop over lines or tokens: every
        separator (space, tab, ``:``, newline) becomes a newline, pyarrow parses one
        number per line, and the byte after each token says what it was (``:`` follows
        an index). A block with comments, ``qid``, blank lines, or anything that does
        not check out returns None: the line-by-line path handles it and says where."""
        if not data or b"#" in data or b"qid" in data:
            return None
        arr = np.frombuffer(data, dtype=np.uint8)
        sep = arr <= 32  # tab, newline, CR, space (other control bytes fail the parse)
        sep |= arr == 58  # ':'

        edges = np.diff(sep.view(np.int8))
        starts = np.flatnonzero(edges == -1) + 1  # a separator, then a token
        stops = np.flatnonzero(edges == 1) + 1  # a token, then a separator: one past it
        if not sep[0]:
            starts = np.concatenate(([0], starts))
        if not sep[-1]:
            stops = np.append(stops, len(arr))
        if len(starts) == 0 or len(starts) != len(stops):
            return None
        n_lines = len(ends)
        # Tokens per line: how many start before each line's end, differenced.
        counts = np.diff(np.searchsorted(starts, ends), prepend=0)
        if counts.sum() != len(starts) or (counts == 0).any() or ((counts - 1) % 2).any():
            return None  # blank lines, or a line that is not "label idx:val ..."
        after = np.where(stops < len(arr), arr[np.minimum(stops, len(arr) - 1)], 10)  # the byte after each token
        first = np.zeros(len(starts), dtype=bool)
        first[np.concatenate(([0], np.cumsum(counts)[:-1]))] = True  # the label of each line
        pos = np.arange(len(starts)) - np.repeat(np.cumsum(counts) - counts, counts)  # position in its line
        is_index = ~first & (pos % 2 == 1)
        if (after[is_index] != 58).any() or (after[~is_index] == 58).any():
            return None  # a ':' where it does not belong, or missing
        text = np.where(sep, np.uint8(10), arr).tobytes()
        try:
            vals = _parse_numbers(text)
        except ValueError:
            return None
        if len(vals) != len(starts):
            return None
        y = vals[first]
        fidx = vals[is_index]
        fval = vals[~first & ~is_index]
        if not (np.isfinite(y).all() and np.isfinite(fval).all() and (fidx == np.floor(fidx)).all()
                and (fidx >= self._base).all()):
            return None
        ind = np.minimum(fidx, _MAX_FEATURES + self._base).astype(np.int64) - self._base
        nnz = (counts - 1) // 2
        if not self._fits(ind, int(nnz[:min(n_lines, self.options.batch_size)].sum())):
            return None
        rows = np.arange(n_lines)
        dt = self.options.dtype
        return Chunk(self._csr(nnz, ind, fval, n_lines), y.astype(dt),
                     None, (offset + np.minimum(ends + 1, len(data))).astype(np.int64), line + 1 + rows, [])

    def _parse_block(self, data: bytes, offset: int, line: int, ends: np.ndarray) -> Chunk:
        lines = split_lines(data)
        rows: list[int] = []
        labels: list[bytes] = []
        toks: list[bytes] = []
        counts: list[int] = []
        for i, raw in enumerate(lines):
            t = _tokens(raw)
            if not t:
                continue
            rows.append(i)
            labels.append(t[0])
            if len(t) > 1 and t[1].startswith(b"qid:"):
                del t[1]
            toks.extend(t[1:])
            counts.append(len(t) - 1)
        n = len(rows)
        row_arr = np.array(rows, dtype=np.int64)
        cnt = np.array(counts, dtype=np.int64)
        good = np.ones(n, dtype=bool)
        try:
            y = _parse_numbers(b"\n".join(labels)) if n else np.zeros(0)  # strictly, as pyarrow reads
            if len(y) != n:
                raise ValueError("short parse")
            joined = b"\n".join(toks)
            arr = np.frombuffer(joined, np.uint8)
            if toks:
                tok_starts = np.concatenate(([0], np.flatnonzero(arr == 10) + 1))
                if not (np.add.reduceat((arr == 58).astype(np.int64), tok_starts) == 1).all():
                    raise ValueError("a token is not idx:value")
                vals = _parse_numbers(joined.replace(b":", b"\n"))
                if len(vals) != 2 * len(toks):
                    raise ValueError("short parse")
            else:
                vals = np.zeros(0)
            fidx, fval = vals[0::2], vals[1::2]
            tok_row = np.repeat(np.arange(n), cnt)
            good &= np.isfinite(y)
            tok_ok = np.isfinite(fval) & (fidx == np.floor(fidx)) & (fidx >= self._base)
            ind = np.where(tok_ok, np.minimum(fidx, _MAX_FEATURES + self._base), self._base).astype(np.int64) - self._base
            if self.n_features is None and n:
                first = min(n, self.options.batch_size)
                head_tok = (tok_row < first) & (ind < MAX_INFERRED_FEATURES)
                head_ok = np.bincount(tok_row[~tok_ok], minlength=n)[:first] == 0
                ok_head = head_tok & head_ok[np.minimum(tok_row, max(first - 1, 0))] \
                    if first else head_tok
                self.n_features = int(ind[ok_head].max()) + 1 if ok_head.any() else 1
                self._inferred = True
            tok_ok &= ind < self.n_features
            if not tok_ok.all():
                good[np.unique(tok_row[~tok_ok])] = False
            suspects = np.flatnonzero(~good)
        except ValueError:
            suspects = np.arange(n)
            y = ind = fval = None
        bad: list[BadRecord] = []
        if len(suspects):
            parsed = {}
            for k in suspects:
                i = rows[k]
                end = offset + min(int(ends[i]) + 1, len(data))
                try:
                    if self.n_features is None:
                        self._infer_careful(lines, rows)
                        if self.n_features is None:
                            raise _Bad("could not be parsed")
                    parsed[k] = self._parse_line(lines[i])
                    good[k] = True
                except _Bad as e:
                    good[k] = False
                    bad.append(BadRecord(end, line + 1 + i, e.reason, e.column,
                                         lines[i].decode("utf-8", errors="replace")))
            if y is None:  # the vectorized parse failed: build from the careful parse
                keep = np.flatnonzero(good)
                y = np.array([parsed[k][0] for k in keep], dtype=np.float64)
                cnt = np.array([len(parsed[k][1]) for k in keep], dtype=np.int64)
                ind = np.concatenate([parsed[k][1] for k in keep] + [np.zeros(0, np.int64)])
                fval = np.concatenate([parsed[k][2] for k in keep] + [np.zeros(0)])
                row_arr = row_arr[keep]
                X = self._csr(cnt, ind, fval, len(keep))
                good_keep = keep
            else:
                tok_keep = good[np.repeat(np.arange(n), cnt)]
                good_keep = np.flatnonzero(good)
                X = self._csr(cnt[good_keep], ind[tok_keep], fval[tok_keep], len(good_keep))
                y = y[good_keep]
                row_arr = row_arr[good_keep]
        else:
            X = self._csr(cnt, ind, fval, n)
        ends_abs = offset + np.minimum(ends[row_arr] + 1, len(data)) if len(row_arr) \
            else row_arr
        dt = self.options.dtype
        return Chunk(X, y.astype(dt), None, ends_abs.astype(np.int64), line + 1 + row_arr,
                     bad)

    def _infer_careful(self, lines: list[bytes], rows: list[int]) -> None:
        """Infer the width from the first batch when the vectorized parse failed."""
        top = -1
        for i in rows[: self.options.batch_size]:
            try:
                _, idx, _ = self._parse_line(lines[i])
            except _Bad:
                continue
            idx = idx[idx < MAX_INFERRED_FEATURES]
            if len(idx):
                top = max(top, int(idx.max()))
        if top >= 0 or any(len(_tokens(lines[i])) for i in rows):
            self.n_features = top + 1 if top >= 0 else 1
            self._inferred = True

    def _csr(self, counts: np.ndarray, ind: np.ndarray, val: np.ndarray, n: int
             ) -> sp.csr_matrix:
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return sp.csr_matrix((val.astype(self.options.dtype), ind.astype(np.int32),
                              indptr), shape=(n, self.n_features or 0))
