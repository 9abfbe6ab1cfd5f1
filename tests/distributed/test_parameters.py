"""The parameter server and the ParameterState protocol, without Ray."""

from __future__ import annotations

import numpy as np
import pytest

from onepass.batch import Batch
from onepass.distributed._parameters import (
    ParameterServer,
    ParameterState,
    check_parameter_state,
    parameter_delta,
)
from onepass.errors import IncompatibleStateError, InvalidParameterError
from onepass.state import get_algorithm


def test_server_adds_pushes_and_takes_back_a_lost_piece():
    server = ParameterServer({"w": np.zeros(3, dtype=np.float32)})
    assert server.push("a", {"w": np.ones(3)}) == 1
    assert server.push("b", {"w": np.full(3, 2.0)}, scale=0.5) == 2
    server.push("a", {"w": np.ones(3)})
    params, version = server.pull()
    assert params["w"].dtype == np.float32 and version == 3
    np.testing.assert_array_equal(params["w"], [3, 3, 3])
    np.testing.assert_array_equal(server.committed()["w"], [0, 0, 0])  # nothing merged yet
    server.commit("b")
    np.testing.assert_array_equal(server.committed()["w"], [1, 1, 1])
    server.discard("a")  # a's worker died: both its pushes go
    np.testing.assert_array_equal(server.pull()[0]["w"], [1, 1, 1])
    assert server.stats()["pieces_running"] == 0 and server.stats()["pushes_discarded"] == 2
    # a push the dead worker sent before dying, arriving after the discard, is refused
    assert server.push("a", {"w": np.ones(3)}) == server.stats()["version"]
    np.testing.assert_array_equal(server.pull()[0]["w"], [1, 1, 1])
    assert server.stats()["pushes_refused"] == 1 and server.stats()["pieces_running"] == 0
    with pytest.raises(IncompatibleStateError):
        server.push("c", {"v": np.ones(3)})


def test_model_averaging_replaces_alone_and_averages_beside_others():
    """``average``: the server moves 1/(1+others) of the way to a pushed model, so models
    trained from the same parameters end as their mean and one trained alone is taken whole
    (not halved towards where it started, which left DeepAR on two Ray workers at 3-8 times
    the single-process loss depending on which worker finished first)."""
    server = ParameterServer({"w": np.zeros(2, dtype=np.float32)})
    _, v = server.pull()
    server.push("a", {"w": np.array([4.0, 0.0])}, scale=0.5, seen=v)  # alone so far: taken whole
    np.testing.assert_array_equal(server.pull()[0]["w"], [4, 0])
    server.push("b", {"w": np.array([0.0, 2.0])}, scale=0.5, seen=v)  # from the same start: the mean
    np.testing.assert_array_equal(server.pull()[0]["w"], [2, 1])
    params, v = server.pull()
    server.push("c", {"w": np.array([3.0, 3.0])}, scale=0.5, seen=v)  # alone again
    np.testing.assert_array_equal(server.pull()[0]["w"], [3, 3])
    server.discard("c")  # a lost piece's step is taken back
    np.testing.assert_array_equal(server.pull()[0]["w"], [2, 1])
    # never less than the scale asked for, however many pushed meanwhile
    server2 = ParameterServer({"w": np.zeros(1, dtype=np.float32)})
    for key in "xyz":
        server2.push(key, {"w": np.zeros(1)})
    server2.push("late", {"w": np.array([8.0])}, scale=0.5, seen=0)
    np.testing.assert_array_equal(server2.pull()[0]["w"], [4])


def test_pca_exact_parameters_round_trip_and_add_up():
    rng = np.random.default_rng(0)
    X = rng.normal(5, 2, (300, 4)).astype(np.float32)
    cls = get_algorithm("pca").state
    whole, a, b = cls(2), cls(2), cls(2)
    whole.update(Batch(X))
    assert isinstance(whole, ParameterState) and a.parameters() is None
    a.update(Batch(X[:100]))
    b.update(Batch(X[100:]))
    server = ParameterServer(a.parameters())
    empty = {k: np.zeros_like(v) for k, v in a.parameters().items()}
    server.push("b", parameter_delta(b.parameters(), empty))
    fresh = cls(2)
    fresh.set_parameters(server.pull()[0])
    assert fresh.n_rows_seen_ == 0  # counts are not parameters
    np.testing.assert_allclose(fresh.mean_, whole.mean_, rtol=1e-7)  # float32 sums of the shifted rows
    np.testing.assert_allclose(fresh.scatter_, whole.scatter_, rtol=1e-6,  # float32 batch products
                               atol=1e-6 * np.abs(whole.scatter_).max())


def test_states_without_the_protocol_are_refused():
    with pytest.raises(InvalidParameterError, match="merge"):
        check_parameter_state(get_algorithm("kmeans").state, "parameter-server")
    sketch = get_algorithm("pca").state(2, mode="sketch")
    with pytest.raises(IncompatibleStateError, match="sketch"):
        sketch.parameters()
    exact = get_algorithm("pca").state(2)
    with pytest.raises(InvalidParameterError, match="average"):
        check_parameter_state(exact, "average")
