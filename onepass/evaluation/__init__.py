"""Saying what a model learned: ``evaluate`` measures it on data, ``summarize`` tells
what its manifest holds.

- :func:`evaluate` (``onepass evaluate``): one read of a data source, the algorithm's
  own measures (the scorers ``onepass tune`` ranks models with), as an
  :class:`Evaluation`: a table for people, JSON for tools, a picture.
- :func:`summarize` (``onepass inspect``): a model's or checkpoint's manifest for
  people: its settings, headline numbers, leaderboard and arrays.

Importing this package is cheap (no NumPy): ``onepass inspect`` uses it to start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onepass.evaluation._evaluate import Evaluation

__all__ = ["Evaluation", "evaluate", "headline", "summarize"]


def evaluate(model: Any, data: Any, **options: Any) -> Evaluation:
    """Measure ``model`` on ``data``; see :func:`onepass.evaluation._evaluate.evaluate`."""
    from onepass.evaluation._evaluate import evaluate as run

    return run(model, data, **options)


def summarize(manifest: dict[str, Any], **options: Any) -> str:
    """A manifest for people; see :func:`onepass.evaluation._summary.summarize`."""
    from onepass.evaluation._summary import summarize as run

    return run(manifest, **options)


def headline(manifest: dict[str, Any]) -> list[str]:
    """A model's headline numbers; see :func:`onepass.evaluation._summary.headline`."""
    from onepass.evaluation._summary import headline as run

    return run(manifest)


def __getattr__(name: str) -> Any:
    if name == "Evaluation":
        from onepass.evaluation._evaluate import Evaluation

        return Evaluation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
