"""Raw text documents in, word counts out: the ``text`` format.

A document is a line (``document="line"``, the default) or a whole file
(``document="file"``, for a folder or glob of files). Each becomes one row of a CSR
matrix of float32 counts over a vocabulary given with ``vocab`` (one word per line, as
SageMaker NTM's ``vocab.txt``): ``X[i, j]`` is how often word ``j`` occurs in document
``i``, tokenized by :func:`onepass.text.tokenize`. Words not in the vocabulary are not
counted.

- A blank document (nothing but whitespace: an empty line, an empty file) is not a
  document: it yields no row and is not a bad record.
- A document with no word of the vocabulary is a bad record (``on_bad_record``), and so is
  one holding bytes that are not UTF-8.

Lines are read in blocks of whole lines (:mod:`onepass.sources._text`), tokenized a piece
of at most :data:`PIECE_BYTES` at a time, so memory is fixed by the block size, the
batch size and the vocabulary. In file mode a file is read the same way and its counts
summed as it goes (at most one number per vocabulary word), and batches gather documents
of many files; the cursor names the file of the batch's last document, and resuming goes
on with the next file.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow.compute as pc
import scipy.sparse as sp

from onepass.errors import InvalidParameterError
from onepass.sources import _text
from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk, Options, Reader
from onepass.sources._text import close_unless_stdin, iter_blocks, numbered_blocks, open_at
from onepass.sources._transport import Entry
from onepass.text._tokenize import Tokens, distinct_counts, split_tokens

__all__ = ["DOCUMENT_UNITS", "PIECE_BYTES", "TextReader", "file_pieces", "line_pieces"]

DOCUMENT_UNITS = ("line", "file")

#: Bytes of lines tokenized at once: bounds the token arrays (~8 bytes a token) whatever
#: the read block (16 MB).
PIECE_BYTES = 2 << 20

#: Small files tokenized together at most (and PIECE_BYTES of them at most).
MAX_GROUP_FILES = 4096

#: Characters of a whole-file document kept in its quarantine record.
QUARANTINE_CHARS = 1000


def line_pieces(entry: Entry, start: dict | None
                ) -> Iterator[tuple[bytes, int, Tokens, np.ndarray, np.ndarray, np.ndarray]]:
    """``(block, offset, tokens, starts, ends, lines)`` for each piece of whole lines of
    ``entry`` from ``start`` (a cursor's ``{"offset", "line"}``, or None for the
    beginning): line ``i`` of the piece is ``block[starts[i]:ends[i]]`` (newline
    excluded), ``offset`` is where ``block`` lies in the file, and ``lines`` holds the
    1-based line numbers."""
    f, first, offset, line = open_at(entry, start)
    try:
        prefix = first if start is None else b""
        if start is None:
            offset, line = 0, 0
        for view, at, at_line, starts, ends in numbered_blocks(f, prefix, offset, line):
            block = bytes(view)
            size = len(block)
            n = len(ends)
            # cut before the first line starting past each multiple of PIECE_BYTES
            cuts = np.unique(np.searchsorted(starts, np.arange(PIECE_BYTES, size, PIECE_BYTES), side="right"))
            edges = [0, *[int(c) for c in cuts if 0 < c < n], n]
            for a, b in zip(edges[:-1], edges[1:], strict=True):
                s, e = starts[a:b], ends[a:b]
                bounds = np.append(s, e[-1])
                yield (block, at, split_tokens(block, bounds), s, e,
                       at_line + 1 + np.arange(a, b, dtype=np.int64))
    finally:
        close_unless_stdin(entry, f)


def file_pieces(entry: Entry) -> Iterator[tuple[bytes, Tokens]]:
    """``(block, tokens)`` for each block of whole lines of ``entry``, tokenized as one
    document."""
    size = entry.size()
    f = entry.open()
    try:
        # a small file gets a buffer its size, not a fresh 16 MB one (~1 ms of page faults each)
        for view in iter_blocks(f, block_bytes=None if size is None else min(_text.BLOCK_BYTES, size + 1)):
            block = bytes(view)
            yield block, split_tokens(block, np.array([0, len(block)]))
    finally:
        close_unless_stdin(entry, f)


def _is_blank(raw: bytes) -> bool:
    return not raw.decode("utf-8", errors="replace").strip()


class TextReader(Reader):
    """Counts the vocabulary's words in each document (see the module docstring)."""

    name = "text"
    can_stream = True

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        for what in ("label_column", "weight_column"):
            if getattr(options, what) is not None:
                raise InvalidParameterError(
                    f"{what} does not apply to format 'text': a document has no label or weight")
        if options.vocabulary is None:  # open_source checks it first; a Reader made by hand too
            raise InvalidParameterError("format 'text' needs vocab= (--vocab vocab.txt): one word per line")
        self.vocabulary = options.vocabulary
        self.n_features = len(self.vocabulary)
        self._index = {word: j for j, word in enumerate(self.vocabulary)}
        self.spans_files = options.document == "file"

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        if self.options.document == "file":
            if start is None:  # a cursor always lies after a whole file: nothing left of it
                yield self._read_file(entry)
            return
        for piece in line_pieces(entry, start):
            yield self._count_lines(*piece)

    def read_files(self, entries: list[Entry], first: int, start: dict | None) -> Iterator[tuple[int, Chunk]]:
        if self.options.document != "file":
            yield from super().read_files(entries, first, start)
            return
        # small files are read whole and tokenized together, a piece at a time (per file,
        # the fixed costs of tokenizing would dominate: ~1.5 ms a file); larger ones stream
        group: list[tuple[int, bytes]] = []
        n_bytes = 0
        for index in range(first + (start is not None), len(entries)):
            entry = entries[index]
            size = entry.size()
            if size is None or size > PIECE_BYTES // 4:
                yield from self._count_files(group)
                group, n_bytes = [], 0
                yield index, self._read_file(entry)
                continue
            f = entry.open()
            try:
                data = f.read()
            finally:
                f.close()
            group.append((index, data))
            n_bytes += len(data)
            if n_bytes >= PIECE_BYTES or len(group) >= MAX_GROUP_FILES:
                yield from self._count_files(group)
                group, n_bytes = [], 0
        yield from self._count_files(group)

    def _count_files(self, group: list[tuple[int, bytes]]) -> Iterator[tuple[int, Chunk]]:
        """One row per file of ``group`` (each read whole), tokenized at once."""
        if not group:
            return
        width = len(self.vocabulary)
        bounds = np.zeros(len(group) + 1, dtype=np.int64)
        np.cumsum([len(data) for _, data in group], out=bounds[1:])
        tokens = split_tokens(b"".join(data for _, data in group), bounds)
        ids, docs = self._ids(tokens)
        pairs, counts = distinct_counts(docs * width + ids)
        rows = pairs // width
        starts = np.searchsorted(rows, np.arange(len(group) + 1))
        undecodable = set(tokens.undecodable.tolist())
        dt = self.options.dtype
        for k, (index, data) in enumerate(group):
            a, b = int(starts[k]), int(starts[k + 1])
            n_lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
            end, line = np.array([len(data)], np.int64), np.array([n_lines], np.int64)
            if b > a and k not in undecodable:
                X = sp.csr_matrix((counts[a:b].astype(dt), (pairs[a:b] - rows[a:b] * width).astype(np.int32),
                                   np.array([0, b - a])), shape=(1, width))
                yield index, Chunk(X, None, None, end, line, [])
                continue
            empty = Chunk(sp.csr_matrix((0, width), dtype=dt), None, None, end[:0], line[:0], [])
            if k in undecodable or not _is_blank(data):
                empty.bad.append(self._bad_file(len(data), n_lines, k not in undecodable, int(tokens.n_tokens[k]),
                                                data[:QUARANTINE_CHARS].decode("utf-8", errors="replace")))
            yield index, empty

    def _bad_file(self, n_bytes: int, n_lines: int, is_utf8: bool, n_tokens: int, raw: str) -> BadRecord:
        what = f"the document (the whole file, {n_lines} line{'s' if n_lines != 1 else ''})"
        reason = f"{what} is not valid UTF-8" if not is_utf8 else self._why(n_tokens, what)
        return BadRecord(n_bytes, 1, reason, raw=raw[:QUARANTINE_CHARS])

    def _ids(self, tokens: Tokens) -> tuple[np.ndarray, np.ndarray]:
        """Vocabulary index and document of every token in the vocabulary.

        The distinct tokens are looked up in a dict (pyarrow's ``index_in`` would hash the
        whole vocabulary again at every call: 3.6 ms for 20,000 words, per file in file mode).
        """
        if len(tokens.words) == 0:
            return np.zeros(0, dtype=np.int64), tokens.documents
        encoded = pc.dictionary_encode(tokens.words)
        get = self._index.get
        of_distinct = np.fromiter((get(w, -1) for w in encoded.dictionary.to_pylist()), dtype=np.int64,
                                  count=len(encoded.dictionary))
        ids = of_distinct[encoded.indices.to_numpy()]
        known = ids >= 0
        return ids[known], tokens.documents[known]

    def _why(self, n_tokens: int, what: str) -> str:
        if n_tokens == 0:
            return f"{what} has no word (2 or more letters or digits), so none of the vocabulary"
        return (f"{what} has no word of the vocabulary ({n_tokens} word{'s' if n_tokens > 1 else ''}, "
                f"none among the {len(self.vocabulary):,} of the vocabulary)")

    def _count_lines(self, block: bytes, at: int, tokens: Tokens, starts: np.ndarray,
                     ends: np.ndarray, lines: np.ndarray) -> Chunk:
        n = len(starts)
        width = len(self.vocabulary)
        ids, docs = self._ids(tokens)
        pairs, counts = distinct_counts(docs * width + ids)
        rows = pairs // width
        per_row = np.bincount(rows, minlength=n)
        ok = per_row > 0
        bad: list[BadRecord] = []
        undecodable = set(tokens.undecodable.tolist())
        ok[tokens.undecodable] = False
        ends_abs = at + np.minimum(ends + 1, len(block))
        for i in np.flatnonzero(~ok).tolist():
            raw = block[starts[i]:ends[i]]
            if i in undecodable:
                reason = "the line is not valid UTF-8"
            elif _is_blank(raw):
                continue
            else:
                reason = self._why(int(tokens.n_tokens[i]), "the line")
            bad.append(BadRecord(int(ends_abs[i]), int(lines[i]), reason,
                                 raw=raw.decode("utf-8", errors="replace").rstrip("\r")))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(per_row, out=indptr[1:])
        X = sp.csr_matrix((counts.astype(self.options.dtype), (pairs - rows * width).astype(np.int32), indptr),
                          shape=(n, width))
        if not ok.all():
            X = X[ok]
        return Chunk(X, None, None, ends_abs[ok].astype(np.int64), lines[ok].astype(np.int64), bad)

    def _read_file(self, entry: Entry) -> Chunk:
        width = len(self.vocabulary)
        words = np.zeros(0, dtype=np.int64)
        counts = np.zeros(0, dtype=np.int64)
        n_bytes = n_lines = n_tokens = 0
        is_blank, is_utf8, last = True, True, b""
        head: list[str] = []
        for block, tokens in file_pieces(entry):
            ids, _ = self._ids(tokens)
            if len(ids):
                new, times = distinct_counts(ids)
                words, counts = _sum_counts(np.concatenate([words, new]), np.concatenate([counts, times]))
            n_tokens += int(tokens.n_tokens.sum())
            is_utf8 &= len(tokens.undecodable) == 0
            if is_blank:
                is_blank = _is_blank(block)
            if sum(map(len, head)) < QUARANTINE_CHARS:
                head.append(block[:QUARANTINE_CHARS].decode("utf-8", errors="replace"))
            n_bytes += len(block)
            n_lines += block.count(b"\n")
            last = block[-1:]
        if last and last != b"\n":
            n_lines += 1
        dt = self.options.dtype
        end, line = np.array([n_bytes], np.int64), np.array([n_lines], np.int64)
        if is_utf8 and len(words):
            X = sp.csr_matrix((counts.astype(dt), words.astype(np.int32), np.array([0, len(words)])),
                              shape=(1, width))
            return Chunk(X, None, None, end, line, [])
        empty = Chunk(sp.csr_matrix((0, width), dtype=dt), None, None, end[:0], line[:0], [])
        if is_blank:
            return empty
        empty.bad.append(self._bad_file(n_bytes, n_lines, is_utf8, n_tokens, "".join(head)))
        return empty


def _sum_counts(words: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``words`` (sorted) and the sum of their ``counts``."""
    order = np.argsort(words, kind="stable")
    words, counts = words[order], counts[order]
    first = np.flatnonzero(np.r_[True, words[1:] != words[:-1]])
    return words[first], np.add.reduceat(counts, first) if len(first) else counts[:0]
