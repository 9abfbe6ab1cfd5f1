"""Redis Streams, read through a consumer group: ``redis://HOST:PORT/DB?stream=NAME``.

The URI
-------
``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?stream=NAME&group=GROUP&consumer=NAME&...]``
(``rediss://`` for TLS). The query string may hold ``stream``, ``group``, ``consumer``,
``field`` (which field of an entry holds a ``csv``/``jsonl`` row), ``exclusive=1`` (see
The exclusive reader), and the seconds
``poll_seconds``, ``claim_idle_seconds`` and ``retry_seconds`` of
:class:`~onepass.sources.transports.StreamOptions`; any other key goes to redis-py
(``socket_timeout``, ``ssl_cert_reqs``...). A setting given both in the URI and as an option
(``--stream``...) must agree. The group is created at the stream's start (``XGROUP CREATE
... 0 MKSTREAM``) when missing; it defaults to ``onepass``, and the consumer to
``HOSTNAME-PID`` (a resumed run takes the consumer its checkpoint names).

What an entry is (``format``)
-----------------------------
``None`` (the default; "fields"): each field is a column holding a number as text; the
first entry read fixes the columns and their order (kept in every cursor, so a resumed run
reads the same layout); ``label_column``/``weight_column`` name fields (or index them in
that order), every other field is a feature, and ``feature_names`` are their names.
``"csv"``: one field holds a row of comma-separated numbers (columns by 0-based index,
no header). ``"jsonl"``: one field holds a JSON array of numbers (by index) or an object of
named numbers (by name, the first object fixing the order). The field holding the row is
the one named by ``?field=NAME``, else the entry's only field, else the one named ``data``.

A record with a field missing (or empty), a value that is not a number, NaN or inf, or a
field the first entry did not have is a bad record, handed to ``on_bad_record``: its
``line`` is its number in this read, its ``column`` the field, its ``raw`` the entry's
fields as JSON, and messages name the stream, group, consumer and entry ID. With
``null="nan"`` (the default) an absent or empty feature is NaN instead; a missing label
or weight is always a bad record.

Positions, and exactly once
---------------------------
A cursor holds ``{"stream", "group", "consumer", "id"}`` (plus ``"claims"`` after a
takeover, and ``"columns"``, the layout): every entry this consumer was delivered up to
``id`` is counted by the checkpoint holding it. Within a run the consumer reads its own
entries in increasing ID order (its pending entries first, then new ones, ``>``), so
"counted" is "ID <= cursor's id". Entries are acknowledged (``XACK``) only in
:meth:`RedisStreams.acknowledge`, which the training loop calls once a checkpoint holding
the cursor is committed (or, without checkpoints, at the end of the run): every pending
entry of the consumer up to the cursor's ID, listed and acknowledged a page at a time by a
script on the server (``XPENDING`` + ``XACK``; nothing is kept client-side). So a run
killed at any instant leaves every entry it read after its last checkpoint pending, and
the next run (``--resume``) reads again its pending entries after the cursor's ID, then new
entries; those up to the ID stay pending until the next committed checkpoint is
acknowledged (the cursor a run resumes from is not acknowledged at its start: a
distributed job's worker resumes from cursors not committed yet). A run without a cursor
reads all of its consumer's pending entries again (no checkpoint counted them).

Takeover of a dead consumer
---------------------------
At the start, then every ``claim_idle_seconds / 2``, the consumer looks for other
consumers of its group that hold pending entries and have not read for
``claim_idle_seconds`` (``XINFO CONSUMERS``: their idle time; and their entries', in
``XPENDING ... IDLE``), and takes their entries over: those up to the dead consumer's
committed mark are acknowledged (its checkpoints counted them), the others claimed
(``XCLAIM``, with the same minimum idle time, so an entry a live consumer touches is never
taken) and read. The marks are the hash ``onepass:STREAM:GROUP:committed`` (consumer ->
last committed ID), written by :meth:`RedisStreams.acknowledge` before it acknowledges.
Entries taken over are older than the consumer's own read position, so they are claimed
into a consumer of their own, ``CONSUMER~claimed-K``, read in ID order and tracked in the
cursor's ``"claims"`` (its ID in each); a resumed run reads those again after their IDs, and
any ``~claimed-`` consumer of its own that the cursor does not name from the start.
``XAUTOCLAIM`` would claim without saying whose entries they were, and the mark is per
consumer, hence ``XPENDING`` + ``XCLAIM``. A consumer that holds no pending entry when it
closes is deleted from the group (with its mark).

While it reads, a consumer shows it is alive every ``claim_idle_seconds / 4`` from a
thread of its own (a history read past its entries: it delivers nothing and leaves the
entries' idle times alone), so a live consumer whose reading waits on slow training does
not look dead. What is left to chance: a consumer killed between committing a checkpoint
and writing its mark (one round trip) has the entries of that last checkpoint read again
by the consumer that takes it over; and a process frozen (stopped, its machine suspended)
for longer than ``claim_idle_seconds`` looks dead, and what it holds is read twice. Keep
``claim_idle_seconds`` (default 60) above the longest such pause.

Workers
-------
:meth:`RedisStreams.plan_shards` gives each Ray worker a consumer of the group
(``CONSUMER-w1``, ``-w2``...): they split the entries as they read, each with its own
cursor in the job's checkpoint.

The exclusive reader
--------------------
With ``?exclusive=1`` one process reads the stream for the group alone, with ``XREAD``,
and nothing is ever pending: through the group, the server inserts each entry delivered in
two pending lists (the group's and the consumer's) and builds its ``XCLAIM`` record, ~1.5-2
us of its CPU an entry here, which is what lets consumers split a stream and take over
from the dead; a stream read by one job needs none of it. The reader holds the group with
the key ``onepass:STREAM:GROUP:exclusive`` (its consumer's name, expiring
``claim_idle_seconds`` after its last renewal, renewed by the heartbeat thread): another
exclusive reader, and the group's consumers, are refused while it is held, and a run
resumed from a checkpoint takes it back at once (the cursor names its consumer). It is
taken only where the group holds no pending entry (those would never be read). Reading
begins after the cursor's ID, or, without one, after the group's last delivered ID, which
:meth:`RedisStreams.acknowledge` moves (``XGROUP SETID``) to each committed cursor's ID: so
the checkpoint's cursor alone says what is counted, a run killed at any instant reads again
from its last checkpoint on ``--resume``, and a new run starts after the last committed
entry. Each read asks for the entries after the previous one's last ID: once a full reply
has arrived its last ID is found by walking it (compiled, ~1/20 of decoding it) and the
next read sent before it is decoded, so the server reads while this side decodes. One
process: no workers. Server CPU ~0.7-0.9 us an entry (a CSV field), so reading is bound by
the consumer, not the server.

Follow, stop, backpressure
--------------------------
Without ``follow`` the read ends at the last entry that existed when it began (read by
``XREVRANGE ... COUNT 1``); the reads in flight when it is seen may deliver up to two
reads' worth of entries past it, which stay pending for the consumer's next run. With
``follow`` it waits for new entries (``XREADGROUP ... BLOCK poll_seconds``) until
:meth:`stop`, which ends the read within ``poll_seconds``; when it has caught up it hands
over the rows it holds as a short batch (:func:`~onepass.sources.transports.caught_up`).
Each read asks for about one batch (``COUNT batch_size``); while a backlog lasts, two more
reads are asked for as soon as a full reply has arrived, before it is decoded, so the
server always has a reply to write (it is the slower side: see Speed) even while the
reading thread waits for the GIL; one reply is held here at a time, two more are on their
way or in the server's output buffer.

The server gone
---------------
A connection error (server stopped, restarting, loading) is retried with exponential
backoff (0.1 s doubling to 5 s) for up to ``retry_seconds`` (URI ``?retry_seconds=``,
default 60), each retry logged on the ``onepass.sources`` logger; then the entries
delivered but not yet handed over are read again from the consumer's pending list, so
nothing is lost. A server away longer raises :class:`~onepass.errors.DataError` naming
it; the run ends with its last checkpoint, which resumes.

Speed
-----
Replies are read as raw bytes and decoded by one compiled pass (Numba,
``_redis_kernel``), not by a RESP parser building one Python object per field: the
entries walked by their declared lengths, each value parsed as a number where it lies,
into the batch's array (~30 ns a value here). An entry that does not fit (other fields,
a value that is not a plain decimal) is read again by the careful path, which says what
is wrong; a reply holding a deleted entry goes to hiredis when installed, else a small
Python parser. Where the time goes, measured on this 2-core machine with redis-server 7.0
sharing its cores (``make bench``, ``benchmarks/cases/redis.py``: 1M entries of 20
values into K-Means, no other load): with a CSV row in one field ~310k entries/s (10 runs:
223k-368k, as the machine's speed varied), the server spending ~1.6-3.2 us of CPU an entry
in ``XREADGROUP`` (~0.7 writing the reply, the rest inserting each entry in the pending
lists and building its XCLAIM propagation record, which NOACK would skip but exactly once
needs), the client ~2.0-3.0 (~0.6 decoding, K-Means, and ~0.5 s of loading Numba once a
process, while the server waits); with a field per value ~180k (146k-235k; the server
~3.5-5.4 us: 42 strings an entry, ~3.4 of it writing the reply alone, so never 300k here). Reading is bound by the server: a
client that discards the replies unread (the same reads, two in flight) drains the same
stream at ~450-500k entries/s (CSV; server ~1.9-2.0 us) and ~200-220k (fields; ~4.2-4.8).
The consumer's peak RSS is flat: 188 MB at 500k entries, 192 MB at 5M.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import numpy as np

from onepass.errors import DataError, InvalidParameterError
from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk, Options
from onepass.sources._columns import feature_indices, resolve_column
from onepass.sources._numbers import parse_float
from onepass.sources.transports import RecordTransport, StreamOptions, caught_up

__all__ = ["RedisStreams"]

log = logging.getLogger("onepass.sources")

T = TypeVar("T")

DEFAULT_GROUP = "onepass"
#: a consumer's takeovers in a run are claimed into consumers named CONSUMER~claimed-K
CLAIMED = "~claimed-"
#: query keys of the URI read here (the rest go to redis-py)
URI_KEYS = ("stream", "group", "consumer", "field", "exclusive", "poll_seconds", "claim_idle_seconds",
            "retry_seconds")
SECONDS = ("poll_seconds", "claim_idle_seconds", "retry_seconds")
FORMATS = ("fields", "csv", "jsonl")
ROW_FIELDS = (b"data",)  # the field holding a csv/jsonl row when an entry has several
ACK_PAGE = 5_000  # ids a page (Lua's unpack takes a few thousand)
MAX_BACKOFF = 5.0
ZERO = b"0-0"
#: error replies of a server that is not ready yet (retried like a lost connection)
TRANSIENT = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN")

# Acknowledge a consumer's pending entries up to an ID on the server: nothing crosses the
# network. When it holds none past the ID, deleting the consumer drops them all from the
# group's pending list at once (DELCONSUMER: as XACK would, in C, ~10x faster than listing
# them); when it is moreover the group's only consumer and holds many (the end of a run
# read by one consumer), the group is destroyed and created again where it was (its last
# delivered ID and entries read): the same group, its pending list freed whole, ~5x faster
# than DELCONSUMER's removal of each entry (1M entries: 0.07 s of server time, not 0.39).
# Else in pages (XPENDING then XACK), at most ARGV[5] a call, so the server is never held
# long. Returns {acknowledged, whether some are left}.
_ACK_UPTO = """
local n, page = 0, tonumber(ARGV[4])
if #redis.call('XPENDING', KEYS[1], ARGV[1], '(' .. ARGV[3], '+', 1, ARGV[2]) == 0 then
  local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
  if #consumers == 1 then
    local c = {}
    for i = 1, #consumers[1], 2 do c[consumers[1][i]] = consumers[1][i + 1] end
    if c['name'] == ARGV[2] and c['pending'] >= tonumber(ARGV[6]) then
      for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
        local info = {}
        for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
        if info['name'] == ARGV[1] and info['pending'] == c['pending'] then
          redis.call('XGROUP', 'DESTROY', KEYS[1], ARGV[1])
          if info['entries-read'] then
            redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], info['last-delivered-id'], 'ENTRIESREAD',
                       string.format('%d', info['entries-read']))
          else
            redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], info['last-delivered-id'])
          end
          return {c['pending'], 0}
        end
      end
    end
  end
  return {redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]), 0}
