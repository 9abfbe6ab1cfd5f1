"""Every registered algorithm passes the shared checks (found from the registry)."""

from __future__ import annotations

import importlib
import warnings

import pytest
from sklearn.utils.estimator_checks import check_estimator

from onepass.algorithms import load_all
from onepass.state import ALGORITHMS
from tests.conformance.checks import STATE_CHECKS, configurations

load_all()  # fills the registry

ALGOS = sorted(ALGORITHMS)
CONFIGURATIONS = dict(configurations(ALGORITHMS))  # each algorithm and the variants its tags declare


@pytest.mark.parametrize("check", STATE_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_state_contract(name: str, check) -> None:
    check(CONFIGURATIONS[name])


# Checks of scikit-learn's suite that cannot apply to a one-pass estimator, with why.
# Declared here, visible in the test output through pytest's xfail reasons.
_WEIGHTS_ONE_PASS = (
    "one pass over mini-batches: repeating a row shifts every later batch boundary and the "
    "random seeding draws, so weighted and repeated data give different, equally valid "
    "clusterings; that weights are honored is tested in tests/algorithms"
)
SKLEARN_EXPECTED_FAILURES: dict[str, dict[str, str]] = {
    "kmeans": {
        "check_sample_weight_equivalence_on_dense_data": _WEIGHTS_ONE_PASS,
        "check_sample_weight_equivalence_on_sparse_data": _WEIGHTS_ONE_PASS,
    },
}


ESTIMATORS = [(name, path) for name in ALGOS if not ALGORITHMS[name].tags.get("series")
              for path in (ALGORITHMS[name].estimator_path, *ALGORITHMS[name].tags.get("more_estimators", ()))]
#: algorithms scikit-learn's suite cannot check, with why (printed by pytest -ra as a skip)
NOT_SKLEARN = {name: "series in, forecasts out: scikit-learn's checks feed matrices of rows"
               for name in ALGOS if ALGORITHMS[name].tags.get("series")}


@pytest.mark.parametrize("name", sorted(NOT_SKLEARN))
def test_no_sklearn_check_estimator(name: str) -> None:
    pytest.skip(f"{name}: {NOT_SKLEARN[name]}")


@pytest.mark.parametrize(("name", "path"), ESTIMATORS, ids=[p.rpartition(":")[2] for _, p in ESTIMATORS])
def test_sklearn_check_estimator(name: str, path: str) -> None:
    """scikit-learn's check_estimator; an algorithm declares the checks that cannot apply
    to it, with why, in its tag ``sklearn_expected_failures``."""
    module, _, attr = path.partition(":")
    estimator = getattr(importlib.import_module(module), attr)(**ALGORITHMS[name].tags.get("estimator_params", {}))
    expected = {**SKLEARN_EXPECTED_FAILURES.get(name, {}), **ALGORITHMS[name].tags.get("sklearn_expected_failures", {})}
    results = check_estimator(estimator, on_fail=None, expected_failed_checks=expected)
    for r in results:
        if r["status"] == "xfail":
            warnings.warn(f"{name}: scikit-learn's {r['check_name']} does not apply: {expected[r['check_name']]}",
                          stacklevel=1)
    failed = [r for r in results if r["status"] == "failed"]
    assert not failed, "\n".join(f"{r['check_name']}: {r['exception']!r}" for r in failed)
    assert sum(r["status"] == "passed" for r in results) > 30
