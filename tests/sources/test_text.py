"""The ``text`` format: raw documents in, word counts out, with exact cursors."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import CountVectorizer

from onepass.errors import BadRecordError, DataError, FeatureCountError, InvalidParameterError
from onepass.sources import _documents, _text, open_source
from onepass.text import TOKEN_PATTERN
from onepass.text._tokenize import split_tokens

VOCAB = ["cat", "dog", "sat", "ran", "naïve", "über", "2019"]


@pytest.fixture
def vocab_file(tmp_path: Path) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_text("".join(w + "\n" for w in VOCAB), encoding="utf-8")
    return path


def read(uri, **kw):
    kw.setdefault("format", "text")
    with open_source(uri, **kw) as src:
        batches = list(src)
    return batches, src


def counts(batches) -> np.ndarray:
    return sp.vstack([b.X for b in batches]).toarray()


def test_counts_by_hand(tmp_path, vocab_file):
    path = tmp_path / "docs.txt"
    path.write_text("The cat sat; the CAT ran.\n\nDog, dog, dog... and a cat\nNaïve ÜBER-cat in 2019\n",
                    encoding="utf-8")
    batches, src = read(path, vocab=vocab_file, batch_size=2)
    want = np.array([[2, 0, 1, 1, 0, 0, 0],   # line 1
                     [1, 3, 0, 0, 0, 0, 0],   # line 3 (line 2 is blank: not a document)
                     [1, 0, 0, 0, 1, 1, 1]])  # line 4: "über" lowercased, "2019" a token
    np.testing.assert_array_equal(counts(batches), want)
    b = batches[0]
    assert sp.isspmatrix_csr(b.X) and b.X.dtype == np.float32 and b.y is None and b.w is None
    assert b.X.shape == (2, len(VOCAB)) and b.X.has_canonical_format
    assert [x.cursor["line"] for x in batches] == [3, 4]
    assert src.feature_names == VOCAB and src.n_features == len(VOCAB) and src.n_rows_read == 3


_ALPHABET = st.sampled_from(list("abcXYZ019_ ,.;'-\t\r") + ["é", "É", "ß", "ñ", "ω", "Ж", "ж", "中", "文",
                                                            "\u0301", "\u00a0", "’", "İ", "ﬁ", "Ⅻ", "٣"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(_ALPHABET, max_size=30), min_size=1, max_size=6))
def test_tokens_are_scikit_learns(docs):
    """Each document's tokens are ``re.findall(TOKEN_PATTERN, doc.lower())``, as a multiset."""
    data = [d.encode("utf-8") for d in docs]
    bounds = np.r_[0, np.cumsum([len(d) + 1 for d in data])]
    tokens = split_tokens(b"\n".join(data) + b"\n", bounds)
    got = [Counter() for _ in docs]
    for word, doc in zip(tokens.words.to_pylist(), tokens.documents.tolist(), strict=True):
        got[doc][word] += 1
    want = [Counter(re.findall(TOKEN_PATTERN, d.lower())) for d in docs]
    assert got == want
    assert tokens.n_tokens.tolist() == [sum(c.values()) for c in want]


