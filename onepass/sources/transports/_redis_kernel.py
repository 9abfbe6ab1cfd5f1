"""The Redis transport's compiled fast path: an ``XREADGROUP`` reply decoded in one pass.

A reply's entries (RESP2: ``*2``, the ID as a bulk string, ``*2k``, then k field and
value bulk strings) are walked by their declared lengths, so a value may hold any byte,
line breaks included, and each value is parsed as a number where it lies, without
building a Python object per entry or per field (~10x NumPy plus ``pyarrow.csv``).
An entry that does not fit the expected shape (other fields, a value that is not a plain
decimal number, a CSV row of another width) is only flagged: the transport reads those
again with its careful path, which says what is wrong. A reply that is not well-formed
RESP, or holds a deleted entry (``*-1`` fields), is refused as a whole (the transport
then parses it the slow way).

Numbers are read exactly (:func:`onepass.sources._decimal_kernel.decimal` with ``exact``):
the very value ``float(text)`` gives (and the float32 stored, that value rounded, as the
careful path stores it); anything else (``nan``, ``inf``, ``1_0``, spaces, more digits) is
left to the careful path.

Compiled with Numba on first use and cached on disk; imported only when a stream is read.
"""

from __future__ import annotations

import numba
import numpy as np

from onepass.sources._decimal_kernel import POW10, decimal

__all__ = ["ID_WIDTH", "MODES", "decode", "last_id"]

#: the longest entry ID: two 64-bit numbers in decimal and a dash
ID_WIDTH = 41
#: what decode() does with an entry's fields
MODES = {"fields": 0, "csv": 1, "walk": 2}
_CR, _NL, _STAR, _DOLLAR, _COMMA, _ZERO, _NINE = 13, 10, 42, 36, 44, 48, 57


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _header(buf, i, kind):  # pragma: no cover - compiled
    """(number, index after its line) of a ``*n`` or ``$n`` line at ``i``; (-1, -1) when
    there is none (a negative number, a nil, is refused too)."""
    n = buf.shape[0]
    if i >= n or buf[i] != kind:
        return -1, -1
    i += 1
    value = 0
    start = i
    while i < n and _ZERO <= buf[i] <= _NINE and i - start < 12:
        value = value * 10 + (buf[i] - _ZERO)
        i += 1
    if i == start or i + 1 >= n or buf[i] != _CR or buf[i + 1] != _NL:
        return -1, -1
    return value, i + 2


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _bulk(buf, i):  # pragma: no cover - compiled
    """(start, end, index after it) of the bulk string at ``i``; end -1 when there is none."""
    length, i = _header(buf, i, _DOLLAR)
    if i < 0 or i + length + 2 > buf.shape[0] or buf[i + length] != _CR or buf[i + length + 1] != _NL:
        return 0, -1, -1
    return i, i + length, i + length + 2


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _same(buf, s, e, name, a, b):  # pragma: no cover - compiled
    if e - s != b - a:
        return False
    for j in range(e - s):
        if buf[s + j] != name[a + j]:
            return False
    return True


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _csv_row(buf, s, e, values, r, pow10):  # pragma: no cover - compiled
    """Parse ``buf[s:e]``, exactly ``values.shape[1]`` numbers between commas, into row ``r``."""
    n_cols = values.shape[1]
    for j in range(n_cols):
        value, s, ok = decimal(buf, s, e, pow10, True)
        if not ok:
            return False
        values[r, j] = value
        if j < n_cols - 1:
            if s >= e or buf[s] != _COMMA:
                return False
            s += 1
    return s == e


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _decode(buf, i, mode, names, name_ends, row_field, only_field_is_row, values, problem, ids, starts,
            pow10):  # pragma: no cover - compiled
    n_entries = starts.shape[0]
    n_cols = values.shape[1]
    for r in range(n_entries):
        starts[r] = i
        two, i = _header(buf, i, _STAR)
        if two != 2:
            return -1
        s, e, i = _bulk(buf, i)
        if e < 0 or e - s > ids.shape[1] or e == s:
            return -1
        for j in range(e - s):
            ids[r, j] = buf[s + j]
        m, i = _header(buf, i, _STAR)  # a deleted entry's fields are nil (*-1): refused
        if m < 0 or m % 2:
            return -1
        k = m // 2
        bad = mode == 2 or (mode == 0 and k != n_cols)
        found = False
        for j in range(k):
            ns, ne, i = _bulk(buf, i)
            if ne < 0:
                return -1
            vs, ve, i = _bulk(buf, i)
            if ve < 0:
                return -1
            if bad:
                continue
            if mode == 0:
                if not _same(buf, ns, ne, names, name_ends[j], name_ends[j + 1]):
                    bad = True
                    continue
                value, end, ok = decimal(buf, vs, ve, pow10, True)
                if ok and end == ve:
                    values[r, j] = value
                else:
                    bad = True
            elif not found and ((only_field_is_row and k == 1)
                                or _same(buf, ns, ne, row_field, 0, row_field.shape[0])):
                found = True
                bad = not _csv_row(buf, vs, ve, values, r, pow10)
        problem[r] = bad or (mode == 1 and not found)
    return i


def decode(data: bytes, first: int, n: int, mode: str, n_cols: int, names: list[bytes], row_field: bytes,
           only_field_is_row: bool, dtype: object
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The ``n`` entries of ``data`` starting at ``first``: (IDs as ``S41``, values
    ``(n, n_cols)``, which rows to read carefully, each entry's offset), or None when the
    reply is not a well-formed sequence of ``n`` live entries ending at its end.

    ``mode``: ``"fields"`` (field j named ``names[j]`` holds column j), ``"csv"`` (the
    field ``row_field``, or the only field when ``only_field_is_row``, holds a CSV row) or
    ``"walk"`` (no values parsed: every row is flagged)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    name_ends = np.zeros(len(names) + 1, dtype=np.int64)
    name_ends[1:] = np.cumsum([len(x) for x in names])
    name_bytes = np.frombuffer(b"".join(names), dtype=np.uint8)
    values = np.empty((n, n_cols), dtype=dtype)
    problem = np.empty(n, dtype=bool)
    ids = np.zeros((n, ID_WIDTH), dtype=np.uint8)
    starts = np.empty(n, dtype=np.int64)
    end = _decode(buf, first, MODES[mode], name_bytes, name_ends, np.frombuffer(row_field, dtype=np.uint8),
                  only_field_is_row, values, problem, ids, starts, POW10)
    if end != len(buf):
        return None
    return ids.view(f"S{ID_WIDTH}").ravel(), values, problem, starts


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _last_id(buf, i, n_entries):  # pragma: no cover - compiled
    """(start, end) of the last of ``n_entries`` entries' ID from ``i``, walking the
    entries by their declared lengths (nothing parsed); (-1, -1) when they do not fit."""
    s, e = -1, -1
    for _ in range(n_entries):
        two, i = _header(buf, i, _STAR)
        if two != 2:
            return -1, -1
        s, e, i = _bulk(buf, i)
        if e < 0:
            return -1, -1
        m, i = _header(buf, i, _STAR)
        if m < 0:
            return -1, -1
        for _ in range(m):
            _, fe, i = _bulk(buf, i)
            if fe < 0:
                return -1, -1
    return s, e


def last_id(data: bytes, first: int, n: int) -> bytes | None:
    """The ID of the last of the ``n`` entries of ``data`` starting at ``first`` (a reply
    walked, not decoded: ~1/20 of :func:`decode`'s time), or None when they do not fit."""
    s, e = _last_id(np.frombuffer(data, dtype=np.uint8), first, n)
    return None if e < 0 else data[s:e]
