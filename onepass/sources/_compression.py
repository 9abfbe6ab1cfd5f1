"""Compressed files, read transparently: gzip, bzip2, xz, and zstd (with the zstandard module).

A file is compressed when its name ends in ``.gz .gzip .bz2 .xz .zst .zstd``, or, whatever its
name, when its first bytes are one of these formats' magic numbers (a gzip file named
``data.csv`` is read as CSV). The format is told from the name with the compression ending
taken off (``data.csv.gz`` is CSV).

Cursors over a compressed file count *decompressed* bytes: none of these formats can start
decompressing in the middle, so resuming decompresses the file again from its start and drops
the bytes before the cursor (time linear in the offset, memory fixed), then goes on exactly
where the cursor says. Output is decompressed a bounded piece at a time, so a small file that
expands enormously (a "decompression bomb") costs time, never memory.

Damaged or truncated compressed data is a :class:`~onepass.errors.DataError` naming the file;
an error of the transport under it (a network read) is raised as it is.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from onepass.errors import DataError

__all__ = ["CODECS", "SNIFF_BYTES", "codec_of_head", "codec_of_name", "looks_like", "open_decompressed",
           "strip_codec"]

#: codec -> the name endings that say it
_ENDINGS = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zstd": "zstd"}
CODECS = ("gzip", "bz2", "xz", "zstd")
#: bytes read from a file's start to tell what it is
SNIFF_BYTES = 16
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: first bytes of files that are not text, for messages: (prefix, what it looks like, the fix)
_UTF16 = ("UTF-16 text", "convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")
_OTHER_KINDS = (
    (b"PK\x03\x04", "a zip archive", "unzip it: a source reads one stream per file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "extract it first"),
    (b"\x04\x22\x4d\x18", "lz4-compressed", "decompress it first (lz4 -d)"),
    (b"\x93NUMPY", "a NumPy .npy array", "read it with format 'npy' (or name it .npy)"),
    (b"PAR1", "a Parquet file", "read it with format 'parquet' (or name it .parquet)"),
    (b"\x0a\x23\xd7\xce", "RecordIO-protobuf", "read it with format 'recordio-protobuf' (or name it .rec)"),
    (b"\xff\xfe", *_UTF16),
    (b"\xfe\xff", *_UTF16),
    (b"\x89PNG", "a PNG image", "give a data file"),
    (b"%PDF", "a PDF document", "give a data file"),
    (b"\x7fELF", "an executable", "give a data file"),
)
#: decompressed bytes dropped per read when seeking forward
_SKIP_BYTES = 1 << 20
#: compressed bytes fed to the zstd decoder at a time: zstd expands at most ~32768:1, so one
#: piece yields at most ~256 MB however the file was made
_ZSTD_INPUT_BYTES = 8 << 10


def codec_of_name(name: str) -> str | None:
    """The codec a file name's ending says (``"gzip"``, ``"bz2"``, ``"xz"``, ``"zstd"``), or None."""
    return _ENDINGS.get(os.path.splitext(name.lower())[1])


def strip_codec(name: str) -> str:
    """``name`` without its compression ending (``data.csv.gz`` -> ``data.csv``)."""
    root, ext = os.path.splitext(name)
    return root if ext.lower() in _ENDINGS else name


def codec_of_head(head: bytes) -> str | None:
    """The codec whose magic number ``head`` (a file's first bytes) starts with, or None."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    # "BZh" + block size + the block magic (pi): a text file may well start with "BZh"
    if len(head) >= 10 and head.startswith(b"BZh") and head[3:4] in b"123456789" and head[4:10] == b"1AY&SY":
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return None


def looks_like(head: bytes) -> tuple[str, str] | None:
    """``(what it looks like, the fix)`` of a file that is not text, from its first bytes, or None."""
    for prefix, kind, fix in _OTHER_KINDS:
        if head.startswith(prefix):
            return kind, fix
    return None


class _SourceReadError(Exception):
    """An OSError of the transport under a decoder, carried through it untouched (a decoder's
    own errors are OSErrors too: bzip2's "Invalid data stream", gzip's BadGzipFile)."""

    def __init__(self, error: OSError) -> None:
        self.error = error


class _Guarded:
    """The compressed bytes, read for a decoder; their transport's errors marked as such."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        try:
            return self._raw.read(n)
        except OSError as e:
            raise _SourceReadError(e) from e

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        pass  # the owner closes the raw file


