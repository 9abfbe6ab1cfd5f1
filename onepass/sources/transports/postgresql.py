"""The rows of a PostgreSQL query: ``postgresql://USER@HOST:PORT/DB`` with ``query``.

The rows are streamed with ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` through psycopg
3, never fetched whole: the server sends one message per row, a chunk of about
``batch_size`` rows is joined into one buffer and read with NumPy, in one structured
view when every value in it is present and fixed-width (the usual case), row by row in
Python only for rows holding a NULL or, with a text-like key, for the key alone.

Columns
    Every column of the query is a feature, except the label, weight and key columns.
    A feature, label or weight column must be ``boolean``, ``smallint``, ``integer``,
    ``bigint``, ``real``, ``double precision`` or ``numeric`` (the server casts them to
    ``real``, or ``double precision`` for a float64 source, so a row arrives in its final
    type); any other type is an error naming the column. The key column is not a feature
    (like an id): it orders the rows and places the cursor.
NULL, NaN and infinity
    ``null="nan"``: a NULL is NaN, and stored NaN or infinities pass as they are.
    ``null="bad"``: a row holding a NULL, NaN or an infinity is a bad record (the
    ``on_bad_record`` policy), named by its key (or row number) and the column at fault.
Exact resume (``key_column``)
    The rows are read in key order, ``SELECT ... FROM (query) AS q WHERE q.key > last
    ORDER BY q.key`` (keyset): a cursor holds ``{"key_column", "key", "query"}`` (the last
    key and the first 16 hex digits of the query's SHA-256), and resuming asks for the
    rows after that key. The key must be unique (two equal keys in a row are an error)
    and is a number (kept as a JSON number), a ``date``, ``timestamp`` or ``timestamptz``
    (kept as ISO 8601 text), or any other type, kept as its text (``text``, ``uuid``,
    ``numeric``...: read more slowly, a row at a time in Python). Rows whose key is NULL
    are not read (no keyset can place them). Without ``key_column`` the query's rows are
    read in the order the server returns them, once: resuming from a cursor, or going on
    after the connection was lost mid-read, is refused, since nothing names the rows
    already read.
What a read sees
    Without ``follow``, a read (an epoch: the query is run again, so the source is
    rewindable) ends at the largest key the query returned when the read began
    (``SELECT max(key)``, one more evaluation of the query, cheap when the key is
    indexed): rows added meanwhile wait for the next epoch, also across reconnections (a
    resumed run fixes its own end when it starts). With ``follow`` (``key_column``
    required), the read polls every ``poll_seconds`` for rows past the last key until
    :meth:`stop` (which ends it at the next chunk, or at once while it waits): a table
    that keeps growing is a stream. Keys must grow as rows are committed: a row committed later
    with a smaller key than one already read is missed (a ``serial`` taken by a
    transaction that commits after a later one).
Connection lost
    When the server goes away (stopped, restarted, the network), the read reconnects
    with exponential backoff (0.25 s doubling to 5 s), logging each attempt on the
    ``onepass.sources`` logger, and goes on after the last key it handed over: no row is
    lost or read twice. After ``retry_seconds`` without an answer it raises
    :class:`~onepass.errors.OnePassError` naming the server (the run ends; its last
    checkpoint resumes). ``retry_seconds`` and ``poll_seconds`` may be given in the URI's
    query string (``postgresql://u@h:5432/db?retry_seconds=300&poll_seconds=0.5``),
    which wins over the options; every other parameter there goes to libpq.
Workers
    :meth:`PostgresQuery.plan_shards` splits a keyed query into key ranges of about equal
    rows, one per Ray worker, each read as a query of its own.

Memory is a chunk of rows and the socket's buffers, whatever the size of the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from onepass.errors import DataError, InvalidParameterError, OnePassError
from onepass.sources._bad import BadRecord
from onepass.sources._base import Chunk, Options
from onepass.sources.transports import RecordTransport, StreamOptions, caught_up

__all__ = ["PostgresQuery"]

logger = logging.getLogger("onepass.sources")

#: the parameters of a URI's query string this transport reads (the others go to libpq)
URI_PARAMETERS = ("retry_seconds", "poll_seconds")
#: type OIDs of the columns read as numbers
_NUMBER_TYPES = {16: "boolean", 21: "smallint", 23: "integer", 20: "bigint", 700: "real",
                 701: "double precision", 1700: "numeric"}
#: key columns read in binary: type OID -> (kind, big-endian dtype)
_FIXED_KEYS = {21: ("int", ">i2"), 23: ("int", ">i4"), 20: ("int", ">i8"), 700: ("float", ">f4"),
               701: ("float", ">f8"), 1114: ("timestamp", ">i8"), 1184: ("timestamptz", ">i8"),
               1082: ("date", ">i4")}
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_TRAILER = b"\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1)
_PG_EPOCH_DATE = date(2000, 1, 1)
_INFINITY_64 = (np.iinfo(np.int64).max, np.iinfo(np.int64).min)
_INFINITY_32 = (np.iinfo(np.int32).max, np.iinfo(np.int32).min)
_FIRST_BACKOFF, _MAX_BACKOFF = 0.25, 5.0


@dataclass(frozen=True)
class _Key:
    """The key column: its name, SQL type, and how a value is read and kept."""

    name: str
    type_name: str
    kind: str  # int, float, timestamp, timestamptz, date, or text (read as its text)
    dtype: str | None  # big-endian NumPy dtype of its binary value; None for text

    def to_json(self, value: Any) -> Any:
        """A key as read (``Chunk.ends``) -> its value in a cursor."""
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        if self.kind == "text":
            return str(value)
        v = int(value)
        if self.kind == "date":
            if v in _INFINITY_32:
                return "infinity" if v > 0 else "-infinity"
            return (_PG_EPOCH_DATE + timedelta(days=v)).isoformat()
        if v in _INFINITY_64:
            return "infinity" if v > 0 else "-infinity"
        moment = _PG_EPOCH + timedelta(microseconds=v)
        return (moment.replace(tzinfo=UTC) if self.kind == "timestamptz" else moment).isoformat()

    def from_text(self, text: str) -> Any:
        """The server's text of a key -> its value in a cursor."""
        return int(text) if self.kind == "int" else float(text) if self.kind == "float" else text


