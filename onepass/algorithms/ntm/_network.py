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
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "LOG_VAR_BOUND", "NTMNetwork"]

#: the posterior's log variance is kept in [-bound, bound]: batch norm's running variance
#: of a log variance that hardly varies is tiny, and dividing by it at evaluation turned
#: held-out documents' KL into 1e36 (a perplexity of inf) on the bench's generated corpus
LOG_VAR_BOUND = 10.0

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus}


class NTMNetwork(nn.Module):
    def __init__(self, n_features: int, num_topics: int, encoder_layers: list[int], activation: str,
                 batch_norm: bool, decoder: str, prior_alpha: float = 1.0) -> None:
        super().__init__()
        # the Laplace approximation of a symmetric Dirichlet(alpha) prior in the softmax
        # basis (Srivastava and Sutton 2017): mean 0, variance (1 - 2/K)/alpha + 1/(K alpha)
        k = num_topics
        self.prior_var = (1.0 - 2.0 / k) / prior_alpha + 1.0 / (k * prior_alpha) if k > 1 else 1.0
        layers: list[nn.Module] = []
        width = n_features
        for h in encoder_layers:
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

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mean, log_var = self.mean(h), self.log_var(h)
        if self.batch_norm:
            mean, log_var = self.mean_norm(mean), self.log_var_norm(log_var)
        return mean, log_var.clamp(-LOG_VAR_BOUND, LOG_VAR_BOUND)

    def word_log_probs(self, theta: torch.Tensor) -> torch.Tensor:
        if self.decoder == "product":
            logits = theta @ self.topics + self.background
            if self.batch_norm:
                logits = self.word_norm(logits)
            return torch.log_softmax(logits, dim=1)
        beta = torch.softmax(self.topics + self.background, dim=1)
        return torch.log(theta @ beta + 1e-10)

    def losses(self, x: torch.Tensor, noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per document: the reconstruction loss (negative log-likelihood of its words)
        and the KL divergence of its posterior from the standard normal prior. ``noise``
        None uses the posterior mean (evaluation)."""
        mean, log_var = self.encode(x)
        z = mean if noise is None else mean + torch.exp(0.5 * log_var) * noise
        theta = torch.softmax(z, dim=1)
        recon = -(x * self.word_log_probs(theta)).sum(dim=1)
        v = self.prior_var
        kl = 0.5 * ((torch.exp(log_var) + mean * mean) / v - 1.0 - log_var + math.log(v)).sum(dim=1)
        return recon, kl
