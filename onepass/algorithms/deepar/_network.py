"""DeepAR's network in torch: category embeddings, an LSTM over the steps, and a linear
head giving the likelihood's arguments at each step; the negative log-likelihoods.

Imported only when a state trains (torch is not needed to forecast: ``_model.py``
runs the same network in NumPy).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from onepass.algorithms.deepar._likelihoods import LIKELIHOODS, MIN_POSITIVE

__all__ = ["DeepARNetwork", "negative_log_likelihood"]


class DeepARNetwork(nn.Module):
    """``n_inputs`` numbers per step (lags, time features, covariates, the log of the
    scale) and one embedding per categorical feature go into ``num_layers`` LSTM layers
    of ``num_cells``; ``head`` gives the likelihood's arguments."""

    def __init__(self, n_inputs: int, cardinality: list[int], embedding_dims: list[int], num_cells: int,
                 num_layers: int, dropout_rate: float, likelihood: str) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cardinality, embedding_dims, strict=True))
        width = n_inputs + sum(embedding_dims)
        self.rnn = nn.LSTM(width, num_cells, num_layers, dropout=dropout_rate if num_layers > 1 else 0.0,
                           batch_first=True)
        self.head = nn.Linear(num_cells, LIKELIHOODS[likelihood])

    def forward(self, inputs: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        """Arguments (rows, steps, n_args) for ``inputs`` (rows, steps, n_inputs) and ``cat`` (rows, n_cat)."""
        if len(self.embeddings):
            static = torch.cat([e(cat[:, j]) for j, e in enumerate(self.embeddings)], dim=1)
            inputs = torch.cat([inputs, static[:, None, :].expand(-1, inputs.shape[1], -1)], dim=2)
        out, _ = self.rnn(inputs)
        return self.head(out)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x) + MIN_POSITIVE


def negative_log_likelihood(likelihood: str, h: torch.Tensor, y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per step: -log p(y) under the distribution of arguments ``h`` (..., n_args), for
    series of scale ``scale`` (broadcast against ``y``); constants in the scale dropped."""
    if likelihood == "gaussian":
        z = (y / scale - h[..., 0]) / (sigma := _softplus(h[..., 1]))
        return 0.5 * z * z + torch.log(sigma) + 0.5 * math.log(2 * math.pi)
    if likelihood == "student-T":
        sigma, nu = _softplus(h[..., 1]), 2.0 + _softplus(h[..., 2])
        z = (y / scale - h[..., 0]) / sigma
        return -(torch.lgamma((nu + 1) / 2) - torch.lgamma(nu / 2) - 0.5 * torch.log(math.pi * nu) - torch.log(sigma)
                 - (nu + 1) / 2 * torch.log1p(z * z / nu))
    if likelihood == "negative-binomial":
        mu = _softplus(h[..., 0]) * scale
        r = 1.0 / (_softplus(h[..., 1]) / torch.sqrt(scale))
        return -(torch.lgamma(y + r) - torch.lgamma(y + 1) - torch.lgamma(r) + r * torch.log(r / (r + mu))
                 + y * torch.log(mu / (r + mu)))
    if likelihood == "beta":
        a, b = _softplus(h[..., 0]), _softplus(h[..., 1])
        yc = y.clamp(1e-6, 1 - 1e-6)
        return -((a - 1) * torch.log(yc) + (b - 1) * torch.log1p(-yc) + torch.lgamma(a + b) - torch.lgamma(a)
                 - torch.lgamma(b))
    return (y / scale - h[..., 0]).abs()  # deterministic-L1

