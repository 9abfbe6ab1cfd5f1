"""Records <-> arrays: SageMaker's ``Record`` messages decoded into rows and encoded from them.

Every record is read by the ``protobuf`` package (:mod:`._record_pb2`, compiled from
``record.proto``). Speed comes from *templates*: a run of records of one shape (dense
float features, a float label: what ``write_numpy_to_dense_tensor`` writes) serializes to
the same bytes but for the tensors' values, whose packed floats lie at fixed offsets. A
template is the serialization of such a record made by protobuf itself, with the offsets
of each tensor's values found by serializing it twice; a run of frames whose every other
byte equals the template is, byte for byte, what protobuf would write for those values, so
its values are taken with one NumPy view of the block (millions of rows a second).

Other runs of records (sparse ones as ``write_spmatrix_to_sparse_tensor`` writes them, dense
ones of varying layout) are read with two protobuf parses per run, not one per record: the
payloads are joined, each followed by an end record of marker entries (framing: the bytes
are protobuf's), and parsed once as ``RecordEntries`` (how many map entries) and once as
``MergedRecord``, which merges them into one tensor whose values, keys and shapes are every
record's in turn, the markers showing where each record's end. Every rule of reading one
record is then checked for all of them with NumPy; the records before the first that breaks
one are taken, and that one, like any run the merge cannot read (int32 values, weights,
another kind of tensor part way), goes through ``Record.FromString`` alone, which also says
what is wrong with a bad one. Writing uses the templates, so predictions are encoded
without a Python loop over rows.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from google.protobuf.message import DecodeError

from onepass.io.recordio_protobuf import _record_pb2 as pb
from onepass.io.recordio_protobuf._framing import (
    HEADER,
    MAGIC,
    MAGIC_BYTES,
    MAX_LENGTH,
    frame_many,
    frame_size,
    frame_uniform,
    read_header,
)
from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk

__all__ = ["Decoded", "RecordDecoder", "Template", "encode_outputs", "encode_rows"]

_FLOATS = {"float32_tensor": np.dtype("<f4"), "float64_tensor": np.dtype("<f8")}
_TENSOR_OF = {np.dtype("<f4"): "float32_tensor", np.dtype("<f8"): "float64_tensor"}
_MAX_TEMPLATES = 64
_RAW_BYTES = 4096  # of a bad record kept (base64) in the quarantine file


class _Bad(Exception):
    """A record that cannot be used, and why."""


def _raw(data: bytes | memoryview) -> str:
    return base64.b64encode(bytes(data[:_RAW_BYTES])).decode()


# -- templates ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Part:
    mapping: str  # "features" or "label"
    key: str
    dtype: np.dtype
    count: int


class Template:
    """The bytes protobuf writes for a record of dense float tensors, and where each
    tensor's values lie in them.

    Parameters
    ----------
    parts : list of (mapping, key, dtype, count)
        Every tensor of the record: ``mapping`` is ``"features"`` or ``"label"``, the dtype
        float32 or float64, ``count`` the number of values.
    """

    def __init__(self, parts: list[tuple[str, str, Any, int]]) -> None:
        self.parts = [_Part(m, k, np.dtype(d).newbyteorder("<"), int(c)) for m, k, d, c in parts]
        zeros = self._serialize(None)
        self.bytes = np.frombuffer(zeros, dtype=np.uint8)
        self.length = len(zeros)
        self.regions: list[tuple[int, int]] = []
        for i, part in enumerate(self.parts):
            ones = np.frombuffer(self._serialize(i), dtype=np.uint8)
            if len(ones) != self.length:  # pragma: no cover - fixed-width values never resize
                raise AssertionError("a template's size changed with its values")
            where = np.flatnonzero(ones != self.bytes)
            size = part.count * part.dtype.itemsize
            if len(where) != size or (size and where[-1] - where[0] != size - 1):  # pragma: no cover
                raise AssertionError("a tensor's values are not contiguous in its serialization")
            start = int(where[0]) if size else 0
            self.regions.append((start, start + size))
        fixed = np.ones(self.length, dtype=bool)
        for a, b in self.regions:
            fixed[a:b] = False
        self._fixed = fixed

    def _serialize(self, filled: int | None) -> bytes:
        record = pb.Record()
        for i, part in enumerate(self.parts):
            tensor = getattr(getattr(record, part.mapping)[part.key], _TENSOR_OF[part.dtype])
            fill = b"\1" if i == filled else b"\0"
            tensor.values.extend(np.frombuffer(fill * (part.count * part.dtype.itemsize), dtype=part.dtype).tolist())
        return record.SerializeToString()

    def encode(self, columns: list[np.ndarray]) -> np.ndarray:
        """(n, length) uint8: one record per row, ``columns[i]`` the (n, count) values of part i."""
        n = len(columns[0]) if columns else 0
        out = np.tile(self.bytes, (n, 1))
        for (a, b), part, values in zip(self.regions, self.parts, columns, strict=True):
            out[:, a:b] = np.ascontiguousarray(values, dtype=part.dtype).reshape(n, part.count).view(np.uint8)
        return out

    def n_matching(self, payloads: np.ndarray) -> int:
        """How many leading rows of ``payloads`` ((n, length) uint8) are this template with
        other values."""
        same = payloads == self.bytes
        same |= ~self._fixed
        ok = same.all(axis=1)
        return len(ok) if ok.all() else int(np.argmin(ok))

    def values(self, payloads: np.ndarray, i: int) -> np.ndarray:
        """(n, count) values of part ``i`` in ``payloads``."""
        a, b = self.regions[i]
        part = self.parts[i]
        return np.ascontiguousarray(payloads[:, a:b]).view(part.dtype).reshape(len(payloads), part.count)


# -- decoding one record ---------------------------------------------------------------

def _tensor(value: Any, what: str) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...], str]:
    """``(values, keys or None, shape, kind)`` of a ``Value``."""
    kind = value.WhichOneof("value")
    if kind is None:
        raise _Bad(f"{what} holds no tensor")
    if kind == "bytes":
        raise _Bad(f"{what} holds bytes; onepass reads float32, float64 or int32 tensors")
    t = getattr(value, kind)
    n = len(t.values)
    keys = np.fromiter(t.keys, dtype=np.uint64, count=len(t.keys)) if len(t.keys) else None
    shape = tuple(int(s) for s in t.shape)
    if kind == "int32_tensor":
        values = np.fromiter(t.values, dtype=np.int32, count=n)
    elif n == 0:
        values = np.zeros(0, dtype=_FLOATS[kind])
    else:  # the packed floats are the tail of the tensor serialized alone: no per-value Python object
        t.ClearField("keys")
        t.ClearField("shape")
        data = t.SerializeToString()
        dt = _FLOATS[kind]
        values = np.frombuffer(data, dtype=dt, count=n, offset=len(data) - n * dt.itemsize)
    return values, keys, shape, kind


@dataclass
class _Row:
    cols: np.ndarray | None  # None: dense
    values: np.ndarray
    width: int
    label: float | None
    weight: float | None


def _scalar(record: Any, key: str) -> float | None:
    if key not in record.label:
        return None
    what = f"label[{key!r}]"
    values, keys, _, _ = _tensor(record.label[key], what)
    if keys is not None or len(values) != 1:
        raise _Bad(f"{what} holds {len(values)} values; expected one")
    v = float(values[0])
    if not np.isfinite(v):
        raise _Bad(f"{what} is {v} (NaN and inf are not allowed)")
    return v


def _decode_row(payload: bytes, label_key: str | None, weight_key: str | None) -> tuple[_Row, Any]:
    try:
        record = pb.Record.FromString(payload)
    except Exception as e:  # protobuf's DecodeError, or any fault of a damaged message
        raise _Bad(f"not a valid Record message ({e})") from None
    features = record.features
    if "values" not in features:
        raise _Bad(f"no features['values'] tensor (features has {sorted(features)})")
    if len(features) != 1:
        raise _Bad(f"features has keys {sorted(features)}; onepass reads one tensor, 'values'")
    values, keys, shape, _ = _tensor(features["values"], "features['values']")
    size = int(np.prod(shape)) if shape else 0
    if keys is None and not (shape and len(values) == 0 and size > 0):
        if shape and size != len(values):
            raise _Bad(f"a dense tensor of {len(values)} values has shape {list(shape)}")
        cols, width = None, len(values)
    else:
        if not shape:
            raise _Bad("a sparse tensor (keys) has no shape; write shape [n_features]")
        if keys is None:
            keys = np.zeros(0, dtype=np.uint64)
        if len(keys) != len(values):
            raise _Bad(f"a sparse tensor has {len(keys)} keys for {len(values)} values")
        if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1):
            width = shape[-1]
        else:
            raise _Bad(f"shape {list(shape)}: a record is one row; expected [n_features] or [1, n_features]")
        if len(keys) and int(keys.max()) >= width:
            raise _Bad(f"key {int(keys.max())} is outside shape {list(shape)}")
        cols = keys.astype(np.int64)
        if len(cols) > 1 and len(np.unique(cols)) != len(cols):
            raise _Bad("a sparse tensor repeats a key")
    if len(values) and not np.isfinite(values).all():
        bad = values[~np.isfinite(values)][0]
        raise _Bad(f"{bad} is not allowed in a feature (NaN and inf are not allowed)")
    label = None if label_key is None else _scalar(record, label_key)
    weight = None if weight_key is None else _scalar(record, weight_key)
    return _Row(cols, values, width, label, weight), record


def _template_of(record: Any, payload: bytes, label_key: str | None, weight_key: str | None) -> Template | None:
    """A template for records shaped as ``record``, when it is dense floats and nothing else
    and protobuf writes it back to ``payload``; else None."""
    if record.uid or record.metadata or record.configuration or record.HasField("uid") \
            or record.HasField("metadata") or record.HasField("configuration"):
        return None
    parts = []
    for mapping in ("features", "label"):
        for key, value in getattr(record, mapping).items():
            kind = value.WhichOneof("value")
            if kind not in _FLOATS:
                return None
            t = getattr(value, kind)
            if len(t.keys) or len(t.shape):
                return None
            parts.append((mapping, key, _FLOATS[kind], len(t.values)))
    template = Template(parts)
    if template.length != len(payload) or template.n_matching(np.frombuffer(payload, np.uint8)[None, :]) != 1:
        return None
    return template


# -- decoding a run of records with two parses -------------------------------------------

_END_KEY = "\0end"  # the marker entry's key: never a key onepass accepts
_MIN_RUN = 64
_MAX_RUN = 1 << 16


def _end_entry(kind: str, n_features: int | None) -> bytes:
    """A map entry put after each record's entries: key ``_END_KEY``, one value +inf and,
    for features (``n_features`` given), one key ``n_features`` and one shape
    ``n_features + 1``: what no usable row holds."""
    entry = pb.MergedEntry(key=[_END_KEY])
    t = getattr(entry.value, kind)
    t.values.append(float("inf"))
    if n_features is not None:
        t.keys.append(n_features)
        t.shape.append(n_features + 1)
    return entry.SerializeToString()


def _tag_bytes(field: int, body: bytes) -> bytes:
    """``body`` as a length-delimited field of a message (framing for the parser)."""
    n, size = len(body), bytearray()
    while n >= 0x80:
        size.append(n & 0x7F | 0x80)
        n >>= 7
    size.append(n)
    return bytes([field << 3 | 2]) + bytes(size) + body


@dataclass(frozen=True)
class _Ends:
    """What is put after each record of a run: the end entries of features (``kind``) and
    of the label (``label_kind``, or none), and their bytes as a record."""

    features: bytes
    label: bytes | None
    record: bytes

    @classmethod
    def of(cls, kind: str, label_kind: str | None, n_features: int) -> _Ends:
        features = _end_entry(kind, n_features)
        label = None if label_kind is None else _end_entry(label_kind, None)
        record = _tag_bytes(1, features) + (b"" if label is None else _tag_bytes(2, label))
        return cls(features, label, record)


def _bulk_kinds(first: bytes, label_key: str | None) -> tuple[str, str | None] | None:
    """``(features kind, label kind)`` of a record, when it is one float tensor under
    ``features['values']`` and, if ``label_key``, one float tensor under it and nothing
    else in its label map; else None."""
    record = pb.Record.FromString(first)
    if list(record.features) != ["values"] or list(record.label) != ([] if label_key is None else [label_key]):
        return None
    kind = record.features["values"].WhichOneof("value")
    label_kind = None if label_key is None else record.label[label_key].WhichOneof("value")
    if kind not in _FLOATS or (label_key is not None and label_kind not in _FLOATS):
        return None
    return kind, label_kind


@functools.lru_cache(maxsize=64)
def _ends_of(kind: str, label_kind: str | None, n_features: int) -> _Ends:
    return _Ends.of(kind, label_kind, n_features)


def _split(column: np.ndarray, is_end: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(counts, values)``: how many of ``column``'s items each of ``n`` records holds
    (each record's followed by one end item) and the items without the ends; None when the
    ends are not ``n`` or the column does not finish with one."""
    at = np.flatnonzero(is_end)
    if len(at) != n or (n and at[-1] != len(column) - 1):
        return None
    counts = np.diff(at, prepend=-1) - 1
    return counts, column[~is_end]


