"""Line-oriented byte blocks shared by the text formats (csv, jsonl, libsvm)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO

import numpy as np

from onepass.errors import DataError
from onepass.sources._compression import looks_like
from onepass.sources._transport import Entry

__all__ = ["BLOCK_BYTES", "iter_blocks", "line_bounds", "open_at", "split_lines"]

#: Bytes read per block; blocks are cut at the last newline. 16 MB measured fastest.
BLOCK_BYTES = 16 << 20


def iter_blocks(f: IO[bytes], prefix: bytes = b"", block_bytes: int | None = None
                ) -> Iterator[memoryview]:
    """Yield blocks of whole lines (the last one may lack its newline at end of file).

    One buffer is reused for every block (fresh 16 MB allocations page-fault and halve
    the speed), so a yielded view is only valid until the next one is asked for.
    """
    size = block_bytes or BLOCK_BYTES
    buf = bytearray(max(size, len(prefix) + 1))
    buf[:len(prefix)] = prefix
    filled = len(prefix)
    readinto = getattr(f, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(memoryview(buf)[filled:]) or 0
        else:
            data = f.read(len(buf) - filled)
            n = len(data)
            buf[filled:filled + n] = data
        if n == 0:
            if filled:
                yield memoryview(buf)[:filled]
            return
        filled += n
        if filled < len(buf):
            continue
        cut = buf.rfind(b"\n", 0, filled) + 1
        if cut == 0:  # a line longer than the buffer: grow it (a new object: views stay valid)
            buf = buf + bytearray(len(buf))
            continue
        yield memoryview(buf)[:cut]
        tail = filled - cut
        buf[:tail] = buf[cut:filled]
        filled = tail


def line_bounds(block: bytes | memoryview) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline excluded) of every line of ``block``."""
    arr = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(arr == 10)
    if len(arr) and arr[-1] != 10:
        ends = np.append(ends, len(block))
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends


def numbered_blocks(f: IO[bytes], prefix: bytes, offset: int, line: int
                    ) -> Iterator[tuple[memoryview, int, int, np.ndarray, np.ndarray]]:
    """``(block, byte offset, line number, line starts, line ends)`` for each block of
    whole lines, counting on from ``offset`` and ``line``: the one loop every line-based
    reader (csv, jsonl, libsvm) runs."""
    for block in iter_blocks(f, prefix):
        starts, ends = line_bounds(block)
        yield block, offset, line, starts, ends
        offset += len(block)
        line += len(ends)


def data_blocks(entry: Entry, start: dict | None
                ) -> Iterator[tuple[memoryview, int, int, np.ndarray, np.ndarray]]:
    """:func:`numbered_blocks` of a headerless line format (every line a record) from
    ``start`` or the file's beginning; the file is closed when the blocks end."""
    f, first, offset, line = open_at(entry, start)
    try:
        if start is None:
            yield from numbered_blocks(f, first, 0, 0)
        else:
            yield from numbered_blocks(f, b"", offset, line)
    finally:
        close_unless_stdin(entry, f)


def close_unless_stdin(entry: Entry, f: IO[bytes]) -> None:
    """Close a reader's file, but never the process's stdin."""
    if not entry.is_stdin:
        f.close()


def split_lines(block: bytes) -> list[bytes]:
    """Lines of ``block`` without their newline (a final empty piece dropped)."""
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


#: bytes of a file's first line looked at before the rest of it is read
_SNIFF_LINE_BYTES = 1 << 16


def check_text(entry: Entry, head: bytes) -> None:
    """Refuse a file whose first bytes ``head`` are not text (a NUL byte, or the magic number
    of a binary format), saying what it looks like, never showing its bytes."""
    kind = looks_like(head)
    if kind is None and b"\x00" not in head:
        return
    what, fix = kind or ("its first line holds NUL bytes", "give the format it holds (--format), or convert it to text")
    raise DataError(f"{entry.name} looks binary, not text ({what}); {fix}")


def open_at(entry: Entry, start: dict | None) -> tuple[IO[bytes], bytes, int, int]:
    """Open ``entry`` and position it where data reading starts.

    Returns ``(file, first_line, offset, line)``: ``first_line`` is the file's first line
    (read for header detection), ``offset``/``line`` the byte offset and count of lines
    before the data. When ``start`` is None the file is positioned after its first line
    (offset ``len(first_line)``, line 1); if that line is data the caller feeds it back
    as a prefix and counts from offset 0, line 0.
    """
    f = entry.open()
    try:
        try:
            first = f.readline(_SNIFF_LINE_BYTES)
        except TypeError:  # fsspec's buffered files take no limit
            first = f.readline()
        check_text(entry, first[:_SNIFF_LINE_BYTES])
        if len(first) == _SNIFF_LINE_BYTES and not first.endswith(b"\n"):
            first += f.readline()
        if start is None:
            return f, first, len(first), 1
        offset, line = int(start["offset"]), int(start["line"])
        size = entry.size()
        if offset < 0 or (size is not None and offset > size):
            raise DataError(
                f"the cursor's offset {offset} is beyond the end of {entry.name} "
                f"({size} bytes); the file changed since the cursor was saved")
        f.seek(offset, os.SEEK_SET)
        if size is None and f.tell() != offset:
            raise DataError(f"the cursor's offset {offset} is beyond the end of {entry.name}")
        return f, first, offset, line
    except BaseException:
        if not entry.is_stdin:
            f.close()
        raise