end
for _ = 1, tonumber(ARGV[5]) do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', ARGV[3], page, ARGV[2])
  if #p == 0 then return {n, 0} end
  local ids = {}
  for j = 1, #p do ids[j] = p[j][1] end
  n = n + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  if #p < page then return {n, 0} end
end
return {n, 1}
"""
#: below this many pending entries, the only consumer is deleted rather than its group recreated
RECREATE_FROM = 10_000
ACK_PAGES = 10

# A heartbeat: a history read from the stream's last ID delivers nothing (no entry of
# this consumer lies past it) and touches no entry, but makes the consumer's idle time 0,
# so it does not look dead while training holds its reading back.
_HEARTBEAT = """
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last = '0-0'
for i = 1, #info, 2 do if info[i] == 'last-generated-id' then last = info[i + 1] end end
redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], last)
return 1
"""

# Delete a consumer only when it holds no pending entry (atomically: DELCONSUMER drops
# the pending entries of the consumer it deletes), and its committed mark with it.
_DELETE_IF_EMPTY = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""


class _Lost(Exception):
    """The connection to the server failed; retried by the caller."""


@dataclass
class _Outage:
    """Since when the server has been away (None: it answers), and the next wait."""

    since: float | None = None
    delay: float = 0.1


class _Bad(Exception):
    def __init__(self, reason: str, column: Any = None) -> None:
        self.reason, self.column = reason, column


def _id(raw: bytes | str) -> tuple[int, int]:
    """An entry ID as (milliseconds, sequence), for comparing."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _b(x: Any) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode()


