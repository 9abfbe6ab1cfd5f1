"""Redis Streams (``redis://``) against a real redis-server on loopback, started here.

Reading (values, labels, columns, bad records, nulls), the CLI and ``--resume``, exactly
once across SIGKILLs while a producer adds entries, two consumers of one group and the
takeover of a dead one, ``--follow`` ended by SIGTERM, and the server stopped or gone
mid-run. Nothing is mocked; every subprocess is ``python -m onepass.cli``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from onepass import open_source
from onepass.errors import BadRecordError, DataError, InvalidParameterError
from onepass.io import load_checkpoint, load_model
from tests.checkpoints_seen import rows_checkpointed
from tests.transports.redis_server import RedisServer, fill_stream, redis_server

BATCH = 500


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as s:
        yield s


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of the test's own, to stop and start."""
    with redis_server() as s:
        yield s


def rows(start: int, n: int) -> np.ndarray:
    """Rows ``start...start+n``: the entry number, and two values exact in float32 and in
    ``%.6f`` text (so sums and models compare exactly)."""
    i = np.arange(start, start + n, dtype=np.float64)
    return np.column_stack([i, (i * i) % 1009 / 8.0, (i % 7) * 0.5 - 1.0])


def train(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onepass.cli", "train", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def start_train(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "onepass.cli", "train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def n_pending(server: RedisServer, stream: str, group: str) -> int:
    return int(server.client().xpending(stream, group)["pending"])


def is_delivered(server: RedisServer, stream: str, group: str) -> bool:
    """Whether the group has been delivered the stream's last entry."""
    r = server.client()
    last = r.execute_command("XREVRANGE", stream, "+", "-", "COUNT", 1)
    groups = {g["name"]: g for g in r.xinfo_groups(stream)} if last else {}
    return bool(last) and groups.get(group.encode(), {}).get("last-delivered-id") == last[0][0]


def wait_for(what: str, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def read_all(uri: str, **kw) -> tuple[np.ndarray, np.ndarray | None, list[dict], object]:
    Xs, ys, cursors = [], [], []
    with open_source(uri, batch_size=kw.pop("batch_size", 64), **kw) as src:
        for b in src:
            Xs.append(b.X)
            ys.append(b.y)
            cursors.append(b.cursor)
    y = None if ys[0] is None else np.concatenate(ys)
    return np.concatenate(Xs), y, cursors, src


# -- reading -----------------------------------------------------------------------------
def test_fields_are_columns_label_and_weight_by_name(server: RedisServer) -> None:
    data = rows(0, 300)
    ids = fill_stream(server, "cols", data, names=["id", "y", "w"])
    X, y, cursors, src = read_all(server.uri, stream="cols", consumer="c", label_column="y", weight_column="w")
    np.testing.assert_array_equal(X, data[:, :1].astype(np.float32))
    np.testing.assert_array_equal(y, data[:, 1].astype(np.float32))
    assert src.feature_names == ["id"] and src.n_rows_read == 300 and src.n_features == 1
    last = cursors[-1]
    assert (last["transport"], last["stream"], last["group"], last["consumer"]) == ("redis", "cols", "onepass", "c")
    assert last["id"] == ids[-1].decode() and last["columns"] == ["id", "y", "w"] and last["rows"] == 300
    with open_source(server.uri + "?stream=cols&consumer=c", label_column="y", weight_column="w") as src:
        batch = next(iter(src))
        np.testing.assert_array_equal(batch.w, data[:, 2].astype(np.float32))
    # fields in another order in a later entry are matched by name
    fill_stream(server, "order", data[:2], names=["a", "b", "c"])
    fill_stream(server, "order", data[2:4, ::-1], names=["c", "b", "a"])
    X, _, _, src = read_all(server.uri + "?stream=order")
    np.testing.assert_array_equal(X, data[:4].astype(np.float32))
    assert src.feature_names == ["a", "b", "c"]


def test_csv_and_jsonl_rows_in_one_field(server: RedisServer) -> None:
    data = rows(0, 200)
    fill_stream(server, "csv", data, field="data")
    X, y, _, _ = read_all(server.uri + "?stream=csv", format="csv", label_column=0)
    np.testing.assert_array_equal(X, data[:, 1:].astype(np.float32))
    np.testing.assert_array_equal(y, data[:, 0].astype(np.float32))
    r = server.client()
    for row in data[:50].tolist():
        r.xadd("jsonl-obj", {"row": json.dumps({"a": row[0], "b": row[1], "y": row[2]}), "meta": "x"})
        r.xadd("jsonl-arr", {"data": json.dumps(row)})
    X, y, _, src = read_all(server.uri + "?stream=jsonl-obj&field=row", format="jsonl", label_column="y")
    np.testing.assert_array_equal(X, data[:50, :2].astype(np.float32))
    np.testing.assert_array_equal(y, data[:50, 2].astype(np.float32))
    assert src.feature_names == ["a", "b"]
    X, _, _, _ = read_all(server.uri + "?stream=jsonl-arr", format="jsonl")
    np.testing.assert_array_equal(X, data[:50].astype(np.float32))


def test_bad_records_fail_skip_quarantine(server: RedisServer, tmp_path: Path) -> None:
    r = server.client()
    good = rows(0, 10)
    ids = fill_stream(server, "bad", good[:4], names=["a", "b", "c"])
    bad_id = r.xadd("bad", {"a": "1", "b": "oops", "c": "2"})
    extra_id = r.xadd("bad", {"a": "1", "b": "2", "c": "3", "d": "4"})
    ids += fill_stream(server, "bad", good[4:], names=["a", "b", "c"])
    with pytest.raises(BadRecordError) as e:
        read_all(server.uri + "?stream=bad&group=fail")
    message = str(e.value)
    assert "stream bad" in message and f"id {bad_id.decode()}" in message and "column 'b'" in message
    assert "'oops' is not a number" in message and e.value.line == 5
    X, _, cursors, src = read_all(server.uri + "?stream=bad&group=skip", on_bad_record="skip", batch_size=4)
    np.testing.assert_array_equal(X, good.astype(np.float32))
    assert src.n_skipped == 2 and cursors[-1]["skipped"] == 2
    quarantine = tmp_path / "q.jsonl"
    X, _, _, src = read_all(server.uri + "?stream=bad&group=q", on_bad_record="quarantine",
                            quarantine_file=quarantine)
    records = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert src.n_quarantined == 2 and len(X) == 10
    assert records[0]["column"] == "b" and json.loads(records[0]["raw"]) == {"a": "1", "b": "oops", "c": "2"}
    assert f"id {extra_id.decode()}" in records[1]["source"] and records[1]["column"] == "d"
    assert "is not one of the 3 fields" in records[1]["reason"]


def test_line_breaks_in_values_and_deleted_entries(server: RedisServer) -> None:
    """A value holding a line break and what looks like more fields (walked by its length,
    read carefully: a bad record), entries deleted while pending (a reply the compiled
    decoder refuses, decoded one by one)."""
    r = server.client()
    good = rows(0, 6)
    fill_stream(server, "crlf", good[:3], names=["a", "b", "c"])
    r.xadd("crlf", {"a": "1", "b": "2\r\n$1\r\nc\r\n$1\r\n7", "c": "3"})
    fill_stream(server, "crlf", good[3:], names=["a", "b", "c"])
    X, _, _, src = read_all(server.uri + "?stream=crlf", on_bad_record="skip")
    np.testing.assert_array_equal(X, good.astype(np.float32))
    assert src.n_skipped == 1
    ids = fill_stream(server, "deleted", rows(0, 10))
    uri = server.uri + "?stream=deleted&consumer=c"
    with open_source(uri, batch_size=4) as src:
        next(src)  # all 10 delivered, none acknowledged
    r.xdel("deleted", ids[1], ids[6])
    X, _, cursors, src = read_all(uri, batch_size=4)  # no cursor: the pending entries are read again
    np.testing.assert_array_equal(X, np.delete(rows(0, 10), [1, 6], axis=0).astype(np.float32))
    src.acknowledge(cursors[-1])
    assert n_pending(server, "deleted", "onepass") == 0


def _reply(entries: list[tuple[bytes, list[bytes] | None]]) -> tuple[bytes, int]:
    """An XREADGROUP reply (RESP2) of ``entries`` (ID, flat fields or None: deleted), and
    where its entries begin."""
    def bulk(x: bytes) -> bytes:
        return b"$%d\r\n%s\r\n" % (len(x), x)

    head = b"*1\r\n*2\r\n" + bulk(b"s") + b"*%d\r\n" % len(entries)
    body = b"".join(b"*2\r\n" + bulk(i) + (b"*-1\r\n" if f is None else b"*%d\r\n" % len(f) + b"".join(map(bulk, f)))
                    for i, f in entries)
    return head + body, len(head)


NUMBERS = ["1", "-0", "+1.5", ".5", "5.", "1e5", "1E-5", "-2.5e+3", "1e22", "1e23", "1e-22", "1e-23", "0.1",
           "0001.083745", "-0000.000001", "123456789012345678", "1234567890123456789", "9007199254740992",
           "9007199254740993", "3.4028235e38", "0.30000000000000004", "nan", "inf", "-inf", " 1", "1 ", "1_0", "",
           "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "1,2", "0x10", "١", "1\r\n"]


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@pytest.mark.parametrize("mode", ["fields", "csv"])
def test_compiled_decoder_reads_numbers_as_float_does(mode: str) -> None:
    """Every value the compiled pass reads is float(text) rounded to float32, bit for bit;
    every other is flagged for the careful path (which says what is wrong)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from onepass.sources.transports._redis_kernel import decode

    def check(texts: list[str]) -> None:
        if mode == "fields":
            entries = [(b"1-%d" % i, [b"x", t.encode()]) for i, t in enumerate(texts)]
        else:
            entries = [(b"1-%d" % i, [b"data", t.encode() + b",2"]) for i, t in enumerate(texts)]
        data, first = _reply(entries)
        got = decode(data, first, len(texts), mode, 1 if mode == "fields" else 2, [b"x"], b"data", True, np.float32)
        assert got is not None
        ids, values, problem, _ = got
        assert [x.decode() for x in ids] == [f"1-{i}" for i in range(len(texts))]
        for i, t in enumerate(texts):
            want = _float_or_none(t)
            if problem[i]:
                continue  # the careful path reads it with float()
            assert want is not None, t
            assert np.float32(want).tobytes() == values[i, 0].tobytes(), t
            if mode == "csv":
                assert values[i, 1] == 2
        simple = [t for t in texts if t.strip() == t and t.isascii() and (_float_or_none(t) or 0) != 0
                  and "_" not in t and abs(_float_or_none(t) or 0) < 1e15 and len(t.lstrip("+-").replace(".", "")) <= 15
                  and "e" not in t.lower() and t.lstrip("+-")[:1] not in ("n", "i")]
        assert not any(problem[texts.index(t)] for t in simple), "plain decimals are read by the compiled pass"

    check(NUMBERS)
    decimals = st.builds(lambda s, i, f, e: f"{s}{i}{'.' + f if f is not None else ''}{e}",
                         st.sampled_from(["", "-", "+"]), st.integers(0, 10**12), st.one_of(st.none(), st.text(
                             "0123456789", max_size=12)), st.sampled_from(["", "e-7", "E3", "e+21", "e-30"]))
    settings(max_examples=300, deadline=None)(given(st.lists(decimals | st.text(max_size=6), min_size=1,
                                                             max_size=20))(check))()


def test_compiled_decoder_refuses_what_is_not_a_plain_reply() -> None:
    from onepass.sources.transports._redis_kernel import decode

    data, first = _reply([(b"1-0", [b"a", b"1"]), (b"1-1", None)])
    assert decode(data, first, 2, "fields", 1, [b"a"], b"data", True, np.float32) is None  # deleted entry
    data, first = _reply([(b"1-0", [b"a", b"1"]), (b"1-1", [b"a", b"2"])])
    assert decode(data, first, 3, "fields", 1, [b"a"], b"data", True, np.float32) is None  # fewer than said
    assert decode(data[:-1], first, 2, "fields", 1, [b"a"], b"data", True, np.float32) is None  # cut short
    assert decode(data + b"+OK\r\n", first, 2, "fields", 1, [b"a"], b"data", True, np.float32) is None
    # other fields, another order, a CSV row of another width: flagged, not refused
    data, first = _reply([(b"1-0", [b"a", b"1", b"b", b"2"]), (b"1-1", [b"b", b"2", b"a", b"1"]),
                          (b"1-2", [b"a", b"1"]), (b"1-3", [b"a", b"1", b"b", b"2\r\n$1"])])
    _, values, problem, _ = decode(data, first, 4, "fields", 2, [b"a", b"b"], b"data", True, np.float64)
    assert problem.tolist() == [False, True, True, True] and values[0].tolist() == [1, 2]
    data, first = _reply([(b"1-0", [b"data", b"1,2"]), (b"1-1", [b"data", b"1,2,3"]), (b"1-2", [b"row", b"1,2"]),
                          (b"1-3", [b"m", b"x", b"data", b"3,4"]), (b"1-4", [b"data", b"1,2\r\n"])])
    _, values, problem, _ = decode(data, first, 5, "csv", 2, [], b"data", True, np.float32)
    assert problem.tolist() == [False, True, False, False, True] and values[3].tolist() == [3, 4]
    _, _, problem, _ = decode(data, first, 5, "csv", 2, [], b"data", False, np.float32)
    assert problem.tolist() == [False, True, True, False, True]  # ?field=data: the only field is not taken


def test_null_nan_or_bad(server: RedisServer) -> None:
    r = server.client()
    fill_stream(server, "nulls", rows(0, 3), names=["a", "b", "y"])
    r.xadd("nulls", {"a": "5", "y": "1"})  # b absent
    r.xadd("nulls", {"a": "", "b": "2", "y": "1"})  # a empty
    r.xadd("nulls", {"a": "1", "b": "2"})  # the label absent: always bad
    X, y, _, src = read_all(server.uri + "?stream=nulls&group=nan", label_column="y", on_bad_record="skip")
    assert len(X) == 5 and src.n_skipped == 1
    assert X[3, 0] == 5 and np.isnan(X[3, 1]) and np.isnan(X[4, 0]) and X[4, 1] == 2
    X, y, _, src = read_all(server.uri + "?stream=nulls&group=bad", label_column="y", on_bad_record="skip",
                            null="bad")
    assert len(X) == 3 and src.n_skipped == 3
    with pytest.raises(BadRecordError, match="column 'y': label missing"):
        read_all(server.uri + "?stream=nulls&group=fail", label_column="y")


def test_settings_and_cursors_that_do_not_fit(server: RedisServer) -> None:
    fill_stream(server, "fit", rows(0, 10))
    with pytest.raises(InvalidParameterError, match="names no stream"):
        open_source(server.uri)
    with pytest.raises(InvalidParameterError, match="give it once"):
        open_source(server.uri + "?stream=fit", stream="other")
    with pytest.raises(InvalidParameterError, match="retry_seconds"):
        open_source(server.uri + "?stream=fit&retry_seconds=soon")
    _, _, cursors, _ = read_all(server.uri + "?stream=fit&consumer=c1&group=g1")
    with pytest.raises(InvalidParameterError, match="group 'g1', this run group 'g2'"):
        open_source(server.uri + "?stream=fit&group=g2", cursor=cursors[-1])
    with pytest.raises(InvalidParameterError, match="written by consumer 'c1'"):
        open_source(server.uri + "?stream=fit&group=g1&consumer=c2", cursor=cursors[-1])
    with pytest.raises(InvalidParameterError, match="the same stream"):
        open_source(server.uri + "?stream=other&group=g1", cursor=cursors[-1])
    assert "password" not in open_source("redis://:secret@127.0.0.1:1/0?stream=s").transport.name


def test_resume_from_a_cursor_reads_what_it_does_not_count(server: RedisServer) -> None:
    """In process, a run killed after committing a checkpoint and before acknowledging it:
    the next run acknowledges what the cursor counts and reads the rest, once."""
    data = rows(0, 1000)
    fill_stream(server, "cur", data)
    uri = server.uri + "?stream=cur&consumer=c"
    with open_source(uri, batch_size=100) as src:
        batches = [next(src) for _ in range(5)]  # 500 read (and more delivered ahead), none acknowledged
    assert n_pending(server, "cur", "onepass") >= 500
    X, _, cursors, src = read_all(uri, cursor=batches[2].cursor, batch_size=100)
    np.testing.assert_array_equal(X, data[300:].astype(np.float32))
    assert src.n_rows_read == 1000
    src.acknowledge(cursors[-1])
    assert n_pending(server, "cur", "onepass") == 0


@pytest.mark.parametrize("recreate_from", [1, 10**9])
def test_the_only_consumer_acknowledges_all_at_once(server: RedisServer, monkeypatch: pytest.MonkeyPatch,
                                                    recreate_from: int) -> None:
    """Acknowledging everything the group's only consumer holds (the group recreated where
    it was, or the consumer deleted) leaves the same group: nothing pending, the same last
    delivered ID and entries read, and a next read gets the new entries only, once. With
    another consumer in the group, or entries held past the cursor, only what the cursor
    counts is acknowledged."""
    from onepass.sources.transports import redis_streams

    monkeypatch.setattr(redis_streams, "RECREATE_FROM", recreate_from)
    stream = f"alone-{recreate_from}"
    ids = fill_stream(server, stream, rows(0, 300))
    r = server.client()

    def group() -> dict:
        return next(g for g in r.xinfo_groups(stream) if g["name"] == b"onepass")

    X, _, cursors, src = read_all(server.uri + f"?stream={stream}&consumer=c", batch_size=100)
    before = group()
    src.acknowledge(cursors[-1])
    after = group()
    assert after["pending"] == 0 and after["last-delivered-id"] == ids[-1] == before["last-delivered-id"]
    assert after.get("entries-read") == before.get("entries-read") and after.get("lag") == before.get("lag")
    ids += fill_stream(server, stream, rows(300, 200))
    r.execute_command("XREADGROUP", "GROUP", "onepass", "other", "COUNT", 50, "STREAMS", stream, ">")
    X, _, cursors, src = read_all(server.uri + f"?stream={stream}&consumer=c", batch_size=100)
    np.testing.assert_array_equal(X, rows(350, 150).astype(np.float32))  # 300-349 went to the other consumer
    src.acknowledge(cursors[-1])
    assert group()["pending"] == 50 and group()["consumers"] == 1  # the other's 50 left alone; c deleted
    ids += fill_stream(server, stream, rows(500, 100))
    with open_source(server.uri + f"?stream={stream}&consumer=c", batch_size=40) as src:
        first, _ = next(src), next(src)  # 80 or more delivered, 40 counted
        held = group()["pending"] - 50
        src.acknowledge(first.cursor)
    assert held >= 80 and group()["pending"] == 50 + held - 40


def test_a_live_consumer_waiting_on_training_is_not_taken_over(server: RedisServer) -> None:
    """A consumer whose reading waits (training is slower) for several claim_idle_seconds
    keeps its entries: its heartbeat shows it alive to a consumer that starts meanwhile."""
    fill_stream(server, "alive", rows(0, 1000))
    uri = server.uri + "?stream=alive&claim_idle_seconds=0.5"
    with open_source(uri + "&consumer=a", batch_size=100) as a:
        seen = [next(a).X]  # a has read ahead: more of its entries are delivered, not handed over
        time.sleep(1.5)
        X, _, _, _ = read_all(uri + "&consumer=b", batch_size=100)
        seen += [X] + [batch.X for batch in a]
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)[:, 0]), np.arange(1000))


# -- the command line --------------------------------------------------------------------
def test_cli_trains_acknowledges_and_resumes_on_new_entries(server: RedisServer, tmp_path: Path) -> None:
    fill_stream(server, "cli", rows(0, 3000))
    args = ["kmeans", "--data", server.uri, "--stream", "cli", "--group", "g", "--n-clusters", "3",
            "--out", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "ck"), "--batch-size", str(BATCH),
            "--checkpoint-every-rows", "1000", "--quiet"]
    done = train(*args)
    assert done.returncode == 0, done.stderr
    assert load_model(tmp_path / "m")[1]["rows_seen"] == 3000
    assert n_pending(server, "cli", "g") == 0
    fill_stream(server, "cli", rows(3000, 700))
    done = train(*args, "--resume")
    assert done.returncode == 0, done.stderr
    _, manifest = load_model(tmp_path / "m")
    assert manifest["rows_seen"] == 3700  # the 3000 read before are not read again
    assert n_pending(server, "cli", "g") == 0


# -- exactly once --------------------------------------------------------------------------
class Producer(threading.Thread):
    """Adds ``rows(i, ...)`` in small bursts until stopped, waiting out a server away."""

    def __init__(self, server: RedisServer, stream: str, per_burst: int = 100, pause: float = 0.05,
                 make=rows) -> None:
        super().__init__(daemon=True)
        self.server, self.stream, self.per_burst, self.pause, self.make = server, stream, per_burst, pause, make
        self.n = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                fill_stream(self.server, self.stream, self.make(self.n, self.per_burst), start=1_000_000 + self.n,
                            fmt="%g")
            except (OSError, RuntimeError):
                # a burst cut off by a stopped server: IDs are explicit, so what was added is found again
                time.sleep(0.1)
                try:
                    last = self.server.client().execute_command("XREVRANGE", self.stream, "+", "-", "COUNT", 1)
                except Exception:  # noqa: BLE001 - still away
                    continue
                ms, seq = last[0][0].split(b"-") if last else (b"1000000", b"0")
                self.n = int(ms) - 1_000_000 + int(seq)
                continue
            self.n += self.per_burst
            time.sleep(self.pause)


def kill_follower_while_producing(server: RedisServer, stream: str, killed: list[str], ck: Path, kills: int,
                                  seed: int, min_progress: int) -> int:
    """Start ``train *killed --follow`` and SIGKILL it ``kills`` times while a producer adds
    entries (bits): one kill in four during start-up, the others at a random instant after
    a new checkpoint; at least ``min_progress`` runs must have checkpointed more. Returns
    the entries produced."""
    producer = Producer(server, stream, make=bits)
    producer.start()
    rng = random.Random(seed)
    progress = [0]
    try:
        for k in range(kills):
            proc = start_train(*killed, "--follow")
            if k % 4 == 3:  # during start-up: imports, connecting, resuming
                time.sleep(rng.uniform(0.05, 1.0))
            else:  # while reading, training and checkpointing: after its first checkpoint, at a random instant
                wait_for("a checkpoint", lambda p=proc: rows_checkpointed(ck) > progress[-1] or p.poll() is not None)
                time.sleep(rng.uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
            progress.append(rows_checkpointed(ck))
    finally:
        producer.halt.set()
        producer.join()
    assert sum(b > a for a, b in zip(progress, progress[1:], strict=False)) >= min_progress, progress
    return producer.n


def test_sigkilled_consumer_counts_every_entry_once(server: RedisServer, tmp_path: Path) -> None:
    """A follower killed 22 times at random instants while a producer adds entries, then a
    run to the end: every entry counted once, the same statistics as a run never killed.

    PCA (exact) on the bits of each entry's number: its state's sums and ``X'X`` are exact
    whatever the batches (a follower trains on a short batch whenever it catches up, so
    the batches of the killed runs are not those of the unkilled one)."""
    stream, ck = "kill", tmp_path / "ck"
    common = ["pca", "--n-components", "2", "--mode", "exact", "--data", server.uri, "--stream", stream, "--seed", "7",
              "--batch-size", str(BATCH), "--quiet"]
    killed = [*common, "--group", "g", "--consumer", "c", "--checkpoint-dir", str(ck), "--checkpoint-every-rows",
              "1000", "--resume"]
    n = kill_follower_while_producing(server, stream, killed, ck, kills=22, seed=19, min_progress=15)
    done = train(*killed)
    assert done.returncode == 0, done.stderr
    assert n_pending(server, stream, "g") == 0
    done = train(*common, "--group", "reference", "--checkpoint-dir", str(tmp_path / "reference"))
    assert done.returncode == 0, done.stderr
    assert_counted_once([ck], n)
    assert_counted_once([tmp_path / "reference"], n)


def bits(start: int, n: int, width: int = 17) -> np.ndarray:
    """Rows ``start...start+n`` as the bits of their number: over a set of rows, the column
    sums count the rows with each bit set and ``X'X`` the rows with each pair, so two sets
    of the same size with the same counts hold no row twice in place of another."""
    i = np.arange(start, start + n)
    return ((i[:, None] >> np.arange(width)) & 1).astype(np.float64)


def moments(ckpt: Path) -> tuple[int, np.ndarray, np.ndarray]:
    """Rows, column sums and ``X'X`` of the rows a PCA (exact) checkpoint has counted, from
    its mean and centered scatter (whole numbers here: rounded, they are exact whatever the
    order and the batches the rows came in)."""
    state, manifest = load_checkpoint(ckpt)
    arrays = state.to_arrays()[1]
    n, mean = int(manifest["rows_seen"]), np.asarray(arrays["mean"])
    return n, np.rint(mean * n), np.rint(np.asarray(arrays["scatter"]) + n * np.outer(mean, mean))


def assert_counted_once(parts: list[Path], n: int) -> None:
    """The checkpoints ``parts`` together counted rows ``bits(0, n)``, each once."""
    X = bits(0, n)
    got = [moments(p) for p in parts]
    assert sum(g[0] for g in got) == n
    np.testing.assert_array_equal(sum(g[1] for g in got), X.sum(axis=0))
    np.testing.assert_array_equal(sum(g[2] for g in got), X.T @ X)


def test_two_consumers_split_a_stream_and_one_takes_over_the_dead(server: RedisServer, tmp_path: Path) -> None:
    n = 10_000

    def follower(stream: str, consumer: str, env: dict | None = None) -> subprocess.Popen:
        return start_train("pca", "--n-components", "1", "--mode", "exact", "--data",
                           server.uri + "?claim_idle_seconds=2&poll_seconds=0.2", "--stream", stream, "--consumer",
                           consumer, "--batch-size", str(BATCH), "--quiet", "--checkpoint-dir", str(tmp_path / consumer),
                           "--checkpoint-every-rows", str(BATCH), "--resume", "--follow", env=env)

    def produce_when_both_read(stream: str, names: set[bytes], until=None) -> int:
        """Entries in bursts of 250 once both read: ``n``, and (``until``) more until it
        holds (the slower consumer may get too few of the first ``n`` on a busy machine)."""
        wait_for("both consumers to read", lambda: names <= {
            c["name"] for c in server.client().xinfo_consumers(stream, "onepass")})
        a = 0
        while a < n or (until is not None and not until() and a < 40 * n):
            fill_stream(server, stream, bits(a, 250), fmt="%d")
            a += 250
            time.sleep(0.01)
        return a

    # two followers of one group split the entries added while they read
    server.client().xgroup_create("split", "onepass", id="0", mkstream=True)
    a, b = follower("split", "a"), follower("split", "b")
    n = produce_when_both_read("split", {b"a", b"b"},
                               until=lambda: rows_checkpointed(tmp_path / "a") > 0 and rows_checkpointed(tmp_path / "b") > 0)
    wait_for("every entry delivered", lambda: is_delivered(server, "split", "onepass"))
    for proc in (a, b):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert rows_checkpointed(tmp_path / "a") > 0 and rows_checkpointed(tmp_path / "b") > 0
    assert_counted_once([tmp_path / "a", tmp_path / "b"], n)  # no entry twice, none left out
    assert n_pending(server, "split", "onepass") == 0

    # d dies in its 2nd checkpoint write, holding entries delivered after its 1st; e, still
    # following, takes them over once d has been idle for 2 s
    server.client().xgroup_create("take", "onepass", id="0", mkstream=True)
    d = follower("take", "d", env={**os.environ, "ONEPASS_FAILPOINT": "checkpoint.before_latest:2"})
    e = follower("take", "e")
    n = produce_when_both_read("take", {b"d", b"e"}, until=lambda: d.poll() is not None)
    assert d.wait(timeout=60) == -signal.SIGKILL, d.stderr.read()
    wait_for("e to take d's entries over", lambda: b"d" not in {
        c["name"] for c in server.client().xinfo_consumers("take", "onepass")})
    wait_for("every entry delivered", lambda: is_delivered(server, "take", "onepass"))
    e.send_signal(signal.SIGTERM)
    assert e.wait(timeout=60) == 0
    assert "took over" in e.stderr.read()
    assert rows_checkpointed(tmp_path / "d") > 0  # d's one committed checkpoint; e counted all the rest
    assert_counted_once([tmp_path / "d", tmp_path / "e"], n)
    assert n_pending(server, "take", "onepass") == 0


def test_follow_trains_on_new_entries_until_sigterm(server: RedisServer, tmp_path: Path) -> None:
    args = ["kmeans", "--data", server.uri + "?poll_seconds=0.2", "--stream", "follow", "--consumer", "f",
            "--n-clusters", "2", "--batch-size", str(BATCH), "--checkpoint-dir", str(tmp_path / "ck"),
            "--resume", "--quiet"]
    server.client().xgroup_create("follow", "onepass", id="0", mkstream=True)
    proc = start_train(*args, "--follow")
    wait_for("the follower to read", lambda: any(
        c["name"] == b"f" for c in server.client().xinfo_consumers("follow", "onepass")))
    for k in range(3):  # added after it started
        fill_stream(server, "follow", rows(k * 400, 400))
        time.sleep(0.2)
    wait_for("every entry delivered", lambda: is_delivered(server, "follow", "onepass"))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert rows_checkpointed(tmp_path / "ck") == 1200
    assert n_pending(server, "follow", "onepass") == 0
    fill_stream(server, "follow", rows(1200, 300))
    done = train(*args)
    assert done.returncode == 0, done.stderr
    assert rows_checkpointed(tmp_path / "ck") == 1500


# -- the server away -------------------------------------------------------------------
@pytest.mark.parametrize("exclusive", [False, True])
def test_server_restarted_mid_run_loses_nothing(own_server: RedisServer, tmp_path: Path, exclusive: bool) -> None:
    """Stopped twice while a follower reads and a producer writes: each time the follower
    retries (each outage within retry_seconds, the two together longer), then goes on."""
    args = ["kmeans", "--data", own_server.uri + "?poll_seconds=0.2&retry_seconds=4" + "&exclusive=1" * exclusive,
            "--stream", "restart", "--consumer", "r", "--n-clusters", "2", "--batch-size", str(BATCH),
            "--checkpoint-dir", str(tmp_path / "ck"), "--checkpoint-every-rows", "1000", "--resume", "--quiet"]
    own_server.client().xgroup_create("restart", "onepass", id="0", mkstream=True)
    producer = Producer(own_server, "restart")
    producer.start()
    proc = start_train(*args, "--follow")
    try:
        wait_for("a checkpoint", lambda: rows_checkpointed(tmp_path / "ck") > 0)
        first = time.monotonic()
        for _ in range(2):
            own_server.stop(save=True)  # entries delivered and not acknowledged are saved pending
            time.sleep(1.5)
            own_server.start()
            seen = producer.n
            wait_for("a checkpoint after the restart",
                     lambda s=seen: rows_checkpointed(tmp_path / "ck") > s or proc.poll() is not None)
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(max(0.0, first + 4.5 - time.monotonic()))
    finally:
        producer.halt.set()
        producer.join()
    if not exclusive:  # an exclusive reader's position moves at each committed checkpoint, not as it reads
        wait_for("every entry delivered", lambda: is_delivered(own_server, "restart", "onepass"))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    log = proc.stderr.read()
    assert "unreachable" in log and "retry in" in log
    if exclusive:  # the rest, read to the end
        done = train(*args)
        assert done.returncode == 0, done.stderr
        assert is_delivered(own_server, "restart", "onepass")
    assert rows_checkpointed(tmp_path / "ck") == producer.n
    assert n_pending(own_server, "restart", "onepass") == 0


def test_server_gone_ends_with_a_clear_error_and_resumes(own_server: RedisServer, tmp_path: Path) -> None:
    fill_stream(own_server, "gone", rows(0, 2000))
    args = ["kmeans", "--data", own_server.uri + "?poll_seconds=0.2&retry_seconds=2", "--stream", "gone",
            "--consumer", "g", "--n-clusters", "2", "--batch-size", str(BATCH), "--checkpoint-dir",
            str(tmp_path / "ck"), "--checkpoint-every-rows", "1000", "--resume", "--quiet"]
    proc = start_train(*args, "--follow")
    wait_for("a checkpoint", lambda: rows_checkpointed(tmp_path / "ck") > 0 or proc.poll() is not None)
    wait_for("every entry delivered", lambda: is_delivered(own_server, "gone", "onepass"))
    own_server.stop(save=True)
    assert proc.wait(timeout=60) == 3
    message = proc.stderr.read()
    assert f"Redis server at 127.0.0.1:{own_server.port}" in message and "retry_seconds=2" in message
    own_server.start()
    fill_stream(own_server, "gone", rows(2000, 500))
    done = train(*args)
    assert done.returncode == 0, done.stderr
    assert rows_checkpointed(tmp_path / "ck") == 2500
    assert n_pending(own_server, "gone", "onepass") == 0
    with pytest.raises(DataError, match="unreachable"):
        own_server.kill()
        read_all(own_server.uri + "?stream=gone&retry_seconds=0.5")


def test_numbers_are_read_as_strictly_as_from_files(server: RedisServer) -> None:
    """1_000 and other scripts' digits are bad values here too, as in the file readers."""
    r = server.client()
    good = rows(0, 4)
    fill_stream(server, "strict", good[:2], names=["a", "b", "c"])
    r.xadd("strict", {"a": "1_000", "b": "2", "c": "3"})
    r.xadd("strict", {"a": "1", "b": "\u0661\u0662", "c": "3"})
    fill_stream(server, "strict", good[2:], names=["a", "b", "c"])
    X, _, _, src = read_all(server.uri + "?stream=strict&group=g", on_bad_record="skip")
    np.testing.assert_array_equal(X, good.astype(np.float32))
    assert src.n_skipped == 2


# -- the exclusive reader ----------------------------------------------------------------
def test_exclusive_reader_holds_the_group_and_moves_it_on_commit(server: RedisServer, tmp_path: Path) -> None:
    """``?exclusive=1``: XREAD after the group's position, nothing pending; the group's
    position moves only when a checkpoint is acknowledged; while one reader holds the group,
    another exclusive reader and the group's own consumers are refused, and an exclusive
    reader is refused where the group has pending entries (it would never read them)."""
    from onepass.sources.transports import StreamOptions
    from onepass.sources.transports.redis_streams import RedisStreams

    stream, r = "excl", server.client()
    fill_stream(server, stream, rows(0, 3000))
    uri = f"{server.uri}?stream={stream}&group=g&consumer=a&exclusive=1"
    X, _, cursors, src = read_all(uri, batch_size=256)
    np.testing.assert_array_equal(X[:, 0], np.arange(3000))
    assert cursors[-1]["exclusive"] is True and n_pending(server, stream, "g") == 0
    group = {g["name"]: g for g in r.xinfo_groups(stream)}[b"g"]
    assert group["last-delivered-id"] == b"0-0"  # read, but no checkpoint acknowledged
    src.transport.acknowledge(cursors[4])
    group = {g["name"]: g for g in r.xinfo_groups(stream)}[b"g"]
    assert group["last-delivered-id"].decode() == cursors[4]["id"]
    X2, _, _, _ = read_all(uri, batch_size=256)  # a new run starts after the committed position
    np.testing.assert_array_equal(X2[:, 0], np.arange(5 * 256, 3000))
    assert r.get(f"onepass:{stream}:g:exclusive") is None  # released at close

    r.set(f"onepass:{stream}:g:exclusive", "b", px=30_000)  # reader b holds the group
    for other in (f"{server.uri}?stream={stream}&group=g&consumer=c", uri):
        with pytest.raises(DataError, match="exclusive reader 'b'"):
            read_all(other)
    r.delete(f"onepass:{stream}:g:exclusive")
    X3, _, _, _ = read_all(f"{server.uri}?stream={stream}&group=g2&consumer=c", batch_size=1000)  # leaves 3000 pending
    assert len(X3) == 3000 and n_pending(server, stream, "g2") == 3000
    with pytest.raises(DataError, match="3000 pending entries"):
        read_all(f"{server.uri}?stream={stream}&group=g2&consumer=a&exclusive=1")
    with pytest.raises(InvalidParameterError, match="exclusive reader"):
        src.transport.start_of({**cursors[-1], "exclusive": False})
    with pytest.raises(InvalidParameterError, match="one process"):
        RedisStreams.plan_shards(f"{server.uri}?stream={stream}&exclusive=1", StreamOptions(), None, 2)
    with pytest.raises(InvalidParameterError, match="exclusive="):
        read_all(f"{server.uri}?stream={stream}&exclusive=maybe")


def test_exclusive_reader_killed_counts_every_entry_once(server: RedisServer, tmp_path: Path) -> None:
    """An exclusive follower SIGKILLed 10 times at random instants while a producer adds
    entries, then a run to the end: every entry counted once (PCA exact's sums equal a
    run never killed, read through a group), nothing pending, the group at the end."""
    stream, ck = "excl-kill", tmp_path / "ck"
    common = ["pca", "--n-components", "2", "--mode", "exact", "--stream", stream, "--seed", "7",
              "--batch-size", str(BATCH), "--quiet"]
    killed = [*common, "--data", f"{server.uri}?exclusive=1", "--group", "g", "--consumer", "c", "--checkpoint-dir",
              str(ck), "--checkpoint-every-rows", "1000", "--resume"]
    n = kill_follower_while_producing(server, stream, killed, ck, kills=10, seed=23, min_progress=6)
    done = train(*killed)
    assert done.returncode == 0, done.stderr
    assert n_pending(server, stream, "g") == 0 and is_delivered(server, stream, "g")
    assert load_checkpoint(ck)[1]["cursor"].get("exclusive") is True, "read through the group, not exclusively"
    done = train(*common, "--data", server.uri, "--group", "reference", "--checkpoint-dir",
                 str(tmp_path / "reference"))
    assert done.returncode == 0, done.stderr
    assert_counted_once([ck], n)
    assert_counted_once([tmp_path / "reference"], n)