def _merged_tensor(entry: Any, kind: str) -> Any:
    """The ``kind`` tensor of a merged entry, or None when another kind came last (and
    cleared it: a record of another kind)."""
    return getattr(entry.value, kind) if entry.value.WhichOneof("value") == kind else None


def _keys_alternate(entry: Any, key: str, n: int) -> bool:
    """Whether a merged entry's keys are ``key`` and the end key in turn, ``n`` times (each
    record's entry has the one key ``key``); compared as serialized bytes, its value cleared."""
    entry.ClearField("value")
    entry.DiscardUnknownFields()
    return entry.SerializeToString() == pb.MergedEntry(key=[key, _END_KEY]).SerializeToString() * n


def _packed_tensor(t: Any, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, keys, shape)`` of tensor ``t`` as arrays.

    The values (fixed width, most of the bytes) are read from protobuf's own
    serialization of a tensor holding only them (its tag and length, then the values),
    not one Python number per value; the keys and the shape come from protobuf's decoded
    fields (no varint is decoded here)."""
    keys = np.fromiter(t.keys, dtype=np.uint64, count=len(t.keys))
    shape = np.fromiter(t.shape, dtype=np.uint64, count=len(t.shape))
    n = len(t.values)
    dt = _FLOATS[kind]
    if not n:
        return np.empty(0, dt), keys, shape
    t.ClearField("keys")
    t.ClearField("shape")
    t.DiscardUnknownFields()
    whole = t.SerializeToString()
    values = np.frombuffer(whole, dtype=dt, count=n, offset=len(whole) - n * dt.itemsize)
    if whole[0] != 0x0A:
        raise ValueError("a tensor's serialization is not its values")
    return values, keys, shape


def _bulk_rows(wire: bytes, kinds: tuple[str, str | None], n: int, n_features: int, label_key: str | None,
               dtype: np.dtype
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray] | None:
    """Rows of ``n`` records whose payloads, each followed by the end record of ``kinds``
    (the first record's tensors, :func:`_bulk_kinds`), are ``wire``, read with two protobuf parses:
    ``(values, cols, counts, is_dense, y, ok)`` with ``ok[i]`` whether record ``i`` is a
    usable row by the rules of :func:`_decode_row` (the arrays hold the records before the
    first not ok), or None when the run as a whole is not of the shape this reads (then read
    it record by record)."""
    kind, label_kind = kinds
    entries = pb.RecordEntries.FromString(wire)  # counts the map entries only
    if len(entries.features) != 2 * n or len(entries.label) != (0 if label_key is None else 2 * n):
        return None  # with one keyed entry each (below): no record has another entry
    merged = pb.MergedRecord.FromString(wire)
    t = _merged_tensor(merged.features, kind)
    if t is None:
        return None
    values, keys, shape = _packed_tensor(t, kind)
    if not _keys_alternate(merged.features, "values", n):
        return None
    split_v = _split(values, values == np.inf, n)
    split_k = _split(keys, keys == np.uint64(n_features), n)
    split_s = _split(shape, shape == np.uint64(n_features + 1), n)
    if split_v is None or split_k is None or split_s is None:
        return None
    (nv, values), (nk, keys), (ns, shape) = split_v, split_k, split_s
    y = None
    if label_key is not None:
        lt = _merged_tensor(merged.label, label_kind)
        if lt is None or len(lt.keys):
            return None
        labels = _packed_tensor(lt, label_kind)[0]
        if not _keys_alternate(merged.label, label_key, n):
            return None
        if len(labels) != 2 * n or not (labels[1::2] == np.inf).all():
            return None
        y = labels[0::2]

    # the rules of _decode_row, a record at a time as vectors
    size = np.zeros(n, dtype=np.uint64)
    has_shape = ns == 1
    size[has_shape] = shape[(np.cumsum(ns) - 1)[has_shape]]
    is_dense = (nk == 0) & ~(has_shape & (nv == 0) & (size > 0))
    width = np.where(is_dense, nv.astype(np.uint64), size)
    ok = (ns <= 1) & (width == np.uint64(n_features))
    ok &= np.where(is_dense, ~has_shape | (size == nv), has_shape & ((nk == nv) | (nk == 0)))
    row = np.repeat(np.arange(n), nv)
    starts = np.cumsum(nv) - nv
    cols = np.arange(len(values), dtype=np.int64) - np.repeat(starts, nv)
    keyed = np.repeat((nk == nv) & (nk > 0), nv)  # values with a key (rows of unequal counts are not ok)
    k = keys[np.repeat(nk == nv, nk)]
    ok[row[keyed][k >= np.uint64(n_features)]] = False
    cols[keyed] = np.minimum(k, np.uint64(n_features)).astype(np.int64)
    # rows whose keys are not increasing go record by record (which sorts them or names the repeat)
    ok[row[1:][(cols[1:] <= cols[:-1]) & (row[1:] == row[:-1]) & keyed[1:]]] = False
    bad_value = ~np.isfinite(values)
    if bad_value.any():
        ok[row[bad_value]] = False
    if y is not None:
        ok &= np.isfinite(y)
    m = n if ok.all() else int(np.argmin(ok))
    end = int(starts[m]) if m < n else len(values)
    return (values[:end].astype(dtype, copy=False), cols[:end], nv[:m], is_dense[:m],
            None if y is None else y[:m].astype(dtype), ok)


# -- decoding blocks ---------------------------------------------------------------------

@dataclass
class Decoded(Chunk):
    """The rows decoded from a stretch of frames, as a source's :class:`Chunk` (``ends``:
    the byte offset after each row's frame, ``lines``: its 1-based record number), and
    ``consumed``, how many bytes were decoded, and ``n_records``, the records begun in the
    file up to there (rows, bad records, and a damaged stretch still being skipped)."""

    consumed: int = 0
    n_records: int = 0


def _whole_frames(buf: bytes, pos: int, base: int, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of the run of whole-record frames (cflag 0) at ``pos``, at most
    ``max_frames``, each in ``buf`` to its padding's end.

    A file is scanned for the magic word at 4-byte-aligned offsets (a writer splits a record
    holding it there into parts, so it is a frame's header), and the run is the frames whose
    header's length leads to the next one found; a record holding the magic word (as a
    writer that does not split records can write) only ends the run early."""
    n = len(buf)
    if (base + pos) & 3 or n - pos < HEADER:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    length = int.from_bytes(buf[pos + 4:pos + 8], "little") & MAX_LENGTH
    span = min(n - pos, max_frames * 2 * frame_size(length)) // 4  # words: room for the run, not the whole block
    words = np.frombuffer(buf, dtype="<u4", count=span, offset=pos)
    at = np.flatnonzero(words == MAGIC)[:max_frames + 1]
    at = at[at + 1 < span]
    lrec = words[at + 1]
    lengths = (lrec & MAX_LENGTH).astype(np.int64)
    after = at + 2 + ((lengths + 3) >> 2)  # the word after each frame
    ok = (lrec >> 29 == 0) & (after <= (n - pos) // 4)
    ok[:1] &= at[:1] == 0
    ok[1:] &= after[:-1] == at[1:]  # reached from the frame before
    k = min(len(ok) if ok.all() else int(np.argmin(ok)), max_frames)
    return pos + 4 * at[:k].astype(np.int64), lengths[:k]


class RecordDecoder:
    """Decodes RecordIO-protobuf bytes into rows, block after block, keeping what it learnt
    (width, dense or sparse, whether there is a label) from one block to the next.

    Parameters
    ----------
    n_features : int or None
        Declared width; else the first record's.
    label_key : str or None
        Key of the label in each record's ``label`` map. ``"values"`` is SageMaker's.
    label_required : bool
        Whether a record without that label is bad. When False, the first record decides:
        if it has a label, every record must.
    weight_key : str or None
        Key of a per-row weight in the ``label`` map, required in every record when given.
    dtype : numpy dtype
    """

    def __init__(self, *, n_features: int | None = None, label_key: str | None = "values",
                 label_required: bool = False, weight_key: str | None = None, dtype: Any = np.float32) -> None:
        self.n_features = n_features
        self.label_key = label_key
        self.has_label: bool | None = True if label_required else (None if label_key else False)
        self.weight_key = weight_key
        self.dtype = np.dtype(dtype)
        self.is_sparse: bool | None = None
        self._templates: dict[int, Template | None] = {}
        self._run = _MIN_RUN  # records tried at once by _bulk, grown while runs decode whole
        self._n_single = 0  # records to decode one by one before trying _bulk again
        self._garbage: tuple[int, int, str, bytes] | None = None  # (offset, record number, reason, head)

    # -- the block loop ---------------------------------------------------------------
    def decode(self, buf: bytes, base: int, line: int, *, final: bool) -> Decoded:
        """Decode the frames of ``buf``, which starts at byte ``base`` of the file after
        ``line`` records. Without ``final``, an incomplete frame at the end is left
        unconsumed (``Decoded.consumed`` says how far it got) for the next call."""
        self._out: list[tuple] = []  # pieces: ("fast", X, y, w, ends, lines) or rows
        self._rows: list[tuple[_Row, int, int]] = []
        self._bad: list[BadRecord] = []
        self._line = line
        arr = np.frombuffer(buf, dtype=np.uint8)
        n = len(buf)
        pos = 0
        while pos < n:
            if self._garbage is not None:
                found = self._find_magic(buf, pos, base)
                if found < 0:
                    pos = max(pos, (n - 3) & ~3) if not final else n
                    break
                self._end_garbage(base + found)
                pos = found
                continue
            if n - pos < HEADER:
                if final:
                    self._start_garbage(base + pos, f"a truncated record header: {n - pos} bytes where 8 are needed",
                                        buf[pos:])
                    pos = n
                break
            magic, cflag, length = read_header(buf, pos)
            if magic != MAGIC:
                self._start_garbage(base + pos, f"wrong magic number 0x{magic:08x} (expected 0x{MAGIC:08x})",
                                    buf[pos:pos + 64])
                pos += 4
                continue
            stride = frame_size(length)
            if cflag:
                done = self._multipart(buf, pos, base, final)
                if done is None:
                    break
                pos = done
                continue
            if pos + stride > n and not (final and pos + HEADER + length <= n):
                if final:
                    self._start_garbage(base + pos, f"a truncated record: its header gives {length} bytes, "
                                        f"the file ends {n - pos - HEADER} bytes after it", buf[pos:pos + 64])
                    pos += 4
                    continue
                break
            template = self._templates.get(length)
            if template is not None:
                taken = self._fast(arr, pos, stride, template, base)
                if taken:
                    pos += taken * stride
                    continue
            if not self._n_single and self._is_settled():
                taken = self._bulk(buf, pos, base)
                if taken > pos:
                    pos = taken
                    continue
            payload = buf[pos + HEADER:pos + HEADER + length]
            self._record(payload, base + pos + min(stride, n - pos), buf[pos:pos + stride], length)
            pos = min(pos + stride, n)
        if final and self._garbage is not None:
            self._end_garbage(base + n)
        self._flush_rows()
        return self._assemble(pos)

    def _find_magic(self, buf: bytes, pos: int, base: int) -> int:
        """The next 4-byte-aligned magic word at or after ``pos``, or -1."""
        pos += -(base + pos) & 3
        i = buf.find(MAGIC_BYTES, pos)
        while i >= 0 and (base + i) & 3:
            i = buf.find(MAGIC_BYTES, i + 1)
        return i

    def _start_garbage(self, offset: int, reason: str, head: bytes) -> None:
        self._line += 1
        self._garbage = (offset, self._line, reason, bytes(head[:64]))

    def _end_garbage(self, end: int) -> None:
        assert self._garbage is not None
        offset, line, reason, head = self._garbage
        self._garbage = None
        self._bad_record(end, line, f"byte offset {offset}: {reason}; {end - offset} bytes up to the next record "
                         "set aside", head)

    def _bad_record(self, end: int, line: int, reason: str, raw: bytes | memoryview) -> None:
        self._flush_rows()
        self._bad.append(BadRecord(int(end), int(line), f"record {line}, {reason}", None, _raw(raw)))

    def _multipart(self, buf: bytes, pos: int, base: int, final: bool) -> int | None:
        """Join a record split in parts (cflag 1, 2..., 3); the position after it, or
        None when its last part is not in ``buf`` yet."""
        start = pos
        magic, cflag, length = read_header(buf, pos)
        if cflag != 1:
            if not final and pos + frame_size(length) > len(buf):
                return None
            self._line += 1
            stride = min(frame_size(length), len(buf) - pos)
            self._bad_record(base + pos + stride, self._line,
                             f"byte offset {base + pos}: a record part with cflag {cflag} and no first part",
                             buf[pos:pos + stride])
            return pos + stride
        pieces = []
        while True:
            if len(buf) - pos < HEADER:
                if not final:
                    return None  # the next part is not read yet
                break
            magic, flag, length = read_header(buf, pos)
            if not (magic == MAGIC and (flag == 1 if not pieces else flag in (2, 3))):
                break
            if pos + frame_size(length) > len(buf):
                if not final:
                    return None
                if pos + HEADER + length > len(buf):
                    break
            pieces.append(buf[pos + HEADER:pos + HEADER + length])
            pos = min(pos + frame_size(length), len(buf))
            if flag == 3:
                payload = MAGIC_BYTES.join(pieces)
                self._record(payload, base + pos, buf[start:pos], len(payload))
                return pos
        if not pieces:  # its first part is cut short by the end of the file
            self._start_garbage(base + start, f"a truncated record: its header gives {length} bytes, the file "
                                f"ends {len(buf) - start - HEADER} bytes after it", buf[start:start + 64])
            return start + 4
        self._line += 1
        self._bad_record(base + pos, self._line,
                         f"byte offset {base + start}: a record split in parts ends after {len(pieces)} part(s) "
                         "without its last part", buf[start:start + 64])
        return pos

    def _fast(self, arr: np.ndarray, pos: int, stride: int, template: Template, base: int) -> int:
        """Take the run of frames at ``pos`` that match ``template``; how many."""
        header = arr[pos:pos + HEADER]
        k_max = (len(arr) - pos) // stride
        taken, window = 0, 64
        while taken < k_max:
            k = min(window, k_max - taken)
            a = pos + taken * stride
            frames = arr[a:a + k * stride].reshape(k, stride)
            same = (frames[:, :HEADER] == header).all(axis=1)
            k_same = k if same.all() else int(np.argmin(same))
            good = template.n_matching(frames[:k_same, HEADER:HEADER + template.length]) if k_same else 0
            if good:
                self._take_fast(frames[:good, HEADER:HEADER + template.length], template,
                                base + a + stride * np.arange(1, good + 1, dtype=np.int64), arr[a:a + good * stride])
                taken += good
            if good < k:
                break
            window *= 4
        return taken

    def _is_settled(self) -> bool:
        """Whether the first record has set what every other must match (the width, dense
        or sparse, whether there is a label), as :meth:`_bulk` needs; weights go one by one."""
        return self.n_features is not None and self.is_sparse is not None and self.has_label is not None \
            and self.weight_key is None

    def _bulk(self, buf: bytes, pos: int, base: int) -> int:
        """Take the rows of the run of whole frames at ``pos`` (up to ``self._run``) with
        :func:`_bulk_rows`, up to the first that is not a usable row; the position after them."""
        at, lengths = _whole_frames(buf, pos, base, self._run)
        if len(at) < 2:
            return pos
        starts = at.tolist()
        first = buf[starts[0] + HEADER:starts[0] + HEADER + int(lengths[0])]
        label_key = self.label_key if self.has_label else None
        got = None
        try:
            kinds = _bulk_kinds(first, label_key)
            if kinds is not None:
                end = _ends_of(*kinds, int(self.n_features or 0)).record
                parts = [end] * (2 * len(starts))
                parts[0::2] = [buf[a + HEADER:a + HEADER + b] for a, b in zip(starts, lengths.tolist(), strict=True)]
                got = _bulk_rows(b"".join(parts), kinds, len(starts), int(self.n_features or 0), label_key,
                                 self.dtype)
        except (DecodeError, UnicodeDecodeError, ValueError):  # the records say why one by one
            got = None
        if got is None:
            self._run, self._n_single = _MIN_RUN, _MIN_RUN
            return pos
        values, cols, counts, is_dense, y, _ = got
        m = len(counts)
        if m < len(starts):
            self._run, self._n_single = _MIN_RUN, 1  # the next record is not ok: one by one says why
        else:
            self._run = min(4 * self._run, _MAX_RUN)
        if not m:
            return pos
        ends = base + at[:m] + HEADER + ((lengths[:m] + 3) & ~3)
        lines = self._line + 1 + np.arange(m, dtype=np.int64)
        self._line += m
        self._flush_rows()
        self._out.append(("bulk", values, cols, counts, is_dense, y, ends, lines))
        return int(ends[-1] - base)

    def _take_fast(self, payloads: np.ndarray, template: Template, ends: np.ndarray, raw: np.ndarray) -> None:
        parts = {(p.mapping, p.key): i for i, p in enumerate(template.parts)}
        X = template.values(payloads, parts[("features", "values")]).astype(self.dtype, copy=False)
        n = len(X)
        y = w = None
        if self.has_label:
            y = template.values(payloads, parts[("label", self.label_key)])[:, 0].astype(self.dtype)
        if self.weight_key is not None:
            w = template.values(payloads, parts[("label", self.weight_key)])[:, 0].astype(self.dtype)
        lines = self._line + 1 + np.arange(n, dtype=np.int64)
        self._line += n
        finite = np.isfinite(X).all(axis=1)
        for v in (y, w):
            if v is not None:
                finite &= np.isfinite(v)
        if not finite.all():  # rare: split the run around its rows holding NaN or inf
            stride = len(raw) // n
            for i in np.flatnonzero(~finite):
                self._bad.append(BadRecord(int(ends[i]), int(lines[i]), f"record {int(lines[i])}, byte offset "
                                           f"{int(ends[i]) - stride}: NaN or inf in a feature, label or weight "
                                           "(not allowed)", None, _raw(raw[i * stride:(i + 1) * stride].tobytes())))
            X, ends, lines = X[finite], ends[finite], lines[finite]
            y = None if y is None else y[finite]
            w = None if w is None else w[finite]
        self._flush_rows()
        self._out.append(("fast", X, y, w, ends, lines))

    def _record(self, payload: bytes, end: int, raw: bytes, length: int) -> None:
        self._line += 1
        self._n_single = max(0, self._n_single - 1)
        offset = end - len(raw)
        try:
            try:
                row, record = _decode_row(payload, self.label_key, self.weight_key)
            except UnicodeDecodeError as e:  # proto2 strings are not checked until read
                raise _Bad(f"a map key or string is not UTF-8 ({e})") from None
            self._check(row)
        except _Bad as e:
            self._bad_record(end, self._line, f"byte offset {offset}: {e}", raw)
            return
        self._rows.append((row, end, self._line))
        if row.cols is None and length not in self._templates and len(self._templates) < _MAX_TEMPLATES:
            try:
                self._templates[length] = _template_of(record, payload, self.label_key, self.weight_key) \
                    if self._fits_fast(record) else None
            except UnicodeDecodeError:  # pragma: no cover - the keys were read by _decode_row
                self._templates[length] = None

    def _fits_fast(self, record: Any) -> bool:
        keys = set(record.label)
        return "values" in record.features and (not self.has_label or self.label_key in keys) \
            and (self.weight_key is None or self.weight_key in keys)

    def _check(self, row: _Row) -> None:
        if self.n_features is None:
            self.n_features = row.width
        if self.is_sparse is None:
            self.is_sparse = row.cols is not None
        if row.width != self.n_features:
            what = "values" if row.cols is None else "columns (its shape)"
            raise _Bad(f"{row.width} feature {what}, expected {self.n_features} (as in the first record or "
                       "declared with n_features)")
        if self.has_label is None:
            self.has_label = row.label is not None
        if self.has_label and row.label is None:
            raise _Bad(f"no label[{self.label_key!r}] (the records before it have one)")
        if self.weight_key is not None and row.weight is None:
            raise _Bad(f"no label[{self.weight_key!r}] weight (weight_column={self.weight_key!r})")

    def _flush_rows(self) -> None:
        if self._rows:
            self._out.append(("rows", self._rows))
            self._rows = []

    # -- assembling -------------------------------------------------------------------
    def _piece(self, item: tuple) -> tuple:
        dt = self.dtype
        if item[0] == "fast":
            _, X, y, w, ends, lines = item
            return (sp.csr_matrix(X) if self.is_sparse else X), y, w, ends, lines
        if item[0] == "bulk":
            _, values, cols, counts, is_dense, y, ends, lines = item
            return self._matrix(values, cols, counts, bool(is_dense.all())), y, None, ends, lines
        rows = item[1]
        n = len(rows)
        ends = np.array([e for _, e, _ in rows], dtype=np.int64)
        lines = np.array([li for _, _, li in rows], dtype=np.int64)
        y = np.array([r.label for r, _, _ in rows], dtype=dt) if self.has_label else None
        w = np.array([r.weight for r, _, _ in rows], dtype=dt) if self.weight_key is not None else None
        counts = np.array([len(r.values) for r, _, _ in rows], dtype=np.int64)
        values = np.concatenate([r.values.astype(dt, copy=False) for r, _, _ in rows]) if n else np.zeros(0, dt)
        is_dense = all(r.cols is None for r, _, _ in rows)
        cols = None if is_dense else np.concatenate(
            [np.arange(len(r.values)) if r.cols is None else r.cols for r, _, _ in rows] + [np.zeros(0, np.int64)])
        return self._matrix(values, cols, counts, is_dense), y, w, ends, lines

    def _matrix(self, values: np.ndarray, cols: np.ndarray | None, counts: np.ndarray, is_dense: bool) -> Any:
        """X of rows given as their values and columns joined, ``counts[i]`` of row ``i``."""
        n, d = len(counts), int(self.n_features or 0)
        if is_dense and not self.is_sparse:
            return values.reshape(n, d)
        if cols is None:
            cols = np.arange(len(values)) - np.repeat(np.cumsum(counts) - counts, counts)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        X = sp.csr_matrix((values, cols.astype(np.int32), indptr), shape=(n, d))
        if not X.has_sorted_indices:
            X.sort_indices()
        return X if self.is_sparse else X.toarray()

    def _assemble(self, consumed: int) -> Decoded:
        pieces = [self._piece(item) for item in self._out]
        self._out = []
        dt = self.dtype
        if not pieces:
            d = int(self.n_features or 0)
            X = sp.csr_matrix((0, d), dtype=dt) if self.is_sparse else np.zeros((0, d), dtype=dt)
            empty = np.zeros(0, np.int64)
            return Decoded(X, np.zeros(0, dt) if self.has_label else None,
                           np.zeros(0, dt) if self.weight_key else None, empty, empty, self._bad, consumed, self._line)
        if len(pieces) == 1:
            X, y, w, ends, lines = pieces[0]
        else:
            X = sp.vstack([p[0] for p in pieces], format="csr") if self.is_sparse else np.concatenate(
                [p[0] for p in pieces])
            y = np.concatenate([p[1] for p in pieces]) if self.has_label else None
            w = np.concatenate([p[2] for p in pieces]) if self.weight_key is not None else None
            ends = np.concatenate([p[3] for p in pieces])
            lines = np.concatenate([p[4] for p in pieces])
        return Decoded(X, y, w, ends, lines, self._bad, consumed, self._line)


# -- encoding ------------------------------------------------------------------------------

def encode_rows(X: Any, y: np.ndarray | None = None) -> bytes:
    """RecordIO-protobuf bytes of the rows of ``X`` (dense or scipy sparse), one record per
    row with the features under ``features['values']`` and, if given, ``y`` under
    ``label['values']``, as SageMaker's SDK writes them (float32 or float64 kept, other
    dtypes as float32)."""
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        dt = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        tensor = _TENSOR_OF[np.dtype(dt).newbyteorder("<")]
        payloads = []
        record = pb.Record()
        for i in range(X.shape[0]):
            record.Clear()
            a, b = X.indptr[i], X.indptr[i + 1]
            t = getattr(record.features["values"], tensor)
            t.values.extend(X.data[a:b].astype(dt).tolist())
            t.keys.extend(X.indices[a:b].tolist())
            t.shape.append(X.shape[1])
            if y is not None:
                getattr(record.label["values"], tensor).values.append(float(y[i]))
            payloads.append(record.SerializeToString())
        return frame_many(payloads)
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (rows, features), got shape {X.shape}")
    dt = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    parts: list[tuple[str, str, Any, int]] = [("features", "values", dt, X.shape[1])]
    columns = [X]
    if y is not None:
        parts.append(("label", "values", dt, 1))
        columns.append(np.asarray(y).reshape(-1, 1))
    return frame_uniform(Template(parts).encode(columns))


def encode_outputs(outputs: dict[str, np.ndarray]) -> bytes:
    """RecordIO-protobuf bytes of a model's outputs: one record per row, an empty
    ``features`` map and each output under its name in the ``label`` map, as float32 (as
    SageMaker's algorithms answer: ``closest_cluster``, ``distance_to_cluster``,
    ``projection``, ``score``, ``predicted_label``, ``topic_weights``...)."""
    columns, parts = [], []
    for name, values in outputs.items():
        v = np.asarray(values, dtype=np.float32)
        v = v.reshape(len(v), -1)
        columns.append(v)
        parts.append(("label", name, np.float32, v.shape[1]))
    if not parts:
        return b""
    return frame_uniform(Template(parts).encode(columns))
