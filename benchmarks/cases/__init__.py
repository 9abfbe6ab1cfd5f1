"""The registry of benchmark families: one module per algorithm family.

To add a family (PCA, Linear Learner, distributed...), write ``cases/<name>.py`` defining
its cases with ``@case("<name>.<case>")`` and a module-level ``FAMILY = Family(...)``, and
add its name to :data:`FAMILIES`. ``data`` and ``machine`` are helpers every run uses.
"""

from __future__ import annotations

import importlib

from benchmarks._registry import Family

# Order here is the order of the report.
FAMILIES: tuple[str, ...] = ("startup", "kmeans", "memory", "csv", "recordio", "redis", "postgresql", "pca", "tune", "linear", "fm", "ntm", "deepar", "serve", "distributed")
HELPERS: tuple[str, ...] = ("data", "machine")


def load_family(name: str) -> Family:
    return importlib.import_module(f"benchmarks.cases.{name}").FAMILY


def load_case_module(case_name: str) -> None:
    """Import the module that registers ``case_name`` (``"family.case"``)."""
    importlib.import_module(f"benchmarks.cases.{case_name.split('.', 1)[0]}")
