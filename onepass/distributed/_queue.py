"""The driver's book of shards: which are waiting, running or done, and where each stands.

Plain Python, no Ray: the work queue hands shards to free workers, records each
committed piece (the cursor after it and its rows), and puts a shard back, at its last
recorded cursor, when the worker reading it is lost. :meth:`to_json` and
:meth:`from_json` carry the book in the job checkpoint's manifest.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from onepass.errors import IncompatibleStateError

__all__ = ["ShardBook"]


class ShardBook:
    """Shards and their progress.

    Parameters
    ----------
    shards : list of dict
        The plan (:func:`~onepass.distributed._shards.plan_shards`).
    progress : list of dict, optional
        Saved progress (from a checkpoint) to resume from.
    """

    def __init__(self, shards: list[dict[str, Any]], progress: list[dict[str, Any]] | None = None) -> None:
        self.shards = shards
        if progress is None:
            progress = [{"cursor": None, "rows": 0, "pieces": 0, "done": False} for _ in shards]
        if len(progress) != len(shards):
            raise IncompatibleStateError(
                f"the checkpoint records {len(progress)} shards, the plan has {len(shards)}")
        self.progress = [dict(p) for p in progress]
        self._waiting: deque[int] = deque(i for i, p in enumerate(self.progress) if not p["done"])
        self._running: set[int] = set()

    # -- the queue --------------------------------------------------------------------
    def take(self) -> int | None:
        """The next waiting shard (now running), or None when none waits."""
        if not self._waiting:
            return None
        sid = self._waiting.popleft()
        self._running.add(sid)
        return sid

    def give_back(self, sid: int) -> None:
        """A running shard's worker was lost: the shard waits again, first in line, at
        its last recorded cursor (the rows after it were never counted)."""
        self._running.discard(sid)
        if not self.progress[sid]["done"]:
            self._waiting.appendleft(sid)

    def commit(self, sid: int, cursor: dict[str, Any] | None, rows: int, done: bool) -> None:
        """Record a piece of shard ``sid`` merged into the job state."""
        p = self.progress[sid]
        p["cursor"] = cursor
        p["rows"] += int(rows)
        p["pieces"] += 1
        if done:
            p["done"] = True
            self._running.discard(sid)

    # -- totals -------------------------------------------------------------------------
    @property
    def is_done(self) -> bool:
        return all(p["done"] for p in self.progress)

    @property
    def n_rows(self) -> int:
        return sum(p["rows"] for p in self.progress)

    @property
    def n_done(self) -> int:
        return sum(p["done"] for p in self.progress)

    def total(self, field: str) -> int:
        """Sum over shards of a count their cursors carry (``skipped``, ``quarantined``)."""
        return sum(int((p["cursor"] or {}).get(field, 0) or 0) for p in self.progress)

    def to_json(self) -> dict[str, Any]:
        return {"shards": self.shards, "progress": self.progress}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardBook:
        return cls(list(data["shards"]), list(data["progress"]))