def _connection_parts(uri: str) -> tuple[str, str, dict[str, float]]:
    """``(libpq URI, name without password, this transport's parameters)`` of ``uri``."""
    parts = urlsplit(uri)
    ours, theirs = {}, []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in URI_PARAMETERS:
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not seconds >= 0 or math.isinf(seconds):
                raise InvalidParameterError(f"{name}={value!r} in {uri.split('?')[0]}'s query string must be a "
                                            "number of seconds >= 0")
            ours[name] = seconds
        else:
            theirs.append((name, value))
    libpq = urlunsplit(parts._replace(query=urlencode(theirs)))
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = user.split(":", 1)[0] + "@" + host
    public = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"]
    name = urlunsplit(parts._replace(netloc=netloc, query=urlencode(public)))
    return libpq, name, ours


class _Backoff:
    """Waits between reconnection attempts, doubling; raises once ``limit`` seconds have
    passed since the first failure of the streak."""

    def __init__(self, transport: PostgresQuery) -> None:
        self._transport = transport
        self._since: float | None = None
        self._delay = _FIRST_BACKOFF
        self._attempts = 0

    def reset(self) -> None:
        if self._since is not None:
            logger.warning("%s: reconnected after %d attempts", self._transport.name, self._attempts)
        self._since, self._delay, self._attempts = None, _FIRST_BACKOFF, 0

    def wait(self, error: BaseException) -> None:
        t = self._transport
        now = time.monotonic()
        if self._since is None:
            self._since = now
        left = self._since + t.retry_seconds - now
        self._attempts += 1
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if left <= 0:
            raise OnePassError(
                f"{t.name}: the PostgreSQL server at {t.server} did not answer for {t.retry_seconds:g} s "
                f"({self._attempts} attempts; last: {reason}); start it or check the URI, then resume (a "
                "checkpoint resumes where the read stopped), or wait longer with ?retry_seconds=N in the URI")
        delay = min(self._delay, left)
        logger.warning("%s: lost the server (%s); reconnecting in %.2f s (attempt %d, giving up in %.0f s)",
                       t.name, reason, delay, self._attempts, left)
        t.wake.wait(delay)
        self._delay = min(2 * self._delay, _MAX_BACKOFF)


