"""Topic refresh: merge two topics that became one, split the topic that holds two.

A topic model trained by gradient steps settles in local optima where two learned
topics share one true topic while another learned topic holds two true topics (split-
and-merge EM's case, Ueda et al. 2000). On the bench's generated corpus (20 LDA topics
over 2,000 words, one pass over 100k documents), 3 of 4 starts ended so: 16 or 17 of
the 20 true topics found, the duplicated pairs at a centered cosine of 0.97-0.99 to
each other while every other pair of topics stayed below 0.15.

Every ``refresh_every`` documents the state looks for such a move on the documents of
the batch it has just learned from (NumPy only; the state applies it to its network):

1. **Merge**: the two topics most alike (cosine of their word distributions minus the
   topics' mean distribution). Below ``similarity`` there is no move. The one of the
   pair the documents use less is freed; the other stays as it is.
2. **Split**: the topic whose documents (those it weighs most) fall into the two most
   different groups, by spherical 2-means of their word counts and the cosine of the
   groups' word distributions: a topic holding two true topics splits into two
   groups unlike each other, a topic holding one into two alike. It and the freed one
   start again halfway between the old topic and each group's words.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

__all__ = ["TopicMove", "find_move"]

_MIN_SPLIT_DOCS = 8  # a topic needs at least these documents to be split
_KMEANS_ITERATIONS = 10


class TopicMove(NamedTuple):
    """Free topic ``freed`` (a duplicate of ``kept``) and split topic ``split`` into
    itself and ``freed``, whose word distributions start at ``split_words`` and
    ``freed_words`` (rows of probabilities)."""

    kept: int
    freed: int
    split: int
    split_words: np.ndarray
    freed_words: np.ndarray
    similarity: float


def most_alike(topic_word: np.ndarray) -> tuple[int, int, float]:
    """The two topics most alike, by the cosine of their distributions minus the mean one."""
    centered = topic_word - topic_word.mean(axis=0)
    centered /= np.maximum(np.linalg.norm(centered, axis=1, keepdims=True), 1e-300)
    sim = centered @ centered.T
    np.fill_diagonal(sim, -np.inf)
    i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
    return int(i), int(j), float(sim[i, j])


def _two_means(unit: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray | None:
    """Spherical 2-means of unit-length rows: each row's group (0 or 1), or None when a group is empty."""
    n = unit.shape[0]
    first = int(rng.integers(n))
    far = np.asarray(unit @ unit[first].T.toarray()).ravel()
    second = int(np.argmin(far))  # the document least like the first
    centers = np.vstack([unit[first].toarray(), unit[second].toarray()])
    group = None
    for _ in range(_KMEANS_ITERATIONS):
        new = np.asarray(unit @ centers.T).argmax(axis=1)
        if group is not None and np.array_equal(new, group):
            break
        group = new
        if group.min() == group.max():
            return None
        for g in (0, 1):
            c = np.asarray(unit[group == g].sum(axis=0)).ravel()
            centers[g] = c / max(np.linalg.norm(c), 1e-300)
    return group


def _split(X: sp.csr_matrix, rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Documents ``rows`` of ``X`` in two groups (spherical 2-means of their counts): the
    groups' word distributions and their cosine, or None when they make no two groups."""
    if rows.size < _MIN_SPLIT_DOCS:
        return None
    docs = sp.csr_matrix(X[rows], dtype=np.float64)
    norms = np.sqrt(np.asarray(docs.multiply(docs).sum(axis=1)).ravel())
    group = _two_means(sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-300)) @ docs), rng)
    if group is None:
        return None
    a, b = (np.asarray(docs[group == g].sum(axis=0)).ravel() for g in (0, 1))
    a, b = a / a.sum(), b / b.sum()
    return a, b, float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))


def find_move(topic_word: np.ndarray, theta: np.ndarray, X: sp.csr_matrix, rng: np.random.Generator,
              similarity: float) -> TopicMove | None:
    """The move for topics ``topic_word`` (K, V) on documents ``X`` (CSR counts) whose
    topic weights are ``theta`` (n, K), or None when no two topics are ``similarity``
    alike or no topic's documents make two groups."""
    i, j, sim = most_alike(topic_word)
    if sim < similarity:
        return None
    usage = theta.sum(axis=0)
    kept, freed = (i, j) if usage[i] >= usage[j] else (j, i)
    owner = theta.argmax(axis=1)
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None
    for k in range(topic_word.shape[0]):
        if k == freed:
            continue
        found = _split(X, np.flatnonzero(owner == k), rng)
        if found is not None and (best is None or found[2] < best[0]):
            best = (found[2], k, found[0], found[1])
    if best is None:
        return None
    _, split, a, b = best
    return TopicMove(kept, freed, split, 0.5 * topic_word[split] + 0.5 * a, 0.5 * topic_word[split] + 0.5 * b, sim)
