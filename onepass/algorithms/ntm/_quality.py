"""Quality of topics: top words, NPMI coherence, topic uniqueness, recovery of known topics.

One set of functions measures every topic model the same way: the Neural Topic Model's
own scoring and the benchmark's anchors (scikit-learn's and gensim's LDA) call these,
each with its topic-word matrix, a ``(K, V)`` array whose row ``k`` weighs the
vocabulary in topic ``k`` (probabilities, or any nonnegative weights: only their order,
or for :func:`match_topics` their direction, matters).

NumPy and SciPy only: no torch, so the measures load where the models do not.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from onepass.errors import DataError, InvalidParameterError

__all__ = ["co_document_counts", "match_topics", "npmi_coherence", "npmi_from_counts", "top_word_columns", "top_words",
           "topic_uniqueness"]


def _topic_word(topic_word, name: str = "topic_word") -> np.ndarray:
    tw = np.asarray(topic_word)
    if tw.ndim != 2 or tw.shape[0] < 1 or tw.shape[1] < 1:
        raise DataError(f"{name} must be a (n_topics, n_words) array with at least one of each, got shape "
                        f"{tw.shape}")
    if not np.issubdtype(tw.dtype, np.number) or not np.all(np.isfinite(tw)):
        raise DataError(f"{name} must hold finite numbers; found {'NaN or inf' if np.issubdtype(tw.dtype, np.number) else tw.dtype}")
    return tw


def _check_n(n, n_words: int, least: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not least <= n <= n_words:
        raise InvalidParameterError(f"n={n!r} top words: expected an integer from {least} to the vocabulary "
                                    f"size {n_words}; choose a smaller n or pass the full topic-word matrix")
    return int(n)


def top_words(topic_word, n: int = 10) -> np.ndarray:
    """The ``n`` heaviest words of each topic, heaviest first.

    Parameters
    ----------
    topic_word : array-like of shape (n_topics, n_words)
        Each row weighs the vocabulary in one topic.
    n : int, default=10
        Words per topic, from 1 to ``n_words``.

    Returns
    -------
    ndarray of shape (n_topics, n), int
        Column indices of each topic's top words, by decreasing weight; equal weights
        keep the order of their columns (lower index first), so the result is the
        same on every machine.

    Examples
    --------
    >>> top_words([[0.1, 0.6, 0.3], [0.5, 0.0, 0.5]], n=2)
    array([[1, 2],
           [0, 2]])
    """
    tw = _topic_word(topic_word)
    n = _check_n(n, tw.shape[1])
    # a stable sort of the negated weights: ties in column order, deterministic
    return np.argsort(-tw, axis=1, kind="stable")[:, :n].astype(np.intp, copy=False)


def npmi_coherence(topic_word, X_docs, n: int = 10) -> np.ndarray:
    """NPMI coherence of each topic's top words over a set of documents.

    For each pair of a topic's ``n`` top words ``wi, wj``, with document frequencies
    over the ``N`` documents (a word occurs in a document when its count is above 0),
    ``P(w) = df(w) / N`` and ``P(wi, wj) = df(wi, wj) / N``::

        NPMI(wi, wj) = log(P(wi, wj) / (P(wi) P(wj))) / -log P(wi, wj)

    from -1 (never together) through 0 (independent) to 1 (always together). A pair
    that never occurs together scores -1 (the limit), a pair in every document 1. A
    topic's coherence is the mean over its ``n (n - 1) / 2`` pairs.

    Parameters
    ----------
    topic_word : array-like of shape (n_topics, n_words)
        Each row weighs the vocabulary in one topic.
    X_docs : scipy sparse matrix or array-like of shape (n_docs, n_words)
        Word counts (or any nonnegative weights) of the reference documents, usually
        held out from training.
    n : int, default=10
        Top words per topic, from 2 to ``n_words``.

    Returns
    -------
    ndarray of shape (n_topics,), float64
        Mean NPMI of each topic's top-word pairs.

    Notes
    -----
    Only the columns of the words in some topic's top ``n`` are read (at most
    ``n_topics * n``), binarized, and multiplied once (``B.T @ B``, one sparse
    product) for every pair's co-document count: time O(nnz of those columns +
    (n_topics n)^2), memory O((n_topics n)^2). Bouma (2009), "Normalized (pointwise)
    mutual information in collocation extraction"; as a topic measure, Lau, Newman and
    Baldwin (2014), "Machine reading tea leaves".

    Examples
    --------
    >>> docs = [[1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]]
    >>> topics = [[0.5, 0.4, 0.1], [0.1, 0.2, 0.7]]
    >>> npmi_coherence(topics, docs, n=2).round(4)
    array([ 0.415 , -0.2925])
    """
    tw = _topic_word(topic_word)
    n = _check_n(n, tw.shape[1], least=2)
    if sp.issparse(X_docs):
        X = sp.csr_array(X_docs)
    else:
        X = np.asarray(X_docs)
        if X.ndim != 2:
            raise DataError(f"X_docs must be a 2-D (n_docs, n_words) matrix, got shape {X.shape}")
    if X.shape[1] != tw.shape[1]:
        raise DataError(f"X_docs has {X.shape[1]} word columns but topic_word has {tw.shape[1]}; both must "
                        "use the same vocabulary")
    n_docs = X.shape[0]
    if n_docs == 0:
        raise DataError("X_docs holds no documents; NPMI needs at least one")

    words, where = top_word_columns(tw, n)
    return npmi_from_counts(co_document_counts(X, words), n_docs, where)


def top_word_columns(topic_word, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The columns NPMI reads: ``words``, the distinct columns among the topics' top
    ``n``, sorted, and ``where``, shape (n_topics, n), each top word's position in
    ``words``. Only these columns' co-document counts are needed, so a stream of
    documents can be counted batch by batch (:func:`co_document_counts`) in memory
    O((n_topics n)^2) and scored once (:func:`npmi_from_counts`)."""
    tw = _topic_word(topic_word)
    n = _check_n(n, tw.shape[1], least=2)
    words, where = np.unique(top_words(tw, n), return_inverse=True)
    return words, where.reshape(tw.shape[0], n)


