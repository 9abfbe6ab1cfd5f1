"""Start-up: a command imports what it uses, when it uses it (issue 21, item 4).

Each check runs the command in a fresh interpreter and lists the heavy modules it
imported; timing is the bench's business, the imports are what a test can hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ("numpy", "sklearn", "numba", "pyarrow", "torch", "ray", "scipy", "pandas", "matplotlib")

_PROBE = """
import json, sys
from onepass.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY))
print('\\nIMPORTED=' + json.dumps(heavy))
""".replace("HEAVY", repr(HEAVY))


def imported(*args: str) -> list[str]:
    """The heavy top-level modules ``onepass ARGS`` imports."""
    run = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=False)
    lines = [line for line in run.stdout.splitlines() if line.startswith("IMPORTED=")]
    assert lines, f"the probe failed: {run.stderr[-2000:]}"
    return json.loads(lines[-1].removeprefix("IMPORTED="))


@pytest.mark.parametrize("args", [("--help",), ("train", "--help"), ("predict", "--help"), ("serve", "--help"),
                                  ("inspect", "--help"), ("evaluate", "--help"),
                                  ("--version",)])
def test_help_imports_no_heavy_module(args: tuple[str, ...]) -> None:
    assert imported(*args) == []


def test_inspect_reads_a_model_without_heavy_modules(tmp_path: Path) -> None:
    from onepass.algorithms.kmeans import KMeansState
    from onepass.batch import Batch
    from onepass.io import save_model

    state = KMeansState(n_clusters=2, seed=0)
    state.update(Batch(np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)))
    save_model(tmp_path / "m", state.model())
    assert imported("inspect", str(tmp_path / "m")) == []


def test_one_algorithm_imports_no_other() -> None:
    """``onepass train kmeans --help`` builds its options from K-Means alone: no PyTorch."""
    assert "torch" not in imported("train", "kmeans", "--help")
