"""Transports: resolve a URI into an ordered list of files, each opened as bytes.

Formats never see where bytes come from; they get a :class:`Entry` and call
``entry.open()``. Supported: local paths, folders (every data file inside, recursively,
sorted), globs (sorted), ``-`` for stdin, and any fsspec URL (``memory://``,
``file://``, ``s3://`` when s3fs is installed, ...). Compressed files (gzip, bzip2, xz,
zstd; by their name's ending or their first bytes) are decompressed on the fly: see
:mod:`onepass.sources._compression` (offsets in cursors then count decompressed bytes, and
resume decompresses the prefix again).
"""

from __future__ import annotations

import glob
import io
import os
import stat
import sys
from dataclasses import dataclass, field
from typing import IO, Any

from onepass.errors import SourceNotFoundError
from onepass.sources._compression import SNIFF_BYTES, codec_of_head, codec_of_name, open_decompressed

__all__ = ["STDIN", "Entry", "resolve"]

STDIN = "-"
_MAGIC = ("*", "?", "[")
_UNKNOWN = "?"  # compression not looked at yet


@dataclass
class Entry:
    """One file of a source.

    Parameters
    ----------
    name : str
        Name shown in messages and stored in cursors (path or full URL).
    path : str
        Path for ``fs`` (or local path when ``fs`` is None).
    fs : fsspec filesystem or None
        None for local files and stdin.
    is_stdin : bool
    """

    name: str
    path: str
    fs: Any = None
    is_stdin: bool = False
    _codec: str | None = field(default=_UNKNOWN, init=False, repr=False, compare=False)

    @property
    def compression(self) -> str | None:
        """``"gzip"``, ``"bz2"``, ``"xz"``, ``"zstd"`` or None: by the name's ending, else by
        the file's first bytes (stdin and named pipes: by their first bytes when opened)."""
        if self._codec == _UNKNOWN:
            self._codec = codec_of_name(self.name)
            if self._codec is None and not self.is_stdin and not (self.fs is None and _is_pipe(self.path)):
                with self._open_small() as raw:
                    self._codec = codec_of_head(raw.read(SNIFF_BYTES))
        return self._codec

    def _open_small(self) -> IO[bytes]:
        """The raw file, opened to read its first bytes: with a small block on an object
        store, whose file would fetch megabytes ahead otherwise (a filesystem that takes no
        block size opens it as it does)."""
        if self.fs is None:
            return open(self.path, "rb")
        try:
            return self.fs.open(self.path, "rb", block_size=4096)
        except TypeError:
            return self.fs.open(self.path, "rb")

    @property
    def local_path(self) -> str | None:
        """Local filesystem path when the file can be memory-mapped, else None."""
        if self.is_stdin or self.fs is not None or self.compression is not None:
            return None
        return self.path

    def _open_raw(self) -> IO[bytes]:
        if self.is_stdin:
            return sys.stdin.buffer
        raw: IO[bytes] = open(self.path, "rb") if self.fs is None else self.fs.open(self.path, "rb")
        if self.fs is None and _is_pipe(self.path):
            raw = _ForwardOnly(raw)  # type: ignore[assignment]
        return raw

    def open(self) -> IO[bytes]:
        """Open for binary reading, decompressing a compressed file."""
        if self._codec == _UNKNOWN and (self.is_stdin or (self.fs is None and _is_pipe(self.path))):
            # read once: the first bytes are looked at where they wait (the pipe's buffer)
            self._codec = codec_of_name(self.name)
            raw = self._open_raw()
            if not hasattr(raw, "peek"):  # a stream in memory (a test's stdin): peek through a buffer
                raw = io.BufferedReader(raw)  # type: ignore[arg-type]
            if self._codec is None:
                self._codec = codec_of_head(raw.peek(SNIFF_BYTES)[:SNIFF_BYTES])  # type: ignore[attr-defined]
            if self._codec is None:
                return raw
            return open_decompressed(self.name, self._codec, lambda: raw,  # type: ignore[return-value]
                                     closes_raw=not self.is_stdin, rewindable=False)
        if self.compression is None:
            return self._open_raw()
        read_once = self.is_stdin or (self.fs is None and _is_pipe(self.path))
        return open_decompressed(self.name, self.compression, self._open_raw,  # type: ignore[return-value]
                                 closes_raw=not self.is_stdin, rewindable=not read_once)

    def size(self) -> int | None:
        """Size in bytes of the (decompressed) content, when cheap to know."""
        if self.is_stdin or (self.fs is None and _is_pipe(self.path)) or self.compression is not None:
            return None
        if self.fs is None:
            return os.path.getsize(self.path)
        return int(self.fs.size(self.path))


def _is_data_file(name: str, keep) -> bool:
    base = os.path.basename(name.rstrip("/"))
    return not base.startswith((".", "_")) and keep(base)