def test_counts_equal_count_vectorizer(tmp_path, monkeypatch):
    """Against scikit-learn's CountVectorizer with the same vocabulary, on Zipf text with
    punctuation, capitals and non-ASCII words, read in small blocks and pieces."""
    monkeypatch.setattr(_text, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(_documents, "PIECE_BYTES", 700)
    rng = np.random.default_rng(0)
    pool = ["alpha", "Beta", "gamma", "délta", "ÉPSILON", "zeta", "eta", "θeta", "iota", "kappa", "x",
            "l2", "mu_nu", "中文", "2020", "it's", "e-mail", "co‑op"]
    p = 1 / np.arange(1, len(pool) + 1)
    lines = []
    for _ in range(600):
        words = rng.choice(pool, rng.integers(1, 12), p=p / p.sum())
        lines.append(" ".join(words) + rng.choice(["", ".", "!", " ;"]))
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab = ["alpha", "beta", "délta", "épsilon", "θeta", "l2", "mu_nu", "中文", "2020", "it", "mail", "op"]
    want = CountVectorizer(vocabulary=vocab, dtype=np.float32).transform(lines).toarray()
    has_word = want.sum(axis=1) > 0
    kw = dict(vocab=vocab, batch_size=97, on_bad_record="skip")
    batches, src = read(path, **kw)
    np.testing.assert_array_equal(counts(batches), want[has_word])
    assert src.n_skipped == int((~has_word).sum()) > 0


def test_one_document_per_file(tmp_path, vocab_file):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("cat sat\nthe cat\n")
    (folder / "b.md").write_text("   \n\n")  # blank: not a document
    (folder / "c").write_text("dog ran")  # no final newline, no extension
    (folder / "d.txt").write_text("zebra\n")  # no word of the vocabulary
    batches, src = read(folder, vocab=vocab_file, document="file", batch_size=10, on_bad_record="skip")
    assert len(batches) == 1  # one batch gathers documents of several files
    np.testing.assert_array_equal(counts(batches), [[2, 0, 1, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0, 0]])
    assert batches[0].cursor["path"] == str(folder / "c") and src.n_skipped == 1
    with pytest.raises(BadRecordError) as info:
        read(folder, vocab=vocab_file, document="file")
    assert info.value.source == str(folder / "d.txt") and "whole file" in str(info.value)


def test_small_files_read_together_equal_files_streamed(tmp_path, monkeypatch):
    """In file mode small files are tokenized together, larger ones streamed block by block:
    both give the same rows, cursors and bad records."""
    folder = tmp_path / "docs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    words = ["cat", "dog", "sat", "ran", "zebra", "über", "", "\n", "2019 ", "BAD"]
    for k in range(40):
        text = " ".join(rng.choice(words, rng.integers(0, 30 if k % 3 else 3))).encode()
        (folder / f"{k:02d}.txt").write_bytes(text.replace(b"BAD", b"\xff"))

    def read_all():
        with open_source(folder, format="text", vocab=VOCAB, document="file", batch_size=7,
                         on_bad_record="quarantine", quarantine_file=tmp_path / "q.jsonl") as src:
            out = [(b.X.toarray(), b.cursor) for b in src]
        return out, (tmp_path / "q.jsonl").read_text()

    monkeypatch.setattr(_text, "BLOCK_BYTES", 16)
    monkeypatch.setattr(_documents, "PIECE_BYTES", 4)  # every file of 2 bytes or more streamed
    streamed = read_all()
    (tmp_path / "q.jsonl").unlink()
    monkeypatch.setattr(_documents, "PIECE_BYTES", 1 << 20)
    together = read_all()
    assert len(streamed[0]) == len(together[0]) > 2 and "not valid UTF-8" in streamed[1]
    for (xa, ca), (xb, cb) in zip(streamed[0], together[0], strict=True):
        np.testing.assert_array_equal(xa, xb)
        assert ca == cb
    assert streamed[1] == together[1]


@pytest.mark.parametrize("mode", ["fail", "skip", "quarantine"])
def test_documents_without_a_vocabulary_word_are_bad_records(tmp_path, vocab_file, mode):
    path = tmp_path / "docs.txt"
    path.write_text("cat\nzebra lion\n\n  \t \n!!! a\ndog\n")
    quarantine = tmp_path / "q.jsonl"
    kw = dict(vocab=vocab_file, batch_size=1, on_bad_record=mode,
              quarantine_file=quarantine if mode == "quarantine" else None)
    if mode == "fail":
        with pytest.raises(BadRecordError) as info:
            read(path, **kw)
        assert str(info.value).startswith(f"line 2 of {path}: ")
        assert "no word of the vocabulary (2 words" in str(info.value)
        return
    batches, src = read(path, **kw)
    np.testing.assert_array_equal(counts(batches)[:, :2], [[1, 0], [0, 1]])
    assert (src.n_skipped, src.n_quarantined) == ((2, 0) if mode == "skip" else (0, 2))
    if mode == "quarantine":
        records = [json.loads(line) for line in quarantine.read_text().splitlines()]
        assert [(r["line"], r["raw"]) for r in records] == [(2, "zebra lion"), (5, "!!! a")]
        assert "has no word (2 or more letters" in records[1]["reason"]


def test_invalid_utf8_is_a_bad_record(tmp_path, vocab_file):
    path = tmp_path / "docs.txt"
    path.write_bytes(b"cat\ndog \xff\xfe ran\nsat\n")
    with pytest.raises(BadRecordError, match="line 2 of .*not valid UTF-8"):
        read(path, vocab=vocab_file)
    batches, src = read(path, vocab=vocab_file, on_bad_record="skip")
    assert src.n_rows_read == 2 and src.n_skipped == 1


def test_gzip_and_crlf(tmp_path, vocab_file):
    path = tmp_path / "docs.txt.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"cat cat\r\n\r\ndog\r\n")
    batches, _ = read(path, vocab=vocab_file)
    np.testing.assert_array_equal(counts(batches)[:, :2], [[2, 0], [0, 1]])


def test_vocab_is_required_and_checked(tmp_path, vocab_file):
    path = tmp_path / "docs.txt"
    path.write_text("cat\n")
    with pytest.raises(InvalidParameterError, match="needs a vocabulary"):
        open_source(path, format="text")
    with pytest.raises(InvalidParameterError, match="document='file' is for format='text'"):
        open_source(path, format="csv", document="file")
    with pytest.raises(InvalidParameterError, match="document='page'"):
        open_source(path, format="text", vocab=vocab_file, document="page")
    bad = tmp_path / "bad.txt"
    bad.write_text("cat\ndog\ncat\n")
    with pytest.raises(DataError, match="line 3 of .*bad.txt repeats 'cat' \\(line 1\\)"):
        open_source(path, format="text", vocab=bad)
    bad.write_text("cat\n\ndog\n")
    with pytest.raises(DataError, match="line 2 of .*is empty"):
        open_source(path, format="text", vocab=bad)
    with pytest.warns(UserWarning, match="2 word\\(s\\) .* never be counted.*'Cat', 'a'"):
        open_source(path, format="text", vocab=["Cat", "a", "dog"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_source(path, format="text", vocab=vocab_file).close()


def test_txt_still_reads_as_csv(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("1,2\n3,4\n")
    batches, src = read(path, format=None)
    assert src.format == "csv" and src.feature_names is None


def test_vocab_names_the_columns_of_other_formats(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1\n")
    batches, src = read(path, format=None, label_column="y", vocab=["apple", "banana"])
    assert src.feature_names == ["apple", "banana"] and src.n_features == 2
    with pytest.raises(FeatureCountError, match="2 feature columns, but the vocabulary names 3"):
        read(path, format=None, label_column="y", vocab=["apple", "banana", "cherry"])
    with pytest.raises(InvalidParameterError, match="n_features=5 but the vocabulary has 2 words"):
        open_source(path, label_column="y", vocab=["apple", "banana"], n_features=5)
    svm = tmp_path / "data.svm"
    svm.write_text("1 1:2 2:1\n0 3:1\n")
    batches, src = read(svm, format=None, vocab=["w1", "w2", "w3", "w4"])
    assert batches[0].X.shape == (2, 4)  # the vocabulary sets libsvm's width


def test_cursor_remembers_the_vocabulary(tmp_path, vocab_file):
    path = tmp_path / "docs.txt"
    path.write_text("cat\ndog\n")
    with open_source(path, format="text", vocab=vocab_file, batch_size=1) as src:
        cursor = next(src).cursor
    with pytest.raises(InvalidParameterError, match="another vocabulary"):
        open_source(path, format="text", vocab=VOCAB[::-1], cursor=cursor)
    with open_source(path, format="text", vocab=VOCAB, cursor=cursor) as src:
        assert counts(list(src))[:, 1].tolist() == [1]


@st.composite
def corpora(draw):
    words = ["cat", "dog", "sat", "ran", "zebra", "Naïve", "a"]
    files = []
    for _ in range(draw(st.integers(1, 3))):
        lines = draw(st.lists(st.lists(st.sampled_from(words), max_size=4).map(" ".join), min_size=0, max_size=10))
        files.append(lines)
    return files, draw(st.integers(1, 4)), draw(st.sampled_from(["line", "file"])), \
        draw(st.sampled_from(["skip", "quarantine"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=corpora())
# a bad file longer than the good one after it: its record must be committed before that
# batch's cursor although its end offset is larger
@example(data=([["zebra zebra zebra"], ["cat"], ["dog"]], 1, "file", "skip"))
def test_resume_at_every_cursor(data):
    """Resuming after any batch reads the rest exactly: no document twice, none skipped,
    bad-record counts and the quarantine file as in one read (blank lines, documents
    without a vocabulary word, tiny blocks and pieces)."""
    files, batch_size, document, mode = data
    old = _text.BLOCK_BYTES, _documents.PIECE_BYTES
    _text.BLOCK_BYTES, _documents.PIECE_BYTES = 24, 40  # files of 10 bytes or less read together
    root = tempfile.mkdtemp()
    try:
        folder = os.path.join(root, "docs")
        os.makedirs(folder)
        for k, lines in enumerate(files):
            Path(folder, f"part{k}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        q = os.path.join(root, "q.jsonl")
        kw = dict(format="text", vocab=VOCAB, document=document, batch_size=batch_size, on_bad_record=mode,
                  quarantine_file=q if mode == "quarantine" else None)

        def read_from(cursor):
            with open_source(folder, cursor=cursor, **kw) as src:
                out = [(b.X.toarray(), b.cursor) for b in src]
                return out, (src.n_rows_read, src.n_skipped, src.n_quarantined)

        known = {"cat", "dog", "sat", "ran", "naïve"}
        docs = [line for lines in files for line in lines] if document == "line" else \
            [" ".join(lines) for lines in files]
        n_good = sum(any(w.lower() in known for w in d.split()) for d in docs)
        n_bad = sum(1 for d in docs if d.strip()) - n_good
        if n_good == 0:
            with pytest.raises(DataError, match="yielded no rows"):
                read_from(None)
            return
        full, totals = read_from(None)
        assert totals == (n_good, n_bad if mode == "skip" else 0, n_bad if mode == "quarantine" else 0)
        q_full = open(q).read() if mode == "quarantine" else None
        assert json.loads(json.dumps([c for _, c in full])) == [c for _, c in full]
        for i, (_, cursor) in enumerate(full):
            rest, rest_totals = read_from(cursor)
            assert len(rest) == len(full) - i - 1
            for (xa, ca), (xb, cb) in zip(rest, full[i + 1:], strict=True):
                np.testing.assert_array_equal(xa, xb)
                assert ca == cb
            assert rest_totals == totals
            if mode == "quarantine":
                assert open(q).read() == q_full
    finally:
        _text.BLOCK_BYTES, _documents.PIECE_BYTES = old
        shutil.rmtree(root)
