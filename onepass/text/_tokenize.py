"""The one tokenizer of onepass: what the ``text`` source counts and ``onepass vocab`` ranks.

A token is a run of two or more word characters, lowercased: scikit-learn's default
``token_pattern`` ``(?u)\\b\\w\\w+\\b`` applied after ``str.lower()``. Word characters are
Unicode letters, digits and the underscore, so ``2019`` and ``covid_19`` are tokens (the
vocabulary builder leaves out tokens without a letter unless asked; see
:func:`onepass.text.build_vocabulary`). Marks are not word characters (as in Python's
``re``), so a combining accent splits a word.

Speed: the usual tokenizer runs a Python regex over every character (~2 MB/s here). This
one maps bytes first: ASCII punctuation and spaces become spaces and ASCII capitals
lowercase in one ``bytes.translate``, pyarrow splits on spaces in C++, and only the
tokens holding a non-ASCII byte (few in most Latin-script text) are decoded and cut by the
Python regex. The result equals ``re.findall(TOKEN_PATTERN, text.lower())`` but for one
contextual case mapping: a Greek capital sigma at the end of a word is lowercased on its
own token, so a final sigma followed by punctuation and a capital reads ``ς`` where
``str.lower`` of the whole text may read ``σ``.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["TOKEN_PATTERN", "Tokens", "distinct_counts", "split_tokens", "tokenize"]

#: scikit-learn's default token pattern, applied to lowercased text
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_WORD = re.compile(TOKEN_PATTERN)

# ASCII word characters kept (capitals lowercased), every other ASCII byte a space, bytes
# of multi-byte UTF-8 characters kept for the regex to judge.
_TABLE = bytearray(b" " * 128) + bytes(range(128, 256))
for _c in b"abcdefghijklmnopqrstuvwxyz0123456789_":
    _TABLE[_c] = _c
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _TABLE[_c] = _c + 32
_TABLE = bytes(_TABLE)


class Tokens:
    """The tokens of a run of documents, in no particular order within a document.

    Attributes
    ----------
    words : pyarrow.StringArray
        Every token.
    documents : ndarray of int64, shape (len(words),)
        The document (0-based, within the run) each token belongs to.
    n_tokens : ndarray of int64, shape (n_documents,)
        Tokens per document.
    undecodable : ndarray of int64
        Documents holding bytes that are not UTF-8 (their bad bytes read as U+FFFD,
        which is not a word character).
    """

    __slots__ = ("documents", "n_tokens", "undecodable", "words")

    def __init__(self, words: pa.Array, documents: np.ndarray, n_documents: int,
                 undecodable: np.ndarray) -> None:
        self.words = words
        self.documents = documents
        self.n_tokens = np.bincount(documents, minlength=n_documents).astype(np.int64)
        self.undecodable = undecodable


def split_tokens(data: bytes | memoryview, bounds: np.ndarray) -> Tokens:
    """Tokenize documents lying side by side in ``data``.

    Parameters
    ----------
    data : bytes
        UTF-8 text.
    bounds : ndarray of int, shape (n_documents + 1,)
        Document ``i`` is ``data[bounds[i]:bounds[i + 1]]`` (a newline inside a document
        is a space, as any ASCII non-word byte).

    Returns
    -------
    Tokens
    """
    bounds = np.asarray(bounds, dtype=np.int64)
    n_docs = len(bounds) - 1
    first, last = int(bounds[0]), int(bounds[-1])
    mapped = bytes(data[first:last]).translate(_TABLE)
    offsets = (bounds - first).astype(np.int64)
    docs = pa.LargeStringArray.from_buffers(n_docs, pa.py_buffer(offsets), pa.py_buffer(mapped))
    parts = pc.ascii_split_whitespace(docs)
    flat = parts.flatten()
    parent = pc.list_parent_indices(parts).to_numpy().astype(np.int64, copy=False)
    is_ascii = pc.string_is_ascii(flat)
    keep = pc.and_(is_ascii, pc.greater_equal(pc.binary_length(flat), 2))
    words = flat.filter(keep)
    documents = parent[keep.to_numpy(zero_copy_only=False)]
    undecodable: list[int] = []
    if not pc.all(is_ascii).as_py():
        odd = pc.invert(is_ascii)
        odd_docs = parent[odd.to_numpy(zero_copy_only=False)]
        extra: list[str] = []
        extra_docs: list[int] = []
        for raw, doc in zip(flat.filter(odd).cast(pa.large_binary()).to_pylist(), odd_docs.tolist(), strict=True):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                undecodable.append(doc)
            found = _WORD.findall(text.lower())
            extra.extend(found)
            extra_docs.extend([doc] * len(found))
        if extra:
            words = pa.concat_arrays([words, pa.array(extra, pa.large_string())])
            documents = np.concatenate([documents, np.asarray(extra_docs, dtype=np.int64)])
    return Tokens(words, documents, n_docs, np.asarray(sorted(set(undecodable)), dtype=np.int64))


def distinct_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of ``keys`` and how often each occurs.

    A sort and a difference: ``np.unique`` without ``return_counts`` takes a hashing path
    in NumPy 2.4 that is ~80x slower on a million int64 keys.
    """
    keys = np.sort(keys)
    if len(keys) == 0:
        return keys, np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[first], np.diff(np.r_[first, len(keys)])


def tokenize(text: str) -> list[str]:
    """The tokens of one document, as the ``text`` source and ``onepass vocab`` see them.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
        Lowercased runs of two or more word characters (letters, digits, underscore),
        ASCII words first, then the others, each group in text order.

    Examples
    --------
    >>> tokenize("The cat's 2 hats, naïve Ünïcode; a_b C3PO!")
    ['the', 'cat', 'hats', 'a_b', 'c3po', 'naïve', 'ünïcode']
    """
    data = text.encode("utf-8")
    return split_tokens(data, np.array([0, len(data)])).words.to_pylist()