def _resolve_one(uri: str, keep) -> list[Entry]:
    if uri == STDIN:
        return [Entry("<stdin>", STDIN, is_stdin=True)]
    if "://" in uri:
        return _resolve_fsspec(uri, keep)
    if any(ch in uri for ch in _MAGIC):
        paths = sorted(p for p in glob.glob(uri, recursive=True) if os.path.isfile(p))
        return [Entry(p, p) for p in paths if _is_data_file(p, lambda b: True)]
    if os.path.isdir(uri):
        found = []
        for root, dirs, files in os.walk(uri):
            dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
            found.extend(os.path.join(root, f) for f in files if _is_data_file(f, keep))
        return [Entry(p, p) for p in sorted(found)]
    if os.path.isfile(uri) or _is_pipe(uri):
        return [Entry(uri, uri)]
    return []


class _ForwardOnly:
    """A named pipe read from its start, which can "seek" forward by reading and dropping
    bytes: a SageMaker Pipe-mode job started again gets its channel from the start again,
    and resumes at its checkpoint's offset so. Its first bytes can be looked at (``peek``)
    before they are read: a compressed stream is told by them."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._pos = raw, 0
        self._ahead = b""  # peeked, not yet read

    def peek(self, n: int = 1) -> bytes:
        while len(self._ahead) < n:
            data = self._raw.read(n - len(self._ahead))
            if not data:
                break
            self._ahead += data
        return self._ahead

    def _take_ahead(self, n: int) -> bytes:
        data = self._ahead if n < 0 else self._ahead[:n]
        self._ahead = self._ahead[len(data):]
        return data

    def read(self, n: int = -1) -> bytes:
        data = self._take_ahead(n) if self._ahead else b""
        if n < 0 or len(data) < n:
            data += self._raw.read(-1 if n < 0 else n - len(data))
        self._pos += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        if self._ahead:
            cut = self._ahead.find(b"\n") + 1
            head = self._take_ahead(cut if cut and (limit < 0 or cut <= limit) else
                                    (limit if limit >= 0 else -1))
            self._pos += len(head)
            if head.endswith(b"\n") or (limit >= 0 and len(head) >= limit):
                return head
            return head + self.readline(-1 if limit < 0 else limit - len(head))
        data = self._raw.readline(limit)
        self._pos += len(data)
        return data

    def readinto(self, buf: Any) -> int:
        if self._ahead:
            data = self.read(len(buf))
            memoryview(buf).cast("B")[:len(data)] = data
            return len(data)
        n = self._raw.readinto(buf) or 0
        self._pos += n
        return n

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self._pos + offset if whence == os.SEEK_CUR else -1
        if target < self._pos:
            raise OSError(f"a named pipe reads forward only: cannot go back from byte {self._pos} to {target}")
        while self._pos < target:
            if not self.read(min(target - self._pos, 1 << 20)):
                break  # the pipe ended first: tell() says where
        return self._pos

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _ForwardOnly:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _is_pipe(path: str) -> bool:
    """A named pipe (FIFO), read once from start to end: SageMaker's Pipe mode channels."""
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _resolve_fsspec(uri: str, keep) -> list[Entry]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    if type(fs).__name__ == "LocalFileSystem":
        local = fs._strip_protocol(uri)
        return [Entry(e.name, e.path) for e in _resolve_one(local, keep)]
    if any(ch in path for ch in _MAGIC):
        paths = [p for p in fs.glob(path) if fs.isfile(p)]
    elif fs.isdir(path):
        paths = [p for p in fs.find(path) if _is_data_file(p, keep)]
    elif fs.exists(path):
        paths = [path]
    else:
        paths = []
    return [Entry(fs.unstrip_protocol(p), p, fs) for p in sorted(paths)]


def resolve(uri: Any, keep=lambda base: True) -> list[Entry]:
    """Resolve ``uri`` (a path, folder, glob, URL, ``-``, or a list of them) into files.

    ``keep(basename)`` filters the files found inside folders (data files only).
    Raises SourceNotFoundError naming the first pattern that matches nothing.
    """
    uris = list(uri) if isinstance(uri, (list, tuple)) else [uri]
    if not uris:
        raise SourceNotFoundError("no path given: pass a file, folder, glob, URL or '-'")
    entries: list[Entry] = []
    for u in uris:
        u = os.fspath(u)
        found = _resolve_one(u, keep)
        if not found:
            raise SourceNotFoundError(
                f"{u!r} matches no file; check the path, folder, glob or URL")
        entries.extend(found)
    if any(e.is_stdin for e in entries) and len(entries) > 1:
        raise SourceNotFoundError("'-' (stdin) cannot be combined with other paths")
    return entries
