"""DeepAR's likelihoods on the NumPy side: from the network's outputs to the distribution's
arguments, and samples of it (the model forecasts with NumPy alone; ``_network.py`` has
the same transforms and the negative log-likelihoods in torch).

Each likelihood reads ``n_args`` numbers per step (``LIKELIHOODS``). Positive arguments
go through softplus (plus a floor). Gaussian and Student's t live in the series' scaled
space (the network sees values divided by the series' scale; samples are multiplied
back); the negative binomial's mean is scaled up and its dispersion down by the root of
the scale (counts stay counts); beta (values in (0, 1)) is not scaled; deterministic-L1
predicts the value itself, scaled.
"""

from __future__ import annotations

import numpy as np

from onepass.errors import InvalidParameterError

__all__ = ["LIKELIHOODS", "check_likelihood", "sample"]

#: likelihood -> arguments per step
LIKELIHOODS = {"student-T": 3, "gaussian": 2, "negative-binomial": 2, "beta": 2, "deterministic-L1": 1}
MIN_POSITIVE = 1e-6


def check_likelihood(name: str) -> str:
    if name not in LIKELIHOODS:
        raise InvalidParameterError(f"likelihood={name!r} is not one of {', '.join(LIKELIHOODS)}")
    return name


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x) + MIN_POSITIVE


def sample(likelihood: str, h: np.ndarray, scale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of the distribution whose network outputs are ``h`` (rows, n_args),
    for rows of scale ``scale``."""
    h = h.astype(np.float64)
    s = scale.astype(np.float64)
    if likelihood == "gaussian":
        return (h[:, 0] + _softplus(h[:, 1]) * rng.standard_normal(len(h))) * s
    if likelihood == "student-T":
        nu = 2.0 + _softplus(h[:, 2])
        return (h[:, 0] + _softplus(h[:, 1]) * rng.standard_t(nu)) * s
    if likelihood == "negative-binomial":
        mu = _softplus(h[:, 0]) * s
        r = 1.0 / (_softplus(h[:, 1]) / np.sqrt(s))
        return rng.negative_binomial(r, r / (r + mu)).astype(np.float64)
    if likelihood == "beta":
        return rng.beta(_softplus(h[:, 0]), _softplus(h[:, 1]))
    return h[:, 0] * s  # deterministic-L1
