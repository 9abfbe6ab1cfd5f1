"""RecordIO framing (MXNet/dmlc, as SageMaker writes it), apart from what a record holds.

A file is a sequence of frames::

    uint32 LE magic 0xCED7230A
    uint32 LE lrec: payload length in the low 29 bits, cflag in the top 3
    payload, then zero bytes up to the next multiple of 4

``cflag`` 0 is a whole record. dmlc splits a record whose bytes hold the magic word at an
aligned position into parts flagged 1 (first), 2 (middle) and 3 (last); a reader joins
them with the magic word put back between the parts (dmlc-core ``RecordIOReader``).
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["HEADER", "MAGIC", "MAGIC_BYTES", "MAX_LENGTH", "frame_many", "frame_size", "read_header"]

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
HEADER = 8
MAX_LENGTH = (1 << 29) - 1
_HEADER = struct.Struct("<II")


def frame_size(length: int) -> int:
    """Bytes a frame of a ``length``-byte payload takes: header, payload and padding."""
    return HEADER + ((length + 3) & ~3)


def read_header(buf: bytes | memoryview, pos: int) -> tuple[int, int, int]:
    """``(magic, cflag, length)`` of the header at ``pos`` (8 bytes must be there)."""
    magic, lrec = _HEADER.unpack_from(buf, pos)
    return magic, lrec >> 29, lrec & MAX_LENGTH


def frame_many(payloads: list[bytes]) -> bytes:
    """Whole-record frames (cflag 0) around each payload, joined."""
    parts = []
    for p in payloads:
        n = len(p)
        if n > MAX_LENGTH:
            raise ValueError(f"a record of {n} bytes is over RecordIO's limit of {MAX_LENGTH}")
        parts.append(_HEADER.pack(MAGIC, n))
        parts.append(p)
        parts.append(b"\0" * (-n & 3))
    return b"".join(parts)


def frame_uniform(payloads: np.ndarray) -> bytes:
    """Frames around rows of equal length: ``payloads`` is (n, length) uint8."""
    n, length = payloads.shape
    if length > MAX_LENGTH:
        raise ValueError(f"a record of {length} bytes is over RecordIO's limit of {MAX_LENGTH}")
    out = np.zeros((n, frame_size(length)), dtype=np.uint8)
    out[:, :HEADER] = np.frombuffer(_HEADER.pack(MAGIC, length), dtype=np.uint8)
    out[:, HEADER:HEADER + length] = payloads
    return out.tobytes()
