"""Space-Saving's guarantees and the one-pass vocabulary builder."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onepass.errors import InvalidParameterError
from onepass.sources import _documents
from onepass.text import SpaceSaving, build_vocabulary, tokenize
from onepass.text import _vocabulary as vocabulary_module


def check_guarantees(sketch: SpaceSaving, truth: Counter) -> None:
    """What Metwally et al. prove for every run: bounds of each count, room, heavy hitters kept."""
    n = sum(truth.values())
    assert sketch.n_seen == n
    assert len(sketch) <= sketch.capacity and len(sketch._heap) <= sketch.capacity
    for item, count, error in sketch.top():
        assert count - error <= truth[item] <= count, (item, count, error, truth[item])
        assert error <= sketch.min_count
    assert sketch.min_count <= n / sketch.capacity
    for item, true in truth.items():
        if true > n / sketch.capacity:
            assert sketch.estimate(item)[0] > 0, f"{item} seen {true} times of {n} was let go"


class _EvictsTheLargest(SpaceSaving):
    """A broken sketch (replaces its most frequent item): the checks must catch it."""

    def add(self, item: str, weight: int = 1) -> None:
        if item not in self._counts and len(self._counts) >= self.capacity:
            largest = max(self._counts, key=self._counts.get)
            del self._counts[largest], self._errors[largest]
            self._heap = [(c, w) for c, w in self._heap if w != largest]
        super().add(item, weight)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 5)), max_size=300), st.integers(1, 12))
def test_space_saving_guarantees(stream, capacity):
    sketch = SpaceSaving(capacity)
    truth: Counter = Counter()
    for item, weight in stream:
        sketch.add(f"w{item}", weight)
        truth[f"w{item}"] += weight
    check_guarantees(sketch, truth)
    batched = SpaceSaving(capacity)  # update() is add() in a loop
    batched.update([f"w{i}" for i, _ in stream], [w for _, w in stream])
    assert batched.top() == sketch.top() and batched.n_evicted == sketch.n_evicted


def test_the_guarantee_checks_catch_a_broken_sketch():
    rng = np.random.default_rng(0)
    stream = [f"w{i}" for i in rng.zipf(1.5, 2000) if i < 200]
    broken = _EvictsTheLargest(10)
    broken.update(stream)
    with pytest.raises(AssertionError):
        check_guarantees(broken, Counter(stream))


def test_memory_does_not_grow_with_the_stream():
    """At fixed capacity the dict and the heap never hold more than capacity items, however
    many distinct items go by."""
    sketch = SpaceSaving(50)
    rng = np.random.default_rng(1)
    for _ in range(20):
        sketch.update([f"w{i}" for i in rng.zipf(1.3, 5000)], [1] * 5000)
        assert len(sketch._counts) == len(sketch._errors) == len(sketch._heap) == 50
    assert sketch.n_evicted > 10_000


def _zipf_corpus(path, n_docs: int, seed: int = 0) -> list[set[str]]:
    rng = np.random.default_rng(seed)
    words = [f"w{chr(97 + i % 26)}{i}" for i in range(3000)]
    p = 1 / np.arange(1, len(words) + 1) ** 1.1
    lengths = rng.integers(3, 15, n_docs)
    drawn = np.array(words)[rng.choice(len(words), lengths.sum(), p=p / p.sum())]
    docs = [list(d) for d in np.split(drawn, np.cumsum(lengths)[:-1])]
    with open(path, "w") as f:
        f.write("".join(" ".join(d) + "\n" for d in docs))
    return [set(d) for d in docs]


def test_top_words_match_exact_counting(tmp_path):
    path = tmp_path / "docs.txt"
    docs = _zipf_corpus(path, 4000)
    df = Counter(w for d in docs for w in d)
    size = 100
    vocab = build_vocabulary(path, size=size, sketch_size=1000)
    assert not vocab.is_exact  # the corpus has more distinct words than the sketch
    cut = sorted(df.values(), reverse=True)[size - 1]
    sure = {w for w, c in df.items() if c > cut}  # above the cut: must be kept
    assert sure <= set(vocab.words) and len(vocab) == size
    assert all(df[w] >= cut for w in vocab.words)  # the rest: ties at the cut
    for w, c, e in zip(vocab.words, vocab.document_frequencies, vocab.errors, strict=True):
        assert c - e <= df[w] <= c
    ranked = sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))
    exact = build_vocabulary(path, size=size, sketch_size=5000)
    assert exact.is_exact and exact.words == [w for w, _ in ranked[:size]]
    assert exact.document_frequencies.tolist() == [c for _, c in ranked[:size]]


def test_a_word_counts_once_per_document(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("cat cat cat dog\ncat\ndog\nfish\n\n")
    vocab = build_vocabulary(path, size=10)
    assert vocab.words == ["cat", "dog", "fish"]  # 2, 2, 1: ties by word
    assert vocab.document_frequencies.tolist() == [2, 2, 1] and vocab.n_documents == 4
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text("cat\ncat dog\n")
    (folder / "b.txt").write_text("dog\n\nfish")
    (folder / "c.txt").write_text("dog\n")
    by_file = build_vocabulary(folder, size=10, document="file")
    assert by_file.words == ["dog", "cat", "fish"] and by_file.document_frequencies.tolist() == [3, 1, 1]
    assert by_file.n_documents == 3


def test_stop_words_numbers_and_min_df(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("the cat and the dog in 2019\nthe cat 2019 x_1\nThe end __\n")
    assert build_vocabulary(path).words == ["cat", "dog", "end", "x_1"]  # "the", "and", "in": stop words
    assert build_vocabulary(path, stop_words="none").words == ["the", "cat", "and", "dog", "end", "in", "x_1"]
    assert build_vocabulary(path, stop_words=["CAT", "the"], keep_numbers=True).words[:3] == ["2019", "__", "and"]
    stop = tmp_path / "stop.txt"
    stop.write_text("cat\ndog\n")
    assert build_vocabulary(path, stop_words=stop).words == ["the", "and", "end", "in", "x_1"]
    assert build_vocabulary(path, min_df=2).words == ["cat"]


def test_min_df_is_judged_on_the_lower_bound(tmp_path, monkeypatch):
    """With evictions, a word's estimate may pass min_df while its lower bound does not:
    it is left out, so every kept word is certainly in min_df documents."""
    path = tmp_path / "docs.txt"
    path.write_text("".join(f"a{i} common\n" for i in range(30)) + "late\nlate\n")
    monkeypatch.setattr(_documents, "PIECE_BYTES", 8)  # a line a piece,
    monkeypatch.setattr(vocabulary_module, "FLUSH_ENTRIES", 1)  # each to the sketch in file order
    sketch_says = build_vocabulary(path, size=2, sketch_size=2, stop_words="none")
    assert dict(zip(sketch_says.words, zip(sketch_says.document_frequencies.tolist(),
                                           sketch_says.errors.tolist(), strict=True), strict=True)) == {
        "late": (32, 30), "common": (30, 0)}
    assert build_vocabulary(path, size=2, sketch_size=2, stop_words="none", min_df=3).words == ["common"]


def test_parameters_are_checked(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("cat\n")
    with pytest.raises(InvalidParameterError, match="sketch_size=5 must be an integer >= size"):
        build_vocabulary(path, size=10, sketch_size=5)
    with pytest.raises(InvalidParameterError, match="min_df=0"):
        build_vocabulary(path, min_df=0)
    with pytest.raises(InvalidParameterError, match="document='page'"):
        build_vocabulary(path, document="page")


def test_write_is_one_word_per_line(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("Über naïve über\nüber\n")
    out = tmp_path / "vocab.txt"
    build_vocabulary(path).write(out)
    assert out.read_bytes().decode("utf-8") == "über\nnaïve\n"
    assert tokenize("Über naïve") == ["über", "naïve"]
