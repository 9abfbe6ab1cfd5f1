"""Models to serve, and the real server as a subprocess on loopback.

Each model kind gets one server process for the whole session (started on a free
port of 127.0.0.1, waited for through /ping, stopped with SIGTERM at the end).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

import onepass
from onepass.algorithms import FactorizationMachinesState, KMeansState, LinearLearnerState, PCAState
from onepass.batch import Batch
from onepass.io import save_model

N_FEATURES = 5
HOST = "127.0.0.1"


def blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(7).normal(0, 4, (3, N_FEATURES))
    return (centers[rng.integers(0, 3, n)] + rng.standard_normal((n, N_FEATURES))).astype(np.float32)


def _linear(predictor_type: str) -> tuple[LinearLearnerState, Callable[[np.ndarray], np.ndarray]]:
    u = np.linspace(-1, 1, N_FEATURES)
    labels = {
        "binary_classifier": lambda X: (X @ u > 0).astype(np.float32),
        "multiclass_classifier": lambda X: np.digitize(X @ u, [-2.0, 2.0]).astype(np.float32),
        "regressor": lambda X: (X @ u).astype(np.float32),
    }[predictor_type]
    extra = {"num_classes": 3} if predictor_type == "multiclass_classifier" else {}
    state = LinearLearnerState(predictor_type=predictor_type, num_models=2, mini_batch_size=250, seed=0, **extra)
    return state, labels


def make_model(kind: str):  # noqa: ANN201
    """A small trained model of each served kind (Linear Learner in its three predictor types,
    Factorization Machines in its two)."""
    labels = None
    if kind == "kmeans":
        state = KMeansState(n_clusters=3, seed=0)
    elif kind == "pca":
        state = PCAState(n_components=2, seed=0)
    elif kind.startswith("fm-"):
        predictor_type = kind.removeprefix("fm-")
        state = FactorizationMachinesState(predictor_type, num_factors=3, num_models=2, seed=0)
        labels = _linear(predictor_type)[1]
    else:
        state, labels = _linear(kind.removeprefix("linear-"))
    X = blobs(3000, seed=1)
    for i in range(0, len(X), 1000):
        chunk = X[i : i + 1000]
        state.update(Batch(chunk, None if labels is None else labels(chunk)))
    return state.model()


LINEAR_KINDS = ("linear-binary_classifier", "linear-multiclass_classifier", "linear-regressor")
FM_KINDS = ("fm-binary_classifier", "fm-regressor")
KINDS = ("kmeans", "pca", *LINEAR_KINDS, *FM_KINDS)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-models")
    return {kind: save_model(root / kind, make_model(kind)) for kind in KINDS}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running ``onepass serve`` subprocess and a client for it."""

    proc: subprocess.Popen
    url: str
    model_dir: Path
    log: Path

    @property
    def model(self):  # noqa: ANN201
        return onepass.load(self.model_dir)

    def client(self, **kwargs) -> httpx.Client:  # noqa: ANN003
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def start_server(model_dir: Path, log: Path, *args: str) -> Server:
    port = free_port()
    fh = open(log, "wb")  # noqa: SIM115 (the process keeps it)
    proc = subprocess.Popen(
        [sys.executable, "-m", "onepass.cli", "serve", str(model_dir), "--host", HOST, "--port", str(port),
         "--log-level", "warning", *args],
        stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    server = Server(proc, f"http://{HOST}:{port}", model_dir, log)
    deadline = time.monotonic() + 60  # a bound on waiting, not a measurement
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"onepass serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.url + "/ping", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"onepass serve did not answer /ping:\n{log.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def servers(model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    logs = tmp_path_factory.mktemp("serve-logs")
    running = {kind: start_server(path, logs / f"{kind}.log") for kind, path in model_dirs.items()}
    yield running
    for server in running.values():
        assert server.stop() == 0, server.log.read_text()


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Server:
    return servers[request.param]
