"""The torch foundation (onepass.neural) through its first user, the NTM state: every
optimizer's moments survive a checkpoint exactly, merge is the rows-weighted average,
states of one configuration start from one network, clipping and rescaling bound a step,
device and threads follow the settings, and torch is imported only when a network is built."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from onepass.algorithms.ntm import NTMState
from onepass.batch import Batch
from onepass.errors import IncompatibleStateError, InvalidParameterError
from onepass.io import load_checkpoint, save_checkpoint
from onepass.neural import EarlyStopping
from onepass.neural._device import resolve_device, set_threads
from onepass.neural._optimizers import OPTIMIZERS

torch = pytest.importorskip("torch")


def counts(n: int, seed: int, d: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    profiles = np.random.default_rng(99).dirichlet(np.full(d, 0.3), size=3)
    return np.vstack([rng.multinomial(20, profiles[k]) for k in rng.integers(0, 3, n)]).astype(np.float32)


def small(**more) -> NTMState:  # noqa: ANN003
    return NTMState(3, **{"mini_batch_size": 16, "max_validation_rows": 20, **more})


def feed(state: NTMState, X: np.ndarray, size: int = 100) -> NTMState:
    for i in range(0, len(X), size):
        state.update(Batch(X[i:i + size]))
    return state


def arrays_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_resumes_bit_for_bit_from_a_checkpoint(optimizer: str) -> None:
    X = counts(600, 0)
    straight = feed(small(optimizer=optimizer, seed=1), X[:300])
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(tmp, straight)
        resumed, _ = load_checkpoint(tmp)
    moments = [k for k in straight.to_arrays()[1] if k.startswith("opt__")]
    if optimizer != "sgd":  # plain SGD keeps no moment
        assert moments, f"{optimizer}: no optimizer moment in the arrays"
    feed(straight, X[300:])
    feed(resumed, X[300:])
    arrays_equal(straight.to_arrays()[1], resumed.to_arrays()[1])
    before = small(optimizer=optimizer, seed=1)
    feed(before, X[:300])
    assert not np.array_equal(before.to_arrays()[1]["param__topics"], straight.to_arrays()[1]["param__topics"])


def test_merge_is_the_rows_weighted_average_of_parameters_and_moments() -> None:
    a = feed(small(seed=1), counts(400, 1))
    b = feed(small(seed=2), counts(100, 2))
    pa, pb = a.to_arrays()[1], b.to_arrays()[1]
    pb = a._aligned(pa, pb)  # b's topics in a's order (see the next test)
    a.merge(b)
    merged = a.to_arrays()[1]
    assert a.n_rows_seen_ == 500
    for key in pa:
        if key.startswith(("param__", "opt__")):
            expected = 0.8 * pa[key].astype(np.float64) + 0.2 * pb[key].astype(np.float64)
            np.testing.assert_allclose(merged[key], expected, rtol=1e-6, atol=1e-7, err_msg=key)
    with pytest.raises(IncompatibleStateError, match="num_topics"):
        a.merge(feed(NTMState(4, mini_batch_size=16, max_validation_rows=20, seed=0), counts(50, 3)))


def test_merge_pairs_each_topic_with_its_match_before_averaging() -> None:
    """Topics are exchangeable: a state holding a's topics in another order (and the
    encoder outputs, statistics and moments that go with them) merges back into a."""
    a = feed(small(seed=1), counts(400, 1))
    meta, arrays = a.to_arrays()
    order = np.array([2, 0, 1])
    topical = ("topics", "mean__", "log_var__", "mean_norm__", "log_var_norm__")
    moved = {k: (np.asarray(v)[order] if k.partition("__")[2].startswith(topical) and np.ndim(v) >= 1 else v)
             for k, v in arrays.items()}
    assert not np.array_equal(moved["param__topics"], arrays["param__topics"])
    b = NTMState.from_arrays(meta, moved)
    a.merge(b)
    merged = a.to_arrays()[1]
    for key in arrays:
        if key.startswith(("param__", "opt__", "buffer__")):
            np.testing.assert_allclose(merged[key], arrays[key], rtol=1e-6, atol=1e-6, err_msg=key)


def test_a_state_that_has_not_started_becomes_a_copy_on_merge() -> None:
    b = feed(small(seed=2), counts(200, 2))
    a = small(seed=5)
    a.merge(b)
    arrays_equal(a.to_arrays()[1], b.to_arrays()[1])
    assert a.seed == 5 and a.n_rows_seen_ == 200


def test_one_configuration_starts_from_one_network_and_the_seed_drives_the_noise() -> None:
    X = counts(300, 4)
    a, b, c = small(seed=1), small(seed=1), small(seed=2)
    for s in (a, b, c):
        s.update(Batch(X[:1]))  # builds the network; one row, held out
    arrays_equal(a.to_arrays()[1], c.to_arrays()[1])  # same start whatever the seed
    for s in (a, b, c):
        feed(s, X[1:])
    arrays_equal(a.to_arrays()[1], b.to_arrays()[1])
    assert not np.array_equal(a.to_arrays()[1]["param__topics"], c.to_arrays()[1]["param__topics"])


def test_clip_gradient_bounds_each_value_of_a_step_and_rescale_scales_it() -> None:
    X = counts(64, 5)
    # builds the network; an empty document: no step (one document steps only without batch norm)
    empty = Batch(np.zeros((1, 12), np.float32))

    def one_step(**more):  # noqa: ANN003, ANN202
        state = small(optimizer="sgd", learning_rate=1.0, validation_fraction=0.0, batch_norm=False, seed=0, **more)
        state.update(empty)
        state.update(Batch(X[:1]))
        return state

    base = small(optimizer="sgd", learning_rate=1.0, validation_fraction=0.0, batch_norm=False, seed=0)
    base.update(empty)
    start = base.parameters()
    base.update(Batch(X[:1]))
    clipped = one_step(clip_gradient=1e-3)
    free_step = {k: np.abs(base.parameters()[k] - start[k]).max() for k in start if k.startswith("param__")}
    clip_step = {k: np.abs(clipped.parameters()[k] - start[k]).max() for k in start if k.startswith("param__")}
    assert max(free_step.values()) > 1e-2, "an unclipped step this large is what the clip must bound"
    assert max(clip_step.values()) <= 1e-3 + 1e-6  # float32 rounding of parameters up to ~8 in size
    half = one_step(rescale_gradient=0.5)
    for k, step in free_step.items():
        np.testing.assert_allclose(np.abs(half.parameters()[k] - start[k]).max(), 0.5 * step, rtol=1e-4, atol=1e-7)


def test_parameters_start_a_fresh_state_where_the_other_is() -> None:
    a = feed(small(seed=1), counts(300, 6))
    fresh = small(seed=3)
    assert fresh.parameters() is None
    fresh.set_parameters(a.parameters())
    arrays_equal(fresh.parameters(), a.parameters())
    assert fresh.n_rows_seen_ == 0 and not any(k.startswith("opt__") for k in fresh.parameters())


def test_device_and_threads() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InvalidParameterError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match="no GPU"):
            resolve_device("cuda")
    old = os.environ.pop("ONEPASS_TORCH_THREADS", None)
    try:
        assert set_threads() == 1 and torch.get_num_threads() == 1
        os.environ["ONEPASS_TORCH_THREADS"] = "2"
        assert set_threads() == 2 and torch.get_num_threads() == 2
        from onepass._parallel import run_blocks_inline

        run_blocks_inline(True)
        try:
            assert set_threads() == 1  # a distributed worker owns one core
        finally:
            run_blocks_inline(False)
        os.environ["ONEPASS_TORCH_THREADS"] = "many"
        with pytest.raises(InvalidParameterError, match="ONEPASS_TORCH_THREADS"):
            set_threads()
    finally:
        os.environ.pop("ONEPASS_TORCH_THREADS", None)
        if old is not None:
            os.environ["ONEPASS_TORCH_THREADS"] = old
        set_threads()


def test_early_stopping_counts_evaluations_without_improvement() -> None:
    stop = EarlyStopping(num_patience_epochs=2, tolerance=0.01)
    assert [stop.observe(x) for x in (10.0, 9.0, 8.95, 8.99, 1.0)] == [False, False, False, True, True]
    again = EarlyStopping(2, 0.01)
    again.restore(stop.to_meta())
    assert again.is_stopped and again.best == 9.0
    never = EarlyStopping(0, 0.01)
    assert not any(never.observe(10.0) for _ in range(5))


def test_torch_is_imported_only_when_a_network_is_built(tmp_path) -> None:
    state = feed(small(seed=0), counts(200, 7))
    from onepass.io import save_model

    save_model(tmp_path / "m", state.model())
    np.save(tmp_path / "X.npy", counts(5, 8))
    code = (
        "import sys, numpy as np, onepass, onepass.algorithms, onepass.cli\n"
        f"m = onepass.load({str(tmp_path / 'm')!r})\n"
        f"w = m.transform(np.load({str(tmp_path / 'X.npy')!r}))\n"
        "assert w.shape == (5, 3), w.shape\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "onepass.NTMState(3).update(onepass.Batch(np.ones((4, 12), np.float32)))\n"
        "assert 'torch' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_takes_torch_optims_steps(name: str) -> None:
    """The written-out updates equal torch.optim's classes with MXNet's constants."""
    from onepass.neural._optimizers import Optimizer

    reference = {
        "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.01),
        "adam": lambda ps: torch.optim.Adam(ps, lr=0.1, weight_decay=0.01),
        "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=0.1, weight_decay=0.01, eps=1e-7),
        "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.1, alpha=0.9, eps=1e-8, weight_decay=0.01),
        "adadelta": lambda ps: torch.optim.Adadelta(ps, lr=1.0, rho=0.9, eps=1e-5, weight_decay=0.01),
    }[name]
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(5, 3, generator=gen)
    ours_p = torch.nn.Parameter(start.clone())
    theirs_p = torch.nn.Parameter(start.clone())
    ours = Optimizer(name, [("w", ours_p)], learning_rate=0.1, weight_decay=0.01)
    theirs = reference([theirs_p])
    target = torch.randn(5, 3, generator=gen)
    for _ in range(5):
        for p, opt in ((ours_p, ours), (theirs_p, theirs)):
            opt.zero_grad()
            ((p - target) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(ours_p.detach(), theirs_p.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours_p.detach(), start)