class _Zstd:
    """A zstd stream decoded frame after frame (``zstd`` writes one; ``pzstd`` and ``cat`` many)."""

    def __init__(self, raw: _Guarded) -> None:
        try:
            import zstandard
        except ImportError:
            raise _MissingModule() from None
        self._zstandard = zstandard
        self._raw = raw
        self._decoder = zstandard.ZstdDecompressor().decompressobj()
        self._input = b""
        self._out = bytearray()
        self._in_frame = False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(_SKIP_BYTES), b""))
        while len(self._out) < n:
            data = self._input or self._raw.read(_ZSTD_INPUT_BYTES)
            self._input = b""
            if not data:
                if self._in_frame:
                    raise EOFError("the zstd data ends inside a frame (the file is truncated)")
                break
            self._in_frame = True
            self._out += self._decoder.decompress(data)
            if self._decoder.eof:
                self._input = self._decoder.unused_data
                self._decoder = self._zstandard.ZstdDecompressor().decompressobj()
                self._in_frame = False
        out = bytes(self._out[:n])
        del self._out[:n]
        return out

    def close(self) -> None:
        pass


class _MissingModule(Exception):
    pass


def _decoder(codec: str, raw: _Guarded) -> Any:
    if codec == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[arg-type]
    if codec == "bz2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[arg-type]
    if codec == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[arg-type]
    return _Zstd(raw)


def _damage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [EOFError, OSError, zlib.error, lzma.LZMAError]
    with contextlib.suppress(ImportError):
        import zstandard

        errors.append(zstandard.ZstdError)
    return tuple(errors)


class Decompressed:
    """The decompressed bytes of a compressed file, as a forward-reading binary file: ``read``,
    ``readinto``, ``readline``, ``tell`` and ``seek`` count decompressed bytes. Seeking forward
    decompresses and drops; seeking back starts again from the file's start."""

    def __init__(self, name: str, codec: str, open_raw: Callable[[], IO[bytes]], *, closes_raw: bool = True,
                 rewindable: bool = True) -> None:
        self.name, self.codec = name, codec
        self._open_raw, self._closes_raw, self._rewindable = open_raw, closes_raw, rewindable
        self._raw: IO[bytes] | None = None
        self._stream: Any = None
        self._pos = 0
        self._line = bytearray()  # read ahead by readline
        self._start()

    def _start(self) -> None:
        self.close()
        self._raw = self._open_raw()
        with self._reading():
            self._stream = _decoder(self.codec, _Guarded(self._raw))
        self._pos = 0
        self._line.clear()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except _SourceReadError as e:
            raise e.error from None
        except _MissingModule:
            raise DataError(
                f"{self.name} is zstd-compressed, and reading zstd needs the zstandard module: "
                "pip install zstandard (or pip install 'onepass[zstd]')") from None
        except _damage_errors() as e:
            raise DataError(
                f"{self.name} is {self.codec}-compressed but its compressed data is damaged or truncated "
                f"({type(e).__name__}: {e}); check the file "
                f"(e.g. {_TEST_COMMAND[self.codec]} {self.name})") from None

    def _read(self, n: int) -> bytes:
        if self._line:
            out = bytes(self._line[:n])
            del self._line[:n]
            if len(out) < n:
                out += self._read(n - len(out))
            return out
        with self._reading():
            return self._stream.read(n)

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while True:
                data = self.read(_SKIP_BYTES)
                if not data:
                    return b"".join(parts)
                parts.append(data)
        data = self._read(n)
        self._pos += len(data)
        return data

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def readline(self, limit: int | None = -1) -> bytes:
        limit = None if limit is None or limit < 0 else limit
        while True:
            cut = self._line.find(b"\n")
            if cut >= 0 and (limit is None or cut < limit):
                n = cut + 1
            elif limit is not None and len(self._line) >= limit:
                n = limit
            else:
                with self._reading():
                    data = self._stream.read(1 << 16)
                if data:
                    self._line += data
                    continue
                n = len(self._line)
            out = bytes(self._line[:n])
            del self._line[:n]
            self._pos += len(out)
            return out

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence != os.SEEK_SET:
            raise OSError(f"{self.name} is {self.codec}-compressed: it can be read forward, not from its end")
        if offset < self._pos:
            if not self._rewindable:
                raise OSError(f"{self.name} is read once (stdin, a pipe): cannot go back from byte {self._pos} "
                              f"to {offset}")
            self._start()
        while self._pos < offset:
            if not self.read(min(offset - self._pos, _SKIP_BYTES)):
                break  # the data ended first: tell() says where
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()
            self._stream = None
        if self._raw is not None:
            if self._closes_raw:
                self._raw.close()
            self._raw = None

    def __enter__(self) -> Decompressed:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_TEST_COMMAND = {"gzip": "gzip -t", "bz2": "bzip2 -t", "xz": "xz -t", "zstd": "zstd -t"}


def open_decompressed(name: str, codec: str, open_raw: Callable[[], IO[bytes]], *,
                      closes_raw: bool = True, rewindable: bool = True) -> Decompressed:
    """The decompressed bytes of the file ``open_raw()`` opens (closed with them unless
    ``closes_raw`` is False: stdin; opened again to seek back unless ``rewindable`` is False:
    stdin and pipes, read once)."""
    return Decompressed(name, codec, open_raw, closes_raw=closes_raw, rewindable=rewindable)
