"""The Neural Topic Model's network (imported when a state builds it: it imports torch).

Encoder: word counts -> ``encoder_layers`` (linear + activation) -> the mean and log
variance of a Gaussian over ``num_topics`` dimensions (with ``batch_norm``, each
normalized by batch statistics, without scale or shift, as ProdLDA's). A draw ``z``
of it, softmaxed, is the document's topic mixture ``theta``. Decoder, by ``decoder``:

- ``"mixture"`` (GSM, Miao et al. 2017): ``theta @ softmax(W)``, LDA's mixture of
  topic-word distributions (the background ``b`` stays 0: each topic holds its own
  common words, as LDA's do);
- ``"product"`` (ProdLDA, Srivastava and Sutton 2017): word log-probabilities
  ``log_softmax(theta @ W + b)``, a product of experts over a learned background ``b``.

Documents come in sparse (:class:`Documents`: a mini-batch's CSR arrays as tensors) and
stay sparse: the first layer sums the rows of its ``(words, width)`` weight that a
document's words pick, scaled by their counts (``embedding_bag``), and the mixture's
reconstruction loss needs the words' probabilities only where a document has words. On
the bench's generated corpus (2,000 words, 20 topics, encoder [200, 100]) a step on 64
documents took 6.0 ms with them densified, about 3.6 ms so with the fused Adam of
``onepass.neural._optimizers`` (``/tmp/w/speed2.py``, best of 4).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ACTIVATIONS", "LOG_VAR_BOUND", "Documents", "NTMNetwork"]

#: the posterior's log variance is kept in [-bound, bound]: batch norm's running variance
#: of a log variance that hardly varies is tiny, and dividing by it at evaluation turned
#: held-out documents' KL into 1e36 (a perplexity of inf) on the bench's generated corpus
LOG_VAR_BOUND = 10.0

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus}


class Documents(NamedTuple):
    """A mini-batch of documents as CSR tensors: ``words`` (int64 column of each count),
    ``starts`` (int64 offset of each document's first count), ``counts`` (float32) and
    ``rows`` (int64 document of each count)."""

    words: torch.Tensor
    starts: torch.Tensor
    counts: torch.Tensor
    rows: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.starts.shape[0])

    @classmethod
    def from_dense(cls, x: torch.Tensor) -> Documents:
        """The nonzero counts of a dense ``(documents, words)`` tensor."""
        rows, words = torch.nonzero(x, as_tuple=True)
        starts = torch.searchsorted(rows, torch.arange(x.shape[0], device=x.device))
        return cls(words, starts, x[rows, words].to(torch.float32), rows)


class NTMNetwork(nn.Module):
    def __init__(self, n_features: int, num_topics: int, encoder_layers: list[int], activation: str,
                 batch_norm: bool, decoder: str, prior_alpha: float = 1.0) -> None:
        super().__init__()
        # the Laplace approximation of a symmetric Dirichlet(alpha) prior in the softmax
        # basis (Srivastava and Sutton 2017): mean 0, variance (1 - 2/K)/alpha + 1/(K alpha)
        k = num_topics
        self.prior_var = (1.0 - 2.0 / k) / prior_alpha + 1.0 / (k * prior_alpha) if k > 1 else 1.0
        # the first layer, (words, width): row j is what word j adds to a document's first hidden layer
        self.words = nn.Parameter(torch.empty(n_features, encoder_layers[0]))
        self.words_bias = nn.Parameter(torch.empty(encoder_layers[0]))
        layers: list[nn.Module] = [ACTIVATIONS[activation]()]
        width = encoder_layers[0]
        for h in encoder_layers[1:]:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        self.encoder = nn.Sequential(*layers)
        self.mean = nn.Linear(width, num_topics)
        self.log_var = nn.Linear(width, num_topics)
        self.topics = nn.Parameter(torch.empty(num_topics, n_features))  # W: topic x word
        self.background = nn.Parameter(torch.empty(n_features))          # b
        self.decoder = decoder
        if decoder == "mixture":
            self.background.requires_grad_(False)  # stays 0: softmax(W + b) is softmax(W)
        self.batch_norm = batch_norm
        if batch_norm:
            self.mean_norm = nn.BatchNorm1d(num_topics, affine=False)
            self.log_var_norm = nn.BatchNorm1d(num_topics, affine=False)
            if decoder == "product":
                self.word_norm = nn.BatchNorm1d(n_features, affine=False)

    def encode(self, docs: Documents) -> tuple[torch.Tensor, torch.Tensor]:
        first = F.embedding_bag(docs.words, self.words, docs.starts, mode="sum", per_sample_weights=docs.counts)
        h = self.encoder(first + self.words_bias)
        mean, log_var = self.mean(h), self.log_var(h)
        if self.batch_norm:
            mean, log_var = self.mean_norm(mean), self.log_var_norm(log_var)
        return mean, log_var.clamp(-LOG_VAR_BOUND, LOG_VAR_BOUND)

    def _word_log_probs(self, theta: torch.Tensor, docs: Documents) -> torch.Tensor:
        """log p(word | theta) at each count of ``docs``."""
        if self.decoder == "product":
            logits = theta @ self.topics + self.background
            if self.batch_norm:
                logits = self.word_norm(logits)
            return torch.log_softmax(logits, dim=1)[docs.rows, docs.words]
        word_topic = torch.softmax(self.topics, dim=1).t().contiguous()  # word x topic (the background is 0)
        p = (theta.index_select(0, docs.rows) * word_topic.index_select(0, docs.words)).sum(dim=1)
        return torch.log(p + 1e-10)

    def losses(self, docs: Documents, noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per document: the reconstruction loss (negative log-likelihood of its words)
        and the KL divergence of its posterior from the prior. ``noise`` None uses the
        posterior mean (evaluation)."""
        mean, log_var = self.encode(docs)
        z = mean if noise is None else mean + torch.exp(0.5 * log_var) * noise
        theta = torch.softmax(z, dim=1)
        word_nll = -docs.counts * self._word_log_probs(theta, docs)
        recon = torch.zeros(docs.n, dtype=word_nll.dtype, device=word_nll.device).index_add_(0, docs.rows, word_nll)
        v = self.prior_var
        kl = 0.5 * ((torch.exp(log_var) + mean * mean) / v - 1.0 - log_var + math.log(v)).sum(dim=1)
        return recon, kl
