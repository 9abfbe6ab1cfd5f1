"""Cases, families and the plan a run is made of.

A *case* is a function ``params -> dict`` registered under ``"family.name"`` with
:func:`case`; it runs inside a fresh worker process. A *family* (one module in
``benchmarks/cases/``) says which cases to run with which parameters (:attr:`Family.plan`),
which data they need first (:attr:`Family.prepare`) and how to render their results as
tables (:attr:`Family.render`). Adding an algorithm means adding one module and one line
in ``benchmarks/cases/__init__.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

CASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class Skip(Exception):
    """A case cannot run here (a library is missing); reported, not an error."""


def case(name: str):
    """Register ``fn(params) -> dict`` as the case ``name`` (``"family.case"``)."""

    def register(fn):
        if name in CASES:
            raise ValueError(f"case {name!r} registered twice")
        CASES[name] = fn
        return fn

    return register


@dataclass(frozen=True)
class Config:
    """What a run was asked for; every family plans from this."""

    quick: bool
    repeat: int
    data_dir: Path
    seed: int = 0
    notes: list[str] = field(default_factory=list, hash=False, compare=False)


@dataclass(frozen=True)
class Task:
    """One case with its parameters; ``label`` names its row in the tables."""

    case: str
    params: dict[str, Any]
    label: str = ""
    repeat: int | None = None  # None: the run's --repeat
    timeout_s: float = 900.0

    @property
    def key(self) -> str:
        return self.case + " " + json.dumps(self.params, sort_keys=True)


@dataclass
class Result:
    """All runs of one task: a list of the JSON dicts its workers printed."""

    task: Task
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if "error" not in r and "skipped" not in r]

    @property
    def problem(self) -> str | None:
        """Why there is no number to show, or None when at least one run succeeded."""
        if self.ok_runs:
            return None
        if not self.runs:
            return "not run"
        last = self.runs[-1]
        if "skipped" in last:
            return "skipped: " + last["skipped"]
        return "error: " + last.get("error", "?")

    def values(self, key: str) -> list[float]:
        return [float(r[key]) for r in self.ok_runs if r.get(key) is not None]

    def med(self, key: str) -> float | None:
        v = self.values(key)
        return median(v) if v else None

    def first(self, key: str) -> Any:
        for r in self.ok_runs:
            if key in r:
                return r[key]
        return None


def find_result(tasks: list[Task], results: dict[str, Result], case_name: str, **match: Any) -> Result | None:
    """The result of the first of ``tasks`` running ``case_name`` whose parameters equal
    ``match`` (a parameter a task lacks matches None); None if it did not run or failed."""
    for t in tasks:
        if t.case == case_name and all(t.params.get(k) == v for k, v in match.items()):
            r = results.get(t.key)
            return None if r is None or r.problem else r
    return None


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    align: str = ""  # one of "l"/"r" per column; default: first left, the rest right


@dataclass(frozen=True)
class Family:
    """One module of cases: what to prepare, what to run, how to show it."""

    name: str
    description: str
    plan: Callable[[Config], list[Task]]
    render: Callable[[Config, dict[str, Result]], list[Table]]
    prepare: Callable[[Config], list[Task]] = lambda cfg: []
