"""Vocabularies: read one (``vocab.txt``), or build one in one pass with fixed memory."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from onepass.errors import DataError, InvalidParameterError
from onepass.text._space_saving import SpaceSaving
from onepass.text._tokenize import Tokens, distinct_counts, split_tokens

__all__ = ["Vocabulary", "build_vocabulary", "load_vocabulary"]

#: How many times ``size`` the sketch monitors by default.
SKETCH_FACTOR = 10

#: (word, document frequency) entries summed in pyarrow before the sketch sees them.
FLUSH_ENTRIES = 1 << 19


def _read_words(uri: Any, what: str) -> tuple[list[str], str]:
    """Lines of a UTF-8 file (any source URI), stripped, with the file's name."""
    from onepass.sources._transport import resolve

    entries = resolve(uri)
    if len(entries) != 1 or entries[0].is_stdin:
        raise InvalidParameterError(f"{what} {os.fspath(uri)!r} must be one file, found {len(entries)}")
    entry = entries[0]
    with entry.open() as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"line {line} of {entry.name} is not valid UTF-8; {what} files are UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines], entry.name


def load_vocabulary(vocab: Any, *, for_text: bool = False) -> list[str]:
    """The words of a vocabulary file (one word per line, UTF-8) or list, checked.

    Parameters
    ----------
    vocab : str or PathLike or sequence of str
        A file (any URI a source reads, ``.gz`` too) or the words themselves.
    for_text : bool, default False
        Warn about words the ``text`` format can never count (not a single lowercase
        token: ``"New York"``, ``"a"``).

    Returns
    -------
    list of str

    Raises
    ------
    DataError
        An empty vocabulary, an empty line, a word listed twice, or a file that is not UTF-8.

    Examples
    --------
    >>> load_vocabulary(["topic", "model"])
    ['topic', 'model']
    """
    if isinstance(vocab, (list, tuple)):
        if not all(isinstance(w, str) for w in vocab):
            raise InvalidParameterError("vocab must be a file or a list of str")
        words, where = [w.strip() for w in vocab], "the vocabulary"
        lines = [f"word {i}" for i in range(len(words))]
    else:
        words, name = _read_words(vocab, "vocab")
        where = name
        lines = [f"line {i + 1}" for i in range(len(words))]
    if not words:
        raise DataError(f"{where} holds no word; a vocabulary has one word per line")
    seen: dict[str, int] = {}
    for i, word in enumerate(words):
        if not word:
            raise DataError(f"{lines[i]} of {where} is empty; a vocabulary has one word per line")
        if word in seen:
            raise DataError(f"{lines[i]} of {where} repeats {word!r} ({lines[seen[word]]}); every word "
                            "names one column, so each must be listed once")
        seen[word] = i
    if for_text:
        never = _never_counted(words)
        if never:
            warnings.warn(
                f"{len(never)} word(s) of {where} can never be counted in text, whose words are lowercase runs "
                f"of 2+ letters or digits: {', '.join(map(repr, never[:5]))}{' ...' if len(never) > 5 else ''}",
                stacklevel=3)
    return words


def _never_counted(words: list[str]) -> list[str]:
    """The words that are not one token of their own (all words tokenized at once)."""
    encoded = [w.encode("utf-8") for w in words]
    bounds = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum([len(b) + 1 for b in encoded], out=bounds[1:])
    tokens = split_tokens(b"\n".join(encoded) + b"\n", bounds)
    single = tokens.n_tokens[tokens.documents] == 1
    found = dict(zip(tokens.documents[single].tolist(), tokens.words.filter(pa.array(single)).to_pylist(),
                     strict=True))
    return [w for i, w in enumerate(words) if found.get(i) != w]


