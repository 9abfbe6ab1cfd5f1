"""The finalized Neural Topic Model: the encoder and the topics, in NumPy."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass.errors import DataError, FeatureCountError
from onepass.state import ArraySpec

__all__ = ["NTMModel"]

_BN_EPS = 1e-5  # torch's BatchNorm1d default
LOG_VAR_BOUND = 10.0  # the network's (``_network.LOG_VAR_BOUND``, not imported here: it imports torch)


def _activation(name: str, h: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * h))  # no overflow warnings for large |h|
    if name == "tanh":
        return np.tanh(h)
    if name == "relu":
        return np.maximum(h, 0.0)
    return np.logaddexp(0.0, h)  # softplus


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def check_counts(X: Any) -> None:
    """Raise a DataError naming the first row whose word count is negative, NaN or infinite
    (``X`` a 2-d float array or CSR matrix)."""
    values = X.data if sp.issparse(X) else X
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        row = int(np.searchsorted(X.indptr, first, side="right") - 1) if sp.issparse(X) else first // X.shape[1]
        raise DataError(f"row {row} of the batch has word count {values.ravel()[first]}: counts must be finite "
                        "and >= 0")


class NTMModel:
    """A finalized Neural Topic Model.

    ``transform`` (and ``predict``) give each document's topic weights: the softmax of
    the encoder's posterior mean, SageMaker's ``topic_weights``. Needs NumPy only.

    Attributes
    ----------
    topic_word_ : ndarray of shape (num_topics, n_features)
        Each topic's distribution over words (rows sum to 1), ``softmax(W_k + b)``: the
        words of a document made of topic ``k`` alone (LDA's ``beta``; the mixture
        decoder's background ``b`` is 0). For the product decoder, ``softmax(W_k)``
        alone (what topic ``k`` adds to the background) ranks more distinctive words.
    top_words_ : list of list of str or int
        Each topic's most probable words (strings when the vocabulary is known, column
        indices otherwise).
    vocabulary_ : ndarray of str or None
    n_rows_seen_ : int
    """

    kind: ClassVar[str] = "ntm"
    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {  # d words, k topics, e the width of the first layer
        "words": ArraySpec(("f4",), ("d", "e"), finite=True),
        "words_bias": ArraySpec(("f4",), ("e",), finite=True),
        "topics": ArraySpec(("f4",), ("k", "d"), finite=True),
        "background": ArraySpec(("f4",), ("d",), finite=True),
        "encoder__*": ArraySpec(("f4",), finite=True),
        "mean__weight": ArraySpec(("f4",), ("k", None), finite=True),
        "mean__bias": ArraySpec(("f4",), ("k",), finite=True),
        "log_var__weight": ArraySpec(("f4",), ("k", None), finite=True),
        "log_var__bias": ArraySpec(("f4",), ("k",), finite=True),
        "mean_norm__*": ArraySpec(("f4",), ("k",), finite=True),  # batch norm's running statistics
        "log_var_norm__*": ArraySpec(("f4",), ("k",), finite=True),
        "vocabulary": ArraySpec(("U",), (None,), required=False),
    }

    def __init__(self, arrays: dict[str, np.ndarray], *, num_topics: int, n_layers: int, activation: str,
                 batch_norm: bool, decoder: str, prior_variance: float = 1.0, vocabulary: np.ndarray | None = None,
                 top_words: int = 10, n_rows_seen: int = 0) -> None:
        self.arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
        self.num_topics = int(num_topics)
        self.n_layers = int(n_layers)
        self.activation = activation
        self.batch_norm = bool(batch_norm)
        self.decoder = decoder
        self.prior_variance = float(prior_variance)
        self.vocabulary_ = None if vocabulary is None else np.asarray(vocabulary, dtype=str)
        self.top_words = int(top_words)
        self.n_rows_seen_ = int(n_rows_seen)
        self._float64 = {k: v.astype(np.float64) for k, v in self.arrays.items() if k.startswith(("words", "encoder", "mean", "log_var"))}
        W, b = self.arrays["topics"].astype(np.float64), self.arrays["background"].astype(np.float64)
        self.topic_word_ = _softmax(W + b)
        top = np.argsort(-self.topic_word_, axis=1, kind="stable")[:, : self.top_words]
        self.top_words_ = [[str(self.vocabulary_[j]) for j in row] if self.vocabulary_ is not None
                           else [int(j) for j in row] for row in top]

    @property
    def n_features(self) -> int:
        return int(self.arrays["topics"].shape[1])

    def _check(self, X: Any) -> Any:
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=np.float32)
        else:
            X = np.asarray(X, dtype=np.float32)
            if X.ndim == 1:
                X = X.reshape(1, -1)
        if X.shape[1] != self.n_features:
            raise FeatureCountError(f"documents have {X.shape[1]} columns, but this NTM model's vocabulary has "
                                    f"{self.n_features} words")
        check_counts(X)
        return X

    def _norm(self, name: str, v: np.ndarray) -> np.ndarray:
        mean, var = self.arrays[f"{name}__running_mean"], self.arrays[f"{name}__running_var"]
        return (v - mean) / np.sqrt(var + _BN_EPS)

    def _encode(self, X: Any, batch_statistics: bool = False) -> tuple[np.ndarray, np.ndarray]:
        # in float64: float32 products round differently by a row's place in the block BLAS
        # takes it in (2e-7 relative), and a document's topics must not depend on its neighbours
        a = self._float64
        h = _activation(self.activation, np.asarray(X.astype(np.float64) @ a["words"]) + a["words_bias"])
        for i in range(1, self.n_layers):  # the encoder's linear layers after the first (its 0 is an activation)
            h = _activation(self.activation, h @ a[f"encoder__{2 * i - 1}__weight"].T + a[f"encoder__{2 * i - 1}__bias"])
        mean = h @ a["mean__weight"].T + a["mean__bias"]
        log_var = h @ a["log_var__weight"].T + a["log_var__bias"]
        if self.batch_norm and batch_statistics and mean.shape[0] >= 2:
            mean, log_var = (((v - v.mean(0)) / np.sqrt(v.var(0) + _BN_EPS)) for v in (mean, log_var))
        elif self.batch_norm:
            mean, log_var = self._norm("mean_norm", mean), self._norm("log_var_norm", log_var)
        return mean, np.clip(log_var, -LOG_VAR_BOUND, LOG_VAR_BOUND)  # as the network's

    def transform(self, X: Any) -> np.ndarray:
        """Topic weights of each document, shape (n_documents, num_topics), rows summing to 1."""
        X = self._check(X)
        return _softmax(self._encode(X)[0].astype(np.float64))

    def predict(self, X: Any) -> np.ndarray:
        """The topic weights (as :meth:`transform`)."""
        return self.transform(X)

    def outputs(self, X: Any) -> dict[str, np.ndarray]:
        """SageMaker's output: ``topic_weights``, one vector per document."""
        return {"topic_weights": self.transform(X)}

    def losses(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per document, at the posterior mean: the words' negative log-likelihood and the
        KL divergence from the prior (a Gaussian of variance ``prior_variance``).

        With batch norm, the documents evaluated are normalized by their own statistics,
        as training normalizes each step's documents and computes its loss: the running
        averages ``transform`` uses lag the network, and where the posterior's outputs
        vary little before normalization (a variance near 1e-4 on the bench's generated
        corpus) that lag put held-out documents' KL at 1e3 and more.
        """
        X = self._check(X)
        mean, log_var = (a.astype(np.float64) for a in self._encode(X, batch_statistics=True))
        theta = _softmax(mean)
        W, b = self.arrays["topics"].astype(np.float64), self.arrays["background"].astype(np.float64)
        if self.decoder == "product":
            logits = theta @ W + b
            if self.batch_norm:
                logits = self._norm("word_norm", logits)
            log_p = _log_softmax(logits)
        else:
            log_p = np.log(theta @ _softmax(W + b) + 1e-10)
        recon = -np.asarray((X.multiply(log_p)).sum(axis=1)).ravel() if sp.issparse(X) else -(X * log_p).sum(axis=1)
        v = self.prior_variance
        kl = 0.5 * ((np.exp(log_var) + mean * mean) / v - 1.0 - log_var + np.log(v)).sum(axis=1)
        return recon, kl

    def perplexity(self, X: Any) -> float:
        """exp(total loss / words): an upper bound of the documents' perplexity (NVDM's)."""
        recon, kl = self.losses(X)
        words = float(X.sum())
        return float(np.exp((recon + kl).sum() / max(words, 1e-12)))

    def evaluate(self, X: Any) -> dict[str, float]:
        """``total_loss`` (mean per document), ``perplexity``, ``npmi`` (mean over topics
        of their top-10 words' coherence over ``X``) and ``topic_uniqueness``."""
        from onepass.algorithms.ntm._quality import npmi_coherence, topic_uniqueness

        X = self._check(X)
        if X.shape[0] == 0:
            return {}
        recon, kl = self.losses(X)
        total = recon + kl
        words = float(X.sum())
        out = {"total_loss": float(total.mean()), "perplexity": float(np.exp(total.sum() / max(words, 1e-12)))}
        n = min(10, self.n_features)  # a vocabulary of fewer than 10 words: all of them
        if n >= 2:
            out["npmi"] = float(np.mean(npmi_coherence(self.topic_word_, X, n=n)))
            out["topic_uniqueness"] = float(topic_uniqueness(self.topic_word_, n=n))
        return out

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the perplexity of ``X`` (higher is better)."""
        return -self.perplexity(self._check(X))

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"num_topics": self.num_topics, "n_layers": self.n_layers, "activation": self.activation,
                "batch_norm": self.batch_norm, "decoder": self.decoder, "prior_variance": self.prior_variance,
                "top_words": self.top_words,
                "n_rows_seen": self.n_rows_seen_, "topics": self.top_words_}
        arrays = dict(self.arrays)
        if self.vocabulary_ is not None:
            arrays["vocabulary"] = self.vocabulary_
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> NTMModel:
        arrays = dict(arrays)
        vocabulary = arrays.pop("vocabulary", None)
        return cls(arrays, num_topics=meta["num_topics"], n_layers=meta["n_layers"], activation=meta["activation"],
                   batch_norm=meta["batch_norm"], decoder=meta["decoder"], prior_variance=meta["prior_variance"],
                   vocabulary=vocabulary,
                   top_words=meta["top_words"], n_rows_seen=meta["n_rows_seen"])