class PostgresQuery(RecordTransport):
    """The rows of a query, streamed by ``COPY ... TO STDOUT (FORMAT binary)``.

    See the module's docstring for the columns, NULLs, the keyset resume, ``follow`` and
    reconnection.

    Parameters
    ----------
    uri : str
        ``postgresql://USER[:PASSWORD]@HOST:PORT/DB`` (or ``postgres://``), with
        optional ``retry_seconds`` and ``poll_seconds`` in its query string.
    options : Options
        ``label_column`` and ``weight_column`` by name (or 0-based index among the
        query's columns), ``dtype`` (float32 or float64), ``batch_size`` (the rows of a
        chunk).
    stream : StreamOptions
        ``query`` (required), ``key_column``, ``follow``, ``poll_seconds``, ``null``,
        ``retry_seconds``.
    format : None
        Rows come typed: no format to choose.
    """

    kind = "postgresql"
    is_rewindable = True

    def __init__(self, uri: str, options: Options, stream: StreamOptions, format: str | None = None) -> None:
        super().__init__(uri, options, stream, None)
        self.format = "rows"
        if format not in (None, "rows"):
            raise InvalidParameterError(f"format={format!r} is not used by {uri.split('://')[0]}:// (the rows "
                                        "of a query come typed): leave it out")
        query = (stream.query or "").strip().rstrip(";").strip()
        if not query:
            raise InvalidParameterError(
                "a PostgreSQL source needs the query whose rows it reads: query='SELECT ...' (--query)")
        if stream.follow and stream.key_column is None:
            raise InvalidParameterError(
                "follow=True needs key_column (--key-column): new rows are those past the last key read")
        self.query = query
        #: first 16 hex digits of the query's SHA-256, kept in cursors
        self.query_hash = hashlib.sha256(query.encode()).hexdigest()[:16]
        self._libpq, self._name, given = _connection_parts(uri)
        self.retry_seconds = float(given.get("retry_seconds", stream.retry_seconds))
        self.poll_seconds = float(given.get("poll_seconds", stream.poll_seconds))
        self.wake = threading.Event()  # set by stop(): ends a wait for new rows or for the server
        self._conn: Any = None
        self._value_type = "real" if np.dtype(options.dtype) == np.float32 else "double precision"
        self._value_dtype = ">f4" if self._value_type == "real" else ">f8"
        self._retrying(self._describe)

    # -- RecordTransport -----------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def server(self) -> str:
        """``HOST:PORT`` of the server, for messages."""
        netloc = urlsplit(self._libpq).netloc.rsplit("@", 1)[-1]
        return netloc or "localhost (the default socket)"

    def position(self, end: Any) -> dict:
        if self._key is None:
            return {"row": int(end), "query": self.query_hash}
        return {"key_column": self._key.name, "key": self._key.to_json(end), "query": self.query_hash}

    def where(self, end: Any) -> str:
        return f"row {int(end)}" if self._key is None else f"key {self._key.name}={self._key.to_json(end)}"

    def start_of(self, cursor: dict) -> dict:
        if cursor.get("query") != self.query_hash:
            raise InvalidParameterError(
                f"the cursor was saved reading another query (SHA-256 {cursor.get('query')}...) than this one "
                f"({self.query_hash}...): resume with the same query, or start over without the cursor (--resume)")
        if self._key is None:
            raise InvalidParameterError(
                f"{self.name}: resuming a query needs key_column (--key-column), a unique column ordering its "
                "rows, so the rows after the cursor can be asked for; this query was read without one, so start "
                "over (without --resume), with key_column from now on")
        if cursor.get("key_column") != self._key.name:
            raise InvalidParameterError(
                f"the cursor's key column is {cursor.get('key_column')!r}, not key_column={self._key.name!r}: "
                "resume with the same key column")
        return {"key": cursor["key"]}

    @classmethod
    def plan_shards(cls, uri: str, stream: StreamOptions, format: str | None, workers: int) -> list[dict]:
        """Key ranges of about equal rows, one per worker: each shard's ``query`` is the
        query cut to ``first < key <= last`` (bounds from ``percentile_disc`` over the
        keys, the last the largest key now, so every shard ends where the query did when
        planned). Needs ``key_column``."""
        if stream.key_column is None:
            raise InvalidParameterError("splitting a query among workers needs key_column (--key-column): the "
                                        "workers read ranges of keys")
        from psycopg import sql

        probe = cls(uri, Options(), stream, format)
        try:
            key = probe._key
            assert key is not None
            points = sql.SQL(", ").join(sql.Literal(i / workers) for i in range(1, workers))
            ranks = sql.SQL("CAST(percentile_disc(ARRAY[{}]::float8[]) WITHIN GROUP (ORDER BY q.{}) AS text[])").format(
                points, sql.Identifier(key.name)) if workers > 1 else sql.SQL("ARRAY[]::text[]")
            statement = sql.SQL("SELECT {}, CAST(max(q.{}) AS text) FROM ({}) AS q WHERE q.{} IS NOT NULL").format(
                ranks, sql.Identifier(key.name), sql.SQL(probe.query), sql.Identifier(key.name))
            bounds, top = probe._retrying(lambda conn: conn.execute(statement).fetchone())
        finally:
            probe.close()
        if top is None:
            raise DataError(f"{probe.name}: the query {probe.query!r} returns no rows to split among workers")
        # distinct keys the query returns, so no range is empty
        cuts = [b for i, b in enumerate(bounds or []) if b is not None and b != top and b not in (bounds or [])[:i]]
        shards = []
        lower = None
        for upper in [*cuts, top]:
            where = [sql.SQL("s.{} <= CAST({} AS {})").format(sql.Identifier(key.name), sql.Literal(upper),
                                                                sql.SQL(key.type_name))]
            if lower is not None:
                where.insert(0, sql.SQL("s.{} > CAST({} AS {})").format(sql.Identifier(key.name), sql.Literal(lower),
                                                                        sql.SQL(key.type_name)))
            part = sql.SQL("SELECT * FROM ({}) AS s WHERE {}").format(sql.SQL(probe.query), sql.SQL(" AND ").join(where))
            shards.append({"query": part.as_string(None), "key_column": key.name})
            lower = upper
        return shards

    def stop(self) -> None:
        self._stopped = True
        self.wake.set()

    def close(self) -> None:
        self._drop()

    def read(self, start: dict | None) -> Iterator[Chunk]:
        last = None if start is None else start["key"]
        state = {"line": 0, "last": last}
        upper, has_upper = None, False
        backoff = _Backoff(self)
        while not self.stopped:
            try:
                conn = self._connection()
                if self._key is not None and not self.stream.follow and not has_upper:
                    upper, has_upper = self._max_key(conn), True
                    if upper is None:
                        return
                before = state["line"]
                rows = self._copy(conn, state, upper)
                try:
                    for chunk in rows:
                        backoff.reset()
                        yield chunk
                        if self.stopped:
                            return
                finally:
                    rows.close()
                backoff.reset()
                if not self.stream.follow:
                    return
                if state["line"] == before:
                    yield caught_up()  # the rows held so far are trained on while this waits
                    self.wake.wait(self.poll_seconds)
            except Exception as e:  # psycopg's errors, imported lazily
                self._drop()
                if not self._is_lost(e):
                    raise self._error(e) from None
                if self._key is None and state["line"] > 0:
                    raise OnePassError(
                        f"{self.name}: lost the connection after {state['line']} rows ({e}); without key_column the "
                        "rows not yet read cannot be asked for: give key_column (--key-column), a unique column "
                        "ordering the rows, to go on after a lost connection") from None
                backoff.wait(e)

    # -- connection ------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg

            given = psycopg.conninfo.conninfo_to_dict(self._libpq)
            extra = {k: v for k, v in (("connect_timeout", 10), ("application_name", "onepass")) if k not in given}
            self._conn = psycopg.connect(self._libpq, autocommit=True, **extra)
            # keys of dates and times travel as ISO text in UTC
            self._conn.execute("SELECT set_config('DateStyle', 'ISO', false), set_config('TimeZone', 'UTC', false)")
        return self._conn

    def _drop(self) -> None:
        """Close the connection (mid-COPY too: the server ends it, nothing is drained)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _is_lost(self, error: BaseException) -> bool:
        """Whether ``error`` is the server going away (worth reconnecting), not a query's fault."""
        import psycopg

        if isinstance(error, psycopg.OperationalError):
            state = error.sqlstate
            # no SQLSTATE: libpq's own (refused, closed unexpectedly); 08: connection exception;
            # 57P01-03: the server shutting down, crashed, or starting up
            return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
        return isinstance(error, psycopg.InterfaceError)

    def _error(self, error: BaseException) -> BaseException:
        """A query's or connection's error as onepass's (naming the source and the query)."""
        import psycopg

        if isinstance(error, OnePassError) or not isinstance(error, psycopg.Error):
            return error
        message = str(error).strip()
        if isinstance(error, psycopg.DataError):
            return DataError(f"{self.name}: reading the query {self.query!r} failed: {message}")
        if isinstance(error, psycopg.ProgrammingError | psycopg.NotSupportedError):
            return InvalidParameterError(f"{self.name}: the query {self.query!r} failed: {message}")
        return OnePassError(f"{self.name}: {message} (query {self.query!r})")

    def _retrying(self, action: Any) -> Any:
        backoff = _Backoff(self)
        while True:
            try:
                result = action(self._connection())
                backoff.reset()
                return result
            except Exception as e:
                self._drop()
                if not self._is_lost(e) or self.stopped:
                    raise self._error(e) from None
                backoff.wait(e)

    # -- the query's columns -------------------------------------------------------
    def _describe(self, conn: Any) -> None:
        """Learn the query's columns (``LIMIT 0``), check their types, and plan the COPY."""
        from psycopg import sql

        cur = conn.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(sql.SQL(self.query)))
        columns = [(c.name, c.type_code) for c in cur.description or []]
        names = [n for n, _ in columns]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise InvalidParameterError(
                f"the query returns several columns named {', '.join(map(repr, doubled))}: give each a name of "
                "its own (SELECT a.id AS a_id, b.id AS b_id ...)")
        oids = [int(t) for _, t in columns]
        type_names = dict(conn.execute("SELECT t, format_type(t, NULL) FROM unnest(%s::oid[]) AS t",
                                       (oids,)).fetchall())
        o, s = self.options, self.stream
        roles = {}
        for what, given in (("label_column", o.label_column), ("weight_column", o.weight_column),
                            ("key_column", s.key_column)):
            if given is None:
                continue
            if isinstance(given, int) and not isinstance(given, bool) and 0 <= given < len(names):
                given = names[given]
            if given not in names:
                raise InvalidParameterError(
                    f"{what}={given!r} is not a column of the query, whose columns are {', '.join(names)}")
            if given in roles.values():
                other = next(k for k, v in roles.items() if v == given)
                raise InvalidParameterError(f"{what} and {other} are the same column {given!r}")
            roles[what] = given
        self._key = None
        if "key_column" in roles:
            k = roles["key_column"]
            oid = oids[names.index(k)]
            kind, dtype = _FIXED_KEYS.get(oid, ("text", None))
            self._key = _Key(k, type_names[oid], kind, dtype)
        values = [n for n in names if n not in roles.values()]
        if not values:
            raise InvalidParameterError(f"the query returns no feature column (only {', '.join(names)})")
        label, weight = roles.get("label_column"), roles.get("weight_column")
        for n, oid in columns:
            if n in values or n in (label, weight):
                if oid not in _NUMBER_TYPES:
                    role = "label" if n == label else "weight" if n == weight else "feature"
                    hint = "" if self._key is not None else ", or name it as key_column if it orders the rows"
                    raise InvalidParameterError(
                        f"column {n!r} of the query has type {type_names[oid]}, not a number, so it cannot be a "
                        f"{role}: leave it out of the query, or cast it (SELECT {n}::float8 ...){hint}")
        self.feature_names = values
        self.n_features = len(values)
        self._columns = values + [c for c in (label, weight) if c is not None]
        self._types = [int(oids[names.index(c)]) for c in self._columns]
        self._label_at = None if label is None else len(values)
        self._weight_at = None if weight is None else len(self._columns) - 1
        m, width = len(self._columns), np.dtype(self._value_dtype).itemsize
        fields = [("nf", ">i2"), ("v", [("l", ">i4"), ("x", self._value_dtype)], (m,))]
        self._width = width
        self._n_fields = m + (self._key is not None)
        if self._key is None:
            self._row_dtype = np.dtype(fields)
        elif self._key.dtype is None:  # text: the prefix up to its length, its bytes after
            self._row_dtype = np.dtype([*fields, ("kl", ">i4")])
        else:
            self._row_dtype = np.dtype([*fields, ("kl", ">i4"), ("k", self._key.dtype)])
        self._fixed_size = self._row_dtype.itemsize if self._key is None or self._key.dtype else None

    # -- SQL ---------------------------------------------------------------------
    def _select(self, where: list[Any]) -> Any:
        """``SELECT values, key FROM (query) AS q [WHERE ...] [ORDER BY key]``, composed."""
        from psycopg import sql

        exprs = []
        for c, oid in zip(self._columns, self._types, strict=True):
            col = sql.SQL("q.{}").format(sql.Identifier(c))
            if oid == 16:  # boolean has no cast to a float type
                col = sql.SQL("CAST({} AS integer)").format(col)
            exprs.append(sql.SQL("CAST({} AS {})").format(col, sql.SQL(self._value_type)))
        order = sql.SQL("")
        if self._key is not None:
            key = sql.SQL("q.{}").format(sql.Identifier(self._key.name))
            exprs.append(key if self._key.dtype else sql.SQL("CAST({} AS text)").format(key))
            where = [sql.SQL("{} IS NOT NULL").format(key), *where]
            order = sql.SQL(" ORDER BY {}").format(key)
        cond = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
        return sql.SQL("SELECT {} FROM ({}) AS q{}{}").format(sql.SQL(", ").join(exprs), sql.SQL(self.query),
                                                                cond, order)

    def _bound(self, op: str, value: Any) -> Any:
        from psycopg import sql

        assert self._key is not None
        return sql.SQL("q.{} " + op + " CAST({} AS {})").format(
            sql.Identifier(self._key.name), sql.Literal(value), sql.SQL(self._key.type_name))

    def _max_key(self, conn: Any) -> Any:
        """The largest key the query returns now (the end of a read), in cursor form."""
        from psycopg import sql

        assert self._key is not None
        text = conn.execute(sql.SQL("SELECT CAST(max(q.{}) AS text) FROM ({}) AS q").format(
            sql.Identifier(self._key.name), sql.SQL(self.query))).fetchone()[0]
        return None if text is None else self._key.from_text(text)

    # -- reading -----------------------------------------------------------------
    def _copy(self, conn: Any, state: dict, upper: Any) -> Iterator[Chunk]:
        """Chunks of the rows after ``state["last"]`` (up to ``upper``), by one COPY;
        ``state`` follows the last row handed over."""
        from psycopg import sql

        where = []
        if state["last"] is not None:
            where.append(self._bound(">", state["last"]))
        if upper is not None:
            where.append(self._bound("<=", upper))
        statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(self._select(where))
        size = max(1, int(self.options.batch_size))
        with conn.cursor().copy(statement) as copy:
            try:
                first = True
                for messages in _blocks(conn, copy, size):
                    if first:
                        messages[0] = self._strip_header(messages[0])
                        if not len(messages[0]):
                            del messages[0]
                        first = False
                    if messages and len(messages[-1]) == 2 and bytes(messages[-1]) == _TRAILER:
                        del messages[-1]  # the last message of the COPY
                    if messages:
                        yield self._chunk(messages, state)
                        if self.stopped:
                            self._drop()
                            return
            except BaseException:
                self._drop()  # mid-COPY: close rather than drain the rest
                raise

    @staticmethod
    def _strip_header(data: Any) -> Any:
        head = bytes(data[:19])
        if head[:11] != _SIGNATURE:
            raise DataError(f"unexpected COPY data (no binary signature): {head!r}")
        extension = int.from_bytes(head[15:19], "big")
        return data[19 + extension:]

    def _chunk(self, messages: list[Any], state: dict) -> Chunk:
        """The rows of ``messages`` (one a row) as a Chunk; moves ``state`` past them."""
        n = len(messages)
        buf = b"".join(messages)
        key = self._key
        line0 = state["line"] + 1
        lines = np.arange(line0, line0 + n, dtype=np.int64)
        if self._fixed_size is not None and len(buf) == n * self._fixed_size:
            rows = np.frombuffer(buf, self._row_dtype)
            regular = self._check(rows, None)
            if not regular.all():
                raise DataError(f"{self.name}: unexpected COPY data near row {line0 + int(np.argmin(regular))}")
            values = rows["v"]["x"]
            nulls = None
            keys = None if key is None else rows["k"]
        else:
            values, nulls, keys = self._mixed(messages, buf, line0)
        X = values[:, :self.n_features].astype(self.options.dtype)
        y = None if self._label_at is None else values[:, self._label_at].astype(self.options.dtype)
        w = None if self._weight_at is None else values[:, self._weight_at].astype(self.options.dtype)
        if key is None:
            ends = lines
        elif key.kind == "text":
            ends = keys
        else:
            ends = keys.astype(np.float64 if key.kind == "float" else np.int64)
        if key is not None:
            self._check_unique(ends, state["last_end"] if "last_end" in state else None, lines)
            state["last_end"] = ends[-1]
            state["last"] = key.to_json(ends[-1])
        state["line"] = int(lines[-1])
        bad = self._bad_rows(values, nulls)
        if not bad.any():
            return Chunk(X, y, w, ends, lines)
        good = ~bad
        records = [self._bad_record(values, nulls, int(i), ends[i], int(lines[i])) for i in np.flatnonzero(bad)]
        return Chunk(X[good], None if y is None else y[good], None if w is None else w[good], ends[good],
                     lines[good], records)

    def _check(self, rows: np.ndarray, sizes: np.ndarray | None) -> np.ndarray:
        """Which rows hold every field, present, at the expected width."""
        ok = (rows["nf"] == self._n_fields) & (rows["v"]["l"] == self._width).all(axis=1)
        if self._key is not None:
            if self._key.dtype is not None:
                ok &= rows["kl"] == np.dtype(self._key.dtype).itemsize
            elif sizes is not None:
                ok &= rows["kl"] == sizes - self._row_dtype.itemsize
        return ok

    def _mixed(self, messages: list[Any], buf: bytes, line0: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """Values, NULL mask and keys of rows of different sizes (NULLs, a text key): the
        regular rows gathered into one structured array, the others parsed one by one."""
        n, m = len(messages), len(self._columns)
        sizes = np.fromiter(map(len, messages), np.int64, n)
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(sizes[:-1], out=starts[1:])
        head = self._row_dtype.itemsize
        candidate = np.flatnonzero(sizes == head if self._fixed_size is not None else sizes >= head)
        gathered = np.frombuffer(buf, np.uint8)[starts[candidate, None] + np.arange(head)]
        rows = gathered.view(self._row_dtype).reshape(-1)
        ok = self._check(rows, sizes[candidate])
        regular = np.zeros(n, dtype=bool)
        regular[candidate[ok]] = True
        values = np.empty((n, m), dtype=np.dtype(self._value_dtype).newbyteorder("="))
        values[candidate[ok]] = rows["v"]["x"][ok]
        nulls = np.zeros((n, m), dtype=bool)
        key = self._key
        keys: Any = None
        if key is not None:
            keys = np.empty(n, dtype=object) if key.dtype is None else np.empty(n, dtype=np.dtype(key.dtype))
            if key.dtype is not None:
                keys[candidate[ok]] = rows["k"][ok]
            else:
                for i in candidate[ok]:
                    keys[i] = bytes(messages[i][head:]).decode()
        for i in np.flatnonzero(~regular):
            values[i], nulls[i], k = self._parse_row(bytes(messages[i]), line0 + int(i))
            if key is not None:
                keys[i] = k
        return values, nulls, keys

    def _parse_row(self, row: bytes, line: int) -> tuple[list[float], list[bool], Any]:
        """One row, field by field (a NULL is NaN, flagged)."""
        m, width = len(self._columns), self._width
        fmt = ">f" if width == 4 else ">d"
        try:
            (n_fields,) = struct.unpack_from(">h", row, 0)
            if n_fields != self._n_fields:
                raise ValueError(f"{n_fields} fields, expected {self._n_fields}")
            pos, values, nulls = 2, [], []
            for _ in range(m):
                (size,) = struct.unpack_from(">i", row, pos)
                pos += 4
                if size < 0:
                    values.append(math.nan)
                    nulls.append(True)
                    continue
                if size != width:
                    raise ValueError(f"a value of {size} bytes, expected {width}")
                values.append(struct.unpack_from(fmt, row, pos)[0])
                nulls.append(False)
                pos += size
            key = None
            if self._key is not None:
                (size,) = struct.unpack_from(">i", row, pos)
                raw = row[pos + 4:pos + 4 + size]
                key = raw.decode() if self._key.dtype is None else np.frombuffer(raw, self._key.dtype)[0]
        except (struct.error, ValueError, UnicodeDecodeError) as e:
            raise DataError(f"{self.name}: unexpected COPY data at row {line}: {e}") from None
        return values, nulls, key

    def _check_unique(self, ends: np.ndarray, before: Any, lines: np.ndarray) -> None:
        assert self._key is not None
        same = ends[1:] == ends[:-1]
        if before is not None and ends[0] == before:
            i, line = 0, int(lines[0]) - 1
        elif same.any():
            i = int(np.argmax(same))
            line = int(lines[i])
            i += 1
        else:
            return
        raise DataError(
            f"{self.name}: key_column {self._key.name!r} is not unique: key {self._key.to_json(ends[i])} is on rows "
            f"{line} and {line + 1} of the query; exact resume needs a unique key (a primary key), or a query "
            "that makes one")

    def _bad_rows(self, values: np.ndarray, nulls: np.ndarray | None) -> np.ndarray:
        if self.stream.null != "bad":
            return np.zeros(len(values), dtype=bool)
        bad = ~np.isfinite(values).all(axis=1)
        return bad if nulls is None else bad | nulls.any(axis=1)

    def _bad_record(self, values: np.ndarray, nulls: np.ndarray | None, i: int, end: Any, line: int) -> BadRecord:
        row = values[i]
        null = np.zeros(len(row), dtype=bool) if nulls is None else nulls[i]
        j = int(np.argmax(null | ~np.isfinite(row)))
        role = "label" if j == self._label_at else "weight" if j == self._weight_at else "feature"
        if null[j]:
            reason = f"{role} missing (NULL)" if role != "feature" else "missing value (NULL)"
        else:
            reason = f"{row[j]} is not allowed in a {role} with null='bad' (NaN and infinities are not)"
        raw = {c: (None if null[k] else float(row[k])) for k, c in enumerate(self._columns)}
        if self._key is not None:
            raw[self._key.name] = self._key.to_json(end)
        return BadRecord(end, line, reason, self._columns[j], json.dumps(raw))


def _blocks(conn: Any, copy: Any, size: int) -> Iterator[list[Any]]:
    """The COPY's data messages (one a row), in lists of ``size`` (the last shorter).

    The messages libpq already holds are taken straight from it
    (``PGconn.get_copy_data``), without the generator and wait machinery psycopg runs
    for every message (half the client's time at 500k rows/s); only when none is
    buffered does psycopg's ``Copy.read`` wait for more. The end of the COPY, when
    reached here, is finished here: its results read, an error in them raised.
    """
    import psycopg
    from psycopg import pq

    pgconn = conn.pgconn
    get = pgconn.get_copy_data
    block: list[Any] = []
    append = block.append
    while True:
        nbytes, data = get(1)
        if nbytes == 0:  # nothing buffered: psycopg waits for the socket
            data = copy.read()
            nbytes = len(data) or -1
            if nbytes < 0:
                break
        elif nbytes < 0:
            error = None
            while True:  # the end: read the command's results (the connection is then idle)
                while pgconn.is_busy():
                    conn.wait(_readable(pgconn))
                result = pgconn.get_result()
                if result is None:
                    break
                if result.status == pq.ExecStatus.FATAL_ERROR and error is None:
                    error = psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
            if error is not None:
                raise error
            break
        append(data)
        if len(block) >= size:
            yield block
            block = []
            append = block.append
    if block:
        yield block


def _readable(pgconn: Any) -> Iterator[Any]:
    """A psycopg wait generator: until the socket has data, then take it in."""
    from psycopg.waiting import Wait

    while not (yield Wait.R):
        continue
    pgconn.consume_input()