def _command(*args: Any) -> bytes:
    """A command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = _b(a)
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


def _nonfinite(v: float) -> str:
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _is_lost(e: BaseException) -> bool:
    import redis

    return isinstance(e, (_Lost, redis.ConnectionError, redis.TimeoutError, OSError))


# -- reading replies --------------------------------------------------------------------
def _resp(data: bytes, i: int = 0) -> tuple[Any, int]:
    """One RESP2 value of ``data`` at ``i`` and where the next begins (the slow path)."""
    kind = data[i]
    j = data.index(b"\r\n", i)
    if kind == 42:  # '*' array
        n = int(data[i + 1:j])
        if n < 0:
            return None, j + 2
        items, i = [], j + 2
        for _ in range(n):
            item, i = _resp(data, i)
            items.append(item)
        return items, i
    if kind == 36:  # '$' bulk string
        n = int(data[i + 1:j])
        if n < 0:
            return None, j + 2
        return data[j + 2:j + 2 + n], j + 4 + n
    if kind == 58:  # ':' integer
        return int(data[i + 1:j]), j + 2
    if kind == 45:  # '-' error
        raise _ServerReplyError(data[i + 1:j].decode(errors="replace"))
    return data[i + 1:j], j + 2  # '+' simple string


def _parse_any(data: bytes) -> Any:
    if data[:1] == b"-":
        raise _ServerReplyError(data[1:].split(b"\r\n", 1)[0].decode(errors="replace"))
    try:
        import hiredis
    except ImportError:
        return _resp(data)[0]
    reader = hiredis.Reader()
    reader.feed(data)
    out = reader.gets()
    if isinstance(out, hiredis.ReplyError):
        raise _ServerReplyError(str(out))
    return out


class _ServerReplyError(Exception):
    """The server answered a read with an error (-NOGROUP ...)."""


@dataclass
class _Entries:
    """One reply's entries, in order: ``ids``; either decoded by the compiled pass
    (``values``, ``problem``: the rows it could not read, ``starts``: each entry's offset
    in ``data``) or, for a reply it refused, ``items``: each entry's flat
    ``[field, value, ...]`` (None when it was deleted)."""

    ids: Any  # an array of bytes (S41) when decoded, else a list
    data: bytes = b""
    starts: np.ndarray | None = None
    values: np.ndarray | None = None
    problem: np.ndarray | None = None
    items: list[list[bytes] | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def flat(self, i: int) -> list[bytes] | None:
        """Entry ``i``'s ``[field, value, ...]``."""
        if self.items is not None:
            return self.items[i]
        assert self.starts is not None
        return _resp(self.data, int(self.starts[i]))[0][1]

    def cut(self, n: int) -> _Entries:
        """The first ``n`` entries."""
        if self.items is not None:
            return _Entries(self.ids[:n], items=self.items[:n])
        return _Entries(self.ids[:n], self.data, self.starts[:n], self.values[:n],  # type: ignore[index]
                        self.problem[:n])  # type: ignore[index]


def _up_to(entries: _Entries, last_end: tuple[int, int] | None, full: bool) -> tuple[_Entries, bool]:
    """A reply's entries up to the run's last entry ``last_end`` (None: no end), and
    whether the read has reached it (an entry at or past it, or a reply that was not full)."""
    if last_end is None:
        return entries, False
    if len(entries) and _id(entries.ids[-1]) >= last_end:
        return entries.cut(sum(1 for x in entries.ids if _id(x) <= last_end)), True
    return entries, not full


def _reply_start(data: bytes) -> tuple[int, int] | None:
    """Where the entries of an ``XREADGROUP`` reply (of one stream) begin and how many
    there are; (0, 0) for none; None when the reply is not of that shape. An error reply
    raises."""
    if data[:1] == b"-":
        message = data[1:].split(b"\r\n", 1)[0].decode(errors="replace")
        if message.startswith(TRANSIENT):
            raise _Lost(message)
        raise _ServerReplyError(message)
    if data.startswith(b"*-1\r\n") or data.startswith(b"*0\r\n"):
        return 0, 0
    if not data.startswith(b"*1\r\n*2\r\n$"):
        return None
    try:
        at = data.index(b"\r\n", 9)
        at += 2 + int(data[9:at])  # the line end after the stream's name
        if data[at:at + 3] != b"\r\n*":
            return None
        end = data.index(b"\r\n", at + 3)
        return end + 2, int(data[at + 3:end])
    except ValueError:
        return None


# -- the layout of a row ------------------------------------------------------------------
@dataclass
class _Layout:
    """The columns of a row: their names (fields, object keys) or just their count, and
    which is the label, the weight, the features."""

    n_cols: int
    names: list[str] | None
    label: int | None
    weight: int | None
    features: list[int] = field(default_factory=list)
    role: list[str] = field(default_factory=list)
    index: dict[bytes, int] = field(default_factory=dict)
    names_b: list[bytes] = field(default_factory=list)

    @classmethod
    def of(cls, n_cols: int, names: list[str] | None, options: Options, where: str) -> _Layout:
        label = resolve_column(options.label_column, names, n_cols, "label_column", where)
        weight = resolve_column(options.weight_column, names, n_cols, "weight_column", where)
        features = feature_indices(n_cols, label, weight)
        role = ["feature"] * n_cols
        if label is not None:
            role[label] = "label"
        if weight is not None:
            role[weight] = "weight"
        names_b = [n.encode() for n in names] if names is not None else []
        return cls(n_cols, names, label, weight, features, role, {n: j for j, n in enumerate(names_b)}, names_b)

    def column(self, j: int) -> str | int:
        return self.names[j] if self.names is not None else j

    @property
    def feature_names(self) -> list[str] | None:
        return None if self.names is None else [self.names[j] for j in self.features]


# -- the transport ------------------------------------------------------------------------
@dataclass
class _Segment:
    """Entries taken over in the middle of a run, read as the consumer ``name``."""

    name: str
    owner: str | None  # the dead consumer whose entries these are (None: an earlier run's takeover)
    after: bytes  # its entries up to here are acknowledged or claimed
    pos: bytes = ZERO  # last ID handed over
    n_claimed: int = 0
    finished: bool = False


# The exclusive reader's hold on its group (KEYS: the stream, the hold; ARGV: group,
# consumer, milliseconds). Taken when free or already this consumer's (a resumed run), and
# only when the group holds no pending entry (those are group readers' in flight, which an
# exclusive reader would not read); the group is created at the stream's start if missing.
# Returns {1, group's last delivered ID} or {0, holder} or {-1, pending entries}.
_TAKE = """
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then return {0, holder} end
local found = false
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == ARGV[1] then
      if info['pending'] > 0 then return {-1, info['pending']} end
      found = info['last-delivered-id']
    end
  end
end
if not found then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  found = '0-0'
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return {1, found}
"""

# The exclusive reader's heartbeat: its hold renewed (taken again when it lapsed, as after
# a server restarted without its data), 0 when another reader holds it.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# The exclusive reader's acknowledgement: the group's last delivered ID moved to the
# committed cursor's (XGROUP SETID), while this reader holds the group; 0 when it does not.
_SET_POSITION = """
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then return 0 end
redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
return 1
"""

