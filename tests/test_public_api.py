"""The public API is declared once, sorted, importable, and listed in the README."""

from __future__ import annotations

import re
from pathlib import Path

import onepass

README = Path(__file__).resolve().parents[1] / "README.md"


def test_all_is_sorted_and_importable() -> None:
    names = [n for n in onepass.__all__ if n != "__version__"]
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    for name in onepass.__all__:
        assert hasattr(onepass, name), name


def test_readme_lists_exactly_the_public_api() -> None:
    section = README.read_text().split("## Public API", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", section))
    listed -= {"__init__", "__all__"}
    declared = set(onepass.__all__)
    assert declared - listed == set(), f"public but not in the README: {sorted(declared - listed)}"
    undeclared = {n for n in listed if hasattr(onepass, n)} - declared
    assert not undeclared, f"the README lists names that are not in __all__: {sorted(undeclared)}"


def test_public_objects_have_docstrings() -> None:
    for name in onepass.__all__:
        obj = getattr(onepass, name)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"


def test_no_pickle_in_the_package() -> None:
    package = Path(onepass.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import pickle|from pickle|import cloudpickle|import joblib)", text, re.M), path
        assert "allow_pickle=True" not in text, path