@dataclass
class Vocabulary:
    """A vocabulary built by :func:`build_vocabulary`, most frequent word first.

    Attributes
    ----------
    words : list of str
    document_frequencies : ndarray of int64, shape (len(words),)
        Documents each word is in, as estimated by the sketch: never less than the truth.
    errors : ndarray of int64, shape (len(words),)
        Overestimate bound: the true document frequency is at least
        ``document_frequencies - errors``.
    n_documents : int
        Documents read (those holding at least one token).
    sketch_size : int
        Words the sketch monitored.
    n_evicted : int
        Words the sketch let go to make room; 0 means the frequencies are exact.
    """

    words: list[str]
    document_frequencies: np.ndarray
    errors: np.ndarray
    n_documents: int
    sketch_size: int
    n_evicted: int = 0
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def is_exact(self) -> bool:
        """Whether every frequency is exact (the sketch never evicted a word)."""
        return self.n_evicted == 0

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write one word per line (UTF-8), atomically: a temporary sibling renamed into place."""
        path = os.fspath(path)
        text = "".join(w + "\n" for w in self.words).encode("utf-8")
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".vocab-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _stop_words(stop_words: Any) -> frozenset[str]:
    if stop_words is None or stop_words == "none":
        return frozenset()
    if stop_words == "english":
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return frozenset(ENGLISH_STOP_WORDS)
    if isinstance(stop_words, (str, os.PathLike)):
        words, _ = _read_words(stop_words, "stop words")
        return frozenset(w.lower() for w in words if w)
    if isinstance(stop_words, Iterable):
        return frozenset(str(w).lower() for w in stop_words)
    raise InvalidParameterError(f"stop_words={stop_words!r} must be 'english', 'none', a file or a list of words")


class _Counter:
    """Document frequencies of the kept tokens, into a Space-Saving sketch.

    Each piece of text gives its distinct words and their document frequencies; pieces
    are summed per word (in pyarrow) until :data:`FLUSH_ENTRIES` entries wait, then
    handed to the sketch in one loop: a word frequent in many pieces costs one update per
    flush, not one per piece.
    """

    def __init__(self, capacity: int, stop_words: frozenset[str], keep_numbers: bool) -> None:
        self.sketch = SpaceSaving(capacity)
        self.n_documents = 0
        self._stop = pa.array(sorted(stop_words), pa.large_string())
        self._keep_numbers = keep_numbers
        self._pending: list[pa.Table] = []
        self._n_pending = 0

    def _kept(self, words: pa.Array) -> pa.Array:
        mask = pc.invert(pc.is_in(words, value_set=self._stop))
        if not self._keep_numbers:  # a token without a letter: 2019, 3_14
            mask = pc.and_(mask, pc.match_substring_regex(words, r"\pL"))
        return mask

    def _add(self, words: pa.Array, df: np.ndarray) -> None:
        kept = self._kept(words)
        table = pa.table({"word": words.filter(kept), "df": df[kept.to_numpy(zero_copy_only=False)]})
        self._pending.append(table)
        self._n_pending += table.num_rows
        if self._n_pending >= FLUSH_ENTRIES:
            self.flush()

    def flush(self) -> None:
        """Hand the words waiting to the sketch, most frequent first, ties by word."""
        if not self._pending:
            return
        n_tables = len(self._pending)
        table = pa.concat_tables(self._pending)
        self._pending, self._n_pending = [], 0
        if n_tables > 1:
            table = table.group_by("word", use_threads=False).aggregate([("df", "sum")]).rename_columns(
                ["word", "df"])
        # the most frequent first: they find room (or replace only the rarest) before the
        # rare words churn through the sketch's smallest counts, so their errors stay small
        table = table.sort_by([("df", "descending"), ("word", "ascending")])
        self.sketch.update(table.column("word").to_pylist(), table.column("df").to_pylist())

    def add_lines(self, tokens: Tokens) -> None:
        """Each line its own document: a word counts once per line."""
        self.n_documents += int(np.count_nonzero(tokens.n_tokens))
        if len(tokens.words) == 0:
            return
        encoded = pc.dictionary_encode(tokens.words)
        index = encoded.indices.to_numpy().astype(np.int64)
        distinct = encoded.dictionary
        n = len(distinct)
        pairs, _ = distinct_counts(tokens.documents * n + index)
        self._add(distinct, np.bincount(pairs % n, minlength=n))

    def add_document(self, words: pa.Array) -> None:
        """One document's distinct words."""
        if len(words):
            self.n_documents += 1
            self._add(words, np.ones(len(words), dtype=np.int64))