# Release the hold when it is this reader's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStreams(RecordTransport):
    """A Redis stream read through a consumer group, exactly once across kills.

    See the module docstring for the URI, the formats, positions and takeovers.

    Parameters
    ----------
    uri : str
        ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]?stream=NAME&group=GROUP&consumer=NAME``.
    options : Options
    stream : StreamOptions
    format : {None, "fields", "csv", "jsonl"}
    """

    kind = "redis"
    is_rewindable = False

    def __init__(self, uri: str, options: Options, stream: StreamOptions, format: str | None = None) -> None:
        super().__init__(uri, options, stream, format)
        if self.format not in FORMATS:
            raise InvalidParameterError(
                f"format={format!r} is not one a Redis stream is read in: None (each field a column), 'csv' or "
                "'jsonl' (one field holding a row)")
        parts = urlsplit(uri)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        given = {k: query.pop(k) for k in URI_KEYS if k in query}
        query.pop("protocol", None)  # replies are read in RESP2
        defaults = StreamOptions()
        settings: dict[str, Any] = {}
        for key in ("stream", "group", "consumer"):
            opt = getattr(stream, key)
            if key in given and opt is not None and given[key] != opt:
                raise InvalidParameterError(
                    f"{key}={opt!r} was given, but the URI {self._safe(parts)} says {key}={given[key]!r}; give it once")
            settings[key] = opt if opt is not None else given.get(key) or None
        for key in SECONDS:
            opt = getattr(stream, key)
            if key in given:
                try:
                    value = float(given[key])
                except ValueError:
                    raise InvalidParameterError(f"{key}={given[key]!r} in {self._safe(parts)} must be a number of "
                                                "seconds") from None
                if not value >= 0 or math.isinf(value):
                    raise InvalidParameterError(f"{key}={given[key]!r} in {self._safe(parts)} must be >= 0")
                if opt != getattr(defaults, key) and opt != value:
                    raise InvalidParameterError(f"{key}={opt!r} was given, but the URI says {key}={value!r}; give it once")
                opt = value
            settings[key] = float(opt)
        if not settings["stream"]:
            raise InvalidParameterError(f"{self._safe(parts)} names no stream: add ?stream=NAME to the URI, or "
                                        "--stream NAME (stream= in Python)")
        self.stream_name: str = settings["stream"]
        self.group: str = settings["group"] or DEFAULT_GROUP
        self._explicit_consumer: str | None = settings["consumer"]
        self.consumer: str = self._explicit_consumer or f"{socket.gethostname()}-{os.getpid()}"
        if CLAIMED in self.consumer:
            raise InvalidParameterError(f"consumer={self.consumer!r}: names holding {CLAIMED!r} are the takeovers of "
                                        "another consumer; choose another name")
        self.poll_seconds = settings["poll_seconds"]
        self.claim_idle_seconds = settings["claim_idle_seconds"]
        self.retry_seconds = settings["retry_seconds"]
        self.row_field: bytes | None = given["field"].encode() if given.get("field") else None
        flag = given.get("exclusive", "0").lower()
        if flag not in ("0", "1", "true", "false", "yes", "no", ""):
            raise InvalidParameterError(f"exclusive={given['exclusive']!r} in {self._safe(parts)} must be 1 or 0")
        self.exclusive: bool = flag in ("1", "true", "yes")
        if self.row_field is not None and self.format == "fields":
            raise InvalidParameterError("field= names the field holding a row, for format 'csv' or 'jsonl'; with "
                                        "each field a column (the default format) there is none")
        if self.format == "csv" and isinstance(options.label_column, str) or self.format == "csv" and isinstance(
                options.weight_column, str):
            raise InvalidParameterError("a csv row in a stream has no header: give label_column and weight_column "
                                        "as 0-based indexes")
        self._host = parts.hostname or "localhost"
        self._port = parts.port or 6379
        self._address = f"{self._host}:{self._port}"
        self._name = f"{self._safe(parts)}?stream={quote(self.stream_name, safe='')}"
        self._url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        self._marks = f"onepass:{self.stream_name}:{self.group}:committed"
        self._hold = f"onepass:{self.stream_name}:{self.group}:exclusive"
        self._hold_lost: str | None = None  # who holds it when this exclusive reader found it taken
        self._pool: Any = None
        self._client: Any = None
        self._wire: _Wire | None = None
        self._layout: _Layout | None = None
        self._segments: list[_Segment] = []
        self._retired: set[int] = set()
        self._read_outage = _Outage()  # the reading thread's
        self._ack_outage = _Outage()  # the training loop's (acknowledge)
        self._has_read = False
        self._next_segment = 1
        self._main_pos = ZERO
        self._next_claim = 0.0
        self._n_records = 0
        self._connect_pool()

    # -- names and positions ----------------------------------------------------------------
    @staticmethod
    def _safe(parts: Any) -> str:
        """The URI's scheme, user, host, port and database, without the password or query."""
        host = parts.hostname or "localhost"
        netloc = (f"{parts.username}@" if parts.username else "") + (f"[{host}]" if ":" in host else host)
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/0", "", ""))

    @property
    def name(self) -> str:
        return self._name

    def position(self, end: Any) -> dict:
        token = bytes(end).split(b" ")
        out: dict[str, Any] = {"stream": self.stream_name, "group": self.group, "consumer": self.consumer,
                               "id": token[0].decode()}
        if self.exclusive:
            out["exclusive"] = True
        n_done = int(token[1]) if len(token) > 1 else 0
        claims = {s.name: s.pos.decode() for i, s in enumerate(self._segments[:n_done]) if i not in self._retired}
        if len(token) > 2:
            claims[self._segments[n_done].name] = token[2].decode()
        if claims:
            out["claims"] = claims
        layout = self._layout
        if layout is not None:
            out["columns"] = layout.names if layout.names is not None else layout.n_cols
        return out

    def where(self, end: Any) -> str:
        token = bytes(end).split(b" ")
        seg = f", taken over as {self._segments[int(token[1])].name}" if len(token) > 2 else ""
        entry = token[2] if len(token) > 2 else token[0]
        return f"stream {self.stream_name}, group {self.group}, consumer {self.consumer}, id {entry.decode()}{seg}"

    def start_of(self, cursor: dict) -> dict:
        for key, mine in (("stream", self.stream_name), ("group", self.group)):
            if cursor.get(key) != mine:
                raise InvalidParameterError(
                    f"the checkpoint's cursor reads {key} {cursor.get(key)!r}, this run {key} {mine!r}: resume with "
                    f"the same stream and group (or start a new --checkpoint-dir)")
        if cursor.get("format", self.format) != self.format:
            raise InvalidParameterError(f"the checkpoint's cursor read entries as {cursor.get('format')!r}, this run "
                                        f"as {self.format!r}; resume with the same format")
        if bool(cursor.get("exclusive")) != self.exclusive:
            was, now = (("an exclusive reader (?exclusive=1)", "a consumer of the group") if cursor.get("exclusive")
                        else ("a consumer of the group", "an exclusive reader (?exclusive=1)"))
            raise InvalidParameterError(f"the checkpoint was written by {was}, this run is {now}: resume the way it "
                                        "was read (or start a new --checkpoint-dir)")
        consumer = str(cursor["consumer"])
        if self._explicit_consumer is not None and self._explicit_consumer != consumer:
            raise InvalidParameterError(
                f"the checkpoint was written by consumer {consumer!r}, this run is consumer "
                f"{self._explicit_consumer!r}: its pending entries are that consumer's; resume as --consumer "
                f"{consumer} (or leave --consumer out)")
        _id(cursor["id"])
        claims = dict(cursor.get("claims") or {})
        for name, pos in claims.items():
            _id(pos)
            if not str(name).startswith(consumer + CLAIMED):
                raise InvalidParameterError(f"malformed cursor: claims {name!r} is not a takeover of {consumer!r}")
        columns = cursor.get("columns")
        return {"consumer": consumer, "id": str(cursor["id"]), "claims": claims, "columns": columns}

    @classmethod
    def plan_shards(cls, uri: str, stream: StreamOptions, format: str | None, workers: int) -> list[dict]:
        """One consumer of the group a worker: ``CONSUMER-w1``, ``CONSUMER-w2``... (the
        consumer given with ``consumer=``, else this host and process), which split the
        stream's entries between them as they read (``>``)."""
        probe = cls(uri, Options(), stream, format)
        if probe.exclusive and workers > 1:
            raise InvalidParameterError(f"{probe.name}: an exclusive reader (?exclusive=1) is one process; with "
                                        f"{workers} workers, read through the consumer group (leave exclusive out)")
        if "consumer" in dict(parse_qsl(urlsplit(uri).query)):
            raise InvalidParameterError("with workers, give the consumers' name with consumer= (--consumer), not in "
                                        "the URI: each worker reads as that name and -w1, -w2...")
        return [{"consumer": f"{probe.consumer}-w{i + 1}"} for i in range(workers)]

    # -- connections ------------------------------------------------------------------------
    def _connect_pool(self) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        timeout = max(30.0, 2 * self.poll_seconds + 10)
        try:
            self._pool = redis.ConnectionPool.from_url(self._url, protocol=2, socket_timeout=timeout,
                                                       socket_connect_timeout=10, retry=Retry(NoBackoff(), 0))
            self._client = redis.Redis(connection_pool=self._pool)
        except (TypeError, ValueError) as e:
            raise InvalidParameterError(f"{self.name}: {e} (the URI's query may hold {', '.join(URI_KEYS)}, and "
                                        "redis-py's connection settings)") from None
        self._client.response_callbacks.clear()  # raw replies: bytes, lists
        self._timeout = timeout

    def _call(self, *args: Any) -> Any:
        return self._client.execute_command(*args)

    def _retrying(self, what: str, fn: Callable[[], T], outage: _Outage) -> T:
        """``fn()``, retried with backoff while the server is away (up to retry_seconds)."""
        while True:
            try:
                out = fn()
                outage.since = None
                return out
            except Exception as e:  # noqa: BLE001 - connection errors only, the rest re-raised
                if not _is_lost(e):
                    import redis

                    if isinstance(e, (redis.ResponseError, _ServerReplyError)):
                        raise DataError(f"{self.name}: the server refused {what}: {e}") from None
                    raise
                self._backoff(what, e, outage)

    def _backoff(self, what: str, error: BaseException, outage: _Outage) -> None:
        """Wait before the next try, or raise DataError once the server has been away too long."""
        now = time.monotonic()
        if outage.since is None:
            outage.since, outage.delay = now, 0.1
        waited = now - outage.since
        if waited >= self.retry_seconds:
            outage.since = None
            raise DataError(
                f"the Redis server at {self._address} ({self.name}) has been unreachable for {waited:.0f} s while "
                f"{what} ({error}); gave up after retry_seconds={self.retry_seconds:g} (?retry_seconds= in the URI). "
                "Nothing read since the last checkpoint was acknowledged: once the server is back, run again with "
                "--resume") from None
        delay = min(outage.delay, self.retry_seconds - waited)
        log.warning("Redis server %s unreachable while %s (%s); retry in %.1f s (%.0f of %g s spent)",
                    self._address, what, error, delay, waited, self.retry_seconds)
        reading = outage is self._read_outage
        if reading:
            self._close_wire()
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not (reading and self.stopped):  # a stopped read ends now
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        outage.delay = min(outage.delay * 2, MAX_BACKOFF)

    def _open_wire(self) -> _Wire:
        if self._wire is None:
            self._wire = _Wire(self._pool, self.poll_seconds + self._timeout)
        return self._wire

    def _close_wire(self) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None

    def close(self) -> None:
        """Close the connections; forget this consumer (and its takeovers) in the group if
        it holds no pending entry."""
        import redis

        self._close_wire()
        if self._client is None:
            return
        try:
            if self._has_read and self.exclusive:
                self._call("EVAL", _RELEASE, 1, self._hold, self.consumer)
            elif self._has_read:
                for name in [self.consumer] + [s.name for s in self._segments]:
                    self._delete_if_empty(name)
        except (redis.RedisError, OSError, _Lost):  # a server gone at close loses nothing
            pass
        finally:
            self._pool.disconnect()

    def _delete_if_empty(self, consumer: str) -> bool:
        """Forget ``consumer`` (and its mark) if it holds no pending entry; whether it did."""
        return bool(self._call("EVAL", _DELETE_IF_EMPTY, 2, self.stream_name, self._marks, self.group, consumer))

    # -- acknowledging ---------------------------------------------------------------------
    def acknowledge(self, cursor: dict) -> None:
        """Record the cursor's IDs as this consumer's committed marks, then acknowledge its
        pending entries up to them (and those of its takeovers up to theirs)."""
        if cursor.get("stream") != self.stream_name or cursor.get("group") != self.group:
            return
        if self.exclusive:
            self._retrying("recording the group's position", lambda: self._set_position(cursor), self._ack_outage)
            return
        targets = {str(cursor["consumer"]): str(cursor["id"]), **{str(k): str(v) for k, v in
                                                                   (cursor.get("claims") or {}).items()}}

        def run() -> None:
            self._call("HSET", self._marks, *[x for kv in targets.items() for x in kv])
            for consumer, upto in targets.items():
                self._ack_upto(consumer, upto.encode())
            if not self._has_read:  # a distributed job's driver: a worker's consumer left with nothing pending goes
                self._delete_if_empty(str(cursor["consumer"]))
            for i, seg in enumerate(self._segments):
                if seg.finished and i not in self._retired and targets.get(seg.name) == seg.pos.decode() \
                        and self._delete_if_empty(seg.name):
                    self._retired.add(i)

        self._retrying("acknowledging entries", run, self._ack_outage)

    def _ack_upto(self, consumer: str, upto: bytes) -> int:
        """XACK every pending entry of ``consumer`` with an ID <= ``upto`` (on the server, a
        few pages a call); how many."""
        n = 0
        if upto == ZERO:
            return 0
        while True:
            acked, more = self._call("EVAL", _ACK_UPTO, 1, self.stream_name, self.group, consumer, upto, ACK_PAGE,
                                     ACK_PAGES, RECREATE_FROM)
            n += int(acked)
            if not int(more):
                return n

    # -- reading ---------------------------------------------------------------------------
    def read(self, start: dict | None) -> Iterator[Chunk]:
        if start is not None:
            self.consumer = start["consumer"]
            if start.get("columns") is not None:
                self._set_layout(start["columns"])
        self._has_read = True
        outage = self._read_outage
        end = None if self.stream.follow else self._retrying("reading the stream's last entry", self._begin_end,
                                                             outage)
        if self.exclusive:
            self._retrying("taking the group for this reader", lambda: self._take(start), outage)
        else:
            self._retrying("resuming the consumer group", lambda: self._begin(start), outage)
        self._next_claim = 0.0  # look for dead consumers at once
        recovering = not self.exclusive  # read this consumer's pending entries (after the start, or a lost connection)
        beat = _Heartbeat(self, max(self.claim_idle_seconds / 4, 0.05))
        beat.start()
        try:
            while True:
                try:
                    if recovering:
                        for index, seg in enumerate(self._segments):
                            if not seg.finished:
                                yield from self._run_segment(index)
                        yield from self._history(self.consumer, None)
                        recovering = False
                        outage.since = None  # back: a later outage gets its own retry_seconds
                    yield from self._exclusive_new(end) if self.exclusive else self._new(end)
                    return
                except _ServerReplyError as e:
                    raise DataError(f"{self.name}: the server refused to read the stream: {e}") from None
                except Exception as e:  # noqa: BLE001 - connection errors only
                    if not _is_lost(e):
                        raise
                    self._backoff("reading entries", e, outage)
                    if self.stopped:
                        return
                    recovering = not self.exclusive
        finally:
            beat.halt()
            self._close_wire()

    def heartbeat(self) -> None:
        """Show the group this consumer is alive (see ``_HEARTBEAT``); an exclusive reader
        renews its hold (see ``_RENEW``)."""
        if self.exclusive:
            if not int(self._call("EVAL", _RENEW, 1, self._hold, self.consumer, self._hold_ms)):
                self._hold_lost = (self._call("GET", self._hold) or b"?").decode(errors="replace")
            return
        self._call("EVAL", _HEARTBEAT, 1, self.stream_name, self.group, self.consumer)

    # -- the exclusive reader --------------------------------------------------------------
    @property
    def _hold_ms(self) -> int:
        return max(1000, int(self.claim_idle_seconds * 1000))

    def _held_by_other(self, holder: str) -> DataError:
        return DataError(
            f"{self.name}: group {self.group!r} is read by the exclusive reader {holder!r} (?exclusive=1), which "
            f"holds it until {self.claim_idle_seconds:g} s (claim_idle_seconds) after its last sign of life; resume "
            "that reader (--resume, or consumer= its name), or wait for its hold to lapse")

    def _take(self, start: dict | None) -> None:
        """Hold the group for this reader alone; where its reading begins: after the
        cursor's ID, else after the group's last delivered ID (the last committed)."""
        status, value = self._call("EVAL", _TAKE, 2, self.stream_name, self._hold, self.group, self.consumer,
                                   self._hold_ms)
        if int(status) == 0:
            raise self._held_by_other(value.decode(errors="replace"))
        if int(status) < 0:
            raise DataError(
                f"{self.name}: group {self.group!r} holds {int(value)} pending entries, delivered to consumers reading "
                "through it and not acknowledged yet; an exclusive reader (?exclusive=1) reads after the group's "
                "position and would never read them: let those consumers finish (or resume them), or read with "
                "another group")
        self._main_pos = start["id"].encode() if start is not None else bytes(value)

    def _set_position(self, cursor: dict) -> None:
        if not int(self._call("EVAL", _SET_POSITION, 2, self.stream_name, self._hold, self.group,
                              str(cursor["consumer"]), str(cursor["id"]), self._hold_ms)):
            holder = (self._call("GET", self._hold) or b"?").decode(errors="replace")
            raise DataError(f"{self.name}: this exclusive reader's hold on group {self.group!r} was taken by "
                            f"{holder!r} (this process was silent for over claim_idle_seconds="
                            f"{self.claim_idle_seconds:g}); the checkpoint is committed but the group's position was "
                            "not moved: stop one of the two readers")

    def _exclusive_new(self, end: bytes | None) -> Iterator[Chunk]:
        """Entries after ``self._main_pos`` up to ``end`` (None: until stopped). Each read
        starts after the last ID of the one before, so there is one in flight: once a full
        reply has arrived, its last ID is found by walking it (~1/20 of decoding it) and the
        next read asked for before it is decoded, so the server reads while this decodes."""
        from onepass.sources.transports._redis_kernel import last_id

        wire = self._open_wire()
        count = self.options.batch_size
        follow = end is None
        last_end = None if end is None else _id(end)
        if last_end is not None and (last_end == (0, 0) or _id(self._main_pos) >= last_end):
            return
        block = ("BLOCK", max(1, int(self.poll_seconds * 1000))) if follow else ()

        def ask(after: bytes, wait: bool) -> None:
            wire.send(_command("XREAD", "COUNT", count, *(block if wait else ()), "STREAMS", self.stream_name, after))

        ask(self._main_pos, False)
        while True:
            if self._hold_lost is not None:
                raise self._held_by_other(self._hold_lost)
            data = wire.receive()
            self._read_outage.since = None  # back: a later outage gets its own retry_seconds
            head = _reply_start(data)
            asked = False
            if head is not None and head[1] == count and not self.stopped:
                ahead = last_id(data, *head)
                if ahead is not None and (last_end is None or _id(ahead) < last_end):
                    ask(ahead, False)
                    asked = True
            entries = self._entries(data, head)
            full = len(entries) == count
            entries, done = _up_to(entries, last_end, full)
            pos = entries.ids[-1] if len(entries) else self._main_pos
            if not asked and not done and not self.stopped:
                ask(pos, follow and not full)
            if len(entries):
                chunk = self._chunk(entries, None)
                self._main_pos = pos
                if chunk is not None:
                    yield chunk
            if follow and not full:
                yield caught_up()
            if done or self.stopped:
                return

    @property
    def _claim_every(self) -> float:
        return max(self.claim_idle_seconds / 2, 0.2)

    def _begin_end(self) -> bytes:
        """The last entry's ID when reading begins ("0-0" for an empty stream)."""
        self._ensure_group()
        last = self._call("XREVRANGE", self.stream_name, "+", "-", "COUNT", 1)
        return last[0][0] if last else ZERO

    def _ensure_group(self) -> None:
        import redis

        try:
            self._call("XGROUP", "CREATE", self.stream_name, self.group, "0", "MKSTREAM")
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise DataError(f"{self.name}: cannot create consumer group {self.group!r}: {e}") from None

    def _begin(self, start: dict | None) -> None:
        """Before the first read: where this consumer's own entries resume (after the
        cursor's ID), and its takeovers still holding entries: those the cursor names
        (resumed after their IDs there) and any later ones (read whole). Nothing is
        acknowledged here: the cursor may not be committed yet (a distributed job's worker
        resumes from the driver's), and the entries it counts stay pending until
        :meth:`acknowledge` is given a committed cursor past them."""
        self._ensure_group()
        holder = self._call("GET", self._hold)
        if holder is not None:
            raise self._held_by_other(holder.decode(errors="replace"))
        self._main_pos = ZERO if start is None else start["id"].encode()
        claims = {} if start is None else start["claims"]
        if start is None:
            self._call("HSET", self._marks, self.consumer, ZERO)  # a new state: none of its entries is counted
        segments = [_Segment(name, None, ZERO, pos.encode()) for name, pos in claims.items()]
        for info in self._consumers():
            name = info["name"]
            if name.startswith(self.consumer + CLAIMED) and name not in claims:
                self._call("HSET", self._marks, name, ZERO)
                segments.append(_Segment(name, None, ZERO))
        numbers = [int(x.name.rsplit("-", 1)[1]) for x in segments if x.name.rsplit("-", 1)[1].isdigit()]
        self._segments, self._retired = segments, set()
        self._next_segment = max(numbers, default=0) + 1

    def _consumers(self) -> list[dict[str, Any]]:
        out = []
        for row in self._call("XINFO", "CONSUMERS", self.stream_name, self.group) or []:
            info = {row[i].decode(): row[i + 1] for i in range(0, len(row), 2)}
            info["name"] = info["name"].decode()
            out.append(info)
        return out

    def _dead(self) -> list[str]:
        """Consumers of the group, other than this one and its takeovers, that hold pending
        entries and have not read for claim_idle_seconds (a takeover ``X~claimed-K`` is as
        alive as ``X``)."""
        infos = self._consumers()
        idle = {i["name"]: int(i["idle"]) for i in infos}
        limit = self.claim_idle_seconds * 1000
        dead = []
        for info in infos:
            name = info["name"]
            base = name.split(CLAIMED, 1)[0]
            if base == self.consumer or int(info["pending"]) == 0:
                continue
            if min(idle[name], idle.get(base, idle[name])) >= limit:
                dead.append(name)
        return dead

    def _mark_of(self, consumer: str) -> bytes:
        mark = self._call("HGET", self._marks, consumer)
        return mark or ZERO

    def _claim_page(self, owner: str, after: bytes, into: str, min_idle_ms: int) -> tuple[bytes, int] | None:
        """Claim (JUSTID) the next page of ``owner``'s pending entries after ``after`` into
        ``into``: the page's last ID and how many were claimed, or None when none is left."""
        page = self._call("XPENDING", self.stream_name, self.group, "IDLE", min_idle_ms, b"(" + after, "+",
                          self.options.batch_size, owner)
        if not page:
            return None
        claimed = self._call("XCLAIM", self.stream_name, self.group, into, min_idle_ms, *[p[0] for p in page],
                             "JUSTID")
        return page[-1][0], len(claimed or [])

    def _history(self, consumer: str, seg: int | None) -> Iterator[Chunk]:
        """Read ``consumer``'s pending entries after its position, in ID order."""
        while True:
            pos = self._main_pos if seg is None else self._segments[seg].pos
            if self.stopped:
                return
            wire = self._open_wire()
            wire.send(_command("XREADGROUP", "GROUP", self.group, consumer, "COUNT", self.options.batch_size,
                               "STREAMS", self.stream_name, pos))
            entries = self._entries(wire.receive())
            if not len(entries):
                return
            chunk = self._chunk(entries, seg)
            if seg is None:
                self._main_pos = entries.ids[-1]
            else:
                self._segments[seg].pos = entries.ids[-1]
            if chunk is not None:
                yield chunk

    def _new(self, end: bytes | None) -> Iterator[Chunk]:
        """New entries (``>``), up to ``end`` (None: until stopped), with takeovers between."""
        wire = self._open_wire()
        count = self.options.batch_size
        follow = end is None
        last_end = None if end is None else _id(end)
        in_flight = 0
        full, done = True, last_end is not None and (last_end == (0, 0) or _id(self._main_pos) >= last_end)
        while True:
            claim_due = time.monotonic() >= self._next_claim
            if in_flight == 0:
                if done or self.stopped:
                    break
                block = follow and not full
                wire.send(_command("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count,
                                   *(("BLOCK", max(1, int(self.poll_seconds * 1000))) if block else ()),  # 0: forever
                                   "STREAMS", self.stream_name, ">"))
                in_flight += 1
            data = wire.receive()
            in_flight -= 1
            head = _reply_start(data)
            while head is not None and head[1] == count and in_flight < 2 and not done and not self.stopped \
                    and not claim_due:
                # a full reply: two more reads are asked for before this one is decoded, so the
                # server always has one to write (while these rows wait for the GIL, the queue)
                wire.send(_command("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count,
                                   "STREAMS", self.stream_name, ">"))
                in_flight += 1
            entries = self._entries(data, head)
            full = len(entries) == count
            if done:  # a read sent ahead before the end was seen: past the end, left pending
                continue
            entries, done = _up_to(entries, last_end, full)
            if len(entries):
                chunk = self._chunk(entries, None)
                self._main_pos = entries.ids[-1]
                if chunk is not None:
                    yield chunk
            if follow and not full:
                yield caught_up()  # the rows held are trained on while this waits for more
            if in_flight == 0 and not done and claim_due:
                yield from self._takeovers()
                wire = self._open_wire()
        if not follow and not self.stopped:
            yield from self._takeovers()

    def _takeovers(self) -> Iterator[Chunk]:
        """Take over the pending entries of dead consumers, each as a new segment."""
        self._next_claim = time.monotonic() + self._claim_every
        for owner in self._dead():
            if self.stopped:
                return
            index = len(self._segments)
            seg = _Segment(f"{self.consumer}{CLAIMED}{self._next_segment}", owner, self._mark_of(owner))
            self._next_segment += 1
            self._ack_upto(owner, seg.after)  # what its checkpoints counted
            self._call("HSET", self._marks, seg.name, ZERO)
            self._segments.append(seg)
            yield from self._run_segment(index)

    def _run_segment(self, index: int) -> Iterator[Chunk]:
        """Claim the owner's entries a page at a time into the segment's consumer, and read
        them (again from where it was, after a lost connection)."""
        seg = self._segments[index]
        min_idle = int(self.claim_idle_seconds * 1000)
        while True:
            yield from self._history(seg.name, index)
            if self.stopped:
                return
            if seg.owner is None:  # this consumer's own takeover of an earlier run: read again, no more to claim
                break
            got = self._claim_page(seg.owner, seg.after, seg.name, min_idle)
            if got is None:
                break
            seg.after, k = got
            seg.n_claimed += k
        seg.finished = True
        if seg.owner is not None:
            log.warning("%s: consumer %s took over %d pending entries of consumer %s (idle for %g s or more)",
                        self.name, self.consumer, seg.n_claimed, seg.owner, self.claim_idle_seconds)
            self._delete_if_empty(seg.owner)

    # -- parsing ---------------------------------------------------------------------------
    def _set_layout(self, columns: Any) -> None:
        if isinstance(columns, list):
            self._layout = _Layout.of(len(columns), [str(c) for c in columns], self.options, self.name)
        else:
            self._layout = _Layout.of(int(columns), None, self.options, self.name)
        self.feature_names = self._layout.feature_names

    def _tokens(self, ids: Any, seg: int | None) -> np.ndarray:
        """The positions (``ends``) of entries ``ids``: see :meth:`position`."""
        if seg is None and not self._segments and isinstance(ids, np.ndarray):
            return ids
        out = np.empty(len(ids), dtype=object)
        if seg is not None:
            main = self._main_pos + b" %d " % seg
            out[:] = [main + x for x in ids]
        elif self._segments:
            tail = b" %d" % len(self._segments)
            out[:] = [x + tail for x in ids]
        else:
            out[:] = list(ids)
        return out

    def _entries(self, data: bytes, start: tuple[int, int] | None = None) -> _Entries:
        """The entries of an ``XREADGROUP`` reply (of one stream; ``start``: its
        :func:`_reply_start` when known), decoded: by the compiled pass (``_redis_kernel``)
        once the columns are known, else (a reply it refuses, such as one holding a
        deleted entry) one Python object per field."""
        start = start or _reply_start(data)
        if start is not None:
            first, n = start
            if n == 0:
                return _Entries([])
            if self._layout is None:
                try:
                    head = _resp(data, first)[0]
                except (ValueError, IndexError):
                    head = None
                if isinstance(head, list) and len(head) == 2 and isinstance(head[1], list):
                    self._first_layout(head[1], head[0])
            layout = self._layout
            if layout is not None:
                from onepass.sources.transports._redis_kernel import decode

                mode = "walk" if self.format == "jsonl" else self.format
                decoded = decode(data, first, n, mode, layout.n_cols, layout.names_b, self.row_field or ROW_FIELDS[0],
                                 self.row_field is None, self.options.dtype)
                if decoded is not None:
                    ids, values, problem, starts = decoded
                    return _Entries(ids, data, starts, values, problem)
        reply = _parse_any(data)
        if reply is None:
            return _Entries([])
        entries = reply[0][1] or []
        return _Entries([e[0] for e in entries], items=[e[1] for e in entries])

    def _chunk(self, entries: _Entries, seg: int | None) -> Chunk | None:
        """Entries parsed into a chunk of rows and bad records (deleted ones acknowledged)."""
        ids = entries.ids
        if entries.items is not None and any(x is None for x in entries.items):
            gone = [x for x, f in zip(ids, entries.items, strict=True) if f is None]
            self._call("XACK", self.stream_name, self.group, *gone)  # deleted from the stream: nothing to count
            keep = [i for i, f in enumerate(entries.items) if f is not None]
            entries = _Entries([ids[i] for i in keep], items=[entries.items[i] for i in keep])
            ids = entries.ids
        if not len(ids):
            return None
        if self._layout is None:
            self._first_layout(entries.flat(0) or [], ids[0])
        layout = self._layout
        assert layout is not None
        n = len(ids)
        lines = self._n_records + 1 + np.arange(n, dtype=np.int64)
        self._n_records += n
        tokens = self._tokens(ids, seg)
        dt = self.options.dtype
        bad: list[BadRecord] = []
        if entries.values is None or entries.problem is None:
            values, problem = np.zeros((n, layout.n_cols), dtype=dt), np.ones(n, dtype=bool)
        else:
            values, problem = entries.values, entries.problem
        good = ~problem
        for i in np.flatnonzero(problem):
            flat = entries.flat(int(i))
            try:
                values[i] = self._careful(flat or [], layout)
                good[i] = True
            except _Bad as e:
                bad.append(BadRecord(tokens[i], int(lines[i]), e.reason, e.column, self._raw(flat or [])))
        if not good.all():
            values, tokens, lines = values[good], tokens[good], lines[good]
        X = values[:, layout.features] if len(layout.features) != layout.n_cols else values
        X = np.ascontiguousarray(X, dtype=dt)
        y = None if layout.label is None else np.ascontiguousarray(values[:, layout.label], dtype=dt)
        w = None if layout.weight is None else np.ascontiguousarray(values[:, layout.weight], dtype=dt)
        return Chunk(X, y, w, tokens, lines, bad)

    @staticmethod
    def _raw(flat: list[bytes]) -> str:
        return json.dumps({flat[i].decode(errors="replace"): flat[i + 1].decode(errors="replace")
                           for i in range(0, len(flat) - 1, 2)})

    def _row_value(self, flat: list[bytes]) -> bytes:
        """The field holding a csv/jsonl row."""
        if len(flat) == 2 and self.row_field is None:
            return flat[1]
        names = (self.row_field,) if self.row_field is not None else ROW_FIELDS
        for i in range(0, len(flat) - 1, 2):
            if flat[i] in names:
                return flat[i + 1]
        raise _Bad(f"no field {names[0].decode()!r} holding the row (the entry has "
                   f"{', '.join(repr(flat[i].decode(errors='replace')) for i in range(0, len(flat), 2))})")

    def _first_layout(self, flat: list[bytes], entry_id: bytes) -> None:
        """The columns, from the first entry read."""
        if self.format == "fields":
            self._set_layout([flat[i].decode(errors="replace") for i in range(0, len(flat), 2)])
            return
        try:
            row = self._row_value(flat)
        except _Bad as e:
            raise DataError(f"{self.name}: the first entry read ({entry_id.decode(errors='replace')}) tells the columns, "
                            f"but it has {e.reason}") from None
        if self.format == "csv":
            self._set_layout(len(row.rstrip(b"\r\n").split(b",")))
            return
        try:
            value = json.loads(row)
        except ValueError:
            raise DataError(f"{self.name}: the first entry read ({entry_id.decode(errors='replace')}) tells the columns, but "
                            f"its row is not JSON: {row[:80]!r}") from None
        if isinstance(value, dict):
            self._set_layout([str(k) for k in value])
        elif isinstance(value, list):
            self._set_layout(len(value))
        else:
            raise DataError(f"{self.name}: the first entry read ({entry_id.decode(errors='replace')}) holds {row[:80]!r}, "
                            "neither a JSON array nor an object of numbers")

    def _careful(self, flat: list[bytes], layout: _Layout) -> list[float]:
        """One entry's values, or _Bad saying why not."""
        if self.format == "fields":
            cells: list[Any] = [None] * layout.n_cols
            for i in range(0, len(flat) - 1, 2):
                j = layout.index.get(flat[i])
                if j is None:
                    shown = ", ".join(map(repr, (layout.names or [])[:20]))
                    raise _Bad(f"field {flat[i].decode(errors='replace')!r} is not one of the {layout.n_cols} fields "
                               f"of the first entry ({shown})", flat[i].decode(errors="replace"))
                cells[j] = flat[i + 1]
            return [self._number(v, layout, j) for j, v in enumerate(cells)]
        row = self._row_value(flat)
        if self.format == "csv":
            parts = row.rstrip(b"\r\n").split(b",")
            if len(parts) != layout.n_cols:
                raise _Bad(f"expected {layout.n_cols} columns, got {len(parts)}")
            return [self._number(v, layout, j) for j, v in enumerate(parts)]
        try:
            value = json.loads(row)
        except ValueError:
            raise _Bad(f"not JSON: {row[:80].decode(errors='replace')!r}") from None
        if layout.names is not None:
            if not isinstance(value, dict):
                raise _Bad(f"expected a JSON object like the first entry's, got {type(value).__name__}")
            extra = [k for k in value if k not in layout.names]
            if extra:
                raise _Bad(f"key {extra[0]!r} is not one of the {layout.n_cols} keys of the first entry", extra[0])
            return [self._number(value.get(nm), layout, j) for j, nm in enumerate(layout.names)]
        if not isinstance(value, list):
            raise _Bad(f"expected a JSON array like the first entry's, got {type(value).__name__}")
        if len(value) != layout.n_cols:
            raise _Bad(f"expected {layout.n_cols} columns, got {len(value)}")
        return [self._number(v, layout, j) for j, v in enumerate(value)]

    def _number(self, v: Any, layout: _Layout, j: int) -> float:
        role = layout.role[j]
        column = layout.column(j)
        if v is None or v == b"" or v == "":
            if role == "feature" and self.stream.null == "nan":
                return math.nan
            what = "missing" if v is None else "empty"
            raise _Bad(f"{role} {what}" if role != "feature" else f"value {what} (null='bad')", column)
        if isinstance(v, bool) or not isinstance(v, (bytes, str, int, float)):
            raise _Bad(f"{json.dumps(v)} is not a number", column)
        try:  # strictly, as the file readers: 1_000 and other scripts' digits are not numbers
            x = float(v) if isinstance(v, (int, float)) else parse_float(v.encode() if isinstance(v, str) else v)
        except ValueError:
            text = v.decode(errors="replace") if isinstance(v, bytes) else str(v)
            raise _Bad(f"{text!r} is not a number", column) from None
        if not math.isfinite(x):
            raise _Bad(f"{_nonfinite(x)} is not allowed in a {role} (NaN and inf are not allowed)", column)
        return x


