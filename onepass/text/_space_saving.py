"""Space-Saving: the most frequent items of a stream, in fixed memory."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from onepass.errors import InvalidParameterError

__all__ = ["SpaceSaving"]


class SpaceSaving:
    """Heavy hitters of a weighted stream, keeping at most ``capacity`` items.

    Parameters
    ----------
    capacity : int
        Items monitored at most. Memory is O(capacity) whatever the stream.

    Attributes
    ----------
    capacity : int
    n_seen : int
        Total weight added so far (N).
    n_evicted : int
        Items replaced so far; 0 means every count is exact.

    Notes
    -----
    Metwally, Agrawal and El Abbadi, "Efficient computation of frequent and top-k
    elements in data streams", ICDT 2005, with weighted increments. An item already
    monitored has its count increased; a new item takes a free slot, or replaces the item
    of smallest count ``m`` and starts at ``m + weight`` with error ``m``. Then for every
    monitored item, ``count - error <= true count <= count``, the smallest count is at most
    ``n_seen / capacity``, and every item whose true count exceeds ``n_seen / capacity`` is
    monitored. The guarantees hold for any order of the weighted updates, so a block of
    documents may be added word by word with its per-block totals.

    The smallest count is found with a heap holding one entry per monitored item, whose
    key may lag behind the item's count (increments do not touch the heap): a stale top
    is refreshed and sifted down until the top is current, and then it is the minimum
    (every key is at most its count). Each refresh answers an earlier increment, so an
    update costs O(log capacity) amortized, and the heap never holds more than
    ``capacity`` entries. Ties between equal counts go to the lexicographically smallest
    item, so a run is deterministic.

    Examples
    --------
    >>> sketch = SpaceSaving(2)
    >>> sketch.update(["a", "b", "a", "c", "a"])
    >>> sketch.top()
    [('a', 3, 0), ('c', 2, 1)]
    """

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise InvalidParameterError(f"capacity={capacity!r} must be an integer >= 1")
        self.capacity = capacity
        self.n_seen = 0
        self.n_evicted = 0
        self._counts: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []  # (count when last sifted, item)

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, item: str, weight: int = 1) -> None:
        """Count ``item`` ``weight`` more times (``weight`` >= 1)."""
        self.n_seen += weight
        counts = self._counts
        count = counts.get(item)
        if count is not None:
            counts[item] = count + weight
            return
        heap = self._heap
        if len(counts) < self.capacity:
            counts[item] = weight
            self._errors[item] = 0
            heapq.heappush(heap, (weight, item))
            return
        while True:  # refresh stale keys until the top is the true minimum
            key, least = heap[0]
            current = counts[least]
            if current == key:
                break
            heapq.heapreplace(heap, (current, least))
        del counts[least], self._errors[least]
        counts[item] = key + weight
        self._errors[item] = key
        heapq.heapreplace(heap, (key + weight, item))
        self.n_evicted += 1

    def update(self, items: Iterable[str], weights: Iterable[int] | None = None) -> None:
        """Add every item once, or ``weights[i]`` times (:meth:`add` in a loop, inlined:
        this is the vocabulary builder's inner loop)."""
        if weights is None:
            for item in items:
                self.add(item)
            return
        counts, errors, heap, capacity = self._counts, self._errors, self._heap, self.capacity
        get, replace = counts.get, heapq.heapreplace
        n_seen = n_evicted = 0
        for item, weight in zip(items, weights, strict=True):
            n_seen += weight
            count = get(item)
            if count is not None:
                counts[item] = count + weight
            elif len(counts) < capacity:
                counts[item] = weight
                errors[item] = 0
                heapq.heappush(heap, (weight, item))
            else:
                while True:
                    key, least = heap[0]
                    current = counts[least]
                    if current == key:
                        break
                    replace(heap, (current, least))
                del counts[least], errors[least]
                counts[item] = key + weight
                errors[item] = key
                replace(heap, (key + weight, item))
                n_evicted += 1
        self.n_seen += n_seen
        self.n_evicted += n_evicted

    def estimate(self, item: str) -> tuple[int, int]:
        """``(count, error)`` of ``item``: its true count lies in ``[count - error, count]``;
        ``(0, 0)`` if not monitored (its true count is then at most :attr:`min_count`)."""
        return self._counts.get(item, 0), self._errors.get(item, 0)

    @property
    def min_count(self) -> int:
        """Smallest count monitored once the sketch is full (an item not monitored was seen
        at most this often), 0 before."""
        if len(self._counts) < self.capacity:
            return 0
        return min(self._counts.values())

    def top(self, n: int | None = None) -> list[tuple[str, int, int]]:
        """``(item, count, error)`` by decreasing count, then increasing error, then item."""
        ranked = sorted(self._counts.items(), key=lambda kv: (-kv[1], self._errors[kv[0]], kv[0]))
        if n is not None:
            ranked = ranked[:n]
        return [(item, count, self._errors[item]) for item, count in ranked]