def co_document_counts(X_docs, words: np.ndarray) -> np.ndarray:
    """``(len(words), len(words))`` float64: in how many documents of ``X_docs`` each pair
    of the columns ``words`` both occur (count above 0); the diagonal is each word's
    document frequency. Counts of two sets of documents add up."""
    if sp.issparse(X_docs):
        B = sp.csr_array(X_docs)[:, words].tocsr()
        B.data = (B.data > 0).astype(np.float64)
        B.eliminate_zeros()
        return np.asarray((B.T @ B).toarray(), dtype=np.float64)
    Bd = (np.asarray(X_docs)[:, words] > 0).astype(np.float64)
    return Bd.T @ Bd


def npmi_from_counts(co: np.ndarray, n_docs: int, where: np.ndarray) -> np.ndarray:
    """Each topic's mean NPMI over its top-word pairs (:func:`npmi_coherence`), from the
    co-document counts ``co`` of ``n_docs`` documents and the positions ``where``
    (:func:`top_word_columns`)."""
    # float64 counts are exact up to 2^53 documents
    df = np.diag(co)
    i, j = np.triu_indices(where.shape[1], k=1)
    a, b = where[:, i], where[:, j]  # (n_topics, n_pairs) positions in `words`
    joint = co[a, b] / n_docs
    pa, pb = df[a] / n_docs, df[b] / n_docs
    with np.errstate(divide="ignore", invalid="ignore"):
        npmi = np.log(joint / (pa * pb)) / -np.log(joint)
    npmi = np.where(joint <= 0, -1.0, np.where(joint >= 1, 1.0, npmi))
    return npmi.mean(axis=1)


def topic_uniqueness(topic_word, n: int = 10) -> float:
    """Topic uniqueness: how little the topics' top words repeat across topics.

    ``TU = (1/K) sum_k (1/n) sum_{w in top_n(k)} 1 / cnt(w)``, where ``cnt(w)`` is the
    number of topics whose top ``n`` words hold ``w``: 1 when no word is shared, ``1/K``
    when every topic has the same top words.

    Parameters
    ----------
    topic_word : array-like of shape (n_topics, n_words)
        Each row weighs the vocabulary in one topic.
    n : int, default=10
        Top words per topic, from 1 to ``n_words``.

    Returns
    -------
    float
        Topic uniqueness, in ``[1/K, 1]``.

    Notes
    -----
    Nan, Ding, Nallapati and Xiang (2019), "Topic modeling with Wasserstein
    autoencoders", the measure SageMaker's Neural Topic Model reports. Time
    O(K V log V) for the top words, memory O(K V).

    Examples
    --------
    >>> topic_uniqueness([[0.6, 0.3, 0.1, 0.0], [0.0, 0.1, 0.3, 0.6]], n=2)
    1.0
    >>> topic_uniqueness([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]], n=2)
    0.5
    """
    tw = _topic_word(topic_word)
    top = top_words(tw, n)
    cnt = np.bincount(top.ravel(), minlength=tw.shape[1])
    return float(np.mean(1.0 / cnt[top]))


def match_topics(true_topic_word, learned_topic_word) -> np.ndarray:
    """Cosine similarity of each known topic to the learned topic matched to it one to one.

    The matching maximizes the total cosine similarity with the Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`), so two known topics never claim the
    same learned one.

    Parameters
    ----------
    true_topic_word : array-like of shape (n_true, n_words)
        The known (generating) topics.
    learned_topic_word : array-like of shape (n_learned, n_words)
        The learned topics, over the same vocabulary.

    Returns
    -------
    ndarray of shape (n_true,), float64
        Cosine of each known topic to its matched learned topic, in the order of
        ``true_topic_word``. With fewer learned topics than known ones, the known
        topics left unmatched score 0; an all-zero row has cosine 0 with everything.

    Notes
    -----
    Time O(n_true n_learned V + max(n_true, n_learned)^3), memory O(n_true n_learned).

    Examples
    --------
    >>> true = [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    >>> learned = [[0.0, 0.1, 0.45, 0.45], [0.5, 0.5, 0.0, 0.0]]
    >>> match_topics(true, learned).round(4)
    array([1.    , 0.9879])
    """
    from scipy.optimize import linear_sum_assignment

    t = _topic_word(true_topic_word, "true_topic_word").astype(np.float64)
    learned = _topic_word(learned_topic_word, "learned_topic_word").astype(np.float64)
    if t.shape[1] != learned.shape[1]:
        raise DataError(f"true_topic_word has {t.shape[1]} word columns but learned_topic_word has "
                        f"{learned.shape[1]}; both must use the same vocabulary")

    def unit(m: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(m, axis=1, keepdims=True)
        return np.divide(m, norm, out=np.zeros_like(m), where=norm > 0)

    sim = unit(t) @ unit(learned).T
    rows, cols = linear_sum_assignment(sim, maximize=True)
    out = np.zeros(t.shape[0])
    out[rows] = sim[rows, cols]
    return out