class _Heartbeat(threading.Thread):
    """Calls ``transport.heartbeat()`` every ``every`` seconds until halted (a missed beat
    only lets the idle time grow: the reading thread meets and reports a lost server)."""

    def __init__(self, transport: RedisStreams, every: float) -> None:
        super().__init__(name="onepass-redis-heartbeat", daemon=True)
        self._transport, self._every = transport, every
        self._halted = threading.Event()

    def run(self) -> None:
        import redis

        while not self._halted.wait(self._every):
            try:
                self._transport.heartbeat()
            except (redis.RedisError, OSError):
                pass

    def halt(self) -> None:
        self._halted.set()


class _Wire:
    """One connection for the reads, spoken to in raw RESP: commands out, replies in as
    bytes (each followed by an ``ECHO`` of a random token, which tells where it ends
    without parsing it)."""

    def __init__(self, pool: Any, timeout: float) -> None:
        self._conn = pool.make_connection()
        try:
            self._conn.connect()
        except Exception as e:
            raise _Lost(str(e)) from e
        self._sock = self._conn._sock  # authenticated, on the right database (and TLS)
        self._sock.settimeout(timeout)
        token = secrets.token_hex(16).encode()
        self._echo = _command("ECHO", token)
        self._mark = b"$%d\r\n%s\r\n" % (len(token), token)
        self._buf = bytearray()
        self._scan = 0
        self._chunk = bytearray(1 << 20)
        self._view = memoryview(self._chunk)

    def send(self, command: bytes) -> None:
        try:
            self._sock.sendall(command + self._echo)
        except OSError as e:
            raise _Lost(str(e) or type(e).__name__) from e

    def receive(self) -> bytes:
        """The next reply's bytes."""
        while True:
            at = self._buf.find(self._mark, max(0, self._scan - len(self._mark)))
            if at >= 0:
                with memoryview(self._buf) as view:
                    reply = bytes(view[:at])
                del self._buf[:at + len(self._mark)]
                self._scan = 0
                return reply
            self._scan = len(self._buf)
            try:
                got = self._sock.recv_into(self._view)
            except OSError as e:
                raise _Lost(str(e) or type(e).__name__) from e
            if got == 0:
                raise _Lost("connection closed by the server")
            self._buf += self._view[:got]

    def close(self) -> None:
        try:
            self._conn.disconnect()
        except Exception:  # noqa: BLE001, S110 - closing a dead connection
            pass


