"""Pictures of a leaderboard: a score curve against the tuned setting, or the rounds of
a halving search (each trial's score against the rows it had read)."""

from __future__ import annotations

import os
from pathlib import Path

from onepass._plotting import pyplot, save_figure
from onepass.errors import InvalidParameterError
from onepass.tune._leaderboard import Leaderboard

__all__ = ["plot_leaderboard"]


def plot_leaderboard(board: Leaderboard, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Draw ``board`` into ``path`` (PNG); needs matplotlib (``pip install onepass[plot]``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    chosen = board.chosen
    if any("history" in r for r in board):
        for rec in board:
            hist = rec.get("history") or []
            if not hist:
                continue
            xs, ys = zip(*hist, strict=True)
            style = {"lw": 2.2, "color": "C3", "zorder": 3} if rec is chosen else {"lw": 1, "alpha": 0.6}
            ax.plot(xs, ys, marker="o", ms=3, **style)
        ax.set_xlabel("rows trained")
        ax.set_title(title or f"halving search: {board.metric} per trial (chosen in red)")
    else:
        if len(board.params) != 1:
            raise InvalidParameterError("--plot draws one tuned setting against its score; tune one setting")
        name = board.params[0]
        points = sorted((r[name], r[board.metric]) for r in board)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3)
        ax.axvline(chosen[name], color="C3", ls="--", lw=1)
        ax.annotate(f"chosen: {name}={chosen[name]}", (chosen[name], chosen[board.metric]),
                    textcoords="offset points", xytext=(8, 8), color="C3")
        ax.set_xlabel(name)
        ax.set_title(title or f"{board.metric} on validation ({'lower' if board.direction == 'min' else 'higher'} is better)")
    ax.set_ylabel(board.metric)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
