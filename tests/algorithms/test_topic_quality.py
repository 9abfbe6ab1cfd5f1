"""Topic quality measures (onepass.algorithms.ntm._quality) against hand computations on a
5-document corpus, a brute-force NPMI on random data, and the edge cases: a word in no
document, one topic, ties, fewer learned topics than true ones, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp

from onepass.algorithms.ntm._quality import match_topics, npmi_coherence, top_words, topic_uniqueness
from onepass.errors import DataError, InvalidParameterError

# 5 documents over 6 words; word 5 is in no document.
#   df: w0 3 (d0 d1 d4), w1 2 (d0 d1), w2 2 (d1 d2), w3 2 (d2 d3), w4 2 (d3 d4), w5 0
#   together: (0,1) 2, (0,2) 1, (0,4) 1, (1,2) 1, (2,3) 1, (3,4) 1, every other pair 0
DOCS = np.array([
    [2, 1, 0, 0, 0, 0],
    [1, 1, 1, 0, 0, 0],
    [0, 0, 3, 1, 0, 0],
    [0, 0, 0, 1, 2, 0],
    [1, 0, 0, 0, 1, 0],
], dtype=np.float32)


def npmi_by_hand(joint: float, pi: float, pj: float) -> float:
    return math.log(joint / (pi * pj)) / -math.log(joint)


def test_top_words_heaviest_first():
    tw = np.array([[0.1, 0.5, 0.2, 0.2], [0.7, 0.0, 0.1, 0.2]])
    np.testing.assert_array_equal(top_words(tw, n=3), [[1, 2, 3], [0, 3, 2]])
    assert top_words(tw, n=4).dtype.kind == "i"


def test_top_words_ties_in_column_order():
    tw = np.array([[0.25, 0.25, 0.25, 0.25], [0.0, 0.3, 0.3, 0.4]])
    np.testing.assert_array_equal(top_words(tw, n=2), [[0, 1], [3, 1]])


def test_npmi_hand_computed_topic():
    # topic: w0 > w1 > w2; pairs (0,1): P=2/5, P0=3/5, P1=2/5; (0,2): 1/5, 3/5, 2/5; (1,2): 1/5, 2/5, 2/5
    tw = np.array([[0.4, 0.3, 0.2, 0.05, 0.05, 0.0]])
    expected = (npmi_by_hand(0.4, 0.6, 0.4) + npmi_by_hand(0.2, 0.6, 0.4) + npmi_by_hand(0.2, 0.4, 0.4)) / 3
    assert expected == pytest.approx(0.194285, abs=1e-6)  # the same numbers, worked on paper
    got = npmi_coherence(tw, DOCS, n=3)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, rel=1e-12)


def test_npmi_several_topics_each_by_hand():
    tw = np.array([
        [0.4, 0.3, 0.2, 0.05, 0.05, 0.0],  # w0 w1 w2, as above
        [0.0, 0.1, 0.0, 0.5, 0.4, 0.0],    # w3 w4 w1: (3,4) 1/5 of 2/5 2/5; (3,1), (4,1) never together
        [0.0, 0.0, 0.3, 0.5, 0.0, 0.2],    # w3 w2 w5: (3,2) 1/5 of 2/5 2/5; w5 is in no document
    ])
    t0 = (npmi_by_hand(0.4, 0.6, 0.4) + npmi_by_hand(0.2, 0.6, 0.4) + npmi_by_hand(0.2, 0.4, 0.4)) / 3
    t1 = (npmi_by_hand(0.2, 0.4, 0.4) - 1 - 1) / 3
    t2 = (npmi_by_hand(0.2, 0.4, 0.4) - 1 - 1) / 3
    np.testing.assert_allclose(npmi_coherence(tw, DOCS, n=3), [t0, t1, t2], rtol=1e-12)


def test_npmi_word_in_no_document_scores_minus_one():
    tw = np.array([[0.0, 0.0, 0.0, 0.0, 0.4, 0.6]])  # w5 (no document) and w4
    assert npmi_coherence(tw, DOCS, n=2)[0] == -1.0


def test_npmi_pairs_in_every_document_and_independent():
    docs = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 1, 0]])
    # w0 and w1 in every document: P(w0, w1) = 1, NPMI 1 by definition
    assert npmi_coherence([[0.5, 0.4, 0.1]], docs, n=2)[0] == 1.0
    # w0 everywhere, w2 in half: P(w0, w2) = P(w2) = P(w0) P(w2): independent, NPMI 0
    assert npmi_coherence([[0.5, 0.1, 0.4]], docs, n=2)[0] == pytest.approx(0.0, abs=1e-15)


def test_npmi_sparse_dense_and_explicit_zeros_agree():
    X = sp.csr_matrix(DOCS)
    X.data[X.indices == 1] = 0.0  # explicit stored zeros: w1 is absent, not present
    tw = np.array([[0.4, 0.3, 0.2, 0.05, 0.05, 0.0]])
    dense = X.toarray()
    np.testing.assert_allclose(npmi_coherence(tw, X, n=3), npmi_coherence(tw, dense, n=3), rtol=1e-12)
    # with w1 gone: (0,1) and (1,2) never together
    expected = (-1 + npmi_by_hand(0.2, 0.6, 0.4) - 1) / 3
    assert npmi_coherence(tw, X, n=3)[0] == pytest.approx(expected, rel=1e-12)


def brute_force_npmi(tw: np.ndarray, X: np.ndarray, n: int) -> np.ndarray:
    B = X > 0
    N = X.shape[0]
    out = []
    for row in tw:
        top = sorted(range(len(row)), key=lambda w: (-row[w], w))[:n]
        vals = []
        for a, b in itertools.combinations(top, 2):
            joint = np.sum(B[:, a] & B[:, b]) / N
            if joint == 0:
                vals.append(-1.0)
            elif joint == 1:
                vals.append(1.0)
            else:
                vals.append(npmi_by_hand(joint, B[:, a].mean(), B[:, b].mean()))
        out.append(np.mean(vals))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_npmi_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    X = rng.poisson(0.3, (200, 40)) * (rng.random((200, 40)) < 0.5)
    X[:, 7] = 0  # a word in no document
    tw = rng.dirichlet(np.full(40, 0.3), size=6)
    np.testing.assert_allclose(npmi_coherence(tw, sp.csr_matrix(X), n=8), brute_force_npmi(tw, X, 8), rtol=1e-10)


def test_npmi_one_topic_and_bounds():
    rng = np.random.default_rng(3)
    X = rng.poisson(1.0, (50, 20))
    got = npmi_coherence(rng.random((1, 20)), X, n=5)
    assert got.shape == (1,)
    assert -1.0 <= got[0] <= 1.0


def test_npmi_bad_input():
    tw = np.ones((2, 6))
    with pytest.raises(InvalidParameterError, match="n=1"):
        npmi_coherence(tw, DOCS, n=1)
    with pytest.raises(InvalidParameterError, match="n=7"):
        npmi_coherence(tw, DOCS, n=7)
    with pytest.raises(DataError, match="5 word columns"):
        npmi_coherence(tw, DOCS[:, :5], n=2)
    with pytest.raises(DataError, match="no documents"):
        npmi_coherence(tw, DOCS[:0], n=2)
    with pytest.raises(DataError, match="NaN"):
        npmi_coherence(np.full((1, 6), np.nan), DOCS, n=2)
    with pytest.raises(DataError, match="shape"):
        npmi_coherence(np.ones(6), DOCS, n=2)


def test_topic_uniqueness_hand_computed():
    tw = np.array([
        [0.5, 0.4, 0.0, 0.0, 0.1],  # top2 w0 w1
        [0.0, 0.4, 0.5, 0.1, 0.0],  # w2 w1
        [0.0, 0.0, 0.1, 0.5, 0.4],  # w3 w4
    ])
    # cnt: w1 in 2 topics, the rest in 1: ((1 + 1/2) / 2 + (1 + 1/2) / 2 + 1) / 3
    assert topic_uniqueness(tw, n=2) == pytest.approx(2.5 / 3, rel=1e-12)


def test_topic_uniqueness_extremes():
    rng = np.random.default_rng(0)
    same = np.tile(rng.random(30), (4, 1))
    assert topic_uniqueness(same, n=10) == pytest.approx(1 / 4)
    distinct = np.kron(np.eye(3), np.ones(10)) + 0.01  # topic k heavy on words 10k..10k+9
    assert topic_uniqueness(distinct, n=10) == 1.0
    assert topic_uniqueness(rng.random((1, 30)), n=10) == 1.0  # K = 1


def test_topic_uniqueness_ties_use_column_order():
    flat = np.full((2, 5), 0.2)  # every weight tied: both topics pick w0, w1
    assert topic_uniqueness(flat, n=2) == 0.5


def test_match_topics_permutation_and_noise():
    rng = np.random.default_rng(0)
    true = rng.dirichlet(np.full(50, 0.1), size=5)
    perm = np.array([3, 0, 4, 1, 2])
    learned = true[perm] * 2.0  # scale does not change a cosine
    np.testing.assert_allclose(match_topics(true, learned), 1.0, rtol=1e-12)
    noisy = np.abs(learned + rng.normal(0, 0.02, learned.shape))
    got = match_topics(true, noisy)
    sim = (true / np.linalg.norm(true, axis=1, keepdims=True)) @ (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).T
    np.testing.assert_allclose(got, sim[np.arange(5), np.argsort(perm)], rtol=1e-12)


def test_match_topics_one_to_one():
    # both true topics are closest to learned 0; the matching gives one of them learned 1
    true = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0]])
    learned = np.array([[0.95, 0.05, 0.0], [0.0, 0.2, 1.0]])
    got = match_topics(true, learned)
    u = lambda v: np.asarray(v) / np.linalg.norm(v)  # noqa: E731
    best_total = max(u(true[0]) @ u(learned[0]) + u(true[1]) @ u(learned[1]),
                     u(true[0]) @ u(learned[1]) + u(true[1]) @ u(learned[0]))
    assert got.sum() == pytest.approx(best_total)
    assert min(got) < 0.3  # someone got the far topic


def test_match_topics_fewer_learned_and_zero_rows():
    true = np.eye(3)
    got = match_topics(true, np.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(got, [0.0, 0.0, 1.0])
    assert match_topics(np.array([[1.0, 2.0]]), np.zeros((1, 2)))[0] == 0.0  # K = 1, a zero row
    with pytest.raises(DataError, match="3 word columns"):
        match_topics(true, np.ones((3, 2)))