def build_vocabulary(data: Any, *, size: int = 20000, sketch_size: int | None = None, min_df: int = 1,
                     stop_words: Any = "english", keep_numbers: bool = False,
                     document: str = "line") -> Vocabulary:
    """Build a vocabulary of the ``size`` words found in most documents, in one pass.

    Parameters
    ----------
    data : str or PathLike or list of them
        Text files: a file, folder, glob, ``-`` (stdin) or fsspec URL, as
        :func:`onepass.open_source` reads with ``format="text"``.
    size : int, default 20000
        Words kept at most.
    sketch_size : int or None, default None
        Words the sketch monitors (``10 * size`` when None); at least ``size``. Memory is
        O(sketch_size) whatever the corpus; a larger sketch makes the counts of the
        rarer kept words more precise.
    min_df : int, default 1
        Keep only words certainly found in at least this many documents: judged on the
        sketch's guaranteed lower bound (estimate minus error), so no word below it is kept.
    stop_words : "english", "none", None, str or PathLike, or iterable of str, default "english"
        Words left out: scikit-learn's ``ENGLISH_STOP_WORDS``, none, a file (one word a
        line) or the words.
    keep_numbers : bool, default False
        Keep tokens that hold no letter (``2019``, ``3_14``); left out by default.
    document : {"line", "file"}, default "line"
        What one document is: a line, or a whole file.

    Returns
    -------
    Vocabulary
        Words by decreasing document frequency, ties by increasing error, then by word.

    Notes
    -----
    Every document is tokenized by :func:`onepass.text.tokenize` (the ``text`` source's
    tokenizer), each distinct word counted once per document, and the counts go to a
    Space-Saving sketch (:class:`onepass.text.SpaceSaving`; Metwally et al., 2005) of
    ``sketch_size`` words. Every word found in more than ``n_documents / sketch_size``
    documents is kept in the sketch, with a count at most that much above the truth; when
    the corpus has at most ``sketch_size`` distinct words, the counts are exact. Memory:
    the sketch, and one piece of text (2 MB) at a time; in ``document="file"`` mode also
    the distinct words of the file being read. Time: O(tokens).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "docs.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("the cat sat\\nthe cat ran\\na dog ran\\n")
    >>> vocab = build_vocabulary(path, size=2)
    >>> vocab.words, vocab.document_frequencies.tolist(), vocab.n_documents
    (['cat', 'ran'], [2, 2], 3)
    """
    from onepass.sources._documents import DOCUMENT_UNITS, file_pieces, line_pieces
    from onepass.sources._transport import resolve

    for name, value, low in (("size", size, 1), ("min_df", min_df, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise InvalidParameterError(f"{name}={value!r} must be an integer >= {low}")
    if sketch_size is None:
        sketch_size = SKETCH_FACTOR * int(size)
    if not isinstance(sketch_size, (int, np.integer)) or isinstance(sketch_size, bool) or sketch_size < size:
        raise InvalidParameterError(f"sketch_size={sketch_size!r} must be an integer >= size ({size})")
    if document not in DOCUMENT_UNITS:
        raise InvalidParameterError(f"document={document!r} is not one of {', '.join(map(repr, DOCUMENT_UNITS))}")
    counter = _Counter(int(sketch_size), _stop_words(stop_words), bool(keep_numbers))
    for entry in resolve(data):
        if document == "line":
            for _, _, tokens, _, _, _ in line_pieces(entry, None):
                counter.add_lines(tokens)
        else:
            seen = [pc.unique(tokens.words) for _, tokens in file_pieces(entry)]
            counter.add_document(pc.unique(pa.concat_arrays(seen)) if seen else pa.array([], pa.large_string()))
    counter.flush()
    sketch = counter.sketch
    ranked = [(w, c, e) for w, c, e in sketch.top() if c - e >= min_df][:size]
    return Vocabulary(
        words=[w for w, _, _ in ranked],
        document_frequencies=np.array([c for _, c, _ in ranked], dtype=np.int64),
        errors=np.array([e for _, _, e in ranked], dtype=np.int64),
        n_documents=counter.n_documents, sketch_size=int(sketch_size), n_evicted=sketch.n_evicted,
        settings={"size": int(size), "min_df": int(min_df), "keep_numbers": bool(keep_numbers),
                  "document": document},
    )
